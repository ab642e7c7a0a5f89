// A displaced session (issue 15): when the same agent opens the CCP in
// another browser, the old window stops looking alive. It says it was
// signed in elsewhere, offers no actions on the (stale) call or status,
// and can take the session back, which displaces the other window in turn.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { screenshot, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser();

async function expectDisplaced(ccp) {
  await ccp.page.getByTestId('displaced').waitFor();
  assert.match(await ccp.page.getByTestId('displaced').innerText(), /signed in in another window/);
  // Nothing on screen claims a live session or offers its actions.
  for (const id of ['status-select', 'agent-state', 'link-state', 'contact', 'dial', 'login-submit']) {
    assert.equal(await ccp.page.getByTestId(id).count(), 0, `no ${id} in a displaced window`);
  }
}

test('a window displaced by a newer login says so, and can take the session back', { timeout: 60000 }, async () => {
  // Two browser contexts: two browsers, each with its own saved login.
  const first = new CcpPage(await (await browser.newContext({ viewport: { width: 320, height: 460 } })).newPage(), backend.url);
  const second = new CcpPage(await (await browser.newContext({ viewport: { width: 320, height: 460 } })).newPage(), backend.url);
  const errors = [];
  first.page.on('pageerror', (e) => errors.push(e.message));
  await first.open();
  await first.page.getByTestId('language').selectOption('en');
  await first.login('alice', 'alice-pass');
  await first.expectLoggedIn('Alice Tanaka');

  // A second tab of the first browser mirrors the first (it holds no socket).
  const follower = new CcpPage(await first.page.context().newPage(), backend.url);
  await follower.open();
  await follower.expectLoggedIn('Alice Tanaka');
  await follower.page.getByTestId('tab-role').waitFor();

  await second.open();
  await second.page.getByTestId('language').selectOption('en');
  await second.login('alice', 'alice-pass');
  await second.expectLoggedIn('Alice Tanaka');

  await expectDisplaced(first);
  await expectDisplaced(follower);
  await screenshot(first.page, 'displaced');
  // The second window is the live one: its status change works.
  await second.setStatus('Lunch');
  await second.expectAgentState('Lunch');

  // The first window takes the session back, with its kept login.
  await first.page.getByTestId('take-back').click();
  await first.expectLoggedIn('Alice Tanaka');
  await first.expectAgentState('Lunch');
  await expectDisplaced(second);
  assert.equal(await first.page.getByTestId('displaced').count(), 0);
  await follower.expectLoggedIn('Alice Tanaka');
  assert.equal(await follower.page.getByTestId('displaced').count(), 0);
  assert.deepEqual(errors, []);
  await first.page.context().close();
  await second.page.context().close();
});
