//! The conference mixer wakes only for the phase slots that have calls
//! (issue 12): a backend with no call to mix costs next to nothing. Judged
//! from outside, on the real binary: the kernel's count of each mixer
//! thread's voluntary context switches (`/proc/<pid>/task/*/status`; one
//! per sleep), idle and then with a simulated caller talking to an agent
//! (a call the mixer ticks every 20 ms, for the caller's prompt).

use std::path::Path;
use std::time::{Duration, Instant};

use switchboard_tests::process::ServerProcess;
use switchboard_tests::*;

/// The window each count is taken over.
const WINDOW: Duration = Duration::from_secs(1);

/// Each mixer thread's voluntary context switches so far, by thread id.
fn mixer_switches(pid: u32) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("bridge-mixer") {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let switches = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("voluntary_ctxt_switches");
        out.push((dir.display().to_string(), switches));
    }
    out.sort();
    out
}

/// Each mixer thread's wakes over [`WINDOW`] (measured, not waited for:
/// there is no state to wait on).
async fn wakes_over_window(pid: u32) -> Vec<u64> {
    let before = mixer_switches(pid);
    assert!(!before.is_empty(), "the backend runs mixer threads");
    tokio::time::sleep(WINDOW).await;
    let after = mixer_switches(pid);
    assert_eq!(before.len(), after.len(), "the same mixer threads");
    before
        .iter()
        .zip(&after)
        .map(|((_, a), (_, b))| b - a)
        .collect()
}

fn config(dir: &Path) -> String {
    switchboard_tests::process::process_config(dir, "")
}

/// Idle, no mixer thread wakes more than a few times a second (a fixed
/// 1 ms tick woke each 1,000 times); with one call to tick, the mixers
/// wake for its slot, about 50 times a second in all, still far from
/// 1,000, and the agent hears the caller throughout.
#[tokio::test]
async fn mixer_threads_sleep_when_idle_and_wake_for_a_calls_slot_only() {
    let dir = temp_dir("mixer-wakes");
    let server = ServerProcess::start(&dir, &config(&dir));
    let pid = server.pid();

    let idle = wakes_over_window(pid).await;
    assert!(
        idle.iter().all(|&n| n <= 10),
        "idle mixer threads woke {idle:?} times in {WINDOW:?}"
    );

    let token = login(server.addr, "alice", "alice-pass").await;
    let mut alice = Client::connect(server.addr, &token).await;
    alice.set_available().await;
    let id = sim_call(server.addr, "+819012345678", "support").await;
    alice.accept_when_ringing(&id).await;
    alice
        .wait_for("the caller's audio", |a| !a.media_in.is_empty())
        .await;
    // The agent reads its socket while the window is measured.
    let pid_wakes = tokio::spawn(async move { wakes_over_window(pid).await });
    let until = Instant::now() + WINDOW + Duration::from_millis(200);
    let heard_before = alice.media_in.len();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        // A frame arrives every 20 ms; a cancelled read loses nothing.
        let _ = tokio::time::timeout(left, alice.pump()).await;
    }
    let busy = pid_wakes.await.expect("measured");
    let total: u64 = busy.iter().sum();
    assert!(
        total <= 150,
        "one call's slot: about 50 wakes a second in all, not 1,000 a thread: {busy:?}"
    );
    assert!(total >= 20, "the mixer wakes for the call's slot: {busy:?}");
    let heard = alice.media_in.len() - heard_before;
    assert!(
        heard >= 40,
        "the agent heard the caller all along ({heard} frames in {WINDOW:?} and a bit)"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
