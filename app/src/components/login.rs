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
        ccp.login(username.get(), password.get());
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
