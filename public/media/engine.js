// Starts the Switchboard audio engine in an AudioWorklet.
//
//   const engine = await startEngine({ wasmUrl, workletUrl, leg, onPacket, onStats, onError });
//   engine.receive(frameArrayBuffer);   // media frames from the socket
//   engine.setMuted(true);
//   engine.stop();
//
// `packetMs` (10 or 20, default 10) is the packet duration: the `welcome`'s
// `packet_ms` when the backend sends one (docs/protocol.md section 3); a
// backend that sends none takes both, as the protocol requires of every
// receiver.
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

export async function startEngine(options) {
  const prepared = await prepareEngine(options);
  return prepared.start(options);
}

// Everything that does not need the media leg: the microphone, the
// AudioContext, compiling the module and loading the worklet. The CCP runs
// it while a call rings, so accepting only has to post the leg
// (`prepared.start({ leg, onPacket, ... })`); `prepared.stop()` releases
// the microphone if the call is not taken. Nothing is sent before start.
export async function prepareEngine(options) {
  const { wasmUrl, workletUrl, deviceId, sinkId } = options;
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
      WebAssembly.compileStreaming(fetch(wasmUrl)),
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
  source.connect(node);
  node.connect(ctx.destination);
  let stopped = false;
  const stopAll = async () => {
    if (stopped) return;
    stopped = true;
    for (const t of stream.getTracks()) t.stop();
    node.disconnect();
    source.disconnect();
    await ctx.close();
  };
  return {
    context: ctx,
    stream,
    node,
    stop: stopAll,
    async start(startOptions) {
      const {
        leg = 0, bitrate = 32000, fec = true, dtx = false, echo = true, packetMs = 10,
        onPacket = () => {}, onStats = () => {}, onError = () => {}, onTap, tapSeconds = 0,
      } = startOptions;
      const ready = new Promise((resolve, reject) => {
        node.port.onmessage = (e) => {
          const m = e.data;
          if (m.type === 'ready') resolve(m);
          else if (m.type === 'packet') onPacket(m.frame);
          else if (m.type === 'stats') onStats(m.stats);
          else if (m.type === 'tap' && onTap) onTap(new Float32Array(m.input), new Float32Array(m.output), m.time);
          else if (m.type === 'error') {
            const err = new EngineError(m.code, m.message);
            reject(err);
            onError(err);
          }
        };
      });
      node.port.postMessage({ type: 'init', module, leg, bitrate, fec, dtx, echo, packetMs, tapSeconds });
      for (const track of stream.getAudioTracks()) {
        track.addEventListener('ended', () => onError(new EngineError('microphone_removed', 'the microphone was disconnected')));
      }
      if (ctx.state !== 'running') await ctx.resume();
      const info = await ready;
      return {
        context: ctx,
        // What the call really uses ('' is the default), for the panel and tests.
        deviceId: (stream.getAudioTracks()[0]?.getSettings().deviceId) || '',
        sinkId: typeof ctx.sinkId === 'string' ? ctx.sinkId : '',
        addedLatencyMs: info.addedLatencyMs,
        // The microphone's stream and the engine's node, for measurements
        // (tests/bench/webrtc.mjs reads the capture track and the output).
        stream,
        node,
        receive(frame) {
          const buf = frame instanceof ArrayBuffer ? frame : frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength);
          node.port.postMessage({ type: 'frame', frame: buf }, [buf]);
        },
        setMuted(muted) { node.port.postMessage({ type: 'mute', muted }); },
        requestStats() { node.port.postMessage({ type: 'stats' }); },
        stop: stopAll,
      };
    },
  };
}
