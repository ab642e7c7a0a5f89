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
async function openIntegration(fixture, user, env = { site, backend }) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const [popup] = await Promise.all([
    page.waitForEvent('popup'),
    page.goto(`${env.site.url}/${fixture}`),
  ]);
  const closed = popup.waitForEvent('close');
  await new CcpPage(popup, env.backend.url).login(user, `${user}-pass`);
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

async function placeCall(to = backend) {
  const placed = await api(to.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
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

// Issue 11: a warm transfer and a conference through the facade against the
// real backend, as a Streams transfer panel sees them. Expected from Streams
// (src/api.js, core.js; tests/js/streams-facade.test.mjs has the same rows
// against a stand-in): the contact's own events come only from its state
// type (INIT, CONNECTING, ACCEPTED/CONNECTED, then ACW, ENDED, DESTROYED when
// the agent leaves and clears); a consult adds a third-party connection of
// type OUTBOUND, CONNECTING then CONNECTED, with the initial connection on
// HOLD; toggleActiveConnections swaps which one holds;
// conferenceConnections connects both; the agent's own destroy() leaves the
// caller to the consulted agent and ends the contact for this agent only.
test('transfer panel: warm transfer handed over, then a conference, with Streams\' states and events', async (t) => {
  // A contact center of its own: the earlier tests leave alice and bob
  // attached to calls and states on the shared one.
  const port = await freePort();
  const own = await startBackend('', { approved: [`http://127.0.0.1:${port}`] });
  t.after(() => own.stop());
  const ownSite = await serveStatic(join(ROOT, 'tests/browser/fixtures'), port, {
    '/config.json': JSON.stringify({ ccpUrl: `${own.url}/ccp/` }),
  });
  t.after(() => ownSite.close());
  // bob takes no queue calls (Lunch) until he is consulted.
  const bob = new CcpPage(await (await browser.newContext()).newPage(), own.url);
  await bob.startShift('bob', 'bob-pass', 'Bob Suzuki');
  await bob.setStatus('Lunch');
  await bob.expectAgentState('Lunch');
  const { page, context, logged, log } = await openIntegration('streams-transfer.html', 'alice', { site: ownSite, backend: own });
  await logged(/^available$/);
  const panel = (action, ...args) => page.evaluate(([a, rest]) => window.panel[a](...rest), [action, args]);
  // While the agent's leg rings, Streams documents only that the caller's
  // (initial) connection is active (getActiveInitialConnection() is the
  // documented screen-pop); CONNECTING and CONNECTED both are.
  const RING = 'shape connecting agent=connecting initial=active third=-';
  const shapes = async () => (await log()).filter((l) => l.startsWith('shape '))
    .map((l) => l.replace(/^(shape connecting agent=connecting initial=)(connecting|connected)( third=-)$/, '$1active$3'));

  // 1. Warm transfer: consult bob while the caller holds, then hand over.
  const first = await placeCall(own);
  await logged(/^ring$/);
  await panel('accept');
  await logged(/^connected$/);
  await bob.setStatus('Available');
  await bob.expectAgentState('Available');
  await panel('consult', 'Bob Suzuki');
  await logged(/^consult ok$/);
  await logged(/^shape connected agent=connected initial=hold third=outbound:connecting$/);
  await bob.expectContactState('incoming');
  await bob.click('accept');
  await bob.expectContactState('connected');
  await logged(/^shape connected agent=connected initial=hold third=outbound:connected$/);
  await panel('leave');
  await logged(/^ended$/);
  await logged(/^shape ended agent=disconnected initial=connected third=outbound:connected$/);
  assert.equal((await api(own.url, 'GET', `/v1/sim/calls/${first}`)).json.state, 'connected', 'bob has the caller');
  await panel('clear');
  await logged(/^destroyed$/);
  assert.deepEqual(await shapes(), [
    RING,
    'shape connected agent=connected initial=connected third=-',
    'shape connected agent=connected initial=hold third=outbound:connecting',
    'shape connected agent=connected initial=hold third=outbound:connected',
    'shape ended agent=disconnected initial=connected third=outbound:connected',
  ], (await log()).join('\n'));
  let events = await page.evaluate(() => window.busEvents.splice(0));
  assert.deepEqual(events.filter((e) => e !== 'contact::accepted'),
    ['contact::init', 'contact::connecting', 'contact::connected', 'contact::acw', 'contact::ended', 'contact::destroyed'], events.join('\n'));
  assert.equal(events.filter((e) => e === 'contact::accepted').length, 1);
  // The caller leaves bob; bob finishes and goes back to Lunch.
  await api(own.url, 'DELETE', `/v1/sim/calls/${first}`);
  await bob.expectContactState('ended');
  await bob.click('clear');
  await bob.setStatus('Lunch');
  await bob.expectAgentState('Lunch');
  await page.evaluate(() => { window.streamsLog.length = 0; });

  // 2. Conference: consult, swap both ways, join everyone, then leave the two talking.
  const second = await placeCall(own);
  await logged(/^ring$/);
  await panel('accept');
  await logged(/^connected$/);
  await bob.setStatus('Available');
  await bob.expectAgentState('Available');
  await panel('consult', 'Bob Suzuki');
  await bob.expectContactState('incoming');
  await bob.click('accept');
  await logged(/^shape connected agent=connected initial=hold third=outbound:connected$/);
  await panel('swap');
  await logged(/^shape connected agent=connected initial=connected third=outbound:hold$/);
  await panel('conference');
  await logged(/^shape connected agent=connected initial=connected third=outbound:connected$/);
  await panel('leave');
  await logged(/^ended$/);
  await panel('clear');
  await logged(/^destroyed$/);
  assert.deepEqual(await shapes(), [
    RING,
    'shape connected agent=connected initial=connected third=-',
    'shape connected agent=connected initial=hold third=outbound:connecting',
    'shape connected agent=connected initial=hold third=outbound:connected',
    'shape connected agent=connected initial=connected third=outbound:hold',
    'shape connected agent=connected initial=connected third=outbound:connected',
    'shape ended agent=disconnected initial=connected third=outbound:connected',
  ], (await log()).join('\n'));
  events = await page.evaluate(() => window.busEvents.splice(0));
  assert.deepEqual(events.filter((e) => e !== 'contact::accepted'),
    ['contact::init', 'contact::connecting', 'contact::connected', 'contact::acw', 'contact::ended', 'contact::destroyed'], events.join('\n'));
  assert.equal((await api(own.url, 'GET', `/v1/sim/calls/${second}`)).json.state, 'connected', 'the caller stays with bob');
  assert.ok(!(await log()).some((l) => /failed/.test(l)), (await log()).join('\n'));
  await context.close();
  await bob.page.context().close();
});

// Issue 15 item 1 through the facade: a Streams page that moves its CCP's
// frame (the browser reloads it) hears the new CCP's ACKNOWLEDGE, as Streams
// reports a reloaded CCP, and its subscriptions and actions keep working.
test('hidden CCP custom softphone survives its CCP frame being moved (reloaded)', async () => {
  const { page, context, logged, log } = await openIntegration('streams-hidden.html', 'alice');
  await page.selectOption('#status', 'Available');
  await logged(/^set Available$/);
  await page.evaluate(() => {
    window.acks = 0;
    connect.core.getEventBus().subscribe(connect.EventType.ACKNOWLEDGE, () => { window.acks++; });
    document.body.append(document.querySelector('iframe[data-switchboard="ccp"]'));
  });
  await page.waitForFunction(() => window.acks === 1, null, { timeout: 15000, polling: 50 });
  await page.selectOption('#status', 'Lunch');
  await logged(/^set Lunch$/);
  await logged(/^state Available -> Lunch$/);
  await page.selectOption('#status', 'Available');
  await logged(/^state Lunch -> Available$/);
  await placeCall();
  await logged(/^ringing$/);
  await page.click('#answer');
  await logged(/^connected$/);
  await page.click('#hangup');
  await logged(/^acw$/);
  await page.selectOption('#status', 'Available');
  await logged(/^destroyed$/);
  const lines = await log();
  assert.ok(!lines.some((l) => /failed/.test(l)), lines.join('\n'));
  assert.equal(await page.evaluate(() => new connect.Agent().getName()), 'Alice Tanaka');
  await context.close();
});
