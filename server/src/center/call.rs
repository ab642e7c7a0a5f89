//! One customer call inside the contact center: its customer leg, the
//! agents taking part (each with its own contact state), external third
//! parties, and where it waits when it is in a queue. `view` renders the
//! contact as one agent sees it, which is all that ever goes on the wire.

use std::collections::BTreeMap;

use protocol::contact::{
    Connection, ConnectionKind, ConnectionState, ContactState, ContactView, Initiation, QueueRef,
};
use protocol::endpoint::{Endpoint, EndpointKind};
use protocol::Millis;

use crate::config::Config;

/// A non-agent leg: the customer, or an external number added later.
#[derive(Debug, Clone)]
pub struct Party {
    pub connection_id: String,
    pub endpoint: Endpoint,
    pub state: ConnectionState,
    /// A simulated far end answers at this time.
    pub answer_at: Option<Millis>,
}

impl Party {
    /// A customer calling in from `number`, not yet answered.
    pub fn calling_in(connection_id: String, number: &str, now: Millis) -> Party {
        Party {
            connection_id,
            endpoint: Endpoint::phone_number(number),
            state: ConnectionState::Connecting { since: now },
            answer_at: None,
        }
    }
}

/// An agent on the call.
#[derive(Debug, Clone)]
pub struct Participant {
    pub agent: String,
    pub connection_id: String,
    /// This agent's contact state.
    pub state: ContactState,
    /// This agent's leg as others see it.
    pub conn: ConnectionState,
    pub initiation: Initiation,
    /// The queue wait this offer came from, restored if it is missed or rejected.
    pub offered_from: Option<Wait>,
    /// The id this agent's audio frames carry, both ways.
    pub media_leg: u32,
}

/// A place in a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub queue: String,
    pub since: Millis,
    /// The connection id reserved for the agent who will take it.
    pub connection_id: String,
}

/// A call.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: String,
    pub initiation: Initiation,
    pub queue: Option<String>,
    pub created_at: Millis,
    pub attributes: BTreeMap<String, String>,
    pub customer: Party,
    pub participants: Vec<Participant>,
    pub externals: Vec<Party>,
    pub waiting: Option<Wait>,
    /// Agents that rejected this contact, and when (not re-offered for a while).
    pub rejected: Vec<(String, Millis)>,
    pub ended: bool,
    /// DTMF the customer heard (read by the simulator).
    pub digits_heard: String,
    /// What the simulated customer says.
    pub caller_play: crate::bridge::CallerAudio,
    /// The flow running beside the call, if any.
    pub flow: Option<Box<super::flow::FlowRun>>,
    /// The contact as its last flow left it (whisper and queue flows
    /// start from it).
    pub flow_ctx: Option<Box<crate::flow::run::Context>>,
    /// A queued callback: the customer is dialed once an agent accepts.
    pub callback: bool,
    /// The call came in through an entry point's flow: the caller's
    /// media lives from the start (it hears prompts before any agent).
    pub via_flow: bool,
}

impl Call {
    /// A call with its customer and nobody else yet: not queued, no flow,
    /// no agent. Each way a call starts sets what differs from this with
    /// struct update syntax, so a new field gets its default in one place.
    pub fn new(
        id: &str,
        initiation: Initiation,
        customer: Party,
        attributes: BTreeMap<String, String>,
        caller_play: crate::bridge::CallerAudio,
        created_at: Millis,
    ) -> Call {
        Call {
            id: id.to_owned(),
            initiation,
            queue: None,
            created_at,
            attributes,
            customer,
            participants: Vec::new(),
            externals: Vec::new(),
            waiting: None,
            rejected: Vec::new(),
            ended: false,
            digits_heard: String::new(),
            caller_play,
            flow: None,
            flow_ctx: None,
            callback: false,
            via_flow: false,
        }
    }

    pub fn participant(&self, agent: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.agent == agent)
    }

    pub fn participant_mut(&mut self, agent: &str) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| p.agent == agent)
    }

    /// Agents whose contact state is connecting or connected.
    pub fn live_agents(&self) -> impl Iterator<Item = &Participant> {
        self.participants.iter().filter(|p| p.state.is_live())
    }

    /// Whether someone is still being reached (ringing agent, queued transfer).
    pub fn has_pending_offer(&self) -> bool {
        self.waiting.is_some()
            || self
                .participants
                .iter()
                .any(|p| matches!(p.state, ContactState::Incoming { .. }))
    }

    /// The state of any other leg by connection id, as seen by `viewer`.
    pub fn other_connection_mut(
        &mut self,
        viewer: &str,
        connection_id: &str,
    ) -> Option<&mut ConnectionState> {
        if self.customer.connection_id == connection_id {
            return Some(&mut self.customer.state);
        }
        if let Some(p) = self
            .participants
            .iter_mut()
            .find(|p| p.connection_id == connection_id && p.agent != viewer)
        {
            return Some(&mut p.conn);
        }
        self.externals
            .iter_mut()
            .find(|e| e.connection_id == connection_id)
            .map(|e| &mut e.state)
    }

    /// Every other leg that is talking or held, from `viewer`'s side.
    pub fn active_others_mut(&mut self, viewer: &str) -> Vec<&mut ConnectionState> {
        let mut out: Vec<&mut ConnectionState> = Vec::new();
        if self.customer.state.is_active() {
            out.push(&mut self.customer.state);
        }
        for p in self
            .participants
            .iter_mut()
            .filter(|p| p.agent != viewer && p.state.is_live())
        {
            if p.conn.is_active() {
                out.push(&mut p.conn);
            }
        }
        for e in self.externals.iter_mut().filter(|e| e.state.is_active()) {
            out.push(&mut e.state);
        }
        out
    }

    /// Times at which this call has something due on the center's tick:
    /// a ring-out, a simulated answer, the queue's max wait, or a routing
    /// delay that lets another profile take it.
    pub fn deadlines(&self, cfg: &Config) -> Vec<Millis> {
        let mut out = Vec::new();
        for p in &self.participants {
            if let ContactState::Incoming { expires_at, .. } = p.state {
                out.push(expires_at);
            }
        }
        out.extend(self.customer.answer_at);
        if let Some(f) = &self.flow {
            out.extend(f.deadlines());
        }
        out.extend(self.externals.iter().filter_map(|e| e.answer_at));
        if let Some(w) = &self.waiting {
            if let Some(q) = cfg.queues.get(&w.queue) {
                out.push(w.since.plus_ms(q.max_wait_ms));
            }
            for profile in cfg.routing_profiles.values() {
                for pq in profile.queues.iter().filter(|pq| pq.queue == w.queue) {
                    out.push(w.since.plus_ms(u64::from(pq.delay_s) * 1000));
                }
            }
        }
        out
    }

    /// The contact as `agent` sees it, if the agent is on it.
    pub fn view(&self, agent: &str, cfg: &Config) -> Option<ContactView> {
        let me = self.participant(agent)?;
        let mut connections = vec![Connection {
            connection_id: me.connection_id.clone(),
            kind: ConnectionKind::Agent,
            endpoint: agent_endpoint(&me.agent, cfg),
            state: me.conn.clone(),
            media_leg: me.state.is_live().then_some(me.media_leg),
        }];
        connections.push(Connection {
            connection_id: self.customer.connection_id.clone(),
            // A callback's customer is dialed, as an outbound call's is.
            kind: if matches!(self.initiation, Initiation::Outbound | Initiation::Callback) {
                ConnectionKind::Outbound
            } else {
                ConnectionKind::Inbound
            },
            endpoint: self.customer.endpoint.clone(),
            state: self.customer.state.clone(),
            media_leg: None,
        });
        for p in self.participants.iter().filter(|p| p.agent != agent) {
            let state = match &p.state {
                ContactState::Incoming { since, .. } => {
                    ConnectionState::Connecting { since: *since }
                }
                ContactState::Connected { .. } | ContactState::Connecting { .. } => p.conn.clone(),
                ContactState::Ended { since, reason } => ConnectionState::Disconnected {
                    since: *since,
                    reason: reason.clone(),
                },
                _ => continue,
            };
            connections.push(Connection {
                connection_id: p.connection_id.clone(),
                kind: ConnectionKind::ThirdParty,
                endpoint: agent_endpoint(&p.agent, cfg),
                state,
                media_leg: None,
            });
        }
        // A transfer waiting in a queue shows as a third party being reached.
        if let Some(w) = &self.waiting {
            if self.live_agents().next().is_some() {
                connections.push(Connection {
                    connection_id: w.connection_id.clone(),
                    kind: ConnectionKind::ThirdParty,
                    endpoint: queue_endpoint(&w.queue, cfg),
                    state: ConnectionState::Connecting { since: w.since },
                    media_leg: None,
                });
            }
        }
        // A transfer whose flow runs shows as the quick connect being reached.
        if let Some(super::FlowRole::Transfer {
            connection_id,
            endpoint,
            since,
            ..
        }) = self.flow.as_ref().map(|f| &f.role)
        {
            connections.push(Connection {
                connection_id: connection_id.clone(),
                kind: ConnectionKind::ThirdParty,
                endpoint: endpoint.clone(),
                state: ConnectionState::Connecting { since: *since },
                media_leg: None,
            });
        }
        for e in &self.externals {
            connections.push(Connection {
                connection_id: e.connection_id.clone(),
                kind: ConnectionKind::ThirdParty,
                endpoint: e.endpoint.clone(),
                state: e.state.clone(),
                media_leg: None,
            });
        }
        Some(ContactView {
            contact_id: self.id.clone(),
            initiation: me.initiation,
            state: me.state.clone(),
            queue: self.queue.as_ref().map(|q| QueueRef {
                id: q.clone(),
                name: cfg
                    .queues
                    .get(q)
                    .map_or_else(|| q.clone(), |q| q.name.clone()),
            }),
            attributes: self.attributes.clone(),
            connections,
            created_at: self.created_at,
        })
    }
}

/// The endpoint describing an agent.
pub fn agent_endpoint(username: &str, cfg: &Config) -> Endpoint {
    Endpoint {
        id: format!("agent:{username}"),
        kind: EndpointKind::Agent,
        name: cfg
            .agents
            .get(username)
            .map_or_else(|| username.to_owned(), |a| a.name.clone()),
        phone_number: None,
        agent: Some(username.to_owned()),
        queue: None,
    }
}

/// The endpoint describing a queue.
pub fn queue_endpoint(queue: &str, cfg: &Config) -> Endpoint {
    Endpoint {
        id: format!("queue:{queue}"),
        kind: EndpointKind::Queue,
        name: cfg
            .queues
            .get(queue)
            .map_or_else(|| queue.to_owned(), |q| q.name.clone()),
        phone_number: None,
        agent: None,
        queue: Some(queue.to_owned()),
    }
}
