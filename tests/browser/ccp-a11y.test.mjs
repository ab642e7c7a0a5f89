// Screen-reader labels: in every main state of the CCP (login, idle with
// settings open, ringing, in a call with the keypad and transfer open,
// after-call work), every visible control has an accessible name, computed
// the way assistive technology does for these elements (aria-labelledby,
// aria-label, a <label>, then the text or title).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser();

async function unnamedControls(page) {
  return page.evaluate(() => {
    const name = (el) => {
      const by = el.getAttribute('aria-labelledby');
      if (by) return by.split(/\s+/).map((id) => document.getElementById(id)?.textContent || '').join(' ').trim();
      const aria = el.getAttribute('aria-label');
      if (aria && aria.trim()) return aria.trim();
      if (el.labels && el.labels.length) return [...el.labels].map((l) => l.textContent).join(' ').trim();
      if (el.tagName === 'INPUT' || el.tagName === 'SELECT' || el.tagName === 'METER') return (el.getAttribute('title') || '').trim();
      return ((el.textContent || '').trim() || el.getAttribute('title') || '').trim();
    };
    const controls = [...document.querySelectorAll('button, select, input, textarea, a[href], meter, [role="button"]')]
      .filter((el) => el.getClientRects().length > 0 && el.type !== 'hidden');
    return {
      count: controls.length,
      unnamed: controls.filter((el) => !name(el)).map((el) => el.dataset.testid || el.outerHTML.slice(0, 80)),
    };
  });
}

test('every visible control has an accessible name, in every main state', async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 460 } });
  const ccp = new CcpPage(page, backend.url);
  const check = async (state) => {
    const { count, unnamed } = await unnamedControls(page);
    assert.ok(count > 0, `${state}: controls found`);
    assert.deepEqual(unnamed, [], `${state}: controls without a name`);
    return count;
  };
  await ccp.open();
  const counts = { login: await check('login') };
  await ccp.login('alice', 'alice-pass');
  await ccp.expectLoggedIn('Alice Tanaka');
  await page.getByTestId('settings-toggle').click();
  counts.idle = await check('idle with settings');
  await page.getByTestId('settings-toggle').click();
  await ccp.setStatus('Available');
  await ccp.expectAgentState('Available');
  await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
  await ccp.expectContactState('incoming');
  counts.ringing = await check('ringing');
  await ccp.click('accept');
  await ccp.expectContactState('connected');
  await ccp.click('keypad');
  await ccp.click('transfer');
  counts.call = await check('in a call, keypad and transfer open');
  await ccp.click('end-call');
  await ccp.expectContactState('ended');
  counts.acw = await check('after-call work');
  console.log(`controls checked: ${JSON.stringify(counts)}`);
  await page.close();
});
