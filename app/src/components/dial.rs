//! Outbound calling, shown while the agent has no contact: a phone number
//! field with a Call button, and a button for each phone-number quick
//! connect in the agent's configuration. (Agents and queues are reached by
//! transfer during a call; the backend places outbound calls to numbers.)
//! Numbers are typed as the agent writes them in their region (the
//! backend's `country_code`: 03-1234-5678 on a +81 CCP) or in E.164, and
//! dialed as E.164 (`phone.rs`); the examples are the region's.

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
                if let Ok(OpResult::QuickConnects { endpoints, .. }) =
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
    let country = move || {
        ccp.state
            .with(|s| s.agent.as_ref().and_then(|a| a.configuration.country_code))
    };
    let examples = move || crate::phone::examples(country());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match crate::phone::to_e164(&number.get(), country()) {
            Ok(n) => ccp.run(Op::Connect {
                endpoint: Endpoint::phone_number(&n),
            }),
            Err(e) => {
                ccp.error.set(None);
                ccp.fail(None, e.sentence());
            }
        }
    };
    view! {
        <form class="dial" on:submit=submit aria-label=move || ccp.t("Call a number")>
            <input data-testid="dial-number" type="tel" inputmode="tel"
                placeholder=move || { let (national, e164) = examples(); national.map_or(e164, str::to_owned) }
                aria-label=move || ccp.t("Phone number") aria-describedby="dial-example"
                prop:value=number on:input=move |ev| {
                    number.set(event_target_value(&ev));
                    // Editing the number ends a refused number's error.
                    if ccp.error.with_untracked(Option::is_some) {
                        ccp.error.set(None);
                    }
                } />
            <button type="submit" data-testid="dial">{move || ccp.t("Call")}</button>
            <p class="note" id="dial-example" data-testid="dial-example">{move || {
                let (national, e164) = examples();
                let or = ccp.t("or");
                let both = national.map_or(e164.clone(), |n| format!("{n} {or} {e164}"));
                format!("{} {both}", ccp.t("e.g."))
            }}</p>
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
