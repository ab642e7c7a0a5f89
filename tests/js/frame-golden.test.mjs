// The JS SDK against the frame messages' golden files (tests/golden/frame),
// the same files the Rust side is checked against
// (streams-sdk/tests/golden_frame.rs): what the SDK posts equals
// `to_ccp/*.json`, and every `from_ccp/*.json` is accepted and has its
// documented effect. The SDK runs over its direct-transport seam (a core
// object with `post`), which is the same code path as the frame transport
// after the window and origin checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { Session } from '../../streams-sdk/js/switchboard.js';

const GOLDEN = new URL('../golden/frame/', import.meta.url);
const GOLDEN_NONCE = '0123456789abcdef0123456789abcdef';
const golden = (side, name) => JSON.parse(readFileSync(new URL(`${side}/${name}.json`, GOLDEN), 'utf8'));
const names = (side) => readdirSync(new URL(`${side}/`, GOLDEN)).map((f) => f.replace(/\.json$/, '')).sort();

// terminate() unhooks its window listener; Node has no window.
globalThis.window ??= globalThis;
globalThis.window.removeEventListener ??= () => {};

/** A session whose core records what the SDK posts. */
function session() {
  const posted = [];
  const s = new Session({ core: { post: (text) => posted.push(JSON.parse(text)), close() {} }, requestTimeoutMs: 8000 });
  const nonce = () => posted[0]?.nonce;
  /** Delivers a golden CCP message with this session's nonce (and `id` if given). */
  const deliver = (name, fields = {}) => s._deliver(JSON.stringify({ ...golden('from_ccp', name), nonce: nonce(), ...fields }));
  const sent = () => posted.at(-1);
  const expectSent = (name) => assert.deepEqual(sent(), { ...golden('to_ccp', name), nonce: nonce() }, name);
  return { s, posted, deliver, expectSent, nonce };
}

test('the golden files cover every message both sides check', () => {
  assert.deepEqual(names('to_ccp'), ['hello', 'ping', 'request-list-devices', 'request-logout', 'request-op', 'request-set-device']);
  assert.ok(names('from_ccp').length >= 13, names('from_ccp').join(', '));
  for (const name of names('from_ccp')) assert.equal(golden('from_ccp', name).nonce, GOLDEN_NONCE, name);
});

test('the SDK posts exactly the golden page messages and takes every golden CCP message', async (t) => {
  t.mock.method(console, 'warn', () => {}); // the refused messages at the end are logged
  const { s, deliver, expectSent, nonce } = session();
  const ready = s._handshake(2000);
  expectSent('hello');
  assert.match(nonce(), /^[0-9a-f]{32}$/);
  const seen = [];
  for (const name of ['incoming', 'accepted', 'connected', 'contactRefresh', 'tokenWillExpire', 'tokenRefreshed', 'sessionExpired', 'softphoneError']) {
    s.on(name, (p) => seen.push([name, p?.id ?? p?.expiresAt ?? p?.code]));
  }
  deliver('hello');
  deliver('pong');
  deliver('state');
  await ready;
  assert.equal(s.dropped, 0, 'hello, pong and state are accepted');
  assert.equal(s.agent.name, 'Alice Tanaka');
  assert.equal(s.contact('c-1').state, 'connected');
  // The events the core named in the push, as named.
  assert.deepEqual(seen.splice(0), [['accepted', 'c-1'], ['connected', 'c-1']]);

  const op = s.agent.setState('Lunch');
  expectSent('request-op');
  deliver('response-ok');
  assert.equal(await op, undefined);

  const devices = s.agent.devices();
  expectSent('request-list-devices');
  deliver('response-devices');
  assert.deepEqual(await devices, golden('from_ccp', 'response-devices').result);

  const device = s.agent.setDevice('microphone', 'mic-1');
  expectSent('request-set-device');
  deliver('response-error');
  await assert.rejects(device, (e) => e.name === 'SwitchboardError' && e.code === 'not_found' && e.message === 'no such device');

  const logout = s.logout();
  expectSent('request-logout');
  deliver('response-timeout');
  await assert.rejects(logout, (e) => e.code === 'timeout');

  for (const name of ['auth-token-expiring', 'auth-token-refreshed', 'auth-session-expired', 'auth-token-revoked', 'softphone-error']) {
    deliver(name);
  }
  assert.deepEqual(seen, [
    ['tokenWillExpire', 90000], ['tokenRefreshed', 180000],
    ['sessionExpired', 'session_expired'], ['sessionExpired', 'token_revoked'],
    ['softphoneError', 'microphone_denied'],
  ]);
  assert.equal(s.dropped, 0, 'every golden CCP message is accepted');

  // The same messages with another nonce are refused, every kind of them.
  for (const name of names('from_ccp')) s._deliver(JSON.stringify({ ...golden('from_ccp', name), nonce: GOLDEN_NONCE.replace('0', 'f') }));
  assert.equal(s.dropped, names('from_ccp').length);
  s.terminate();
});

test('a golden callback state: the contact is a queue_callback that rings (incoming)', async () => {
  const { s, deliver } = session();
  const ready = s._handshake(2000);
  const seen = [];
  s.on('incoming', (c) => seen.push(c?.id));
  deliver('hello');
  deliver('state-callback');
  await ready;
  assert.equal(s.dropped, 0);
  const c = s.contact('c-1');
  assert.equal(c.initiation, 'callback');
  assert.equal(c.type, 'queue_callback');
  assert.equal(c.state, 'incoming');
  assert.deepEqual(seen, ['c-1']);
  s.terminate();
});

test('a golden hello_refused fails the handshake with version_mismatch', async () => {
  const { s, deliver } = session();
  const ready = s._handshake(2000);
  deliver('hello-refused');
  await assert.rejects(ready, (e) => e.code === 'version_mismatch');
  s.terminate();
});

test('the SDK\'s ping is the golden ping', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'setTimeout'] });
  const { s, posted, deliver, expectSent } = session();
  const ready = s._handshake(2000);
  deliver('hello');
  deliver('state');
  await ready;
  const before = posted.length;
  t.mock.timers.tick(5000);
  assert.equal(posted.length, before + 1);
  expectSent('ping');
  s.terminate();
});

test('the page waits for the CCP\'s verdict: an answer at 7 s (a follower\'s timeout is 6 s) succeeds, silence is `timeout` at the 8 s backstop', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'] });
  const { s, deliver, posted } = session();
  const ready = s._handshake(2000);
  deliver('hello');
  deliver('state');
  await ready;
  const late = s.agent.setState('Lunch');
  const lateId = posted.at(-1).id;
  const silent = s.agent.setState('Lunch');
  let silentOutcome = null;
  silent.then(() => { silentOutcome = 'ok'; }, (e) => { silentOutcome = e.code; });
  t.mock.timers.tick(7000);
  deliver('response-ok', { id: lateId });
  assert.equal(await late, undefined);
  t.mock.timers.tick(900);
  await Promise.resolve();
  assert.equal(silentOutcome, null, 'still waiting for the CCP at 7.9 s');
  t.mock.timers.tick(100);
  await assert.rejects(silent, (e) => e.code === 'timeout');
  s.terminate();
});
