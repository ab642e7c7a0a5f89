//! The frames on the socket. Text frames carry one JSON object with a
//! `type`; the client sends `hello` and `request`, the server answers with
//! `welcome`, `snapshot`, `response`, `event` and `error`.
//!
//! Decoding goes through [`decode_client_frame`] / [`decode_server_frame`],
//! which never panic and tell apart bad JSON, an unknown type, an unknown
//! op and a malformed known op, keeping the request id when there is one so
//! the error can be correlated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::{AgentState, AgentStatusView};
use crate::contact::{ContactView, QueueRef};
use crate::endpoint::Endpoint;
use crate::error::{ErrorBody, ErrorCode};
use crate::MAX_TEXT_FRAME;

/// A frame from client to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// First frame: versions offered, the login token, and an optional resume.
    Hello(Hello),
    /// An operation with a correlation id.
    Request(Request),
}

/// The opening frame of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol versions the client speaks.
    pub versions: Vec<u32>,
    /// The token from `POST /v1/login`.
    pub token: String,
    /// Set when reconnecting: resume the event stream after `last_seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeFrom>,
    /// Optional features the client supports (e.g. [`CAP_MEDIA_LEGS`]);
    /// the server ignores names it does not know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Media packet durations, in ms, the client can send (10 and/or 20),
    /// most preferred first; empty (absent) means 20 ms only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packet_ms: Vec<u32>,
    /// Codecs the client's engine decodes and encodes besides Opus
    /// (`"pcmu"`, `"pcma"`); empty (absent) means Opus only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codecs: Vec<String>,
}

/// The codecs besides Opus a server takes from a `hello`'s `codecs`:
/// those it knows, in the client's order, without repeats (names it does
/// not know are ignored, like unknown capabilities).
pub fn choose_codecs(offered: &[String]) -> Vec<crate::media::Codec> {
    let mut out = Vec::new();
    for c in offered
        .iter()
        .filter_map(|n| crate::media::Codec::from_name(n))
    {
        if c != crate::media::Codec::Opus && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The media packet duration a server grants from a `hello`'s
/// `packet_ms` offer, ms: the client's first choice among those the
/// protocol allows (10, 20), `None` when it offered none (20 ms then).
pub fn choose_packet_ms(offered: &[u32]) -> Option<u32> {
    offered.iter().copied().find(|ms| *ms == 10 || *ms == 20)
}

/// Capability: the client's audio engine receives several media legs at
/// once and mixes them itself, so in a conference the backend forwards
/// each talker on its own leg instead of sending a mix.
pub const CAP_MEDIA_LEGS: &str = "media_legs";

/// Where a reconnecting client left off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeFrom {
    /// The `session` from the previous `welcome`.
    pub session: String,
    /// The last event `seq` the client applied.
    pub last_seq: u64,
}

/// A request; exactly one `response` with the same id follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client, unique per connection.
    pub id: u64,
    /// The operation and its arguments.
    #[serde(flatten)]
    pub op: Op,
}

/// Every operation a client can ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Liveness check.
    Ping,
    /// The whole current state (agent and contacts).
    GetSnapshot,
    /// The agent's current status.
    GetAgentState,
    /// Choose a state by name; during a contact it becomes the next state.
    SetAgentState {
        /// A name from `list_agent_states`.
        state: String,
    },
    /// The agent's configuration.
    GetAgentConfiguration,
    /// The states the agent may choose.
    ListAgentStates,
    /// The agent's routing profile and its queues.
    GetRoutingProfile,
    /// Quick connects: agents, queues, numbers.
    ListQuickConnects,
    /// Place an outbound call.
    Connect {
        /// Where to.
        endpoint: Endpoint,
    },
    /// Accept a ringing contact.
    Accept {
        /// Which.
        contact_id: String,
    },
    /// Reject a ringing contact.
    Reject {
        /// Which.
        contact_id: String,
    },
    /// Leave after-call work (or dismiss a missed/rejected contact).
    Clear {
        /// Which.
        contact_id: String,
        /// An optional wrap-up code from the agent configuration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wrap_up_code: Option<String>,
    },
    /// Put a connection on hold.
    Hold {
        /// The contact.
        contact_id: String,
        /// The connection to hold.
        connection_id: String,
    },
    /// Take a connection off hold.
    Resume {
        /// The contact.
        contact_id: String,
        /// The connection to resume.
        connection_id: String,
    },
    /// Stop sending the agent's microphone.
    Mute,
    /// Send it again.
    Unmute,
    /// Send DTMF digits on a connection.
    SendDigits {
        /// The contact.
        contact_id: String,
        /// The connection the digits go to.
        connection_id: String,
        /// `0-9 * # A-D ,`.
        digits: String,
    },
    /// Add a third party (consult or transfer); the customer goes on hold.
    AddConnection {
        /// The contact.
        contact_id: String,
        /// Who to add.
        endpoint: Endpoint,
    },
    /// Join every active connection.
    Conference {
        /// The contact.
        contact_id: String,
    },
    /// Swap which of two connections is on hold.
    Toggle {
        /// The contact.
        contact_id: String,
    },
    /// Hang up a connection; the agent's own connection means leaving.
    EndConnection {
        /// The contact.
        contact_id: String,
        /// The connection.
        connection_id: String,
    },
    /// Read contact attributes.
    GetAttributes {
        /// The contact.
        contact_id: String,
    },
    /// Set or overwrite contact attributes.
    UpdateAttributes {
        /// The contact.
        contact_id: String,
        /// Keys and values to set.
        attributes: BTreeMap<String, String>,
    },
    /// A new token for this login, before the current one expires; this
    /// socket then lives until the new token's `expires_at`.
    RefreshToken,
    /// A single-use ticket for a media-only socket (`GET` the `path` it
    /// names as a WebSocket and send the ticket first): media frames then
    /// go over that socket, opened by a Worker, off the page's main thread.
    MediaSocket,
}

/// The wire names of every op, for telling unknown ops from malformed ones.
pub const OP_NAMES: &[&str] = &[
    "ping",
    "get_snapshot",
    "get_agent_state",
    "set_agent_state",
    "get_agent_configuration",
    "list_agent_states",
    "get_routing_profile",
    "list_quick_connects",
    "connect",
    "accept",
    "reject",
    "clear",
    "hold",
    "resume",
    "mute",
    "unmute",
    "send_digits",
    "add_connection",
    "conference",
    "toggle",
    "end_connection",
    "get_attributes",
    "update_attributes",
    "refresh_token",
    "media_socket",
];

/// A frame from server to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The answer to a successful `hello`.
    Welcome(Welcome),
    /// The full state; events after it continue from its `seq`.
    Snapshot(Snapshot),
    /// The answer to a request.
    Response(Response),
    /// A state change.
    Event(EventFrame),
    /// A frame-level error (bad JSON, unknown type, not authenticated...).
    Error(FrameError),
    /// The token this socket authenticated with expires soon: send
    /// `refresh_token`, or the socket closes with `session_expired`.
    TokenExpiring(TokenExpiring),
}

/// Sent once per token, a configured lead time before it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenExpiring {
    /// When the socket's token stops working.
    pub expires_at: crate::Millis,
}

/// Sent once the `hello` is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The version the server picked.
    pub version: u32,
    /// Session id to quote in a later `resume`.
    pub session: String,
    /// The authenticated agent's username.
    pub agent: String,
    /// True when the missed events are replayed instead of a new snapshot.
    pub resumed: bool,
    /// The client should send something (a `ping`) at least this often.
    pub heartbeat_ms: u64,
    /// The media packet duration the client sends, ms (10 or 20), chosen
    /// from the `hello`'s `packet_ms`; absent: 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_ms: Option<u32>,
    /// The codecs besides Opus the server may send this client, from the
    /// `hello`'s `codecs` (each frame's header says which it carries);
    /// absent: Opus only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codecs: Vec<String>,
}

/// The whole state an agent's client needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The sequence number of the last event included.
    pub seq: u64,
    /// The agent's status.
    pub status: AgentStatusView,
    /// Whether the agent's microphone is muted.
    pub muted: bool,
    /// The agent's configuration.
    pub configuration: AgentConfiguration,
    /// The states the agent may choose.
    pub states: Vec<AgentState>,
    /// The agent's contacts.
    pub contacts: Vec<ContactView>,
}

/// One answer per request: `result` on success, `error` otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// On success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<OpResult>,
    /// On failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    /// A success.
    pub fn ok(id: u64, result: OpResult) -> Self {
        Response {
            id,
            result: Some(result),
            error: None,
        }
    }
    /// A failure.
    pub fn err(id: u64, error: ErrorBody) -> Self {
        Response {
            id,
            result: None,
            error: Some(error),
        }
    }
}

/// The result of a successful op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpResult {
    /// Done; the change arrives as events.
    Ack,
    /// Answer to `ping`.
    Pong,
    /// Answer to `get_snapshot`.
    Snapshot(Snapshot),
    /// Answer to `get_agent_state` and `set_agent_state`.
    AgentState(AgentStatusView),
    /// Answer to `get_agent_configuration`.
    AgentConfiguration(AgentConfiguration),
    /// Answer to `list_agent_states`.
    AgentStates {
        /// Selectable states.
        states: Vec<AgentState>,
    },
    /// Answer to `get_routing_profile`.
    RoutingProfile(RoutingProfile),
    /// Answer to `list_quick_connects`.
    QuickConnects {
        /// The endpoints.
        endpoints: Vec<Endpoint>,
        /// Whether each agent endpoint's agent can take a call now, by
        /// endpoint id (issue 15). Absent from older backends.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        availability: BTreeMap<String, Availability>,
    },
    /// Answer to `connect`.
    ContactCreated {
        /// The new contact.
        contact_id: String,
    },
    /// Answer to `add_connection`.
    ConnectionAdded {
        /// The new third-party connection.
        connection_id: String,
    },
    /// Answer to `get_attributes` and `update_attributes`.
    Attributes {
        /// All attributes after the op.
        attributes: BTreeMap<String, String>,
    },
    /// Answer to `refresh_token`: the token to use from now on.
    Token {
        /// Present it in the next `hello` (and as the HTTP bearer).
        token: String,
        /// When it stops working.
        expires_at: crate::Millis,
    },
    /// Answer to `media_socket`: open `path` as a WebSocket and send
    /// `{"type":"media_hello","ticket":…}` before `expires_at`.
    MediaSocket {
        /// Single use, bound to this agent.
        ticket: String,
        /// The socket's path on this backend (`/v1/media`).
        path: String,
        /// When the ticket stops working (a few seconds from now).
        expires_at: crate::Millis,
    },
}

/// Whether an agent reached by a quick connect can take a call now, as
/// `list_quick_connects` reports it at the moment it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Logged in, in a routable state, with no contact.
    Available,
    /// Logged in, but on a contact, in after-call work or a not-routable
    /// state.
    Busy,
    /// Not connected, or in an offline state.
    Offline,
}

/// An agent's configuration, as Streams' `agent.getConfiguration()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfiguration {
    /// Login name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// The routing profile.
    pub routing_profile: RoutingProfile,
    /// Whether calls are handled in the browser softphone.
    pub softphone_enabled: bool,
    /// Codes an agent may pick when clearing after-call work.
    pub wrap_up_codes: Vec<String>,
    /// The country calling code of the agent's region (81 for Japan, 1
    /// for the US): numbers typed without `+` are read as national numbers
    /// of that country. Absent: only E.164 numbers are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<u16>,
}

/// A routing profile: which queues an agent serves, in what order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingProfile {
    /// Configuration id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Queues with their priority and delay.
    pub queues: Vec<RoutingProfileQueue>,
}

/// A queue's place in a routing profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingProfileQueue {
    /// The queue.
    pub queue: QueueRef,
    /// Lower numbers are served first.
    pub priority: u32,
    /// Minimum seconds a contact waits before this profile takes it.
    pub delay_s: u32,
}

/// An event with its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFrame {
    /// Increases by one per event on a session, across reconnects.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Something changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The agent's status or next state changed.
    AgentStateChanged(AgentStatusView),
    /// The agent's mute changed.
    MuteChanged {
        /// Now muted.
        muted: bool,
    },
    /// A contact appeared or changed; the whole view is sent.
    ContactUpdated(ContactView),
    /// A contact is gone for this agent (cleared, or abandoned while ringing).
    ContactDestroyed {
        /// Which.
        contact_id: String,
    },
    /// DTMF digits were sent on a connection of this contact.
    Digits {
        /// The contact.
        contact_id: String,
        /// The connection the digits went to.
        connection_id: String,
        /// The digits.
        digits: String,
    },
}

/// A frame-level error; `id` is set when the request id could be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameError {
    /// The offending request's id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The error.
    #[serde(flatten)]
    pub error: ErrorBody,
    /// For `unsupported_version`: what the server speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_versions: Option<Vec<u32>>,
}

/// Why a text frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{body}")]
pub struct DecodeError {
    /// The request id, when the frame was a readable request.
    pub id: Option<u64>,
    /// The typed error to answer with.
    pub body: ErrorBody,
}

impl DecodeError {
    fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        DecodeError {
            id,
            body: ErrorBody::new(code, message),
        }
    }

    /// The frame to answer with.
    pub fn to_frame(&self) -> ServerFrame {
        match self.id {
            Some(id) => ServerFrame::Response(Response::err(id, self.body.clone())),
            None => ServerFrame::Error(FrameError {
                id: None,
                error: self.body.clone(),
                supported_versions: None,
            }),
        }
    }
}

/// Decodes a client text frame. Never panics; the error says which code to
/// answer with and carries the request id when it could be read.
pub fn decode_client_frame(text: &str) -> Result<ClientFrame, DecodeError> {
    if text.len() > MAX_TEXT_FRAME {
        return Err(DecodeError::new(
            None,
            ErrorCode::FrameTooLarge,
            format!(
                "text frames are limited to {MAX_TEXT_FRAME} bytes, got {}",
                text.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| DecodeError::new(None, ErrorCode::BadJson, format!("not JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(DecodeError::new(
            None,
            ErrorCode::BadJson,
            "a frame must be a JSON object",
        ));
    };
    let id = object.get("id").and_then(Value::as_u64);
    match object.get("type").and_then(Value::as_str) {
        Some("hello") => serde_json::from_value(value)
            .map(ClientFrame::Hello)
            .map_err(|e| DecodeError::new(None, ErrorCode::BadRequest, format!("bad hello: {e}"))),
        Some("request") => {
            let Some(id) = id else {
                return Err(DecodeError::new(
                    None,
                    ErrorCode::BadRequest,
                    "a request needs a numeric `id`",
                ));
            };
            match object.get("op").and_then(Value::as_str) {
                None => Err(DecodeError::new(
                    Some(id),
                    ErrorCode::BadRequest,
                    "missing `op`",
                )),
                Some(op) if !OP_NAMES.contains(&op) => Err(DecodeError::new(
                    Some(id),
                    ErrorCode::UnknownOp,
                    format!("unknown op `{}`", truncate(op, 64)),
                )),
                Some(op) => {
                    let op = op.to_owned();
                    serde_json::from_value(value)
                        .map(ClientFrame::Request)
                        .map_err(|e| {
                            DecodeError::new(
                                Some(id),
                                ErrorCode::BadRequest,
                                format!("bad `{op}`: {e}"),
                            )
                        })
                }
            }
        }
        Some(other) => Err(DecodeError::new(
            id,
            ErrorCode::UnknownType,
            format!("unknown frame type `{}`", truncate(other, 64)),
        )),
        None => Err(DecodeError::new(
            id,
            ErrorCode::UnknownType,
            "missing `type`",
        )),
    }
}

/// Decodes a server text frame (the client side of the same contract).
pub fn decode_server_frame(text: &str) -> Result<ServerFrame, DecodeError> {
    crate::frame_read::server_frame(text)
        .map_err(|e| DecodeError::new(None, ErrorCode::BadJson, format!("bad server frame: {e}")))
}

/// Encodes any frame as JSON text.
pub fn encode<T: Serialize>(frame: &T) -> String {
    // Serializing these types cannot fail: every map key is a string and no
    // Serialize impl is hand-written.
    serde_json::to_string(frame).unwrap_or_else(|_| String::from("{}"))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packet_duration_granted_is_the_first_allowed_one_offered() {
        assert_eq!(choose_packet_ms(&[10, 20]), Some(10));
        assert_eq!(choose_packet_ms(&[20, 10]), Some(20));
        assert_eq!(choose_packet_ms(&[5, 40, 20]), Some(20));
        assert_eq!(choose_packet_ms(&[5, 40]), None);
        assert_eq!(choose_packet_ms(&[]), None);
        // An old client's hello has no `packet_ms`: it decodes to none.
        let Ok(ClientFrame::Hello(h)) =
            decode_client_frame(r#"{"type":"hello","versions":[1],"token":"t"}"#)
        else {
            panic!("hello decodes");
        };
        assert!(h.packet_ms.is_empty());
    }

    #[test]
    fn unknown_op_keeps_the_request_id() {
        let err =
            decode_client_frame(r#"{"type":"request","id":9,"op":"fly"}"#).expect_err("unknown op");
        assert_eq!(err.id, Some(9));
        assert_eq!(err.body.code, ErrorCode::UnknownOp);
    }

    #[test]
    fn malformed_known_op_is_bad_request() {
        let err = decode_client_frame(r#"{"type":"request","id":3,"op":"accept"}"#)
            .expect_err("missing contact_id");
        assert_eq!(err.id, Some(3));
        assert_eq!(err.body.code, ErrorCode::BadRequest);
        assert!(
            err.body.message.contains("contact_id"),
            "{}",
            err.body.message
        );
    }

    #[test]
    fn not_json_and_not_object_are_bad_json() {
        for text in ["{", "[1,2]", "\"hello\"", ""] {
            let err = decode_client_frame(text).expect_err(text);
            assert_eq!(err.body.code, ErrorCode::BadJson, "{text}");
            assert_eq!(err.id, None);
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let frame = decode_client_frame(r#"{"type":"request","id":1,"op":"ping","future":true}"#)
            .expect("extra field ignored");
        assert_eq!(
            frame,
            ClientFrame::Request(Request {
                id: 1,
                op: Op::Ping
            })
        );
    }

    #[test]
    fn oversized_frame_is_refused_before_parsing() {
        let text = format!(
            r#"{{"type":"request","id":1,"op":"ping","pad":"{}"}}"#,
            "x".repeat(MAX_TEXT_FRAME)
        );
        let err = decode_client_frame(&text).expect_err("too large");
        assert_eq!(err.body.code, ErrorCode::FrameTooLarge);
    }

    #[test]
    fn op_names_cover_every_op() {
        // Each name must decode as a known op (possibly with missing fields),
        // never as unknown.
        for name in OP_NAMES {
            let text = format!(r#"{{"type":"request","id":1,"op":"{name}"}}"#);
            match decode_client_frame(&text) {
                Ok(_) => {}
                Err(e) => assert_eq!(e.body.code, ErrorCode::BadRequest, "{name}"),
            }
        }
    }
}
