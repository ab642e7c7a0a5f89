//! The *direct* transport in the browser: a WebSocket straight to a
//! backend, driving a [`Session`]. It logs in over `fetch`, says `hello`,
//! keeps a heartbeat, fails requests on timeout, and when the socket drops
//! it reconnects with exponential backoff and resumes the event stream, so
//! a live call survives a network change. A socket that stays open but
//! goes silent (a pulled cable sends no reset) is found by a watchdog: an
//! unanswered ping after a quiet spell, a few seconds, counts as a drop.
//!
//! Browser resources are owned by guards that release them on drop: the
//! socket with its handlers, and every timer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use protocol::contact::ContactState;
use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{Op, OpResult};
use protocol::Millis;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::session::{Output, Session};
use crate::state::ClientState;

use crate::deadlines::{delay_ms, REQUEST_TIMEOUT_MS};
/// Backoff bounds for reconnecting. The ceiling is low because a live
/// call is silent until the socket is back: after a 5 s outage the next
/// try comes within 2.6 s, not 8.
const BACKOFF_MIN_MS: u32 = 250;
const BACKOFF_MAX_MS: u32 = 2_000;
/// How often to ping (the server's heartbeat is 15 s).
const HEARTBEAT_MS: f64 = 5_000.0;
/// How often the watchdog runs: pings and a dead link. (Request
/// timeouts have their own timer, armed at the session's next deadline.)
const WATCH_MS: i32 = 500;
/// On a call, nothing heard for this long: ask (a ping) whether the link
/// is alive. Media arrives every 20 ms during a call, so silence means
/// trouble; an idle agent relies on the heartbeat's ping instead.
const QUIET_MS: f64 = 1_500.0;
/// A ping unanswered (nothing at all heard since) for this long: the link
/// is dead even though the socket says open, as when a cable is pulled or
/// a NAT forgets the flow and no TCP reset ever comes. The socket is
/// dropped and the client reconnects and resumes.
const PROBE_TIMEOUT_MS: f64 = 3_500.0;
/// A new socket that is not authenticated by then is dropped and retried
/// (a connection attempt into a black hole never fails by itself).
const CONNECT_TIMEOUT_MS: f64 = 6_000.0;

/// Where the connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Opening the first socket.
    Connecting,
    /// Authenticated and live.
    Open,
    /// Lost; trying again (attempt number, delay).
    Reconnecting {
        /// Consecutive failed attempts so far.
        attempt: u32,
    },
    /// Given up or closed on purpose, with why.
    Closed(String),
}

impl LinkState {
    /// The state's name as the frame transport reports it.
    pub fn name(&self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Open => "open",
            LinkState::Reconnecting { .. } => "reconnecting",
            LinkState::Closed(_) => "closed",
        }
    }
}

/// What listeners receive.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The link changed.
    Link(LinkState),
    /// The session produced something.
    Output(Output),
}

/// The answer to a login.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Login {
    /// The token for `hello`.
    pub token: String,
    /// The agent's username.
    pub agent: String,
}

/// Milliseconds since the epoch from the browser's clock.
pub fn now() -> Millis {
    Millis(js_sys::Date::now() as u64)
}

fn js_err(context: &str, e: JsValue) -> ErrorBody {
    let detail = e
        .as_string()
        .or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()))
        .unwrap_or_default();
    ErrorBody::new(ErrorCode::Unknown, format!("{context}: {detail}"))
}

/// `POST url` with an optional JSON body and bearer token; resolves with
/// whether the status was 2xx, the status, and the body text. One copy of
/// the fetch plumbing for login and logout (it is what the CCP downloads).
async fn post(
    url: &str,
    body: Option<&str>,
    bearer: Option<&str>,
) -> Result<(bool, u16, String), ErrorBody> {
    let window =
        web_sys::window().ok_or_else(|| ErrorBody::new(ErrorCode::Unknown, "no window"))?;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    let headers = web_sys::Headers::new().map_err(|e| js_err("headers", e))?;
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(body));
        headers
            .set("Content-Type", "application/json")
            .map_err(|e| js_err("headers", e))?;
    }
    if let Some(token) = bearer {
        headers
            .set("Authorization", &format!("Bearer {token}"))
            .map_err(|e| js_err("headers", e))?;
    }
    init.set_headers(&headers);
    let request =
        web_sys::Request::new_with_str_and_init(url, &init).map_err(|e| js_err("request", e))?;
    let response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|_| ErrorBody::new(ErrorCode::Unknown, "the backend cannot be reached"))?;
    let response: web_sys::Response = response.dyn_into().map_err(|e| js_err("response", e))?;
    let text = JsFuture::from(response.text().map_err(|e| js_err("body", e))?)
        .await
        .map_err(|e| js_err("body", e))?
        .as_string()
        .unwrap_or_default();
    Ok((response.ok(), response.status(), text))
}

/// `POST {base}/v1/login`. An unreachable backend and a wrong password are
/// different errors (`unknown` with the cause, `auth_failed`).
pub async fn login(base: &str, username: &str, password: &str) -> Result<Login, ErrorBody> {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let (ok, status, text) = post(&format!("{base}/v1/login"), Some(&body), None).await?;
    if ok {
        serde_json::from_str(&text)
            .map_err(|e| ErrorBody::new(ErrorCode::Unknown, format!("bad login answer: {e}")))
    } else {
        Err(
            serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| {
                ErrorBody::new(
                    ErrorCode::Unknown,
                    format!("login failed with HTTP {status}"),
                )
            }),
        )
    }
}

/// Revokes `token`'s login at the backend (`POST /v1/logout`): sockets on
/// it are closed and it stops working everywhere. Best effort: a backend
/// that cannot be reached lets the token expire on its own.
pub async fn logout(base: &str, token: &str) -> Result<(), ErrorBody> {
    let (ok, status, _) = post(&format!("{base}/v1/logout"), None, Some(token)).await?;
    if ok {
        Ok(())
    } else {
        Err(ErrorBody::new(
            ErrorCode::AuthFailed,
            format!("logout answered HTTP {status}"),
        ))
    }
}

/// A timer that is cleared when dropped.
#[must_use]
struct Timer {
    id: i32,
    interval: bool,
    _callback: Closure<dyn FnMut()>,
}

impl Timer {
    fn new(ms: i32, interval: bool, f: impl FnMut() + 'static) -> Option<Timer> {
        let window = web_sys::window()?;
        let callback = Closure::<dyn FnMut()>::new(f);
        let cb = callback.as_ref().unchecked_ref();
        let id = if interval {
            window
                .set_interval_with_callback_and_timeout_and_arguments_0(cb, ms)
                .ok()?
        } else {
            window
                .set_timeout_with_callback_and_timeout_and_arguments_0(cb, ms)
                .ok()?
        };
        Some(Timer {
            id,
            interval,
            _callback: callback,
        })
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(w) = web_sys::window() {
            if self.interval {
                w.clear_interval_with_handle(self.id);
            } else {
                w.clear_timeout_with_handle(self.id);
            }
        }
    }
}

/// A socket and its handlers; closing and unhooking happen on drop.
#[must_use]
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

type Listener = Rc<dyn Fn(&Update)>;
type MediaSink = Rc<dyn Fn(&js_sys::Uint8Array)>;

/// Bytes the socket may hold unsent before outgoing media frames are
/// dropped (about four 20 ms frames): a WebSocket retransmits, so queued
/// audio would only arrive late.
const MEDIA_BACKLOG_BYTES: u32 = 1_200;

struct Inner {
    ws_url: String,
    session: Session,
    socket: Option<Socket>,
    waiters: HashMap<u64, oneshot::Sender<Result<OpResult, ErrorBody>>>,
    listeners: Vec<(u64, Listener)>,
    next_listener: u64,
    link: LinkState,
    attempt: u32,
    heartbeat: Option<Timer>,
    retry: Option<Timer>,
    /// The one timer for request timeouts, armed at the session's next
    /// deadline (the instant it is armed for, and the timer).
    deadline: Option<(Millis, Timer)>,
    stopped: bool,
    /// When the current socket was opened (ms, browser clock).
    opened_at: f64,
    /// When anything last arrived on it.
    last_rx: f64,
    /// When the last ping went out.
    last_ping: f64,
    /// The oldest ping not followed by anything from the server.
    probe_since: Option<f64>,
    media_sink: Option<MediaSink>,
    media_dropped: u64,
}

/// A connection to a backend for one agent.
#[derive(Clone)]
pub struct DirectClient {
    inner: Rc<RefCell<Inner>>,
}

/// Stops delivering updates to a listener when dropped.
#[must_use = "the listener is removed when this is dropped"]
pub struct Subscription {
    inner: Weak<RefCell<Inner>>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            if let Ok(mut i) = inner.try_borrow_mut() {
                i.listeners.retain(|(id, _)| *id != self.id);
            }
        }
    }
}

impl DirectClient {
    /// Connects to `ws_url` (e.g. `ws://127.0.0.1:8480/v1/ws`) with `token`.
    pub fn connect(ws_url: &str, token: &str) -> DirectClient {
        let client = DirectClient {
            inner: Rc::new(RefCell::new(Inner {
                ws_url: ws_url.to_owned(),
                session: Session::new(token, REQUEST_TIMEOUT_MS),
                socket: None,
                waiters: HashMap::new(),
                listeners: Vec::new(),
                next_listener: 1,
                link: LinkState::Connecting,
                attempt: 0,
                heartbeat: None,
                retry: None,
                deadline: None,
                stopped: false,
                opened_at: 0.0,
                last_rx: 0.0,
                last_ping: 0.0,
                probe_since: None,
                media_sink: None,
                media_dropped: 0,
            })),
        };
        let weak = Rc::downgrade(&client.inner);
        let heartbeat = Timer::new(WATCH_MS, true, move || {
            if let Some(inner) = weak.upgrade() {
                heartbeat_tick(&inner);
            }
        });
        client.inner.borrow_mut().heartbeat = heartbeat;
        open_socket(&client.inner);
        client
    }

    /// Calls `f` with every update until the returned guard is dropped.
    pub fn subscribe(&self, f: impl Fn(&Update) + 'static) -> Subscription {
        let mut inner = self.inner.borrow_mut();
        let id = inner.next_listener;
        inner.next_listener += 1;
        inner.listeners.push((id, Rc::new(f)));
        Subscription {
            inner: Rc::downgrade(&self.inner),
            id,
        }
    }

    /// The agent's state as known now.
    pub fn state(&self) -> ClientState {
        self.inner.borrow().session.state.clone()
    }

    /// The token the session presents now (a refresh replaces it).
    pub fn token(&self) -> String {
        self.inner.borrow().session.token().to_owned()
    }

    /// The link's state.
    pub fn link(&self) -> LinkState {
        self.inner.borrow().link.clone()
    }

    /// Runs an op; resolves with its result, a typed error, or a timeout.
    pub async fn op(&self, op: Op) -> Result<OpResult, ErrorBody> {
        self.send_request(|session| session.request(op, now()))
            .await
    }

    /// Runs an op given as a JSON object (see [`Session::request_raw`]).
    pub async fn op_raw(
        &self,
        op: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<OpResult, ErrorBody> {
        self.send_request(|session| session.request_raw(op, now()))
            .await
    }

    async fn send_request(
        &self,
        start: impl FnOnce(&mut Session) -> (u64, String),
    ) -> Result<OpResult, ErrorBody> {
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.inner.borrow_mut();
            if inner.link != LinkState::Open {
                return Err(ErrorBody::new(
                    ErrorCode::Unknown,
                    "not connected to the backend; retrying",
                ));
            }
            let (id, frame) = start(&mut inner.session);
            inner.waiters.insert(id, tx);
            if let Some(s) = &inner.socket {
                let _ = s.ws.send_with_str(&frame);
            }
        }
        arm_deadline(&self.inner);
        rx.await
            .unwrap_or_else(|_| Err(ErrorBody::new(ErrorCode::Unknown, "the client was closed")))
    }

    /// Announces an optional feature in every `hello` from now on (call it
    /// right after [`DirectClient::connect`], before the socket opens):
    /// the CCP announces `media_legs`, since its engine mixes legs itself.
    pub fn announce(&self, capability: &str) {
        self.inner.borrow_mut().session.announce(capability);
    }

    /// Announces the codecs besides Opus the client's engine decodes and
    /// encodes (`"pcmu"`, `"pcma"`) in every `hello` from now on: the CCP
    /// announces G.711, which its engine plays and sends on a telephone
    /// leg (media-wasm `g711.rs`).
    pub fn announce_codecs(&self, codecs: &[&str]) {
        self.inner.borrow_mut().session.announce_codecs(codecs);
    }

    /// Sets the packet durations the next `hello` offers, most preferred
    /// first (call it right after [`DirectClient::connect`], like
    /// [`DirectClient::announce`]): the CCP offers 10 ms first, since its
    /// engine takes the grant as its `packetMs`.
    pub fn offer_packet_ms(&self, offer: &[u32]) {
        self.inner.borrow_mut().session.offer_packet_ms(offer);
    }

    /// The media packet duration the last `welcome` granted (10 or 20 ms;
    /// 20 before one or when it granted none): the engine's `packetMs`.
    pub fn packet_ms(&self) -> u32 {
        self.inner.borrow().session.packet_ms()
    }

    /// Where incoming media frames go (replaces any earlier sink).
    pub fn set_media_sink(&self, sink: Option<impl Fn(&js_sys::Uint8Array) + 'static>) {
        self.inner.borrow_mut().media_sink = sink.map(|f| Rc::new(f) as MediaSink);
    }

    /// Sends a media frame now, or drops it when the socket is down or
    /// backed up. Returns whether it was sent.
    pub fn send_media(&self, frame: &[u8]) -> bool {
        let mut inner = self.inner.borrow_mut();
        let open = inner.link == LinkState::Open;
        let sent = match &inner.socket {
            Some(s) if open && s.ws.buffered_amount() <= MEDIA_BACKLOG_BYTES => {
                s.ws.send_with_u8_array(frame).is_ok()
            }
            _ => false,
        };
        if !sent {
            inner.media_dropped += 1;
        }
        sent
    }

    /// Outgoing media frames dropped so far.
    pub fn media_dropped(&self) -> u64 {
        self.inner.borrow().media_dropped
    }

    /// Closes for good (logout).
    pub fn close(&self) {
        let updates = {
            let mut inner = self.inner.borrow_mut();
            inner.stopped = true;
            inner.socket = None;
            inner.retry = None;
            inner.heartbeat = None;
            inner.deadline = None;
            inner.link = LinkState::Closed("closed".into());
            let failed = inner.session.disconnected();
            settle(&mut inner, failed)
        };
        dispatch(&self.inner, updates);
    }

    /// Test hook: drop the socket as a network failure would.
    pub fn simulate_drop(&self) {
        let socket = self.inner.borrow_mut().socket.take();
        drop(socket);
        on_closed(&self.inner, "dropped".into());
    }
}

/// Resolves waiters for replies; returns the updates to publish.
fn settle(inner: &mut Inner, outputs: Vec<Output>) -> Vec<Update> {
    let mut updates = Vec::new();
    for o in outputs {
        if let Output::Reply { id, result } = &o {
            if let Some(tx) = inner.waiters.remove(id) {
                let _ = tx.send(result.clone());
            }
        }
        updates.push(Update::Output(o));
    }
    updates
}

fn dispatch(inner: &Rc<RefCell<Inner>>, updates: Vec<Update>) {
    if updates.is_empty() {
        return;
    }
    // Listeners may call back into the client: never hold the borrow.
    let listeners: Vec<Listener> = inner
        .borrow()
        .listeners
        .iter()
        .map(|(_, l)| l.clone())
        .collect();
    for u in &updates {
        for l in &listeners {
            l(u);
        }
    }
}

fn set_link(inner: &mut Inner, link: LinkState) -> Option<Update> {
    (inner.link != link).then(|| {
        inner.link = link.clone();
        Update::Link(link)
    })
}

/// The global under which the CCP's boot.js leaves a socket it opened
/// while the module was still loading.
const EARLY_SOCKET: &str = "__switchboardSocket";

/// The socket boot.js opened to `url` before this module started, taken
/// once: a page that starts with a login opens its socket in parallel with
/// compiling the module instead of after it (tens of ms of a reload). One
/// to another address, or already closing, is closed and not used.
fn early_socket(url: &str) -> Option<WebSocket> {
    let global = js_sys::global();
    let key = JsValue::from_str(EARLY_SOCKET);
    let value = js_sys::Reflect::get(&global, &key).ok()?;
    let ws = value.dyn_into::<WebSocket>().ok()?;
    let _ = js_sys::Reflect::set(&global, &key, &JsValue::UNDEFINED);
    if ws.url() == url && ws.ready_state() <= WebSocket::OPEN {
        Some(ws)
    } else {
        let _ = ws.close();
        None
    }
}

fn open_socket(rc: &Rc<RefCell<Inner>>) {
    let url = rc.borrow().ws_url.clone();
    let ws = match early_socket(&url)
        .map(Ok)
        .unwrap_or_else(|| WebSocket::new(&url))
    {
        Ok(ws) => ws,
        Err(e) => {
            on_closed(
                rc,
                format!("cannot open socket: {}", e.as_string().unwrap_or_default()),
            );
            return;
        }
    };
    ws.set_binary_type(web_sys::BinaryType::Arraybuffer);
    {
        let mut inner = rc.borrow_mut();
        let t = js_sys::Date::now();
        inner.opened_at = t;
        inner.last_rx = t;
        inner.probe_since = None;
    }
    let weak = Rc::downgrade(rc);
    let on_open = Closure::<dyn FnMut()>::new(move || {
        let Some(rc) = weak.upgrade() else { return };
        let inner = rc.borrow();
        if let Some(s) = &inner.socket {
            let _ = s.ws.send_with_str(&inner.session.hello());
        }
    });
    let weak = Rc::downgrade(rc);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let Some(rc) = weak.upgrade() else { return };
        {
            // Anything at all proves the link is alive.
            let mut inner = rc.borrow_mut();
            inner.last_rx = js_sys::Date::now();
            inner.probe_since = None;
        }
        let data = ev.data();
        if let Some(buf) = data.dyn_ref::<js_sys::ArrayBuffer>() {
            // A media frame: straight to the media listener, if any.
            let sink = rc.borrow().media_sink.clone();
            if let Some(sink) = sink {
                sink(&js_sys::Uint8Array::new(buf));
            }
            return;
        }
        let Some(text) = data.as_string() else {
            return;
        };
        let updates = {
            let mut inner = rc.borrow_mut();
            let outputs = match inner.session.handle_text(&text, now()) {
                Ok(o) => o,
                Err(e) => {
                    web_sys::console::warn_1(&JsValue::from_str(&format!(
                        "dropped server frame: {e}"
                    )));
                    return;
                }
            };
            let mut updates = Vec::new();
            for o in &outputs {
                match o {
                    Output::Ready { .. } => {
                        inner.attempt = 0;
                        updates.extend(set_link(&mut inner, LinkState::Open));
                    }
                    Output::Resync(frame)
                    | Output::TokenExpiring {
                        refresh: Some(frame),
                        ..
                    } => {
                        if let Some(s) = &inner.socket {
                            let _ = s.ws.send_with_str(frame);
                        }
                    }
                    Output::SessionEnded(e) => {
                        // The login is over: reconnecting with this token
                        // would only be refused.
                        inner.stopped = true;
                        inner.retry = None;
                        inner.heartbeat = None;
                        updates.extend(set_link(
                            &mut inner,
                            LinkState::Closed(e.code.as_str().to_owned()),
                        ));
                    }
                    _ => {}
                }
            }
            updates.extend(settle(&mut inner, outputs));
            updates
        };
        // An answer may move the next deadline; a resync or refresh
        // request adds one.
        arm_deadline(&rc);
        dispatch(&rc, updates);
    });
    let weak = Rc::downgrade(rc);
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
        if let Some(rc) = weak.upgrade() {
            rc.borrow_mut().socket = None;
            on_closed(&rc, format!("socket closed ({})", ev.code()));
        }
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    // An early socket may have opened already: its `open` event has been
    // and gone, so say hello now. (The server speaks only after it.)
    let open = ws.ready_state() == WebSocket::OPEN;
    rc.borrow_mut().socket = Some(Socket {
        ws,
        _on_open: on_open,
        _on_message: on_message,
        _on_close: on_close,
    });
    if open {
        let inner = rc.borrow();
        if let Some(s) = &inner.socket {
            let _ = s.ws.send_with_str(&inner.session.hello());
        }
    }
}

fn on_closed(rc: &Rc<RefCell<Inner>>, why: String) {
    let updates = {
        let mut inner = rc.borrow_mut();
        if inner.stopped {
            return;
        }
        let failed = inner.session.disconnected();
        let mut updates = settle(&mut inner, failed);
        inner.attempt += 1;
        let attempt = inner.attempt;
        updates.extend(set_link(&mut inner, LinkState::Reconnecting { attempt }));
        // Exponential backoff with jitter so a backend restart is not met
        // by every agent at the same instant.
        let base = BACKOFF_MIN_MS
            .saturating_mul(1 << attempt.min(6))
            .min(BACKOFF_MAX_MS);
        let jitter = (js_sys::Math::random() * f64::from(base) * 0.3) as u32;
        let weak = Rc::downgrade(rc);
        inner.retry = Timer::new((base + jitter) as i32, false, move || {
            if let Some(rc) = weak.upgrade() {
                open_socket(&rc);
            }
        });
        web_sys::console::info_1(&JsValue::from_str(&format!(
            "{why}; reconnecting in {} ms",
            base + jitter
        )));
        updates
    };
    dispatch(rc, updates);
}

/// Why the watchdog gives up on the current socket, if it does.
fn dead_link(inner: &Inner, t: f64) -> Option<String> {
    inner.socket.as_ref()?;
    if inner.link == LinkState::Open {
        let since = inner.probe_since?;
        (t - since >= PROBE_TIMEOUT_MS).then(|| {
            // Whole milliseconds: formatting an f64 pulls about 12 KB of
            // float-printing code into every module that links this.
            format!(
                "nothing from the backend for {} ms",
                (t - inner.last_rx).max(0.0) as u64
            )
        })
    } else {
        (t - inner.opened_at >= CONNECT_TIMEOUT_MS).then(|| {
            format!(
                "no answer to connecting in {} ms",
                (t - inner.opened_at).max(0.0) as u64
            )
        })
    }
}

/// Arms the request-timeout timer at the session's next deadline, unless
/// it is already armed for that instant or an earlier one (a timer that
/// fires early finds nothing due and re-arms).
fn arm_deadline(rc: &Rc<RefCell<Inner>>) {
    let mut inner = rc.borrow_mut();
    let Some(next) = inner.session.next_deadline() else {
        inner.deadline = None;
        return;
    };
    // Even when stopped (the login ended): a request still awaited must
    // fail at its deadline rather than hang.
    if inner.deadline.as_ref().is_some_and(|(at, _)| *at <= next) {
        return;
    }
    let delay = i32::try_from(delay_ms(next, now())).unwrap_or(i32::MAX);
    let weak = Rc::downgrade(rc);
    let timer = Timer::new(delay, false, move || {
        if let Some(rc) = weak.upgrade() {
            on_deadline(&rc);
        }
    });
    inner.deadline = timer.map(|t| (next, t));
}

/// The deadline timer fired: fail what is due, and arm for the next.
fn on_deadline(rc: &Rc<RefCell<Inner>>) {
    let updates = {
        let mut inner = rc.borrow_mut();
        // The fired timer's guard: clearing a spent id is harmless, and
        // wasm-bindgen defers freeing a closure that is running.
        let spent = inner.deadline.take();
        let expired = inner.session.poll_timeouts(now());
        let updates = settle(&mut inner, expired);
        drop(inner);
        arm_deadline(rc);
        drop(spent);
        updates
    };
    dispatch(rc, updates);
}

fn heartbeat_tick(rc: &Rc<RefCell<Inner>>) {
    let dead = {
        let mut inner = rc.borrow_mut();
        let t = js_sys::Date::now();
        let dead = dead_link(&inner, t);
        // A ping every heartbeat keeps the server's idle timer happy; one
        // after a quiet spell asks whether the link is still there. Timers
        // in a hidden tab may fire only once a minute: staleness is judged
        // from an unanswered ping, never from the silence alone.
        let on_call = inner
            .session
            .state
            .contacts
            .values()
            .any(|c| matches!(c.state, ContactState::Connected { .. }));
        let due = t - inner.last_ping >= HEARTBEAT_MS
            || (on_call && t - inner.last_rx >= QUIET_MS && t - inner.last_ping >= QUIET_MS);
        if dead.is_none() && inner.link == LinkState::Open && due {
            let (_, frame) = inner.session.request(Op::Ping, now());
            if let Some(s) = &inner.socket {
                let _ = s.ws.send_with_str(&frame);
            }
            inner.last_ping = t;
            inner.probe_since.get_or_insert(t);
        }
        dead
    };
    // The ping is a request too: its deadline may be the next one.
    arm_deadline(rc);
    if let Some(why) = dead {
        // Dropping the socket unhooks its handlers: a late close event
        // from the browser cannot start a second reconnect.
        let socket = rc.borrow_mut().socket.take();
        drop(socket);
        on_closed(rc, why);
    }
}
