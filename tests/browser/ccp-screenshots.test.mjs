// Screenshots of the CCP's main states (issue 15): ringing, on call, on
// hold, consult, conference, after-call work, missed, displaced and an
// error, each in the light theme, the dark theme and Japanese, at the
// smallest CCP size (320 x 460). Written into
// tests/browser/artifacts/states/ (`<state>-<light|dark|ja>.png`). The
// Japanese ones need a CJK font, which `cargo xtask install` installs
// (fonts-noto-cjk, xtask/src/tools.rs); the test fails without one rather
// than write screenshots of boxes. Each state is reached through the UI
// and checked before it is taken.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { api, ARTIFACTS, screenshot, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser({ ringTimeoutS: 6 });

const VIEWPORT = { viewport: { width: 320, height: 460 } };
const taken = [];

/** The page in the light theme, the dark theme, then Japanese (light). */
async function shoot(page, state) {
  const theme = page.getByTestId('theme');
  const dark = async (on) => {
    if ((await theme.getAttribute('aria-pressed')) !== String(on)) await theme.click();
    await page.locator(`html[data-theme="${on ? 'dark' : 'light'}"]`).waitFor({ state: 'attached' });
  };
  await dark(false);
  await screenshot(page, `states/${state}-light`);
  await dark(true);
  await screenshot(page, `states/${state}-dark`);
  await dark(false);
  await page.getByTestId('language').selectOption('ja');
  await page.locator('html[lang="ja"]').waitFor({ state: 'attached' });
  await screenshot(page, `states/${state}-ja`);
  await page.getByTestId('language').selectOption('en');
  taken.push(state);
}

test('every main state, in light, dark and Japanese', { timeout: 120000 }, async () => {
  const families = execFileSync('fc-list', [':lang=ja', 'family'], { encoding: 'utf8' });
  assert.match(families, /\S/, 'a font covering Japanese is installed (cargo xtask install)');

  const alice = new CcpPage(await (await browser.newContext(VIEWPORT)).newPage(), backend.url);
  const bob = new CcpPage(await (await browser.newContext(VIEWPORT)).newPage(), backend.url);
  const errors = [];
  alice.page.on('pageerror', (e) => errors.push(e.message));
  await alice.open();
  await alice.page.getByTestId('language').selectOption('en');
  await alice.login('alice', 'alice-pass');
  await alice.expectLoggedIn('Alice Tanaka');
  await alice.setStatus('Available');
  await alice.expectAgentState('Available');

  // An error: a number the backend refuses.
  await alice.page.getByTestId('dial-number').fill('12');
  await alice.page.getByTestId('dial').click();
  await alice.page.getByTestId('error').waitFor();
  await shoot(alice.page, 'error');
  await alice.page.getByTestId('dial-number').fill('');
  await alice.page.getByTestId('error').waitFor({ state: 'detached' });

  // Missed: a call rings out (6 s here).
  const unanswered = await alice.ringSimCall();
  await alice.page.locator('[data-testid="contact-state"][data-state="missed"]').waitFor({ timeout: 20000 });
  await shoot(alice.page, 'missed');
  // The caller (back in the queue) gives up before alice is Available again.
  assert.ok((await api(backend.url, 'DELETE', `/v1/sim/calls/${unanswered}`)).status < 300);
  await alice.setStatus('Available');
  await alice.expectNoContacts();

  const id = await alice.ringSimCall();
  await shoot(alice.page, 'ringing');
  await alice.click('accept');
  await alice.expectContactState('connected');
  await shoot(alice.page, 'on-call');
  await alice.click('hold');
  await alice.page.locator('[data-testid="contact-state"][data-hold="true"]').waitFor();
  await shoot(alice.page, 'on-hold');
  await alice.click('hold');
  await alice.page.locator('[data-testid="contact-state"][data-hold="false"]').waitFor();

  // Consult: bob is brought in while the customer waits on hold.
  await bob.startShift('bob', 'bob-pass', 'Bob Suzuki');
  await alice.click('transfer');
  await alice.contact().getByTestId('qc-qc-bob').click();
  await bob.expectContactState('incoming');
  await bob.click('accept');
  await alice.page.locator('[data-testid="third-party"][data-state="connected"]').waitFor();
  await shoot(alice.page, 'consult');
  await alice.click('conference');
  await alice.page.locator('[data-testid="contact-state"][data-hold="false"]').waitFor();
  await alice.page.locator('[data-testid="third-party"][data-state="connected"]').waitFor();
  await shoot(alice.page, 'conference');

  // After-call work: the customer hangs up on bob and alice.
  assert.ok((await api(backend.url, 'DELETE', `/v1/sim/calls/${id}`)).status < 300);
  await alice.expectContactState('ended');
  await shoot(alice.page, 'after-call-work');
  await alice.click('clear');
  await alice.expectNoContacts();

  // Displaced: alice logs in in another browser.
  const other = new CcpPage(await (await browser.newContext(VIEWPORT)).newPage(), backend.url);
  await other.open();
  await other.login('alice', 'alice-pass');
  await other.expectLoggedIn('Alice Tanaka');
  await alice.page.getByTestId('displaced').waitFor();
  await shoot(alice.page, 'displaced');

  assert.deepEqual(taken, ['error', 'missed', 'ringing', 'on-call', 'on-hold', 'consult', 'conference', 'after-call-work', 'displaced']);
  for (const state of taken) {
    for (const variant of ['light', 'dark', 'ja']) {
      const file = join(ARTIFACTS, 'states', `${state}-${variant}.png`);
      assert.ok(existsSync(file) && statSync(file).size > 1000, `${file} written`);
    }
  }
  assert.deepEqual(errors, []);
});
