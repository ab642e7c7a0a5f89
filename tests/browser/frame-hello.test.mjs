// The SDK's frame handshake, from the embedding page's side (docs/embedding.md:
// the page says `hello` to the CCP's frame when it loads and the CCP answers
// with its own `hello` under the same nonce). A page sends its hello on the
// frame's `load` event, which fires before the CCP's module has been fetched
// and compiled. That first hello must be answered: before the CCP kept early
// messages (app/boot.js), it was lost and the SDK only got through on its
// retry 100 ms later, the largest single wait in `init` to ready.
//
// To make "before the module has started" certain rather than a race, the
// CCP's wasm is held back for 400 ms, and the page says hello exactly once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startBackend, launchBrowser, freePort, serveStatic, ROOT } from './harness.mjs';

let backend;
let browser;
let site;

const PAGE = `<!doctype html><meta charset="utf-8"><title>one hello</title>
<script src="/one-hello.js"></script>`;

// Frames the CCP, says hello once on its load, and records every answer.
const SCRIPT = `
window.replies = [];
window.helloSentAt = 0;
addEventListener('message', (e) => {
  if (e.origin !== window.ccpOrigin) return;
  try { window.replies.push(JSON.parse(e.data)); } catch (_) { window.replies.push({ kind: 'unparsed' }); }
});
fetch('/config.json').then((r) => r.json()).then(({ ccpUrl }) => {
  window.ccpOrigin = new URL(ccpUrl).origin;
  const frame = document.createElement('iframe');
  frame.src = ccpUrl;
  frame.addEventListener('load', () => {
    window.helloSentAt = performance.now();
    frame.contentWindow.postMessage(
      JSON.stringify({ kind: 'hello', version: 1, nonce: 'a1'.repeat(16) }), window.ccpOrigin);
  }, { once: true });
  document.body.append(frame);
});
`;

before(async () => {
  const port = await freePort();
  backend = await startBackend('', { approved: [`http://127.0.0.1:${port}`] });
  site = await serveStatic(join(ROOT, 'tests/browser/fixtures'), port, {
    '/config.json': JSON.stringify({ ccpUrl: `${backend.url}/ccp/` }),
    '/one-hello.html': PAGE,
    '/one-hello.js': SCRIPT,
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  site?.close();
  backend?.stop();
});

test('a hello sent before the CCP module has started is answered, without a retry', async () => {
  const context = await browser.newContext();
  let wasmHeld = 0;
  await context.route('**/ccp/*_bg.wasm', async (route) => {
    wasmHeld += 1;
    await new Promise((r) => setTimeout(r, 400));
    await route.continue();
  });
  const page = await context.newPage();
  await page.goto(`${site.url}/one-hello.html`);
  await page.waitForFunction(() => window.replies.some((m) => m.kind === 'hello'), null, {
    polling: 50,
    timeout: 10000,
  }).catch(async (err) => {
    const replies = await page.evaluate(() => window.replies);
    throw new Error(`the CCP never answered the one hello; it sent ${JSON.stringify(replies)}`, { cause: err });
  });
  const replies = await page.evaluate(() => window.replies);
  assert.ok(wasmHeld >= 1, 'the CCP module was held back, so the hello preceded it');
  const hello = replies.find((m) => m.kind === 'hello');
  assert.equal(hello.nonce, 'a1'.repeat(16), 'answered under the page\'s nonce');
  assert.equal(hello.version, 1);
  await context.close();
});
