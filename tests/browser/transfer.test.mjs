// A warm transfer in two CCPs: alice takes a call, transfers to bob from
// the quick connects (the caller waits on hold), bob accepts in his own
// panel, alice swaps and then conferences everyone, then leaves: she is in
// after-call work and bob keeps the caller.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, screenshot, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser();

async function callerState(id) {
  return (await api(backend.url, 'GET', `/v1/sim/calls/${id}`)).json.state;
}

test('transfer to another agent, swap, conference, leave', async () => {
  const alice = new CcpPage(await (await browser.newContext()).newPage(), backend.url);
  const bob = new CcpPage(await (await browser.newContext()).newPage(), backend.url);
  await alice.startShift('alice', 'alice-pass', 'Alice Tanaka');
  const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support', play: '' });
  const id = placed.json.contact_id;
  await alice.expectContactState('incoming');
  await alice.click('accept');
  await alice.expectContactState('connected');
  await bob.startShift('bob', 'bob-pass', 'Bob Suzuki');

  await alice.click('transfer');
  await alice.contact().getByTestId('qc-qc-bob').click();
  await alice.page.locator('[data-testid="third-party"][data-state="connecting"]').waitFor();
  assert.equal(await callerState(id), 'hold', 'the caller waits on hold');
  await bob.expectContactState('incoming');
  assert.match(await bob.attributesText(), /Justin/, 'the transfer carries the customer data');
  await bob.click('accept');
  await bob.expectContactState('connected');
  await alice.page.locator('[data-testid="third-party"][data-state="connected"]').waitFor();

  await alice.click('swap');
  await alice.page.locator('[data-testid="third-party"][data-state="hold"]').waitFor();
  assert.equal(await callerState(id), 'connected', 'after a swap alice talks to the caller');
  await alice.click('conference');
  await alice.page.locator('[data-testid="third-party"][data-state="connected"]').waitFor();
  await screenshot(alice.page, 'conference');

  await alice.click('end-call');
  await alice.expectContactState('ended');
  await alice.expectAgentState('AfterCallWork');
  await bob.expectAgentState('Busy');
  assert.equal(await callerState(id), 'connected', 'bob keeps the caller');
});
