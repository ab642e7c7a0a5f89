//! Reliable provisional responses on outbound calls (RFC 3262 §4, we are
//! the UAC), against a SIPp callee (`tests/sip/uas_prack.xml`) that checks
//! our requests and fails when one is missing, late or wrong: our INVITE
//! says `Supported: 100rel`; the callee's 183 (with SDP, `Require:
//! 100rel`, `RSeq: 1`) must get our PRACK with `RAck: 1 <CSeq> INVITE`
//! before the callee answers 200; the call then connects and ends with
//! our BYE when the agent hangs up.

use std::net::SocketAddr;
use std::path::Path;

use switchboard_tests::sip::{
    self, dial, end_outbound, gateway_with_alice, record, sipp_passed, sipp_uas, wait_connected,
    wait_ended, CALLEE,
};
use switchboard_tests::*;

fn config(dir: &Path, address: SocketAddr) -> server::config::Config {
    sip::config(
        dir,
        &format!(
            "[sip]\nlisten_udp = \"127.0.0.1:0\"\nrtp_ports = [38000, 38999]\nrtp_timeout_s = 0\n\
[[sip.trunks]]\nname = \"reliable\"\naddress = \"{address}\"\nallow = [\"127.0.0.1\"]\ncodecs = [\"PCMU\"]\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reliable_183_gets_our_prack_before_the_answer() {
    let dir = temp_dir("sip-out-prack");
    let (sipp, address) = sipp_uas(&dir, "uas_prack.xml", 1);
    let (running, _, mut alice) = gateway_with_alice(config(&dir, address)).await;
    let c = dial(&mut alice, CALLEE).await;
    // The callee answers only after our PRACK: connected proves it came.
    wait_connected(&mut alice, &c, "the callee answers after our PRACK").await;
    let r = record(&running, &c);
    let pracks: Vec<String> = r
        .events
        .iter()
        .filter(|e| e.event == "sip_prack_sent")
        .map(|e| e.detail.clone().unwrap_or_default())
        .collect();
    assert_eq!(pracks, ["183 RAck 1 1 INVITE"], "{:?}", r.events);
    end_outbound(&mut alice, &c).await;
    sipp_passed(sipp, &dir).await;
    let r = wait_ended(&running, &c).await;
    assert_eq!(r.disconnect_reason.as_deref(), Some("agent_disconnect"));
}
