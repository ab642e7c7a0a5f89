// The CCP prepares the audio engine while a call rings (issue 16: "start
// and compile the engine while the call rings, not after it connects"):
// the microphone is opened during the ring, accepting reuses it (no second
// getUserMedia), and a call that is not taken releases it. Every
// getUserMedia stream the page opens is recorded by an init script.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, launchBrowser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

let backend;
let browser;

before(async () => {
  backend = await startBackend();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  backend?.stop();
});

const RECORD_STREAMS = () => {
  globalThis.__streams = [];
  const native = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => {
    const s = await native(c);
    globalThis.__streams.push(s);
    return s;
  };
};
const live = () => globalThis.__streams.flatMap((s) => s.getTracks()).filter((t) => t.readyState === 'live').length;
const released = () => globalThis.__streams.length > 0
  && globalThis.__streams.flatMap((s) => s.getTracks()).every((t) => t.readyState === 'ended');

async function agent() {
  const context = await browser.newContext();
  await context.addInitScript(RECORD_STREAMS);
  const page = await context.newPage();
  const ccp = new CcpPage(page, backend.url);
  await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
  return { context, page, ccp };
}

test('the engine is prepared while the call rings; accepting reuses it', async () => {
  const { context, page, ccp } = await agent();
  try {
    assert.equal(await page.evaluate(() => globalThis.__streams.length), 0, 'no microphone before a call');
    await ccp.ringSimCall();
    // The microphone opens during the ring, before any click.
    await page.waitForFunction(live, null, { timeout: 10000 });
    await ccp.click('accept');
    await ccp.expectContactState('connected');
    await page.waitForFunction(() => globalThis.__switchboardEngineStartedAt > 0, null, { timeout: 20000 });
    assert.equal(await page.evaluate(() => globalThis.__streams.length), 1, 'the prepared microphone is the call\'s');
    await ccp.endAndClear();
    await page.waitForFunction(released, null, { timeout: 10000 });
  } finally {
    await context.close();
  }
});

test('a rejected call releases the microphone prepared for it', async () => {
  const { context, page, ccp } = await agent();
  try {
    await ccp.ringSimCall();
    await page.waitForFunction(live, null, { timeout: 10000 });
    await ccp.click('reject');
    await page.waitForFunction(released, null, { timeout: 10000 });
    assert.equal(await page.evaluate(() => globalThis.__switchboardEngineStartedAt), undefined, 'no engine started');
  } finally {
    await context.close();
  }
});

// The media socket opens while the call rings too (docs/protocol.md
// section 8: the op needs no call), so none of the call's frames, the
// first ones included, crosses the page's main thread: the media socket
// is welcomed while the call still rings, and the page's own sockets
// then receive no media frame at all.
const RECORD_SOCKETS = () => {
  globalThis.__workers = [];
  globalThis.__pageFrames = 0;
  const NativeWorker = Worker;
  globalThis.__mediaWelcomed = 0;
  globalThis.Worker = function Recorded(url, options) {
    globalThis.__workers.push(String(url));
    const worker = new NativeWorker(url, options);
    // The media worker says 'open' once the backend welcomed its socket.
    worker.addEventListener('message', (e) => { if (e.data && e.data.type === 'open') globalThis.__mediaWelcomed += 1; });
    return worker;
  };
  globalThis.Worker.prototype = NativeWorker.prototype;
  const Native = WebSocket;
  globalThis.WebSocket = function Counted(url, protocols) {
    const ws = new Native(url, protocols);
    ws.addEventListener('message', (e) => { if (typeof e.data !== 'string') globalThis.__pageFrames += 1; });
    return ws;
  };
  Object.assign(globalThis.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  globalThis.WebSocket.prototype = Native.prototype;
};

test('the media socket opens while the call rings, and no frame of the call reaches the page', async () => {
  const context = await browser.newContext();
  await context.addInitScript(RECORD_STREAMS);
  await context.addInitScript(RECORD_SOCKETS);
  const page = await context.newPage();
  const ccp = new CcpPage(page, backend.url);
  try {
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
    await ccp.ringSimCall();
    await page.waitForFunction(() => globalThis.__workers.some((u) => u.includes('media-worker.js')), null, { timeout: 10000 });
    // Welcomed before the agent answers: an agent who answers in the
    // first tens of ms (before the socket is up) has the call's first
    // frames on the control socket instead, as the fallback path.
    await page.waitForFunction(() => globalThis.__mediaWelcomed > 0, null, { timeout: 10000 });
    await ccp.expectContactState('incoming');
    await ccp.click('accept');
    await ccp.expectContactState('connected');
    await page.waitForFunction(() => globalThis.__switchboardMediaPath === 'worker', null, { timeout: 20000 });
    // The caller's prompt plays: frames come, over the media socket only.
    await page.waitForFunction(() => (globalThis.__switchboardStats?.received || 0) > 50, null, { timeout: 20000, polling: 100 });
    assert.equal(await page.evaluate(() => globalThis.__pageFrames), 0, 'no media frame on the page\'s sockets');
    assert.equal(await page.evaluate(() => globalThis.__workers.filter((u) => u.includes('media-worker.js')).length), 1,
      'one media socket, the one opened while ringing');
    await ccp.endAndClear();
    await page.waitForFunction(released, null, { timeout: 10000 });
  } finally {
    await context.close();
  }
});
