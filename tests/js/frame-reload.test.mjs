// The page SDK over a frame that loads again (issue 15 item 1): a browser
// reloads an iframe the page moves in the DOM, and the new CCP document
// knows nothing of the old frame session. Written from the frame protocol
// (docs/embedding.md, "The frame protocol" and "The frame reloading"):
// every load gets its own hello with a fresh nonce; the old document's
// messages are dropped; actions in flight fail with frame_lost; actions
// made while the new document starts are sent once it is usable; the
// session keeps its last state meanwhile, then emits frameReloaded, and
// subscriptions carry on. A stand-in iframe and window, no browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Session } from '../../streams-sdk/js/switchboard.js';

const GOLDEN = new URL('../golden/frame/from_ccp/', import.meta.url);
const golden = (name) => JSON.parse(readFileSync(new URL(`${name}.json`, GOLDEN), 'utf8'));
const ORIGIN = 'http://ccp.test';

/** A window with one message listener slot, and an iframe whose document the test reloads. */
function frame() {
  const messageListeners = new Set();
  globalThis.window = globalThis;
  globalThis.addEventListener = (type, f) => { if (type === 'message') messageListeners.add(f); };
  globalThis.removeEventListener = (type, f) => { if (type === 'message') messageListeners.delete(f); };
  const posted = [];
  const loadListeners = new Set();
  const iframe = {
    contentWindow: { postMessage: (text, origin) => posted.push({ ...JSON.parse(text), origin }) },
    addEventListener: (type, f) => { if (type === 'load') loadListeners.add(f); },
    removeEventListener: (type, f) => { if (type === 'load') loadListeners.delete(f); },
    remove() {},
  };
  const load = () => { for (const f of [...loadListeners]) f(); };
  /** The current document sends `msg` (its own `nonce` unless given). */
  const send = (msg) => {
    for (const f of [...messageListeners]) f({ source: iframe.contentWindow, origin: ORIGIN, data: JSON.stringify(msg) });
  };
  return { iframe, posted, load, send, loadListeners };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

test('a reloaded frame gets a new handshake and frame session; actions and events carry on', async (t) => {
  t.mock.method(console, 'warn', () => {});
  const f = frame();
  const s = new Session({ iframe: f.iframe, ccpUrl: `${ORIGIN}/ccp/`, requestTimeoutMs: 8000 });
  t.after(() => s.terminate());
  const ready = s._handshake(2000);
  f.load();
  const first = f.posted.at(-1);
  assert.equal(first.kind, 'hello');
  assert.equal(first.origin, ORIGIN);
  f.send({ ...golden('hello'), nonce: first.nonce });
  f.send({ ...golden('state'), nonce: first.nonce });
  await ready;
  const seen = [];
  s.on('agentRefresh', () => seen.push('agentRefresh'));
  s.on('frameReloaded', (e) => seen.push(`frameReloaded ${e.loads}`));
  s.on('loginRequired', () => seen.push('loginRequired'));

  // In flight when the frame reloads: fails at once, not at its timeout.
  const inFlight = s.agent.setState('Lunch');
  assert.equal(f.posted.at(-1).kind, 'request');
  f.load();
  await assert.rejects(inFlight, (e) => e.code === 'frame_lost');
  const hello = f.posted.at(-1);
  assert.equal(hello.kind, 'hello');
  assert.notEqual(hello.nonce, first.nonce, 'a fresh nonce for the new document');

  // Asked while the new document starts: held until it is usable.
  const held = s.agent.setState('Available');
  const before = f.posted.length;
  f.send({ ...golden('response-ok'), nonce: first.nonce, id: 1 }); // the old document: dropped
  const dropped = s.dropped;
  assert.ok(dropped >= 1);
  f.send({ ...golden('hello'), nonce: hello.nonce });
  // A starting CCP (link connecting, no agent yet) does not blank the page's state.
  f.send({ ...golden('state'), nonce: hello.nonce, link: 'connecting', agent: null, contacts: [], changes: [] });
  assert.equal(s.agent.state.name, 'Available');
  assert.equal(s.loggedIn, true);
  assert.equal(f.posted.length, before, 'nothing sent before the new document is usable');
  assert.deepEqual(seen, []);

  const lunch = golden('state');
  lunch.agent.status = { since: 2000, state: { kind: 'not_routable', name: 'Lunch' } };
  f.send({ ...lunch, nonce: hello.nonce });
  assert.deepEqual(seen, ['agentRefresh', 'frameReloaded 2']);
  assert.equal(s.agent.state.name, 'Lunch');
  const sent = f.posted.at(-1);
  assert.equal(sent.kind, 'request');
  assert.equal(sent.nonce, hello.nonce);
  assert.deepEqual(sent.action, { action: 'op', op: { op: 'set_agent_state', state: 'Available' } });
  f.send({ ...golden('response-ok'), nonce: hello.nonce, id: sent.id });
  assert.equal(await held, undefined);

  // Later actions go straight to the new document.
  const mute = s.agent.mute();
  assert.equal(f.posted.at(-1).nonce, hello.nonce);
  f.send({ ...golden('response-ok'), nonce: hello.nonce, id: f.posted.at(-1).id });
  await mute;
  s.terminate();
  assert.equal(f.loadListeners.size, 0, 'terminate unhooks the load listener');
  await tick();
});

test('a reload before the first handshake finished still completes init', async (t) => {
  t.mock.method(console, 'warn', () => {});
  const f = frame();
  const s = new Session({ iframe: f.iframe, ccpUrl: `${ORIGIN}/ccp/`, requestTimeoutMs: 8000 });
  t.after(() => s.terminate());
  const ready = s._handshake(2000);
  f.load();
  f.load();
  const hello = f.posted.at(-1);
  f.send({ ...golden('hello'), nonce: hello.nonce });
  f.send({ ...golden('state'), nonce: hello.nonce });
  await ready;
  assert.equal(s.agent.name, 'Alice Tanaka');
  s.terminate();
});
