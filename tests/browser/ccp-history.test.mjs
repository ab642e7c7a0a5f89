// Call history and numbers as agents type them (issue 15, item 10): the
// history survives a reload and shows in every tab, with the time of day,
// the wrap-up code chosen and a "Call back" button; numbers typed in the
// national format of the agent's region (03-1234-5678 on a +81 CCP,
// (415) 555-0100 on a +1 one) are dialed as E.164, and the form's examples
// are the region's (never a US number on a +81 form). A logout forgets
// the history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, launchBrowser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

/** The local time of day in the page, as the panel writes it. */
const clock = (page) => page.evaluate(() => {
  const d = new Date();
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
});

test('a +81 CCP dials national numbers, and its history survives a reload with time, wrap-up and call back', async () => {
  const backend = await startBackend('', { countryCode: 81 });
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const ccp = new CcpPage(page, backend.url);
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');

    // The examples are Japanese numbers.
    const field = page.getByTestId('dial-number');
    assert.equal(await field.getAttribute('placeholder'), '03-1234-5678');
    const example = await page.getByTestId('dial-example').innerText();
    assert.match(example, /03-1234-5678/);
    assert.match(example, /\+81 3 1234 5678/);
    assert.doesNotMatch(example, /415|\+1 /, 'no US example on a +81 form');

    // Too short once read as a Japanese number: refused here, with a reason.
    await field.fill('03-12');
    await page.getByTestId('dial').click();
    assert.equal(await ccp.errorText(), 'That number has too few or too many digits.');
    await field.fill('call me');
    await page.getByTestId('dial').click();
    await page.getByTestId('error').filter({ hasText: 'not a phone number' }).waitFor();

    // A national number is dialed as E.164.
    await field.fill('03-5555-0100');
    await page.getByTestId('error').waitFor({ state: 'detached' });
    await page.getByTestId('dial').click();
    await ccp.expectContactState('connecting');
    assert.equal(await ccp.contact().getByTestId('contact-caller').innerText(), '+81355550100');
    await ccp.expectContactState('connected');
    await ccp.click('end-call');
    await ccp.expectContactState('ended');
    await ccp.contact().getByTestId('wrap-up').selectOption('Escalated');
    const before = await clock(page);
    await ccp.click('clear');
    await ccp.expectNoContacts();
    const after = await clock(page);

    const entry = page.getByTestId('history-entry').first();
    await entry.waitFor();
    const check = async (p) => {
      const e = p.getByTestId('history-entry').first();
      assert.equal(await e.getAttribute('data-outcome'), 'outbound');
      assert.equal(await e.getAttribute('data-number'), '+81355550100');
      const time = await e.getByTestId('history-time').innerText();
      assert.ok(time === before || time === after, `time of day ${time} (now ${before}-${after})`);
      assert.match(await e.getByTestId('history-wrap-up').innerText(), /Escalated/);
      assert.match(await e.innerText(), /\+81355550100/);
      assert.match(await e.innerText(), /Outbound/);
    };
    await check(page);

    // Another tab of the same browser shows the same history.
    const other = await context.newPage();
    await new CcpPage(other, backend.url).open();
    await other.getByTestId('history-entry').first().waitFor();
    await check(other);
    await other.close();

    // A reload keeps it.
    await page.reload();
    await ccp.expectLoggedIn('Alice Tanaka');
    await page.getByTestId('history-entry').first().waitFor();
    await check(page);
    assert.equal(await page.getByTestId('history-entry').count(), 1);

    // Call back: the same number again.
    await page.getByTestId('history-entry').first().getByTestId('redial').click();
    await ccp.expectContactState('connecting');
    assert.equal(await ccp.contact().getByTestId('contact-caller').innerText(), '+81355550100');
    assert.equal(await page.getByTestId('redial').first().isVisible(), false, 'no call back while on a call');
    await ccp.expectContactState('connected');
    await ccp.endAndClear();
    await page.locator('[data-testid="history-entry"]').nth(1).waitFor();
    assert.equal(await page.getByTestId('history-entry').count(), 2);
    // Newest first; this one has no wrap-up code.
    assert.equal(await page.getByTestId('history-entry').first().getByTestId('history-wrap-up').innerText(), '');

    // A logout forgets it.
    await page.getByTestId('logout').click();
    await page.getByTestId('login-username').waitFor();
    await ccp.login('alice', 'alice-pass');
    await ccp.expectLoggedIn('Alice Tanaka');
    assert.equal(await page.getByTestId('history-entry').count(), 0, 'history forgotten at logout');
    assert.equal(await page.evaluate(() => localStorage.getItem('switchboard.history')), null);
    await context.close();
  } finally {
    await browser.close();
    backend.stop();
  }
});

test('a +1 CCP dials (415) 555-0100 as +14155550100 and shows US examples', async () => {
  const backend = await startBackend('', { countryCode: 1 });
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const ccp = new CcpPage(page, backend.url);
    await ccp.startShift('bob', 'bob-pass', 'Bob Suzuki');
    assert.equal(await page.getByTestId('dial-number').getAttribute('placeholder'), '(415) 555-0100');
    assert.match(await page.getByTestId('dial-example').innerText(), /\+1 415 555 0100/);
    await page.getByTestId('dial-number').fill('(415) 555-0100');
    await page.getByTestId('dial').click();
    await ccp.expectContactState('connecting');
    assert.equal(await ccp.contact().getByTestId('contact-caller').innerText(), '+14155550100');
    await ccp.expectContactState('connected');
    await ccp.endAndClear();
    await page.locator('[data-testid="history-entry"][data-number="+14155550100"]').waitFor();
  } finally {
    await browser.close();
    backend.stop();
  }
});

test('without a region, a number needs + and the country code, and the example is not a US one', async () => {
  const backend = await startBackend('');
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const ccp = new CcpPage(page, backend.url);
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
    assert.doesNotMatch(await page.getByTestId('dial-example').innerText(), /415/);
    await page.getByTestId('dial-number').fill('03-1234-5678');
    await page.getByTestId('dial').click();
    assert.equal(await ccp.errorText(), 'Type the number with + and the country code.');
    await page.getByTestId('language').selectOption('ja');
    await page.getByTestId('error').filter({ hasText: '国番号' }).waitFor();
  } finally {
    await browser.close();
    backend.stop();
  }
});
