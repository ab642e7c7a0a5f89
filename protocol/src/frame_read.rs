//! Reading server frames: the tag first, then the one shape it names.
//!
//! Server frames are internally tagged JSON objects (`"type"`, and inside
//! them `"kind"` for a response's result and `"event"` for an event). For
//! such enums serde's derive buffers the whole object into a generic value
//! and reads it a second time, variant by variant; in the CCP's
//! WebAssembly that machinery and the three derived readers came to about
//! 45 KB of code. Here the text is read twice instead: once for the tag
//! (every other field skipped), then straight into the named variant's own
//! type, whose reader ignores the tag as an unknown field. Frames are a few
//! KB, so the second pass costs microseconds; the derived readers stay for
//! anyone else, and `every_variant_reads_as_the_derived_reader_does` holds
//! the two to the same results.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::agent::AgentState;
use crate::endpoint::Endpoint;
use crate::error::ErrorBody;
use crate::wire::{Event, EventFrame, FrameError, OpResult, Response, ServerFrame};

type Result<T> = serde_json::Result<T>;

/// A server frame from its JSON text.
pub(crate) fn server_frame(text: &str) -> Result<ServerFrame> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: FrameType,
    }
    let head: Head = serde_json::from_str(text)?;
    Ok(match head.kind {
        FrameType::Welcome => ServerFrame::Welcome(serde_json::from_str(text)?),
        FrameType::Snapshot => ServerFrame::Snapshot(serde_json::from_str(text)?),
        FrameType::Response => ServerFrame::Response(response(text)?),
        FrameType::Event => ServerFrame::Event(event_frame(text)?),
        FrameType::Error => ServerFrame::Error(frame_error(text)?),
        FrameType::TokenExpiring => ServerFrame::TokenExpiring(serde_json::from_str(text)?),
    })
}

/// [`ServerFrame`]'s tags.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FrameType {
    Welcome,
    Snapshot,
    Response,
    Event,
    Error,
    TokenExpiring,
}

fn response(text: &str) -> Result<Response> {
    #[derive(Deserialize)]
    struct Wire<'a> {
        id: u64,
        #[serde(borrow, default)]
        result: Option<&'a RawValue>,
        #[serde(default)]
        error: Option<ErrorBody>,
    }
    let w: Wire = serde_json::from_str(text)?;
    Ok(Response {
        id: w.id,
        result: w.result.map(|r| op_result(r.get())).transpose()?,
        error: w.error,
    })
}

/// [`OpResult`]'s tags.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ResultKind {
    Ack,
    Pong,
    Snapshot,
    AgentState,
    AgentConfiguration,
    AgentStates,
    RoutingProfile,
    QuickConnects,
    ContactCreated,
    ConnectionAdded,
    Attributes,
    Token,
    MediaSocket,
}

fn op_result(text: &str) -> Result<OpResult> {
    #[derive(Deserialize)]
    struct Head {
        kind: ResultKind,
    }
    #[derive(Deserialize)]
    struct States {
        states: Vec<AgentState>,
    }
    #[derive(Deserialize)]
    struct Endpoints {
        endpoints: Vec<Endpoint>,
        #[serde(default)]
        availability: BTreeMap<String, crate::wire::Availability>,
    }
    #[derive(Deserialize)]
    struct ContactId {
        contact_id: String,
    }
    #[derive(Deserialize)]
    struct ConnectionId {
        connection_id: String,
    }
    #[derive(Deserialize)]
    struct Attributes {
        attributes: BTreeMap<String, String>,
    }
    #[derive(Deserialize)]
    struct Token {
        token: String,
        expires_at: crate::Millis,
    }
    #[derive(Deserialize)]
    struct MediaTicket {
        ticket: String,
        path: String,
        expires_at: crate::Millis,
    }
    let head: Head = serde_json::from_str(text)?;
    Ok(match head.kind {
        ResultKind::Ack => OpResult::Ack,
        ResultKind::Pong => OpResult::Pong,
        ResultKind::Snapshot => OpResult::Snapshot(serde_json::from_str(text)?),
        ResultKind::AgentState => OpResult::AgentState(serde_json::from_str(text)?),
        ResultKind::AgentConfiguration => OpResult::AgentConfiguration(serde_json::from_str(text)?),
        ResultKind::AgentStates => OpResult::AgentStates {
            states: serde_json::from_str::<States>(text)?.states,
        },
        ResultKind::RoutingProfile => OpResult::RoutingProfile(serde_json::from_str(text)?),
        ResultKind::QuickConnects => {
            let e = serde_json::from_str::<Endpoints>(text)?;
            OpResult::QuickConnects {
                endpoints: e.endpoints,
                availability: e.availability,
            }
        }
        ResultKind::ContactCreated => OpResult::ContactCreated {
            contact_id: serde_json::from_str::<ContactId>(text)?.contact_id,
        },
        ResultKind::ConnectionAdded => OpResult::ConnectionAdded {
            connection_id: serde_json::from_str::<ConnectionId>(text)?.connection_id,
        },
        ResultKind::Attributes => OpResult::Attributes {
            attributes: serde_json::from_str::<Attributes>(text)?.attributes,
        },
        ResultKind::Token => {
            let t: Token = serde_json::from_str(text)?;
            OpResult::Token {
                token: t.token,
                expires_at: t.expires_at,
            }
        }
        ResultKind::MediaSocket => {
            let t: MediaTicket = serde_json::from_str(text)?;
            OpResult::MediaSocket {
                ticket: t.ticket,
                path: t.path,
                expires_at: t.expires_at,
            }
        }
    })
}

/// [`Event`]'s tags.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum EventKind {
    AgentStateChanged,
    MuteChanged,
    ContactUpdated,
    ContactDestroyed,
    Digits,
}

fn event_frame(text: &str) -> Result<EventFrame> {
    #[derive(Deserialize)]
    struct Head {
        seq: u64,
        event: EventKind,
    }
    #[derive(Deserialize)]
    struct Muted {
        muted: bool,
    }
    #[derive(Deserialize)]
    struct ContactId {
        contact_id: String,
    }
    #[derive(Deserialize)]
    struct Digits {
        contact_id: String,
        connection_id: String,
        digits: String,
    }
    let head: Head = serde_json::from_str(text)?;
    let event = match head.event {
        EventKind::AgentStateChanged => Event::AgentStateChanged(serde_json::from_str(text)?),
        EventKind::MuteChanged => Event::MuteChanged {
            muted: serde_json::from_str::<Muted>(text)?.muted,
        },
        EventKind::ContactUpdated => Event::ContactUpdated(serde_json::from_str(text)?),
        EventKind::ContactDestroyed => Event::ContactDestroyed {
            contact_id: serde_json::from_str::<ContactId>(text)?.contact_id,
        },
        EventKind::Digits => {
            let d: Digits = serde_json::from_str(text)?;
            Event::Digits {
                contact_id: d.contact_id,
                connection_id: d.connection_id,
                digits: d.digits,
            }
        }
    };
    Ok(EventFrame {
        seq: head.seq,
        event,
    })
}

fn frame_error(text: &str) -> Result<FrameError> {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(default)]
        id: Option<u64>,
        code: crate::error::ErrorCode,
        message: String,
        #[serde(default)]
        supported_versions: Option<Vec<u32>>,
    }
    let w: Wire = serde_json::from_str(text)?;
    Ok(FrameError {
        id: w.id,
        error: ErrorBody {
            code: w.code,
            message: w.message,
        },
        supported_versions: w.supported_versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant has a tag here: adding a variant to [`ServerFrame`],
    /// [`OpResult`] or [`Event`] fails to compile until it is read above.
    fn tags(frame: &ServerFrame) -> (FrameType, Option<ResultKind>, Option<EventKind>) {
        match frame {
            ServerFrame::Welcome(_) => (FrameType::Welcome, None, None),
            ServerFrame::Snapshot(_) => (FrameType::Snapshot, None, None),
            ServerFrame::Response(r) => (
                FrameType::Response,
                r.result.as_ref().map(|r| match r {
                    OpResult::Ack => ResultKind::Ack,
                    OpResult::Pong => ResultKind::Pong,
                    OpResult::Snapshot(_) => ResultKind::Snapshot,
                    OpResult::AgentState(_) => ResultKind::AgentState,
                    OpResult::AgentConfiguration(_) => ResultKind::AgentConfiguration,
                    OpResult::AgentStates { .. } => ResultKind::AgentStates,
                    OpResult::RoutingProfile(_) => ResultKind::RoutingProfile,
                    OpResult::QuickConnects { .. } => ResultKind::QuickConnects,
                    OpResult::ContactCreated { .. } => ResultKind::ContactCreated,
                    OpResult::ConnectionAdded { .. } => ResultKind::ConnectionAdded,
                    OpResult::Attributes { .. } => ResultKind::Attributes,
                    OpResult::Token { .. } => ResultKind::Token,
                    OpResult::MediaSocket { .. } => ResultKind::MediaSocket,
                }),
                None,
            ),
            ServerFrame::Event(e) => (
                FrameType::Event,
                None,
                Some(match e.event {
                    Event::AgentStateChanged(_) => EventKind::AgentStateChanged,
                    Event::MuteChanged { .. } => EventKind::MuteChanged,
                    Event::ContactUpdated(_) => EventKind::ContactUpdated,
                    Event::ContactDestroyed { .. } => EventKind::ContactDestroyed,
                    Event::Digits { .. } => EventKind::Digits,
                }),
            ),
            ServerFrame::Error(_) => (FrameType::Error, None, None),
            ServerFrame::TokenExpiring(_) => (FrameType::TokenExpiring, None, None),
        }
    }

    /// The golden server frames (protocol/tests/golden, every variant
    /// written from docs/protocol.md) read the same through this reader
    /// and serde's derived one, and so do malformed frames (both refuse).
    #[test]
    fn every_variant_reads_as_the_derived_reader_does() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let mut kinds = std::collections::BTreeSet::new();
        let entries = std::fs::read_dir(&dir).expect("golden dir");
        for entry in entries {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            let Ok(derived) = serde_json::from_str::<ServerFrame>(&text) else {
                // A client frame (hello, an op).
                assert!(server_frame(&text).is_err(), "{}", path.display());
                continue;
            };
            let ours = server_frame(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(ours, derived, "{}", path.display());
            let (frame, result, event) = tags(&ours);
            kinds.insert(format!(
                "{}{}{}",
                frame as u8,
                result.map(|r| format!("/r{}", r as u8)).unwrap_or_default(),
                event.map(|e| format!("/e{}", e as u8)).unwrap_or_default()
            ));
        }
        // 6 frame types, 13 results, 5 events; error responses and frame
        // errors add none of their own.
        let results = kinds.iter().filter(|k| k.contains("/r")).count();
        let events = kinds.iter().filter(|k| k.contains("/e")).count();
        assert_eq!((results, events), (13, 5), "{kinds:?}");
        for bad in [
            r#"{"type":"welcome"}"#,
            r#"{"type":"greeting","version":1}"#,
            r#"{"version":1}"#,
            r#"{"type":"response","id":1,"result":{"kind":"teleport"}}"#,
            r#"{"type":"response","id":1,"result":{"kind":"contact_created"}}"#,
            r#"{"type":"response","result":{"kind":"ack"}}"#,
            r#"{"type":"event","seq":1,"event":"mute_changed"}"#,
            r#"{"type":"event","event":"mute_changed","muted":true}"#,
            r#"{"type":"error","code":"bad_json"}"#,
            r#"{"type":"token_expiring","expires_at":"later"}"#,
            r#"[1,2]"#,
            r#"{"type":"event","seq":1,"event":"mute_changed","muted":true"#,
        ] {
            assert!(server_frame(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<ServerFrame>(bad).is_err(),
                "derived: {bad}"
            );
        }
    }
}
