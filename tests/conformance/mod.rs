//! A conformance suite for any backend that implements docs/protocol.md.
//!
//! It drives a running backend over its public interface only (HTTP
//! login, the WebSocket, an inbound call started from outside) and checks
//! what comes back on the wire, as raw JSON against the contract and the
//! golden files, never through this project's own types, so a lenient
//! decoder cannot hide a wrong shape. Nothing here touches the reference
//! backend's internals: point it at any URL. Each check reports PASS,
//! FAIL or SKIP with the reason and the section of the contract it comes
//! from; checks whose id starts with `limits.` test the resource bounds of
//! issue 10 and can be selected or skipped as a group.
//!
//! Entry points: [`run`] (the library, used by the CI test that runs the
//! suite against the reference backend) and `tests/bin/conformance.rs`
//! (the command behind `cargo xtask conformance`).

mod checks;
pub mod client;
mod limits;
pub mod shape;

use std::fmt::Write as _;

pub use client::Endpoint;

/// A test agent's credentials.
#[derive(Debug, Clone)]
pub struct Agent {
    /// User name for `POST /v1/login`.
    pub username: String,
    /// Password.
    pub password: String,
}

impl Agent {
    /// Parses `USER:PASS`.
    pub fn parse(s: &str) -> Result<Agent, String> {
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: an agent is USER:PASS"))?;
        if u.is_empty() {
            return Err(format!("`{s}`: empty user name"));
        }
        Ok(Agent {
            username: u.to_owned(),
            password: p.to_owned(),
        })
    }
}

/// How the suite makes an inbound call ring in a queue the agents serve.
#[derive(Debug, Clone)]
pub enum CallSource {
    /// No way: the call checks are skipped.
    None,
    /// The reference backend's simulator: `POST /v1/sim/calls`.
    Simulator {
        /// The simulator key, sent as `Authorization: Bearer KEY`, when the
        /// backend requires one.
        key: Option<String>,
        /// The caller's number.
        from: String,
        /// The queue to call.
        queue: String,
    },
    /// A shell command (`sh -c`) that makes a call ring in such a queue.
    Command(String),
}

/// What to test and how.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where the backend listens.
    pub endpoint: Endpoint,
    /// Two test agents: the first takes the call, the second is the
    /// stranger for the ownership checks. Both should be free of contacts.
    pub agents: [Agent; 2],
    /// How to start a call.
    pub call: CallSource,
    /// Check ids (or prefixes such as `limits`) to run; empty for all.
    pub only: Vec<String>,
    /// Check ids (or prefixes) to leave out.
    pub skip: Vec<String>,
}

impl Target {
    /// Whether check `id` is selected by `--only` / `--skip`.
    pub fn selected(&self, id: &str) -> bool {
        let matches = |p: &String| id == p || id.starts_with(&format!("{p}."));
        (self.only.is_empty() || self.only.iter().any(matches)) && !self.skip.iter().any(matches)
    }

    /// Whether any selected check starts with `group`.
    pub fn group_selected(&self, group: &str) -> bool {
        let hit = |p: &String| {
            p == group || p.starts_with(&format!("{group}.")) || group.starts_with(&format!("{p}."))
        };
        (self.only.is_empty() || self.only.iter().any(hit)) && !self.skip.iter().any(|p| p == group)
    }
}

/// A check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The backend did what the contract says.
    Pass,
    /// It did not: why.
    Fail(String),
    /// The check could not run: why.
    Skip(String),
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// Stable id, e.g. `hello.unsupported_version`.
    pub id: String,
    /// What the contract says, in a line.
    pub title: String,
    /// Where the contract says it (`protocol.md §3`).
    pub section: String,
    /// The verdict.
    pub outcome: Outcome,
}

/// Every result of a run, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The results.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// Results that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
    }

    /// The result of check `id`.
    pub fn get(&self, id: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.id == id)
    }

    /// The report as text, one line per check and the reason below it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let width = self.results.iter().map(|r| r.id.len()).max().unwrap_or(0);
        for r in &self.results {
            let (tag, why) = match &r.outcome {
                Outcome::Pass => ("PASS", None),
                Outcome::Fail(w) => ("FAIL", Some(w)),
                Outcome::Skip(w) => ("SKIP", Some(w)),
            };
            let _ = writeln!(out, "{tag}  {:width$}  {} ({})", r.id, r.title, r.section);
            if let Some(why) = why {
                for line in why.lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
        let count = |f: fn(&Outcome) -> bool| self.results.iter().filter(|r| f(&r.outcome)).count();
        let _ = writeln!(
            out,
            "\n{} checks: {} passed, {} failed, {} skipped",
            self.results.len(),
            count(|o| *o == Outcome::Pass),
            count(|o| matches!(o, Outcome::Fail(_))),
            count(|o| matches!(o, Outcome::Skip(_))),
        );
        out
    }
}

/// Runs the suite against `target`. Progress goes to `progress` (one line
/// per check as it finishes) so a long run shows where it is.
pub async fn run(target: &Target, progress: &mut (dyn FnMut(&CheckResult) + Send)) -> Report {
    checks::run(target, progress).await
}
