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

  // Handing over is its own action, not "End call".
  assert.equal(await alice.contact().getByTestId('end-call').count(), 0, 'no End call while another party is on');
  await alice.click('complete-transfer');
  await alice.expectContactState('ended');
  await alice.expectAgentState('AfterCallWork');
  await bob.expectAgentState('Busy');
  assert.equal(await callerState(id), 'connected', 'bob keeps the caller');
  // Leave both agents free for the next test.
  await alice.click('clear');
  await bob.click('end-call');
  await bob.expectContactState('ended');
  await bob.click('clear');
  await alice.expectNoContacts();
  await bob.expectNoContacts();
});

test('a transfer still ringing can be cancelled; the receiving agent is told it is a transfer', async () => {
  const alice = new CcpPage(await (await browser.newContext()).newPage(), backend.url);
  const bob = new CcpPage(await (await browser.newContext()).newPage(), backend.url);
  await alice.startShift('alice', 'alice-pass', 'Alice Tanaka');
  const id = await alice.answerSimCall();
  await bob.startShift('bob', 'bob-pass', 'Bob Suzuki');
  await alice.click('transfer');
  await alice.contact().getByTestId('qc-qc-bob').click();
  const ringing = alice.page.locator('[data-testid="third-party"][data-state="connecting"]');
  await ringing.waitFor();
  // While the consulted party rings, the hand-over is already offered.
  await alice.contact().getByTestId('complete-transfer').waitFor();
  await bob.expectContactState('incoming');
  await bob.contact().getByTestId('transfer-badge').waitFor();
  await screenshot(bob.page, 'transfer-incoming');
  await ringing.getByTestId('cancel-transfer').click();
  await bob.expectNoContacts();
  await alice.page.locator('[data-testid="third-party"]').waitFor({ state: 'detached' });
  assert.equal(await callerState(id), 'hold', 'the caller is still alice\'s, on hold');
  // With nobody else on the line, alice ends the call herself again.
  await alice.contact().getByTestId('end-call').waitFor();
  assert.equal(await alice.contact().getByTestId('complete-transfer').count(), 0);
  await alice.endAndClear();
  // Bob stops taking calls, so the next test's call rings alice.
  await bob.setStatus('Offline');
  await bob.expectAgentState('Offline');
});

test('the quick connects can be searched', async () => {
  const alice = new CcpPage(await (await browser.newContext()).newPage(), backend.url);
  await alice.startShift('alice', 'alice-pass', 'Alice Tanaka');
  await alice.answerSimCall();
  await alice.click('transfer');
  const list = alice.contact().getByTestId('quick-connects');
  await list.getByTestId('qc-qc-bob').waitFor();
  const all = await list.locator('button').count();
  assert.ok(all > 1, `the sample configuration offers several quick connects (${all})`);
  await alice.contact().getByTestId('qc-search').fill('BOB');
  await alice.page.waitForFunction(() => document.querySelectorAll('[data-testid="quick-connects"] button').length === 1);
  // The name, then whether bob can take a call now (ccp-availability.test.mjs).
  const [only] = await list.locator('button').allInnerTexts();
  assert.match(only, /^Bob Suzuki\n(Available now|Busy now|Not logged in)$/);
  assert.equal(await alice.contact().getByTestId('qc-none').isVisible(), false);
  await alice.contact().getByTestId('qc-search').fill('nobody here');
  await alice.contact().getByTestId('qc-none').waitFor();
  assert.equal(await list.locator('button').count(), 0);
  await alice.contact().getByTestId('qc-search').fill('');
  await alice.page.waitForFunction((n) => document.querySelectorAll('[data-testid="quick-connects"] button').length === n, all);
  await alice.endAndClear();
});
