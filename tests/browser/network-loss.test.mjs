// A 30-second network loss on the agent's side, mid-call (issue 10,
// item 7). The CCP reaches the backend only through a TCP proxy in this
// test; mid-call the proxy goes dark for 30 s, in two ways:
//
// - black hole, like a pulled cable: no byte moves either way, nothing is
//   closed, new connections are accepted and hang. The browser's socket
//   still says open; only the client's watchdog (an unanswered ping) can
//   tell the link is gone.
// - reset: every connection is reset at once and new ones are reset
//   until the network is back.
//
// Either way the agent must see the link go down within seconds and stay
// down, the call must wait for the agent on the backend, and afterwards
// the same contact must be shown once, connected, with audio flowing both
// ways (the simulated caller is an echo line, so sound at the agent after
// the loss proves both directions) and a contact record with no duplicate
// step. Both variants run at once, one agent each, to keep the wall time
// near one outage.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, launchBrowser, api } from './harness.mjs';
import { CcpPage } from './pages.mjs';
import { speechWav } from './audio.mjs';

const OUTAGE_MS = 30000;
/** How soon the agent must see the link down after the loss. */
const DETECT_MS = 9000;
/** How soon the link must be back after the network is. */
const RECOVER_MS = 15000;

let backend;
let browser;

/**
 * A TCP proxy on 127.0.0.1 to `target` (a `host:port`) that can go dark.
 * `cut('blackhole')` stops reading every socket (both directions stall,
 * nothing is closed) and leaves new connections hanging; `cut('reset')`
 * resets every connection and every new one; `restore()` resumes.
 */
async function lossyProxy(target) {
  const [host, port] = [target.split(':')[0], Number(target.split(':')[1])];
  let mode = null;
  const pairs = new Set();
  const pending = [];
  const connect = (client) => {
    const upstream = net.connect(port, host);
    const pair = { client, upstream };
    pairs.add(pair);
    const forward = (from, to) => {
      from.on('data', (d) => { if (!to.destroyed) to.write(d); });
      from.on('end', () => to.end());
      from.on('error', () => to.destroy());
      from.on('close', () => { to.destroy(); pairs.delete(pair); });
    };
    forward(client, upstream);
    forward(upstream, client);
  };
  const server = net.createServer((client) => {
    if (mode === 'reset') { client.resetAndDestroy(); return; }
    if (mode === 'blackhole') { client.pause(); pending.push(client); return; }
    connect(client);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut(how) {
      mode = how;
      for (const { client, upstream } of pairs) {
        if (how === 'reset') { client.resetAndDestroy(); upstream.destroy(); } else { client.pause(); upstream.pause(); }
      }
    },
    restore() {
      mode = null;
      for (const { client, upstream } of pairs) { client.resume(); upstream.resume(); }
      // Connections made in the dark go through now, as a retransmitted SYN would.
      for (const client of pending.splice(0)) {
        if (!client.destroyed) { connect(client); client.resume(); }
      }
    },
    close() {
      for (const { client, upstream } of pairs) { client.destroy(); upstream.destroy(); }
      for (const c of pending) c.destroy();
      server.close();
    },
  };
}

before(async () => {
  backend = await startBackend();
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-loss-'));
  browser = await launchBrowser([`--use-file-for-fake-audio-capture=${speechWav(dir, 'agent', 'This is the agent speaking, one two three four five.')}`]);
});

after(async () => {
  await browser?.close();
  backend?.stop();
});

/** The link state's class (`open`, `down`) as the agent sees it. */
const linkClass = (page) => page.getByTestId('link-state').evaluate((el) => (el.classList.contains('open') ? 'open' : 'down'));

/** Output level at the agent (dBFS) over samples [from, to) of the tap. */
const levelDb = (page, from, to) => page.evaluate(([a, b]) => {
  const x = globalThis.__switchboardTapOutput.slice(a, b);
  return 10 * Math.log10(x.reduce((s, v) => s + v * v, 0) / x.length + 1e-12);
}, [from, to]);

/** One agent through its own proxy, on a call from an echo line. */
async function agentOnCall(user, password, name) {
  const proxy = await lossyProxy(new URL(backend.url).host);
  const context = await browser.newContext();
  await context.addInitScript(() => { globalThis.__switchboardTap = true; });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const ccp = new CcpPage(page, proxy.url);
  await ccp.startShift(user, password, name);
  // The caller dials the backend directly; only the agent's side is lossy.
  const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support', play: 'echo' });
  assert.equal(placed.status, 201, placed.text);
  const id = placed.json.contact_id;
  await page.locator(`[data-testid="contact"][data-contact-id="${id}"]`).waitFor();
  await ccp.click('accept');
  await ccp.expectContactState('connected');
  return { user, password, proxy, context, page, ccp, id, errors };
}

/** A 30 s loss of kind `how` on the agent's link, then recovery. */
async function lossMidCall(how, { user, password, proxy, page, ccp, id, errors }) {
  await page.waitForFunction(() => (globalThis.__switchboardTapOutput || []).length >= 48000 * 3, null, { timeout: 20000, polling: 250 });
  const before = await page.evaluate(() => globalThis.__switchboardTapOutput.length);
  const levelBefore = await levelDb(page, before - 48000 * 2, before);

  const cutAt = Date.now();
  proxy.cut(how);
  await page.locator('[data-testid="link-state"].down').waitFor({ timeout: DETECT_MS });
  const detectMs = Date.now() - cutAt;
  // Throughout the loss: the link shows down, the call is still shown,
  // and the backend keeps the call waiting for the agent.
  const seen = new Set();
  while (Date.now() - cutAt < OUTAGE_MS) {
    seen.add(await linkClass(page));
    assert.equal(await page.getByTestId('contact').count(), 1, 'the call stays on screen');
    await page.waitForTimeout(1000);
  }
  const during = await api(backend.url, 'GET', `/v1/sim/calls/${id}`);
  assert.equal(during.json.state, 'connected', `the backend kept the call: ${during.text}`);
  assert.deepEqual([...seen], ['down'], 'the link shows down for the whole loss');
  const linkText = await page.getByTestId('link-state').innerText();

  const restoredAt = Date.now();
  proxy.restore();
  await page.locator('[data-testid="link-state"].open').waitFor({ timeout: RECOVER_MS });
  const recoverMs = Date.now() - restoredAt;

  // The same contact, once, connected.
  const cards = page.getByTestId('contact');
  assert.equal(await cards.count(), 1, 'the call is neither lost nor duplicated');
  assert.equal(await cards.first().getAttribute('data-contact-id'), id, 'the same contact');
  await ccp.expectContactState('connected');
  // Audio both ways: the echo line returns the agent's voice.
  const back = await page.evaluate(() => globalThis.__switchboardTapOutput.length);
  await page.waitForFunction((n) => globalThis.__switchboardTapOutput.length >= n, back + 48000 * 4, { timeout: 20000, polling: 250 });
  const levelAfter = await levelDb(page, back + 48000, back + 48000 * 4);
  console.log(`${how}: link down after ${detectMs} ms ("${linkText}"), open ${recoverMs} ms after the network came back; agent hears ${levelBefore.toFixed(1)} dB before, ${levelAfter.toFixed(1)} dB after`);
  assert.ok(levelAfter > -45, `audio resumed both ways (${levelAfter.toFixed(1)} dB)`);

  await ccp.endAndClear();
  const { token } = (await api(backend.url, 'POST', '/v1/login', { username: user, password })).json;
  const record = await (await fetch(`${backend.url}/v1/contacts/${id}`, { headers: { authorization: `Bearer ${token}` } })).json();
  const steps = record.events.map((e) => e.event);
  for (const step of ['offered', 'accepted', 'ended', 'cleared']) {
    assert.equal(steps.filter((s) => s === step).length, 1, `one ${step} in ${steps.join(', ')}`);
  }
  assert.equal(record.disconnect_reason, 'agent_disconnect', JSON.stringify(record));
  assert.deepEqual(errors, []);
  return { detectMs, recoverMs };
}

test('a 30 s network loss mid-call (black hole and reset): the agent sees it, the call and its audio resume', async () => {
  const agents = [];
  try {
    // One after the other, so each call goes to the agent it is meant for.
    agents.push(await agentOnCall('alice', 'alice-pass', 'Alice Tanaka'));
    agents.push(await agentOnCall('bob', 'bob-pass', 'Bob Suzuki'));
    const [hole, reset] = await Promise.all([lossMidCall('blackhole', agents[0]), lossMidCall('reset', agents[1])]);
    assert.ok(hole.detectMs < DETECT_MS && reset.detectMs < DETECT_MS);
  } finally {
    for (const a of agents) {
      await a.context.close();
      a.proxy.close();
    }
  }
});
