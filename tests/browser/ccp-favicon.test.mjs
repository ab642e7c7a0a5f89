// The CCP has a favicon (issue 15, "Also"): the page names one, the
// backend serves it as SVG, and opening the CCP makes no failing request
// (no /favicon.ico 404 in the browser's log).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser();

test('the CCP names a favicon that is served, and no request fails', async () => {
  const page = await browser.newPage();
  const failed = [];
  page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
  page.on('requestfailed', (r) => failed.push(`failed ${r.url()}`));
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  const href = await page.locator('link[rel="icon"]').evaluate((l) => l.href);
  assert.equal(new URL(href).pathname, '/ccp/favicon.svg');
  const icon = await api(backend.url, 'GET', '/ccp/favicon.svg');
  assert.equal(icon.status, 200);
  assert.match(icon.headers.get('content-type'), /^image\/svg\+xml/);
  assert.match(icon.text, /^<svg /);
  // The browser fetches the icon after the load; give it the time to.
  await page.waitForResponse((r) => r.url() === href, { timeout: 5000 }).catch(() => {});
  assert.deepEqual(failed, []);
  await page.close();
});
