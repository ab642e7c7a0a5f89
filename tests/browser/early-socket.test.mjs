// A CCP that starts with a login kept from last time opens its backend
// socket while its module is still compiling (app/boot.js), and the app
// takes that socket instead of opening a second one after it has started
// (streams-sdk/src/web.rs `early_socket`). Checked from outside: every
// WebSocket the page creates is counted, and the module's instantiation is
// timed, on a reload of a logged-in CCP.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend, launchBrowser } from './harness.mjs';
import { CcpPage } from './pages.mjs';

let backend;

before(async () => {
  backend = await startBackend();
});

after(() => backend?.stop());

// Runs before the page's own scripts: records each socket's creation and
// the module's instantiation, on one clock.
const probe = () => {
  const log = (window.__probe = []);
  const WS = window.WebSocket;
  window.WebSocket = function (...args) {
    log.push(['socket', performance.now()]);
    return new WS(...args);
  };
  window.WebSocket.prototype = WS.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  const instantiate = WebAssembly.instantiateStreaming;
  WebAssembly.instantiateStreaming = (...args) => {
    log.push(['instantiate', performance.now()]);
    return instantiate.apply(WebAssembly, args);
  };
};

test('a reloaded, logged-in CCP uses the socket it opened before its module started', async () => {
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    await context.addInitScript(probe);
    const page = await context.newPage();
    const ccp = new CcpPage(page, backend.url);
    await ccp.startShift('alice', 'alice-pass', 'Alice Tanaka');
    await page.reload();
    await ccp.expectLoggedIn('Alice Tanaka');
    await ccp.expectAgentState('Available');
    const log = await page.evaluate(() => window.__probe);
    const sockets = log.filter(([what]) => what === 'socket');
    const instantiated = log.find(([what]) => what === 'instantiate');
    assert.equal(sockets.length, 1, `one socket on reload: ${JSON.stringify(log)}`);
    assert.ok(instantiated && sockets[0][1] < instantiated[1],
      `the socket was opened before the module was instantiated: ${JSON.stringify(log)}`);
    // The CCP works on it: a state change goes through.
    await ccp.setStatus('Offline');
    await ccp.expectAgentState('Offline');
  } finally {
    await browser.close();
  }
});

test('a CCP with no login opens no socket until the agent logs in', async () => {
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    await context.addInitScript(probe);
    const page = await context.newPage();
    const ccp = new CcpPage(page, backend.url);
    await ccp.open();
    await page.getByTestId('login-username').waitFor();
    assert.deepEqual((await page.evaluate(() => window.__probe)).filter(([w]) => w === 'socket'), []);
    await ccp.login('alice', 'alice-pass');
    await ccp.expectLoggedIn('Alice Tanaka');
    const sockets = (await page.evaluate(() => window.__probe)).filter(([w]) => w === 'socket');
    assert.equal(sockets.length, 1);
  } finally {
    await browser.close();
  }
});
