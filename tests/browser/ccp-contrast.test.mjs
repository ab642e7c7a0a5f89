// WCAG 2.1 AA contrast of the CCP in its light and dark themes: the login
// form, the idle panel with Settings open, and a ringing call. Every
// visible text is measured against its effective background: 4.5:1, or
// 3:1 for large text (24 px, or 18.66 px bold); status dots 3:1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, screenshot, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';
import { auditContrast } from './contrast.mjs';

useBackendAndBrowser();

for (const theme of ['light', 'dark']) {
  test(`every text in the ${theme} theme meets WCAG AA contrast`, async (t) => {
    const context = await browser.newContext({ viewport: { width: 320, height: 900 } });
    await context.addInitScript((t) => localStorage.setItem('switchboard.theme', t), theme);
    const page = await context.newPage();
    const ccp = new CcpPage(page, backend.url);
    const audit = async (where) => {
      assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), theme);
      const { checked, failures } = await page.evaluate(auditContrast);
      assert.ok(checked >= 5, `${where}: measured ${checked} texts`);
      assert.deepEqual(failures, [], `${theme} ${where}: ${JSON.stringify(failures, null, 1)}`);
      t.diagnostic(`${theme} ${where}: ${checked} texts at AA`);
    };
    await ccp.open();
    await page.getByTestId('language').selectOption('en');
    await page.getByTestId('login-username').waitFor();
    await audit('login');
    // An error message too.
    await ccp.login('alice', 'wrong');
    await page.getByTestId('error').waitFor();
    await audit('login error');

    await ccp.login('alice', 'alice-pass');
    await ccp.expectLoggedIn('Alice Tanaka');
    await ccp.openSettings();
    await audit('idle with settings');
    await page.getByTestId('settings-toggle').click();

    await ccp.setStatus('Available');
    await ccp.expectAgentState('Available');
    await audit('available');
    const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
    await ccp.expectContactState('incoming');
    await audit('ringing');
    await screenshot(page, `contrast-${theme}-ringing`);
    await ccp.click('accept');
    await ccp.expectContactState('connected');
    await audit('connected');
    await ccp.click('end-call');
    await ccp.expectContactState('ended');
    await audit('after-call work');
    await ccp.click('clear');
    await ccp.expectNoContacts();
    await api(backend.url, 'DELETE', `/v1/sim/calls/${placed.json.contact_id}`);
    await context.close();
  });
}
