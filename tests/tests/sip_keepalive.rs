//! OPTIONS keepalive towards a trunk (RFC 3261 §11), against a raw UDP
//! socket playing the trunk: the gateway probes it every
//! `options_interval_s`; when the probes go unanswered the trunk is down
//! and an agent's dial fails at once as `trunk_unavailable` without an
//! INVITE reaching the trunk; when it answers again, dials go through.

use std::net::SocketAddr;

use server::sip::msg::{Message, Start};
use switchboard_tests::sip::{
    self, clear_contact, dial, error_reason, gateway_with_alice, trunk_request, CALLEE,
};
use switchboard_tests::*;
use tokio::net::UdpSocket;

/// A gateway whose only trunk is `address`, probed every second.
fn keepalive_config(dir: &std::path::Path, address: SocketAddr) -> server::config::Config {
    sip::config(
        dir,
        &format!(
            "[sip]\nlisten_udp = \"127.0.0.1:0\"\nrtp_ports = [35000, 35999]\n\
[[sip.trunks]]\nname = \"probed\"\naddress = \"{address}\"\nallow = [\"127.0.0.1\"]\n\
options_interval_s = 1\n"
        ),
    )
}

/// The next OPTIONS with a CSeq above `after` (retransmissions of older
/// probes skipped; anything else is returned as an error).
async fn next_probe(trunk: &UdpSocket, after: u32) -> Result<(Message, SocketAddr), Message> {
    for _ in 0..50 {
        let (m, from) = trunk_request(trunk).await;
        match m.cseq() {
            Some((n, "OPTIONS")) if n > after => return Ok((m, from)),
            Some((_, "OPTIONS")) => continue,
            _ => return Err(m),
        }
    }
    panic!("no new probe among 50 requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_that_stops_answering_options_fails_dials_at_once_and_comes_back() {
    let dir = temp_dir("sip-keepalive");
    let trunk = UdpSocket::bind("127.0.0.1:0").await.expect("trunk socket");
    let address = trunk.local_addr().expect("addr");
    let (_running, _, mut alice) = gateway_with_alice(keepalive_config(&dir, address)).await;

    // The first probe: a well-formed out-of-dialog OPTIONS (RFC 3261 §11,
    // §8.1.1), answered 200.
    let (probe, gw) = next_probe(&trunk, 0).await.expect("an OPTIONS first");
    assert_eq!(
        probe.start,
        Start::Request {
            method: "OPTIONS".into(),
            uri: format!("sip:{address}"),
        }
    );
    assert!(probe.branch().is_some_and(|b| b.starts_with("z9hG4bK")));
    assert!(probe.header("max-forwards").is_some());
    assert!(probe.to_tag().is_none(), "outside any dialog");
    let (first, _) = probe.cseq().expect("cseq");
    trunk
        .send_to(&probe.response(200, "OK", Some("tr"), &[], b""), gw)
        .await
        .expect("send");

    // The trunk goes silent: two probes in a row unanswered mark it down,
    // which the gateway has decided when it sends the probe after them.
    let (p, _) = next_probe(&trunk, first).await.expect("probe");
    let (unanswered, _) = p.cseq().expect("cseq");
    next_probe(&trunk, unanswered + 1)
        .await
        .expect("a third probe after two unanswered");

    // A dial now fails at once, typed, and no INVITE reaches the trunk.
    let c = dial(&mut alice, CALLEE).await;
    alice
        .wait_for("the dial fails", |a| error_reason(a, &c).is_some())
        .await;
    assert_eq!(
        error_reason(&alice, &c).as_deref(),
        Some("trunk_unavailable")
    );
    let (p, _) = next_probe(&trunk, unanswered + 2)
        .await
        .expect("only probes reach a down trunk, no INVITE");
    let (later, _) = p.cseq().expect("cseq");
    clear_contact(&mut alice, &c).await;

    // The trunk answers again: once the gateway has read that answer (it
    // sends the next probe only after), a dial reaches the trunk.
    let (p, gw) = next_probe(&trunk, later).await.expect("probe");
    let (answered, _) = p.cseq().expect("cseq");
    trunk
        .send_to(&p.response(200, "OK", Some("tr"), &[], b""), gw)
        .await
        .expect("send");
    let (p, gw) = next_probe(&trunk, answered).await.expect("probe");
    trunk
        .send_to(&p.response(200, "OK", Some("tr"), &[], b""), gw)
        .await
        .expect("send");
    let c = dial(&mut alice, CALLEE).await;
    let invite = loop {
        let (m, from) = trunk_request(&trunk).await;
        match m.method() {
            "INVITE" => break (m, from),
            "OPTIONS" => {
                let _ = trunk
                    .send_to(&m.response(200, "OK", Some("tr"), &[], b""), from)
                    .await;
            }
            other => panic!("unexpected {other}"),
        }
    };
    assert!(matches!(&invite.0.start, Start::Request { uri, .. } if uri.contains(CALLEE)));
    trunk
        .send_to(
            &invite.0.response(486, "Busy Here", Some("busy"), &[], b""),
            invite.1,
        )
        .await
        .expect("send");
    alice
        .wait_for("the busy failure", |a| error_reason(a, &c).is_some())
        .await;
    assert_eq!(error_reason(&alice, &c).as_deref(), Some("busy"));
}
