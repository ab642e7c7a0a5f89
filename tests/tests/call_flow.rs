//! Two agents and simulated callers through a real backend over real
//! WebSockets: login, Available, inbound call with the customer's order as
//! attributes, accept, hold, resume, DTMF, consult transfer to the other
//! agent, conference, leave, hang up, after-call work, clear; then the
//! stored contact record.

use protocol::contact::{ConnectionKind, ConnectionState, ContactState};
use protocol::wire::{Event, Op, OpResult};
use streams_sdk::{ContactChange, Output};
use switchboard_tests::*;

fn contact<'a>(c: &'a Client, id: &str) -> Option<&'a protocol::ContactView> {
    c.state().contacts.get(id)
}

fn conn_id(c: &Client, id: &str, kind: ConnectionKind) -> String {
    contact(c, id)
        .and_then(|v| v.connections.iter().find(|k| k.kind == kind))
        .expect("connection")
        .connection_id
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_take_transfer_conference_and_wrap_up_a_call() {
    let dir = temp_dir("flow");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;

    let mut alice = Client::connect(addr, &login(addr, "alice", "alice-pass").await).await;
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;
    assert_eq!(alice.agent_state(), "Offline");
    alice.set_available().await;
    assert_eq!(alice.agent_state(), "Available");

    // An inbound call rings alice, carrying the customer's latest order.
    let c = sim_call(addr, "+819012345678", "support").await;
    alice
        .wait_for("incoming call", |a| contact(a, &c).is_some())
        .await;
    assert!(alice
        .log
        .iter()
        .any(|o| matches!(o, Output::Contact(ContactChange::Incoming(v)) if v.contact_id == c)));
    let v = contact(&alice, &c).expect("view");
    assert_eq!(v.attributes["customerName"], "Justin");
    assert_eq!(
        v.attributes["item"],
        "The North Face Summit L3 Ventrix 2.0 Hoodie"
    );
    assert_eq!(v.attributes["shippingDate"], "2018-11-12");
    assert_eq!(v.queue.as_ref().map(|q| q.name.as_str()), Some("Support"));

    alice
        .ok(Op::Accept {
            contact_id: c.clone(),
        })
        .await;
    alice.wait_for("busy", |a| a.agent_state() == "Busy").await;
    let customer = conn_id(&alice, &c, ConnectionKind::Inbound);

    alice
        .ok(Op::Hold {
            contact_id: c.clone(),
            connection_id: customer.clone(),
        })
        .await;
    let (_, caller) = sim_http(addr, "GET", &format!("/v1/sim/calls/{c}"), None).await;
    assert_eq!(caller["state"], "hold");
    alice
        .ok(Op::Resume {
            contact_id: c.clone(),
            connection_id: customer.clone(),
        })
        .await;
    alice
        .ok(Op::SendDigits {
            contact_id: c.clone(),
            connection_id: customer.clone(),
            digits: "42#".into(),
        })
        .await;
    let (_, caller) = sim_http(addr, "GET", &format!("/v1/sim/calls/{c}"), None).await;
    assert_eq!(caller["state"], "connected");
    assert_eq!(caller["digits_heard"], "42#");

    // Caller presses a key; the agent sees it.
    let (status, _) = sim_http(
        addr,
        "POST",
        &format!("/v1/sim/calls/{c}/digits"),
        Some(r#"{"digits":"7"}"#),
    )
    .await;
    assert_eq!(status, 204);
    alice
        .wait_for("caller digits", |a| {
            a.log
                .iter()
                .any(|o| matches!(o, Output::Event(Event::Digits { digits, .. }) if digits == "7"))
        })
        .await;

    // Consult bob via quick connect; the customer waits on hold.
    bob.ok(Op::SetAgentState {
        state: "Available".into(),
    })
    .await;
    let OpResult::QuickConnects {
        endpoints,
        availability,
    } = alice.ok(Op::ListQuickConnects).await
    else {
        panic!("quick connects")
    };
    // Bob is connected, Available and free: he can take the call now; the
    // list names no availability for what is not an agent.
    assert_eq!(
        availability.get("qc-bob"),
        Some(&protocol::wire::Availability::Available)
    );
    assert!(endpoints
        .iter()
        .filter(|e| e.agent.is_none())
        .all(|e| !availability.contains_key(&e.id)));
    let qc_bob = endpoints
        .into_iter()
        .find(|e| e.id == "qc-bob")
        .expect("qc-bob listed");
    alice
        .ok(Op::AddConnection {
            contact_id: c.clone(),
            endpoint: qc_bob,
        })
        .await;
    bob.wait_for("transfer rings bob", |b| {
        matches!(
            contact(b, &c).map(|v| &v.state),
            Some(ContactState::Incoming { .. })
        )
    })
    .await;
    bob.ok(Op::Accept {
        contact_id: c.clone(),
    })
    .await;
    alice
        .wait_for("bob connected", |a| {
            contact(a, &c).is_some_and(|v| {
                v.third_party_connections()
                    .any(|k| matches!(k.state, ConnectionState::Connected { .. }))
            })
        })
        .await;
    let v = contact(&alice, &c).expect("view");
    assert!(matches!(
        v.initial_connection().expect("customer").state,
        ConnectionState::Hold { .. }
    ));
    // On the call, bob is busy for a quick connect.
    let OpResult::QuickConnects { availability, .. } = alice.ok(Op::ListQuickConnects).await else {
        panic!("quick connects")
    };
    assert_eq!(
        availability.get("qc-bob"),
        Some(&protocol::wire::Availability::Busy)
    );

    // Conference everyone, then alice leaves: bob keeps the customer.
    alice
        .ok(Op::Conference {
            contact_id: c.clone(),
        })
        .await;
    alice
        .wait_for("conference", |a| {
            contact(a, &c).is_some_and(|v| {
                matches!(
                    v.initial_connection().map(|k| &k.state),
                    Some(ConnectionState::Connected { .. })
                )
            })
        })
        .await;
    let own = conn_id(&alice, &c, ConnectionKind::Agent);
    alice
        .ok(Op::EndConnection {
            contact_id: c.clone(),
            connection_id: own,
        })
        .await;
    alice
        .wait_for("alice in ACW", |a| a.agent_state() == "AfterCallWork")
        .await;
    assert!(alice
        .log
        .iter()
        .any(|o| matches!(o, Output::Contact(ContactChange::Ended(v)) if v.contact_id == c)));
    bob.wait_for("bob busy", |b| b.agent_state() == "Busy")
        .await;

    // The caller hangs up; bob wraps up too.
    let (status, _) = sim_http(addr, "DELETE", &format!("/v1/sim/calls/{c}"), None).await;
    assert_eq!(status, 204);
    bob.wait_for("bob in ACW", |b| b.agent_state() == "AfterCallWork")
        .await;
    alice
        .ok(Op::Clear {
            contact_id: c.clone(),
            wrap_up_code: Some("Resolved".into()),
        })
        .await;
    bob.ok(Op::Clear {
        contact_id: c.clone(),
        wrap_up_code: None,
    })
    .await;
    alice
        .wait_for("alice available", |a| {
            a.agent_state() == "Available" && a.state().contacts.is_empty()
        })
        .await;
    bob.wait_for("bob available", |b| {
        b.agent_state() == "Available" && b.state().contacts.is_empty()
    })
    .await;

    // The record is in SQLite with its whole timeline.
    let token = login(addr, "alice", "alice-pass").await;
    let (status, record) =
        server::sim::http_request(addr, "GET", &format!("/v1/contacts/{c}"), None)
            .await
            .expect("http");
    assert_eq!(status, 401, "records need a token: {record}");
    let record = stored_contact(&running, &c);
    assert_eq!(
        record.disconnect_reason.as_deref(),
        Some("customer_disconnect")
    );
    let events: Vec<&str> = record.events.iter().map(|e| e.event.as_str()).collect();
    for expected in [
        "queued",
        "offered",
        "accepted",
        "hold",
        "resume",
        "digits",
        "add_connection",
        "conference",
        "agent_left",
        "ended",
        "cleared",
    ] {
        assert!(
            events.contains(&expected),
            "{expected} missing from {events:?}"
        );
    }
    assert!(!token.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_socket_resumes_the_call_without_losing_or_duplicating_it() {
    let dir = temp_dir("resume");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let mut alice = Client::connect(addr, &login(addr, "alice", "alice-pass").await).await;
    alice.set_available().await;
    let c = sim_call(addr, "+15550001111", "support").await;
    alice.wait_for("ring", |a| contact(a, &c).is_some()).await;
    alice
        .ok(Op::Accept {
            contact_id: c.clone(),
        })
        .await;
    alice
        .wait_for("connected", |a| a.agent_state() == "Busy")
        .await;

    // The socket dies; meanwhile the caller presses keys (events are missed).
    alice.ws_close().await;
    let (status, _) = sim_http(
        addr,
        "POST",
        &format!("/v1/sim/calls/{c}/digits"),
        Some(r#"{"digits":"5"}"#),
    )
    .await;
    assert_eq!(status, 204);
    alice.reconnect(addr).await;
    assert!(
        alice
            .log
            .iter()
            .any(|o| matches!(o, Output::Ready { resumed: true })),
        "events were replayed, not re-snapshotted"
    );
    alice
        .wait_for("missed digits replayed", |a| {
            a.log
                .iter()
                .any(|o| matches!(o, Output::Event(Event::Digits { digits, .. }) if digits == "5"))
        })
        .await;
    assert_eq!(alice.state().contacts.len(), 1);
    assert!(matches!(
        contact(&alice, &c).map(|v| &v.state),
        Some(ContactState::Connected { .. })
    ));
    // The call still works after the reconnect.
    let customer = conn_id(&alice, &c, ConnectionKind::Inbound);
    alice
        .ok(Op::Hold {
            contact_id: c.clone(),
            connection_id: customer,
        })
        .await;
    let _ = std::fs::remove_dir_all(dir);
}
