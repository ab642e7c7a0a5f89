//! The transfer domain: adding a party to a contact (another agent, a
//! queue for a cold transfer, an external number), conference and toggle
//! between the parties. The people already on the call wait on hold while
//! the new party is reached.

use protocol::contact::{ConnectionState, ContactState, Initiation};
use protocol::endpoint::{is_e164, Endpoint, EndpointKind};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::OpResult;
use protocol::Millis;

use super::{short, Center, ContactError, OpError, Participant, Party, Wait};

/// Why a transfer, conference or toggle was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// A phone endpoint that is not E.164.
    #[error("not an E.164 phone number")]
    BadNumber,
    /// No quick connect, agent or queue by that id.
    #[error("no endpoint `{id}`")]
    NoEndpoint {
        /// The endpoint id (at most 64 characters).
        id: String,
    },
    /// Someone is already being reached on this contact.
    #[error("a transfer is already being placed on this contact")]
    AlreadyTransferring,
    /// The agent asked for is on the contact already.
    #[error("{agent} is already on this contact")]
    AlreadyOnContact {
        /// The agent.
        agent: String,
    },
    /// The agent asked for cannot take a contact now.
    #[error("{name} is not available")]
    NotAvailable {
        /// The agent's display name.
        name: String,
    },
    /// Conference needs two other parties.
    #[error("a conference needs two other parties on the call")]
    ConferenceNeedsTwo,
    /// Toggle needs two other parties, one held.
    #[error("toggle needs two other parties, one of them on hold")]
    ToggleNeedsTwo,
}

impl TransferError {
    /// The wire error.
    pub fn body(&self) -> ErrorBody {
        let code = match self {
            TransferError::BadNumber => ErrorCode::InvalidArgument,
            TransferError::NoEndpoint { .. } => ErrorCode::NotFound,
            _ => ErrorCode::InvalidState,
        };
        ErrorBody::new(code, self.to_string())
    }
}

impl Center {
    fn resolve(&self, endpoint: Endpoint) -> Result<Endpoint, TransferError> {
        if let Some(qc) = self.cfg.quick_connects.iter().find(|q| q.id == endpoint.id) {
            return Ok(qc.clone());
        }
        match endpoint.kind {
            EndpointKind::PhoneNumber if endpoint.phone_number.as_deref().is_some_and(is_e164) => {
                Ok(endpoint)
            }
            EndpointKind::PhoneNumber => Err(TransferError::BadNumber),
            EndpointKind::Agent
                if endpoint
                    .agent
                    .as_ref()
                    .is_some_and(|a| self.cfg.agents.contains_key(a)) =>
            {
                Ok(endpoint)
            }
            EndpointKind::Queue
                if endpoint
                    .queue
                    .as_ref()
                    .is_some_and(|q| self.cfg.queues.contains_key(q)) =>
            {
                Ok(endpoint)
            }
            _ => Err(TransferError::NoEndpoint {
                id: short(&endpoint.id),
            }),
        }
    }

    pub(super) fn add_connection(
        &mut self,
        agent: &str,
        contact_id: &str,
        endpoint: Endpoint,
        now: Millis,
    ) -> Result<OpResult, OpError> {
        let endpoint = self.resolve(endpoint)?;
        // A quick connect that names a transfer flow runs it first.
        let transfer_flow = match endpoint.kind {
            EndpointKind::Agent | EndpointKind::Queue => {
                self.cfg.flows.quick_connects.get(&endpoint.id).cloned()
            }
            EndpointKind::PhoneNumber => None,
        };
        let call = self.mine_connected(agent, contact_id)?;
        let flow_transferring = call
            .flow
            .as_ref()
            .is_some_and(|f| matches!(f.role, super::FlowRole::Transfer { .. }));
        if call.has_pending_offer() || flow_transferring {
            return Err(TransferError::AlreadyTransferring.into());
        }
        let target_agent = match endpoint.kind {
            EndpointKind::Agent => {
                let target = endpoint.agent.clone().unwrap_or_default();
                if target == agent || call.participant(&target).is_some() {
                    return Err(TransferError::AlreadyOnContact { agent: target }.into());
                }
                // With a transfer flow, the flow's transfer_to_queue finds
                // out (its error branch), as in Connect.
                if transfer_flow.is_none() && !self.is_available(&target) {
                    return Err(TransferError::NotAvailable {
                        name: endpoint.name.clone(),
                    }
                    .into());
                }
                Some(target)
            }
            _ => None,
        };
        let connection_id = self.new_id("k");
        let leg = self.new_leg();
        let call = self
            .calls
            .get_mut(contact_id)
            .ok_or_else(|| ContactError::NotFound {
                contact_id: short(contact_id),
            })?;
        // The people already on the call wait on hold while the new party is reached.
        for c in call.active_others_mut(agent) {
            if let Ok(h) = c.hold(now) {
                *c = h;
            }
        }
        match endpoint.kind {
            _ if transfer_flow.is_some() => {}
            EndpointKind::Agent => {
                let target = target_agent.unwrap_or_default();
                let state = ContactState::Init
                    .offer(now, self.cfg.ring_timeout_ms)
                    .map_err(ContactError::from)?;
                call.participants.push(Participant {
                    agent: target.clone(),
                    connection_id: connection_id.clone(),
                    state,
                    conn: ConnectionState::Connecting { since: now },
                    initiation: Initiation::Transfer,
                    offered_from: None,
                    media_leg: leg,
                });
                self.add_contact(&target, contact_id);
                let _ = self.store.contact_event(
                    contact_id,
                    now,
                    Some(&target),
                    "offered",
                    Some("transfer"),
                );
            }
            EndpointKind::Queue => {
                let queue = endpoint.queue.clone().unwrap_or_default();
                call.waiting = Some(Wait {
                    queue,
                    since: now,
                    connection_id: connection_id.clone(),
                });
            }
            EndpointKind::PhoneNumber => {
                // Through the trunk when there is one (see `trunk_party`);
                // otherwise a simulated far end answers.
                let simulated = self.trunk.is_none();
                call.externals.push(Party {
                    connection_id: connection_id.clone(),
                    endpoint: endpoint.clone(),
                    state: ConnectionState::Connecting { since: now },
                    answer_at: simulated.then(|| now.plus_ms(self.cfg.external_answer_ms)),
                });
            }
        }
        let dial_failed = endpoint.kind == EndpointKind::PhoneNumber
            && self.dials_third_parties()
            && !self.dial_third_party(
                contact_id,
                Some(agent),
                &connection_id,
                endpoint.phone_number.as_deref().unwrap_or_default(),
                leg,
            );
        let _ = self.store.contact_event(
            contact_id,
            now,
            Some(agent),
            "add_connection",
            Some(&endpoint.id),
        );
        if let Some(flow) = transfer_flow {
            self.start_transfer_flow(contact_id, agent, &flow, &connection_id, endpoint, now);
        }
        self.publish(contact_id, now);
        self.route(now);
        if dial_failed {
            self.third_party_failed(
                contact_id,
                &connection_id,
                super::TrunkFailure::TrunkUnavailable,
                "the gateway is not taking calls",
                now,
            );
        }
        Ok(OpResult::ConnectionAdded { connection_id })
    }

    pub(super) fn conference(
        &mut self,
        agent: &str,
        contact_id: &str,
        now: Millis,
    ) -> Result<OpResult, OpError> {
        let call = self.mine_connected(agent, contact_id)?;
        let mut others = call.active_others_mut(agent);
        if others.len() < 2 {
            return Err(TransferError::ConferenceNeedsTwo.into());
        }
        for c in others.iter_mut() {
            if let Ok(s) = c.resume(now) {
                **c = s;
            }
        }
        Ok(self.recorded(contact_id, agent, "conference", now)?)
    }

    pub(super) fn toggle(
        &mut self,
        agent: &str,
        contact_id: &str,
        now: Millis,
    ) -> Result<OpResult, OpError> {
        let call = self.mine_connected(agent, contact_id)?;
        let mut others = call.active_others_mut(agent);
        let held = others
            .iter()
            .filter(|c| matches!(c, ConnectionState::Hold { .. }))
            .count();
        if others.len() != 2 || held != 1 {
            return Err(TransferError::ToggleNeedsTwo.into());
        }
        for c in others.iter_mut() {
            let next = match **c {
                ConnectionState::Hold { .. } => c.resume(now),
                _ => c.hold(now),
            };
            if let Ok(s) = next {
                **c = s;
            }
        }
        Ok(self.recorded(contact_id, agent, "toggle", now)?)
    }
}
