//! The checks of the contract (docs/protocol.md), in the order a client
//! meets it: login, hello, snapshot and events, resume, requests, bad
//! input, media, ownership and a whole call. Each step records one
//! result; a step that cannot run because an earlier one failed is
//! skipped with the reason.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::client::{clip, code_of, http, Conn, Violations};
use super::{shape, CallSource, CheckResult, Outcome, Report, Target};

/// A step's verdict: `Err` is the reason it failed.
pub(super) type Verdict = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !($cond) {
            return Err(format!($($fmt)+));
        }
    };
}
pub(super) use ensure;

/// The run's state: the target, the results so far, what steps share.
pub(super) struct Ctx<'a> {
    pub t: &'a Target,
    pub v: Violations,
    report: Report,
    progress: &'a mut (dyn FnMut(&CheckResult) + Send),
}

impl Ctx<'_> {
    /// Records a result, if the check is selected.
    pub fn record(&mut self, id: &str, section: &str, title: &str, outcome: Outcome) {
        if !self.t.selected(id) {
            return;
        }
        let r = CheckResult {
            id: id.to_owned(),
            title: title.to_owned(),
            section: format!("protocol.md {section}"),
            outcome,
        };
        (self.progress)(&r);
        self.report.results.push(r);
    }

    /// Records a step's verdict.
    pub fn check(&mut self, id: &str, section: &str, title: &str, verdict: Verdict) {
        let outcome = match verdict {
            Ok(()) => Outcome::Pass,
            Err(why) => Outcome::Fail(why),
        };
        self.record(id, section, title, outcome);
    }

    /// Records a skip.
    pub fn skip(&mut self, id: &str, section: &str, title: &str, why: &str) {
        self.record(id, section, title, Outcome::Skip(why.to_owned()));
    }
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Fails unless `v` (an `error` frame or a response) carries `code`.
pub(super) fn expect_code(v: &Value, code: &str, what: &str) -> Verdict {
    match code_of(v) {
        Some(c) if c == code => Ok(()),
        _ => Err(format!(
            "{what}: expected error `{code}`, got {}",
            clip(&v.to_string())
        )),
    }
}

/// Fails unless `v` fits the documented shapes.
fn fits_contract(v: &Value, what: &str) -> Verdict {
    let mut errs = Vec::new();
    shape::server_frame(v, &mut errs);
    ensure!(
        errs.is_empty(),
        "{what} does not match the contract: {}",
        errs.join("; ")
    );
    Ok(())
}

/// Runs the whole suite.
pub(super) async fn run(t: &Target, progress: &mut (dyn FnMut(&CheckResult) + Send)) -> Report {
    let mut ctx = Ctx {
        t,
        v: Violations::default(),
        report: Report::default(),
        progress,
    };
    // The hello timeout takes ten seconds of waiting: it runs beside the rest.
    let ep = t.endpoint.clone();
    let probe = t.selected("hello.timeout");
    let timeout_probe = tokio::spawn(async move {
        if probe {
            hello_timeout(&ep).await
        } else {
            Ok(())
        }
    });

    let tokens = login(&mut ctx).await;
    match tokens {
        Some([a, b]) => sessions(&mut ctx, &a, &b).await,
        None => ctx.skip(
            "session",
            "§3",
            "every check that needs a session",
            "login failed",
        ),
    }

    let verdict = timeout_probe
        .await
        .unwrap_or_else(|e| Err(format!("the probe crashed: {e}")));
    ctx.check(
        "hello.timeout",
        "§3",
        "a socket that completes no hello within 10 s is closed",
        verdict,
    );

    let violations = ctx.v.lock().map(|v| v.clone()).unwrap_or_default();
    ctx.check(
        "wire.every_frame",
        "§1-§8",
        "every frame the backend sent during the run fits the contract (types, golden shapes, seq +1)",
        if violations.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} problem(s):\n{}",
                violations.len(),
                violations.iter().take(25).cloned().collect::<Vec<_>>().join("\n")
            ))
        },
    );
    ctx.report
}

async fn post_login(ctx: &Ctx<'_>, body: &str) -> Result<super::client::HttpReply, String> {
    http(&ctx.t.endpoint, "POST", "/v1/login", &[], Some(body)).await
}

async fn login(ctx: &mut Ctx<'_>) -> Option<[String; 2]> {
    let mut tokens = Vec::new();
    let mut verdict = Ok(());
    for agent in &ctx.t.agents {
        let body = json!({"username": agent.username, "password": agent.password}).to_string();
        let r = async {
            let r = post_login(ctx, &body).await?;
            ensure!(r.status == 200, "login as {}: status {} {}", agent.username, r.status, clip(&r.body));
            let token = r.json["token"].as_str().unwrap_or("");
            ensure!(!token.is_empty(), "login as {}: no string `token` in {}", agent.username, clip(&r.body));
            ensure!(
                r.json["agent"] == agent.username.as_str(),
                "login as {}: `agent` is {} (must be the user name)",
                agent.username,
                r.json["agent"]
            );
            let expires = r.json["expires_at"].as_u64();
            ensure!(
                expires.is_some_and(|e| e > now_ms()),
                "login as {}: `expires_at` must be an integer time in the future, in ms since the epoch; got {}",
                agent.username,
                r.json["expires_at"]
            );
            Ok(token.to_owned())
        }
        .await;
        match r {
            Ok(token) => tokens.push(token),
            Err(e) => verdict = Err(e),
        }
    }
    let ok = verdict.is_ok();
    ctx.check(
        "login.ok",
        "§2",
        "POST /v1/login with good credentials: 200 {token, agent, expires_at}",
        verdict,
    );

    let first = ctx.t.agents[0].clone();
    let wrong = json!({"username": first.username, "password": format!("{}-wrong-conformance", first.password)}).to_string();
    let unknown = json!({"username": "no-such-user-conformance", "password": "x"}).to_string();
    let mut verdict = Ok(());
    for (what, body) in [("a wrong password", wrong), ("an unknown user", unknown)] {
        let r = post_login(ctx, &body).await.and_then(|r| {
            ensure!(
                r.status == 401 && r.json["code"] == "auth_failed" && r.json["message"].is_string(),
                "{what}: expected 401 {{\"code\":\"auth_failed\",\"message\":…}}, got {} {}",
                r.status,
                clip(&r.body)
            );
            Ok(())
        });
        if r.is_err() {
            verdict = r;
        }
    }
    ctx.check(
        "login.auth_failed",
        "§2",
        "a wrong password or unknown user: 401 {code: auth_failed, message}",
        verdict,
    );
    let verdict = post_login(ctx, "{oops").await.and_then(|r| {
        ensure!(
            r.status == 400 && r.json["code"] == "bad_request" && r.json["message"].is_string(),
            "expected 400 {{\"code\":\"bad_request\",\"message\":…}}, got {} {}",
            r.status,
            clip(&r.body)
        );
        Ok(())
    });
    ctx.check(
        "login.bad_json",
        "§2",
        "a body that is not JSON: 400 {code: bad_request, message}",
        verdict,
    );
    if ok && tokens.len() == 2 {
        Some([tokens[0].clone(), tokens[1].clone()])
    } else {
        None
    }
}

/// Opens a socket as agent `i`, says hello and returns it with its snapshot.
pub(super) async fn connect(
    ctx: &Ctx<'_>,
    token: &str,
    label: &str,
) -> Result<(Conn, Value, Value), String> {
    let mut c = Conn::open(&ctx.t.endpoint, label, &ctx.v).await?;
    let (welcome, snapshot) = c.hello(token, None).await?;
    Ok((c, welcome, snapshot.unwrap_or(Value::Null)))
}

async fn hello_timeout(ep: &super::Endpoint) -> Verdict {
    let v = Violations::default();
    let mut c = Conn::open(ep, "silent", &v).await?;
    match c.recv(Duration::from_secs(14)).await {
        Err(_) => Ok(()),
        Ok(Some(f)) => Err(format!(
            "the backend sent {} to a socket that said nothing",
            clip(&f.to_string())
        )),
        Ok(None) => Err("still open 14 s after it was opened without a hello".into()),
    }
}

async fn sessions(ctx: &mut Ctx<'_>, token_a: &str, token_b: &str) {
    // Whole phases are left out when none of their checks is selected.
    let any = |groups: &[&str]| groups.iter().any(|g| ctx.t.group_selected(g));
    let (want_hello, want_requests) = (any(&["hello"]), any(&["requests"]));
    let want_bad = any(&["errors", "ownership", "media"]);
    let want_call = any(&["call", "errors", "ownership", "media", "limits"]);
    if want_hello {
        hello_checks(ctx, token_b).await;
    }
    let a_name = ctx.t.agents[0].username.clone();
    let (mut a, welcome_a, snap_a) = match connect(ctx, token_a, &format!("{a_name}#main")).await {
        Ok(x) => x,
        Err(e) => {
            ctx.check("snapshot.shape", "§4", "the snapshot after welcome", Err(e));
            return;
        }
    };
    let verdict = fits_contract(&snap_a, "the snapshot").and_then(|()| {
        ensure!(
            snap_a["configuration"]["username"] == a_name.as_str(),
            "configuration.username is {} (must be {a_name})",
            snap_a["configuration"]["username"]
        );
        ensure!(
            snap_a["states"].as_array().is_some_and(|s| !s.is_empty()),
            "`states` lists no agent state"
        );
        Ok(())
    });
    ctx.check(
        "snapshot.shape",
        "§4",
        "welcome is followed by a snapshot shaped like snapshot.json",
        verdict,
    );

    let states: Vec<Value> = snap_a["states"].as_array().cloned().unwrap_or_default();
    let pick = |kind: &str| {
        states
            .iter()
            .find(|s| s["kind"] == kind)
            .and_then(|s| s["name"].as_str())
            .map(str::to_owned)
    };
    let routable = pick("routable");
    let away = pick("not_routable").or_else(|| pick("offline"));
    let session = welcome_a["session"].as_str().unwrap_or("").to_owned();

    // Sequenced events: state changes and mute, each event seq + 1.
    let first_seq = a.last_seq;
    let events = sequenced(ctx, &mut a, &snap_a, routable.as_deref(), away.as_deref()).await;

    // Resume, takeover.
    let mut a = match (first_seq, events) {
        (Some(n), Some(events)) => resume(ctx, a, token_a, &session, n, events).await,
        _ => {
            ctx.skip(
                "resume.replay",
                "§4",
                "resume replays missed events",
                "no events to replay",
            );
            Some(a)
        }
    };
    let Some(mut main) = a.take() else { return };

    if want_requests {
        requests(ctx, &mut main).await;
    }
    if want_bad {
        bad_input(ctx, &mut main).await;
    }
    // The second agent's token: a hello with the first agent's would take
    // its event stream away from `main`.
    super::limits::before_call(ctx, &mut main, token_b).await;
    if !want_call {
        main.close().await;
        return;
    }

    // The second agent: the stranger for ownership, kept away from routing.
    let b_name = ctx.t.agents[1].username.clone();
    let mut b = match connect(ctx, token_b, &format!("{b_name}#main")).await {
        Ok((mut b, _, _)) => {
            if let Some(away) = &away {
                let _ = b.request("set_agent_state", json!({"state": away})).await;
            }
            Some(b)
        }
        Err(e) => {
            ctx.check(
                "call.start",
                "§6",
                "a call rings the first agent",
                Err(format!("the second agent cannot connect: {e}")),
            );
            None
        }
    };
    if let Some(b) = b.as_mut() {
        call(
            ctx,
            &mut main,
            b,
            token_a,
            routable.as_deref(),
            away.as_deref(),
        )
        .await;
    }
    super::limits::after_call(ctx, &mut main, token_b).await;
    main.close().await;
    if let Some(b) = b {
        b.close().await;
    }
}

async fn hello_checks(ctx: &mut Ctx<'_>, token: &str) {
    let ep = ctx.t.endpoint.clone();
    let user = ctx.t.agents[1].username.clone();
    let v = ctx.v.clone();

    let verdict = async {
        let mut c = Conn::open(&ep, &format!("{user}#hello"), &v).await?;
        let (w, s) = c.hello(token, None).await?;
        ensure!(
            w["version"] == 1,
            "`version` is {} (the suite offered [1])",
            w["version"]
        );
        ensure!(
            w["agent"] == user.as_str(),
            "`agent` is {} (must be {user})",
            w["agent"]
        );
        ensure!(
            w["resumed"] == false,
            "`resumed` is {} without a resume",
            w["resumed"]
        );
        ensure!(
            w["session"].as_str().is_some_and(|s| !s.is_empty()),
            "`session` must be a non-empty string"
        );
        ensure!(
            w["heartbeat_ms"].as_u64().is_some_and(|h| h > 0),
            "`heartbeat_ms` must be a positive integer"
        );
        fits_contract(&w, "welcome")?;
        ensure!(s.is_some(), "no snapshot after welcome");
        c.close().await;
        Ok(())
    }
    .await;
    ctx.check("hello.welcome", "§3", "hello with versions [1] and a good token: welcome {version 1, session, agent, resumed false, heartbeat_ms}", verdict);

    let verdict = async {
        let mut c = Conn::open(&ep, &format!("{user}#versions"), &v).await?;
        let w = c
            .hello_raw(&json!({"type": "hello", "versions": [99, 1], "token": token}))
            .await?;
        ensure!(
            w["type"] == "welcome" && w["version"] == 1,
            "offered [99, 1]: expected welcome with version 1, got {}",
            clip(&w.to_string())
        );
        c.close().await;
        Ok(())
    }
    .await;
    ctx.check(
        "hello.version_choice",
        "§3",
        "the server picks the version it shares from several offered",
        verdict,
    );

    let verdict = async {
        let mut c = Conn::open(&ep, &format!("{user}#v99"), &v).await?;
        let e = c
            .hello_raw(&json!({"type": "hello", "versions": [99], "token": token}))
            .await?;
        expect_code(&e, "unsupported_version", "offered [99]")?;
        ensure!(
            e["type"] == "error",
            "expected a frame-level `error`, got {}",
            clip(&e.to_string())
        );
        let versions = e["supported_versions"].as_array();
        ensure!(
            versions.is_some_and(|vs| !vs.is_empty() && vs.iter().all(Value::is_u64)),
            "`supported_versions` must list the integer versions the server speaks, got {}",
            e["supported_versions"]
        );
        ensure!(
            versions.is_some_and(|vs| vs.contains(&json!(1))),
            "`supported_versions` lacks 1"
        );
        let (w, _) = c
            .hello(token, None)
            .await
            .map_err(|e| format!("a second hello with [1] on the same socket: {e}"))?;
        ensure!(w["version"] == 1, "second hello: version {}", w["version"]);
        c.close().await;
        Ok(())
    }
    .await;
    ctx.check("hello.unsupported_version", "§3", "no version in common: error unsupported_version with supported_versions, then another hello works", verdict);

    let verdict = async {
        let mut c = Conn::open(&ep, &format!("{user}#forged"), &v).await?;
        let mut forged = token.to_owned();
        let last = forged.pop().unwrap_or('x');
        forged.push(if last == 'A' { 'B' } else { 'A' });
        for bad in ["t-conformance-unknown-token", forged.as_str(), ""] {
            let e = c
                .hello_raw(&json!({"type": "hello", "versions": [1], "token": bad}))
                .await?;
            expect_code(&e, "auth_failed", &format!("token {bad:?}"))?;
            ensure!(
                e["type"] == "error",
                "expected a frame-level `error`, got {}",
                clip(&e.to_string())
            );
        }
        let (w, _) = c
            .hello(token, None)
            .await
            .map_err(|e| format!("a good hello after auth_failed on the same socket: {e}"))?;
        ensure!(w["type"] == "welcome", "no welcome");
        c.close().await;
        Ok(())
    }
    .await;
    ctx.check("hello.auth_failed", "§3", "an unknown, forged or empty token: error auth_failed; a new hello on the same socket works", verdict);

    let verdict = async {
        let mut c = Conn::open(&ep, &format!("{user}#early"), &v).await?;
        for (id, op) in [
            (42u64, "ping"),
            (43, "get_snapshot"),
            (44, "set_agent_state"),
        ] {
            let r = c
                .request_raw(
                    id,
                    &json!({"type": "request", "id": id, "op": op, "state": "x"}).to_string(),
                )
                .await?;
            expect_code(
                &r.response,
                "not_authenticated",
                &format!("`{op}` before hello"),
            )?;
            ensure!(
                r.before.is_empty(),
                "frames before the response: {}",
                clip(&Value::from(r.before).to_string())
            );
        }
        c.close().await;
        Ok(())
    }
    .await;
    ctx.check(
        "hello.not_authenticated",
        "§3",
        "a request before hello gets its response with not_authenticated",
        verdict,
    );

    let verdict = async {
        let mut c = Conn::open(&ep, &format!("{user}#twice"), &v).await?;
        c.hello(token, None).await?;
        c.send_json(&json!({"type": "hello", "versions": [1], "token": token}))
            .await?;
        let e = c.next_error("already_authenticated").await?;
        expect_code(&e, "already_authenticated", "a second hello")?;
        let before = c.sync().await?;
        ensure!(
            !before
                .iter()
                .any(|f| f["type"] == "welcome" || f["type"] == "snapshot"),
            "the second hello started a new session"
        );
        c.close().await;
        Ok(())
    }
    .await;
    ctx.check(
        "hello.already_authenticated",
        "§3",
        "a second hello after success: already_authenticated, the session carries on",
        verdict,
    );
}

/// State changes and mute on `a`: each produces its event before the
/// response, numbered +1. Returns the events, for the resume check.
async fn sequenced(
    ctx: &mut Ctx<'_>,
    a: &mut Conn,
    snap: &Value,
    routable: Option<&str>,
    away: Option<&str>,
) -> Option<Vec<Value>> {
    let mut events = Vec::new();
    let start = a.last_seq;
    let current = snap["status"]["state"]["name"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let verdict = async {
        let (Some(routable), Some(away)) = (routable, away) else {
            return Err("the agent's states need one `routable` and one `not_routable` or `offline`".to_owned());
        };
        // Alternate, ending away from routing (so no call arrives early).
        let plan = if current == away { vec![routable, away] } else { vec![away, routable, away] };
        for target in plan {
            let (result, before) = a.ok("set_agent_state", json!({"state": target})).await?;
            ensure!(result["kind"] == "agent_state", "set_agent_state: result kind {}", result["kind"]);
            ensure!(result["state"]["name"] == target, "set_agent_state {target}: result state {}", result["state"]);
            let ev = before
                .iter()
                .find(|f| f["event"] == "agent_state_changed" && f["state"]["name"] == target);
            ensure!(ev.is_some(), "set_agent_state {target}: no agent_state_changed event before the response (events caused by a request come before it)");
            fits_contract(ev.unwrap_or(&Value::Null), "agent_state_changed")?;
            events.extend(before.into_iter().filter(|f| f["type"] == "event"));
        }
        for muted in [true, false] {
            let (result, before) = a.ok(if muted { "mute" } else { "unmute" }, json!({})).await?;
            ensure!(result["kind"] == "ack", "mute: result kind {}", result["kind"]);
            let ev = before.iter().find(|f| f["event"] == "mute_changed");
            ensure!(ev.is_some_and(|e| e["muted"] == muted), "mute {muted}: no mute_changed {{muted: {muted}}} event before the response");
            events.extend(before.into_iter().filter(|f| f["type"] == "event"));
        }
        let mut expect = start.ok_or("the snapshot had no integer seq")?;
        for e in &events {
            expect += 1;
            ensure!(e["seq"] == expect, "event seq {} where {expect} was due", e["seq"]);
        }
        let (snap, _) = a.ok("get_snapshot", json!({})).await?;
        ensure!(snap["seq"] == expect, "get_snapshot: seq {} but the last event was {expect}", snap["seq"]);
        ensure!(snap["status"]["state"]["name"] == away, "get_snapshot: state {} after setting {away}", snap["status"]["state"]);
        ensure!(snap["muted"] == false, "get_snapshot: muted after unmute");
        Ok(())
    }
    .await;
    let ok = verdict.is_ok();
    ctx.check("events.sequenced", "§4", "set_agent_state and mute produce events before their response, seq = snapshot seq + 1, + 2, …; get_snapshot agrees", verdict);
    (ok && !events.is_empty()).then_some(events)
}

async fn resume(
    ctx: &mut Ctx<'_>,
    old: Conn,
    token: &str,
    session: &str,
    from: u64,
    events: Vec<Value>,
) -> Option<Conn> {
    let user = ctx.t.agents[0].username.clone();
    let last = events
        .last()
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or(from);
    old.close().await;

    let verdict = async {
        let mut c = Conn::open(&ctx.t.endpoint, &format!("{user}#stale"), &ctx.v).await?;
        let (w, snap) = c.hello(token, Some(("s-conformance-unknown-session", from))).await?;
        ensure!(w["resumed"] == false, "resumed an unknown session");
        let snap = snap.ok_or("no snapshot")?;
        ensure!(
            snap["seq"] == last,
            "fresh snapshot has seq {} but the agent's last event was {last} (seq is per agent, across reconnects)",
            snap["seq"]
        );
        c.close().await;
        Ok(())
    }
    .await;
    ctx.check(
        "resume.unknown_session",
        "§4",
        "resume with an unknown session: welcome resumed false and a snapshot whose seq continues",
        verdict,
    );

    let mut conn = None;
    let verdict = async {
        let mut c = Conn::open(&ctx.t.endpoint, &format!("{user}#resumed"), &ctx.v).await?;
        let (w, _) = c.hello(token, Some((session, from))).await?;
        ensure!(
            w["resumed"] == true,
            "resume from seq {from} of the current session: welcome {}",
            clip(&w.to_string())
        );
        ensure!(
            w["session"] == session,
            "resumed under another session {}",
            w["session"]
        );
        let replayed = c.sync().await?;
        let replayed: Vec<Value> = replayed
            .into_iter()
            .filter(|f| f["type"] == "event")
            .collect();
        ensure!(
            replayed == events,
            "expected exactly the {} events after seq {from} again, got {}: {}",
            events.len(),
            replayed.len(),
            clip(&Value::from(replayed.clone()).to_string())
        );
        conn = Some(c);
        Ok(())
    }
    .await;
    ctx.check(
        "resume.replay",
        "§4",
        "resume after reconnect: welcome resumed true, then exactly the missed events, identical",
        verdict,
    );
    let mut main = match conn {
        Some(c) => c,
        None => connect(ctx, token, &format!("{user}#main2")).await.ok()?.0,
    };

    let verdict = async {
        let (mut newer, _, _) = connect(ctx, token, &format!("{user}#newer")).await?;
        let (_, before) = newer.ok("mute", json!({})).await?;
        ensure!(
            before.iter().any(|f| f["event"] == "mute_changed"),
            "the newer socket got no mute_changed"
        );
        let stray = match main.recv(Duration::from_millis(500)).await {
            Ok(Some(f)) if f["type"] == "event" => Some(f),
            _ => None,
        };
        newer.ok("unmute", json!({})).await?;
        ensure!(
            stray.is_none(),
            "the older socket still received {}",
            clip(&stray.unwrap_or_default().to_string())
        );
        Ok(newer)
    }
    .await;
    match verdict {
        Ok(newer) => {
            ctx.check("hello.takeover", "§3", "a newer hello for the same agent takes the event stream over from the older socket", Ok(()));
            main.close().await;
            Some(newer)
        }
        Err(e) => {
            ctx.check("hello.takeover", "§3", "a newer hello for the same agent takes the event stream over from the older socket", Err(e));
            Some(main)
        }
    }
}

async fn requests(ctx: &mut Ctx<'_>, a: &mut Conn) {
    let ops: [(u64, &str, &str); 8] = [
        (1_000_000_041, "ping", "pong"),
        (1_000_000_007, "get_agent_state", "agent_state"),
        (9_007_199_254_740_991, "list_agent_states", "agent_states"),
        (
            1_000_000_003,
            "get_agent_configuration",
            "agent_configuration",
        ),
        (2_000_000_000, "get_routing_profile", "routing_profile"),
        (1_000_000_012, "list_quick_connects", "quick_connects"),
        (1_000_000_005, "get_snapshot", "snapshot"),
        (1_000_000_008, "ping", "pong"),
    ];
    let mut shapes = Ok(());
    let verdict = async {
        for (id, op, _) in ops {
            a.feed_text(&json!({"type": "request", "id": id, "op": op}).to_string())
                .await?;
        }
        a.flush().await?;
        let mut seen: Vec<(u64, Value)> = Vec::new();
        while seen.len() < ops.len() {
            let f = a.expect("responses to 8 pipelined requests").await?;
            if f["type"] == "response" {
                let id = f["id"].as_u64().ok_or("a response without an integer id")?;
                ensure!(
                    ops.iter().any(|(i, _, _)| *i == id),
                    "a response to id {id}, which was never sent"
                );
                ensure!(
                    !seen.iter().any(|(i, _)| *i == id),
                    "two responses to id {id}"
                );
                seen.push((id, f));
            }
        }
        for f in a.sync().await? {
            ensure!(
                f["type"] != "response",
                "an extra response after each request had one: {}",
                clip(&f.to_string())
            );
        }
        let user = ctx.t.agents[0].username.as_str();
        for (id, op, kind) in ops {
            let f = &seen.iter().find(|(i, _)| *i == id).ok_or("missing")?.1;
            let r = (|| {
                ensure!(
                    f["result"]["kind"] == kind,
                    "`{op}` (id {id}): result kind {} (must be {kind})",
                    f["result"]["kind"]
                );
                fits_contract(f, &format!("the `{op}` response"))?;
                if op == "get_agent_configuration" {
                    ensure!(
                        f["result"]["username"] == user,
                        "get_agent_configuration: username {}",
                        f["result"]["username"]
                    );
                }
                Ok(())
            })();
            if r.is_err() && shapes.is_ok() {
                shapes = r;
            }
        }
        Ok(())
    }
    .await;
    ctx.check("requests.correlation", "§5", "8 pipelined requests with unordered ids (up to 2^53-1): exactly one response each, same id", verdict);
    ctx.check(
        "requests.results",
        "§5",
        "each read-only op's result has its documented kind and golden shape",
        shapes,
    );
}

/// Sends `text` and expects an `error` frame or a response with `code`.
async fn refused(a: &mut Conn, text: &str, code: &str, what: &str) -> Verdict {
    a.send_text(text).await?;
    let e = a.next_error(&format!("`{code}` for {what}")).await?;
    expect_code(&e, code, what)?;
    a.sync().await.map_err(|e| format!("after {what}: {e}"))?;
    Ok(())
}

/// A request with id `id` and a raw body must get its response with `code`.
async fn refused_request(a: &mut Conn, id: u64, text: &str, code: &str, what: &str) -> Verdict {
    let r = a.request_raw(id, text).await?;
    expect_code(&r.response, code, what)
}

async fn bad_input(ctx: &mut Ctx<'_>, a: &mut Conn) {
    let before = match a.ok("get_snapshot", json!({})).await {
        Ok((s, _)) => s,
        Err(e) => {
            ctx.check(
                "errors.nothing_changed",
                "§5",
                "bad input changes nothing",
                Err(e),
            );
            return;
        }
    };

    let mut verdict = refused(a, "{not json", "bad_json", "`{not json`").await;
    if verdict.is_ok() {
        verdict = refused(
            a,
            r#"{"type":"request","id":"#,
            "bad_json",
            "a truncated frame",
        )
        .await;
    }
    ctx.check(
        "errors.bad_json",
        "§5",
        "a text frame that is not JSON: error bad_json, the socket stays open",
        verdict,
    );

    let verdict = refused(
        a,
        r#"{"type":"warp_drive"}"#,
        "unknown_type",
        "type `warp_drive`",
    )
    .await;
    ctx.check(
        "errors.unknown_type",
        "§1",
        "an unknown `type`: error unknown_type, the socket stays open",
        verdict,
    );

    let id = a.id();
    let verdict = refused_request(
        a,
        id,
        &json!({"type": "request", "id": id, "op": "self_destruct"}).to_string(),
        "unknown_op",
        "op `self_destruct`",
    )
    .await;
    ctx.check(
        "errors.unknown_op",
        "§1 §5",
        "an unknown `op`: that request's response carries unknown_op",
        verdict,
    );

    let verdict = async {
        for (fields, what) in [
            (
                json!({"op": "hold", "contact_id": 5, "connection_id": "k-1"}),
                "`hold` with a numeric contact_id",
            ),
            (json!({"op": "accept"}), "`accept` without contact_id"),
            (
                json!({"op": "set_agent_state", "state": ["Available"]}),
                "`set_agent_state` with an array state",
            ),
            (
                json!({"op": "update_attributes", "contact_id": "c-x", "attributes": {"k": 5}}),
                "`update_attributes` with a number value",
            ),
        ] {
            let id = a.id();
            let mut frame = json!({"type": "request", "id": id});
            if let (Some(o), Some(f)) = (frame.as_object_mut(), fields.as_object()) {
                o.extend(f.clone());
            }
            refused_request(a, id, &frame.to_string(), "bad_request", what).await?;
        }
        // No readable id: the answer is a frame-level error.
        for text in [
            r#"{"type":"request","id":"seven","op":"ping"}"#,
            r#"{"type":"request","id":-3,"op":"ping"}"#,
            r#"{"type":"request","op":"ping"}"#,
        ] {
            a.send_text(text).await?;
            let e = a.next_error("bad_request").await?;
            expect_code(&e, "bad_request", text)?;
            ensure!(
                e["type"] == "error",
                "{text}: the request id is not readable, so the answer must be a frame-level `error`, got {}",
                clip(&e.to_string())
            );
        }
        a.sync().await?;
        Ok(())
    }
    .await;
    ctx.check(
        "errors.bad_request",
        "§5",
        "a known op with missing or mistyped fields: bad_request, as its response, or as a frame-level error when the id is unreadable",
        verdict,
    );

    let verdict = async {
        let id = a.id();
        let r = a
            .request_raw(
                id,
                &json!({"type": "request", "id": id, "op": "ping", "future_field": {"x": [1, 2]}})
                    .to_string(),
            )
            .await?;
        ensure!(
            r.response["result"]["kind"] == "pong",
            "ping with an extra field: {}",
            clip(&r.response.to_string())
        );
        Ok(())
    }
    .await;
    ctx.check(
        "errors.unknown_fields_ignored",
        "§1",
        "unknown fields are ignored",
        verdict,
    );

    let verdict = async {
        let id = a.id();
        let head = format!(r#"{{"type":"request","id":{id},"op":"ping","pad":""#);
        let text = format!("{head}{}\"}}", "x".repeat(65_536 - head.len() - 2));
        ensure!(
            text.len() == 65_536,
            "suite bug: frame of {} bytes",
            text.len()
        );
        let r = a.request_raw(id, &text).await?;
        ensure!(
            r.response["result"]["kind"] == "pong",
            "a 65,536-byte ping: {}",
            clip(&r.response.to_string())
        );
        Ok(())
    }
    .await;
    ctx.check(
        "errors.frame_at_limit",
        "§1",
        "a text frame of exactly 65,536 bytes is accepted",
        verdict,
    );

    let verdict = async {
        let id = a.id();
        let text = format!(
            r#"{{"type":"request","id":{id},"op":"ping","pad":"{}"}}"#,
            // Just over the limit: a backend's transport may close on
            // much larger messages (section 1), not on this one.
            "x".repeat(66_000)
        );
        a.send_text(&text).await?;
        let e = a.next_error("frame_too_large").await?;
        expect_code(&e, "frame_too_large", "a 66,040-byte text frame")?;
        let after = a.sync().await?;
        ensure!(
            !after.iter().any(|f| f["id"].as_u64() == Some(id)),
            "the oversized ping was also answered: it must be otherwise ignored"
        );
        Ok(())
    }
    .await;
    ctx.check(
        "errors.frame_too_large",
        "§1",
        "a text frame over 65,536 bytes: frame_too_large, otherwise ignored, the socket stays open",
        verdict,
    );

    let verdict = async {
        for state in ["No Such State (conformance)", "Busy", "AfterCallWork"] {
            let r = a
                .request("set_agent_state", json!({"state": state}))
                .await?;
            ensure!(
                r.code().is_some(),
                "set_agent_state {state:?} was accepted: only configured selectable states are"
            );
        }
        Ok(())
    }
    .await;
    ctx.check(
        "errors.set_agent_state",
        "§5",
        "set_agent_state refuses unknown and system states",
        verdict,
    );

    let verdict = async {
        let c = "c-conformance-no-such-contact";
        for (op, fields) in [
            ("accept", json!({"contact_id": c})),
            ("reject", json!({"contact_id": c})),
            ("clear", json!({"contact_id": c})),
            ("hold", json!({"contact_id": c, "connection_id": "k-1"})),
            (
                "send_digits",
                json!({"contact_id": c, "connection_id": "k-1", "digits": "1"}),
            ),
            (
                "end_connection",
                json!({"contact_id": c, "connection_id": "k-1"}),
            ),
            ("get_attributes", json!({"contact_id": c})),
            (
                "update_attributes",
                json!({"contact_id": c, "attributes": {"k": "v"}}),
            ),
        ] {
            let r = a.request(op, fields).await?;
            expect_code(
                &r.response,
                "not_found",
                &format!("`{op}` on an unknown contact"),
            )?;
        }
        Ok(())
    }
    .await;
    ctx.check(
        "ownership.unknown_contact",
        "§5",
        "an op on an unknown contact: not_found",
        verdict,
    );

    let verdict = async {
        let cases: [(Vec<u8>, &str); 5] = [
            (vec![0xde, 0xad], "a 2-byte frame"),
            (
                shape::media_frame(2, 0, 0, 7, 1, 960, &[0xf8, 0xff, 0xfe]),
                "version 2",
            ),
            (
                shape::media_frame(1, 0x80, 0, 7, 1, 960, &[0xf8, 0xff, 0xfe]),
                "undefined flag bit 7",
            ),
            (
                shape::media_frame(1, 0, 0x0001, 7, 1, 960, &[0xf8, 0xff, 0xfe]),
                "a non-zero reserved byte 3",
            ),
            (
                shape::media_frame(1, 0, 0x0300, 7, 1, 960, &[0xf8, 0xff, 0xfe]),
                "an unknown codec byte (3)",
            ),
        ];
        for (frame, what) in cases {
            a.send_binary(frame).await?;
            let e = a.next_error(&format!("bad_media_frame for {what}")).await?;
            expect_code(&e, "bad_media_frame", what)?;
        }
        a.send_binary(shape::media_frame(1, 0, 0, 7, 1, 960, &[0u8; 1276]))
            .await?;
        let e = a
            .next_error("an answer to a 1,276-byte Opus packet")
            .await?;
        ensure!(
            matches!(code_of(&e), Some("bad_media_frame" | "frame_too_large")),
            "a 1,276-byte Opus packet (at most 1,275): {}",
            clip(&e.to_string())
        );
        a.sync().await?;
        Ok(())
    }
    .await;
    ctx.check("media.bad_frame", "§8", "malformed media headers (short, version, flags, unknown codec, reserved, packet over 1,275 bytes): bad_media_frame", verdict);

    let verdict = async {
        a.send_binary(shape::media_frame(
            1,
            0,
            0,
            0xC0FF_EE01,
            1,
            960,
            &[0xf8, 0xff, 0xfe],
        ))
        .await?;
        let e = a.next_error("no_media_leg").await?;
        expect_code(
            &e,
            "no_media_leg",
            "a valid frame for a leg the agent does not have",
        )?;
        a.sync().await?;
        Ok(())
    }
    .await;
    ctx.check(
        "media.no_media_leg",
        "§8",
        "a valid frame for a leg the agent does not have live: no_media_leg",
        verdict,
    );

    let verdict = async {
        let (after, _) = a.ok("get_snapshot", json!({})).await?;
        for key in ["seq", "status", "muted", "contacts"] {
            ensure!(
                after[key] == before[key],
                "`{key}` changed from {} to {}",
                clip(&before[key].to_string()),
                clip(&after[key].to_string())
            );
        }
        Ok(())
    }
    .await;
    ctx.check(
        "errors.nothing_changed",
        "§5",
        "after all that bad input the agent's snapshot (seq, status, contacts) is unchanged",
        verdict,
    );
}

/// Starts the inbound call; returns the contact id when the starter knows it.
async fn start_call(
    ctx: &Ctx<'_>,
) -> Result<(Option<String>, Option<tokio::process::Child>), String> {
    match &ctx.t.call {
        CallSource::None => {
            Err("no way to start a call: pass --sim, --sim-key KEY or --call-command CMD".into())
        }
        CallSource::Simulator { key, from, queue } => {
            let body = json!({"from": from, "queue": queue}).to_string();
            let auth = key.as_ref().map(|k| format!("Bearer {k}"));
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            let r = http(
                &ctx.t.endpoint,
                "POST",
                "/v1/sim/calls",
                &headers,
                Some(&body),
            )
            .await?;
            ensure!(
                r.status == 201,
                "POST /v1/sim/calls: {} {}",
                r.status,
                clip(&r.body)
            );
            Ok((r.json["contact_id"].as_str().map(str::to_owned), None))
        }
        CallSource::Command(cmd) => {
            let child = tokio::process::Command::new("sh")
                .args(["-c", cmd])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
            Ok((None, Some(child)))
        }
    }
}

/// The contact's connection of `kind` (`inbound`, …).
fn connection<'v>(contact: &'v Value, kind: &str) -> Option<&'v Value> {
    contact["connections"]
        .as_array()?
        .iter()
        .find(|c| c["kind"] == kind)
}

/// The last `contact_updated` for `id` among `frames`.
fn last_update<'v>(frames: &'v [Value], id: &str) -> Option<&'v Value> {
    frames
        .iter()
        .rev()
        .find(|f| f["event"] == "contact_updated" && f["contact_id"] == id)
}

/// The inbound call, end to end, with ownership, digits, attributes and
/// media checks while it is live.
async fn call(
    ctx: &mut Ctx<'_>,
    a: &mut Conn,
    b: &mut Conn,
    token_a: &str,
    routable: Option<&str>,
    away: Option<&str>,
) {
    let title = "an inbound call rings the first agent: contact_updated, state incoming, shaped like event_contact_updated.json";
    let Some(routable) = routable else {
        ctx.skip("call.ring", "§6", title, "the agent has no routable state");
        return;
    };
    if let Err(e) = a.ok("set_agent_state", json!({"state": routable})).await {
        ctx.check(
            "call.ring",
            "§6",
            title,
            Err(format!("cannot make the agent routable: {e}")),
        );
        return;
    }
    let (known_id, mut child) = match start_call(ctx).await {
        Ok(x) => x,
        Err(e) => {
            let outcome = if matches!(ctx.t.call, CallSource::None) {
                Outcome::Skip(e)
            } else {
                Outcome::Fail(e)
            };
            ctx.record("call.ring", "§6", title, outcome);
            return;
        }
    };
    // Ring: wait up to 30 s for an incoming contact.
    let ring = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            ensure!(
                !left.is_zero(),
                "no incoming contact_updated within 30 s of starting the call"
            );
            match a.recv(left).await {
                Ok(Some(f))
                    if f["event"] == "contact_updated"
                        && f["state"]["name"] == "incoming"
                        && known_id
                            .as_ref()
                            .is_none_or(|id| f["contact_id"] == id.as_str()) =>
                {
                    return Ok(f);
                }
                Ok(_) => {}
                Err(c) => return Err(format!("waiting for the call: {c}")),
            }
        }
    }
    .await;
    let ring = ring.and_then(|f| {
        fits_contract(&f, "the ringing contact")?;
        ensure!(
            f["initiation"] == "inbound",
            "initiation {} (must be inbound)",
            f["initiation"]
        );
        ensure!(
            connection(&f, "inbound").is_some(),
            "no connection of kind `inbound` (the customer)"
        );
        let (since, expires) = (
            f["state"]["since"].as_u64(),
            f["state"]["expires_at"].as_u64(),
        );
        ensure!(
            matches!((since, expires), (Some(s), Some(e)) if e > s),
            "incoming needs since < expires_at, got {}",
            f["state"]
        );
        Ok(f)
    });
    let contact = match ring {
        Ok(f) => {
            ctx.check("call.ring", "§6", title, Ok(()));
            f
        }
        Err(e) => {
            ctx.check("call.ring", "§6", title, Err(e));
            return;
        }
    };
    let cid = contact["contact_id"].as_str().unwrap_or("").to_owned();
    let customer = connection(&contact, "inbound")
        .and_then(|c| c["connection_id"].as_str())
        .unwrap_or("")
        .to_owned();

    let verdict = async {
        for (op, fields) in [
            ("accept", json!({"contact_id": cid})),
            ("reject", json!({"contact_id": cid})),
            ("clear", json!({"contact_id": cid})),
            (
                "hold",
                json!({"contact_id": cid, "connection_id": customer}),
            ),
            (
                "resume",
                json!({"contact_id": cid, "connection_id": customer}),
            ),
            (
                "send_digits",
                json!({"contact_id": cid, "connection_id": customer, "digits": "1"}),
            ),
            (
                "end_connection",
                json!({"contact_id": cid, "connection_id": customer}),
            ),
            ("get_attributes", json!({"contact_id": cid})),
            (
                "update_attributes",
                json!({"contact_id": cid, "attributes": {"stolen": "yes"}}),
            ),
            ("conference", json!({"contact_id": cid})),
            ("toggle", json!({"contact_id": cid})),
        ] {
            let r = b.request(op, fields).await?;
            expect_code(
                &r.response,
                "not_owner",
                &format!("the other agent's `{op}` on this contact"),
            )?;
        }
        let (snap, _) = a.ok("get_snapshot", json!({})).await?;
        let mine = snap["contacts"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["contact_id"] == cid.as_str()));
        ensure!(
            mine.is_some_and(|c| c["state"]["name"] == "incoming"),
            "the contact changed after the other agent's refused ops: {}",
            clip(&mine.cloned().unwrap_or_default().to_string())
        );
        ensure!(
            mine.is_some_and(|c| c["attributes"].get("stolen").is_none()),
            "the other agent's update_attributes was applied"
        );
        Ok(())
    }
    .await;
    ctx.check(
        "ownership.other_agent",
        "§5",
        "every op by another agent on this contact: not_owner, nothing changes",
        verdict,
    );

    let mut leg = None;
    let verdict = async {
        let (result, before) = a.ok("accept", json!({"contact_id": cid})).await?;
        ensure!(result["kind"] == "ack", "accept: result kind {}", result["kind"]);
        let mut update = last_update(&before, &cid).cloned();
        if update.as_ref().is_none_or(|u| u["state"]["name"] != "connected") {
            // Tolerated only if it follows promptly; the contract wants it first.
            return Err("no contact_updated with state connected before the accept's response (events caused by a request come before it)".into());
        }
        let u = update.take().unwrap_or_default();
        ensure!(u["connections"][0]["state"]["name"] == "connected", "own connection {} after accept", u["connections"][0]["state"]);
        leg = u["connections"][0]["media_leg"].as_u64();
        ensure!(leg.is_some(), "the agent's own connection carries no media_leg while connected");
        ensure!(connection(&u, "inbound").is_some_and(|c| c["state"]["name"] == "connected"), "the customer is not connected after accept");
        Ok(())
    }
    .await;
    let accepted = verdict.is_ok();
    ctx.check("call.accept", "§5 §6 §8", "accept: ack, preceded by contact_updated connected with media_leg on the agent's own connection", verdict);
    if accepted {
        let leg = leg.unwrap_or(0) as u32;
        let live = Live {
            cid: &cid,
            customer: &customer,
            leg,
            token: token_a,
            away,
        };
        live_call(ctx, a, b, live).await;
    }
    if let Some(child) = child.as_mut() {
        let _ = child.start_kill();
    }
}

/// What the live-call checks need to know about the call.
#[derive(Clone, Copy)]
struct Live<'s> {
    cid: &'s str,
    customer: &'s str,
    leg: u32,
    token: &'s str,
    away: Option<&'s str>,
}

async fn live_call(ctx: &mut Ctx<'_>, a: &mut Conn, b: &mut Conn, live: Live<'_>) {
    let Live {
        cid,
        customer,
        leg,
        token: token_a,
        away,
    } = live;
    let media_before = a.media.len();
    let verdict = async {
        for i in 0..10u32 {
            let flags = if i == 0 { 0b010 } else { 0 };
            a.send_binary(shape::media_frame(
                1,
                flags,
                0,
                leg,
                1000 + i,
                960 * i,
                &[0xf8, 0xff, 0xfe],
            ))
            .await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = a.sync().await?;
        let errors: Vec<&Value> = before.iter().filter(|f| f["type"] == "error").collect();
        ensure!(
            errors.is_empty(),
            "valid frames on leg {leg} were answered: {}",
            clip(&json!(errors).to_string())
        );
        a.send_binary(shape::media_frame(
            1,
            0,
            0,
            leg ^ 0x4000_0000,
            1,
            960,
            &[0xf8, 0xff, 0xfe],
        ))
        .await?;
        let e = a
            .next_error("no_media_leg for another leg during the call")
            .await?;
        expect_code(
            &e,
            "no_media_leg",
            "a frame for a leg that is not the agent's",
        )?;
        Ok(())
    }
    .await;
    ctx.check(
        "media.valid_frames",
        "§8",
        "valid frames on the agent's media_leg get no answer; another leg gets no_media_leg",
        verdict,
    );

    // What the backend sent so far (the caller's audio, if any): wait up
    // to a second more for some to arrive.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while a.media.len() == media_before && tokio::time::Instant::now() < deadline {
        if a.recv(Duration::from_millis(100)).await.is_err() {
            break;
        }
    }
    let frames: Vec<&Vec<u8>> = a.media.get(media_before..).unwrap_or(&[]).iter().collect();
    let wrong: Vec<u32> = frames
        .iter()
        .filter_map(|f| shape::media_header(f).ok())
        .filter(|l| *l != leg)
        .collect();
    if frames.is_empty() {
        ctx.skip(
            "media.received",
            "§8",
            "media the backend sends carries the agent's media_leg",
            "no audio arrived (the caller may be silent)",
        );
    } else {
        ctx.check(
            "media.received",
            "§8",
            "media the backend sends carries the agent's media_leg",
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} frame(s) on legs {:?}, not {leg}",
                    wrong.len(),
                    &wrong[..wrong.len().min(5)]
                ))
            },
        );
    }

    let verdict = async {
        for digits in ["", "12X", "1 2", &"1".repeat(65), "E"] {
            let r = a
                .request(
                    "send_digits",
                    json!({"contact_id": cid, "connection_id": customer, "digits": digits}),
                )
                .await?;
            expect_code(
                &r.response,
                "invalid_argument",
                &format!("digits {digits:?}"),
            )?;
        }
        let (result, mut before) = a
            .ok(
                "send_digits",
                json!({"contact_id": cid, "connection_id": customer, "digits": "12#,A"}),
            )
            .await?;
        ensure!(result["kind"] == "ack", "send_digits: {}", result["kind"]);
        if !before.iter().any(|f| f["event"] == "digits") {
            before.extend(a.sync().await?);
        }
        let ev = before
            .iter()
            .find(|f| f["event"] == "digits")
            .ok_or("no `digits` event for the DTMF sent")?;
        fits_contract(ev, "the digits event")?;
        ensure!(
            ev["contact_id"] == cid && ev["connection_id"] == customer && ev["digits"] == "12#,A",
            "digits event {}",
            clip(&ev.to_string())
        );
        Ok(())
    }
    .await;
    ctx.check("errors.invalid_digits", "§5", "digits outside 1-64 of 0-9 * # A-D , : invalid_argument; valid ones: ack and a digits event", verdict);

    let verdict = async {
        let one =
            |k: String, v: String| Value::Object([(k, Value::String(v))].into_iter().collect());
        let many: serde_json::Map<String, Value> =
            (0..129).map(|i| (format!("conf{i}"), json!("v"))).collect();
        for (attrs, what) in [
            (json!({"": "empty key"}), "an empty key"),
            (one("k".repeat(129), "v".into()), "a 129-byte key"),
            (
                json!({"conformance": "v".repeat(4097)}),
                "a 4,097-byte value",
            ),
            (Value::Object(many), "129 attributes"),
        ] {
            let r = a
                .request(
                    "update_attributes",
                    json!({"contact_id": cid, "attributes": attrs}),
                )
                .await?;
            expect_code(
                &r.response,
                "invalid_argument",
                &format!("update_attributes with {what}"),
            )?;
        }
        let key128 = "k".repeat(128);
        let value = "v".repeat(4096);
        let mut attrs = one(key128.clone(), value.clone());
        attrs["conformance"] = json!("yes");
        let (result, before) = a
            .ok(
                "update_attributes",
                json!({"contact_id": cid, "attributes": attrs}),
            )
            .await?;
        ensure!(
            result["kind"] == "attributes",
            "update_attributes: result kind {}",
            result["kind"]
        );
        ensure!(
            result["attributes"]["conformance"] == "yes"
                && result["attributes"][&key128] == value.as_str(),
            "the result does not hold the merged attributes"
        );
        let u = last_update(&before, cid)
            .ok_or("no contact_updated for the new attributes before the response")?;
        ensure!(
            u["attributes"]["conformance"] == "yes",
            "contact_updated lacks the new attribute"
        );
        let (got, _) = a.ok("get_attributes", json!({"contact_id": cid})).await?;
        ensure!(
            got["kind"] == "attributes" && got["attributes"]["conformance"] == "yes",
            "get_attributes: {}",
            clip(&got.to_string())
        );
        Ok(())
    }
    .await;
    ctx.check("errors.invalid_attributes", "§5", "attributes: keys 1-128 bytes, values up to 4,096, at most 128: invalid_argument beyond; the limits themselves accepted and merged", verdict);

    let verdict = async {
        let (_, before) = a
            .ok(
                "hold",
                json!({"contact_id": cid, "connection_id": customer}),
            )
            .await?;
        let u = last_update(&before, cid).ok_or("no contact_updated before hold's response")?;
        ensure!(
            connection(u, "inbound").is_some_and(|c| c["state"]["name"] == "hold"),
            "customer not on hold: {}",
            clip(&u.to_string())
        );
        let r = b
            .request(
                "resume",
                json!({"contact_id": cid, "connection_id": customer}),
            )
            .await?;
        expect_code(
            &r.response,
            "not_owner",
            "the other agent resuming this call",
        )?;
        let (_, before) = a
            .ok(
                "resume",
                json!({"contact_id": cid, "connection_id": customer}),
            )
            .await?;
        let u = last_update(&before, cid).ok_or("no contact_updated before resume's response")?;
        ensure!(
            connection(u, "inbound").is_some_and(|c| c["state"]["name"] == "connected"),
            "customer not connected after resume: {}",
            clip(&u.to_string())
        );
        let own = u["connections"][0]["connection_id"].as_str().unwrap_or("");
        let r = a
            .request("hold", json!({"contact_id": cid, "connection_id": own}))
            .await?;
        ensure!(
            r.code().is_some(),
            "holding the agent's own connection was accepted"
        );
        Ok(())
    }
    .await;
    ctx.check("call.hold_resume", "§5 §6", "hold and resume the customer: ack after contact_updated hold / connected; the agent's own connection cannot be held", verdict);

    super::limits::during_call(ctx, a, cid, token_a).await;

    // Choosing a state while on a call makes it the next state.
    let mut next = Err("the agent has no not_routable or offline state".to_owned());
    if let Some(away) = away {
        next = async {
            let (r, _) = a.ok("set_agent_state", json!({"state": away})).await?;
            ensure!(r["kind"] == "agent_state", "set_agent_state: {}", r["kind"]);
            ensure!(
                r["next_state"]["name"] == away && r["state"]["name"] != away,
                "set_agent_state {away} while connected must leave the state and set next_state; got {}",
                clip(&r.to_string())
            );
            Ok(())
        }
        .await;
    }

    let verdict = async {
        let (result, mut before) = a.ok("end_connection", json!({"contact_id": cid, "connection_id": customer})).await?;
        ensure!(result["kind"] == "ack", "end_connection: {}", result["kind"]);
        if last_update(&before, cid).is_none_or(|u| u["state"]["name"] != "ended") {
            before.extend(a.sync().await?);
        }
        let u = last_update(&before, cid).ok_or("no contact_updated after ending the call")?;
        ensure!(u["state"]["name"] == "ended", "contact state {} after ending the customer's connection (must be ended: after-call work)", u["state"]);
        Ok(())
    }
    .await;
    ctx.check(
        "call.end",
        "§5 §6",
        "end_connection on the customer: ack, contact_updated ended {reason} (after-call work)",
        verdict,
    );

    let verdict = async {
        let (conf, _) = a.ok("get_agent_configuration", json!({})).await?;
        let mut fields = json!({"contact_id": cid});
        if let Some(code) = conf["wrap_up_codes"].as_array().and_then(|c| c.first()) {
            fields["wrap_up_code"] = code.clone();
        }
        let (result, mut before) = a.ok("clear", fields).await?;
        ensure!(result["kind"] == "ack", "clear: {}", result["kind"]);
        if !before.iter().any(|f| f["event"] == "contact_destroyed") {
            before.extend(a.sync().await?);
        }
        let ev = before
            .iter()
            .find(|f| f["event"] == "contact_destroyed")
            .ok_or("no contact_destroyed after clear")?;
        ensure!(
            ev["contact_id"] == cid,
            "contact_destroyed for {}",
            ev["contact_id"]
        );
        let (snap, _) = a.ok("get_snapshot", json!({})).await?;
        ensure!(
            !snap["contacts"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["contact_id"] == cid)),
            "the cleared contact is still in the snapshot"
        );
        Ok(())
    }
    .await;
    ctx.check(
        "call.clear",
        "§5 §6",
        "clear (with a wrap-up code): ack, contact_destroyed, gone from the snapshot",
        verdict,
    );

    if next.is_ok() {
        next = async {
            let (r, _) = a.ok("get_agent_state", json!({})).await?;
            ensure!(
                r["state"]["name"] == away.unwrap_or_default()
                    && r.get("next_state").is_none_or(Value::is_null),
                "after the last contact was cleared the next state must apply; got {}",
                clip(&r.to_string())
            );
            Ok(())
        }
        .await;
    }
    ctx.check(
        "call.next_state",
        "§5",
        "a state chosen during a call becomes next_state and applies when the contact is cleared",
        next,
    );
}
