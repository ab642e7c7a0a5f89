//! Early media for inbound callers who wait (RFC 3261 §13.3.1.1, RFC 3960
//! "gateway model"; reliability by RFC 3262): the gateway answers 200
//! only when an agent accepts, but the caller's media leg is on the
//! bridge from the start and hears what the contact's flow and queue play
//! (prompts, the queue flow's messages, input prompts). Without SDP in a
//! provisional response most phones and trunks discard RTP before the
//! answer, so while the call is queued we send `183 Session Progress`
//! with our SDP answer, once.
//!
//! PRACK (RFC 3262): when the INVITE says `Require: 100rel` the 183 must
//! be reliable: it carries `Require: 100rel` and an `RSeq`, is re-sent
//! from T1 doubling (capped at T2) until a PRACK whose `RAck` names it
//! comes (answered 200), and the 200 to the INVITE waits for that PRACK
//! (§3: a 2xx may not overtake an unacknowledged reliable provisional
//! response that carried SDP). No PRACK in 64×T1: the INVITE is refused
//! 504 (§3 asks for a 5xx). Other provisional responses are not sent in
//! this mode (a 180 would have to be reliable too, and the 183 already
//! told the caller the call progresses). A caller that only says
//! `Supported: 100rel` gets an unreliable 183, which RFC 3262 allows.
//!
//! Sans-IO: times are passed in, and the call task sends what this
//! returns.

use std::time::Duration;

use super::msg::Message;

/// RFC 3261 T2: the longest gap between retransmissions of the 183.
const T2: Duration = Duration::from_secs(4);

/// Why a PRACK is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrackError {
    /// No reliable provisional response of ours is waiting for it.
    #[error("no reliable provisional response matches the PRACK")]
    NoMatch,
    /// Its RAck header is missing or not `rseq cseq method`.
    #[error("bad RAck header")]
    BadRack,
}

/// What the early-media state asks the call task to do on a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EarlyDue {
    /// Re-send the reliable 183.
    Resend(Vec<u8>),
    /// No PRACK in 64×T1: refuse the INVITE with this 504 and end.
    GiveUp(Vec<u8>),
}

/// One inbound call's early media.
#[derive(Debug)]
pub struct Early {
    /// The INVITE required 100rel: our 183 is reliable.
    reliable: bool,
    /// The INVITE's CSeq number (for RAck).
    cseq: u32,
    rseq: u32,
    /// The 183 we sent, while unacknowledged (reliable mode).
    pending: Option<Pending>,
    sent: bool,
    acked: bool,
    t1: Duration,
}

#[derive(Debug)]
struct Pending {
    bytes: Vec<u8>,
    first: Duration,
    next: Duration,
    gap: Duration,
}

/// Whether a header list (Require, Supported) names `tag`.
fn lists(m: &Message, header: &str, tag: &str) -> bool {
    m.headers_named(header)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(tag))
}

impl Early {
    /// The early-media state of `invite`.
    pub fn new(invite: &Message, t1: Duration) -> Early {
        Early {
            reliable: lists(invite, "require", "100rel"),
            cseq: invite.cseq().map_or(1, |(n, _)| n),
            // RFC 3262 §3: a random start below 2**31.
            rseq: 1 + u32::from(rand_u16()),
            pending: None,
            sent: false,
            acked: false,
            t1,
        }
    }

    /// Whether the 183 went out already.
    pub fn sent(&self) -> bool {
        self.sent
    }

    /// Whether our provisional responses are reliable (then only the 183
    /// is sent; no 180).
    pub fn reliable(&self) -> bool {
        self.reliable
    }

    /// The 183 with our SDP (`extra` headers: Contact), recorded as sent
    /// at `now`. Reliable: with `Require: 100rel` and `RSeq`.
    pub fn progress(
        &mut self,
        invite: &Message,
        tag: &str,
        extra: &[(&'static str, String)],
        sdp: &[u8],
        now: Duration,
    ) -> Vec<u8> {
        let mut h: Vec<(&'static str, String)> = extra.to_vec();
        if self.reliable {
            h.push(("Require", "100rel".to_owned()));
            h.push(("RSeq", self.rseq.to_string()));
        }
        let bytes = invite.response(183, "Session Progress", Some(tag), &h, sdp);
        self.sent = true;
        if self.reliable {
            self.pending = Some(Pending {
                bytes: bytes.clone(),
                first: now,
                next: now + self.t1,
                gap: self.t1,
            });
        }
        bytes
    }

    /// A PRACK: `Ok` (answer 200) when its `RAck` names our 183; the 183
    /// is then acknowledged and the 200 to the INVITE may go. A repeated
    /// PRACK for the same 183 is answered 200 again (§3).
    pub fn on_prack(&mut self, prack: &Message) -> Result<(), PrackError> {
        let rack = prack.header("rack").ok_or(PrackError::BadRack)?;
        let mut f = rack.split_whitespace();
        let (Some(r), Some(c), Some(method), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(PrackError::BadRack);
        };
        let (Ok(r), Ok(c)) = (r.parse::<u32>(), c.parse::<u32>()) else {
            return Err(PrackError::BadRack);
        };
        if !self.reliable
            || !self.sent
            || r != self.rseq
            || c != self.cseq
            || !method.eq_ignore_ascii_case("INVITE")
        {
            return Err(PrackError::NoMatch);
        }
        self.pending = None;
        self.acked = true;
        Ok(())
    }

    /// Whether the 200 to the INVITE may be sent: always, unless a
    /// reliable 183 (with SDP) waits for its PRACK.
    pub fn may_answer(&self) -> bool {
        !self.reliable || !self.sent || self.acked
    }

    /// Retransmission of the reliable 183, or giving up, at `now`.
    pub fn poll(&mut self, invite: &Message, tag: &str, now: Duration) -> Option<EarlyDue> {
        let p = self.pending.as_mut()?;
        if now < p.next {
            return None;
        }
        if now >= p.first + 64 * self.t1 {
            self.pending = None;
            return Some(EarlyDue::GiveUp(invite.response(
                504,
                "Server Time-out",
                Some(tag),
                &[],
                b"",
            )));
        }
        p.gap = (p.gap * 2).min(T2);
        p.next = now + p.gap;
        Some(EarlyDue::Resend(p.bytes.clone()))
    }
}

/// A random number for the first RSeq (the call ids' randomness).
fn rand_u16() -> u16 {
    let id = crate::center::random_id("");
    id.bytes()
        .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(u16::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: Duration = Duration::from_millis(500);

    fn invite(extra: &str) -> Message {
        Message::parse(
            format!(
                "INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n\
From: <sip:+15557654321@10.0.0.1>;tag=f1\r\nTo: <sip:+15550100@127.0.0.1>\r\nCall-ID: e1\r\n\
CSeq: 7 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("invite")
    }

    fn prack(rack: &str) -> Message {
        Message::parse(
            format!(
                "PRACK sip:switchboard@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp\r\n\
From: <sip:+15557654321@10.0.0.1>;tag=f1\r\nTo: <sip:+15550100@127.0.0.1>;tag=us\r\nCall-ID: e1\r\n\
CSeq: 8 PRACK\r\nRAck: {rack}\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("prack")
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn without_require_100rel_the_183_is_sent_once_and_never_holds_the_answer() {
        for extra in ["", "Supported: 100rel\r\n"] {
            let inv = invite(extra);
            let mut e = Early::new(&inv, T1);
            assert!(!e.reliable());
            let b = e.progress(&inv, "us", &[], b"v=0\r\n", ms(0));
            let m = Message::parse(&b).expect("183");
            assert_eq!(m.start, crate::sip::msg::Start::Response { code: 183 });
            assert!(m.header("rseq").is_none() && m.header("require").is_none());
            assert_eq!(m.body, b"v=0\r\n");
            assert!(e.may_answer());
            assert_eq!(e.poll(&inv, "us", ms(100_000)), None);
            assert_eq!(e.on_prack(&prack("1 7 INVITE")), Err(PrackError::NoMatch));
        }
    }

    #[test]
    fn a_reliable_183_is_resent_until_its_prack_and_holds_the_200() {
        let inv = invite("Require: 100rel\r\n");
        let mut e = Early::new(&inv, T1);
        assert!(e.reliable());
        assert!(e.may_answer(), "nothing sent yet");
        let b = e.progress(&inv, "us", &[], b"v=0\r\n", ms(0));
        let m = Message::parse(&b).expect("183");
        assert_eq!(m.header("require"), Some("100rel"));
        let rseq: u32 = m.header("rseq").expect("RSeq").parse().expect("number");
        assert!(!e.may_answer(), "the 200 waits for the PRACK");
        // T1, then doubling: 0.5, 1.5, 3.5 s.
        assert_eq!(e.poll(&inv, "us", ms(400)), None);
        assert_eq!(
            e.poll(&inv, "us", ms(500)),
            Some(EarlyDue::Resend(b.clone()))
        );
        assert_eq!(e.poll(&inv, "us", ms(1400)), None);
        assert_eq!(
            e.poll(&inv, "us", ms(1500)),
            Some(EarlyDue::Resend(b.clone()))
        );
        // A PRACK for something else, or malformed, changes nothing.
        let wrong = format!("{} 7 INVITE", rseq + 1);
        assert_eq!(e.on_prack(&prack(&wrong)), Err(PrackError::NoMatch));
        let wrong = format!("{rseq} 6 INVITE");
        assert_eq!(e.on_prack(&prack(&wrong)), Err(PrackError::NoMatch));
        assert_eq!(e.on_prack(&prack("soon")), Err(PrackError::BadRack));
        assert!(!e.may_answer());
        let right = format!("{rseq} 7 INVITE");
        assert_eq!(e.on_prack(&prack(&right)), Ok(()));
        assert!(e.may_answer());
        assert_eq!(e.poll(&inv, "us", ms(3500)), None, "no more resends");
        assert_eq!(e.on_prack(&prack(&right)), Ok(()), "a repeat is answered");
    }

    #[test]
    fn no_prack_in_64_t1_refuses_the_invite_504() {
        let inv = invite("Require: timer, 100rel\r\n");
        let mut e = Early::new(&inv, T1);
        e.progress(&inv, "us", &[], b"v=0\r\n", ms(0));
        let mut resends = 0;
        let mut t = 0;
        let give_up = loop {
            t += 100;
            match e.poll(&inv, "us", ms(t)) {
                Some(EarlyDue::Resend(_)) => resends += 1,
                Some(EarlyDue::GiveUp(b)) => break b,
                None => {}
            }
            assert!(t < 60_000, "gave up in time");
        };
        assert!(
            t >= 32_000 && resends >= 7,
            "after 64×T1: {t} ms, {resends}"
        );
        let m = Message::parse(&give_up).expect("504");
        assert_eq!(m.start, crate::sip::msg::Start::Response { code: 504 });
        assert_eq!(e.poll(&inv, "us", ms(t + 10_000)), None);
    }
}
