//! Settings: which microphone, speaker and ringer device the softphone
//! uses, and a live microphone level to check the headset before a call.
//! Choices go to localStorage (empty means the system default), where the
//! audio engine reads them at the next call's start and the ringer at the
//! next ring; a new speaker also takes over a call in progress, while a new
//! microphone waits for the next call (switching it would restart the
//! engine's echo canceller mid-sentence). The meter's microphone is open
//! only while the section is.

use leptos::prelude::*;

use crate::ccp::Ccp;
use crate::hooks::{chosen_device, set_chosen_device, use_media_devices, use_mic_level, Device};

/// One device select: Default plus the browser's devices of one direction.
#[component]
fn DeviceSelect(
    /// `microphone`, `speaker` or `ringer` (the storage key's kind).
    kind: &'static str,
    /// English label, translated.
    label: &'static str,
    /// The devices to offer.
    devices: Signal<Vec<Device>>,
    /// The chosen id (empty: default), shared with the meter.
    chosen: RwSignal<String>,
) -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let on_change = move |ev: leptos::ev::Event| {
        let id = event_target_value(&ev);
        set_chosen_device(kind, &id);
        if kind == "speaker" {
            crate::audio::set_speaker(&id);
        }
        chosen.set(id);
    };
    // A label stays empty until the page may use the microphone.
    let fallback = if kind == "microphone" {
        "Microphone"
    } else {
        "Speaker"
    };
    let options = move || {
        devices
            .get()
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let text = if d.label.is_empty() {
                    format!("{} {}", ccp.t(fallback), i + 1)
                } else {
                    d.label.clone()
                };
                let id = d.id.clone();
                let selected = move || chosen.get() == id;
                view! { <option value=d.id selected=selected>{text}</option> }
            })
            .collect_view()
    };
    let id = format!("device-{kind}");
    view! {
        <label for=id.clone()>{move || ccp.t(label)}</label>
        // The value is set again whenever the list changes: the devices
        // arrive after the select exists, and a hot-plugged one may be the choice.
        <select id=id data-testid=format!("{kind}-select") on:change=on_change
            prop:value=move || devices.with(|_| chosen.get())>
            <option value="" selected=move || chosen.get().is_empty()>{move || ccp.t("Default")}</option>
            {options}
        </select>
    }
}

/// The collapsible settings section.
#[component]
pub fn Settings() -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let open = RwSignal::new(false);
    view! {
        <section class="settings" aria-label=move || ccp.t("Settings")>
            <button class="secondary" data-testid="settings-toggle" aria-expanded=move || open.get().to_string()
                aria-controls="settings-body" on:click=move |_| open.update(|o| *o = !*o)>
                {move || ccp.t("Settings")}
            </button>
            <Show when=move || open.get()>
                <SettingsBody />
            </Show>
        </section>
    }
}

/// The open section; its hooks (device list, meter stream) live as long as it.
#[component]
fn SettingsBody() -> impl IntoView {
    let ccp = expect_context::<Ccp>();
    let devices = use_media_devices().devices;
    let inputs = Signal::derive(move || devices.get().into_iter().filter(|d| d.input).collect());
    let outputs = Signal::derive(move || devices.get().into_iter().filter(|d| !d.input).collect());
    let microphone = RwSignal::new(chosen_device("microphone"));
    let speaker = RwSignal::new(chosen_device("speaker"));
    let ringer = RwSignal::new(chosen_device("ringer"));
    let level = use_mic_level(Signal::derive(move || Some(microphone.get())));
    view! {
        <div class="settings-body" id="settings-body" data-testid="settings">
            <DeviceSelect kind="microphone" label="Microphone" devices=inputs chosen=microphone />
            <label for="mic-level">{move || ccp.t("Microphone level")}</label>
            <meter id="mic-level" data-testid="mic-level" min="0" max="1" value=move || crate::format::decimal(level.get(), 3)></meter>
            <DeviceSelect kind="speaker" label="Speaker" devices=outputs chosen=speaker />
            <DeviceSelect kind="ringer" label="Ringer" devices=outputs chosen=ringer />
        </div>
    }
}
