//! The session's call history list.

use leptos::prelude::*;

use crate::ccp::Ccp;
use crate::format::duration;

/// Finished contacts, newest first.
#[component]
pub fn CallHistory() -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let entries = move || ccp.history.get().into_iter().rev().collect::<Vec<_>>();
    view! {
        <Show when=move || !ccp.history.with(Vec::is_empty)>
            <section class="history" aria-label=move || ccp.t("Call history")>
                <h2>{move || ccp.t("Call history")}</h2>
                <ol data-testid="history">
                    <For each=entries key=|e| e.contact_id.clone() children=move |e| {
                        let outcome = e.outcome.label();
                        let queue = e.queue.clone().map(|q| format!(" · {q}")).unwrap_or_default();
                        view! {
                            <li data-testid="history-entry" data-outcome=format!("{:?}", e.outcome).to_ascii_lowercase()>
                                <span class="who">{e.who.clone()}</span>{queue}" · "
                                {move || ccp.t(outcome)}" · "{duration(e.talk_ms)}
                            </li>
                        }
                    } />
                </ol>
            </section>
        </Show>
    }
}
