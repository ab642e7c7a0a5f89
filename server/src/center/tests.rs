//! The center on a virtual clock: no sockets, no real time. Agents are
//! attached with channels so the tests see exactly the events a client would.

use std::sync::Arc;

use protocol::contact::{ConnectionKind, ConnectionState, ContactState, ContactView};
use protocol::endpoint::Endpoint;
use protocol::error::ErrorCode;
use protocol::wire::{Event, Op, OpResult, ServerFrame};
use protocol::Millis;

use super::Center;
use crate::config::Config;
use crate::limits::{Inbox, Outbox};
use crate::store::Store;

const CONFIG: &str = r#"
wrap_up_codes = ["Resolved"]
[server]
listen = "127.0.0.1:0"
ring_timeout_s = 20
external_answer_ms = 500
dev_plaintext_passwords = true
[[agent_states]]
name = "Available"
kind = "routable"
[[agent_states]]
name = "Lunch"
kind = "not_routable"
[[agent_states]]
name = "Offline"
kind = "offline"
[[queues]]
id = "support"
name = "Support"
max_contacts = 2
[[queues]]
id = "vip"
name = "VIP"
max_contacts = 5
[[queues]]
id = "night"
name = "Night"
max_contacts = 5
time_zone = "UTC"
hours = { mon = "22:00-23:00" }
[[queues]]
id = "brief"
name = "Brief"
max_contacts = 1
max_wait_s = 30
[[routing_profiles]]
id = "p"
name = "P"
queues = [{ queue = "vip", priority = 1 }, { queue = "support", priority = 2 }, { queue = "night", priority = 3 }]
[[agents]]
username = "alice"
password = "a"
name = "Alice"
routing_profile = "p"
[[agents]]
username = "bob"
password = "b"
name = "Bob"
routing_profile = "p"
[[quick_connects]]
id = "qc-bob"
name = "Bob"
kind = "agent"
agent = "bob"
[[quick_connects]]
id = "qc-support"
name = "Support"
kind = "queue"
queue = "support"
[[quick_connects]]
id = "qc-brief"
name = "Brief"
kind = "queue"
queue = "brief"
[customers."+819012345678"]
customerName = "Justin"
"#;

/// Tuesday 2026-11-24 10:00 UTC.
const T0: u64 = 1_795_514_400_000;

struct Rig {
    center: Center,
    now: Millis,
    rx: std::collections::HashMap<&'static str, Inbox>,
}

impl Rig {
    fn new() -> Rig {
        let cfg = Arc::new(Config::parse(CONFIG, "test").expect("config"));
        let center = Center::new(cfg, Store::in_memory().expect("db"), Millis(T0)).expect("center");
        let mut rig = Rig {
            center,
            now: Millis(T0),
            rx: Default::default(),
        };
        for agent in ["alice", "bob"] {
            let (tx, rx) = Outbox::new(4096, 64 << 20);
            rig.center.attach(agent, None, tx).expect("attach");
            rig.rx.insert(agent, rx);
        }
        rig
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now.plus_ms(ms);
        self.center.tick(self.now);
        self.center.check_index();
    }

    fn op(&mut self, agent: &str, op: Op) -> Result<OpResult, ErrorCode> {
        let result = self
            .center
            .handle(agent, op, self.now)
            .map_err(|e| e.code());
        self.center.check_index();
        result
    }

    fn ok(&mut self, agent: &str, op: Op) -> OpResult {
        let dbg = format!("{op:?}");
        self.op(agent, op)
            .unwrap_or_else(|e| panic!("{agent} {dbg}: {e}"))
    }

    fn available(&mut self, agent: &str) {
        self.ok(
            agent,
            Op::SetAgentState {
                state: "Available".into(),
            },
        );
    }

    fn call(&mut self, from: &str, queue: &str) -> String {
        self.center
            .place_inbound(from, queue, self.now)
            .expect("call placed")
    }

    /// A call from `from` into `queue`, routed to and accepted by `agent`
    /// (the only Available agent).
    fn answered(&mut self, agent: &str, from: &str, queue: &str) -> String {
        let c = self.call(from, queue);
        self.ok(
            agent,
            Op::Accept {
                contact_id: c.clone(),
            },
        );
        c
    }

    /// The phase the simulated caller of a live call is in.
    fn caller(&self, contact: &str) -> &'static str {
        self.center
            .caller_view(contact)
            .expect("the caller's call is live")
            .state
            .as_str()
    }

    fn view(&self, agent: &str, contact: &str) -> Option<ContactView> {
        self.center
            .snapshot(agent)?
            .contacts
            .into_iter()
            .find(|c| c.contact_id == contact)
    }

    fn state(&self, agent: &str) -> String {
        self.center
            .snapshot(agent)
            .expect("agent")
            .status
            .state
            .name
    }

    fn events(&mut self, agent: &str) -> Vec<Event> {
        let rx = self.rx.get_mut(agent).expect("agent");
        let mut out = Vec::new();
        while let Some(text) = rx.try_recv() {
            if let Ok(ServerFrame::Event(e)) = protocol::wire::decode_server_frame(&text) {
                out.push(e.event);
            }
        }
        out
    }

    fn conn_id(&self, agent: &str, contact: &str, kind: ConnectionKind) -> String {
        self.view(agent, contact)
            .expect("view")
            .connections
            .iter()
            .find(|c| c.kind == kind)
            .expect("connection")
            .connection_id
            .clone()
    }
}

fn is_incoming(v: &Option<ContactView>) -> bool {
    matches!(
        v.as_ref().map(|v| &v.state),
        Some(ContactState::Incoming { .. })
    )
}

#[test]
fn inbound_call_rings_longest_idle_agent_and_carries_customer_attributes() {
    let mut r = Rig::new();
    r.available("bob");
    r.advance(1_000);
    r.available("alice");
    r.advance(1_000);
    let c = r.call("+819012345678", "support");
    let v = r.view("bob", &c);
    assert!(is_incoming(&v), "bob idled longest");
    assert_eq!(v.expect("view").attributes["customerName"], "Justin");
    assert!(r.view("alice", &c).is_none());
}

#[test]
fn accept_hold_resume_end_and_clear_walk_the_agent_through_its_states() {
    let mut r = Rig::new();
    r.available("alice");
    let c = r.answered("alice", "+15550001111", "support");
    assert_eq!(r.state("alice"), "Busy");
    let cust = r.conn_id("alice", &c, ConnectionKind::Inbound);
    r.ok(
        "alice",
        Op::Hold {
            contact_id: c.clone(),
            connection_id: cust.clone(),
        },
    );
    assert_eq!(r.caller(&c), "hold");
    assert_eq!(
        r.op(
            "alice",
            Op::Hold {
                contact_id: c.clone(),
                connection_id: cust.clone()
            }
        ),
        Err(ErrorCode::InvalidState)
    );
    r.ok(
        "alice",
        Op::Resume {
            contact_id: c.clone(),
            connection_id: cust.clone(),
        },
    );
    assert_eq!(r.caller(&c), "connected");
    r.ok(
        "alice",
        Op::SetAgentState {
            state: "Lunch".into(),
        },
    );
    assert_eq!(r.state("alice"), "Busy", "next state waits for the contact");
    r.center.caller_hangup(&c, r.now).expect("hangup");
    assert_eq!(r.state("alice"), "AfterCallWork");
    assert!(matches!(
        r.view("alice", &c).expect("acw").state,
        ContactState::Ended { .. }
    ));
    assert_eq!(
        r.op(
            "alice",
            Op::Clear {
                contact_id: c.clone(),
                wrap_up_code: Some("Nope".into())
            }
        ),
        Err(ErrorCode::InvalidArgument)
    );
    r.ok(
        "alice",
        Op::Clear {
            contact_id: c.clone(),
            wrap_up_code: Some("Resolved".into()),
        },
    );
    assert_eq!(r.state("alice"), "Lunch");
    assert!(r.view("alice", &c).is_none());
    let record = r.center.store().contact(&c).expect("db").expect("record");
    assert_eq!(
        record.disconnect_reason.as_deref(),
        Some("customer_disconnect")
    );
    let names: Vec<&str> = record.events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        ["queued", "offered", "accepted", "hold", "resume", "ended", "cleared"]
    );
}

#[test]
fn ring_timeout_misses_the_agent_and_requeues_the_contact_in_place() {
    let mut r = Rig::new();
    r.available("alice");
    let c = r.call("+15550001111", "support");
    r.advance(19_999);
    assert!(is_incoming(&r.view("alice", &c)));
    r.advance(1);
    assert_eq!(r.state("alice"), "MissedCallAgent");
    assert!(matches!(
        r.view("alice", &c).expect("missed").state,
        ContactState::Missed { .. }
    ));
    assert_eq!(r.caller(&c), "queued");
    // Bob becomes available and gets it; alice dismisses by going available.
    r.available("bob");
    assert!(is_incoming(&r.view("bob", &c)));
    r.available("alice");
    assert!(r.view("alice", &c).is_none());
    assert_eq!(r.state("alice"), "Available");
}

#[test]
fn reject_requeues_and_skips_the_rejecting_agent_for_a_while() {
    let mut r = Rig::new();
    r.available("alice");
    let c = r.call("+15550001111", "support");
    r.ok(
        "alice",
        Op::Reject {
            contact_id: c.clone(),
        },
    );
    assert!(r.view("alice", &c).is_none());
    assert_eq!(r.state("alice"), "Available");
    r.advance(1_000);
    assert_eq!(r.caller(&c), "queued");
    r.advance(10_000);
    assert!(
        is_incoming(&r.view("alice", &c)),
        "re-offered after the pause"
    );
}

#[test]
fn full_and_closed_queues_refuse_with_a_recorded_reason() {
    let mut r = Rig::new();
    r.call("+15550000001", "support");
    r.call("+15550000002", "support");
    let full = r
        .center
        .place_inbound("+15550000003", "support", r.now)
        .expect_err("full");
    assert_eq!(full.body().code, ErrorCode::QueueFull);
    let rec = r
        .center
        .store()
        .contact(&full.contact_id)
        .expect("db")
        .expect("recorded");
    assert_eq!(rec.disconnect_reason.as_deref(), Some("queue_full"));
    let closed = r
        .center
        .place_inbound("+15550000004", "night", r.now)
        .expect_err("closed at 10:00");
    assert_eq!(closed.body().code, ErrorCode::QueueClosed);
    assert!(closed.body().message.contains("closed"));
    let bad = r
        .center
        .place_inbound("12345", "support", r.now)
        .expect_err("bad number");
    assert_eq!(bad.body().code, ErrorCode::InvalidArgument);
}

#[test]
fn priority_queue_is_served_first() {
    let mut r = Rig::new();
    let general = r.call("+15550000001", "support");
    r.advance(5_000);
    let vip = r.call("+15550000002", "vip");
    r.available("alice");
    assert!(is_incoming(&r.view("alice", &vip)));
    assert!(r.view("alice", &general).is_none());
}

#[test]
fn another_agents_contact_is_refused_and_unchanged() {
    let mut r = Rig::new();
    r.available("alice");
    let c = r.call("+15550001111", "support");
    let before = r.view("alice", &c);
    assert_eq!(
        r.op(
            "bob",
            Op::Accept {
                contact_id: c.clone()
            }
        ),
        Err(ErrorCode::NotOwner)
    );
    assert_eq!(
        r.op(
            "bob",
            Op::GetAttributes {
                contact_id: c.clone()
            }
        ),
        Err(ErrorCode::NotOwner)
    );
    assert_eq!(
        r.op(
            "bob",
            Op::Accept {
                contact_id: "c-nope".into()
            }
        ),
        Err(ErrorCode::NotFound)
    );
    assert_eq!(r.view("alice", &c), before);
}

#[test]
fn consult_then_conference_then_complete_transfer() {
    let mut r = Rig::new();
    r.available("alice");
    let c = r.answered("alice", "+819012345678", "support");
    r.available("bob");
    r.ok(
        "alice",
        Op::AddConnection {
            contact_id: c.clone(),
            endpoint: qc("qc-bob"),
        },
    );
    let v = r.view("alice", &c).expect("view");
    assert!(matches!(
        v.initial_connection().expect("customer").state,
        ConnectionState::Hold { .. }
    ));
    assert!(is_incoming(&r.view("bob", &c)));
    r.ok(
        "bob",
        Op::Accept {
            contact_id: c.clone(),
        },
    );
    let v = r.view("alice", &c).expect("view");
    assert!(v.can_toggle());
    r.ok(
        "alice",
        Op::Toggle {
            contact_id: c.clone(),
        },
    );
    let v = r.view("alice", &c).expect("view");
    assert!(matches!(
        v.initial_connection().expect("customer").state,
        ConnectionState::Connected { .. }
    ));
    r.ok(
        "alice",
        Op::Conference {
            contact_id: c.clone(),
        },
    );
    let v = r.view("alice", &c).expect("view");
    assert_eq!(
        v.active_others()
            .filter(|c| matches!(c.state, ConnectionState::Connected { .. }))
            .count(),
        2
    );
    let own = r.conn_id("alice", &c, ConnectionKind::Agent);
    r.ok(
        "alice",
        Op::EndConnection {
            contact_id: c.clone(),
            connection_id: own,
        },
    );
    assert_eq!(r.state("alice"), "AfterCallWork");
    assert_eq!(r.state("bob"), "Busy");
    assert_eq!(r.caller(&c), "connected");
    assert_eq!(
        r.view("bob", &c).expect("bob").attributes["customerName"],
        "Justin"
    );
    r.center.caller_hangup(&c, r.now).expect("hangup");
    assert_eq!(r.state("bob"), "AfterCallWork");
}

#[test]
fn cold_transfer_through_a_queue() {
    let mut r = Rig::new();
    r.available("alice");
    let c = r.answered("alice", "+15550001111", "vip");
    r.ok(
        "alice",
        Op::AddConnection {
            contact_id: c.clone(),
            endpoint: qc("qc-support"),
        },
    );
    let own = r.conn_id("alice", &c, ConnectionKind::Agent);
    r.ok(
        "alice",
        Op::EndConnection {
            contact_id: c.clone(),
            connection_id: own,
        },
    );
    assert_eq!(r.caller(&c), "hold");
    r.available("bob");
    assert!(is_incoming(&r.view("bob", &c)));
    r.ok(
        "bob",
        Op::Accept {
            contact_id: c.clone(),
        },
    );
    assert_eq!(r.caller(&c), "connected");
}

#[test]
fn digits_reach_the_caller_and_both_sides_see_events() {
    let mut r = Rig::new();
    r.available("alice");
    let c = r.answered("alice", "+15550001111", "support");
    let cust = r.conn_id("alice", &c, ConnectionKind::Inbound);
    assert_eq!(
        r.op(
            "alice",
            Op::SendDigits {
                contact_id: c.clone(),
                connection_id: cust.clone(),
                digits: "12x".into()
            }
        ),
        Err(ErrorCode::InvalidArgument)
    );
    r.ok(
        "alice",
        Op::SendDigits {
            contact_id: c.clone(),
            connection_id: cust,
            digits: "123#".into(),
        },
    );
    assert_eq!(
        r.center.caller_view(&c).expect("caller").digits_heard,
        "123#"
    );
    r.center
        .caller_digits(&c, "9", r.now)
        .expect("caller digits");
    let digits: Vec<String> = r
        .events("alice")
        .into_iter()
        .filter_map(|e| match e {
            Event::Digits { digits, .. } => Some(digits),
            _ => None,
        })
        .collect();
    assert_eq!(digits, ["123#", "9"]);
}

#[test]
fn outbound_call_dials_then_connects_when_answered() {
    let mut r = Rig::new();
    r.available("alice");
    let OpResult::ContactCreated { contact_id } = r.ok(
        "alice",
        Op::Connect {
            endpoint: Endpoint::phone_number("+14155550100"),
        },
    ) else {
        panic!("no contact")
    };
    assert_eq!(r.state("alice"), "CallingCustomer");
    r.advance(500);
    assert!(matches!(
        r.view("alice", &contact_id).expect("view").state,
        ContactState::Connected { .. }
    ));
    assert_eq!(r.state("alice"), "Busy");
    assert_eq!(
        r.op(
            "alice",
            Op::Connect {
                endpoint: Endpoint::phone_number("+14155550101")
            }
        ),
        Err(ErrorCode::InvalidState)
    );
    assert_eq!(
        r.op(
            "bob",
            Op::Connect {
                endpoint: Endpoint::phone_number("555")
            }
        ),
        Err(ErrorCode::InvalidArgument)
    );
}

#[test]
fn resume_replays_missed_events_or_falls_back_to_a_snapshot() {
    let mut r = Rig::new();
    r.available("alice");
    let snap = r.center.snapshot("alice").expect("snap");
    let session = {
        let (tx, _rx) = Outbox::new(4096, 64 << 20);
        let (_, frames) = r.center.attach("alice", None, tx).expect("attach");
        match &frames[0] {
            ServerFrame::Welcome(w) => w.session.clone(),
            other => panic!("{other:?}"),
        }
    };
    let c = r.call("+15550001111", "support");
    let (tx, _rx) = Outbox::new(4096, 64 << 20);
    let resume = protocol::wire::ResumeFrom {
        session: session.clone(),
        last_seq: snap.seq,
    };
    let (_, frames) = r.center.attach("alice", Some(&resume), tx).expect("attach");
    assert!(matches!(&frames[0], ServerFrame::Welcome(w) if w.resumed));
    assert!(frames[1..].iter().any(|f| matches!(f, ServerFrame::Event(e) if matches!(&e.event, Event::ContactUpdated(v) if v.contact_id == c))));
    let (tx, _rx) = Outbox::new(4096, 64 << 20);
    let stale = protocol::wire::ResumeFrom {
        session: "s-other".into(),
        last_seq: 1,
    };
    let (_, frames) = r.center.attach("alice", Some(&stale), tx).expect("attach");
    assert!(matches!(&frames[1], ServerFrame::Snapshot(s) if s.contacts.len() == 1));
}

fn qc(id: &str) -> Endpoint {
    Endpoint {
        id: id.into(),
        kind: protocol::endpoint::EndpointKind::Agent,
        name: String::new(),
        phone_number: None,
        agent: None,
        queue: None,
    }
}

#[test]
fn a_contact_waiting_past_max_wait_leaves_the_queue_with_a_recorded_reason() {
    let mut r = Rig::new();
    // Nobody serves `brief`: its one place stays taken until the wait ends.
    let first = r.call("+15550000001", "brief");
    let full = r
        .center
        .place_inbound("+15550000002", "brief", r.now)
        .expect_err("one place, taken");
    assert_eq!(full.body().code, ErrorCode::QueueFull);
    r.advance(29_999);
    assert_eq!(r.caller(&first), "queued");
    r.advance(1);
    assert!(
        r.center
            .caller_view(&first)
            .is_none_or(|v| v.state.as_str() == "ended"),
        "the caller left the queue at 30 s"
    );
    let rec = r
        .center
        .store()
        .contact(&first)
        .expect("db")
        .expect("recorded");
    assert_eq!(rec.disconnect_reason.as_deref(), Some("queue_timeout"));
    assert!(rec
        .events
        .iter()
        .any(|e| e.event == "queue_timeout" && e.detail.as_deref() == Some("brief")));
    let next = r.call("+15550000003", "brief");
    assert_eq!(r.caller(&next), "queued");
}

#[test]
fn a_transfer_into_a_queue_that_times_out_is_withdrawn_and_the_agent_keeps_the_call() {
    let mut r = Rig::new();
    r.available("alice");
    let c = r.answered("alice", "+15550001111", "vip");
    r.ok(
        "alice",
        Op::AddConnection {
            contact_id: c.clone(),
            endpoint: qc("qc-brief"),
        },
    );
    let third_parties = |r: &Rig| {
        r.view("alice", &c)
            .expect("view")
            .connections
            .iter()
            .filter(|x| x.kind == ConnectionKind::ThirdParty)
            .count()
    };
    assert_eq!(third_parties(&r), 1, "the queue is being reached");
    r.advance(29_000);
    assert_eq!(third_parties(&r), 1);
    r.advance(1_000);
    assert_eq!(third_parties(&r), 0, "the queue leg is withdrawn");
    assert!(matches!(
        r.view("alice", &c).expect("view").state,
        ContactState::Connected { .. }
    ));
    assert_ne!(r.caller(&c), "ended");
    let rec = r.center.store().contact(&c).expect("db").expect("recorded");
    assert_eq!(rec.disconnect_reason, None, "the call goes on");
    assert!(rec.events.iter().any(|e| e.event == "queue_timeout"));
}

#[test]
fn shutdown_ends_live_calls_with_a_reason_destroys_every_view_and_refuses_new_calls() {
    let mut r = Rig::new();
    r.available("alice");
    r.available("bob");
    let live = r.call("+15550001111", "support");
    let owner = if r.view("alice", &live).is_some() {
        "alice"
    } else {
        "bob"
    };
    r.ok(
        owner,
        Op::Accept {
            contact_id: live.clone(),
        },
    );
    let ringing = r.call("+15550002222", "support");
    let ringer = if owner == "alice" { "bob" } else { "alice" };
    assert!(is_incoming(&r.view(ringer, &ringing)));
    let queued = r.call("+15550003333", "support");
    r.events("alice");
    r.events("bob");

    assert_eq!(r.center.shutdown("backend_shutdown", r.now), 3);
    let events = r.events(owner);
    let ended = events.iter().position(|e| {
        matches!(e, Event::ContactUpdated(v) if v.contact_id == live
            && matches!(&v.state, ContactState::Ended { reason, .. } if reason == "backend_shutdown"))
    });
    let destroyed = events
        .iter()
        .position(|e| matches!(e, Event::ContactDestroyed { contact_id } if *contact_id == live));
    assert!(
        ended.is_some() && destroyed > ended,
        "ended with the reason, then destroyed: {events:?}"
    );
    assert!(r
        .events(ringer)
        .iter()
        .any(|e| matches!(e, Event::ContactDestroyed { contact_id } if *contact_id == ringing)));
    assert_eq!(r.center.live_calls(), 0);
    for id in [&live, &ringing, &queued] {
        let rec = r.center.store().contact(id).expect("db").expect("record");
        assert_eq!(rec.disconnect_reason.as_deref(), Some("backend_shutdown"));
        assert!(rec.ended_at.is_some());
    }
    assert!(r.center.is_stopping());
    let refused = r
        .center
        .place_inbound("+15550004444", "support", r.now)
        .expect_err("refused while stopping");
    assert_eq!(refused.body().code, ErrorCode::Internal);
}

#[test]
fn a_mute_is_lifted_when_the_call_ends_so_the_next_call_starts_unmuted() {
    let mut r = Rig::new();
    r.available("alice");
    let c = r.answered("alice", "+819012345678", "support");
    r.ok("alice", Op::Mute);
    assert!(r.center.snapshot("alice").expect("snap").muted);
    r.events("alice");
    r.center.caller_hangup(&c, r.now).expect("hangup");
    assert!(
        !r.center.snapshot("alice").expect("snap").muted,
        "no live call left: the mute is lifted"
    );
    assert!(r
        .events("alice")
        .iter()
        .any(|e| matches!(e, Event::MuteChanged { muted: false })));
    r.ok(
        "alice",
        Op::Clear {
            contact_id: c,
            wrap_up_code: None,
        },
    );
    let next = r.call("+819012345678", "support");
    r.ok("alice", Op::Accept { contact_id: next });
    assert!(!r.center.snapshot("alice").expect("snap").muted);
}

#[test]
fn a_newer_socket_for_the_agent_tells_the_older_one_it_was_replaced() {
    let mut r = Rig::new();
    let (tx, mut newer) = Outbox::new(4096, 64 << 20);
    r.center.attach("alice", None, tx).expect("attach");
    let told: Vec<ServerFrame> = std::iter::from_fn(|| r.rx.get_mut("alice")?.try_recv())
        .filter_map(|t| protocol::wire::decode_server_frame(&t).ok())
        .collect();
    assert!(
        told.iter().any(|f| matches!(f, ServerFrame::Error(e)
            if e.error.code == ErrorCode::SessionReplaced && e.id.is_none())),
        "{told:?}"
    );
    // Events now go to the newer socket only.
    r.available("alice");
    assert!(r.events("alice").is_empty());
    let to_newer: Vec<String> = std::iter::from_fn(|| newer.try_recv()).collect();
    assert!(to_newer.iter().any(|t| t.contains("agent_state_changed")));
}

/// A number added through a (stand-in) SIP trunk: the gateway gets a dial
/// naming the new connection, which stays `connecting` (no simulated
/// answer); busy disconnects it with the typed reason and resumes the
/// customer; a number that answers is connected, conferenced, and keeps
/// the customer when the agent leaves; its hang-up then ends the call.
#[test]
fn a_number_through_the_trunk_fails_typed_conferences_and_takes_the_call_over() {
    use super::TrunkFailure;
    let mut r = Rig::new();
    let (tx, mut dials) = tokio::sync::mpsc::channel(4);
    r.center.set_trunk(tx);
    r.available("alice");
    let c = r.answered("alice", "+819012345678", "support");
    let customer = r.conn_id("alice", &c, ConnectionKind::Inbound);
    let add = |r: &mut Rig| match r.ok(
        "alice",
        Op::AddConnection {
            contact_id: c.clone(),
            endpoint: Endpoint::phone_number("+15550142"),
        },
    ) {
        OpResult::ConnectionAdded { connection_id } => connection_id,
        other => panic!("add_connection: {other:?}"),
    };
    let state_of = |r: &Rig, k: &str| {
        r.view("alice", &c)
            .expect("view")
            .connections
            .iter()
            .find(|x| x.connection_id == k)
            .map(|x| x.state.clone())
            .expect("connection")
    };
    let k = add(&mut r);
    let d = dials.try_recv().expect("the gateway got a dial");
    assert_eq!(d.third_party.as_deref(), Some(k.as_str()));
    assert_eq!(
        (d.number.as_str(), d.contact_id.as_str()),
        ("+15550142", c.as_str())
    );
    r.advance(5_000); // a simulated far end would have answered by now
    assert!(matches!(
        state_of(&r, &k),
        ConnectionState::Connecting { .. }
    ));
    assert!(matches!(
        state_of(&r, &customer),
        ConnectionState::Hold { .. }
    ));
    r.center
        .third_party_failed(&c, &k, TrunkFailure::Busy, "SIP 486", r.now);
    assert!(
        matches!(state_of(&r, &k), ConnectionState::Disconnected { ref reason, .. } if reason == "busy")
    );
    assert!(matches!(
        state_of(&r, &customer),
        ConnectionState::Connected { .. }
    ));
    assert!(!r.center.third_party_live(&c, &k));

    let k2 = add(&mut r);
    let d2 = dials.try_recv().expect("a second dial");
    assert_ne!(d2.leg, 0);
    assert!(r.center.third_party_answered(&c, &k2, r.now));
    assert!(matches!(
        state_of(&r, &k2),
        ConnectionState::Connected { .. }
    ));
    assert!(matches!(
        state_of(&r, &customer),
        ConnectionState::Hold { .. }
    ));
    r.ok(
        "alice",
        Op::Conference {
            contact_id: c.clone(),
        },
    );
    assert!(matches!(
        state_of(&r, &customer),
        ConnectionState::Connected { .. }
    ));
    let own = r.conn_id("alice", &c, ConnectionKind::Agent);
    r.ok(
        "alice",
        Op::EndConnection {
            contact_id: c.clone(),
            connection_id: own,
        },
    );
    let caller = r.center.caller_view(&c).expect("the call goes on");
    assert_eq!(caller.state.as_str(), "connected", "handed over");
    assert!(r.center.third_party_live(&c, &k2));
    r.center
        .third_party_hangup(&c, &k2, "third_party_disconnect", r.now);
    assert!(r
        .center
        .caller_view(&c)
        .is_none_or(|v| v.state.as_str() == "ended"));
    assert!(!r.center.third_party_live(&c, &k2));
}
