// Quick-connect availability (issue 15, item 5): while an agent picks
// whom to transfer to, each agent target says whether it can take a call
// now (available, busy, offline), and the list keeps up while it is open:
// bob logging in, going to lunch, taking a call, all show in alice's open
// list without reopening it. Search narrows the list and keeps the words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser();

test('the quick-connect list shows who can take a call now, kept current while it is open', async () => {
  const alice = new CcpPage(await (await browser.newContext()).newPage(), backend.url);
  const bob = new CcpPage(await (await browser.newContext()).newPage(), backend.url);
  await alice.startShift('alice', 'alice-pass', 'Alice Tanaka');
  await alice.answerSimCall({ play: '' });
  await alice.click('transfer');

  const bobTarget = alice.contact().getByTestId('qc-qc-bob');
  const bobSays = (availability) => bobTarget
    .locator(`[data-testid="qc-availability"][data-availability="${availability}"]`).waitFor({ timeout: 15000 });
  // Bob has not logged in.
  await bobSays('offline');
  assert.match(await bobTarget.innerText(), /Not logged in/);
  // A number is not an agent: no availability shown for it.
  assert.equal(await alice.contact().getByTestId('qc-qc-warehouse').getByTestId('qc-availability').isVisible(), false);

  // Bob logs in and goes Available: the open list catches up.
  await bob.startShift('bob', 'bob-pass', 'Bob Suzuki');
  await bobSays('available');
  assert.match(await bobTarget.innerText(), /Available now/);

  // Lunch is not routable: busy.
  await bob.setStatus('Lunch');
  await bob.expectAgentState('Lunch');
  await bobSays('busy');
  assert.match(await bobTarget.innerText(), /Busy now/);

  // Search keeps the words; Japanese translates them.
  await alice.contact().getByTestId('qc-search').fill('bob');
  assert.equal(await alice.contact().locator('[data-testid^="qc-qc-"]').count(), 1);
  await bobSays('busy');
  await alice.page.getByTestId('language').selectOption('ja');
  await bobTarget.filter({ hasText: '対応中' }).waitFor();
  await alice.page.getByTestId('language').selectOption('en');

  // Back to Available, then on a call of his own: busy again.
  await bob.setStatus('Available');
  await bob.expectAgentState('Available');
  await bobSays('available');
  const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support', play: '' });
  assert.equal(placed.status, 201, placed.text);
  await bob.expectContactState('incoming');
  await bob.click('accept');
  await bob.expectContactState('connected');
  await bobSays('busy');

  // Leave both free.
  await bob.endAndClear();
  await alice.endAndClear();
});
