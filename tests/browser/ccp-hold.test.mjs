// Hold and mute as the agent sees them (issue 15): a held customer makes
// the card say "On hold" with a hold timer, not "Connected"; in a consult
// each party shows its own state; a muted call shows a muted banner; and
// the next call starts unmuted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, screenshot, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser();

async function callerState(id) {
  return (await api(backend.url, 'GET', `/v1/sim/calls/${id}`)).json.state;
}

/** Seconds shown by a m:ss timer. */
function seconds(text) {
  const m = /^(\d+):(\d\d)$/.exec(text.trim());
  assert.ok(m, `a m:ss timer: ${text}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

test('a held customer reads On hold with its own timer, and a consult shows each party', { timeout: 60000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 460 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('en');
  await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
  const id = await ccp.answerSimCall({ play: '' });
  const state = ccp.contact().getByTestId('contact-state');
  assert.equal(await state.innerText(), 'Connected');

  // Talk for over a second, so that a hold timer that restarts is visible.
  await page.waitForFunction(() => /^0:0[1-9]$/.test(document.querySelector('[data-testid="contact-timer"]').textContent));
  await ccp.click('hold');
  await page.locator('[data-testid="contact-state"][data-hold="true"]').waitFor();
  assert.equal(await callerState(id), 'hold');
  assert.equal(await state.innerText(), 'On hold', 'the card says the customer waits');
  assert.equal(await state.getAttribute('data-state'), 'connected', 'the contact itself is still connected');
  assert.ok(seconds(await ccp.contact().getByTestId('contact-timer').innerText()) <= 1, 'the timer counts the hold from zero');
  assert.match(await ccp.contact().getAttribute('class'), /\bhold\b/, 'the card looks held, not only reads so');
  await screenshot(page, 'on-hold');

  await ccp.click('hold');
  await page.locator('[data-testid="contact-state"][data-hold="false"]').waitFor();
  assert.equal(await state.innerText(), 'Connected');

  // A consult: the customer waits on hold while the warehouse is called;
  // each party line says its own state, with its own timer.
  await ccp.click('transfer');
  await ccp.contact().getByTestId('qc-qc-warehouse').click();
  await page.locator('[data-testid="third-party"][data-state="connected"]').waitFor();
  assert.equal(await state.innerText(), 'On hold', 'the customer is on hold during the consult');
  const party = ccp.contact().getByTestId('third-party');
  assert.match(await party.innerText(), /Warehouse · Connected · \d+:\d\d/);
  await screenshot(page, 'consult');
  await ccp.click('swap');
  await page.locator('[data-testid="third-party"][data-state="hold"]').waitFor();
  assert.match(await party.innerText(), /Warehouse · On hold · 0:0[01]/);
  await page.locator('[data-testid="contact-state"][data-hold="false"]').waitFor();
  assert.equal(await state.innerText(), 'Connected', 'after the swap the agent talks to the customer');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a muted call shows a banner, and the next call starts unmuted', { timeout: 60000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 460 } });
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('en');
  await ccp.startShift('bob', 'bob-pass', 'Bob Suzuki');
  await ccp.answerSimCall({ play: '' });
  assert.equal(await page.getByTestId('muted-indicator').count(), 0, 'no banner while unmuted');
  await ccp.click('mute');
  const banner = page.getByTestId('muted-indicator');
  await banner.waitFor();
  assert.equal(await banner.innerText(), 'You are muted');
  await ccp.contact().locator('[data-testid="mute"][aria-pressed="true"]').waitFor();
  await screenshot(page, 'muted');

  // Japanese: the banner is translated.
  await page.getByTestId('language').selectOption('ja');
  assert.equal(await banner.innerText(), 'ミュート中');
  await page.getByTestId('language').selectOption('en');

  // The call ends while muted; the next one starts unmuted.
  await ccp.endAndClear();
  await ccp.expectAgentState('Available');
  await ccp.answerSimCall({ play: '' });
  await ccp.contact().locator('[data-testid="mute"][aria-pressed="false"]').waitFor();
  assert.equal(await page.getByTestId('muted-indicator').count(), 0, 'the new call is not muted');
  assert.equal(await ccp.contact().getByTestId('mute').innerText(), 'Mute');
  await page.close();
});
