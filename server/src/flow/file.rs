//! Flow files: one TOML file per flow, a graph of blocks with named
//! branches (see docs/flows.md for the format). Loading validates the whole
//! graph up front and reports `file:line: what is wrong`, like the main
//! configuration: an unknown block type, a field a block does not take, a
//! branch naming no block, a missing queue, prompt, function or flow, or a
//! block used in a flow type it cannot run in all fail at start, never at
//! the first call that reaches them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::{line_of, ConfigError};

/// The kind of a flow: when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowType {
    /// A call to an entry point.
    Inbound,
    /// What a waiting caller hears.
    CustomerQueue,
    /// What a held caller hears.
    CustomerHold,
    /// What a held agent hears.
    AgentHold,
    /// What the caller hears as the agent is connected.
    CustomerWhisper,
    /// What the agent hears before the caller is connected.
    AgentWhisper,
    /// A transfer to an agent.
    TransferToAgent,
    /// A transfer to a queue.
    TransferToQueue,
}

impl FlowType {
    fn parse(s: &str) -> Option<FlowType> {
        Some(match s {
            "inbound" => FlowType::Inbound,
            "customer_queue" => FlowType::CustomerQueue,
            "customer_hold" => FlowType::CustomerHold,
            "agent_hold" => FlowType::AgentHold,
            "customer_whisper" => FlowType::CustomerWhisper,
            "agent_whisper" => FlowType::AgentWhisper,
            "transfer_to_agent" => FlowType::TransferToAgent,
            "transfer_to_queue" => FlowType::TransferToQueue,
            _ => return None,
        })
    }

    /// The file's name for it, e.g. `"customer_queue"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowType::Inbound => "inbound",
            FlowType::CustomerQueue => "customer_queue",
            FlowType::CustomerHold => "customer_hold",
            FlowType::AgentHold => "agent_hold",
            FlowType::CustomerWhisper => "customer_whisper",
            FlowType::AgentWhisper => "agent_whisper",
            FlowType::TransferToAgent => "transfer_to_agent",
            FlowType::TransferToQueue => "transfer_to_queue",
        }
    }

    /// Flows that route the call (they may end in a queue, a transfer or
    /// a hang-up); the others run beside a call and simply end.
    pub fn routes(self) -> bool {
        matches!(
            self,
            FlowType::Inbound | FlowType::TransferToAgent | FlowType::TransferToQueue
        )
    }
}

/// A prompt's language (and so its text-to-speech voice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum Language {
    /// English (espeak-ng voice `en-us`).
    #[default]
    #[serde(rename = "en-US")]
    EnUs,
    /// Japanese (espeak-ng voice `ja`).
    #[serde(rename = "ja-JP")]
    JaJp,
}

impl Language {
    fn parse(s: &str) -> Option<Language> {
        match s {
            "en-US" => Some(Language::EnUs),
            "ja-JP" => Some(Language::JaJp),
            _ => None,
        }
    }

    /// The language code, e.g. `"en-US"`.
    pub fn code(self) -> &'static str {
        match self {
            Language::EnUs => "en-US",
            Language::JaJp => "ja-JP",
        }
    }

    /// The espeak-ng voice.
    pub fn voice(self) -> &'static str {
        match self {
            Language::EnUs => "en-us",
            Language::JaJp => "ja",
        }
    }
}

/// What a prompt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Text to speak (may reference `$.Attributes.x` and the like).
    Text(String),
    /// A WAV file (absolute path, checked to exist at start).
    Wav(PathBuf),
}

/// A comparison of `check_attribute` and `check_queue_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Same text.
    Equals,
    /// Different text.
    NotEquals,
    /// Text contains the value.
    Contains,
    /// Text starts with the value.
    StartsWith,
    /// Number less than.
    Lt,
    /// Number at most.
    Le,
    /// Number greater than.
    Gt,
    /// Number at least.
    Ge,
    /// The attribute exists (and is not empty).
    Present,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "equals" => Op::Equals,
            "not_equals" => Op::NotEquals,
            "contains" => Op::Contains,
            "starts_with" => Op::StartsWith,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "present" => Op::Present,
            _ => return None,
        })
    }

    /// The file's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equals => "equals",
            Op::NotEquals => "not_equals",
            Op::Contains => "contains",
            Op::StartsWith => "starts_with",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Present => "present",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

/// One condition: `{ op, value, to }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The comparison.
    pub op: Op,
    /// What is compared with (empty for `present`).
    pub value: String,
    /// The block taken when it holds.
    pub to: String,
}

impl Condition {
    /// The branch's name, e.g. `"equals 1"` or `"present"`.
    pub fn name(&self) -> String {
        if self.op == Op::Present {
            "present".into()
        } else {
            format!("{} {}", self.op.as_str(), self.value)
        }
    }
}

/// What `check_queue_status` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Contacts waiting in the queue.
    ContactsInQueue,
    /// Seconds the oldest waiting contact has waited.
    OldestContactAgeS,
    /// Agents available (idle, routable) for the queue.
    AgentsAvailable,
}

impl Metric {
    fn parse(s: &str) -> Option<Metric> {
        Some(match s {
            "contacts_in_queue" => Metric::ContactsInQueue,
            "oldest_contact_age_s" => Metric::OldestContactAgeS,
            "agents_available" => Metric::AgentsAvailable,
            _ => return None,
        })
    }

    /// The file's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::ContactsInQueue => "contacts_in_queue",
            Metric::OldestContactAgeS => "oldest_contact_age_s",
            Metric::AgentsAvailable => "agents_available",
        }
    }
}

/// Which flow a `set_*_flow` block sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowSlot {
    /// `set_queue_flow`.
    Queue,
    /// `set_hold_flow`.
    Hold,
    /// `set_whisper_flow`.
    Whisper,
}

/// What a block does.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockKind {
    /// Plays a prompt, then `next`.
    PlayPrompt(Prompt),
    /// Plays a prompt and collects keys; a branch per key.
    GetCustomerInput {
        /// The prompt (keys may be pressed while it plays).
        prompt: Prompt,
        /// Time allowed after the prompt (and between keys).
        timeout_ms: u64,
        /// Keys collected at most.
        max_digits: usize,
        /// A key that ends the input early (not kept).
        terminator: Option<char>,
        /// Input to block.
        keys: BTreeMap<String, String>,
    },
    /// Collects keys into an attribute (and `$.StoredCustomerInput`).
    StoreCustomerInput {
        /// An optional prompt played first.
        prompt: Option<Prompt>,
        /// The attribute set.
        attribute: String,
        /// Time allowed after the prompt (and between keys).
        timeout_ms: u64,
        /// Keys collected at most.
        max_digits: usize,
        /// A key that ends the input (not kept).
        terminator: Option<char>,
    },
    /// Sets attributes (values may reference others).
    SetAttributes(BTreeMap<String, String>),
    /// Compares an attribute.
    CheckAttribute {
        /// The attribute (or `$.CustomerEndpoint.Address` and the like).
        attribute: String,
        /// Tried in order; the first that holds is taken.
        conditions: Vec<Condition>,
    },
    /// Calls a configured function over HTTP.
    InvokeFunction {
        /// `[[functions]]` name.
        function: String,
        /// Sent as `Parameters`.
        parameters: BTreeMap<String, String>,
    },
    /// `in_hours` or `out_of_hours` of a queue (the working queue if none).
    CheckHours {
        /// The queue.
        queue: Option<String>,
    },
    /// Compares a queue metric.
    CheckQueueStatus {
        /// The queue (the working queue if none).
        queue: Option<String>,
        /// What is measured.
        metric: Metric,
        /// Tried in order (numeric ops).
        conditions: Vec<Condition>,
    },
    /// Sets the queue `transfer_to_queue` uses.
    SetWorkingQueue(String),
    /// Sets the routing priority (lower first) and/or the age added.
    ChangeRoutingPriority {
        /// New priority.
        priority: Option<i64>,
        /// Seconds added to the contact's age in the queue.
        age_s: Option<u64>,
    },
    /// Turns flow logging on or off.
    SetLogging(bool),
    /// Sets the prompts' language.
    SetVoice(Language),
    /// Queues the call in the working queue (the flow ends).
    TransferToQueue,
    /// Continues in another flow.
    TransferToFlow(String),
    /// Transfers to a phone number (needs a SIP trunk).
    TransferToPhoneNumber(String),
    /// Sets the number a callback calls.
    SetCallbackNumber {
        /// An attribute holding it (the caller's number if none).
        attribute: Option<String>,
    },
    /// Queues a callback; the caller then hangs up (`next` says goodbye).
    QueueCallback {
        /// The queue (the working queue if none).
        queue: Option<String>,
    },
    /// Counts passes: `looping` until `count`, then `complete`.
    Loop(u32),
    /// Sets the queue, hold or whisper flow of the contact.
    SetFlow(FlowSlot, String),
    /// Hangs up.
    Disconnect,
}

/// A block.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Its id (the table key).
    pub id: String,
    /// The block type's name in the file, e.g. `"play_prompt"`.
    pub type_name: &'static str,
    /// What it does.
    pub kind: BlockKind,
    /// Named branches other than keys and conditions (`next`, `error`,
    /// `timeout`, `default`, `no_match`, `in_hours`, `out_of_hours`,
    /// `looping`, `complete`).
    pub branches: BTreeMap<&'static str, String>,
    /// Its line in the file.
    pub line: usize,
}

impl Block {
    /// A named branch.
    pub fn branch(&self, name: &str) -> Option<&str> {
        self.branches.get(name).map(String::as_str)
    }

    /// Every branch as (name, target), in a stable order: keys, then
    /// conditions, then named ones.
    pub fn all_branches(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let BlockKind::GetCustomerInput { keys, .. } = &self.kind {
            out.extend(keys.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let BlockKind::CheckAttribute { conditions, .. }
        | BlockKind::CheckQueueStatus { conditions, .. } = &self.kind
        {
            out.extend(conditions.iter().map(|c| (c.name(), c.to.clone())));
        }
        out.extend(
            self.branches
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone())),
        );
        out
    }

    /// A short human summary (a prompt's first 40 characters, the queue...).
    pub fn label(&self) -> String {
        let clip = |s: &str| -> String {
            let mut t: String = s.chars().take(40).collect();
            if s.chars().count() > 40 {
                t.push('…');
            }
            t
        };
        let prompt = |p: &Prompt| match p {
            Prompt::Text(t) => clip(t),
            Prompt::Wav(w) => w
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        match &self.kind {
            BlockKind::PlayPrompt(p) | BlockKind::GetCustomerInput { prompt: p, .. } => prompt(p),
            BlockKind::StoreCustomerInput { attribute, .. } => format!("keys → {attribute}"),
            BlockKind::SetAttributes(a) => clip(&a.keys().cloned().collect::<Vec<_>>().join(", ")),
            BlockKind::CheckAttribute { attribute, .. } => attribute.clone(),
            BlockKind::InvokeFunction { function, .. } => function.clone(),
            BlockKind::CheckHours { queue } | BlockKind::QueueCallback { queue } => {
                queue.clone().unwrap_or_else(|| "working queue".into())
            }
            BlockKind::CheckQueueStatus { metric, .. } => metric.as_str().into(),
            BlockKind::SetWorkingQueue(q) => q.clone(),
            BlockKind::ChangeRoutingPriority { priority, age_s } => match (priority, age_s) {
                (Some(p), Some(a)) => format!("priority {p}, age +{a} s"),
                (Some(p), None) => format!("priority {p}"),
                (None, Some(a)) => format!("age +{a} s"),
                (None, None) => String::new(),
            },
            BlockKind::SetLogging(on) => if *on { "on" } else { "off" }.into(),
            BlockKind::SetVoice(l) => l.code().into(),
            BlockKind::TransferToQueue => "working queue".into(),
            BlockKind::TransferToFlow(f) | BlockKind::SetFlow(_, f) => f.clone(),
            BlockKind::TransferToPhoneNumber(n) => n.clone(),
            BlockKind::SetCallbackNumber { attribute } => attribute
                .clone()
                .unwrap_or_else(|| "caller's number".into()),
            BlockKind::Loop(n) => format!("{n} times"),
            BlockKind::Disconnect => String::new(),
        }
    }
}

/// A validated flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Its id: the file stem.
    pub id: String,
    /// Display name.
    pub name: String,
    /// When it runs.
    pub kind: FlowType,
    /// The first block.
    pub start: String,
    /// Blocks by id.
    pub blocks: BTreeMap<String, Block>,
    /// The file it came from.
    pub file: PathBuf,
}

/// An external function (`[[functions]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Name blocks use.
    pub name: String,
    /// `http://host:port/path`.
    pub url: String,
    /// Longest wait for the answer, 1..=8000 ms.
    pub timeout_ms: u64,
}

/// Every configured flow, entry point and function.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flows {
    /// Flows by id.
    pub flows: BTreeMap<String, Flow>,
    /// Flow ids in configuration order.
    pub order: Vec<String>,
    /// Entry point number to flow id.
    pub entry_points: BTreeMap<String, String>,
    /// Functions by name.
    pub functions: BTreeMap<String, Function>,
    /// Quick connect id to the transfer flow it runs (its `flow` key).
    pub quick_connects: BTreeMap<String, String>,
}

impl Flows {
    /// The flow a call to `number` enters, if it is an entry point.
    pub fn for_number(&self, number: &str) -> Option<&Flow> {
        self.flows.get(self.entry_points.get(number)?)
    }
}

/// What a flow may name, from the main configuration.
pub struct Refs<'a> {
    /// Queue ids.
    pub queues: &'a HashSet<String>,
    /// Function names.
    pub functions: &'a HashSet<String>,
    /// Whether a SIP trunk exists (`transfer_to_phone_number`).
    pub trunk: bool,
    /// Where relative WAV paths start (the configuration's directory).
    pub base: &'a Path,
}

/// A flow parsed but not yet checked against the other flows.
struct Parsed {
    flow: Flow,
    text: String,
    file: String,
    /// (line, slot, target flow) of each flow reference.
    flow_refs: Vec<(usize, Option<FlowSlot>, String)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    name: String,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    start: Spanned<String>,
    blocks: BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
}

/// The fields each block type takes (besides `type`).
fn fields_of(type_name: &str) -> Option<&'static [&'static str]> {
    Some(match type_name {
        "play_prompt" => &["text", "wav", "next"],
        "get_customer_input" => &[
            "text",
            "wav",
            "timeout_ms",
            "max_digits",
            "terminator",
            "keys",
            "default",
            "timeout",
            "error",
        ],
        "store_customer_input" => &[
            "text",
            "wav",
            "attribute",
            "max_digits",
            "terminator",
            "timeout_ms",
            "next",
            "timeout",
            "error",
        ],
        "set_attributes" => &["attributes", "next", "error"],
        "check_attribute" => &["attribute", "conditions", "no_match"],
        "invoke_function" => &["function", "parameters", "next", "error"],
        "check_hours" => &["queue", "in_hours", "out_of_hours", "error"],
        "check_queue_status" => &["queue", "metric", "conditions", "no_match", "error"],
        "set_working_queue" => &["queue", "next"],
        "change_routing_priority" => &["priority", "age_s", "next"],
        "set_logging" => &["enabled", "next"],
        "set_voice" => &["language", "next"],
        "transfer_to_queue" => &["error"],
        "transfer_to_flow" => &["flow", "error"],
        "transfer_to_phone_number" => &["number", "error"],
        "set_callback_number" => &["attribute", "next", "error"],
        "queue_callback" => &["queue", "next", "error"],
        "loop" => &["count", "looping", "complete"],
        "set_queue_flow" | "set_hold_flow" | "set_whisper_flow" => &["flow", "next"],
        "disconnect" => &[],
        _ => return None,
    })
}

/// Whether a block type may run in a flow type.
fn allowed_in(type_name: &str, kind: FlowType) -> bool {
    match kind {
        FlowType::Inbound | FlowType::TransferToAgent | FlowType::TransferToQueue => true,
        // A waiting caller: messages, input, callbacks, no routing moves.
        FlowType::CustomerQueue => matches!(
            type_name,
            "play_prompt"
                | "get_customer_input"
                | "store_customer_input"
                | "set_attributes"
                | "check_attribute"
                | "invoke_function"
                | "check_hours"
                | "check_queue_status"
                | "change_routing_priority"
                | "set_logging"
                | "set_voice"
                | "set_callback_number"
                | "queue_callback"
                | "loop"
                | "disconnect"
        ),
        // Beside a call in progress: speech only, no input, no routing.
        FlowType::CustomerHold
        | FlowType::AgentHold
        | FlowType::CustomerWhisper
        | FlowType::AgentWhisper => matches!(
            type_name,
            "play_prompt"
                | "set_attributes"
                | "check_attribute"
                | "set_logging"
                | "set_voice"
                | "loop"
        ),
    }
}

/// Branches each block type needs (in routing flows; in the others a
/// missing `next` ends the flow).
fn required_branches(type_name: &str) -> &'static [&'static str] {
    match type_name {
        "play_prompt"
        | "set_attributes"
        | "set_working_queue"
        | "change_routing_priority"
        | "set_logging"
        | "set_voice"
        | "set_callback_number"
        | "queue_callback"
        | "set_queue_flow"
        | "set_hold_flow"
        | "set_whisper_flow" => &["next"],
        "get_customer_input" => &["error"],
        "store_customer_input" | "invoke_function" => &["next", "error"],
        "check_attribute" | "check_queue_status" => &["no_match"],
        "check_hours" => &["in_hours", "out_of_hours"],
        "loop" => &["looping", "complete"],
        _ => &[],
    }
}

const BRANCH_FIELDS: &[&str] = &[
    "next",
    "error",
    "timeout",
    "default",
    "no_match",
    "in_hours",
    "out_of_hours",
    "looping",
    "complete",
];

/// Reads the fields of one block.
struct Fields<'a> {
    p: &'a mut Parsed,
    block: String,
    type_name: &'static str,
    map: BTreeMap<String, Spanned<toml::Value>>,
}

impl Fields<'_> {
    fn err<T>(&self, span: std::ops::Range<usize>, message: String) -> Result<T, ConfigError> {
        Err(ConfigError {
            file: self.p.file.clone(),
            line: Some(line_of(&self.p.text, span.start)),
            message: format!("block `{}`: {message}", self.block),
        })
    }

    /// The line of a field (or of the block's header when absent).
    fn line(&self, name: &str, at: &std::ops::Range<usize>) -> usize {
        let start = self.map.get(name).map_or(at.start, |v| v.span().start);
        line_of(&self.p.text, start)
    }

    fn str(&self, name: &str) -> Result<Option<(String, std::ops::Range<usize>)>, ConfigError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                toml::Value::String(s) => Ok(Some((s.clone(), v.span()))),
                _ => self.err(v.span(), format!("`{name}` must be a string")),
            },
        }
    }

    fn need_str(&self, name: &str, at: &std::ops::Range<usize>) -> Result<String, ConfigError> {
        match self.str(name)? {
            Some((s, _)) if !s.is_empty() => Ok(s),
            _ => self.err(
                at.clone(),
                format!("a `{}` block needs `{name}`", self.type_name),
            ),
        }
    }

    fn int(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ConfigError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                toml::Value::Integer(i) if range.contains(i) => Ok(Some(*i)),
                _ => self.err(
                    v.span(),
                    format!(
                        "`{name}` must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                ),
            },
        }
    }

    fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let Some(v) = self.map.get(name) else {
            return Ok(BTreeMap::new());
        };
        let toml::Value::Table(t) = v.get_ref() else {
            return self.err(v.span(), format!("`{name}` must be a table of strings"));
        };
        let mut out = BTreeMap::new();
        for (k, val) in t {
            let toml::Value::String(s) = val else {
                return self.err(v.span(), format!("`{name}.{k}` must be a string"));
            };
            out.insert(k.clone(), s.clone());
        }
        Ok(out)
    }

    fn prompt(
        &self,
        at: &std::ops::Range<usize>,
        base: &Path,
    ) -> Result<Option<Prompt>, ConfigError> {
        match (self.str("text")?, self.str("wav")?) {
            (Some(_), Some((_, span))) => {
                self.err(span, "a prompt is either `text` or `wav`, not both".into())
            }
            (Some((t, span)), None) => {
                if t.trim().is_empty() {
                    return self.err(span, "`text` is empty".into());
                }
                Ok(Some(Prompt::Text(t)))
            }
            (None, Some((w, span))) => {
                let path = base.join(&w);
                if !path.is_file() {
                    return self.err(
                        span,
                        format!("prompt `{w}` is missing ({})", path.display()),
                    );
                }
                if let Err(e) = crate::bridge::wav::read_48k_mono(&path) {
                    return self.err(span, format!("prompt `{w}` cannot be played: {e}"));
                }
                Ok(Some(Prompt::Wav(path)))
            }
            (None, None) => {
                let _ = at;
                Ok(None)
            }
        }
    }

    fn terminator(&self) -> Result<Option<char>, ConfigError> {
        match self.str("terminator")? {
            None => Ok(None),
            Some((t, span)) => {
                let mut chars = t.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if protocol::endpoint::is_dtmf(&t) && c != ',' => Ok(Some(c)),
                    _ => self.err(span, "`terminator` must be one key: 0-9 * # A-D".into()),
                }
            }
        }
    }

    fn conditions(&self, numeric: bool) -> Result<Vec<Condition>, ConfigError> {
        let Some(v) = self.map.get("conditions") else {
            return Ok(Vec::new());
        };
        let bad = |why: &str| self.err(v.span(), format!("`conditions`: {why}"));
        let toml::Value::Array(items) = v.get_ref() else {
            return bad("must be a list of { op, value, to }");
        };
        let mut out = Vec::new();
        for item in items {
            let toml::Value::Table(t) = item else {
                return bad("each condition is { op, value, to }");
            };
            if let Some(k) = t
                .keys()
                .find(|k| !["op", "value", "to"].contains(&k.as_str()))
            {
                return bad(&format!("unknown key `{k}` (op, value, to)"));
            }
            let op_name = t.get("op").and_then(toml::Value::as_str).unwrap_or("");
            let Some(op) = Op::parse(op_name) else {
                return bad(&format!(
                    "op `{op_name}` is not equals, not_equals, contains, starts_with, lt, le, gt, ge or present"
                ));
            };
            let value = match t.get("value") {
                None => String::new(),
                Some(toml::Value::String(s)) => s.clone(),
                Some(toml::Value::Integer(i)) => i.to_string(),
                Some(toml::Value::Float(f)) => f.to_string(),
                Some(_) => return bad("`value` must be a string or a number"),
            };
            if op != Op::Present && value.is_empty() {
                return bad(&format!("op `{op_name}` needs a `value`"));
            }
            if (op.numeric() || numeric) && op != Op::Present && value.parse::<f64>().is_err() {
                return bad(&format!(
                    "op `{op_name}` compares numbers; `{value}` is not one"
                ));
            }
            if numeric && !op.numeric() && op != Op::Equals && op != Op::NotEquals {
                return bad(&format!("a queue metric is compared with lt, le, gt, ge, equals or not_equals, not `{op_name}`"));
            }
            let Some(to) = t.get("to").and_then(toml::Value::as_str) else {
                return bad("each condition needs `to`, the block it leads to");
            };
            out.push(Condition {
                op,
                value,
                to: to.to_owned(),
            });
        }
        Ok(out)
    }
}

/// Parses and checks one flow file on its own (references to other flows
/// are checked by [`load`] once every file is read).
fn parse_one(path: &Path, refs: &Refs<'_>) -> Result<Parsed, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: None,
        message: format!("cannot read flow file: {e}"),
    })?;
    parse_text(&text, &file, path, refs)
}

/// Parses flow text; `path` gives the flow its id (the file stem).
fn parse_text(text: &str, file: &str, path: &Path, refs: &Refs<'_>) -> Result<Parsed, ConfigError> {
    let raw: RawFlow = toml::from_str(text).map_err(|e| ConfigError {
        file: file.to_owned(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().to_owned(),
    })?;
    let id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let err = |span: std::ops::Range<usize>, message: String| ConfigError {
        file: file.to_owned(),
        line: Some(line_of(text, span.start)),
        message,
    };
    let Some(kind) = FlowType::parse(raw.kind.get_ref()) else {
        return Err(err(
            raw.kind.span(),
            format!(
                "flow type `{}` is not inbound, customer_queue, customer_hold, agent_hold, customer_whisper, agent_whisper, transfer_to_agent or transfer_to_queue",
                raw.kind.get_ref()
            ),
        ));
    };
    let mut p = Parsed {
        flow: Flow {
            id,
            name: raw.name,
            kind,
            start: raw.start.get_ref().clone(),
            blocks: BTreeMap::new(),
            file: path.to_owned(),
        },
        text: text.to_owned(),
        file: file.to_owned(),
        flow_refs: Vec::new(),
    };
    let block_ids: HashSet<String> = raw.blocks.keys().map(|k| k.get_ref().clone()).collect();
    if !block_ids.contains(raw.start.get_ref()) {
        return Err(err(
            raw.start.span(),
            format!("start block `{}` does not exist", raw.start.get_ref()),
        ));
    }
    for (key, fields) in raw.blocks {
        let at = key.span();
        let block_id = key.into_inner();
        let map: BTreeMap<String, Spanned<toml::Value>> = fields
            .into_iter()
            .map(|(k, v)| (k.into_inner(), v))
            .collect();
        let block = parse_block(&mut p, block_id, map, at, refs, &block_ids)?;
        p.flow.blocks.insert(block.id.clone(), block);
    }
    Ok(p)
}

fn parse_block(
    p: &mut Parsed,
    block_id: String,
    map: BTreeMap<String, Spanned<toml::Value>>,
    at: std::ops::Range<usize>,
    refs: &Refs<'_>,
    block_ids: &HashSet<String>,
) -> Result<Block, ConfigError> {
    let flow_kind = p.flow.kind;
    let mut f = Fields {
        p,
        block: block_id.clone(),
        type_name: "",
        map,
    };
    let Some((type_str, type_span)) = f.str("type")? else {
        return f.err(at, "every block needs a `type`".into());
    };
    let Some(allowed) = fields_of(&type_str) else {
        return f.err(type_span, format!("unknown block type `{type_str}`"));
    };
    // A 'static name for the block type, from the table above.
    let type_name: &'static str = BLOCK_TYPES
        .iter()
        .copied()
        .find(|t| *t == type_str)
        .unwrap_or("disconnect");
    f.type_name = type_name;
    if !allowed_in(type_name, flow_kind) {
        return f.err(
            type_span,
            format!(
                "a `{type_name}` block cannot be used in a {} flow",
                flow_kind.as_str()
            ),
        );
    }
    for (name, v) in &f.map {
        if name != "type" && !allowed.contains(&name.as_str()) {
            return f.err(
                v.span(),
                format!("a `{type_name}` block has no field `{name}`"),
            );
        }
    }
    // Named branches.
    let mut branches = BTreeMap::new();
    for name in BRANCH_FIELDS {
        if let Some((to, span)) = f.str(name)? {
            if !block_ids.contains(&to) {
                return f.err(span, format!("branch `{name}` names no block `{to}`"));
            }
            branches.insert(*name, to);
        }
    }
    // In flows beside a call (queue, hold, whisper) a missing `next`
    // ends the flow; every other needed branch must be there.
    for name in required_branches(type_name) {
        if !branches.contains_key(name) && (flow_kind.routes() || *name != "next") {
            return f.err(
                at.clone(),
                format!("a `{type_name}` block needs a `{name}` branch"),
            );
        }
    }
    let check_to = |f: &Fields<'_>, to: &str, span: std::ops::Range<usize>, what: &str| {
        if block_ids.contains(to) {
            Ok(())
        } else {
            f.err(span, format!("{what} names no block `{to}`"))
        }
    };
    let queue = |f: &Fields<'_>, required: bool| -> Result<Option<String>, ConfigError> {
        match f.str("queue")? {
            Some((q, span)) => {
                if refs.queues.contains(&q) {
                    Ok(Some(q))
                } else {
                    f.err(span, format!("queue `{q}` is not configured"))
                }
            }
            None if required => f.err(at.clone(), format!("a `{type_name}` block needs `queue`")),
            None => Ok(None),
        }
    };
    let digits = |f: &Fields<'_>| -> Result<(u64, usize, Option<char>), ConfigError> {
        let timeout_ms = f.int("timeout_ms", 1..=120_000)?.unwrap_or(5000) as u64;
        let max_digits = f.int("max_digits", 1..=32)?.unwrap_or(1) as usize;
        Ok((timeout_ms, max_digits, f.terminator()?))
    };
    let kind = match type_name {
        "play_prompt" => match f.prompt(&at, refs.base)? {
            Some(pr) => BlockKind::PlayPrompt(pr),
            None => return f.err(at, "a `play_prompt` block needs `text` or `wav`".into()),
        },
        "get_customer_input" => {
            let Some(prompt) = f.prompt(&at, refs.base)? else {
                return f.err(
                    at,
                    "a `get_customer_input` block needs `text` or `wav`".into(),
                );
            };
            let (timeout_ms, max_digits, terminator) = digits(&f)?;
            let keys = f.string_map("keys")?;
            let keys_span = f.map.get("keys").map_or(at.clone(), |v| v.span());
            for (k, to) in &keys {
                if !protocol::endpoint::is_dtmf(k)
                    || k.contains(',')
                    || k.chars().count() > max_digits
                {
                    return f.err(
                        keys_span,
                        format!("key `{k}` is not 1 to {max_digits} of 0-9 * # A-D"),
                    );
                }
                check_to(&f, to, keys_span.clone(), &format!("key `{k}`"))?;
            }
            BlockKind::GetCustomerInput {
                prompt,
                timeout_ms,
                max_digits,
                terminator,
                keys,
            }
        }
        "store_customer_input" => {
            let prompt = f.prompt(&at, refs.base)?;
            let attribute = f.need_str("attribute", &at)?;
            let (timeout_ms, max_digits, terminator) = digits(&f)?;
            BlockKind::StoreCustomerInput {
                prompt,
                attribute,
                timeout_ms,
                max_digits,
                terminator,
            }
        }
        "set_attributes" => {
            let attrs = f.string_map("attributes")?;
            if attrs.is_empty() {
                return f.err(at, "a `set_attributes` block needs `attributes`".into());
            }
            BlockKind::SetAttributes(attrs)
        }
        "check_attribute" => {
            let attribute = f.need_str("attribute", &at)?;
            let conditions = f.conditions(false)?;
            let span = f.map.get("conditions").map_or(at.clone(), |v| v.span());
            if conditions.is_empty() {
                return f.err(span, "a `check_attribute` block needs `conditions`".into());
            }
            for c in &conditions {
                check_to(
                    &f,
                    &c.to,
                    span.clone(),
                    &format!("condition `{}`", c.name()),
                )?;
            }
            BlockKind::CheckAttribute {
                attribute,
                conditions,
            }
        }
        "invoke_function" => {
            let (function, span) = match f.str("function")? {
                Some(x) => x,
                None => return f.err(at, "an `invoke_function` block needs `function`".into()),
            };
            if !refs.functions.contains(&function) {
                return f.err(
                    span,
                    format!("function `{function}` is not configured ([[functions]])"),
                );
            }
            BlockKind::InvokeFunction {
                function,
                parameters: f.string_map("parameters")?,
            }
        }
        "check_hours" => BlockKind::CheckHours {
            queue: queue(&f, false)?,
        },
        "check_queue_status" => {
            let q = queue(&f, false)?;
            let (m, mspan) = match f.str("metric")? {
                Some(x) => x,
                None => return f.err(at, "a `check_queue_status` block needs `metric`".into()),
            };
            let Some(metric) = Metric::parse(&m) else {
                return f.err(
                    mspan,
                    format!("metric `{m}` is not contacts_in_queue, oldest_contact_age_s or agents_available"),
                );
            };
            let conditions = f.conditions(true)?;
            let span = f.map.get("conditions").map_or(at.clone(), |v| v.span());
            if conditions.is_empty() {
                return f.err(
                    span,
                    "a `check_queue_status` block needs `conditions`".into(),
                );
            }
            for c in &conditions {
                check_to(
                    &f,
                    &c.to,
                    span.clone(),
                    &format!("condition `{}`", c.name()),
                )?;
            }
            BlockKind::CheckQueueStatus {
                queue: q,
                metric,
                conditions,
            }
        }
        "set_working_queue" => match queue(&f, true)? {
            Some(q) => BlockKind::SetWorkingQueue(q),
            None => return f.err(at, "a `set_working_queue` block needs `queue`".into()),
        },
        "change_routing_priority" => {
            let priority = f.int("priority", -1000..=1000)?;
            let age_s = f.int("age_s", 0..=86_400)?.map(|a| a as u64);
            if priority.is_none() && age_s.is_none() {
                return f.err(
                    at,
                    "a `change_routing_priority` block needs `priority` and/or `age_s`".into(),
                );
            }
            BlockKind::ChangeRoutingPriority { priority, age_s }
        }
        "set_logging" => match f
            .map
            .get("enabled")
            .map(|v| (v.get_ref().as_bool(), v.span()))
        {
            Some((Some(b), _)) => BlockKind::SetLogging(b),
            Some((None, span)) => return f.err(span, "`enabled` must be true or false".into()),
            None => return f.err(at, "a `set_logging` block needs `enabled`".into()),
        },
        "set_voice" => {
            let (l, span) = match f.str("language")? {
                Some(x) => x,
                None => return f.err(at, "a `set_voice` block needs `language`".into()),
            };
            match Language::parse(&l) {
                Some(lang) => BlockKind::SetVoice(lang),
                None => return f.err(span, format!("language `{l}` is not en-US or ja-JP")),
            }
        }
        "transfer_to_queue" => BlockKind::TransferToQueue,
        "transfer_to_flow" | "set_queue_flow" | "set_hold_flow" | "set_whisper_flow" => {
            let target = f.need_str("flow", &at)?;
            let line = f.line("flow", &at);
            let slot = match type_name {
                "set_queue_flow" => Some(FlowSlot::Queue),
                "set_hold_flow" => Some(FlowSlot::Hold),
                "set_whisper_flow" => Some(FlowSlot::Whisper),
                _ => None,
            };
            f.p.flow_refs.push((line, slot, target.clone()));
            match slot {
                Some(s) => BlockKind::SetFlow(s, target),
                None => BlockKind::TransferToFlow(target),
            }
        }
        "transfer_to_phone_number" => {
            let number = f.need_str("number", &at)?;
            let span = f.map.get("number").map_or(at.clone(), |v| v.span());
            if !protocol::endpoint::is_e164(&number) {
                return f.err(span, format!("`{number}` is not an E.164 number"));
            }
            if !refs.trunk {
                return f.err(
                    span,
                    "transfer_to_phone_number needs a SIP trunk ([[sip.trunks]])".into(),
                );
            }
            BlockKind::TransferToPhoneNumber(number)
        }
        "set_callback_number" => BlockKind::SetCallbackNumber {
            attribute: f.str("attribute")?.map(|(a, _)| a),
        },
        "queue_callback" => BlockKind::QueueCallback {
            queue: queue(&f, false)?,
        },
        "loop" => match f.int("count", 1..=1000)? {
            Some(n) => BlockKind::Loop(n as u32),
            None => return f.err(at, "a `loop` block needs `count` (1 to 1000)".into()),
        },
        _ => BlockKind::Disconnect,
    };
    Ok(Block {
        id: block_id,
        type_name,
        kind,
        branches,
        line: line_of(&f.p.text, at.start),
    })
}

/// Every block type's name.
pub const BLOCK_TYPES: &[&str] = &[
    "play_prompt",
    "get_customer_input",
    "store_customer_input",
    "set_attributes",
    "check_attribute",
    "invoke_function",
    "check_hours",
    "check_queue_status",
    "set_working_queue",
    "change_routing_priority",
    "set_logging",
    "set_voice",
    "transfer_to_queue",
    "transfer_to_flow",
    "transfer_to_phone_number",
    "set_callback_number",
    "queue_callback",
    "loop",
    "set_queue_flow",
    "set_hold_flow",
    "set_whisper_flow",
    "disconnect",
];

/// Which flow types a reference from a block may name.
fn slot_accepts(slot: Option<FlowSlot>, kind: FlowType) -> bool {
    match slot {
        None => kind.routes(),
        Some(FlowSlot::Queue) => kind == FlowType::CustomerQueue,
        Some(FlowSlot::Hold) => matches!(kind, FlowType::CustomerHold | FlowType::AgentHold),
        Some(FlowSlot::Whisper) => {
            matches!(kind, FlowType::CustomerWhisper | FlowType::AgentWhisper)
        }
    }
}

/// One `[[flows]]` entry: the file as written, where it is, its line.
pub struct FlowEntry {
    /// The path as written (relative to `refs.base`).
    pub file: String,
    /// The line of the entry in the main configuration.
    pub line: usize,
}

/// Reads every flow file and checks the references between them.
/// Errors in the main configuration (a missing file, two flows with one
/// id) name `config_file` and the entry's line.
pub fn load(
    entries: &[FlowEntry],
    config_file: &str,
    refs: &Refs<'_>,
) -> Result<BTreeMap<String, Flow>, ConfigError> {
    let mut parsed: Vec<Parsed> = Vec::new();
    for e in entries {
        let path = refs.base.join(&e.file);
        if !path.is_file() {
            return Err(ConfigError {
                file: config_file.to_owned(),
                line: Some(e.line),
                message: format!("flow file `{}` is missing ({})", e.file, path.display()),
            });
        }
        let p = parse_one(&path, refs)?;
        if parsed.iter().any(|q| q.flow.id == p.flow.id) {
            return Err(ConfigError {
                file: config_file.to_owned(),
                line: Some(e.line),
                message: format!("two flow files have the id `{}` (the file stem)", p.flow.id),
            });
        }
        parsed.push(p);
    }
    let kinds: BTreeMap<String, FlowType> = parsed
        .iter()
        .map(|p| (p.flow.id.clone(), p.flow.kind))
        .collect();
    for p in &parsed {
        for (line, slot, target) in &p.flow_refs {
            let fail = |message: String| ConfigError {
                file: p.file.clone(),
                line: Some(*line),
                message,
            };
            match kinds.get(target) {
                None => {
                    return Err(fail(format!(
                        "flow `{target}` is not configured ([[flows]])"
                    )))
                }
                Some(k) if !slot_accepts(*slot, *k) => {
                    return Err(fail(format!(
                        "flow `{target}` is a {} flow, which cannot be used here",
                        k.as_str()
                    )))
                }
                Some(_) => {}
            }
        }
    }
    Ok(parsed
        .into_iter()
        .map(|p| (p.flow.id.clone(), p.flow))
        .collect())
}

/// Flows from text, for tests: `(id, text)` pairs, queues `support` and
/// `orders`, function `f` (1 s), and a trunk.
#[cfg(test)]
pub(crate) fn test_flows(files: &[(&str, &str)]) -> Flows {
    let queues: HashSet<String> = ["support", "orders"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let functions: HashSet<String> = ["f".to_string()].into_iter().collect();
    let refs = Refs {
        queues: &queues,
        functions: &functions,
        trunk: true,
        base: Path::new("."),
    };
    let mut flows = Flows::default();
    for (id, text) in files {
        let path = PathBuf::from(format!("{id}.toml"));
        let p = parse_text(text, id, &path, &refs).unwrap_or_else(|e| panic!("{e}"));
        flows.order.push(p.flow.id.clone());
        flows.flows.insert(p.flow.id.clone(), p.flow);
    }
    flows.functions.insert(
        "f".into(),
        Function {
            name: "f".into(),
            url: "http://127.0.0.1:9/".into(),
            timeout_ms: 1000,
        },
    );
    flows
}

#[cfg(test)]
mod tests {
    use crate::config::{sample_without_flows, Config, ConfigError};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A good inbound flow (the contract's example, trimmed).
    pub const ORDER_FLOW: &str = include_str!("../../testdata/flows/file-order-flow.toml");

    const QUEUE_FLOW: &str = include_str!("../../testdata/flows/file-queue-flow.toml");

    static N: AtomicUsize = AtomicUsize::new(0);

    /// Writes the sample plus `extra` and the flow files into a fresh
    /// directory and loads it.
    fn load(extra: &str, flows: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "sb-flowcfg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("flows")).expect("dir");
        for (name, text) in flows {
            std::fs::write(dir.join("flows").join(name), text).expect("flow");
        }
        let main = dir.join("main.toml");
        std::fs::write(&main, format!("{}\n{extra}", sample_without_flows())).expect("main");
        let out = Config::load(&main);
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    const MAIN: &str = r#"
[[functions]]
name = "order_lookup"
url = "http://127.0.0.1:8091/v1/orders/lookup"
timeout_ms = 3000

[[flows]]
file = "flows/order-support.toml"

[[flows]]
file = "flows/wait.toml"

[[entry_points]]
number = "+18005550100"
flow = "order-support"
"#;

    fn line_in(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("no `{needle}`"))
    }

    /// Loads MAIN with the order flow changed by `from -> to`; the error.
    fn broken_flow(from: &str, to: &str) -> (ConfigError, String) {
        assert!(ORDER_FLOW.contains(from), "{from}");
        let text = ORDER_FLOW.replacen(from, to, 1);
        let err = load(
            MAIN,
            &[("order-support.toml", &text), ("wait.toml", QUEUE_FLOW)],
        )
        .expect_err("should fail");
        (err, text)
    }

    #[test]
    fn a_good_configuration_loads_its_flows_entry_points_and_functions() {
        let cfg = load(
            MAIN,
            &[
                ("order-support.toml", ORDER_FLOW),
                ("wait.toml", QUEUE_FLOW),
            ],
        )
        .expect("loads");
        let flow = cfg.flows.for_number("+18005550100").expect("entry point");
        assert_eq!(flow.id, "order-support");
        assert_eq!(flow.kind, super::FlowType::Inbound);
        assert_eq!(flow.blocks.len(), 7);
        assert_eq!(cfg.flows.order, ["order-support", "wait"]);
        assert_eq!(cfg.flows.functions["order_lookup"].timeout_ms, 3000);
        let menu = &flow.blocks["menu"];
        assert_eq!(menu.line, line_in(ORDER_FLOW, "[blocks.menu]"));
        let names: Vec<String> = menu.all_branches().into_iter().map(|b| b.0).collect();
        assert_eq!(names, ["3", "default", "error", "timeout"]);
        assert!(cfg.flows.for_number("+18005550199").is_none());
    }

    #[test]
    fn the_sample_without_flows_still_loads() {
        assert!(Config::sample().is_ok());
    }

    #[test]
    fn an_unknown_block_type_names_its_file_and_line() {
        let (err, text) = broken_flow("type = \"set_voice\"", "type = \"set_voyce\"");
        assert!(err.file.ends_with("order-support.toml"), "{err}");
        assert_eq!(err.line, Some(line_in(&text, "set_voyce")));
        assert!(
            err.message.contains("unknown block type `set_voyce`"),
            "{err}"
        );
    }

    #[test]
    fn a_dangling_branch_names_its_line() {
        let (err, text) = broken_flow("next = \"has_order\"", "next = \"has_ordr\"");
        assert_eq!(err.line, Some(line_in(&text, "has_ordr")));
        assert!(err.message.contains("names no block `has_ordr`"), "{err}");
        let (err, text) = broken_flow("\"3\" = \"queue\"", "\"3\" = \"nowhere\"");
        assert_eq!(err.line, Some(line_in(&text, "nowhere")));
        let (err, text) = broken_flow(
            "op = \"present\", to = \"menu\"",
            "op = \"present\", to = \"x\"",
        );
        assert_eq!(err.line, Some(line_in(&text, "to = \"x\"")));
        let (err, text) = broken_flow("start = \"voice\"", "start = \"v\"");
        assert_eq!(err.line, Some(line_in(&text, "start = \"v\"")));
    }

    #[test]
    fn a_missing_queue_function_prompt_or_flow_fails() {
        let (err, text) = broken_flow("queue = \"orders\"", "queue = \"ordrs\"");
        assert_eq!(err.line, Some(line_in(&text, "ordrs")));
        assert!(
            err.message.contains("queue `ordrs` is not configured"),
            "{err}"
        );
        let (err, text) = broken_flow("function = \"order_lookup\"", "function = \"nope\"");
        assert_eq!(err.line, Some(line_in(&text, "\"nope\"")));
        assert!(err.message.contains("function `nope`"), "{err}");
        let (err, text) = broken_flow(
            "text = \"You recently purchased $.Attributes.product. Press 3.\"",
            "wav = \"prompts/missing.wav\"",
        );
        assert_eq!(err.line, Some(line_in(&text, "missing.wav")));
        assert!(
            err.message
                .contains("prompt `prompts/missing.wav` is missing"),
            "{err}"
        );
        let (err, text) = broken_flow(
            "[blocks.bye]\ntype = \"disconnect\"",
            "[blocks.bye]\ntype = \"transfer_to_flow\"\nflow = \"elsewhere\"",
        );
        assert_eq!(err.line, Some(line_in(&text, "elsewhere")));
        assert!(
            err.message.contains("flow `elsewhere` is not configured"),
            "{err}"
        );
        // A queue flow is no target for a transfer.
        let (err, _) = broken_flow(
            "[blocks.bye]\ntype = \"disconnect\"",
            "[blocks.bye]\ntype = \"transfer_to_flow\"\nflow = \"wait\"",
        );
        assert!(err.message.contains("customer_queue flow"), "{err}");
    }

    #[test]
    fn a_block_in_a_flow_type_it_cannot_run_in_fails() {
        let text = QUEUE_FLOW.replacen(
            "[blocks.music]\ntype = \"play_prompt\"",
            "[blocks.music]\ntype = \"transfer_to_queue\"",
            1,
        );
        let text = text.replacen("text = \"Thank you for waiting.\"\n", "", 1);
        let err = load(
            MAIN,
            &[("order-support.toml", ORDER_FLOW), ("wait.toml", &text)],
        )
        .expect_err("fails");
        assert!(err.file.ends_with("wait.toml"));
        assert_eq!(err.line, Some(line_in(&text, "transfer_to_queue")));
        assert!(
            err.message
                .contains("cannot be used in a customer_queue flow"),
            "{err}"
        );
    }

    #[test]
    fn fields_a_block_does_not_take_and_missing_branches_fail() {
        let (err, text) = broken_flow(
            "language = \"en-US\"",
            "language = \"en-US\"\nqueue = \"orders\"",
        );
        assert_eq!(err.line, Some(line_in(&text, "queue = \"orders\"")));
        assert!(err.message.contains("has no field `queue`"), "{err}");
        let (err, text) = broken_flow("next = \"has_order\"\n", "");
        assert_eq!(err.line, Some(line_in(&text, "[blocks.lookup]")));
        assert!(err.message.contains("needs a `next` branch"), "{err}");
        let (err, _) = broken_flow("language = \"en-US\"", "language = \"fr-FR\"");
        assert!(err.message.contains("fr-FR"), "{err}");
        let (err, _) = broken_flow("max_digits = 1", "max_digits = 0");
        assert!(err.message.contains("max_digits"), "{err}");
        let (err, _) = broken_flow(
            "[blocks.bye]\ntype = \"disconnect\"",
            "[blocks.bye]\ntype = \"disconnect\"\nnext = \"voice\"",
        );
        assert!(err.message.contains("has no field `next`"), "{err}");
    }

    #[test]
    fn main_configuration_errors_name_the_main_file_and_line() {
        let flows = [
            ("order-support.toml", ORDER_FLOW),
            ("wait.toml", QUEUE_FLOW),
        ];
        let cases = [
            (
                "file = \"flows/wait.toml\"",
                "file = \"flows/gone.toml\"",
                "is missing",
            ),
            (
                "flow = \"order-support\"",
                "flow = \"orders\"",
                "unknown flow `orders`",
            ),
            (
                "flow = \"order-support\"",
                "flow = \"wait\"",
                "needs an inbound one",
            ),
            (
                "number = \"+18005550100\"",
                "number = \"18005550100\"",
                "not an E.164",
            ),
            (
                "timeout_ms = 3000",
                "timeout_ms = 9000",
                "between 1 and 8000",
            ),
            (
                "url = \"http://127.0.0.1:8091",
                "url = \"https://127.0.0.1:8091",
                "http://",
            ),
        ];
        for (from, to, why) in cases {
            let main = MAIN.replacen(from, to, 1);
            let err = load(&main, &flows).expect_err(to);
            assert!(err.file.ends_with("main.toml"), "{err}");
            let full = format!("{}\n{main}", sample_without_flows());
            assert_eq!(err.line, Some(line_in(&full, to)), "{to}: {err}");
            assert!(err.message.contains(why), "{to}: {err}");
        }
        let _ = PathBuf::new();
    }

    #[test]
    fn transfer_to_a_phone_number_needs_a_trunk() {
        let (err, text) = broken_flow(
            "[blocks.bye]\ntype = \"disconnect\"",
            "[blocks.bye]\ntype = \"transfer_to_phone_number\"\nnumber = \"+15555550123\"",
        );
        assert_eq!(err.line, Some(line_in(&text, "+15555550123")));
        assert!(err.message.contains("SIP trunk"), "{err}");
    }

    #[test]
    fn a_toml_error_in_a_flow_names_its_line() {
        let (err, text) = broken_flow("max_digits = 1", "max_digits = = 1");
        assert!(err.file.ends_with("order-support.toml"));
        assert_eq!(err.line, Some(line_in(&text, "max_digits = = 1")));
    }

    #[test]
    fn a_quick_connect_flow_must_be_a_transfer_flow_of_its_kind() {
        const XFER: &str = "name = \"X\"\ntype = \"transfer_to_queue\"\nstart = \"go\"\n\n[blocks.go]\ntype = \"transfer_to_queue\"\nerror = \"bye\"\n\n[blocks.bye]\ntype = \"disconnect\"\n";
        let flows = [
            ("order-support.toml", ORDER_FLOW),
            ("wait.toml", QUEUE_FLOW),
            ("xfer.toml", XFER),
        ];
        let main = format!(
            "{MAIN}\n[[flows]]\nfile = \"flows/xfer.toml\"\n\n[[quick_connects]]\nid = \"qc-flow\"\nname = \"Q\"\nkind = \"queue\"\nqueue = \"billing\"\nflow = \"xfer\"\n"
        );
        let cfg = load(&main, &flows).expect("a queue quick connect with a transfer_to_queue flow");
        assert_eq!(cfg.flows.quick_connects["qc-flow"], "xfer");
        let cases = [
            (
                "flow = \"xfer\"",
                "flow = \"nowhere\"",
                "unknown flow `nowhere`",
            ),
            (
                "flow = \"xfer\"",
                "flow = \"wait\"",
                "not transfer_to_queue",
            ),
            (
                "kind = \"queue\"\nqueue = \"billing\"",
                "kind = \"agent\"\nagent = \"bob\"",
                "not transfer_to_agent",
            ),
            (
                "kind = \"queue\"\nqueue = \"billing\"",
                "kind = \"phone_number\"\nphone_number = \"+15555550123\"",
                "only agent and queue",
            ),
        ];
        for (from, to, why) in cases {
            let broken = main.replacen(from, to, 1);
            let err = load(&broken, &flows).expect_err(to);
            assert!(err.file.ends_with("main.toml"), "{err}");
            let full = format!("{}\n{broken}", sample_without_flows());
            // The quick connect's `flow` line, the last `flow =` in the file.
            let line = full
                .lines()
                .enumerate()
                .filter(|(_, l)| l.starts_with("flow = "))
                .last()
                .map(|(i, _)| i + 1);
            assert_eq!(err.line, line, "{to}: {err}");
            assert!(err.message.contains(why), "{to}: {err}");
        }
    }
}
