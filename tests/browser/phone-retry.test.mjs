// The customer phone page does not stick after an error (issue 15, "Also"):
// a dial the backend refuses (a queue that does not exist) is shown, and
// the next Call works without reloading the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackendAndBrowser, backend, browser } from './harness.mjs';

useBackendAndBrowser({ crm: true });

test('after a refused dial the phone calls again without a reload', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${backend.crmUrl}/phone/`);
  await page.getByTestId('phone-queue').fill('no-such-queue');
  await page.getByTestId('phone-call').click();
  await page.locator('[data-testid="phone-status"][data-state="error"]').waitFor();
  await page.getByTestId('phone-queue').fill('support');
  await page.getByTestId('phone-call').click();
  await page.locator('[data-testid="phone-status"][data-state="queued"]').waitFor({ timeout: 5000 });
  assert.equal(await page.getByTestId('phone-hangup').isDisabled(), false, 'the new call can be hung up');
  await page.getByTestId('phone-hangup').click();
  await page.locator('[data-testid="phone-status"][data-state="ended"]').waitFor();
  await context.close();
});
