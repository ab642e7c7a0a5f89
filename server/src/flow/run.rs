//! A running flow, sans IO: [`Runner`] walks one contact through a flow's
//! blocks. It reads no clock and opens no socket. It is given `now` and
//! [`Input`]s (keys, a prompt that finished, a function's answer, the
//! center refusing a queue) and answers with [`Action`]s for the center to
//! perform (play a prompt, invoke a function, queue the call, hang up).
//! Queue hours and metrics come through [`Env`]. Timeouts are deadlines
//! the owner fires with [`Runner::tick`], so tests run every block on a
//! virtual clock.
//!
//! A flow can never hang a call: a `loop` block counts its passes and
//! takes `complete` at its limit; and every runner counts the blocks it
//! runs without waiting for anything ([`MAX_BURST`]) and in all
//! ([`MAX_STEPS`]), so a cycle of blocks with no loop block ends the flow
//! (a routing flow hangs up) with the reason in the flow log.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use protocol::Millis;

use super::file::{Block, BlockKind, Condition, FlowSlot, Flows, Language, Metric, Op, Prompt};

/// Blocks run in a row without waiting for a prompt, keys or a function
/// before the flow is declared stuck (a cycle without a loop block).
pub const MAX_BURST: u32 = 200;

/// Blocks one runner may run in all.
pub const MAX_STEPS: u32 = 5000;

/// Keys typed ahead (before an input block asks) that are kept.
pub const MAX_TYPE_AHEAD: usize = 32;

/// Extra time given to a function beyond its own timeout before the
/// runner gives up on it (the center's HTTP call should answer first).
pub const FUNCTION_GRACE_MS: u64 = 1000;

/// What the runner asks of the world it runs in.
pub trait Env {
    /// Whether `queue` is open now (a queue with no hours is).
    fn queue_open(&self, queue: &str, now: Millis) -> bool;
    /// A queue metric now.
    fn queue_metric(&self, queue: &str, metric: Metric, now: Millis) -> f64;
    /// A queue's display name.
    fn queue_name(&self, queue: &str) -> String;
}

/// The contact as a flow sees and changes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// Contact id.
    pub contact_id: String,
    /// The caller's number.
    pub customer: String,
    /// The number called.
    pub system: String,
    /// Contact attributes.
    pub attributes: BTreeMap<String, String>,
    /// The working queue.
    pub queue: Option<String>,
    /// Routing priority set by the flow (lower first).
    pub priority: Option<i64>,
    /// Seconds added to the contact's age in the queue.
    pub age_s: u64,
    /// Prompts' language.
    pub language: Language,
    /// The last keys stored by `store_customer_input`.
    pub stored_input: Option<String>,
    /// Whether blocks are logged (`set_logging`).
    pub logging: bool,
    /// The number a callback calls.
    pub callback_number: Option<String>,
    /// `set_queue_flow`.
    pub queue_flow: Option<String>,
    /// `set_hold_flow` (customer hold).
    pub customer_hold_flow: Option<String>,
    /// `set_hold_flow` (agent hold).
    pub agent_hold_flow: Option<String>,
    /// `set_whisper_flow` (customer whisper).
    pub customer_whisper_flow: Option<String>,
    /// `set_whisper_flow` (agent whisper).
    pub agent_whisper_flow: Option<String>,
}

impl Context {
    /// A fresh context for a call from `customer` to `system`.
    pub fn new(contact_id: &str, customer: &str, system: &str) -> Context {
        Context {
            contact_id: contact_id.into(),
            customer: customer.into(),
            system: system.into(),
            logging: true,
            ..Context::default()
        }
    }
}

/// What the prompt to play is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Say {
    /// Text, references already rendered.
    Text(String),
    /// A WAV file.
    Wav(std::path::PathBuf),
}

/// What the center is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Play a prompt; answer [`Input::PromptDone`] with `seq` when it ends.
    Play {
        /// Names this prompt.
        seq: u64,
        /// What.
        say: Say,
        /// In which language.
        language: Language,
    },
    /// Stop the prompt playing (the caller answered over it).
    StopPrompt,
    /// Invoke a function; answer [`Input::FunctionDone`] with `seq`.
    Invoke {
        /// Names this call.
        seq: u64,
        /// `[[functions]]` name.
        function: String,
        /// The JSON body.
        body: serde_json::Value,
    },
    /// Queue the call (the flow is over unless the center answers
    /// [`Input::QueueRefused`]).
    Queue {
        /// Queue id.
        queue: String,
    },
    /// Transfer to a phone number (the flow is over unless the center
    /// answers [`Input::DialFailed`]).
    TransferToPhone {
        /// E.164 number.
        number: String,
    },
    /// Queue a callback of `number` in `queue`; the flow carries on.
    Callback {
        /// Queue id.
        queue: String,
        /// E.164 number.
        number: String,
    },
    /// Hang up (the flow is over).
    Disconnect {
        /// Why, as the contact's disconnect reason.
        reason: String,
    },
    /// The flow ended without routing (queue, hold and whisper flows).
    End,
}

/// What happened that the runner waits for.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The caller pressed keys.
    Digits(String),
    /// Prompt `seq` finished playing.
    PromptDone(u64),
    /// Function call `seq` answered (attributes, or why it failed).
    FunctionDone(u64, Result<BTreeMap<String, String>, String>),
    /// The center could not queue the call.
    QueueRefused(String),
    /// The number of a `transfer_to_phone_number` could not be reached
    /// (the typed failure, e.g. `busy`).
    DialFailed(String),
}

/// One block's run, as kept in the contact's flow log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogEntry {
    /// Flow id.
    pub flow: String,
    /// Block id.
    pub block: String,
    /// Block type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The branch taken (none for a block that ended the flow).
    pub branch: Option<String>,
    /// What the block was given.
    pub inputs: BTreeMap<String, String>,
    /// What it produced.
    pub outputs: BTreeMap<String, String>,
    /// When it started (ms since the epoch).
    pub started_ms: u64,
    /// When it ended.
    pub ended_ms: u64,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the runner waits for.
#[derive(Debug, Clone, PartialEq)]
enum Wait {
    /// Nothing yet (about to run a block).
    Ready,
    /// A `play_prompt` block.
    Prompt { seq: u64 },
    /// An input block collecting keys.
    Keys {
        seq: u64,
        playing: bool,
        buffer: String,
        deadline: Option<Millis>,
    },
    /// A function's answer.
    Function { seq: u64, deadline: Millis },
    /// The center is queueing the call.
    Queued,
    /// The center is dialing a number for the caller.
    Dialing,
    /// Over.
    Done,
}

/// One contact's run through a flow (and the flows it transfers to).
pub struct Runner {
    flows: Arc<Flows>,
    flow: String,
    block: String,
    ctx: Context,
    wait: Wait,
    /// The current block's log entry, while it waits.
    current: Option<LogEntry>,
    seq: u64,
    burst: u32,
    steps: u32,
    loops: HashMap<(String, String), u32>,
    type_ahead: String,
    log: Vec<LogEntry>,
}

impl Runner {
    /// A runner at the start of flow `flow` (which must exist).
    pub fn new(flows: Arc<Flows>, flow: &str, ctx: Context) -> Runner {
        let start = flows
            .flows
            .get(flow)
            .map(|f| f.start.clone())
            .unwrap_or_default();
        Runner {
            flows,
            flow: flow.to_owned(),
            block: start,
            ctx,
            wait: Wait::Ready,
            current: None,
            seq: 0,
            burst: 0,
            steps: 0,
            loops: HashMap::new(),
            type_ahead: String::new(),
            log: Vec::new(),
        }
    }

    /// Runs from the start block until something must be waited for.
    pub fn start(&mut self, now: Millis, env: &dyn Env) -> Vec<Action> {
        let mut out = Vec::new();
        self.advance(now, env, &mut out);
        out
    }

    /// The contact as the flow has made it.
    pub fn ctx(&self) -> &Context {
        &self.ctx
    }

    /// The flow running now (after transfers, the last one).
    pub fn flow(&self) -> &str {
        &self.flow
    }

    /// Blocks run so far.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// Whether the flow is over (routed, hung up or ended).
    pub fn finished(&self) -> bool {
        matches!(self.wait, Wait::Done | Wait::Queued | Wait::Dialing)
    }

    /// Takes the log entries written since the last call.
    pub fn take_log(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.log)
    }

    /// When [`Runner::tick`] has something to do.
    pub fn deadline(&self) -> Option<Millis> {
        match &self.wait {
            Wait::Keys { deadline, .. } => *deadline,
            Wait::Function { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }

    /// Fires a due timeout (keys, a function that never answered).
    pub fn tick(&mut self, now: Millis, env: &dyn Env) -> Vec<Action> {
        let mut out = Vec::new();
        if self.deadline().is_some_and(|d| d <= now) {
            match std::mem::replace(&mut self.wait, Wait::Ready) {
                Wait::Keys {
                    buffer, playing, ..
                } => {
                    if playing {
                        out.push(Action::StopPrompt);
                    }
                    self.keys_done(&buffer, true, now, env, &mut out);
                }
                Wait::Function { .. } => {
                    let why = "the function did not answer in time".to_owned();
                    self.finish_error("error", why, now);
                    self.advance(now, env, &mut out);
                }
                other => self.wait = other,
            }
        }
        out
    }

    /// Feeds an input.
    pub fn input(&mut self, input: Input, now: Millis, env: &dyn Env) -> Vec<Action> {
        let mut out = Vec::new();
        let timeout = self.timeout_ms();
        match (input, &mut self.wait) {
            (Input::Digits(d), Wait::Keys { .. }) => self.keys(&d, now, env, &mut out),
            (Input::Digits(d), Wait::Done) => {
                let _ = d;
            }
            (Input::Digits(d), _) => {
                for c in d.chars() {
                    if self.type_ahead.len() < MAX_TYPE_AHEAD {
                        self.type_ahead.push(c);
                    }
                }
            }
            (Input::PromptDone(s), Wait::Prompt { seq }) if s == *seq => {
                self.wait = Wait::Ready;
                self.finish("next", now);
                self.advance(now, env, &mut out);
            }
            (
                Input::PromptDone(s),
                Wait::Keys {
                    seq,
                    playing,
                    buffer,
                    deadline,
                },
            ) if s == *seq && *playing => {
                *playing = false;
                *deadline = Some(now.plus_ms(timeout));
                let _ = buffer;
            }
            (Input::FunctionDone(s, result), Wait::Function { seq, .. }) if s == *seq => {
                self.wait = Wait::Ready;
                match result {
                    Ok(attrs) => {
                        let mut merged = self.ctx.attributes.clone();
                        merged.extend(attrs.clone());
                        match crate::limits::check_attributes(&merged) {
                            Ok(()) => {
                                self.ctx.attributes = merged;
                                if let Some(e) = &mut self.current {
                                    e.outputs = attrs;
                                }
                                self.finish("next", now);
                            }
                            Err(why) => self.finish_error("error", why, now),
                        }
                    }
                    Err(why) => self.finish_error("error", why, now),
                }
                self.advance(now, env, &mut out);
            }
            (Input::QueueRefused(why), Wait::Queued) => {
                self.refused("transfer_to_queue", why, now, env, &mut out);
            }
            (Input::DialFailed(why), Wait::Dialing) => {
                self.refused("transfer_to_phone_number", why, now, env, &mut out);
            }
            _ => {}
        }
        out
    }

    /// The center could not do what the block asked (a queue refused the
    /// call, a number could not be reached): the block's entry is already
    /// logged as taken, so the refusal is an entry of its own, then the
    /// block's error branch.
    fn refused(
        &mut self,
        kind: &str,
        why: String,
        now: Millis,
        env: &dyn Env,
        out: &mut Vec<Action>,
    ) {
        self.wait = Wait::Ready;
        let block = self.block.clone();
        let has_error = self
            .current_block()
            .and_then(|b| b.branch("error"))
            .is_some();
        self.log_entry(LogEntry {
            flow: self.flow.clone(),
            block,
            kind: kind.into(),
            branch: has_error.then(|| "error".into()),
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            started_ms: now.0,
            ended_ms: now.0,
            error: Some(why.clone()),
        });
        self.take_branch("error", now, env, out, Some(why));
    }

    fn timeout_ms(&self) -> u64 {
        match self.current_block().map(|b| &b.kind) {
            Some(BlockKind::GetCustomerInput { timeout_ms, .. })
            | Some(BlockKind::StoreCustomerInput { timeout_ms, .. }) => *timeout_ms,
            _ => 5000,
        }
    }

    fn current_block(&self) -> Option<&Block> {
        self.flows.flows.get(&self.flow)?.blocks.get(&self.block)
    }

    /// Keys during an input block.
    fn keys(&mut self, digits: &str, now: Millis, env: &dyn Env, out: &mut Vec<Action>) {
        let (max, term) = match self.current_block().map(|b| &b.kind) {
            Some(BlockKind::GetCustomerInput {
                max_digits,
                terminator,
                ..
            })
            | Some(BlockKind::StoreCustomerInput {
                max_digits,
                terminator,
                ..
            }) => (*max_digits, *terminator),
            _ => (1, None),
        };
        let timeout = self.timeout_ms();
        let Wait::Keys {
            playing,
            buffer,
            deadline,
            ..
        } = &mut self.wait
        else {
            return;
        };
        let mut done = false;
        for c in digits.chars() {
            if Some(c) == term {
                done = true;
                break;
            }
            buffer.push(c);
            if buffer.chars().count() >= max {
                done = true;
                break;
            }
        }
        if done {
            let was_playing = *playing;
            let buffer = std::mem::take(buffer);
            self.wait = Wait::Ready;
            if was_playing {
                out.push(Action::StopPrompt);
            }
            self.keys_done(&buffer, false, now, env, out);
        } else if !*playing {
            // Each key restarts the time allowed for the next.
            *deadline = Some(now.plus_ms(timeout));
        }
    }

    /// An input block has its keys (or timed out with what it has).
    fn keys_done(
        &mut self,
        buffer: &str,
        timed_out: bool,
        now: Millis,
        env: &dyn Env,
        out: &mut Vec<Action>,
    ) {
        self.wait = Wait::Ready;
        if let Some(e) = &mut self.current {
            e.inputs.insert("digits".into(), buffer.to_owned());
        }
        let Some(block) = self.current_block().cloned() else {
            return;
        };
        if buffer.is_empty() {
            let branch = if block.branch("timeout").is_some() {
                "timeout"
            } else {
                "error"
            };
            if let Some(e) = &mut self.current {
                e.outputs.insert("result".into(), "no input".into());
            }
            self.finish(branch, now);
            self.advance(now, env, out);
            return;
        }
        match &block.kind {
            BlockKind::GetCustomerInput { keys, .. } => {
                let branch = if keys.contains_key(buffer) {
                    buffer.to_owned()
                } else if block.branch("default").is_some() {
                    "default".to_owned()
                } else {
                    "error".to_owned()
                };
                let _ = timed_out;
                self.finish(&branch, now);
            }
            BlockKind::StoreCustomerInput { attribute, .. } => {
                self.ctx
                    .attributes
                    .insert(attribute.clone(), buffer.to_owned());
                self.ctx.stored_input = Some(buffer.to_owned());
                if let Some(e) = &mut self.current {
                    e.outputs.insert(attribute.clone(), buffer.to_owned());
                }
                self.finish("next", now);
            }
            _ => {}
        }
        self.advance(now, env, out);
    }

    /// Closes the current block's log entry with `branch` and moves to
    /// the block it names (the runner is then `Ready`).
    fn finish(&mut self, branch: &str, now: Millis) {
        let target = self.target(branch);
        if let Some(mut e) = self.current.take() {
            e.branch = Some(branch.to_owned());
            e.ended_ms = now.0;
            self.log_entry(e);
        }
        self.goto(target, branch);
    }

    /// Like [`Runner::finish`] with the reason the block failed.
    fn finish_error(&mut self, branch: &str, why: String, now: Millis) {
        if let Some(e) = &mut self.current {
            e.error = Some(why);
        }
        self.finish(branch, now);
    }

    /// The block a branch of the current block names (keys and
    /// conditions included).
    fn target(&self, branch: &str) -> Option<String> {
        let block = self.current_block()?;
        if let Some(t) = block.branch(branch) {
            return Some(t.to_owned());
        }
        block
            .all_branches()
            .into_iter()
            .find(|(name, _)| name == branch)
            .map(|(_, to)| to)
    }

    fn goto(&mut self, target: Option<String>, branch: &str) {
        match target {
            Some(t) => self.block = t,
            None => {
                // A missing branch: validation makes this impossible in
                // routing flows except for optional error branches.
                self.block = format!("\u{0}end:{branch}");
            }
        }
    }

    fn log_entry(&mut self, e: LogEntry) {
        if self.ctx.logging || e.error.is_some() || e.kind == "set_logging" {
            self.log.push(e);
        }
    }

    /// Takes `branch` from the current block right away (with an entry
    /// for a block that did not wait) and runs on.
    fn take_branch(
        &mut self,
        branch: &str,
        now: Millis,
        env: &dyn Env,
        out: &mut Vec<Action>,
        error: Option<String>,
    ) {
        let target = self.target(branch);
        self.goto(target, branch);
        let _ = error;
        self.advance(now, env, out);
    }

    /// Ends the flow: routing flows hang up, the others just end.
    fn end(&mut self, reason: &str, out: &mut Vec<Action>) {
        self.wait = Wait::Done;
        let routes = self
            .flows
            .flows
            .get(&self.flow)
            .is_some_and(|f| f.kind.routes());
        if routes {
            out.push(Action::Disconnect {
                reason: reason.to_owned(),
            });
        } else {
            out.push(Action::End);
        }
    }

    /// Runs blocks until one waits or the flow ends.
    fn advance(&mut self, now: Millis, env: &dyn Env, out: &mut Vec<Action>) {
        loop {
            if !matches!(self.wait, Wait::Ready) {
                return;
            }
            if let Some(missing) = self.block.strip_prefix("\u{0}end:") {
                let routes = self
                    .flows
                    .flows
                    .get(&self.flow)
                    .is_some_and(|f| f.kind.routes());
                if routes {
                    let why = format!("no `{missing}` branch to take");
                    self.log_error(&why, now);
                    self.end("flow_error", out);
                } else {
                    self.end("flow_end", out);
                }
                return;
            }
            self.burst += 1;
            self.steps += 1;
            if self.burst > MAX_BURST || self.steps > MAX_STEPS {
                let why = if self.steps > MAX_STEPS {
                    format!("the flow ran {MAX_STEPS} blocks; stopped")
                } else {
                    format!(
                        "{MAX_BURST} blocks ran without waiting for the caller (a cycle without a loop block?); stopped"
                    )
                };
                self.log_error(&why, now);
                self.end("flow_error", out);
                return;
            }
            let Some(block) = self.current_block().cloned() else {
                let why = format!("no block `{}` in flow `{}`", self.block, self.flow);
                self.log_error(&why, now);
                self.end("flow_error", out);
                return;
            };
            self.current = Some(LogEntry {
                flow: self.flow.clone(),
                block: block.id.clone(),
                kind: block.type_name.to_owned(),
                branch: None,
                inputs: BTreeMap::new(),
                outputs: BTreeMap::new(),
                started_ms: now.0,
                ended_ms: now.0,
                error: None,
            });
            self.run_block(&block, now, env, out);
            if !matches!(self.wait, Wait::Ready) {
                if !matches!(self.wait, Wait::Done | Wait::Queued | Wait::Dialing) {
                    self.burst = 0;
                }
                return;
            }
        }
    }

    /// A log entry for a failure outside any block.
    fn log_error(&mut self, why: &str, now: Millis) {
        tracing::warn!(contact = %self.ctx.contact_id, flow = %self.flow, "{why}");
        let block = self.block.trim_start_matches("\u{0}end:").to_owned();
        self.current = None;
        self.log.push(LogEntry {
            flow: self.flow.clone(),
            block,
            kind: "error".into(),
            branch: None,
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            started_ms: now.0,
            ended_ms: now.0,
            error: Some(why.to_owned()),
        });
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn say(&mut self, p: &Prompt) -> Say {
        match p {
            Prompt::Text(t) => {
                let (text, unknown) = self.render(t);
                if let Some(e) = &mut self.current {
                    e.inputs.insert("prompt".into(), text.clone());
                    if !unknown.is_empty() {
                        e.outputs
                            .insert("unknown_references".into(), unknown.join(", "));
                    }
                }
                Say::Text(text)
            }
            Prompt::Wav(w) => {
                if let Some(e) = &mut self.current {
                    e.inputs.insert("prompt".into(), w.display().to_string());
                }
                Say::Wav(w.clone())
            }
        }
    }

    /// The value of a reference like `$.Attributes.x`, if it names one.
    fn reference(&self, r: &str, queue_name: &dyn Fn(&str) -> String) -> Option<String> {
        if let Some(name) = r.strip_prefix("$.Attributes.") {
            return self.ctx.attributes.get(name).cloned();
        }
        match r {
            "$.CustomerEndpoint.Address" => Some(self.ctx.customer.clone()),
            "$.SystemEndpoint.Address" => Some(self.ctx.system.clone()),
            "$.Queue.Name" => self.ctx.queue.as_deref().map(queue_name),
            "$.StoredCustomerInput" => self.ctx.stored_input.clone(),
            "$.LanguageCode" => Some(self.ctx.language.code().to_owned()),
            _ => None,
        }
    }

    /// Text with its references filled in; unknown ones render empty
    /// and are returned.
    pub fn render(&self, text: &str) -> (String, Vec<String>) {
        self.render_with(text, &|q: &str| q.to_owned())
    }

    fn render_with(
        &self,
        text: &str,
        queue_name: &dyn Fn(&str) -> String,
    ) -> (String, Vec<String>) {
        let mut out = String::new();
        let mut unknown = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("$.") {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            let r = reference_at(tail);
            match self.reference(r, queue_name) {
                Some(v) => out.push_str(&v),
                None => unknown.push(r.to_owned()),
            }
            rest = &tail[r.len()..];
        }
        out.push_str(rest);
        (out, unknown)
    }

    /// An attribute (or reference) a check names.
    fn lookup(&self, attribute: &str, env: &dyn Env) -> Option<String> {
        if attribute.starts_with("$.") {
            self.reference(attribute, &|q| env.queue_name(q))
        } else {
            self.ctx.attributes.get(attribute).cloned()
        }
    }

    fn run_block(&mut self, block: &Block, now: Millis, env: &dyn Env, out: &mut Vec<Action>) {
        match &block.kind {
            BlockKind::PlayPrompt(p) => {
                let say = self.say(p);
                let seq = self.next_seq();
                out.push(Action::Play {
                    seq,
                    say,
                    language: self.ctx.language,
                });
                self.wait = Wait::Prompt { seq };
            }
            BlockKind::GetCustomerInput { prompt, .. }
            | BlockKind::StoreCustomerInput {
                prompt: Some(prompt),
                ..
            } => {
                let say = self.say(prompt);
                let seq = self.next_seq();
                out.push(Action::Play {
                    seq,
                    say,
                    language: self.ctx.language,
                });
                self.wait = Wait::Keys {
                    seq,
                    playing: true,
                    buffer: String::new(),
                    deadline: None,
                };
                self.type_ahead_in(now, env, out);
            }
            BlockKind::StoreCustomerInput { prompt: None, .. } => {
                let seq = self.next_seq();
                self.wait = Wait::Keys {
                    seq,
                    playing: false,
                    buffer: String::new(),
                    deadline: Some(now.plus_ms(self.timeout_ms())),
                };
                self.type_ahead_in(now, env, out);
            }
            BlockKind::SetAttributes(attrs) => {
                let mut merged = self.ctx.attributes.clone();
                let mut set = BTreeMap::new();
                for (k, v) in attrs {
                    let (value, _) = self.render_with(v, &|q| env.queue_name(q));
                    set.insert(k.clone(), value);
                }
                merged.extend(set.clone());
                match crate::limits::check_attributes(&merged) {
                    Ok(()) => {
                        self.ctx.attributes = merged;
                        if let Some(e) = &mut self.current {
                            e.outputs = set;
                        }
                        self.finish("next", now);
                    }
                    Err(why) => self.finish_error("error", why, now),
                }
            }
            BlockKind::CheckAttribute {
                attribute,
                conditions,
            } => {
                let value = self.lookup(attribute, env);
                if let Some(e) = &mut self.current {
                    e.inputs.insert(
                        attribute.clone(),
                        value.clone().unwrap_or_else(|| "(not set)".into()),
                    );
                }
                let branch = conditions
                    .iter()
                    .find(|c| holds(c, value.as_deref()))
                    .map_or_else(|| "no_match".to_owned(), Condition::name);
                self.finish(&branch, now);
            }
            BlockKind::InvokeFunction {
                function,
                parameters,
            } => {
                let mut params = BTreeMap::new();
                for (k, v) in parameters {
                    params.insert(k.clone(), self.render_with(v, &|q| env.queue_name(q)).0);
                }
                if let Some(s) = &self.ctx.stored_input {
                    params
                        .entry("StoredCustomerInput".to_owned())
                        .or_insert_with(|| s.clone());
                }
                let queue_name = self.ctx.queue.as_deref().map(|q| env.queue_name(q));
                let body = super::invoke::event(&super::invoke::EventData {
                    contact_id: &self.ctx.contact_id,
                    customer: &self.ctx.customer,
                    system: &self.ctx.system,
                    queue: queue_name.as_deref(),
                    attributes: &self.ctx.attributes,
                    language: self.ctx.language.code(),
                    parameters: &params,
                });
                if let Some(e) = &mut self.current {
                    e.inputs.insert("function".into(), function.clone());
                    e.inputs.extend(params.clone());
                }
                let timeout = self
                    .flows
                    .functions
                    .get(function)
                    .map_or(super::MAX_FUNCTION_TIMEOUT_MS, |f| f.timeout_ms);
                let seq = self.next_seq();
                out.push(Action::Invoke {
                    seq,
                    function: function.clone(),
                    body,
                });
                self.wait = Wait::Function {
                    seq,
                    deadline: now.plus_ms(timeout + FUNCTION_GRACE_MS),
                };
            }
            BlockKind::CheckHours { queue } => {
                match queue.clone().or_else(|| self.ctx.queue.clone()) {
                    Some(q) => {
                        let open = env.queue_open(&q, now);
                        if let Some(e) = &mut self.current {
                            e.inputs.insert("queue".into(), q);
                        }
                        self.finish(if open { "in_hours" } else { "out_of_hours" }, now);
                    }
                    None => self.no_queue(block, now),
                }
            }
            BlockKind::CheckQueueStatus {
                queue,
                metric,
                conditions,
            } => match queue.clone().or_else(|| self.ctx.queue.clone()) {
                Some(q) => {
                    let value = env.queue_metric(&q, *metric, now);
                    let text = value.to_string();
                    if let Some(e) = &mut self.current {
                        e.inputs.insert("queue".into(), q);
                        e.inputs.insert(metric.as_str().into(), text.clone());
                    }
                    let branch = conditions
                        .iter()
                        .find(|c| holds(c, Some(&text)))
                        .map_or_else(|| "no_match".to_owned(), Condition::name);
                    self.finish(&branch, now);
                }
                None => self.no_queue(block, now),
            },
            BlockKind::SetWorkingQueue(q) => {
                self.ctx.queue = Some(q.clone());
                if let Some(e) = &mut self.current {
                    e.outputs.insert("queue".into(), q.clone());
                }
                self.finish("next", now);
            }
            BlockKind::ChangeRoutingPriority { priority, age_s } => {
                if let Some(p) = priority {
                    self.ctx.priority = Some(*p);
                }
                if let Some(a) = age_s {
                    self.ctx.age_s = self.ctx.age_s.saturating_add(*a);
                }
                if let Some(e) = &mut self.current {
                    if let Some(p) = self.ctx.priority {
                        e.outputs.insert("priority".into(), p.to_string());
                    }
                    e.outputs.insert("age_s".into(), self.ctx.age_s.to_string());
                }
                self.finish("next", now);
            }
            BlockKind::SetLogging(on) => {
                self.ctx.logging = *on;
                self.finish("next", now);
            }
            BlockKind::SetVoice(l) => {
                self.ctx.language = *l;
                if let Some(e) = &mut self.current {
                    e.outputs.insert("language".into(), l.code().into());
                }
                self.finish("next", now);
            }
            BlockKind::TransferToQueue => match self.ctx.queue.clone() {
                Some(q) => {
                    if let Some(e) = &mut self.current.take() {
                        e.inputs.insert("queue".into(), q.clone());
                        e.ended_ms = now.0;
                        let e = e.clone();
                        self.log_entry(e);
                    }
                    out.push(Action::Queue { queue: q });
                    self.wait = Wait::Queued;
                }
                None => self.no_queue(block, now),
            },
            BlockKind::TransferToFlow(f) => {
                let start = self.flows.flows.get(f).map(|fl| fl.start.clone());
                if let Some(mut e) = self.current.take() {
                    e.outputs.insert("flow".into(), f.clone());
                    e.ended_ms = now.0;
                    self.log_entry(e);
                }
                match start {
                    Some(s) => {
                        self.flow = f.clone();
                        self.block = s;
                    }
                    None => self.goto(None, "flow"),
                }
            }
            BlockKind::TransferToPhoneNumber(number) => {
                if let Some(mut e) = self.current.take() {
                    e.inputs.insert("number".into(), number.clone());
                    e.ended_ms = now.0;
                    self.log_entry(e);
                }
                out.push(Action::TransferToPhone {
                    number: number.clone(),
                });
                self.wait = Wait::Dialing;
            }
            BlockKind::SetCallbackNumber { attribute } => {
                let number = match attribute {
                    Some(a) => self.lookup(a, env).unwrap_or_default(),
                    None => self.ctx.customer.clone(),
                };
                if protocol::endpoint::is_e164(&number) {
                    self.ctx.callback_number = Some(number.clone());
                    if let Some(e) = &mut self.current {
                        e.outputs.insert("callback_number".into(), number);
                    }
                    self.finish("next", now);
                } else {
                    let why = format!("`{number}` is not an E.164 number");
                    self.finish_error("error", why, now);
                }
            }
            BlockKind::QueueCallback { queue } => {
                match queue.clone().or_else(|| self.ctx.queue.clone()) {
                    Some(q) => {
                        let number = self
                            .ctx
                            .callback_number
                            .clone()
                            .unwrap_or_else(|| self.ctx.customer.clone());
                        if let Some(e) = &mut self.current {
                            e.outputs.insert("queue".into(), q.clone());
                            e.outputs.insert("number".into(), number.clone());
                        }
                        out.push(Action::Callback { queue: q, number });
                        self.finish("next", now);
                    }
                    None => self.no_queue(block, now),
                }
            }
            BlockKind::Loop(count) => {
                let key = (self.flow.clone(), block.id.clone());
                let n = self.loops.entry(key.clone()).or_insert(0);
                *n += 1;
                let pass = *n;
                if let Some(e) = &mut self.current {
                    e.inputs.insert("pass".into(), pass.to_string());
                }
                if pass <= *count {
                    self.finish("looping", now);
                } else {
                    self.loops.remove(&key);
                    self.finish("complete", now);
                }
            }
            BlockKind::SetFlow(slot, flow) => {
                let kind = self.flows.flows.get(flow).map(|f| f.kind);
                use super::file::FlowType;
                let target = match (slot, kind) {
                    (FlowSlot::Queue, _) => &mut self.ctx.queue_flow,
                    (FlowSlot::Hold, Some(FlowType::AgentHold)) => &mut self.ctx.agent_hold_flow,
                    (FlowSlot::Hold, _) => &mut self.ctx.customer_hold_flow,
                    (FlowSlot::Whisper, Some(FlowType::AgentWhisper)) => {
                        &mut self.ctx.agent_whisper_flow
                    }
                    (FlowSlot::Whisper, _) => &mut self.ctx.customer_whisper_flow,
                };
                *target = Some(flow.clone());
                if let Some(e) = &mut self.current {
                    e.outputs.insert("flow".into(), flow.clone());
                }
                self.finish("next", now);
            }
            BlockKind::Disconnect => {
                if let Some(mut e) = self.current.take() {
                    e.ended_ms = now.0;
                    self.log_entry(e);
                }
                self.wait = Wait::Done;
                out.push(Action::Disconnect {
                    reason: "flow_disconnect".into(),
                });
            }
        }
    }

    /// A block that needs a queue found none (no `queue` and no working
    /// queue): its `error` branch.
    fn no_queue(&mut self, block: &Block, now: Millis) {
        let why = format!(
            "`{}` needs a queue and no working queue is set",
            block.type_name
        );
        self.finish_error("error", why, now);
    }

    /// Keys typed before the input block asked are its first keys.
    fn type_ahead_in(&mut self, now: Millis, env: &dyn Env, out: &mut Vec<Action>) {
        if self.type_ahead.is_empty() {
            return;
        }
        let keys = std::mem::take(&mut self.type_ahead);
        self.keys(&keys, now, env, out);
    }
}

/// The reference at the start of `s` (which starts with `$.`): a dotted
/// name whose last part is letters, digits, `_` or `-` (a sentence's full
/// stop after it is not part of it).
fn reference_at(s: &str) -> &str {
    let fixed = [
        "$.CustomerEndpoint.Address",
        "$.SystemEndpoint.Address",
        "$.Queue.Name",
        "$.StoredCustomerInput",
        "$.LanguageCode",
    ];
    if let Some(f) = fixed.iter().find(|f| s.starts_with(**f)) {
        return &s[..f.len()];
    }
    let word = |from: usize| {
        s[from..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(s.len(), |i| from + i)
    };
    if s.starts_with("$.Attributes.") {
        let end = word("$.Attributes.".len());
        return &s[..end];
    }
    // An unknown reference: `$.` and one word.
    let end = word(2);
    &s[..end]
}

/// Whether a condition holds for a value (`None`: not set).
fn holds(c: &Condition, value: Option<&str>) -> bool {
    let Some(v) = value else {
        return false;
    };
    let num = || Some((v.trim().parse::<f64>().ok()?, c.value.parse::<f64>().ok()?));
    match c.op {
        Op::Present => !v.is_empty(),
        Op::Equals => match num() {
            Some((a, b)) if c.value.parse::<f64>().is_ok() && v.parse::<f64>().is_ok() => a == b,
            _ => v == c.value,
        },
        Op::NotEquals => match num() {
            Some((a, b)) => a != b,
            None => v != c.value,
        },
        Op::Contains => v.contains(&c.value),
        Op::StartsWith => v.starts_with(&c.value),
        Op::Lt => num().is_some_and(|(a, b)| a < b),
        Op::Le => num().is_some_and(|(a, b)| a <= b),
        Op::Gt => num().is_some_and(|(a, b)| a > b),
        Op::Ge => num().is_some_and(|(a, b)| a >= b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::file::test_flows;
    use std::collections::HashSet;

    /// Queues `support` (open) and `orders` (closed), with fixed metrics.
    struct FakeEnv {
        open: HashSet<&'static str>,
        waiting: f64,
    }

    impl Env for FakeEnv {
        fn queue_open(&self, queue: &str, _now: Millis) -> bool {
            self.open.contains(queue)
        }
        fn queue_metric(&self, _queue: &str, metric: Metric, _now: Millis) -> f64 {
            match metric {
                Metric::ContactsInQueue => self.waiting,
                Metric::OldestContactAgeS => 42.0,
                Metric::AgentsAvailable => 0.0,
            }
        }
        fn queue_name(&self, queue: &str) -> String {
            format!("The {queue} queue")
        }
    }

    fn env() -> FakeEnv {
        FakeEnv {
            open: ["support"].into_iter().collect(),
            waiting: 3.0,
        }
    }

    fn runner(files: &[(&str, &str)]) -> Runner {
        let flows = Arc::new(test_flows(files));
        let first = files[0].0;
        let mut ctx = Context::new("c-1", "+15555550100", "+18005550100");
        ctx.attributes.insert("product".into(), "Hoodie".into());
        Runner::new(flows, first, ctx)
    }

    /// The prompt the runner asked to play, if any.
    fn prompt_in(actions: &[Action]) -> Option<u64> {
        actions.iter().find_map(|a| match a {
            Action::Play { seq, .. } => Some(*seq),
            _ => None,
        })
    }

    fn play_seq(actions: &[Action]) -> u64 {
        prompt_in(actions).unwrap_or_else(|| panic!("no prompt in {actions:?}"))
    }

    fn branches(r: &mut Runner) -> Vec<(String, Option<String>)> {
        r.take_log()
            .into_iter()
            .map(|e| (e.block, e.branch))
            .collect()
    }

    const MENU: &str = include_str!("../../testdata/flows/run-menu.toml");

    #[test]
    fn a_prompt_renders_references_and_the_full_stop_after_them() {
        let mut r = runner(&[("menu", MENU)]);
        let a = r.start(Millis(0), &env());
        assert!(
            a.contains(&Action::Play {
                seq: 1,
                say: Say::Text("You bought Hoodie. Press 1 or 2.".into()),
                language: Language::EnUs
            }),
            "{a:?}"
        );
        let (text, unknown) =
            r.render("Hi $.Attributes.nobody, $.Foo.Bar and $.CustomerEndpoint.Address.");
        assert_eq!(text, "Hi , .Bar and +15555550100.");
        assert_eq!(unknown, ["$.Attributes.nobody", "$.Foo"]);
    }

    #[test]
    fn a_key_pressed_over_the_prompt_stops_it_and_takes_its_branch() {
        let mut r = runner(&[("menu", MENU)]);
        r.start(Millis(0), &env());
        let a = r.input(Input::Digits("1".into()), Millis(1500), &env());
        assert_eq!(a[0], Action::StopPrompt);
        assert_eq!(
            a[1],
            Action::Queue {
                queue: "support".into()
            }
        );
        assert!(r.finished());
        let log = r.take_log();
        assert_eq!(log[0].block, "menu");
        assert_eq!(log[0].branch.as_deref(), Some("1"));
        assert_eq!(log[0].inputs["digits"], "1");
        assert_eq!(log[0].started_ms, 0);
        assert_eq!(log[0].ended_ms, 1500);
        assert_eq!(log[1].branch.as_deref(), Some("next"));
        assert_eq!(log[2].block, "go");
    }

    #[test]
    fn a_wrong_key_takes_default() {
        let mut r = runner(&[("menu", MENU)]);
        r.start(Millis(0), &env());
        let a = r.input(Input::Digits("7".into()), Millis(100), &env());
        assert!(a.contains(&Action::Disconnect {
            reason: "flow_disconnect".into()
        }));
        assert_eq!(branches(&mut r)[0], ("menu".into(), Some("default".into())));
    }

    #[test]
    fn no_input_times_out_after_the_prompt_ends() {
        let mut r = runner(&[("menu", MENU)]);
        let a = r.start(Millis(0), &env());
        let seq = play_seq(&a);
        // No timer while the prompt plays.
        assert_eq!(r.deadline(), None);
        assert!(r.tick(Millis(60_000), &env()).is_empty());
        r.input(Input::PromptDone(seq + 99), Millis(60_000), &env());
        assert_eq!(r.deadline(), None, "another prompt's end is ignored");
        r.input(Input::PromptDone(seq), Millis(61_000), &env());
        assert_eq!(r.deadline(), Some(Millis(66_000)));
        assert!(r.tick(Millis(65_999), &env()).is_empty());
        let a = r.tick(Millis(66_000), &env());
        assert!(matches!(a[0], Action::Disconnect { .. }), "{a:?}");
        let log = r.take_log();
        assert_eq!(log[0].branch.as_deref(), Some("timeout"));
        assert_eq!(log[0].outputs["result"], "no input");
        assert_eq!(log[1].block, "none");
    }

    #[test]
    fn without_a_timeout_branch_no_input_takes_error() {
        let text = MENU.replacen("timeout = \"none\"\n", "", 1);
        let mut r = runner(&[("menu", &text)]);
        let seq = play_seq(&r.start(Millis(0), &env()));
        r.input(Input::PromptDone(seq), Millis(10), &env());
        r.tick(Millis(5010), &env());
        assert_eq!(branches(&mut r)[0].1.as_deref(), Some("error"));
    }

    const STORE: &str = include_str!("../../testdata/flows/run-store.toml");

    #[test]
    fn stored_keys_go_to_the_function_and_its_answer_to_the_attributes() {
        let mut r = runner(&[("date", STORE)]);
        let seq = play_seq(&r.start(Millis(0), &env()));
        r.input(Input::PromptDone(seq), Millis(2000), &env());
        // Keys one by one; each restarts the time allowed.
        r.input(Input::Digits("2018".into()), Millis(3000), &env());
        assert_eq!(r.deadline(), Some(Millis(7000)));
        let a = r.input(Input::Digits("1120#".into()), Millis(4000), &env());
        let (seq, body) = match &a[0] {
            Action::Invoke {
                seq,
                function,
                body,
            } => {
                assert_eq!(function, "f");
                (*seq, body.clone())
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(r.ctx().attributes["new_date"], "20181120");
        let params = &body["Details"]["Parameters"];
        assert_eq!(params["StoredCustomerInput"], "20181120");
        assert_eq!(params["action"], "change");
        assert_eq!(params["product"], "Hoodie");
        let data = &body["Details"]["ContactData"];
        assert_eq!(data["CustomerEndpoint"]["Address"], "+15555550100");
        assert_eq!(data["SystemEndpoint"]["Address"], "+18005550100");
        assert_eq!(data["Attributes"]["new_date"], "20181120");
        assert_eq!(data["Queue"], serde_json::Value::Null);
        assert_eq!(body["Name"], "ContactFlowEvent");
        let answer: BTreeMap<String, String> = [
            ("shipping_date".to_string(), "2018-11-20".to_string()),
            ("change_result".to_string(), "ok".to_string()),
        ]
        .into_iter()
        .collect();
        let a = r.input(Input::FunctionDone(seq, Ok(answer)), Millis(4100), &env());
        assert!(
            a.contains(&Action::Play {
                seq: seq + 1,
                say: Say::Text("Changed to 2018-11-20, from 20181120.".into()),
                language: Language::EnUs,
            }),
            "{a:?}"
        );
        let log = r.take_log();
        assert_eq!(log[0].outputs["new_date"], "20181120");
        assert_eq!(log[1].outputs["shipping_date"], "2018-11-20");
        assert_eq!(log[2].branch.as_deref(), Some("equals ok"));
    }

    #[test]
    fn a_function_error_or_silence_takes_the_error_branch() {
        let mut r = runner(&[("date", STORE)]);
        r.start(Millis(0), &env());
        let a = r.input(Input::Digits("1#".into()), Millis(10), &env());
        let Action::Invoke { seq, .. } = a[1].clone() else {
            panic!("{a:?}")
        };
        let a = r.input(
            Input::FunctionDone(seq, Err("refused".into())),
            Millis(20),
            &env(),
        );
        assert!(matches!(&a[0], Action::Play { say: Say::Text(t), .. } if t == "Sorry."));
        let log = r.take_log();
        assert_eq!(log[1].branch.as_deref(), Some("error"));
        assert_eq!(log[1].error.as_deref(), Some("refused"));

        // No answer at all: the runner's own deadline (timeout + grace).
        let mut r = runner(&[("date", STORE)]);
        r.start(Millis(0), &env());
        r.input(Input::Digits("1#".into()), Millis(10), &env());
        assert_eq!(r.deadline(), Some(Millis(10 + 1000 + FUNCTION_GRACE_MS)));
        let a = r.tick(Millis(2010), &env());
        assert!(matches!(&a[0], Action::Play { .. }), "{a:?}");
        let log = r.take_log();
        assert!(log[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("in time")));
        // An answer too late is ignored.
        assert!(r
            .input(
                Input::FunctionDone(1, Ok(BTreeMap::new())),
                Millis(3000),
                &env()
            )
            .is_empty());
    }

    #[test]
    fn stored_input_times_out_with_nothing_or_keeps_a_partial_entry() {
        let mut r = runner(&[("date", STORE)]);
        let seq = play_seq(&r.start(Millis(0), &env()));
        r.input(Input::PromptDone(seq), Millis(1000), &env());
        let a = r.tick(Millis(5000), &env());
        assert!(matches!(a[0], Action::Disconnect { .. }));
        assert_eq!(branches(&mut r)[0].1.as_deref(), Some("timeout"));

        let mut r = runner(&[("date", STORE)]);
        let seq = play_seq(&r.start(Millis(0), &env()));
        r.input(Input::PromptDone(seq), Millis(1000), &env());
        r.input(Input::Digits("12".into()), Millis(1500), &env());
        let a = r.tick(Millis(5500), &env());
        assert!(matches!(a[0], Action::Invoke { .. }), "{a:?}");
        assert_eq!(r.ctx().attributes["new_date"], "12");
    }

    #[test]
    fn keys_typed_ahead_feed_the_next_input_block() {
        let text = r#"name = "T"
type = "inbound"
start = "hello"

[blocks.hello]
type = "play_prompt"
text = "Hello."
next = "menu"

[blocks.menu]
type = "get_customer_input"
text = "Press 1."
keys = { "1" = "bye" }
error = "bye"

[blocks.bye]
type = "disconnect"
"#;
        let mut r = runner(&[("t", text)]);
        let seq = play_seq(&r.start(Millis(0), &env()));
        assert!(r
            .input(Input::Digits("1".into()), Millis(5), &env())
            .is_empty());
        let a = r.input(Input::PromptDone(seq), Millis(900), &env());
        assert!(a.contains(&Action::StopPrompt), "{a:?}");
        assert!(matches!(a.last(), Some(Action::Disconnect { .. })));
        assert_eq!(branches(&mut r)[1].1.as_deref(), Some("1"));
    }

    const ROUTING: &str = include_str!("../../testdata/flows/run-routing.toml");

    const WAIT: &str = include_str!("../../testdata/flows/run-wait.toml");

    #[test]
    fn attributes_checks_hours_queue_status_priority_and_queue_flow() {
        let mut r = runner(&[("routing", ROUTING), ("wait", WAIT)]);
        let a = r.start(Millis(0), &env());
        assert_eq!(
            a,
            [Action::Play {
                seq: 1,
                say: Say::Text("support".into()),
                language: Language::JaJp
            }]
        );
        let ctx = r.ctx().clone();
        assert_eq!(ctx.attributes["tier"], "gold");
        assert_eq!(ctx.attributes["caller"], "+15555550100");
        assert_eq!(ctx.queue.as_deref(), Some("support"));
        assert_eq!(ctx.priority, Some(1));
        assert_eq!(ctx.age_s, 30);
        assert_eq!(ctx.callback_number.as_deref(), Some("+15555550100"));
        assert_eq!(ctx.queue_flow.as_deref(), Some("wait"));
        let taken: Vec<Option<String>> = r.take_log().into_iter().map(|e| e.branch).collect();
        assert_eq!(
            taken,
            [
                Some("next".into()),
                Some("next".into()),
                Some("le 7".into()),
                Some("out_of_hours".into()),
                Some("next".into()),
                Some("lt 10".into()),
                Some("next".into()),
                Some("next".into()),
                Some("next".into()),
            ]
        );
        let a = r.input(Input::PromptDone(1), Millis(500), &env());
        assert_eq!(
            a,
            [Action::Queue {
                queue: "support".into()
            }]
        );
        // The center could not queue it: the error branch.
        let a = r.input(Input::QueueRefused("full".into()), Millis(600), &env());
        assert!(matches!(a[0], Action::Disconnect { .. }));
        let log = r.take_log();
        assert_eq!(log.last().map(|e| e.block.as_str()), Some("bye"));
        assert!(log.iter().any(|e| e.error.as_deref() == Some("full")));
    }

    #[test]
    fn a_number_that_cannot_be_reached_takes_the_error_branch() {
        let flow = r#"name = "P"
type = "inbound"
start = "phone"

[blocks.phone]
type = "transfer_to_phone_number"
number = "+15555550199"
error = "bye"

[blocks.bye]
type = "disconnect"
"#;
        let mut r = runner(&[("p", flow)]);
        let a = r.start(Millis(0), &env());
        assert_eq!(
            a,
            [Action::TransferToPhone {
                number: "+15555550199".into()
            }]
        );
        assert!(r.finished(), "the flow is over unless the dial fails");
        // Keys and a stale queue refusal change nothing while it dials.
        assert!(r
            .input(Input::Digits("1".into()), Millis(5), &env())
            .is_empty());
        assert!(r
            .input(Input::QueueRefused("full".into()), Millis(6), &env())
            .is_empty());
        let a = r.input(Input::DialFailed("busy".into()), Millis(10), &env());
        assert!(matches!(a[0], Action::Disconnect { .. }), "{a:?}");
        let log = r.take_log();
        let failed = log
            .iter()
            .find(|e| e.error.as_deref() == Some("busy"))
            .expect("the failure is logged");
        assert_eq!(failed.kind, "transfer_to_phone_number");
        assert_eq!(failed.branch.as_deref(), Some("error"));
        assert_eq!(log.last().map(|e| e.block.as_str()), Some("bye"));
        // Once answered (no failure comes), the flow stays over.
        let a = r.input(Input::DialFailed("late".into()), Millis(20), &env());
        assert!(a.is_empty(), "{a:?}");
    }

    #[test]
    fn a_loop_takes_looping_count_times_then_complete_and_a_side_flow_ends() {
        let flows = Arc::new(test_flows(&[("wait", WAIT)]));
        let mut r = Runner::new(flows, "wait", Context::new("c", "+1555", "+1800"));
        let mut a = r.start(Millis(0), &env());
        let mut plays = 0;
        let mut t = 0;
        while let Some(seq) = prompt_in(&a) {
            plays += 1;
            assert!(plays < 10, "runaway");
            t += 1000;
            a = r.input(Input::PromptDone(seq), Millis(t), &env());
        }
        // Three "Please hold." (first pass and two loops), then "Still here."
        assert_eq!(plays, 4);
        assert_eq!(a, [Action::End]);
        let loops: Vec<Option<String>> = r
            .take_log()
            .into_iter()
            .filter(|e| e.block == "again")
            .map(|e| e.branch)
            .collect();
        assert_eq!(
            loops,
            [
                Some("looping".into()),
                Some("looping".into()),
                Some("complete".into())
            ]
        );
    }

    #[test]
    fn a_cycle_without_a_loop_block_ends_the_call_with_the_reason_logged() {
        let text = r#"name = "Cycle"
type = "inbound"
start = "a"

[blocks.a]
type = "set_attributes"
attributes = { x = "1" }
next = "b"

[blocks.b]
type = "set_logging"
enabled = true
next = "a"
"#;
        let mut r = runner(&[("cycle", text)]);
        let a = r.start(Millis(0), &env());
        assert_eq!(
            a,
            [Action::Disconnect {
                reason: "flow_error".into()
            }]
        );
        assert!(r.finished());
        let log = r.take_log();
        assert!(log.len() <= MAX_BURST as usize + 1);
        assert!(log
            .last()
            .and_then(|e| e.error.as_deref())
            .is_some_and(|e| e.contains("without waiting")));
    }

    #[test]
    fn a_cycle_through_prompts_stops_at_the_step_limit() {
        let text = r#"name = "Forever"
type = "inbound"
start = "a"

[blocks.a]
type = "play_prompt"
text = "Again."
next = "a"
"#;
        let mut r = runner(&[("forever", text)]);
        let mut a = r.start(Millis(0), &env());
        let mut n = 0u64;
        loop {
            n += 1;
            assert!(n < 2 * u64::from(MAX_STEPS), "runaway");
            let Some(seq) = prompt_in(&a) else {
                break;
            };
            a = r.input(Input::PromptDone(seq), Millis(n), &env());
        }
        assert_eq!(
            a,
            [Action::Disconnect {
                reason: "flow_error".into()
            }]
        );
    }

    #[test]
    fn transfers_callbacks_flows_logging_and_disconnect() {
        let main = r#"name = "Main"
type = "inbound"
start = "quiet"

[blocks.quiet]
type = "set_logging"
enabled = false
next = "hidden"

[blocks.hidden]
type = "set_attributes"
attributes = { secret = "1" }
next = "loud"

[blocks.loud]
type = "set_logging"
enabled = true
next = "whisper"

[blocks.whisper]
type = "set_whisper_flow"
flow = "whisper"
next = "hold"

[blocks.hold]
type = "set_hold_flow"
flow = "hold"
next = "cb"

[blocks.cb]
type = "set_callback_number"
attribute = "cbnum"
next = "q"
error = "other"

[blocks.q]
type = "queue_callback"
queue = "orders"
next = "bye"

[blocks.other]
type = "transfer_to_flow"
flow = "second"

[blocks.bye]
type = "disconnect"
"#;
        let second = r#"name = "Second"
type = "transfer_to_queue"
start = "phone"

[blocks.phone]
type = "transfer_to_phone_number"
number = "+15555550199"
"#;
        let whisper = r#"name = "W"
type = "agent_whisper"
start = "w"

[blocks.w]
type = "play_prompt"
text = "Order $.Attributes.order_id."
"#;
        let hold = r#"name = "H"
type = "agent_hold"
start = "h"

[blocks.h]
type = "play_prompt"
text = "Held."
"#;
        let files = [
            ("main", main),
            ("second", second),
            ("whisper", whisper),
            ("hold", hold),
        ];
        // No callback number attribute: error branch, then another flow.
        let mut r = runner(&files);
        let a = r.start(Millis(0), &env());
        assert_eq!(
            a,
            [Action::TransferToPhone {
                number: "+15555550199".into()
            }]
        );
        assert_eq!(r.flow(), "second");
        assert_eq!(r.ctx().agent_whisper_flow.as_deref(), Some("whisper"));
        assert_eq!(r.ctx().agent_hold_flow.as_deref(), Some("hold"));
        let log = r.take_log();
        assert!(log.iter().all(|e| e.block != "hidden"), "logging was off");
        assert!(log
            .iter()
            .find(|e| e.block == "cb")
            .and_then(|e| e.error.clone())
            .is_some());
        assert_eq!(log.last().map(|e| e.flow.as_str()), Some("second"));

        // With one: a callback is queued and the flow carries on.
        let mut r = runner(&files);
        r.ctx
            .attributes
            .insert("cbnum".into(), "+15555550111".into());
        let a = r.start(Millis(0), &env());
        assert_eq!(
            a,
            [
                Action::Callback {
                    queue: "orders".into(),
                    number: "+15555550111".into()
                },
                Action::Disconnect {
                    reason: "flow_disconnect".into()
                }
            ]
        );
        // Keys after the end change nothing.
        assert!(r
            .input(Input::Digits("1".into()), Millis(5), &env())
            .is_empty());
    }

    #[test]
    fn conditions_compare_text_and_numbers() {
        let c = |op, value: &str| Condition {
            op,
            value: value.into(),
            to: String::new(),
        };
        assert!(holds(&c(Op::Equals, "5"), Some("5.0")));
        assert!(holds(&c(Op::Equals, "abc"), Some("abc")));
        assert!(!holds(&c(Op::Equals, "abc"), None));
        assert!(holds(&c(Op::NotEquals, "abc"), Some("abd")));
        assert!(holds(&c(Op::Contains, "North"), Some("The North Face")));
        assert!(holds(&c(Op::StartsWith, "The"), Some("The North Face")));
        assert!(!holds(&c(Op::Lt, "3"), Some("x")));
        assert!(holds(&c(Op::Lt, "3"), Some("2")));
        assert!(holds(&c(Op::Ge, "3"), Some("3")));
        assert!(!holds(&c(Op::Present, ""), Some("")));
        assert!(!holds(&c(Op::Present, ""), None));
    }
}
