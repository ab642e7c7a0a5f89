//! The CCP inside a CRM page's iframe: the CCP end of the SDK's frame
//! transport, and the login popup that hands a token to a framed CCP.
//!
//! When the CCP is framed it fetches the backend's approved origins and
//! listens for `message` events. `streams_sdk::frame::FrameHost` judges each
//! one (parent window only, approved origin, bound after the first `hello`,
//! right shape, right nonce); rejected messages are logged to the console
//! and otherwise ignored. Accepted requests run on the CCP's own backend
//! session, and every change of the agent's world is pushed to the page.
//! Messages go only to the origin that opened the session, never `*`.
//!
//! Login: a hidden CCP cannot show its form, so the SDK opens the CCP in a
//! popup (`?popup=1`). The popup logs in first-party and posts the token to
//! the frames of the window that opened it, addressed to the CCP's own
//! origin, so the CRM page itself never sees the token. A framed CCP accepts
//! a `login_token` only from its own origin.

use std::cell::RefCell;

use leptos::task::spawn_local;
use protocol::error::{ErrorBody, ErrorCode};
use streams_sdk::frame::{op_outcome_json, Accepted, Action, FrameHost, FromCcp, StatePush};
use streams_sdk::ContactChange;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;

use leptos::prelude::{GetUntracked, Track, With, WithUntracked};
use leptos::reactive::effect::ImmediateEffect;

use crate::ccp::{Ccp, Event};

#[wasm_bindgen(inline_js = r#"
export function sbFramed() { return window.parent !== window; }
export function sbPopup() {
  return !!window.opener && new URLSearchParams(location.search).get('popup') === '1';
}
export function sbListen(cb) {
  const deliver = (e) =>
    cb(e.origin, e.source === window.parent, typeof e.data === 'string' ? e.data : undefined);
  // Messages that arrived before the app started (boot.js kept them), in
  // order, then every later one. Synchronous, so none can slip between.
  const early = globalThis.__switchboardEarly;
  if (early) for (const e of early.messages()) deliver(e);
  window.addEventListener('message', deliver);
}
export async function sbEmbedText() {
  const early = globalThis.__switchboardEarly;
  if (early && early.embed) {
    const pending = early.embed;
    early.embed = undefined;
    try { return await pending; } catch (_) { /* fetch again below */ }
  }
  const r = await fetch('/v1/embed');
  return await r.text();
}
export function sbPostParent(text, origin) { window.parent.postMessage(text, origin); }
export function sbWarn(text) { console.warn('[switchboard frame] ' + text); }
export async function sbDevices() {
  const list = await navigator.mediaDevices.enumerateDevices();
  return JSON.stringify(list.filter((d) => d.kind === 'audioinput' || d.kind === 'audiooutput')
    .map((d) => ({ kind: d.kind === 'audioinput' ? 'microphone' : 'speaker', device_id: d.deviceId, label: d.label })));
}
export function sbHandOver(text) {
  const opener = window.opener;
  if (!opener) return 0;
  let sent = 0;
  for (let i = 0; i < opener.length; i++) {
    try { opener[i].postMessage(text, location.origin); sent++; } catch (_) { /* gone */ }
  }
  setTimeout(() => window.close(), 300);
  return sent;
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = sbFramed)]
    fn framed() -> bool;
    #[wasm_bindgen(js_name = sbPopup)]
    fn popup() -> bool;
    #[wasm_bindgen(js_name = sbListen)]
    fn listen(cb: &Closure<dyn FnMut(String, bool, Option<String>)>);
    #[wasm_bindgen(js_name = sbPostParent)]
    fn post_parent(text: &str, origin: &str);
    #[wasm_bindgen(js_name = sbEmbedText, catch)]
    async fn embed_text() -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = sbWarn)]
    fn warn(text: &str);
    #[wasm_bindgen(js_name = sbDevices, catch)]
    async fn devices() -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = sbHandOver)]
    fn hand_over(text: &str) -> u32;
}

thread_local! {
    static HOST: RefCell<Option<FrameHost>> = const { RefCell::new(None) };
}

/// Whether this CCP is the SDK's login popup.
pub fn is_popup() -> bool {
    popup()
}

/// Starts serving the frame transport, if the CCP is framed, and observes
/// the session: its state is pushed to the page whenever it changes (with
/// the contact changes since the last push), and the login's lifetime and
/// audio failures are forwarded as they happen.
pub fn install(ccp: Ccp) {
    if !framed() {
        return;
    }
    // Contact events are emitted before the state they lead to is set, so
    // a push carries the changes that produced its state.
    let mut pushed = 0;
    ImmediateEffect::new_mut_scoped(move || {
        ccp.state.track();
        ccp.link.track();
        ccp.leader.track();
        ccp.settled.track();
        let (changes, next) = ccp.events.with_untracked(|log| {
            let (events, next) = log.since(pushed);
            let changes: Vec<ContactChange> = events
                .filter_map(|e| match e {
                    Event::Contact(c) => Some(c.clone()),
                    _ => None,
                })
                .collect();
            (changes, next)
        });
        pushed = next;
        push(ccp, &changes);
    });
    let mut seen = 0;
    ImmediateEffect::new_mut_scoped(move || {
        seen = ccp.events.with(|log| {
            let (events, next) = log.since(seen);
            for event in events {
                match event {
                    Event::Auth(output) => auth(output),
                    Event::SoftphoneError(code, message) => softphone_error(code, message),
                    _ => {}
                }
            }
            next
        });
    });
    spawn_local(async move {
        let approved = match approved_origins().await {
            Ok(list) => list,
            Err(e) => {
                warn(&format!("cannot read the approved origins: {e}"));
                return;
            }
        };
        HOST.with(|h| *h.borrow_mut() = Some(FrameHost::new(approved)));
        let own = own_origin();
        let cb = Closure::<dyn FnMut(String, bool, Option<String>)>::new(
            move |origin: String, from_parent: bool, data: Option<String>| {
                if origin == own && !from_parent {
                    take_login_token(ccp, data.as_deref());
                    return;
                }
                on_message(ccp, &origin, from_parent, data.as_deref());
            },
        );
        listen(&cb);
        // The listener lives as long as the page.
        cb.forget();
    });
}

/// In the login popup: gives the token to the framed CCPs of the opener
/// and closes. Returns whether there was anyone to give it to.
pub fn hand_over_token(token: &str) -> bool {
    let text = serde_json::json!({ "kind": "login_token", "token": token }).to_string();
    hand_over(&text) > 0
}

fn own_origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

async fn approved_origins() -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Embed {
        approved_origins: Vec<String>,
    }
    // boot.js started this fetch while the module was still loading.
    let text = embed_text()
        .await
        .map_err(|_| "the backend cannot be reached".to_string())?
        .as_string()
        .unwrap_or_default();
    serde_json::from_str::<Embed>(&text)
        .map(|e| e.approved_origins)
        .map_err(|e| e.to_string())
}

fn take_login_token(ccp: Ccp, data: Option<&str>) {
    #[derive(serde::Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Popup {
        LoginToken { token: String },
    }
    match data.map(serde_json::from_str::<Popup>) {
        Some(Ok(Popup::LoginToken { token })) if !token.is_empty() => ccp.adopt_token(&token),
        _ => warn("ignored a same-origin message that is not a login token"),
    }
}

fn send(msg: &FromCcp) {
    let target = HOST.with(|h| {
        h.borrow()
            .as_ref()
            .and_then(|h| h.target_origin().map(str::to_owned))
    });
    if let Some(origin) = target {
        post_parent(&msg.to_json(), &origin);
    }
}

fn nonce() -> Option<String> {
    HOST.with(|h| {
        h.borrow()
            .as_ref()
            .and_then(|h| h.nonce().map(str::to_owned))
    })
}

fn on_message(ccp: Ccp, origin: &str, from_parent: bool, data: Option<&str>) {
    let verdict = HOST.with(|h| {
        h.borrow_mut()
            .as_mut()
            .map(|h| h.receive(origin, from_parent, data))
    });
    let accepted = match verdict {
        None => return,
        Some(Err(rejection)) => {
            warn(&format!("dropped a message from {origin}: {rejection}"));
            return;
        }
        Some(Ok(a)) => a,
    };
    match accepted {
        Accepted::Opened(FromCcp::Hello { version, nonce, .. }) => {
            send(&FromCcp::Hello {
                version,
                nonce,
                logged_in: ccp.logged_in_untracked(),
            });
            push(ccp, &[]);
        }
        Accepted::Opened(other) | Accepted::Refused(other) => {
            // A refusal goes to the sender even though no session is bound.
            post_parent(&other.to_json(), origin);
        }
        Accepted::Ping(pong) => send(&pong),
        Accepted::Request { id, action } => spawn_local(async move {
            let outcome = run(ccp, action).await;
            if let Some(nonce) = nonce() {
                send(&FromCcp::response(&nonce, id, outcome));
            }
        }),
    }
}

async fn run(ccp: Ccp, action: Action) -> Result<serde_json::Value, ErrorBody> {
    match action {
        Action::Op { op } => op_outcome_json(ccp.request_raw(op).await),
        Action::ListDevices => {
            let text = devices()
                .await
                .map_err(|_| ErrorBody::new(ErrorCode::Unknown, "the browser lists no devices"))?
                .as_string()
                .unwrap_or_default();
            serde_json::from_str(&text)
                .map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))
        }
        Action::SetDevice { device, device_id } => {
            crate::store::set(crate::store::Key::Device(device.name()), &device_id);
            Ok(serde_json::json!({ "kind": "ack" }))
        }
        Action::Logout => {
            ccp.logout();
            Ok(serde_json::json!({ "kind": "ack" }))
        }
    }
}

/// Pushes the agent's world to the embedding page, if a session is open.
#[inline(never)]
fn push(ccp: Ccp, changes: &[ContactChange]) {
    let Some(nonce) = nonce() else { return };
    if !ccp.settled.get_untracked() {
        return;
    }
    let msg = ccp.state.with_untracked(|state| {
        StatePush::new(
            &nonce,
            ccp.link_name_untracked(),
            ccp.leader.get_untracked(),
            state,
            changes,
        )
    });
    send(&FromCcp::State(Box::new(msg)));
}

/// Tells the embedding page about the login's lifetime (expiring,
/// refreshed, ended); never the token itself.
fn auth(output: &streams_sdk::Output) {
    let Some(nonce) = nonce() else { return };
    if let Some(msg) = FromCcp::auth(&nonce, output) {
        send(&msg);
    }
}

/// Tells the embedding page that the softphone's audio failed.
fn softphone_error(code: &str, message: &str) {
    let Some(nonce) = nonce() else { return };
    send(&FromCcp::SoftphoneError {
        nonce,
        code: code.to_owned(),
        message: message.to_owned(),
    });
}
