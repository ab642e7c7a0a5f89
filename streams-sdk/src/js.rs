//! The *direct* transport for JavaScript: this crate's client core, built
//! to wasm (feature `js-core`), driven by the JS SDK's `initDirect`.
//!
//! It speaks exactly the frame transport's messages (`frame.rs`): the JS
//! `Session` posts `hello`, `ping` and `request` as JSON text and receives
//! `hello`, `pong`, `response` and `state`, as it would from a CCP iframe.
//! So both transports share one JS API and one Rust core: the difference
//! is only that here the core runs in the page itself, with a WebSocket to
//! the backend and no audio (a direct session is not a softphone: it never
//! leads, rings or plays a call).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use protocol::error::{ErrorBody, ErrorCode};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use crate::frame::{op_outcome_json, Accepted, Action, FromCcp, Handshake, StatePush};
use crate::web::{self, DirectClient, Subscription, Update};
use crate::{ContactChange, Output};

/// Logs in at `base` (`http://host:port`); resolves with the token or
/// rejects with `{ code, message }`.
#[wasm_bindgen(js_name = login)]
pub async fn js_login(base: String, username: String, password: String) -> Result<String, JsValue> {
    match web::login(&base, &username, &password).await {
        Ok(login) => Ok(login.token),
        Err(e) => Err(error_object(&e)),
    }
}

fn error_object(e: &ErrorBody) -> JsValue {
    let text = serde_json::to_string(e).unwrap_or_default();
    js_sys::JSON::parse(&text).unwrap_or_else(|_| JsValue::from_str(&e.message))
}

struct Core {
    client: DirectClient,
    /// The backend's HTTP base (`http://host:port`), for logout.
    base: String,
    subscription: RefCell<Option<Subscription>>,
    /// The same handshake and nonce check as the CCP's frame host.
    handshake: RefCell<Handshake>,
    deliver: js_sys::Function,
}

impl Core {
    fn nonce(&self) -> Option<String> {
        self.handshake.borrow().nonce().map(str::to_owned)
    }

    fn send(&self, msg: &FromCcp) {
        let _ = self
            .deliver
            .call1(&JsValue::NULL, &JsValue::from_str(&msg.to_json()));
    }

    fn push(&self, changes: &[ContactChange]) {
        let Some(nonce) = self.nonce() else {
            return;
        };
        let state = self.client.state();
        let link = self.client.link().name();
        self.send(&FromCcp::State(Box::new(StatePush::new(
            &nonce, link, false, &state, changes,
        ))));
    }

    fn on_update(&self, update: &Update) {
        match update {
            Update::Output(Output::Contact(change)) => self.push(std::slice::from_ref(change)),
            Update::Output(Output::Reply { .. }) => {}
            Update::Output(
                o @ (Output::TokenExpiring { .. }
                | Output::TokenRefreshed { .. }
                | Output::SessionEnded(_)),
            ) => {
                let nonce = self.nonce();
                if let Some(msg) = nonce.and_then(|n| FromCcp::auth(&n, o)) {
                    self.send(&msg);
                }
            }
            _ => self.push(&[]),
        }
    }
}

/// The client core for one agent, connected straight to a backend.
#[wasm_bindgen]
pub struct DirectCore {
    core: Rc<Core>,
}

#[wasm_bindgen]
impl DirectCore {
    /// Connects to `ws_url` with `token`; `deliver` receives every message
    /// for the SDK as JSON text.
    #[wasm_bindgen(constructor)]
    pub fn new(ws_url: &str, token: &str, deliver: js_sys::Function) -> DirectCore {
        // `ws://host/v1/ws` -> `http://host` (and wss -> https).
        let base = ws_url
            .replacen("ws", "http", 1)
            .trim_end_matches("/v1/ws")
            .to_owned();
        let core = Rc::new(Core {
            client: DirectClient::connect(ws_url, token),
            base,
            subscription: RefCell::new(None),
            handshake: RefCell::new(Handshake::default()),
            deliver,
        });
        let weak: Weak<Core> = Rc::downgrade(&core);
        let subscription = core.client.subscribe(move |u| {
            if let Some(core) = weak.upgrade() {
                core.on_update(u);
            }
        });
        *core.subscription.borrow_mut() = Some(subscription);
        DirectCore { core }
    }

    /// Takes one message from the SDK (JSON text). It is judged by the
    /// frame host's own [`Handshake`]: malformed messages, and messages
    /// without this session's nonce, are logged and dropped.
    pub fn post(&self, text: &str) {
        let core = &self.core;
        let verdict = core.handshake.borrow_mut().receive(text);
        match verdict {
            Err(e) => {
                web_sys::console::warn_1(&format!("[switchboard core] dropped: {e}").into());
            }
            Ok(Accepted::Opened(FromCcp::Hello { version, nonce, .. })) => {
                core.send(&FromCcp::Hello {
                    version,
                    nonce,
                    logged_in: true,
                });
                core.push(&[]);
            }
            Ok(Accepted::Opened(reply) | Accepted::Refused(reply) | Accepted::Ping(reply)) => {
                core.send(&reply);
            }
            Ok(Accepted::Request { id, action }) => {
                let core = core.clone();
                spawn_local(async move {
                    let outcome = run(&core, action).await;
                    // The nonce of the session that is open when it ends.
                    if let Some(nonce) = core.nonce() {
                        core.send(&FromCcp::response(&nonce, id, outcome));
                    }
                });
            }
        }
    }

    /// Closes the connection for good.
    pub fn close(&self) {
        self.core.client.close();
    }
}

async fn run(core: &Core, action: Action) -> Result<serde_json::Value, ErrorBody> {
    match action {
        Action::Op { op } => op_outcome_json(core.client.op_raw(&op).await),
        Action::Logout => {
            let token = core.client.token();
            core.client.close();
            // Revoke the login at the backend too; the socket is already
            // closed here, so a failure only leaves the token to expire.
            let base = core.base.clone();
            let _ = web::logout(&base, &token).await;
            Ok(serde_json::json!({ "kind": "ack" }))
        }
        Action::ListDevices | Action::SetDevice { .. } => Err(ErrorBody::new(
            ErrorCode::InvalidState,
            "a direct session has no softphone: audio devices are the CCP's",
        )),
    }
}
