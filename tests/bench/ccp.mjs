// CCP benchmarks (`cargo xtask bench ccp`):
//  - the CCP's wasm + JS + CSS in dist/ (not the audio engine in
//    dist/media, not the SDK in dist/sdk), gzip -9;
//  - from navigation to a usable, logged-in panel on loopback: a tab with a
//    saved login opens /ccp/ and the time is read from the page's own clock
//    (performance.now() counts from navigation start) when the agent's
//    name and an open link are on screen, over 15 new tabs.
import { readdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { startBackend, launchBrowser, ROOT } from '../browser/harness.mjs';
import { CcpPage } from '../browser/pages.mjs';

let total = 0;
for (const f of readdirSync(join(ROOT, 'dist')).filter((n) => /\.(wasm|js|css)$/.test(n))) {
  const bytes = readFileSync(join(ROOT, 'dist', f));
  const gz = gzipSync(bytes, { level: 9 }).length;
  total += gz;
  console.log(`${f}: ${bytes.length} bytes, ${gz} gzip`);
}
console.log(`CCP total: ${(total / 1024).toFixed(1)} KB gzip (excluding dist/media and dist/sdk)`);

const backend = await startBackend();
const browser = await launchBrowser();
try {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    new MutationObserver(() => {
      if (globalThis.__usableAt === undefined
        && document.querySelector('[data-testid="agent-name"]')?.textContent
        && document.querySelector('[data-testid="link-state"].open')) {
        globalThis.__usableAt = performance.now();
      }
    }).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  });
  const first = await context.newPage();
  await new CcpPage(first, backend.url).startShift('alice', 'alice-pass', 'Alice Tanaka');
  await first.close();
  const times = [];
  for (let i = 0; i < 15; i += 1) {
    const page = await context.newPage();
    await page.goto(`${backend.url}/ccp/`);
    await page.waitForFunction(() => globalThis.__usableAt !== undefined, null, { polling: 20 });
    times.push(await page.evaluate(() => globalThis.__usableAt));
    await page.close();
  }
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  console.log(`navigation -> usable logged-in panel (${times.length} tabs): p50 ${q(0.5).toFixed(0)} ms, p95 ${q(0.95).toFixed(0)} ms, min ${times[0].toFixed(0)} ms, max ${times[times.length - 1].toFixed(0)} ms`);
} finally {
  await browser.close();
  backend.stop();
}
