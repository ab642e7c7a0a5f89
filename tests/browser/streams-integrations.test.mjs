// Three pages in the shapes real Streams integrations take, each written
// from the Streams documentation (tests/browser/fixtures/streams-*.html),
// run against the real backend and CCP with only the script URL changed:
// - a headset call-control integration that reacts to the ring, answers,
//   mutes and hangs up from its buttons; its event bus recording is
//   compared with the sequence Streams documents for an accepted call;
// - a component-based custom CCP whose components subscribe and
//   unsubscribe in their lifecycles (strict-mode mount, cleanup, mount);
// - a custom softphone with the CCP hidden by CSS that leaves after-call
//   work by choosing a state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startBackend, launchBrowser, api, freePort, serveStatic, ROOT } from './harness.mjs';
import { CcpPage } from './pages.mjs';

let backend;
let browser;
let site;

before(async () => {
  const port = await freePort();
  backend = await startBackend('', { approved: [`http://127.0.0.1:${port}`] });
  site = await serveStatic(join(ROOT, 'tests/browser/fixtures'), port, {
    '/config.json': JSON.stringify({ ccpUrl: `${backend.url}/ccp/` }),
  });
  // Streams opens its login popup from initCCP, without a click.
  browser = await launchBrowser(['--disable-popup-blocking']);
});

after(async () => {
  await browser?.close();
  site?.close();
  backend?.stop();
});

/** Opens a fixture page, logs in through the popup it opens as `user`. */
async function openIntegration(fixture, user) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const [popup] = await Promise.all([
    page.waitForEvent('popup'),
    page.goto(`${site.url}/${fixture}`),
  ]);
  const closed = popup.waitForEvent('close');
  await new CcpPage(popup, backend.url).login(user, `${user}-pass`);
  await closed;
  const logged = async (pattern) => {
    try {
      await page.waitForFunction(
        (source) => (window.streamsLog || []).some((l) => new RegExp(source).test(l)),
        pattern.source, { polling: 50, timeout: 15000 },
      );
    } catch (err) {
      const lines = await page.evaluate(() => window.streamsLog || []);
      throw new Error(`no line matching ${pattern} in:\n${lines.join('\n')}`, { cause: err });
    }
  };
  return { page, context, logged, log: () => page.evaluate(() => window.streamsLog || []) };
}

async function placeCall() {
  const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
  assert.equal(placed.status, 201, placed.text);
  return placed.json.contact_id;
}

test('headset call control: ring on onConnecting, answer, mute LED, hang up; Streams\' event sequence', async () => {
  const { page, context, logged, log } = await openIntegration('streams-headset.html', 'alice');
  await logged(/^agent Alice Tanaka$/);
  await logged(/^available$/);
  const id = await placeCall();
  await logged(/^ring \+819012345678 state connecting$/);
  await page.evaluate(() => window.headset.answer());
  await logged(/^answered$/);
  await logged(/^offhook$/);
  await page.evaluate(() => window.headset.mute());
  await logged(/^mute led true$/);
  await page.evaluate(() => window.headset.unmute());
  await logged(/^mute led false$/);
  await page.evaluate(() => window.headset.hangup());
  await logged(/^onhook$/);
  await page.evaluate(() => window.headset.clear());
  await logged(/^destroyed$/);
  const lines = await log();
  assert.ok(!lines.some((l) => /never fires|failed|error/.test(l)), lines.join('\n'));

  // The contact's events, as Streams documents them for an accepted
  // inbound call: INIT, CONNECTING (the ring), ACCEPTED (the page's own
  // accept succeeded), CONNECTED, then on hang-up ACW before ENDED, and
  // DESTROYED once cleared; ENDED exactly once. ACCEPTED and CONNECTED can
  // arrive in either order (the accept's answer races the backend's push).
  const events = await page.evaluate(() => window.busEvents);
  const contactEvents = events.filter((e) => e.startsWith('contact::') && e !== 'contact::refresh');
  const order = contactEvents.filter((e) => e !== 'contact::accepted');
  assert.deepEqual(order, ['contact::init', 'contact::connecting', 'contact::connected', 'contact::acw', 'contact::ended', 'contact::destroyed'], events.join('\n'));
  assert.equal(contactEvents.filter((e) => e === 'contact::accepted').length, 1);
  assert.ok(contactEvents.indexOf('contact::accepted') > contactEvents.indexOf('contact::connecting'));
  assert.equal(events.filter((e) => e === 'agent::mute_toggle').length, 2);
  assert.ok(events.includes('agent::acw'), 'the agent entered AfterCallWork');
  assert.ok(!events.includes('contact::incoming'));
  const call = (await api(backend.url, 'GET', `/v1/sim/calls/${id}`)).json;
  assert.equal(call.state, 'ended');
  await context.close();
});

test('component lifecycles: unsubscribe() in cleanups works, only the mounted component hears the call', async () => {
  const { context, logged, log } = await openIntegration('streams-react.html', 'bob');
  await logged(/^panel-1 unmounted$/);
  await logged(/^available$/);
  await placeCall();
  await logged(/^panel-2 ringing \+819012345678$/);
  await logged(/^panel-2 connected$/);
  const lines = await log();
  assert.ok(!lines.some((l) => /^panel-1 (ringing|connected|state)/.test(l)), `the unmounted panel still heard events:\n${lines.join('\n')}`);
  assert.ok(!lines.some((l) => /threw/.test(l)), lines.join('\n'));
  assert.equal(lines.filter((l) => /^panel-2 ringing/.test(l)).length, 1, lines.join('\n'));
  await context.close();
});

test('hidden CCP custom softphone: answers from its own button, leaves ACW by choosing Available', async () => {
  const { page, context, logged, log } = await openIntegration('streams-hidden.html', 'alice');
  // The CCP was hidden by the page's CSS; its frame is rendered invisibly.
  const frame = page.locator('iframe[data-switchboard="ccp"]');
  await frame.waitFor({ state: 'attached' });
  assert.equal(await page.locator('#ccp iframe').count(), 0, 'the frame is not inside the display:none container');
  await page.selectOption('#status', 'Available');
  await logged(/^set Available$/);
  await placeCall();
  await logged(/^ringing$/);
  await page.click('#answer');
  await logged(/^connected$/);
  await page.click('#hangup');
  await logged(/^acw$/);
  await logged(/^state \w+ -> AfterCallWork$/);
  // Choosing a state ends after-call work, as Connect does (#952).
  await page.selectOption('#status', 'Available');
  await logged(/^destroyed$/);
  await logged(/^state AfterCallWork -> Available$/);
  const lines = await log();
  assert.ok(!lines.some((l) => /set failed/.test(l)), lines.join('\n'));
  assert.equal(await page.textContent('#call'), 'idle');
  await context.close();
});
