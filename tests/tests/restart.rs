//! A backend restart loses nothing that matters: contact records and
//! login tokens are in SQLite, agent statuses come back, and a call that
//! was live when the old process died is closed with a clear reason.

use protocol::wire::Op;
use switchboard_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_tokens_and_statuses_survive_a_restart() {
    let dir = temp_dir("restart");
    let first = server::start(test_config(&dir)).await.expect("start");
    let token = login(first.addr, "alice", "alice-pass").await;
    let mut alice = Client::connect(first.addr, &token).await;
    alice.set_available().await;
    let done = sim_call(first.addr, "+819012345678", "support").await;
    alice.accept_when_ringing(&done).await;
    let (status, _) = sim_http(first.addr, "DELETE", &format!("/v1/sim/calls/{done}"), None).await;
    assert_eq!(status, 204);
    alice
        .ok(Op::Clear {
            contact_id: done.clone(),
            wrap_up_code: None,
        })
        .await;
    let live = sim_call(first.addr, "+15550002222", "support").await;
    alice.accept_when_ringing(&live).await;

    // A second process on the same data directory stands in for the restart.
    let second = server::start(test_config(&dir)).await.expect("restart");
    let mut again = Client::connect(second.addr, &token).await;
    assert_eq!(
        again.agent_state(),
        "Available",
        "status restored; the old token still works"
    );
    assert!(again.state().contacts.is_empty());
    let (record, live_record) = {
        let center = second.state.center.lock().expect("lock");
        let store = center.store();
        (
            store.contact(&done).expect("db").expect("kept"),
            store.contact(&live).expect("db").expect("kept"),
        )
    };
    assert_eq!(
        record.disconnect_reason.as_deref(),
        Some("customer_disconnect")
    );
    assert_eq!(record.attributes["customerName"], "Justin");
    assert_eq!(
        live_record.disconnect_reason.as_deref(),
        Some("backend_restart")
    );
    again.ok(Op::Ping).await;
    let _ = std::fs::remove_dir_all(dir);
}
