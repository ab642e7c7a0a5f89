// The CCP's call controls, checked on the audio the caller hears: talking,
// then Hold (the caller hears hold music, not the agent), then Resume with
// Mute (silence), then Unmute and key 5 on the keypad (770 + 1336 Hz).
// The simulated caller says nothing, so its recording holds only what the
// agent side sent it. The quality indicator shows while the call has audio.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, launchBrowser, api, screenshot, simHeaders } from './harness.mjs';
import { CcpPage } from './pages.mjs';
import { speechWav, readWav } from './audio.mjs';

let backend;
let agentWav;

before(async () => {
  backend = await startBackend();
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-controls-'));
  agentWav = speechWav(dir, 'agent', 'I am checking your order now, it shipped on the twelfth and should arrive tomorrow.');
});

after(() => backend?.stop());

/** Share of the signal's power at `f` Hz (Goertzel), ~1 for a pure tone. */
function toneShare(x, f) {
  const w = (2 * Math.PI * f) / 48000;
  const c = 2 * Math.cos(w);
  let s1 = 0; let s2 = 0; let total = 0;
  for (const v of x) { const s0 = v + c * s1 - s2; s2 = s1; s1 = s0; total += v * v; }
  if (total < 1e-9) return 0;
  return (s1 * s1 + s2 * s2 - c * s1 * s2) / total / (x.length / 2);
}
const levelDb = (x) => 10 * Math.log10(x.reduce((s, v) => s + v * v, 0) / Math.max(1, x.length) + 1e-12);

test('hold, mute and the keypad act on the caller\'s audio', async () => {
  const browser = await launchBrowser([`--use-file-for-fake-audio-capture=${agentWav}`]);
  try {
    const page = await browser.newPage();
    const ccp = new CcpPage(page, backend.url);
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
    const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support', play: '' });
    const id = placed.json.contact_id;
    await ccp.expectContactState('incoming');
    // The caller's recording starts when the bridge joins the call, at the
    // accept: the marks count from there.
    await ccp.click('accept');
    const t0 = Date.now();
    const at = () => Date.now() - t0;
    const marks = {};
    await ccp.expectContactState('connected');
    await page.waitForTimeout(3500);
    await page.getByTestId('call-quality').waitFor();
    assert.match(await page.getByTestId('call-quality').innerText(), /MOS \d\.\d/);
    // Each segment starts once the screen shows the backend took the
    // action (a click on a loaded machine can take hundreds of ms), and
    // ends before the next click.
    const held = (on) => page.locator(`[data-testid="contact-state"][data-hold="${on}"]`).waitFor();
    marks.hold = at(); await ccp.click('hold'); await held(true);
    marks.held = at();
    await page.waitForTimeout(3000);
    marks.resume = at(); await ccp.click('hold'); await held(false);
    await ccp.click('mute'); await page.getByTestId('muted-indicator').waitFor();
    marks.muted = at();
    await page.waitForTimeout(3000);
    marks.unmute = at(); await ccp.click('mute');
    await ccp.click('keypad');
    await page.waitForTimeout(300);
    marks.key = at(); await ccp.contact().getByTestId('key-5').click();
    assert.equal(await ccp.contact().getByTestId('keypad-typed').innerText(), '5');
    await page.waitForTimeout(1500);
    await screenshot(page, 'in-call-keypad');
    await ccp.click('end-call');
    await ccp.expectContactState('ended');

    const res = await fetch(`${backend.url}/v1/sim/calls/${id}/heard`, { headers: simHeaders() });
    assert.equal(res.status, 200);
    const heard = readWav(Buffer.from(await res.arrayBuffer())).samples;
    const seg = (a, b) => heard.slice(Math.round(a * 48), Math.round(b * 48));
    const talking = seg(1000, marks.hold - 300);
    const hold = seg(marks.held + 500, marks.resume - 300);
    // The caller's recording runs on its own clock, a few hundred ms
    // behind the page's marks and more when fewer packets are lost on the
    // way (the media worker loses none to a busy page): the quietest
    // 1.5 s within the muted span, allowed 700 ms of drift, must be
    // silent (the agent's fake microphone speaks with pauses far shorter).
    const span = seg(marks.muted, marks.unmute + 700);
    let muted = span.slice(0, 72000);
    for (let i = 0; i + 72000 <= span.length; i += 4800) {
      const w = span.slice(i, i + 72000);
      if (levelDb(w) < levelDb(muted)) muted = w;
    }
    // Hold music plays one note at a time: in each 100 ms window, the share
    // of the strongest note. Speech would spread its energy elsewhere.
    const windows = [];
    for (let i = 0; i + 4800 <= hold.length; i += 4800) {
      const w = hold.slice(i, i + 4800);
      if (levelDb(w) > -50) windows.push(Math.max(...[523.25, 659.25, 783.99].map((f) => toneShare(w, f))));
    }
    const music = windows.reduce((a, v) => a + v, 0) / Math.max(1, windows.length);
    // Key 5 is 770 Hz and 1336 Hz at once. The recording's clock is the
    // caller's: packets that never arrived leave no samples, so on a loaded
    // machine the page's marks can land seconds away from the tone (a run
    // once landed in the hold music, whose 784 Hz note reads as 770). So
    // the whole recording is searched for one 50 ms window holding both
    // tones; hold music has no 1336 Hz and speech is not two pure tones.
    let dtmf770 = 0; let dtmf1336 = 0;
    for (let i = 0; i + 2400 <= heard.length; i += 1200) {
      const w = heard.slice(i, i + 2400);
      const low = toneShare(w, 770);
      const high = toneShare(w, 1336);
      if (Math.min(low, high) > Math.min(dtmf770, dtmf1336)) {
        dtmf770 = low;
        dtmf1336 = high;
      }
    }
    console.log(`controls: talking ${levelDb(talking).toFixed(1)} dB; hold ${levelDb(hold).toFixed(1)} dB, music share ${music.toFixed(2)}; muted ${levelDb(muted).toFixed(1)} dB; DTMF 770 ${dtmf770.toFixed(2)} 1336 ${dtmf1336.toFixed(2)}`);
    assert.ok(levelDb(talking) > -45, 'the caller hears the agent talking');
    assert.ok(levelDb(hold) > -45 && music > 0.6, `on hold the caller hears hold music (note share ${music.toFixed(2)})`);
    assert.ok(levelDb(muted) < -60, 'muted, the caller hears nothing of the agent');
    // Both tones in one window (each is about 0.5 of the power of a clean
    // key). A forwarded source that ran ahead of the bridge's tick once
    // made the writer drop the key's packets as late: see
    // bridge::tests::a_heard_file_never_starts_a_new_source_behind_the_stream.
    assert.ok(dtmf770 > 0.1 && dtmf1336 > 0.1, `key 5 is heard as DTMF (770 Hz ${dtmf770.toFixed(2)}, 1336 Hz ${dtmf1336.toFixed(2)})`);
  } finally {
    await browser.close();
  }
});
