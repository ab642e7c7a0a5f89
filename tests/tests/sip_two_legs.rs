//! Two SIP legs bridged (a transfer to a number the agent then leaves):
//! G.711 must pass between them as it came, with no decode/encode through
//! Opus on the way. A raw UDP caller and a raw UDP trunk playing the
//! number send RTP whose payloads are byte patterns no codec would make;
//! each must receive the other's payloads unchanged.

use std::net::SocketAddr;
use std::path::Path;

use protocol::wire::Op;
use switchboard_tests::sip::{self, *};
use switchboard_tests::*;
use tokio::net::UdpSocket;

fn config(dir: &Path, address: SocketAddr) -> server::config::Config {
    sip::config(
        dir,
        &format!(
            "[sip]\nlisten_udp = \"127.0.0.1:0\"\nrtp_ports = [31000, 31999]\nrtp_timeout_s = 0\n\
[[sip.trunks]]\nname = \"both\"\naddress = \"{address}\"\nallow = [\"127.0.0.1\"]\ncodecs = [\"PCMU\"]\n\
[sip.trunks.dids]\n\"{DID}\" = \"support\"\n"
        ),
    )
}

/// Sends side `side`'s pattern ([`pcmu_pattern`], a pattern no encoder
/// makes) as PCMU RTP every 20 ms for `packets` packets to `to`, and
/// gathers the payloads of the PCMU RTP coming back.
fn talk(
    rtp: UdpSocket,
    to: SocketAddr,
    side: u8,
    packets: u16,
) -> tokio::task::JoinHandle<Vec<Vec<u8>>> {
    let ssrc = 0x1000 + u32::from(side);
    pcmu_peer(rtp, to, packets, 800, ssrc, move |n| pcmu_pattern(side, n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_and_a_number_bridged_exchange_g711_unchanged() {
    let dir = temp_dir("sip-two-legs");
    let trunk = UdpSocket::bind("127.0.0.1:0").await.expect("trunk");
    let running = server::start(config(&dir, trunk.local_addr().expect("addr")))
        .await
        .expect("start");
    let sip = running.sip_addr.expect("sip");
    let mut alice = Client::available(running.addr, "alice", "alice-pass").await;
    // The caller.
    let (sock, _) = udp_socket().await;
    let (rtp_a, rtp_a_addr) = udp_socket().await;
    let offer = sip::sdp(rtp_a_addr.port(), "0", "");
    let call = answered_call(&sock, sip, &mut alice, "two1", "", &offer).await;
    let c = call.contact.clone();
    // The agent adds the number; the raw trunk answers it.
    let k = add_number(&mut alice, &c, CALLEE).await;
    let (invite, from) = loop {
        let (m, from) = trunk_request(&trunk).await;
        if m.method() == "INVITE" {
            break (m, from);
        }
    };
    let gateway_b = answer_rtp(&invite);
    let (rtp_b, rtp_b_addr) = udp_socket().await;
    let answer = sip::sdp(rtp_b_addr.port(), "0", "");
    let contact = (
        "Contact",
        format!("<sip:{CALLEE}@{}>", trunk.local_addr().expect("addr")),
    );
    trunk
        .send_to(
            &invite.response(200, "OK", Some("b1"), &[contact], answer.as_bytes()),
            from,
        )
        .await
        .expect("200");
    alice
        .wait_for("the number answers", |a| {
            a.state().contacts.get(&c).is_some_and(|v| {
                v.connections
                    .iter()
                    .any(|x| x.connection_id == k && x.state.name() == "connected")
            })
        })
        .await;
    // The agent leaves: caller and number talk alone.
    let own = alice.state().contacts[&c]
        .agent_connection()
        .expect("own")
        .connection_id
        .clone();
    alice
        .ok(Op::EndConnection {
            contact_id: c.clone(),
            connection_id: own,
        })
        .await;
    wait_event(&running, &c, "agent_left").await;
    let a = talk(rtp_a, call.rtp, 0, 75);
    let b = talk(rtp_b, gateway_b, 1, 75);
    let (at_a, at_b) = (a.await.expect("a"), b.await.expect("b"));
    let from_a: Vec<Vec<u8>> = (0..75).map(|n| pcmu_pattern(0, n)).collect();
    let from_b: Vec<Vec<u8>> = (0..75).map(|n| pcmu_pattern(1, n)).collect();
    let a_to_b = at_b.iter().filter(|p| from_a.contains(p)).count();
    let b_to_a = at_a.iter().filter(|p| from_b.contains(p)).count();
    eprintln!(
        "two SIP legs: {a_to_b} of 75 caller payloads reached the number unchanged ({} packets), \
{b_to_a} of 75 the other way ({} packets)",
        at_b.len(),
        at_a.len()
    );
    assert!(a_to_b >= 60, "caller -> number unchanged: {a_to_b} of 75");
    assert!(b_to_a >= 60, "number -> caller unchanged: {b_to_a} of 75");
}
