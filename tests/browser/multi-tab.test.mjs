// Two tabs of the same CRM: exactly one tab's CCP owns the softphone and
// rings; the other mirrors the state and can still act through it. When
// the leading tab closes, the other takes over within 5 seconds, rings for
// the call still waiting, and answers it with audio.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CrmPage } from './pages.mjs';

useBackendAndBrowser({ crm: true });

const ringing = (crm) => crm.ccpFrame().evaluate(() => globalThis.__switchboardRinging === true);
const leads = (crm) => crm.page.evaluate(() => window.crmSession.leader);

test('one tab rings; when it closes the other takes over', async () => {
  const context = await browser.newContext();
  const first = new CrmPage(await context.newPage(), backend.crmUrl);
  await first.open();
  await first.loginByPopup('alice', 'alice-pass', backend.url);
  await first.setStatus('Available');
  assert.equal(await leads(first), true, 'the first tab leads');

  const second = new CrmPage(await context.newPage(), backend.crmUrl);
  await second.open();
  await second.expectStatus('Available');
  assert.equal(await leads(second), false, 'the second tab mirrors');
  assert.equal(await second.page.evaluate(() => window.crmSession.loggedIn), true, 'it shares the login');

  // The follower acts through the leader.
  await second.setStatus('Lunch');
  await first.expectStatus('Lunch');
  await second.setStatus('Available');
  await first.expectStatus('Available');

  const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
  assert.equal(placed.status, 201, placed.text);
  await first.expectCall(/Incoming call/);
  await second.expectCall(/Incoming call/);
  assert.equal(await ringing(first), true, 'the leading tab rings');
  assert.equal(await ringing(second), false, 'the other tab does not');

  const closedAt = Date.now();
  await first.page.close();
  await second.page.waitForFunction(() => window.crmSession.leader === true, null, { polling: 50, timeout: 5000 });
  const tookOverMs = Date.now() - closedAt;
  assert.ok(tookOverMs < 5000, `took over in ${tookOverMs} ms`);
  await second.ccpFrame().waitForFunction(() => globalThis.__switchboardRinging === true, null, { polling: 100, timeout: 5000 });

  await second.click('crm-accept');
  await second.expectCall(/On a call with/);
  assert.equal((await api(backend.url, 'GET', `/v1/sim/calls/${placed.json.contact_id}`)).json.state, 'connected');
  await second.ccpFrame().waitForFunction(() => globalThis.__switchboardEngineStartedAt !== undefined, null, { polling: 100, timeout: 10000 });
  assert.equal(await ringing(second), false, 'ringing stopped on accept');
  console.log(`# takeover after close: ${tookOverMs} ms`);
  await context.close();
});
