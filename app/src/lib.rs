//! The CCP: the agent's softphone panel. It is the SDK's first customer:
//! everything it does goes through `streams_sdk::web::DirectClient`, so
//! anything the UI can do a script can do too.
//!
//! Data flows one way. `ccp` is the session model (the single source of
//! truth, importing none of its observers); the views in `components`
//! derive from its signals and send user actions back as commands; `tabs`,
//! `embed`, the ringer and the hooks observe it with effects.

mod audio;
mod ccp;
mod components;
mod customer;
mod embed;
mod format;
mod history;
mod hooks;
mod i18n;
mod phone;
mod ringer;
mod shortcuts;
mod store;
mod tabs;

use leptos::prelude::*;

use crate::ccp::Ccp;
use crate::components::{CallHistory, ContactCard, Dial, Header, Login, Settings, StatusBar};

/// What the panel's observers derive for the views, beside the session.
#[derive(Clone, Copy)]
pub struct Panel {
    /// Dark theme.
    pub dark: RwSignal<bool>,
    /// The call's quality, while it has audio.
    pub quality: RwSignal<Option<audio::Quality>>,
    /// This session's finished contacts, oldest first.
    pub history: RwSignal<Vec<history::Entry>>,
}

/// The whole panel.
#[component]
pub fn App() -> impl IntoView {
    let ccp = Ccp::new(hooks::use_lang());
    provide_context(ccp);
    let sound_blocked = ringer::use_ringer(ccp);
    provide_context(Panel {
        dark: hooks::use_theme(),
        quality: hooks::use_call_audio(ccp),
        history: history::use_history(ccp),
    });
    tabs::install(ccp);
    embed::install(ccp);
    shortcuts::install(ccp);
    view! {
        <main>
            <Header />
            <Show when=move || sound_blocked.get()>
                <button class="enable-sound" data-testid="enable-sound" on:click=move |_| ringer::unlock()>
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
            // One line, placed by the style sheet right below the contacts
            // (the card or the dial form that caused it), above the history.
            <Show when=move || ccp.error.with(Option::is_some)>
                <p class="error" role="alert" data-testid="error">{move || ccp.error_text().unwrap_or_default()}</p>
            </Show>
        </main>
    }
}
