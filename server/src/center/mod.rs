//! The contact center: agents, calls and queues in memory, with every
//! record that must outlive a restart written through to the [`Store`].
//!
//! The center is driven, never driving: sessions call [`Center::handle`]
//! with an op and `now`, the ticker calls [`Center::tick`], simulated
//! callers call [`Center::place_inbound`]. It never reads a clock and
//! draws its ids from the [`Rng`] it is given, so tests step it (and
//! client sessions beside it) on a virtual clock with no sockets at all.
//! Events go out through each agent's link (a channel to its socket
//! writer), numbered per agent so a reconnecting client can resume where
//! it left off.
//!
//! The code is cut by domain, each with its own error enum:
//! [`agent`] (sessions, status, events), [`contact`] (one call's life as
//! its agents drive it), [`transfer`] (consult, conference, cold
//! transfer), [`queue`] (waiting, routing, ring-outs) and [`media`] (what
//! the bridge is told). [`OpError`] gathers them for [`Center::handle`];
//! the socket turns it into the wire's `ErrorBody` in one place.

mod agent;
mod call;
mod contact;
mod flow;
mod media;
mod queue;
mod rng;
mod transfer;
mod trunk;
mod trunk_party;

use std::collections::HashMap;
use std::sync::Arc;

use protocol::error::{ErrorBody, ErrorCode};
use protocol::wire::{Op, OpResult};
use protocol::Millis;

pub use agent::{AgentError, AgentPhase};
pub use call::{agent_endpoint, Call, Participant, Party, Wait};
pub use contact::{CallerPhase, CallerView, ContactError};
pub use flow::{flow_channel, FlowDone, FlowJob, FlowRole, Lane, FLOW_JOBS};
pub use queue::{InboundRefused, QueueError};
pub use rng::{OsRng, Rng, SeededRng};
pub use transfer::TransferError;
pub use trunk::{third_party_key, TrunkDial, TrunkFailure, TRUNK_DIAL_QUEUE};

use agent::AgentEntry;
use queue::RoutingIndex;

use crate::config::Config;
use crate::store::{Store, StoreError};

/// Clients are asked to send something this often.
pub const HEARTBEAT_MS: u64 = 15_000;

/// Why an op was refused: the error of the domain that refused it.
/// [`OpError::body`] is the one place it becomes a wire error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// The agent's session, status or configuration.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The contact the op names.
    #[error(transparent)]
    Contact(#[from] ContactError),
    /// A transfer, conference or toggle.
    #[error(transparent)]
    Transfer(#[from] TransferError),
}

impl OpError {
    /// The wire error for the client.
    pub fn body(&self) -> ErrorBody {
        match self {
            OpError::Agent(e) => e.body(),
            OpError::Contact(e) => e.body(),
            OpError::Transfer(e) => e.body(),
        }
    }

    /// The wire code alone.
    pub fn code(&self) -> ErrorCode {
        self.body().code
    }
}

impl From<OpError> for ErrorBody {
    fn from(e: OpError) -> ErrorBody {
        e.body()
    }
}

/// The wire error of a store failure: logged here, never shown.
fn store_failed(e: &StoreError) -> ErrorBody {
    tracing::error!("{e}");
    ErrorBody::new(
        ErrorCode::Internal,
        "the backend could not save this change; try again",
    )
}

/// At most 64 characters of something a client sent, for a message.
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The contact center.
pub struct Center {
    cfg: Arc<Config>,
    store: Store,
    bridge: Option<crate::bridge::Bridge>,
    agents: HashMap<String, AgentEntry>,
    calls: HashMap<String, Call>,
    /// Idle routable agents by profile, longest idle first.
    idle: RoutingIndex,
    next_attach: u64,
    /// The backend is stopping: no new calls.
    stopping: bool,
    rng: Box<dyn Rng>,
    /// Where prompts to render and functions to invoke go.
    flow_jobs: Option<tokio::sync::mpsc::Sender<FlowJob>>,
    /// Outbound calls go out through the SIP gateway when it is running
    /// (see [`trunk`]); otherwise a simulated far end answers them.
    trunk: Option<tokio::sync::mpsc::Sender<TrunkDial>>,
    /// Outbound calls whose far end sends early media (183): the agent
    /// hears it while still dialing.
    early_media: std::collections::HashSet<String>,
    /// Flows heard by agents beside their calls (see [`flow::AgentLanes`]).
    agent_lanes: flow::AgentLanes,
    /// Third parties dialed through the trunk (transfer or conference to
    /// a number, a flow's `transfer_to_phone_number`): connection id to
    /// the media leg of their bridge socket (see [`trunk`]).
    trunk_parties: HashMap<String, u32>,
}

/// A random id like `c-3f9a0c...` (16 hex digits) from the OS.
pub fn random_id(prefix: &str) -> String {
    rng::id_from(&mut OsRng, prefix)
}

/// A random nonzero media leg id from the OS.
pub fn random_leg() -> u32 {
    rng::leg_from(&mut OsRng)
}

impl Center {
    /// A center over `store`, restoring agent statuses and closing calls a
    /// previous run left open. Ids come from the OS.
    pub fn new(cfg: Arc<Config>, store: Store, now: Millis) -> Result<Center, StoreError> {
        Center::with_rng(cfg, store, now, Box::new(OsRng))
    }

    /// Like [`Center::new`], drawing ids from `rng` (a seeded one makes
    /// a run repeatable).
    pub fn with_rng(
        cfg: Arc<Config>,
        store: Store,
        now: Millis,
        mut rng: Box<dyn Rng>,
    ) -> Result<Center, StoreError> {
        let closed = store.close_dangling_contacts("backend_restart", now)?;
        if closed > 0 {
            tracing::warn!(closed, "closed contacts left open by the previous run");
        }
        let saved: HashMap<String, _> = store.statuses()?.into_iter().collect();
        let mut agents = HashMap::new();
        for username in &cfg.agent_order {
            let entry = AgentEntry::restore(&cfg, saved.get(username), now, &mut *rng);
            agents.insert(username.clone(), entry);
        }
        Ok(Center {
            cfg,
            store,
            bridge: None,
            agents,
            calls: HashMap::new(),
            idle: RoutingIndex::default(),
            next_attach: 1,
            stopping: false,
            rng,
            flow_jobs: None,
            trunk: None,
            early_media: Default::default(),
            agent_lanes: Default::default(),
            trunk_parties: HashMap::new(),
        })
    }

    /// A fresh id with `prefix`.
    fn new_id(&mut self, prefix: &str) -> String {
        rng::id_from(&mut *self.rng, prefix)
    }

    /// A fresh media leg id.
    fn new_leg(&mut self) -> u32 {
        rng::leg_from(&mut *self.rng)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The store (read-only uses: records, tokens).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs one op for `agent`.
    pub fn handle(&mut self, agent: &str, op: Op, now: Millis) -> Result<OpResult, OpError> {
        if !self.agents.contains_key(agent) {
            return Err(AgentError::Unknown.into());
        }
        match op {
            // The socket answers it (it knows the login the token belongs to).
            Op::RefreshToken | Op::MediaSocket => Err(AgentError::RefreshOnSocket.into()),
            Op::Ping => Ok(OpResult::Pong),
            Op::GetSnapshot => self
                .snapshot(agent)
                .map(OpResult::Snapshot)
                .ok_or_else(|| AgentError::NoSnapshot.into()),
            Op::GetAgentState => Ok(OpResult::AgentState(self.agents[agent].status.view())),
            Op::SetAgentState { state } => Ok(self.set_state(agent, &state, now)?),
            Op::GetAgentConfiguration => agent::configuration(&self.cfg, agent)
                .map(OpResult::AgentConfiguration)
                .ok_or_else(|| AgentError::NoConfiguration.into()),
            Op::ListAgentStates => Ok(OpResult::AgentStates {
                states: self.cfg.agent_states.clone(),
            }),
            Op::GetRoutingProfile => agent::configuration(&self.cfg, agent)
                .map(|c| OpResult::RoutingProfile(c.routing_profile))
                .ok_or_else(|| AgentError::NoRoutingProfile.into()),
            Op::ListQuickConnects => {
                let endpoints: Vec<_> = self
                    .cfg
                    .quick_connects
                    .iter()
                    .filter(|e| e.agent.as_deref() != Some(agent))
                    .cloned()
                    .collect();
                // Whether each agent target can take a call now (issue 15).
                let availability = endpoints
                    .iter()
                    .filter_map(|e| {
                        let entry = self.agents.get(e.agent.as_deref()?)?;
                        Some((e.id.clone(), entry.availability()))
                    })
                    .collect();
                Ok(OpResult::QuickConnects {
                    endpoints,
                    availability,
                })
            }
            Op::Mute => Ok(self.set_muted(agent, true)?),
            Op::Unmute => Ok(self.set_muted(agent, false)?),
            Op::Connect { endpoint } => Ok(self.connect_outbound(agent, endpoint, now)?),
            Op::Accept { contact_id } => Ok(self.accept(agent, &contact_id, now)?),
            Op::Reject { contact_id } => Ok(self.reject(agent, &contact_id, now)?),
            Op::Clear {
                contact_id,
                wrap_up_code,
            } => Ok(self.clear(agent, &contact_id, wrap_up_code, now)?),
            Op::Hold {
                contact_id,
                connection_id,
            } => Ok(self.set_hold(agent, &contact_id, &connection_id, true, now)?),
            Op::Resume {
                contact_id,
                connection_id,
            } => Ok(self.set_hold(agent, &contact_id, &connection_id, false, now)?),
            Op::SendDigits {
                contact_id,
                connection_id,
                digits,
            } => Ok(self.send_digits(agent, &contact_id, &connection_id, &digits, now)?),
            Op::AddConnection {
                contact_id,
                endpoint,
            } => self.add_connection(agent, &contact_id, endpoint, now),
            Op::Conference { contact_id } => self.conference(agent, &contact_id, now),
            Op::Toggle { contact_id } => self.toggle(agent, &contact_id, now),
            Op::EndConnection {
                contact_id,
                connection_id,
            } => Ok(self.end_connection(agent, &contact_id, &connection_id, now)?),
            Op::GetAttributes { contact_id } => {
                let call = self.mine(agent, &contact_id)?;
                Ok(OpResult::Attributes {
                    attributes: call.attributes.clone(),
                })
            }
            Op::UpdateAttributes {
                contact_id,
                attributes,
            } => Ok(self.update_attributes(agent, &contact_id, attributes, now)?),
        }
    }

    // ---- time -----------------------------------------------------------

    /// Advances the center to `now`: ring-outs, simulated answers, routing.
    pub fn tick(&mut self, now: Millis) {
        self.ring_outs(now);
        self.answers(now);
        self.queue_timeouts(now);
        self.flow_ticks(now);
        self.route(now);
    }

    /// The earliest time after `after` at which [`Center::tick`] has
    /// something to do (a ring-out, an answer, a queue's max wait, a delay
    /// that makes a contact routable), if any. A virtual-clock harness
    /// jumps straight to it.
    pub fn next_deadline(&self, after: Millis) -> Option<Millis> {
        self.calls
            .values()
            .flat_map(|c| c.deadlines(&self.cfg))
            .chain(self.agent_lanes.deadlines())
            .filter(|t| *t > after)
            .min()
    }

    // ---- stopping -------------------------------------------------------

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
}

#[cfg(test)]
mod tests;
