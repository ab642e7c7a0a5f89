// A real call in the CCP with audio both ways: the agent's fake
// microphone plays known speech; a simulated caller plays the sample's
// prompt and records what it hears. After the agent accepts in the CCP,
// the caller's recording must contain the agent's speech and the agent's
// page must play the caller's speech, both checked by cross-correlating
// speech envelopes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, launchBrowser, api, ROOT, screenshot, tappedPage, simHeaders } from './harness.mjs';
import { CcpPage } from './pages.mjs';
import { speechWav, readWav, envelope, bestEnvelopeMatch } from './audio.mjs';

let backend;
let dir;
let agentWav;

before(async () => {
  backend = await startBackend();
  dir = mkdtempSync(join(tmpdir(), 'switchboard-call-'));
  agentWav = speechWav(dir, 'agent', 'Thank you for calling the order desk, this is Alice. I can see your order for the hoodie right here.');
});

after(() => backend?.stop());

test('agent and caller hear each other through the CCP, the engine and the bridge', async () => {
  const { browser, page } = await tappedPage(agentWav);
  try {
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const ccp = new CcpPage(page, backend.url);
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
    const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
    assert.equal(placed.status, 201);
    const id = placed.json.contact_id;
    await ccp.expectContactState('incoming');
    await ccp.click('accept');
    await ccp.expectContactState('connected');
    // Eight seconds of conversation.
    await page.waitForFunction(() => (globalThis.__switchboardTapOutput || []).length >= 48000 * 8, null, { timeout: 30000, polling: 250 });
    await screenshot(page, 'in-call-audio');
    const { out, stats } = await page.evaluate(() => ({
      out: globalThis.__switchboardTapOutput.slice(0, 48000 * 8),
      stats: globalThis.__switchboardStats,
    }));
    await ccp.endAndClear();

    // The caller heard the agent.
    const heard = await fetch(`${backend.url}/v1/sim/calls/${id}/heard`, { headers: simHeaders() });
    assert.equal(heard.status, 200);
    const caller = readWav(Buffer.from(await heard.arrayBuffer()));
    const agentRef = envelope(readWav(agentWav).samples, 48000);
    const heardEnv = envelope(caller.samples, 48000);
    const segA = heardEnv.slice(200, 500); // 2 s to 5 s into the call
    const matchA = bestEnvelopeMatch(segA, agentRef);

    // The agent heard the caller's prompt.
    const prompt = readWav(join(ROOT, 'public/audio/caller-prompt.wav'));
    const promptRef = envelope(prompt.samples, prompt.rate);
    const outEnv = envelope(out, 48000);
    const segB = outEnv.slice(300, 600);
    const matchB = bestEnvelopeMatch(segB, promptRef);
    console.log(`caller heard agent: envelope correlation ${matchA.corr.toFixed(3)}; agent heard caller: ${matchB.corr.toFixed(3)}; engine stats ${JSON.stringify(stats)}`);
    assert.ok(matchA.corr > 0.6, `the agent's speech reached the caller (${matchA.corr.toFixed(3)})`);
    assert.ok(matchB.corr > 0.6, `the caller's speech reached the agent (${matchB.corr.toFixed(3)})`);
    assert.ok(stats && stats.received > 100 && stats.packetsSent > 100, 'media flowed both ways');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a call survives the agent\'s socket being cut for 5 seconds, and its audio resumes', async () => {
  const browser = await launchBrowser([`--use-file-for-fake-audio-capture=${agentWav}`]);
  try {
    const context = await browser.newContext();
    await context.addInitScript(() => {
      globalThis.__switchboardTap = true;
      // A network cut, as the page sees it: every socket open now is
      // closed, and new ones fail until the cut ends (they go to a path
      // the backend refuses: the CCP's CSP would block another port).
      const Native = WebSocket;
      const open = [];
      globalThis.__cut = { on: false };
      globalThis.WebSocket = function Cuttable(url, protocols) {
        const ws = new Native(globalThis.__cut.on ? String(url).replace(/\/v1\/ws$/, '/v1/ws-cut') : url, protocols);
        open.push(ws);
        return ws;
      };
      Object.assign(globalThis.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
      globalThis.WebSocket.prototype = Native.prototype;
      globalThis.__cutNetwork = () => { globalThis.__cut.on = true; open.splice(0).forEach((ws) => ws.close()); };
      globalThis.__restoreNetwork = () => { globalThis.__cut.on = false; };
    });
    const page = await context.newPage();
    const ccp = new CcpPage(page, backend.url);
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
    const id = await ccp.answerSimCall({ play: 'echo' });
    await page.waitForFunction(() => (globalThis.__switchboardTapOutput || []).length >= 48000 * 3, null, { timeout: 20000, polling: 250 });

    await page.evaluate(() => globalThis.__cutNetwork());
    await page.locator('[data-testid="link-state"].down').waitFor();
    await page.waitForTimeout(5000);
    await page.evaluate(() => globalThis.__restoreNetwork());
    await page.locator('[data-testid="link-state"].open').waitFor({ timeout: 20000 });
    const cutEnd = await page.evaluate(() => globalThis.__switchboardTapOutput.length);
    await ccp.expectContactState('connected');
    assert.equal(await page.getByTestId('contact').count(), 1, 'the call is neither lost nor duplicated');
    // Four more seconds: the echo line sends the agent's own voice back,
    // so audio at the agent after the cut proves both directions resumed.
    await page.waitForFunction((n) => globalThis.__switchboardTapOutput.length >= n, cutEnd + 48000 * 4, { timeout: 20000, polling: 250 });
    const after = await page.evaluate((n) => globalThis.__switchboardTapOutput.slice(n + 48000, n + 48000 * 4), cutEnd);
    const level = 10 * Math.log10(after.reduce((s, v) => s + v * v, 0) / after.length + 1e-12);
    console.log(`after the 5 s cut: agent hears ${level.toFixed(1)} dB through the echo line`);
    assert.ok(level > -45, `audio resumed after the cut (${level.toFixed(1)} dB)`);
    await ccp.endAndClear();
    const record = await api(backend.url, 'GET', `/v1/sim/calls/${id}`);
    assert.equal(record.json.state, 'ended');
  } finally {
    await browser.close();
  }
});

test('after a page refresh mid-call the call re-attaches and its audio flows both ways', async () => {
  const { browser, page } = await tappedPage(agentWav);
  try {
    const ccp = new CcpPage(page, backend.url);
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
    const id = await ccp.answerSimCall({ play: 'echo' });
    await page.waitForFunction(() => (globalThis.__switchboardTapOutput || []).length >= 48000 * 2, null, { timeout: 20000, polling: 250 });

    await page.reload();
    await ccp.expectContactState('connected');
    assert.equal(await page.getByTestId('contact').count(), 1, 'the same call, once');
    // The reloaded page starts a new engine; the echo line returns the
    // agent's voice, so sound at the agent proves both directions.
    await page.waitForFunction(() => (globalThis.__switchboardTapOutput || []).length >= 48000 * 4, null, { timeout: 20000, polling: 250 });
    const after = await page.evaluate(() => globalThis.__switchboardTapOutput.slice(48000, 48000 * 4));
    const level = 10 * Math.log10(after.reduce((s, v) => s + v * v, 0) / after.length + 1e-12);
    const stats = await page.evaluate(() => globalThis.__switchboardStats);
    console.log(`after the refresh: agent hears ${level.toFixed(1)} dB through the echo line; engine ${JSON.stringify(stats)}`);
    assert.ok(level > -45, `audio flows after the refresh (${level.toFixed(1)} dB)`);
    assert.equal((await api(backend.url, 'GET', `/v1/sim/calls/${id}`)).json.state, 'connected');
    await ccp.endAndClear();
  } finally {
    await browser.close();
  }
});
