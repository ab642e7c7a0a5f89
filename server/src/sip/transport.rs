//! The gateway's transport layer: where a SIP message goes out, and the
//! TCP side of where they come in. Every sender in the gateway (calls,
//! outbound calls, registrations, keepalives) holds a [`Transport`] and
//! calls `send_to(bytes, destination)` as it would on a UDP socket; the
//! transport routes by destination:
//!
//! - a peer with a live TCP connection (one it opened to us, or one we
//!   opened to it) gets the message on that connection, so a response
//!   goes back on the connection its request came on (RFC 3261 §18.2.2)
//!   and a call's later requests follow the same flow;
//! - a trunk configured with `transport = "tcp"` gets a connection opened
//!   (or reused) when there is none;
//! - a peer that connected to us and whose connection is gone (it closed
//!   it, or our idle timeout did) gets a new connection to its source
//!   address at the port of its requests' Via sent-by (RFC 3261 §18.2.2),
//!   so a BYE still reaches a caller after a long quiet call;
//! - everything else is a datagram on the UDP socket, as before.
//!
//! The message builders write the UDP form (`Via: SIP/2.0/UDP <udp
//! address>`, `Contact: <sip:user@<udp address>>`); a message that leaves
//! over TCP is stamped here with `SIP/2.0/TCP <tcp address>` in our top Via
//! and `<sip:user@<tcp address>;transport=tcp>` in our Contact
//! ([`stamp_tcp`]), so the builders, and any added later, need not know
//! the transport. Retransmission timers A and E are for unreliable
//! transports only (RFC 3261 §17.1.1.2, §17.1.2.2): senders ask
//! [`Transport::is_reliable`] and skip them, keeping the timeouts.
//!
//! Connections are bounded: `sip.tcp_max_connections` at once (accepted
//! and opened together), closed after `sip.tcp_idle_timeout_s` without a
//! byte either way, or [`FRAME_TIMEOUT`] in the middle of a message, and
//! each buffers at most one message (`sip/tcp.rs`) and [`WRITE_QUEUE`]
//! messages to write. A connection from an address that is neither in a
//! trunk's `allow` list nor a trunk's address is closed at accept, before
//! a byte is read (toll-fraud protection, cheaply). A peer whose bytes
//! cannot be framed (garbage, no Content-Length, too large) is closed.
//! TLS is not supported.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::tcp::{Frame, Framer, Limits};
use crate::config::{SipConfig, SipTransport};

/// A peer in the middle of a message has this long to finish it (64×T1,
/// the longest a SIP transaction waits).
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(32);
/// Messages waiting to be written on one connection; a peer that does not
/// read that many is cut off rather than buffered for.
pub const WRITE_QUEUE: usize = 64;
/// Frames from all connections waiting for the gateway's loop (each
/// connection's reader waits when it is full: back-pressure, not loss).
pub const INBOUND_QUEUE: usize = 256;
/// How long we wait for a connection to a TCP trunk to open, and for a
/// write to drain.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A message that came in over TCP, with the peer it came from (the key
/// its connection is found by).
pub type Inbound = (Vec<u8>, SocketAddr);

/// Why a TCP connection was refused or closed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer is not a trunk's allowed or configured address.
    #[error("{0}: not an allowed trunk address")]
    NotAllowed(IpAddr),
    /// `sip.tcp_max_connections` reached.
    #[error("{0}: too many TCP connections")]
    TooMany(SocketAddr),
    /// The bytes could not be framed as SIP.
    #[error("{0}: {1}")]
    Framing(SocketAddr, super::tcp::FrameError),
    /// Opening, reading or writing failed.
    #[error("{0}: {1}")]
    Io(SocketAddr, std::io::Error),
}

/// One live connection, as the senders see it.
struct Conn {
    id: u64,
    tx: mpsc::Sender<Vec<u8>>,
}

struct Inner {
    udp: Arc<UdpSocket>,
    udp_local: SocketAddr,
    tcp_local: Option<SocketAddr>,
    /// Trunk addresses whose requests go over TCP.
    tcp_targets: HashSet<SocketAddr>,
    /// Addresses a connection may come from.
    allowed: HashSet<IpAddr>,
    conns: Mutex<HashMap<SocketAddr, Conn>>,
    /// For peers that connected to us: where to reconnect when their
    /// connection is gone (RFC 3261 §18.2.2: the source IP and the port
    /// of their Via's sent-by), oldest first for eviction.
    reopen: Mutex<(
        HashMap<SocketAddr, SocketAddr>,
        std::collections::VecDeque<SocketAddr>,
    )>,
    /// One connect at a time, so two senders do not open two connections
    /// to the same trunk.
    connecting: tokio::sync::Mutex<()>,
    inbound: mpsc::Sender<Inbound>,
    limits: Limits,
    max_connections: usize,
    idle: Duration,
    next_id: AtomicU64,
}

/// The sending handle every part of the gateway holds (cheap to clone).
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl Transport {
    /// Binds the TCP listener when `sip.listen_tcp` is set (port 0 takes
    /// the UDP socket's port, so both transports share one port number),
    /// resolves the TCP trunks, and starts accepting. Returns the handle
    /// and the queue of messages that come in over TCP.
    pub async fn start(
        cfg: &SipConfig,
        udp: Arc<UdpSocket>,
    ) -> std::io::Result<(Transport, mpsc::Receiver<Inbound>)> {
        let udp_local = udp.local_addr()?;
        let listener = match cfg.tcp.listen {
            Some(mut at) => {
                if at.port() == 0 {
                    at.set_port(udp_local.port());
                }
                let bound = TcpListener::bind(at).await.map_err(|e| {
                    std::io::Error::new(e.kind(), format!("sip.listen_tcp {at}: {e}"))
                })?;
                Some(bound)
            }
            None => None,
        };
        let tcp_local = listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let mut allowed: HashSet<IpAddr> = cfg
            .trunks
            .iter()
            .flat_map(|t| t.allow.iter().copied())
            .collect();
        let mut tcp_targets = HashSet::new();
        for trunk in &cfg.trunks {
            let Some(address) = &trunk.address else {
                continue;
            };
            let resolved = match tokio::net::lookup_host(address.as_str()).await {
                Ok(mut a) => a.find(|a| a.is_ipv4() == udp_local.is_ipv4()),
                Err(_) => None,
            };
            let Some(target) = resolved else {
                continue; // the gateway logs an unresolvable trunk
            };
            // A registrar or proxy we use may open connections to us.
            allowed.insert(target.ip());
            if trunk.transport == SipTransport::Tcp {
                tcp_targets.insert(target);
            }
        }
        let (inbound, rx) = mpsc::channel(INBOUND_QUEUE);
        let transport = Transport {
            inner: Arc::new(Inner {
                udp,
                udp_local,
                tcp_local,
                tcp_targets,
                allowed,
                conns: Mutex::new(HashMap::new()),
                reopen: Mutex::new(Default::default()),
                connecting: tokio::sync::Mutex::new(()),
                inbound,
                limits: Limits::default(),
                max_connections: cfg.tcp.max_connections,
                idle: Duration::from_secs(cfg.tcp.idle_timeout_s),
                next_id: AtomicU64::new(1),
            }),
        };
        if let Some(listener) = listener {
            tokio::spawn(transport.clone().accept_loop(listener));
        }
        Ok((transport, rx))
    }

    /// The UDP socket (the gateway's receive loop reads it).
    pub fn udp(&self) -> &UdpSocket {
        &self.inner.udp
    }

    /// Sends one message to `to`: on its TCP connection, a new one to a
    /// TCP trunk, or as a datagram (see the module doc).
    pub async fn send_to(&self, bytes: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        // No listener means no TCP at all (a TCP trunk needs one).
        if let Some(tcp_local) = self.inner.tcp_local {
            if self.is_reliable(to) {
                let stamped = stamp_tcp(bytes, self.inner.udp_local, tcp_local);
                return self.send_tcp(stamped, to).await.map(|_| bytes.len());
            }
        }
        self.inner.udp.send_to(bytes, to).await
    }

    /// Whether messages to `to` travel over a reliable transport (TCP), so
    /// the request retransmission timers (A, E) are not run for it.
    pub fn is_reliable(&self, to: SocketAddr) -> bool {
        self.inner.tcp_targets.contains(&to) || self.has_conn(to) || self.reopen_at(to).is_some()
    }

    /// Whether a request to `to` is sent again on the retransmission
    /// timer (A or E): always on UDP; on TCP only when the connection to
    /// a TCP trunk is not open (it failed to open or closed), so the retry
    /// opens a new one. Timeouts (B, F) apply either way.
    pub fn should_retransmit(&self, to: SocketAddr) -> bool {
        !self.is_reliable(to) || !self.has_conn(to)
    }

    /// Where to reopen a connection to `peer`: a TCP trunk's own address,
    /// or the sent-by of a peer that connected to us.
    fn reopen_at(&self, peer: SocketAddr) -> Option<SocketAddr> {
        if self.inner.tcp_targets.contains(&peer) {
            return Some(peer);
        }
        let reopen = self.inner.reopen.lock().ok()?;
        reopen.0.get(&peer).copied()
    }

    /// Remembers where a peer that connected to us listens, from the top
    /// Via of a request it sent (`SIP/2.0/TCP host:port`; the host is
    /// taken from the connection, as `received` would say). Bounded: the
    /// oldest entries go first.
    fn remember_sent_by(&self, peer: SocketAddr, message: &[u8]) {
        let Some(port) = tcp_via_port(message) else {
            return;
        };
        let Ok(mut reopen) = self.inner.reopen.lock() else {
            return;
        };
        let (map, order) = &mut *reopen;
        if map.insert(peer, SocketAddr::new(peer.ip(), port)).is_none() {
            order.push_back(peer);
            let cap = 4 * self.inner.max_connections;
            while order.len() > cap {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }

    /// The address our Via and Contact name in messages to `to` (as
    /// [`stamp_tcp`] writes them): the TCP listener's over TCP, else the
    /// UDP socket's.
    pub fn local_for(&self, to: SocketAddr) -> SocketAddr {
        match self.inner.tcp_local {
            Some(tcp) if self.is_reliable(to) => tcp,
            _ => self.inner.udp_local,
        }
    }

    fn has_conn(&self, to: SocketAddr) -> bool {
        self.inner
            .conns
            .lock()
            .map(|c| c.contains_key(&to))
            .unwrap_or(false)
    }

    fn conn_tx(&self, to: SocketAddr) -> Option<(u64, mpsc::Sender<Vec<u8>>)> {
        let conns = self.inner.conns.lock().ok()?;
        conns.get(&to).map(|c| (c.id, c.tx.clone()))
    }

    fn forget(&self, to: SocketAddr, id: u64) {
        if let Ok(mut conns) = self.inner.conns.lock() {
            if conns.get(&to).is_some_and(|c| c.id == id) {
                conns.remove(&to);
            }
        }
    }

    async fn send_tcp(&self, bytes: Vec<u8>, to: SocketAddr) -> std::io::Result<()> {
        // A live connection first; a dead one is forgotten and reopened
        // once (to a trunk's address, or where a peer that connected to
        // us listens).
        for _ in 0..2 {
            let (id, tx) = match self.conn_tx(to) {
                Some(c) => c,
                None => match self.reopen_at(to) {
                    Some(at) => self.connect(at, to).await?,
                    None => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::NotConnected,
                            "the TCP connection is gone",
                        ))
                    }
                },
            };
            match tx.try_send(bytes.clone()) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // The peer stopped reading: cut it off (its task sees
                    // the queue close) rather than buffer without end.
                    tracing::warn!("sip: TCP {to}: not reading; closing the connection");
                    self.forget(to, id);
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        "the peer does not read",
                    ));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => self.forget(to, id),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the TCP connection closed",
        ))
    }

    /// Opens a connection to `at` for messages to `key` (a TCP trunk's
    /// address, or a peer that connected to us), or returns one another
    /// sender opened meanwhile.
    async fn connect(
        &self,
        at: SocketAddr,
        key: SocketAddr,
    ) -> std::io::Result<(u64, mpsc::Sender<Vec<u8>>)> {
        let _one = self.inner.connecting.lock().await;
        if let Some(c) = self.conn_tx(key) {
            return Ok(c);
        }
        if self.count() >= self.inner.max_connections {
            return Err(std::io::Error::other(TransportError::TooMany(at)));
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(at))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        tracing::info!("sip: TCP connection to {at} open");
        Ok(self.adopt(stream, key))
    }

    fn count(&self) -> usize {
        self.inner.conns.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Registers a connection and starts its task.
    fn adopt(&self, stream: TcpStream, peer: SocketAddr) -> (u64, mpsc::Sender<Vec<u8>>) {
        let _ = stream.set_nodelay(true);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        if let Ok(mut conns) = self.inner.conns.lock() {
            conns.insert(peer, Conn { id, tx: tx.clone() });
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.serve(stream, peer, rx).await {
                tracing::info!("sip: TCP connection closed: {e}");
            }
            me.forget(peer, id);
        });
        (id, tx)
    }

    async fn accept_loop(self, listener: TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: do not spin.
                    tracing::warn!("sip: TCP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let refused = if !self.inner.allowed.contains(&peer.ip()) {
                Some(TransportError::NotAllowed(peer.ip()))
            } else if self.count() >= self.inner.max_connections {
                Some(TransportError::TooMany(peer))
            } else {
                None
            };
            match refused {
                // Closed before a byte is read.
                Some(why) => {
                    tracing::debug!("sip: TCP connection refused: {why}");
                    drop(stream);
                }
                None => {
                    self.adopt(stream, peer);
                }
            }
        }
    }

    /// One connection's life: frames in to the gateway, queued messages
    /// out, until the peer closes, misbehaves, idles or stops reading.
    async fn serve(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
        mut rx: mpsc::Receiver<Vec<u8>>,
    ) -> Result<(), TransportError> {
        let io = |e| TransportError::Io(peer, e);
        let (mut rd, mut wr) = stream.split();
        let mut framer = Framer::new(self.inner.limits);
        let mut chunk = vec![0u8; 4096];
        let mut last = tokio::time::Instant::now();
        let mut partial_since: Option<tokio::time::Instant> = None;
        loop {
            let mut deadline = last + self.inner.idle;
            if let Some(since) = partial_since {
                deadline = deadline.min(since + FRAME_TIMEOUT);
            }
            tokio::select! {
                out = rx.recv() => {
                    // None: the senders forgot us (the peer stopped reading).
                    let Some(out) = out else { return Ok(()) };
                    tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&out))
                        .await
                        .map_err(|_| io(std::io::ErrorKind::TimedOut.into()))?
                        .map_err(io)?;
                    last = tokio::time::Instant::now();
                }
                r = rd.read(&mut chunk[..framer.space().clamp(1, 4096)]) => {
                    let n = r.map_err(io)?;
                    if n == 0 {
                        return Ok(());
                    }
                    last = tokio::time::Instant::now();
                    framer.push(&chunk[..n]).map_err(|e| TransportError::Framing(peer, e))?;
                    loop {
                        match framer.next_frame().map_err(|e| TransportError::Framing(peer, e))? {
                            Some(Frame::Message(m)) => {
                                if !m.starts_with(b"SIP/2.0 ") {
                                    self.remember_sent_by(peer, &m);
                                }
                                if self.inner.inbound.send((m, peer)).await.is_err() {
                                    return Ok(()); // the gateway stopped
                                }
                            }
                            Some(Frame::Ping) => {
                                // RFC 5626 §3.5.1: pong with one CRLF.
                                wr.write_all(b"\r\n").await.map_err(io)?;
                            }
                            None => break,
                        }
                    }
                    partial_since = match (framer.partial(), partial_since) {
                        (false, _) => None,
                        (true, Some(s)) => Some(s),
                        (true, None) => Some(last),
                    };
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        if partial_since.is_some() { "a message left unfinished" } else { "idle" },
                    )));
                }
            }
        }
    }
}

/// The port of a request's top Via when it names TCP (`SIP/2.0/TCP
/// host[:port]`, 5060 when none); `None` for anything else.
fn tcp_via_port(message: &[u8]) -> Option<u16> {
    let end = message.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&message[..end]).ok()?;
    let value = head.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v")).then_some(value)
    })?;
    let value = value.split(',').next()?.trim();
    let (proto, rest) = value.split_once(char::is_whitespace)?;
    if !proto.trim().eq_ignore_ascii_case("SIP/2.0/TCP") {
        return None;
    }
    let sent_by = rest.trim().split(';').next()?.trim();
    if sent_by.starts_with('[') {
        // An IPv6 literal: `[addr]:port`.
        return match sent_by.rsplit_once("]:") {
            Some((_, p)) => p.parse().ok().filter(|p| *p > 0),
            None => Some(5060),
        };
    }
    match sent_by.rsplit_once(':') {
        Some((_, p)) => p.parse().ok().filter(|p| *p > 0),
        None => Some(5060),
    }
}

/// A message built for UDP, as it leaves over TCP: our top Via (requests
/// only; a response's Vias are the requester's) says `SIP/2.0/TCP` and our
/// TCP address, and a Contact naming our UDP address names our TCP
/// address with `;transport=tcp`. The body and everything else are left
/// as they are (so Content-Length still holds).
pub fn stamp_tcp(bytes: &[u8], udp_local: SocketAddr, tcp_local: SocketAddr) -> Vec<u8> {
    let Some(split) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return bytes.to_vec();
    };
    let Ok(head) = std::str::from_utf8(&bytes[..split]) else {
        return bytes.to_vec();
    };
    let udp = udp_local.to_string();
    let tcp = tcp_local.to_string();
    let mut via_done = head.starts_with("SIP/2.0 ");
    let mut out = String::with_capacity(head.len() + 32);
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let name = line
            .split_once(':')
            .map(|(n, _)| n.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if i > 0 && !via_done && (name == "via" || name == "v") {
            via_done = true;
            let (n, v) = line.split_once(':').unwrap_or((line, ""));
            let v = v
                .replacen("SIP/2.0/UDP", "SIP/2.0/TCP", 1)
                .replacen(&udp, &tcp, 1);
            out.push_str(n);
            out.push(':');
            out.push_str(&v);
        } else if i > 0 && (name == "contact" || name == "m") {
            out.push_str(&line.replace(&format!("{udp}>"), &format!("{tcp};transport=tcp>")));
        } else {
            out.push_str(line);
        }
    }
    let mut stamped = out.into_bytes();
    stamped.extend_from_slice(&bytes[split..]);
    stamped
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "[sip]\nlisten_udp = \"127.0.0.1:5090\"\nlisten_tcp = \"127.0.0.1:5090\"\n\
tcp_max_connections = 8\ntcp_idle_timeout_s = 30\n\
[[sip.trunks]]\nname = \"t\"\naddress = \"127.0.0.1:5060\"\nallow = [\"127.0.0.1\"]\n\
transport = \"tcp\"\n[sip.trunks.dids]\n\"+15550100\" = \"support\"\n";

    fn with_sip(sip: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        crate::config::Config::parse(
            &format!("{}\n{sip}", crate::config::sample_without_flows()),
            "f.toml",
        )
    }

    #[test]
    fn tcp_keys_parse_and_default() {
        let cfg = with_sip(TCP).expect("tcp config");
        assert_eq!(
            cfg.sip.tcp.listen,
            Some("127.0.0.1:5090".parse().expect("addr"))
        );
        assert_eq!(
            (cfg.sip.tcp.max_connections, cfg.sip.tcp.idle_timeout_s),
            (8, 30)
        );
        assert_eq!(cfg.sip.trunks[0].transport, SipTransport::Tcp);
        let udp = TCP
            .replace("listen_tcp = \"127.0.0.1:5090\"\n", "")
            .replace("tcp_max_connections = 8\ntcp_idle_timeout_s = 30\n", "")
            .replace("transport = \"tcp\"\n", "");
        let cfg = with_sip(&udp).expect("udp config");
        assert_eq!(cfg.sip.tcp.listen, None);
        assert_eq!(
            (cfg.sip.tcp.max_connections, cfg.sip.tcp.idle_timeout_s),
            (256, 900)
        );
        assert_eq!(cfg.sip.trunks[0].transport, SipTransport::Udp);
    }

    #[test]
    fn bad_tcp_keys_fail_with_file_line_and_reason() {
        let base_lines = crate::config::sample_without_flows().lines().count() + 1;
        for (from, to, why, line) in [
            (
                "transport = \"tcp\"",
                "transport = \"tls\"",
                "is not \"udp\" or \"tcp\"",
                10,
            ),
            (
                "transport = \"tcp\"",
                "transport = \"sctp\"",
                "TLS is not supported",
                10,
            ),
            (
                "listen_tcp = \"127.0.0.1:5090\"\n",
                "",
                "needs sip.listen_tcp",
                9,
            ),
            (
                "listen_tcp = \"127.0.0.1:5090\"",
                "listen_tcp = \"5090\"",
                "sip.listen_tcp",
                3,
            ),
            (
                "tcp_max_connections = 8",
                "tcp_max_connections = 0",
                "between 1 and 100000",
                4,
            ),
            (
                "tcp_idle_timeout_s = 30",
                "tcp_idle_timeout_s = 0",
                "between 1 and 86400",
                5,
            ),
        ] {
            let text = TCP.replace(from, to);
            assert_ne!(text, TCP, "{from}");
            let e = with_sip(&text).expect_err(why);
            assert!(e.message.contains(why), "{why}: {e}");
            assert!(e.to_string().starts_with("f.toml:"), "{e}");
            assert_eq!(e.line, Some(base_lines + line), "{why}: {e}");
        }
    }

    #[test]
    fn a_request_leaving_over_tcp_names_tcp_in_our_via_and_contact() {
        let udp: SocketAddr = "127.0.0.1:5090".parse().expect("addr");
        let tcp: SocketAddr = "127.0.0.1:5091".parse().expect("addr");
        let invite = "INVITE sip:+1555@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKa;rport\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb\r\n\
From: <sip:+1444@127.0.0.1>;tag=1\r\nContact: <sip:switchboard@127.0.0.1:5090>\r\nContent-Length: 4\r\n\r\nv=0\n";
        let out = String::from_utf8(stamp_tcp(invite.as_bytes(), udp, tcp)).expect("utf8");
        assert!(out.contains("\r\nVia: SIP/2.0/TCP 127.0.0.1:5091;branch=z9hG4bKa;rport\r\n"));
        // Only our (top) Via changes.
        assert!(out.contains("\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb\r\n"));
        assert!(out.contains("\r\nContact: <sip:switchboard@127.0.0.1:5091;transport=tcp>\r\n"));
        assert!(out.ends_with("Content-Length: 4\r\n\r\nv=0\n"));
        // A REGISTER's Contact keeps its parameters after the URI.
        let reg =
            "REGISTER sip:sip.test SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKc\r\n\
m: <sip:agent@127.0.0.1:5090>;expires=60\r\nl: 0\r\n\r\n";
        let out = String::from_utf8(stamp_tcp(reg.as_bytes(), udp, tcp)).expect("utf8");
        assert!(out.contains("\r\nv: SIP/2.0/TCP 127.0.0.1:5091;branch=z9hG4bKc\r\n"));
        assert!(out.contains("\r\nm: <sip:agent@127.0.0.1:5091;transport=tcp>;expires=60\r\n"));
    }

    #[test]
    fn the_sent_by_port_of_a_tcp_via_is_where_to_reconnect() {
        let m = |via: &str| format!("INVITE sip:x SIP/2.0\r\nVia: {via}\r\nl: 0\r\n\r\n");
        let port = |via: &str| tcp_via_port(m(via).as_bytes());
        assert_eq!(
            port("SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1"),
            Some(5070)
        );
        assert_eq!(port("SIP/2.0/tcp host.example;branch=z9hG4bK1"), Some(5060));
        assert_eq!(port("SIP/2.0/TCP [::1]:5072;rport"), Some(5072));
        assert_eq!(port("SIP/2.0/TCP a:1, SIP/2.0/UDP b:2"), Some(1));
        assert_eq!(port("SIP/2.0/UDP 127.0.0.1:5070"), None);
        assert_eq!(port("SIP/2.0/TCP 127.0.0.1:0"), None);
        assert_eq!(port("SIP/2.0/TCP 127.0.0.1:99999"), None);
        assert_eq!(tcp_via_port(b"garbage"), None);
    }

    #[test]
    fn a_response_keeps_the_requesters_vias_and_gets_our_tcp_contact() {
        let udp: SocketAddr = "127.0.0.1:5090".parse().expect("addr");
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
Contact: <sip:switchboard@127.0.0.1:5090>\r\nContent-Length: 0\r\n\r\n";
        let out = String::from_utf8(stamp_tcp(ok.as_bytes(), udp, udp)).expect("utf8");
        assert!(out.contains("Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\n"));
        assert!(out.contains("Contact: <sip:switchboard@127.0.0.1:5090;transport=tcp>\r\n"));
        // Not SIP, or no header end: left alone.
        assert_eq!(stamp_tcp(b"\xff\xfe", udp, udp), b"\xff\xfe".to_vec());
    }
}
