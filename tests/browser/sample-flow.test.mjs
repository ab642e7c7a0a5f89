// The sample order flow end to end (issue 14, docs/sample-order-flow.md),
// with simulated callers pressing keys against the real backend and the
// real order service: change the date by keypad (the order service's
// database updated, the confirmation recorded), a bad date asked again, a
// wrong key and no input taken to an agent's queue with the reason, and
// the order service down still ending in the queue. No browser: the
// checks read the order service and the contacts' flow logs.
//
// Needs the flow engine (issue 14, the `flows` branch) and the order
// service's binary, like flow-page.test.mjs. Key timing: a key pressed
// while an input block's prompt plays is taken at once, and keys pressed
// before an input block starts are kept for it ("typed ahead", one key
// per menu), so each script only has to press after the previous input
// block has its keys.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { api } from './harness.mjs';
import {
  startSampleCenter, JUSTIN, ENGLISH_LINE, JAPANESE_LINE, getJson, until, loginToken, flowLog,
} from './sample-center.mjs';

let center, token;

before(async () => {
  center = await startSampleCenter();
  token = await loginToken(center.url, 'sam', 'alice-pass');
});

after(() => center?.stop());

const order = async () => (await getJson(`${center.ordersUrl}/v1/orders/100`)).json;
const messages = async () => (await getJson(`${center.ordersUrl}/v1/messages`)).json.messages;

async function call(to, digits) {
  const placed = await api(center.url, 'POST', '/v1/sim/calls', { from: JUSTIN, to, play: '', digits });
  assert.equal(placed.status, 201, placed.text);
  return placed.json.contact_id;
}

const ended = (id) => until(`call ${id} to end`, async () =>
  (await api(center.url, 'GET', `/v1/sim/calls/${id}`)).json?.state === 'ended', 120);

/** Blocks of the log in order, for messages. */
const path = (record) => record.flow_log.map((e) => `${e.block}${e.branch ? `(${e.branch})` : ''}`).join(' → ');

test('Japanese line: 1, then a new date by keypad; the order and the confirmation change', async () => {
  const before = await messages();
  const id = await call(JAPANESE_LINE, [
    { after_ms: 500, keys: '1' },
    { after_ms: 3000, keys: '20181120#' },
  ]);
  await until('the new shipping date', async () => (await order()).shipping_date === '2018-11-20', 60);
  await ended(id);
  const record = await flowLog(center.url, token, id, (e) => e.type === 'disconnect');
  const checked = record.flow_log.find((e) => e.block === 'date_checked');
  assert.equal(checked?.branch, 'equals ok', path(record));
  const sent = (await messages()).slice(before.length);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].template, 'date_changed');
  assert.equal(sent[0].language, 'ja-JP');
  assert.match(sent[0].body, /2018-11-20/);
  assert.equal((await order()).cancelled, false);
});

test('English line: a date that does not exist is asked again, then the good one is kept', async () => {
  const id = await call(ENGLISH_LINE, [
    { after_ms: 500, keys: '1' }, // the language choice: English
    { after_ms: 9000, keys: '1' }, // the menu: change the date
    { after_ms: 3000, keys: '20181131#' }, // November has 30 days
    { after_ms: 3000, keys: '20181125#' },
  ]);
  await until('the second date', async () => (await order()).shipping_date === '2018-11-25', 80);
  await ended(id);
  const record = await flowLog(center.url, token, id, (e) => e.type === 'disconnect');
  const passes = record.flow_log.filter((e) => e.block === 'date_attempts').map((e) => e.branch);
  assert.deepEqual(passes, ['looping', 'looping'], path(record));
  const checks = record.flow_log.filter((e) => e.block === 'date_checked').map((e) => e.branch);
  assert.deepEqual(checks, ['equals bad_date', 'equals ok'], path(record));
});

/** Calls, waits until the flow queued the call, hangs up, returns the log. */
async function queuedCall(to, digits) {
  const id = await call(to, digits);
  // Nobody serves the Order desk in this center: the call waits there.
  await until(`call ${id} to be queued`, async () =>
    (await api(center.url, 'GET', `/v1/sim/calls/${id}`)).json?.state === 'queued', 120);
  // The queue flow runs while the caller waits: where they stand first.
  const record = await flowLog(center.url, token, id, (e) => e.flow === 'order-queue' && e.block === 'position_ja');
  assert.equal((await api(center.url, 'DELETE', `/v1/sim/calls/${id}`)).status, 204);
  assert.ok(record.flow_log.some((e) => e.block === 'to_agent'), path(record));
  // Alone in the queue: "you are next" (contacts_in_queue counts the caller).
  const position = record.flow_log.find((e) => e.flow === 'order-queue' && e.block === 'position_ja');
  assert.equal(position.branch, 'le 1', path(record));
  return record;
}

test('a wrong key at the menu goes to the Order desk queue, with the reason', async () => {
  const record = await queuedCall(JAPANESE_LINE, [{ after_ms: 500, keys: '7' }]);
  assert.equal(record.flow_log.find((e) => e.block === 'menu')?.branch, 'default', path(record));
  // wrong_key sets transfer_reason = wrong_key before the transfer.
  assert.ok(record.flow_log.some((e) => e.block === 'wrong_key'), path(record));
  const inbound = record.flow_log.filter((e) => e.flow === 'order-support-ja');
  assert.equal(inbound.at(-1).block, 'to_agent', path(record));
});

test('no input at the menu goes to the queue too', async () => {
  const record = await queuedCall(JAPANESE_LINE, []);
  assert.equal(record.flow_log.find((e) => e.block === 'menu')?.branch, 'timeout', path(record));
  assert.ok(record.flow_log.some((e) => e.block === 'no_input'), path(record));
});

test('with the order service down, the lookup fails and the caller still reaches the queue', async () => {
  center.stopOrders();
  await until('the order service to stop', async () => {
    try { await fetch(`${center.ordersUrl}/v1/orders/100`); return false; } catch { return true; }
  });
  const record = await queuedCall(JAPANESE_LINE, []);
  const lookup = record.flow_log.find((e) => e.block === 'lookup');
  assert.equal(lookup?.branch, 'error', path(record));
  assert.ok(lookup.error, 'the reason is logged');
  assert.ok(record.flow_log.some((e) => e.block === 'lookup_failed'), path(record));
  assert.ok(!record.flow_log.some((e) => e.block === 'menu'), 'no menu without an order');
});
