//! The agent's call history list: newest first, each with the time of
//! day, who, the queue, how it went, the talk time and the wrap-up code,
//! and a button to call the number back while no contact is on screen.

use leptos::prelude::*;
use protocol::endpoint::Endpoint;
use protocol::wire::Op;

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
                        let mut extra = e.queue.map(|q| format!(" · {q}")).unwrap_or_default();
                        let wrap_up = e.wrap_up.map(|w| format!(" · {w}")).unwrap_or_default();
                        extra.push_str(" · ");
                        let number = e.number;
                        let redial = number.clone().map(|n| {
                            let title = format!("{} {n}", ccp.t("Call back"));
                            view! {
                                <button class="secondary redial" data-testid="redial" title=title
                                    hidden=move || ccp.has_contacts()
                                    on:click=move |_| ccp.run(Op::Connect { endpoint: Endpoint::phone_number(&n) })>
                                    {move || ccp.t("Call back")}
                                </button>
                            }
                        });
                        view! {
                            <li data-testid="history-entry" data-outcome=e.outcome.name() data-number=number>
                                <time data-testid="history-time">{time_of_day(e.at)}</time>" "
                                <span class="who">{e.who}</span>{extra}
                                {move || ccp.t(outcome)}" · "{duration(e.talk_ms)}
                                <span data-testid="history-wrap-up">{wrap_up}</span>
                                {redial}
                            </li>
                        }
                    }).collect_view()}
                </ol>
            </section>
        </Show>
    }
}

/// The local time of day of `ms` since the epoch, as `HH:MM` (24-hour,
/// read in both languages). Here, not in `format.rs`: it needs the
/// browser's clock and time zone, and `format.rs` is also built natively
/// for its tests (tests/tests/app_format.rs).
fn time_of_day(ms: u64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
}
