//! The operations an agent's client can ask for. Each checks that the
//! agent owns what it touches and that the state allows it, changes
//! nothing on refusal, and reports every change as events before the
//! response goes out.

use protocol::agent::AgentState;
use protocol::contact::QueueRef;
use protocol::contact::{ConnectionState, ContactState, Initiation, TransitionError};
use protocol::endpoint::{is_dtmf, is_e164, Endpoint, EndpointKind};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{
    AgentConfiguration, Event, Op, OpResult, RoutingProfile, RoutingProfileQueue,
};
use protocol::Millis;

use super::{internal, random_id, Call, Center, Participant, Party, Wait};
use crate::config::Config;

fn err(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}

fn invalid(e: TransitionError) -> ErrorBody {
    err(ErrorCode::InvalidState, e.to_string())
}

/// The agent's configuration as the wire shows it.
pub(super) fn configuration(cfg: &Config, agent: &str) -> Option<AgentConfiguration> {
    let a = cfg.agents.get(agent)?;
    let p = cfg.routing_profiles.get(&a.routing_profile)?;
    Some(AgentConfiguration {
        username: a.username.clone(),
        name: a.name.clone(),
        routing_profile: RoutingProfile {
            id: p.id.clone(),
            name: p.name.clone(),
            queues: p
                .queues
                .iter()
                .map(|q| RoutingProfileQueue {
                    queue: QueueRef {
                        id: q.queue.clone(),
                        name: cfg
                            .queues
                            .get(&q.queue)
                            .map_or_else(|| q.queue.clone(), |x| x.name.clone()),
                    },
                    priority: q.priority,
                    delay_s: q.delay_s,
                })
                .collect(),
        },
        softphone_enabled: true,
        wrap_up_codes: cfg.wrap_up_codes.clone(),
    })
}

impl Center {
    /// Runs one op for `agent`.
    pub fn handle(&mut self, agent: &str, op: Op, now: Millis) -> Result<OpResult, ErrorBody> {
        if !self.agents.contains_key(agent) {
            return Err(err(ErrorCode::AuthFailed, "unknown agent"));
        }
        match op {
            // The socket answers it (it knows the login the token belongs to).
            Op::RefreshToken => Err(err(
                ErrorCode::InvalidState,
                "refresh_token is answered by the socket layer",
            )),
            Op::Ping => Ok(OpResult::Pong),
            Op::GetSnapshot => self
                .snapshot(agent)
                .map(OpResult::Snapshot)
                .ok_or_else(|| err(ErrorCode::NotFound, "no such agent")),
            Op::GetAgentState => Ok(OpResult::AgentState(self.agents[agent].status.view())),
            Op::SetAgentState { state } => self.set_state(agent, &state, now),
            Op::GetAgentConfiguration => configuration(&self.cfg, agent)
                .map(OpResult::AgentConfiguration)
                .ok_or_else(|| err(ErrorCode::NotFound, "no configuration")),
            Op::ListAgentStates => Ok(OpResult::AgentStates {
                states: self.cfg.agent_states.clone(),
            }),
            Op::GetRoutingProfile => configuration(&self.cfg, agent)
                .map(|c| OpResult::RoutingProfile(c.routing_profile))
                .ok_or_else(|| err(ErrorCode::NotFound, "no routing profile")),
            Op::ListQuickConnects => Ok(OpResult::QuickConnects {
                endpoints: self
                    .cfg
                    .quick_connects
                    .iter()
                    .filter(|e| e.agent.as_deref() != Some(agent))
                    .cloned()
                    .collect(),
            }),
            Op::Mute | Op::Unmute => {
                let muted = matches!(op, Op::Mute);
                let entry = self
                    .agents
                    .get_mut(agent)
                    .ok_or_else(|| err(ErrorCode::NotFound, "no agent"))?;
                if entry.muted != muted {
                    entry.muted = muted;
                    self.emit(agent, Event::MuteChanged { muted });
                    self.plan_agent_calls(agent);
                }
                Ok(OpResult::Ack)
            }
            Op::Connect { endpoint } => self.connect_outbound(agent, endpoint, now),
            Op::Accept { contact_id } => self.accept(agent, &contact_id, now),
            Op::Reject { contact_id } => self.reject(agent, &contact_id, now),
            Op::Clear {
                contact_id,
                wrap_up_code,
            } => self.clear(agent, &contact_id, wrap_up_code, now),
            Op::Hold {
                contact_id,
                connection_id,
            } => self.set_hold(agent, &contact_id, &connection_id, true, now),
            Op::Resume {
                contact_id,
                connection_id,
            } => self.set_hold(agent, &contact_id, &connection_id, false, now),
            Op::SendDigits {
                contact_id,
                connection_id,
                digits,
            } => self.send_digits(agent, &contact_id, &connection_id, &digits, now),
            Op::AddConnection {
                contact_id,
                endpoint,
            } => self.add_connection(agent, &contact_id, endpoint, now),
            Op::Conference { contact_id } => self.conference(agent, &contact_id, now),
            Op::Toggle { contact_id } => self.toggle(agent, &contact_id, now),
            Op::EndConnection {
                contact_id,
                connection_id,
            } => self.end_connection(agent, &contact_id, &connection_id, now),
            Op::GetAttributes { contact_id } => {
                self.mine(agent, &contact_id)?;
                Ok(OpResult::Attributes {
                    attributes: self.attributes_of(&contact_id),
                })
            }
            Op::UpdateAttributes {
                contact_id,
                attributes,
            } => {
                self.mine(agent, &contact_id)?;
                // The new keys alone are checked first, so a bad request is
                // named as such even when the merge would also be too big.
                crate::limits::check_attributes(&attributes)
                    .map_err(|m| err(ErrorCode::InvalidArgument, m))?;
                let mut merged = self.attributes_of(&contact_id);
                merged.extend(attributes);
                crate::limits::check_attributes(&merged)
                    .map_err(|m| err(ErrorCode::InvalidArgument, m))?;
                self.store
                    .update_attributes(&contact_id, &merged)
                    .map_err(internal)?;
                if let Some(call) = self.calls.get_mut(&contact_id) {
                    call.attributes = merged.clone();
                }
                self.publish(&contact_id, now);
                Ok(OpResult::Attributes { attributes: merged })
            }
        }
    }

    /// The call, if `agent` is on it: `not_found` or `not_owner` otherwise.
    fn mine(&self, agent: &str, contact_id: &str) -> Result<&Call, ErrorBody> {
        let call = self.calls.get(contact_id).ok_or_else(|| {
            err(
                ErrorCode::NotFound,
                format!(
                    "no contact `{}`",
                    contact_id.chars().take(64).collect::<String>()
                ),
            )
        })?;
        if call.participant(agent).is_none() {
            return Err(err(
                ErrorCode::NotOwner,
                format!("contact `{contact_id}` is not yours"),
            ));
        }
        Ok(call)
    }

    /// The call and the agent's place on it, mutably (`not_found` or
    /// `not_owner` otherwise).
    fn mine_mut(&mut self, agent: &str, contact_id: &str) -> Result<(&mut Call, usize), ErrorBody> {
        self.mine(agent, contact_id)?;
        let call = self
            .calls
            .get_mut(contact_id)
            .ok_or_else(|| err(ErrorCode::NotFound, "contact vanished"))?;
        let index = call
            .participants
            .iter()
            .position(|p| p.agent == agent)
            .ok_or_else(|| err(ErrorCode::NotOwner, "not yours"))?;
        Ok((call, index))
    }

    /// The call and the agent's participant, requiring the agent connected.
    fn mine_connected(&mut self, agent: &str, contact_id: &str) -> Result<&mut Call, ErrorBody> {
        let state = self
            .mine(agent, contact_id)?
            .participant(agent)
            .map(|p| p.state.clone());
        if !matches!(state, Some(ContactState::Connected { .. })) {
            let name = state.as_ref().map_or("gone", |s| s.name());
            return Err(err(
                ErrorCode::InvalidState,
                format!("contact `{contact_id}` is {name}, not connected"),
            ));
        }
        self.calls
            .get_mut(contact_id)
            .ok_or_else(|| err(ErrorCode::NotFound, "contact vanished"))
    }

    fn set_state(&mut self, agent: &str, name: &str, now: Millis) -> Result<OpResult, ErrorBody> {
        let target: AgentState = self.cfg.agent_state(name).cloned().ok_or_else(|| {
            err(
                ErrorCode::NotFound,
                format!(
                    "no agent state `{}`",
                    name.chars().take(64).collect::<String>()
                ),
            )
        })?;
        // Acting on one's status dismisses missed and rejected contacts, as
        // in Amazon Connect.
        let dismissed: Vec<String> = self.agents[agent]
            .contacts
            .iter()
            .filter(|id| {
                self.calls
                    .get(*id)
                    .and_then(|c| c.participant(agent))
                    .is_some_and(|p| {
                        matches!(
                            p.state,
                            ContactState::Missed { .. } | ContactState::Rejected { .. }
                        )
                    })
            })
            .cloned()
            .collect();
        for id in dismissed {
            self.destroy_view(&id, agent, now);
        }
        let (workload, _) = self.workload(agent);
        let entry = self
            .agents
            .get_mut(agent)
            .ok_or_else(|| err(ErrorCode::NotFound, "no agent"))?;
        let changed = entry
            .status
            .request(target, workload, now)
            .map_err(|e| err(ErrorCode::InvalidState, e.to_string()))?;
        let view = entry.status.view();
        let chosen = entry.status.chosen().clone();
        if entry.status.is_routable() && entry.contacts.is_empty() && changed {
            entry.idle_since = now;
        }
        self.store
            .save_status(agent, &chosen, view.since)
            .map_err(internal)?;
        if changed {
            self.emit(agent, Event::AgentStateChanged(view.clone()));
        }
        self.route(now);
        Ok(OpResult::AgentState(view))
    }

    fn connect_outbound(
        &mut self,
        agent: &str,
        endpoint: Endpoint,
        now: Millis,
    ) -> Result<OpResult, ErrorBody> {
        let number = match (endpoint.kind, endpoint.phone_number.as_deref()) {
            (EndpointKind::PhoneNumber, Some(n)) if is_e164(n) => n.to_owned(),
            (EndpointKind::PhoneNumber, _) => {
                return Err(err(ErrorCode::InvalidArgument, "outbound calls need an E.164 phone number like +14155550100"))
            }
            _ => return Err(err(ErrorCode::UnsupportedEndpoint, "outbound calls go to phone numbers; transfer to agents and queues with add_connection")),
        };
        if self.workload(agent).1.is_some() {
            return Err(err(
                ErrorCode::InvalidState,
                "finish or clear the current contact before calling out",
            ));
        }
        let id = random_id("c");
        self.store
            .create_contact(&id, "outbound", None, &number, &Default::default(), now)
            .and_then(|()| match self.recording_path(&id) {
                Some(path) => self.store.set_recording(&id, &path.display().to_string()),
                None => Ok(()),
            })
            .map_err(internal)?;
        let _ = self
            .store
            .contact_event(&id, now, Some(agent), "dialed", Some(&number));
        let attributes = self.cfg.customers.get(&number).cloned().unwrap_or_default();
        let state = ContactState::Init.dial(now).map_err(invalid)?;
        self.calls.insert(
            id.clone(),
            Call {
                id: id.clone(),
                initiation: Initiation::Outbound,
                queue: None,
                created_at: now,
                attributes,
                customer: Party {
                    connection_id: random_id("k"),
                    endpoint: Endpoint::phone_number(&number),
                    state: ConnectionState::Connecting { since: now },
                    answer_at: Some(now.plus_ms(self.cfg.external_answer_ms)),
                },
                participants: vec![Participant {
                    agent: agent.to_owned(),
                    connection_id: random_id("k"),
                    state,
                    conn: ConnectionState::Connected { since: now },
                    initiation: Initiation::Outbound,
                    offered_from: None,
                    media_leg: super::random_leg(),
                }],
                externals: Vec::new(),
                waiting: None,
                rejected: Vec::new(),
                ended: false,
                digits_heard: String::new(),
                caller_play: crate::bridge::CallerAudio::Prompt(
                    self.cfg.public_dir.join(&self.cfg.caller_prompt),
                ),
            },
        );
        if let Some(entry) = self.agents.get_mut(agent) {
            entry.contacts.push(id.clone());
        }
        self.publish(&id, now);
        Ok(OpResult::ContactCreated { contact_id: id })
    }

    fn accept(
        &mut self,
        agent: &str,
        contact_id: &str,
        now: Millis,
    ) -> Result<OpResult, ErrorBody> {
        let (call, i) = self.mine_mut(agent, contact_id)?;
        let p = &mut call.participants[i];
        let next = p.state.accept(now).map_err(invalid)?;
        p.state = next;
        p.conn = ConnectionState::Connected { since: now };
        p.offered_from = None;
        let transfer = p.initiation == Initiation::Transfer;
        if let Ok(s) = call.customer.state.connect(now) {
            call.customer.state = s;
        }
        // A cold transfer: the sender already left, so the customer (held
        // during the transfer) now talks to the new agent.
        let others_live = call.live_agents().filter(|q| q.agent != agent).count();
        if transfer && others_live == 0 {
            if let Ok(s) = call.customer.state.resume(now) {
                call.customer.state = s;
            }
        }
        self.recorded(contact_id, agent, "accepted", now)
    }

    fn reject(
        &mut self,
        agent: &str,
        contact_id: &str,
        now: Millis,
    ) -> Result<OpResult, ErrorBody> {
        let (call, i) = self.mine_mut(agent, contact_id)?;
        let p = &mut call.participants[i];
        let next = p.state.reject(now).map_err(invalid)?;
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
    fn recorded(
        &mut self,
        contact_id: &str,
        agent: &str,
        event: &str,
        now: Millis,
    ) -> Result<OpResult, ErrorBody> {
        let _ = self
            .store
            .contact_event(contact_id, now, Some(agent), event, None);
        self.publish(contact_id, now);
        Ok(OpResult::Ack)
    }

    fn clear(
        &mut self,
        agent: &str,
        contact_id: &str,
        code: Option<String>,
        now: Millis,
    ) -> Result<OpResult, ErrorBody> {
        let call = self.mine(agent, contact_id)?;
        let state = call
            .participant(agent)
            .map(|p| p.state.clone())
            .unwrap_or(ContactState::Init);
        if !state.can_clear() {
            return Err(err(
                ErrorCode::InvalidState,
                format!("a contact that is {} cannot be cleared", state.name()),
            ));
        }
        if let Some(code) = &code {
            if !self.cfg.wrap_up_codes.contains(code) {
                return Err(err(
                    ErrorCode::InvalidArgument,
                    format!(
                        "`{}` is not a wrap-up code",
                        code.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        let _ = self
            .store
            .contact_event(contact_id, now, Some(agent), "cleared", code.as_deref());
        self.destroy_view(contact_id, agent, now);
        self.route(now);
        Ok(OpResult::Ack)
    }

    fn set_hold(
        &mut self,
        agent: &str,
        contact_id: &str,
        connection_id: &str,
        hold: bool,
        now: Millis,
    ) -> Result<OpResult, ErrorBody> {
        let call = self.mine_connected(agent, contact_id)?;
        let Some(conn) = call.other_connection_mut(agent, connection_id) else {
            return Err(err(
                ErrorCode::NotFound,
                "no such connection on this contact (your own connection cannot be held)",
            ));
        };
        let next = if hold {
            conn.hold(now)
        } else {
            conn.resume(now)
        }
        .map_err(invalid)?;
        *conn = next;
        let _ = self.store.contact_event(
            contact_id,
            now,
            Some(agent),
            if hold { "hold" } else { "resume" },
            Some(connection_id),
        );
        self.publish(contact_id, now);
        Ok(OpResult::Ack)
    }

    fn send_digits(
        &mut self,
        agent: &str,
        contact_id: &str,
        connection_id: &str,
        digits: &str,
        now: Millis,
    ) -> Result<OpResult, ErrorBody> {
        if !is_dtmf(digits) {
            return Err(err(
                ErrorCode::InvalidArgument,
                "digits must be 1-64 of 0-9 * # A-D ,",
            ));
        }
        let call = self.mine_connected(agent, contact_id)?;
        let is_customer = call.customer.connection_id == connection_id;
        match call.other_connection_mut(agent, connection_id) {
            Some(c) if c.is_active() => {}
            Some(c) => {
                return Err(err(
                    ErrorCode::InvalidState,
                    format!("the connection is {}", c.name()),
                ))
            }
            None => {
                return Err(err(
                    ErrorCode::NotFound,
                    "no such connection on this contact",
                ))
            }
        }
        if is_customer {
            call.digits_heard.push_str(digits);
        }
        self.play_digits(contact_id, connection_id, digits);
        let call = self
            .calls
            .get(contact_id)
            .ok_or_else(|| err(ErrorCode::NotFound, "contact vanished"))?;
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

    fn resolve(&self, endpoint: Endpoint) -> Result<Endpoint, ErrorBody> {
        if let Some(qc) = self.cfg.quick_connects.iter().find(|q| q.id == endpoint.id) {
            return Ok(qc.clone());
        }
        match endpoint.kind {
            EndpointKind::PhoneNumber if endpoint.phone_number.as_deref().is_some_and(is_e164) => {
                Ok(endpoint)
            }
            EndpointKind::PhoneNumber => {
                Err(err(ErrorCode::InvalidArgument, "not an E.164 phone number"))
            }
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
            _ => Err(err(
                ErrorCode::NotFound,
                format!(
                    "no endpoint `{}`",
                    endpoint.id.chars().take(64).collect::<String>()
                ),
            )),
        }
    }

    fn add_connection(
        &mut self,
        agent: &str,
        contact_id: &str,
        endpoint: Endpoint,
        now: Millis,
    ) -> Result<OpResult, ErrorBody> {
        let endpoint = self.resolve(endpoint)?;
        let call = self.mine_connected(agent, contact_id)?;
        if call.has_pending_offer() {
            return Err(err(
                ErrorCode::InvalidState,
                "a transfer is already being placed on this contact",
            ));
        }
        let target_agent = match endpoint.kind {
            EndpointKind::Agent => {
                let target = endpoint.agent.clone().unwrap_or_default();
                if target == agent || call.participant(&target).is_some() {
                    return Err(err(
                        ErrorCode::InvalidState,
                        format!("{target} is already on this contact"),
                    ));
                }
                let available = self.agents.get(&target).is_some_and(|e| {
                    e.status.is_routable() && e.contacts.is_empty() && e.link.tx.is_some()
                });
                if !available {
                    return Err(err(
                        ErrorCode::InvalidState,
                        format!("{} is not available", endpoint.name),
                    ));
                }
                Some(target)
            }
            _ => None,
        };
        let call = self
            .calls
            .get_mut(contact_id)
            .ok_or_else(|| err(ErrorCode::NotFound, "contact vanished"))?;
        // The people already on the call wait on hold while the new party is reached.
        for c in call.active_others_mut(agent) {
            if let Ok(h) = c.hold(now) {
                *c = h;
            }
        }
        let connection_id = random_id("k");
        match endpoint.kind {
            EndpointKind::Agent => {
                let target = target_agent.unwrap_or_default();
                let state = ContactState::Init
                    .offer(now, self.cfg.ring_timeout_ms)
                    .map_err(invalid)?;
                call.participants.push(Participant {
                    agent: target.clone(),
                    connection_id: connection_id.clone(),
                    state,
                    conn: ConnectionState::Connecting { since: now },
                    initiation: Initiation::Transfer,
                    offered_from: None,
                    media_leg: super::random_leg(),
                });
                if let Some(e) = self.agents.get_mut(&target) {
                    e.contacts.push(contact_id.to_owned());
                }
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
                call.externals.push(Party {
                    connection_id: connection_id.clone(),
                    endpoint: endpoint.clone(),
                    state: ConnectionState::Connecting { since: now },
                    answer_at: Some(now.plus_ms(self.cfg.external_answer_ms)),
                });
            }
        }
        let _ = self.store.contact_event(
            contact_id,
            now,
            Some(agent),
            "add_connection",
            Some(&endpoint.id),
        );
        self.publish(contact_id, now);
        self.route(now);
        Ok(OpResult::ConnectionAdded { connection_id })
    }

    fn conference(
        &mut self,
        agent: &str,
        contact_id: &str,
        now: Millis,
    ) -> Result<OpResult, ErrorBody> {
        let call = self.mine_connected(agent, contact_id)?;
        let mut others = call.active_others_mut(agent);
        if others.len() < 2 {
            return Err(err(
                ErrorCode::InvalidState,
                "a conference needs two other parties on the call",
            ));
        }
        for c in others.iter_mut() {
            if let Ok(s) = c.resume(now) {
                **c = s;
            }
        }
        self.recorded(contact_id, agent, "conference", now)
    }

    fn toggle(
        &mut self,
        agent: &str,
        contact_id: &str,
        now: Millis,
    ) -> Result<OpResult, ErrorBody> {
        let call = self.mine_connected(agent, contact_id)?;
        let mut others = call.active_others_mut(agent);
        let held = others
            .iter()
            .filter(|c| matches!(c, ConnectionState::Hold { .. }))
            .count();
        if others.len() != 2 || held != 1 {
            return Err(err(
                ErrorCode::InvalidState,
                "toggle needs two other parties, one of them on hold",
            ));
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
        self.recorded(contact_id, agent, "toggle", now)
    }

    fn end_connection(
        &mut self,
        agent: &str,
        contact_id: &str,
        connection_id: &str,
        now: Millis,
    ) -> Result<OpResult, ErrorBody> {
        let call = self.mine_connected(agent, contact_id)?;
        let own = call
            .participant(agent)
            .is_some_and(|p| p.connection_id == connection_id);
        if own {
            return self.leave(agent, contact_id, now);
        }
        if call.customer.connection_id == connection_id {
            if call.customer.state.is_disconnected() {
                return Err(err(ErrorCode::InvalidState, "the customer already left"));
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
            e.state = e
                .state
                .disconnect("third_party_disconnect", now)
                .map_err(invalid)?;
            e.answer_at = None;
            self.publish(contact_id, now);
            return Ok(OpResult::Ack);
        }
        let Some(other) = call
            .participants
            .iter_mut()
            .find(|p| p.connection_id == connection_id)
        else {
            return Err(err(
                ErrorCode::NotFound,
                "no such connection on this contact",
            ));
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
            other.state = other
                .state
                .end("third_party_disconnect", now)
                .map_err(invalid)?;
            other.conn = other
                .conn
                .disconnect("third_party_disconnect", now)
                .map_err(invalid)?;
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
    fn leave(&mut self, agent: &str, contact_id: &str, now: Millis) -> Result<OpResult, ErrorBody> {
        // Field borrows, not `mine_mut`: the store is written below while
        // the call is still borrowed.
        let call = self
            .calls
            .get_mut(contact_id)
            .ok_or_else(|| err(ErrorCode::NotFound, "contact vanished"))?;
        let p = call
            .participant_mut(agent)
            .ok_or_else(|| err(ErrorCode::NotOwner, "not yours"))?;
        p.state = p.state.end("agent_disconnect", now).map_err(invalid)?;
        p.conn = p
            .conn
            .disconnect("agent_disconnect", now)
            .map_err(invalid)?;
        let _ = self
            .store
            .contact_event(contact_id, now, Some(agent), "agent_left", None);
        if call.live_agents().next().is_some() {
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
}
