//! The Switchboard reference backend. `app(state)` builds the router so
//! tests can bind port 0; `main.rs` only parses arguments and binds.
pub mod config;
pub mod hours;
pub mod routing;
pub mod store;
pub mod auth;
pub mod center;
