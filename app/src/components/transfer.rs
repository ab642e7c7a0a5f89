//! Transfer and conference: search the quick connects (agents, queues,
//! numbers) and pick one to bring in; the customer waits on hold while it
//! is reached, and a party still ringing can be cancelled. With a third
//! party on the line the agent can swap between the two, join everyone in
//! a conference, or hand the customer over ("Complete transfer" on the
//! card, in place of "End call").

use leptos::prelude::*;
use leptos::task::spawn_local;
use protocol::contact::{ConnectionKind, ConnectionState};
use protocol::endpoint::Endpoint;
use protocol::wire::{Op, OpResult};

use crate::ccp::Ccp;

/// Whether `name` contains `needle`, ASCII letters in either case. Byte
/// windows on purpose: `to_lowercase` links Unicode's case tables and
/// `str::contains` the two-way searcher (together 12 KB gzip of the
/// bundle); names in kana or kanji have no case, and a valid UTF-8 needle
/// only matches whole characters.
fn matches(name: &str, needle: &str) -> bool {
    needle.is_empty()
        || name
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The transfer panel and third-party controls for one contact.
#[component]
pub fn Transfer(contact_id: String) -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let cid = StoredValue::new(contact_id);
    let view_of = move || cid.with_value(|id| ccp.contact(id));
    let open = RwSignal::new(false);
    let search = RwSignal::new(String::new());
    let endpoints: RwSignal<Vec<Endpoint>> = RwSignal::new(Vec::new());
    let shown = move || {
        let needle = search.with(|s| s.trim().to_owned());
        endpoints.with(|list| {
            list.iter()
                .filter(|e| matches(&e.name, &needle))
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let toggle_open = move |_| {
        open.update(|o| *o = !*o);
        search.set(String::new());
        if open.get_untracked() {
            spawn_local(async move {
                if let Some(OpResult::QuickConnects { endpoints: list }) =
                    ccp.ask(Op::ListQuickConnects).await
                {
                    endpoints.set(list);
                }
            });
        }
    };
    let third_parties = move || {
        view_of()
            .map(|v| {
                v.connections
                    .into_iter()
                    .filter(|c| c.kind == ConnectionKind::ThirdParty && !c.state.is_disconnected())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let can_toggle = move || view_of().is_some_and(|v| v.can_toggle());
    let can_conference = move || view_of().is_some_and(|v| v.can_conference());
    let state_word = move |s: &ConnectionState| {
        ccp.t(match s {
            ConnectionState::Connecting { .. } => "Calling…",
            ConnectionState::Connected { .. } => "Connected",
            ConnectionState::Hold { .. } => "On hold",
            _ => "",
        })
    };
    view! {
        <div class="transfer">
            <For each=third_parties key=|c| (c.connection_id.clone(), c.state.name()) children=move |c| {
                let name = c.endpoint.name.clone();
                let word = state_word(&c.state);
                // Each party's own timer: how long it has rung, talked or waited on hold.
                let from = crate::components::connection_since(&c.state);
                let timer = move || crate::format::duration(ccp.now.get().saturating_sub(from));
                // While it rings, the agent can withdraw it (the customer stays on hold).
                let ringing = matches!(c.state, ConnectionState::Connecting { .. });
                let connection_id = StoredValue::new(c.connection_id.clone());
                let cancel = move |_| ccp.run(Op::EndConnection { contact_id: cid.get_value(), connection_id: connection_id.get_value() });
                view! { <p class=format!("party {}", c.state.name()) data-testid="third-party" data-state=c.state.name()>
                    {name}" · "<span class="state">{word}</span>" · "<span class="timer" data-testid="party-timer">{timer}</span>
                    " "<button class="secondary" data-testid="cancel-transfer" hidden=!ringing on:click=cancel>{move || ccp.t("Cancel transfer")}</button>
                    </p> }
            } />
            <div class="actions">
                <Show when=can_toggle>
                    <button class="secondary" data-testid="swap" on:click=move |_| ccp.run(Op::Toggle { contact_id: cid.get_value() })>{move || ccp.t("Swap")}</button>
                </Show>
                <Show when=can_conference>
                    <button class="secondary" data-testid="conference" on:click=move |_| ccp.run(Op::Conference { contact_id: cid.get_value() })>{move || ccp.t("Conference")}</button>
                </Show>
                <Show when=move || third_parties().is_empty()>
                    <button class="secondary" data-testid="transfer" aria-expanded=move || open.get().to_string() on:click=toggle_open>{move || ccp.t("Transfer")}</button>
                </Show>
            </div>
            <Show when=move || open.get() && third_parties().is_empty()>
                <input type="search" data-testid="qc-search" aria-label=move || ccp.t("Search quick connects")
                    placeholder=move || ccp.t("Search quick connects")
                    prop:value=search on:input=move |ev| search.set(event_target_value(&ev)) />
                <p class="note" data-testid="qc-none" hidden=move || !(shown().is_empty() && endpoints.with(|e| !e.is_empty()))>
                    {move || ccp.t("No quick connect matches.")}</p>
                <ul class="quick-connects" data-testid="quick-connects">
                    <For each=shown key=|e| e.id.clone() children=move |e| {
                        let label = e.name.clone();
                        let testid = format!("qc-{}", e.id);
                        let endpoint = StoredValue::new(e);
                        view! {
                            <li><button class="secondary" data-testid=testid on:click=move |_| {
                                open.set(false);
                                ccp.run(Op::AddConnection { contact_id: cid.get_value(), endpoint: endpoint.get_value() });
                            }>{label}</button></li>
                        }
                    } />
                </ul>
            </Show>
        </div>
    }
}
