//! The simulator and the contact records fenced (issue 10, items 4 and 5),
//! probed over real sockets as the issue's attacker did: simulator requests
//! without the key, from a foreign page, too fast, with a free-form caller
//! number; a queue kept full by calls nobody answers; an agent reading
//! another agent's contact record.

use std::time::Duration;

use protocol::wire::Op;
use server::config::Config;
use switchboard_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PLACE: &str = r#"{"from":"+15550001111","queue":"support"}"#;

async fn start_with(replace: &[(&str, &str)], extra: &str, name: &str) -> server::Running {
    let dir = temp_dir(name);
    let mut text = TEST_CONFIG.to_owned();
    for (from, to) in replace {
        assert!(text.contains(from), "test config lacks {from}");
        text = text.replacen(from, to, 1);
    }
    text.push_str(extra);
    let mut cfg = Config::parse(&text, "test").expect("config");
    cfg.data_dir = dir.clone();
    cfg.public_dir = dir.join("public");
    server::start(cfg).await.expect("start")
}

fn contact_count(running: &server::Running) -> u64 {
    running
        .state
        .center
        .lock()
        .expect("lock")
        .store()
        .contact_count()
        .expect("count")
}

/// One raw HTTP exchange; returns the whole response head and body.
async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("answered")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls the simulator's view of `id` until its state is `want`.
async fn wait_caller_state(addr: std::net::SocketAddr, id: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, view) = sim_http(addr, "GET", &format!("/v1/sim/calls/{id}"), None).await;
        if view["state"] == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "caller {id} never reached {want}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_simulator_request_needs_the_key() {
    let dir = temp_dir("sim-key");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let live = sim_call(addr, "+15550001111", "support").await;
    let before = contact_count(&running);

    let wrong = ("Authorization", "Bearer test-only-simulator-key-1f3d");
    let probes: [(&str, String, Option<&str>); 6] = [
        ("POST", "/v1/sim/calls".into(), Some(PLACE)),
        ("GET", format!("/v1/sim/calls/{live}"), None),
        ("DELETE", format!("/v1/sim/calls/{live}"), None),
        (
            "POST",
            format!("/v1/sim/calls/{live}/digits"),
            Some(r#"{"digits":"1"}"#),
        ),
        ("GET", format!("/v1/sim/calls/{live}/heard"), None),
        ("GET", "/v1/sim/media-stats".into(), None),
    ];
    for (method, path, body) in &probes {
        for headers in [&[][..], &[wrong][..], &[("Authorization", SIM_KEY)][..]] {
            let (status, json) = http_with(addr, method, path, *body, headers).await;
            assert_eq!(
                (status, json["code"].as_str()),
                (401, Some("auth_failed")),
                "{method} {path} with {headers:?}: {json}"
            );
        }
        // Never in a URL: a key in the query string is no key.
        let (status, _) = http(addr, method, &format!("{path}?key={SIM_KEY}"), *body).await;
        assert_eq!(status, 401, "{method} {path}?key=");
    }
    // Nothing changed: no call placed, the live one not hung up.
    assert_eq!(contact_count(&running), before);
    wait_caller_state(addr, &live, "queued").await;
    let (status, _) = sim_http(addr, "DELETE", &format!("/v1/sim/calls/{live}"), None).await;
    assert_eq!(status, 204, "the right key hangs up");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_requests_from_foreign_origins_are_refused() {
    let dir = temp_dir("sim-origin");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let before = contact_count(&running);

    // The issue's probe: a foreign page's form-style POST (a "simple"
    // request, no preflight), text/plain, no key.
    let (status, json) = http_with(
        addr,
        "POST",
        "/v1/sim/calls",
        Some(PLACE),
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain"),
        ],
    )
    .await;
    assert_eq!((status, json["code"].as_str()), (403, Some("auth_failed")));
    // Even with the key, a foreign page is refused; so is an opaque origin.
    for origin in ["http://evil.example", "null", "http://localhost:9998"] {
        let (status, _) = http_with(
            addr,
            "POST",
            "/v1/sim/calls",
            Some(PLACE),
            &[sim_auth(), ("Origin", origin)],
        )
        .await;
        assert_eq!(status, 403, "Origin {origin}");
    }
    // With the key, but a text/plain body: not JSON by declaration.
    let (status, _) = http_with(
        addr,
        "POST",
        "/v1/sim/calls",
        Some(PLACE),
        &[sim_auth(), ("Content-Type", "text/plain")],
    )
    .await;
    assert_eq!(status, 415);
    assert_eq!(contact_count(&running), before, "no call was placed");

    // An approved origin with the key is served.
    let (status, json) = http_with(
        addr,
        "POST",
        "/v1/sim/calls",
        Some(PLACE),
        &[sim_auth(), ("Origin", "http://localhost:9999")],
    )
    .await;
    assert_eq!(status, 201, "{json}");

    // The customer phone socket: a foreign origin cannot even open it.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{addr}/v1/customer/ws"),
    )
    .expect("request");
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().expect("header"));
    let refused = tokio_tungstenite::connect_async(req).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
        "{refused:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_phone_needs_the_key_in_its_dial_message() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = temp_dir("sim-phone");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let before = contact_count(&running);
    async fn next_text(
        ws: &mut tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> Option<serde_json::Value> {
        loop {
            match tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("in time")
            {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).ok(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }
    let url = format!("ws://{addr}/v1/customer/ws");
    for key in [None, Some("test-only-simulator-key-1f3d")] {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("open");
        let mut dial =
            serde_json::json!({ "type": "dial", "from": "+15550001111", "queue": "support" });
        if let Some(k) = key {
            dial["key"] = k.into();
        }
        ws.send(Message::Text(dial.to_string().into()))
            .await
            .expect("send");
        let answer = next_text(&mut ws).await.expect("an answer");
        assert_eq!(answer["code"], "auth_failed", "key {key:?}: {answer}");
        assert_eq!(next_text(&mut ws).await, None, "and the socket closes");
    }
    assert_eq!(contact_count(&running), before);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("open");
    let dial = serde_json::json!({ "type": "dial", "from": "+15550001111", "queue": "support", "key": SIM_KEY });
    ws.send(Message::Text(dial.to_string().into()))
        .await
        .expect("send");
    let answer = next_text(&mut ws).await.expect("an answer");
    assert_eq!(answer["type"], "dialed", "{answer}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placing_calls_is_rate_limited() {
    let running = start_with(
        &[(
            "simulator_calls_per_minute = 1000000",
            "simulator_calls_per_minute = 3",
        )],
        "",
        "sim-rate",
    )
    .await;
    let addr = running.addr;
    for i in 0..3 {
        let (status, json) = sim_http(addr, "POST", "/v1/sim/calls", Some(PLACE)).await;
        assert_eq!(status, 201, "call {i} within the budget: {json}");
    }
    let before = contact_count(&running);
    let request = format!(
        "POST /v1/sim/calls HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {SIM_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PLACE}",
        PLACE.len()
    );
    let response = raw(addr, &request).await;
    assert!(response.starts_with("HTTP/1.1 429"), "{response}");
    assert!(response.contains("rate_limited"), "{response}");
    let retry: u64 = response
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("a Retry-After header");
    assert!(
        (1..=20).contains(&retry),
        "3 a minute: one every 20 s, not {retry}"
    );
    assert_eq!(
        contact_count(&running),
        before,
        "the refused call left no record"
    );
    // The customer phone draws on the same budget.
    use futures_util::{SinkExt, StreamExt};
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/customer/ws"))
        .await
        .expect("open");
    let dial = serde_json::json!({ "type": "dial", "from": "+15550001111", "queue": "support", "key": SIM_KEY });
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        dial.to_string().into(),
    ))
    .await
    .expect("send");
    let answer = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("frame");
    assert!(
        answer.to_text().unwrap_or("").contains("rate_limited"),
        "{answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_numbers_must_be_e164() {
    let dir = temp_dir("sim-e164");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let before = contact_count(&running);
    for from in [
        "12345",
        "+81 90 1234 5678",
        "819012345678",
        "+819012345678\u{0}",
        "+8190123456789012",
        "Justin",
        "",
    ] {
        let body = serde_json::json!({ "from": from, "queue": "support" }).to_string();
        let (status, json) = sim_http(addr, "POST", "/v1/sim/calls", Some(&body)).await;
        assert_eq!(
            (status, json["code"].as_str()),
            (400, Some("invalid_argument")),
            "from {from:?}: {json}"
        );
    }
    assert_eq!(
        contact_count(&running),
        before,
        "no record for a refused number"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_record_is_readable_only_by_agents_who_took_part() {
    let dir = temp_dir("records");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let alice_token = login(addr, "alice", "alice-pass").await;
    let bob_token = login(addr, "bob", "bob-pass").await;
    let mut alice = Client::connect(addr, &alice_token).await;
    alice.set_available().await;
    let c = sim_call(addr, "+819012345678", "support").await;
    alice
        .wait_for("the call rings", |a| a.state().contacts.contains_key(&c))
        .await;
    alice
        .ok(Op::Accept {
            contact_id: c.clone(),
        })
        .await;
    let (status, _) = sim_http(addr, "DELETE", &format!("/v1/sim/calls/{c}"), None).await;
    assert_eq!(status, 204);

    let get = |token: String, id: String| async move {
        let auth = format!("Bearer {token}");
        http_with(
            addr,
            "GET",
            &format!("/v1/contacts/{id}"),
            None,
            &[("Authorization", &auth)],
        )
        .await
    };
    let (status, record) = get(alice_token.clone(), c.clone()).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["contact_id"], c.as_str());
    assert_eq!(record["attributes"]["customerName"], "Justin");

    // Bob never saw it: the same answer as for a contact that does not exist.
    let (status, for_bob) = get(bob_token.clone(), c.clone()).await;
    let (missing_status, missing) = get(bob_token, "c-0000000000000000".into()).await;
    assert_eq!((status, for_bob["code"].as_str()), (404, Some("not_found")));
    assert_eq!(missing_status, 404);
    assert_eq!(for_bob, missing, "nothing tells an existing record apart");
    assert!(!for_bob.to_string().contains("Justin"));
    let (status, _) = get(alice_token, "c-0000000000000000".into()).await;
    assert_eq!(status, 404);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_nobody_answers_leave_the_queue_after_its_max_wait() {
    // The issue's probe, scaled down: unanswered calls fill a queue; a
    // real caller later must still get in.
    let running = start_with(
        &[],
        "\n[[queues]]\nid = \"short\"\nname = \"Short\"\nmax_contacts = 2\nmax_wait_s = 1\n",
        "max-wait",
    )
    .await;
    let addr = running.addr;
    let place = r#"{"from":"+15550002222","queue":"short"}"#;
    let mut filling = Vec::new();
    for _ in 0..2 {
        let (status, json) = sim_http(addr, "POST", "/v1/sim/calls", Some(place)).await;
        assert_eq!(status, 201, "{json}");
        filling.push(json["contact_id"].as_str().expect("id").to_owned());
    }
    let (status, json) = sim_http(addr, "POST", "/v1/sim/calls", Some(place)).await;
    assert_eq!((status, json["code"].as_str()), (409, Some("queue_full")));
    let started = tokio::time::Instant::now();
    for id in &filling {
        wait_caller_state(addr, id, "ended").await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "left within about the 1 s max wait, took {:?}",
        started.elapsed()
    );
    let (status, json) = sim_http(addr, "POST", "/v1/sim/calls", Some(place)).await;
    assert_eq!(status, 201, "a new caller gets in: {json}");
    let record = stored_contact(&running, &filling[0]);
    assert_eq!(record.disconnect_reason.as_deref(), Some("queue_timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ccp_origin_serves_only_the_ccp_and_the_demo_pages_have_their_own() {
    let dir = temp_dir("origins");
    let dist = dir.join("dist");
    let public = dir.join("public");
    for (path, text) in [
        (dist.join("index.html"), "<!doctype html><title>CCP</title>"),
        (dist.join("stray.html"), "<script>alert(1)</script>"),
        (dist.join("media/engine.js"), "export {}"),
        (public.join("crm/index.html"), "<title>CRM</title>"),
        (public.join("phone/index.html"), "<title>phone</title>"),
    ] {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    let mut cfg = test_config(&dir);
    cfg.ccp_dir = dist;
    cfg.public_dir = public;
    cfg.crm_demo_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let running = server::start(cfg).await.expect("start");
    let (addr, demo) = (running.addr, running.crm_addr.expect("demo origin"));
    let get = |at: std::net::SocketAddr, path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {at}\r\nConnection: close\r\n\r\n");
        async move { raw(at, &request).await }
    };
    let header = |response: &str, name: &str| -> Option<String> {
        response.split("\r\n\r\n").next()?.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };

    let ccp = get(addr, "/ccp/").await;
    assert!(ccp.starts_with("HTTP/1.1 200"), "{ccp}");
    let csp = header(&ccp, "content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval';",
        &format!("connect-src 'self' ws://{addr} wss://{addr};"),
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(
        csp.ends_with("frame-ancestors 'self' http://localhost:9999"),
        "{csp}"
    );
    assert_eq!(
        header(&ccp, "permissions-policy").as_deref(),
        Some("microphone=(self \"http://localhost:9999\"), camera=(), geolocation=()")
    );
    assert_eq!(
        header(&ccp, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        header(&ccp, "referrer-policy").as_deref(),
        Some("no-referrer")
    );
    // A Host that is not a plain host[:port] never reaches the header.
    let forged = raw(
        addr,
        "GET /ccp/ HTTP/1.1\r\nHost: x; script-src *\r\nConnection: close\r\n\r\n",
    )
    .await;
    let csp = header(&forged, "content-security-policy").expect("a CSP");
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    assert!(!csp.contains("script-src *"), "{csp}");

    // Assets the CCP needs are served; no other page is.
    assert!(get(addr, "/ccp/media/engine.js")
        .await
        .starts_with("HTTP/1.1 200"));
    for path in [
        "/ccp/stray.html",
        "/ccp/media/../stray.html",
        "/public/crm/",
        "/public/crm/index.html",
        "/phone/",
        "/public/phone/index.html",
    ] {
        let res = get(addr, path).await;
        assert!(res.starts_with("HTTP/1.1 404"), "{path}: {res}");
    }

    // The demo origin: both demo pages, the engine, and its config, which
    // no other origin may read.
    for path in ["/", "/phone/", "/media/engine.js"] {
        let res = get(demo, path).await;
        assert!(res.starts_with("HTTP/1.1 200"), "demo {path}: {res}");
    }
    let config = get(demo, "/demo-config.json").await;
    assert_eq!(header(&config, "access-control-allow-origin"), None);
    let body: serde_json::Value =
        serde_json::from_str(config.split("\r\n\r\n").nth(1).expect("body")).expect("json");
    assert_eq!(body["ccpUrl"], format!("http://{addr}/ccp/"));
    assert_eq!(body["backendUrl"], format!("http://{addr}"));
    assert_eq!(body["simulatorKey"], SIM_KEY);
    let _ = std::fs::remove_dir_all(dir);
}
