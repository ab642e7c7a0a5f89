//! The CCP's connection and the signals the UI reads. The `DirectClient`
//! is not `Send`, so it lives in a thread-local beside the (thread-safe)
//! signals; wasm has one thread, and this keeps the components free of it.
//!
//! The login token is kept in `localStorage`, so a page refresh during a
//! call re-attaches to it instead of asking for the password again, and a
//! second tab (or a CRM's second tab framing the CCP) shares the login.
//! Only the tab leading the election in `tabs` connects; the others mirror
//! its state and send their ops through it.

use std::cell::RefCell;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use protocol::contact::{ContactState, ContactView};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{Op, OpResult, Snapshot};
use streams_sdk::web::{self, DirectClient, LinkState, Subscription, Update};
use streams_sdk::{ClientState, ContactChange, Output};

use crate::i18n::{tr, Lang};

const TOKEN_KEY: &str = "switchboard.token";
const LANG_KEY: &str = "switchboard.lang";
/// The link's closed reason when a newer session replaced this one.
const DISPLACED: &str = "session_replaced";

fn saved_lang() -> Lang {
    let window = web_sys::window();
    let saved = window
        .as_ref()
        .and_then(|w| w.local_storage().ok().flatten())
        .and_then(|s| s.get_item(LANG_KEY).ok().flatten());
    let browser = window.and_then(|w| w.navigator().language());
    Lang::from_tag(&saved.or(browser).unwrap_or_default())
}

const THEME_KEY: &str = "switchboard.theme";

fn saved_dark() -> bool {
    let window = web_sys::window();
    let saved = window
        .as_ref()
        .and_then(|w| w.local_storage().ok().flatten())
        .and_then(|s| s.get_item(THEME_KEY).ok().flatten());
    match saved.as_deref() {
        Some("dark") => true,
        Some(_) => false,
        None => window
            .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
            .is_some_and(|m| m.matches()),
    }
}

fn set_document_theme(dark: bool) {
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = el.set_attribute("data-theme", if dark { "dark" } else { "light" });
    }
}

fn set_document_lang(lang: Lang) {
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = el.set_attribute("lang", lang.tag());
    }
}

thread_local! {
    static HISTORY: RefCell<crate::history::History> = RefCell::new(crate::history::History::default());
    static CLIENT: RefCell<Option<(DirectClient, Subscription)>> = const { RefCell::new(None) };
}

/// Everything the components read, as copyable signals.
#[derive(Clone, Copy)]
pub struct Ccp {
    /// The agent's world.
    pub state: RwSignal<ClientState>,
    /// The link, `None` while logged out.
    pub link: RwSignal<Option<LinkState>>,
    /// The last error to show.
    pub error: RwSignal<Option<String>>,
    /// A clock ticking each second, for timers.
    pub now: RwSignal<u64>,
    /// The audio engine's call quality, while a call has audio.
    pub quality: RwSignal<Option<crate::audio::Quality>>,
    /// The display language (kept in localStorage).
    pub lang: RwSignal<Lang>,
    /// Dark theme (kept in localStorage; the system preference by default).
    pub dark: RwSignal<bool>,
    /// This session's finished contacts, oldest first.
    pub history: RwSignal<Vec<crate::history::Entry>>,
    /// Whether this tab owns the softphone (rings, plays the call).
    pub leader: RwSignal<bool>,
    /// The browser blocks the ringtone until the agent clicks the page.
    pub sound_blocked: RwSignal<bool>,
    /// A note to show instead of the panel (the login popup's farewell).
    pub notice: RwSignal<Option<&'static str>>,
    /// The same agent opened a newer session elsewhere: this window is
    /// disconnected (its login kept) until the agent takes the session back.
    pub displaced: RwSignal<bool>,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

impl Ccp {
    /// Fresh signals and the one-second clock.
    pub fn new() -> Ccp {
        let ccp = Ccp {
            state: RwSignal::new(ClientState::default()),
            link: RwSignal::new(None),
            error: RwSignal::new(None),
            now: RwSignal::new(web::now().0),
            quality: RwSignal::new(None),
            lang: RwSignal::new(saved_lang()),
            dark: RwSignal::new(saved_dark()),
            history: RwSignal::new(Vec::new()),
            leader: RwSignal::new(false),
            sound_blocked: RwSignal::new(false),
            notice: RwSignal::new(None),
            displaced: RwSignal::new(false),
        };
        set_document_lang(ccp.lang.get_untracked());
        set_document_theme(ccp.dark.get_untracked());
        // The interval lives as long as the page. It is also the tabs'
        // heartbeat, and re-checks whether the ringtone is still blocked.
        let _ = set_interval_with_handle(
            move || {
                ccp.now.set(web::now().0);
                ccp.quality.set(crate::audio::quality());
                crate::tabs::broadcast_state(ccp);
                ccp.sync_ringer();
            },
            Duration::from_millis(1000),
        );
        ccp
    }

    /// `english` in the current language (reactive).
    pub fn t(&self, english: &'static str) -> &'static str {
        tr(self.lang.get(), english)
    }

    /// Switches language and remembers it.
    pub fn set_lang(&self, lang: Lang) {
        self.lang.set(lang);
        set_document_lang(lang);
        if let Some(s) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
            let _ = s.set_item(LANG_KEY, lang.tag());
        }
    }

    /// Switches theme and remembers it.
    pub fn set_dark(&self, dark: bool) {
        self.dark.set(dark);
        set_document_theme(dark);
        if let Some(s) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
            let _ = s.set_item(THEME_KEY, if dark { "dark" } else { "light" });
        }
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
            let mut v: Vec<&ContactView> = s.contacts.values().collect();
            v.sort_by_key(|c| c.created_at);
            v.into_iter().map(|c| c.contact_id.clone()).collect()
        })
    }

    /// One contact.
    pub fn contact(&self, id: &str) -> Option<ContactView> {
        self.state.with(|s| s.contacts.get(id).cloned())
    }

    /// Reconnects with a token saved by an earlier page load or another tab.
    pub fn resume_saved_login(&self) {
        if let Some(token) = storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten()) {
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
        if let Some(s) = storage() {
            let _ = s.set_item(TOKEN_KEY, token);
        }
        if self.leader.get_untracked() {
            self.connect(token);
        } else {
            crate::tabs::announce_token();
        }
    }

    /// A follower takes the leader's state (`link` is `None` when logged out).
    pub fn mirror(&self, link: Option<String>, snapshot: Option<Snapshot>) {
        let link = link.map(|l| match l.as_str() {
            "open" => LinkState::Open,
            "connecting" => LinkState::Connecting,
            "reconnecting" => LinkState::Reconnecting { attempt: 1 },
            other => LinkState::Closed(other.to_owned()),
        });
        let mut state = self.state.get_untracked();
        let (changed, changes) = match snapshot {
            Some(s) if s.seq != state.seq || state.agent.is_none() => {
                (true, state.apply_snapshot(s))
            }
            Some(_) => (false, Vec::new()),
            None if state.agent.is_some() => {
                let gone = state.contacts.keys().cloned().map(ContactChange::Destroyed);
                let gone: Vec<_> = gone.collect();
                state = ClientState::default();
                (true, gone)
            }
            None => (false, Vec::new()),
        };
        let displaced = matches!(&link, Some(LinkState::Closed(why)) if why == DISPLACED);
        if self.displaced.get_untracked() != displaced {
            self.displaced.set(displaced);
        }
        let link_changed = self.link.get_untracked() != link;
        if link_changed {
            self.link.set(link);
        }
        if changed || link_changed {
            self.state.set(state);
            self.after_change(&changes);
        }
    }

    /// Link name as the frame transport reports it.
    pub fn link_name_untracked(&self) -> &'static str {
        self.link
            .with_untracked(|l| l.as_ref().map_or("logged_out", LinkState::name))
    }

    /// Displaced by a newer session, without subscribing.
    pub fn displaced_untracked(&self) -> bool {
        self.displaced.get_untracked()
    }

    /// The state, without subscribing.
    pub fn state_untracked(&self) -> ClientState {
        self.state.get_untracked()
    }

    /// Logged in, without subscribing.
    pub fn logged_in_untracked(&self) -> bool {
        matches!(self.link.get_untracked(), Some(s) if !matches!(s, LinkState::Closed(_)))
    }

    /// After the state or link changed: tell the other tabs and the
    /// embedding page, and ring or stop ringing.
    fn after_change(&self, changes: &[ContactChange]) {
        crate::tabs::broadcast_state(*self);
        crate::embed::push(*self, changes);
        self.sync_ringer();
    }

    /// Rings for the first incoming contact, in the leading tab.
    pub fn sync_ringer(&self) {
        let lang = self.lang.get_untracked();
        let state = self.state.get_untracked();
        let incoming = state
            .contacts
            .values()
            .find(|c| matches!(c.state, ContactState::Incoming { .. }));
        let ring = incoming.map(|c| crate::ringer::Ring {
            contact_id: &c.contact_id,
            title: tr(lang, "Incoming call"),
            body: {
                let from = c
                    .initial_connection()
                    .map(|k| k.endpoint.name.clone())
                    .unwrap_or_default();
                match &c.queue {
                    Some(q) => format!("{from} · {}", q.name),
                    None => from,
                }
            },
        });
        let blocked = crate::ringer::sync(ring, self.leader.get_untracked());
        if self.sound_blocked.get_untracked() != blocked {
            self.sound_blocked.set(blocked);
        }
    }

    /// Logs in and connects.
    pub fn login(&self, username: String, password: String) {
        let ccp = *self;
        ccp.error.set(None);
        crate::ringer::ask_permission();
        spawn_local(async move {
            match web::login(&origin(), &username, &password).await {
                Ok(login) if crate::embed::is_popup() => {
                    if let Some(s) = storage() {
                        let _ = s.set_item(TOKEN_KEY, &login.token);
                    }
                    if crate::embed::hand_over_token(&login.token) {
                        ccp.notice
                            .set(Some("You are logged in. This window closes now."));
                    } else {
                        ccp.adopt_token(&login.token);
                    }
                }
                Ok(login) => ccp.adopt_token(&login.token),
                Err(e) if e.code == ErrorCode::AuthFailed => ccp.error.set(Some(
                    tr(ccp.lang.get_untracked(), "Wrong user name or password.").into(),
                )),
                Err(e) if e.code == ErrorCode::LoginThrottled => ccp.error.set(Some(
                    tr(
                        ccp.lang.get_untracked(),
                        "Too many failed attempts; wait a moment and try again.",
                    )
                    .into(),
                )),
                Err(e) => ccp.error.set(Some(format!("Cannot log in: {}", e.message))),
            }
        });
    }

    fn connect(&self, token: &str) {
        if let Some((old, sub)) = CLIENT.with(|c| c.borrow_mut().take()) {
            drop(sub);
            old.close();
        }
        let ws_url = origin().replacen("http", "ws", 1) + "/v1/ws";
        let client = DirectClient::connect(&ws_url, token);
        // The engine mixes a conference's legs itself (media-wasm legs.rs).
        client.announce(protocol::wire::CAP_MEDIA_LEGS);
        let ccp = *self;
        ccp.displaced.set(false);
        ccp.link.set(Some(LinkState::Connecting));
        let sub = client.subscribe(move |u| ccp.on_update(u));
        CLIENT.with(|c| *c.borrow_mut() = Some((client, sub)));
    }

    fn on_update(&self, update: &Update) {
        match update {
            Update::Link(l) => {
                self.link.set(Some(l.clone()));
                self.after_change(&[]);
            }
            Update::Output(Output::ServerError(e)) if e.code == ErrorCode::AuthFailed => {
                self.logout();
                self.error.set(Some(
                    tr(
                        self.lang.get_untracked(),
                        "Your session expired; log in again.",
                    )
                    .into(),
                ));
            }
            Update::Output(Output::ServerError(e)) => self.error.set(Some(e.message.clone())),
            // A reply goes to whoever asked; it changes no state.
            Update::Output(Output::Reply { .. }) => {}
            // The client already sent `refresh_token`; the page is told.
            Update::Output(o @ Output::TokenExpiring { .. }) => crate::embed::auth(o),
            Update::Output(o @ Output::TokenRefreshed { token, .. }) => {
                // Where the login lives: a reload or another tab uses it.
                if let Some(s) = storage() {
                    let _ = s.set_item(TOKEN_KEY, token);
                }
                crate::embed::auth(o);
            }
            Update::Output(Output::SessionEnded(e)) if e.code == ErrorCode::SessionReplaced => {
                self.displaced_here();
            }
            Update::Output(o @ Output::SessionEnded(e)) => {
                crate::embed::auth(o);
                // The backend already ended the login: forget it everywhere
                // without revoking it again.
                self.logout_here();
                crate::tabs::announce_logout();
                let why = if e.code == ErrorCode::TokenRevoked {
                    "You were logged out; log in again."
                } else {
                    "Your session expired; log in again."
                };
                self.error
                    .set(Some(tr(self.lang.get_untracked(), why).into()));
            }
            Update::Output(_) => {
                let current = CLIENT.with(|c| {
                    c.borrow()
                        .as_ref()
                        .map(|(client, _)| (client.clone(), client.state()))
                });
                if let Some((client, state)) = current {
                    let error = self.error;
                    crate::audio::sync(&state, &client, move |code, msg| {
                        crate::embed::softphone_error(code, &msg);
                        error.set(Some(msg));
                    });
                    let done =
                        HISTORY.with(|h| h.borrow_mut().observe(&state.contacts, web::now().0));
                    if !done.is_empty() {
                        // `Update` here is the client's enum, so call the signal trait by name.
                        leptos::prelude::Update::update(&self.history, |h| h.extend(done));
                    }
                    self.state.set(state);
                    let changes = match update {
                        Update::Output(Output::Contact(change)) => vec![change.clone()],
                        _ => Vec::new(),
                    };
                    self.after_change(&changes);
                }
            }
        }
    }

    /// Runs an op here (leading tab) or through the leading tab.
    pub async fn request(&self, op: Op) -> Result<OpResult, ErrorBody> {
        match Self::client() {
            Some(client) => client.op(op).await,
            None if self.logged_in_untracked() => {
                crate::tabs::request(serde_json::to_string(&op).unwrap_or_default()).await
            }
            None => Err(ErrorBody::new(ErrorCode::NotAuthenticated, "not logged in")),
        }
    }

    /// Runs an op given as a JSON object (from the embedding page or another
    /// tab) here or through the leading tab; the backend validates it.
    pub async fn request_raw(
        &self,
        op: serde_json::Map<String, serde_json::Value>,
    ) -> Result<OpResult, ErrorBody> {
        match Self::client() {
            Some(client) => client.op_raw(&op).await,
            None if self.logged_in_untracked() => {
                crate::tabs::request(serde_json::Value::Object(op).to_string()).await
            }
            None => Err(ErrorBody::new(ErrorCode::NotAuthenticated, "not logged in")),
        }
    }

    fn client() -> Option<DirectClient> {
        CLIENT.with(|c| c.borrow().as_ref().map(|(client, _)| client.clone()))
    }

    /// Runs an op; a failure shows as the panel's error.
    pub fn run(&self, op: Op) {
        let ccp = *self;
        ccp.error.set(None);
        spawn_local(async move {
            if let Err(e) = ccp.request(op).await {
                ccp.error.set(Some(e.message));
            }
        });
    }

    /// Runs an op and hands back its result (errors show as the panel's
    /// error and give `None`).
    pub async fn ask(&self, op: Op) -> Option<protocol::wire::OpResult> {
        match self.request(op).await {
            Ok(result) => Some(result),
            Err(e) => {
                self.error.set(Some(e.message));
                None
            }
        }
    }

    /// Logs out in every tab and revokes the login at the backend, so the
    /// token stops working everywhere (not only in this browser).
    pub fn logout(&self) {
        if let Some(token) = storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten()) {
            spawn_local(async move {
                if let Err(e) = web::logout(&origin(), &token).await {
                    web_sys::console::warn_1(&format!("logout: {}", e.message).into());
                }
            });
        }
        self.logout_here();
        crate::tabs::announce_logout();
    }

    /// The agent's session was opened elsewhere: stop the call audio and
    /// the connection, forget the (stale) contacts, keep the login, and
    /// say so instead of the panel. Followers learn it from the link name.
    fn displaced_here(&self) {
        crate::audio::stop();
        if let Some((client, sub)) = CLIENT.with(|c| c.borrow_mut().take()) {
            drop(sub);
            client.close();
        }
        self.error.set(None);
        self.displaced.set(true);
        self.link.set(Some(LinkState::Closed(DISPLACED.to_owned())));
        let gone: Vec<ContactChange> = self
            .state
            .get_untracked()
            .contacts
            .into_keys()
            .map(ContactChange::Destroyed)
            .collect();
        self.state.set(ClientState::default());
        self.after_change(&gone);
    }

    /// Takes the session back in this window (the other one is displaced
    /// in turn), with the login kept here.
    pub fn take_back(&self) {
        self.displaced.set(false);
        if self.leader.get_untracked() {
            self.resume_saved_login();
        } else {
            crate::tabs::announce_token();
        }
    }

    /// Forgets the token and closes the connection in this tab.
    pub fn logout_here(&self) {
        self.displaced.set(false);
        if let Some(s) = storage() {
            let _ = s.remove_item(TOKEN_KEY);
        }
        crate::audio::stop();
        if let Some((client, sub)) = CLIENT.with(|c| c.borrow_mut().take()) {
            drop(sub);
            client.close();
        }
        self.link.set(None);
        let gone: Vec<ContactChange> = self
            .state
            .get_untracked()
            .contacts
            .into_keys()
            .map(ContactChange::Destroyed)
            .collect();
        self.state.set(ClientState::default());
        self.after_change(&gone);
    }
}
