// Raw internal names never on screen (issue 15): system states read as
// words in English and Japanese, an outbound call shows no empty queue
// slot, and the Japanese panel renders with a CJK font that the project's
// own tools install (`cargo xtask install`: fonts-noto-cjk).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { screenshot, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser();

const RAW = /CallingCustomer|AfterCallWork|MissedCallAgent|\u00b7\s*\u00b7/;

test('an outbound call shows translated labels and no empty queue, in English and Japanese', { timeout: 60000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 460 } });
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('en');
  await ccp.login('bob', 'bob-pass');
  await ccp.expectLoggedIn('Bob Suzuki');
  // The warehouse answers after ringing a while: long enough to read the dialing card.
  await page.getByTestId('dial-qc-warehouse').click();
  await ccp.expectContactState('connecting');
  await ccp.expectAgentState('CallingCustomer');
  assert.equal(await page.getByTestId('agent-state').innerText(), 'Calling customer');
  const card = await ccp.contact().innerText();
  assert.doesNotMatch(card, RAW, `no raw names or empty slots: ${card}`);
  assert.equal(await ccp.contact().getByTestId('contact-queue').count(), 0, 'no queue slot on an outbound call');

  await ccp.expectContactState('connected');
  await page.getByTestId('language').selectOption('ja');
  assert.equal(await page.getByTestId('agent-state').innerText(), '通話中');
  assert.equal(await ccp.contact().getByTestId('contact-state').innerText(), '接続中');
  assert.doesNotMatch(await page.locator('main').innerText(), RAW);
  await screenshot(page, 'japanese-on-call');
  await ccp.click('end-call');
  await ccp.expectAgentState('AfterCallWork');
  assert.equal(await page.getByTestId('agent-state').innerText(), '後処理');
  assert.doesNotMatch(await page.locator('main').innerText(), RAW);
  await ccp.click('clear');
  await ccp.expectNoContacts();
  await page.getByTestId('language').selectOption('en');
  await page.close();
});

test('a Japanese font is installed, so Japanese screenshots are not boxes', () => {
  const families = execFileSync('fc-list', [':lang=ja', 'family'], { encoding: 'utf8' });
  assert.match(families, /\S/, 'fc-list finds a font covering Japanese (run `cargo xtask install`)');
});
