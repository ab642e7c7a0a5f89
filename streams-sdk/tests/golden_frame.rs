//! Golden files for every frame (postMessage) message, in
//! tests/golden/frame/: `to_ccp/*.json` is what the page's SDK sends (each
//! must parse into the message named here), `from_ccp/*.json` is what the
//! CCP (or the direct core) sends (each must be exactly what the Rust side
//! serializes). tests/js/frame-golden.test.mjs checks the JS SDK against
//! the same files, so the two sides cannot drift. `SWITCHBOARD_BLESS=1`
//! rewrites the `from_ccp` files after a deliberate change.

use std::path::PathBuf;

use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{Event, OpResult, Snapshot};
use protocol::Millis;
use serde_json::{json, Value};
use streams_sdk::frame::{Action, DeviceKind, FromCcp, StatePush, ToCcp, FRAME_VERSION};
use streams_sdk::{ClientState, ContactChange, Output};

/// The nonce every golden message carries (the JS test substitutes its own).
const NONCE: &str = "0123456789abcdef0123456789abcdef";

fn dir(side: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/frame")
        .join(side)
}

fn read(side: &str, name: &str) -> String {
    let path = dir(side).join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn op(fields: Value) -> serde_json::Map<String, Value> {
    fields.as_object().cloned().expect("an object")
}

/// What the page sends, by file name.
fn to_ccp() -> Vec<(&'static str, ToCcp)> {
    let request = |id, action| ToCcp::Request {
        nonce: NONCE.into(),
        id,
        action,
    };
    vec![
        (
            "hello",
            ToCcp::Hello {
                version: FRAME_VERSION,
                nonce: NONCE.into(),
            },
        ),
        (
            "ping",
            ToCcp::Ping {
                nonce: NONCE.into(),
            },
        ),
        (
            "request-op",
            request(
                1,
                Action::Op {
                    op: op(json!({"op": "set_agent_state", "state": "Lunch"})),
                },
            ),
        ),
        ("request-list-devices", request(2, Action::ListDevices)),
        (
            "request-set-device",
            request(
                3,
                Action::SetDevice {
                    device: DeviceKind::Microphone,
                    device_id: "mic-1".into(),
                },
            ),
        ),
        ("request-logout", request(4, Action::Logout)),
    ]
}

/// A snapshot of Alice, available, with her configuration, `states` and
/// `contacts`.
fn available_alice(seq: u64, states: serde_json::Value, contacts: serde_json::Value) -> Snapshot {
    serde_json::from_value(json!({
        "seq": seq,
        "status": {"state": {"name": "Available", "kind": "routable"}, "since": 1_000},
        "muted": false,
        "configuration": {
            "username": "alice", "name": "Alice Tanaka",
            "routing_profile": {"id": "front", "name": "Front line", "queues": [
                {"queue": {"id": "support", "name": "Support"}, "priority": 1, "delay_s": 0}
            ]},
            "softphone_enabled": true, "wrap_up_codes": ["Resolved"]
        },
        "states": states,
        "contacts": contacts
    }))
    .expect("a snapshot")
}

/// A state with an agent and an inbound call the agent just accepted.
fn state_push() -> FromCcp {
    let snapshot = available_alice(
        7,
        json!([
            {"name": "Available", "kind": "routable"},
            {"name": "Lunch", "kind": "not_routable"},
            {"name": "Offline", "kind": "offline"}
        ]),
        json!([contact("incoming")]),
    );
    let mut state = ClientState::default();
    state.apply_snapshot(snapshot);
    let accepted = serde_json::from_value(contact("connected")).expect("a contact view");
    let changes = state.apply_event(8, &Event::ContactUpdated(accepted));
    assert!(
        matches!(&changes[..], [ContactChange::Accepted(_)]),
        "{changes:?}"
    );
    FromCcp::State(Box::new(StatePush::new(
        NONCE, "open", true, &state, &changes,
    )))
}

/// A state with a queued callback ringing at the agent: initiation
/// `callback`, the customer an outbound leg dialed once the agent accepts.
fn callback_push() -> FromCcp {
    let mut ringing = contact("incoming");
    ringing["initiation"] = json!("callback");
    ringing["connections"][1]["kind"] = json!("outbound");
    ringing["connections"][1]["state"] = json!({"name": "init"});
    let snapshot = available_alice(
        9,
        json!([{"name": "Available", "kind": "routable"}]),
        json!([]),
    );
    let mut state = ClientState::default();
    state.apply_snapshot(snapshot);
    let view = serde_json::from_value(ringing).expect("a callback contact view");
    let changes = state.apply_event(10, &Event::ContactUpdated(view));
    FromCcp::State(Box::new(StatePush::new(
        NONCE, "open", true, &state, &changes,
    )))
}

fn contact(state: &str) -> Value {
    let contact_state = if state == "incoming" {
        json!({"name": "incoming", "since": 2_000, "expires_at": 32_000})
    } else {
        json!({"name": state, "since": 3_000})
    };
    json!({
        "contact_id": "c-1",
        "initiation": "inbound",
        "state": contact_state,
        "queue": {"id": "support", "name": "Support"},
        "attributes": {"customerName": "Justin"},
        "connections": [
            {"connection_id": "k-agent", "kind": "agent",
             "endpoint": {"id": "agent:alice", "kind": "agent", "name": "Alice Tanaka", "agent": "alice"},
             "state": if state == "incoming" { json!({"name": "connecting", "since": 2_000}) } else { json!({"name": "connected", "since": 3_000}) }},
            {"connection_id": "k-cust", "kind": "inbound",
             "endpoint": {"id": "phone:+819012345678", "kind": "phone_number", "name": "+819012345678", "phone_number": "+819012345678"},
             "state": {"name": "connected", "since": 2_000}}
        ],
        "created_at": 2_000
    })
}

/// What the CCP sends, by file name.
fn from_ccp() -> Vec<(&'static str, FromCcp)> {
    let auth = |output: Output| FromCcp::auth(NONCE, &output).expect("an auth message");
    vec![
        (
            "hello",
            FromCcp::Hello {
                version: FRAME_VERSION,
                nonce: NONCE.into(),
                logged_in: true,
            },
        ),
        (
            "hello-refused",
            FromCcp::HelloRefused {
                nonce: NONCE.into(),
                reason: "frame protocol version 9 is not supported".into(),
                versions: vec![FRAME_VERSION],
            },
        ),
        (
            "pong",
            FromCcp::Pong {
                nonce: NONCE.into(),
            },
        ),
        ("state", state_push()),
        ("state-callback", callback_push()),
        (
            "response-ok",
            FromCcp::op_response(NONCE, 1, Ok(OpResult::Ack)),
        ),
        (
            "response-devices",
            FromCcp::response(
                NONCE,
                2,
                Ok(json!([{"kind": "microphone", "device_id": "mic-1", "label": "Headset"}])),
            ),
        ),
        (
            "response-error",
            FromCcp::op_response(
                NONCE,
                3,
                Err(ErrorBody::new(ErrorCode::NotFound, "no such device")),
            ),
        ),
        (
            "response-timeout",
            FromCcp::op_response(
                NONCE,
                4,
                Err(ErrorBody::new(
                    ErrorCode::Timeout,
                    "timed out waiting for the backend",
                )),
            ),
        ),
        (
            "softphone-error",
            FromCcp::SoftphoneError {
                nonce: NONCE.into(),
                code: "microphone_denied".into(),
                message: "Microphone access was denied.".into(),
            },
        ),
        (
            "auth-token-expiring",
            auth(Output::TokenExpiring {
                expires_at: Millis(90_000),
                refresh: None,
            }),
        ),
        (
            "auth-token-refreshed",
            auth(Output::TokenRefreshed {
                token: "never-leaves-the-ccp".into(),
                expires_at: Millis(180_000),
            }),
        ),
        (
            "auth-session-expired",
            auth(Output::SessionEnded(ErrorBody::new(
                ErrorCode::SessionExpired,
                "the login expired",
            ))),
        ),
        (
            "auth-token-revoked",
            auth(Output::SessionEnded(ErrorBody::new(
                ErrorCode::TokenRevoked,
                "logged out",
            ))),
        ),
    ]
}

#[test]
fn every_page_message_golden_parses_into_its_message() {
    let cases = to_ccp();
    for (name, want) in &cases {
        let text = read("to_ccp", name);
        assert_eq!(&ToCcp::parse(&text).expect(name), want, "{name}");
    }
    let mut files: Vec<String> = std::fs::read_dir(dir("to_ccp"))
        .expect("to_ccp")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut named: Vec<String> = cases.iter().map(|(n, _)| format!("{n}.json")).collect();
    named.sort();
    assert_eq!(files, named, "every golden file is checked");
}

#[test]
fn every_ccp_message_serializes_to_its_golden() {
    let bless = std::env::var_os("SWITCHBOARD_BLESS").is_some();
    let cases = from_ccp();
    for (name, msg) in &cases {
        let got: Value = serde_json::from_str(&msg.to_json()).expect("valid JSON");
        let path = dir("from_ccp").join(format!("{name}.json"));
        if bless {
            std::fs::create_dir_all(dir("from_ccp")).expect("mkdir");
            let text = serde_json::to_string_pretty(&got).expect("pretty") + "\n";
            std::fs::write(&path, text).expect("write golden");
            continue;
        }
        let want: Value = serde_json::from_str(&read("from_ccp", name)).expect(name);
        assert_eq!(
            got, want,
            "{name}: the CCP's message differs from its golden file"
        );
    }
    let mut files: Vec<String> = std::fs::read_dir(dir("from_ccp"))
        .expect("from_ccp")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut named: Vec<String> = cases.iter().map(|(n, _)| format!("{n}.json")).collect();
    named.sort();
    assert_eq!(files, named, "every golden file is checked");
    // Every kind the CCP can send has a golden file.
    let kinds: std::collections::BTreeSet<String> = cases
        .iter()
        .map(|(_, m)| {
            let v: Value = serde_json::from_str(&m.to_json()).expect("JSON");
            v["kind"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    let all = [
        "auth",
        "hello",
        "hello_refused",
        "pong",
        "response",
        "softphone_error",
        "state",
    ];
    assert_eq!(kinds.iter().map(String::as_str).collect::<Vec<_>>(), all);
    for (_, m) in &cases {
        assert!(all.contains(&kind_of(m)));
    }
}

/// Exhaustive: a new kind of CCP message does not compile without a name
/// here, and then needs a golden file for the list above.
fn kind_of(m: &FromCcp) -> &'static str {
    match m {
        FromCcp::Hello { .. } => "hello",
        FromCcp::HelloRefused { .. } => "hello_refused",
        FromCcp::Pong { .. } => "pong",
        FromCcp::Response { .. } => "response",
        FromCcp::State(_) => "state",
        FromCcp::SoftphoneError { .. } => "softphone_error",
        FromCcp::Auth { .. } => "auth",
    }
}

/// The golden messages the CCP would receive pass its gatekeeper too.
#[test]
fn the_page_goldens_pass_the_shared_handshake() {
    let mut h = streams_sdk::frame::Handshake::default();
    for (name, _) in to_ccp() {
        let text = read("to_ccp", name);
        assert!(h.receive(&text).is_ok(), "{name}");
    }
}
