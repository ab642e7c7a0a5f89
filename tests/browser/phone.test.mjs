// A person calls in from the customer phone page in one browser; an agent
// answers in the CCP in another. Each browser's fake microphone speaks a
// different sentence; each side must hear the other's, checked by
// cross-correlating speech envelopes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, launchBrowser } from './harness.mjs';
import { CcpPage } from './pages.mjs';
import { speechWav, readWav, envelope, bestEnvelopeMatch } from './audio.mjs';

let backend;
let agentWav;
let customerWav;

before(async () => {
  backend = await startBackend('', { crm: true });
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-phone-'));
  agentWav = speechWav(dir, 'agent', 'Good morning, order desk, this is Alice speaking. How may I help you?');
  customerWav = speechWav(dir, 'customer', 'Hi, my hoodie has not arrived yet, the order number is one hundred.', 'en+m3');
});

after(() => backend?.stop());

test('a customer on the phone page and an agent in the CCP hear each other', async () => {
  const agentBrowser = await launchBrowser([`--use-file-for-fake-audio-capture=${agentWav}`]);
  const customerBrowser = await launchBrowser([`--use-file-for-fake-audio-capture=${customerWav}`]);
  try {
    const agentContext = await agentBrowser.newContext();
    await agentContext.addInitScript(() => { globalThis.__switchboardTap = true; });
    const agentPage = await agentContext.newPage();
    const ccp = new CcpPage(agentPage, backend.url);
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');

    const customerContext = await customerBrowser.newContext();
    await customerContext.addInitScript(() => { globalThis.__switchboardTap = true; });
    const phone = await customerContext.newPage();
    // The phone page lives on the demo origin, not the CCP's.
    await phone.goto(`${backend.crmUrl}/phone/`);
    await phone.getByTestId('phone-call').click();
    await ccp.expectContactState('incoming');
    assert.match(await ccp.attributesText(), /Justin/);
    await ccp.click('accept');
    await ccp.expectContactState('connected');
    await phone.locator('[data-testid="phone-status"][data-state="connected"]').waitFor();

    await agentPage.waitForFunction(() => (globalThis.__switchboardTapOutput || []).length >= 48000 * 7, null, { timeout: 30000, polling: 250 });
    await phone.waitForFunction(() => (globalThis.__switchboardTapOutput || []).length >= 48000 * 7, null, { timeout: 30000, polling: 250 });
    const agentHeard = await agentPage.evaluate(() => globalThis.__switchboardTapOutput.slice(0, 48000 * 7));
    const customerHeard = await phone.evaluate(() => globalThis.__switchboardTapOutput.slice(0, 48000 * 7));
    // Two browsers with an audio engine each share two cores with the
    // backend: judge each side on its best 3-second stretch, since a busy
    // moment can glitch one of them.
    const best = (heard, wav) => {
      const env = envelope(heard, 48000);
      const ref = envelope(readWav(wav).samples, 48000);
      return [100, 175, 250, 325, 400]
        .map((from) => bestEnvelopeMatch(env.slice(from, from + 300), ref))
        .reduce((x, y) => (y.corr > x.corr ? y : x));
    };
    const a = best(agentHeard, customerWav);
    const c = best(customerHeard, agentWav);
    console.log(`phone call: agent hears customer ${a.corr.toFixed(3)}, customer hears agent ${c.corr.toFixed(3)}`);
    assert.ok(a.corr > 0.6, `the agent hears the customer (${a.corr.toFixed(3)})`);
    assert.ok(c.corr > 0.6, `the customer hears the agent (${c.corr.toFixed(3)})`);

    await phone.getByTestId('phone-hangup').click();
    await phone.locator('[data-testid="phone-status"][data-state="ended"]').waitFor();
    await ccp.expectContactState('ended');
  } finally {
    await agentBrowser.close();
    await customerBrowser.close();
  }
});
