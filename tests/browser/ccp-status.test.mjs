// The status control never contradicts the agent's state (issue 15): while
// the backend holds the agent in Busy, AfterCallWork or MissedCallAgent the
// selector shows that state, not "Available"; after a missed call choosing
// Available really makes the agent routable again, and the waiting call
// rings once more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, screenshot, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser({ ringTimeoutS: 4 });

/** What the status selector shows: its value and the visible option's text. */
async function shown(page) {
  return page.getByTestId('status-select').evaluate((s) => ({
    value: s.value,
    text: s.selectedOptions[0]?.textContent ?? '',
  }));
}

test('the selector shows Busy and After-call work while the backend holds them', { timeout: 60000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 460 } });
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('en');
  await ccp.startShift('bob', 'bob-pass', 'Bob Suzuki');
  assert.deepEqual(await shown(page), { value: 'Available', text: 'Available' });

  await ccp.answerSimCall({ play: '' });
  await ccp.expectAgentState('Busy');
  assert.deepEqual(await shown(page), { value: 'Busy', text: 'Busy' });
  assert.equal(await page.getByTestId('agent-state').innerText(), 'Busy');

  await ccp.click('end-call');
  await ccp.expectAgentState('AfterCallWork');
  assert.deepEqual(await shown(page), { value: 'AfterCallWork', text: 'After-call work' });
  assert.equal(await page.getByTestId('agent-state').innerText(), 'After-call work');
  await screenshot(page, 'status-after-call-work');
  await ccp.click('clear');
  await ccp.expectAgentState('Available');
  assert.deepEqual(await shown(page), { value: 'Available', text: 'Available' });
  // Out of routing, so the next test's call rings alice.
  await ccp.setStatus('Offline');
  await ccp.expectAgentState('Offline');
  await page.close();
});

test('after a missed call the selector says so, and choosing Available rings the waiting call again', { timeout: 90000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 460 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('en');
  await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');

  const id = await ccp.ringSimCall({ play: '' });
  await page.locator('[data-testid="contact-state"][data-state="missed"]').waitFor({ timeout: 45000 });
  await ccp.expectAgentState('MissedCallAgent');
  assert.deepEqual(await shown(page), { value: 'MissedCallAgent', text: 'Missed call' },
    'the selector does not read Available while the agent is unroutable');
  assert.equal(await page.getByTestId('agent-state').innerText(), 'Missed call');
  await page.getByTestId('state-hint').waitFor();
  // The shown system state is not something the agent can pick.
  assert.equal(await page.locator('[data-testid="status-select"] option[value="MissedCallAgent"]').isDisabled(), true);
  await screenshot(page, 'status-missed');

  // The caller still waits in the queue. The agent picks Available, as a
  // person does: the browser reports a change because the value differs.
  const { json: caller } = await api(backend.url, 'GET', `/v1/sim/calls/${id}`);
  assert.notEqual(caller.state, 'ended');
  await ccp.setStatus('Available');
  await ccp.expectAgentState('Available');
  assert.equal(await page.getByTestId('state-hint').count(), 0);
  // Routable again: the waiting call is offered a second time.
  await page.locator('[data-testid="contact-state"][data-state="incoming"]').waitFor({ timeout: 15000 });
  assert.equal(await page.getByTestId('contact').count(), 1, 'the missed card was dismissed');
  await ccp.click('accept');
  await ccp.expectContactState('connected');
  await ccp.endAndClear();
  assert.deepEqual(errors, []);
  await page.close();
});
