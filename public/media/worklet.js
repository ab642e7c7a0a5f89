// AudioWorklet processor running the Switchboard audio engine (wasm).
//
// The wasm module is compiled on the main thread and posted here; it has
// no imports, so it instantiates in AudioWorkletGlobalScope. Each render
// quantum: microphone samples go into the engine's input buffer, the engine
// runs (at most one heavy job per quantum), the output buffer is played,
// and an encoded media frame, when one is ready, goes back over the port.
// No SharedArrayBuffer: frames cross the MessagePort as transferred buffers.
//
// Capture: the node's own input (the AudioContext's microphone), or, when
// the page started the track path (Chromium's MediaStreamTrackProcessor in
// a Worker, capture-worker.js), samples posted by that worker on a port of
// their own, queued here and taken 128 a quantum. The queue starts a
// quantum deep past the first chunk, re-primes after an underrun, and
// drops a quantum when it has stayed at least two quanta deeper than it
// needed to for half a second (capture and audio clocks drift apart).
//
// Split mode (the page's 'worker' capture, send-worker.js): the capture,
// the send chain and the packets live in a Worker that reads the
// microphone's track itself; this processor only plays (sb_play) and posts
// every quantum it played to that Worker on the `reference` port, as the
// echo reference. `split_off` (the track failed) brings the whole engine
// back here, on the node's own input.
//
// Network: frames come and go over the node's port (the page's main
// thread and its control socket), or, once the page has started the
// media worker (media-worker.js) and its socket is welcomed, over a port
// to that worker: packets then never wait on the main thread. Frames
// arriving on either port are played alike; when the worker's socket
// closes, packets go back to the node's port.

// Lost capture audio told from timestamp jitter (direct capture).
import { CaptureGaps } from './capture-gaps.js';

const RING = 48000 / 2;
// Frames kept from before the engine starts (40 ms at 10 ms packets).
const EARLY_FRAMES = 4;
// A gap between two arrivals (network frames, or direct capture chunks)
// this long, on the audio clock, is a hold: frames come every 10-20 ms,
// and a thread starved by a busy machine delays them by tens of ms, while
// a path through a blocked thread (the page's main thread in a long
// task) holds them for the whole block. Counted in the stats (`netHolds`,
// `captureHolds`).
const HOLD_S = 0.2;

// Milliseconds since the epoch, as finely as this scope can tell (for the
// measurement hook only: AudioWorkletGlobalScope may lack `performance`).
const wallClockMs = () => (typeof performance === 'object' && performance && typeof performance.now === 'function'
  ? performance.timeOrigin + performance.now() : Date.now());

const STATS_FIELDS = [
  'received', 'lost', 'concealed', 'fecRecovered', 'late', 'duplicates', 'jitterMs',
  'bufferDelayMs', 'targetDelayMs', 'erleDb', 'inputDbfs', 'outputDbfs', 'mos',
  'packetsSent', 'overruns', 'muted', 'shrinks', 'grows', 'restarts',
];

class SwitchboardEngine extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.x = null;
    this.quanta = 0;
    this.tap = null;
    this.tapLen = 0;
    this.opts = options.processorOptions || {};
    this.ring = null;
    this.net = null;
    this.netOpen = false;
    this.netLast = undefined;
    this.netHolds = 0;
    this.captureHolds = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    if (msg.type === 'warm') {
      this.warm(msg.module);
    } else if (msg.type === 'init') {
      // The instance warmed while the call rang, when there is one (its
      // engine is made anew by sb_init below).
      const instance = this.warmed
        ? this.warmed.catch(() => WebAssembly.instantiate(msg.module, {}).then((i) => i.exports))
        : WebAssembly.instantiate(msg.module, {}).then((i) => i.exports);
      this.warmed = null;
      instance.then((x) => {
        const rc = x.sb_init(msg.leg >>> 0, msg.bitrate | 0, msg.fec ? 1 : 0, msg.dtx ? 1 : 0, msg.echo === false ? 0 : 1);
        if (rc !== 0) {
          this.port.postMessage({ type: 'error', code: 'engine_init_failed', message: 'the audio engine could not start' });
          return;
        }
        // 10 ms packets halve the packet's wait; an older module without
        // the export keeps 20 ms.
        if (typeof x.sb_set_packet_ms === 'function' && x.sb_set_packet_ms(msg.packetMs === 10 ? 10 : 20) !== 0) {
          this.port.postMessage({ type: 'error', code: 'engine_init_failed', message: `packet duration ${msg.packetMs} ms refused` });
          return;
        }
        this.x = x;
        this.split = !this.splitOff && !!(msg.reference && typeof x.sb_play === 'function');
        if (this.split) this.reference = msg.reference;
        if (msg.tapSeconds) {
          // Test hook: keep copies of the microphone and of what is
          // played, on the same clock, posted in half-second chunks.
          this.tap = new Float32Array(Math.round(sampleRate * 0.5));
          this.tapIn = new Float32Array(this.tap.length);
          this.captureTiming = [];
        }
        this.port.postMessage({ type: 'ready', addedLatencyMs: x.sb_added_latency_ms() });
        // The call's first frames, come while the engine started.
        const early = this.early || [];
        this.early = null;
        for (const frame of early) this.receive(frame);
      }, (err) => {
        this.port.postMessage({ type: 'error', code: 'engine_init_failed', message: String(err) });
      });
    } else if (msg.type === 'frame') {
      if (this.x) this.receive(msg.frame); else this.keepEarly(msg.frame);
    } else if (msg.type === 'net' && msg.port) {
      // The media worker's port: frames (ArrayBuffers) both ways once open.
      this.net = msg.port;
      this.netOpen = false;
      msg.port.onmessage = (e) => {
        const d = e.data;
        if (d instanceof ArrayBuffer) {
          if (this.x) this.receive(d); else this.keepEarly(d);
        } else if (d && d.type === 'open') {
          this.netOpen = true;
        } else if (d && d.type === 'closed') {
          this.netOpen = false;
          this.net = null;
        }
      };
    } else if (msg.type === 'net_closed') {
      this.netOpen = false;
      this.net = null;
    } else if (msg.type === 'capture' && msg.port && msg.direct) {
      // Direct capture: each track chunk is processed as it arrives (in
      // this message task, on the audio thread), not queued for the
      // render quanta; process() then only plays.
      this.direct = true;
      this.directAligned = false;
      this.directGaps = new CaptureGaps();
      this.captureGaps = 0;
      this.captureLostUs = 0;
      msg.port.onmessage = (e) => this.onDirect(e.data);
    } else if (msg.type === 'capture' && msg.port) {
      // The track path: samples come from the capture worker.
      this.ring = new Float32Array(RING);
      this.ringRead = 0;
      this.ringLen = 0;
      this.primed = false;
      this.lowest = Infinity;
      this.lowestSince = 0;
      this.captureUnderruns = 0;
      this.captureDrops = 0;
      msg.port.onmessage = (e) => this.onCapture(e.data);
    } else if (msg.type === 'split_off') {
      this.splitOff = true;
      this.split = false;
      this.reference = null;
      // The Worker's stream goes on from here.
      if (this.x && typeof msg.seq === 'number' && typeof msg.ts === 'number') {
        this.x.sb_continue_stream(msg.seq >>> 0, msg.ts >>> 0);
      }
    } else if (msg.type === 'mute' && this.x) {
      this.x.sb_set_muted(msg.muted ? 1 : 0);
    } else if (msg.type === 'stats' && this.x) {
      this.postStats();
    }
  }

  /**
   * Compiles the engine's code ahead, while a call rings: the browser
   * compiles a wasm function the first time it runs (lazily), and the
   * first init and the first quanta of a fresh module took about 70 +
   * 370 ms of compiling on this machine, all on the audio thread after
   * the call was accepted. A throwaway instance runs the whole chain
   * here (both packet durations, encode, the packets fed back through
   * the receive path), and the call's init then makes its engine anew in
   * that same instance (instantiating took 30 ms to over a second on
   * this loaded machine). Nothing is played or sent.
   */
  warm(module) {
    if (this.warmed || this.x) return;
    const started = Date.now();
    this.warmed = WebAssembly.instantiate(module, {}).then((instance) => {
      const x = instance.exports;
      if (x.sb_init(1, 32000, 1, 0, 1) !== 0) return x;
      const input = () => new Float32Array(x.memory.buffer, x.sb_input(), 128);
      let seed = 1;
      for (const ms of [20, 10]) {
        if (typeof x.sb_set_packet_ms === 'function') x.sb_set_packet_ms(ms);
        for (let q = 0; q < 60; q++) {
          const mic = input();
          for (let i = 0; i < 128; i++) {
            seed = (seed * 1103515245 + 12345) >>> 0;
            mic[i] = 0.1 * Math.sin((q * 128 + i) * 0.06) + 0.01 * (seed / 4294967296 - 0.5);
          }
          const n = x.sb_process();
          if (n > 0 && n <= x.sb_frame_capacity()) {
            const packet = new Uint8Array(x.memory.buffer, x.sb_packet(), n).slice();
            new Uint8Array(x.memory.buffer, x.sb_frame_in(), n).set(packet);
            x.sb_receive(n);
          }
        }
      }
      x.sb_stats();
      this.port.postMessage({ type: 'warmed', ms: Date.now() - started });
      return x;
    });
  }

  /**
   * A frame that came before the engine started (the media socket opened
   * while the call rang, so the call's first frames can arrive while the
   * accepted engine starts): the last EARLY_FRAMES are kept and played
   * once it runs, the older ones dropped (they would only add delay).
   */
  keepEarly(frame) {
    if (this.early === null) return;
    if (!this.early) this.early = [];
    this.early.push(frame);
    if (this.early.length > EARLY_FRAMES) this.early.shift();
  }

  /** One media frame from the network into the engine. */
  receive(frame) {
    if (this.netLast !== undefined && currentTime - this.netLast > HOLD_S) this.netHolds += 1;
    this.netLast = currentTime;
    if (!this.firstFrameTime) {
      // When the call's audio start is measured (bench calls): the first
      // frame in, on the audio clock.
      this.firstFrameTime = currentTime;
      this.port.postMessage({ type: 'mark', name: 'firstFrame', time: currentTime });
    }
    const bytes = new Uint8Array(frame);
    const cap = this.x.sb_frame_capacity();
    if (bytes.length === 0 || bytes.length > cap) return;
    new Uint8Array(this.x.memory.buffer, this.x.sb_frame_in(), bytes.length).set(bytes);
    if (this.x.sb_receive(bytes.length) !== 0) {
      this.port.postMessage({ type: 'frame_rejected' });
    }
  }

  onCapture(m) {
    if (!this.ring) return;
    if (m.type === 'mic') {
      const s = new Float32Array(m.samples);
      for (let i = 0; i < s.length; i++) {
        if (this.ringLen === RING) { this.ringRead = (this.ringRead + 1) % RING; this.ringLen -= 1; }
        this.ring[(this.ringRead + this.ringLen) % RING] = s[i];
        this.ringLen += 1;
      }
      // Chunks are 10 ms (441 or 480 samples before resampling).
      if (!this.primed && this.ringLen >= Math.max(s.length, 480) + 128) this.primed = true;
    } else {
      // Unsupported or ended: back to the node's own input.
      this.ring = null;
      this.port.postMessage({ type: 'capture_fallback', reason: m.message || m.type });
    }
  }

  /**
   * Direct capture: a track chunk through the send chain at once (echo,
   * denoise, gain, encode), its packet sent from here. The engine starts
   * 96 samples of silence ahead of the first chunk, so every packet's end
   * falls at most 2 ms before a chunk's end (send-worker.js explains).
   * Chunks the capture worker never got (the browser drops them when it
   * stalls) are skipped in the stream (sb_skip): the receiver conceals
   * them instead of playing all that follows later; timestamps that only
   * jitter skip nothing (capture-gaps.js).
   */
  onDirect(m) {
    if (m.type !== 'mic') {
      this.direct = false;
      this.port.postMessage({ type: 'capture_fallback', reason: m.message || m.type });
      return;
    }
    const x = this.x;
    const arrived = this.tap ? wallClockMs() : 0;
    // Chunks that came more than 40 ms after the one before, on the audio
    // clock (chunks are 10 ms: a stall on the capture's way shows here).
    if (this.directLast !== undefined && currentTime - this.directLast > 0.04) this.captureStalls = (this.captureStalls || 0) + 1;
    if (this.directLast !== undefined && currentTime - this.directLast > HOLD_S) this.captureHolds += 1;
    this.directLast = currentTime;
    if (typeof m.ts === 'number' && typeof m.us === 'number') {
      // Audio lost before this chunk, once its timestamps say so for
      // good (capture-gaps.js: jitter alone skips nothing).
      const lostUs = this.directGaps.chunk(m.ts, m.us);
      if (lostUs > 0 && x && this.directAligned) {
        this.captureGaps += 1;
        this.captureLostUs += lostUs;
        x.sb_skip(Math.round((lostUs * sampleRate) / 1e6));
      }
    }
    if (!x || typeof x.sb_capture !== 'function') return;
    const s = new Float32Array(m.samples);
    if (!this.directAligned) {
      const pad = (((96 - s.length) % 480) + 480) % 480;
      if (pad) this.captureSlices(new Float32Array(pad));
      this.directAligned = true;
    }
    const sent = this.packetsOut || 0;
    this.captureSlices(s);
    if (this.tap && this.captureTiming.length < 6 * 200) {
      // Measurement hook (tapSeconds): where this chunk waited. Its
      // capture time and length (us), when the capture Worker posted it
      // and when it got here (ms since the epoch), how many packets it
      // completed, and when they left.
      this.captureTiming.push(typeof m.capturedAt === 'number' ? m.capturedAt : NaN, m.us, typeof m.at === 'number' ? m.at : NaN, arrived,
        (this.packetsOut || 0) - sent, wallClockMs());
    }
  }

  captureSlices(s) {
    const x = this.x;
    for (let at = 0; at < s.length; at += 128) {
      const len = Math.min(128, s.length - at);
      new Float32Array(x.memory.buffer, x.sb_input(), len).set(s.subarray(at, at + len));
      const n = x.sb_capture(len);
      if (n > 0) this.sendPacket(n);
      else if (n < 0) this.port.postMessage({ type: 'error', code: 'encoder_failed', message: 'the encoder failed' });
    }
  }

  sendPacket(n) {
    this.packetsOut = (this.packetsOut || 0) + 1;
    const frame = new Uint8Array(this.x.memory.buffer, this.x.sb_packet(), n).slice();
    if (this.netOpen) this.net.postMessage(frame.buffer, [frame.buffer]);
    else this.port.postMessage({ type: 'packet', frame: frame.buffer }, [frame.buffer]);
  }

  /** 128 captured samples from the track path into `input`; false when none are due. */
  takeCaptured(input) {
    if (!this.primed || this.ringLen < 128) {
      if (this.primed) { this.primed = false; this.captureUnderruns += 1; }
      return false;
    }
    if (this.ringLen < this.lowest) this.lowest = this.ringLen;
    if (currentTime - this.lowestSince >= 0.5) {
      // Deeper than needed for half a second (bursts, clock drift, a
      // stalled audio thread catching up): drop the excess over one
      // quantum at once, in whole quanta.
      if (this.lowest !== Infinity && this.lowest >= 2 * 128) {
        const drop = Math.floor((this.lowest - 128) / 128) * 128;
        this.ringRead = (this.ringRead + drop) % RING;
        this.ringLen -= drop;
        this.captureDrops += 1;
      }
      this.lowest = Infinity;
      this.lowestSince = currentTime;
    }
    for (let i = 0; i < 128; i++) input[i] = this.ring[(this.ringRead + i) % RING];
    this.ringRead = (this.ringRead + 128) % RING;
    this.ringLen -= 128;
    return true;
  }

  postStats() {
    const values = new Float64Array(this.x.memory.buffer, this.x.sb_stats(), STATS_FIELDS.length);
    const stats = {};
    STATS_FIELDS.forEach((k, i) => { stats[k] = values[i]; });
    // Which path the network frames take: 'worker' (the media socket) or 'main'.
    stats.mediaPath = this.netOpen ? 'worker' : 'main';
    stats.netHolds = this.netHolds;
    if (this.direct) {
      stats.captureGaps = this.captureGaps;
      // How much audio those gaps held: a browser that skips one late
      // 10 ms chunk and a reader held up for 300 ms both count one gap.
      stats.captureLostMs = this.captureLostUs / 1000;
      stats.captureStalls = this.captureStalls || 0;
      stats.captureHolds = this.captureHolds;
      // Runs of late or early timestamps that came back: jitter, not loss.
      stats.captureJitter = this.directGaps.jitter;
    }
    if (this.ring) {
      stats.captureQueued = this.ringLen;
      stats.captureUnderruns = this.captureUnderruns;
      stats.captureDrops = this.captureDrops;
    }
    this.port.postMessage({ type: 'stats', stats });
  }

  process(inputs, outputs) {
    const out = outputs[0] && outputs[0][0];
    if (!this.x) {
      if (out) out.fill(0);
      return true;
    }
    const x = this.x;
    const mic = inputs[0] && inputs[0][0];
    const input = new Float32Array(x.memory.buffer, x.sb_input(), 128);
    if (this.ring) {
      if (!this.takeCaptured(input)) input.fill(0);
    } else if (mic && mic.length === 128) input.set(mic); else input.fill(0);
    if (this.tap) {
      if (this.tapLen === 0) this.tapStart = currentTime;
      this.tapIn.set(input, this.tapLen);
    }
    let n = 0;
    if (this.split) x.sb_play();
    else if (this.direct && typeof x.sb_play_local === 'function') x.sb_play_local();
    else n = x.sb_process();
    const output = new Float32Array(x.memory.buffer, x.sb_output(), 128);
    if (out) {
      out.set(output);
      for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(output);
    }
    if (this.split) {
      // What was played, to the send half's echo canceller.
      const played = output.slice();
      this.reference.postMessage(played.buffer, [played.buffer]);
    }
    if (n > 0) {
      const frame = new Uint8Array(x.memory.buffer, x.sb_packet(), n).slice();
      if (this.netOpen) this.net.postMessage(frame.buffer, [frame.buffer]);
      else this.port.postMessage({ type: 'packet', frame: frame.buffer }, [frame.buffer]);
    } else if (n < 0) {
      this.port.postMessage({ type: 'error', code: 'encoder_failed', message: 'the encoder failed' });
    }
    if (this.tap) {
      this.tap.set(output, this.tapLen);
      this.tapLen += 128;
      if (this.tapLen + 128 > this.tap.length) {
        const out = this.tap.slice(0, this.tapLen);
        const inp = this.tapIn.slice(0, this.tapLen);
        // `time`: the chunk's first sample on the AudioContext clock, s.
        // `capture`: the direct capture chunks since the last post (onDirect).
        const capture = new Float64Array(this.captureTiming);
        this.captureTiming = [];
        this.port.postMessage({ type: 'tap', input: inp.buffer, output: out.buffer, time: this.tapStart, capture: capture.buffer },
          [inp.buffer, out.buffer, capture.buffer]);
        this.tapLen = 0;
      }
    }
    this.quanta += 1;
    if (this.quanta % 375 === 0) this.postStats(); // once a second
    return true;
  }
}

registerProcessor('switchboard-engine', SwitchboardEngine);
