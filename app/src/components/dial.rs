//! Outbound calling: a phone number field and a Call button, shown while
//! the agent has no contact.

use leptos::prelude::*;
use protocol::endpoint::Endpoint;
use protocol::wire::Op;

use crate::ccp::Ccp;

/// The dial pad's number field.
#[component]
pub fn Dial() -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let number = RwSignal::new(String::new());
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
                prop:value=number on:input=move |ev| number.set(event_target_value(&ev)) />
            <button type="submit" data-testid="dial">{move || ccp.t("Call")}</button>
        </form>
    }
}
