// Page objects for the CCP: tests speak in agent actions, selectors live here.
import assert from 'node:assert/strict';

export class CcpPage {
  constructor(page, base) {
    this.page = page;
    this.base = base;
  }

  async open() {
    await this.page.goto(`${this.base}/ccp/`);
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

  async expectAgentState(name) {
    await this.page.getByTestId('agent-state').filter({ hasText: new RegExp(`^${name}$`) }).waitFor();
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

  async attributesText() {
    return this.contact().getByTestId('contact-attributes').innerText();
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
}
