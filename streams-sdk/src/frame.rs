//! The *frame* transport's wire and its gatekeeper, on the CCP's side.
//!
//! A CRM page embeds the CCP in an iframe and scripts it with
//! `window.postMessage`. Every message is a JSON string. The page's SDK
//! opens with `hello` (protocol version and a fresh nonce); the CCP answers
//! with its own `hello` echoing the nonce, and from then on both sides put
//! the nonce on every message. The CCP then pushes `state` (the agent, the
//! contacts and the Streams-style changes since the last push) and answers
//! each `request` with a `response` carrying the same id.
//!
//! [`FrameHost`] decides, without touching the browser, whether a message
//! event may be acted on: it must come from the parent window, from an
//! approved origin (the first valid `hello` binds that origin for the life of
//! the frame), have the right shape and carry the session's nonce. Anything
//! else is rejected with a typed reason that the CCP logs and otherwise
//! ignores. Messages the CCP sends go only to the bound origin, never `*`.

use protocol::contact::ContactView;
use protocol::error::ErrorBody;
use protocol::wire::{Op, OpResult};
use serde::{Deserialize, Serialize};

use crate::state::{ClientState, ContactChange};

/// The frame protocol's version; `hello` must name it.
pub const FRAME_VERSION: u32 = 1;

/// A frame message larger than this is refused before parsing.
pub const MAX_FRAME_MESSAGE: usize = 64 * 1024;

/// What the embedding page may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToCcp {
    /// Opens (or re-opens) the session.
    Hello {
        /// The frame protocol version the SDK speaks.
        version: u32,
        /// A fresh random string the SDK made for this session.
        nonce: String,
    },
    /// Keepalive; answered with `pong`.
    Ping {
        /// The session's nonce.
        nonce: String,
    },
    /// An action; answered with a `response` with the same id.
    Request {
        /// The session's nonce.
        nonce: String,
        /// Chosen by the SDK; echoed.
        id: u64,
        /// What to do.
        action: Action,
    },
}

/// The actions a page can ask the CCP for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// A protocol op, run on the CCP's backend session.
    Op {
        /// The op, exactly as on the WebSocket.
        op: Op,
    },
    /// The audio devices the browser offers (ids and labels).
    ListDevices,
    /// Chooses the microphone, speaker or ringer.
    SetDevice {
        /// `microphone`, `speaker` or `ringer`.
        device: DeviceKind,
        /// A `deviceId` from `list_devices`; empty for the default.
        device_id: String,
    },
    /// Logs the agent out of the CCP.
    Logout,
}

/// Which audio device a choice is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// Capture.
    Microphone,
    /// Call audio out.
    Speaker,
    /// Where the ringtone plays.
    Ringer,
}

/// What the CCP sends to the embedding page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FromCcp {
    /// The handshake's answer.
    Hello {
        /// The version the CCP speaks.
        version: u32,
        /// The SDK's nonce, echoed.
        nonce: String,
        /// Whether an agent is logged in.
        logged_in: bool,
    },
    /// The SDK's `hello` named a version the CCP does not speak.
    HelloRefused {
        /// The SDK's nonce, echoed.
        nonce: String,
        /// Why.
        reason: String,
        /// The versions the CCP speaks.
        versions: Vec<u32>,
    },
    /// Keepalive answer.
    Pong {
        /// The nonce.
        nonce: String,
    },
    /// An action's outcome: `result` or `error`.
    Response {
        /// The nonce.
        nonce: String,
        /// The request's id.
        id: u64,
        /// On success (an op result, or an action's own value).
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<serde_json::Value>,
        /// On failure.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    },
    /// The agent's world, pushed whenever it changes.
    State(Box<StatePush>),
    /// The softphone's audio failed (microphone denied or removed, engine
    /// failed to start); the call itself goes on.
    SoftphoneError {
        /// The nonce.
        nonce: String,
        /// `microphone_denied`, `microphone_missing`, `microphone_removed`,
        /// `engine_failed`...
        code: String,
        /// For people.
        message: String,
    },
}

/// One `state` message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatePush {
    /// The nonce.
    pub nonce: String,
    /// `logged_out`, `connecting`, `open`, `reconnecting` or `closed`.
    pub link: &'static str,
    /// Whether this tab's CCP owns the softphone (rings, plays audio).
    pub leader: bool,
    /// The agent, once known.
    pub agent: Option<AgentPush>,
    /// Every contact, oldest first.
    pub contacts: Vec<ContactView>,
    /// What happened to contacts since the previous push.
    pub changes: Vec<ChangePush>,
}

/// The agent part of a push.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentPush {
    /// Status, with the next state if one is pending.
    pub status: protocol::agent::AgentStatusView,
    /// Whether the microphone is muted.
    pub muted: bool,
    /// Name, routing profile, wrap-up codes...
    pub configuration: protocol::wire::AgentConfiguration,
    /// The states the agent may choose.
    pub states: Vec<protocol::AgentState>,
}

/// A contact change, named as the SDK names its events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangePush {
    /// `incoming`, `connecting`, `connected`, `missed`, `ended`, `refresh`
    /// or `destroyed`.
    pub change: &'static str,
    /// The contact.
    pub contact_id: String,
}

impl StatePush {
    /// The push for `state`, with `changes` named.
    pub fn new(
        nonce: &str,
        link: &'static str,
        leader: bool,
        state: &ClientState,
        changes: &[ContactChange],
    ) -> StatePush {
        let mut contacts: Vec<ContactView> = state.contacts.values().cloned().collect();
        contacts.sort_by_key(|c| c.created_at);
        StatePush {
            nonce: nonce.to_owned(),
            link,
            leader,
            agent: state.agent.as_ref().map(|a| AgentPush {
                status: a.status.clone(),
                muted: a.muted,
                configuration: a.configuration.clone(),
                states: a.states.clone(),
            }),
            contacts,
            changes: changes.iter().map(ChangePush::from).collect(),
        }
    }
}

impl From<&ContactChange> for ChangePush {
    fn from(c: &ContactChange) -> ChangePush {
        let (change, id) = match c {
            ContactChange::Incoming(v) => ("incoming", &v.contact_id),
            ContactChange::Connecting(v) => ("connecting", &v.contact_id),
            ContactChange::Connected(v) => ("connected", &v.contact_id),
            ContactChange::Missed(v) => ("missed", &v.contact_id),
            ContactChange::Ended(v) => ("ended", &v.contact_id),
            ContactChange::Refreshed(v) => ("refresh", &v.contact_id),
            ContactChange::Destroyed(id) => ("destroyed", id),
        };
        ChangePush {
            change,
            contact_id: id.clone(),
        }
    }
}

impl FromCcp {
    /// The response to request `id`.
    pub fn response(nonce: &str, id: u64, outcome: Result<serde_json::Value, ErrorBody>) -> Self {
        let (result, error) = match outcome {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        FromCcp::Response {
            nonce: nonce.to_owned(),
            id,
            result,
            error,
        }
    }

    /// The response to an op.
    pub fn op_response(nonce: &str, id: u64, outcome: Result<OpResult, ErrorBody>) -> Self {
        let outcome = outcome.map(|r| serde_json::to_value(r).unwrap_or(serde_json::Value::Null));
        FromCcp::response(nonce, id, outcome)
    }

    /// As JSON text for `postMessage`.
    pub fn to_json(&self) -> String {
        // Every field is a plain string, number, map or list: this cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why a message event was not acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The event's source is not the window that framed the CCP.
    #[error("the message did not come from the parent window")]
    NotFromParent,
    /// The sender's origin is not on the allow-list.
    #[error("origin {0} is not approved")]
    OriginNotApproved(String),
    /// A session is bound to another origin.
    #[error("origin {0} is not the origin that opened this session")]
    OriginMismatch(String),
    /// Not a JSON string, too large, or not one of the message kinds.
    #[error("malformed message: {0}")]
    BadShape(String),
    /// A request or ping before a successful `hello`.
    #[error("no session: send hello first")]
    NoSession,
    /// The nonce is not this session's.
    #[error("wrong nonce")]
    WrongNonce,
}

/// What an accepted message asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// A valid `hello` of the right version opened a session: answer with
    /// `reply` and push the state.
    Opened(FromCcp),
    /// A `hello` of another version: send `reply`, nothing else changed.
    Refused(FromCcp),
    /// Answer a ping.
    Ping(FromCcp),
    /// Run this action and answer request `id`.
    Request {
        /// The id to answer.
        id: u64,
        /// What to do.
        action: Action,
    },
}

/// The CCP side of the frame transport: origin binding and session nonce.
#[derive(Debug, Clone)]
pub struct FrameHost {
    approved: Vec<String>,
    /// The origin of the page that opened the session; fixed once set.
    bound: Option<String>,
    nonce: Option<String>,
}

impl FrameHost {
    /// A host that accepts sessions from `approved` origins.
    pub fn new(approved: Vec<String>) -> FrameHost {
        FrameHost {
            approved,
            bound: None,
            nonce: None,
        }
    }

    /// The origin messages go to, once a session is open.
    pub fn target_origin(&self) -> Option<&str> {
        self.nonce.as_ref().and(self.bound.as_deref())
    }

    /// The session's nonce.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// Judges one message event: `from_parent` is whether its source is
    /// `window.parent`; `data` is its payload if it was a string.
    pub fn receive(
        &mut self,
        origin: &str,
        from_parent: bool,
        data: Option<&str>,
    ) -> Result<Accepted, Rejection> {
        if !from_parent {
            return Err(Rejection::NotFromParent);
        }
        if !self.approved.iter().any(|o| o == origin) {
            return Err(Rejection::OriginNotApproved(origin.to_owned()));
        }
        if let Some(bound) = &self.bound {
            if bound != origin {
                return Err(Rejection::OriginMismatch(origin.to_owned()));
            }
        }
        let data = data.ok_or_else(|| Rejection::BadShape("not a string".into()))?;
        if data.len() > MAX_FRAME_MESSAGE {
            return Err(Rejection::BadShape(format!(
                "{} bytes is too large",
                data.len()
            )));
        }
        let msg: ToCcp =
            serde_json::from_str(data).map_err(|e| Rejection::BadShape(e.to_string()))?;
        match msg {
            ToCcp::Hello { version, nonce } => {
                if nonce.len() < 16 || nonce.len() > 128 {
                    return Err(Rejection::BadShape(
                        "nonce must be 16 to 128 characters".into(),
                    ));
                }
                if version != FRAME_VERSION {
                    return Ok(Accepted::Refused(FromCcp::HelloRefused {
                        nonce,
                        reason: format!("frame protocol version {version} is not supported"),
                        versions: vec![FRAME_VERSION],
                    }));
                }
                self.bound = Some(origin.to_owned());
                self.nonce = Some(nonce.clone());
                Ok(Accepted::Opened(FromCcp::Hello {
                    version: FRAME_VERSION,
                    nonce,
                    logged_in: false,
                }))
            }
            ToCcp::Ping { nonce } => {
                self.check_nonce(&nonce)?;
                Ok(Accepted::Ping(FromCcp::Pong { nonce }))
            }
            ToCcp::Request { nonce, id, action } => {
                self.check_nonce(&nonce)?;
                Ok(Accepted::Request { id, action })
            }
        }
    }

    fn check_nonce(&self, nonce: &str) -> Result<(), Rejection> {
        match &self.nonce {
            None => Err(Rejection::NoSession),
            Some(n) if n == nonce => Ok(()),
            Some(_) => Err(Rejection::WrongNonce),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRM: &str = "https://crm.example";
    const NONCE: &str = "0123456789abcdef";

    fn host() -> FrameHost {
        FrameHost::new(vec![CRM.into(), "https://other.example".into()])
    }

    fn hello(nonce: &str, version: u32) -> String {
        format!(r#"{{"kind":"hello","version":{version},"nonce":"{nonce}"}}"#)
    }

    fn open(h: &mut FrameHost) {
        let got = h
            .receive(CRM, true, Some(&hello(NONCE, 1)))
            .expect("hello accepted");
        assert!(
            matches!(got, Accepted::Opened(FromCcp::Hello { ref nonce, .. }) if nonce == NONCE)
        );
    }

    #[test]
    fn hello_binds_origin_and_nonce() {
        let mut h = host();
        assert_eq!(h.target_origin(), None);
        open(&mut h);
        assert_eq!(h.target_origin(), Some(CRM));
        assert_eq!(h.nonce(), Some(NONCE));
        let req = format!(
            r#"{{"kind":"request","nonce":"{NONCE}","id":7,"action":{{"action":"op","op":{{"op":"accept","contact_id":"c-1"}}}}}}"#
        );
        assert_eq!(
            h.receive(CRM, true, Some(&req)).expect("request accepted"),
            Accepted::Request {
                id: 7,
                action: Action::Op {
                    op: Op::Accept {
                        contact_id: "c-1".into()
                    }
                }
            }
        );
    }

    #[test]
    fn other_windows_and_origins_are_rejected_without_changing_the_session() {
        let mut h = host();
        assert_eq!(
            h.receive(CRM, false, Some(&hello(NONCE, 1))),
            Err(Rejection::NotFromParent)
        );
        assert_eq!(
            h.receive("https://evil.example", true, Some(&hello(NONCE, 1))),
            Err(Rejection::OriginNotApproved("https://evil.example".into()))
        );
        assert_eq!(h.target_origin(), None);
        open(&mut h);
        // Another approved origin cannot take over a bound session.
        assert_eq!(
            h.receive(
                "https://other.example",
                true,
                Some(&hello("ffffffffffffffff", 1))
            ),
            Err(Rejection::OriginMismatch("https://other.example".into()))
        );
        assert_eq!(h.nonce(), Some(NONCE));
        assert_eq!(h.target_origin(), Some(CRM));
    }

    #[test]
    fn wrong_shapes_and_nonces_are_rejected() {
        let mut h = host();
        let ping = format!(r#"{{"kind":"ping","nonce":"{NONCE}"}}"#);
        assert_eq!(h.receive(CRM, true, Some(&ping)), Err(Rejection::NoSession));
        open(&mut h);
        for bad in [
            "not json",
            "{}",
            r#"{"kind":"launch"}"#,
            r#"{"kind":"ping"}"#,
            r#"{"kind":"ping","nonce":"0123456789abcdef","extra":1}"#,
            r#"{"kind":"request","nonce":"0123456789abcdef","id":1,"action":{"action":"op","op":{"op":"explode"}}}"#,
            r#"{"kind":"request","nonce":"0123456789abcdef","id":-1,"action":{"action":"logout"}}"#,
        ] {
            assert!(
                matches!(h.receive(CRM, true, Some(bad)), Err(Rejection::BadShape(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            h.receive(CRM, true, None),
            Err(Rejection::BadShape(_))
        ));
        let huge = format!(
            r#"{{"kind":"ping","nonce":"{}"}}"#,
            "a".repeat(MAX_FRAME_MESSAGE)
        );
        assert!(matches!(
            h.receive(CRM, true, Some(&huge)),
            Err(Rejection::BadShape(_))
        ));
        let forged = r#"{"kind":"ping","nonce":"ffffffffffffffff"}"#;
        assert_eq!(
            h.receive(CRM, true, Some(forged)),
            Err(Rejection::WrongNonce)
        );
        let short = hello("short", 1);
        assert!(matches!(
            h.receive(CRM, true, Some(&short)),
            Err(Rejection::BadShape(_))
        ));
        assert_eq!(h.nonce(), Some(NONCE));
    }

    #[test]
    fn another_version_is_refused_and_changes_nothing() {
        let mut h = host();
        let got = h
            .receive(CRM, true, Some(&hello(NONCE, 9)))
            .expect("answered");
        let Accepted::Refused(FromCcp::HelloRefused { versions, .. }) = got else {
            panic!("expected a refusal, got {got:?}");
        };
        assert_eq!(versions, vec![FRAME_VERSION]);
        assert_eq!(h.target_origin(), None);
        assert_eq!(h.nonce(), None);
    }

    #[test]
    fn responses_and_state_serialize_as_documented() {
        let ok = FromCcp::op_response(NONCE, 3, Ok(OpResult::Ack));
        let v: serde_json::Value = serde_json::from_str(&ok.to_json()).expect("valid JSON");
        assert_eq!(v["kind"], "response");
        assert_eq!(v["id"], 3);
        assert_eq!(v["result"]["kind"], "ack");
        assert!(v.get("error").is_none());
        let err = FromCcp::op_response(
            NONCE,
            4,
            Err(ErrorBody::new(
                protocol::error::ErrorCode::NotFound,
                "no such contact",
            )),
        );
        let v: serde_json::Value = serde_json::from_str(&err.to_json()).expect("valid JSON");
        assert_eq!(v["error"]["code"], "not_found");
        let state = ClientState::default();
        let push = FromCcp::State(Box::new(StatePush::new(
            NONCE,
            "open",
            true,
            &state,
            &[ContactChange::Destroyed("c-9".into())],
        )));
        let v: serde_json::Value = serde_json::from_str(&push.to_json()).expect("valid JSON");
        assert_eq!(v["kind"], "state");
        assert_eq!(v["leader"], true);
        assert_eq!(v["changes"][0]["change"], "destroyed");
        assert_eq!(v["changes"][0]["contact_id"], "c-9");
    }
}
