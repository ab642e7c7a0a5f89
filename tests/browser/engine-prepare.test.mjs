// The CCP prepares the audio engine while a call rings (issue 16: "start
// and compile the engine while the call rings, not after it connects"):
// the microphone is opened during the ring, accepting reuses it (no second
// getUserMedia), and a call that is not taken releases it. Every
// getUserMedia stream the page opens is recorded by an init script.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, launchBrowser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

let backend;
let browser;

before(async () => {
  backend = await startBackend();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  backend?.stop();
});

const RECORD_STREAMS = () => {
  globalThis.__streams = [];
  const native = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => {
    const s = await native(c);
    globalThis.__streams.push(s);
    return s;
  };
};
const live = () => globalThis.__streams.flatMap((s) => s.getTracks()).filter((t) => t.readyState === 'live').length;
const released = () => globalThis.__streams.length > 0
  && globalThis.__streams.flatMap((s) => s.getTracks()).every((t) => t.readyState === 'ended');

async function agent() {
  const context = await browser.newContext();
  await context.addInitScript(RECORD_STREAMS);
  const page = await context.newPage();
  const ccp = new CcpPage(page, backend.url);
  await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
  return { context, page, ccp };
}

test('the engine is prepared while the call rings; accepting reuses it', async () => {
  const { context, page, ccp } = await agent();
  try {
    assert.equal(await page.evaluate(() => globalThis.__streams.length), 0, 'no microphone before a call');
    await ccp.ringSimCall();
    // The microphone opens during the ring, before any click.
    await page.waitForFunction(live, null, { timeout: 10000 });
    await ccp.click('accept');
    await ccp.expectContactState('connected');
    await page.waitForFunction(() => globalThis.__switchboardEngineStartedAt > 0, null, { timeout: 20000 });
    assert.equal(await page.evaluate(() => globalThis.__streams.length), 1, 'the prepared microphone is the call\'s');
    await ccp.endAndClear();
    await page.waitForFunction(released, null, { timeout: 10000 });
  } finally {
    await context.close();
  }
});

test('a rejected call releases the microphone prepared for it', async () => {
  const { context, page, ccp } = await agent();
  try {
    await ccp.ringSimCall();
    await page.waitForFunction(live, null, { timeout: 10000 });
    await ccp.click('reject');
    await page.waitForFunction(released, null, { timeout: 10000 });
    assert.equal(await page.evaluate(() => globalThis.__switchboardEngineStartedAt), undefined, 'no engine started');
  } finally {
    await context.close();
  }
});
