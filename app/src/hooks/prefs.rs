//! `use_lang` and `use_theme`: the agent's display preferences as signals.
//! Each starts from what this browser kept (else the browser's language or
//! colour scheme), and an effect mirrors every change onto `<html>` (its
//! `lang` and `data-theme`) and into storage.

use leptos::prelude::*;
use leptos::reactive::effect::ImmediateEffect;

use crate::i18n::Lang;
use crate::store::{self, Key};

fn set_root_attribute(name: &str, value: &str) {
    if let Some(el) = document().document_element() {
        let _ = el.set_attribute(name, value);
    }
}

/// The display language.
pub fn use_lang() -> RwSignal<Lang> {
    let saved = store::get(Key::Lang).or_else(|| window().navigator().language());
    let lang = RwSignal::new(Lang::from_tag(&saved.unwrap_or_default()));
    let mut chosen = false;
    ImmediateEffect::new_mut_scoped(move || {
        let tag = lang.get().tag();
        set_root_attribute("lang", tag);
        // Only a choice is remembered; the browser's language is not.
        if chosen {
            store::set(Key::Lang, tag);
        }
        chosen = true;
    });
    lang
}

/// Whether the theme is dark.
pub fn use_theme() -> RwSignal<bool> {
    let dark = match store::get(Key::Theme).as_deref() {
        Some(saved) => saved == "dark",
        None => window()
            .match_media("(prefers-color-scheme: dark)")
            .ok()
            .flatten()
            .is_some_and(|m| m.matches()),
    };
    let dark = RwSignal::new(dark);
    let mut chosen = false;
    ImmediateEffect::new_mut_scoped(move || {
        let theme = if dark.get() { "dark" } else { "light" };
        set_root_attribute("data-theme", theme);
        if chosen {
            store::set(Key::Theme, theme);
        }
        chosen = true;
    });
    dark
}
