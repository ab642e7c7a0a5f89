//! Kamailio as a provider's SIP edge for the gateway's integration tests,
//! re-exported by [`crate::sip`]: its registrar/proxy configuration with
//! digest auth and no database, starting and stopping it (its forked
//! workers too), waiting until it answers, and a baresip caller that
//! dials the DID through it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::sip::{baresip_with, free_udp_port_pair, udp_socket, CALLER, DID};

/// A Kamailio registrar/proxy on 127.0.0.1:`port` (UDP, and TCP on the
/// same port when `with_tcp`) with digest auth and no database, as a
/// provider's SIP edge: user X's password is "X-secret"; REGISTER is
/// challenged with 401 and everything else out of dialog with 407; calls
/// to [`DID`] go to the binding of user `switchboard` (how a provider
/// routes a DID to an account); registrations last at most 10 s so a
/// refresh happens within a test. The log says `CHALLENGED <method>
/// proto=..`, `REGISTERED <To> au=.. proto=.. ct=<Contact>` and
/// `AUTHENTICATED <method> from <user> to <R-URI> proto=..`.
pub fn kamailio_registrar_config(port: u16, with_tcp: bool) -> String {
    let transports = if with_tcp {
        format!("tcp_children=2\nlisten=udp:127.0.0.1:{port}\nlisten=tcp:127.0.0.1:{port}")
    } else {
        format!("disable_tcp=yes\nlisten=udp:127.0.0.1:{port}")
    };
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
{transports}
alias="127.0.0.1:{port}"
alias="sip.test"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", 5)
modparam("registrar", "max_expires", 10)
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{ sl_send_reply("200", "Keepalive"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ route(RELAY); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ route(RELAY); }} exit; }}
        sl_send_reply("404", "Not here"); exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ route(RELAY); }} exit; }}
    if (!is_method("ACK")) {{ t_check_trans(); }}
    $var(pw) = $au + "-secret";
    if (is_method("REGISTER")) {{
        if (!pv_auth_check("sip.test", "$var(pw)", "0", "1")) {{
            xlog("L_NOTICE", "CHALLENGED REGISTER proto=$pr\n");
            auth_challenge("sip.test", "0"); exit;
        }}
        consume_credentials();
        if (!save("location")) {{ sl_reply_error(); exit; }}
        xlog("L_NOTICE", "REGISTERED $tu au=$au proto=$pr ct=$ct\n");
        exit;
    }}
    if (!pv_auth_check("sip.test", "$var(pw)", "0", "0")) {{
        xlog("L_NOTICE", "CHALLENGED $rm proto=$pr\n");
        auth_challenge("sip.test", "0"); exit;
    }}
    consume_credentials();
    xlog("L_NOTICE", "AUTHENTICATED $rm from $au to $ru proto=$pr\n");
    if (is_method("INVITE")) {{ record_route(); }}
    if ($rU == "{DID}") {{ $rU = "switchboard"; }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    route(RELAY);
}}
route[RELAY] {{ if (!t_relay()) {{ sl_reply_error(); }} exit; }}
"#
    )
}

/// A baresip phone, account [`CALLER`] at Kamailio (127.0.0.1:`kport`,
/// over UDP, with its password from [`kamailio_registrar_config`]),
/// dialing [`DID`] through it and playing `source`, for up to 30 s; its
/// files in `dir/caller`.
pub fn caller_through_kamailio(dir: &Path, kport: u16, source: &Path) -> tokio::process::Child {
    let adir = dir.join("caller");
    std::fs::create_dir_all(&adir).expect("mkdir");
    baresip_with(
        &adir,
        free_udp_port_pair(),
        &format!(
            "<sip:{CALLER}@sip.test;transport=udp>;auth_pass={CALLER}-secret;outbound=\"sip:127.0.0.1:{kport};lr\";\
regint=0;audio_codecs=pcmu;audio_source=aufile,{}",
            source.display()
        ),
        Some(format!("/dial sip:{DID}@sip.test")),
        30,
        "",
    )
}

/// Starts Kamailio in the foreground with `config` (written to
/// `dir/kam/kamailio.cfg`), logging to the returned path; the guard stops
/// it (and its forked workers) when the test ends, even by a panic.
pub fn start_kamailio(dir: &Path, config: &str) -> (tokio::process::Child, PathBuf, KamailioGuard) {
    let kdir = dir.join("kam");
    std::fs::create_dir_all(kdir.join("run")).expect("mkdir");
    std::fs::write(kdir.join("kamailio.cfg"), config).expect("cfg");
    let klog = kdir.join("kamailio.log");
    let log = std::fs::File::create(&klog).expect("log");
    let kam = tokio::process::Command::new("kamailio")
        .args([
            "-f",
            kdir.join("kamailio.cfg").to_str().expect("path"),
            "-DD",
            "-E",
            "-Y",
            kdir.join("run").to_str().expect("path"),
            "-m",
            "64",
            "-M",
            "8",
        ])
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("kamailio must be installed (cargo xtask test installs it)");
    let guard = KamailioGuard(kam.id());
    (kam, klog, guard)
}

/// Sends Kamailio SIGTERM when dropped (a failing test unwinds through
/// it), so its forked workers never outlive the test.
pub struct KamailioGuard(pub Option<u32>);

impl Drop for KamailioGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

/// Stops Kamailio with SIGTERM, which makes its main process stop its
/// forked workers too (SIGKILL, what `kill_on_drop` sends, would leave
/// the workers running).
pub async fn stop_kamailio(kam: &mut tokio::process::Child) {
    if let Some(pid) = kam.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), kam.wait()).await;
}

/// A probe's OPTIONS to Kamailio at 127.0.0.1:`kport` over `transport`
/// from `local`, try `i` (its own branch and Call-ID), CSeq `cseq`: it
/// answers 200 "Keepalive" once it runs.
pub fn kamailio_probe(transport: &str, local: SocketAddr, kport: u16, i: u32, cseq: u32) -> String {
    format!(
        "OPTIONS sip:127.0.0.1:{kport} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bKp{i}\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1:{kport}>\r\n\
Call-ID: probe{i}\r\nCSeq: {cseq} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Waits (at most 50 tries of 200 ms) until Kamailio at
/// 127.0.0.1:`kport` answers an OPTIONS over UDP with 200; its log
/// `klog` is shown otherwise.
pub async fn wait_kamailio_answers(kport: u16, klog: &Path) {
    let (probe, plocal) = udp_socket().await;
    let kaddr: SocketAddr = format!("127.0.0.1:{kport}").parse().expect("addr");
    let mut ready = false;
    for i in 0..50 {
        let ping = kamailio_probe("UDP", plocal, kport, i, i);
        probe.send_to(ping.as_bytes(), kaddr).await.expect("send");
        let mut buf = [0u8; 2048];
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(200), probe.recv_from(&mut buf)).await
        {
            if String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200") {
                ready = true;
                break;
            }
        }
    }
    assert!(
        ready,
        "kamailio answers: {}",
        std::fs::read_to_string(klog).unwrap_or_default()
    );
}
