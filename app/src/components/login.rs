//! The login form.

use leptos::prelude::*;

use crate::ccp::Ccp;

/// User name and password.
#[component]
pub fn Login() -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        // Asked on the click: browsers allow the prompt only then.
        crate::ringer::ask_permission();
        let (user, pass) = (username.get(), password.get());
        leptos::task::spawn_local(async move {
            let Some(token) = ccp.login(user, pass).await else {
                return;
            };
            // The SDK's login popup gives the token to the framed CCPs of
            // the page that opened it, and closes.
            if crate::embed::is_popup() && crate::embed::hand_over_token(&token) {
                crate::store::set(crate::store::Key::Token, &token);
                ccp.notice
                    .set(Some("You are logged in. This window closes now."));
            } else {
                ccp.adopt_token(&token);
            }
        });
    };
    view! {
        <form class="login" on:submit=submit aria-label=move || ccp.t("Log in")>
            <label>{move || ccp.t("User name")}
                <input data-testid="login-username" autocomplete="username" required
                    prop:value=username on:input=move |ev| username.set(event_target_value(&ev)) />
            </label>
            <label>{move || ccp.t("Password")}
                <input data-testid="login-password" type="password" autocomplete="current-password" required
                    prop:value=password on:input=move |ev| password.set(event_target_value(&ev)) />
            </label>
            <button type="submit" data-testid="login-submit">{move || ccp.t("Log in")}</button>
        </form>
    }
}
