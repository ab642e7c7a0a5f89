//! Contacts and connections as one agent sees them, and their state machines.
//!
//! A contact is one customer interaction (one call). Each agent taking part
//! has its own view of it: its own contact state (ringing for one agent
//! while connected for another during a transfer) and the list of
//! connections: its own `agent` connection, the customer's initial
//! connection (`inbound` or `outbound`), and `third_party` connections for
//! other agents or numbers added by transfer or conference. State names
//! mirror Amazon Connect's so Streams users feel at home.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::endpoint::Endpoint;
use crate::time::Millis;

/// Why a transition was refused: the machine was in `from` and cannot `action`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a {entity} that is {from}")]
pub struct TransitionError {
    /// `contact` or `connection`.
    pub entity: &'static str,
    /// The state name it was in.
    pub from: &'static str,
    /// What was attempted.
    pub action: &'static str,
}

/// How the contact began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiation {
    /// A customer called a queue.
    Inbound,
    /// An agent called out.
    Outbound,
    /// Another agent transferred or consulted the contact to this agent.
    Transfer,
    /// A queued callback (a flow's `queue_callback`): it rings at the
    /// agent like an inbound call, and the customer is dialed once the
    /// agent accepts (Streams' `queue_callback` contact type).
    Callback,
}

/// One agent's state of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "name",
    rename_all = "snake_case",
    try_from = "crate::state_wire::StateRecord<crate::state_wire::ContactStateName>"
)]
pub enum ContactState {
    /// Created, not yet offered.
    Init,
    /// Ringing at the agent until `expires_at`.
    Incoming {
        /// When ringing started.
        since: Millis,
        /// When it rings out and counts as missed.
        expires_at: Millis,
    },
    /// An outbound call is dialing.
    Connecting {
        /// When dialing started.
        since: Millis,
    },
    /// The agent is on the call.
    Connected {
        /// When the agent got connected.
        since: Millis,
    },
    /// The call ended for this agent; after-call work until cleared.
    Ended {
        /// When it ended.
        since: Millis,
        /// Why, e.g. `customer_disconnect`, `agent_disconnect`, `transferred`.
        reason: String,
    },
    /// It rang out unanswered.
    Missed {
        /// When it rang out.
        since: Millis,
    },
    /// The agent rejected it.
    Rejected {
        /// When.
        since: Millis,
    },
    /// It failed.
    Error {
        /// When.
        since: Millis,
        /// Why.
        reason: String,
    },
}

impl ContactState {
    /// The wire name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            ContactState::Init => "init",
            ContactState::Incoming { .. } => "incoming",
            ContactState::Connecting { .. } => "connecting",
            ContactState::Connected { .. } => "connected",
            ContactState::Ended { .. } => "ended",
            ContactState::Missed { .. } => "missed",
            ContactState::Rejected { .. } => "rejected",
            ContactState::Error { .. } => "error",
        }
    }

    fn refuse<T>(&self, action: &'static str) -> Result<T, TransitionError> {
        Err(TransitionError {
            entity: "contact",
            from: self.name(),
            action,
        })
    }

    /// Starts ringing at an agent.
    pub fn offer(&self, now: Millis, ring_ms: u64) -> Result<ContactState, TransitionError> {
        match self {
            ContactState::Init => Ok(ContactState::Incoming {
                since: now,
                expires_at: now.plus_ms(ring_ms),
            }),
            _ => self.refuse("offer"),
        }
    }

    /// Starts dialing out.
    pub fn dial(&self, now: Millis) -> Result<ContactState, TransitionError> {
        match self {
            ContactState::Init => Ok(ContactState::Connecting { since: now }),
            _ => self.refuse("dial"),
        }
    }

    /// The agent accepts a ringing contact.
    pub fn accept(&self, now: Millis) -> Result<ContactState, TransitionError> {
        match self {
            ContactState::Incoming { .. } => Ok(ContactState::Connected { since: now }),
            _ => self.refuse("accept"),
        }
    }

    /// The far end answered an outbound call.
    pub fn answered(&self, now: Millis) -> Result<ContactState, TransitionError> {
        match self {
            ContactState::Connecting { .. } => Ok(ContactState::Connected { since: now }),
            _ => self.refuse("answer"),
        }
    }

    /// The agent rejects a ringing contact.
    pub fn reject(&self, now: Millis) -> Result<ContactState, TransitionError> {
        match self {
            ContactState::Incoming { .. } => Ok(ContactState::Rejected { since: now }),
            _ => self.refuse("reject"),
        }
    }

    /// A ringing contact timed out at `now`, if its time has come.
    pub fn ring_out(&self, now: Millis) -> Option<ContactState> {
        match self {
            ContactState::Incoming { expires_at, .. } if now >= *expires_at => {
                Some(ContactState::Missed { since: now })
            }
            _ => None,
        }
    }

    /// The call ends for this agent: a live contact enters after-call work.
    pub fn end(&self, reason: &str, now: Millis) -> Result<ContactState, TransitionError> {
        match self {
            ContactState::Connecting { .. } | ContactState::Connected { .. } => {
                Ok(ContactState::Ended {
                    since: now,
                    reason: reason.to_owned(),
                })
            }
            _ => self.refuse("end"),
        }
    }

    /// Whether the agent may clear (destroy) the contact now.
    pub fn can_clear(&self) -> bool {
        matches!(
            self,
            ContactState::Ended { .. }
                | ContactState::Missed { .. }
                | ContactState::Rejected { .. }
                | ContactState::Error { .. }
        )
    }

    /// Whether the agent is on the call (dialing or connected).
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            ContactState::Connecting { .. } | ContactState::Connected { .. }
        )
    }
}

/// Whose leg a connection is, from the viewing agent's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// The viewing agent's own leg.
    Agent,
    /// The customer who called in (the initial connection).
    Inbound,
    /// The customer the agent called (the initial connection).
    Outbound,
    /// Another agent or number added to the contact.
    ThirdParty,
}

/// A connection's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "name",
    rename_all = "snake_case",
    try_from = "crate::state_wire::StateRecord<crate::state_wire::ConnectionStateName>"
)]
pub enum ConnectionState {
    /// Not yet dialed.
    Init,
    /// Ringing or dialing.
    Connecting {
        /// Since when.
        since: Millis,
    },
    /// Talking.
    Connected {
        /// Since when.
        since: Millis,
    },
    /// On hold: hears hold audio, its audio is not sent.
    Hold {
        /// Since when.
        since: Millis,
    },
    /// Gone.
    Disconnected {
        /// Since when.
        since: Millis,
        /// Why.
        reason: String,
    },
}

impl ConnectionState {
    /// The wire name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            ConnectionState::Init => "init",
            ConnectionState::Connecting { .. } => "connecting",
            ConnectionState::Connected { .. } => "connected",
            ConnectionState::Hold { .. } => "hold",
            ConnectionState::Disconnected { .. } => "disconnected",
        }
    }

    fn refuse<T>(&self, action: &'static str) -> Result<T, TransitionError> {
        Err(TransitionError {
            entity: "connection",
            from: self.name(),
            action,
        })
    }

    /// Dialing starts.
    pub fn dial(&self, now: Millis) -> Result<ConnectionState, TransitionError> {
        match self {
            ConnectionState::Init => Ok(ConnectionState::Connecting { since: now }),
            _ => self.refuse("dial"),
        }
    }

    /// The party answered.
    pub fn connect(&self, now: Millis) -> Result<ConnectionState, TransitionError> {
        match self {
            ConnectionState::Init | ConnectionState::Connecting { .. } => {
                Ok(ConnectionState::Connected { since: now })
            }
            _ => self.refuse("connect"),
        }
    }

    /// Put on hold.
    pub fn hold(&self, now: Millis) -> Result<ConnectionState, TransitionError> {
        match self {
            ConnectionState::Connected { .. } => Ok(ConnectionState::Hold { since: now }),
            _ => self.refuse("hold"),
        }
    }

    /// Taken off hold.
    pub fn resume(&self, now: Millis) -> Result<ConnectionState, TransitionError> {
        match self {
            ConnectionState::Hold { .. } => Ok(ConnectionState::Connected { since: now }),
            _ => self.refuse("resume"),
        }
    }

    /// Hung up.
    pub fn disconnect(
        &self,
        reason: &str,
        now: Millis,
    ) -> Result<ConnectionState, TransitionError> {
        match self {
            ConnectionState::Disconnected { .. } => self.refuse("disconnect"),
            _ => Ok(ConnectionState::Disconnected {
                since: now,
                reason: reason.to_owned(),
            }),
        }
    }

    /// Whether the party is on the call (talking or held).
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            ConnectionState::Connected { .. } | ConnectionState::Hold { .. }
        )
    }

    /// Whether the connection is over.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, ConnectionState::Disconnected { .. })
    }
}

/// One leg of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Unique within the contact.
    pub connection_id: String,
    /// Whose leg, from the viewer's side.
    pub kind: ConnectionKind,
    /// Who is on it.
    pub endpoint: Endpoint,
    /// Its state.
    pub state: ConnectionState,
    /// On the viewer's own connection: the media leg id its binary frames
    /// carry (both directions) while the call has audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_leg: Option<u32>,
}

/// A contact as one agent sees it. Sent whole on every change, so a client
/// never has to merge partial updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    /// The contact's id.
    pub contact_id: String,
    /// How it began for this agent.
    pub initiation: Initiation,
    /// This agent's state of it.
    pub state: ContactState,
    /// The queue it came through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueRef>,
    /// Contact attributes (customer data and anything agents set).
    pub attributes: BTreeMap<String, String>,
    /// Its connections, the viewer's own `agent` connection first.
    pub connections: Vec<Connection>,
    /// When the contact was created.
    pub created_at: Millis,
}

/// A queue named in a contact or routing profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRef {
    /// Configuration id.
    pub id: String,
    /// Display name.
    pub name: String,
}

impl ContactView {
    /// The viewer's own connection.
    pub fn agent_connection(&self) -> Option<&Connection> {
        self.connections
            .iter()
            .find(|c| c.kind == ConnectionKind::Agent)
    }

    /// The customer's connection.
    pub fn initial_connection(&self) -> Option<&Connection> {
        self.connections
            .iter()
            .find(|c| matches!(c.kind, ConnectionKind::Inbound | ConnectionKind::Outbound))
    }

    /// Other agents or numbers on the contact, disconnected ones included.
    pub fn third_party_connections(&self) -> impl Iterator<Item = &Connection> {
        self.connections
            .iter()
            .filter(|c| c.kind == ConnectionKind::ThirdParty)
    }

    /// Connections other than the viewer's that are talking or held.
    pub fn active_others(&self) -> impl Iterator<Item = &Connection> {
        self.connections
            .iter()
            .filter(|c| c.kind != ConnectionKind::Agent && c.state.is_active())
    }

    /// A connection by id.
    pub fn connection(&self, id: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.connection_id == id)
    }

    /// Toggling makes sense with two active others, one held, one talking.
    pub fn can_toggle(&self) -> bool {
        let mut held = 0;
        let mut talking = 0;
        for c in self.active_others() {
            match c.state {
                ConnectionState::Hold { .. } => held += 1,
                ConnectionState::Connected { .. } => talking += 1,
                _ => {}
            }
        }
        held == 1 && talking == 1
    }

    /// Conferencing makes sense with two or more active others, one held.
    pub fn can_conference(&self) -> bool {
        self.active_others().count() >= 2
            && self
                .active_others()
                .any(|c| matches!(c.state, ConnectionState::Hold { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_lifecycle() {
        let s = ContactState::Init;
        let s = s.offer(Millis(0), 20_000).expect("offer");
        assert_eq!(s.ring_out(Millis(19_999)), None);
        let s = s.accept(Millis(1_000)).expect("accept");
        assert!(s.is_live());
        let s = s.end("customer_disconnect", Millis(9_000)).expect("end");
        assert!(s.can_clear());
        assert_eq!(s.name(), "ended");
    }

    #[test]
    fn ringing_contact_rings_out() {
        let s = ContactState::Init.offer(Millis(0), 20_000).expect("offer");
        assert_eq!(
            s.ring_out(Millis(20_000)),
            Some(ContactState::Missed {
                since: Millis(20_000)
            })
        );
    }

    #[test]
    fn invalid_transitions_name_state_and_action() {
        let s = ContactState::Connected { since: Millis(0) };
        let err = s
            .accept(Millis(1))
            .expect_err("connected cannot be accepted");
        assert_eq!(err.to_string(), "cannot accept a contact that is connected");
        assert!(ContactState::Init.reject(Millis(0)).is_err());
        assert!(!ContactState::Connected { since: Millis(0) }.can_clear());
    }

    #[test]
    fn hold_and_resume_only_from_the_right_states() {
        let c = ConnectionState::Init.dial(Millis(0)).expect("dial");
        assert!(c.hold(Millis(1)).is_err());
        let c = c.connect(Millis(2)).expect("connect");
        let c = c.hold(Millis(3)).expect("hold");
        assert!(c.hold(Millis(4)).is_err());
        let c = c.resume(Millis(5)).expect("resume");
        let c = c.disconnect("hangup", Millis(6)).expect("disconnect");
        assert!(c.disconnect("again", Millis(7)).is_err());
        assert!(c.is_disconnected());
    }
}
