// A page on an origin the backend does not approve cannot frame the CCP:
// the browser refuses the frame (frame-ancestors) within milliseconds, and
// `init` must say so at once with its typed error (`init_timeout`, naming
// the refused frame), not after its whole timeout (issue 15, "Also"). A
// CCP that is merely slow to start on an approved origin (its module held
// back for seconds) must still come up: the SDK tells the two apart by
// the CCP loader's `loading` word, posted before the frame's load event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, serveStatic, ROOT, useBackendAndBrowser, backend, browser } from './harness.mjs';

const approvedPort = await freePort();
useBackendAndBrowser({ approved: [`http://127.0.0.1:${approvedPort}`] });

// The SDK as the backend serves it (dist/sdk), served by each test origin
// itself: an unapproved origin may not be allowed to import it from the
// backend, and the import is not what is under test.
const SDK = readFileSync(join(ROOT, 'dist/sdk/switchboard.js'), 'utf8');
const PAGE = `<!doctype html><html><body><script type="module">
  window.sdk = await import('./switchboard.js');
  document.body.dataset.ready = 'true';
</script></body></html>`;

async function sdkPage(site, context) {
  const page = await context.newPage();
  await page.goto(`${site.url}/page.html`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  return page;
}

/** Calls `init` with a long timeout; resolves with how it ended and when. */
function initOutcome(page, ccpUrl, timeoutMs) {
  return page.evaluate(async ({ ccpUrl, timeoutMs }) => {
    const started = performance.now();
    try {
      const s = await window.sdk.init({ ccpUrl, hidden: true, timeoutMs });
      const out = { ok: true, loggedIn: s.loggedIn, link: s.link, ms: performance.now() - started };
      s.terminate();
      return out;
    } catch (e) {
      return { ok: false, code: e.code, name: e.name, message: e.message, ms: performance.now() - started,
        frames: document.querySelectorAll('iframe').length };
    }
  }, { ccpUrl, timeoutMs });
}

test('init on an unapproved origin fails with init_timeout long before its timeout', async () => {
  const files = { '/switchboard.js': SDK, '/page.html': PAGE };
  const site = await serveStatic(join(ROOT, 'tests/browser/fixtures'), 0, files);
  const context = await browser.newContext();
  const page = await sdkPage(site, context);
  const refusals = [];
  page.on('console', (m) => { if (/frame-ancestors/.test(m.text())) refusals.push(m.text()); });
  try {
    // A 30 s timeout: failing on the timeout would take 30 s; the refused
    // frame must be reported well before it.
    const out = await initOutcome(page, `${backend.url}/ccp/`, 30000);
    assert.equal(out.ok, false, JSON.stringify(out));
    assert.equal(out.name, 'SwitchboardError');
    assert.equal(out.code, 'init_timeout');
    assert.match(out.message, /refused to frame it/);
    assert.match(out.message, /approved/);
    assert.ok(out.ms < 10000, `init failed only after ${Math.round(out.ms)} ms of its 30000 ms timeout`);
    assert.equal(out.frames, 0, 'the refused frame is removed');
    assert.ok(refusals.length >= 1, 'the browser did refuse the frame (frame-ancestors)');
    console.log(`# unapproved origin: init failed after ${Math.round(out.ms)} ms`);
  } finally {
    await context.close();
    site.close();
  }
});

test('init on an approved origin still succeeds when the CCP is slow to start', async () => {
  const files = { '/switchboard.js': SDK, '/page.html': PAGE };
  const site = await serveStatic(join(ROOT, 'tests/browser/fixtures'), approvedPort, files);
  const context = await browser.newContext();
  // A slow start: the CCP's module arrives 1 s late (the frame's load
  // event waits for its preload) and the approved origins it needs before
  // answering the SDK 3 s late, long after the frame's load event.
  let held = 0;
  const hold = (ms) => async (route) => {
    held++;
    await new Promise((r) => setTimeout(r, ms));
    await route.continue();
  };
  await context.route(/\/ccp\/.*\.wasm$/, hold(1000));
  await context.route(/\/v1\/embed$/, hold(3000));
  const page = await sdkPage(site, context);
  try {
    const out = await initOutcome(page, `${backend.url}/ccp/`, 20000);
    assert.equal(out.ok, true, JSON.stringify(out));
    assert.equal(out.loggedIn, false, 'a CCP with no login kept is usable, logged out');
    assert.ok(held >= 2, 'the CCP module and its origins were held back');
    assert.ok(out.ms >= 3000, `the CCP came up after its delayed module (${Math.round(out.ms)} ms)`);
    console.log(`# approved origin, module held 1 s, origins 3 s: init resolved after ${Math.round(out.ms)} ms`);
  } finally {
    await context.close();
    site.close();
  }
});

test('init on an approved origin fails fast when the frame shows an error page', async () => {
  // The CCP's address answers, but not with the CCP (a wrong path: the
  // backend's 404 page): no CCP speaks up, so init need not wait either.
  const files = { '/switchboard.js': SDK, '/page.html': PAGE };
  const site = await serveStatic(join(ROOT, 'tests/browser/fixtures'), approvedPort, files);
  const context = await browser.newContext();
  const page = await sdkPage(site, context);
  try {
    const out = await initOutcome(page, `${site.url}/no-ccp-here.html`, 30000);
    assert.equal(out.ok, false, JSON.stringify(out));
    assert.equal(out.code, 'init_timeout');
    assert.ok(out.ms < 10000, `init failed only after ${Math.round(out.ms)} ms`);
  } finally {
    await context.close();
    site.close();
  }
});
