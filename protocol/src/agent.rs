//! The agent's status and the rules that move it.
//!
//! An agent chooses among configured states (Available, Offline, break
//! states). While the agent handles contacts the backend moves it through
//! system states (CallingCustomer, Busy, AfterCallWork) and, when a call
//! rings out unanswered, the error state MissedCallAgent. A state chosen
//! while busy becomes the *next state*, applied once every contact is
//! cleared; with none chosen the agent returns to the state it chose last.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// The class of a state, as in Amazon Connect's `AgentStateType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStateKind {
    /// Contacts are routed to the agent.
    Routable,
    /// Logged in, but no contacts are routed (breaks, training).
    NotRoutable,
    /// Signed out of routing.
    Offline,
    /// Set by the backend while the agent works a contact.
    System,
    /// Set by the backend after a failure, such as a missed call.
    Error,
}

/// A named agent state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentState {
    /// Display and wire name, e.g. `Available`, `Lunch`, `MissedCallAgent`.
    pub name: String,
    /// Its class.
    pub kind: AgentStateKind,
}

impl AgentState {
    /// A state with this name and class.
    pub fn new(name: &str, kind: AgentStateKind) -> Self {
        AgentState {
            name: name.to_owned(),
            kind,
        }
    }
    /// The default routable state.
    pub fn available() -> Self {
        Self::new("Available", AgentStateKind::Routable)
    }
    /// The default offline state.
    pub fn offline() -> Self {
        Self::new("Offline", AgentStateKind::Offline)
    }
    /// System state while a contact is connected.
    pub fn busy() -> Self {
        Self::new("Busy", AgentStateKind::System)
    }
    /// System state while an outbound call is dialing.
    pub fn calling_customer() -> Self {
        Self::new("CallingCustomer", AgentStateKind::System)
    }
    /// System state after a contact ended, until the agent clears it.
    pub fn after_call_work() -> Self {
        Self::new("AfterCallWork", AgentStateKind::System)
    }
    /// Error state after a routed contact rang out unanswered.
    pub fn missed_call() -> Self {
        Self::new("MissedCallAgent", AgentStateKind::Error)
    }
    /// Whether an agent may choose this state (system and error states are
    /// the backend's to set).
    pub fn is_selectable(&self) -> bool {
        matches!(
            self.kind,
            AgentStateKind::Routable | AgentStateKind::NotRoutable | AgentStateKind::Offline
        )
    }
}

/// The agent's status as seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatusView {
    /// The current state.
    pub state: AgentState,
    /// When it was entered.
    pub since: Millis,
    /// A state chosen during a contact, applied when the contacts are cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_state: Option<AgentState>,
}

/// What the agent is doing with contacts, as far as its status cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// No contact at all.
    Idle,
    /// A contact is ringing or dialing, or in after-call work.
    Engaged,
}

/// The agent status machine. Every method returns `true` when the visible
/// status changed, so the driver knows to emit `agent_state_changed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    current: AgentState,
    since: Millis,
    next: Option<AgentState>,
    /// The last state the agent chose; the status returns to it after work.
    chosen: AgentState,
}

/// Why a requested state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// System and error states are set by the backend only.
    #[error("state {0} cannot be chosen by an agent")]
    NotSelectable(String),
}

impl AgentStatus {
    /// A status starting in `initial` (usually Offline) at `now`.
    pub fn new(initial: AgentState, now: Millis) -> Self {
        AgentStatus {
            current: initial.clone(),
            since: now,
            next: None,
            chosen: initial,
        }
    }

    /// Restores a persisted status exactly.
    pub fn restore(view: AgentStatusView, chosen: AgentState) -> Self {
        AgentStatus {
            current: view.state,
            since: view.since,
            next: view.next_state,
            chosen,
        }
    }

    /// The current state.
    pub fn current(&self) -> &AgentState {
        &self.current
    }

    /// The last state the agent chose itself.
    pub fn chosen(&self) -> &AgentState {
        &self.chosen
    }

    /// Whether contacts may be routed to the agent now.
    pub fn is_routable(&self) -> bool {
        self.current.kind == AgentStateKind::Routable
    }

    /// The wire view.
    pub fn view(&self) -> AgentStatusView {
        AgentStatusView {
            state: self.current.clone(),
            since: self.since,
            next_state: self.next.clone(),
        }
    }

    fn enter(&mut self, state: AgentState, now: Millis) -> bool {
        if self.current == state {
            return false;
        }
        self.current = state;
        self.since = now;
        true
    }

    /// The agent asks for `target`. Idle, it applies at once; with work in
    /// hand it becomes the next state (asking for the state already in
    /// force, or for the chosen state, cancels a pending next state).
    pub fn request(
        &mut self,
        target: AgentState,
        workload: Workload,
        now: Millis,
    ) -> Result<bool, StatusError> {
        if !target.is_selectable() {
            return Err(StatusError::NotSelectable(target.name));
        }
        match workload {
            Workload::Idle => {
                self.next = None;
                self.chosen = target.clone();
                Ok(self.enter(target, now))
            }
            Workload::Engaged => {
                let next = (target != self.chosen).then_some(target);
                let changed = next != self.next;
                self.next = next;
                Ok(changed)
            }
        }
    }

    /// An outbound call started dialing.
    pub fn dialing(&mut self, now: Millis) -> bool {
        self.enter(AgentState::calling_customer(), now)
    }

    /// A contact got connected to the agent.
    pub fn connected(&mut self, now: Millis) -> bool {
        self.enter(AgentState::busy(), now)
    }

    /// The agent's last live contact ended and is now in after-call work.
    pub fn after_call_work(&mut self, now: Millis) -> bool {
        self.enter(AgentState::after_call_work(), now)
    }

    /// A contact routed to the agent rang out.
    pub fn missed(&mut self, now: Millis) -> bool {
        self.next = None;
        self.enter(AgentState::missed_call(), now)
    }

    /// Every contact is cleared: apply the next state, else go back to the
    /// chosen one. A missed-call error state stays until the agent acts.
    pub fn all_cleared(&mut self, now: Millis) -> bool {
        if self.current.kind == AgentStateKind::Error {
            return false;
        }
        let had_next = self.next.is_some();
        if let Some(next) = self.next.take() {
            self.chosen = next;
        }
        let target = self.chosen.clone();
        self.enter(target, now) || had_next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lunch() -> AgentState {
        AgentState::new("Lunch", AgentStateKind::NotRoutable)
    }

    #[test]
    fn idle_request_applies_at_once() {
        let mut s = AgentStatus::new(AgentState::offline(), Millis(0));
        assert_eq!(
            s.request(AgentState::available(), Workload::Idle, Millis(5)),
            Ok(true)
        );
        assert_eq!(s.current(), &AgentState::available());
        assert_eq!(s.view().since, Millis(5));
        assert!(s.is_routable());
    }

    #[test]
    fn request_during_contact_becomes_next_state() {
        let mut s = AgentStatus::new(AgentState::available(), Millis(0));
        assert!(s.connected(Millis(10)));
        assert_eq!(s.request(lunch(), Workload::Engaged, Millis(20)), Ok(true));
        assert_eq!(s.current(), &AgentState::busy());
        assert_eq!(s.view().next_state, Some(lunch()));
        assert!(s.after_call_work(Millis(30)));
        assert!(s.all_cleared(Millis(40)));
        assert_eq!(s.current(), &lunch());
        assert_eq!(s.view().next_state, None);
        assert_eq!(s.view().since, Millis(40));
    }

    #[test]
    fn choosing_the_chosen_state_cancels_next() {
        let mut s = AgentStatus::new(AgentState::available(), Millis(0));
        s.connected(Millis(1));
        s.request(lunch(), Workload::Engaged, Millis(2))
            .expect("selectable");
        assert_eq!(
            s.request(AgentState::available(), Workload::Engaged, Millis(3)),
            Ok(true)
        );
        assert_eq!(s.view().next_state, None);
        s.all_cleared(Millis(4));
        assert_eq!(s.current(), &AgentState::available());
    }

    #[test]
    fn system_states_cannot_be_chosen() {
        let mut s = AgentStatus::new(AgentState::available(), Millis(0));
        let before = s.clone();
        assert!(s
            .request(AgentState::busy(), Workload::Idle, Millis(1))
            .is_err());
        assert!(s
            .request(AgentState::missed_call(), Workload::Idle, Millis(1))
            .is_err());
        assert_eq!(s, before);
    }

    #[test]
    fn missed_call_sticks_until_agent_acts() {
        let mut s = AgentStatus::new(AgentState::available(), Millis(0));
        assert!(s.missed(Millis(20_000)));
        assert!(!s.is_routable());
        assert!(!s.all_cleared(Millis(20_001)));
        assert_eq!(s.current(), &AgentState::missed_call());
        assert_eq!(
            s.request(AgentState::available(), Workload::Idle, Millis(25_000)),
            Ok(true)
        );
        assert!(s.is_routable());
    }
}
