//! The client core every Switchboard client drives: the CCP app, the
//! JavaScript SDK and the tests. It is sans-IO: a [`Session`] turns ops
//! into text frames and text frames into typed outputs, tracks pending
//! requests and their timeouts on a clock the caller passes in, and keeps
//! the agent's state (status, contacts) up to date from the snapshot and
//! the sequenced events. A transport (a browser WebSocket, a tokio socket,
//! a CRM page's frame bridge) only moves strings.
#![warn(missing_docs)]

pub mod deadlines;
pub mod errors;
pub mod frame;
pub mod session;
pub mod state;

pub use session::{Output, Session, SessionError};
pub use state::{AgentView, ClientState, ContactChange};

#[cfg(target_arch = "wasm32")]
pub mod web;

#[cfg(all(target_arch = "wasm32", feature = "js-core"))]
pub mod js;
