//! The ringtone and the desktop notification for an incoming contact.
//!
//! Only the tab that owns the softphone rings. The ring is synthesized with
//! Web Audio and scheduled on the audio clock a minute ahead, so it keeps
//! its cadence in a background tab where timers are throttled. When the
//! browser's autoplay policy keeps the audio context suspended (no click on
//! the page yet), the panel shows "Click to enable sound"; the click
//! resumes the context. A desktop notification is shown when the page is
//! hidden and the agent allowed notifications (asked on the login click).

use leptos::prelude::*;
use leptos::reactive::effect::ImmediateEffect;
use protocol::contact::ContactState;
use wasm_bindgen::prelude::*;

use crate::ccp::Ccp;
use crate::i18n::tr;
use crate::store::{self, Key};

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

/// Rings for the first incoming contact while this tab leads, and
/// returns whether the browser blocks the sound until the agent clicks
/// (re-checked each second: a click anywhere unblocks it). The ring stops
/// when the hook's owner goes.
pub fn use_ringer(ccp: Ccp) -> RwSignal<bool> {
    let blocked = RwSignal::new(false);
    // The contact ringing now.
    let mut ringing: Option<String> = None;
    ImmediateEffect::new_mut_scoped(move || {
        ccp.now.track();
        let lang = ccp.lang.get();
        let leader = ccp.leader.get();
        let want = ccp.state.with(|state| {
            let c = state
                .contacts
                .values()
                .find(|c| matches!(c.state, ContactState::Incoming { .. }))?;
            let from = c
                .initial_connection()
                .map(|k| k.endpoint.name.clone())
                .unwrap_or_default();
            let body = match &c.queue {
                Some(q) => format!("{from} · {}", q.name),
                None => from,
            };
            Some((c.contact_id.clone(), body))
        });
        let want = want.filter(|_| leader);
        let now_blocked = match (&want, &ringing) {
            (Some((id, _)), Some(r)) if id == r => ring_blocked(),
            (None, None) => false,
            (None, Some(_)) => {
                ring_stop();
                false
            }
            (Some((id, body)), _) => {
                let device = store::get(Key::Device("ringer")).unwrap_or_default();
                let playing = ring_start(&device);
                notify(tr(lang, "Incoming call"), body, id);
                !playing
            }
        };
        if blocked.get_untracked() != now_blocked {
            blocked.set(now_blocked);
        }
        ringing = want.map(|(id, _)| id);
    });
    on_cleanup(ring_stop);
    blocked
}
/// The agent clicked "enable sound".
pub fn unlock() {
    ring_unlock();
}

/// Asks for notification permission (call from a click).
pub fn ask_permission() {
    ask_notify();
}
