//! Outbound calls through a SIP trunk, as far as the center goes. When the
//! SIP gateway runs it hands the center a channel ([`Center::set_trunk`]);
//! from then on an agent's outbound call (`connect` to a phone number) is
//! not answered by a simulated far end but sent to the gateway as a
//! [`TrunkDial`], and the gateway reports back what the network said:
//! progress (180/183, with early media the agent hears while dialing), an
//! answer, or a typed failure the agent sees as the contact's `error`
//! reason. The center still never waits: the dial is a bounded
//! `try_send`, and a full channel fails the call at once.

use protocol::contact::ContactState;
use protocol::Millis;

use super::{Center, ContactError};

/// Dials that may wait for the gateway; beyond this a call fails at once
/// with `trunk_unavailable`.
pub const TRUNK_DIAL_QUEUE: usize = 64;

/// An outbound call for the gateway to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkDial {
    /// The contact.
    pub contact_id: String,
    /// The number dialed (E.164).
    pub number: String,
    /// Caller ID number: the agent's outbound queue's.
    pub caller_id_number: Option<String>,
    /// Caller ID display name: the agent's outbound queue's.
    pub caller_id_name: Option<String>,
    /// The customer's media leg on the bridge (`customer:<contact>`), or
    /// the third party's (under [`third_party_key`]).
    pub leg: u32,
    /// A third party added to a live call (transfer, conference, a flow's
    /// `transfer_to_phone_number`): its connection id. `None` for an
    /// agent's outbound call, where the far end is the customer.
    pub third_party: Option<String>,
}

/// The bridge socket key of a third party dialed through the trunk. The
/// bridge sees it as an agent-kind party (a socket with a media leg), so
/// forwarding, mixing and hold music need nothing new.
pub fn third_party_key(connection_id: &str) -> String {
    format!("trunk-party:{connection_id}")
}

/// Why an outbound call through the trunk failed: the contact's `error`
/// reason and the customer connection's disconnect reason on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkFailure {
    /// 486 Busy Here, 600 Busy Everywhere.
    Busy,
    /// 603 Decline.
    Declined,
    /// 404, 484, 604: no such number.
    NumberNotFound,
    /// 408, 480, or nobody answered in time.
    NoAnswer,
    /// No trunk can place calls, or it does not answer at all (503, no
    /// response to the INVITE).
    TrunkUnavailable,
    /// The trunk refused our credentials.
    TrunkAuthFailed,
    /// Any other final response.
    TrunkError,
}

impl TrunkFailure {
    /// The wire reason, e.g. `busy`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrunkFailure::Busy => "busy",
            TrunkFailure::Declined => "declined",
            TrunkFailure::NumberNotFound => "number_not_found",
            TrunkFailure::NoAnswer => "no_answer",
            TrunkFailure::TrunkUnavailable => "trunk_unavailable",
            TrunkFailure::TrunkAuthFailed => "trunk_auth_failed",
            TrunkFailure::TrunkError => "trunk_error",
        }
    }

    /// The failure a final SIP status (300-699, not 401/407) means.
    pub fn of_status(code: u16) -> TrunkFailure {
        match code {
            486 | 600 => TrunkFailure::Busy,
            603 => TrunkFailure::Declined,
            404 | 484 | 604 => TrunkFailure::NumberNotFound,
            408 | 480 | 487 => TrunkFailure::NoAnswer,
            401 | 403 | 407 => TrunkFailure::TrunkAuthFailed,
            502..=504 => TrunkFailure::TrunkUnavailable,
            _ => TrunkFailure::TrunkError,
        }
    }
}

impl Center {
    /// Outbound calls go to the SIP gateway from now on.
    pub fn set_trunk(&mut self, tx: tokio::sync::mpsc::Sender<TrunkDial>) {
        self.trunk = Some(tx);
    }

    /// Whether outbound calls go through a trunk.
    pub(super) fn has_trunk(&self) -> bool {
        self.trunk.is_some()
    }

    /// Hands a new outbound call to the gateway, with the caller ID of the
    /// agent's outbound queue (the first queue of its routing profile).
    pub(super) fn dial_trunk(
        &mut self,
        agent: &str,
        contact_id: &str,
        number: &str,
        leg: u32,
        now: Millis,
    ) {
        let queue = self
            .cfg
            .agents
            .get(agent)
            .and_then(|a| self.cfg.routing_profiles.get(&a.routing_profile))
            .and_then(|p| p.queues.first())
            .and_then(|q| self.cfg.queues.get(&q.queue));
        let dial = TrunkDial {
            contact_id: contact_id.to_owned(),
            number: number.to_owned(),
            caller_id_number: queue.and_then(|q| q.outbound_caller_id_number.clone()),
            caller_id_name: queue.and_then(|q| q.outbound_caller_id_name.clone()),
            leg,
            third_party: None,
        };
        let sent = self
            .trunk
            .as_ref()
            .is_some_and(|t| t.try_send(dial).is_ok());
        if !sent {
            self.trunk_failed(
                contact_id,
                TrunkFailure::TrunkUnavailable,
                "the gateway is not taking calls",
                now,
            );
        }
    }

    /// The far end is ringing (180) or sends early media (183 with SDP):
    /// with early media the agent hears it while dialing.
    pub fn trunk_progress(&mut self, contact_id: &str, early_media: bool, now: Millis) {
        if self.calls.get(contact_id).is_none_or(|c| c.ended) {
            return;
        }
        let _ = self.store.contact_event(
            contact_id,
            now,
            None,
            "trunk_progress",
            Some(if early_media {
                "early media"
            } else {
                "ringing"
            }),
        );
        if early_media && self.early_media.insert(contact_id.to_owned()) {
            self.plan_media(contact_id);
        }
    }

    /// The far end answered (200 OK): the agent is connected.
    pub fn trunk_answered(&mut self, contact_id: &str, now: Millis) -> Result<(), ContactError> {
        let Some(call) = self.calls.get_mut(contact_id).filter(|c| !c.ended) else {
            return Err(ContactError::NoLiveCall {
                contact_id: super::short(contact_id),
            });
        };
        call.customer.answer_at = None;
        call.customer.state = call.customer.state.connect(now)?;
        for p in call.participants.iter_mut() {
            if let Ok(s) = p.state.answered(now) {
                p.state = s;
            }
        }
        self.early_media.remove(contact_id);
        let _ = self
            .store
            .contact_event(contact_id, now, None, "customer_answered", None);
        self.publish(contact_id, now);
        Ok(())
    }

    /// The call could not be placed: the dialing agent's contact goes to
    /// `error` with the failure as its reason (cleared like any ended
    /// contact), and the contact ends with it.
    pub fn trunk_failed(
        &mut self,
        contact_id: &str,
        failure: TrunkFailure,
        detail: &str,
        now: Millis,
    ) {
        let reason = failure.as_str();
        let Some(call) = self.calls.get_mut(contact_id).filter(|c| !c.ended) else {
            return;
        };
        call.ended = true;
        call.customer.answer_at = None;
        if let Ok(s) = call.customer.state.disconnect(reason, now) {
            call.customer.state = s;
        }
        for p in call.participants.iter_mut() {
            if matches!(p.state, ContactState::Connecting { .. }) {
                p.state = ContactState::Error {
                    since: now,
                    reason: reason.to_owned(),
                };
            } else if let Ok(s) = p.state.end(reason, now) {
                p.state = s;
            }
            if let Ok(c) = p.conn.disconnect(reason, now) {
                p.conn = c;
            }
        }
        self.early_media.remove(contact_id);
        let _ = self.store.end_contact(contact_id, reason, now);
        let _ = self
            .store
            .contact_event(contact_id, now, None, "trunk_failed", Some(detail));
        self.publish(contact_id, now);
    }

    /// The trunk leg died under a live call (no RTP for too long): the
    /// call ends with `reason` (e.g. `media_timeout`).
    pub fn trunk_lost(&mut self, contact_id: &str, reason: &str, now: Millis) {
        if self.calls.get(contact_id).is_some_and(|c| !c.ended) {
            self.end_call(contact_id, reason, now);
        }
    }

    /// Whether the agent should hear `contact_id`'s far end before answer.
    pub(super) fn has_early_media(&self, contact_id: &str) -> bool {
        self.early_media.contains(contact_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_typed_failures() {
        assert_eq!(TrunkFailure::of_status(486), TrunkFailure::Busy);
        assert_eq!(TrunkFailure::of_status(603), TrunkFailure::Declined);
        assert_eq!(TrunkFailure::of_status(404), TrunkFailure::NumberNotFound);
        assert_eq!(TrunkFailure::of_status(408), TrunkFailure::NoAnswer);
        assert_eq!(TrunkFailure::of_status(503), TrunkFailure::TrunkUnavailable);
        assert_eq!(TrunkFailure::of_status(500), TrunkFailure::TrunkError);
        assert_eq!(TrunkFailure::of_status(486).as_str(), "busy");
    }
}
