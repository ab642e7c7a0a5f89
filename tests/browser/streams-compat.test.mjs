// A page written only against the Amazon Connect Streams API runs against
// our facade: initCCP with the login popup, agent state changes, accept on
// incoming, reading the caller's attributes and queue, hold, resume, hang
// up, after-call work and clear, with Streams' callbacks and event names.
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
  const origin = `http://127.0.0.1:${port}`;
  backend = await startBackend('', { approved: [origin] });
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

test('a Streams integration runs unchanged on the facade', async () => {
  const page = await (await browser.newContext()).newPage();
  const [popup] = await Promise.all([
    page.waitForEvent('popup'),
    page.goto(`${site.url}/streams-compat.html`),
  ]);
  const closed = popup.waitForEvent('close');
  await new CcpPage(popup, backend.url).login('alice', 'alice-pass');
  await closed;

  const logged = (pattern) => page.waitForFunction(
    (source) => (window.streamsLog || []).some((l) => new RegExp(source).test(l)),
    pattern.source, { polling: 50, timeout: 15000 },
  );
  await logged(/^initialized$/);
  await logged(/^agent Alice Tanaka in Front line$/);
  await logged(/^set Available$/);
  await logged(/^state \w+ -> Available$/);
  await logged(/^routable Available$/);

  const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
  assert.equal(placed.status, 201, placed.text);
  for (const line of [
    /^contact c-/, /^ringing Justin ordered .*Hoodie via Support$/, /^caller \+819012345678$/, /^accept ok$/,
    /^accepted$/, /^connected connected$/, /^held true$/, /^resumed false$/, /^hung up$/, /^ended$/,
    /^acw$/, /^agent acw$/, /^cleared$/, /^destroyed$/,
  ]) {
    await logged(line);
  }
  const log = await page.evaluate(() => window.streamsLog);
  assert.ok(log.indexOf('accepted') < log.indexOf('connected connected'), log.join('\n'));
  assert.ok(!log.some((l) => /failed|never fires/.test(l)), log.join('\n'));
  const call = (await api(backend.url, 'GET', `/v1/sim/calls/${placed.json.contact_id}`)).json;
  assert.notEqual(call.state, 'connected', 'the caller was hung up on');
});
