//! Nothing that matters is lost when the backend stops or dies mid-call
//! (issue 10, item 6). The real binary runs as a child process with
//! recording on; a simulated caller speaks to an agent on a real socket
//! for about two seconds, then:
//!
//! - SIGTERM and SIGINT: the process exits 0 within a deadline, the agent
//!   is told the contact ended (`backend_shutdown`) and is gone, the
//!   record is ended with that reason, the store's log is checkpointed,
//!   and the recording (per-party Ogg Opus files) is complete, with the
//!   caller's speech in its mix;
//! - `kill -9`: the database passes `PRAGMA integrity_check`, the record
//!   is there, the recording's files play up to their last page (all but
//!   about the last second of the call); the next
//!   start closes the dangling contact as `backend_restart`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use protocol::contact::ContactState;
use protocol::wire::{Event, Op};
use streams_sdk::Output;
use switchboard_tests::process::ServerProcess;
use switchboard_tests::*;

/// How long a graceful stop may take, signal to exit (the backend's own
/// deadline is 5 s; a stop on an idle loopback takes well under one).
const STOP_DEADLINE: Duration = Duration::from_secs(10);

fn config(dir: &Path) -> String {
    switchboard_tests::process::process_config(dir, "recording = true\n")
}

struct LiveCall {
    dir: PathBuf,
    server: ServerProcess,
    alice: Client,
    id: String,
    /// When the agent saw the call connected (its recording starts then).
    connected: Instant,
}

/// Alice takes a simulated call (the sample prompt: speech from its first
/// second) and listens until `audio` has passed since it connected.
async fn live_call(name: &str, audio: Duration) -> LiveCall {
    let dir = temp_dir(name);
    let server = ServerProcess::start(&dir, &config(&dir));
    let token = login(server.addr, "alice", "alice-pass").await;
    let mut alice = Client::connect(server.addr, &token).await;
    alice.set_available().await;
    let id = sim_call(server.addr, "+819012345678", "support").await;
    alice
        .wait_for("the call rings", |a| a.state().contacts.contains_key(&id))
        .await;
    alice
        .ok(Op::Accept {
            contact_id: id.clone(),
        })
        .await;
    alice
        .wait_for("the call connects", |a| {
            matches!(
                a.state().contacts.get(&id).map(|c| &c.state),
                Some(ContactState::Connected { .. })
            )
        })
        .await;
    let connected = Instant::now();
    let until = connected + audio;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        // A frame arrives every 20 ms; a cancelled read loses nothing.
        let _ = tokio::time::timeout(left, alice.pump()).await;
    }
    assert!(
        alice.media_in.len() > 40,
        "audio flowed to the agent ({} frames)",
        alice.media_in.len()
    );
    LiveCall {
        dir,
        server,
        alice,
        id,
        connected,
    }
}

/// A recording: its directory holds one Ogg Opus file per party and a
/// manifest. Returns the seconds of the on-demand mix, its samples, and
/// whether every party file ends with its end-of-stream page.
fn read_recording(dir: &Path) -> (f64, Vec<i16>, bool) {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "opus"))
        .collect();
    assert!(!files.is_empty(), "party files in {}", dir.display());
    assert!(dir.join("manifest.jsonl").exists(), "a manifest");
    let finished = files
        .iter()
        .all(|f| server::bridge::mixdown::finished(&std::fs::read(f).expect("party file")));
    let mix = server::bridge::mixdown::mix_dir(dir).expect("the files decode");
    let samples: Vec<i16> = mix.iter().map(|x| (x * 32767.0) as i16).collect();
    (mix.len() as f64 / 48_000.0, samples, finished)
}

fn level_db(samples: &[i16]) -> f64 {
    let energy: f64 = samples
        .iter()
        .map(|&s| (f64::from(s) / 32768.0).powi(2))
        .sum();
    10.0 * (energy / samples.len().max(1) as f64 + 1e-12).log10()
}

fn open_db(dir: &Path) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(dir.join("switchboard.sqlite3")).expect("open db");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok", "the database is intact");
    db
}

/// (ended_at, disconnect_reason, recording) of a contact.
fn record(db: &rusqlite::Connection, id: &str) -> (Option<i64>, Option<String>, String) {
    db.query_row(
        "SELECT ended_at, disconnect_reason, recording FROM contacts WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .expect("the contact record exists")
}

async fn graceful_stop(signal: &str) {
    let LiveCall {
        dir,
        mut server,
        mut alice,
        id,
        connected,
    } = live_call(&format!("stop-{signal}"), Duration::from_secs(2)).await;
    let sent = Instant::now();
    server.signal(signal);

    // The agent is told the call ended, and why, then that it is gone.
    alice
        .wait_for("contact_destroyed", |a| {
            a.log.iter().any(|o| {
                matches!(o, Output::Event(Event::ContactDestroyed { contact_id }) if *contact_id == id)
            })
        })
        .await;
    let reason = alice.log.iter().find_map(|o| match o {
        Output::Event(Event::ContactUpdated(v)) if v.contact_id == id => match &v.state {
            ContactState::Ended { reason, .. } => Some(reason.clone()),
            _ => None,
        },
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("backend_shutdown"));
    assert!(!alice.state().contacts.contains_key(&id));

    let status = server
        .wait_exit(STOP_DEADLINE)
        .await
        .unwrap_or_else(|| panic!("exited within {STOP_DEADLINE:?}: {}", server.log_text()));
    let took = sent.elapsed();
    let call_ms = sent.duration_since(connected).as_millis();
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    println!("SIG{signal}: exited 0 {took:?} after the signal, {call_ms} ms into the call");
    let log = server.log_text();
    let stopped = log
        .lines()
        .find(|l| l.contains(" stopped"))
        .unwrap_or_default();
    println!("SIG{signal}: {stopped}");
    for done in [
        "calls_ended=1",
        "sockets_left=0",
        "bridge_done=true",
        "store_flushed=true",
    ] {
        assert!(
            stopped.contains(done),
            "{done} in the backend's report: {log}"
        );
    }

    let db = open_db(&dir);
    let (ended_at, why, recording) = record(&db, &id);
    assert!(ended_at.is_some(), "the record is ended");
    assert_eq!(why.as_deref(), Some("backend_shutdown"));
    let wal = dir.join("switchboard.sqlite3-wal");
    assert!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
        "the store's log was checkpointed into the database"
    );

    let (secs, samples, finished) = read_recording(Path::new(&recording));
    assert!(
        finished,
        "every party file is complete (end-of-stream page)"
    );
    assert!(
        secs >= 1.8,
        "the recording holds the call's ~2 s ({secs:.2} s)"
    );
    let level = level_db(&samples);
    println!("SIG{signal}: recording {secs:.2} s at {level:.1} dBFS");
    assert!(
        level > -40.0,
        "the caller's speech is in it ({level:.1} dBFS)"
    );
    drop(db);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_calls_finishes_recordings_and_exits_zero() {
    graceful_stop("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_ends_calls_finishes_recordings_and_exits_zero() {
    graceful_stop("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_leaves_an_intact_store_and_a_playable_recording() {
    let LiveCall {
        dir,
        mut server,
        alice,
        id,
        connected,
    } = live_call("kill9", Duration::from_millis(2700)).await;
    let call = connected.elapsed();
    server.signal("KILL");
    let status = server.wait_exit(STOP_DEADLINE).await.expect("killed");
    assert!(!status.success());
    drop(alice);

    let db = open_db(&dir);
    let (ended_at, _, recording) = record(&db, &id);
    assert_eq!(ended_at, None, "nobody closed it: the process died");
    drop(db);

    // Ogg pages are self-checking: the files read up to their last whole
    // page (about a second each).
    let (secs, samples, _) = read_recording(Path::new(&recording));
    let lost = call.as_secs_f64() - secs;
    println!(
        "kill -9 {:.2} s into the call: the files hold {secs:.2} s ({lost:.2} s lost)",
        call.as_secs_f64()
    );
    assert!(
        lost <= 1.5,
        "at most the last page (about a second) is lost ({secs:.2} s of {:.2} s)",
        call.as_secs_f64()
    );
    assert!(level_db(&samples) > -40.0, "the caller's speech is in it");

    // The next start closes the call the dead process left open.
    let again = ServerProcess::start(&dir, &config(&dir));
    let db = open_db(&dir);
    let (ended_at, why, _) = record(&db, &id);
    assert!(ended_at.is_some());
    assert_eq!(why.as_deref(), Some("backend_restart"));
    drop((db, again));
    let _ = std::fs::remove_dir_all(dir);
}
