//! Session timers (RFC 4028), sans-IO: the negotiation of an inbound
//! INVITE's `Session-Expires` / `Min-SE` / `refresher` and `timer` option
//! tag, the headers our 2xx carries, and the clock that says when we must
//! send a refresh (we are the refresher: at half the interval, RFC 4028
//! §10) or give the session up (the peer is the refresher and sent nothing:
//! BYE before the interval ends, at `interval - min(32, interval/3)`).
//! The clock is passed in, so every rule is unit-tested without sockets.
//!
//! The call task (`sip/mod.rs`) feeds it: a 2xx to our refresh, or any
//! re-INVITE/UPDATE from the peer that we answered 2xx, is a refresh.
//!
//! [`AckWait`] is the other timer of a confirmed dialog: our 2xx to a
//! re-INVITE is re-sent until its ACK comes (RFC 3261 §13.3.1.4, timers
//! G and H: from T1, doubling up to T2), and the session ends after 64×T1
//! without one.

use std::time::Duration;

use super::msg::Message;

/// Retransmission of our refresh until answered: from T1, doubling, at
/// most this gap (timer E's cap; the session's expiry bounds the whole).
const RESEND_CAP: Duration = Duration::from_secs(4);

/// Why a session-timer header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    /// The requested interval is below our Min-SE: answer 422 with it.
    #[error("Session-Expires {asked} is below our Min-SE {min_se}")]
    TooSmall {
        /// What the request asked for.
        asked: u32,
        /// Our Min-SE (goes into the 422).
        min_se: u32,
    },
    /// A Session-Expires or Min-SE that is not a delta-seconds value.
    #[error("bad {0} header")]
    Malformed(&'static str),
}

/// Who refreshes the session (the `refresher` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The party that sent the INVITE.
    Uac,
    /// The party that answered it.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A negotiated session timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The session interval.
    pub interval: u32,
    /// Who refreshes.
    pub refresher: Refresher,
    /// Whether we are the refresher.
    pub we_refresh: bool,
    /// Whether the peer said `Supported: timer` (then our 2xx says
    /// `Require: timer` when it must refresh).
    pub peer_supports: bool,
}

/// `Session-Expires: delta[;refresher=uac|uas]` (RFC 4028 §4).
pub fn parse_session_expires(value: &str) -> Result<(u32, Option<Refresher>), TimerError> {
    let bad = TimerError::Malformed("Session-Expires");
    let mut parts = value.split(';');
    let delta = parts
        .next()
        .map(str::trim)
        .filter(|d| !d.is_empty() && d.len() <= 10 && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|d| *d > 0)
        .ok_or(bad.clone())?;
    let mut refresher = None;
    for p in parts {
        let (name, val) = p.split_once('=').unwrap_or((p, ""));
        if name.trim().eq_ignore_ascii_case("refresher") {
            refresher = match val.trim().to_ascii_lowercase().as_str() {
                "uac" => Some(Refresher::Uac),
                "uas" => Some(Refresher::Uas),
                _ => return Err(bad),
            };
        }
    }
    Ok((delta, refresher))
}

/// `Min-SE: delta` (RFC 4028 §5).
pub fn parse_min_se(value: &str) -> Result<u32, TimerError> {
    let d = value.split(';').next().unwrap_or_default().trim();
    if d.is_empty() || d.len() > 10 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimerError::Malformed("Min-SE"));
    }
    d.parse().map_err(|_| TimerError::Malformed("Min-SE"))
}

/// Whether a header list (Supported, Require) names the `timer` tag.
fn lists_timer(m: &Message, header: &str) -> bool {
    m.headers_named(header)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("timer"))
}

/// Whether the message allows UPDATE (its `Allow` lists it).
pub fn allows_update(m: &Message) -> bool {
    m.headers_named("allow")
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("UPDATE"))
}

/// We are the UAS of `invite` (an initial INVITE, or a re-INVITE/UPDATE
/// refreshing the session, in which the roles are those of the request).
/// `our_min_se` is the smallest interval we accept. `Ok(None)`: no
/// Session-Expires, so no session timer. `TooSmall`: answer 422 with
/// `Min-SE: our_min_se` (RFC 4028 §9).
pub fn uas_negotiate(invite: &Message, our_min_se: u32) -> Result<Option<Session>, TimerError> {
    let supports = lists_timer(invite, "supported") || lists_timer(invite, "require");
    // `x` is the header's compact form (RFC 4028 §4).
    let Some(value) = invite.header("session-expires").or(invite.header("x")) else {
        return Ok(None);
    };
    let (asked, refresher) = parse_session_expires(value)?;
    // The request's own Min-SE is the floor any proxy on the way set; we
    // never go below it (and never below ours, which we enforce by 422).
    let their_floor = match invite.header("min-se") {
        Some(v) => parse_min_se(v)?,
        None => 0,
    };
    if asked < our_min_se {
        return Err(TimerError::TooSmall {
            asked,
            min_se: our_min_se,
        });
    }
    let interval = asked.max(their_floor);
    // §9: keep the request's refresher; when absent, the UAC refreshes if
    // it supports timers, else we must. A UAC that does not support the
    // extension cannot be made to refresh.
    let refresher = match (refresher, supports) {
        (Some(r), true) => r,
        (_, false) => Refresher::Uas,
        (None, true) => Refresher::Uac,
    };
    Ok(Some(Session {
        interval,
        refresher,
        we_refresh: refresher == Refresher::Uas,
        peer_supports: supports,
    }))
}

/// The headers a 2xx to the negotiating request carries (§9).
pub fn response_headers(s: &Session) -> Vec<(&'static str, String)> {
    let mut h = vec![(
        "Session-Expires",
        format!("{};refresher={}", s.interval, s.refresher.as_str()),
    )];
    if s.peer_supports {
        h.push(("Require", "timer".to_owned()));
    }
    h.push(("Supported", "timer".to_owned()));
    h
}

/// The headers of a refresh we send as the UAC of that request: the same
/// interval, and we stay the refresher (`refresher=uac`, as we send it).
pub fn refresh_headers(s: &Session, our_min_se: u32) -> Vec<(&'static str, String)> {
    vec![
        ("Session-Expires", format!("{};refresher=uac", s.interval)),
        ("Min-SE", our_min_se.to_string()),
        ("Supported", "timer".to_owned()),
    ]
}

/// The interval to retry with after a 422 to our refresh: the larger of
/// its Min-SE and what we asked (RFC 4028 §7.2).
pub fn after_422(m: &Message, asked: u32) -> Result<u32, TimerError> {
    let min = parse_min_se(m.header("min-se").ok_or(TimerError::Malformed("Min-SE"))?)?;
    Ok(min.max(asked))
}

/// A request of ours in the dialog an inbound INVITE created (we are its
/// UAS: our From is its To with our tag, sent to its Contact), e.g. the
/// refresh (UPDATE or re-INVITE) and the ACK of its 2xx.
#[allow(clippy::too_many_arguments)]
pub fn uas_request(
    invite: &Message,
    tag: &str,
    local: std::net::SocketAddr,
    method: &str,
    cseq: u32,
    branch: &str,
    extra: &[(&'static str, String)],
    body: &[u8],
) -> Vec<u8> {
    let from = invite.header("from").unwrap_or_default();
    let to = invite.header("to").unwrap_or_default();
    let target = super::msg::uri_of(invite.header("contact").unwrap_or(from));
    let mut out = format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\nFrom: {to};tag={tag}\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n\
Contact: <sip:switchboard@{local}>\r\n",
        cid = invite.call_id(),
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        out.push_str("Content-Type: application/sdp\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The session interval we ask for in our INVITE (RFC 4028 §7.1 and §4
/// recommend 1800 s); the far end may lower it down to our Min-SE.
pub const UAC_INTERVAL: u32 = 1800;

/// The headers of our INVITE (we are the UAC, RFC 4028 §7.1): the interval
/// we ask for, our Min-SE, and that we support the extension. No
/// `refresher`: the UAS chooses (§7.1 lets it), and its 2xx tells us.
pub fn uac_request_headers(asked: u32, min_se: u32) -> Vec<(&'static str, String)> {
    vec![
        ("Session-Expires", asked.to_string()),
        ("Min-SE", min_se.to_string()),
        ("Supported", "timer".to_owned()),
    ]
}

/// The session a 2xx to our INVITE (or to our refresh) sets up (RFC 4028
/// §7.2): its Session-Expires and refresher; none when the 2xx has no
/// Session-Expires (the far end does not do session timers, or turned
/// them off). A 2xx naming no refresher (which §9 forbids) leaves the
/// refresh to us, the safe side.
pub fn uac_negotiate(response: &Message) -> Result<Option<Session>, TimerError> {
    let Some(value) = response.header("session-expires").or(response.header("x")) else {
        return Ok(None);
    };
    let (interval, refresher) = parse_session_expires(value)?;
    let refresher = refresher.unwrap_or(Refresher::Uac);
    Ok(Some(Session {
        interval,
        refresher,
        we_refresh: refresher == Refresher::Uac,
        peer_supports: true,
    }))
}

/// What the session clock asks for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send a refresh (a new transaction).
    Refresh,
    /// Re-send the pending refresh (it is unanswered).
    Resend,
    /// The session expired without a refresh: BYE and end the call.
    Expired,
}

/// The session clock, sans-IO: times are durations since any fixed
/// origin the caller chooses (the call task passes `Instant` offsets).
#[derive(Debug, Clone)]
pub struct Clock {
    pub session: Session,
    /// When the session was last refreshed (or started).
    last: Duration,
    /// Our pending refresh: when it was (re)sent and the gap to the next.
    pending: Option<(Duration, Duration)>,
    /// A 422 asked for a longer interval: refresh again at once.
    retry_now: bool,
    t1: Duration,
}

impl Clock {
    /// A session that started (or was refreshed) at `now`.
    pub fn new(session: Session, now: Duration, t1: Duration) -> Clock {
        Clock {
            session,
            last: now,
            pending: None,
            retry_now: false,
            t1,
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.session.interval))
    }

    /// When we send our refresh (we are the refresher): half the interval.
    pub fn refresh_at(&self) -> Duration {
        self.last + self.interval() / 2
    }

    /// When the session is given up without a refresh: RFC 4028 §10 has
    /// the side that is not the refresher send BYE at
    /// `interval - min(32 s, interval / 3)`; a refresher whose refreshes
    /// all failed gives up at the same point.
    pub fn expires_at(&self) -> Duration {
        let i = self.interval();
        self.last + i - (i / 3).min(Duration::from_secs(32))
    }

    /// A refresh happened at `now` (our refresh was answered 2xx, or the
    /// peer's re-INVITE/UPDATE was). `session` is the renegotiated one.
    pub fn refreshed(&mut self, session: Session, now: Duration) {
        self.session = session;
        self.last = now;
        self.pending = None;
        self.retry_now = false;
    }

    /// What is due at `now`, if anything. `Refresh` and `Resend` are
    /// recorded as sent.
    pub fn poll(&mut self, now: Duration) -> Option<Due> {
        if now >= self.expires_at() {
            return Some(Due::Expired);
        }
        if !self.session.we_refresh {
            return None;
        }
        match self.pending {
            None if self.retry_now || now >= self.refresh_at() => {
                self.retry_now = false;
                self.pending = Some((now, self.t1));
                Some(Due::Refresh)
            }
            Some((sent, gap)) if now >= sent + gap => {
                self.pending = Some((now, (gap * 2).min(RESEND_CAP)));
                Some(Due::Resend)
            }
            _ => None,
        }
    }

    /// Our refresh got a final answer that is not a 2xx or a 422: stop
    /// re-sending; the session expires unless a later refresh works.
    pub fn refresh_failed(&mut self) {
        self.pending = Some((Duration::MAX / 2, Duration::ZERO));
    }

    /// A 422 answered our refresh: ask again at once with `interval`.
    pub fn retry_with(&mut self, interval: u32) {
        self.session.interval = interval;
        self.pending = None;
        self.retry_now = true;
    }

    /// Whether a refresh of ours is unanswered.
    #[cfg(test)]
    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }
}

/// RFC 3261 T2: the longest gap between retransmissions of a 2xx.
const T2: Duration = Duration::from_secs(4);

/// What an [`AckWait`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckDue {
    /// Re-send the 2xx.
    Resend,
    /// 64×T1 without an ACK: end the session (BYE).
    GiveUp,
}

/// Our 2xx to a re-INVITE, waiting for its ACK. Times as in [`Clock`].
#[derive(Debug, Clone)]
pub struct AckWait {
    cseq: u32,
    next: Duration,
    gap: Duration,
    give_up: Duration,
}

impl AckWait {
    /// The 2xx to the re-INVITE with `cseq` was sent at `now`.
    pub fn new(cseq: u32, now: Duration, t1: Duration) -> AckWait {
        AckWait {
            cseq,
            next: now + t1,
            gap: t1,
            give_up: now + 64 * t1,
        }
    }

    /// Whether an ACK with this CSeq number is the one we wait for.
    pub fn acked_by(&self, cseq: u32) -> bool {
        cseq == self.cseq
    }

    /// What is due at `now`; a `Resend` is recorded as sent.
    pub fn poll(&mut self, now: Duration) -> Option<AckDue> {
        if now >= self.give_up {
            return Some(AckDue::GiveUp);
        }
        if now >= self.next {
            self.gap = (self.gap * 2).min(T2);
            self.next = now + self.gap;
            return Some(AckDue::Resend);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: Duration = Duration::from_millis(500);

    fn invite(extra: &str) -> Message {
        let text = format!(
            "INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
From: <sip:a@127.0.0.1>;tag=f\r\nTo: <sip:+15550100@127.0.0.1>\r\nCall-ID: c1\r\n\
CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).expect("invite")
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn a_reinvite_2xx_is_resent_t1_doubling_to_t2_until_64_t1() {
        let ms = Duration::from_millis;
        let mut w = AckWait::new(7, s(0), T1);
        assert!(w.acked_by(7) && !w.acked_by(6));
        assert_eq!(w.poll(ms(499)), None);
        // Timer G: 0.5, then gaps of 1, 2, 4, 4 ... s (T2 caps it).
        let mut sent = vec![];
        let mut t = Duration::ZERO;
        while t < s(40) {
            match w.poll(t) {
                Some(AckDue::Resend) => sent.push(t.as_millis()),
                Some(AckDue::GiveUp) => break,
                None => {}
            }
            t += ms(10);
        }
        assert_eq!(
            &sent[..6],
            &[500, 1500, 3500, 7500, 11500, 15500],
            "T1 doubling, capped at T2"
        );
        // Timer H: 64×T1 = 32 s.
        assert_eq!(t, s(32));
        assert_eq!(w.poll(s(32)), Some(AckDue::GiveUp));
    }

    #[test]
    fn headers_parse_per_rfc_4028_grammar() {
        assert_eq!(parse_session_expires("1800"), Ok((1800, None)));
        assert_eq!(
            parse_session_expires("90;refresher=UAS"),
            Ok((90, Some(Refresher::Uas)))
        );
        assert_eq!(
            parse_session_expires(" 4000 ; x=y ; refresher=uac"),
            Ok((4000, Some(Refresher::Uac)))
        );
        for bad in [
            "",
            "abc",
            "-5",
            "0",
            "1e3",
            "99999999999",
            "90;refresher=me",
        ] {
            assert!(parse_session_expires(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_min_se("90"), Ok(90));
        assert_eq!(parse_min_se("120;lr"), Ok(120));
        assert!(parse_min_se("x").is_err());
        assert!(parse_min_se("").is_err());
    }

    #[test]
    fn no_session_expires_means_no_timer() {
        assert_eq!(uas_negotiate(&invite("Supported: timer\r\n"), 90), Ok(None));
    }

    #[test]
    fn below_our_min_se_is_a_422_with_it() {
        let e = uas_negotiate(&invite("Session-Expires: 60\r\nSupported: timer\r\n"), 90);
        assert_eq!(
            e,
            Err(TimerError::TooSmall {
                asked: 60,
                min_se: 90
            })
        );
    }

    #[test]
    fn the_refresher_follows_section_9() {
        // The request names the UAC, which supports timers: it refreshes,
        // and our 2xx requires the extension of it.
        let r = uas_negotiate(
            &invite("Session-Expires: 1800;refresher=uac\r\nSupported: timer\r\n"),
            90,
        )
        .expect("ok")
        .expect("timer");
        assert_eq!(r.refresher, Refresher::Uac);
        assert!(!r.we_refresh);
        let h = response_headers(&r);
        assert!(h.contains(&("Session-Expires", "1800;refresher=uac".into())));
        assert!(h.contains(&("Require", "timer".into())));
        // No refresher named, UAC supports: the UAC is chosen.
        let r = uas_negotiate(&invite("Session-Expires: 600\r\nSupported: timer\r\n"), 90)
            .expect("ok")
            .expect("timer");
        assert_eq!((r.refresher, r.we_refresh), (Refresher::Uac, false));
        // A UAC without timer support: we refresh, whatever it asked, and
        // our 2xx does not require the extension.
        let r = uas_negotiate(&invite("Session-Expires: 600;refresher=uac\r\n"), 90)
            .expect("ok")
            .expect("timer");
        assert_eq!((r.refresher, r.we_refresh), (Refresher::Uas, true));
        assert!(!response_headers(&r).iter().any(|(n, _)| *n == "Require"));
        // The UAS asked to refresh.
        let r = uas_negotiate(
            &invite("Session-Expires: 600;refresher=uas\r\nSupported: timer\r\n"),
            90,
        )
        .expect("ok")
        .expect("timer");
        assert!(r.we_refresh);
        // A Min-SE in the request above the asked interval raises it.
        let r = uas_negotiate(
            &invite("Session-Expires: 100\r\nMin-SE: 150\r\nSupported: timer\r\n"),
            90,
        )
        .expect("ok")
        .expect("timer");
        assert_eq!(r.interval, 150);
        assert!(uas_negotiate(&invite("Session-Expires: soon\r\n"), 90).is_err());
    }

    #[test]
    fn the_refresher_refreshes_at_half_and_resends_until_answered() {
        let session = Session {
            interval: 90,
            refresher: Refresher::Uas,
            we_refresh: true,
            peer_supports: true,
        };
        let mut c = Clock::new(session, s(10), T1);
        assert_eq!(c.poll(s(10)), None);
        assert_eq!(c.poll(s(54)), None);
        assert_eq!(c.poll(s(55)), Some(Due::Refresh), "at half of 90 s");
        assert_eq!(c.poll(s(55)), None, "sent once");
        assert_eq!(
            c.poll(s(55) + T1),
            Some(Due::Resend),
            "re-sent after T1 unanswered"
        );
        assert_eq!(c.poll(s(55) + T1 + T1), None, "then after 2×T1");
        assert_eq!(c.poll(s(55) + T1 * 3), Some(Due::Resend));
        // Answered: the next refresh is half an interval later.
        c.refreshed(session, s(57));
        assert!(!c.pending());
        assert_eq!(c.poll(s(101)), None);
        assert_eq!(c.poll(s(102)), Some(Due::Refresh));
        // Never answered: it expires at 90 - 30 s after the last refresh.
        c.refresh_failed();
        assert_eq!(c.poll(s(116)), None);
        assert_eq!(c.poll(s(57 + 60)), Some(Due::Expired));
    }

    #[test]
    fn without_the_peers_refresh_the_session_expires_before_its_interval() {
        let session = Session {
            interval: 1800,
            refresher: Refresher::Uac,
            we_refresh: false,
            peer_supports: true,
        };
        let mut c = Clock::new(session, s(0), T1);
        // We never refresh when the peer is the refresher.
        assert_eq!(c.poll(s(900)), None);
        assert_eq!(c.poll(s(1767)), None);
        // §10: BYE at interval - min(32, interval/3).
        assert_eq!(c.poll(s(1768)), Some(Due::Expired));
        // A refresh from the peer pushes it back.
        c.refreshed(session, s(1700));
        assert_eq!(c.poll(s(1768)), None);
        assert_eq!(c.poll(s(1700 + 1768)), Some(Due::Expired));
        // Short intervals: a third of the interval, not 32 s.
        let short = Session {
            interval: 6,
            ..session
        };
        let mut c = Clock::new(short, s(0), T1);
        assert_eq!(c.poll(s(3)), None);
        assert_eq!(c.poll(s(4)), Some(Due::Expired));
    }

    #[test]
    fn a_422_raises_the_interval_and_refreshes_at_once() {
        let m = Message::parse(
            b"SIP/2.0 422 Session Interval Too Small\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\nCSeq: 2 UPDATE\r\n\
Min-SE: 1200\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("422");
        assert_eq!(after_422(&m, 90), Ok(1200));
        assert_eq!(after_422(&m, 1800), Ok(1800));
        let session = Session {
            interval: 90,
            refresher: Refresher::Uas,
            we_refresh: true,
            peer_supports: true,
        };
        let mut c = Clock::new(session, s(0), T1);
        assert_eq!(c.poll(s(45)), Some(Due::Refresh));
        c.retry_with(1200);
        assert_eq!(c.poll(s(46)), Some(Due::Refresh), "retried at once");
        assert_eq!(c.session.interval, 1200);
        assert_eq!(c.poll(s(46)), None);
        let h = refresh_headers(&c.session, 90);
        assert!(h.contains(&("Session-Expires", "1200;refresher=uac".into())));
        assert!(h.contains(&("Min-SE", "90".into())));
    }

    #[test]
    fn as_the_uac_we_offer_and_follow_the_2xx() {
        let h = uac_request_headers(UAC_INTERVAL, 90);
        assert_eq!(
            h,
            vec![
                ("Session-Expires", "1800".to_owned()),
                ("Min-SE", "90".to_owned()),
                ("Supported", "timer".to_owned()),
            ]
        );
        let ok = |extra: &str| {
            Message::parse(
                format!(
                    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: k\r\nCSeq: 1 INVITE\r\n{extra}\r\n"
                )
                .as_bytes(),
            )
            .expect("2xx")
        };
        let s = uac_negotiate(&ok("Session-Expires: 90;refresher=uac\r\n"))
            .expect("ok")
            .expect("a session");
        assert!(s.we_refresh && s.interval == 90);
        let s = uac_negotiate(&ok("x: 120;refresher=uas\r\n"))
            .expect("ok")
            .expect("a session");
        assert!(!s.we_refresh && s.interval == 120 && s.refresher == Refresher::Uas);
        // No refresher named: we refresh.
        let s = uac_negotiate(&ok("Session-Expires: 300\r\n"))
            .expect("ok")
            .expect("a session");
        assert!(s.we_refresh);
        // No Session-Expires: no timer (§7.2).
        assert_eq!(uac_negotiate(&ok("")), Ok(None));
        assert!(uac_negotiate(&ok("Session-Expires: soon\r\n")).is_err());
    }
}
