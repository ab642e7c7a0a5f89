// The CCP's engine sends the packet duration the backend granted
// (docs/protocol.md section 3, "Packet duration"): the CCP offers
// `"packet_ms": [10, 20]` in its `hello`, the reference backend grants its
// first choice, and the engine must then send 10 ms packets; a `welcome`
// that grants nothing means 20 ms. What the page sends is read off the
// wire: an init script records every binary frame handed to a WebSocket,
// and each frame's Opus TOC byte (RFC 6716 section 3.1: config = TOC >> 3,
// SILK configs 0-11 last 10/20/40/60 ms by config % 4) and the header's
// timestamp step (48 kHz samples) give the packet's duration. The media
// worker is kept off (its socket is out of an init script's reach); the
// engine's packet duration does not depend on the path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser();

// Records the first 200 binary frames sent and the `hello`'s offer;
// `grant: false` removes `packet_ms` from the hello, so the `welcome`
// grants nothing (an older client's hello, answered as before).
const RECORD = (grant) => {
  // Frames on the page's own socket (the media worker's socket would
  // carry them past this script once it opens).
  globalThis.__switchboardMainThreadMedia = true;
  globalThis.__sent = [];
  globalThis.__offers = [];
  const native = WebSocket.prototype.send;
  WebSocket.prototype.send = function send(data) {
    if (typeof data === 'string') {
      if (data.includes('"hello"')) {
        const hello = JSON.parse(data);
        globalThis.__offers.push(hello.packet_ms ?? null);
        if (!grant) {
          delete hello.packet_ms;
          data = JSON.stringify(hello);
        }
      }
    } else if (globalThis.__sent.length < 200) {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data)
        : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (bytes.length > 16) {
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        globalThis.__sent.push({ ts: view.getUint32(12), seq: view.getUint32(8), toc: bytes[16] });
      }
    }
    return native.call(this, data);
  };
};

/** Durations (ms) of the sent frames, from their TOC and timestamp steps. */
function durations(sent) {
  const fromToc = sent.map((f) => {
    const config = f.toc >> 3;
    assert.ok(config < 12, `a SILK packet (TOC config ${config})`);
    return [10, 20, 40, 60][config % 4];
  });
  const steps = [];
  for (let i = 1; i < sent.length; i += 1) {
    if (sent[i].seq === sent[i - 1].seq + 1) steps.push((sent[i].ts - sent[i - 1].ts) / 48);
  }
  return { fromToc, steps };
}

async function callSending(grant) {
  const context = await browser.newContext();
  await context.addInitScript(RECORD, grant);
  const page = await context.newPage();
  const ccp = new CcpPage(page, backend.url);
  try {
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
    await ccp.answerSimCall({ play: 'echo' });
    await page.waitForFunction(() => globalThis.__sent.length >= 60, null, { timeout: 20000, polling: 100 });
    const { sent, offers } = await page.evaluate(() => ({ sent: globalThis.__sent.slice(), offers: globalThis.__offers.slice() }));
    await ccp.endAndClear();
    return { sent, offers };
  } finally {
    await context.close();
  }
}

test('a CCP call sends 10 ms packets when the welcome grants 10', async () => {
  const { sent, offers } = await callSending(true);
  assert.deepEqual(offers[0], [10, 20], 'the CCP offers 10 ms first');
  const { fromToc, steps } = durations(sent);
  assert.deepEqual([...new Set(fromToc)], [10], `every packet is 10 ms (TOC configs ${[...new Set(sent.map((f) => f.toc >> 3))]})`);
  assert.ok(steps.length > 30, `enough consecutive packets (${steps.length})`);
  assert.deepEqual([...new Set(steps)], [10], 'timestamps step by 480 samples');
});

test('a CCP call sends 20 ms packets when the welcome grants none', async () => {
  const { sent } = await callSending(false);
  const { fromToc, steps } = durations(sent);
  assert.deepEqual([...new Set(fromToc)], [20], `every packet is 20 ms (TOC configs ${[...new Set(sent.map((f) => f.toc >> 3))]})`);
  assert.ok(steps.length > 30, `enough consecutive packets (${steps.length})`);
  assert.deepEqual([...new Set(steps)], [20], 'timestamps step by 960 samples');
});
