//! Transfer and conference: search the quick connects (agents, queues,
//! numbers) and pick one to bring in; each agent target says whether it
//! can take a call now (available, busy, offline: the backend's answer to
//! `list_quick_connects`, asked again every few seconds while the list is
//! open); the customer waits on hold while it
//! is reached, and a party still ringing can be cancelled. With a third
//! party on the line the agent can swap between the two, join everyone in
//! a conference, or hand the customer over ("Complete transfer" on the
//! card, in place of "End call").

use leptos::prelude::*;
use leptos::task::spawn_local;
use protocol::contact::{ConnectionKind, ConnectionState};
use protocol::endpoint::Endpoint;
use protocol::wire::{Availability, Op, OpResult};

use crate::ccp::Ccp;

/// How often an open quick-connect list asks again who is available.
const AVAILABILITY_MS: u64 = 3_000;

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
    let availability: RwSignal<std::collections::BTreeMap<String, Availability>> =
        RwSignal::new(Default::default());
    // `shown_errors`: the first load shows a failure; the refreshes after
    // it keep the last list quietly.
    let load = move |shown_errors: bool| {
        spawn_local(async move {
            let answer = if shown_errors {
                ccp.ask(Op::ListQuickConnects).await
            } else {
                ccp.request(Op::ListQuickConnects).await.ok()
            };
            if let Some(OpResult::QuickConnects {
                endpoints: list,
                availability: now,
            }) = answer
            {
                endpoints.set(list);
                availability.set(now);
            }
        });
    };
    // Kept current while the list is open; the timer goes with the card.
    let refresh = set_interval_with_handle(
        move || {
            if open.get_untracked() {
                load(false);
            }
        },
        std::time::Duration::from_millis(AVAILABILITY_MS),
    )
    .ok();
    on_cleanup(move || {
        if let Some(handle) = refresh {
            handle.clear();
        }
    });
    let toggle_open = move |_| {
        open.update(|o| *o = !*o);
        search.set(String::new());
        if open.get_untracked() {
            load(true);
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
                        // An agent target's availability, as last answered.
                        let now = move || availability.with(|a| endpoint.with_value(|e| a.get(&e.id).copied()));
                        let name = move || match now() {
                            Some(Availability::Available) => "available",
                            Some(Availability::Busy) => "busy",
                            Some(Availability::Offline) => "offline",
                            None => "",
                        };
                        let word = move || ccp.t(match now() {
                            Some(Availability::Available) => "Available now",
                            Some(Availability::Busy) => "Busy now",
                            Some(Availability::Offline) => "Not logged in",
                            None => "",
                        });
                        view! {
                            <li><button class="secondary" data-testid=testid on:click=move |_| {
                                open.set(false);
                                ccp.run(Op::AddConnection { contact_id: cid.get_value(), endpoint: endpoint.get_value() });
                            }>{label}<span class=move || format!("avail {}", name()) data-testid="qc-availability"
                                data-availability=name hidden=move || now().is_none()>{word}</span></button></li>
                        }
                    } />
                </ul>
            </Show>
        </div>
    }
}
