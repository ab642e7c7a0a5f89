//! The session's call history list.

use leptos::prelude::*;

use crate::ccp::Ccp;
use crate::format::duration;

/// Finished contacts, newest first.
#[component]
pub fn CallHistory() -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let history = expect_context::<crate::Panel>().history;
    let entries = move || history.get().into_iter().rev().collect::<Vec<_>>();
    view! {
        <Show when=move || !history.with(Vec::is_empty)>
            <section class="history" aria-label=move || ccp.t("Call history")>
                <h2>{move || ccp.t("Call history")}</h2>
                <ol data-testid="history">
                    // A plain list (not a keyed `For`): entries only arrive, and
                    // each `For` costs the bundle a few KB.
                    {move || entries().into_iter().map(|e| {
                        let outcome = e.outcome.label();
                        let queue = e.queue.clone().map(|q| format!(" · {q}")).unwrap_or_default();
                        view! {
                            <li data-testid="history-entry" data-outcome=e.outcome.name()>
                                <span class="who">{e.who.clone()}</span>{queue}" · "
                                {move || ccp.t(outcome)}" · "{duration(e.talk_ms)}
                            </li>
                        }
                    }).collect_view()}
                </ol>
            </section>
        </Show>
    }
}
