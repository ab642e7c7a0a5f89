// The SDK's own guarantees, against a stand-in CCP (fixtures/fake-ccp.html)
// on an approved origin: a CCP of another protocol version fails `init`
// with version_mismatch, an action the CCP never answers rejects with
// timeout, and bad arguments are refused in the page before anything is
// sent, each as a SwitchboardError with a stable code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { freePort, serveStatic, ROOT, useBackendAndBrowser, backend, browser } from './harness.mjs';

const port = await freePort();
const origin = `http://127.0.0.1:${port}`;
useBackendAndBrowser({ approved: [origin] });
let site;

async function sdkPage() {
  site ??= await serveStatic(join(ROOT, 'tests/browser/fixtures'), port, {
    '/config.json': JSON.stringify({ backendUrl: backend.url }),
  });
  const page = await browser.newPage();
  await page.goto(`${site.url}/direct.html`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  return page;
}

test('a CCP of another version fails init with version_mismatch', async () => {
  const page = await sdkPage();
  const failure = await page.evaluate((url) => window.sdk.init({ ccpUrl: url, hidden: true })
    .then(() => null, (e) => ({ name: e.name, code: e.code, message: e.message })), `${site.url}/fake-ccp.html?mode=old`);
  assert.equal(failure?.code, 'version_mismatch', JSON.stringify(failure));
  assert.match(failure.message, /\[0\]/);
  assert.equal(await page.locator('iframe').count(), 0, 'the frame is removed');
  await page.close();
});

test('an action the CCP never answers rejects with timeout; bad arguments are refused at once', async () => {
  const page = await sdkPage();
  const outcome = await page.evaluate(async (url) => {
    const s = await window.sdk.init({ ccpUrl: url, hidden: true, requestTimeoutMs: 400 });
    const codeOf = (f) => { try { f(); return null; } catch (e) { return e.code; } };
    const started = performance.now();
    const timedOut = await s.agent.setState('Lunch').then(() => null, (e) => e.code);
    const waited = performance.now() - started;
    const result = {
      ready: [s.loggedIn, s.agent.name, s.agent.state.name],
      timedOut, waited,
      badNumber: codeOf(() => window.sdk.Endpoint.phoneNumber('call me')),
      badState: codeOf(() => s.agent.setState('')),
      badUrl: await window.sdk.init({ ccpUrl: 'ftp://example.com/' }).then(() => null, (e) => e.code),
      badListener: codeOf(() => s.on('incoming', 'not a function')),
    };
    s.terminate();
    result.afterTerminate = await s.agent.mute().then(() => null, (e) => e.code);
    return result;
  }, `${site.url}/fake-ccp.html?mode=mute`);
  assert.deepEqual(outcome.ready, [true, 'Stand-in', 'Available']);
  assert.equal(outcome.timedOut, 'timeout');
  assert.ok(outcome.waited >= 350 && outcome.waited < 3000, `timed out after ${outcome.waited} ms`);
  assert.equal(outcome.badNumber, 'invalid_argument');
  assert.equal(outcome.badState, 'invalid_argument');
  assert.equal(outcome.badUrl, 'invalid_argument');
  assert.equal(outcome.badListener, 'invalid_argument');
  assert.equal(outcome.afterTerminate, 'terminated');
  await page.close();
  site.close();
});
