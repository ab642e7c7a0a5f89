//! Session timers (RFC 4028) on inbound calls, against a raw UDP caller:
//! our 2xx states the negotiated interval and refresher; when we are the
//! refresher we send UPDATE (or re-INVITE when the caller does not allow
//! UPDATE) at half the interval; when the caller is and does not refresh,
//! we send BYE before the interval ends and the contact ends as
//! `session_expired`; too short an interval is answered 422 with Min-SE.
//! Intervals are seconds here (`session_min_se_s = 2`) to keep the tests
//! short; the rules are the same at RFC 4028's 90 s floor.

use std::net::SocketAddr;
use std::time::Duration;

use server::sip::msg::{Message, Start};
use switchboard_tests::sip::{self, next, next_request, record, wait_event, DID, SDP};
use switchboard_tests::*;
use tokio::net::UdpSocket;

fn timer_config(dir: &std::path::Path) -> server::config::Config {
    sip::config(
        dir,
        &format!(
            "[sip]\nlisten_udp = \"127.0.0.1:0\"\nrtp_ports = [36000, 36999]\n\
rtp_timeout_s = 0\nsession_min_se_s = 2\n\
[[sip.trunks]]\nname = \"test\"\nallow = [\"127.0.0.1\"]\ncodecs = [\"PCMU\"]\n\
[sip.trunks.dids]\n\"{DID}\" = \"support\"\n"
        ),
    )
}

fn invite(local: SocketAddr, call_id: &str, timer_headers: &str) -> String {
    sip::invite(local, call_id, timer_headers, SDP)
}

/// Places a call with `timer_headers`, has alice answer it, ACKs the 200;
/// returns the contact id and the 200.
async fn answered(
    sock: &UdpSocket,
    sip: SocketAddr,
    alice: &mut Client,
    call_id: &str,
    timer_headers: &str,
) -> (String, Message) {
    let a = sip::answered_call(sock, sip, alice, call_id, timer_headers, SDP).await;
    (a.contact, a.ok)
}

async fn hang_up(sock: &UdpSocket, sip: SocketAddr, ok: &Message, call_id: &str) {
    let local = sock.local_addr().expect("addr");
    let to = ok.header("to").expect("To");
    let bye = sip::bye(sip, local, call_id, to, 9);
    sock.send_to(bye.as_bytes(), sip).await.expect("bye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_refresh_with_update_at_half_the_interval_when_asked_to() {
    let dir = temp_dir("sip-timer-refresh");
    let (running, sip, mut alice) = sip::gateway_with_alice(timer_config(&dir)).await;
    let (sock, _) = sip::udp_socket().await;
    let started = tokio::time::Instant::now();
    let (c, ok) = answered(
        &sock,
        sip,
        &mut alice,
        "st1",
        "Session-Expires: 4;refresher=uas\r\nSupported: timer\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\n",
    )
    .await;
    // §9: the 2xx carries the interval and who refreshes (us), and
    // requires the extension of a caller that supports it.
    assert_eq!(ok.header("session-expires"), Some("4;refresher=uas"));
    assert!(ok.headers_named("require").any(|v| v.contains("timer")));
    let our_tag = ok.to_tag().expect("our tag").to_owned();
    // Two refreshes, each an UPDATE in the dialog naming the interval, us
    // as its refresher (we are the UAC of the UPDATE), each answered 200.
    let mut last_cseq = 0;
    for round in 0..2 {
        let u = next_request(&sock, "UPDATE").await;
        assert_eq!(u.call_id(), "st1");
        assert!(
            u.header("from").is_some_and(|f| f.contains(&our_tag)),
            "our tag in From"
        );
        assert!(u.header("to").is_some_and(|t| t.contains("tag=f1")));
        assert_eq!(u.header("session-expires"), Some("4;refresher=uac"));
        let (n, _) = u.cseq().expect("cseq");
        assert!(n > last_cseq, "a new CSeq each refresh");
        last_cseq = n;
        assert!(u.body.is_empty(), "a refresh without an offer");
        let h = [("Session-Expires", "4;refresher=uac".to_owned())];
        sock.send_to(&u.response(200, "OK", None, &h, b""), sip)
            .await
            .expect("send");
        // The first refresh comes at half the interval (2 s), not before
        // 1.5 s (allowing for the 20 ms poll and the answer's time).
        if round == 0 {
            assert!(
                started.elapsed() >= Duration::from_millis(1500),
                "the first refresh at half the interval, not at once"
            );
        }
    }
    wait_event(&running, &c, "sip_refresh_sent").await;
    assert!(
        record(&running, &c).ended_at.is_none(),
        "a refreshed call goes on"
    );
    hang_up(&sock, sip, &ok, "st1").await;
    let _ = alice;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_update_the_refresh_is_a_reinvite_and_its_200_is_acked() {
    let dir = temp_dir("sip-timer-reinvite");
    let (_running, sip, mut alice) = sip::gateway_with_alice(timer_config(&dir)).await;
    let (sock, _) = sip::udp_socket().await;
    // No Supported: timer: we must refresh whatever the caller asked
    // (§9), and our 2xx does not require the extension.
    let (_c, ok) = answered(
        &sock,
        sip,
        &mut alice,
        "st2",
        "Session-Expires: 2;refresher=uac\r\n",
    )
    .await;
    assert_eq!(ok.header("session-expires"), Some("2;refresher=uas"));
    assert!(!ok.headers_named("require").any(|v| v.contains("timer")));
    let r = next_request(&sock, "INVITE").await;
    assert!(r.to_tag().is_some(), "a re-INVITE in the dialog");
    let offer = String::from_utf8_lossy(&r.body).into_owned();
    assert!(offer.contains("m=audio"), "offers our SDP: {offer}");
    let (n, _) = r.cseq().expect("cseq");
    let answer = SDP.as_bytes();
    sock.send_to(&r.response(200, "OK", None, &[], answer), sip)
        .await
        .expect("send");
    let ack = next_request(&sock, "ACK").await;
    assert_eq!(ack.cseq(), Some((n, "ACK")), "the 2xx is ACKed");
    hang_up(&sock, sip, &ok, "st2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_the_caller_does_not_refresh_ends_with_bye() {
    let dir = temp_dir("sip-timer-expire");
    let (running, sip, mut alice) = sip::gateway_with_alice(timer_config(&dir)).await;
    let (sock, _) = sip::udp_socket().await;
    let (c, ok) = answered(
        &sock,
        sip,
        &mut alice,
        "st3",
        "Session-Expires: 3;refresher=uac\r\nSupported: timer\r\n",
    )
    .await;
    assert_eq!(ok.header("session-expires"), Some("3;refresher=uac"));
    // We never refresh a session the caller refreshes: the next request
    // from us is the BYE, sent before the interval ends (§10).
    let m = loop {
        let m = next(&sock).await;
        if matches!(m.start, Start::Request { .. }) {
            break m;
        }
    };
    assert_eq!(m.method(), "BYE");
    let r = {
        let mut r = record(&running, &c);
        for _ in 0..200 {
            if r.ended_at.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
            r = record(&running, &c);
        }
        r
    };
    assert_eq!(r.disconnect_reason.as_deref(), Some("session_expired"));
    wait_event(&running, &c, "sip_session_expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_short_an_interval_is_refused_422_with_min_se() {
    let dir = temp_dir("sip-timer-422");
    let (running, sip) = sip::gateway(timer_config(&dir)).await;
    let (sock, local) = sip::udp_socket().await;
    let bad = invite(local, "st4", "Session-Expires: 1\r\nSupported: timer\r\n");
    sock.send_to(bad.as_bytes(), sip).await.expect("send");
    let r = next(&sock).await;
    assert_eq!(r.start, Start::Response { code: 422 });
    assert_eq!(r.header("min-se"), Some("2"));
    // A malformed interval is a 400; neither created a contact.
    let bad = invite(local, "st5", "Session-Expires: soon\r\n");
    sock.send_to(bad.as_bytes(), sip).await.expect("send");
    let r = next(&sock).await;
    assert_eq!(r.start, Start::Response { code: 400 });
    assert_eq!(sip::contact_count(&running), 0, "nothing created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_200_to_a_reinvite_is_resent_until_acked() {
    let dir = temp_dir("sip-reinvite-ack");
    let (_running, sip, mut alice) = sip::gateway_with_alice(timer_config(&dir)).await;
    let (sock, local) = sip::udp_socket().await;
    let (_c, ok) = answered(&sock, sip, &mut alice, "st6", "").await;
    assert!(ok.header("session-expires").is_none(), "no timer asked");
    let to = ok.header("to").expect("To").to_owned();
    let reinvite = sip::in_dialog("INVITE", sip, local, "st6", &to, 2, "", SDP);
    sock.send_to(reinvite.as_bytes(), sip).await.expect("send");
    // Timer G (RFC 3261 §13.3.1.4): without our ACK the 200 comes again
    // (at T1, then 2×T1), with the same CSeq.
    let mut oks = 0;
    while oks < 3 {
        let m = next(&sock).await;
        if m.start == (Start::Response { code: 200 }) {
            assert_eq!(m.cseq(), Some((2, "INVITE")));
            oks += 1;
        }
    }
    let ack = sip::ack(local, "st6", &to, 2);
    sock.send_to(ack.as_bytes(), sip).await.expect("ack");
    // After the ACK, no more: unacked, the next would have come 2 s after
    // the third (gaps 0.5, 1, 2 s), so 4.5 s of silence shows it stopped.
    let mut buf = vec![0u8; 8192];
    let quiet = tokio::time::timeout(Duration::from_millis(4500), sock.recv_from(&mut buf)).await;
    assert!(
        quiet.is_err(),
        "a 200 after the ACK: {:?}",
        quiet.map(|r| r.map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned()))
    );
    hang_up(&sock, sip, &ok, "st6").await;
}
