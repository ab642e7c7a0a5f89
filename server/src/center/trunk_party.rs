//! Third parties dialed through the SIP trunk: an agent's transfer or
//! conference to a phone number (`add_connection` with a number or a
//! phone-number quick connect) and a contact flow's
//! `transfer_to_phone_number`. The center adds the party as an external
//! connection (connecting), hands the gateway a [`TrunkDial`] naming the
//! connection, and the gateway reports back: answered (connected),
//! failed (the connection is disconnected with the typed reason, e.g.
//! `busy`, and the call goes on as it was; a flow takes its error branch)
//! or hung up. Its audio is a socket of its own on the bridge
//! ([`third_party_key`]), planned as an agent-kind party, so hold music,
//! forwarding and the conference mix work unchanged. When the last agent
//! leaves while such a party is on the call, the call is handed over: the
//! customer and the party go on talking until one of them hangs up.

use protocol::contact::ConnectionState;
use protocol::endpoint::Endpoint;
use protocol::Millis;

use super::{Call, Center, Party, TrunkDial, TrunkFailure};
use crate::flow::run::Input;

impl Center {
    /// Whether third parties (and flow transfers) go out through a trunk.
    pub(super) fn dials_third_parties(&self) -> bool {
        self.has_trunk()
    }

    /// Hands the gateway a third party to dial for `call_id`, with the
    /// caller ID of `agent`'s outbound queue (or, for a flow, the call's
    /// queue). False when the gateway does not take it (none, or full).
    pub(super) fn dial_third_party(
        &mut self,
        call_id: &str,
        agent: Option<&str>,
        connection_id: &str,
        number: &str,
        leg: u32,
    ) -> bool {
        let queue = match agent {
            Some(a) => self
                .cfg
                .agents
                .get(a)
                .and_then(|a| self.cfg.routing_profiles.get(&a.routing_profile))
                .and_then(|p| p.queues.first())
                .map(|q| q.queue.clone()),
            None => self.calls.get(call_id).and_then(|c| c.queue.clone()),
        };
        let queue = queue.and_then(|q| self.cfg.queues.get(&q));
        let dial = TrunkDial {
            contact_id: call_id.to_owned(),
            number: number.to_owned(),
            caller_id_number: queue.and_then(|q| q.outbound_caller_id_number.clone()),
            caller_id_name: queue.and_then(|q| q.outbound_caller_id_name.clone()),
            leg,
            third_party: Some(connection_id.to_owned()),
        };
        let sent = self
            .trunk
            .as_ref()
            .is_some_and(|t| t.try_send(dial).is_ok());
        if sent {
            self.trunk_parties.insert(connection_id.to_owned(), leg);
        }
        sent
    }

    /// A flow's `transfer_to_phone_number`: the caller is bridged to the
    /// number dialed through the trunk. The answer is immediate only when
    /// it cannot be placed (the flow's error branch); otherwise
    /// [`Center::third_party_failed`] feeds the failure later.
    pub(super) fn flow_transfer_to_phone(
        &mut self,
        call_id: &str,
        number: &str,
        now: Millis,
    ) -> Option<Input> {
        let _ =
            self.store
                .contact_event(call_id, now, None, "flow_transfer_to_phone", Some(number));
        if !self.dials_third_parties() {
            return Some(Input::DialFailed(
                TrunkFailure::TrunkUnavailable.as_str().into(),
            ));
        }
        let connection_id = self.new_id("k");
        let leg = self.new_leg();
        let call = self.calls.get_mut(call_id)?;
        call.externals.push(Party {
            connection_id: connection_id.clone(),
            endpoint: Endpoint::phone_number(number),
            state: ConnectionState::Connecting { since: now },
            answer_at: None,
        });
        if !self.dial_third_party(call_id, None, &connection_id, number, leg) {
            if let Some(e) = self.external_mut(call_id, &connection_id) {
                e.state = ConnectionState::Disconnected {
                    since: now,
                    reason: TrunkFailure::TrunkUnavailable.as_str().into(),
                };
            }
            return Some(Input::DialFailed(
                TrunkFailure::TrunkUnavailable.as_str().into(),
            ));
        }
        self.publish(call_id, now);
        None
    }

    fn external_mut(&mut self, call_id: &str, connection_id: &str) -> Option<&mut Party> {
        self.calls
            .get_mut(call_id)
            .filter(|c| !c.ended)?
            .externals
            .iter_mut()
            .find(|e| e.connection_id == connection_id)
    }

    /// The third party answered: it is connected. With no agent on the
    /// call (a flow's transfer, or the agent left while it rang) the
    /// customer is taken off hold and talks to it. False when the party is
    /// gone (the gateway then hangs up).
    pub fn third_party_answered(
        &mut self,
        call_id: &str,
        connection_id: &str,
        now: Millis,
    ) -> bool {
        let Some(e) = self.external_mut(call_id, connection_id) else {
            return false;
        };
        let Ok(s) = e.state.connect(now) else {
            return false;
        };
        e.state = s;
        if let Some(call) = self.calls.get_mut(call_id) {
            if call.live_agents().next().is_none() {
                if let Ok(s) = call.customer.state.resume(now) {
                    call.customer.state = s;
                }
            }
        }
        let _ = self.store.contact_event(
            call_id,
            now,
            None,
            "third_party_answered",
            Some(connection_id),
        );
        self.publish(call_id, now);
        true
    }

    /// The third party could not be reached: its connection is
    /// disconnected with the failure as its reason (what the agent sees),
    /// and the call goes on as it was: a customer the transfer put on hold
    /// is resumed when nobody else is being reached; a flow takes the
    /// block's error branch; with no agent and no flow left, the call ends.
    pub fn third_party_failed(
        &mut self,
        call_id: &str,
        connection_id: &str,
        failure: TrunkFailure,
        detail: &str,
        now: Millis,
    ) {
        let reason = failure.as_str();
        let detail = format!("{connection_id}: {reason} ({detail})");
        if !self.end_trunk_party(
            call_id,
            connection_id,
            reason,
            "third_party_failed",
            &detail,
            now,
        ) {
            return;
        }
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let agents = call.live_agents().count();
        let flow = agents == 0 && call.flow.is_some();
        if agents == 1 && alone_with_customer(call) {
            if let Ok(s) = call.customer.state.resume(now) {
                call.customer.state = s;
            }
        }
        if flow {
            self.publish(call_id, now);
            self.drive_flow(call_id, Some(Input::DialFailed(reason.to_owned())), now);
        } else if agents == 0 && !has_trunk_party(call, &self.trunk_parties) {
            self.end_call(call_id, reason, now);
        } else {
            self.publish(call_id, now);
        }
    }

    /// Ends a trunk party's connection for `reason` and records `event`;
    /// false when there was no such live connection (nothing changed).
    fn end_trunk_party(
        &mut self,
        call_id: &str,
        connection_id: &str,
        reason: &str,
        event: &str,
        detail: &str,
        now: Millis,
    ) -> bool {
        self.trunk_parties.remove(connection_id);
        let Some(e) = self.external_mut(call_id, connection_id) else {
            return false;
        };
        let Ok(s) = e.state.disconnect(reason, now) else {
            return false;
        };
        e.state = s;
        let _ = self
            .store
            .contact_event(call_id, now, None, event, Some(detail));
        true
    }

    /// The third party hung up (or its media died): its connection ends;
    /// with no agent left on the call, the whole call ends.
    pub fn third_party_hangup(
        &mut self,
        call_id: &str,
        connection_id: &str,
        reason: &str,
        now: Millis,
    ) {
        let detail = format!("{connection_id}: {reason}");
        if !self.end_trunk_party(
            call_id,
            connection_id,
            reason,
            "third_party_hangup",
            &detail,
            now,
        ) {
            return;
        }
        let alone = self
            .calls
            .get(call_id)
            .is_some_and(|c| c.live_agents().next().is_none());
        if alone {
            self.end_call(call_id, reason, now);
        } else {
            self.publish(call_id, now);
        }
    }

    /// Whether the gateway should keep the third party's leg up: false once
    /// the agent disconnected it or the call ended (then BYE or CANCEL).
    pub fn third_party_live(&self, call_id: &str, connection_id: &str) -> bool {
        self.calls
            .get(call_id)
            .filter(|c| !c.ended)
            .and_then(|c| {
                c.externals
                    .iter()
                    .find(|e| e.connection_id == connection_id)
            })
            .is_some_and(|e| !e.state.is_disconnected())
    }

    /// The calls that are not over, with their third parties dialed
    /// through the trunk (connection ids): for operators and tests.
    pub fn trunk_party_calls(&self) -> Vec<(String, Vec<String>)> {
        self.calls
            .values()
            .filter(|c| !c.ended)
            .map(|c| {
                let parties = c
                    .externals
                    .iter()
                    .filter(|e| self.trunk_parties.contains_key(&e.connection_id))
                    .map(|e| e.connection_id.clone())
                    .collect();
                (c.id.clone(), parties)
            })
            .collect()
    }

    /// The gateway's leg for the party is over.
    pub fn third_party_gone(&mut self, connection_id: &str) {
        self.trunk_parties.remove(connection_id);
    }

    /// Whether the last agent leaving `call_id` hands the call over: the
    /// customer is still there and a third party dialed through the trunk
    /// is connected or still being reached.
    pub(super) fn hands_over(&self, call_id: &str) -> bool {
        self.calls.get(call_id).is_some_and(|c| {
            !c.customer.state.is_disconnected() && has_trunk_party(c, &self.trunk_parties)
        })
    }

    /// Whether the customer talks to a trunk third party with no agent
    /// (what the caller's own leg reports as connected).
    pub(super) fn bridged_to_third_party(&self, call: &Call) -> bool {
        call.externals.iter().any(|e| {
            self.trunk_parties.contains_key(&e.connection_id)
                && matches!(e.state, ConnectionState::Connected { .. })
        })
    }

    /// The media parties of the call's trunk third parties (talking or
    /// held), and the customer when no agent is on the call to plan it.
    pub(super) fn plan_trunk_parties(
        &self,
        call: &Call,
        live_agents: usize,
        parties: &mut Vec<crate::bridge::PlannedParty>,
    ) {
        use crate::bridge::{Audio, PartyKind, PlannedParty};
        if call.ended {
            return;
        }
        let mut any = false;
        for e in &call.externals {
            let Some(&leg) = self.trunk_parties.get(&e.connection_id) else {
                continue;
            };
            let audio = match e.state {
                ConnectionState::Connected { .. } => Audio::Talking,
                ConnectionState::Hold { .. } => Audio::Held,
                _ => continue,
            };
            any = true;
            parties.push(PlannedParty {
                id: e.connection_id.clone(),
                kind: PartyKind::Agent {
                    agent: super::third_party_key(&e.connection_id),
                    leg,
                },
                audio,
            });
        }
        let customer_planned = parties.iter().any(|p| p.id == call.customer.connection_id);
        if any && live_agents == 0 && !customer_planned {
            let audio = match call.customer.state {
                ConnectionState::Connected { .. } => Audio::Talking,
                ConnectionState::Hold { .. } => Audio::Held,
                _ => return,
            };
            parties.push(PlannedParty {
                id: call.customer.connection_id.clone(),
                kind: PartyKind::Caller {
                    play: call.caller_play.clone(),
                    heard: Some(self.heard_path(&call.id)),
                },
                audio,
            });
        }
        // A flow's prompt is over once the caller is bridged.
        if any && live_agents == 0 {
            parties.retain(|p| !p.id.starts_with("flow-prompt-"));
        }
    }
}

/// A trunk third party is connected or being reached on `call`.
fn has_trunk_party(call: &Call, parties: &std::collections::HashMap<String, u32>) -> bool {
    call.externals
        .iter()
        .any(|e| parties.contains_key(&e.connection_id) && !e.state.is_disconnected())
}

/// Nobody but the customer is left with the agent: no external on the
/// line, no agent being offered the call, no queued transfer.
fn alone_with_customer(call: &Call) -> bool {
    call.externals.iter().all(|e| e.state.is_disconnected()) && !call.has_pending_offer()
}
