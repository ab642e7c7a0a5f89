//! Reliable provisional responses on outbound calls (RFC 3262, we are the
//! UAC). Our INVITE says `Supported: 100rel`; a trunk may then send an
//! 18x with `Require: 100rel` and an `RSeq`, which it retransmits until we
//! acknowledge it with a PRACK carrying `RAck: <rseq> <invite cseq>
//! INVITE` in the early dialog the 18x set up (§4, §7.2).
//!
//! RSeq ordering (§4): the first reliable response of the INVITE
//! transaction may carry any RSeq; each later one must carry the last plus
//! one. A retransmission (the same RSeq) gets the same PRACK again (a
//! retransmission of our PRACK transaction, byte for byte: the far end
//! retransmits because our PRACK was lost). Anything else is out of order
//! and is neither acknowledged nor processed. A new INVITE transaction (a
//! digest retry, a 422 retry) starts afresh.

use super::msg::Message;

/// The option tag we put in our INVITE's `Supported`.
const TAG: &str = "100rel";

/// `headers` (CRLF-ended lines) with `100rel` added to their `Supported`
/// header (the session timers' `Supported: timer`), or a `Supported`
/// line of its own when there is none: one header, so a far end reading
/// only the first `Supported` sees both tags.
pub(super) fn with_supported(headers: &str) -> String {
    let mut out = String::with_capacity(headers.len() + 24);
    let mut added = false;
    for line in headers.split_inclusive("\r\n") {
        let value = line
            .split_once(':')
            .filter(|(name, _)| name.trim().eq_ignore_ascii_case("supported"))
            .map(|(_, v)| v.trim());
        match value {
            Some(v) if !added => {
                out.push_str(&format!("Supported: {v}, {TAG}\r\n"));
                added = true;
            }
            _ => out.push_str(line),
        }
    }
    if !added {
        out.push_str(&format!("Supported: {TAG}\r\n"));
    }
    out
}

/// What to do with a provisional response to our INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Provisional {
    /// Not reliable (no `Require: 100rel`): process it, no PRACK.
    Unreliable,
    /// A new reliable response: process it and PRACK it with this RAck
    /// value.
    Acknowledge { rack: String },
    /// A retransmission of the last reliable response: send our PRACK
    /// again, process nothing.
    Again(Vec<u8>),
    /// Out of order, or reliable without a usable RSeq: ignore it.
    Ignore,
}

/// The reliable-provisional state of one INVITE transaction.
#[derive(Debug, Default)]
pub(super) struct Prack {
    last_rseq: Option<u32>,
    /// Our last PRACK, for its retransmission.
    sent: Option<Vec<u8>>,
}

impl Prack {
    /// A new INVITE transaction (after a challenge or a 422).
    pub fn restart(&mut self) {
        *self = Prack::default();
    }

    /// A 101-199 response to our INVITE of CSeq `invite_cseq`.
    pub fn on_provisional(&mut self, m: &Message, invite_cseq: u32) -> Provisional {
        let reliable = m
            .headers_named("require")
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(TAG)));
        if !reliable {
            return Provisional::Unreliable;
        }
        // RFC 3262 §7.1: 1 to 2^31 - 1.
        let Some(rseq) = m
            .header("rseq")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|r| (1..=0x7fff_ffff).contains(r))
        else {
            return Provisional::Ignore;
        };
        match self.last_rseq {
            Some(last) if rseq == last => match &self.sent {
                Some(bytes) => Provisional::Again(bytes.clone()),
                None => Provisional::Ignore,
            },
            Some(last) if rseq != last.wrapping_add(1) => Provisional::Ignore,
            _ => {
                self.last_rseq = Some(rseq);
                self.sent = None;
                Provisional::Acknowledge {
                    rack: format!("{rseq} {invite_cseq} INVITE"),
                }
            }
        }
    }

    /// The PRACK we sent for the last reliable response.
    pub fn sent(&mut self, bytes: Vec<u8>) {
        self.sent = Some(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provisional(extra: &str) -> Message {
        Message::parse(
            format!(
                "SIP/2.0 183 Session Progress\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: k\r\nCSeq: 3 INVITE\r\n\
Contact: <sip:c@127.0.0.1:5070>\r\n{extra}Content-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("parse")
    }

    #[test]
    fn supported_gets_100rel_once() {
        assert_eq!(
            with_supported("Session-Expires: 1800\r\nMin-SE: 90\r\nSupported: timer\r\n"),
            "Session-Expires: 1800\r\nMin-SE: 90\r\nSupported: timer, 100rel\r\n"
        );
        assert_eq!(with_supported(""), "Supported: 100rel\r\n");
    }

    #[test]
    fn reliable_responses_are_acknowledged_in_rseq_order() {
        let mut p = Prack::default();
        assert_eq!(
            p.on_provisional(&provisional(""), 3),
            Provisional::Unreliable
        );
        assert_eq!(
            p.on_provisional(&provisional("Require: 100rel\r\n"), 3),
            Provisional::Ignore,
            "no RSeq"
        );
        assert_eq!(
            p.on_provisional(&provisional("Require: 100rel\r\nRSeq: 0\r\n"), 3),
            Provisional::Ignore,
            "RSeq out of range"
        );
        let first = provisional("Require: timer, 100rel\r\nRSeq: 988\r\n");
        assert_eq!(
            p.on_provisional(&first, 3),
            Provisional::Acknowledge {
                rack: "988 3 INVITE".into()
            }
        );
        p.sent(b"PRACK 1".to_vec());
        // Its retransmission: the same PRACK again.
        assert_eq!(
            p.on_provisional(&first, 3),
            Provisional::Again(b"PRACK 1".to_vec())
        );
        // Skipping one, or going back: not processed.
        for rseq in [990, 987] {
            let m = provisional(&format!("Require: 100rel\r\nRSeq: {rseq}\r\n"));
            assert_eq!(p.on_provisional(&m, 3), Provisional::Ignore, "{rseq}");
        }
        let next = provisional("Require: 100rel\r\nRSeq: 989\r\n");
        assert_eq!(
            p.on_provisional(&next, 3),
            Provisional::Acknowledge {
                rack: "989 3 INVITE".into()
            }
        );
        // A new INVITE transaction: any RSeq again.
        p.restart();
        assert_eq!(
            p.on_provisional(&provisional("Require: 100rel\r\nRSeq: 5\r\n"), 4),
            Provisional::Acknowledge {
                rack: "5 4 INVITE".into()
            }
        );
    }
}
