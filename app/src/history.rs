//! The agent's call history: every contact the agent had, with who, which
//! queue, how it ended, when, how long the conversation lasted and the
//! wrap-up code chosen. Built by watching contact views come and go.
//!
//! It survives a reload: the leading tab (the one every op passes
//! through, so it sees each `clear`'s wrap-up code) records it in
//! localStorage (`store::Key::History`), for the agent it belongs to;
//! other tabs read it from there whenever their mirrored state moves on.
//! A logout forgets it (a shared computer keeps no customer numbers).

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
    /// Who: the customer's endpoint name (the number for a phone call).
    pub who: String,
    /// The customer's phone number (E.164), to call back.
    pub number: Option<String>,
    /// Queue name, if any.
    pub queue: Option<String>,
    /// How it went.
    pub outcome: Outcome,
    /// Talk time, ms (connected to ended).
    pub talk_ms: u64,
    /// When it finished, ms since the epoch (shown as the time of day).
    pub at: u64,
    /// The wrap-up code chosen when it was cleared.
    pub wrap_up: Option<String>,
}

impl Entry {
    /// One line of the stored history: tab-separated fields (tabs and
    /// line breaks inside a field become spaces).
    fn encode(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        let opt = |s: &Option<String>| s.as_deref().map(clean).unwrap_or_default();
        [
            self.outcome.name().to_owned(),
            self.at.to_string(),
            self.talk_ms.to_string(),
            clean(&self.contact_id),
            clean(&self.who),
            opt(&self.number),
            opt(&self.queue),
            opt(&self.wrap_up),
        ]
        .join("\t")
    }

    /// A stored line; `None` for anything malformed (it is skipped).
    fn decode(line: &str) -> Option<Entry> {
        let f: Vec<&str> = line.split('\t').collect();
        let [outcome, at, talk_ms, contact_id, who, number, queue, wrap_up] = f[..] else {
            return None;
        };
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Some(Entry {
            outcome: match outcome {
                "answered" => Outcome::Answered,
                "outbound" => Outcome::Outbound,
                "missed" => Outcome::Missed,
                "rejected" => Outcome::Rejected,
                "abandoned" => Outcome::Abandoned,
                _ => return None,
            },
            at: at.parse().ok()?,
            talk_ms: talk_ms.parse().ok()?,
            contact_id: contact_id.to_owned(),
            who: who.to_owned(),
            number: opt(number),
            queue: opt(queue),
            wrap_up: opt(wrap_up),
        })
    }
}

/// The stored history of `agent`: the agent's name on the first line,
/// then one entry a line, oldest first.
pub fn encode(agent: &str, entries: &[Entry]) -> String {
    let mut text = agent.replace(['\t', '\n', '\r'], " ");
    for e in entries {
        text.push('\n');
        text += &e.encode();
    }
    text
}

/// The entries of a stored history if it is `agent`'s (the newest
/// `MAX_ENTRIES`); nothing for another agent's or an unreadable one.
pub fn decode(agent: &str, text: &str) -> Vec<Entry> {
    let mut lines = text.split('\n');
    if lines.next() != Some(agent) {
        return Vec::new();
    }
    let mut entries: Vec<Entry> = lines.filter_map(Entry::decode).collect();
    let over = entries.len().saturating_sub(MAX_ENTRIES);
    entries.drain(..over);
    entries
}

#[derive(Debug, Clone, Default)]
struct Tracking {
    who: String,
    number: Option<String>,
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
    /// that are gone since the last call, with the wrap-up code
    /// `wrap_up_of` knows for each.
    pub fn observe(
        &mut self,
        contacts: &BTreeMap<String, ContactView>,
        now_ms: u64,
        wrap_up_of: impl Fn(&str) -> Option<String>,
    ) -> Vec<Entry> {
        for (id, v) in contacts {
            let t = self.tracking.entry(id.clone()).or_default();
            let customer = v.initial_connection().map(|c| &c.endpoint);
            t.who = customer.map(|e| e.name.clone()).unwrap_or_default();
            t.number = customer.and_then(|e| e.phone_number.clone());
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
                    wrap_up: wrap_up_of(&id),
                    contact_id: id,
                    who: t.who,
                    number: t.number,
                    queue: t.queue,
                    outcome,
                    talk_ms,
                    at: now_ms,
                })
            })
            .collect()
    }
}

/// The agent's finished contacts, oldest first, observed from the
/// session's state. The leading tab records them (with the wrap-up codes
/// its ops carried) and stores them; a follower reads the stored history
/// each time its mirrored state moves on. Contacts forgotten at a logout
/// or a displacement did not finish, so nothing is recorded for them.
pub fn use_history(ccp: crate::ccp::Ccp) -> leptos::prelude::RwSignal<Vec<Entry>> {
    use crate::store::{self, Key};
    use leptos::prelude::*;
    let entries = RwSignal::new(Vec::new());
    let mut tracker = History::default();
    leptos::reactive::effect::ImmediateEffect::new_mut_scoped(move || {
        let agent = ccp
            .state
            .with(|s| s.agent.as_ref().map(|a| a.configuration.username.clone()));
        let (Some(agent), true) = (agent, ccp.logged_in()) else {
            tracker = History::default();
            if !entries.with_untracked(Vec::is_empty) {
                entries.set(Vec::new());
            }
            return;
        };
        let stored = store::get(Key::History).map(|t| decode(&agent, &t));
        if !ccp.leader.get() {
            // The leader records; this tab shows what it stored.
            entries.set(stored.unwrap_or_default());
            return;
        }
        let now = streams_sdk::web::now().0;
        let done = ccp
            .state
            .with(|s| tracker.observe(&s.contacts, now, crate::ccp::Ccp::wrap_up_of));
        // After a reload (or on becoming the leader) the stored history
        // is the one to extend.
        let mut list = match stored {
            Some(list) if entries.with_untracked(Vec::is_empty) => list,
            _ => entries.get_untracked(),
        };
        if done.is_empty() && entries.with_untracked(|e| *e == list) {
            return;
        }
        list.extend(done);
        // Bounded: a long shift keeps its latest contacts.
        let over = list.len().saturating_sub(MAX_ENTRIES);
        list.drain(..over);
        store::set(Key::History, &encode(&agent, &list));
        entries.set(list);
    });
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> Entry {
        Entry {
            contact_id: format!("c{n}"),
            who: "+819012345678".into(),
            number: Some("+819012345678".into()),
            queue: Some("Support\tdesk".into()),
            outcome: Outcome::Answered,
            talk_ms: 61_000,
            at: 1_764_480_000_000 + n,
            wrap_up: Some("Resolved".into()),
        }
    }

    #[test]
    fn stored_history_reads_back_for_its_agent_only() {
        let list = vec![entry(1), entry(2)];
        let text = encode("alice", &list);
        let back = decode("alice", &text);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].queue.as_deref(), Some("Support desk"));
        assert_eq!(back[1].wrap_up.as_deref(), Some("Resolved"));
        assert_eq!(back[1].at, list[1].at);
        assert!(decode("bob", &text).is_empty());
        assert!(decode("alice", "alice\ngarbage\tline").is_empty());
    }
}
