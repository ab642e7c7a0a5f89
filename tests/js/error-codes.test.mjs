// One list of error codes: the SDK's ERROR_CODES is generated from the
// Rust core's list (streams-sdk/src/errors.rs checks the committed file
// equals it); here, that the SDK and the facade report only those codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, SwitchboardError } from '../../streams-sdk/js/switchboard.js';

test('ERROR_CODES holds every wire code of protocol/src/error.rs, then the SDK\'s own', () => {
  // The wire names as the Rust enum spells them (its as_str arms).
  const rust = readFileSync(new URL('../../protocol/src/error.rs', import.meta.url), 'utf8');
  const wire = [...rust.matchAll(/ErrorCode::\w+ => "([a-z_]+)"/g)].map((m) => m[1]);
  assert.ok(wire.length >= 25, `read ${wire.length} wire codes`);
  assert.deepEqual(ERROR_CODES.slice(0, wire.length), wire);
  for (const own of ['init_timeout', 'version_mismatch', 'terminated', 'frame_lost', 'not_supported']) {
    assert.ok(ERROR_CODES.includes(own), own);
  }
  assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length);
  assert.ok(Object.isFrozen(ERROR_CODES));
});

test('a SwitchboardError carries a listed code; an unlisted one is unknown', () => {
  for (const code of ERROR_CODES) assert.equal(new SwitchboardError(code, 'm').code, code);
  assert.equal(new SwitchboardError('timeout', 'm').code, 'timeout');
  assert.equal(new SwitchboardError('from_a_newer_ccp', 'm').code, 'unknown');
  assert.equal(new SwitchboardError('from_a_newer_ccp', 'm').message, 'm');
});

test('the facade\'s Streams-shaped failures carry the SDK\'s code, and map unlisted codes to unknown', async () => {
  const { loadFacade, FakeSession } = await import('./fake-sdk.mjs');
  const connect = await loadFacade();
  const session = new FakeSession();
  connect.__switchboard.useSdk({ ERROR_CODES, init: async () => session });
  connect.core.initCCP({ style: {} }, { ccpUrl: 'http://127.0.0.1:1/ccp/' });
  for (let i = 0; i < 50 && !connect.core.initialized; i++) await new Promise((r) => setTimeout(r, 0));
  assert.ok(connect.core.initialized);
  const agent = new connect.Agent();
  const available = agent.getAgentStates().find((s) => s.name === 'Available');
  const fail = (code) => {
    session.failNext = { code, message: `failed with ${code}` };
    return new Promise((resolve) => agent.setState(available, { success: () => resolve(null), failure: resolve }));
  };
  const timeout = await fail('timeout');
  assert.deepEqual({ ...timeout }, { type: 'timeout', message: 'failed with timeout', stack: [], retryStatus: 'NONE' });
  assert.equal(timeout.code, 'timeout');
  const future = await fail('from_a_newer_ccp');
  assert.equal(future.type, 'unknown');
  assert.equal(future.code, 'unknown');
  connect.core.terminate();
});
