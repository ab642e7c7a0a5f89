// Where the audio engine's wasm time goes: a sampling profile (V8's CPU
// profiler, through node:inspector) of one bench stage or of the scheduled
// engine looped back, printed as shares of wasm time per function. Shares
// do not depend on the machine's load, which wall-clock figures do.
// Needs a module with its name section: the cargo output before wasm-opt,
// target/wasm32-unknown-unknown/engine/media.wasm (built by
// `cargo build --profile engine -p switchboard-media --target wasm32-unknown-unknown`).
//   node tests/bench/media-wasm-profile.mjs MODULE STAGE [UNITS] [TOP]
// STAGE: 0 echo, 1 denoise+gain, 2 Opus encode, 3 Opus decode (as in
// media-wasm.mjs), or `engine` for the scheduled engine (UNITS quanta).
import { readFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

const [path, stageArg, unitsArg, topArg] = process.argv.slice(2);
if (!path || stageArg === undefined) {
  console.error('usage: node tests/bench/media-wasm-profile.mjs MODULE STAGE|engine [UNITS] [TOP]');
  process.exit(2);
}
const units = Number(unitsArg ?? 3000);
const top = Number(topArg ?? 25);
const { instance } = await WebAssembly.instantiate(readFileSync(path), {});
const x = instance.exports;

function engine(quanta) {
  if (x.sb_init(1, 32000, 1, 0, 1) !== 0) throw new Error('init failed');
  const mem = () => x.memory.buffer;
  const pending = [];
  for (let q = 0; q < quanta; q++) {
    const input = new Float32Array(mem(), x.sb_input(), 128);
    for (let i = 0; i < 128; i++) input[i] = 0.1 * Math.sin((2 * Math.PI * 200 * (q * 128 + i)) / 48000);
    for (const f of pending.splice(0)) {
      new Uint8Array(mem(), x.sb_frame_in(), f.length).set(f);
      x.sb_receive(f.length);
    }
    const n = x.sb_process();
    if (n > 0) pending.push(new Uint8Array(mem(), x.sb_packet(), n).slice());
  }
}

const run = () => {
  if (stageArg === 'engine') engine(units);
  else for (let i = 0; i < units; i++) if (x.sb_bench(Number(stageArg)) !== 0) throw new Error('bench failed');
};
run(); // warm up the JIT tiers first, unprofiled

const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 100 });
await session.post('Profiler.start');
run();
const { profile } = await session.post('Profiler.stop');
session.disconnect();

// Self time per function; wasm functions only (their URL is wasm://).
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
let total = 0;
profile.samples.forEach((id, i) => {
  const node = byId.get(id);
  if (!node.callFrame.url.startsWith('wasm://')) return;
  const name = node.callFrame.functionName;
  const dt = profile.timeDeltas[i] ?? 0;
  self.set(name, (self.get(name) ?? 0) + dt);
  total += dt;
});
console.log(`${path}, stage ${stageArg}, ${units} units: ${(total / 1000).toFixed(0)} ms of wasm sampled`);
console.log('| share of wasm time | function |');
console.log('| --- | --- |');
for (const [name, t] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`| ${((100 * t) / total).toFixed(1)} % | ${name} |`);
}
