//! This session's call history: every contact the agent had, with who,
//! which queue, how it ended and how long the conversation lasted. Built
//! by watching contact views come and go; kept in memory for the session.

use std::collections::BTreeMap;

use protocol::contact::{ContactState, ContactView, Initiation};

/// Entries kept; older ones are dropped.
const MAX_ENTRIES: usize = 200;

/// How a contact went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Connected, then ended.
    Answered,
    /// An outbound call that connected.
    Outbound,
    /// Rang out.
    Missed,
    /// Rejected by the agent.
    Rejected,
    /// Gone before it was answered (the caller hung up, a transfer was withdrawn).
    Abandoned,
}

impl Outcome {
    /// Its name for tests and styles (`answered`, `missed`…).
    pub fn name(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Outbound => "outbound",
            Self::Missed => "missed",
            Self::Rejected => "rejected",
            Self::Abandoned => "abandoned",
        }
    }

    /// English label (translated by the panel).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Answered => "Answered",
            Outcome::Outbound => "Outbound",
            Outcome::Missed => "Missed call",
            Outcome::Rejected => "Rejected",
            Outcome::Abandoned => "Abandoned",
        }
    }
}

/// One finished contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Contact id.
    pub contact_id: String,
    /// The customer's number.
    pub who: String,
    /// Queue name, if any.
    pub queue: Option<String>,
    /// How it went.
    pub outcome: Outcome,
    /// Talk time, ms (connected to ended).
    pub talk_ms: u64,
}

#[derive(Debug, Clone, Default)]
struct Tracking {
    who: String,
    queue: Option<String>,
    outbound: bool,
    connected_at: Option<u64>,
    ended_at: Option<u64>,
    last: Option<&'static str>,
}

/// Watches contacts and produces entries when they go.
#[derive(Debug, Default)]
pub struct History {
    tracking: BTreeMap<String, Tracking>,
}

impl History {
    /// Updates with the current contacts; returns the entries for contacts
    /// that are gone since the last call.
    pub fn observe(&mut self, contacts: &BTreeMap<String, ContactView>, now_ms: u64) -> Vec<Entry> {
        for (id, v) in contacts {
            let t = self.tracking.entry(id.clone()).or_default();
            t.who = v
                .initial_connection()
                .map(|c| c.endpoint.name.clone())
                .unwrap_or_default();
            t.queue = v.queue.as_ref().map(|q| q.name.clone());
            t.outbound = v.initiation == Initiation::Outbound;
            match &v.state {
                ContactState::Connected { since } => {
                    t.connected_at.get_or_insert(since.0);
                }
                ContactState::Ended { since, .. } => {
                    t.ended_at.get_or_insert(since.0);
                }
                _ => {}
            }
            t.last = Some(v.state.name());
        }
        let gone: Vec<String> = self
            .tracking
            .keys()
            .filter(|id| !contacts.contains_key(*id))
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|id| {
                let t = self.tracking.remove(&id)?;
                let outcome = match (t.connected_at, t.last) {
                    (Some(_), _) if t.outbound => Outcome::Outbound,
                    (Some(_), _) => Outcome::Answered,
                    (None, Some("missed")) => Outcome::Missed,
                    (None, Some("rejected")) => Outcome::Rejected,
                    _ => Outcome::Abandoned,
                };
                let talk_ms = match t.connected_at {
                    Some(start) => t.ended_at.unwrap_or(now_ms).saturating_sub(start),
                    None => 0,
                };
                Some(Entry {
                    contact_id: id,
                    who: t.who,
                    queue: t.queue,
                    outcome,
                    talk_ms,
                })
            })
            .collect()
    }
}

/// The session's finished contacts, oldest first, observed from the
/// session's state in every tab. Contacts forgotten at a logout or a
/// displacement did not finish, so nothing is recorded for them.
pub fn use_history(ccp: crate::ccp::Ccp) -> leptos::prelude::RwSignal<Vec<Entry>> {
    use leptos::prelude::*;
    let entries = RwSignal::new(Vec::new());
    let mut tracker = History::default();
    leptos::reactive::effect::ImmediateEffect::new_mut_scoped(move || {
        if !ccp.logged_in() {
            tracker = History::default();
            return;
        }
        let now = streams_sdk::web::now().0;
        let done = ccp.state.with(|s| tracker.observe(&s.contacts, now));
        if !done.is_empty() {
            entries.update(|h| {
                h.extend(done);
                // Bounded: a long shift keeps its latest contacts.
                let over = h.len().saturating_sub(MAX_ENTRIES);
                h.drain(..over);
            });
        }
    });
    entries
}
