// Direct capture's lost-audio detector (public/media/capture-gaps.js,
// used by the worklet's onDirect). Spec (issue 16): a chunk the browser
// really dropped is skipped in the stream by the audio it held; timestamp
// jitter with no sample lost (Chromium stamps a real microphone's chunks
// with the read time less the device's reported delay, several 10 ms
// chunks from one estimate) must skip nothing: a late timestamp followed
// by an early one is jitter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

// The worklet's own file, loaded as the ES module it is.
const source = readFileSync(new URL('../../public/media/capture-gaps.js', import.meta.url), 'utf8');
const { CaptureGaps, CONFIRM } = await import(`data:text/javascript,${encodeURIComponent(source)}`);

const CHUNK_US = 10000;

/** Feeds `stamps` (us) as 10 ms chunks; returns every skip, with the chunk it came at. */
function feed(gaps, stamps) {
  const skips = [];
  stamps.forEach((ts, i) => {
    const us = gaps.chunk(ts, CHUNK_US);
    if (us > 0) skips.push({ at: i, us });
  });
  return skips;
}

/** `n` contiguous chunks from `t0` (us), each stamp moved by `jitter(i)` us. */
const stream = (n, t0 = 5e6, jitter = () => 0) => Array.from({ length: n }, (_, i) => t0 + i * CHUNK_US + jitter(i));

/** A small deterministic generator (no Math.random in tests). */
function lcg(seed) {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 4294967296; };
}

test('contiguous chunks with +-3 ms of timestamp jitter skip nothing over a minute', () => {
  const rand = lcg(7);
  const gaps = new CaptureGaps();
  assert.deepEqual(feed(gaps, stream(6000, 5e6, () => (rand() - 0.5) * 6000)), []);
  assert.equal(gaps.lostUs, 0);
});

test('a late timestamp followed by an early one is jitter, not a hole', () => {
  // The chunk after a late read is stamped 7 ms late (more than half a
  // chunk after the one before: the old rule skipped 7 ms here), and the
  // next one is back on time (3 ms after the late one's end).
  const stamps = stream(50);
  stamps[20] += 7000;
  const gaps = new CaptureGaps();
  assert.deepEqual(feed(gaps, stamps), []);
  assert.equal(gaps.jitter, 1, 'one late run that came back');
});

test('an early timestamp followed by a late one is jitter too', () => {
  const stamps = stream(50);
  stamps[20] -= 7000;
  const gaps = new CaptureGaps();
  assert.deepEqual(feed(gaps, stamps), []);
  assert.equal(gaps.reanchors, 0);
});

test('a 20 ms device buffer cut into two chunks stamped from one late estimate skips nothing', () => {
  // Both halves of one device read carry the read's error.
  const stamps = stream(200, 5e6, (i) => (i >= 100 && i < 102 ? 8000 : 0));
  const gaps = new CaptureGaps();
  assert.deepEqual(feed(gaps, stamps), []);
});

test('a chunk the fake device dropped (its thread woke late) is skipped once, by 10 ms', () => {
  // Chromium's fake capture device stamps chunks on its ideal 10 ms grid
  // and skips a tick it woke too late for: the stamps jump by 20 ms and
  // stay on the new grid.
  const stamps = stream(100).map((ts, i) => (i >= 40 ? ts + CHUNK_US : ts));
  const gaps = new CaptureGaps();
  const skips = feed(gaps, stamps);
  assert.equal(skips.length, 1);
  assert.equal(skips[0].us, CHUNK_US);
  assert.equal(skips[0].at, 40 + CONFIRM - 1, 'confirmed after CONFIRM chunks');
  assert.equal(gaps.lostUs, CHUNK_US);
});

test('a 300 ms hole (a reader held up until the queue overflowed) is skipped by what it held, jitter and all', () => {
  const rand = lcg(11);
  const stamps = stream(200, 5e6, (i) => (i >= 80 ? 300000 : 0) + (rand() - 0.5) * 2000);
  const gaps = new CaptureGaps();
  const skips = feed(gaps, stamps);
  assert.equal(skips.length, 1);
  assert.ok(Math.abs(skips[0].us - 300000) <= 2000, `skipped ${skips[0].us} us`);
});

test('the stamps restarting on another clock (a transferred stream on the Worker\'s) re-anchor without a skip; later loss is still measured', () => {
  // The first chunks on the page's clock, the rest 1.08 s lower.
  const stamps = stream(300).map((ts, i) => (i >= 5 ? ts - 1080000 : ts));
  for (let i = 200; i < 300; i += 1) stamps[i] += 2 * CHUNK_US;
  const gaps = new CaptureGaps();
  const skips = feed(gaps, stamps);
  assert.equal(gaps.reanchors, 1);
  assert.deepEqual(skips.map((s) => s.us), [2 * CHUNK_US]);
});

test('a device clock 200 ppm off the system clock drifts without a skip over two minutes', () => {
  const gaps = new CaptureGaps();
  assert.deepEqual(feed(gaps, stream(12000, 5e6, (i) => i * CHUNK_US * 200e-6)), []);
});

test('a chunk without a usable timestamp or length changes nothing', () => {
  const gaps = new CaptureGaps();
  feed(gaps, stream(10));
  assert.equal(gaps.chunk(NaN, CHUNK_US), 0);
  assert.equal(gaps.chunk(5e6 + 10 * CHUNK_US, 0), 0);
  assert.equal(gaps.chunk(5e6 + 10 * CHUNK_US, -5), 0);
  assert.deepEqual(feed(gaps, stream(10, 5e6 + 10 * CHUNK_US)), []);
});
