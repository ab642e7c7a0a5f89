// A queued callback (a flow's `queue_callback`) rings at the agent like an
// inbound call, but the agent will call the customer back: the CCP says so
// on the card (issue 14: callbacks are an agent feature of the CCP, and
// the wire's initiation is `callback`). The flow is tests/flows/callback.toml,
// dialed at its entry point by a simulated caller.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startBackend, launchBrowser, api, ROOT } from './harness.mjs';
import { CcpPage } from './pages.mjs';

let backend;

before(async () => {
  backend = await startBackend('', {
    extraConfig: `
[[flows]]
file = "${join(ROOT, 'tests/flows/callback.toml')}"

[[entry_points]]
number = "+18005550199"
flow = "callback"
`,
  });
});

after(() => backend?.stop());

test('a queued callback rings with a callback badge; an inbound call has none', async () => {
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const ccp = new CcpPage(page, backend.url);
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
    // An ordinary call first: no badge.
    const plain = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support', play: '' });
    assert.equal(plain.status, 201, plain.text);
    await ccp.expectContactState('incoming');
    assert.equal(await ccp.contact().getByTestId('callback-badge').isVisible(), false);
    await ccp.click('reject');
    await ccp.expectNoContacts();
    await ccp.setStatus('Available');
    await ccp.expectAgentState('Available');
    // The caller asks for a callback and hangs up; the callback rings.
    const asked = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+15555550100', to: '+18005550199', play: '' });
    assert.equal(asked.status, 201, asked.text);
    await ccp.expectContactState('incoming');
    await ccp.contact().getByTestId('callback-badge').waitFor();
    assert.match(await ccp.contact().getByTestId('callback-badge').innerText(), /call the customer back/);
    assert.match(await ccp.contact().innerText(), /\+15555550100/);
  } finally {
    await browser.close();
  }
});
