//! The panel's parts.

mod contact;
mod header;
mod login;
mod status;

pub use contact::ContactCard;
pub use header::Header;
pub use login::Login;
pub use status::StatusBar;
