//! Golden JSON fixtures: one file per message in `tests/golden/`. Each test
//! checks that the value encodes to exactly the file's JSON and that the
//! file decodes back to the value, so an accidental wire change fails here
//! and a deliberate one shows up as a fixture diff in review.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p switchboard-protocol`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use protocol::contact::QueueRef;
use protocol::wire::*;
use protocol::*;

fn samples() -> Vec<(&'static str, Sample)> {
    let contact = "c-1".to_string();
    let conn = "k-2".to_string();
    let ivr = Endpoint {
        id: "qc-support".into(),
        kind: EndpointKind::Queue,
        name: "Support queue".into(),
        phone_number: None,
        agent: None,
        queue: Some("support".into()),
    };
    let mut attrs = BTreeMap::new();
    attrs.insert("customerName".to_string(), "Justin".to_string());
    let status = AgentStatusView {
        state: AgentState::busy(),
        since: Millis(1_700_000_000_000),
        next_state: Some(AgentState::new("Lunch", AgentStateKind::NotRoutable)),
    };
    let queue = QueueRef {
        id: "support".into(),
        name: "Support".into(),
    };
    let profile = RoutingProfile {
        id: "basic".into(),
        name: "Basic".into(),
        queues: vec![RoutingProfileQueue {
            queue: queue.clone(),
            priority: 1,
            delay_s: 0,
        }],
    };
    let configuration = AgentConfiguration {
        username: "alice".into(),
        name: "Alice Example".into(),
        routing_profile: profile.clone(),
        softphone_enabled: true,
        wrap_up_codes: vec!["Resolved".into()],
        country_code: None,
    };
    let view = ContactView {
        contact_id: contact.clone(),
        initiation: Initiation::Inbound,
        state: ContactState::Connected {
            since: Millis(1_700_000_001_000),
        },
        queue: Some(queue),
        attributes: attrs.clone(),
        connections: vec![
            Connection {
                connection_id: "k-1".into(),
                kind: ConnectionKind::Agent,
                endpoint: Endpoint {
                    id: "agent:alice".into(),
                    kind: EndpointKind::Agent,
                    name: "Alice Example".into(),
                    phone_number: None,
                    agent: Some("alice".into()),
                    queue: None,
                },
                state: ConnectionState::Connected {
                    since: Millis(1_700_000_001_000),
                },
                media_leg: Some(7),
            },
            Connection {
                connection_id: conn.clone(),
                kind: ConnectionKind::Inbound,
                endpoint: Endpoint::phone_number("+819012345678"),
                state: ConnectionState::Hold {
                    since: Millis(1_700_000_002_000),
                },
                media_leg: None,
            },
        ],
        created_at: Millis(1_700_000_000_500),
    };
    let snapshot = Snapshot {
        seq: 41,
        status: status.clone(),
        muted: false,
        configuration: configuration.clone(),
        states: vec![AgentState::available(), AgentState::offline()],
        contacts: vec![view.clone()],
    };
    // A `hello` with nothing optional; the other samples each add one thing.
    let base_hello = Hello {
        versions: vec![1],
        token: "tok_3f9a".into(),
        resume: None,
        capabilities: Vec::new(),
        packet_ms: vec![],
        codecs: vec![],
    };
    let hello = |h: Hello| Sample::Client(ClientFrame::Hello(h));
    let req = |id: u64, op: Op| Sample::Client(ClientFrame::Request(Request { id, op }));
    let ok = |id: u64, r: OpResult| Sample::Server(ServerFrame::Response(Response::ok(id, r)));
    let ev = |seq: u64, event: Event| Sample::Server(ServerFrame::Event(EventFrame { seq, event }));
    vec![
        ("hello", hello(base_hello.clone())),
        (
            "hello_packet_ms",
            hello(Hello {
                packet_ms: vec![10, 20],
                ..base_hello.clone()
            }),
        ),
        (
            "hello_codecs",
            hello(Hello {
                codecs: vec!["pcmu".into(), "pcma".into()],
                ..base_hello.clone()
            }),
        ),
        (
            "hello_resume",
            hello(Hello {
                resume: Some(ResumeFrom {
                    session: "s-1".into(),
                    last_seq: 40,
                }),
                ..base_hello
            }),
        ),
        ("op_ping", req(1, Op::Ping)),
        ("op_get_snapshot", req(2, Op::GetSnapshot)),
        ("op_get_agent_state", req(3, Op::GetAgentState)),
        (
            "op_set_agent_state",
            req(
                4,
                Op::SetAgentState {
                    state: "Available".into(),
                },
            ),
        ),
        (
            "op_get_agent_configuration",
            req(5, Op::GetAgentConfiguration),
        ),
        ("op_list_agent_states", req(6, Op::ListAgentStates)),
        ("op_get_routing_profile", req(7, Op::GetRoutingProfile)),
        ("op_list_quick_connects", req(8, Op::ListQuickConnects)),
        (
            "op_connect",
            req(
                9,
                Op::Connect {
                    endpoint: Endpoint::phone_number("+14155550100"),
                },
            ),
        ),
        (
            "op_accept",
            req(
                10,
                Op::Accept {
                    contact_id: contact.clone(),
                },
            ),
        ),
        (
            "op_reject",
            req(
                11,
                Op::Reject {
                    contact_id: contact.clone(),
                },
            ),
        ),
        (
            "op_clear",
            req(
                12,
                Op::Clear {
                    contact_id: contact.clone(),
                    wrap_up_code: Some("Resolved".into()),
                },
            ),
        ),
        (
            "op_hold",
            req(
                13,
                Op::Hold {
                    contact_id: contact.clone(),
                    connection_id: conn.clone(),
                },
            ),
        ),
        (
            "op_resume",
            req(
                14,
                Op::Resume {
                    contact_id: contact.clone(),
                    connection_id: conn.clone(),
                },
            ),
        ),
        ("op_mute", req(15, Op::Mute)),
        ("op_unmute", req(16, Op::Unmute)),
        (
            "op_send_digits",
            req(
                17,
                Op::SendDigits {
                    contact_id: contact.clone(),
                    connection_id: conn.clone(),
                    digits: "12#".into(),
                },
            ),
        ),
        (
            "op_add_connection",
            req(
                18,
                Op::AddConnection {
                    contact_id: contact.clone(),
                    endpoint: ivr.clone(),
                },
            ),
        ),
        (
            "op_conference",
            req(
                19,
                Op::Conference {
                    contact_id: contact.clone(),
                },
            ),
        ),
        (
            "op_toggle",
            req(
                20,
                Op::Toggle {
                    contact_id: contact.clone(),
                },
            ),
        ),
        (
            "op_end_connection",
            req(
                21,
                Op::EndConnection {
                    contact_id: contact.clone(),
                    connection_id: conn.clone(),
                },
            ),
        ),
        (
            "op_get_attributes",
            req(
                22,
                Op::GetAttributes {
                    contact_id: contact.clone(),
                },
            ),
        ),
        (
            "op_update_attributes",
            req(
                23,
                Op::UpdateAttributes {
                    contact_id: contact.clone(),
                    attributes: attrs.clone(),
                },
            ),
        ),
        (
            "welcome",
            Sample::Server(ServerFrame::Welcome(Welcome {
                version: 1,
                session: "s-1".into(),
                agent: "alice".into(),
                resumed: false,
                heartbeat_ms: 15_000,
                packet_ms: None,
                codecs: vec![],
            })),
        ),
        (
            "welcome_packet_ms",
            Sample::Server(ServerFrame::Welcome(Welcome {
                version: 1,
                session: "s-1".into(),
                agent: "alice".into(),
                resumed: false,
                heartbeat_ms: 15_000,
                packet_ms: Some(10),
                codecs: vec![],
            })),
        ),
        (
            "welcome_codecs",
            Sample::Server(ServerFrame::Welcome(Welcome {
                version: 1,
                session: "s-1".into(),
                agent: "alice".into(),
                resumed: false,
                heartbeat_ms: 15_000,
                packet_ms: None,
                codecs: vec!["pcmu".into(), "pcma".into()],
            })),
        ),
        (
            "snapshot",
            Sample::Server(ServerFrame::Snapshot(snapshot.clone())),
        ),
        ("result_ack", ok(10, OpResult::Ack)),
        ("result_pong", ok(1, OpResult::Pong)),
        ("result_snapshot", ok(2, OpResult::Snapshot(snapshot))),
        (
            "result_agent_state",
            ok(3, OpResult::AgentState(status.clone())),
        ),
        (
            "result_agent_configuration",
            ok(5, OpResult::AgentConfiguration(configuration)),
        ),
        (
            "result_agent_states",
            ok(
                6,
                OpResult::AgentStates {
                    states: vec![AgentState::available(), AgentState::offline()],
                },
            ),
        ),
        (
            "result_routing_profile",
            ok(7, OpResult::RoutingProfile(profile)),
        ),
        (
            "result_quick_connects",
            ok(
                8,
                OpResult::QuickConnects {
                    endpoints: vec![ivr],
                    availability: Default::default(),
                },
            ),
        ),
        (
            "result_contact_created",
            ok(
                9,
                OpResult::ContactCreated {
                    contact_id: contact.clone(),
                },
            ),
        ),
        (
            "result_connection_added",
            ok(
                18,
                OpResult::ConnectionAdded {
                    connection_id: "k-3".into(),
                },
            ),
        ),
        (
            "result_attributes",
            ok(22, OpResult::Attributes { attributes: attrs }),
        ),
        (
            "response_error",
            Sample::Server(ServerFrame::Response(Response::err(
                11,
                ErrorBody::new(ErrorCode::NotOwner, "contact c-9 is not yours"),
            ))),
        ),
        (
            "event_agent_state_changed",
            ev(42, Event::AgentStateChanged(status)),
        ),
        (
            "event_mute_changed",
            ev(43, Event::MuteChanged { muted: true }),
        ),
        ("event_contact_updated", ev(44, Event::ContactUpdated(view))),
        (
            "event_contact_destroyed",
            ev(
                45,
                Event::ContactDestroyed {
                    contact_id: contact.clone(),
                },
            ),
        ),
        (
            "event_digits",
            ev(
                46,
                Event::Digits {
                    contact_id: contact,
                    connection_id: conn,
                    digits: "5".into(),
                },
            ),
        ),
        (
            "error_frame",
            Sample::Server(ServerFrame::Error(FrameError {
                id: None,
                error: ErrorBody::new(ErrorCode::UnsupportedVersion, "no common version"),
                supported_versions: Some(vec![1]),
            })),
        ),
        // Login lifetime: the warning before expiry, the refresh, and the
        // two typed reasons a socket is closed for.
        ("op_refresh_token", req(24, Op::RefreshToken)),
        ("op_media_socket", req(25, Op::MediaSocket)),
        (
            "result_media_socket",
            ok(
                25,
                OpResult::MediaSocket {
                    ticket: "mt-3f9a".into(),
                    path: "/v1/media".into(),
                    expires_at: Millis(1_700_000_010_000),
                },
            ),
        ),
        (
            "result_token",
            ok(
                24,
                OpResult::Token {
                    token: "t-5b0c".into(),
                    expires_at: Millis(1_700_043_200_000),
                },
            ),
        ),
        (
            "token_expiring",
            Sample::Server(ServerFrame::TokenExpiring(TokenExpiring {
                expires_at: Millis(1_700_000_300_000),
            })),
        ),
        (
            "error_session_expired",
            Sample::Server(ServerFrame::Error(FrameError {
                id: None,
                error: ErrorBody::new(
                    ErrorCode::SessionExpired,
                    "your login expired; log in again",
                ),
                supported_versions: None,
            })),
        ),
        (
            "error_token_revoked",
            Sample::Server(ServerFrame::Error(FrameError {
                id: None,
                error: ErrorBody::new(ErrorCode::TokenRevoked, "you logged out; log in again"),
                supported_versions: None,
            })),
        ),
    ]
}

#[derive(Debug, PartialEq)]
enum Sample {
    Client(ClientFrame),
    Server(ServerFrame),
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn every_message_matches_its_golden_file_and_round_trips() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for (name, sample) in samples() {
        let value = match &sample {
            Sample::Client(f) => serde_json::to_value(f),
            Sample::Server(f) => serde_json::to_value(f),
        }
        .expect("serializable");
        let path = golden_dir().join(format!("{name}.json"));
        let pretty = serde_json::to_string_pretty(&value).expect("pretty") + "\n";
        if update {
            std::fs::write(&path, &pretty).expect("write golden");
            continue;
        }
        let Ok(file) = std::fs::read_to_string(&path) else {
            failures.push(format!("{name}: missing {}", path.display()));
            continue;
        };
        if file != pretty {
            failures.push(format!(
                "{name}: encoding differs from golden file:\n{pretty}"
            ));
        }
        let decoded = match &sample {
            Sample::Client(_) => wire::decode_client_frame(&file).map(Sample::Client),
            Sample::Server(_) => wire::decode_server_frame(&file).map(Sample::Server),
        };
        match decoded {
            Ok(d) if d == sample => {}
            Ok(d) => failures.push(format!("{name}: decodes to {d:?}")),
            Err(e) => failures.push(format!("{name}: does not decode: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_golden_file_is_a_known_sample() {
    let names: Vec<String> = samples().iter().map(|(n, _)| format!("{n}.json")).collect();
    for entry in std::fs::read_dir(golden_dir()).expect("golden dir") {
        let file = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        assert!(names.contains(&file), "stray golden file {file}");
    }
}

#[test]
fn every_op_has_a_golden_request() {
    let names: Vec<&str> = samples().iter().map(|(n, _)| *n).collect();
    for op in OP_NAMES {
        assert!(
            names.contains(&format!("op_{op}").as_str()),
            "no golden fixture for op {op}"
        );
    }
}
