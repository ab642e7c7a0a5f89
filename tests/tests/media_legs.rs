//! The conference agent (docs/protocol.md section 8, `media_legs`): an
//! agent whose client announced the capability gets each talker of a
//! conference forwarded on the talker's own leg, untouched; an agent that
//! did not gets the backend's mix on its own leg, as before.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use media::codec::Decoder;
use media::frame::PACKET;
use protocol::media::decode_media_frame;
use switchboard_tests::audio::*;
use switchboard_tests::*;
use tokio_tungstenite::tungstenite::Message;

/// Decodes the frames of `leg` in order (one decoder: one stream), the
/// last two thirds.
fn decode_leg(frames: &[Vec<u8>], leg: u32) -> Vec<f32> {
    let mut dec = Decoder::new().expect("decoder");
    let mut out = Vec::new();
    let mut pcm = [0.0f32; PACKET];
    for f in frames {
        let frame = decode_media_frame(f).expect("frame");
        if frame.header.leg == leg {
            dec.decode(frame.payload, &mut pcm).expect("decode");
            out.extend_from_slice(&pcm);
        }
    }
    out[out.len() / 3..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_agent_announcing_media_legs_gets_each_talker_and_one_that_did_not_gets_the_mix(
) {
    let dir = temp_dir("media-legs");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    // Alice's client mixes legs itself; bob's does not.
    let mut alice =
        Client::connect_mixing_legs(addr, &login(addr, "alice", "alice-pass").await).await;
    alice.set_available().await;
    let mut bob = Client::connect(addr, &login(addr, "bob", "bob-pass").await).await;

    // A customer phone dials in.
    let (mut phone, _, phone_leg, alice_leg, bob_leg) =
        phone_conference(addr, &mut alice, &mut bob).await;

    // The phone says 300 Hz, alice 1 kHz, bob 2 kHz, for three seconds.
    let phone_task = tokio::spawn(async move {
        let mut next = tone_frames(300.0, phone_leg);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut heard = Vec::new();
        let end = tokio::time::Instant::now() + Duration::from_millis(3000);
        while tokio::time::Instant::now() < end {
            tokio::select! {
                _ = tick.tick() => {
                    phone.send(Message::Binary(next().into())).await.expect("phone sends");
                }
                msg = phone.next() => {
                    if let Some(Ok(Message::Binary(b))) = msg {
                        heard.push(b.to_vec());
                    }
                }
            }
        }
        heard
    });
    let mut a_next = tone_frames(1000.0, alice_leg);
    let mut b_next = tone_frames(2000.0, bob_leg);
    alice.media_in.clear();
    bob.media_in.clear();
    tokio::join!(
        alice.stream_media(Duration::from_millis(3000), &mut a_next),
        bob.stream_media(Duration::from_millis(3000), &mut b_next),
    );
    let phone_heard = phone_task.await.expect("phone task");

    // Alice: the phone and bob each on their own leg, as they sent them.
    let count = |frames: &[Vec<u8>], leg: u32| {
        frames
            .iter()
            .filter(|f| decode_media_frame(f).is_ok_and(|m| m.header.leg == leg))
            .count()
    };
    let (from_phone, from_bob) = (
        count(&alice.media_in, phone_leg),
        count(&alice.media_in, bob_leg),
    );
    eprintln!(
        "alice got {from_phone} frames on the phone's leg, {from_bob} on bob's, {} on her own; bob got {} on his own of {}",
        count(&alice.media_in, alice_leg),
        count(&bob.media_in, bob_leg),
        bob.media_in.len()
    );
    assert!(
        from_phone > 75 && from_bob > 75,
        "alice gets both talkers' legs"
    );
    let phone_part = decode_leg(&alice.media_in, phone_leg);
    let bob_part = decode_leg(&alice.media_in, bob_leg);
    assert!(
        tone_share(&phone_part, 300.0) > 0.5 && tone_share(&phone_part, 2000.0) < 0.05,
        "the phone's leg is the phone alone"
    );
    assert!(
        tone_share(&bob_part, 2000.0) > 0.5 && tone_share(&bob_part, 300.0) < 0.05,
        "bob's leg is bob alone"
    );
    assert!(
        tone_share(&bob_part, 1000.0) < 0.05 && tone_share(&phone_part, 1000.0) < 0.05,
        "alice does not hear herself"
    );

    // Bob: one stream on his own leg, the mix of the phone and alice.
    assert!(
        bob.media_in
            .iter()
            .all(|f| decode_media_frame(f).is_ok_and(|m| m.header.leg == bob_leg)),
        "bob gets only his own leg"
    );
    let bob_hears = decode_leg(&bob.media_in, bob_leg);
    assert!(
        tone_share(&bob_hears, 300.0) > 0.2 && tone_share(&bob_hears, 1000.0) > 0.2,
        "bob hears the mix of the phone and alice"
    );
    assert!(tone_share(&bob_hears, 2000.0) < 0.05, "not himself");

    // The phone takes one stream: the mix of both agents.
    let phone_hears = decode_leg(&phone_heard, phone_leg);
    assert!(
        tone_share(&phone_hears, 1000.0) > 0.2 && tone_share(&phone_hears, 2000.0) > 0.2,
        "the phone hears both agents mixed"
    );
    let _ = std::fs::remove_dir_all(dir);
}
