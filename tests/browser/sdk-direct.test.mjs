// The SDK's direct transport: a page on an approved origin logs an agent in
// straight to the backend (the Rust client core as wasm, no iframe, no
// audio) and drives a call with the same API as the frame transport.
// Wrong credentials and unknown states are typed errors; a page on an
// origin the backend did not approve cannot log in from script.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startBackend, launchBrowser, api, freePort, serveStatic, ROOT } from './harness.mjs';

let backend;
let browser;
let site;

before(async () => {
  const port = await freePort();
  backend = await startBackend('', { approved: [`http://127.0.0.1:${port}`] });
  site = await serveStatic(join(ROOT, 'tests/browser/fixtures'), port, {
    '/config.json': JSON.stringify({ backendUrl: backend.url }),
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  site?.close();
  backend?.stop();
});

async function openScript(origin) {
  const page = await browser.newPage();
  await page.goto(`${origin}/direct.html`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  return page;
}

test('a script drives a call through the direct transport', async () => {
  const page = await openScript(site.url);
  const failure = await page.evaluate((url) => window.sdk.initDirect({ backendUrl: url, username: 'bob', password: 'nope' })
    .then(() => null, (e) => ({ name: e.name, code: e.code })), backend.url);
  assert.deepEqual(failure, { name: 'SwitchboardError', code: 'auth_failed' });

  const ready = await page.evaluate(async (url) => {
    const s = await window.sdk.initDirect({ backendUrl: url, username: 'bob', password: 'bob-pass' });
    window.s = s;
    for (const name of ['stateChange', 'routable', 'incoming', 'accepted', 'connected', 'contactRefresh', 'ended', 'afterCallWork', 'destroyed']) {
      s.on(name, (p) => window.events.push(name + (p && p.id ? ` ${p.id} ${p.state ?? 'gone'}` : '')));
    }
    s.on('incoming', (c) => { c.accept(); });
    return { transport: s.transport, loggedIn: s.loggedIn, name: s.agent.name, leader: s.leader, iframes: document.querySelectorAll('iframe').length };
  }, backend.url);
  assert.deepEqual(ready, { transport: 'direct', loggedIn: true, name: 'Bob Suzuki', leader: false, iframes: 0 });

  const bad = await page.evaluate(() => window.s.agent.setState('Nap').then(() => null, (e) => e.code));
  assert.equal(bad, 'not_found');
  await page.evaluate(() => window.s.agent.setState('Available'));
  await page.waitForFunction(() => window.s.agent.state.name === 'Available');

  const placed = await api(backend.url, 'POST', '/v1/sim/calls', { from: '+819012345678', queue: 'support' });
  assert.equal(placed.status, 201, placed.text);
  const id = placed.json.contact_id;
  await page.waitForFunction((cid) => window.s.contact(cid)?.state === 'connected', id);
  const seen = await page.evaluate((cid) => {
    const c = window.s.contact(cid);
    return { name: c.attributes.customerName, frozen: Object.isFrozen(c) && Object.isFrozen(c.attributes), queue: c.queue.name };
  }, id);
  assert.deepEqual(seen, { name: 'Justin', frozen: true, queue: 'Support' });

  await page.evaluate((cid) => window.s.contact(cid).initialConnection.hold(), id);
  assert.equal((await api(backend.url, 'GET', `/v1/sim/calls/${id}`)).json.state, 'hold');
  await page.evaluate((cid) => window.s.contact(cid).initialConnection.resume(), id);
  await page.evaluate((cid) => window.s.contact(cid).agentConnection.end(), id);
  await page.waitForFunction((cid) => window.s.contact(cid)?.state === 'ended', id);
  await page.evaluate((cid) => window.s.contact(cid).clear('Resolved'), id);
  await page.waitForFunction((cid) => window.s.contact(cid) === undefined, id);

  const events = await page.evaluate(() => window.events);
  for (const e of ['routable', `incoming ${id} incoming`, `accepted ${id} connected`, `connected ${id} connected`,
    `ended ${id} ended`, `afterCallWork ${id} ended`, `destroyed ${id} gone`]) {
    assert.ok(events.includes(e), `${e} in ${events.join(', ')}`);
  }
  await page.evaluate(() => window.s.terminate());
  const after = await page.evaluate(() => window.s.agent.setState('Lunch').then(() => null, (e) => e.code));
  assert.equal(after, 'terminated');
  await page.close();
});

test('a page on an origin that is not approved cannot log in from script', async () => {
  const page = await openScript(site.url.replace('127.0.0.1', 'localhost'));
  const failure = await page.evaluate((url) => window.sdk.initDirect({ backendUrl: url, username: 'bob', password: 'bob-pass' })
    .then(() => null, (e) => ({ code: e.code, message: e.message })), backend.url);
  // CORS keeps the login's answer from the page: to it the backend is unreachable.
  assert.equal(failure?.code, 'unknown', JSON.stringify(failure));
  assert.match(failure.message, /cannot be reached/);
  await page.close();
});
