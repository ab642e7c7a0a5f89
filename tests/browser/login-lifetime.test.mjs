// The login's lifetime in the real CCP: with a 4 s token, the CCP refreshes
// by itself when the backend warns (`token_expiring`), stores the new token
// where it keeps the login, and keeps working past the first token's
// expiry; logging out revokes the token at the backend, not only in the
// browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backend, browser, useBackendAndBrowser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser({ extraServer: 'token_ttl_s = 4\ntoken_warning_s = 2' });

/** HTTP status of an authenticated request with `token`. */
async function bearerStatus(token) {
  const res = await fetch(`${backend.url}/v1/contacts/c-0000000000000000`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return res.status;
}

async function waitFor(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const savedToken = (page) => page.evaluate(() => localStorage.getItem('switchboard.token'));

test('the CCP refreshes its token by itself and outlives the first one', async () => {
  const page = await browser.newPage();
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  const loggedInAt = Date.now();
  await ccp.login('alice', 'alice-pass');
  await ccp.expectLoggedIn('Alice Tanaka');
  const first = await waitFor('the saved token', () => savedToken(page));
  assert.equal(await bearerStatus(first), 404, 'the first token works');

  // The backend warns 2 s before expiry; the CCP answers with refresh_token.
  const second = await waitFor('a refreshed token', async () => {
    const t = await savedToken(page);
    return t && t !== first ? t : null;
  }, 6000);

  // Past the first token's expiry the socket and the panel still work.
  await waitFor('the first token to expire', async () => (await bearerStatus(first)) === 401, 8000);
  assert.ok(Date.now() - loggedInAt >= 4000, 'it lived its 4 s');
  assert.equal(await bearerStatus(second), 404, 'the refreshed one works');
  await page.locator('[data-testid="link-state"].open').waitFor({ timeout: 1000 });
  await ccp.setStatus('Available');
  await ccp.expectAgentState('Available');
  assert.equal(await page.getByTestId('login-username').count(), 0, 'not sent back to the login form');
  await page.close();
});

test('logging out revokes the token at the backend', async () => {
  const page = await browser.newPage();
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await ccp.login('bob', 'bob-pass');
  await ccp.expectLoggedIn('Bob Suzuki');
  const token = await waitFor('the saved token', () => savedToken(page));
  assert.equal(await bearerStatus(token), 404);
  await page.getByTestId('logout').click();
  await page.getByTestId('login-username').waitFor();
  await waitFor('the token to be revoked', async () => (await bearerStatus(token)) === 401, 5000);
  assert.equal(await savedToken(page), null);
  await page.close();
});
