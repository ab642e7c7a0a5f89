//! A test client for the backend: real WebSockets (tokio-tungstenite)
//! driving the SDK's sans-IO [`Session`], plus helpers to start a backend
//! on port 0 with a small configuration. Integration tests live in
//! `tests/*.rs` beside this file; the load benchmark reuses this client.

pub mod audio;
pub mod conformance;

pub mod bench;
pub mod process;
pub mod raw;
pub mod sip;
pub mod sip_kamailio;
pub mod sip_media;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::error::ErrorBody;
use protocol::wire::{Op, OpResult};
use protocol::Millis;
use server::config::Config;
use streams_sdk::{ClientState, Output, Session};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The simulator key of [`TEST_CONFIG`] (a macro, so `concat!` can use it).
macro_rules! sim_key {
    () => {
        "test-only-simulator-key-1f3c"
    };
}

/// The simulator key every test backend is configured with.
pub const SIM_KEY: &str = sim_key!();

/// A small center: two agents on one profile, a support queue, quick connects.
/// Its simulator takes [`SIM_KEY`] and a rate no functional test reaches.
pub const TEST_CONFIG: &str = concat!(
    include_str!("config/agents.toml"),
    r#"
[server]
listen = "127.0.0.1:0"
ring_timeout_s = 20
external_answer_ms = 200
simulator = true
simulator_key = ""#,
    sim_key!(),
    r#""
simulator_calls_per_minute = 1000000
approved_origins = ["http://localhost:9999"]
"#
);

/// Opus's shortest packet: one 20 ms frame of silence (a TOC byte and two
/// bytes of a zero-energy CELT frame). Tests send it where the backend only
/// needs to see a leg alive, not hear anything.
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// Media frames of silence on `leg`, numbered on from `after` (the next
/// frame is `after + 1`), with the 20 ms timestamps a real engine sends.
pub fn silent_frames(leg: u32, after: u32) -> impl FnMut() -> Vec<u8> {
    let mut sequence = after;
    move || {
        sequence = sequence.wrapping_add(1);
        let mut frame = Vec::new();
        protocol::media::encode_media_frame(
            &protocol::media::MediaHeader {
                flags: 0,
                leg,
                sequence,
                timestamp: sequence.wrapping_mul(media::frame::PACKET as u32),
            },
            &OPUS_SILENCE,
            &mut frame,
        );
        frame
    }
}

/// Milliseconds on the wall clock.
pub fn now() -> Millis {
    server::http::wall_clock()
}

/// [`TEST_CONFIG`] with its SQLite store in `data_dir`.
pub fn test_config(data_dir: &std::path::Path) -> Config {
    let mut cfg = Config::parse(TEST_CONFIG, "test").expect("test config");
    cfg.data_dir = data_dir.to_path_buf();
    cfg.public_dir = data_dir.join("public");
    cfg
}

/// A fresh temporary directory.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    // Tests of one binary run in parallel threads: two may ask for the
    // same name in the same millisecond, and must not share a data dir
    // (two backends on one database).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "switchboard-{name}-{}-{}-{n}",
        std::process::id(),
        now().0
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Sends one HTTP request to the backend.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, body) = server::sim::http_request(addr, method, path, body)
        .await
        .expect("http");
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// Sends one request to the simulator API with [`SIM_KEY`].
pub async fn sim_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    http_with(addr, method, path, body, &[sim_auth()]).await
}

/// The `Authorization` header carrying [`SIM_KEY`].
pub fn sim_auth() -> (&'static str, &'static str) {
    ("Authorization", concat!("Bearer ", sim_key!()))
}

/// Sends one HTTP request with extra headers.
pub async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let (status, body) = server::sim::http_request_with(addr, method, path, body, headers)
        .await
        .expect("http");
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// Logs in and returns the token.
pub async fn login(addr: SocketAddr, user: &str, password: &str) -> String {
    let body = serde_json::json!({ "username": user, "password": password }).to_string();
    let (status, json) = http(addr, "POST", "/v1/login", Some(&body)).await;
    assert_eq!(status, 200, "login {user}: {json}");
    json["token"].as_str().expect("token").to_owned()
}

/// Places a simulated call and returns the contact id.
pub async fn sim_call(addr: SocketAddr, from: &str, queue: &str) -> String {
    let (status, json) = server::sim::place_call(addr, SIM_KEY, from, queue)
        .await
        .expect("sim");
    assert_eq!(status, 201, "sim call: {json}");
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    json["contact_id"].as_str().expect("contact id").to_owned()
}

/// Contact `contact`'s record, read straight from the running backend's
/// store. (tests/sip.rs has its own `record`, the same read.)
pub fn stored_contact(running: &server::Running, contact: &str) -> server::store::ContactRecord {
    let center = running.state.center.lock().expect("lock");
    center
        .store()
        .contact(contact)
        .expect("db")
        .expect("record")
}

/// What simulated call `call`'s caller heard
/// (`GET /v1/sim/calls/{call}/heard`), as 48 kHz samples.
pub async fn caller_heard(addr: SocketAddr, call: &str) -> Vec<f32> {
    let (status, wav) = server::sim::http_request_bytes(
        addr,
        "GET",
        &format!("/v1/sim/calls/{call}/heard"),
        &[sim_auth()],
    )
    .await
    .expect("http");
    assert_eq!(status, 200, "what the caller heard");
    audio::wav_samples(&wav)
}

/// A simulated customer phone (`/v1/customer/ws`) dials `queue` from
/// +819012345678; its socket, the contact id and its media leg once the
/// backend answers `dialed`.
pub async fn phone_dials_in(addr: SocketAddr, queue: &str) -> (Ws, String, u32) {
    let (mut phone, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/customer/ws"))
        .await
        .expect("phone");
    let dial = serde_json::json!({ "type": "dial", "from": "+819012345678", "queue": queue, "key": SIM_KEY });
    phone
        .send(Message::Text(dial.to_string().into()))
        .await
        .expect("dial");
    loop {
        let msg = tokio::time::timeout(WAIT, phone.next())
            .await
            .expect("dialed in time")
            .expect("open")
            .expect("message");
        if let Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
            if v["type"] == "dialed" {
                let leg = v["leg"].as_u64().expect("leg") as u32;
                let c = v["contact_id"].as_str().expect("id").to_owned();
                return (phone, c, leg);
            }
        }
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An agent's client: a socket and a session.
pub struct Client {
    ws: Ws,
    /// The protocol session (its `state` is the agent's world).
    pub session: Session,
    /// Every output seen, in order, for assertions on events.
    pub log: Vec<Output>,
    /// Raw text frames that did not decode.
    pub undecodable: Vec<String>,
    /// Binary (media) frames received, in order.
    pub media_in: Vec<Vec<u8>>,
}

/// How long a test waits for the backend before failing.
pub const WAIT: Duration = Duration::from_secs(10);

impl Client {
    /// Opens a socket without saying hello.
    pub async fn open(addr: SocketAddr, token: &str) -> Client {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/v1/ws"), None, true)
                .await
                .expect("ws connect");
        Client {
            ws,
            session: Session::new(token, 5_000),
            log: Vec::new(),
            undecodable: Vec::new(),
            media_in: Vec::new(),
        }
    }

    /// Opens, says hello and waits for the snapshot.
    pub async fn connect(addr: SocketAddr, token: &str) -> Client {
        let mut c = Client::open(addr, token).await;
        c.hello().await;
        c
    }

    /// Like [`Client::connect`], announcing `media_legs` in its hello: a
    /// client that takes each talker's leg and mixes them itself.
    pub async fn connect_mixing_legs(addr: SocketAddr, token: &str) -> Client {
        let mut c = Client::open(addr, token).await;
        c.session.announce(protocol::wire::CAP_MEDIA_LEGS);
        c.hello().await;
        c
    }

    /// Says hello (resuming if this session had one) and waits until ready.
    pub async fn hello(&mut self) {
        let hello = self.session.hello();
        self.send_text(&hello).await;
        self.wait_for("ready and snapshot", |c| {
            c.state().agent.is_some() && c.log.iter().any(|o| matches!(o, Output::Ready { .. }))
        })
        .await;
    }

    /// Replaces the socket (after a drop) keeping the session.
    pub async fn reconnect(&mut self, addr: SocketAddr) {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/v1/ws"), None, true)
                .await
                .expect("ws connect");
        self.ws = ws;
        self.log.extend(self.session.disconnected());
        self.log.retain(|o| !matches!(o, Output::Ready { .. }));
        self.hello().await;
    }

    /// The agent's known state.
    pub fn state(&self) -> &ClientState {
        &self.session.state
    }

    /// Sends a text frame as is.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    /// Reads one frame (or fails the test after [`WAIT`]) and feeds it to the session.
    pub async fn pump(&mut self) -> Vec<Output> {
        let msg = tokio::time::timeout(WAIT, self.ws.next())
            .await
            .expect("backend answered in time");
        let Some(Ok(msg)) = msg else {
            panic!("socket closed: {msg:?}")
        };
        let text = match msg {
            Message::Text(text) => text,
            Message::Binary(bytes) => {
                self.media_in.push(bytes.to_vec());
                return Vec::new();
            }
            _ => return Vec::new(),
        };
        match self.session.handle_text(text.as_str(), now()) {
            Ok(outputs) => {
                for o in &outputs {
                    if let Output::Resync(frame) = o {
                        let frame = frame.clone();
                        self.ws
                            .send(Message::Text(frame.into()))
                            .await
                            .expect("send");
                    }
                }
                self.log.extend(outputs.iter().cloned());
                outputs
            }
            Err(_) => {
                self.undecodable.push(text.to_string());
                Vec::new()
            }
        }
    }

    /// Runs an op and returns its result.
    pub async fn op(&mut self, op: Op) -> Result<OpResult, ErrorBody> {
        let (id, frame) = self.session.request(op, now());
        self.send_text(&frame).await;
        self.reply(id).await
    }

    /// Waits for the reply to request `id`.
    pub async fn reply(&mut self, id: u64) -> Result<OpResult, ErrorBody> {
        loop {
            for o in self.pump().await {
                if let Output::Reply { id: rid, result } = o {
                    if rid == id {
                        return result;
                    }
                }
            }
        }
    }

    /// Runs an op that must succeed.
    pub async fn ok(&mut self, op: Op) -> OpResult {
        let name = format!("{op:?}");
        match self.op(op).await {
            Ok(r) => r,
            Err(e) => panic!("{name} failed: {e}"),
        }
    }

    /// Reads frames until `pred` holds.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Client) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !pred(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            self.pump().await;
        }
    }

    /// The next frame-level server error.
    pub async fn next_server_error(&mut self) -> ErrorBody {
        loop {
            for o in self.pump().await {
                if let Output::ServerError(e) = o {
                    return e;
                }
            }
        }
    }

    /// The agent's current state name.
    pub fn agent_state(&self) -> String {
        self.state()
            .agent
            .as_ref()
            .map(|a| a.status.state.name.clone())
            .unwrap_or_default()
    }
}

impl Client {
    /// Logs `user` in, opens a session and sets the agent Available: the
    /// start of every test that has a call routed to an agent.
    pub async fn available(addr: SocketAddr, user: &str, password: &str) -> Client {
        let mut agent = Client::connect(addr, &login(addr, user, password).await).await;
        agent.set_available().await;
        agent
    }

    /// Waits until a first contact reaches this agent (`what` names the
    /// wait in a timeout's message) and returns its id.
    pub async fn first_contact(&mut self, what: &str) -> String {
        self.wait_for(what, |a| !a.state().contacts.is_empty())
            .await;
        self.state()
            .contacts
            .keys()
            .next()
            .expect("waited for")
            .clone()
    }

    /// Sets this agent Available (routable).
    pub async fn set_available(&mut self) {
        self.ok(Op::SetAgentState {
            state: "Available".into(),
        })
        .await;
    }

    /// Waits until `contact_id` rings at this agent, then accepts it.
    pub async fn accept_when_ringing(&mut self, contact_id: &str) {
        self.wait_for("ring", |a| a.state().contacts.contains_key(contact_id))
            .await;
        self.ok(Op::Accept {
            contact_id: contact_id.to_owned(),
        })
        .await;
    }

    /// Places a simulated call whose caller plays the agent's own audio
    /// back (`"play": "echo"`), and accepts it once it rings: the contact
    /// id, the agent's leg and the customer's connection id.
    pub async fn accept_echo_call(&mut self, addr: SocketAddr) -> (String, u32, String) {
        let body = r#"{"from":"+819012345678","queue":"support","play":"echo"}"#;
        let (status, json) = sim_http(addr, "POST", "/v1/sim/calls", Some(body)).await;
        assert_eq!(status, 201, "{json}");
        let c = json["contact_id"].as_str().expect("id").to_owned();
        self.wait_for("ring", |a| a.state().contacts.contains_key(&c))
            .await;
        let (leg, customer) = self.accept_with_leg(&c).await;
        (c, leg, customer)
    }

    /// Accepts the ringing contact `contact_id` and waits until the agent
    /// has its media leg and the customer's connection is known: the
    /// agent's leg and the customer's connection id, what a media test
    /// needs to send audio and find the customer's recording.
    pub async fn accept_with_leg(&mut self, contact_id: &str) -> (u32, String) {
        self.ok(Op::Accept {
            contact_id: contact_id.to_owned(),
        })
        .await;
        let leg_and_customer = |c: &Client| {
            let view = c.state().contacts.get(contact_id)?;
            let leg = view.agent_connection()?.media_leg?;
            let customer = view
                .connections
                .iter()
                .find(|k| k.kind == protocol::contact::ConnectionKind::Inbound)?;
            Some((leg, customer.connection_id.clone()))
        };
        self.wait_for("a media leg and the customer", |c| {
            leg_and_customer(c).is_some()
        })
        .await;
        leg_and_customer(self).expect("waited for")
    }
}

/// The quick connect to another agent, as an endpoint an agent's
/// `add_connection` names (the test configuration's `qc-<user>` entries).
pub fn agent_quick_connect(id: &str) -> protocol::Endpoint {
    protocol::Endpoint {
        id: id.to_owned(),
        kind: protocol::EndpointKind::Agent,
        name: String::new(),
        phone_number: None,
        agent: None,
        queue: None,
    }
}

impl Client {
    /// Brings `other` (an Available agent reached through quick connect
    /// `qc`) into this agent's call `contact_id` and joins all parties in
    /// a conference: the consult rings `other`, who accepts, then this
    /// agent conferences. Returns `other`'s media leg.
    pub async fn conference_in(&mut self, other: &mut Client, contact_id: &str, qc: &str) -> u32 {
        self.ok(Op::AddConnection {
            contact_id: contact_id.to_owned(),
            endpoint: agent_quick_connect(qc),
        })
        .await;
        other
            .wait_for("the consult rings", |b| {
                b.state().contacts.contains_key(contact_id)
            })
            .await;
        let (other_leg, _) = other.accept_with_leg(contact_id).await;
        self.ok(Op::Conference {
            contact_id: contact_id.to_owned(),
        })
        .await;
        other_leg
    }
}

/// A customer phone dials `support`; `first` (available) accepts it, then
/// brings in `second` through quick connect `qc-bob` and conferences. The
/// phone's socket, the contact, then the media legs of the phone, `first`
/// and `second`, as [`phone_dials_in`] and [`Client::conference_in`] give
/// them.
pub async fn phone_conference(
    addr: SocketAddr,
    first: &mut Client,
    second: &mut Client,
) -> (Ws, String, u32, u32, u32) {
    let (phone, contact, phone_leg) = phone_dials_in(addr, "support").await;
    first
        .wait_for("ring", |a| a.state().contacts.contains_key(&contact))
        .await;
    let (first_leg, _) = first.accept_with_leg(&contact).await;
    second.set_available().await;
    let second_leg = first.conference_in(second, &contact, "qc-bob").await;
    (phone, contact, phone_leg, first_leg, second_leg)
}

impl Client {
    /// The media frames received so far, decoded: each one's header and
    /// payload, in order.
    pub fn media_frames_in(&self) -> Vec<(protocol::media::MediaHeader, Vec<u8>)> {
        self.media_in
            .iter()
            .map(|b| {
                let f = protocol::media::decode_media_frame(b).expect("a valid frame");
                (f.header, f.payload.to_vec())
            })
            .collect()
    }
}

impl Client {
    /// Closes the socket abruptly from the client side.
    pub async fn ws_close(&mut self) {
        let _ = self.ws.close(None).await;
    }
}

impl Client {
    /// For `duration`, sends `next_frame()` every 20 ms (paced like an
    /// audio clock) while collecting whatever arrives.
    pub async fn stream_media(
        &mut self,
        duration: Duration,
        next_frame: &mut dyn FnMut() -> Vec<u8>,
    ) {
        self.stream_media_every(duration, Duration::from_millis(20), next_frame)
            .await;
    }

    /// As [`Client::stream_media`], one frame every `period` (10 ms for
    /// an engine sending 10 ms packets).
    pub async fn stream_media_every(
        &mut self,
        duration: Duration,
        period: Duration,
        next_frame: &mut dyn FnMut() -> Vec<u8>,
    ) {
        let end = tokio::time::Instant::now() + duration;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while tokio::time::Instant::now() < end {
            tokio::select! {
                _ = tick.tick() => {
                    let frame = next_frame();
                    self.send_binary(frame).await;
                }
                msg = self.ws.next() => {
                    match msg {
                        Some(Ok(Message::Binary(bytes))) => self.media_in.push(bytes.to_vec()),
                        Some(Ok(Message::Text(text))) => {
                            if let Ok(outputs) = self.session.handle_text(text.as_str(), now()) {
                                self.log.extend(outputs);
                            }
                        }
                        Some(Ok(_)) => {}
                        other => panic!("socket closed while streaming: {other:?}"),
                    }
                }
            }
        }
    }
}

impl Client {
    /// Reads one frame and feeds it to the session, like [`Client::pump`],
    /// but returns `None` when the server closed the socket (tests of why
    /// and when a socket is closed).
    pub async fn try_pump(&mut self) -> Option<Vec<Output>> {
        let msg = tokio::time::timeout(WAIT, self.ws.next())
            .await
            .expect("backend answered in time");
        match msg {
            Some(Ok(Message::Text(text))) => {
                let outputs = self
                    .session
                    .handle_text(text.as_str(), now())
                    .unwrap_or_default();
                self.log.extend(outputs.iter().cloned());
                Some(outputs)
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => None,
            Some(Ok(_)) => Some(Vec::new()),
        }
    }
}
