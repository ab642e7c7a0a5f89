//! The call's audio: starts the audio engine (an AudioWorklet running the
//! media-wasm module, loaded from `/ccp/media/`) when a contact is connected
//! and the backend has given the agent's connection a media leg, and stops
//! it when the call ends. While a call rings, everything that does not need
//! the leg is done ahead (microphone, AudioContext, compiling the module,
//! loading the worklet: about 100 ms of the accept-to-audio time), so
//! accepting only posts the leg; a call not taken releases it all. Frames go between the engine and the socket as
//! they are: the engine paces its sends by the audio clock, the client
//! drops them when the socket backs up.

use std::cell::RefCell;

use js_sys::Uint8Array;
use leptos::task::spawn_local;
use streams_sdk::web::DirectClient;
use streams_sdk::ClientState;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
// The engine prepared while a call rings (a promise), used by the next
// start or stopped when the ringing ends without one.
let prepared = null;
// The capture path: direct capture (the capture track's chunks, read in a
// Worker whose stream Chromium feeds off the page's main thread, processed
// on the audio thread as they come) where the browser has
// MediaStreamTrackProcessor, else the engine falls back to the
// AudioContext's microphone by itself (docs/architecture.md, "The CCP's
// capture path"). `__switchboardCapture` (a test and bench hook) picks
// another: 'worklet', 'worker' or 'track'.
function captureMode() { return globalThis.__switchboardCapture || 'direct'; }
export function sbPrepare(deviceId, sinkId) {
  if (prepared) return false;
  prepared = import('/ccp/media/engine.js').then((m) => m.prepareEngine({
    wasmUrl: '/ccp/media/engine.wasm', workletUrl: '/ccp/media/worklet.js',
    deviceId: deviceId || undefined, sinkId: sinkId || undefined, capture: captureMode(),
  }));
  // A failure is reported by the start that would have used it.
  prepared.catch(() => {});
  return true;
}
// The media socket opened on the prepared engine, while the call rings, so
// that the call's first frames already go socket -> worker -> worklet
// (docs/protocol.md section 8 allows it before any call). A prepared
// engine no call takes closes it when it stops.
export function sbPrepareMediaSocket(path, ticket) {
  const p = prepared;
  // `__switchboardMediaSocketAtStart` (a bench hook) opens it after the
  // engine starts instead, as before, for comparing.
  if (!p || globalThis.__switchboardMainThreadMedia || globalThis.__switchboardMediaSocketAtStart) return;
  const url = new URL(path, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  p.then((e) => e.useMediaSocket({
    url: url.href, ticket, workerUrl: '/ccp/media/media-worker.js',
    onClosed: () => { globalThis.__switchboardMediaPath = 'main'; },
  }), () => {});
}
// Whether the engine's media socket is open or on its way (opened while
// the call rang); then no second ticket is asked for.
export function sbMediaSocketAsked(engine) {
  if (!engine.mediaSocketAsked) return false;
  engine.useMediaSocket({}).then((path) => {
    if (engine.live.on) globalThis.__switchboardMediaPath = path;
  });
  return true;
}
// The engine's module compiled once the agent is signed in, before any
// call rings (engine.js keeps it for every call's engine).
let precompiled = false;
export function sbPrecompile() {
  if (precompiled) return;
  precompiled = true;
  import('/ccp/media/engine.js').then((m) => m.precompileEngine({ wasmUrl: '/ccp/media/engine.wasm' }))
    .then((ok) => { if (!ok) precompiled = false; }, () => { precompiled = false; });
}
export function sbCancelPrepare() {
  const p = prepared;
  prepared = null;
  if (p) p.then((e) => e.stop(), () => {});
}
export async function sbStart(leg, packetMs, deviceId, sinkId, onPacket, onError) {
  // When each step of the call's audio start happened (performance.now()),
  // for `cargo xtask bench calls`' accept-to-audio breakdown.
  const t = { start: performance.now() };
  globalThis.__switchboardTimeline = t;
  const m = await import('/ccp/media/engine.js');
  const ahead = prepared;
  prepared = null;
  let ready = null;
  if (ahead) {
    try { ready = await ahead; } catch (e) { ready = null; }
  }
  t.prepared = performance.now();
  const tap = globalThis.__switchboardTap ? 1 : 0;
  // The Rust callbacks are freed when the engine stops; messages already
  // on their way from the worklet must not reach them after that.
  const live = { on: true };
  let running = null;
  const options = {
    wasmUrl: '/ccp/media/engine.wasm', workletUrl: '/ccp/media/worklet.js', leg, packetMs,
    deviceId: deviceId || undefined, sinkId: sinkId || undefined, capture: captureMode(),
    onPacket: (buf) => {
      if (t.firstSent === undefined) t.firstSent = performance.now();
      if (live.on) onPacket(new Uint8Array(buf));
    },
    onError: (e) => { if (live.on) onError(e.code || 'engine_failed', e.message || String(e)); },
    // With the capture path that runs ('direct', or 'worklet' after a fallback).
    onStats: (s) => { globalThis.__switchboardStats = { ...s, capture: running ? running.capture : undefined }; },
    onMark: (name, time) => { t[`${name}AudioTime`] = time; },
    tapSeconds: tap,
    onTap: tap ? (input, output, time) => {
      if (t.tapTime === undefined) t.tapTime = time;
      (globalThis.__switchboardTapInput ||= []).push(...input);
      (globalThis.__switchboardTapOutput ||= []).push(...output);
    } : undefined,
  };
  const engine = ready ? await ready.start(options) : await m.startEngine(options);
  running = engine;
  globalThis.__switchboardEngineStartedAt = performance.now();
  t.ready = globalThis.__switchboardEngineStartedAt;
  // The audio clock then, to put the tap's samples on the page's clock.
  t.readyAudioTime = engine.context.currentTime;
  globalThis.__switchboardDevices = { microphone: engine.deviceId, speaker: engine.sinkId };
  engine.live = live;
  return engine;
}
// Frames off the main thread: a Worker opens the media socket with the
// ticket the control socket gave (`__switchboardMainThreadMedia`, a test
// hook, keeps the page's path). Until it is welcomed, and after it
// closes, frames take the page's path.
export function sbUseMediaSocket(engine, path, ticket) {
  if (globalThis.__switchboardMainThreadMedia || !engine.useMediaSocket) return;
  const url = new URL(path, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  engine.useMediaSocket({
    url: url.href, ticket, workerUrl: '/ccp/media/media-worker.js',
    onClosed: () => { globalThis.__switchboardMediaPath = 'main'; },
  }).then((path) => {
    if (engine.live.on) globalThis.__switchboardMediaPath = path;
  });
}
export function sbReceive(engine, bytes) {
  const t = globalThis.__switchboardTimeline;
  if (t && t.firstReceived === undefined) t.firstReceived = performance.now();
  engine.receive(bytes.slice().buffer);
}
export function sbMute(engine, muted) { engine.setMuted(muted); }
export function sbSetSpeaker(engine, sinkId) {
  const ctx = engine.context;
  if (typeof ctx.setSinkId !== 'function') return;
  ctx.setSinkId(sinkId || '').then(() => {
    engine.sinkId = typeof ctx.sinkId === 'string' ? ctx.sinkId : '';
    globalThis.__switchboardDevices = { microphone: engine.deviceId, speaker: engine.sinkId };
  }).catch((e) => console.warn(`[switchboard] speaker ${sinkId} unavailable: ${e && e.message}`));
}
export function sbStop(engine) { engine.live.on = false; engine.stop().catch(() => {}); }
"#)]
extern "C" {
    #[wasm_bindgen(js_name = sbStart, catch)]
    async fn sb_start(
        leg: u32,
        packet_ms: u32,
        device_id: &str,
        sink_id: &str,
        on_packet: &Closure<dyn FnMut(Uint8Array)>,
        on_error: &Closure<dyn FnMut(String, String)>,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = sbPrepare)]
    fn sb_prepare(device_id: &str, sink_id: &str) -> bool;
    #[wasm_bindgen(js_name = sbPrepareMediaSocket)]
    fn sb_prepare_media_socket(path: &str, ticket: &str);
    #[wasm_bindgen(js_name = sbMediaSocketAsked)]
    fn sb_media_socket_asked(engine: &JsValue) -> bool;
    #[wasm_bindgen(js_name = sbCancelPrepare)]
    fn sb_cancel_prepare();
    #[wasm_bindgen(js_name = sbPrecompile)]
    fn sb_precompile();
    #[wasm_bindgen(js_name = sbUseMediaSocket)]
    fn sb_use_media_socket(engine: &JsValue, path: &str, ticket: &str);
    #[wasm_bindgen(js_name = sbReceive)]
    fn sb_receive(engine: &JsValue, bytes: &Uint8Array);
    #[wasm_bindgen(js_name = sbMute)]
    fn sb_mute(engine: &JsValue, muted: bool);
    #[wasm_bindgen(js_name = sbSetSpeaker)]
    fn sb_set_speaker(engine: &JsValue, sink_id: &str);
    #[wasm_bindgen(js_name = sbStop)]
    fn sb_stop(engine: &JsValue);
}

/// A running engine; stopped when dropped.
struct Running {
    engine: JsValue,
    _on_packet: Closure<dyn FnMut(Uint8Array)>,
    _on_error: Closure<dyn FnMut(String, String)>,
}

impl Drop for Running {
    fn drop(&mut self) {
        sb_stop(&self.engine);
    }
}

#[derive(Default)]
struct Audio {
    /// The leg the engine runs (or is starting) for.
    leg: Option<u32>,
    running: Option<Running>,
    muted: bool,
}

/// The packet durations the CCP offers in its `hello`, most preferred
/// first: the engine sends whatever the `welcome` grants, and 10 ms packets
/// wait 10 ms less in the sender.
pub const PACKET_MS_OFFER: &[u32] = &[10, 20];

thread_local! {
    static AUDIO: RefCell<Audio> = RefCell::new(Audio::default());
}

/// The media leg the agent should be sending on now, if any.
fn wanted_leg(state: &ClientState) -> Option<u32> {
    state.contacts.values().find_map(|c| {
        matches!(c.state, protocol::contact::ContactState::Connected { .. })
            .then(|| c.agent_connection().and_then(|k| k.media_leg))
            .flatten()
    })
}

/// Whether a call is ringing at the agent, or connected while its media
/// leg is still on its way: the engine is prepared (or kept prepared) then.
fn call_coming(state: &ClientState) -> bool {
    state.contacts.values().any(|c| {
        matches!(
            c.state,
            protocol::contact::ContactState::Incoming { .. }
                | protocol::contact::ContactState::Connected { .. }
        )
    })
}

/// Why the microphone or engine failed, for the agent (an English key).
fn explain(code: &str) -> &'static str {
    match code {
        "microphone_denied" => {
            "Microphone access was denied. Allow the microphone for this site to talk."
        }
        "microphone_missing" => "No microphone was found. Plug in a headset.",
        "microphone_removed" => "The microphone was disconnected.",
        _ => "Audio could not start.",
    }
}

/// Brings the engine in line with the state: start, switch or stop.
pub fn sync(
    state: &ClientState,
    client: &DirectClient,
    on_error: impl Fn(&str, &'static str) + Clone + 'static,
) {
    let want = wanted_leg(state);
    let muted = state.agent.as_ref().is_some_and(|a| a.muted);
    let start = AUDIO.with(|a| {
        let mut a = a.borrow_mut();
        if a.muted != muted {
            a.muted = muted;
            if let Some(r) = &a.running {
                sb_mute(&r.engine, muted);
            }
        }
        if a.leg == want {
            return None;
        }
        a.running = None;
        a.leg = want;
        want
    });
    if want.is_none() {
        client.set_media_sink(None::<fn(&Uint8Array)>);
        // Prepare while ringing; release a prepared engine no call took.
        if call_coming(state) {
            let fresh = sb_prepare(
                &crate::hooks::chosen_device("microphone"),
                &crate::hooks::chosen_device("speaker"),
            );
            // The media socket too, while it rings (a backend without
            // one answers with an error: the control socket carries the
            // frames).
            if fresh {
                let receiver = client.clone();
                spawn_local(async move {
                    if let Ok(protocol::wire::OpResult::MediaSocket { ticket, path, .. }) =
                        receiver.op(protocol::wire::Op::MediaSocket).await
                    {
                        sb_prepare_media_socket(&path, &ticket);
                    }
                });
            }
        } else {
            sb_cancel_prepare();
            // Signed in, no call: compile the engine's module now, so a
            // ringing call only has to open the microphone and the worklet.
            if state.agent.is_some() {
                sb_precompile();
            }
        }
    }
    let Some(leg) = start else { return };
    let sender = client.clone();
    let on_packet = Closure::<dyn FnMut(Uint8Array)>::new(move |bytes: Uint8Array| {
        sender.send_media(&bytes.to_vec());
    });
    let report = on_error.clone();
    let on_err =
        Closure::<dyn FnMut(String, String)>::new(move |code: String, _message: String| {
            report(&code, explain(&code))
        });
    let receiver = client.clone();
    // What the `welcome` granted (docs/protocol.md section 3): 10 or 20.
    let packet_ms = client.packet_ms();
    spawn_local(async move {
        // The devices chosen in Settings (empty: the system default).
        let microphone = crate::hooks::chosen_device("microphone");
        let speaker = crate::hooks::chosen_device("speaker");
        match sb_start(leg, packet_ms, &microphone, &speaker, &on_packet, &on_err).await {
            Ok(engine) => {
                let current = AUDIO.with(|a| a.borrow().leg);
                if current != Some(leg) {
                    sb_stop(&engine);
                    return;
                }
                let muted = AUDIO.with(|a| a.borrow().muted);
                sb_mute(&engine, muted);
                let for_sink = engine.clone();
                receiver
                    .set_media_sink(Some(move |bytes: &Uint8Array| sb_receive(&for_sink, bytes)));
                let socket_asked = sb_media_socket_asked(&engine);
                AUDIO.with(|a| {
                    a.borrow_mut().running = Some(Running {
                        engine,
                        _on_packet: on_packet,
                        _on_error: on_err,
                    })
                });
                // Then off the main thread, where the backend offers a
                // media socket (an older one answers with an error, and
                // the frames stay on the control socket), unless it was
                // opened while the call rang.
                if socket_asked {
                    return;
                }
                if let Ok(protocol::wire::OpResult::MediaSocket { ticket, path, .. }) =
                    receiver.op(protocol::wire::Op::MediaSocket).await
                {
                    let engine = AUDIO.with(|a| {
                        let a = a.borrow();
                        a.running
                            .as_ref()
                            .filter(|_| a.leg == Some(leg))
                            .map(|r| r.engine.clone())
                    });
                    if let Some(engine) = engine {
                        sb_use_media_socket(&engine, &path, &ticket);
                    }
                }
            }
            Err(e) => {
                AUDIO.with(|a| a.borrow_mut().leg = None);
                let code = js_sys::Reflect::get(&e, &JsValue::from_str("code"))
                    .ok()
                    .and_then(|c| c.as_string())
                    .unwrap_or_else(|| "engine_failed".into());
                on_error(&code, explain(&code));
            }
        }
    });
}

/// What the quality indicator shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Estimated MOS (1-4.5).
    pub mos: f64,
    /// Packets lost (concealed or rebuilt) as a share of packets due, %.
    pub loss_percent: f64,
    /// Interarrival jitter, ms.
    pub jitter_ms: f64,
}

/// The running engine's latest statistics, if a call has audio.
pub fn quality() -> Option<Quality> {
    let running = AUDIO.with(|a| a.borrow().running.is_some());
    if !running {
        return None;
    }
    let stats =
        js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("__switchboardStats")).ok()?;
    let num = |k: &str| {
        js_sys::Reflect::get(&stats, &JsValue::from_str(k))
            .ok()
            .and_then(|v| v.as_f64())
    };
    let (received, lost) = (num("received")?, num("lost")?);
    Some(Quality {
        mos: num("mos")?,
        loss_percent: if received + lost > 0.0 {
            100.0 * lost / (received + lost)
        } else {
            0.0
        },
        jitter_ms: num("jitterMs")?,
    })
}

/// Moves a running call's sound to another speaker (empty: the default);
/// a call started later reads the choice itself.
pub fn set_speaker(sink_id: &str) {
    AUDIO.with(|a| {
        if let Some(r) = &a.borrow().running {
            sb_set_speaker(&r.engine, sink_id);
        }
    });
}

/// Stops the engine (logout).
pub fn stop() {
    sb_cancel_prepare();
    AUDIO.with(|a| *a.borrow_mut() = Audio::default());
}
