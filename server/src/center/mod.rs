//! The contact center: agents, calls and queues in memory, with every
//! record that must outlive a restart written through to the [`Store`].
//!
//! The center is driven, never driving: sessions call [`Center::handle`]
//! with an op and `now`, the ticker calls [`Center::tick`], simulated
//! callers call [`Center::place_inbound`]. Events go out through each
//! agent's link (a channel to its socket writer), numbered per agent so a
//! reconnecting client can resume where it left off. Tests drive it on a
//! virtual clock with no sockets at all.

mod call;
mod ops;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use protocol::agent::{AgentState, AgentStatus, Workload};
use protocol::contact::{ConnectionState, ContactState, Initiation};
use protocol::endpoint::{is_dtmf, is_e164, Endpoint};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{Event, EventFrame, ResumeFrom, ServerFrame, Snapshot, Welcome};
use protocol::Millis;

use crate::limits::Outbox;

pub use call::{agent_endpoint, Call, Participant, Party, Wait};

use crate::config::Config;
use crate::routing::{self, Candidate, Waiting};
use crate::store::{Store, StoreError};

/// A rejecting agent is not offered the same contact again for this long.
const REOFFER_AFTER_MS: u64 = 10_000;
/// Clients are asked to send something this often.
pub const HEARTBEAT_MS: u64 = 15_000;

/// Where an agent's events go.
struct Link {
    session: String,
    seq: u64,
    /// Recent events with their encoded sizes, bounded by
    /// `limits.backlog_events` and `limits.backlog_bytes`.
    backlog: VecDeque<(EventFrame, usize)>,
    backlog_bytes: usize,
    /// The attached socket's outgoing queue, with the attachment's id.
    tx: Option<(u64, Outbox)>,
}

struct AgentEntry {
    status: AgentStatus,
    /// When the agent last became free for a contact (longest idle goes first).
    idle_since: Millis,
    muted: bool,
    link: Link,
    /// Calls the agent is on, oldest first.
    contacts: Vec<String>,
}

/// A refused inbound call: the record exists, the caller was told why.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRefused {
    /// The contact record of the refused call.
    pub contact_id: String,
    /// Why.
    pub error: ErrorBody,
}

/// What the simulator can see of a call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallerView {
    /// The contact.
    pub contact_id: String,
    /// init / queued / ringing / connected / hold / ended.
    pub state: String,
    /// DTMF the caller heard.
    pub digits_heard: String,
}

/// The contact center.
pub struct Center {
    cfg: Arc<Config>,
    store: Store,
    bridge: Option<crate::bridge::Bridge>,
    agents: HashMap<String, AgentEntry>,
    calls: HashMap<String, Call>,
    next_attach: u64,
    /// The backend is stopping: no new calls.
    stopping: bool,
}

/// A random id like `c-3f9a0c...` (16 hex digits).
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    // getrandom only fails without an OS entropy source; fall back to a
    // time-and-counter id rather than panic.
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes = n.to_be_bytes();
    }
    let mut s = String::with_capacity(prefix.len() + 17);
    s.push_str(prefix);
    s.push('-');
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A random nonzero media leg id.
pub fn random_leg() -> u32 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    u32::from_be_bytes(bytes).max(1)
}

fn internal(e: StoreError) -> ErrorBody {
    tracing::error!("{e}");
    ErrorBody::new(
        ErrorCode::Internal,
        "the backend could not save this change; try again",
    )
}

impl Center {
    /// A center over `store`, restoring agent statuses and closing calls a
    /// previous run left open.
    pub fn new(cfg: Arc<Config>, store: Store, now: Millis) -> Result<Center, StoreError> {
        let closed = store.close_dangling_contacts("backend_restart", now)?;
        if closed > 0 {
            tracing::warn!(closed, "closed contacts left open by the previous run");
        }
        let saved: HashMap<String, _> = store.statuses()?.into_iter().collect();
        let mut agents = HashMap::new();
        for username in &cfg.agent_order {
            let status = match saved.get(username) {
                Some(s) if cfg.agent_state(&s.chosen.name) == Some(&s.chosen) => {
                    AgentStatus::new(s.chosen.clone(), s.since)
                }
                _ => AgentStatus::new(AgentState::offline(), now),
            };
            agents.insert(
                username.clone(),
                AgentEntry {
                    status,
                    idle_since: now,
                    muted: false,
                    link: Link {
                        session: random_id("s"),
                        seq: 0,
                        backlog: VecDeque::new(),
                        backlog_bytes: 0,
                        tx: None,
                    },
                    contacts: Vec::new(),
                },
            );
        }
        Ok(Center {
            cfg,
            store,
            bridge: None,
            agents,
            calls: HashMap::new(),
            next_attach: 1,
            stopping: false,
        })
    }

    /// Connects the media bridge: from now on every call change is sent
    /// to it as a plan.
    pub fn set_bridge(&mut self, bridge: crate::bridge::Bridge) {
        self.bridge = Some(bridge);
    }

    /// Where a contact's recording goes, when recording is on.
    pub fn recording_path(&self, contact_id: &str) -> Option<std::path::PathBuf> {
        self.cfg.recording.then(|| {
            self.cfg
                .data_dir
                .join("recordings")
                .join(format!("{contact_id}.wav"))
        })
    }

    /// Where a simulated caller's recording of what it heard goes.
    pub fn heard_path(&self, contact_id: &str) -> std::path::PathBuf {
        self.cfg
            .data_dir
            .join("recordings")
            .join(format!("{contact_id}-caller-heard.wav"))
    }

    /// Whether `leg` is a live media leg of `agent` (frames for anything
    /// else are refused with `no_media_leg`).
    pub fn media_leg_active(&self, agent: &str, leg: u32) -> bool {
        self.agents.get(agent).is_some_and(|e| {
            e.contacts.iter().any(|id| {
                self.calls
                    .get(id)
                    .and_then(|c| c.participant(agent))
                    .is_some_and(|p| p.media_leg == leg && p.state.is_live())
            })
        })
    }

    /// Sends the bridge the media this call should have now.
    fn plan_media(&self, call_id: &str) {
        use crate::bridge::{Audio, CallPlan, Command, PartyKind, PlannedParty};
        let Some(bridge) = &self.bridge else { return };
        let Some(call) = self.calls.get(call_id) else {
            bridge.send(Command::Plan(CallPlan {
                call: call_id.to_owned(),
                parties: Vec::new(),
                ended: true,
                recording: None,
            }));
            return;
        };
        let mut parties = Vec::new();
        let live_agents = call
            .live_agents()
            .filter(|p| matches!(p.state, ContactState::Connected { .. }))
            .count();
        if !call.ended && live_agents > 0 {
            let customer_audio = match call.customer.state {
                ConnectionState::Connected { .. } => Some(Audio::Talking),
                ConnectionState::Hold { .. } => Some(Audio::Held),
                _ => None,
            };
            if let Some(audio) = customer_audio {
                parties.push(PlannedParty {
                    id: call.customer.connection_id.clone(),
                    kind: PartyKind::Caller {
                        play: call.caller_play.clone(),
                        heard: Some(self.heard_path(call_id)),
                    },
                    audio,
                });
            }
            for p in call
                .participants
                .iter()
                .filter(|p| matches!(p.state, ContactState::Connected { .. }))
            {
                let muted = self.agents.get(&p.agent).is_some_and(|e| e.muted);
                let audio = match p.conn {
                    ConnectionState::Hold { .. } => Audio::Held,
                    _ if muted => Audio::Muted,
                    _ => Audio::Talking,
                };
                parties.push(PlannedParty {
                    id: p.connection_id.clone(),
                    kind: PartyKind::Agent {
                        agent: p.agent.clone(),
                        leg: p.media_leg,
                    },
                    audio,
                });
            }
        }
        bridge.send(Command::Plan(CallPlan {
            call: call_id.to_owned(),
            parties,
            ended: call.ended,
            recording: self.recording_path(call_id),
        }));
    }

    /// Re-plans every call `agent` is on (after a mute change).
    fn plan_agent_calls(&self, agent: &str) {
        if let Some(e) = self.agents.get(agent) {
            for id in &e.contacts {
                self.plan_media(id);
            }
        }
    }

    /// Queues DTMF tones for the party on `connection_id`.
    fn play_digits(&self, call_id: &str, connection_id: &str, digits: &str) {
        if let Some(b) = &self.bridge {
            b.send(crate::bridge::Command::Dtmf {
                call: call_id.to_owned(),
                to: connection_id.to_owned(),
                digits: digits.to_owned(),
            });
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The store (read-only uses: records, tokens).
    pub fn store(&self) -> &Store {
        &self.store
    }

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
        })];
        match replay {
            Some(events) => frames.extend(events),
            None => frames.push(ServerFrame::Snapshot(snapshot)),
        }
        link.tx = Some((id, tx));
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
            configuration: ops::configuration(&self.cfg, agent)?,
            states: self.cfg.agent_states.clone(),
            contacts: entry
                .contacts
                .iter()
                .filter_map(|id| self.calls.get(id)?.view(agent, &self.cfg))
                .collect(),
        })
    }

    fn emit(&mut self, agent: &str, event: Event) {
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
        if let Some((_, tx)) = &link.tx {
            if !tx.push(text) {
                link.tx = None;
            }
        }
    }

    /// Sends every participant its current view of `call_id`, then brings
    /// their statuses up to date.
    fn publish(&mut self, call_id: &str, now: Millis) {
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
    fn destroy_view(&mut self, call_id: &str, agent: &str, now: Millis) {
        if let Some(call) = self.calls.get_mut(call_id) {
            call.participants.retain(|p| p.agent != agent);
            if call.ended && call.participants.is_empty() {
                self.calls.remove(call_id);
            }
        }
        if let Some(entry) = self.agents.get_mut(agent) {
            entry.contacts.retain(|c| c != call_id);
        }
        self.emit(
            agent,
            Event::ContactDestroyed {
                contact_id: call_id.to_owned(),
            },
        );
        self.refresh_status(agent, now);
    }

    /// What the agent's contacts mean for its status.
    fn workload(&self, agent: &str) -> (Workload, Option<&'static str>) {
        let Some(entry) = self.agents.get(agent) else {
            return (Workload::Idle, None);
        };
        let states: Vec<&ContactState> = entry
            .contacts
            .iter()
            .filter_map(|id| self.calls.get(id)?.participant(agent).map(|p| &p.state))
            .collect();
        let any = |f: fn(&ContactState) -> bool| states.iter().any(|s| f(s));
        let phase = if any(|s| matches!(s, ContactState::Connected { .. })) {
            Some("connected")
        } else if any(|s| matches!(s, ContactState::Connecting { .. })) {
            Some("dialing")
        } else if any(|s| matches!(s, ContactState::Ended { .. })) {
            Some("acw")
        } else if any(|s| matches!(s, ContactState::Incoming { .. })) {
            Some("ringing")
        } else {
            None
        };
        (
            if phase.is_some() {
                Workload::Engaged
            } else {
                Workload::Idle
            },
            phase,
        )
    }

    fn refresh_status(&mut self, agent: &str, now: Millis) {
        let (_, phase) = self.workload(agent);
        let Some(entry) = self.agents.get_mut(agent) else {
            return;
        };
        let was_routable_idle = entry.status.is_routable() && entry.contacts.is_empty();
        let changed = match phase {
            Some("connected") => entry.status.connected(now),
            Some("dialing") => entry.status.dialing(now),
            Some("acw") => entry.status.after_call_work(now),
            Some(_) => false,
            None => entry.status.all_cleared(now),
        };
        if entry.status.is_routable() && entry.contacts.is_empty() && !was_routable_idle {
            entry.idle_since = now;
        }
        if changed {
            let view = entry.status.view();
            self.emit(agent, Event::AgentStateChanged(view));
        }
    }

    // ---- time -----------------------------------------------------------

    /// Advances the center to `now`: ring-outs, simulated answers, routing.
    pub fn tick(&mut self, now: Millis) {
        self.ring_outs(now);
        self.answers(now);
        self.queue_timeouts(now);
        self.route(now);
    }

    /// Contacts that waited in a queue longer than its `max_wait_s` leave
    /// it with the reason `queue_timeout`: a caller nobody answers is
    /// disconnected; a transfer into the queue while an agent still holds
    /// the customer is withdrawn and the agent keeps the call. Waiting is
    /// counted from when the contact entered the queue; one ringing an
    /// agent is not waiting and is not cut off.
    fn queue_timeouts(&mut self, now: Millis) {
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

    fn ring_outs(&mut self, now: Millis) {
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
            if let Some(entry) = self.agents.get_mut(&agent) {
                if entry.status.missed(now) {
                    let view = entry.status.view();
                    self.emit(&agent, Event::AgentStateChanged(view));
                }
            }
            self.publish(&call_id, now);
        }
    }

    fn answers(&mut self, now: Millis) {
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

    fn route(&mut self, now: Millis) {
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
                })
            })
            .collect();
        let candidates: Vec<Candidate> = self
            .agents
            .iter()
            .filter(|(_, e)| e.status.is_routable() && e.contacts.is_empty() && e.link.tx.is_some())
            .filter_map(|(name, e)| {
                let profile = self.cfg.agents.get(name)?.routing_profile.as_str();
                Some(Candidate {
                    agent: name,
                    idle_since: e.idle_since,
                    queues: &self.cfg.routing_profiles.get(profile)?.queues,
                })
            })
            .collect();
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
            media_leg: random_leg(),
        });
        if let Some(entry) = self.agents.get_mut(agent) {
            entry.contacts.push(call_id.to_owned());
        }
        let _ = self
            .store
            .contact_event(call_id, now, Some(agent), "offered", None);
        self.publish(call_id, now);
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

    /// Like [`Center::place_inbound`], with the caller saying `caller_play`.
    pub fn place_inbound_playing(
        &mut self,
        from: &str,
        queue: &str,
        caller_play: crate::bridge::CallerAudio,
        now: Millis,
    ) -> Result<String, InboundRefused> {
        let refuse = |code, msg: String| InboundRefused {
            contact_id: String::new(),
            error: ErrorBody::new(code, msg),
        };
        if !is_e164(from) {
            return Err(refuse(
                ErrorCode::InvalidArgument,
                format!("`{from}` is not an E.164 number"),
            ));
        }
        let Some(q) = self.cfg.queues.get(queue).cloned() else {
            return Err(refuse(ErrorCode::NotFound, format!("no queue `{queue}`")));
        };
        if self.stopping {
            return Err(refuse(
                ErrorCode::Internal,
                "the contact center is shutting down; please call again shortly".into(),
            ));
        }
        let id = random_id("c");
        let attributes = self.cfg.customers.get(from).cloned().unwrap_or_default();
        self.store
            .create_contact(&id, "inbound", Some(queue), from, &attributes, now)
            .and_then(|()| match self.recording_path(&id) {
                Some(path) => self.store.set_recording(&id, &path.display().to_string()),
                None => Ok(()),
            })
            .map_err(|e| InboundRefused {
                contact_id: String::new(),
                error: internal(e),
            })?;
        let waiting_now = self
            .calls
            .values()
            .filter(|c| c.waiting.as_ref().is_some_and(|w| w.queue == queue))
            .count();
        let refusal = if q.hours.as_ref().is_some_and(|h| !h.is_open(now)) {
            Some((
                ErrorCode::QueueClosed,
                "queue_closed",
                format!(
                    "{} is closed now; please call again during opening hours",
                    q.name
                ),
            ))
        } else if waiting_now >= q.max_contacts {
            Some((
                ErrorCode::QueueFull,
                "queue_full",
                format!(
                    "all {} agents are busy and the queue is full; please call again later",
                    q.name
                ),
            ))
        } else {
            None
        };
        if let Some((code, reason, message)) = refusal {
            let _ = self
                .store
                .contact_event(&id, now, None, "refused", Some(&message));
            let _ = self.store.end_contact(&id, reason, now);
            return Err(InboundRefused {
                contact_id: id,
                error: ErrorBody::new(code, message),
            });
        }
        let _ = self
            .store
            .contact_event(&id, now, None, "queued", Some(queue));
        self.calls.insert(
            id.clone(),
            Call {
                id: id.clone(),
                initiation: Initiation::Inbound,
                queue: Some(queue.to_owned()),
                created_at: now,
                attributes,
                customer: Party {
                    connection_id: random_id("k"),
                    endpoint: Endpoint::phone_number(from),
                    state: ConnectionState::Connecting { since: now },
                    answer_at: None,
                },
                participants: Vec::new(),
                externals: Vec::new(),
                waiting: Some(Wait {
                    queue: queue.to_owned(),
                    since: now,
                    connection_id: random_id("k"),
                }),
                rejected: Vec::new(),
                ended: false,
                digits_heard: String::new(),
                caller_play,
            },
        );
        self.route(now);
        Ok(id)
    }

    /// The caller hangs up.
    pub fn caller_hangup(&mut self, contact_id: &str, now: Millis) -> Result<(), ErrorBody> {
        match self.calls.get(contact_id) {
            Some(c) if !c.ended => {
                self.end_call(contact_id, "customer_disconnect", now);
                Ok(())
            }
            _ => Err(ErrorBody::new(
                ErrorCode::NotFound,
                format!("no live call `{contact_id}`"),
            )),
        }
    }

    /// The caller presses keys; agents on the call get a `digits` event.
    pub fn caller_digits(
        &mut self,
        contact_id: &str,
        digits: &str,
        now: Millis,
    ) -> Result<(), ErrorBody> {
        if !is_dtmf(digits) {
            return Err(ErrorBody::new(
                ErrorCode::InvalidArgument,
                "digits must be 1-64 of 0-9 * # A-D ,",
            ));
        }
        let Some(call) = self.calls.get(contact_id).filter(|c| !c.ended) else {
            return Err(ErrorBody::new(
                ErrorCode::NotFound,
                format!("no live call `{contact_id}`"),
            ));
        };
        let conn = call.customer.connection_id.clone();
        let agents: Vec<String> = call.live_agents().map(|p| p.agent.clone()).collect();
        let _ = self
            .store
            .contact_event(contact_id, now, None, "caller_digits", Some(digits));
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
            "ended"
        } else if matches!(call.customer.state, ConnectionState::Hold { .. }) {
            "hold"
        } else if call
            .live_agents()
            .any(|p| matches!(p.state, ContactState::Connected { .. }))
        {
            "connected"
        } else if call
            .participants
            .iter()
            .any(|p| matches!(p.state, ContactState::Incoming { .. }))
        {
            "ringing"
        } else if call.waiting.is_some() {
            "queued"
        } else {
            "init"
        };
        Some(CallerView {
            contact_id: call.id.clone(),
            state: state.into(),
            digits_heard: call.digits_heard.clone(),
        })
    }

    /// Ends the whole call: the customer and externals are disconnected,
    /// live agents go to after-call work, ringing agents lose the offer.
    fn end_call(&mut self, call_id: &str, reason: &str, now: Millis) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.ended = true;
        call.waiting = None;
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

    /// The backend is stopping: every live call ends with `reason`
    /// (recorded, and its media plan ended so the bridge finishes the
    /// recording), then every agent is told its contacts are gone
    /// (`contact_ended` state first, then `contact_destroyed`), since
    /// after-call work cannot outlive the process. New calls are refused
    /// from now on. Returns how many live calls were ended.
    pub fn shutdown(&mut self, reason: &str, now: Millis) -> usize {
        self.stopping = true;
        let live: Vec<String> = self
            .calls
            .values()
            .filter(|c| !c.ended)
            .map(|c| c.id.clone())
            .collect();
        for id in &live {
            self.end_call(id, reason, now);
        }
        let views: Vec<(String, String)> = self
            .calls
            .values()
            .flat_map(|c| {
                c.participants
                    .iter()
                    .map(move |p| (c.id.clone(), p.agent.clone()))
            })
            .collect();
        for (call, agent) in views {
            self.destroy_view(&call, &agent, now);
        }
        live.len()
    }

    /// Whether [`Center::shutdown`] ran.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Number of calls held in memory (live or in after-call work).
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Attributes for a new map, for ops.
    fn attributes_of(&self, call_id: &str) -> BTreeMap<String, String> {
        self.calls
            .get(call_id)
            .map(|c| c.attributes.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
