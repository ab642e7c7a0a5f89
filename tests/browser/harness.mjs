// Shared harness for the browser tests: starts the real backend binary
// with a generated configuration on 127.0.0.1 (port 0), launches Debian's
// Chromium through playwright-core with the flags these machines need,
// and offers small HTTP helpers for the simulated-caller API (which send
// the configured simulator key).
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve, dirname, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = join(ROOT, 'tests/browser/artifacts');

/** The simulator key of every test backend (a test-only secret). */
export const SIM_KEY = 'browser-test-simulator-key-7c2e';

/** Headers that authorize a simulator request. */
export const simHeaders = () => ({ authorization: `Bearer ${SIM_KEY}` });

// The shared contact center (tests/config/agents.toml) and this harness's
// [server] table.
const CONFIG = (dataDir, extraServer = '', approved = [], ringTimeoutS = 30) => `
${readFileSync(join(ROOT, 'tests/config/agents.toml'), 'utf8')}
[server]
${extraServer}
listen = "127.0.0.1:0"
data_dir = "${dataDir}"
public_dir = "${join(ROOT, 'public')}"
ccp_dir = "${join(ROOT, 'dist')}"
approved_origins = ${JSON.stringify(approved.length ? approved : ['http://localhost:9'])}
ring_timeout_s = ${ringTimeoutS}
simulator = true
simulator_key = "${SIM_KEY}"
simulator_calls_per_minute = 100000
`;

/** A TCP port that was free a moment ago, on 127.0.0.1. */
export async function freePort() {
  const server = createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * Starts the backend; resolves with { url, crmUrl, stop }. `extraServer` is
 * TOML added to the [server] table (e.g. the test-only impairment keys).
 * `crm: true` also serves the demo origin on its own port (the demo CRM at
 * /, the customer phone at /phone/), approved to frame the CCP (and to use
 * the simulator) as http://127.0.0.1:<port>; `approved` adds more origins;
 * `ringTimeoutS` is how long a call rings before it is missed; `extraConfig`
 * is TOML appended after the [server] table (other tables, e.g. `[sip]`);
 * `countryCode` sets the agents' region (`country_code`, e.g. 81).
 */
export async function startBackend(extraServer = '', { crm = false, approved = [], ringTimeoutS = 30, extraConfig = '', countryCode = null } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'switchboard-browser-'));
  const configPath = join(dataDir, 'config.toml');
  let crmUrl = null;
  const origins = [...approved];
  if (crm) {
    const port = await freePort();
    crmUrl = `http://127.0.0.1:${port}`;
    origins.push(crmUrl);
    extraServer += `\ncrm_demo_listen = "127.0.0.1:${port}"\n`;
  }
  // `countryCode`: the agents' region (a top-level key, so first).
  const region = countryCode ? `country_code = ${countryCode}\n` : '';
  writeFileSync(configPath, region + CONFIG(dataDir, extraServer, origins, ringTimeoutS) + extraConfig);
  const bin = join(ROOT, 'target/debug/switchboard-server');
  const proc = spawn(bin, ['--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`backend did not start:\n${log}`)), 20000);
    proc.stdout.on('data', (d) => {
      log += d;
      const m = /backend on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) { clearTimeout(timer); resolveUrl(m[1]); }
    });
    proc.on('exit', (code) => reject(new Error(`backend exited with ${code}:\n${log}`)));
  });
  return {
    url,
    crmUrl,
    dataDir,
    log: () => log,
    stop: () => { proc.kill('SIGKILL'); rmSync(dataDir, { recursive: true, force: true }); },
  };
}

/**
 * Launches headless Chromium with the flags that work on these machines.
 * `autoplay: false` keeps Chromium's autoplay policy (sound needs a click).
 */
export async function launchBrowser(extraArgs = [], { autoplay = true } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...(autoplay ? ['--autoplay-policy=no-user-gesture-required'] : []),
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      ...extraArgs,
    ],
  });
}

/** One request to the backend; simulator paths carry the simulator key. */
export async function api(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...(path.startsWith('/v1/sim/') ? simHeaders() : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const isJson = (res.headers.get('content-type') || '').includes('json');
  return { status: res.status, json: isJson && text ? JSON.parse(text) : null, text, headers: res.headers };
}

/**
 * A browser whose fake microphone plays `wav`, and a page in it whose
 * audio engine records microphone and speaker (`__switchboardTapInput`,
 * `__switchboardTapOutput`). Close the browser when done.
 */
export async function tappedPage(wav) {
  const browser = await launchBrowser([`--use-file-for-fake-audio-capture=${wav}`]);
  const context = await browser.newContext();
  await context.addInitScript(() => { globalThis.__switchboardTap = true; });
  return { browser, page: await context.newPage() };
}

/** Saves a screenshot for people to look at. */
export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json' };

/**
 * Serves `dir` on 127.0.0.1 (a third origin for embedding tests), plus
 * `files` (path to text, e.g. { '/config.json': '{...}' }) from memory;
 * resolves with { url, close }.
 */
export async function serveStatic(dir, port = 0, files = {}) {
  const server = createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (Object.hasOwn(files, pathname)) {
      res.writeHead(200, { 'content-type': TYPES[extname(pathname)] || 'text/plain' });
      res.end(files[pathname]);
      return;
    }
    const path = join(dir, pathname);
    if (!path.startsWith(dir) || !existsSync(path)) { res.writeHead(404); res.end('not found'); return; }
    res.writeHead(200, { 'content-type': TYPES[extname(path)] || 'application/octet-stream' });
    res.end(readFileSync(path));
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/** The backend and browser `useBackendAndBrowser` starts for a test file. */
export let backend = null;
export let browser = null;

/**
 * Starts a backend (`startBackend`'s options, plus `extraServer`) and a
 * browser (`browserArgs`) before the file's tests and stops them after;
 * they are the exported `backend` and `browser`.
 */
export function useBackendAndBrowser({ extraServer = '', browserArgs = [], ...options } = {}) {
  before(async () => {
    backend = await startBackend(extraServer, options);
    browser = await launchBrowser(browserArgs);
  });
  after(async () => {
    await browser?.close();
    backend?.stop();
  });
}
