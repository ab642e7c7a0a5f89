//! The agent's status: current state with its timer, the next state when
//! one is pending, and the selector.
//!
//! The selector never contradicts the state: while the backend holds the
//! agent in a system or error state (Busy, AfterCallWork, MissedCallAgent…)
//! that state is the selector's shown, disabled first option, so picking
//! Available is a real change the browser reports (a select already reading
//! "Available" would report nothing, and the agent would stay unroutable).

use leptos::prelude::*;
use protocol::agent::AgentStateKind;
use protocol::wire::Op;

use crate::ccp::Ccp;
use crate::format::duration;

/// The English label of a state name: the backend's fixed system and error
/// names read as words; configured names (Available, Lunch…) are data and
/// are shown as configured.
fn state_label(name: &str) -> Option<&'static str> {
    Some(match name {
        "Busy" => "Busy",
        "CallingCustomer" => "Calling customer",
        "AfterCallWork" => "After-call work",
        "MissedCallAgent" => "Missed call",
        _ => return None,
    })
}

/// Status line and selector.
#[component]
pub fn StatusBar() -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let status = move || {
        ccp.state
            .with(|s| s.agent.as_ref().map(|a| a.status.clone()))
    };
    let states = move || {
        ccp.state.with(|s| {
            s.agent
                .as_ref()
                .map(|a| a.states.clone())
                .unwrap_or_default()
        })
    };
    let current = move || status().map(|s| s.state.name).unwrap_or_default();
    let shown_name = move || {
        let name = current();
        state_label(&name).map_or(name, |l| ccp.t(l).to_owned())
    };
    // A state the agent cannot pick: the selector shows it, disabled.
    let system = move || {
        status()
            .filter(|s| !s.state.is_selectable())
            .map(|s| s.state.name)
    };
    let kind = move || {
        status()
            // By hand: a `Debug` format of the kind would link its derive.
            .map(|s| match s.state.kind {
                AgentStateKind::Routable => "routable",
                AgentStateKind::NotRoutable => "not_routable",
                AgentStateKind::Offline => "offline",
                AgentStateKind::System => "system",
                _ => "error",
            })
            .unwrap_or_default()
    };
    let timer = move || {
        status()
            .map(|s| duration(ccp.now.get().saturating_sub(s.since.0)))
            .unwrap_or_default()
    };
    let next = move || status().and_then(|s| s.next_state).map(|n| n.name);
    let error_state = move || status().is_some_and(|s| s.state.kind == AgentStateKind::Error);
    view! {
        <section class="status" aria-label=move || ccp.t("Agent status")>
            <strong class=move || format!("state-{}", kind()) data-testid="agent-state" data-state=current>{shown_name}</strong>
            <span class="timer" data-testid="agent-state-timer">{timer}</span>
            <select data-testid="status-select" aria-label=move || ccp.t("Change status")
                prop:value=current
                on:change=move |ev| ccp.run(Op::SetAgentState { state: event_target_value(&ev) })>
                <Show when=move || system().is_some()>
                    <option value=move || system().unwrap_or_default() disabled=true selected=true>{shown_name}</option>
                </Show>
                <For each=states key=|s| s.name.clone() children=move |s| {
                    let name = s.name.clone();
                    let selected = {
                        let name = name.clone();
                        move || current() == name
                    };
                    view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
                } />
            </select>
        </section>
        <Show when=error_state>
            <p class="hint" role="status" data-testid="state-hint">{move || ccp.t("You are not taking calls. Choose a status to go on.")}</p>
        </Show>
        <Show when=move || next().is_some()>
            <p class="next" data-testid="next-state">{move || ccp.t("Next:")}" "{move || next().unwrap_or_default()}</p>
        </Show>
    }
}
