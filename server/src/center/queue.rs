//! The queue domain: calls entering queues (or refused at the door),
//! contacts waiting, routing them to idle agents, ring-outs, simulated
//! answers and queue timeouts on the center's tick.
//!
//! Routing reads an index of idle routable agents per routing profile,
//! kept in idle order as agents change ([`Center::reindex`]), instead of
//! scanning every agent on every routing pass: with 10,000 agents the scan
//! and its sort were most of the time the center's lock was held. Only
//! the agents that can matter go to [`routing::assign`] (see
//! [`Center::route`]), so its choice is exactly the one it would make
//! over every agent.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use protocol::contact::{ConnectionState, ContactState, Initiation};
use protocol::endpoint::is_e164;
use protocol::error::{ErrorBody, ErrorCode};
use protocol::Millis;

use super::{store_failed, Call, Center, Participant, Party, Wait};
use crate::config::Profile;
use crate::routing::{self, Candidate, Waiting};
use crate::store::StoreError;

/// A rejecting agent is not offered the same contact again for this long.
const REOFFER_AFTER_MS: u64 = 10_000;

/// Why an inbound call was refused at the door.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The caller's number is not E.164.
    #[error("`{from}` is not an E.164 number")]
    BadNumber {
        /// The number given.
        from: String,
    },
    /// No such queue.
    #[error("no queue `{queue}`")]
    NoQueue {
        /// The queue asked for.
        queue: String,
    },
    /// The backend is stopping.
    #[error("the contact center is shutting down; please call again shortly")]
    ShuttingDown,
    /// Outside the queue's hours.
    #[error("{queue_name} is closed now; please call again during opening hours")]
    Closed {
        /// The queue's display name.
        queue_name: String,
    },
    /// No entry point has this number.
    #[error("`{number}` is not an entry point")]
    NoEntryPoint {
        /// The number dialed.
        number: String,
    },
    /// The queue holds its maximum of waiting contacts.
    #[error("all {queue_name} agents are busy and the queue is full; please call again later")]
    Full {
        /// The queue's display name.
        queue_name: String,
    },
    /// The contact record could not be created.
    #[error("creating the contact: {0}")]
    Store(#[from] StoreError),
}

impl QueueError {
    /// The wire error (what the caller is told).
    pub fn body(&self) -> ErrorBody {
        let code = match self {
            QueueError::BadNumber { .. } => ErrorCode::InvalidArgument,
            QueueError::NoQueue { .. } | QueueError::NoEntryPoint { .. } => ErrorCode::NotFound,
            QueueError::ShuttingDown => ErrorCode::Internal,
            QueueError::Closed { .. } => ErrorCode::QueueClosed,
            QueueError::Full { .. } => ErrorCode::QueueFull,
            QueueError::Store(e) => return store_failed(e),
        };
        ErrorBody::new(code, self.to_string())
    }

    /// The reason recorded as the contact's end.
    fn end_reason(&self) -> &'static str {
        match self {
            QueueError::Closed { .. } => "queue_closed",
            _ => "queue_full",
        }
    }
}

/// A refused inbound call: the record exists (when `contact_id` is not
/// empty), the caller was told why.
#[derive(Debug)]
pub struct InboundRefused {
    /// The contact record of the refused call (empty when none was made).
    pub contact_id: String,
    /// Why.
    pub error: QueueError,
}

/// An inbound caller's number must be E.164, whatever it dialed.
pub(super) fn check_caller(from: &str) -> Result<(), InboundRefused> {
    if is_e164(from) {
        Ok(())
    } else {
        Err(InboundRefused::unrecorded(QueueError::BadNumber {
            from: from.into(),
        }))
    }
}

impl InboundRefused {
    /// Refused before a contact record was made.
    pub fn unrecorded(error: QueueError) -> InboundRefused {
        InboundRefused {
            contact_id: String::new(),
            error,
        }
    }

    /// The wire error.
    pub fn body(&self) -> ErrorBody {
        self.error.body()
    }
}

/// Idle routable agents by routing profile, ordered as routing serves
/// them: longest idle first, then by name.
#[derive(Debug, Default)]
pub(super) struct RoutingIndex {
    by_profile: HashMap<String, BTreeSet<(Millis, String)>>,
    /// Where each indexed agent sits: (profile, idle since).
    placed: HashMap<String, (String, Millis)>,
}

impl RoutingIndex {
    /// Puts `agent` in its profile's order at `idle_since`, or takes it
    /// out (`None`).
    fn set(&mut self, agent: &str, at: Option<(&str, Millis)>) {
        if let Some((profile, since)) = self.placed.get(agent) {
            if at == Some((profile.as_str(), *since)) {
                return;
            }
            if let Some(set) = self.by_profile.get_mut(profile) {
                set.remove(&(*since, agent.to_owned()));
            }
            self.placed.remove(agent);
        }
        if let Some((profile, since)) = at {
            self.by_profile
                .entry(profile.to_owned())
                .or_default()
                .insert((since, agent.to_owned()));
            self.placed
                .insert(agent.to_owned(), (profile.to_owned(), since));
        }
    }

    /// The idle agents worth handing to [`routing::assign`] for `waiting`
    /// contacts when the agents in `excluded` are excluded from some of
    /// them: per profile the first `waiting` agents in idle order that are
    /// not in `excluded`, and every indexed agent in `excluded` (see
    /// [`Center::route`] for why the pairing is then the full one).
    pub(super) fn candidates<'a>(
        &'a self,
        profiles: &'a HashMap<String, Profile>,
        waiting: usize,
        excluded: &HashSet<&'a str>,
    ) -> Vec<Candidate<'a>> {
        let mut out = Vec::new();
        for (profile, order) in &self.by_profile {
            let Some(p) = profiles.get(profile) else {
                continue;
            };
            out.extend(
                order
                    .iter()
                    .filter(|(_, agent)| !excluded.contains(agent.as_str()))
                    .take(waiting)
                    .map(|(idle_since, agent)| Candidate {
                        agent,
                        idle_since: *idle_since,
                        queues: &p.queues,
                    }),
            );
        }
        for agent in excluded {
            let Some((name, (profile, idle_since))) = self.placed.get_key_value(*agent) else {
                continue;
            };
            if let Some(p) = profiles.get(profile) {
                out.push(Candidate {
                    agent: name,
                    idle_since: *idle_since,
                    queues: &p.queues,
                });
            }
        }
        out
    }

    /// Idle routable agents whose profile serves `queue`.
    pub(super) fn available_for(&self, profiles: &HashMap<String, Profile>, queue: &str) -> usize {
        self.by_profile
            .iter()
            .filter(|(p, _)| {
                profiles
                    .get(*p)
                    .is_some_and(|p| p.queues.iter().any(|q| q.queue == queue))
            })
            .map(|(_, set)| set.len())
            .sum()
    }

    /// Number of agents indexed.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.placed.len()
    }
}

impl Center {
    /// Updates the routing index for `agent` after any change to its
    /// status, contacts, socket or idle time.
    pub(super) fn reindex(&mut self, agent: &str) {
        let at = self.agents.get(agent).and_then(|e| {
            let profile = self.cfg.agents.get(agent)?.routing_profile.as_str();
            e.routable_idle().then_some((profile, e.idle_since))
        });
        self.idle.set(agent, at);
    }

    /// Checks the routing index against a scan of every agent (tests).
    #[cfg(test)]
    pub(super) fn check_index(&self) {
        let scan: HashSet<&str> = self
            .agents
            .iter()
            .filter(|(name, e)| e.routable_idle() && self.cfg.agents.contains_key(*name))
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(scan.len(), self.idle.len(), "index size");
        for (name, (_, since)) in &self.idle.placed {
            assert!(scan.contains(name.as_str()), "{name} indexed but not idle");
            assert_eq!(self.agents[name].idle_since, *since, "{name} idle since");
        }
    }

    // ---- callers --------------------------------------------------------

    /// A caller from `from` dials `queue`. The call is recorded either way;
    /// a closed or full queue refuses it with a reason the caller hears.
    pub fn place_inbound(
        &mut self,
        from: &str,
        queue: &str,
        now: Millis,
    ) -> Result<String, InboundRefused> {
        let prompt =
            crate::bridge::CallerAudio::Prompt(self.cfg.public_dir.join(&self.cfg.caller_prompt));
        self.place_inbound_playing(from, queue, prompt, now)
    }

    /// The common part of placing any inbound call, once what it dialed
    /// was found: refused while the center stops, else a new contact
    /// record holding what is known of the caller (`[[customers]]`).
    /// Returns the contact's id and those attributes.
    pub(super) fn open_inbound(
        &mut self,
        from: &str,
        queue: Option<&str>,
        now: Millis,
    ) -> Result<(String, BTreeMap<String, String>), InboundRefused> {
        if self.stopping {
            return Err(InboundRefused::unrecorded(QueueError::ShuttingDown));
        }
        let id = self.new_id("c");
        let attributes = self.cfg.customers.get(from).cloned().unwrap_or_default();
        self.open_contact_record(&id, "inbound", queue, from, &attributes, now)
            .map_err(|e| InboundRefused::unrecorded(e.into()))?;
        Ok((id, attributes))
    }

    /// A new inbound call from `from`, before it waits in a queue or runs
    /// a flow: the customer calling in, on a connection id made now.
    pub(super) fn inbound_call(
        &mut self,
        id: &str,
        from: &str,
        attributes: BTreeMap<String, String>,
        caller_play: crate::bridge::CallerAudio,
        now: Millis,
    ) -> Call {
        let customer_conn = self.new_id("k");
        Call::new(
            id,
            Initiation::Inbound,
            Party::calling_in(customer_conn, from, now),
            attributes,
            caller_play,
            now,
        )
    }

    /// Like [`Center::place_inbound`], with the caller saying `caller_play`.
    pub fn place_inbound_playing(
        &mut self,
        from: &str,
        queue: &str,
        caller_play: crate::bridge::CallerAudio,
        now: Millis,
    ) -> Result<String, InboundRefused> {
        check_caller(from)?;
        let Some(q) = self.cfg.queues.get(queue).cloned() else {
            return Err(InboundRefused::unrecorded(QueueError::NoQueue {
                queue: queue.into(),
            }));
        };
        let (id, attributes) = self.open_inbound(from, Some(queue), now)?;
        if let Some(error) = self.queue_refusal(queue, &q, now) {
            let message = error.to_string();
            let _ = self
                .store
                .contact_event(&id, now, None, "refused", Some(&message));
            let _ = self.store.end_contact(&id, error.end_reason(), now);
            return Err(InboundRefused {
                contact_id: id,
                error,
            });
        }
        let _ = self
            .store
            .contact_event(&id, now, None, "queued", Some(queue));
        let call = self.inbound_call(&id, from, attributes, caller_play, now);
        let reserved_conn = self.new_id("k");
        self.calls.insert(
            id.clone(),
            Call {
                queue: Some(queue.to_owned()),
                waiting: Some(Wait {
                    queue: queue.to_owned(),
                    since: now,
                    connection_id: reserved_conn,
                }),
                ..call
            },
        );
        self.route(now);
        Ok(id)
    }

    // ---- routing --------------------------------------------------------

    /// Offers waiting contacts to idle agents, as [`routing::assign`]
    /// decides over every idle routable agent.
    ///
    /// Only some agents are handed to it, chosen so the result is the
    /// same: per profile, the first `w` agents in idle order (`w` waiting
    /// contacts), plus every agent some waiting contact excludes. Agents of
    /// one profile that no contact excludes are interchangeable except for
    /// their order, so once one of them finds nothing to take, none after it
    /// will; and at most `w` of them take something. The ones left out
    /// would never be paired.
    pub(super) fn route(&mut self, now: Millis) {
        if !self.calls.values().any(|c| c.waiting.is_some()) {
            return;
        }
        let mut excluded: HashMap<&str, Vec<String>> = HashMap::new();
        for call in self.calls.values().filter(|c| c.waiting.is_some()) {
            let list = call
                .rejected
                .iter()
                .filter(|(_, at)| now.since(*at) < REOFFER_AFTER_MS)
                .map(|(a, _)| a.clone())
                .chain(call.participants.iter().map(|p| p.agent.clone()))
                .collect();
            excluded.insert(call.id.as_str(), list);
        }
        let waiting: Vec<Waiting> = self
            .calls
            .values()
            .filter_map(|c| {
                let w = c.waiting.as_ref()?;
                Some(Waiting {
                    contact: &c.id,
                    queue: &w.queue,
                    since: w.since,
                    excluded: excluded.get(c.id.as_str()).map_or(&[], |v| v.as_slice()),
                    priority: c
                        .flow_ctx
                        .as_ref()
                        .and_then(|f| f.priority)
                        .unwrap_or(routing::DEFAULT_PRIORITY),
                })
            })
            .collect();
        let any_excluded: HashSet<&str> = excluded.values().flatten().map(String::as_str).collect();
        let candidates =
            self.idle
                .candidates(&self.cfg.routing_profiles, waiting.len(), &any_excluded);
        let pairs: Vec<(String, String)> = routing::assign(&waiting, &candidates, now)
            .into_iter()
            .map(|(c, a)| (c.to_owned(), a.to_owned()))
            .collect();
        for (call_id, agent) in pairs {
            self.offer(&call_id, &agent, now);
        }
    }

    /// Rings `agent` with a waiting call.
    fn offer(&mut self, call_id: &str, agent: &str, now: Millis) {
        let ring_ms = self.cfg.ring_timeout_ms;
        let leg = self.new_leg();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(wait) = call.waiting.take() else {
            return;
        };
        let Ok(state) = ContactState::Init.offer(now, ring_ms) else {
            return;
        };
        let transfer = call
            .participants
            .iter()
            .any(|p| p.state.is_live() || matches!(p.state, ContactState::Ended { .. }));
        call.participants.push(Participant {
            agent: agent.to_owned(),
            connection_id: wait.connection_id.clone(),
            state,
            conn: ConnectionState::Connecting { since: now },
            initiation: if transfer {
                Initiation::Transfer
            } else {
                call.initiation
            },
            offered_from: Some(wait),
            media_leg: leg,
        });
        self.add_contact(agent, call_id);
        let _ = self
            .store
            .contact_event(call_id, now, Some(agent), "offered", None);
        self.publish(call_id, now);
    }

    // ---- the tick -------------------------------------------------------

    /// Contacts that waited in a queue longer than its `max_wait_s` leave
    /// it with the reason `queue_timeout`: a caller nobody answers is
    /// disconnected; a transfer into the queue while an agent still holds
    /// the customer is withdrawn and the agent keeps the call. Waiting is
    /// counted from when the contact entered the queue; one ringing an
    /// agent is not waiting and is not cut off.
    pub(super) fn queue_timeouts(&mut self, now: Millis) {
        let expired: Vec<(String, bool)> = self
            .calls
            .values()
            .filter(|c| {
                c.waiting.as_ref().is_some_and(|w| {
                    self.cfg
                        .queues
                        .get(&w.queue)
                        .is_some_and(|q| now.since(w.since) >= q.max_wait_ms)
                })
            })
            .map(|c| (c.id.clone(), c.live_agents().next().is_some()))
            .collect();
        for (call_id, agent_holds_it) in expired {
            let queue = self
                .calls
                .get_mut(&call_id)
                .and_then(|c| c.waiting.take())
                .map(|w| w.queue)
                .unwrap_or_default();
            let _ = self
                .store
                .contact_event(&call_id, now, None, "queue_timeout", Some(&queue));
            if agent_holds_it {
                self.publish(&call_id, now);
            } else {
                self.end_call(&call_id, "queue_timeout", now);
            }
        }
    }

    /// Offers nobody answered in time: the agent missed it, the contact
    /// goes back to its queue with its original wait time.
    pub(super) fn ring_outs(&mut self, now: Millis) {
        let mut missed = Vec::new();
        for call in self.calls.values() {
            for p in &call.participants {
                if p.state.ring_out(now).is_some() {
                    missed.push((call.id.clone(), p.agent.clone()));
                }
            }
        }
        for (call_id, agent) in missed {
            let Some(call) = self.calls.get_mut(&call_id) else {
                continue;
            };
            let Some(p) = call.participant_mut(&agent) else {
                continue;
            };
            let Some(next) = p.state.ring_out(now) else {
                continue;
            };
            p.state = next;
            if let Some(wait) = p.offered_from.take() {
                call.waiting = Some(wait);
            }
            let _ = self
                .store
                .contact_event(&call_id, now, Some(&agent), "missed", None);
            self.missed(&agent, now);
            self.publish(&call_id, now);
        }
    }

    /// Simulated far ends (outbound customers, external numbers) answer.
    pub(super) fn answers(&mut self, now: Millis) {
        let due: Vec<String> = self
            .calls
            .values()
            .filter(|c| {
                c.customer.answer_at.is_some_and(|t| t <= now)
                    || c.externals
                        .iter()
                        .any(|e| e.answer_at.is_some_and(|t| t <= now))
            })
            .map(|c| c.id.clone())
            .collect();
        for call_id in due {
            let Some(call) = self.calls.get_mut(&call_id) else {
                continue;
            };
            if call.customer.answer_at.is_some_and(|t| t <= now) {
                call.customer.answer_at = None;
                if let Ok(s) = call.customer.state.connect(now) {
                    call.customer.state = s;
                    for p in call.participants.iter_mut() {
                        if let Ok(s) = p.state.answered(now) {
                            p.state = s;
                        }
                    }
                    let _ =
                        self.store
                            .contact_event(&call_id, now, None, "customer_answered", None);
                }
            }
            for e in call.externals.iter_mut() {
                if e.answer_at.is_some_and(|t| t <= now) {
                    e.answer_at = None;
                    if let Ok(s) = e.state.connect(now) {
                        e.state = s;
                    }
                }
            }
            self.publish(&call_id, now);
        }
    }
}

impl Center {
    /// Why `queue` takes no new caller now, if it does not: closed by its
    /// hours, or holding its most waiting contacts. Asked both when a call
    /// dials a queue and when a contact flow transfers one to it.
    pub(super) fn queue_refusal(
        &self,
        queue: &str,
        q: &crate::config::Queue,
        now: Millis,
    ) -> Option<QueueError> {
        let waiting_now = self
            .calls
            .values()
            .filter(|c| c.waiting.as_ref().is_some_and(|w| w.queue == queue))
            .count();
        if q.hours.as_ref().is_some_and(|h| !h.is_open(now)) {
            Some(QueueError::Closed {
                queue_name: q.name.clone(),
            })
        } else if waiting_now >= q.max_contacts {
            Some(QueueError::Full {
                queue_name: q.name.clone(),
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::center::{Rng, SeededRng};
    use crate::config::ProfileQueue;

    fn pick(rng: &mut SeededRng, n: u64) -> u64 {
        let mut b = [0u8; 8];
        rng.fill(&mut b);
        u64::from_be_bytes(b) % n
    }

    /// The reduced candidate set pairs exactly as every idle agent does,
    /// over random profiles, idle times, queues, delays and exclusions.
    #[test]
    fn the_reduced_candidates_pair_exactly_like_all_idle_agents() {
        let mut rng = SeededRng::new(12);
        let queues = ["q0", "q1", "q2"];
        for round in 0..400 {
            let mut profiles = HashMap::new();
            for p in 0..3 {
                let mut served = Vec::new();
                for q in queues {
                    if pick(&mut rng, 3) > 0 {
                        served.push(ProfileQueue {
                            queue: q.to_string(),
                            priority: pick(&mut rng, 3) as u32,
                            delay_s: if pick(&mut rng, 4) == 0 { 5 } else { 0 },
                        });
                    }
                }
                profiles.insert(
                    format!("p{p}"),
                    Profile {
                        id: format!("p{p}"),
                        name: format!("P{p}"),
                        queues: served,
                    },
                );
            }
            let mut index = RoutingIndex::default();
            let agents: Vec<String> = (0..1 + pick(&mut rng, 30))
                .map(|i| format!("a{i}"))
                .collect();
            for a in &agents {
                let profile = format!("p{}", pick(&mut rng, 3));
                // Few distinct idle times, so ties are broken by name.
                index.set(a, Some((&profile, Millis(pick(&mut rng, 8)))));
            }
            let contacts: Vec<String> = (0..pick(&mut rng, 6)).map(|i| format!("c{i}")).collect();
            let exclusions: Vec<Vec<String>> = contacts
                .iter()
                .map(|_| {
                    agents
                        .iter()
                        .filter(|_| pick(&mut rng, 10) == 0)
                        .cloned()
                        .collect()
                })
                .collect();
            let waiting: Vec<Waiting> = contacts
                .iter()
                .zip(&exclusions)
                .map(|(c, ex)| Waiting {
                    contact: c,
                    queue: queues[pick(&mut rng, 3) as usize],
                    since: Millis(pick(&mut rng, 10_000)),
                    excluded: ex,
                    priority: pick(&mut rng, 3) as i64,
                })
                .collect();
            let now = Millis(8_000);
            let all: Vec<Candidate> = index
                .placed
                .iter()
                .filter_map(|(a, (p, since))| {
                    Some(Candidate {
                        agent: a,
                        idle_since: *since,
                        queues: &profiles.get(p)?.queues,
                    })
                })
                .collect();
            let any_excluded: HashSet<&str> =
                exclusions.iter().flatten().map(String::as_str).collect();
            let reduced = index.candidates(&profiles, waiting.len(), &any_excluded);
            assert!(reduced.len() <= all.len());
            assert_eq!(
                routing::assign(&waiting, &reduced, now),
                routing::assign(&waiting, &all, now),
                "round {round}"
            );
        }
    }

    #[test]
    fn the_index_moves_and_removes_agents() {
        let mut index = RoutingIndex::default();
        index.set("a", Some(("p", Millis(5))));
        index.set("b", Some(("p", Millis(3))));
        index.set("a", Some(("p", Millis(1))));
        let order: Vec<&str> = index.by_profile["p"]
            .iter()
            .map(|(_, a)| a.as_str())
            .collect();
        assert_eq!(order, ["a", "b"]);
        index.set("a", None);
        index.set("b", Some(("q", Millis(3))));
        assert!(index.by_profile["p"].is_empty());
        assert_eq!(index.len(), 1);
    }
}
