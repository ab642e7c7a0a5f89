//! Session timers on outbound calls (RFC 4028, we are the UAC), against
//! SIPp callees (`tests/sip/uas_timer_*.xml`) that check our requests'
//! headers and fail when a request does not come in time:
//!
//! - our INVITE offers `Session-Expires: 1800`, our Min-SE and
//!   `Supported: timer`; a 2xx naming us the refresher with UPDATE
//!   allowed gets UPDATE refreshes at half the interval;
//! - without UPDATE the refresh is a re-INVITE with our SDP; its 2xx may
//!   hand the refresh to the far end, and when that does not refresh we
//!   send BYE before the session ends (`session_expired`);
//! - a 422 is retried with its Min-SE.
//!
//! Intervals are seconds (`session_min_se_s = 2`) to keep the tests short.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use switchboard_tests::sip::{
    self, dial, end_outbound, gateway_with_alice, record, sipp_passed, sipp_uas, wait_connected,
    wait_ended, wait_event, CALLEE,
};
use switchboard_tests::*;

fn timer_config(dir: &Path, address: SocketAddr) -> server::config::Config {
    sip::config(
        dir,
        &format!(
            "[sip]\nlisten_udp = \"127.0.0.1:0\"\nrtp_ports = [38000, 38999]\n\
rtp_timeout_s = 0\nsession_min_se_s = 2\n\
[[sip.trunks]]\nname = \"timed\"\naddress = \"{address}\"\nallow = [\"127.0.0.1\"]\ncodecs = [\"PCMU\"]\n"
        ),
    )
}

/// The agent dials the SIPp callee and waits until it answered.
async fn dial_and_connect(alice: &mut Client) -> String {
    let c = dial(alice, CALLEE).await;
    wait_connected(alice, &c, "the callee answers").await;
    c
}

fn count(running: &server::Running, c: &str, event: &str) -> usize {
    record(running, c)
        .events
        .iter()
        .filter(|e| e.event == event)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_refresh_an_outbound_session_by_update_at_half_the_interval() {
    let dir = temp_dir("sip-out-timer-update");
    let (sipp, address) = sipp_uas(&dir, "uas_timer_update.xml", 1);
    let (running, _, mut alice) = gateway_with_alice(timer_config(&dir, address)).await;
    let c = dial_and_connect(&mut alice).await;
    // SIPp answers our two refreshes (and fails when one is late or
    // wrong); we see them recorded, then hang up.
    for _ in 0..300 {
        if count(&running, &c, "sip_refresh_sent") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        count(&running, &c, "sip_refresh_sent") >= 2,
        "{:?}",
        record(&running, &c).events
    );
    assert!(
        record(&running, &c).ended_at.is_none(),
        "refreshed: it goes on"
    );
    end_outbound(&mut alice, &c).await;
    sipp_passed(sipp, &dir).await;
    let r = wait_ended(&running, &c).await;
    assert_eq!(r.disconnect_reason.as_deref(), Some("agent_disconnect"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_update_we_reinvite_and_an_unrefreshed_session_ends_with_bye() {
    let dir = temp_dir("sip-out-timer-expire");
    let (sipp, address) = sipp_uas(&dir, "uas_timer_reinvite_expire.xml", 1);
    let (running, _, mut alice) = gateway_with_alice(timer_config(&dir, address)).await;
    let c = dial_and_connect(&mut alice).await;
    // SIPp checks the re-INVITE refresh, hands the refresh over, never
    // refreshes, and passes only when our BYE comes.
    sipp_passed(sipp, &dir).await;
    let r = wait_ended(&running, &c).await;
    assert_eq!(r.disconnect_reason.as_deref(), Some("session_expired"));
    wait_event(&running, &c, "sip_refresh_sent").await;
    wait_event(&running, &c, "sip_session_expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_422_is_retried_with_its_min_se() {
    let dir = temp_dir("sip-out-timer-422");
    let (sipp, address) = sipp_uas(&dir, "uas_timer_422.xml", 1);
    let (running, _, mut alice) = gateway_with_alice(timer_config(&dir, address)).await;
    let c = dial_and_connect(&mut alice).await;
    wait_event(&running, &c, "sip_422").await;
    end_outbound(&mut alice, &c).await;
    sipp_passed(sipp, &dir).await;
    let r = wait_ended(&running, &c).await;
    assert_eq!(r.disconnect_reason.as_deref(), Some("agent_disconnect"));
}
