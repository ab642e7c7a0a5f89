//! Outbound calling, shown while the agent has no contact: a phone number
//! field with a Call button, and a button for each phone-number quick
//! connect in the agent's configuration. (Agents and queues are reached by
//! transfer during a call; the backend places outbound calls to numbers.)

use leptos::prelude::*;
use leptos::task::spawn_local;
use protocol::endpoint::{Endpoint, EndpointKind};
use protocol::wire::{Op, OpResult};
use streams_sdk::web::LinkState;

use crate::ccp::Ccp;

/// The dial pad's number field and quick numbers.
#[component]
pub fn Dial() -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let number = RwSignal::new(String::new());
    let quick: RwSignal<Vec<Endpoint>> = RwSignal::new(Vec::new());
    // Loaded once the link is open (and again after a reconnect); a
    // failure only leaves the list empty: the number field still works.
    leptos::reactive::effect::ImmediateEffect::new_scoped(move || {
        if ccp.link.with(|l| matches!(l, Some(LinkState::Open))) {
            spawn_local(async move {
                if let Ok(OpResult::QuickConnects { endpoints }) =
                    ccp.request(Op::ListQuickConnects).await
                {
                    quick.set(
                        endpoints
                            .into_iter()
                            .filter(|e| e.kind == EndpointKind::PhoneNumber)
                            .collect(),
                    );
                }
            });
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let n: String = number
            .get()
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        ccp.run(Op::Connect {
            endpoint: Endpoint::phone_number(&n),
        });
    };
    view! {
        <form class="dial" on:submit=submit aria-label=move || ccp.t("Call a number")>
            <input data-testid="dial-number" type="tel" inputmode="tel" placeholder="+81…"
                aria-label=move || ccp.t("Phone number")
                prop:value=number on:input=move |ev| {
                    number.set(event_target_value(&ev));
                    // Editing the number ends a refused number's error.
                    if ccp.error.with_untracked(Option::is_some) {
                        ccp.error.set(None);
                    }
                } />
            <button type="submit" data-testid="dial">{move || ccp.t("Call")}</button>
        </form>
        <Show when=move || quick.with(|q| !q.is_empty())>
            <ul class="quick-dial" aria-label=move || ccp.t("Quick connects")>
                <For
                    each=move || quick.get()
                    key=|e| e.id.clone()
                    children=move |e| {
                        let testid = format!("dial-{}", e.id);
                        let label = e.name.clone();
                        let endpoint = StoredValue::new(e);
                        view! {
                            <li>
                                <button class="secondary" data-testid=testid
                                    title=move || format!("{} {}", ccp.t("Call"), endpoint.with_value(|e| e.phone_number.clone().unwrap_or_default()))
                                    on:click=move |_| ccp.run(Op::Connect { endpoint: endpoint.get_value() })>
                                    {label}
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
        </Show>
    }
}
