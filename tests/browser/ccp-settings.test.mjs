// Settings in the CCP with Chromium's fake media devices: the device
// selects list the browser's audio devices, a choice is remembered across
// a reload (under the localStorage keys the engine, the ringer and the SDK
// read), a hot-plugged headset appears on `devicechange`, the level meter
// follows the fake microphone's beep, the meter's microphone is released
// when the section closes, and a call opens the chosen devices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { screenshot, useBackendAndBrowser, backend, browser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

useBackendAndBrowser();

test('settings list the fake devices, remember a choice, and meter the microphone', async () => {
  const context = await browser.newContext({ viewport: { width: 320, height: 460 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Count live microphone tracks the page holds, to see the meter let go.
  // A headset "plugged in" later: listed on top of the browser's devices.
  await page.addInitScript(() => {
    globalThis.__pluggedIn = [];
    const list = navigator.mediaDevices.enumerateDevices.bind(navigator.mediaDevices);
    navigator.mediaDevices.enumerateDevices = async () => [...await list(), ...globalThis.__pluggedIn];
  });
  await page.addInitScript(() => {
    globalThis.__liveTracks = new Set();
    const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (c) => {
      const s = await gum(c);
      for (const t of s.getTracks()) {
        globalThis.__liveTracks.add(t);
        const stop = t.stop.bind(t);
        t.stop = () => { globalThis.__liveTracks.delete(t); stop(); };
      }
      return s;
    };
  });
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('en');
  await ccp.login('alice', 'alice-pass');
  await ccp.expectLoggedIn('Alice Tanaka');

  const browserDevices = await page.evaluate(async () => (await navigator.mediaDevices.enumerateDevices())
    .filter((d) => d.kind.startsWith('audio') && !['default', 'communications', ''].includes(d.deviceId))
    .map((d) => ({ kind: d.kind, id: d.deviceId, label: d.label })));
  const inputs = browserDevices.filter((d) => d.kind === 'audioinput');
  const outputs = browserDevices.filter((d) => d.kind === 'audiooutput');
  assert.ok(inputs.length >= 1 && outputs.length >= 1, `Chromium offers fake devices: ${JSON.stringify(browserDevices)}`);

  await ccp.openSettings();
  const mic = await ccp.deviceOptions('microphone');
  assert.deepEqual(mic.map((o) => o.value), ['', ...inputs.map((d) => d.id)], 'Default, then every microphone');
  for (const [i, d] of inputs.entries()) {
    assert.equal(mic[i + 1].text, d.label || `Microphone ${i + 1}`);
  }
  for (const kind of ['speaker', 'ringer']) {
    const opts = await ccp.deviceOptions(kind);
    assert.deepEqual(opts.map((o) => o.value), ['', ...outputs.map((d) => d.id)], `${kind}: Default, then every output`);
  }
  // Every control is labelled for assistive technology.
  for (const id of ['microphone-select', 'speaker-select', 'ringer-select', 'mic-level']) {
    const name = await page.getByTestId(id).evaluate((el) => el.labels?.[0]?.innerText ?? '');
    assert.ok(name.trim().length > 0, `${id} has a label`);
  }

  // The level meter follows the fake microphone (it beeps every second).
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="mic-level"]').value) > 0.05, null, { timeout: 5000 });
  assert.ok(await page.evaluate(() => globalThis.__liveTracks.size) >= 1, 'the meter holds a microphone');
  await screenshot(page, 'settings');

  // Choose the last microphone and the last output as speaker.
  const micChoice = inputs.at(-1).id;
  await page.getByTestId('microphone-select').selectOption(micChoice);
  const speakerChoice = outputs.at(-1).id;
  await page.getByTestId('speaker-select').selectOption(speakerChoice);
  const stored = await page.evaluate(() => ({
    microphone: localStorage.getItem('switchboard.device.microphone'),
    speaker: localStorage.getItem('switchboard.device.speaker'),
    ringer: localStorage.getItem('switchboard.device.ringer'),
  }));
  assert.deepEqual(stored, { microphone: micChoice, speaker: speakerChoice, ringer: null });
  // The meter reopens on the chosen microphone and still moves.
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="mic-level"]').value) > 0.05, null, { timeout: 5000 });

  // A headset plugged in while the section is open appears, and goes when unplugged.
  const headset = page.getByTestId('microphone-select').locator('option[value="usb-headset"]');
  await page.evaluate(() => {
    globalThis.__pluggedIn.push({ kind: 'audioinput', deviceId: 'usb-headset', groupId: 'h', label: 'USB Headset' });
    navigator.mediaDevices.dispatchEvent(new Event('devicechange'));
  });
  await headset.waitFor({ state: 'attached', timeout: 3000 });
  assert.equal(await headset.textContent(), 'USB Headset');
  assert.equal(await page.getByTestId('microphone-select').inputValue(), micChoice, 'the choice survives the refresh');
  await page.evaluate(() => {
    globalThis.__pluggedIn.length = 0;
    navigator.mediaDevices.dispatchEvent(new Event('devicechange'));
  });
  await headset.waitFor({ state: 'detached', timeout: 3000 });

  // Closing the section releases the meter's microphone.
  await page.getByTestId('settings-toggle').click();
  await page.getByTestId('settings').waitFor({ state: 'detached' });
  await page.waitForFunction(() => globalThis.__liveTracks.size === 0, null, { timeout: 3000 });

  await page.reload();
  await ccp.expectLoggedIn('Alice Tanaka');
  await ccp.openSettings();
  await ccp.deviceOptions('microphone');
  assert.equal(await page.getByTestId('microphone-select').inputValue(), micChoice, 'microphone remembered');
  assert.equal(await page.getByTestId('speaker-select').inputValue(), speakerChoice, 'speaker remembered');
  assert.equal(await page.getByTestId('ringer-select').inputValue(), '', 'ringer still the default');

  // Back to the default forgets the choice.
  await page.getByTestId('microphone-select').selectOption('');
  assert.equal(await page.evaluate(() => localStorage.getItem('switchboard.device.microphone')), null);

  // In Japanese the section is translated.
  await page.getByTestId('language').selectOption('ja');
  assert.equal(await page.getByTestId('settings-toggle').innerText(), '設定');
  assert.equal((await ccp.deviceOptions('microphone'))[0].text, '既定');
  await page.getByTestId('language').selectOption('en');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a call uses the chosen microphone and speaker', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const ccp = new CcpPage(page, backend.url);
  await ccp.open();
  await page.getByTestId('language').selectOption('en');
  await ccp.login('alice', 'alice-pass');
  await ccp.expectLoggedIn('Alice Tanaka');
  const ids = (kind) => page.evaluate(async (k) => (await navigator.mediaDevices.enumerateDevices())
    .filter((d) => d.kind === k && !['default', 'communications', ''].includes(d.deviceId))
    .map((d) => d.deviceId), kind);
  const inputs = await ids('audioinput');
  const outputs = await ids('audiooutput');
  await ccp.openSettings();
  await page.getByTestId('microphone-select').selectOption(inputs.at(-1));
  assert.ok(inputs.length && outputs.length, 'fake devices listed');
  await page.getByTestId('speaker-select').selectOption(outputs.at(-1));
  await page.getByTestId('settings-toggle').click();
  await page.getByTestId('dial-number').fill('+14155550100');
  await page.getByTestId('dial').click();
  await ccp.expectContactState('connected');
  await page.waitForFunction(() => globalThis.__switchboardDevices, null, { timeout: 10000 });
  const used = await page.evaluate(() => globalThis.__switchboardDevices);
  assert.equal(used.microphone, inputs.at(-1), 'the engine opened the chosen microphone');
  // Chromium's AudioContext.setSinkId takes a listed output.
  assert.equal(used.speaker, outputs.at(-1), 'the engine plays to the chosen speaker');
  // Another speaker chosen mid-call takes the call's sound at once.
  await ccp.openSettings();
  await page.getByTestId('speaker-select').selectOption(outputs[0]);
  await page.waitForFunction((id) => globalThis.__switchboardDevices.speaker === id, outputs[0], { timeout: 3000 });
  await page.getByTestId('settings-toggle').click();
  await ccp.click('end-call');
  await ccp.expectContactState('ended');
  await ccp.click('clear');
  await ccp.expectNoContacts();
  await context.close();
});
