// The CCP's origin serves only the CCP (issue 10, item 2): the demo pages
// that read their URL are gone from it, crafted links run nothing foreign,
// the CCP carries a full Content-Security-Policy and still works under it,
// a page on an unapproved origin cannot frame it, and messages between
// CCP tabs are validated like any untrusted input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, useBackendAndBrowser, backend, browser, serveStatic } from './harness.mjs';
import { CcpPage } from './pages.mjs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

useBackendAndBrowser({ crm: true });

const EVIL = 'http://evil.invalid';

/**
 * A context that records every request its pages make and lets through
 * only those to the backend and the demo origin; anything else is a
 * foreign request and is aborted (and counted).
 */
async function watchedContext() {
  const context = await browser.newContext();
  const allowed = new Set([new URL(backend.url).host, new URL(backend.crmUrl).host]);
  const foreign = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (allowed.has(url.host)) return route.continue();
    foreign.push(url.href);
    return route.abort();
  });
  // CSP violations, reported in every page of the context.
  await context.addInitScript(() => {
    globalThis.__cspViolations = [];
    addEventListener('securitypolicyviolation', (e) => {
      globalThis.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return { context, foreign };
}

test('no demo page is served on the CCP origin', async () => {
  for (const path of [
    '/public/crm/', '/public/crm/index.html', `/public/crm/?ccp=${EVIL}/`, '/public/phone/',
    '/phone/', '/phone/index.html', '/public/media/loopback.html', '/ccp/media/loopback.html',
  ]) {
    const res = await api(backend.url, 'GET', path);
    assert.equal(res.status, 404, `${path} is not served on the CCP origin`);
  }
  // What the CCP needs is still there.
  // The page's one script: boot.js, the loader and its snippets bundled
  // under a content-hashed name (xtask bundle_ccp_scripts).
  const page = (await api(backend.url, 'GET', '/ccp/')).text;
  const bundle = page.match(/src="?(\/ccp\/ccp-[0-9a-f]{16}\.js)/)?.[1];
  assert.ok(bundle, `the CCP page loads its bundle: ${page}`);
  for (const path of ['/ccp/', bundle, '/ccp/media/engine.js', '/ccp/media/worklet.js',
    '/ccp/media/engine.wasm', '/ccp/sdk/switchboard.js']) {
    assert.equal((await api(backend.url, 'GET', path)).status, 200, path);
  }
  // The demo pages live on the demo origin.
  for (const path of ['/', '/phone/', '/media/engine.js', '/demo-config.json']) {
    assert.equal((await api(backend.crmUrl, 'GET', path)).status, 200, `demo origin ${path}`);
  }
});

test('crafted links on either origin run no foreign script', async () => {
  const { context, foreign } = await watchedContext();
  const page = await context.newPage();
  const injected = encodeURIComponent(`<script>window.__pwned=1</script>`);
  // The issue's link, on the CCP origin: nothing there to run it.
  // (Chromium turns an empty 404 into a navigation error.)
  const res = await page.goto(`${backend.url}/public/crm/?ccp=${encodeURIComponent(`${EVIL}/`)}`).catch((e) => e);
  if (res instanceof Error) assert.match(res.message, /ERR_HTTP_RESPONSE_CODE_FAILURE/);
  else assert.equal(res.status(), 404);
  // The CCP itself with hostile query parameters (a fresh page: the
  // error page above may still be committing in the first).
  const ccpPage = await context.newPage();
  await ccpPage.goto(`${backend.url}/ccp/?ccp=${encodeURIComponent(`${EVIL}/`)}&x=${injected}&ringtone=${encodeURIComponent(`${EVIL}/ring.wav`)}`);
  await ccpPage.getByTestId('login-username').waitFor();
  assert.equal(await ccpPage.evaluate(() => window.__pwned), undefined);
  // The demo CRM with the old ?ccp= parameter: it ignores it and loads
  // the SDK from the backend its own origin names.
  const crmPage = await context.newPage();
  await crmPage.goto(`${backend.crmUrl}/?ccp=${encodeURIComponent(`${EVIL}/`)}`);
  await crmPage.locator('body[data-ready="true"]').waitFor();
  assert.equal(await crmPage.evaluate(() => typeof window.switchboardSdk?.init), 'function');
  assert.deepEqual(foreign, [], 'no request left for a foreign host');
  await context.close();
});

test('the CCP carries a full Content-Security-Policy and companion headers', async () => {
  const res = await api(backend.url, 'GET', '/ccp/');
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy') || '';
  const directives = Object.fromEntries(csp.split(';').map((d) => d.trim()).filter(Boolean)
    .map((d) => { const [name, ...values] = d.split(/\s+/); return [name, values]; }));
  const host = new URL(backend.url).host;
  assert.deepEqual(directives['default-src'], ["'self'"]);
  assert.deepEqual(directives['script-src'], ["'self'", "'wasm-unsafe-eval'"], 'no inline or eval script');
  assert.deepEqual(directives['connect-src'], ["'self'", `ws://${host}`, `wss://${host}`], 'only this backend');
  assert.deepEqual(directives['object-src'], ["'none'"]);
  assert.deepEqual(directives['base-uri'], ["'none'"]);
  assert.deepEqual(directives['frame-ancestors'], ["'self'", backend.crmUrl]);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(res.headers.get('permissions-policy'), `microphone=(self "${backend.crmUrl}"), camera=(), geolocation=()`);
  // The page itself has no inline script for the policy to refuse.
  assert.doesNotMatch(res.text, /<script(?![^>]*\ssrc=)[^>]*>/, 'every script has a src');
});

test('the CCP works under its policy: login, a call with audio, no violation', async () => {
  const { context, foreign } = await watchedContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const ccp = new CcpPage(page, backend.url);
  await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
  // A call with audio: the engine's wasm compiles and its worklet loads.
  const id = await ccp.answerSimCall({ play: 'echo' });
  await page.waitForFunction(() => {
    const s = globalThis.__switchboardStats;
    return s && s.packetsSent > 50 && s.received > 50;
  }, null, { timeout: 20000, polling: 250 });
  await ccp.endAndClear();
  assert.ok(id);
  assert.deepEqual(await page.evaluate(() => globalThis.__cspViolations), [], 'no CSP violation');
  assert.deepEqual(errors.filter((e) => /Content Security Policy|Refused to/i.test(e)), [], errors.join('\n'));
  assert.deepEqual(foreign, []);
  await context.close();
});

test('a page on an origin that is not approved cannot frame the CCP', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-frame-'));
  writeFileSync(join(dir, 'frame.html'), `<!doctype html><iframe id="ccp" src="${backend.url}/ccp/"></iframe>`);
  const site = await serveStatic(dir);
  const context = await browser.newContext();
  const page = await context.newPage();
  const refusals = [];
  page.on('console', (m) => { if (/frame-ancestors/.test(m.text())) refusals.push(m.text()); });
  try {
    await page.goto(`${site.url}/frame.html`);
    // Chromium refuses the frame (and says so in the console, naming the
    // directive) and shows an error page in its place.
    const deadline = Date.now() + 10000;
    while (refusals.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(refusals.length, 1, 'the frame was refused by frame-ancestors');
    const frame = await (await page.$('#ccp')).contentFrame();
    const form = await frame.evaluate(() => !!document.querySelector('[data-testid="login-username"]')).catch(() => false);
    assert.equal(form, false, 'the CCP did not load in the frame');
  } finally {
    await context.close();
    site.close();
  }
});

test('malformed or foreign messages between CCP tabs change nothing', async () => {
  const context = await browser.newContext();
  const leader = new CcpPage(await context.newPage(), backend.url);
  await leader.startShift('bob', 'bob-pass', 'Bob Suzuki');
  const followerPage = await context.newPage();
  const warnings = [];
  followerPage.on('console', (m) => { if (m.type() === 'warning') warnings.push(m.text()); });
  const follower = new CcpPage(followerPage, backend.url);
  await follower.open();
  await follower.expectLoggedIn('Bob Suzuki');
  await follower.expectAgentState('Available');

  // What any script on the origin could post on the tabs' channel.
  const hostile = await followerPage.evaluate(() => {
    const ch = new BroadcastChannel('switchboard.tabs');
    const msgs = [
      JSON.stringify({ State: { link: 'open', snapshot: 'garbage' } }),
      JSON.stringify({ State: { link: 'open', snapshot: JSON.stringify({ type: 'welcome' }) } }),
      JSON.stringify({ State: { link: '<img src=x>', snapshot: null } }),
      JSON.stringify({ State: { link: null, snapshot: null, forged: true } }),
      JSON.stringify({ Request: { tab: '../../x', id: 1, op: '{"op":"set_agent_state","state":"Lunch"}' } }),
      JSON.stringify({ Request: { tab: 'abc', id: 1, op: '"Lunch"' } }),
      'x'.repeat(5 << 20),
      '{not json',
    ];
    for (const m of msgs) ch.postMessage(m);
    ch.close();
    return msgs.length;
  });
  const dropped = () => warnings.filter((w) => w.includes('[switchboard tabs] dropped')).length;
  const deadline = Date.now() + 10000;
  while (dropped() < hostile && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(dropped(), hostile, `every hostile message dropped:\n${warnings.join('\n')}`);
  // The follower still mirrors the agent; the leader was not driven.
  await follower.expectLoggedIn('Bob Suzuki');
  await follower.expectAgentState('Available');
  await leader.expectAgentState('Available');
  await context.close();
});
