//! Contact flows end to end: a real backend, the test flows in
//! tests/flows/, and a small order service of the test's own (a raw HTTP
//! stub on 127.0.0.1:0 implementing the contract's endpoints), driven by
//! simulated callers with digit scripts and agents over real sockets.
//! Covers the issue's scenarios: change the date by keypad, cancel, press
//! 3 and the agent gets the order as attributes, no input and a wrong key,
//! the function down or slow, the queue flow while waiting, the agent
//! whisper heard before connecting, and a queued callback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use media::codec::Decoder;
use media::frame::PACKET;
use protocol::media::decode_media_frame;
use protocol::wire::Op;
use switchboard_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The order service's data (the sample order 100 and sent messages).
#[derive(Debug, Clone)]
struct Orders {
    shipping_date: String,
    cancelled: bool,
    messages: Vec<String>,
}

/// The stub order service: the contract's endpoints, plus `/slow` (answers
/// after 3 s).
struct OrderService {
    addr: SocketAddr,
    data: Arc<Mutex<Orders>>,
}

impl OrderService {
    async fn start() -> OrderService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let data = Arc::new(Mutex::new(Orders {
            shipping_date: "2018-11-12".into(),
            cancelled: false,
            messages: Vec::new(),
        }));
        let shared = data.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let data = shared.clone();
                tokio::spawn(async move {
                    let Some((path, body)) = read_request(&mut sock).await else {
                        return;
                    };
                    let event: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or_default();
                    let answer = handle(&path, &event, &data).await;
                    let text = answer.to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = sock.write_all(response.as_bytes()).await;
                });
            }
        });
        OrderService { addr, data }
    }

    fn orders(&self) -> Orders {
        self.data.lock().expect("lock").clone()
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        assert!(buf.len() < 1 << 20, "request too big");
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            let path = head.split(' ').nth(1)?.to_owned();
            return Some((path, buf[end + 4..end + 4 + length].to_vec()));
        }
    }
}

async fn handle(path: &str, event: &serde_json::Value, data: &Mutex<Orders>) -> serde_json::Value {
    let contact = &event["Details"]["ContactData"];
    let params = &event["Details"]["Parameters"];
    match path {
        "/v1/orders/lookup" => {
            if contact["CustomerEndpoint"]["Address"] != "+15555550100" {
                return serde_json::json!({ "order_found": "false" });
            }
            let d = data.lock().expect("lock");
            serde_json::json!({
                "order_id": "100",
                "customer_name": "Justin",
                "product": "The North Face Summit L3 Ventrix 2.0 Hoodie",
                "shipping_date": d.shipping_date,
                "cancelled": d.cancelled,
            })
        }
        "/v1/orders/change-date" => {
            let input = params["StoredCustomerInput"].as_str().unwrap_or("");
            let ok = contact["Attributes"]["order_id"] == "100"
                && input.len() == 8
                && input.chars().all(|c| c.is_ascii_digit());
            if !ok {
                return serde_json::json!({ "change_result": "bad_date" });
            }
            let date = format!("{}-{}-{}", &input[..4], &input[4..6], &input[6..]);
            data.lock().expect("lock").shipping_date = date.clone();
            serde_json::json!({ "shipping_date": date, "change_result": "ok" })
        }
        "/v1/orders/cancel" => {
            data.lock().expect("lock").cancelled = true;
            serde_json::json!({ "cancelled": true, "cancel_result": "ok" })
        }
        "/v1/messages/send" => {
            let template = params["template"].as_str().unwrap_or("").to_owned();
            let mut d = data.lock().expect("lock");
            d.messages.push(template);
            serde_json::json!({ "message_id": format!("m-{}", d.messages.len()) })
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            serde_json::json!({ "order_id": "100" })
        }
        _ => serde_json::json!({}),
    }
}

/// How the order lookup is reached.
enum Lookup {
    Up,
    /// A port nothing listens on.
    Down,
    /// An endpoint slower than the function's timeout.
    Slow,
}

/// The test flows in tests/flows/, each copied and listed as a `[[flows]]`
/// entry of the backend's configuration.
const FLOWS: [&str; 8] = [
    "order-support",
    "wait",
    "agent-whisper",
    "callback",
    "held",
    "customer-whisper",
    "customer-hold",
    "agent-hold",
];

/// A backend with the test flows, its functions at `orders` (the lookup
/// as `lookup` says), bob a supervisor.
async fn start(orders: &OrderService, lookup: Lookup) -> server::Running {
    let dir = temp_dir("flows");
    std::fs::create_dir_all(dir.join("flows")).expect("dir");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("flows");
    let mut flow_entries = String::new();
    for f in FLOWS {
        std::fs::copy(
            src.join(format!("{f}.toml")),
            dir.join("flows").join(format!("{f}.toml")),
        )
        .expect("copy flow");
        flow_entries.push_str(&format!("\n[[flows]]\nfile = \"flows/{f}.toml\"\n"));
    }
    // The hold and customer whisper prompts: tones of their own pitch.
    std::fs::create_dir_all(dir.join("prompts")).expect("dir");
    for (hz, ms) in [(2000.0, 600), (1000.0, 1000), (1500.0, 1000)] {
        audio::write_tone_wav(&dir.join(format!("prompts/tone-{hz}.wav")), hz, 0.3, ms);
    }
    let base = format!("http://{}", orders.addr);
    let lookup_url = match lookup {
        Lookup::Up => format!("{base}/v1/orders/lookup"),
        Lookup::Slow => format!("{base}/slow"),
        Lookup::Down => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = l.local_addr().expect("addr").port();
            drop(l);
            format!("http://127.0.0.1:{port}/v1/orders/lookup")
        }
    };
    let extra = format!(
        r#"
[[functions]]
name = "order_lookup"
url = "{lookup_url}"
timeout_ms = 800

[[functions]]
name = "change_date"
url = "{base}/v1/orders/change-date"

[[functions]]
name = "cancel_order"
url = "{base}/v1/orders/cancel"

[[functions]]
name = "send_message"
url = "{base}/v1/messages/send"
{flow_entries}
[[entry_points]]
number = "+18005550100"
flow = "order-support"

[[entry_points]]
number = "+18005550199"
flow = "callback"

[[entry_points]]
number = "+18005550177"
flow = "held"
"#
    );
    let text = TEST_CONFIG.replacen(
        "username = \"bob\"",
        "username = \"bob\"\nsupervisor = true",
        1,
    ) + &extra;
    let main = dir.join("main.toml");
    std::fs::write(&main, &text).expect("config");
    let mut cfg = server::config::Config::load(&main).expect("test flow config");
    cfg.data_dir = dir.clone();
    cfg.public_dir = dir.join("public");
    server::start(cfg).await.expect("start")
}

/// Calls the entry point from the sample customer's number with `digits`
/// ([after ms, keys]); the contact id.
async fn call(addr: SocketAddr, to: &str, digits: &[(u64, &str)]) -> String {
    let steps: Vec<serde_json::Value> = digits
        .iter()
        .map(|(after, keys)| serde_json::json!({ "after_ms": after, "keys": keys }))
        .collect();
    let body = serde_json::json!({
        "from": "+15555550100", "to": to, "play": "", "digits": steps,
    })
    .to_string();
    let (status, json) = sim_http(addr, "POST", "/v1/sim/calls", Some(&body)).await;
    assert_eq!(status, 201, "{json}");
    json["contact_id"].as_str().expect("id").to_owned()
}

/// The caller's state as the simulator sees it.
async fn caller_state(addr: SocketAddr, c: &str) -> String {
    let (_, json) = sim_http(addr, "GET", &format!("/v1/sim/calls/{c}"), None).await;
    json["state"].as_str().unwrap_or("").to_owned()
}

/// Waits (bounded) until the caller's state is `want`.
async fn wait_caller(addr: SocketAddr, c: &str, want: &str) {
    for _ in 0..300 {
        if caller_state(addr, c).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "caller {c} never reached `{want}` (now `{}`)",
        caller_state(addr, c).await
    );
}

/// The contact's record as supervisor bob reads it.
async fn record(addr: SocketAddr, token: &str, c: &str) -> serde_json::Value {
    let auth = format!("Bearer {token}");
    let (status, json) = http_with(
        addr,
        "GET",
        &format!("/v1/contacts/{c}"),
        None,
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200, "{json}");
    json
}

/// (flow, block, branch) of each flow log entry.
fn path_of(record: &serde_json::Value) -> Vec<(String, String, String)> {
    record["flow_log"]
        .as_array()
        .expect("flow_log")
        .iter()
        .map(|e| {
            (
                e["flow"].as_str().unwrap_or("").to_owned(),
                e["block"].as_str().unwrap_or("").to_owned(),
                e["branch"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn took(path: &[(String, String, String)], block: &str, branch: &str) -> bool {
    path.iter().any(|(_, b, br)| b == block && br == branch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_date_by_keypad_updates_the_order_and_sends_a_confirmation() {
    let orders = OrderService::start().await;
    let running = start(&orders, Lookup::Up).await;
    let addr = running.addr;
    let c = call(addr, "+18005550100", &[(1500, "1"), (1000, "20181120#")]).await;
    wait_caller(addr, &c, "ended").await;
    let o = orders.orders();
    assert_eq!(o.shipping_date, "2018-11-20");
    assert_eq!(o.messages, ["date_changed"]);
    let bob = login(addr, "bob", "bob-pass").await;
    let rec = record(addr, &bob, &c).await;
    assert_eq!(rec["disconnect_reason"], "flow_disconnect");
    assert_eq!(rec["attributes"]["new_date"], "20181120");
    assert_eq!(rec["attributes"]["shipping_date"], "2018-11-20");
    let path = path_of(&rec);
    for (block, branch) in [
        ("lookup", "next"),
        ("has_order", "present"),
        ("menu", "1"),
        ("ask_date", "next"),
        ("date_ok", "equals ok"),
        ("said_date", "next"),
    ] {
        assert!(took(&path, block, branch), "{block} {branch}: {path:?}");
    }
    let said = rec["flow_log"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["block"] == "said_date"))
        .expect("said_date logged");
    assert_eq!(said["inputs"]["prompt"], "It ships on 2018-11-20.");
    assert!(said["ended_ms"].as_u64() >= said["started_ms"].as_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_by_keypad_marks_the_order_cancelled() {
    let orders = OrderService::start().await;
    let running = start(&orders, Lookup::Up).await;
    let addr = running.addr;
    let c = call(addr, "+18005550100", &[(1500, "2")]).await;
    wait_caller(addr, &c, "ended").await;
    let o = orders.orders();
    assert!(o.cancelled);
    assert_eq!(o.shipping_date, "2018-11-12");
    assert_eq!(o.messages, ["cancelled"]);
    let bob = login(addr, "bob", "bob-pass").await;
    assert!(took(&path_of(&record(addr, &bob, &c).await), "menu", "2"));
    // The caller heard the prompts (it says nothing itself, and no agent
    // was ever on the call): speech in what it was sent.
    let pcm = caller_heard(addr, &c).await;
    let loud = pcm
        .chunks(960)
        .filter(|w| (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt() > 0.01)
        .count();
    eprintln!("caller heard {loud} loud windows of {}", pcm.len() / 960);
    // "You bought ..." until the key at 1.5 s, then "Cancelled.": well over
    // a second of speech in 20 ms windows.
    assert!(loud > 50, "{loud} loud windows of {}", pcm.len() / 960);
}

/// Waits until `agent` is offered a contact; its id.
async fn offered(agent: &mut Client) -> String {
    agent
        .wait_for("an offer", |a| !a.state().contacts.is_empty())
        .await;
    agent
        .state()
        .contacts
        .keys()
        .next()
        .cloned()
        .expect("a contact")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pressing_3_queues_the_call_with_the_order_as_attributes() {
    let orders = OrderService::start().await;
    let running = start(&orders, Lookup::Up).await;
    let addr = running.addr;
    let mut alice = Client::available(addr, "alice", "alice-pass").await;
    let c = call(addr, "+18005550100", &[(1500, "3")]).await;
    let offered_id = offered(&mut alice).await;
    assert_eq!(offered_id, c);
    // Before answering, the agent's contact carries the order.
    let attrs = &alice.state().contacts[&c].attributes;
    assert_eq!(attrs["order_id"], "100");
    assert_eq!(attrs["customer_name"], "Justin");
    assert_eq!(
        attrs["product"],
        "The North Face Summit L3 Ventrix 2.0 Hoodie"
    );
    assert_eq!(attrs["shipping_date"], "2018-11-12");
    assert_eq!(
        alice.state().contacts[&c]
            .queue
            .as_ref()
            .map(|q| q.id.as_str()),
        Some("support")
    );
    let bob = login(addr, "bob", "bob-pass").await;
    let rec = record(addr, &bob, &c).await;
    assert!(took(&path_of(&rec), "menu", "3"));
    assert_eq!(rec["queue"], "support");
    // A non-supervisor who took no part reads neither the record nor the flows.
    let auth = format!("Bearer {}", login(addr, "alice", "alice-pass").await);
    let (status, _) = http_with(addr, "GET", "/v1/flows", None, &[("Authorization", &auth)]).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_and_a_wrong_key_follow_their_branches_to_an_agent() {
    let orders = OrderService::start().await;
    let running = start(&orders, Lookup::Up).await;
    let addr = running.addr;
    let mut alice = Client::available(addr, "alice", "alice-pass").await;
    let c = call(addr, "+18005550100", &[(1500, "9")]).await;
    let id = offered(&mut alice).await;
    assert_eq!(id, c);
    assert_eq!(
        alice.state().contacts[&c].attributes["menu_result"],
        "wrong_key"
    );
    alice
        .ok(Op::Reject {
            contact_id: c.clone(),
        })
        .await;
    let _ = sim_http(addr, "DELETE", &format!("/v1/sim/calls/{c}"), None).await;
    alice
        .wait_for("the contact gone", |a| a.state().contacts.is_empty())
        .await;

    let c2 = call(addr, "+18005550100", &[]).await;
    wait_caller(addr, &c2, "ringing").await;
    let id = offered(&mut alice).await;
    assert_eq!(id, c2);
    assert_eq!(
        alice.state().contacts[&c2].attributes["menu_result"],
        "no_input"
    );
    let bob = login(addr, "bob", "bob-pass").await;
    let p1 = path_of(&record(addr, &bob, &c).await);
    assert!(took(&p1, "menu", "default"), "{p1:?}");
    let p2 = path_of(&record(addr, &bob, &c2).await);
    assert!(took(&p2, "menu", "timeout"), "{p2:?}");
}

async fn function_failure_reaches_an_agent(lookup: Lookup, why: &str) {
    let orders = OrderService::start().await;
    let running = start(&orders, lookup).await;
    let addr = running.addr;
    let mut alice = Client::available(addr, "alice", "alice-pass").await;
    let c = call(addr, "+18005550100", &[]).await;
    let id = offered(&mut alice).await;
    assert_eq!(id, c);
    assert!(!alice.state().contacts[&c]
        .attributes
        .contains_key("order_id"));
    let bob = login(addr, "bob", "bob-pass").await;
    let rec = record(addr, &bob, &c).await;
    let lookup = rec["flow_log"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["block"] == "lookup"))
        .expect("lookup logged")
        .clone();
    assert_eq!(lookup["branch"], "error");
    let error = lookup["error"].as_str().unwrap_or("");
    assert!(error.contains(why), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_down_takes_the_error_branch_and_the_caller_reaches_an_agent() {
    function_failure_reaches_an_agent(Lookup::Down, "connect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_slow_takes_the_error_branch_and_the_caller_reaches_an_agent() {
    function_failure_reaches_an_agent(Lookup::Slow, "800 ms").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_caller_hears_the_queue_flow() {
    let orders = OrderService::start().await;
    let running = start(&orders, Lookup::Up).await;
    let addr = running.addr;
    // Nobody is available: the caller waits.
    let c = call(addr, "+18005550100", &[(1500, "3")]).await;
    wait_caller(addr, &c, "queued").await;
    let bob = login(addr, "bob", "bob-pass").await;
    let mut path = Vec::new();
    for _ in 0..300 {
        path = path_of(&record(addr, &bob, &c).await);
        if took(&path, "again", "complete") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waits: Vec<&(String, String, String)> =
        path.iter().filter(|(f, _, _)| f == "wait").collect();
    let blocks: Vec<(&str, &str)> = waits
        .iter()
        .map(|(_, b, br)| (b.as_str(), br.as_str()))
        .collect();
    assert_eq!(
        blocks,
        [
            ("msg", "next"),
            ("again", "looping"),
            ("msg", "next"),
            ("again", "looping"),
            ("msg", "next"),
            ("again", "complete"),
        ]
    );
    assert_eq!(caller_state(addr, &c).await, "queued");
}

/// Speech energy (RMS) of each 20 ms packet the agent got.
fn levels(frames: &[Vec<u8>]) -> Vec<f32> {
    let mut dec = Decoder::new().expect("decoder");
    frames
        .iter()
        .filter_map(|b| decode_media_frame(b).ok().map(|f| f.payload.to_vec()))
        .map(|p| {
            let mut pcm = [0.0f32; PACKET];
            if dec.decode(&p, &mut pcm).is_err() {
                return 0.0;
            }
            (pcm.iter().map(|x| x * x).sum::<f32>() / PACKET as f32).sqrt()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_hears_the_whisper_before_the_caller_is_connected() {
    let orders = OrderService::start().await;
    let running = start(&orders, Lookup::Up).await;
    let addr = running.addr;
    let mut alice = Client::available(addr, "alice", "alice-pass").await;
    let c = call(addr, "+18005550100", &[(1500, "3")]).await;
    offered(&mut alice).await;
    let (leg, _) = alice.accept_with_leg(&c).await;
    let mut silence = silent_frames(leg, 0);
    let bob = login(addr, "bob", "bob-pass").await;
    // Listen until the whisper is over, then a moment of the call.
    let mut whisper_done_at = None;
    for _ in 0..100 {
        alice
            .stream_media(Duration::from_millis(200), &mut silence)
            .await;
        let rec = record(addr, &bob, &c).await;
        let done = rec["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["event"] == "whisper_done"));
        if done && whisper_done_at.is_none() {
            whisper_done_at = Some(alice.media_in.len());
        }
        if whisper_done_at.is_some_and(|n| alice.media_in.len() > n + 25) {
            break;
        }
    }
    let split = whisper_done_at.expect("the whisper finished");
    let lv = levels(&alice.media_in);
    let loud = |xs: &[f32]| xs.iter().filter(|&&x| x > 0.01).count();
    // The whisper ("Order 100, Justin.") is speech: many loud packets.
    assert!(
        loud(&lv[..split.min(lv.len())]) >= 15,
        "whisper packets loud: {} of {}",
        loud(&lv[..split.min(lv.len())]),
        split
    );
    // After it the agent hears the caller, who is silent here.
    let after = &lv[(split + 10).min(lv.len())..];
    assert!(!after.is_empty());
    assert!(loud(after) <= 2, "after the whisper: {after:?}");
    let rec = record(addr, &bob, &c).await;
    let names: Vec<&str> = rec["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    let w = names.iter().position(|n| *n == "whisper").expect("whisper");
    let d = names
        .iter()
        .position(|n| *n == "whisper_done")
        .expect("done");
    assert!(w < d);
    assert!(
        took(&path_of(&rec), "say", "next")
            || path_of(&rec).iter().any(|(f, _, _)| f == "agent-whisper")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_callback_calls_the_customer_when_an_agent_is_free() {
    let orders = OrderService::start().await;
    let running = start(&orders, Lookup::Up).await;
    let addr = running.addr;
    let c = call(addr, "+18005550199", &[]).await;
    wait_caller(addr, &c, "ended").await;
    // Only now does an agent become free: the callback is routed to it.
    let mut alice = Client::available(addr, "alice", "alice-pass").await;
    let cb = offered(&mut alice).await;
    assert_ne!(cb, c);
    let view = alice.state().contacts[&cb].clone();
    // On the wire it is a callback, ringing like an inbound call.
    assert_eq!(view.initiation, protocol::contact::Initiation::Callback);
    assert!(matches!(
        view.state,
        protocol::contact::ContactState::Incoming { .. }
    ));
    let customer = view
        .connections
        .iter()
        .find(|k| k.kind == protocol::contact::ConnectionKind::Outbound)
        .expect("the customer as an outbound leg");
    assert_eq!(
        customer.endpoint.phone_number.as_deref(),
        Some("+15555550100")
    );
    alice
        .ok(Op::Accept {
            contact_id: cb.clone(),
        })
        .await;
    // The agent first, then the customer is dialed and answers.
    alice
        .wait_for("the customer answered", |a| {
            a.state().contacts.get(&cb).is_some_and(|v| {
                v.connections.iter().any(|k| {
                    k.kind == protocol::contact::ConnectionKind::Outbound
                        && matches!(
                            k.state,
                            protocol::contact::ConnectionState::Connected { .. }
                        )
                })
            })
        })
        .await;
    let bob = login(addr, "bob", "bob-pass").await;
    let rec = record(addr, &bob, &c).await;
    assert_eq!(rec["disconnect_reason"], "flow_disconnect");
    assert!(took(&path_of(&rec), "callback", "next"));
    let cbrec = record(addr, &bob, &cb).await;
    assert_eq!(cbrec["initiation"], "callback");
    let events: BTreeMap<String, usize> = cbrec["events"]
        .as_array()
        .expect("events")
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((e["event"].as_str()?.to_owned(), i)))
        .collect();
    assert!(
        events["accepted"] < events["customer_answered"],
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_read_the_flows_as_graphs() {
    let orders = OrderService::start().await;
    let running = start(&orders, Lookup::Up).await;
    let addr = running.addr;
    let bob = login(addr, "bob", "bob-pass").await;
    let auth = format!("Bearer {bob}");
    let (status, json) =
        http_with(addr, "GET", "/v1/flows", None, &[("Authorization", &auth)]).await;
    assert_eq!(status, 200, "{json}");
    let flows = json["flows"].as_array().expect("flows");
    let ids: Vec<&str> = flows.iter().filter_map(|f| f["id"].as_str()).collect();
    assert_eq!(
        ids, FLOWS,
        "every configured flow, in the configuration's order"
    );
    let order = &flows[0];
    assert_eq!(order["type"], "inbound");
    assert_eq!(order["start"], "voice");
    let menu = order["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["id"] == "menu"))
        .expect("menu");
    assert_eq!(menu["type"], "get_customer_input");
    assert_eq!(menu["label"], "You bought $.Attributes.product. Press 1…");
    let branches: Vec<(String, String)> = menu["branches"]
        .as_array()
        .expect("branches")
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap_or("").to_owned(),
                b["to"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(branches.contains(&("3".into(), "to_agent".into())));
    assert!(branches.contains(&("timeout".into(), "no_input".into())));
    let (status, _) = http(addr, "GET", "/v1/flows", None).await;
    assert_eq!(status, 401);

    // The flow page (public/flows/) is served at /flows/ under the CCP's
    // policy; other HTML beside it is not.
    let page = running.state.cfg.public_dir.join("flows");
    std::fs::create_dir_all(&page).expect("dir");
    std::fs::write(
        page.join("index.html"),
        "<!doctype html><title>Flows</title>",
    )
    .expect("page");
    std::fs::write(page.join("other.html"), "<!doctype html>").expect("page");
    let head = raw_get(addr, "/flows/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("<title>Flows</title>"));
    let csp = head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("content-security-policy:")
        })
        .expect("a CSP");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(raw_get(addr, "/flows/other.html")
        .await
        .starts_with("HTTP/1.1 404"));
}

/// A GET's whole response, headers included.
async fn raw_get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// The power of `hz` in a 48 kHz window (Goertzel).
fn power_at(window: &[f32], hz: f32) -> f32 {
    let k = 2.0 * (2.0 * std::f32::consts::PI * hz / 48_000.0).cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in window {
        let s0 = x + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - k * s1 * s2
}

/// The pitches a test listens for: the three test tones and the notes of
/// the bridge's hold music.
const PITCHES: [f32; 6] = [2000.0, 1000.0, 1500.0, 523.25, 659.25, 783.99];

/// For each 20 ms window of `pcm` that is loud (RMS over 0.01), the pitch
/// of [`PITCHES`] that dominates it (ten times any other), if one does.
fn pitches(pcm: &[f32]) -> Vec<Option<f32>> {
    pcm.chunks_exact(PACKET)
        .filter(|w| (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt() > 0.01)
        .map(|w| {
            let p: Vec<f32> = PITCHES.iter().map(|&hz| power_at(w, hz)).collect();
            let (best, top) =
                p.iter()
                    .enumerate()
                    .fold((0, 0.0f32), |a, (i, &x)| if x > a.1 { (i, x) } else { a });
            p.iter()
                .enumerate()
                .all(|(i, &x)| i == best || x * 10.0 < top)
                .then_some(PITCHES[best])
        })
        .collect()
}

fn count(p: &[Option<f32>], hz: f32) -> usize {
    p.iter().filter(|x| **x == Some(hz)).count()
}

/// Decodes the agent's received frames `from..to` into PCM.
fn agent_pcm(frames: &[Vec<u8>]) -> Vec<f32> {
    let mut dec = Decoder::new().expect("decoder");
    let mut out = Vec::new();
    for b in frames {
        let Ok(f) = decode_media_frame(b) else {
            continue;
        };
        let mut pcm = [0.0f32; PACKET];
        if dec.decode(f.payload, &mut pcm).is_ok() {
            out.extend_from_slice(&pcm);
        }
    }
    out
}

/// The events of a contact's record, by name.
fn event_names(rec: &serde_json::Value) -> Vec<String> {
    rec["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whispers_play_together_and_hold_flows_play_while_the_caller_is_held() {
    let orders = OrderService::start().await;
    let running = start(&orders, Lookup::Up).await;
    let addr = running.addr;
    let mut alice = Client::available(addr, "alice", "alice-pass").await;
    let c = call(addr, "+18005550177", &[]).await;
    offered(&mut alice).await;
    let (leg, customer) = alice.accept_with_leg(&c).await;
    let mut silence = silent_frames(leg, 0);
    let bob = login(addr, "bob", "bob-pass").await;
    // Both whispers, then the connected call.
    let mut names = Vec::new();
    for _ in 0..100 {
        alice
            .stream_media(Duration::from_millis(200), &mut silence)
            .await;
        names = event_names(&record(addr, &bob, &c).await);
        if names.iter().any(|n| n == "whisper_done")
            && names.iter().any(|n| n == "customer_whisper_done")
        {
            break;
        }
    }
    let at = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no {name} in {names:?}"))
    };
    // Together: each started before either ended.
    assert!(at("customer_whisper") < at("customer_whisper_done"));
    assert!(at("whisper") < at("customer_whisper_done"), "{names:?}");
    assert!(at("customer_whisper") < at("whisper_done"), "{names:?}");
    let whisper_end = alice.media_in.len();
    // The agent heard its own whisper (speech), never the caller's tone.
    let heard = pitches(&agent_pcm(&alice.media_in[..whisper_end]));
    assert!(heard.len() >= 15, "whisper: {} loud windows", heard.len());
    assert_eq!(count(&heard, 2000.0), 0, "{heard:?}");
    // Hold: about 2 s of the hold flows, then resume and 1 s more.
    alice
        .stream_media(Duration::from_millis(400), &mut silence)
        .await;
    let hold_start = alice.media_in.len();
    alice
        .ok(Op::Hold {
            contact_id: c.clone(),
            connection_id: customer.clone(),
        })
        .await;
    alice
        .stream_media(Duration::from_millis(2000), &mut silence)
        .await;
    let hold_end = alice.media_in.len();
    alice
        .ok(Op::Resume {
            contact_id: c.clone(),
            connection_id: customer.clone(),
        })
        .await;
    alice
        .stream_media(Duration::from_millis(1000), &mut silence)
        .await;
    let during = pitches(&agent_pcm(&alice.media_in[hold_start..hold_end]));
    let after = pitches(&agent_pcm(&alice.media_in[hold_end + 10..]));
    eprintln!(
        "agent during hold: {} loud, 1500 Hz {}; after: {} loud",
        during.len(),
        count(&during, 1500.0),
        after.len()
    );
    // The agent hold flow's tone, not the caller's.
    assert!(count(&during, 1500.0) >= 40, "{during:?}");
    assert_eq!(count(&during, 1000.0), 0, "{during:?}");
    // Resumed: the silent caller again.
    assert!(after.len() <= 2, "after resume: {after:?}");
    // The agent hangs up; what the caller heard: its whisper and its hold
    // flow, never the agent's, nor the hold music while its hold flow
    // played.
    let own = alice.state().contacts[&c]
        .agent_connection()
        .expect("own connection")
        .connection_id
        .clone();
    alice
        .ok(Op::EndConnection {
            contact_id: c.clone(),
            connection_id: own,
        })
        .await;
    wait_caller(addr, &c, "ended").await;
    let pcm = caller_heard(addr, &c).await;
    let caller = pitches(&pcm);
    eprintln!(
        "caller: {} loud; 2000 Hz {}, 1000 Hz {}, 1500 Hz {}",
        caller.len(),
        count(&caller, 2000.0),
        count(&caller, 1000.0),
        count(&caller, 1500.0)
    );
    assert!(count(&caller, 2000.0) >= 15, "customer whisper: {caller:?}");
    assert!(count(&caller, 1000.0) >= 40, "customer hold: {caller:?}");
    assert_eq!(count(&caller, 1500.0), 0, "{caller:?}");
    let music: usize = [523.25, 659.25, 783.99]
        .iter()
        .map(|&hz| count(&caller, hz))
        .sum();
    assert!(
        music <= 3,
        "hold music instead of the hold flow: {caller:?}"
    );
    let names = event_names(&record(addr, &bob, &c).await);
    for e in [
        "customer_hold",
        "agent_hold",
        "customer_hold_done",
        "agent_hold_done",
    ] {
        assert!(names.iter().any(|n| n == e), "{e} in {names:?}");
    }
}

/// The next JSON text message on the customer phone's socket.
async fn phone_message(
    phone: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> serde_json::Value {
    use futures_util::StreamExt;
    for _ in 0..1000 {
        let msg = tokio::time::timeout(Duration::from_secs(10), phone.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("message");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("json");
        }
    }
    panic!("no text message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_phone_dials_an_entry_point_and_its_keys_reach_the_flow() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let orders = OrderService::start().await;
    let running = start(&orders, Lookup::Up).await;
    let addr = running.addr;
    let (mut phone, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/customer/ws"))
        .await
        .expect("phone");
    // Neither a queue nor a number: refused, and the phone may dial again.
    let bad = serde_json::json!({ "type": "dial", "from": "+15555550100", "key": SIM_KEY });
    phone
        .send(Message::Text(bad.to_string().into()))
        .await
        .expect("send");
    let m = phone_message(&mut phone).await;
    assert_eq!(
        (m["type"].as_str(), m["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );
    // Keys before a call: refused.
    let keys = |d: &str| {
        Message::Text(
            serde_json::json!({ "type": "digits", "digits": d })
                .to_string()
                .into(),
        )
    };
    phone.send(keys("1")).await.expect("send");
    let m = phone_message(&mut phone).await;
    assert_eq!(m["code"], "invalid_state");
    let dial = serde_json::json!({
        "type": "dial", "from": "+15555550100", "to": "+18005550100", "key": SIM_KEY,
    });
    phone
        .send(Message::Text(dial.to_string().into()))
        .await
        .expect("dial");
    let c = loop {
        let m = phone_message(&mut phone).await;
        if m["type"] == "dialed" {
            break m["contact_id"].as_str().expect("id").to_owned();
        }
    };
    loop {
        let m = phone_message(&mut phone).await;
        if m["type"] == "state" {
            assert_eq!(m["state"], "flow");
            break;
        }
    }
    // A bad key is refused; "2" cancels the order.
    phone.send(keys("x")).await.expect("send");
    assert_eq!(phone_message(&mut phone).await["code"], "invalid_argument");
    phone.send(keys("2")).await.expect("send");
    loop {
        let m = phone_message(&mut phone).await;
        if m["type"] == "state" && m["state"] == "ended" {
            break;
        }
    }
    assert!(orders.orders().cancelled);
    let bob = login(addr, "bob", "bob-pass").await;
    assert!(took(&path_of(&record(addr, &bob, &c).await), "menu", "2"));
}
