// Page objects for the CCP: tests speak in agent actions, selectors live here.
import assert from 'node:assert/strict';
import { api } from './harness.mjs';

export class CcpPage {
  constructor(page, base) {
    this.page = page;
    this.base = base;
  }

  /** Opens the CCP and waits until the app has mounted (the module and
   * its wasm load after the page's load event). */
  async open() {
    await this.page.goto(`${this.base}/ccp/`);
    await this.page.locator('body > *:not(script)').first().waitFor();
  }

  async login(username, password) {
    await this.page.getByTestId('login-username').fill(username);
    await this.page.getByTestId('login-password').fill(password);
    await this.page.getByTestId('login-submit').click();
  }

  /** Opens the CCP, logs in and goes Available. */
  async startShift(username, password, name) {
    await this.open();
    await this.login(username, password);
    await this.expectLoggedIn(name);
    await this.setStatus('Available');
    await this.expectAgentState('Available');
  }

  async expectLoggedIn(name) {
    await this.page.getByTestId('agent-name').filter({ hasText: name }).waitFor();
    await this.page.locator('[data-testid="link-state"].open').waitFor();
  }

  /** Waits for the agent state by its wire name (the panel shows a translated label). */
  async expectAgentState(name) {
    await this.page.locator(`[data-testid="agent-state"][data-state="${name}"]`).waitFor();
  }

  async setStatus(name) {
    await this.page.getByTestId('status-select').selectOption(name);
  }

  contact() {
    return this.page.getByTestId('contact').first();
  }

  async expectContactState(state) {
    await this.page.locator(`[data-testid="contact-state"][data-state="${state}"]`).waitFor();
  }

  /** Who is calling: the name or number, and the attribute rows. */
  async attributesText() {
    return this.contact().getByTestId('contact-customer').innerText();
  }

  async click(testId) {
    await this.contact().getByTestId(testId).click();
  }

  async errorText() {
    const el = this.page.getByTestId('error');
    await el.waitFor();
    return el.innerText();
  }

  async expectNoContacts() {
    await this.page.getByTestId('idle').waitFor();
    assert.equal(await this.page.getByTestId('contact').count(), 0);
  }

  /**
   * The sample customer calls through the simulator (`body` adds to or
   * overrides the request, e.g. `{ play: 'echo' }`) and the agent accepts.
   * Resolves with the contact id once connected.
   */
  async answerSimCall(body = {}) {
    const id = await this.ringSimCall(body);
    await this.click('accept');
    await this.expectContactState('connected');
    return id;
  }

  /** As `answerSimCall`, up to the call ringing in the panel. */
  async ringSimCall(body = {}) {
    const placed = await api(this.base, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support', ...body });
    assert.equal(placed.status, 201, placed.text);
    await this.expectContactState('incoming');
    return placed.json.contact_id;
  }

  /** Ends the call and clears its after-call work. */
  async endAndClear() {
    await this.click('end-call');
    await this.expectContactState('ended');
    await this.click('clear');
    await this.expectNoContacts();
  }
}

/** The demo CRM page (public/crm), which embeds the CCP through the SDK. */
export class CrmPage {
  constructor(page, crmUrl) {
    this.page = page;
    this.crmUrl = crmUrl;
  }

  async open() {
    await this.page.goto(`${this.crmUrl}/`);
    await this.page.locator('body[data-ready="true"]').waitFor();
  }

  /** Logs the hidden CCP in through the SDK's popup. */
  async loginByPopup(username, password, backendUrl) {
    const [popup] = await Promise.all([
      this.page.waitForEvent('popup'),
      this.page.getByTestId('crm-login').click(),
    ]);
    const closed = popup.waitForEvent('close');
    const ccp = new CcpPage(popup, backendUrl);
    await ccp.login(username, password);
    await closed;
    await this.page.getByTestId('crm-login').waitFor({ state: 'hidden' });
  }

  async setStatus(name) {
    await this.page.getByTestId('crm-state').selectOption(name);
    await this.expectStatus(name);
  }

  async expectStatus(text) {
    await this.page.getByTestId('crm-status').filter({ hasText: new RegExp(`^${text}$`) }).waitFor();
  }

  async expectCall(pattern) {
    await this.page.getByTestId('crm-call-state').filter({ hasText: pattern }).waitFor();
  }

  async click(testId) {
    await this.page.getByTestId(testId).click();
  }

  async text(testId) {
    return this.page.getByTestId(testId).innerText();
  }

  async logText() {
    return this.page.getByTestId('crm-log').innerText();
  }

  /** The CCP's frame inside the page. */
  ccpFrame() {
    return this.page.frames().find((f) => f.url().includes('/ccp/'));
  }
}

// Settings (added with the device settings; CcpPage methods above unchanged).
Object.assign(CcpPage.prototype, {
  /** Opens the Settings section. */
  async openSettings() {
    await this.page.getByTestId('settings-toggle').click();
    await this.page.getByTestId('settings').waitFor();
  },

  /** The options of a device select (`microphone`, `speaker`, `ringer`), once listed. */
  async deviceOptions(kind) {
    const select = this.page.getByTestId(`${kind}-select`);
    await select.locator('option').nth(1).waitFor({ state: 'attached' }).catch(() => {});
    return select.locator('option').evaluateAll((os) => os.map((o) => ({ value: o.value, text: o.textContent })));
  },
});
