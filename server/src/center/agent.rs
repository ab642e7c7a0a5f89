//! The agent domain: who is logged in where (the link to its socket, the
//! numbered events and the backlog a reconnect resumes from), its status
//! and what its contacts make of it, mute, and the configuration and
//! snapshot it sees. Every change to an agent that routing depends on
//! ends in [`Center::reindex`], so the routing index stays exact.

use std::collections::VecDeque;

use protocol::agent::{AgentState, AgentStatus, Workload};
use protocol::contact::{ContactState, QueueRef};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{
    AgentConfiguration, Event, EventFrame, OpResult, ResumeFrom, RoutingProfile,
    RoutingProfileQueue, ServerFrame, Snapshot, Welcome,
};
use protocol::Millis;

use super::{short, store_failed, Center, Rng, HEARTBEAT_MS};
use crate::config::Config;
use crate::limits::Outbox;
use crate::store::{StoreError, StoredStatus};

/// Why an agent op was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The session names an agent the configuration does not have.
    #[error("unknown agent")]
    Unknown,
    /// `refresh_token` reached the center; the socket answers it.
    #[error("refresh_token is answered by the socket layer")]
    RefreshOnSocket,
    /// No snapshot could be made for the agent.
    #[error("no such agent")]
    NoSnapshot,
    /// The agent has no configuration (its profile is missing).
    #[error("no configuration")]
    NoConfiguration,
    /// The agent's routing profile is missing.
    #[error("no routing profile")]
    NoRoutingProfile,
    /// No agent state by that name.
    #[error("no agent state `{name}`")]
    NoSuchState {
        /// The name asked for (at most 64 characters).
        name: String,
    },
    /// The status machine refused the change.
    #[error("{reason}")]
    StateRefused {
        /// Why, from the status machine.
        reason: String,
    },
    /// The chosen status could not be saved.
    #[error("saving the status: {0}")]
    Store(#[from] StoreError),
}

impl AgentError {
    /// The wire error.
    pub fn body(&self) -> ErrorBody {
        let code = match self {
            AgentError::Unknown => ErrorCode::AuthFailed,
            AgentError::RefreshOnSocket | AgentError::StateRefused { .. } => {
                ErrorCode::InvalidState
            }
            AgentError::NoSnapshot
            | AgentError::NoConfiguration
            | AgentError::NoRoutingProfile
            | AgentError::NoSuchState { .. } => ErrorCode::NotFound,
            AgentError::Store(e) => return store_failed(e),
        };
        ErrorBody::new(code, self.to_string())
    }
}

/// What an agent's contacts make of its status, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentPhase {
    /// On a connected contact.
    Connected,
    /// Dialing out.
    Dialing,
    /// A contact ended and awaits clearing (after-call work).
    AfterCallWork,
    /// Only ringing contacts.
    Ringing,
}

/// Where an agent's events go.
pub(super) struct Link {
    pub(super) session: String,
    pub(super) seq: u64,
    /// Recent events with their encoded sizes, bounded by
    /// `limits.backlog_events` and `limits.backlog_bytes`.
    pub(super) backlog: VecDeque<(EventFrame, usize)>,
    pub(super) backlog_bytes: usize,
    /// The attached socket's outgoing queue, with the attachment's id.
    pub(super) tx: Option<(u64, Outbox)>,
}

pub(super) struct AgentEntry {
    pub(super) status: AgentStatus,
    /// When the agent last became free for a contact (longest idle goes first).
    pub(super) idle_since: Millis,
    pub(super) muted: bool,
    pub(super) link: Link,
    /// Calls the agent is on, oldest first.
    pub(super) contacts: Vec<String>,
}

impl AgentEntry {
    /// An agent at start-up, in the state it chose last if that state
    /// still exists.
    pub(super) fn restore(
        cfg: &Config,
        saved: Option<&StoredStatus>,
        now: Millis,
        rng: &mut dyn Rng,
    ) -> AgentEntry {
        let status = match saved {
            Some(s) if cfg.agent_state(&s.chosen.name) == Some(&s.chosen) => {
                AgentStatus::new(s.chosen.clone(), s.since)
            }
            _ => AgentStatus::new(AgentState::offline(), now),
        };
        AgentEntry {
            status,
            idle_since: now,
            muted: false,
            link: Link {
                session: super::rng::id_from(rng, "s"),
                seq: 0,
                backlog: VecDeque::new(),
                backlog_bytes: 0,
                tx: None,
            },
            contacts: Vec::new(),
        }
    }

    /// Whether routing may offer this agent a contact now.
    pub(super) fn routable_idle(&self) -> bool {
        self.status.is_routable() && self.contacts.is_empty() && self.link.tx.is_some()
    }

    /// What a quick connect to this agent shows: available when routing
    /// could offer it a contact now, offline without a socket or in an
    /// offline state, busy otherwise.
    pub(super) fn availability(&self) -> protocol::wire::Availability {
        use protocol::wire::Availability;
        if self.routable_idle() {
            Availability::Available
        } else if self.link.tx.is_none()
            || self.status.current().kind == protocol::agent::AgentStateKind::Offline
        {
            Availability::Offline
        } else {
            Availability::Busy
        }
    }
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
        country_code: cfg.country_code,
    })
}

impl Center {
    // ---- sessions -------------------------------------------------------

    /// Attaches a socket's outgoing queue for `agent`. Returns the
    /// attachment id and the frames to send first: `welcome`, then either
    /// the missed events (resume) or a fresh snapshot. A newer attachment
    /// replaces an older one, which then gets no more events.
    pub fn attach(
        &mut self,
        agent: &str,
        resume: Option<&ResumeFrom>,
        tx: Outbox,
    ) -> Option<(u64, Vec<ServerFrame>)> {
        let id = self.next_attach;
        self.next_attach += 1;
        let snapshot = self.snapshot(agent)?;
        let entry = self.agents.get_mut(agent)?;
        let link = &mut entry.link;
        let replay: Option<Vec<ServerFrame>> = resume.and_then(|r| {
            if r.session != link.session || r.last_seq > link.seq {
                return None;
            }
            let oldest = link.backlog.front().map_or(link.seq + 1, |(f, _)| f.seq);
            (r.last_seq + 1 >= oldest).then(|| {
                link.backlog
                    .iter()
                    .filter(|(f, _)| f.seq > r.last_seq)
                    .map(|(f, _)| ServerFrame::Event(f.clone()))
                    .collect()
            })
        });
        let mut frames = vec![ServerFrame::Welcome(Welcome {
            version: 1,
            session: link.session.clone(),
            agent: agent.to_owned(),
            resumed: replay.is_some(),
            heartbeat_ms: HEARTBEAT_MS,
            packet_ms: None,
            codecs: Vec::new(),
        })];
        match replay {
            Some(events) => frames.extend(events),
            None => frames.push(ServerFrame::Snapshot(snapshot)),
        }
        // The older socket gets no more events: it is told why, so that
        // window stops looking alive (its ops would take effect unseen) and
        // its client stops. The socket itself stays within the per-agent
        // cap; its login stays valid, and reconnecting takes the session back.
        if let Some((_, old)) = link.tx.replace((id, tx)) {
            let why = ErrorBody::new(
                ErrorCode::SessionReplaced,
                "this session was opened in another window",
            );
            old.push(protocol::wire::encode(&ServerFrame::Error(
                protocol::wire::FrameError {
                    id: None,
                    error: why,
                    supported_versions: None,
                },
            )));
        }
        self.reindex(agent);
        Some((id, frames))
    }

    /// Detaches an attachment, unless a newer one already replaced it.
    pub fn detach(&mut self, agent: &str, attach_id: u64) {
        if let Some(entry) = self.agents.get_mut(agent) {
            if entry
                .link
                .tx
                .as_ref()
                .is_some_and(|(id, _)| *id == attach_id)
            {
                entry.link.tx = None;
            }
        }
        self.reindex(agent);
    }

    /// The agent's event backlog: (events, encoded bytes).
    pub fn backlog_size(&self, agent: &str) -> (usize, usize) {
        self.agents
            .get(agent)
            .map_or((0, 0), |e| (e.link.backlog.len(), e.link.backlog_bytes))
    }

    /// Whether `agent` has a socket attached.
    pub fn is_attached(&self, agent: &str) -> bool {
        self.agents.get(agent).is_some_and(|e| e.link.tx.is_some())
    }

    /// The full state for `agent`.
    pub fn snapshot(&self, agent: &str) -> Option<Snapshot> {
        let entry = self.agents.get(agent)?;
        Some(Snapshot {
            seq: entry.link.seq,
            status: entry.status.view(),
            muted: entry.muted,
            configuration: configuration(&self.cfg, agent)?,
            states: self.cfg.agent_states.clone(),
            contacts: entry
                .contacts
                .iter()
                .filter_map(|id| self.calls.get(id)?.view(agent, &self.cfg))
                .collect(),
        })
    }

    /// Numbers `event` for `agent`, keeps it in the backlog and queues it
    /// on the attached socket.
    pub(super) fn emit(&mut self, agent: &str, event: Event) {
        let Some(entry) = self.agents.get_mut(agent) else {
            return;
        };
        let link = &mut entry.link;
        link.seq += 1;
        let frame = ServerFrame::Event(EventFrame {
            seq: link.seq,
            event,
        });
        // Encoded once: its size bounds the backlog, its text goes out.
        let text = protocol::wire::encode(&frame);
        let ServerFrame::Event(frame) = frame else {
            return;
        };
        let size = text.len();
        let limits = &self.cfg.limits;
        while !link.backlog.is_empty()
            && (link.backlog.len() >= limits.backlog_events
                || link.backlog_bytes + size > limits.backlog_bytes)
        {
            if let Some((_, n)) = link.backlog.pop_front() {
                link.backlog_bytes -= n;
            }
        }
        link.backlog.push_back((frame, size));
        link.backlog_bytes += size;
        // A full queue means the client is not reading: the socket is told
        // to close and the agent detached; it resumes from the backlog.
        let mut dropped = false;
        if let Some((_, tx)) = &link.tx {
            if !tx.push(text) {
                link.tx = None;
                dropped = true;
            }
        }
        if dropped {
            self.reindex(agent);
        }
    }

    // ---- status ---------------------------------------------------------

    pub(super) fn set_state(
        &mut self,
        agent: &str,
        name: &str,
        now: Millis,
    ) -> Result<OpResult, AgentError> {
        let target: AgentState = self
            .cfg
            .agent_state(name)
            .cloned()
            .ok_or_else(|| AgentError::NoSuchState { name: short(name) })?;
        // Acting on one's status dismisses missed and rejected contacts, as
        // in Amazon Connect.
        let dismissed: Vec<String> = self
            .agents
            .get(agent)
            .map(|e| e.contacts.as_slice())
            .unwrap_or_default()
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
        let workload = self.workload(agent);
        let entry = self.agents.get_mut(agent).ok_or(AgentError::Unknown)?;
        let changed =
            entry
                .status
                .request(target, workload, now)
                .map_err(|e| AgentError::StateRefused {
                    reason: e.to_string(),
                })?;
        let view = entry.status.view();
        let chosen = entry.status.chosen().clone();
        if entry.status.is_routable() && entry.contacts.is_empty() && changed {
            entry.idle_since = now;
        }
        self.reindex(agent);
        self.store.save_status(agent, &chosen, view.since)?;
        if changed {
            self.emit(agent, Event::AgentStateChanged(view.clone()));
        }
        self.route(now);
        Ok(OpResult::AgentState(view))
    }

    pub(super) fn set_muted(&mut self, agent: &str, muted: bool) -> Result<OpResult, AgentError> {
        let entry = self.agents.get_mut(agent).ok_or(AgentError::Unknown)?;
        if entry.muted != muted {
            entry.muted = muted;
            self.emit(agent, Event::MuteChanged { muted });
            self.plan_agent_calls(agent);
        }
        Ok(OpResult::Ack)
    }

    /// What the agent's contacts make of its status, if anything.
    pub(super) fn phase(&self, agent: &str) -> Option<AgentPhase> {
        let entry = self.agents.get(agent)?;
        let mut phase: Option<AgentPhase> = None;
        for s in entry
            .contacts
            .iter()
            .filter_map(|id| self.calls.get(id)?.participant(agent).map(|p| &p.state))
        {
            let this = match s {
                ContactState::Connected { .. } => AgentPhase::Connected,
                ContactState::Connecting { .. } => AgentPhase::Dialing,
                ContactState::Ended { .. } => AgentPhase::AfterCallWork,
                ContactState::Incoming { .. } => AgentPhase::Ringing,
                _ => continue,
            };
            // Variants are declared strongest first.
            if phase.is_none_or(|p| (this as u8) < (p as u8)) {
                phase = Some(this);
            }
        }
        phase
    }

    /// Engaged when any contact makes a phase.
    pub(super) fn workload(&self, agent: &str) -> Workload {
        if self.phase(agent).is_some() {
            Workload::Engaged
        } else {
            Workload::Idle
        }
    }

    /// Brings the agent's status in line with its contacts.
    pub(super) fn refresh_status(&mut self, agent: &str, now: Millis) {
        let phase = self.phase(agent);
        let Some(entry) = self.agents.get_mut(agent) else {
            return;
        };
        let was_routable_idle = entry.status.is_routable() && entry.contacts.is_empty();
        let changed = match phase {
            Some(AgentPhase::Connected) => entry.status.connected(now),
            Some(AgentPhase::Dialing) => entry.status.dialing(now),
            Some(AgentPhase::AfterCallWork) => entry.status.after_call_work(now),
            Some(AgentPhase::Ringing) => false,
            None => entry.status.all_cleared(now),
        };
        if entry.status.is_routable() && entry.contacts.is_empty() && !was_routable_idle {
            entry.idle_since = now;
        }
        // Mute belongs to a call: once the agent has no live call left it
        // is lifted, so the next call never starts muted unseen.
        let unmute = entry.muted
            && !matches!(
                phase,
                Some(AgentPhase::Connected) | Some(AgentPhase::Dialing)
            );
        if unmute {
            entry.muted = false;
        }
        let view = changed.then(|| entry.status.view());
        self.reindex(agent);
        if let Some(view) = view {
            self.emit(agent, Event::AgentStateChanged(view));
        }
        if unmute {
            self.emit(agent, Event::MuteChanged { muted: false });
        }
    }

    /// A routed contact rang out on `agent`: its status says so.
    pub(super) fn missed(&mut self, agent: &str, now: Millis) {
        let Some(entry) = self.agents.get_mut(agent) else {
            return;
        };
        let view = entry.status.missed(now).then(|| entry.status.view());
        self.reindex(agent);
        if let Some(view) = view {
            self.emit(agent, Event::AgentStateChanged(view));
        }
    }

    /// Puts `call_id` on the agent's list of contacts.
    pub(super) fn add_contact(&mut self, agent: &str, call_id: &str) {
        if let Some(entry) = self.agents.get_mut(agent) {
            entry.contacts.push(call_id.to_owned());
        }
        self.reindex(agent);
    }

    /// Takes `call_id` off the agent's list of contacts.
    pub(super) fn remove_contact(&mut self, agent: &str, call_id: &str) {
        if let Some(entry) = self.agents.get_mut(agent) {
            entry.contacts.retain(|c| c != call_id);
        }
        self.reindex(agent);
    }

    /// Whether `agent` could take a contact now (transfers to an agent).
    pub(super) fn is_available(&self, agent: &str) -> bool {
        self.agents
            .get(agent)
            .is_some_and(AgentEntry::routable_idle)
    }
}
