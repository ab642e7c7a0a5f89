//! The contact domain: one call's life as its agents drive it. Outbound
//! dialing, accept and reject, hold and resume, digits, hanging up legs,
//! attributes, after-call work and clearing; the simulated caller's side
//! (hang-up, digits, what it experiences). Every change publishes each
//! participant's whole view ([`super::Call::view`]) so clients never merge
//! partial updates.

use std::collections::BTreeMap;

use protocol::contact::{ConnectionState, ContactState, Initiation, TransitionError};
use protocol::endpoint::{is_dtmf, is_e164, Endpoint, EndpointKind};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{Event, OpResult};
use protocol::Millis;

use super::{short, store_failed, Call, Center, Participant, Party};
use crate::store::StoreError;

/// Why a contact op was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    /// No contact by that id.
    #[error("no contact `{contact_id}`")]
    NotFound {
        /// The id asked for (at most 64 characters).
        contact_id: String,
    },
    /// The contact exists but the agent is not on it.
    #[error("contact `{contact_id}` is not yours")]
    NotOwner {
        /// The contact.
        contact_id: String,
    },
    /// The op needs the agent connected to the contact.
    #[error("contact `{contact_id}` is {state}, not connected")]
    NotConnected {
        /// The contact.
        contact_id: String,
        /// The agent's contact state (or `gone`).
        state: &'static str,
    },
    /// The contact or connection machine refused the step.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Only ended, missed, rejected or errored contacts can be cleared.
    #[error("a contact that is {state} cannot be cleared")]
    CannotClear {
        /// The agent's contact state.
        state: &'static str,
    },
    /// The wrap-up code is not configured.
    #[error("`{code}` is not a wrap-up code")]
    NotAWrapUpCode {
        /// The code given (at most 64 characters).
        code: String,
    },
    /// Hold or resume named no other leg of the contact.
    #[error("no such connection on this contact (your own connection cannot be held)")]
    NoHoldableConnection,
    /// No leg of the contact has that connection id.
    #[error("no such connection on this contact")]
    NoSuchConnection,
    /// Digits go only to a talking or held leg.
    #[error("the connection is {state}")]
    ConnectionInactive {
        /// The connection's state.
        state: &'static str,
    },
    /// Not a DTMF string.
    #[error("digits must be 1-64 of 0-9 * # A-D ,")]
    BadDigits,
    /// The customer's leg is already disconnected.
    #[error("the customer already left")]
    CustomerGone,
    /// Attributes over the protocol's limits.
    #[error("{reason}")]
    BadAttributes {
        /// Which limit.
        reason: String,
    },
    /// An outbound call to something that is not an E.164 number.
    #[error("outbound calls need an E.164 phone number like +14155550100")]
    OutboundNeedsE164,
    /// An outbound call to an agent or a queue.
    #[error(
        "outbound calls go to phone numbers; transfer to agents and queues with add_connection"
    )]
    OutboundNotPhone,
    /// Calling out while on a contact.
    #[error("finish or clear the current contact before calling out")]
    Busy,
    /// The simulator named a call that is not live.
    #[error("no live call `{contact_id}`")]
    NoLiveCall {
        /// The contact.
        contact_id: String,
    },
    /// The change could not be saved.
    #[error("saving the contact: {0}")]
    Store(#[from] StoreError),
}

impl ContactError {
    /// The wire error.
    pub fn body(&self) -> ErrorBody {
        let code = match self {
            ContactError::NotFound { .. }
            | ContactError::NoHoldableConnection
            | ContactError::NoSuchConnection
            | ContactError::NoLiveCall { .. } => ErrorCode::NotFound,
            ContactError::NotOwner { .. } => ErrorCode::NotOwner,
            ContactError::NotConnected { .. }
            | ContactError::Transition(_)
            | ContactError::CannotClear { .. }
            | ContactError::ConnectionInactive { .. }
            | ContactError::CustomerGone
            | ContactError::Busy => ErrorCode::InvalidState,
            ContactError::NotAWrapUpCode { .. }
            | ContactError::BadDigits
            | ContactError::BadAttributes { .. }
            | ContactError::OutboundNeedsE164 => ErrorCode::InvalidArgument,
            ContactError::OutboundNotPhone => ErrorCode::UnsupportedEndpoint,
            ContactError::Store(e) => return store_failed(e),
        };
        ErrorBody::new(code, self.to_string())
    }
}

/// A contact that disappeared between two looks (cannot happen under
/// the center's `&mut`; named rather than unwrapped).
fn vanished(contact_id: &str) -> ContactError {
    ContactError::NotFound {
        contact_id: short(contact_id),
    }
}

fn not_yours(contact_id: &str) -> ContactError {
    ContactError::NotOwner {
        contact_id: contact_id.into(),
    }
}

/// Where a simulated caller's call stands, as it experiences it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerPhase {
    /// Not yet queued.
    Init,
    /// In an entry point's flow (hearing prompts, pressing keys).
    Flow,
    /// Waiting in a queue.
    Queued,
    /// An agent's phone is ringing.
    Ringing,
    /// Talking to an agent.
    Connected,
    /// Put on hold.
    Hold,
    /// Over.
    Ended,
}

impl CallerPhase {
    /// The wire name, e.g. `"queued"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallerPhase::Init => "init",
            CallerPhase::Flow => "flow",
            CallerPhase::Queued => "queued",
            CallerPhase::Ringing => "ringing",
            CallerPhase::Connected => "connected",
            CallerPhase::Hold => "hold",
            CallerPhase::Ended => "ended",
        }
    }
}

/// What the simulator can see of a call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallerView {
    /// The contact.
    pub contact_id: String,
    /// Where the call stands.
    pub state: CallerPhase,
    /// DTMF the caller heard.
    pub digits_heard: String,
}

impl Center {
    /// `update_attributes`: merged into the contact's attributes, checked
    /// against the protocol's limits, saved, and published.
    pub(super) fn update_attributes(
        &mut self,
        agent: &str,
        contact_id: &str,
        attributes: BTreeMap<String, String>,
        now: Millis,
    ) -> Result<OpResult, ContactError> {
        let mut merged = self.mine(agent, contact_id)?.attributes.clone();
        // The new keys alone are checked first, so a bad request is
        // named as such even when the merge would also be too big.
        crate::limits::check_attributes(&attributes)
            .map_err(|reason| ContactError::BadAttributes { reason })?;
        merged.extend(attributes);
        crate::limits::check_attributes(&merged)
            .map_err(|reason| ContactError::BadAttributes { reason })?;
        self.store.update_attributes(contact_id, &merged)?;
        if let Some(call) = self.calls.get_mut(contact_id) {
            call.attributes = merged.clone();
        }
        self.publish(contact_id, now);
        Ok(OpResult::Attributes { attributes: merged })
    }

    /// The call, if `agent` is on it: `not_found` or `not_owner` otherwise.
    pub(super) fn mine(&self, agent: &str, contact_id: &str) -> Result<&Call, ContactError> {
        let call = self
            .calls
            .get(contact_id)
            .ok_or_else(|| ContactError::NotFound {
                contact_id: short(contact_id),
            })?;
        if call.participant(agent).is_none() {
            return Err(ContactError::NotOwner {
                contact_id: contact_id.into(),
            });
        }
        Ok(call)
    }

    /// The call and the agent's place on it, mutably (`not_found` or
    /// `not_owner` otherwise).
    pub(super) fn mine_mut(
        &mut self,
        agent: &str,
        contact_id: &str,
    ) -> Result<(&mut Call, usize), ContactError> {
        self.mine(agent, contact_id)?;
        let call = self
            .calls
            .get_mut(contact_id)
            .ok_or_else(|| vanished(contact_id))?;
        let index = call
            .participants
            .iter()
            .position(|p| p.agent == agent)
            .ok_or_else(|| not_yours(contact_id))?;
        Ok((call, index))
    }

    /// The call and the agent's participant, requiring the agent connected.
    pub(super) fn mine_connected(
        &mut self,
        agent: &str,
        contact_id: &str,
    ) -> Result<&mut Call, ContactError> {
        let state = self
            .mine(agent, contact_id)?
            .participant(agent)
            .map(|p| p.state.clone());
        if !matches!(state, Some(ContactState::Connected { .. })) {
            let name = state.as_ref().map_or("gone", |s| s.name());
            return Err(ContactError::NotConnected {
                contact_id: contact_id.into(),
                state: name,
            });
        }
        self.calls
            .get_mut(contact_id)
            .ok_or_else(|| vanished(contact_id))
    }

    pub(super) fn connect_outbound(
        &mut self,
        agent: &str,
        endpoint: Endpoint,
        now: Millis,
    ) -> Result<OpResult, ContactError> {
        let number = match (endpoint.kind, endpoint.phone_number.as_deref()) {
            (EndpointKind::PhoneNumber, Some(n)) if is_e164(n) => n.to_owned(),
            (EndpointKind::PhoneNumber, _) => return Err(ContactError::OutboundNeedsE164),
            _ => return Err(ContactError::OutboundNotPhone),
        };
        if self.phase(agent).is_some() {
            return Err(ContactError::Busy);
        }
        let id = self.new_id("c");
        self.open_contact_record(&id, "outbound", None, &number, &Default::default(), now)?;
        let _ = self
            .store
            .contact_event(&id, now, Some(agent), "dialed", Some(&number));
        let attributes = self.cfg.customers.get(&number).cloned().unwrap_or_default();
        let state = ContactState::Init.dial(now)?;
        let (customer_conn, agent_conn, leg) = (self.new_id("k"), self.new_id("k"), self.new_leg());
        // Through the SIP trunk when there is one: the far end's audio is
        // a live leg, and the network (not a timer) answers.
        let trunk_leg = self.has_trunk().then(|| self.new_leg());
        let customer = Party {
            connection_id: customer_conn,
            endpoint: Endpoint::phone_number(&number),
            state: ConnectionState::Connecting { since: now },
            answer_at: trunk_leg
                .is_none()
                .then(|| now.plus_ms(self.cfg.external_answer_ms)),
        };
        let caller_play = match trunk_leg {
            Some(leg) => crate::bridge::CallerAudio::Live { leg },
            None => crate::bridge::CallerAudio::Prompt(
                self.cfg.public_dir.join(&self.cfg.caller_prompt),
            ),
        };
        self.calls.insert(
            id.clone(),
            Call {
                participants: vec![Participant {
                    agent: agent.to_owned(),
                    connection_id: agent_conn,
                    state,
                    conn: ConnectionState::Connected { since: now },
                    initiation: Initiation::Outbound,
                    offered_from: None,
                    media_leg: leg,
                }],
                ..Call::new(
                    &id,
                    Initiation::Outbound,
                    customer,
                    attributes,
                    caller_play,
                    now,
                )
            },
        );
        self.add_contact(agent, &id);
        if let Some(leg) = trunk_leg {
            self.dial_trunk(agent, &id, &number, leg, now);
        }
        self.publish(&id, now);
        Ok(OpResult::ContactCreated { contact_id: id })
    }

    pub(super) fn accept(
        &mut self,
        agent: &str,
        contact_id: &str,
        now: Millis,
    ) -> Result<OpResult, ContactError> {
        let (call, i) = self.mine_mut(agent, contact_id)?;
        let p = &mut call.participants[i];
        let next = p.state.accept(now)?;
        p.state = next;
        p.conn = ConnectionState::Connected { since: now };
        p.offered_from = None;
        let transfer = p.initiation == Initiation::Transfer;
        // A callback's customer is dialed now (see `flow_accepted`).
        if !call.callback {
            if let Ok(s) = call.customer.state.connect(now) {
                call.customer.state = s;
            }
        }
        // A cold transfer: the sender already left, so the customer (held
        // during the transfer) now talks to the new agent.
        let others_live = call.live_agents().filter(|q| q.agent != agent).count();
        if transfer && others_live == 0 {
            if let Ok(s) = call.customer.state.resume(now) {
                call.customer.state = s;
            }
        }
        self.flow_accepted(contact_id, agent, now);
        self.recorded(contact_id, agent, "accepted", now)
    }

    pub(super) fn reject(
        &mut self,
        agent: &str,
        contact_id: &str,
        now: Millis,
    ) -> Result<OpResult, ContactError> {
        let (call, i) = self.mine_mut(agent, contact_id)?;
        let p = &mut call.participants[i];
        let next = p.state.reject(now)?;
        p.state = next;
        let wait = p.offered_from.take();
        if let Some(wait) = wait {
            call.waiting = Some(wait);
        }
        call.rejected.push((agent.to_owned(), now));
        let _ = self
            .store
            .contact_event(contact_id, now, Some(agent), "rejected", None);
        if let Some(view) = self
            .calls
            .get(contact_id)
            .and_then(|c| c.view(agent, &self.cfg))
        {
            self.emit(agent, Event::ContactUpdated(view));
        }
        self.destroy_view(contact_id, agent, now);
        self.publish(contact_id, now);
        self.route(now);
        Ok(OpResult::Ack)
    }

    /// The usual end of an op: what `agent` did goes on the contact's
    /// timeline, everyone on the contact sees the new view, and the op is
    /// acknowledged. (A store error loses a timeline line, not the call.)
    pub(super) fn recorded(
        &mut self,
        contact_id: &str,
        agent: &str,
        event: &str,
        now: Millis,
    ) -> Result<OpResult, ContactError> {
        let _ = self
            .store
            .contact_event(contact_id, now, Some(agent), event, None);
        self.publish(contact_id, now);
        Ok(OpResult::Ack)
    }

    pub(super) fn clear(
        &mut self,
        agent: &str,
        contact_id: &str,
        code: Option<String>,
        now: Millis,
    ) -> Result<OpResult, ContactError> {
        let call = self.mine(agent, contact_id)?;
        let state = call
            .participant(agent)
            .map(|p| p.state.clone())
            .unwrap_or(ContactState::Init);
        if !state.can_clear() {
            return Err(ContactError::CannotClear {
                state: state.name(),
            });
        }
        if let Some(code) = &code {
            if !self.cfg.wrap_up_codes.contains(code) {
                return Err(ContactError::NotAWrapUpCode { code: short(code) });
            }
        }
        let _ = self
            .store
            .contact_event(contact_id, now, Some(agent), "cleared", code.as_deref());
        self.destroy_view(contact_id, agent, now);
        self.route(now);
        Ok(OpResult::Ack)
    }

    pub(super) fn set_hold(
        &mut self,
        agent: &str,
        contact_id: &str,
        connection_id: &str,
        hold: bool,
        now: Millis,
    ) -> Result<OpResult, ContactError> {
        let call = self.mine_connected(agent, contact_id)?;
        let Some(conn) = call.other_connection_mut(agent, connection_id) else {
            return Err(ContactError::NoHoldableConnection);
        };
        let next = if hold {
            conn.hold(now)
        } else {
            conn.resume(now)
        }?;
        *conn = next;
        let customer = call.customer.connection_id == connection_id;
        let _ = self.store.contact_event(
            contact_id,
            now,
            Some(agent),
            if hold { "hold" } else { "resume" },
            Some(connection_id),
        );
        if customer {
            // The hold flows the call's flows set, if any.
            self.flow_hold(contact_id, agent, hold, now);
        }
        self.publish(contact_id, now);
        Ok(OpResult::Ack)
    }

    pub(super) fn send_digits(
        &mut self,
        agent: &str,
        contact_id: &str,
        connection_id: &str,
        digits: &str,
        now: Millis,
    ) -> Result<OpResult, ContactError> {
        if !is_dtmf(digits) {
            return Err(ContactError::BadDigits);
        }
        let call = self.mine_connected(agent, contact_id)?;
        let is_customer = call.customer.connection_id == connection_id;
        match call.other_connection_mut(agent, connection_id) {
            Some(c) if c.is_active() => {}
            Some(c) => return Err(ContactError::ConnectionInactive { state: c.name() }),
            None => return Err(ContactError::NoSuchConnection),
        }
        if is_customer {
            call.digits_heard.push_str(digits);
        }
        self.play_digits(contact_id, connection_id, digits);
        let call = self
            .calls
            .get(contact_id)
            .ok_or_else(|| vanished(contact_id))?;
        let agents: Vec<String> = call.live_agents().map(|p| p.agent.clone()).collect();
        let _ = self
            .store
            .contact_event(contact_id, now, Some(agent), "digits", Some(digits));
        for a in agents {
            self.emit(
                &a,
                Event::Digits {
                    contact_id: contact_id.into(),
                    connection_id: connection_id.into(),
                    digits: digits.into(),
                },
            );
        }
        Ok(OpResult::Ack)
    }

    pub(super) fn end_connection(
        &mut self,
        agent: &str,
        contact_id: &str,
        connection_id: &str,
        now: Millis,
    ) -> Result<OpResult, ContactError> {
        let call = self.mine_connected(agent, contact_id)?;
        let own = call
            .participant(agent)
            .is_some_and(|p| p.connection_id == connection_id);
        if own {
            return self.leave(agent, contact_id, now);
        }
        if call.customer.connection_id == connection_id {
            if call.customer.state.is_disconnected() {
                return Err(ContactError::CustomerGone);
            }
            self.end_call(contact_id, "agent_disconnect", now);
            return Ok(OpResult::Ack);
        }
        if call
            .waiting
            .as_ref()
            .is_some_and(|w| w.connection_id == connection_id)
        {
            call.waiting = None;
            return self.recorded(contact_id, agent, "transfer_cancelled", now);
        }
        if let Some(e) = call
            .externals
            .iter_mut()
            .find(|e| e.connection_id == connection_id)
        {
            e.state = e.state.disconnect("third_party_disconnect", now)?;
            e.answer_at = None;
            self.publish(contact_id, now);
            return Ok(OpResult::Ack);
        }
        let Some(other) = call
            .participants
            .iter_mut()
            .find(|p| p.connection_id == connection_id)
        else {
            return Err(ContactError::NoSuchConnection);
        };
        let other_agent = other.agent.clone();
        if matches!(other.state, ContactState::Incoming { .. }) {
            let _ = self.store.contact_event(
                contact_id,
                now,
                Some(&other_agent),
                "transfer_cancelled",
                None,
            );
            self.destroy_view(contact_id, &other_agent, now);
        } else {
            other.state = other.state.end("third_party_disconnect", now)?;
            other.conn = other.conn.disconnect("third_party_disconnect", now)?;
            let _ = self.store.contact_event(
                contact_id,
                now,
                Some(&other_agent),
                "removed",
                Some(agent),
            );
        }
        self.publish(contact_id, now);
        Ok(OpResult::Ack)
    }

    /// The agent hangs up its own leg. Others carry on: a held customer
    /// is resumed when another agent is on the call (a completed
    /// transfer); with nobody left or coming, the call ends.
    pub(super) fn leave(
        &mut self,
        agent: &str,
        contact_id: &str,
        now: Millis,
    ) -> Result<OpResult, ContactError> {
        // Field borrows, not `mine_mut`: the store is written below while
        // the call is still borrowed.
        let call = self
            .calls
            .get_mut(contact_id)
            .ok_or_else(|| vanished(contact_id))?;
        let p = call
            .participant_mut(agent)
            .ok_or_else(|| not_yours(contact_id))?;
        p.state = p.state.end("agent_disconnect", now)?;
        p.conn = p.conn.disconnect("agent_disconnect", now)?;
        let _ = self
            .store
            .contact_event(contact_id, now, Some(agent), "agent_left", None);
        let hand_over = call.live_agents().next().is_none() && self.hands_over(contact_id);
        let Some(call) = self.calls.get_mut(contact_id) else {
            return Ok(OpResult::Ack);
        };
        if call.live_agents().next().is_some() || hand_over {
            // With no agent left, a third party dialed through the trunk
            // stays with the customer (see `trunk_party`).
            for c in call.active_others_mut(agent) {
                if let Ok(s) = c.resume(now) {
                    *c = s;
                }
            }
            self.publish(contact_id, now);
        } else if call.has_pending_offer() && !call.customer.state.is_disconnected() {
            // Cold transfer: the customer waits on hold for the next agent.
            self.publish(contact_id, now);
        } else {
            self.end_call(contact_id, "agent_disconnect", now);
        }
        Ok(OpResult::Ack)
    }
    /// Sends every participant its current view of `call_id`, then brings
    /// their statuses up to date.
    pub(super) fn publish(&mut self, call_id: &str, now: Millis) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let views: Vec<(String, _)> = call
            .participants
            .iter()
            .filter_map(|p| Some((p.agent.clone(), call.view(&p.agent, &self.cfg)?)))
            .collect();
        for (agent, view) in views {
            self.emit(&agent, Event::ContactUpdated(view));
            self.refresh_status(&agent, now);
        }
        self.plan_media(call_id);
    }

    /// Removes `agent` from a call and tells it the contact is gone.
    pub(super) fn destroy_view(&mut self, call_id: &str, agent: &str, now: Millis) {
        if let Some(call) = self.calls.get_mut(call_id) {
            call.participants.retain(|p| p.agent != agent);
            if call.ended && call.participants.is_empty() {
                self.calls.remove(call_id);
            }
        }
        self.remove_contact(agent, call_id);
        self.emit(
            agent,
            Event::ContactDestroyed {
                contact_id: call_id.to_owned(),
            },
        );
        self.refresh_status(agent, now);
    }

    /// The caller hangs up.
    pub fn caller_hangup(&mut self, contact_id: &str, now: Millis) -> Result<(), ContactError> {
        match self.calls.get(contact_id) {
            Some(c) if !c.ended => {
                self.end_call(contact_id, "customer_disconnect", now);
                Ok(())
            }
            _ => Err(ContactError::NoLiveCall {
                contact_id: short(contact_id),
            }),
        }
    }

    /// The caller presses keys; agents on the call get a `digits` event.
    pub fn caller_digits(
        &mut self,
        contact_id: &str,
        digits: &str,
        now: Millis,
    ) -> Result<(), ContactError> {
        if !is_dtmf(digits) {
            return Err(ContactError::BadDigits);
        }
        let Some(call) = self.calls.get(contact_id).filter(|c| !c.ended) else {
            return Err(ContactError::NoLiveCall {
                contact_id: short(contact_id),
            });
        };
        let conn = call.customer.connection_id.clone();
        let agents: Vec<String> = call.live_agents().map(|p| p.agent.clone()).collect();
        let _ = self
            .store
            .contact_event(contact_id, now, None, "caller_digits", Some(digits));
        self.flow_digits(contact_id, digits, now);
        for a in agents {
            self.emit(
                &a,
                Event::Digits {
                    contact_id: contact_id.to_owned(),
                    connection_id: conn.clone(),
                    digits: digits.to_owned(),
                },
            );
        }
        Ok(())
    }

    /// What the simulated caller of `contact_id` experiences.
    pub fn caller_view(&self, contact_id: &str) -> Option<CallerView> {
        let call = self.calls.get(contact_id)?;
        let state = if call.ended || call.customer.state.is_disconnected() {
            CallerPhase::Ended
        } else if matches!(call.customer.state, ConnectionState::Hold { .. }) {
            CallerPhase::Hold
        } else if call
            .live_agents()
            .any(|p| matches!(p.state, ContactState::Connected { .. }))
            || self.bridged_to_third_party(call)
        {
            CallerPhase::Connected
        } else if call
            .participants
            .iter()
            .any(|p| matches!(p.state, ContactState::Incoming { .. }))
        {
            CallerPhase::Ringing
        } else if call
            .flow
            .as_ref()
            .is_some_and(|f| f.role == super::FlowRole::Entry)
        {
            CallerPhase::Flow
        } else if call.waiting.is_some() {
            CallerPhase::Queued
        } else {
            CallerPhase::Init
        };
        Some(CallerView {
            contact_id: call.id.clone(),
            state,
            digits_heard: call.digits_heard.clone(),
        })
    }

    /// Ends the whole call: the customer and externals are disconnected,
    /// live agents go to after-call work, ringing agents lose the offer.
    pub(super) fn end_call(&mut self, call_id: &str, reason: &str, now: Millis) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.ended = true;
        call.waiting = None;
        call.flow = None;
        self.end_agent_lane(call_id);
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        self.early_media.remove(call_id);
        if let Ok(s) = call.customer.state.disconnect(reason, now) {
            call.customer.state = s;
        }
        call.customer.answer_at = None;
        for e in call.externals.iter_mut() {
            if let Ok(s) = e.state.disconnect(reason, now) {
                e.state = s;
            }
        }
        let mut ringing = Vec::new();
        for p in call.participants.iter_mut() {
            if let Ok(s) = p.state.end(reason, now) {
                p.state = s;
                if let Ok(c) = p.conn.disconnect(reason, now) {
                    p.conn = c;
                }
            } else if matches!(p.state, ContactState::Incoming { .. }) {
                ringing.push(p.agent.clone());
            }
        }
        let _ = self.store.end_contact(call_id, reason, now);
        let _ = self
            .store
            .contact_event(call_id, now, None, "ended", Some(reason));
        for agent in ringing {
            self.destroy_view(call_id, &agent, now);
        }
        self.publish(call_id, now);
        if self
            .calls
            .get(call_id)
            .is_some_and(|c| c.participants.is_empty())
        {
            self.calls.remove(call_id);
        }
    }
}
