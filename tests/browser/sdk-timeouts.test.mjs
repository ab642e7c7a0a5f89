// Request timeouts of the client core, end to end: the SDK's direct
// transport (the Rust core as wasm, in the page) against a stand-in
// backend that answers one op after 4.9 s and never answers another. The
// core arms one timer at its next deadline (streams-sdk/src/deadlines.rs),
// so the first op succeeds and the second is rejected with `timeout`
// between 5 and 6 s, by the core's own verdict (the page's backstop is
// 8 s) — not on a heartbeat that would make it anywhere from 5 to 10 s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { join, extname } from 'node:path';
import { launchBrowser, ROOT } from './harness.mjs';

const SDK = join(ROOT, 'dist/sdk');
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };

const SNAPSHOT = {
  type: 'snapshot', seq: 0,
  status: { state: { name: 'Available', kind: 'routable' }, since: 1 },
  muted: false,
  configuration: {
    username: 'stand-in', name: 'Stand-in',
    routing_profile: { id: 'p', name: 'P', queues: [] },
    softphone_enabled: false, wrap_up_codes: [],
  },
  states: [{ name: 'Available', kind: 'routable' }],
  contacts: [],
};

/** Text frames only, as the core sends them; enough of RFC 6455 for this test. */
function readFrames(buffer) {
  const out = [];
  let at = 0;
  while (buffer.length - at >= 2) {
    const op = buffer[at] & 0x0f;
    let len = buffer[at + 1] & 0x7f;
    let head = 2;
    if (len === 126) { if (buffer.length - at < 4) break; len = buffer.readUInt16BE(at + 2); head = 4; }
    else if (len === 127) { if (buffer.length - at < 10) break; len = Number(buffer.readBigUInt64BE(at + 2)); head = 10; }
    const masked = (buffer[at + 1] & 0x80) !== 0;
    const total = head + (masked ? 4 : 0) + len;
    if (buffer.length - at < total) break;
    const mask = masked ? buffer.subarray(at + head, at + head + 4) : null;
    const data = Buffer.from(buffer.subarray(at + total - len, at + total));
    if (mask) for (let i = 0; i < data.length; i++) data[i] ^= mask[i % 4];
    out.push({ op, text: data.toString('utf8') });
    at += total;
  }
  return { frames: out, rest: buffer.subarray(at) };
}

function textFrame(text) {
  const data = Buffer.from(text, 'utf8');
  const head = data.length < 126 ? Buffer.from([0x81, data.length])
    : Buffer.from([0x81, 126, data.length >> 8, data.length & 0xff]);
  return Buffer.concat([head, data]);
}

let server;
let origin;
let browser;
const seen = [];

before(async () => {
  assert.ok(existsSync(join(SDK, 'direct/core.js')), 'build the CCP first (cargo xtask build path: build_ccp)');
  server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>timeouts</title><script type="module">window.sdk = await import("/ccp/sdk/switchboard.js"); document.body.dataset.ready = "true";</script>');
      return;
    }
    const file = path.startsWith('/ccp/sdk/') ? join(SDK, path.slice('/ccp/sdk/'.length)) : null;
    if (!file || !file.startsWith(SDK) || !existsSync(file)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  server.on('upgrade', (req, socket) => {
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    let pending = Buffer.alloc(0);
    const send = (msg) => { if (!socket.destroyed) socket.write(textFrame(JSON.stringify(msg))); };
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      const { frames, rest } = readFrames(Buffer.concat([pending, chunk]));
      pending = Buffer.from(rest);
      for (const f of frames) {
        if (f.op === 8) { socket.end(); return; }
        if (f.op !== 1) continue;
        const msg = JSON.parse(f.text);
        seen.push({ at: Date.now(), msg });
        if (msg.type === 'hello') {
          send({ type: 'welcome', version: 1, session: 's-1', agent: 'stand-in', resumed: false, heartbeat_ms: 15000 });
          send(SNAPSHOT);
        } else if (msg.type === 'request' && msg.op === 'set_agent_state' && msg.state === 'Slow') {
          setTimeout(() => send({ type: 'response', id: msg.id, result: { kind: 'ack' } }), 4900);
        } else if (msg.type === 'request' && msg.op === 'set_agent_state' && msg.state === 'Never') {
          // Never answered.
        } else if (msg.type === 'request') {
          send({ type: 'response', id: msg.id, result: msg.op === 'ping' ? { kind: 'pong' } : { kind: 'ack' } });
        }
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.closeAllConnections?.();
  server?.close();
});

test('an op answered at 4.9 s succeeds; one never answered is `timeout` from the core between 5 and 6 s', async () => {
  const page = await browser.newPage();
  await page.goto(origin);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  const outcome = await page.evaluate(async (url) => {
    const s = await window.sdk.initDirect({ backendUrl: url, token: 'stand-in-token' });
    const timed = (p) => {
      const t0 = performance.now();
      return p.then((v) => ({ ok: true, v, ms: performance.now() - t0 }),
        (e) => ({ ok: false, code: e.code, message: e.message, ms: performance.now() - t0 }));
    };
    const [slow, never] = await Promise.all([
      timed(s.agent.setState('Slow')),
      timed(s.agent.setState('Never')),
    ]);
    s.terminate();
    return { slow, never };
  }, origin);
  assert.equal(outcome.slow.ok, true, JSON.stringify(outcome.slow));
  assert.ok(outcome.slow.ms >= 4800, `answered after ${outcome.slow.ms} ms`);
  assert.equal(outcome.never.ok, false);
  assert.equal(outcome.never.code, 'timeout');
  assert.match(outcome.never.message, /timed out waiting for the backend/, 'the core decided, not the page backstop');
  assert.ok(outcome.never.ms >= 4950 && outcome.never.ms < 6000, `timed out after ${outcome.never.ms} ms`);
  assert.ok(seen.some((s) => s.msg.state === 'Never'), 'the op reached the backend');
  await page.close();
});

test('the direct core refuses a ping or request with a wrong or missing nonce, as the frame host does', async () => {
  const page = await browser.newPage();
  await page.goto(origin);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  const out = await page.evaluate(async (url) => {
    const core = await import('/ccp/sdk/direct/core.js');
    await core.default();
    const got = [];
    const direct = new core.DirectCore(`${url.replace(/^http/, 'ws')}/v1/ws`, 'stand-in-token', (t) => got.push(JSON.parse(t)));
    const wait = async (pred) => {
      for (let i = 0; i < 100 && !got.some(pred); i++) await new Promise((r) => setTimeout(r, 20));
      return got.some(pred);
    };
    const nonce = 'a'.repeat(32);
    const forged = 'b'.repeat(32);
    direct.post(JSON.stringify({ kind: 'request', nonce, id: 1, action: { action: 'op', op: { op: 'set_agent_state', state: 'BeforeHello' } } }));
    direct.post(JSON.stringify({ kind: 'hello', version: 1, nonce }));
    const opened = await wait((m) => m.kind === 'state' && m.agent);
    const before = got.length;
    direct.post(JSON.stringify({ kind: 'ping', nonce: forged }));
    direct.post(JSON.stringify({ kind: 'ping' }));
    direct.post(JSON.stringify({ kind: 'request', nonce: forged, id: 2, action: { action: 'op', op: { op: 'set_agent_state', state: 'Forged' } } }));
    direct.post(JSON.stringify({ kind: 'request', id: 3, action: { action: 'logout' } }));
    direct.post(JSON.stringify({ kind: 'ping', nonce }));
    const ponged = await wait((m) => m.kind === 'pong');
    direct.post(JSON.stringify({ kind: 'request', nonce, id: 4, action: { action: 'op', op: { op: 'set_agent_state', state: 'Genuine' } } }));
    const answered = await wait((m) => m.kind === 'response' && m.id === 4);
    direct.close();
    return { opened, ponged, answered, after: got.slice(before).map((m) => [m.kind, m.id ?? null, m.nonce === nonce]) };
  }, origin);
  assert.ok(out.opened && out.ponged && out.answered, JSON.stringify(out));
  // Only the genuine ping and request were answered, with the session's nonce.
  assert.deepEqual(out.after.filter(([k]) => k !== 'state'), [['pong', null, true], ['response', 4, true]]);
  const states = seen.map((s) => s.msg.state).filter(Boolean);
  assert.ok(states.includes('Genuine'));
  for (const refused of ['BeforeHello', 'Forged']) assert.ok(!states.includes(refused), `${refused} reached the backend`);
  await page.close();
});
