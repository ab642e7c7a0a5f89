//! Contact flows: what a caller hears and which agent gets the call.
//!
//! A flow is a graph of blocks with named branches, one TOML file per
//! flow ([`file`] parses and validates them at start). A running flow is a
//! sans-IO state machine ([`run`]): it is given the contact's attributes
//! and inputs (keys, a function's answer, a prompt that finished, a timer,
//! queue status read through [`run::Env`]) and answers with actions (play
//! a prompt, invoke a function, queue the call, hang up...). The center
//! performs the actions and feeds the results back, so the same machine
//! runs on the wall clock in the backend and on a virtual clock in tests.
//! [`invoke`] is the external function's HTTP exchange; [`tts`] renders
//! prompts with espeak-ng, cached on disk.

pub mod file;
pub mod invoke;
pub mod run;
pub mod tts;
pub mod worker;

pub use file::{
    Block, BlockKind, Condition, Flow, FlowEntry, FlowSlot, FlowType, Flows, Function, Language,
    Metric, Op, Prompt, Refs,
};

/// The longest an external function may take (`timeout_ms`).
pub const MAX_FUNCTION_TIMEOUT_MS: u64 = 8000;
