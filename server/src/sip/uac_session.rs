//! Session timers on outbound calls (RFC 4028, we are the UAC), on top of
//! the sans-IO rules of [`super::timers`] that inbound calls use:
//!
//! - Our INVITE offers `Session-Expires: 1800`, our `Min-SE`
//!   (`sip.session_min_se_s`) and `Supported: timer`. A 422 answer is
//!   retried with its larger Min-SE as both (§7.1, §7.2).
//! - The 2xx's `Session-Expires` and `refresher` set the session (none:
//!   no timer). When the refresher is `uac` (us), we refresh at half the
//!   interval with an UPDATE when the far end's 2xx allowed it, else a
//!   re-INVITE offering our current SDP, re-sent until answered; a 2xx
//!   restarts the clock (and renegotiates), a 422 retries at once with
//!   its Min-SE, a 408 or 481 ends the call (§10), any other failure
//!   leaves the session to expire.
//! - When the far end refreshes, each re-INVITE or UPDATE we answer 2xx
//!   is a refresh (its own Session-Expires renegotiates, none turns the
//!   timer off); nothing by the expiry point (§10) and we send BYE.
//!
//! The outbound task owns the sockets and dialog; this keeps the state
//! and says what to send, so the task's edits stay a few hooks. Times are
//! passed in (durations since the call's start), as for [`Clock`].

use std::time::Duration;

use super::msg::Message;
use super::timers::{self, Clock, Due, Session};
use super::T1;

/// Headers of a message we send.
pub(super) type Headers = Vec<(&'static str, String)>;

/// What the task does after a response to our refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefreshOutcome {
    /// Not ours (another transaction) or provisional: handle as usual.
    NotOurs,
    /// Handled; `ack` when it was a re-INVITE's 2xx (ACK it).
    Done { ack: bool },
    /// A 408 or 481: the dialog is gone (§10): BYE and end the call.
    End,
}

/// One outbound call's session timer.
#[derive(Debug)]
pub(super) struct UacSession {
    /// The interval our INVITE asks for.
    asked: u32,
    /// The Min-SE our requests carry (ours, raised by a 422).
    min_se: u32,
    clock: Option<Clock>,
    /// The far end's 2xx allowed UPDATE: refresh with it.
    update_ok: bool,
    /// Our refresh in flight: its CSeq and whether it is a re-INVITE.
    pending: Option<(u32, bool)>,
    /// The CSeq of our last re-INVITE refresh answered 2xx: a
    /// retransmission of that 2xx (our ACK was lost) is ACKed again.
    acked: Option<u32>,
}

impl UacSession {
    /// `min_se` is `sip.session_min_se_s`.
    pub fn new(min_se: u32) -> UacSession {
        UacSession {
            asked: timers::UAC_INTERVAL.max(min_se),
            min_se,
            clock: None,
            update_ok: false,
            pending: None,
            acked: None,
        }
    }

    /// The timer lines of our INVITE (CRLF-ended).
    pub fn invite_headers(&self) -> String {
        timers::uac_request_headers(self.asked, self.min_se)
            .iter()
            .map(|(n, v)| format!("{n}: {v}\r\n"))
            .collect()
    }

    /// A 422 to our INVITE: `true` when it names a larger Min-SE to retry
    /// with (§7.2: the new request's Session-Expires and Min-SE are both
    /// it), `false` when there is nothing to retry (fail the call).
    pub fn on_invite_422(&mut self, m: &Message) -> bool {
        match timers::parse_min_se(m.header("min-se").unwrap_or_default()) {
            Ok(their) if their > self.asked || their > self.min_se => {
                self.asked = self.asked.max(their);
                self.min_se = self.min_se.max(their);
                true
            }
            _ => false,
        }
    }

    /// The 2xx to our INVITE: the session starts (or there is none).
    pub fn on_answer(&mut self, m: &Message, now: Duration) {
        self.update_ok = timers::allows_update(m);
        self.clock = timers::uac_negotiate(m)
            .ok()
            .flatten()
            .map(|s| Clock::new(s, now, T1));
    }

    /// The session, while a timer runs.
    pub fn session(&self) -> Option<Session> {
        self.clock.as_ref().map(|c| c.session)
    }

    /// A re-INVITE or UPDATE from the far end that we answer 2xx: it
    /// refreshes the session (we are its UAS, roles as in that request).
    /// The headers our 2xx carries; a 422 (with the Min-SE header) when
    /// its interval is below ours.
    pub fn on_peer_refresh(
        &mut self,
        request: &Message,
        now: Duration,
    ) -> Result<Headers, (u16, Headers)> {
        match timers::uas_negotiate(request, self.min_se) {
            Ok(Some(s)) => {
                match self.clock.as_mut() {
                    Some(c) => c.refreshed(s, now),
                    None => self.clock = Some(Clock::new(s, now, T1)),
                }
                Ok(timers::response_headers(&s))
            }
            // §9: a refresh without Session-Expires turns the timer off.
            Ok(None) => {
                self.clock = None;
                Ok(Vec::new())
            }
            Err(timers::TimerError::TooSmall { min_se, .. }) => {
                Err((422, vec![("Min-SE", min_se.to_string())]))
            }
            Err(timers::TimerError::Malformed(_)) => Err((400, Vec::new())),
        }
    }

    /// What the clock asks for now.
    pub fn poll(&mut self, now: Duration) -> Option<Due> {
        self.clock.as_mut().and_then(|c| c.poll(now))
    }

    /// A refresh goes out with CSeq `cseq`: its method (UPDATE when the
    /// far end allows it, else INVITE) and headers.
    pub fn refresh_sent(&mut self, cseq: u32) -> (&'static str, Vec<(&'static str, String)>) {
        let invite = !self.update_ok;
        self.pending = Some((cseq, invite));
        let headers = self
            .session()
            .map(|s| timers::refresh_headers(&s, self.min_se))
            .unwrap_or_default();
        (if invite { "INVITE" } else { "UPDATE" }, headers)
    }

    /// A response in the dialog: ours when it answers the pending refresh.
    pub fn on_response(&mut self, m: &Message, code: u16, now: Duration) -> RefreshOutcome {
        if let Some(n) = self.acked {
            if (200..300).contains(&code) && m.cseq() == Some((n, "INVITE")) {
                return RefreshOutcome::Done { ack: true };
            }
        }
        let Some((cseq, invite)) = self.pending else {
            return RefreshOutcome::NotOurs;
        };
        let method = if invite { "INVITE" } else { "UPDATE" };
        if m.cseq() != Some((cseq, method)) {
            return RefreshOutcome::NotOurs;
        }
        if code < 200 {
            return RefreshOutcome::Done { ack: false };
        }
        self.pending = None;
        let ack = invite && code < 300;
        if ack {
            self.acked = Some(cseq);
        }
        let Some(c) = self.clock.as_mut() else {
            return RefreshOutcome::Done { ack };
        };
        match code {
            200..=299 => match timers::uac_negotiate(m) {
                Ok(Some(s)) => c.refreshed(s, now),
                // §7.2: a 2xx without Session-Expires turns it off.
                Ok(None) => self.clock = None,
                Err(_) => c.refreshed(c.session, now),
            },
            422 => match timers::after_422(m, c.session.interval) {
                Ok(interval) => {
                    self.min_se = self.min_se.max(interval);
                    c.retry_with(interval);
                }
                Err(_) => c.refresh_failed(),
            },
            408 | 481 => return RefreshOutcome::End,
            _ => c.refresh_failed(),
        }
        RefreshOutcome::Done { ack }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Message {
        Message::parse(text.replace('\n', "\r\n").as_bytes()).expect("message")
    }

    fn response(code: u16, cseq: &str, extra: &str) -> Message {
        msg(&format!(
            "SIP/2.0 {code} X\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa\nFrom: <sip:a@b>;tag=1\n\
To: <sip:c@d>;tag=2\nCall-ID: k\nCSeq: {cseq}\n{extra}\n"
        ))
    }

    #[test]
    fn a_422_raises_what_we_ask_and_only_upwards() {
        let mut u = UacSession::new(90);
        assert_eq!(
            u.invite_headers(),
            "Session-Expires: 1800\r\nMin-SE: 90\r\nSupported: timer\r\n"
        );
        assert!(u.on_invite_422(&response(422, "1 INVITE", "Min-SE: 3600\n")));
        assert_eq!(
            u.invite_headers(),
            "Session-Expires: 3600\r\nMin-SE: 3600\r\nSupported: timer\r\n"
        );
        // Nothing larger, or no Min-SE: nothing to retry.
        assert!(!u.on_invite_422(&response(422, "2 INVITE", "Min-SE: 60\n")));
        assert!(!u.on_invite_422(&response(422, "2 INVITE", "")));
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn we_refresh_by_update_when_allowed_and_follow_the_answers() {
        let mut u = UacSession::new(2);
        u.on_answer(
            &response(
                200,
                "1 INVITE",
                "Session-Expires: 4;refresher=uac\nAllow: INVITE, ACK, BYE, UPDATE\n",
            ),
            ms(0),
        );
        assert_eq!(u.poll(ms(1999)), None);
        assert_eq!(u.poll(ms(2001)), Some(Due::Refresh));
        let (method, h) = u.refresh_sent(2);
        assert_eq!(method, "UPDATE");
        assert!(h.contains(&("Session-Expires", "4;refresher=uac".to_owned())));
        // Someone else's answer, then ours: the clock restarts.
        assert_eq!(
            u.on_response(&response(200, "1 INVITE", ""), 200, ms(2100)),
            RefreshOutcome::NotOurs
        );
        let ok = response(200, "2 UPDATE", "Session-Expires: 4;refresher=uac\n");
        assert_eq!(
            u.on_response(&ok, 200, ms(2100)),
            RefreshOutcome::Done { ack: false }
        );
        assert_eq!(u.poll(ms(4000)), None);
        // A 481 to the next refresh ends the call.
        assert_eq!(u.poll(ms(4101)), Some(Due::Refresh));
        u.refresh_sent(3);
        assert_eq!(
            u.on_response(&response(481, "3 UPDATE", ""), 481, ms(4200)),
            RefreshOutcome::End
        );
    }

    fn update(se: &str) -> Message {
        msg(&format!(
            "UPDATE sip:x@y SIP/2.0\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKb\nFrom: <sip:c@d>;tag=2\n\
To: <sip:a@b>;tag=1\nCall-ID: k\nCSeq: 7 UPDATE\nSession-Expires: {se}\nSupported: timer\n\n"
        ))
    }

    #[test]
    fn without_update_we_reinvite_and_a_peer_refresher_that_stays_silent_expires() {
        let mut u = UacSession::new(2);
        u.on_answer(
            &response(200, "1 INVITE", "Session-Expires: 6;refresher=uac\n"),
            ms(0),
        );
        assert_eq!(u.poll(ms(3001)), Some(Due::Refresh));
        assert_eq!(u.refresh_sent(2).0, "INVITE");
        // A 422 to it: again at once with its Min-SE.
        let short = response(422, "2 INVITE", "Min-SE: 8\n");
        assert_eq!(
            u.on_response(&short, 422, ms(3050)),
            RefreshOutcome::Done { ack: false }
        );
        assert_eq!(u.poll(ms(3060)), Some(Due::Refresh));
        let (_, h) = u.refresh_sent(3);
        assert!(h.contains(&("Session-Expires", "8;refresher=uac".to_owned())));
        assert!(h.contains(&("Min-SE", "8".to_owned())));
        let ok = response(200, "3 INVITE", "Session-Expires: 3;refresher=uas\n");
        assert_eq!(
            u.on_response(&ok, 200, ms(3100)),
            RefreshOutcome::Done { ack: true }
        );
        // Its retransmission (our ACK lost) is ACKed again, and changes
        // nothing else.
        assert_eq!(
            u.on_response(&ok, 200, ms(3200)),
            RefreshOutcome::Done { ack: true }
        );
        // Now the far end refreshes (interval 3 s): without it, expiry
        // 2 s later (3 - min(32, 3/3)).
        assert_eq!(u.poll(ms(5000)), None);
        let h = u
            .on_peer_refresh(&update("8;refresher=uac"), ms(5000))
            .expect("200");
        assert!(h.contains(&("Session-Expires", "8;refresher=uac".to_owned())));
        assert_eq!(
            u.poll(ms(10_000)),
            None,
            "the peer's refresh restarted the clock"
        );
        assert_eq!(u.poll(ms(10_400)), Some(Due::Expired));
        // Too short a refresh from the peer: 422 with our Min-SE.
        assert_eq!(
            u.on_peer_refresh(&update("1"), ms(10_500)).map(|_| ()),
            Err((422, vec![("Min-SE", "8".to_owned())]))
        );
    }

    #[test]
    fn no_session_expires_in_the_2xx_means_no_timer() {
        let mut u = UacSession::new(90);
        u.on_answer(&response(200, "1 INVITE", ""), ms(0));
        assert_eq!(u.session(), None);
        assert_eq!(u.poll(ms(10_000_000)), None);
    }
}
