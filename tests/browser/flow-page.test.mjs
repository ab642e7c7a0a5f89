// The flow page against the real backend and the real sample order
// service: the sample flows (server/config/flows) are configured, a
// simulated caller dials the Japanese line and presses 2 (cancel the
// order), the order service's database shows the order cancelled and the
// confirmation recorded, and a supervisor's flow page lists the flows and
// marks the path that contact took, in the order of its flow log.
//
// Needs the flow engine (issue 14, the `flows` branch: `[[flows]]` in the
// configuration, `GET /v1/flows`, `flow_log`, `supervisor = true`) and the
// order service's binary (`cargo build -p switchboard-server -p
// switchboard-order-service`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, screenshot, api } from './harness.mjs';
import { auditContrast } from './contrast.mjs';
import { startSampleCenter, SAMPLE_FLOWS, JUSTIN, JAPANESE_LINE, getJson, until, loginToken, flowLog } from './sample-center.mjs';

let center, browser;

before(async () => {
  center = await startSampleCenter();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  center?.stop();
});

const order = async () => (await getJson(`${center.ordersUrl}/v1/orders/100`)).json;

test('a caller cancels by keypad; the flow page shows the flows and that path', async () => {
  assert.equal((await order()).cancelled, false);
  const placed = await api(center.url, 'POST', '/v1/sim/calls', { from: JUSTIN, to: JAPANESE_LINE, play: '' });
  assert.equal(placed.status, 201, placed.text);
  const id = placed.json.contact_id;
  // The menu listens while its prompt plays; 2 until the order is cancelled
  // (keys outside an input block are ignored, so repeats are harmless).
  await until('the order to be cancelled', async () => {
    await api(center.url, 'POST', `/v1/sim/calls/${id}/digits`, { digits: '2' });
    return (await order()).cancelled;
  }, 40, 750);
  await until('the confirmation to be recorded', async () =>
    (await getJson(`${center.ordersUrl}/v1/messages`)).json.messages.find((m) => m.template === 'cancelled'));
  await until('the flow to hang up', async () =>
    (await api(center.url, 'GET', `/v1/sim/calls/${id}`)).json?.state === 'ended', 120);

  // The record's flow log, as the supervisor reads it.
  const token = await loginToken(center.url, 'sam', 'alice-pass');
  const record = await flowLog(center.url, token, id, (e) => e.type === 'disconnect');
  const blocks = record.flow_log.map((e) => e.block);
  for (const b of ['japanese', 'lookup', 'has_order', 'menu', 'cancel', 'cancel_confirm', 'cancel_message', 'hang_up']) {
    assert.ok(blocks.includes(b), `${b} in ${blocks.join(' → ')}`);
  }
  assert.equal(record.flow_log.find((e) => e.block === 'menu').branch, '2');

  // The page: log in as the supervisor, see every flow, then the path.
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) errors.push(m.text()); });
  await page.goto(`${center.url}/flows/?contact=${encodeURIComponent(id)}`);
  await page.getByTestId('login-username').fill('sam');
  await page.getByTestId('login-password').fill('alice-pass');
  await page.getByTestId('login-submit').click();
  await page.getByTestId(`step-${record.flow_log.length}`).waitFor();
  const options = await page.getByTestId('flow-select').locator('option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual([...options].sort(), [...SAMPLE_FLOWS].sort());
  assert.equal(await page.locator('#graph').getAttribute('data-flow'), 'order-support-ja');
  for (const b of ['menu', 'cancel', 'hang_up']) {
    assert.equal(await page.locator(`[data-testid="node-${b}"]`).getAttribute('data-state'), 'taken', b);
  }
  assert.equal(await page.locator('[data-testid="node-date_attempts"]').getAttribute('data-state'), 'idle');
  assert.equal(await page.locator('[data-testid="edge-menu-2"]').getAttribute('data-taken'), 'true');
  assert.equal(await page.locator('[data-testid="edge-menu-1"]').getAttribute('data-taken'), 'false');
  const menuStep = record.flow_log.findIndex((e) => e.block === 'menu') + 1;
  assert.match(await page.locator('[data-testid="edge-menu-2"] text').textContent(), new RegExp(`^#${menuStep}\\b`));
  const { failures } = await page.evaluate(auditContrast);
  assert.deepEqual(failures, [], JSON.stringify(failures, null, 1));
  await screenshot(page, 'flow-page-real');
  assert.deepEqual(errors, []);
  await context.close();
});

test('an agent who is not a supervisor is told so, not shown an empty page', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${center.url}/flows/`);
  await page.getByTestId('login-username').fill('bob');
  await page.getByTestId('login-password').fill('bob-pass');
  await page.getByTestId('login-submit').click();
  await page.getByTestId('login-error').filter({ hasText: /supervisor/i }).waitFor();
  await context.close();
});
