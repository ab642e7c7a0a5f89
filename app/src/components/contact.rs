//! One contact: who is calling (the customer's name when known, the
//! number below), from which queue, the customer's attributes as labelled
//! rows, the call timer (and while it rings, the time left to answer and
//! the customer's wait), who ended it in after-call work, and the actions
//! its state allows.

use leptos::prelude::*;
use protocol::contact::{ConnectionState, ContactState, ContactView};
use protocol::wire::Op;

use crate::ccp::Ccp;
use crate::components::{CallQuality, Keypad, Transfer};
use crate::customer;
use crate::format::duration;

/// Holds the customer, or resumes them if held (the Hold button and Alt+H).
pub fn hold_toggle(contact: &ContactView) -> Option<Op> {
    let k = contact.initial_connection()?;
    let contact_id = contact.contact_id.clone();
    let connection_id = k.connection_id.clone();
    Some(if matches!(k.state, ConnectionState::Hold { .. }) {
        Op::Resume {
            contact_id,
            connection_id,
        }
    } else {
        Op::Hold {
            contact_id,
            connection_id,
        }
    })
}

fn since(state: &ContactState) -> u64 {
    match state {
        ContactState::Incoming { since, .. }
        | ContactState::Connecting { since }
        | ContactState::Connected { since }
        | ContactState::Ended { since, .. }
        | ContactState::Missed { since }
        | ContactState::Rejected { since }
        | ContactState::Error { since, .. } => since.0,
        ContactState::Init => 0,
    }
}

/// When a connection entered its present state (0 when it has none).
pub fn connection_since(state: &ConnectionState) -> u64 {
    match state {
        ConnectionState::Connecting { since }
        | ConnectionState::Connected { since }
        | ConnectionState::Hold { since }
        | ConnectionState::Disconnected { since, .. } => since.0,
        ConnectionState::Init => 0,
    }
}

/// The customer's hold start, while the contact is connected and the
/// customer waits on hold (the card then says so, with its own timer).
fn customer_hold_since(v: &ContactView) -> Option<u64> {
    if !matches!(v.state, ContactState::Connected { .. }) {
        return None;
    }
    match v.initial_connection()?.state {
        ConnectionState::Hold { since } => Some(since.0),
        _ => None,
    }
}

fn state_label(v: &ContactView) -> &'static str {
    // English keys; the card translates them.
    if customer_hold_since(v).is_some() {
        return "On hold";
    }
    match v.state {
        ContactState::Incoming { .. } => "Incoming call",
        ContactState::Connecting { .. } => "Dialing",
        ContactState::Connected { .. } => "Connected",
        ContactState::Ended { .. } => "After-call work",
        ContactState::Missed { .. } => "Missed call",
        ContactState::Rejected { .. } => "Rejected",
        ContactState::Error { .. } => "Error",
        ContactState::Init => "",
    }
}

/// A contact card.
#[component]
pub fn ContactCard(contact_id: String) -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let cid = StoredValue::new(contact_id);
    let view_of = move || cid.with_value(|id| ccp.contact(id));
    let state_name = move || view_of().map(|v| v.state.name()).unwrap_or("gone");
    let number = move || {
        view_of()
            .and_then(|v| v.initial_connection().map(|c| c.endpoint.name.clone()))
            .unwrap_or_default()
    };
    let name = move || view_of().and_then(|v| customer::name(&v.attributes));
    // Who and why first: the customer's name when known, else the number.
    let who = move || name().unwrap_or_else(number);
    // Below the number, one line of what matters now: while it rings, the
    // time left to answer and how long the customer has waited since the
    // call began (the queue, and a flow's prompts before it; a transfer's
    // contact is as old as the customer's call, so it shows no wait of its
    // own); in after-call work, who ended the call. One text node on
    // purpose: each reactive node costs the bundle.
    let detail = move || {
        let v = view_of()?;
        let now = ccp.now.get();
        Some(match v.state {
            ContactState::Incoming { expires_at, .. } => {
                let mut line = format!(
                    "{} {}",
                    ccp.t("Rings out in"),
                    duration(expires_at.0.saturating_sub(now))
                );
                if v.initiation == protocol::contact::Initiation::Inbound {
                    line += &format!(
                        " · {} {}",
                        ccp.t("Waiting"),
                        duration(now.saturating_sub(v.created_at.0))
                    );
                }
                line
            }
            ContactState::Ended { reason, .. } => ccp
                .t(match reason.as_str() {
                    "customer_disconnect" => "Customer ended the call",
                    "agent_disconnect" => "You ended the call",
                    "third_party_disconnect" => "The other party ended the call",
                    _ => return None,
                })
                .to_owned(),
            _ => return None,
        })
    };
    let queue = move || {
        view_of()
            .and_then(|v| v.queue.map(|q| q.name))
            .unwrap_or_default()
    };
    let label = move || {
        view_of()
            .map(|v| ccp.t(state_label(&v)))
            .unwrap_or_default()
    };
    // On hold the timer counts the hold, as the customer experiences it.
    let timer = move || {
        view_of()
            .map(|v| {
                let from = customer_hold_since(&v).unwrap_or_else(|| since(&v.state));
                duration(ccp.now.get().saturating_sub(from))
            })
            .unwrap_or_default()
    };
    let on_hold = move || view_of().is_some_and(|v| customer_hold_since(&v).is_some());
    let attributes = move || {
        view_of()
            .map(|v| customer::rows(&v.attributes))
            .unwrap_or_default()
    };
    // Display names and yes/no in the panel's language when known.
    let shown = move |text: String| {
        crate::i18n::tr_owned(ccp.lang.get(), &text).map_or(text, str::to_owned)
    };
    let customer = move || view_of().and_then(|v| v.initial_connection().cloned());
    let customer_held = move || {
        matches!(
            customer().map(|c| c.state),
            Some(ConnectionState::Hold { .. })
        )
    };
    let muted = move || {
        ccp.state
            .with(|s| s.agent.as_ref().is_some_and(|a| a.muted))
    };
    let wrap_up_codes = move || {
        ccp.state.with(|s| {
            s.agent
                .as_ref()
                .map(|a| a.configuration.wrap_up_codes.clone())
                .unwrap_or_default()
        })
    };
    // With another party on the line, leaving hands the customer over.
    let hands_over = move || {
        view_of().is_some_and(|v| {
            v.connections.iter().any(|c| {
                c.kind == protocol::contact::ConnectionKind::ThirdParty
                    && !c.state.is_disconnected()
            })
        })
    };
    let transferred =
        move || view_of().is_some_and(|v| v.initiation == protocol::contact::Initiation::Transfer);
    // A queued callback rings like an inbound call, but the agent is
    // about to call the customer back, not answer them.
    let callback =
        move || view_of().is_some_and(|v| v.initiation == protocol::contact::Initiation::Callback);
    let wrap_up = RwSignal::new(String::new());
    let keypad_open = RwSignal::new(false);

    let accept = move |_| {
        ccp.run(Op::Accept {
            contact_id: cid.get_value(),
        })
    };
    let reject = move |_| {
        ccp.run(Op::Reject {
            contact_id: cid.get_value(),
        })
    };
    let hold = move |_| {
        if let Some(op) = view_of().as_ref().and_then(hold_toggle) {
            ccp.run(op);
        }
    };
    let mute = move |_| ccp.run(if muted() { Op::Unmute } else { Op::Mute });
    let end = move |_| {
        if let Some(own) =
            view_of().and_then(|v| v.agent_connection().map(|c| c.connection_id.clone()))
        {
            ccp.run(Op::EndConnection {
                contact_id: cid.get_value(),
                connection_id: own,
            });
        }
    };
    let clear = move |_| {
        let code = wrap_up.get();
        ccp.run(Op::Clear {
            contact_id: cid.get_value(),
            wrap_up_code: (!code.is_empty()).then_some(code),
        });
    };

    view! {
        <article class=move || format!("contact {}{}", state_name(), if on_hold() { " hold" } else { "" }) data-testid="contact" data-contact-id=cid.get_value()
            aria-label=move || format!("{} {}", label(), who())>
            <div data-testid="contact-customer">
                <div class="who" data-testid="contact-caller">{who}</div>
                <div class="number" data-testid="contact-number">{move || name().map(|_| number())}</div>
                <span class="badge" data-testid="transfer-badge" hidden=move || !transferred()>{move || ccp.t("Transferred to you")}</span>
                <span class="badge" data-testid="callback-badge" hidden=move || !callback()>{move || ccp.t("Callback: you call the customer back")}</span>
                <div><span class="state" data-testid="contact-state" data-state=state_name data-hold=move || on_hold().to_string()>{label}</span>" · "
                    <Show when=move || !queue().is_empty()>
                        <span data-testid="contact-queue">{queue}</span>" · "
                    </Show>
                    <span class="timer" data-testid="contact-timer">{timer}</span></div>
                <p class="detail" role="status" data-testid="contact-detail">{detail}</p>
                <Show when=move || !attributes().is_empty()>
                    <dl data-testid="contact-attributes">
                        {move || attributes().into_iter().map(|(k, v)| view! { <dt data-testid="attribute-label">{shown(k)}</dt><dd data-testid="attribute-value">{shown(v)}</dd> }).collect_view()}
                    </dl>
                </Show>
            </div>
            <Show when=move || state_name() == "connected" && muted()>
                <p class="muted-banner" role="status" data-testid="muted-indicator">{move || ccp.t("You are muted")}</p>
            </Show>
            <div class="actions">
                <Show when=move || state_name() == "incoming">
                    <button data-testid="accept" aria-keyshortcuts="Alt+A" on:click=accept>{move || ccp.t("Accept")}</button>
                    <button class="danger" data-testid="reject" aria-keyshortcuts="Alt+R" on:click=reject>{move || ccp.t("Reject")}</button>
                </Show>
                <Show when=move || state_name() == "connected">
                    <button class="secondary" data-testid="hold" aria-keyshortcuts="Alt+H" aria-pressed=move || customer_held().to_string() on:click=hold>
                        {move || ccp.t(if customer_held() { "Resume" } else { "Hold" })}
                    </button>
                    <button class="secondary" data-testid="mute" aria-keyshortcuts="Alt+M" aria-pressed=move || muted().to_string() on:click=mute>
                        {move || ccp.t(if muted() { "Unmute" } else { "Mute" })}
                    </button>
                    <button class="secondary" data-testid="keypad" aria-expanded=move || keypad_open.get().to_string()
                        on:click=move |_| keypad_open.update(|o| *o = !*o)>{move || ccp.t("Keypad")}</button>
                    // One button, two meanings: attributes instead of a `Show`
                    // (each typed branch costs the bundle kilobytes).
                    <button class=move || if hands_over() { "" } else { "danger" }
                        data-testid=move || if hands_over() { "complete-transfer" } else { "end-call" }
                        aria-keyshortcuts="Alt+E" on:click=end>
                        {move || ccp.t(if hands_over() { "Complete transfer" } else { "End call" })}
                    </button>
                </Show>
                <Show when=move || state_name() == "connecting">
                    <button class="danger" data-testid="end-call" on:click=end>{move || ccp.t("Cancel")}</button>
                </Show>
                <Show when=move || matches!(state_name(), "ended" | "missed" | "rejected" | "error")>
                    <Show when=move || state_name() == "ended" && !wrap_up_codes().is_empty()>
                        <select data-testid="wrap-up" aria-label=move || ccp.t("Wrap-up code") on:change=move |ev| wrap_up.set(event_target_value(&ev))>
                            <option value="">{move || ccp.t("No wrap-up code")}</option>
                            <For each=wrap_up_codes key=|c| c.clone() children=|c| view! { <option value=c.clone()>{c.clone()}</option> } />
                        </select>
                    </Show>
                    <button data-testid="clear" on:click=clear>{move || ccp.t("Clear contact")}</button>
                </Show>
            </div>
            <Show when=move || state_name() == "connected" && keypad_open.get()>
                <Keypad contact_id=cid.get_value() />
            </Show>
            <Show when=move || state_name() == "connected">
                <Transfer contact_id=cid.get_value() />
                <CallQuality />
            </Show>
        </article>
    }
}
