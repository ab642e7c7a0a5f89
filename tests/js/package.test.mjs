// The SDK and the Streams facade as an npm package: `npm pack` works, the
// tarball holds what package.json exports, and a TypeScript consumer of
// both entry points compiles under `tsc --strict` against the packed
// files (and a wrong use of the facade does not).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, copyFileSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const PKG = join(ROOT, 'streams-sdk/js');
const TSC = join(ROOT, 'node_modules/.bin/tsc');

test('npm pack builds the package, and a strict TypeScript consumer compiles against it', (t) => {
  const work = mkdtempSync(join(tmpdir(), 'switchboard-pack-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: PKG, encoding: 'utf8' });
  const [info] = JSON.parse(out);
  const packed = info.files.map((f) => f.path).sort();
  const manifest = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8'));
  for (const file of manifest.files) assert.ok(packed.includes(file), `${file} is in the tarball`);
  for (const entry of Object.values(manifest.exports)) {
    const targets = typeof entry === 'string' ? [entry] : Object.values(entry);
    for (const target of targets) assert.ok(packed.includes(target.replace(/^\.\//, '')), `${target} is packed`);
  }

  // Install the tarball the way npm would, into a consumer project.
  const project = join(work, 'consumer');
  const installed = join(project, 'node_modules/@switchboard/streams-sdk');
  mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', join(work, info.filename), '-C', installed, '--strip-components=1']);
  assert.ok(existsSync(join(installed, 'connect-streams.d.ts')));
  for (const f of ['consumer.ts', 'wrong.ts', 'tsconfig.json']) {
    copyFileSync(join(ROOT, 'tests/js/ts-consumer', f), join(project, f));
  }

  const ok = spawnSync(TSC, ['-p', project], { encoding: 'utf8' });
  assert.equal(ok.status, 0, `tsc --strict on consumer.ts:\n${ok.stdout}${ok.stderr}`);

  // Each line of wrong.ts is a mistake the types must catch.
  writeFileSync(join(project, 'tsconfig.wrong.json'), JSON.stringify({
    extends: './tsconfig.json', files: ['wrong.ts'],
  }));
  const wrong = spawnSync(TSC, ['-p', join(project, 'tsconfig.wrong.json')], { encoding: 'utf8' });
  assert.notEqual(wrong.status, 0, 'wrong.ts must not compile');
  const errors = wrong.stdout.split('\n').filter((l) => /wrong\.ts\(\d+,/.test(l));
  const lines = new Set(errors.map((l) => /wrong\.ts\((\d+),/.exec(l)[1]));
  assert.deepEqual([...lines].sort(), ['5', '6', '7'], wrong.stdout);
});

test('the ES module entry and the script tag share one `connect`', async () => {
  globalThis.window = globalThis;
  delete globalThis.connect;
  // The script first (as a page's script tag would), then the module entry.
  await import(join(PKG, 'connect-streams.js'));
  const fromScript = globalThis.connect;
  const mod = await import(join(PKG, 'connect-streams.mjs'));
  assert.equal(mod.connect, fromScript);
  assert.equal(mod.default, fromScript);
  assert.equal(typeof mod.connect.core.initCCP, 'function');
  assert.equal(typeof mod.connect.__switchboard.useSdk, 'function');
});
