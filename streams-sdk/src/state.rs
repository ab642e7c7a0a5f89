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
    /// The agent accepted a contact that was ringing at it.
    Accepted(ContactView),
    /// Connected without ringing at the agent first (the far end answered
    /// an outbound call, or a transfer or snapshot found it connected).
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

impl ContactChange {
    /// The SDK events this change fires, in order: the one table the JS
    /// SDK emits from (it receives them with each `state` push), so no
    /// client re-derives them from state diffs.
    pub fn events(&self) -> &'static [&'static str] {
        match self {
            ContactChange::Incoming(_) => &["incoming"],
            ContactChange::Connecting(_) => &["connecting"],
            ContactChange::Accepted(_) => &["accepted", "connected"],
            ContactChange::Connected(_) => &["connected"],
            ContactChange::Missed(_) => &["missed"],
            ContactChange::Ended(_) => &["ended", "afterCallWork"],
            ContactChange::Refreshed(_) => &["contactRefresh"],
            ContactChange::Destroyed(_) => &["destroyed"],
        }
    }

    /// The lifecycle step's name on the frame wire (`change`).
    pub fn name(&self) -> &'static str {
        match self {
            ContactChange::Incoming(_) => "incoming",
            ContactChange::Connecting(_) => "connecting",
            ContactChange::Accepted(_) | ContactChange::Connected(_) => "connected",
            ContactChange::Missed(_) => "missed",
            ContactChange::Ended(_) => "ended",
            ContactChange::Refreshed(_) => "refresh",
            ContactChange::Destroyed(_) => "destroyed",
        }
    }

    /// The contact it is about.
    pub fn contact_id(&self) -> &str {
        match self {
            ContactChange::Incoming(v)
            | ContactChange::Connecting(v)
            | ContactChange::Accepted(v)
            | ContactChange::Connected(v)
            | ContactChange::Missed(v)
            | ContactChange::Ended(v)
            | ContactChange::Refreshed(v) => &v.contact_id,
            ContactChange::Destroyed(id) => id,
        }
    }
}

impl ClientState {
    /// The contacts, oldest first (by creation; ties keep id order). An
    /// insertion sort on purpose: an agent has a handful of contacts, and
    /// each use of the standard library's stable sort links its own
    /// monomorphised driftsort into the CCP (about 1.3 KB of wasm apiece).
    pub fn contacts_oldest_first(&self) -> Vec<ContactView> {
        let mut v: Vec<ContactView> = self.contacts.values().cloned().collect();
        for i in 1..v.len() {
            let mut j = i;
            while j > 0 && v[j - 1].created_at > v[j].created_at {
                v.swap(j - 1, j);
                j -= 1;
            }
        }
        v
    }

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
        ContactState::Connected { .. }
            if old.is_some_and(|o| matches!(o.state, ContactState::Incoming { .. })) =>
        {
            ContactChange::Accepted(new.clone())
        }
        ContactState::Connected { .. } => ContactChange::Connected(new.clone()),
        ContactState::Missed { .. } => ContactChange::Missed(new.clone()),
        ContactState::Ended { .. } => ContactChange::Ended(new.clone()),
        _ => ContactChange::Refreshed(new.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::contact::Initiation;

    fn view(id: &str, state: ContactState) -> ContactView {
        let mut v: ContactView = serde_json::from_value(serde_json::json!({
            "contact_id": id, "initiation": "inbound", "state": {"name": "init"},
            "attributes": {}, "connections": [], "created_at": 1
        }))
        .expect("a contact view");
        v.state = state;
        v.initiation = Initiation::Inbound;
        v
    }

    fn event_names(changes: &[ContactChange]) -> Vec<&'static str> {
        changes
            .iter()
            .flat_map(|c| c.events().iter().copied())
            .collect()
    }

    /// The SDK events of an inbound call accepted and one dialed out, as
    /// the core names them from the contact's previous state.
    #[test]
    fn the_core_names_the_sdk_events_of_a_call() {
        let mut s = ClientState::default();
        let t = protocol::Millis(5);
        let ring = ContactState::Incoming {
            since: t,
            expires_at: t,
        };
        let talk = ContactState::Connected { since: t };
        let mut seq = 0;
        let mut step = |s: &mut ClientState, v: ContactView| {
            seq += 1;
            event_names(&s.apply_event(seq, &Event::ContactUpdated(v)))
        };
        assert_eq!(step(&mut s, view("in", ring)), ["incoming"]);
        assert_eq!(
            step(&mut s, view("in", talk.clone())),
            ["accepted", "connected"]
        );
        let mut held = view("in", talk.clone());
        held.attributes.insert("k".into(), "v".into());
        assert_eq!(step(&mut s, held), ["contactRefresh"]);
        let ended = ContactState::Ended {
            since: t,
            reason: "customer_disconnect".into(),
        };
        assert_eq!(step(&mut s, view("in", ended)), ["ended", "afterCallWork"]);
        let gone = s.apply_event(
            9,
            &Event::ContactDestroyed {
                contact_id: "in".into(),
            },
        );
        assert_eq!(event_names(&gone), ["destroyed"]);
        // Outbound: dialing, then the far end answers; nothing was accepted.
        let mut s = ClientState::default();
        assert_eq!(
            event_names(&s.apply_event(
                1,
                &Event::ContactUpdated(view("out", ContactState::Connecting { since: t }))
            )),
            ["connecting"]
        );
        assert_eq!(
            event_names(&s.apply_event(2, &Event::ContactUpdated(view("out", talk)))),
            ["connected"]
        );
    }

    /// The JS SDK's allow-list of contact events is the core's table.
    #[test]
    fn the_js_sdk_knows_every_event_the_core_names() {
        let v = view("c", ContactState::Init);
        let all = [
            ContactChange::Incoming(v.clone()),
            ContactChange::Connecting(v.clone()),
            ContactChange::Accepted(v.clone()),
            ContactChange::Connected(v.clone()),
            ContactChange::Missed(v.clone()),
            ContactChange::Ended(v.clone()),
            ContactChange::Refreshed(v),
        ];
        let mut names: Vec<&str> = Vec::new();
        for c in &all {
            for e in c.events() {
                if !names.contains(e) {
                    names.push(e);
                }
            }
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/js/switchboard.js");
        let js = std::fs::read_to_string(path).expect("switchboard.js");
        let line = js
            .lines()
            .find(|l| l.starts_with("const CONTACT_EVENTS = ["))
            .expect("CONTACT_EVENTS in switchboard.js");
        let listed: Vec<&str> = line.split('\'').skip(1).step_by(2).collect();
        let mut want = names.clone();
        want.sort_unstable();
        let mut got = listed.clone();
        got.sort_unstable();
        assert_eq!(
            got, want,
            "switchboard.js CONTACT_EVENTS vs ContactChange::events"
        );
        // Every one is a documented SDK event.
        for name in names.iter().chain(&["destroyed"]) {
            assert!(
                js.contains(&format!("}} {name} ")),
                "{name} is not in SessionEvents"
            );
        }
    }
}
