//! Title, the agent's name, the link indicator, language and logout.

use leptos::prelude::*;
use streams_sdk::web::LinkState;

use crate::ccp::Ccp;
use crate::i18n::Lang;

/// The top bar.
#[component]
pub fn Header() -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let dark = expect_context::<crate::Panel>().dark;
    let name = move || {
        ccp.state.with(|s| {
            s.agent
                .as_ref()
                .map(|a| a.configuration.name.clone())
                .unwrap_or_default()
        })
    };
    let link = move || match ccp.link.get() {
        Some(LinkState::Open) => ("open", ccp.t("Connected").to_string()),
        Some(LinkState::Connecting) => ("down", ccp.t("Connecting…").to_string()),
        Some(LinkState::Reconnecting { attempt }) => {
            ("down", format!("{} ({attempt})", ccp.t("Reconnecting…")))
        }
        Some(LinkState::Closed(why)) => ("down", format!("{}: {why}", ccp.t("Disconnected"))),
        None => ("", String::new()),
    };
    let change_lang =
        move |ev: leptos::ev::Event| ccp.lang.set(Lang::from_tag(&event_target_value(&ev)));
    view! {
        <header>
            <h1>{move || ccp.t("Switchboard")}</h1>
            <select class="lang" data-testid="language" aria-label=move || ccp.t("Language") on:change=change_lang>
                <option value="en" selected=move || ccp.lang.get() == Lang::En>"English"</option>
                <option value="ja" selected=move || ccp.lang.get() == Lang::Ja>"日本語"</option>
            </select>
            <button class="secondary theme" data-testid="theme" aria-pressed=move || dark.get().to_string()
                on:click=move |_| dark.update(|d| *d = !*d)>
                {move || ccp.t(if dark.get() { "Light" } else { "Dark" })}
            </button>
            <Show when=move || ccp.logged_in()>
                <span data-testid="agent-name">{name}</span>
                <span class=move || format!("link {}", link().0) data-testid="link-state" aria-live="polite">{move || link().1}</span>
                <Show when=move || !ccp.leader.get()>
                    <span class="mirror" data-testid="tab-role">{move || ccp.t("Softphone in another tab")}</span>
                </Show>
                <button class="secondary" data-testid="logout" on:click=move |_| ccp.logout()>{move || ccp.t("Log out")}</button>
            </Show>
        </header>
    }
}
