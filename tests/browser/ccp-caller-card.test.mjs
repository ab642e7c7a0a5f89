// The caller card (issue 15, item 9) must not read like debug output: the
// customer's name headlines when known, with the number below; the
// attributes are labelled rows with display names ("Order ID", not
// "orderId"), never a key dump; a ringing call counts down to its ring
// timeout and shows how long the customer has waited; after-call work says
// when the customer ended the call. In English and Japanese.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, screenshot, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser({ ringTimeoutS: 30 });

/** Seconds of an `m:ss` text. */
const seconds = (text) => {
  const [m, s] = text.split(':').map(Number);
  return m * 60 + s;
};

async function rows(ccp) {
  const attributes = ccp.contact().getByTestId('contact-attributes');
  return {
    labels: await attributes.getByTestId('attribute-label').allInnerTexts(),
    values: await attributes.getByTestId('attribute-value').allInnerTexts(),
  };
}

test('a known customer headlines by name with labelled rows, a ring countdown and the wait; ACW says the customer ended the call', { timeout: 60000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 460 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('en');
  await ccp.login('alice', 'alice-pass');
  await ccp.expectLoggedIn('Alice Tanaka');
  await ccp.setStatus('Available');
  await ccp.expectAgentState('Available');

  const id = await ccp.ringSimCall();
  const card = ccp.contact();
  assert.equal(await card.getByTestId('contact-caller').innerText(), 'Justin', 'the name headlines');
  assert.equal(await card.getByTestId('contact-number').innerText(), '+819012345678', 'the number goes below');
  const { labels, values } = await rows(ccp);
  assert.deepEqual(labels, ['Cancelled', 'Item', 'Order ID', 'Shipping date']);
  assert.deepEqual(values, ['No', 'The North Face Summit L3 Ventrix 2.0 Hoodie', '100', '2018-11-12']);
  const text = await card.innerText();
  assert.doesNotMatch(text, /customerName|orderId|shippingDate/, `no raw keys: ${text}`);

  // The countdown falls toward the 30 s ring timeout; the wait grows.
  const detail = card.getByTestId('contact-detail');
  const read = async () => {
    const m = /^Rings out in (\d+:\d\d) · Waiting (\d+:\d\d)$/.exec(await detail.innerText());
    assert.ok(m, `countdown and wait: ${await detail.innerText()}`);
    return { left: seconds(m[1]), waited: seconds(m[2]) };
  };
  const first = await read();
  assert.ok(first.left > 20 && first.left <= 30, `rings out within the timeout: ${first.left}`);
  // Both follow the clock: the time left falls, the wait grows (each
  // rounds down to whole seconds on its own, so wait for each).
  await page.waitForFunction(([left, waited]) => {
    const m = /Rings out in (\d+):(\d\d) · Waiting (\d+):(\d\d)/.exec(document.querySelector('[data-testid="contact-detail"]').textContent);
    return m && Number(m[1]) * 60 + Number(m[2]) < left && Number(m[3]) * 60 + Number(m[4]) > waited;
  }, [first.left, first.waited]);
  const later = await read();
  assert.ok(later.left < first.left && later.waited > first.waited, `left ${first.left} then ${later.left}, waited ${first.waited} then ${later.waited}`);
  await screenshot(page, 'caller-card-ringing');

  await page.getByTestId('language').selectOption('ja');
  assert.deepEqual((await rows(ccp)).labels, ['キャンセル済み', '商品', '注文番号', '発送日']);
  assert.match(await detail.innerText(), /^応答期限まで \d+:\d\d · 待ち時間 \d+:\d\d$/);
  await page.getByTestId('language').selectOption('en');

  await ccp.click('accept');
  await ccp.expectContactState('connected');
  assert.equal(await detail.isVisible(), false, 'no countdown once answered');

  // The customer hangs up: after-call work says who ended it.
  assert.ok((await api(backend.url, 'DELETE', `/v1/sim/calls/${id}`)).status < 300);
  await ccp.expectContactState('ended');
  await card.getByTestId('contact-detail').filter({ hasText: /^Customer ended the call$/ }).waitFor();
  await page.getByTestId('language').selectOption('ja');
  await card.getByTestId('contact-detail').filter({ hasText: '顧客が通話を終了しました' }).waitFor();
  await page.getByTestId('language').selectOption('en');
  await ccp.click('clear');
  await ccp.expectNoContacts();
  assert.deepEqual(errors, []);
  await page.close();
});

test('an unknown caller headlines by number, with no rows; ending it yourself says so', { timeout: 60000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 460 } });
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('en');
  await ccp.login('bob', 'bob-pass');
  await ccp.expectLoggedIn('Bob Suzuki');
  await ccp.setStatus('Available');
  await ccp.expectAgentState('Available');
  await ccp.ringSimCall({ from: '+815012340000' });
  const card = ccp.contact();
  assert.equal(await card.getByTestId('contact-caller').innerText(), '+815012340000');
  assert.equal(await card.getByTestId('contact-number').isVisible(), false, 'the number is not repeated');
  assert.equal(await card.getByTestId('contact-attributes').count(), 0, 'no attribute rows');
  await ccp.click('accept');
  await ccp.expectContactState('connected');
  await ccp.click('end-call');
  await ccp.expectContactState('ended');
  await card.getByTestId('contact-detail').filter({ hasText: /^You ended the call$/ }).waitFor();
  await ccp.click('clear');
  await ccp.expectNoContacts();
  await page.close();
});
