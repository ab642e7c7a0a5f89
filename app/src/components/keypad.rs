//! The DTMF keypad: each key sends its digit to the customer's connection
//! (the backend plays the tone in the customer's audio).

use leptos::prelude::*;
use protocol::wire::Op;

use crate::ccp::Ccp;

const KEYS: [&str; 12] = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];

/// A 3x4 keypad for one contact.
#[component]
pub fn Keypad(contact_id: String) -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let cid = StoredValue::new(contact_id);
    let typed = RwSignal::new(String::new());
    let press = move |key: &'static str| {
        let contact_id = cid.get_value();
        let Some(connection_id) = ccp
            .contact(&contact_id)
            .and_then(|v| v.initial_connection().map(|c| c.connection_id.clone()))
        else {
            return;
        };
        typed.update(|t| t.push_str(key));
        ccp.run(Op::SendDigits {
            contact_id,
            connection_id,
            digits: key.to_owned(),
        });
    };
    view! {
        <div class="keypad" role="group" aria-label=move || ccp.t("Keypad")>
            <output class="typed" data-testid="keypad-typed" aria-live="polite">{typed}</output>
            {KEYS.iter().map(|&k| view! {
                <button class="secondary key" data-testid=format!("key-{}", match k { "*" => "star", "#" => "hash", d => d })
                    aria-label=format!("Key {k}") on:click=move |_| press(k)>{k}</button>
            }).collect_view()}
        </div>
    }
}
