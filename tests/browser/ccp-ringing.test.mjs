// Ringing in the CCP: the ringtone plays for an incoming call and stops on
// accept; when the browser's autoplay policy blocks sound (a page that
// logged in by itself, no click yet) the panel says "Click to enable
// sound" and the click starts it; a hidden tab gets a desktop
// notification naming the caller and the queue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, launchBrowser, api } from './harness.mjs';
import { CcpPage } from './pages.mjs';

let backend;

before(async () => {
  backend = await startBackend();
});

after(() => backend?.stop());

test('blocked autoplay asks for a click, then rings; accept stops it', async () => {
  const browser = await launchBrowser([], { autoplay: false });
  try {
    const context = await browser.newContext();
    // Headless Chromium lets every AudioContext run, whatever the autoplay
    // flag says (and reports user activation on pages nobody touched);
    // this is desktop Chrome's rule: no sound before the document has had
    // a click or a key press.
    await context.addInitScript(() => {
      let touched = false;
      for (const type of ['pointerdown', 'keydown']) {
        addEventListener(type, (e) => { if (e.isTrusted) touched = true; }, true);
      }
      const Native = globalThis.AudioContext;
      const allowed = () => touched;
      globalThis.AudioContext = class extends Native {
        constructor(options) {
          super(options);
          if (!allowed()) super.suspend();
        }
        resume() { return allowed() ? super.resume() : Promise.resolve(); }
      };
    });
    const first = await context.newPage();
    await new CcpPage(first, backend.url).startShift('alice', 'alice-pass', 'Alice Tanaka');
    await first.close();
    // A new tab logs in from the saved token: no click on this document.
    const page = await context.newPage();
    const ccp = new CcpPage(page, backend.url);
    await ccp.open();
    await ccp.expectLoggedIn('Alice Tanaka');
    await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
    await ccp.expectContactState('incoming');
    const enable = page.getByTestId('enable-sound');
    await enable.waitFor();
    assert.equal(await page.evaluate(() => globalThis.__switchboardRinging), true, 'the ring is scheduled');
    await enable.click();
    await enable.waitFor({ state: 'hidden' });
    await ccp.click('accept');
    await ccp.expectContactState('connected');
    await page.waitForFunction(() => globalThis.__switchboardRinging === false);
    await ccp.endAndClear();
  } finally {
    await browser.close();
  }
});

test('a hidden tab gets a desktop notification for an incoming call', async () => {
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    await context.grantPermissions(['notifications'], { origin: backend.url });
    await context.addInitScript(() => {
      // The tab is in the background; notifications are recorded.
      Object.defineProperty(document, 'hidden', { get: () => true });
      globalThis.__notifications = [];
      const Native = globalThis.Notification;
      globalThis.Notification = class extends Native {
        constructor(title, options) {
          super(title, options);
          globalThis.__notifications.push({ title, body: options && options.body });
        }
      };
    });
    const page = await context.newPage();
    const ccp = new CcpPage(page, backend.url);
    await ccp.startShift('bob', 'bob-pass', 'Bob Suzuki');
    await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
    await ccp.expectContactState('incoming');
    await page.waitForFunction(() => globalThis.__notifications.length > 0);
    const [n] = await page.evaluate(() => globalThis.__notifications);
    assert.deepEqual(n, { title: 'Incoming call', body: '+819012345678 · Support' });
    await ccp.click('reject');
  } finally {
    await browser.close();
  }
});
