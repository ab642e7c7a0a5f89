// The customer phone page calls a contact flow's entry point and answers
// its menus from the page's keypad (issue 14): the sample order flow, the
// real order service. The page dials +18005550100 from the sample
// customer's number; its state is `flow` while the flow runs; "1" picks
// English, "2" cancels the order; the order service's database has the
// order cancelled, the flow log shows the keys, and the call ends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './harness.mjs';
import { startSampleCenter, JUSTIN, ENGLISH_LINE, getJson, until, loginToken, flowLog } from './sample-center.mjs';

let center;
let token;

before(async () => {
  center = await startSampleCenter({ crm: true });
  token = await loginToken(center.url, 'sam', 'alice-pass');
});

after(() => center?.stop());

test('the phone page dials an entry point and the flow takes its keypad', async () => {
  const browser = await launchBrowser();
  try {
    const phone = await browser.newPage();
    await phone.goto(`${center.crmUrl}/phone/`);
    await phone.getByTestId('phone-from').fill(JUSTIN);
    await phone.getByTestId('phone-queue').fill(ENGLISH_LINE);
    await phone.getByTestId('phone-call').click();
    await phone.locator('[data-testid="phone-status"][data-state="flow"]').waitFor({ timeout: 20000 });
    const id = await phone.evaluate(() => window.phone.contactId);
    assert.match(id, /^c-/);

    // The language menu: 1 (English); then the order menu: 2 (cancel).
    await phone.getByTestId('phone-key-1').click();
    await flowLog(center.url, token, id, (e) => e.block === 'language' && e.branch === '1');
    await phone.getByTestId('phone-key-2').click();
    const record = await flowLog(center.url, token, id, (e) => e.block === 'menu' && e.branch === '2');
    assert.ok(record.flow_log.some((e) => e.block === 'menu' && e.inputs?.digits === '2'), JSON.stringify(record.flow_log));

    await until('the order cancelled', async () => (await getJson(`${center.ordersUrl}/v1/orders/100`)).json?.cancelled === true);
    await phone.locator('[data-testid="phone-status"][data-state="ended"]').waitFor({ timeout: 30000 });
    // The keys are on the contact's timeline too.
    const { json } = await getJson(`${center.url}/v1/contacts/${id}`, token);
    const keys = json.events.filter((e) => e.event === 'caller_digits').map((e) => e.detail);
    assert.deepEqual(keys, ['1', '2']);
  } finally {
    await browser.close();
  }
});
