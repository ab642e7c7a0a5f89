//! The agent's status: current state with its timer, the next state when
//! one is pending, and the selector.

use leptos::prelude::*;
use protocol::wire::Op;

use crate::ccp::Ccp;
use crate::format::duration;

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
    let kind = move || {
        status()
            .map(|s| format!("{:?}", s.state.kind).to_ascii_lowercase())
            .unwrap_or_default()
    };
    let timer = move || {
        status()
            .map(|s| duration(ccp.now.get().saturating_sub(s.since.0)))
            .unwrap_or_default()
    };
    let next = move || status().and_then(|s| s.next_state).map(|n| n.name);
    view! {
        <section class="status" aria-label=move || ccp.t("Agent status")>
            <strong class=move || format!("state-{}", kind()) data-testid="agent-state">{current}</strong>
            <span class="timer" data-testid="agent-state-timer">{timer}</span>
            <select data-testid="status-select" aria-label=move || ccp.t("Change status")
                on:change=move |ev| ccp.run(Op::SetAgentState { state: event_target_value(&ev) })>
                <For each=states key=|s| s.name.clone() children=move |s| {
                    let name = s.name.clone();
                    let selected = {
                        let name = name.clone();
                        move || next().unwrap_or_else(current) == name
                    };
                    view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
                } />
            </select>
        </section>
        <Show when=move || next().is_some()>
            <p class="next" data-testid="next-state">{move || ccp.t("Next:")}" "{move || next().unwrap_or_default()}</p>
        </Show>
    }
}
