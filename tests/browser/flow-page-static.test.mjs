// The flow page (public/flows) in Chromium against a stand-in for the
// backend's API that answers with the contract's JSON (the fixtures of
// tests/js/fixtures/flows) under the CCP's Content-Security-Policy: the
// page logs in, lists the flows, draws every block and branch, marks a
// contact's path in order with the failed step shown, works from the
// keyboard, and meets WCAG AA contrast. No backend needed, so it runs
// before the flow engine exists; flow-page.test.mjs is the same page
// against the real backend.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { join, extname, normalize } from 'node:path';
import { ROOT, launchBrowser, screenshot } from './harness.mjs';
import { auditContrast } from './contrast.mjs';

const FIX = join(ROOT, 'tests/js/fixtures/flows');
const fixture = (name) => JSON.parse(readFileSync(join(FIX, name), 'utf8'));
const FLOWS = fixture('flows.json');
const CONTACTS = {
  'c-fixture-date': fixture('contact-change-date.json'),
  'c-fixture-error': fixture('contact-lookup-error.json'),
};
const TOKEN = 't-stand-in-token';
// The CCP's policy (server/src/http.rs CcpPolicy::csp) minus the parts
// that name the backend's host.
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'";
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css' };

let server, base, browser;
const cspViolations = [];

before(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const authed = req.headers.authorization === `Bearer ${TOKEN}`;
    if (url.pathname === '/v1/login' && req.method === 'POST') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        const { username, password } = JSON.parse(body || '{}');
        if (username === 'sam' && password === 'sam-pass') json(200, { token: TOKEN, agent: 'sam', expires_at: Date.now() + 3600e3 });
        else json(401, { code: 'auth_failed', message: 'login failed' });
      });
      return;
    }
    if (url.pathname === '/v1/flows') return authed ? json(200, FLOWS) : json(401, { code: 'auth_failed', message: 'log in' });
    const m = /^\/v1\/contacts\/([^/]+)$/.exec(url.pathname);
    if (m) {
      if (!authed) return json(401, { code: 'auth_failed', message: 'log in' });
      const record = CONTACTS[decodeURIComponent(m[1])];
      return record ? json(200, record) : json(404, { code: 'not_found', message: 'no such contact' });
    }
    if (url.pathname.startsWith('/flows/')) {
      const rel = normalize(url.pathname.slice('/flows/'.length) || 'index.html');
      const file = join(ROOT, 'public/flows', rel);
      if (rel.startsWith('..') || !existsSync(file)) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream', 'content-security-policy': CSP });
      res.end(readFileSync(file));
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.close();
});

async function openPage(path, { viewport = { width: 1400, height: 900 }, theme } = {}) {
  const context = await browser.newContext({ viewport });
  if (theme) await context.addInitScript((t) => localStorage.setItem('switchboard.theme', t), theme);
  const page = await context.newPage();
  page.on('console', (msg) => { if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text()); });
  page.on('pageerror', (err) => cspViolations.push(`page error: ${err.message}`));
  await page.goto(base + path);
  return { context, page };
}

async function login(page, user = 'sam', password = 'sam-pass') {
  await page.getByTestId('login-username').fill(user);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
}

test('logs in, lists the flows and draws every block and branch of the chosen one', async () => {
  const { context, page } = await openPage('/flows/');
  await page.getByTestId('login').waitFor();
  await login(page, 'sam', 'wrong');
  await page.getByTestId('login-error').filter({ hasText: /failed/i }).waitFor();
  await login(page);
  await page.getByTestId('flow-graph').locator('[data-testid="node-greeting_voice"]').waitFor();
  const options = await page.getByTestId('flow-select').locator('option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(options, FLOWS.flows.map((f) => f.id));
  const flow = FLOWS.flows[0];
  assert.equal(await page.locator('#graph .node').count(), flow.blocks.length);
  const branches = flow.blocks.reduce((n, b) => n + b.branches.length, 0);
  assert.equal(await page.locator('#graph .edge').count(), branches);
  const menu = page.getByTestId('edge-menu-1');
  assert.match(await menu.locator('text').textContent(), /^1/);

  // Another flow from the list.
  await page.getByTestId('flow-select').selectOption('order-queue');
  await page.locator('[data-testid="node-music_en"]').waitFor();
  assert.equal(await page.locator('#graph .node').count(), FLOWS.flows.find((f) => f.id === 'order-queue').blocks.length);
  // The token is this tab's: a reload stays logged in.
  await page.reload();
  await page.locator('[data-testid="node-greeting_voice"]').waitFor();
  await screenshot(page, 'flow-page-graph');
  await context.close();
  assert.deepEqual(cspViolations, []);
});

test('?contact= marks the path in order, loops counted, steps listed', async () => {
  const { context, page } = await openPage('/flows/?contact=c-fixture-date');
  await login(page);
  await page.getByTestId('step-26').waitFor();
  const record = CONTACTS['c-fixture-date'];
  assert.equal(await page.getByTestId('steps').locator('li').count(), record.flow_log.length);
  assert.equal(await page.locator('[data-testid="node-ask_date"]').getAttribute('data-state'), 'taken');
  assert.equal(await page.locator('[data-testid="node-cancel"]').getAttribute('data-state'), 'idle');
  assert.equal(await page.locator('[data-testid="edge-menu-1"]').getAttribute('data-taken'), 'true');
  assert.equal(await page.locator('[data-testid="edge-menu-2"]').getAttribute('data-taken'), 'false');
  assert.match(await page.locator('[data-testid="edge-date_checked-equals bad_date"] text').textContent(), /^#16 equals/);
  assert.match(await page.locator('[data-testid="node-ask_date"]').getAttribute('aria-label'), /steps 14, 19/);
  assert.equal(await page.getByTestId('path-errors').locator('li').count(), 0);
  await screenshot(page, 'flow-page-path');
  // Fit to width: the whole flow scaled into the view.
  await page.getByTestId('fit').check();
  const box = await page.getByTestId('flow-graph').boundingBox();
  const wrap = await page.locator('#graph-wrap').boundingBox();
  assert.ok(box.width <= wrap.width, `fits: ${box.width} <= ${wrap.width}`);
  await screenshot(page, 'flow-page-fit');
  await context.close();
});

test('a failed step and an unknown block are shown as errors; steps in another flow switch to it', async () => {
  const { context, page } = await openPage('/flows/?contact=c-fixture-error');
  await login(page);
  await page.getByTestId('step-17').waitFor();
  assert.equal(await page.locator('[data-testid="node-lookup"]').getAttribute('data-state'), 'error');
  const errors = await page.getByTestId('path-errors').locator('li').allTextContents();
  assert.ok(errors.some((e) => /unknown block "ghost_block"/.test(e)), errors.join('\n'));
  assert.ok(errors.some((e) => /no answer within 3000 ms/.test(e)), errors.join('\n'));
  await page.locator('[data-testid="node-lookup"]').focus();
  await page.getByTestId('block-details').filter({ hasText: 'no answer within 3000 ms' }).waitFor();
  await screenshot(page, 'flow-page-error');
  await page.getByTestId('step-17').getByRole('button').click();
  await page.locator('#graph[data-flow="order-queue"]').waitFor();
  assert.equal(await page.locator('[data-testid="node-passes_en"]').getAttribute('data-state'), 'taken');
  // A contact that does not exist: a message, no crash.
  await page.getByTestId('contact-input').fill('c-nope');
  await page.getByTestId('contact-submit').click();
  await page.getByTestId('status').filter({ hasText: /c-nope/ }).waitFor();
  await context.close();
  assert.deepEqual(cspViolations, []);
});

test('keyboard: blocks are reached with Tab and show their details', async () => {
  const { context, page } = await openPage('/flows/?contact=c-fixture-date');
  await login(page);
  await page.getByTestId('step-1').waitFor();
  await page.getByTestId('flow-select').focus();
  let found = null;
  for (let i = 0; i < 12 && !found; i++) {
    await page.keyboard.press('Tab');
    found = await page.evaluate(() => document.activeElement?.dataset?.block ?? null);
  }
  assert.ok(found, 'a block takes focus with Tab');
  await page.getByTestId('block-details').filter({ hasText: found }).waitFor();
  await page.locator('[data-testid="node-menu"]').focus();
  const details = await page.getByTestId('block-details').textContent();
  assert.match(details, /get_customer_input/);
  assert.match(details, /1 → date_attempts/);
  await context.close();
});

for (const theme of ['light', 'dark']) {
  test(`every text meets WCAG AA contrast (${theme})`, async (t) => {
    const { context, page } = await openPage('/flows/?contact=c-fixture-error', { theme });
    await page.getByTestId('login-username').waitFor();
    let { checked, failures } = await page.evaluate(auditContrast);
    assert.deepEqual(failures, [], JSON.stringify(failures, null, 1));
    await login(page);
    await page.getByTestId('step-17').waitFor();
    await page.locator('[data-testid="node-lookup"]').focus();
    ({ checked, failures } = await page.evaluate(auditContrast));
    assert.ok(checked >= 50, `measured ${checked} texts`);
    assert.deepEqual(failures, [], JSON.stringify(failures, null, 1));
    t.diagnostic(`${theme}: ${checked} texts at AA`);
    await context.close();
  });
}

test('Japanese labels', async () => {
  const { context, page } = await openPage('/flows/');
  await page.getByTestId('language').selectOption('ja');
  assert.equal(await page.locator('h1').textContent(), 'コンタクトフロー');
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'ja');
  await context.close();
});
