//! Media frames that cross the end of their leg (issue 15): an agent who
//! leaves a conference keeps sending a few frames until it hears that its
//! connection ended. Those frames are expected, not an error: the backend
//! drops them quietly, and only a leg the agent never had is refused with
//! `no_media_leg`.

use protocol::error::ErrorCode;
use protocol::media::{encode_media_frame, MediaHeader};
use protocol::wire::Op;
use switchboard_tests::*;

fn frame(leg: u32, sequence: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let header = MediaHeader {
        flags: 0,
        leg,
        sequence,
        timestamp: sequence * 960,
    };
    encode_media_frame(&header, &[0xfc; 40], &mut out);
    out
}

#[tokio::test]
async fn frames_after_leaving_a_conference_are_dropped_without_an_error() {
    let dir = temp_dir("leg-end");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let mut alice = Client::available(addr, "alice", "alice-pass").await;
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;
    let c = sim_call(addr, "+819012345678", "support").await;
    alice
        .wait_for("ring", |a| a.state().contacts.contains_key(&c))
        .await;
    alice.accept_with_leg(&c).await;
    bob.set_available().await;
    alice.conference_in(&mut bob, &c, "qc-bob").await;
    let first = &mut alice;
    let own = first.state().contacts[&c]
        .agent_connection()
        .cloned()
        .expect("own connection");
    let leg = own.media_leg.expect("a media leg while connected");

    // Leave, and send on the old leg as a client does before it hears of it.
    first
        .ok(Op::EndConnection {
            contact_id: c.clone(),
            connection_id: own.connection_id,
        })
        .await;
    for seq in 0..5 {
        first.send_binary(frame(leg, seq)).await;
    }
    // A leg that never existed is still refused, and it is the first error:
    // the frames on the ended leg produced none.
    first.send_binary(frame(leg.wrapping_add(1000), 9)).await;
    let error = first.next_server_error().await;
    assert_eq!(error.code, ErrorCode::NoMediaLeg);
    assert!(
        error.message.contains(&leg.wrapping_add(1000).to_string()),
        "the first error is the unknown leg's, not the ended one's: {}",
        error.message
    );
}
