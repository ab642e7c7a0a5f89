// The errors an agent must understand: the backend cannot be reached at
// login, and the microphone is denied during a call (the call goes on; the
// panel says why there is no audio, and a CRM embedding the CCP hears of
// it as the SDK's softphoneError).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, startBackend, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage, CrmPage } from './pages.mjs';

useBackendAndBrowser({ crm: true });

// What a denied permission looks like to the page.
const denyMicrophone = () => {
  navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
};

test('a refused action reads as a translated sentence, never the backend message, and clears with the next action', async () => {
  const ccp = new CcpPage(await (await browser.newContext()).newPage(), backend.url);
  // First in the file: the later tests leave alice and bob on calls.
  await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
  await ccp.page.getByTestId('dial-number').fill('12');
  await ccp.page.getByTestId('dial').click();
  // Refused in the panel (no region configured here: + and the country code needed).
  assert.equal(await ccp.errorText(), 'Type the number with + and the country code.');
  await ccp.page.getByTestId('language').selectOption('ja');
  await ccp.page.getByTestId('error').filter({ hasText: '国番号から入力してください' }).waitFor();
  await ccp.page.getByTestId('language').selectOption('en');
  // The next action clears it.
  await ccp.setStatus('Offline');
  await ccp.expectAgentState('Offline');
  await ccp.page.getByTestId('error').waitFor({ state: 'detached' });
  await ccp.setStatus('Available');
  await ccp.expectAgentState('Available');
});

test('an unreachable backend at login is explained', async () => {
  const down = await startBackend();
  const page = await browser.newPage();
  const ccp = new CcpPage(page, down.url);
  await ccp.open();
  down.stop();
  await ccp.login('alice', 'alice-pass');
  assert.match(await ccp.errorText(), /cannot be reached/i);
  assert.equal(await page.evaluate(() => localStorage.getItem('switchboard.token')), null);
  await page.close();
});

test('a denied microphone is explained and the call goes on', async () => {
  const context = await browser.newContext();
  await context.addInitScript(denyMicrophone);
  const ccp = new CcpPage(await context.newPage(), backend.url);
  await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
  const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
  await ccp.expectContactState('incoming');
  await ccp.click('accept');
  await ccp.expectContactState('connected');
  assert.match(await ccp.errorText(), /Microphone access was denied/);
  assert.equal((await api(backend.url, 'GET', `/v1/sim/calls/${placed.json.contact_id}`)).json.state, 'connected');
  await ccp.click('end-call');
  await ccp.expectContactState('ended');
  await context.close();
});

test('a CRM embedding the CCP hears of a denied microphone as softphoneError', async () => {
  const context = await browser.newContext();
  await context.addInitScript(denyMicrophone); // runs in the CCP's frame too
  const crm = new CrmPage(await context.newPage(), backend.crmUrl);
  await crm.open();
  await crm.loginByPopup('bob', 'bob-pass', backend.url);
  await crm.setStatus('Available');
  await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
  await crm.expectCall(/Incoming call/);
  await crm.click('crm-accept');
  await crm.expectCall(/On a call with/);
  await crm.page.getByTestId('crm-error').filter({ hasText: /^microphone_denied: / }).waitFor();
  assert.match(await crm.logText(), /softphoneError microphone_denied/);
  await crm.click('crm-end');
  await crm.expectCall(/After-call work/);
  await context.close();
});
