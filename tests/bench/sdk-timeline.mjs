// Where `init` to ready goes (`node tests/bench/sdk-timeline.mjs` after
// `cargo xtask bench sdk` has built everything): reloads the demo CRM page
// with a logged-in hidden CCP and prints one timeline per reload, on one
// clock, of the page (P) and the CCP frame (F): document starts, the frame
// handshake's messages, the CCP's socket (created, open, first frames) and
// the moment the page's `init` resolved. It found the 100 ms hello retry
// (fixed by app/boot.js keeping early messages); read it before guessing.
import { startBackend, launchBrowser } from '../browser/harness.mjs';
import { CrmPage } from '../browser/pages.mjs';
const backend = await startBackend('', { crm: true });
const browser = await launchBrowser();
// Runs in every document of the context before its own scripts.
const probe = () => {
  const log = (window.__tl = []);
  const t = (n) => log.push([n, performance.timeOrigin + performance.now()]);
  let v; Object.defineProperty(window, 'sdkInitMs', { set(x) { v = x; t('sdkInitMs set ' + x.toFixed(0)); }, get() { return v; }, configurable: true });
  const WS = window.WebSocket;
  window.WebSocket = function (...a) { const s = new WS(...a); t('ws new'); s.addEventListener('open', () => t('ws open')); let n = 0; s.addEventListener('message', () => { if (n++ < 3) t('ws msg ' + n); }); const send = s.send.bind(s); let k = 0; s.send = (d) => { if (k++ < 3) t('ws send ' + String(d).slice(0, 30)); return send(d); }; return s; };
  window.WebSocket.prototype = WS.prototype; Object.assign(window.WebSocket, { OPEN: 1, CONNECTING: 0, CLOSING: 2, CLOSED: 3 });
  let m = 0; window.addEventListener('message', (e) => { if (m++ < 6) t('msg in ' + String(typeof e.data === 'string' ? e.data : JSON.stringify(e.data)).slice(0, 40)); }, true);
  document.addEventListener('DOMContentLoaded', () => t('DCL'));
  // The module's compile and instantiation, and the app's first render.
  for (const k of ['instantiateStreaming', 'instantiate']) {
    const f = WebAssembly[k];
    WebAssembly[k] = async (...a) => { t(`wasm ${k}`); const r = await f.apply(WebAssembly, a); t(`wasm ${k} done`); return r; };
  }
  new MutationObserver((_, o) => { if (document.body?.firstElementChild) { t('first render'); o.disconnect(); } })
    .observe(document, { childList: true, subtree: true });
  t('start ' + location.pathname);
};
try {
  const ctx = await browser.newContext();
  await ctx.addInitScript(probe);
  const page = await ctx.newPage();
  const crm = new CrmPage(page, backend.crmUrl);
  await crm.open();
  await crm.loginByPopup('alice', 'alice-pass', backend.url);
  await crm.setStatus('Available');
  for (let i = 0; i < 5; i += 1) {
    await page.reload();
    await page.locator('body[data-ready="true"]').waitFor();
    const all = [];
    for (const f of page.frames()) {
      try {
        const who = f === page.mainFrame() ? 'P ' : 'F ';
        const tl = await f.evaluate(() => window.__tl || []);
        for (const [n, at] of tl) all.push([at, who + n]);
        // Every fetch of the document, start and end, on the same clock.
        const res = await f.evaluate(() => performance.getEntriesByType('resource').map((r) => [r.name.split('/').pop(), performance.timeOrigin + r.startTime, performance.timeOrigin + r.responseEnd, r.transferSize]));
        for (const [n, s, e, size] of res) all.push([s, `${who}fetch ${n} (${(e - s).toFixed(0)} ms, ${size} B over the wire)`]);
      } catch {}
    }
    all.sort((a, b) => a[0] - b[0]);
    const t0 = all[0][0];
    console.log('---');
    for (const [at, n] of all) console.log(`${(at - t0).toFixed(0).padStart(5)} ${n}`);
  }
} finally { await browser.close(); backend.stop(); }
