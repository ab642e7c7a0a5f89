//! One softphone across several tabs. The backend keeps one socket per
//! agent (a newer one replaces the older), and only one tab should ring
//! and own the microphone, so the CCPs of one browser elect a leader.
//!
//! The election is a Web Lock (`navigator.locks`): the tab holding
//! `switchboard.softphone` leads, and the browser releases the lock the
//! moment that tab closes, navigates away or crashes, granting it to the
//! next waiting tab. The leader holds the backend connection and the audio
//! engine; it broadcasts its state on a `BroadcastChannel` with every
//! change and once a second (the heartbeat followers show as "mirroring"),
//! and runs the ops the other tabs send it. Followers mirror that state and
//! act through the leader. A follower that becomes leader connects with the
//! saved token (a fresh snapshot) and starts the audio of a live call.
//!
//! The heartbeat is not used to take the lead from a silent leader: Chrome
//! throttles timers in hidden tabs to once a minute after five minutes, so a
//! healthy background leader would look dead. The lock's release is the
//! liveness signal; for CCPs framed by a CRM, both lock and channel are
//! scoped to that CRM's site by the browser's storage partitioning.
//!
//! Messages on the channel are untrusted input, like the backend's frames:
//! any script on the origin can post to it. A message is acted on only if
//! it is small enough, decodes with no unknown fields, and everything it
//! carries is well formed (a snapshot that decodes as one, a plain link
//! name, a tab id of this module's making); anything else is dropped with
//! a console warning and changes nothing.

use std::cell::RefCell;
use std::collections::HashMap;

use futures_channel::oneshot;
use leptos::task::spawn_local;
use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{decode_server_frame, encode, OpResult, Response, ServerFrame, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use streams_sdk::deadlines::{delay_ms, Deadlines};
use streams_sdk::web::now;
use streams_sdk::ClientState;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;

use leptos::prelude::{
    set_interval_with_handle, set_timeout, Get, GetUntracked, Track, With, WithUntracked,
};
use leptos::reactive::effect::ImmediateEffect;

use crate::ccp::{Ccp, Event, DISPLACED};

/// A follower's request fails after this long without the leader's
/// answer: longer than the leader's own request timeout, so the leader's
/// verdict (a result or `timeout`) is the one the follower reports.
const REQUEST_TIMEOUT_MS: u64 = streams_sdk::deadlines::RELAY_TIMEOUT_MS;
/// Larger tab messages are dropped unread (a snapshot is far smaller).
const MAX_TAB_MESSAGE: usize = 4 << 20;

#[wasm_bindgen(inline_js = r#"
export function sbTabs(onLead, onMessage) {
  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('switchboard.tabs') : null;
  if (channel) channel.onmessage = (e) => { if (typeof e.data === 'string') onMessage(e.data); };
  if (navigator.locks && navigator.locks.request) {
    navigator.locks.request('switchboard.softphone', () => {
      onLead();
      return new Promise(() => {}); // held for the life of this page
    }).catch((e) => console.warn('[switchboard tabs] lock failed', e));
  } else {
    onLead(); // no Web Locks: every tab leads, as before
  }
  return (text) => { if (channel) channel.postMessage(text); };
}
export function sbTabId() { return Math.random().toString(36).slice(2) + Date.now().toString(36); }
"#)]
extern "C" {
    #[wasm_bindgen(js_name = sbTabs)]
    fn tabs(
        on_lead: &Closure<dyn FnMut()>,
        on_message: &Closure<dyn FnMut(String)>,
    ) -> js_sys::Function;
    #[wasm_bindgen(js_name = sbTabId)]
    fn tab_id() -> String;
}

/// What tabs tell each other. Serde's default (externally tagged) form,
/// which decodes without buffering; the snapshot and the answers travel as
/// protocol server frames, decoded by the code that decodes the backend's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum TabMessage {
    /// A new follower asks for the state.
    Hello,
    /// The leader's world: its link (`None` when logged out) and a
    /// `snapshot` server frame.
    State {
        link: Option<String>,
        snapshot: Option<String>,
    },
    /// A follower's op (a JSON object, as in a request frame) for the
    /// leader to run.
    Request { tab: String, id: u64, op: String },
    /// The leader's answer: a `response` server frame whose id is the
    /// follower's.
    Response { tab: String, id: u64, frame: String },
    /// A follower saved a new token: the leader connects with it.
    Token,
    /// The agent logged out in some tab: every tab forgets the login.
    Logout,
}

struct Tabs {
    id: String,
    post: Option<js_sys::Function>,
    next_id: u64,
    waiting: HashMap<u64, oneshot::Sender<Result<OpResult, ErrorBody>>>,
    /// When each of `waiting` times out; one timer is armed at the next.
    deadlines: Deadlines,
    armed: Option<Armed>,
}

/// The follower's one request-timeout timer, cleared when dropped.
struct Armed {
    at: protocol::Millis,
    handle: i32,
    _callback: Closure<dyn FnMut()>,
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(w) = web_sys::window() {
            w.clear_timeout_with_handle(self.handle);
        }
    }
}

thread_local! {
    static TABS: RefCell<Tabs> = RefCell::new(Tabs {
        id: String::new(),
        post: None,
        next_id: 1,
        waiting: HashMap::new(),
        deadlines: Deadlines::default(),
        armed: None,
    });
}

/// How long a follower waits for the leader's first state.
const SETTLE_MS: u32 = 1_500;
/// The leader's heartbeat (followers show the softphone is elsewhere).
const HEARTBEAT_MS: u64 = 1_000;

fn post(msg: &TabMessage) {
    let f = TABS.with(|t| t.borrow().post.clone());
    if let (Some(f), Ok(text)) = (f, serde_json::to_string(msg)) {
        let _ = f.call1(&JsValue::NULL, &JsValue::from_str(&text));
    }
}

/// Joins the election. The winner resumes the saved login; the others ask
/// it for the state. Then observes the session: the leader broadcasts its
/// state whenever it changes (and as a heartbeat), and every tab forwards
/// its logouts and saved tokens.
pub fn install(ccp: Ccp) {
    TABS.with(|t| t.borrow_mut().id = tab_id());
    ccp.set_relay(Box::new(|op| Box::pin(request(op))));
    let on_lead = Closure::<dyn FnMut()>::new(move || {
        // Follower requests still waiting will never be answered by us.
        let waiting: Vec<_> = TABS.with(|t| {
            let mut t = t.borrow_mut();
            t.deadlines.drain();
            t.waiting.drain().collect()
        });
        for (_, tx) in waiting {
            let _ = tx.send(Err(ErrorBody::new(
                ErrorCode::Unknown,
                "the tab that owned the softphone closed; try again",
            )));
        }
        ccp.became_leader();
        ccp.settle();
    });
    let on_message = Closure::<dyn FnMut(String)>::new(move |text: String| {
        let msg = if text.len() > MAX_TAB_MESSAGE {
            Err(format!("{} bytes", text.len()))
        } else {
            serde_json::from_str::<TabMessage>(&text)
                .map_err(|e| e.to_string())
                .and_then(validated)
        };
        match msg {
            Ok(msg) => on_message(ccp, msg),
            Err(e) => web_sys::console::warn_1(&format!("[switchboard tabs] dropped: {e}").into()),
        }
    });
    let poster = tabs(&on_lead, &on_message);
    // Both callbacks live as long as the page.
    on_lead.forget();
    on_message.forget();
    TABS.with(|t| t.borrow_mut().post = Some(poster));
    if !ccp.leader.get_untracked() {
        post(&TabMessage::Hello);
    }
    set_timeout(
        move || ccp.settle(),
        std::time::Duration::from_millis(SETTLE_MS.into()),
    );
    ImmediateEffect::new_mut_scoped(move || {
        ccp.state.track();
        ccp.link.track();
        ccp.displaced.track();
        if ccp.leader.get() {
            broadcast_state(ccp);
        }
    });
    let mut seen = 0;
    ImmediateEffect::new_mut_scoped(move || {
        seen = ccp.events.with(|log| {
            let (events, next) = log.since(seen);
            for event in events {
                match event {
                    Event::LoggedOut => post(&TabMessage::Logout),
                    Event::TokenSaved => post(&TabMessage::Token),
                    _ => {}
                }
            }
            next
        });
    });
    // The heartbeat lives as long as the page.
    let _ = set_interval_with_handle(
        move || {
            if ccp.leader.get_untracked() {
                broadcast_state(ccp);
            }
        },
        std::time::Duration::from_millis(HEARTBEAT_MS),
    );
}

/// Whether `s` looks like something this module made: a tab id from
/// `sbTabId` or a link name (short, lowercase letters, digits, `_`).
fn plain_word(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The message if everything it carries is well formed. A `State` whose
/// snapshot does not decode is refused whole: read as "no snapshot", it
/// would log the follower out.
fn validated(msg: TabMessage) -> Result<TabMessage, String> {
    match &msg {
        TabMessage::State { link, snapshot } => {
            if link.as_deref().is_some_and(|l| !plain_word(l)) {
                return Err("a malformed link name".into());
            }
            if let Some(text) = snapshot {
                if !matches!(decode_server_frame(text), Ok(ServerFrame::Snapshot(_))) {
                    return Err("a state whose snapshot does not decode".into());
                }
            }
        }
        TabMessage::Request { tab, op, .. } => {
            if !plain_word(tab) {
                return Err("a request from a malformed tab id".into());
            }
            if !matches!(serde_json::from_str::<Value>(op), Ok(Value::Object(_))) {
                return Err("a request whose op is not an object".into());
            }
        }
        TabMessage::Response { tab, .. } if !plain_word(tab) => {
            return Err("a response to a malformed tab id".into());
        }
        _ => {}
    }
    Ok(msg)
}

fn on_message(ccp: Ccp, msg: TabMessage) {
    let leader = ccp.leader.get_untracked();
    match msg {
        TabMessage::Hello if leader => broadcast_state(ccp),
        TabMessage::State { link, snapshot } if !leader => {
            let snapshot = snapshot.and_then(|text| match decode_server_frame(&text) {
                Ok(ServerFrame::Snapshot(s)) => Some(s),
                _ => None,
            });
            ccp.mirror(link, snapshot);
            ccp.settle();
        }
        TabMessage::Request { tab, id, op } if leader => spawn_local(async move {
            let (result, error) = match serde_json::from_str::<Map<String, Value>>(&op) {
                Ok(op) => match ccp.request_raw(op).await {
                    Ok(r) => (Some(r), None),
                    Err(e) => (None, Some(e)),
                },
                Err(e) => (
                    None,
                    Some(ErrorBody::new(ErrorCode::BadRequest, e.to_string())),
                ),
            };
            let frame = encode(&ServerFrame::Response(Response { id, result, error }));
            post(&TabMessage::Response { tab, id, frame });
        }),
        TabMessage::Response { tab, id, frame } => {
            let mine = TABS.with(|t| t.borrow().id == tab);
            if mine {
                let result = match decode_server_frame(&frame) {
                    Ok(ServerFrame::Response(r)) => match (r.result, r.error) {
                        (Some(ok), _) => Ok(ok),
                        (None, Some(e)) => Err(e),
                        (None, None) => Err(ErrorBody::new(ErrorCode::Unknown, "empty answer")),
                    },
                    _ => Err(ErrorBody::new(ErrorCode::Unknown, "undecodable answer")),
                };
                let tx = TABS.with(|t| {
                    let mut t = t.borrow_mut();
                    t.deadlines.remove(id);
                    t.waiting.remove(&id)
                });
                if let Some(tx) = tx {
                    let _ = tx.send(result);
                }
            }
        }
        TabMessage::Token if leader => ccp.resume_saved_login(),
        TabMessage::Logout => ccp.logout_here(),
        _ => {}
    }
}

/// The leader tells the other tabs its state (after every change, and
/// once a second as the heartbeat).
#[inline(never)]
fn broadcast_state(ccp: Ccp) {
    // A displaced leader tells its followers why it is closed.
    let link = if ccp.displaced.get_untracked() {
        DISPLACED
    } else {
        ccp.link_name_untracked()
    };
    let snapshot = ccp
        .state
        .with_untracked(snapshot_of)
        .map(|s| encode(&ServerFrame::Snapshot(s)));
    post(&TabMessage::State {
        link: (link != "logged_out").then(|| link.to_owned()),
        snapshot,
    });
}

/// The snapshot that rebuilds `state` in another tab.
fn snapshot_of(state: &ClientState) -> Option<Snapshot> {
    let agent = state.agent.as_ref()?;
    let contacts = state.contacts_oldest_first();
    Some(Snapshot {
        seq: state.seq,
        status: agent.status.clone(),
        muted: agent.muted,
        configuration: agent.configuration.clone(),
        states: agent.states.clone(),
        contacts,
    })
}

/// A follower asks the leader to run `op` (a JSON object, as in a
/// request frame).
async fn request(op: String) -> Result<OpResult, ErrorBody> {
    let (tx, rx) = oneshot::channel();
    let (tab, id) = TABS.with(|t| {
        let mut t = t.borrow_mut();
        let id = t.next_id;
        t.next_id += 1;
        t.waiting.insert(id, tx);
        t.deadlines.insert(id, now().plus_ms(REQUEST_TIMEOUT_MS));
        (t.id.clone(), id)
    });
    post(&TabMessage::Request { tab, id, op });
    arm_deadline();
    rx.await.unwrap_or_else(|_| {
        Err(ErrorBody::new(
            ErrorCode::Unknown,
            "the request was dropped",
        ))
    })
}

/// Arms the one timer at the next deadline, unless it is armed for that
/// instant or earlier (an early timer finds nothing due and re-arms).
fn arm_deadline() {
    let next = TABS.with(|t| {
        let t = t.borrow();
        match (t.deadlines.next(), &t.armed) {
            (Some(next), Some(armed)) if armed.at <= next => None,
            (next, _) => Some(next),
        }
    });
    let Some(next) = next else { return };
    let armed = next.and_then(|at| {
        let callback = Closure::<dyn FnMut()>::new(on_deadline);
        let handle = web_sys::window()?
            .set_timeout_with_callback_and_timeout_and_arguments_0(
                callback.as_ref().unchecked_ref(),
                i32::try_from(delay_ms(at, now())).unwrap_or(i32::MAX),
            )
            .ok()?;
        Some(Armed {
            at,
            handle,
            _callback: callback,
        })
    });
    // The replaced timer is dropped outside the borrow.
    let old = TABS.with(|t| std::mem::replace(&mut t.borrow_mut().armed, armed));
    drop(old);
}

/// The timer fired: fail what is due with `timeout`, and arm for the next.
fn on_deadline() {
    let (spent, due) = TABS.with(|t| {
        let mut t = t.borrow_mut();
        let spent = t.armed.take();
        let due: Vec<_> = t
            .deadlines
            .expire(now())
            .into_iter()
            .filter_map(|id| t.waiting.remove(&id))
            .collect();
        (spent, due)
    });
    for tx in due {
        let _ = tx.send(Err(ErrorBody::new(
            ErrorCode::Timeout,
            "the tab that owns the softphone did not answer",
        )));
    }
    arm_deadline();
    // wasm-bindgen defers freeing the running closure until it returns.
    drop(spent);
}
