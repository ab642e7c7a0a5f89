//! Which waiting contact goes to which agent: a pure function of the
//! waiting contacts, the idle routable agents and `now`, so the rules are
//! tested on a virtual clock without sockets or a database.
//!
//! Agents are served longest-idle first. Each takes, among the contacts in
//! its routing profile's queues that have waited at least that queue's
//! delay, the one in the lowest priority number, then the lowest contact
//! priority (a flow's `change_routing_priority`), oldest first.

use protocol::Millis;

use crate::config::ProfileQueue;

/// A contact waiting in a queue.
#[derive(Debug, Clone)]
pub struct Waiting<'a> {
    /// Contact id.
    pub contact: &'a str,
    /// Queue id.
    pub queue: &'a str,
    /// When it entered the queue (kept across ring-outs, so it keeps its place).
    pub since: Millis,
    /// Agents that must not be offered this contact now (they rejected it
    /// moments ago, or are already on it).
    pub excluded: &'a [String],
    /// The contact's own priority, lower first ([`DEFAULT_PRIORITY`]
    /// unless a flow changed it).
    pub priority: i64,
}

/// A contact's priority when no flow set one (Amazon Connect's default).
pub const DEFAULT_PRIORITY: i64 = 5;

/// An agent that could take a contact now.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Username.
    pub agent: &'a str,
    /// Idle since (the longest idle goes first).
    pub idle_since: Millis,
    /// Its routing profile's queues.
    pub queues: &'a [ProfileQueue],
}

/// Pairs contacts with agents. Each contact and each agent appears at most once.
pub fn assign<'a>(
    waiting: &[Waiting<'a>],
    candidates: &[Candidate<'a>],
    now: Millis,
) -> Vec<(&'a str, &'a str)> {
    let mut order: Vec<&Candidate<'a>> = candidates.iter().collect();
    order.sort_by(|a, b| a.idle_since.cmp(&b.idle_since).then(a.agent.cmp(b.agent)));
    let mut taken = vec![false; waiting.len()];
    let mut out = Vec::new();
    for agent in order {
        let mut best: Option<(u32, i64, Millis, usize)> = None;
        for (i, w) in waiting.iter().enumerate() {
            if taken[i] || w.excluded.iter().any(|a| a == agent.agent) {
                continue;
            }
            let Some(pq) = agent.queues.iter().find(|q| q.queue == w.queue) else {
                continue;
            };
            if now.since(w.since) < u64::from(pq.delay_s) * 1000 {
                continue;
            }
            let key = (pq.priority, w.priority, w.since, i);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        if let Some((_, _, _, i)) = best {
            taken[i] = true;
            out.push((waiting[i].contact, agent.agent));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pq(queue: &str, priority: u32, delay_s: u32) -> ProfileQueue {
        ProfileQueue {
            queue: queue.into(),
            priority,
            delay_s,
        }
    }

    fn w<'a>(contact: &'a str, queue: &'a str, since: u64) -> Waiting<'a> {
        Waiting {
            contact,
            queue,
            since: Millis(since),
            excluded: &[],
            priority: DEFAULT_PRIORITY,
        }
    }

    #[test]
    fn longest_idle_agent_gets_the_contact() {
        let profile = [pq("support", 1, 0)];
        let agents = [
            Candidate {
                agent: "recent",
                idle_since: Millis(9_000),
                queues: &profile,
            },
            Candidate {
                agent: "longest",
                idle_since: Millis(1_000),
                queues: &profile,
            },
        ];
        let got = assign(&[w("c1", "support", 10_000)], &agents, Millis(10_000));
        assert_eq!(got, vec![("c1", "longest")]);
    }

    #[test]
    fn lower_priority_number_wins_over_older_contact() {
        let profile = [pq("vip", 1, 0), pq("general", 2, 0)];
        let agents = [Candidate {
            agent: "a",
            idle_since: Millis(0),
            queues: &profile,
        }];
        let waiting = [
            w("old-general", "general", 1_000),
            w("new-vip", "vip", 5_000),
        ];
        assert_eq!(
            assign(&waiting, &agents, Millis(6_000)),
            vec![("new-vip", "a")]
        );
    }

    #[test]
    fn within_a_priority_the_oldest_contact_goes_first() {
        let profile = [pq("a", 1, 0), pq("b", 1, 0)];
        let agents = [Candidate {
            agent: "x",
            idle_since: Millis(0),
            queues: &profile,
        }];
        let waiting = [w("newer", "a", 5_000), w("older", "b", 1_000)];
        assert_eq!(
            assign(&waiting, &agents, Millis(6_000)),
            vec![("older", "x")]
        );
    }

    #[test]
    fn delay_holds_a_contact_back_from_an_overflow_profile() {
        let overflow = [pq("billing", 2, 30)];
        let agents = [Candidate {
            agent: "helper",
            idle_since: Millis(0),
            queues: &overflow,
        }];
        let waiting = [w("c1", "billing", 100_000)];
        assert!(assign(&waiting, &agents, Millis(129_999)).is_empty());
        assert_eq!(
            assign(&waiting, &agents, Millis(130_000)),
            vec![("c1", "helper")]
        );
    }

    #[test]
    fn queue_outside_the_profile_is_never_offered() {
        let profile = [pq("support", 1, 0)];
        let agents = [Candidate {
            agent: "a",
            idle_since: Millis(0),
            queues: &profile,
        }];
        assert!(assign(&[w("c1", "billing", 0)], &agents, Millis(99_000)).is_empty());
    }

    #[test]
    fn each_agent_and_contact_is_used_once_and_exclusions_hold() {
        let profile = [pq("q", 1, 0)];
        let agents = [
            Candidate {
                agent: "a",
                idle_since: Millis(1),
                queues: &profile,
            },
            Candidate {
                agent: "b",
                idle_since: Millis(2),
                queues: &profile,
            },
            Candidate {
                agent: "c",
                idle_since: Millis(3),
                queues: &profile,
            },
        ];
        let excluded = vec!["a".to_string()];
        let waiting = [
            Waiting {
                contact: "c1",
                queue: "q",
                since: Millis(0),
                excluded: &excluded,
                priority: DEFAULT_PRIORITY,
            },
            w("c2", "q", 10),
        ];
        let got = assign(&waiting, &agents, Millis(100));
        assert_eq!(got, vec![("c2", "a"), ("c1", "b")]);
    }

    #[test]
    fn a_lower_contact_priority_goes_first_within_a_queue() {
        let profile = [pq("q", 1, 0)];
        let agents = [Candidate {
            agent: "a",
            idle_since: Millis(0),
            queues: &profile,
        }];
        let mut urgent = w("urgent", "q", 9_000);
        urgent.priority = 1;
        let got = assign(&[w("old", "q", 1_000), urgent], &agents, Millis(10_000));
        assert_eq!(got, vec![("urgent", "a")]);
        // Same priority: the older one.
        let got = assign(
            &[w("old", "q", 1_000), w("new", "q", 9_000)],
            &agents,
            Millis(10_000),
        );
        assert_eq!(got, vec![("old", "a")]);
    }
}
