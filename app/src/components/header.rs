//! Title, the agent's name, the link indicator and logout.

use leptos::prelude::*;
use streams_sdk::web::LinkState;

use crate::ccp::Ccp;

/// The top bar.
#[component]
pub fn Header() -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let name = move || {
        ccp.state.with(|s| {
            s.agent
                .as_ref()
                .map(|a| a.configuration.name.clone())
                .unwrap_or_default()
        })
    };
    let link = move || match ccp.link.get() {
        Some(LinkState::Open) => ("open", "Connected".to_string()),
        Some(LinkState::Connecting) => ("down", "Connecting…".to_string()),
        Some(LinkState::Reconnecting { attempt }) => {
            ("down", format!("Reconnecting (attempt {attempt})…"))
        }
        Some(LinkState::Closed(why)) => ("down", format!("Disconnected: {why}")),
        None => ("", String::new()),
    };
    view! {
        <header>
            <h1>"Switchboard"</h1>
            <Show when=move || ccp.logged_in()>
                <span data-testid="agent-name">{name}</span>
                <span class=move || format!("link {}", link().0) data-testid="link-state" aria-live="polite">{move || link().1}</span>
                <button class="secondary" data-testid="logout" on:click=move |_| ccp.logout()>"Log out"</button>
            </Show>
        </header>
    }
}
