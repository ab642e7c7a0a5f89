// Two builds of the audio engine's wasm side by side in one Node process,
// for a machine too loaded for wall-clock figures: every unit of every
// stage runs on both modules alternately and is timed in CPU time
// (process.cpuUsage), so both see the same load. Prints p50/p99 per stage
// and per 20 ms of the whole chain, and the render quantum of each engine
// in loopback (20 s), in microseconds of CPU: all quanta, and apart the
// quanta that completed a packet (the heaviest: the last echo chunk, the
// suppressor and the encode).
//   node tests/bench/media-wasm-ab.mjs old.wasm new.wasm
//   PACKET_MS=10 node tests/bench/media-wasm-ab.mjs ...  (10 ms packets in
//   the engine loop, where the module has sb_set_packet_ms)
import { readFileSync } from 'node:fs';

const paths = process.argv.slice(2, 4);
if (paths.length !== 2) {
  console.error('usage: node tests/bench/media-wasm-ab.mjs A.wasm B.wasm');
  process.exit(2);
}
const mods = [];
for (const p of paths) {
  const { instance } = await WebAssembly.instantiate(readFileSync(p), {});
  mods.push(instance.exports);
}

const cpu = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const pct = (a, p) => a[Math.round((a.length - 1) * p)];
const STAGES = ['echo (10 ms)', 'denoise+gain (10 ms)', 'opus encode (20 ms)', 'opus decode (20 ms)'];
const N = 2000;
const chain = mods.map(() => new Float64Array(N));
const rows = [];
for (let s = 0; s < STAGES.length; s++) {
  const t = mods.map(() => new Float64Array(N));
  for (let i = 0; i < 200; i++) for (const x of mods) x.sb_bench(s);
  for (let i = 0; i < N; i++) {
    for (let m = 0; m < mods.length; m++) {
      const t0 = cpu();
      if (mods[m].sb_bench(s) !== 0) throw new Error('bench failed');
      t[m][i] = cpu() - t0;
      chain[m][i] += s <= 1 ? 2 * t[m][i] : t[m][i];
    }
  }
  for (const a of t) a.sort();
  rows.push(`| ${STAGES[s]} | ${t.map((a) => `${pct(a, 0.5).toFixed(0)} / ${pct(a, 0.99).toFixed(0)}`).join(' | ')} |`);
}
for (const a of chain) a.sort();
rows.push(`| whole chain per 20 ms | ${chain.map((a) => `${pct(a, 0.5).toFixed(0)} / ${pct(a, 0.99).toFixed(0)}`).join(' | ')} |`);

// The scheduled engine in loopback, both alternately quantum by quantum.
const quanta = mods.map(() => []);
const packetQuanta = mods.map(() => []);
const pending = mods.map(() => []);
const packetMs = Number(process.env.PACKET_MS ?? 20);
for (const x of mods) {
  if (x.sb_init(1, 32000, 1, 0, 1) !== 0) throw new Error('init failed');
  if (packetMs !== 20 && (!x.sb_set_packet_ms || x.sb_set_packet_ms(packetMs) !== 0)) {
    throw new Error(`module cannot send ${packetMs} ms packets`);
  }
}
for (let q = 0; q < (48000 * 20) / 128; q++) {
  for (let m = 0; m < mods.length; m++) {
    const x = mods[m];
    const input = new Float32Array(x.memory.buffer, x.sb_input(), 128);
    for (let i = 0; i < 128; i++) input[i] = 0.1 * Math.sin((2 * Math.PI * 200 * (q * 128 + i)) / 48000);
    for (const f of pending[m].splice(0)) {
      new Uint8Array(x.memory.buffer, x.sb_frame_in(), f.length).set(f);
      x.sb_receive(f.length);
    }
    const t0 = cpu();
    const n = x.sb_process();
    const spent = cpu() - t0;
    quanta[m].push(spent);
    if (n > 0) {
      packetQuanta[m].push(spent);
      pending[m].push(new Uint8Array(x.memory.buffer, x.sb_packet(), n).slice());
    }
  }
}
for (const a of [...quanta, ...packetQuanta]) a.sort((p, q) => p - q);
const quantumCells = (all) => all.map((a) => `${pct(a, 0.5).toFixed(0)} / ${pct(a, 0.99).toFixed(0)}, worst ${pct(a, 1).toFixed(0)}`).join(' | ');
rows.push(`| render quantum, ${packetMs} ms packets (2,667 us budget) | ${quantumCells(quanta)} |`);
rows.push(`| of which the quanta completing a packet | ${quantumCells(packetQuanta)} |`);

console.log(`CPU time, microseconds, p50 / p99 (${N} units per stage, interleaved)`);
console.log(`| stage | A: ${paths[0]} | B: ${paths[1]} |`);
console.log('| --- | --- | --- |');
for (const r of rows) console.log(r);
