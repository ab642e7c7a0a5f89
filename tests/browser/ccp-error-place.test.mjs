// Errors next to what caused them, gone when their cause ends (issue 15,
// item 6): a refused number shows right below the dial form (above the
// call history and settings, not at the foot of the page) and goes when
// the number is edited; a denied microphone shows right below the call's
// card and goes when the call ends, with no action from the agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser();

/** Vertical extent of a test id's first element. */
const box = async (page, testId) => page.getByTestId(testId).first().boundingBox();

test('a refused number shows below the dial form and goes when the number is edited', async () => {
  const page = await browser.newPage({ viewport: { width: 320, height: 900 } });
  const ccp = new CcpPage(page, backend.url);
  await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
  await page.getByTestId('dial-number').fill('12');
  await page.getByTestId('dial').click();
  assert.match(await ccp.errorText(), /^Type the number with \+ and the country code/);
  const [form, error, settings] = [await box(page, 'dial-number'), await box(page, 'error'), await box(page, 'settings-toggle')];
  assert.ok(error.y >= form.y + form.height, `the error is below the dial form (${error.y} vs ${form.y + form.height})`);
  assert.ok(error.y + error.height <= settings.y, `and above the settings (${error.y + error.height} vs ${settings.y})`);
  await page.getByTestId('dial-number').fill('+81355550100');
  await page.getByTestId('error').waitFor({ state: 'detached' });
  await page.close();
});

test('a denied microphone shows below the call and goes when the call ends', async () => {
  const context = await browser.newContext({ viewport: { width: 320, height: 900 } });
  await context.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  const page = await context.newPage();
  const ccp = new CcpPage(page, backend.url);
  await ccp.startShift('bob', 'bob-pass', 'Bob Suzuki');
  const id = await ccp.answerSimCall();
  assert.match(await ccp.errorText(), /Microphone access was denied/);
  const [card, error] = [await box(page, 'contact'), await box(page, 'error')];
  assert.ok(error.y >= card.y + card.height, 'the error is right below the card');
  // The customer hangs up: the call (the error's cause) is over.
  assert.ok((await api(backend.url, 'DELETE', `/v1/sim/calls/${id}`)).status < 300);
  await ccp.expectContactState('ended');
  await page.getByTestId('error').waitFor({ state: 'detached' });
  await ccp.click('clear');
  await ccp.expectNoContacts();
  await context.close();
});
