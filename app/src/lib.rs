//! The CCP: the agent's softphone panel. It is the SDK's first customer:
//! everything it does goes through `streams_sdk::web::DirectClient`, so
//! anything the UI can do a script can do too.
//!
//! `ccp` holds the connection and the signals the UI reads; `components`
//! are the panel's parts.

mod audio;
mod ccp;
mod components;
mod embed;
mod format;
mod history;
mod hooks;
mod i18n;
mod ringer;
mod shortcuts;
mod tabs;

use leptos::prelude::*;

use crate::ccp::Ccp;
use crate::components::{CallHistory, ContactCard, Dial, Header, Login, Settings, StatusBar};

/// The whole panel.
#[component]
pub fn App() -> impl IntoView {
    let ccp = Ccp::new();
    provide_context(ccp);
    crate::tabs::install(ccp);
    crate::embed::install(ccp);
    crate::shortcuts::install(ccp);
    view! {
        <main>
            <Header />
            <Show when=move || ccp.sound_blocked.get()>
                <button class="enable-sound" data-testid="enable-sound" on:click=move |_| crate::ringer::unlock()>
                    {move || ccp.t("Click to enable sound")}
                </button>
            </Show>
            <Show when=move || ccp.notice.get().is_none() fallback=move || view! {
                <p class="notice" role="status" data-testid="notice">{move || ccp.t(ccp.notice.get().unwrap_or_default())}</p>
            }>
            <Show when=move || !ccp.displaced.get() fallback=move || view! {
                <section class="displaced" role="alert" data-testid="displaced">
                    <p>{move || ccp.t("You signed in in another window, so this one is no longer connected.")}</p>
                    <button data-testid="take-back" on:click=move |_| ccp.take_back()>{move || ccp.t("Use this window")}</button>
                    <button class="secondary" data-testid="displaced-logout" on:click=move |_| ccp.logout()>{move || ccp.t("Log out")}</button>
                </section>
            }>
            <Show when=move || ccp.logged_in() fallback=|| view! { <Login /> }>
                <StatusBar />
                <section aria-label=move || ccp.t("Contacts") data-testid="contacts">
                    <Show when=move || ccp.has_contacts() fallback=move || view! { <p class="idle" data-testid="idle">{move || ccp.t("No contacts")}</p><Dial /> }>
                        <For
                            each=move || ccp.contact_ids()
                            key=|id| id.clone()
                            children=move |id| view! { <ContactCard contact_id=id /> }
                        />
                    </Show>
                </section>
                <CallHistory />
                <Settings />
            </Show>
            </Show>
            </Show>
            <Show when=move || ccp.error.get().is_some()>
                <p class="error" role="alert" data-testid="error">{move || ccp.error.get().unwrap_or_default()}</p>
            </Show>
        </main>
    }
}
