//! The Switchboard protocol, version 1: every message a CCP and a backend
//! exchange over their one WebSocket, and the agent, contact and connection
//! state machines both sides share.
//!
//! Nothing here does IO or reads a clock: time enters as [`Millis`]
//! arguments, so the same machines run in the tokio backend, in the browser
//! (where `Instant::now()` panics) and in tests on a virtual clock.
//! `docs/protocol.md` is the normative description; this crate is its
//! reference implementation.
#![warn(missing_docs)]

pub mod agent;
pub mod contact;
pub mod endpoint;
pub mod error;
mod frame_read;
pub mod media;
mod state_wire;
pub mod time;
pub mod wire;

pub use agent::{AgentState, AgentStateKind, AgentStatus, AgentStatusView};
pub use contact::{
    Connection, ConnectionKind, ConnectionState, ContactState, ContactView, Initiation,
    TransitionError,
};
pub use endpoint::{Endpoint, EndpointKind};
pub use error::{ErrorBody, ErrorCode};
pub use time::Millis;
pub use wire::{ClientFrame, Event, Op, OpResult, ServerFrame};

/// The protocol versions this crate speaks, newest last.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// Largest text frame a peer must accept; larger ones get `frame_too_large`.
pub const MAX_TEXT_FRAME: usize = 64 * 1024;
