//! Leptos hooks over browser resources, in the style of leptos-use: each
//! `use_x()` returns what it tracks and releases what it opened in
//! `on_cleanup`.

mod call;
mod devices;
mod prefs;

pub use call::use_call_audio;
pub use devices::{chosen_device, set_chosen_device, use_media_devices, use_mic_level, Device};
pub use prefs::{use_lang, use_theme};
