// Starts the Switchboard audio engine in an AudioWorklet.
//
//   const engine = await startEngine({ wasmUrl, workletUrl, leg, onPacket, onStats, onError });
//   engine.receive(frameArrayBuffer);   // media frames from the socket
//   engine.setMuted(true);
//   engine.stop();
//
// `packetMs` (10 or 20, default 20) is the packet duration: the `welcome`'s
// `packet_ms` (docs/protocol.md section 3; the SDK's `Session::packet_ms`),
// which the CCP passes (it offers 10 first). 10 ms saves 10 ms mouth to
// ear, but over the page's main thread every packet waits on it twice as
// often; `useMediaSocket` takes the frames off the main thread.
//
// The microphone is asked for with the browser's own processing off:
// echoCancellation, noiseSuppression and autoGainControl all false, since
// the engine does all three and stacking the browser's on top breaks ours.
// A denied or removed microphone is reported through onError with a code.
// `deviceId` picks the microphone (a remembered one that is gone falls
// back to the default with a warning); `sinkId` picks the speaker where
// the browser has AudioContext.setSinkId, and a failure keeps the default.

export class EngineError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// The engine's compiled module, per URL: compiled once per page and
// reused by every call's engine (compiling ~1.5 MB of wasm took tens to
// hundreds of ms on a loaded machine, inside the ring-to-accept window).
// A failed compile is forgotten, so the next call tries again.
const compiledModules = new Map();
function compileModule(wasmUrl) {
  const key = new URL(wasmUrl, location.href).href;
  let p = compiledModules.get(key);
  if (!p) {
    p = WebAssembly.compileStreaming(fetch(wasmUrl));
    compiledModules.set(key, p);
    p.catch(() => { if (compiledModules.get(key) === p) compiledModules.delete(key); });
  }
  return p;
}

/**
 * Compiles the engine's module ahead of any call (no microphone, no
 * AudioContext: nothing the agent sees), so that preparing the engine
 * while a call rings only opens the microphone and loads the worklet.
 * The CCP calls it once the agent is signed in. Resolves when compiled;
 * never rejects (a failure shows at the call's start).
 */
export function precompileEngine({ wasmUrl }) {
  return compileModule(wasmUrl).then(() => true, () => false);
}

export async function startEngine(options) {
  // Started at once: nothing to compile ahead of (see `warm` below).
  const prepared = await prepareEngine({ warm: false, ...options });
  return prepared.start(options);
}

// Everything that does not need the media leg: the microphone, the
// AudioContext, compiling the module and loading the worklet. The CCP runs
// it while a call rings, so accepting only has to post the leg
// (`prepared.start({ leg, onPacket, ... })`); `prepared.stop()` releases
// the microphone if the call is not taken. Nothing is sent before start.
//
// `warm` (default true): compile the engine's code now, in a throwaway
// run in the worklet whose instance the call's start then reuses, so that
// the call's first quanta do not compile it on the audio thread.
//
// `capture`: 'worklet' (default) takes the microphone through the
// AudioContext (a MediaStreamAudioSourceNode into the worklet); 'track'
// reads the capture track with MediaStreamTrackProcessor in a Worker
// (`captureWorkerUrl`, default beside the worklet) that posts samples
// straight to the worklet, skipping the AudioContext's capture hand-off
// and the main thread (the worker resamples a track that is not at 48 kHz);
// where the browser lacks it (not Chromium) it falls back to 'worklet'.
// 'worker' splits the engine: its send half runs in a Worker (`sendWorkerUrl`,
// default send-worker.js beside the worklet) that reads the capture track
// and cancels echo, denoises, levels, encodes and sends each chunk as it
// comes, so the microphone's audio never waits for the AudioContext's
// capture hand-off nor for render quanta; the worklet only plays and
// hands the Worker what it played (the echo reference). Where
// MediaStreamTrackProcessor is missing it falls back to 'worklet'
// (docs/architecture.md, "Capture in a Worker"). The started engine's
// `capture` says which one runs. 'direct' is the track path with each chunk
// processed and sent by the worklet as it arrives (in its message task, on
// the audio thread, which has real-time priority), not queued for the
// render quanta; the worklet's quanta then only play.
export async function prepareEngine(options) {
  const { wasmUrl, workletUrl, deviceId, sinkId } = options;
  const canSplit = typeof MediaStreamTrackProcessor === 'function' && typeof Worker === 'function';
  // The AudioContext's microphone by default: MediaStreamTrackProcessor
  // can only be made on the page (a track does not transfer to a Worker
  // in Chromium), so its chunks cross the page's main thread, and a busy
  // CCP page would hold the microphone (docs/architecture.md, "Capture
  // off the AudioContext"). 'direct' and 'worker' save the hand-off where
  // the page is idle.
  const capture = options.capture || 'worklet';
  const sendWorkerUrl = options.sendWorkerUrl || new URL('send-worker.js', new URL(workletUrl, location.href)).href;
  const captureWorkerUrl = options.captureWorkerUrl || new URL('capture-worker.js', new URL(workletUrl, location.href)).href;
  const ask = (id) => navigator.mediaDevices.getUserMedia({
    audio: {
      echoCancellation: false, noiseSuppression: false, autoGainControl: false,
      channelCount: 1, ...(id ? { deviceId: { exact: id } } : {}),
    },
  });
  let stream;
  try {
    try {
      stream = await ask(deviceId);
    } catch (err) {
      if (!deviceId || !err || err.name !== 'OverconstrainedError') throw err;
      console.warn(`[switchboard] microphone ${deviceId} is gone; using the default one`);
      stream = await ask(undefined);
    }
  } catch (err) {
    const code = err && err.name === 'NotAllowedError' ? 'microphone_denied'
      : err && err.name === 'NotFoundError' ? 'microphone_missing' : 'microphone_failed';
    throw new EngineError(code, `microphone unavailable: ${err && err.message}`);
  }
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
  } catch (err) {
    for (const t of stream.getTracks()) t.stop();
    throw new EngineError('engine_failed', `no audio output: ${err && err.message}`);
  }
  if (sinkId) {
    if (typeof ctx.setSinkId === 'function') {
      try { await ctx.setSinkId(sinkId); } catch (err) {
        console.warn(`[switchboard] speaker ${sinkId} unavailable, using the default: ${err && err.message}`);
      }
    } else {
      console.warn('[switchboard] this browser cannot choose the speaker; using the default');
    }
  }
  let module;
  try {
    [module] = await Promise.all([
      compileModule(wasmUrl),
      ctx.audioWorklet.addModule(workletUrl),
    ]);
  } catch (err) {
    // Release the microphone: a failed start must not keep it open.
    for (const t of stream.getTracks()) t.stop();
    ctx.close().catch(() => {});
    throw err;
  }
  const source = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, 'switchboard-engine', {
    numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
  });
  // Compile the engine's code now (the worklet runs a throwaway instance),
  // not on the audio thread once the call is accepted (worklet.js, warm).
  if (options.warm !== false) node.port.postMessage({ type: 'warm', module });
  source.connect(node);
  node.connect(ctx.destination);
  let captureMode = 'worklet';
  let captureWorker = null;
  let captureTrack = null;
  const track = stream.getAudioTracks()[0];
  if ((capture === 'track' || capture === 'direct') && track && typeof MediaStreamTrackProcessor === 'function'
      && typeof Worker === 'function') {
    try {
      // A clone, so the node's own input (the fallback) keeps its track.
      captureTrack = track.clone();
      const processor = new MediaStreamTrackProcessor({ track: captureTrack });
      const channel = new MessageChannel();
      captureWorker = new Worker(captureWorkerUrl);
      captureWorker.postMessage({ readable: processor.readable, port: channel.port1 }, [processor.readable, channel.port1]);
      node.port.postMessage({ type: 'capture', port: channel.port2, direct: capture === 'direct' }, [channel.port2]);
      captureMode = capture;
    } catch (err) {
      console.warn(`[switchboard] track capture unavailable, using the AudioContext: ${err && err.message}`);
      if (captureWorker) captureWorker.terminate();
      if (captureTrack) captureTrack.stop();
      captureWorker = null;
      captureTrack = null;
    }
  }
  // The split engine's send half (see `capture`: 'worker').
  let sendWorker = null;
  let referencePort = null;
  const sendHandlers = { packet: () => {}, ended: () => {}, error: () => {}, ready: () => {}, stats: () => {} };
  if (capture === 'worker' && track && canSplit) {
    try {
      captureTrack = track.clone();
      const processor = new MediaStreamTrackProcessor({ track: captureTrack });
      const reference = new MessageChannel();
      sendWorker = new Worker(sendWorkerUrl);
      sendWorker.onmessage = (e) => {
        const m = e.data || {};
        if (m.type === 'packet') sendHandlers.packet(m.frame);
        else if (m.type === 'ready') sendHandlers.ready();
        else if (m.type === 'ended') sendHandlers.ended(m.message, m);
        else if (m.type === 'error') sendHandlers.error(m);
        else if (m.type === 'stats') sendHandlers.stats(m.stats);
      };
      sendWorker.postMessage({ type: 'prepare', module, readable: processor.readable, reference: reference.port1 },
        [processor.readable, reference.port1]);
      referencePort = reference.port2;
      captureMode = 'worker';
    } catch (err) {
      console.warn(`[switchboard] capture in a worker unavailable, using the AudioContext: ${err && err.message}`);
      if (sendWorker) sendWorker.terminate();
      if (captureTrack) captureTrack.stop();
      sendWorker = null;
      captureTrack = null;
      referencePort = null;
    }
  }
  let stopped = false;
  let mediaWorker = null;
  const stopAll = async () => {
    if (stopped) return;
    stopped = true;
    // Closes the media socket: the backend sends media to the control socket again.
    if (mediaWorker) mediaWorker.terminate();
    if (captureWorker) captureWorker.terminate();
    if (sendWorker) sendWorker.terminate();
    // The microphone is released only once its clone stops too.
    if (captureTrack) captureTrack.stop();
    for (const t of stream.getTracks()) t.stop();
    node.disconnect();
    source.disconnect();
    await ctx.close();
  };
  let mediaPath = 'main';
  let mediaSocket = null;
  /**
   * Moves the frames off the page's main thread: a Worker
   * (`workerUrl`, default media-worker.js beside the worklet) opens
   * the media socket at `url` with `ticket` (the `media_socket` op,
   * docs/protocol.md section 8) and talks to the worklet over a
   * MessagePort. Resolves with 'worker' once the backend welcomed
   * it, or 'main' when it could not (the page's path goes on
   * working meanwhile and after). `onClosed` is called when a
   * welcomed socket closes later (frames are back on the main path).
   * Callable on the prepared engine, while the call rings, so that the
   * call's first frames already take the socket (the worklet keeps the
   * few that come before its engine starts); a second call while one
   * is open or opening returns the first one's promise.
   */
  const useMediaSocket = ({ url, ticket, workerUrl, onClosed = () => {} }) => {
    if (mediaSocket) return mediaSocket;
    if (stopped || typeof Worker !== 'function') return Promise.resolve('main');
    mediaSocket = new Promise((resolve) => {
      let worker;
      try {
        worker = new Worker(workerUrl || new URL('media-worker.js', new URL(workletUrl, location.href)).href);
      } catch (err) {
        console.warn(`[switchboard] media worker unavailable: ${err && err.message}`);
        resolve('main');
        return;
      }
      mediaWorker = worker;
      const channel = new MessageChannel();
      const closed = () => {
        worker.terminate();
        if (mediaWorker === worker) {
          mediaWorker = null;
          mediaSocket = null;
        }
      };
      worker.onmessage = (e) => {
        const m = e.data || {};
        if (m.type === 'open') {
          mediaPath = 'worker';
          resolve('worker');
        } else if (m.type === 'closed') {
          const was = mediaPath;
          mediaPath = 'main';
          closed();
          resolve('main');
          if (was === 'worker') onClosed(m);
        } else if (m.type === 'error') {
          console.warn(`[switchboard] media socket: ${m.code} ${m.message}`);
        }
      };
      worker.onerror = (e) => {
        console.warn(`[switchboard] media worker failed: ${e && e.message}`);
        node.port.postMessage({ type: 'net_closed' });
        mediaPath = 'main';
        closed();
        resolve('main');
      };
      node.port.postMessage({ type: 'net', port: channel.port2 }, [channel.port2]);
      if (sendWorker) {
        // The send half's packets go to the socket too, worker to worker.
        const out = new MessageChannel();
        sendWorker.postMessage({ type: 'net', port: out.port2 }, [out.port2]);
        worker.postMessage({ url, ticket, port: channel.port1, send: out.port1 }, [channel.port1, out.port1]);
      } else {
        worker.postMessage({ url, ticket, port: channel.port1 }, [channel.port1]);
      }
    });
    return mediaSocket;
  };
  return {
    context: ctx,
    stream,
    node,
    stop: stopAll,
    useMediaSocket,
    get mediaPath() { return mediaPath; },
    async start(startOptions) {
      const {
        leg = 0, bitrate = 32000, fec = true, dtx = false, echo = true, packetMs = 20,
        onPacket = () => {}, onStats = () => {}, onError = () => {}, onTap, tapSeconds = 0,
        onMark = () => {},
      } = startOptions;
      const ready = new Promise((resolve, reject) => {
        node.port.onmessage = (e) => {
          const m = e.data;
          if (m.type === 'ready') resolve(m);
          else if (m.type === 'packet') onPacket(m.frame);
          // The split engine's send figures come from its Worker.
          else if (m.type === 'stats') onStats(captureMode === 'worker' ? { ...m.stats, ...sendStats } : m.stats);
          // A moment of the start ({ name, time } on the audio clock), for measurements.
          else if (m.type === 'mark') onMark(m.name, m.time);
          else if (m.type === 'capture_fallback') {
            captureMode = 'worklet';
            console.warn(`[switchboard] track capture stopped (${m.reason}); using the AudioContext`);
          }
          // `capture` (direct capture): per chunk, its timestamp and length
          // (us), when the capture Worker posted it, when the worklet got
          // it, the packets it completed and when they left (ms since the
          // epoch): six numbers a chunk (worklet.js, onDirect).
          else if (m.type === 'tap' && onTap) onTap(new Float32Array(m.input), new Float32Array(m.output), m.time, m.capture ? new Float64Array(m.capture) : null);
          else if (m.type === 'error') {
            const err = new EngineError(m.code, m.message);
            reject(err);
            onError(err);
          }
        };
      });
      let sendReady = Promise.resolve();
      let sendStats = {};
      if (sendWorker) {
        sendHandlers.stats = (st) => { sendStats = st; };
        sendHandlers.packet = (frame) => onPacket(frame);
        sendHandlers.error = (m) => onError(new EngineError(m.code, m.message));
        sendHandlers.ended = (reason, m) => {
          // The track failed, or the Worker could not keep up: the whole
          // engine goes back to the worklet, on the AudioContext's
          // microphone, continuing the same stream (sequence, timestamp).
          console.warn(`[switchboard] capture in a worker stopped (${reason}); using the AudioContext`);
          captureMode = 'worklet';
          node.port.postMessage({ type: 'split_off', seq: m && m.seq, ts: m && m.ts });
          sendWorker.postMessage({ type: 'stop' });
        };
        sendReady = new Promise((resolve) => { sendHandlers.ready = resolve; });
        sendWorker.postMessage({ type: 'init', leg, bitrate, fec, dtx, echo, packetMs });
        node.port.postMessage({ type: 'init', module, leg, bitrate, fec, dtx, echo, packetMs, tapSeconds, reference: referencePort },
          [referencePort]);
      } else {
        node.port.postMessage({ type: 'init', module, leg, bitrate, fec, dtx, echo, packetMs, tapSeconds });
      }
      for (const track of stream.getAudioTracks()) {
        track.addEventListener('ended', () => onError(new EngineError('microphone_removed', 'the microphone was disconnected')));
      }
      if (ctx.state !== 'running') await ctx.resume();
      const [info] = await Promise.all([ready, sendReady]);
      return {
        context: ctx,
        // What the call really uses ('' is the default), for the panel and tests.
        deviceId: (stream.getAudioTracks()[0]?.getSettings().deviceId) || '',
        sinkId: typeof ctx.sinkId === 'string' ? ctx.sinkId : '',
        addedLatencyMs: info.addedLatencyMs,
        // 'track' or 'worklet' (see prepareEngine).
        get capture() { return captureMode; },
        // The microphone's stream and the engine's node, for measurements
        // (tests/bench/webrtc.mjs reads the capture track and the output).
        stream,
        node,
        receive(frame) {
          const buf = frame instanceof ArrayBuffer ? frame : frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength);
          node.port.postMessage({ type: 'frame', frame: buf }, [buf]);
        },
        setMuted(muted) {
          node.port.postMessage({ type: 'mute', muted });
          if (sendWorker) sendWorker.postMessage({ type: 'mute', muted });
        },
        requestStats() {
          if (sendWorker && captureMode === 'worker') sendWorker.postMessage({ type: 'stats' });
          node.port.postMessage({ type: 'stats' });
        },
        // 'worker' once frames go over the media socket, else 'main'.
        get mediaPath() { return mediaPath; },
        // True once the media socket is open or on its way (opened while
        // the call rang, say): the caller need not ask for another ticket.
        get mediaSocketAsked() { return mediaSocket !== null; },
        useMediaSocket,
        stop: stopAll,
      };
    },
  };
}
