//! The panel's parts.

mod contact;
mod dial;
mod header;
mod history;
mod keypad;
mod login;
mod quality;
mod settings;
mod status;
mod transfer;

pub use contact::{connection_since, hold_toggle, ContactCard};
pub use dial::Dial;
pub use header::Header;
pub use history::CallHistory;
pub use keypad::Keypad;
pub use login::Login;
pub use quality::CallQuality;
pub use settings::Settings;
pub use status::StatusBar;
pub use transfer::Transfer;
