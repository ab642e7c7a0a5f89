// The audio engine's wasm in Node: p50/p99 per stage and for the whole
// chain per 20 ms, the worst render quantum of the scheduled engine in
// loopback, and the module's size. Run by `cargo xtask bench media`.
//   node tests/bench/media-wasm.mjs path/to/engine.wasm
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';

const path = process.argv[2];
const bytes = readFileSync(path);
const { instance } = await WebAssembly.instantiate(bytes, {});
const x = instance.exports;

const STAGES = ['echo (10 ms)', 'denoise+gain (10 ms)', 'opus encode (20 ms)', 'opus decode (20 ms)', 'jitter insert+pop (20 ms)'];
const N = 3000;
const pct = (a, p) => a[Math.round((a.length - 1) * p)];
const perChain = new Float64Array(N);
console.log(`wasm (${path}), ${N} units per stage, microseconds`);
console.log('| stage | p50 | p99 |');
console.log('| --- | --- | --- |');
for (let s = 0; s < STAGES.length; s++) {
  const t = new Float64Array(N);
  for (let i = 0; i < 200; i++) x.sb_bench(s); // warm up the JIT tiers
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    if (x.sb_bench(s) !== 0) throw new Error('bench failed');
    t[i] = (performance.now() - t0) * 1000;
    perChain[i] += s <= 1 ? 2 * t[i] : t[i];
  }
  t.sort();
  console.log(`| ${STAGES[s]} | ${pct(t, 0.5).toFixed(0)} | ${pct(t, 0.99).toFixed(0)} |`);
}
perChain.sort();
console.log(`| whole chain per 20 ms | ${pct(perChain, 0.5).toFixed(0)} | ${pct(perChain, 0.99).toFixed(0)} |`);

if (x.sb_init(1, 32000, 1, 0, 1) !== 0) throw new Error('init failed');
const mem = () => x.memory.buffer;
const quanta = [];
// The quanta that completed a packet (the last echo chunk, the suppressor
// and the encode in one): the heaviest, so the worst quantum is one of them.
const packetQuanta = [];
const pending = [];
for (let q = 0; q < (48000 * 20) / 128; q++) {
  const input = new Float32Array(mem(), x.sb_input(), 128);
  for (let i = 0; i < 128; i++) input[i] = 0.1 * Math.sin((2 * Math.PI * 200 * (q * 128 + i)) / 48000);
  for (const f of pending.splice(0)) {
    new Uint8Array(mem(), x.sb_frame_in(), f.length).set(f);
    x.sb_receive(f.length);
  }
  const t0 = performance.now();
  const n = x.sb_process();
  const spent = (performance.now() - t0) * 1000;
  quanta.push(spent);
  if (n > 0) {
    packetQuanta.push(spent);
    pending.push(new Uint8Array(mem(), x.sb_packet(), n).slice());
  }
}
quanta.sort((a, b) => a - b);
packetQuanta.sort((a, b) => a - b);
console.log('');
console.log(`engine render quantum (2,667 us budget): p50 ${pct(quanta, 0.5).toFixed(0)} us, p99 ${pct(quanta, 0.99).toFixed(0)} us, worst ${pct(quanta, 1).toFixed(0)} us`);
console.log(`  of which the ${packetQuanta.length} quanta completing a packet: p50 ${pct(packetQuanta, 0.5).toFixed(0)} us, p99 ${pct(packetQuanta, 0.99).toFixed(0)} us, worst ${pct(packetQuanta, 1).toFixed(0)} us`);
console.log(`engine added latency: ${x.sb_added_latency_ms().toFixed(1)} ms`);
console.log(`module: ${bytes.length} bytes, ${gzipSync(bytes, { level: 9 }).length} gzip -9`);
