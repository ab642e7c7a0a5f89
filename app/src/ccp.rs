//! The session model: the single source of truth of the CCP. It holds the
//! connection (the SDK's `DirectClient`, whose core turns the backend's
//! frames into a `ClientState`), and exposes that state as signals the
//! views derive from, plus a bounded log of [`Event`]s for the observers
//! that forward what happened (the embedding page, the other tabs). User
//! actions come back as commands (`run`, `login`, `logout`…).
//!
//! Data flows one way: this module imports none of its observers. The
//! tabs election, the frame transport, the ringer and the call audio
//! watch these signals with Leptos effects (see `tabs`, `embed`, `ringer`,
//! `hooks::call`); a follower tab is only another route for requests,
//! installed with [`Ccp::set_relay`].
//!
//! The `DirectClient` is not `Send`, so it lives in a thread-local beside
//! the (thread-safe) signals; wasm has one thread.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use protocol::contact::ContactView;
use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{Op, OpResult, Snapshot};
use streams_sdk::web::{self, DirectClient, LinkState, Subscription, Update};
use streams_sdk::{ClientState, ContactChange, Output};

use crate::i18n::{tr, Lang};
use crate::store::{self, Key};

/// The link's closed reason when a newer session replaced this one.
pub const DISPLACED: &str = "session_replaced";
/// Events kept for observers that have not run yet; older ones are
/// dropped (the state they describe is pushed whole anyway).
const EVENT_LOG: usize = 64;

/// Something that happened, for the observers that forward it.
#[derive(Debug, Clone)]
pub enum Event {
    /// A contact lifecycle step.
    Contact(ContactChange),
    /// The login's lifetime (expiring, refreshed, ended).
    Auth(Output),
    /// The call audio failed: a code and the agent's sentence.
    SoftphoneError(String, String),
    /// The agent logged out here: every tab forgets the login.
    LoggedOut,
    /// A login token was saved in a follower: the leader connects with it.
    TokenSaved,
}

/// The bounded event log; each observer keeps its own cursor (a `seq`).
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    next: u64,
    items: VecDeque<(u64, Event)>,
}

impl EventLog {
    /// Events from `from` on, and the cursor after them.
    pub fn since(&self, from: u64) -> (impl Iterator<Item = &Event>, u64) {
        let events = self
            .items
            .iter()
            .filter(move |(seq, _)| *seq >= from)
            .map(|(_, e)| e);
        (events, self.next)
    }
}

type Relay = Box<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<OpResult, ErrorBody>>>>>;

#[derive(Default)]
struct Core {
    client: Option<(DirectClient, Subscription)>,
    /// How a follower sends ops (through the leading tab).
    relay: Option<Relay>,
    /// The wrap-up codes of the latest `clear` ops run here (the contact
    /// view does not carry them), newest last, for the history.
    wrap_ups: VecDeque<(String, String)>,
}

/// Wrap-up codes remembered (one per contact being cleared).
const WRAP_UPS: usize = 16;

thread_local! {
    static CORE: RefCell<Core> = RefCell::new(Core::default());
}

/// The agent's sentence (an English key for `tr`) for a failed action's
/// code: the backend's own message is for logs and developers, never the
/// screen.
pub fn sentence(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "Not accepted: check what was typed or chosen.",
        ErrorCode::InvalidState => "That cannot be done in the call's present state.",
        ErrorCode::NotFound => "That contact or party is no longer there.",
        ErrorCode::NotOwner => "That contact belongs to another agent.",
        ErrorCode::UnsupportedEndpoint => "That destination cannot be used here.",
        ErrorCode::QueueFull => "The queue is full; try again later.",
        ErrorCode::QueueClosed => "The queue is closed now.",
        ErrorCode::Timeout => "No answer from the backend; try again.",
        ErrorCode::RateLimited => "Too many actions at once; wait a moment.",
        ErrorCode::NotAuthenticated => "You are not logged in.",
        _ => "That did not work; try again.",
    }
}

/// The session's signals (all `Copy`): the state views derive from.
#[derive(Clone, Copy)]
pub struct Ccp {
    /// The agent's world.
    pub state: RwSignal<ClientState>,
    /// The link, `None` while logged out.
    pub link: RwSignal<Option<LinkState>>,
    /// The last error to show: an English sentence, translated when shown
    /// (never a backend's message), with the state's `seq` it was about.
    /// It clears when that state moves on (the contact changed or went,
    /// the status changed, the call ended: its cause ended) or at the next
    /// action.
    pub error: RwSignal<Option<(u64, &'static str)>>,
    /// A clock ticking each second, for timers.
    pub now: RwSignal<u64>,
    /// The display language.
    pub lang: RwSignal<Lang>,
    /// Whether this tab owns the softphone (rings, plays the call).
    pub leader: RwSignal<bool>,
    /// Whether this tab knows its role's state (it leads, or has mirrored
    /// the leader once, or waited long enough): the frame transport
    /// reports nothing before, so an SDK does not see "logged out" a
    /// moment before the login resumes.
    pub settled: RwSignal<bool>,
    /// A note to show instead of the panel (the login popup's farewell).
    pub notice: RwSignal<Option<&'static str>>,
    /// The same agent opened a newer session elsewhere: this window is
    /// disconnected (its login kept) until the agent takes the session back.
    pub displaced: RwSignal<bool>,
    /// What happened, for observers.
    pub events: RwSignal<EventLog>,
}

fn origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

impl Ccp {
    /// Fresh signals and the one-second clock. Observers run as
    /// immediate effects, in order, as each signal is set; events are
    /// emitted before the state they lead to.
    pub fn new(lang: RwSignal<Lang>) -> Ccp {
        let ccp = Ccp {
            state: RwSignal::new(ClientState::default()),
            link: RwSignal::new(None),
            error: RwSignal::new(None),
            now: RwSignal::new(web::now().0),
            lang,
            leader: RwSignal::new(false),
            settled: RwSignal::new(false),
            notice: RwSignal::new(None),
            displaced: RwSignal::new(false),
            events: RwSignal::new(EventLog::default()),
        };
        // An error whose cause ended goes with it: any event moves `seq`.
        leptos::reactive::effect::ImmediateEffect::new_scoped(move || {
            let seq = ccp.state.with(|s| s.seq);
            if ccp
                .error
                .with_untracked(|e| e.is_some_and(|(at, _)| at != seq))
            {
                ccp.error.set(None);
            }
        });
        // The clock lives as long as the page; it only ticks.
        let _ = set_interval_with_handle(
            move || ccp.now.set(web::now().0),
            Duration::from_millis(1000),
        );
        ccp
    }

    /// `english` in the current language (reactive).
    pub fn t(&self, english: &'static str) -> &'static str {
        tr(self.lang.get(), english)
    }

    /// The error in the current language (reactive).
    pub fn error_text(&self) -> Option<&'static str> {
        let english = self
            .error
            .with(|e| e.as_ref().map(|(_, english)| *english))?;
        Some(self.t(english))
    }

    /// Shows `english` about the present state (`seq`); an error about a
    /// state that already moved on is not shown.
    pub fn fail(&self, seq: Option<u64>, english: &'static str) {
        let now = self.state.with_untracked(|s| s.seq);
        if seq.is_none_or(|at| at == now) {
            self.error.set(Some((now, english)));
        }
    }

    fn emit(&self, event: Event) {
        // `Update` here is the client's enum, so call the signal trait by name.
        leptos::prelude::Update::update(&self.events, |log| {
            log.items.push_back((log.next, event));
            log.next += 1;
            while log.items.len() > EVENT_LOG {
                log.items.pop_front();
            }
        });
    }

    /// Logged in (connected or reconnecting).
    pub fn logged_in(&self) -> bool {
        self.link
            .with(|l| matches!(l, Some(s) if !matches!(s, LinkState::Closed(_))))
    }

    /// Whether any contact is shown.
    pub fn has_contacts(&self) -> bool {
        self.state.with(|s| !s.contacts.is_empty())
    }

    /// Contact ids, oldest first.
    pub fn contact_ids(&self) -> Vec<String> {
        self.state.with(|s| {
            s.contacts_oldest_first()
                .into_iter()
                .map(|c| c.contact_id)
                .collect()
        })
    }

    /// One contact.
    pub fn contact(&self, id: &str) -> Option<ContactView> {
        self.state.with(|s| s.contacts.get(id).cloned())
    }

    /// The link's name as the frame transport reports it.
    pub fn link_name_untracked(&self) -> &'static str {
        self.link
            .with_untracked(|l| l.as_ref().map_or("logged_out", LinkState::name))
    }

    /// Logged in, without subscribing.
    pub fn logged_in_untracked(&self) -> bool {
        self.link
            .with_untracked(|l| matches!(l, Some(s) if !matches!(s, LinkState::Closed(_))))
    }

    /// The connection, in the leading tab.
    pub fn client() -> Option<DirectClient> {
        CORE.with(|c| c.borrow().client.as_ref().map(|(client, _)| client.clone()))
    }

    /// Installs the follower's route for ops (through the leading tab).
    pub fn set_relay(&self, relay: Relay) {
        CORE.with(|c| c.borrow_mut().relay = Some(relay));
    }

    /// This tab now knows its role's state.
    pub fn settle(&self) {
        if !self.settled.get_untracked() {
            self.settled.set(true);
        }
    }

    /// Reconnects with a token saved by an earlier page load or another tab.
    pub fn resume_saved_login(&self) {
        if let Some(token) = store::get(Key::Token) {
            self.connect(&token);
        }
    }

    /// This tab won the election: connect with the saved login.
    pub fn became_leader(&self) {
        self.leader.set(true);
        self.resume_saved_login();
    }

    /// Uses a token obtained here or by the login popup.
    pub fn adopt_token(&self, token: &str) {
        store::set(Key::Token, token);
        if self.leader.get_untracked() {
            self.connect(token);
        } else {
            self.emit(Event::TokenSaved);
        }
    }

    /// A follower takes the leader's state (`link` is `None` when logged out).
    pub fn mirror(&self, link: Option<String>, snapshot: Option<Snapshot>) {
        let displaced = link.as_deref() == Some(DISPLACED);
        let link = link.map(|l| match l.as_str() {
            "open" => LinkState::Open,
            "connecting" => LinkState::Connecting,
            "reconnecting" => LinkState::Reconnecting { attempt: 1 },
            other => LinkState::Closed(other.to_owned()),
        });
        let mut state = self.state.get_untracked();
        let changes = match snapshot {
            Some(s) if s.seq != state.seq || state.agent.is_none() => Some(state.apply_snapshot(s)),
            Some(_) => None,
            None if state.agent.is_some() => {
                let gone = state.contacts.keys().cloned().map(ContactChange::Destroyed);
                let gone: Vec<_> = gone.collect();
                state = ClientState::default();
                Some(gone)
            }
            None => None,
        };
        if self.displaced.get_untracked() != displaced {
            self.displaced.set(displaced);
        }
        if self.link.get_untracked() != link {
            self.link.set(link);
        }
        // Events first: an observer of the state finds the changes that
        // led to it.
        if let Some(changes) = changes {
            for c in changes {
                self.emit(Event::Contact(c));
            }
            self.state.set(state);
        }
    }

    /// Logs in and resolves to the token (the caller decides where it goes:
    /// this tab, or the framed CCPs of the popup's opener).
    pub async fn login(&self, username: String, password: String) -> Option<String> {
        self.error.set(None);
        match web::login(&origin(), &username, &password).await {
            Ok(login) => Some(login.token),
            Err(e) => {
                self.fail(
                    None,
                    match e.code {
                        ErrorCode::AuthFailed => "Wrong user name or password.",
                        ErrorCode::LoginThrottled => {
                            "Too many failed attempts; wait a moment and try again."
                        }
                        _ => "The backend cannot be reached; check the connection and try again.",
                    },
                );
                None
            }
        }
    }

    fn connect(&self, token: &str) {
        self.close_client();
        let ws_url = origin().replacen("http", "ws", 1) + "/v1/ws";
        let client = DirectClient::connect(&ws_url, token);
        // The engine mixes a conference's legs itself (media-wasm legs.rs).
        client.announce(protocol::wire::CAP_MEDIA_LEGS);
        // The engine plays and sends a telephone leg's G.711 itself
        // (media-wasm g711.rs): the backend forwards it untranscoded.
        client.announce_codecs(&["pcmu", "pcma"]);
        // The engine sends what the `welcome` grants (audio.rs): 10 ms first.
        client.offer_packet_ms(crate::audio::PACKET_MS_OFFER);
        let ccp = *self;
        ccp.displaced.set(false);
        ccp.link.set(Some(LinkState::Connecting));
        let sub = client.subscribe(move |u| ccp.on_update(u));
        CORE.with(|c| c.borrow_mut().client = Some((client, sub)));
    }

    fn close_client(&self) {
        let old = CORE.with(|c| c.borrow_mut().client.take());
        if let Some((client, sub)) = old {
            drop(sub);
            client.close();
        }
    }

    fn on_update(&self, update: &Update) {
        match update {
            Update::Link(l) => self.link.set(Some(l.clone())),
            Update::Output(Output::ServerError(e)) if e.code == ErrorCode::AuthFailed => {
                self.logout();
                self.fail(None, "Your session expired; log in again.");
            }
            // A media frame that crossed the leg's removal (leaving a
            // conference, a call ending): the next frames go nowhere and
            // nothing is wrong for the agent.
            Update::Output(Output::ServerError(e)) if e.code == ErrorCode::NoMediaLeg => {}
            Update::Output(Output::ServerError(e)) => self.fail(None, sentence(e.code)),
            // A reply goes to whoever asked; it changes no state.
            Update::Output(Output::Reply { .. }) => {}
            // The client already sent `refresh_token`; the page is told.
            Update::Output(o @ Output::TokenExpiring { .. }) => self.emit(Event::Auth(o.clone())),
            Update::Output(o @ Output::TokenRefreshed { token, .. }) => {
                // Where the login lives: a reload or another tab uses it.
                store::set(Key::Token, token);
                self.emit(Event::Auth(o.clone()));
            }
            Update::Output(Output::SessionEnded(e)) if e.code == ErrorCode::SessionReplaced => {
                self.displaced_here();
            }
            Update::Output(o @ Output::SessionEnded(e)) => {
                self.emit(Event::Auth(o.clone()));
                // The backend already ended the login: forget it everywhere
                // without revoking it again.
                self.logout_here();
                self.emit(Event::LoggedOut);
                self.fail(
                    None,
                    if e.code == ErrorCode::TokenRevoked {
                        "You were logged out; log in again."
                    } else {
                        "Your session expired; log in again."
                    },
                );
            }
            Update::Output(out) => {
                if let Some(client) = Self::client() {
                    if let Output::Contact(change) = out {
                        self.emit(Event::Contact(change.clone()));
                    }
                    self.state.set(client.state());
                }
            }
        }
    }

    /// The wrap-up code a `clear` run here carried for `contact_id`.
    pub fn wrap_up_of(contact_id: &str) -> Option<String> {
        CORE.with(|c| {
            let c = c.borrow();
            let found = c.wrap_ups.iter().rev().find(|(id, _)| id == contact_id);
            found.map(|(_, code)| code.clone())
        })
    }

    /// Remembers the wrap-up code of a `clear` about to be run here.
    fn note_wrap_up(contact_id: &str, code: Option<&str>) {
        let Some(code) = code else { return };
        CORE.with(|c| {
            let w = &mut c.borrow_mut().wrap_ups;
            if w.len() >= WRAP_UPS {
                w.pop_front();
            }
            w.push_back((contact_id.to_owned(), code.to_owned()));
        });
    }

    /// Runs an op here (leading tab) or through the leading tab.
    pub async fn request(&self, op: Op) -> Result<OpResult, ErrorBody> {
        if let Op::Clear {
            contact_id,
            wrap_up_code,
        } = &op
        {
            Self::note_wrap_up(contact_id, wrap_up_code.as_deref());
        }
        match Self::client() {
            Some(client) => client.op(op).await,
            None => {
                self.relayed(serde_json::to_string(&op).unwrap_or_default())
                    .await
            }
        }
    }

    /// Runs an op given as a JSON object (from the embedding page or another
    /// tab) here or through the leading tab; the backend validates it.
    pub async fn request_raw(
        &self,
        op: serde_json::Map<String, serde_json::Value>,
    ) -> Result<OpResult, ErrorBody> {
        if op.get("op").and_then(|v| v.as_str()) == Some("clear") {
            let field = |k: &str| op.get(k).and_then(|v| v.as_str());
            if let Some(id) = field("contact_id") {
                Self::note_wrap_up(id, field("wrap_up_code"));
            }
        }
        match Self::client() {
            Some(client) => client.op_raw(&op).await,
            None => {
                self.relayed(serde_json::Value::Object(op).to_string())
                    .await
            }
        }
    }

    async fn relayed(&self, op: String) -> Result<OpResult, ErrorBody> {
        let sent = if self.logged_in_untracked() {
            CORE.with(|c| c.borrow().relay.as_ref().map(|relay| relay(op)))
        } else {
            None
        };
        match sent {
            Some(answer) => answer.await,
            None => Err(ErrorBody::new(ErrorCode::NotAuthenticated, "not logged in")),
        }
    }

    /// Runs an op; a failure shows as the panel's error.
    pub fn run(&self, op: Op) {
        let ccp = *self;
        ccp.error.set(None);
        let seq = self.state.with_untracked(|s| s.seq);
        spawn_local(async move {
            if let Err(e) = ccp.request(op).await {
                ccp.fail(Some(seq), sentence(e.code));
            }
        });
    }

    /// Runs an op and hands back its result (errors show as the panel's
    /// error and give `None`).
    pub async fn ask(&self, op: Op) -> Option<OpResult> {
        let seq = self.state.with_untracked(|s| s.seq);
        match self.request(op).await {
            Ok(result) => Some(result),
            Err(e) => {
                self.fail(Some(seq), sentence(e.code));
                None
            }
        }
    }

    /// The call audio failed (reported by the audio hook).
    pub fn audio_failed(&self, code: &str, sentence: &'static str) {
        self.fail(None, sentence);
        self.emit(Event::SoftphoneError(code.to_owned(), sentence.to_owned()));
    }

    /// Logs out in every tab and revokes the login at the backend, so the
    /// token stops working everywhere (not only in this browser).
    pub fn logout(&self) {
        if let Some(token) = store::get(Key::Token) {
            spawn_local(async move {
                if let Err(e) = web::logout(&origin(), &token).await {
                    web_sys::console::warn_1(&format!("logout: {}", e.message).into());
                }
            });
        }
        self.logout_here();
        self.emit(Event::LoggedOut);
    }

    /// The agent's session was opened elsewhere: close the connection,
    /// forget the (stale) contacts, keep the login, and say so instead of
    /// the panel. Followers learn it from the link name.
    fn displaced_here(&self) {
        self.close_client();
        self.error.set(None);
        self.displaced.set(true);
        self.link.set(Some(LinkState::Closed(DISPLACED.to_owned())));
        self.forget_contacts();
    }

    fn forget_contacts(&self) {
        let gone: Vec<String> = self
            .state
            .with_untracked(|s| s.contacts.keys().cloned().collect());
        for id in gone {
            self.emit(Event::Contact(ContactChange::Destroyed(id)));
        }
        self.state.set(ClientState::default());
    }

    /// Takes the session back in this window (the other one is displaced
    /// in turn), with the login kept here.
    pub fn take_back(&self) {
        self.displaced.set(false);
        if self.leader.get_untracked() {
            self.resume_saved_login();
        } else {
            self.emit(Event::TokenSaved);
        }
    }

    /// Forgets the token and closes the connection in this tab.
    pub fn logout_here(&self) {
        self.displaced.set(false);
        store::set(Key::Token, "");
        // A shared computer keeps no customer numbers after a logout.
        store::set(Key::History, "");
        self.close_client();
        self.link.set(None);
        self.forget_contacts();
    }
}
