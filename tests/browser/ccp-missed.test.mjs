// A missed call in the CCP against the real backend: an Available agent
// lets a call ring until the ring timeout (5 s here), the panel
// shows the missed call and the agent's MissedCallAgent state, and going
// Available again dismisses it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, screenshot, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser({ ringTimeoutS: 5 });

test('a call that rings out is shown as missed, and the agent goes Available again', { timeout: 90000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 460 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('en');
  await ccp.login('alice', 'alice-pass');
  await ccp.expectLoggedIn('Alice Tanaka');
  await ccp.setStatus('Available');
  await ccp.expectAgentState('Available');

  const id = await ccp.ringSimCall();
  const rangAt = Date.now();

  // Nobody answers: after the ring timeout the offer is withdrawn.
  await page.locator('[data-testid="contact-state"][data-state="missed"]').waitFor({ timeout: 45000 });
  const rang = (Date.now() - rangAt) / 1000;
  assert.ok(rang > 3.5 && rang < 15, `rang for the configured 5 s (${rang.toFixed(1)} s)`);
  await ccp.expectAgentState('MissedCallAgent');
  assert.equal(await ccp.contact().getByTestId('contact-state').innerText(), 'Missed call');
  assert.equal(await ccp.contact().getByTestId('accept').count(), 0, 'a missed call cannot be accepted');
  await screenshot(page, 'missed-call');
  // The caller is back in the queue, waiting for someone else.
  const { json: caller } = await api(backend.url, 'GET', `/v1/sim/calls/${id}`);
  assert.notEqual(caller.state, 'ended', `caller still waiting: ${JSON.stringify(caller)}`);

  // The caller gives up; the agent goes Available, which dismisses the card.
  assert.equal((await api(backend.url, 'DELETE', `/v1/sim/calls/${id}`)).status < 300, true);
  await ccp.setStatus('Available');
  await ccp.expectAgentState('Available');
  await ccp.expectNoContacts();
  await page.locator('[data-testid="history-entry"][data-outcome="missed"]').waitFor();
  assert.deepEqual(errors, []);
  await page.close();
});
