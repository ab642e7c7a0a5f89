//! The client's copy of the agent's world, rebuilt from a snapshot and
//! kept current by events, and the Streams-style contact changes
//! (incoming, connected, ended...) derived by comparing old and new views.

use std::collections::BTreeMap;

use protocol::agent::AgentStatusView;
use protocol::contact::{ContactState, ContactView};
use protocol::wire::{AgentConfiguration, Event, Snapshot};
use protocol::AgentState;

/// What the client knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientState {
    /// The last event applied.
    pub seq: u64,
    /// Agent data, once a snapshot arrived.
    pub agent: Option<AgentView>,
    /// Contacts by id.
    pub contacts: BTreeMap<String, ContactView>,
}

/// The agent part of the state.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    /// Status.
    pub status: AgentStatusView,
    /// Mute.
    pub muted: bool,
    /// Configuration.
    pub configuration: AgentConfiguration,
    /// Selectable states.
    pub states: Vec<AgentState>,
}

/// A contact lifecycle step, named as Streams names its contact events.
#[derive(Debug, Clone, PartialEq)]
pub enum ContactChange {
    /// A contact started ringing at this agent.
    Incoming(ContactView),
    /// An outbound call started dialing.
    Connecting(ContactView),
    /// The agent accepted (or the far end answered).
    Connected(ContactView),
    /// It rang out.
    Missed(ContactView),
    /// The call ended for this agent; after-call work begins.
    Ended(ContactView),
    /// Any other change (hold, attributes, third parties).
    Refreshed(ContactView),
    /// Gone (cleared, rejected, withdrawn).
    Destroyed(String),
}

impl ClientState {
    /// Replaces everything with a snapshot.
    pub fn apply_snapshot(&mut self, s: Snapshot) -> Vec<ContactChange> {
        let old = std::mem::take(&mut self.contacts);
        self.seq = s.seq;
        self.agent = Some(AgentView {
            status: s.status,
            muted: s.muted,
            configuration: s.configuration,
            states: s.states,
        });
        let mut changes = Vec::new();
        for c in s.contacts {
            changes.extend(diff(old.get(&c.contact_id), &c));
            self.contacts.insert(c.contact_id.clone(), c);
        }
        for id in old.keys().filter(|id| !self.contacts.contains_key(*id)) {
            changes.push(ContactChange::Destroyed(id.clone()));
        }
        changes
    }

    /// Applies one event (the caller has checked its sequence number).
    pub fn apply_event(&mut self, seq: u64, event: &Event) -> Vec<ContactChange> {
        self.seq = seq;
        match event {
            Event::AgentStateChanged(status) => {
                if let Some(a) = &mut self.agent {
                    a.status = status.clone();
                }
                Vec::new()
            }
            Event::MuteChanged { muted } => {
                if let Some(a) = &mut self.agent {
                    a.muted = *muted;
                }
                Vec::new()
            }
            Event::ContactUpdated(view) => {
                let changes = diff(self.contacts.get(&view.contact_id), view);
                self.contacts.insert(view.contact_id.clone(), view.clone());
                changes.into_iter().collect()
            }
            Event::ContactDestroyed { contact_id } => {
                self.contacts.remove(contact_id);
                vec![ContactChange::Destroyed(contact_id.clone())]
            }
            Event::Digits { .. } => Vec::new(),
        }
    }
}

/// The lifecycle step from `old` to `new`.
fn diff(old: Option<&ContactView>, new: &ContactView) -> Option<ContactChange> {
    let same_state = old.is_some_and(|o| o.state.name() == new.state.name());
    if same_state {
        return (old != Some(new)).then(|| ContactChange::Refreshed(new.clone()));
    }
    Some(match new.state {
        ContactState::Incoming { .. } => ContactChange::Incoming(new.clone()),
        ContactState::Connecting { .. } => ContactChange::Connecting(new.clone()),
        ContactState::Connected { .. } => ContactChange::Connected(new.clone()),
        ContactState::Missed { .. } => ContactChange::Missed(new.clone()),
        ContactState::Ended { .. } => ContactChange::Ended(new.clone()),
        _ => ContactChange::Refreshed(new.clone()),
    })
}
