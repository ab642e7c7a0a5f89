//! Every localStorage key the CCP uses, in one place: the login token
//! (shared by the tabs of one browser and kept across reloads), the
//! display language and theme, the chosen audio devices and the call
//! history. Nothing else
//! in the app names a key, so what a browser keeps is read here.
//!
//! Storage may be missing (private modes, blocked cookies): reads then
//! give `None` and writes do nothing, and the CCP works for that page.

/// A key the CCP keeps in localStorage.
#[derive(Clone, Copy)]
pub enum Key {
    /// The login token.
    Token,
    /// `en` or `ja`.
    Lang,
    /// `dark` or `light`.
    Theme,
    /// A chosen device: `microphone`, `speaker` or `ringer`.
    Device(&'static str),
    /// The agent's call history (`history.rs`), written by the leading tab.
    History,
}

impl Key {
    fn name(self) -> String {
        match self {
            Key::Token => "switchboard.token".into(),
            Key::Lang => "switchboard.lang".into(),
            Key::Theme => "switchboard.theme".into(),
            Key::History => "switchboard.history".into(),
            Key::Device(kind) => format!("switchboard.device.{kind}"),
        }
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The stored value of `key`.
pub fn get(key: Key) -> Option<String> {
    storage()?.get_item(&key.name()).ok().flatten()
}

/// Stores `value` under `key`; an empty value removes the key.
pub fn set(key: Key, value: &str) {
    let Some(s) = storage() else { return };
    let _ = if value.is_empty() {
        s.remove_item(&key.name())
    } else {
        s.set_item(&key.name(), value)
    };
}
