// The CCP in headless Chromium against the real backend: log in, go
// Available, take a simulated call that shows the caller's order, hold,
// resume, end, after-call work, clear; a refresh mid-call re-attaches; a
// wrong password is explained; the CCP page carries frame-ancestors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, screenshot, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser();

async function callerState(id) {
  const { json } = await api(backend.url, 'GET', `/v1/sim/calls/${id}`);
  return json.state;
}

async function waitFor(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('the CCP page is served with frame-ancestors for approved origins only', async () => {
  const res = await api(backend.url, 'GET', '/ccp/');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-security-policy'), /(^|; )frame-ancestors 'self' http:\/\/localhost:9$/);
});

test('a wrong password is explained and nothing is stored', async () => {
  const page = await browser.newPage();
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await ccp.login('alice', 'not-the-password');
  assert.match(await ccp.errorText(), /wrong user name or password/i);
  assert.equal(await page.evaluate(() => localStorage.getItem('switchboard.token')), null);
  await page.close();
});

test('an agent takes a call end to end, and a refresh re-attaches mid-call', async () => {
  const context = await browser.newContext({ viewport: { width: 320, height: 460 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await ccp.login('alice', 'alice-pass');
  await ccp.expectLoggedIn('Alice Tanaka');
  await ccp.expectAgentState('Offline');
  await screenshot(page, 'idle');

  await ccp.setStatus('Available');
  await ccp.expectAgentState('Available');

  const id = await ccp.ringSimCall();
  const attrs = await ccp.attributesText();
  for (const expected of ['Justin', 'The North Face Summit L3 Ventrix 2.0 Hoodie', '2018-11-12', '100']) {
    assert.ok(attrs.includes(expected), `attributes show ${expected}: ${attrs}`);
  }
  await screenshot(page, 'ringing');

  await ccp.click('accept');
  await ccp.expectContactState('connected');
  await ccp.expectAgentState('Busy');
  assert.equal(await callerState(id), 'connected');

  await ccp.click('hold');
  await waitFor('caller on hold', async () => (await callerState(id)) === 'hold');
  await screenshot(page, 'in-call-hold');
  await ccp.click('hold');
  await waitFor('caller resumed', async () => (await callerState(id)) === 'connected');

  // A refresh during the call: the saved token re-attaches, no login form.
  await page.reload();
  await ccp.expectContactState('connected');
  assert.equal(await page.getByTestId('login-username').count(), 0);

  await ccp.click('end-call');
  await ccp.expectContactState('ended');
  await ccp.expectAgentState('AfterCallWork');
  assert.equal(await callerState(id), 'ended');
  await screenshot(page, 'after-call-work');
  await ccp.contact().getByTestId('wrap-up').selectOption('Resolved');
  await ccp.click('clear');
  await ccp.expectNoContacts();
  await ccp.expectAgentState('Available');
  const entry = page.locator('[data-testid="history-entry"][data-outcome="answered"]');
  await entry.waitFor();
  assert.match(await entry.innerText(), /\+819012345678 · Support · Answered · \d+:\d\d/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('the panel switches to Japanese and to a dark theme, and remembers both', async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 460 } });
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('ja');
  assert.equal(await page.getByTestId('login-submit').innerText(), 'ログイン');
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'ja');
  await ccp.login('alice', 'alice-pass');
  await ccp.expectLoggedIn('Alice Tanaka');
  assert.equal(await page.getByTestId('logout').innerText(), 'ログアウト');
  await screenshot(page, 'japanese');
  await page.getByTestId('theme').click();
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
  await screenshot(page, 'dark');
  await page.reload();
  await ccp.expectLoggedIn('Alice Tanaka');
  assert.equal(await page.getByTestId('logout').innerText(), 'ログアウト', 'language remembered');
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark', 'theme remembered');
  await page.close();
});

test('an outbound call, driven by the keyboard shortcuts', async () => {
  const page = await browser.newPage();
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('en');
  await ccp.login('alice', 'alice-pass');
  await ccp.expectLoggedIn('Alice Tanaka');
  await page.getByTestId('dial-number').fill('12');
  await page.getByTestId('dial').click();
  assert.match(await ccp.errorText(), /country code/);
  await page.getByTestId('dial-number').fill('+1 415 555 0100');
  await page.getByTestId('dial').click();
  await ccp.expectContactState('connecting');
  await ccp.expectAgentState('CallingCustomer');
  await ccp.expectContactState('connected');
  await page.keyboard.press('Alt+KeyM');
  await ccp.contact().locator('[data-testid="mute"][aria-pressed="true"]').waitFor();
  await page.keyboard.press('Alt+KeyH');
  await ccp.contact().locator('[data-testid="hold"][aria-pressed="true"]').waitFor();
  await page.keyboard.press('Alt+KeyH');
  await ccp.contact().locator('[data-testid="hold"][aria-pressed="false"]').waitFor();
  await page.keyboard.press('Alt+KeyM');
  await page.keyboard.press('Alt+KeyE');
  await ccp.expectContactState('ended');
  await ccp.click('clear');
  await ccp.expectNoContacts();
  await page.locator('[data-testid="history-entry"][data-outcome="outbound"]').waitFor();
  await page.close();
});

test('an outbound call to a quick connect', async () => {
  const page = await browser.newPage();
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await ccp.login('bob', 'bob-pass');
  await ccp.expectLoggedIn('Bob Suzuki');
  // Only phone-number quick connects are offered for dialing.
  await page.getByTestId('dial-qc-warehouse').waitFor();
  assert.equal(await page.getByTestId('dial-qc-bob').count(), 0);
  await page.getByTestId('dial-qc-warehouse').click();
  await ccp.expectContactState('connecting');
  assert.match(await ccp.contact().innerText(), /\+81355550100/);
  await ccp.expectContactState('connected');
  await ccp.click('end-call');
  await ccp.expectContactState('ended');
  await ccp.click('clear');
  await ccp.expectNoContacts();
  await page.close();
});
