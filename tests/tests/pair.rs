//! The contact center and client sessions stepped together in memory on
//! a virtual clock, in the shape of quinn-proto's `Pair`: no sockets, no
//! threads, no real time. The center (server/src/center) is driven with
//! the frames the clients' sans-IO `Session`s (streams-sdk) produce, and
//! what the center queues for an agent is fed back to that agent's
//! session, exactly as the socket driver (server/src/ws.rs) does it. Time
//! jumps to the next deadline of the center or a session, so a 20 s ring
//! timeout costs microseconds. Ids come from a seeded generator, so a
//! failing run repeats.

use std::collections::HashMap;
use std::sync::Arc;

use protocol::contact::ContactState;
use protocol::wire::{decode_client_frame, encode, ClientFrame, Op, Response, ServerFrame};
use protocol::Millis;
use server::center::{Center, SeededRng};
use server::config::Config;
use server::limits::{Inbox, Outbox};
use server::store::Store;
use streams_sdk::{ContactChange, Output, Session};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
ring_timeout_s = 20
dev_plaintext_passwords = true
[[agent_states]]
name = "Available"
kind = "routable"
[[agent_states]]
name = "Offline"
kind = "offline"
[[queues]]
id = "support"
name = "Support"
max_contacts = 10
[[routing_profiles]]
id = "p"
name = "P"
queues = [{ queue = "support", priority = 1 }]
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
"#;

/// Tuesday 2026-11-24 10:00 UTC.
const T0: u64 = 1_795_514_400_000;

/// One agent's client: its session, and the socket it may have.
struct Client {
    session: Session,
    /// The attached socket: the center's attachment id and the queue the
    /// center writes to.
    socket: Option<(u64, Inbox)>,
    /// Everything the session reported, oldest first.
    outputs: Vec<Output>,
}

/// The center and its clients on one virtual clock.
struct Pair {
    center: Center,
    now: Millis,
    clients: HashMap<&'static str, Client>,
    /// How many times the clock moved (each move ticks the center once).
    steps: u32,
}

impl Pair {
    fn new() -> Pair {
        let cfg = Arc::new(Config::parse(CONFIG, "pair").expect("config"));
        let center = Center::with_rng(
            cfg,
            Store::in_memory().expect("store"),
            Millis(T0),
            Box::new(SeededRng::new(7)),
        )
        .expect("center");
        Pair {
            center,
            now: Millis(T0),
            clients: HashMap::new(),
            steps: 0,
        }
    }

    /// Opens a socket for `agent` and says `hello` (with a resume point
    /// when the session had one).
    fn connect(&mut self, agent: &'static str) {
        let client = self.clients.entry(agent).or_insert_with(|| Client {
            session: Session::new("token", 5_000),
            socket: None,
            outputs: Vec::new(),
        });
        let Ok(ClientFrame::Hello(hello)) = decode_client_frame(&client.session.hello()) else {
            panic!("hello frame");
        };
        let (tx, rx) = Outbox::new(4096, 1 << 20);
        let (id, frames) = self
            .center
            .attach(agent, hello.resume.as_ref(), tx.clone())
            .expect("attach");
        // As the socket driver does: the first frames go out before any event.
        for f in frames {
            assert!(tx.push(encode(&f)));
        }
        client.socket = Some((id, rx));
        self.deliver();
    }

    /// The socket drops (the center detaches it; the session learns it).
    fn disconnect(&mut self, agent: &'static str) {
        let client = self.clients.get_mut(agent).expect("client");
        if let Some((id, _)) = client.socket.take() {
            self.center.detach(agent, id);
        }
        let out = client.session.disconnected();
        client.outputs.extend(out);
    }

    /// Sends `op` from `agent`'s session through the center, as the socket
    /// driver does: the events the op caused reach the session first, then
    /// the response.
    fn request(&mut self, agent: &'static str, op: Op) -> u64 {
        let client = self.clients.get_mut(agent).expect("client");
        let (id, text) = client.session.request(op, self.now);
        let connected = client.socket.is_some();
        let Ok(ClientFrame::Request(req)) = decode_client_frame(&text) else {
            panic!("request frame");
        };
        if !connected {
            // Lost on the way; the session's deadline will fail it.
            return id;
        }
        let response = match self.center.handle(agent, req.op, self.now) {
            Ok(result) => Response::ok(req.id, result),
            Err(e) => Response::err(req.id, e.body()),
        };
        self.deliver();
        let now = self.now;
        let client = self.clients.get_mut(agent).expect("client");
        let frame = encode(&ServerFrame::Response(response));
        let out = client.session.handle_text(&frame, now).expect("frame");
        client.outputs.extend(out);
        id
    }

    /// Hands every queued frame to its session.
    fn deliver(&mut self) {
        let now = self.now;
        for client in self.clients.values_mut() {
            let Some((_, rx)) = client.socket.as_mut() else {
                continue;
            };
            while let Some(text) = rx.try_recv() {
                let out = client.session.handle_text(&text, now).expect("frame");
                client.outputs.extend(out);
            }
        }
    }

    /// Advances the clock by `ms`, stopping at every deadline of the
    /// center or a session on the way.
    fn advance(&mut self, ms: u64) {
        let end = self.now.plus_ms(ms);
        loop {
            let next = self
                .clients
                .values()
                .filter_map(|c| c.session.next_deadline())
                .chain(self.center.next_deadline(self.now))
                .filter(|t| *t > self.now && *t <= end)
                .min()
                .unwrap_or(end);
            self.now = next;
            self.steps += 1;
            self.center.tick(self.now);
            let now = self.now;
            for client in self.clients.values_mut() {
                let out = client.session.poll_timeouts(now);
                client.outputs.extend(out);
            }
            self.deliver();
            if self.now >= end {
                break;
            }
        }
    }

    /// Takes what `agent`'s session reported so far.
    fn take(&mut self, agent: &'static str) -> Vec<Output> {
        std::mem::take(&mut self.clients.get_mut(agent).expect("client").outputs)
    }

    fn available(&mut self, agent: &'static str) {
        self.request(
            agent,
            Op::SetAgentState {
                state: "Available".into(),
            },
        );
    }

    /// A caller dials `support` (the center learns it at once).
    fn caller_dials(&mut self) -> String {
        let contact = self
            .center
            .place_inbound("+15550000001", "support", self.now)
            .expect("placed");
        self.deliver();
        contact
    }

    /// `agent` (connected and available) is offered a new call and accepts
    /// it: the contact, and the id of the accept request.
    fn accepted_call(&mut self, agent: &'static str) -> (String, u64) {
        let contact = self.caller_dials();
        let accept = self.request(
            agent,
            Op::Accept {
                contact_id: contact.clone(),
            },
        );
        (contact, accept)
    }

    /// The contact state `agent`'s session holds for `contact`.
    fn client_contact_state(&self, agent: &'static str, contact: &str) -> Option<ContactState> {
        self.clients[agent]
            .session
            .state
            .contacts
            .get(contact)
            .map(|v| v.state.clone())
    }
}

fn incoming(outputs: &[Output]) -> Option<String> {
    outputs.iter().find_map(|o| match o {
        Output::Contact(ContactChange::Incoming(v)) => Some(v.contact_id.clone()),
        _ => None,
    })
}

fn replied_ok(outputs: &[Output], id: u64) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::Reply { id: i, result: Ok(_) } if *i == id))
}

#[test]
fn a_ring_timeout_misses_the_agent_and_offers_the_next_one() {
    let mut p = Pair::new();
    p.connect("alice");
    p.connect("bob");
    p.available("alice");
    p.advance(1_000);
    p.available("bob");
    let _ = (p.take("alice"), p.take("bob"));
    let contact = p.caller_dials();
    let alice = p.take("alice");
    assert_eq!(
        incoming(&alice).as_deref(),
        Some(contact.as_str()),
        "alice idled longest"
    );
    assert!(incoming(&p.take("bob")).is_none());

    // Nobody answers: 20 s of ringing pass in a few steps.
    let steps = p.steps;
    p.advance(25_000);
    assert!(
        p.steps - steps <= 3,
        "the clock jumped to the deadline ({} steps)",
        p.steps - steps
    );
    let alice = p.take("alice");
    assert!(
        alice.iter().any(
            |o| matches!(o, Output::Contact(ContactChange::Missed(v)) if v.contact_id == contact)
        ),
        "alice missed it: {alice:?}"
    );
    assert_eq!(
        p.clients["alice"]
            .session
            .state
            .agent
            .as_ref()
            .map(|a| a.status.state.name.clone())
            .as_deref(),
        Some("MissedCallAgent")
    );
    let bob = p.take("bob");
    assert_eq!(
        incoming(&bob).as_deref(),
        Some(contact.as_str()),
        "bob is offered next"
    );
    let accept = p.request(
        "bob",
        Op::Accept {
            contact_id: contact.clone(),
        },
    );
    assert!(replied_ok(&p.take("bob"), accept));
    assert!(matches!(
        p.client_contact_state("bob", &contact),
        Some(ContactState::Connected { .. })
    ));
    let record = p
        .center
        .store()
        .contact(&contact)
        .expect("store")
        .expect("record");
    let timeline: Vec<(Option<&str>, &str)> = record
        .events
        .iter()
        .map(|e| (e.agent.as_deref(), e.event.as_str()))
        .collect();
    assert_eq!(
        timeline,
        vec![
            (None, "queued"),
            (Some("alice"), "offered"),
            (Some("alice"), "missed"),
            (Some("bob"), "offered"),
            (Some("bob"), "accepted"),
        ]
    );
}

#[test]
fn a_reconnect_resumes_the_events_missed_while_the_socket_was_down() {
    let mut p = Pair::new();
    p.connect("alice");
    p.available("alice");
    let (contact, accept) = p.accepted_call("alice");
    assert!(replied_ok(&p.take("alice"), accept));

    // The socket drops mid-call; the caller hangs up meanwhile.
    p.disconnect("alice");
    p.advance(3_000);
    p.center
        .caller_hangup(&contact, p.now)
        .expect("caller hangs up");
    p.advance(1_000);
    assert!(matches!(
        p.client_contact_state("alice", &contact),
        Some(ContactState::Connected { .. })
    ));

    // The same session comes back and resumes from its last event.
    p.connect("alice");
    let out = p.take("alice");
    assert!(
        out.contains(&Output::Ready { resumed: true }),
        "resumed, not a snapshot: {out:?}"
    );
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Snapshot | Output::Resync(_))));
    assert!(
        out.iter().any(
            |o| matches!(o, Output::Contact(ContactChange::Ended(v)) if v.contact_id == contact)
        ),
        "the missed end arrives as an event: {out:?}"
    );
    assert!(matches!(
        p.client_contact_state("alice", &contact),
        Some(ContactState::Ended { .. })
    ));
    let clear = p.request(
        "alice",
        Op::Clear {
            contact_id: contact.clone(),
            wrap_up_code: None,
        },
    );
    let out = p.take("alice");
    assert!(replied_ok(&out, clear), "{out:?}");
    assert!(p.client_contact_state("alice", &contact).is_none());
}

#[test]
fn a_new_session_gets_a_snapshot_with_the_live_call() {
    let mut p = Pair::new();
    p.connect("alice");
    p.available("alice");
    let (contact, _) = p.accepted_call("alice");
    p.disconnect("alice");
    // A different browser: a new session with no resume point.
    p.clients.remove("alice");
    p.advance(10_000);
    p.connect("alice");
    let out = p.take("alice");
    assert!(out.contains(&Output::Ready { resumed: false }), "{out:?}");
    assert!(out.contains(&Output::Snapshot));
    assert!(matches!(
        p.client_contact_state("alice", &contact),
        Some(ContactState::Connected { .. })
    ));
}

#[test]
fn an_unanswered_request_times_out_on_the_virtual_clock() {
    let mut p = Pair::new();
    p.connect("alice");
    let _ = p.take("alice");
    // The socket is gone but the session does not know yet: the request
    // is lost, and the session's own deadline fails it.
    let client = p.clients.get_mut("alice").expect("client");
    let (id, _) = client.session.request(Op::Ping, p.now);
    if let Some((attach, _)) = client.socket.take() {
        p.center.detach("alice", attach);
    }
    p.advance(4_999);
    assert!(!p
        .take("alice")
        .iter()
        .any(|o| matches!(o, Output::Reply { .. })));
    p.advance(1);
    let out = p.take("alice");
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Reply { id: i, result: Err(e) } if *i == id && e.code == protocol::error::ErrorCode::Timeout
        )),
        "{out:?}"
    );
}
