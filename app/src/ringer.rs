//! The ringtone and the desktop notification for an incoming contact.
//!
//! Only the tab that owns the softphone rings. The ring is synthesized with
//! Web Audio and scheduled on the audio clock a minute ahead, so it keeps
//! its cadence in a background tab where timers are throttled. When the
//! browser's autoplay policy keeps the audio context suspended (no click on
//! the page yet), the panel shows "Click to enable sound"; the click
//! resumes the context. A desktop notification is shown when the page is
//! hidden and the agent allowed notifications (asked on the login click).

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
let ring = null;
// The embedding page may turn the ringtone off or replace it (Streams'
// disableRingtone / ringtoneUrl) with `?ringtone=off` or `?ringtone=<url>`.
const choice = new URLSearchParams(location.search).get('ringtone');
export function sbRingStart(sinkId) {
  if (choice === 'off') return true;
  if (ring) return !ring.blocked();
  if (choice && /^https?:\/\//.test(choice)) {
    const audio = new Audio(choice);
    audio.loop = true;
    if (sinkId && audio.setSinkId) audio.setSinkId(sinkId).catch(() => {});
    let blocked = false;
    audio.play().catch(() => { blocked = true; });
    ring = { blocked: () => blocked, unlock: () => audio.play().then(() => { blocked = false; }).catch(() => {}),
             stop: () => audio.pause() };
    globalThis.__switchboardRinging = true;
    return true;
  }
  let ctx;
  try { ctx = new AudioContext({ latencyHint: 'playback' }); } catch (_) { return false; }
  if (sinkId && ctx.setSinkId) ctx.setSinkId(sinkId).catch(() => {});
  const out = ctx.createGain();
  out.gain.value = 0;
  out.connect(ctx.destination);
  for (const f of [440, 480]) {
    const o = ctx.createOscillator();
    o.frequency.value = f;
    o.connect(out);
    o.start();
  }
  // 0.8 s on, 0.2 s off, 0.8 s on, 2 s off; twenty cycles ahead.
  const t0 = ctx.currentTime + 0.05;
  for (let i = 0; i < 20; i++) {
    const c = t0 + i * 3.8;
    for (const start of [c, c + 1.0]) {
      out.gain.setValueAtTime(0, start);
      out.gain.linearRampToValueAtTime(0.15, start + 0.02);
      out.gain.setValueAtTime(0.15, start + 0.78);
      out.gain.linearRampToValueAtTime(0, start + 0.8);
    }
  }
  ring = { blocked: () => ctx.state !== 'running', unlock: () => ctx.resume().catch(() => {}),
           stop: () => ctx.close().catch(() => {}) };
  globalThis.__switchboardRinging = true;
  ctx.resume().catch(() => {});
  return ctx.state === 'running';
}
export function sbRingBlocked() { return !!ring && ring.blocked(); }
export function sbRingUnlock() { if (ring) ring.unlock(); }
export function sbRingStop() {
  if (ring) { ring.stop(); ring = null; }
  globalThis.__switchboardRinging = false;
}
export function sbAskNotify() {
  if (typeof Notification === 'function' && Notification.permission === 'default') {
    Notification.requestPermission().catch(() => {});
  }
}
export function sbNotify(title, body, tag) {
  if (!document.hidden || typeof Notification !== 'function' || Notification.permission !== 'granted') return;
  const n = new Notification(title, { body, tag });
  n.onclick = () => { window.focus(); n.close(); };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = sbRingStart)]
    fn ring_start(sink_id: &str) -> bool;
    #[wasm_bindgen(js_name = sbRingBlocked)]
    fn ring_blocked() -> bool;
    #[wasm_bindgen(js_name = sbRingUnlock)]
    fn ring_unlock();
    #[wasm_bindgen(js_name = sbRingStop)]
    fn ring_stop();
    #[wasm_bindgen(js_name = sbAskNotify)]
    fn ask_notify();
    #[wasm_bindgen(js_name = sbNotify)]
    fn notify(title: &str, body: &str, tag: &str);
}

thread_local! {
    /// The contact ringing now.
    static RINGING: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// An incoming contact to ring for: its id and who is calling.
pub struct Ring<'a> {
    /// The contact.
    pub contact_id: &'a str,
    /// Notification title ("Incoming call").
    pub title: &'a str,
    /// Notification body (caller and queue).
    pub body: String,
}

/// Rings for `incoming` (or stops); returns whether the browser blocked
/// the sound until the agent clicks.
pub fn sync(incoming: Option<Ring<'_>>, enabled: bool) -> bool {
    let want = incoming.filter(|_| enabled);
    let same = RINGING.with(|r| r.borrow().as_deref() == want.as_ref().map(|w| w.contact_id));
    if same {
        return want.is_some() && ring_blocked();
    }
    match want {
        None => {
            RINGING.with(|r| *r.borrow_mut() = None);
            ring_stop();
            false
        }
        Some(ring) => {
            RINGING.with(|r| *r.borrow_mut() = Some(ring.contact_id.to_owned()));
            let device = web_sys::window()
                .and_then(|w| w.local_storage().ok().flatten())
                .and_then(|s| {
                    s.get_item(&crate::embed::device_key("ringer"))
                        .ok()
                        .flatten()
                })
                .unwrap_or_default();
            let playing = ring_start(&device);
            notify(ring.title, &ring.body, ring.contact_id);
            !playing
        }
    }
}

/// The agent clicked "enable sound".
pub fn unlock() {
    ring_unlock();
}

/// Asks for notification permission (call from a click).
pub fn ask_permission() {
    ask_notify();
}
