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
use protocol::wire::OpResult;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::state::{ClientState, ContactChange};

/// The frame protocol's version; `hello` must name it.
pub const FRAME_VERSION: u32 = 1;

/// A frame message larger than this is refused before parsing.
pub const MAX_FRAME_MESSAGE: usize = 64 * 1024;

/// What the embedding page may send. Parsed by hand ([`ToCcp::parse`]):
/// serde's derive for tagged enums buffers every message and would add
/// tens of kilobytes to the CCP's download for three small shapes.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A protocol op, run on the CCP's backend session. It is an object
    /// with a string `op` (as on the WebSocket, without `type` and `id`);
    /// the backend validates the rest and answers a bad op with a typed
    /// error, as it would any client's.
    Op {
        /// The op, exactly as on the WebSocket.
        op: Map<String, Value>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Capture.
    Microphone,
    /// Call audio out.
    Speaker,
    /// Where the ringtone plays.
    Ringer,
}

impl DeviceKind {
    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Microphone => "microphone",
            DeviceKind::Speaker => "speaker",
            DeviceKind::Ringer => "ringer",
        }
    }
}

fn fields_only(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown field `{}`",
            k.chars().take(40).collect::<String>()
        )),
        None => Ok(()),
    }
}

fn string_field(obj: &Map<String, Value>, name: &str) -> Result<String, String> {
    obj.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("`{name}` must be a string"))
}

fn u64_field(obj: &Map<String, Value>, name: &str) -> Result<u64, String> {
    obj.get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("`{name}` must be a non-negative integer"))
}

impl ToCcp {
    /// Parses one message strictly: a known kind, each field it needs with
    /// the right type, and no other field.
    pub fn parse(text: &str) -> Result<ToCcp, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let obj = value.as_object().ok_or("not a JSON object")?;
        match obj.get("kind").and_then(Value::as_str) {
            Some("hello") => {
                fields_only(obj, &["kind", "version", "nonce"])?;
                let version = u32::try_from(u64_field(obj, "version")?)
                    .map_err(|_| "`version` is out of range".to_string())?;
                Ok(ToCcp::Hello {
                    version,
                    nonce: string_field(obj, "nonce")?,
                })
            }
            Some("ping") => {
                fields_only(obj, &["kind", "nonce"])?;
                Ok(ToCcp::Ping {
                    nonce: string_field(obj, "nonce")?,
                })
            }
            Some("request") => {
                fields_only(obj, &["kind", "nonce", "id", "action"])?;
                Ok(ToCcp::Request {
                    nonce: string_field(obj, "nonce")?,
                    id: u64_field(obj, "id")?,
                    action: Action::parse(obj.get("action"))?,
                })
            }
            Some(other) => Err(format!(
                "unknown kind `{}`",
                other.chars().take(40).collect::<String>()
            )),
            None => Err("`kind` must be a string".into()),
        }
    }
}

impl Action {
    fn parse(value: Option<&Value>) -> Result<Action, String> {
        let obj = value
            .and_then(Value::as_object)
            .ok_or("`action` must be an object")?;
        match obj.get("action").and_then(Value::as_str) {
            Some("op") => {
                fields_only(obj, &["action", "op"])?;
                let op = obj
                    .get("op")
                    .and_then(Value::as_object)
                    .filter(|o| o.get("op").is_some_and(Value::is_string))
                    .filter(|o| !o.contains_key("type") && !o.contains_key("id"))
                    .ok_or("`op` must be an object with a string `op` and no `type` or `id`")?;
                Ok(Action::Op { op: op.clone() })
            }
            Some("list_devices") => {
                fields_only(obj, &["action"])?;
                Ok(Action::ListDevices)
            }
            Some("set_device") => {
                fields_only(obj, &["action", "device", "device_id"])?;
                let device = match string_field(obj, "device")?.as_str() {
                    "microphone" => DeviceKind::Microphone,
                    "speaker" => DeviceKind::Speaker,
                    "ringer" => DeviceKind::Ringer,
                    _ => return Err("`device` must be microphone, speaker or ringer".into()),
                };
                Ok(Action::SetDevice {
                    device,
                    device_id: string_field(obj, "device_id")?,
                })
            }
            Some("logout") => {
                fields_only(obj, &["action"])?;
                Ok(Action::Logout)
            }
            Some(other) => Err(format!(
                "unknown action `{}`",
                other.chars().take(40).collect::<String>()
            )),
            None => Err("`action.action` must be a string".into()),
        }
    }
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
        result: Option<Value>,
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
    /// The login's lifetime (the token itself never leaves the CCP):
    /// `token_expiring` (a refresh is under way), `token_refreshed`,
    /// `session_expired` or `token_revoked` (logged out; log in again).
    Auth {
        /// The nonce.
        nonce: String,
        /// What happened.
        event: &'static str,
        /// When the current token expires (`token_expiring`,
        /// `token_refreshed`).
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<protocol::Millis>,
        /// For people (`session_expired`, `token_revoked`).
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

impl FromCcp {
    /// The `auth` message for a session output, if it is about the login.
    pub fn auth(nonce: &str, output: &crate::Output) -> Option<FromCcp> {
        let (event, expires_at, message) = match output {
            crate::Output::TokenExpiring { expires_at, .. } => {
                ("token_expiring", Some(*expires_at), None)
            }
            crate::Output::TokenRefreshed { expires_at, .. } => {
                ("token_refreshed", Some(*expires_at), None)
            }
            crate::Output::SessionEnded(e) => (
                if e.code == protocol::error::ErrorCode::TokenRevoked {
                    "token_revoked"
                } else {
                    "session_expired"
                },
                None,
                Some(e.message.clone()),
            ),
            _ => return None,
        };
        Some(FromCcp::Auth {
            nonce: nonce.to_owned(),
            event,
            expires_at,
            message,
        })
    }
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

/// A contact change, with the SDK events it fires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangePush {
    /// `incoming`, `connecting`, `connected`, `missed`, `ended`, `refresh`
    /// or `destroyed`.
    pub change: &'static str,
    /// The contact.
    pub contact_id: String,
    /// The SDK events to fire for it, in order (`accepted`, `connected`,
    /// `afterCallWork`...): named here, from [`ContactChange::events`], so
    /// the SDK does not re-derive them.
    pub events: &'static [&'static str],
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
        let contacts = state.contacts_oldest_first();
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
        ChangePush {
            change: c.name(),
            contact_id: c.contact_id().to_owned(),
            events: c.events(),
        }
    }
}

/// An op's outcome as the JSON a response carries. Through text rather
/// than `to_value`: the CCP already serialises results to text (for other
/// tabs), and one serialiser is less code to download.
pub fn op_outcome_json(outcome: Result<OpResult, ErrorBody>) -> Result<Value, ErrorBody> {
    outcome.map(|r| {
        serde_json::to_string(&r)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    })
}

impl FromCcp {
    /// The response to request `id`.
    pub fn response(nonce: &str, id: u64, outcome: Result<Value, ErrorBody>) -> Self {
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
        FromCcp::response(nonce, id, op_outcome_json(outcome))
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

/// The session handshake and nonce check, one implementation for both
/// transports: the CCP's [`FrameHost`] (behind its window and origin
/// checks) and the direct core (`js.rs`), whose messages come from the
/// page's own SDK. A valid `hello` of the right version opens (or
/// re-opens) the session with its nonce; every other message must carry
/// that nonce, or it is refused.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    nonce: Option<String>,
}

impl Handshake {
    /// The session's nonce, once a `hello` opened it.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// Judges one message's text: size, shape, version, nonce.
    pub fn receive(&mut self, data: &str) -> Result<Accepted, Rejection> {
        if data.len() > MAX_FRAME_MESSAGE {
            return Err(Rejection::BadShape(format!(
                "{} bytes is too large",
                data.len()
            )));
        }
        let msg = ToCcp::parse(data).map_err(Rejection::BadShape)?;
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

/// The CCP side of the frame transport: the window and origin checks, the
/// origin binding, then the shared [`Handshake`].
#[derive(Debug, Clone)]
pub struct FrameHost {
    approved: Vec<String>,
    /// The origin of the page that opened the session; fixed once set.
    bound: Option<String>,
    handshake: Handshake,
}

impl FrameHost {
    /// A host that accepts sessions from `approved` origins.
    pub fn new(approved: Vec<String>) -> FrameHost {
        FrameHost {
            approved,
            bound: None,
            handshake: Handshake::default(),
        }
    }

    /// The origin messages go to, once a session is open.
    pub fn target_origin(&self) -> Option<&str> {
        self.handshake.nonce().and(self.bound.as_deref())
    }

    /// The session's nonce.
    pub fn nonce(&self) -> Option<&str> {
        self.handshake.nonce()
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
        let accepted = self.handshake.receive(data)?;
        if matches!(accepted, Accepted::Opened(_)) {
            self.bound = Some(origin.to_owned());
        }
        Ok(accepted)
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
        let Accepted::Request {
            id: 7,
            action: Action::Op { op },
        } = h.receive(CRM, true, Some(&req)).expect("request accepted")
        else {
            panic!("expected request 7 with an op");
        };
        assert_eq!(op["op"], "accept");
        assert_eq!(op["contact_id"], "c-1");
        let device = format!(
            r#"{{"kind":"request","nonce":"{NONCE}","id":8,"action":{{"action":"set_device","device":"ringer","device_id":"x"}}}}"#
        );
        assert_eq!(
            h.receive(CRM, true, Some(&device))
                .expect("device accepted"),
            Accepted::Request {
                id: 8,
                action: Action::SetDevice {
                    device: DeviceKind::Ringer,
                    device_id: "x".into()
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
            r#"{"kind":"request","nonce":"0123456789abcdef","id":1,"action":{"action":"op","op":5}}"#,
            r#"{"kind":"request","nonce":"0123456789abcdef","id":1,"action":{"action":"op","op":{"contact_id":"c"}}}"#,
            r#"{"kind":"request","nonce":"0123456789abcdef","id":1,"action":{"action":"op","op":{"op":"ping","type":"hello"}}}"#,
            r#"{"kind":"request","nonce":"0123456789abcdef","id":1,"action":{"action":"set_device","device":"tv","device_id":""}}"#,
            r#"{"kind":"request","nonce":"0123456789abcdef","id":1,"action":{"action":"explode"}}"#,
            r#"{"kind":"request","nonce":"0123456789abcdef","id":-1,"action":{"action":"logout"}}"#,
            r#"{"kind":"hello","version":4294967296,"nonce":"0123456789abcdef"}"#,
            "[]",
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

    /// Frame mode (the CCP's host) and direct mode (the core in the page)
    /// share one handshake: a message with a missing or wrong nonce, or
    /// before any `hello`, is refused by both, and changes nothing.
    #[test]
    fn both_modes_refuse_a_missing_or_wrong_nonce() {
        let mut frame = host();
        let mut direct = Handshake::default();
        type Receive = Box<dyn FnMut(&str) -> Result<Accepted, Rejection>>;
        let mut modes: [(&str, Receive); 2] = [
            (
                "frame",
                Box::new(move |m| frame.receive(CRM, true, Some(m))),
            ),
            ("direct", Box::new(move |m| direct.receive(m))),
        ];
        let ping = |n: &str| format!(r#"{{"kind":"ping","nonce":"{n}"}}"#);
        let request = |n: &str| {
            format!(r#"{{"kind":"request","nonce":"{n}","id":7,"action":{{"action":"logout"}}}}"#)
        };
        for (mode, receive) in &mut modes {
            assert_eq!(receive(&ping(NONCE)), Err(Rejection::NoSession), "{mode}");
            assert_eq!(
                receive(&request(NONCE)),
                Err(Rejection::NoSession),
                "{mode}"
            );
            assert!(
                matches!(receive(&hello(NONCE, 1)), Ok(Accepted::Opened(_))),
                "{mode}"
            );
            for wrong in ["ffffffffffffffff", "", "0123456789abcdeF"] {
                assert_eq!(
                    receive(&ping(wrong)),
                    Err(Rejection::WrongNonce),
                    "{mode} {wrong}"
                );
                assert_eq!(
                    receive(&request(wrong)),
                    Err(Rejection::WrongNonce),
                    "{mode} {wrong}"
                );
            }
            let missing = [
                r#"{"kind":"ping"}"#,
                r#"{"kind":"request","id":7,"action":{"action":"logout"}}"#,
                r#"{"kind":"ping","nonce":7}"#,
            ];
            for m in missing {
                assert!(
                    matches!(receive(m), Err(Rejection::BadShape(_))),
                    "{mode} {m}"
                );
            }
            assert!(
                matches!(receive(&ping(NONCE)), Ok(Accepted::Ping(_))),
                "{mode}"
            );
            assert!(
                matches!(
                    receive(&request(NONCE)),
                    Ok(Accepted::Request {
                        id: 7,
                        action: Action::Logout
                    })
                ),
                "{mode}"
            );
        }
    }
}
