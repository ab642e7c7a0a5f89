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
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, SIM_KEY, api, freePort, launchBrowser, screenshot } from './harness.mjs';
import { auditContrast } from './contrast.mjs';

const FLOWS = ['order-support', 'order-support-ja', 'order-queue', 'order-whisper'];
const JUSTIN = '+15555550100';

let dir, orders, backend, browser, ordersUrl;

/** Starts `bin` and resolves with its first stdout line matching `re`. */
function startProcess(bin, args, re, what) {
  const proc = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start:\n${log}`)), 20000);
    proc.stdout.on('data', (d) => {
      log += d;
      const m = re.exec(log);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => reject(new Error(`${what} exited with ${code}:\n${log}`)));
  });
  return { proc, ready, log: () => log };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'switchboard-flow-page-'));
  // The order service, on a port of its own.
  const port = await freePort();
  orders = startProcess(
    join(ROOT, 'target/debug/switchboard-order-service'),
    ['--listen', `127.0.0.1:${port}`, '--db', join(dir, 'orders.sqlite'), '--exit-on-stdin-eof'],
    /order service on (http:\/\/127\.0\.0\.1:\d+)/,
    'the order service',
  );
  ordersUrl = await orders.ready;

  // Flow files are read from the repository; their WAV prompts are
  // relative to the configuration's directory, so the prompts go beside it.
  mkdirSync(join(dir, 'prompts'));
  copyFileSync(join(ROOT, 'server/config/prompts/queue-music.wav'), join(dir, 'prompts/queue-music.wav'));
  const agents = readFileSync(join(ROOT, 'tests/config/agents.toml'), 'utf8');
  // sam: a supervisor with alice's password hash (alice-pass).
  const aliceHash = /username = "alice"\npassword = "([^"]+)"/.exec(agents)[1];
  const fn = (name, path) => `[[functions]]\nname = "${name}"\nurl = "${ordersUrl}${path}"\ntimeout_ms = 3000\n`;
  const config = `${agents}
[[queues]]
id = "orders"
name = "Order desk"
max_contacts = 20

[[agents]]
username = "sam"
password = "${aliceHash}"
name = "Sam Supervisor"
routing_profile = "p"
supervisor = true

${FLOWS.map((f) => `[[flows]]\nfile = "${join(ROOT, 'server/config/flows', `${f}.toml`)}"\n`).join('\n')}
[[entry_points]]
number = "+18005550100"
flow = "order-support"

[[entry_points]]
number = "+18005550101"
flow = "order-support-ja"

${fn('order_lookup', '/v1/orders/lookup')}
${fn('order_change_date', '/v1/orders/change-date')}
${fn('order_cancel', '/v1/orders/cancel')}
${fn('order_send_message', '/v1/messages/send')}
[server]
listen = "127.0.0.1:0"
data_dir = "${dir}"
public_dir = "${join(ROOT, 'public')}"
ccp_dir = "${join(ROOT, 'dist')}"
approved_origins = ["http://localhost:9"]
simulator = true
simulator_key = "${SIM_KEY}"
simulator_calls_per_minute = 100000
`;
  const configPath = join(dir, 'config.toml');
  writeFileSync(configPath, config);
  backend = startProcess(
    join(ROOT, 'target/debug/switchboard-server'),
    ['--config', configPath],
    /backend on (http:\/\/127\.0\.0\.1:\d+)/,
    'the backend',
  );
  backend.url = await backend.ready;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  backend?.proc.kill('SIGKILL');
  orders?.proc.stdin.end();
  orders?.proc.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const getJson = async (url) => {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return res.json();
};

/** Polls `check` (bounded) until it returns a truthy value. */
async function until(what, check, tries = 60, everyMs = 500) {
  for (let i = 0; i < tries; i++) {
    const v = await check();
    if (v) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function loginToken(username, password) {
  const res = await api(backend.url, 'POST', '/v1/login', { username, password });
  assert.equal(res.status, 200, res.text);
  return res.json.token;
}

test('a caller cancels by keypad; the flow page shows the flows and that path', async () => {
  assert.equal((await getJson(`${ordersUrl}/v1/orders/100`)).cancelled, false);
  const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: JUSTIN, to: '+18005550101', play: '' });
  assert.equal(placed.status, 201, placed.text);
  const id = placed.json.contact_id;
  // The menu listens while its prompt plays; 2 until the order is cancelled
  // (keys outside an input block are ignored, so repeats are harmless).
  await until('the order to be cancelled', async () => {
    await api(backend.url, 'POST', `/v1/sim/calls/${id}/digits`, { digits: '2' });
    return (await getJson(`${ordersUrl}/v1/orders/100`)).cancelled;
  }, 40, 750);
  await until('the confirmation to be recorded', async () =>
    (await getJson(`${ordersUrl}/v1/messages`)).messages.find((m) => m.template === 'cancelled'));
  await until('the flow to hang up', async () =>
    (await api(backend.url, 'GET', `/v1/sim/calls/${id}`)).json?.state === 'ended', 120);

  // The record's flow log, as the supervisor reads it.
  const token = await loginToken('sam', 'alice-pass');
  const record = await until('the flow log', async () => {
    const res = await fetch(`${backend.url}/v1/contacts/${id}`, { headers: { authorization: `Bearer ${token}` } });
    const body = res.ok ? await res.json() : null;
    return body?.flow_log?.some((e) => e.type === 'disconnect') ? body : null;
  }, 20);
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
  await page.goto(`${backend.url}/flows/?contact=${encodeURIComponent(id)}`);
  await page.getByTestId('login-username').fill('sam');
  await page.getByTestId('login-password').fill('alice-pass');
  await page.getByTestId('login-submit').click();
  await page.getByTestId(`step-${record.flow_log.length}`).waitFor();
  const options = await page.getByTestId('flow-select').locator('option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual([...options].sort(), [...FLOWS].sort());
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
  await page.goto(`${backend.url}/flows/`);
  await page.getByTestId('login-username').fill('bob');
  await page.getByTestId('login-password').fill('bob-pass');
  await page.getByTestId('login-submit').click();
  await page.getByTestId('login-error').filter({ hasText: /supervisor/i }).waitFor();
  await context.close();
});
