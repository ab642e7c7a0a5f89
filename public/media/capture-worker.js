// The engine's capture path off the main thread (Chromium): the
// microphone's MediaStreamTrackProcessor stream is transferred here, and
// every AudioData chunk goes straight to the engine's AudioWorklet over a
// MessageChannel port. Neither the page's main thread nor the
// AudioContext's input (MediaStreamAudioSourceNode, which hands captured
// audio over 15-20 ms late) is on the way.
//
//   worker.postMessage({ readable, port }, [readable, port]);
//
// A track at another rate than the engine's 48 kHz (Chromium's fake
// device runs at 44.1 kHz, so do some microphones) is resampled here, by
// cubic (Catmull-Rom) interpolation: flat within 1 dB up to the 8 kHz the
// wideband codec keeps. A stream that fails or ends is reported on the
// port ({ type: 'capture_ended' }) and the worklet goes back to its own
// input.

// resampler(): onto the engine's 48 kHz, shared with the other worker.
importScripts('resample.js');

onmessage = (e) => {
  const { readable, port } = e.data || {};
  if (!readable || !port) return;
  const reader = readable.getReader();
  const resample = resampler();
  (async () => {
    for (;;) {
      let step;
      try {
        step = await reader.read();
      } catch (err) {
        port.postMessage({ type: 'capture_ended', message: String(err) });
        return;
      }
      if (step.done) {
        port.postMessage({ type: 'capture_ended', message: 'the track ended' });
        return;
      }
      const data = step.value;
      const ts = data.timestamp;
      const us = (data.numberOfFrames * 1e6) / data.sampleRate;
      let samples;
      try {
        const raw = new Float32Array(data.numberOfFrames);
        data.copyTo(raw, { planeIndex: 0, format: 'f32-planar' });
        samples = resample(raw, data.sampleRate);
      } catch (err) {
        port.postMessage({ type: 'capture_ended', message: String(err) });
        return;
      } finally {
        data.close();
      }
      // The chunk's capture time and length (us), for a worklet that
      // processes chunks as they come (direct capture: lost chunks), and
      // for measuring where a chunk waits: when this Worker posted it, and
      // the capture time, in ms since the epoch (Chromium gives the
      // timestamps of a transferred track stream on this Worker's
      // performance clock, after a few on the page's: worklet.js, onDirect).
      const at = performance.timeOrigin + performance.now();
      const capturedAt = performance.timeOrigin + ts / 1000;
      port.postMessage({ type: 'mic', samples: samples.buffer, ts, us, at, capturedAt }, [samples.buffer]);
    }
  })();
};
