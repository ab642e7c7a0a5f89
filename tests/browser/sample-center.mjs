// The sample order flow's contact center for the tests that run it end to
// end (flow-page.test.mjs, sample-flow.test.mjs): the real order service
// (target/debug/switchboard-order-service, its own SQLite file) and the
// real backend (target/debug/switchboard-server) configured with the
// shared test center (tests/config/agents.toml) plus the sample flows of
// server/config/flows, their entry points, the four order functions, the
// Order desk queue and a supervisor, `sam` (password alice-pass).
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, SIM_KEY, api, freePort } from './harness.mjs';

export const SAMPLE_FLOWS = ['order-support', 'order-support-ja', 'order-queue', 'order-whisper'];
export const JUSTIN = '+15555550100';
export const ENGLISH_LINE = '+18005550100';
export const JAPANESE_LINE = '+18005550101';

/** Starts `bin`; `ready` resolves with the first capture of `re` in its stdout. */
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
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited with ${code}:\n${log}`)); });
  });
  ready.catch(() => {});
  return { proc, ready, log: () => log };
}

/**
 * Starts the order service and the backend; resolves with { url, crmUrl
 * (the demo origin with the customer phone page, with `crm`), ordersUrl,
 * stopOrders, stop, log }. `stopOrders` ends the order service
 * early (the "function down" case).
 */
export async function startSampleCenter({ crm = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-sample-flow-'));
  const port = await freePort();
  // The demo origin (the customer phone page), when asked for.
  const crmUrl = crm ? `http://127.0.0.1:${await freePort()}` : null;
  const orders = startProcess(
    join(ROOT, 'target/debug/switchboard-order-service'),
    ['--listen', `127.0.0.1:${port}`, '--db', join(dir, 'orders.sqlite'), '--exit-on-stdin-eof'],
    /order service on (http:\/\/127\.0\.0\.1:\d+)/,
    'the order service',
  );
  const ordersUrl = await orders.ready;

  // Flow files are read from the repository; their WAV prompts are
  // relative to the configuration's directory, so the prompts go beside it.
  mkdirSync(join(dir, 'prompts'));
  copyFileSync(join(ROOT, 'server/config/prompts/queue-music.wav'), join(dir, 'prompts/queue-music.wav'));
  const agents = readFileSync(join(ROOT, 'tests/config/agents.toml'), 'utf8');
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

${SAMPLE_FLOWS.map((f) => `[[flows]]\nfile = "${join(ROOT, 'server/config/flows', `${f}.toml`)}"\n`).join('\n')}
[[entry_points]]
number = "${ENGLISH_LINE}"
flow = "order-support"

[[entry_points]]
number = "${JAPANESE_LINE}"
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
approved_origins = ["http://localhost:9"${crmUrl ? `, "${crmUrl}"` : ''}]
${crmUrl ? `crm_demo_listen = "${crmUrl.replace('http://', '')}"` : ''}
simulator = true
simulator_key = "${SIM_KEY}"
simulator_calls_per_minute = 100000
`;
  const configPath = join(dir, 'config.toml');
  writeFileSync(configPath, config);
  const backend = startProcess(
    join(ROOT, 'target/debug/switchboard-server'),
    ['--config', configPath],
    /backend on (http:\/\/127\.0\.0\.1:\d+)/,
    'the backend',
  );
  let url;
  try {
    url = await backend.ready;
  } catch (e) {
    orders.proc.stdin.end();
    orders.proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const stopOrders = () => {
    orders.proc.stdin.end();
    orders.proc.kill('SIGTERM');
  };
  return {
    url,
    crmUrl,
    ordersUrl,
    stopOrders,
    log: () => backend.log(),
    stop: () => {
      backend.proc.kill('SIGKILL');
      stopOrders();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** GETs JSON (status 200 asserted by the caller through `status`). */
export async function getJson(url, token) {
  const res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: res.status, json: res.headers.get('content-type')?.includes('json') ? await res.json() : null };
}

/** Polls `check` (bounded) until it returns a truthy value, which it returns. */
export async function until(what, check, tries = 60, everyMs = 500) {
  for (let i = 0; i < tries; i++) {
    const v = await check();
    if (v) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A login token. */
export async function loginToken(base, username, password) {
  const res = await api(base, 'POST', '/v1/login', { username, password });
  if (res.status !== 200) throw new Error(`login ${username}: ${res.status} ${res.text}`);
  return res.json.token;
}

/** The contact's record once its flow log has an entry matching `done`. */
export async function flowLog(base, token, id, done) {
  return until(`contact ${id}'s flow log`, async () => {
    const { status, json } = await getJson(`${base}/v1/contacts/${encodeURIComponent(id)}`, token);
    return status === 200 && Array.isArray(json?.flow_log) && json.flow_log.some(done) ? json : null;
  }, 40);
}
