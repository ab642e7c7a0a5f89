//! The backend's one configuration file (TOML): listen addresses, approved
//! origins, agents, agent states, queues with hours, routing profiles,
//! quick connects and the customer table. Loading validates everything up
//! front and reports `file:line: what is wrong`, so a bad file fails at
//! start instead of at the first call that touches the bad entry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use protocol::agent::{AgentState, AgentStateKind};
use protocol::endpoint::{is_e164, Endpoint, EndpointKind};
use serde::Deserialize;
use toml::Spanned;

use crate::hours::Hours;

/// The sample shipped with the backend; `cargo xtask run` uses it.
pub const SAMPLE: &str = include_str!("../config/sample.toml");

/// The sample without its contact flows section (the last one): for tests
/// that parse the sample under another file name, where the flow files'
/// relative paths do not resolve, or that add flows of their own.
#[cfg(test)]
pub(crate) fn sample_without_flows() -> &'static str {
    SAMPLE
        .split("\n# Contact flows (docs/flows.md")
        .next()
        .unwrap_or(SAMPLE)
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}", line = line.map_or_else(|| "?".to_string(), |l| l.to_string()))]
pub struct ConfigError {
    /// The file (or `<sample>`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    #[serde(default)]
    wrap_up_codes: Vec<String>,
    #[serde(default)]
    country_code: Option<Spanned<i64>>,
    agent_states: Vec<RawState>,
    queues: Vec<RawQueue>,
    routing_profiles: Vec<RawProfile>,
    agents: Vec<RawAgent>,
    #[serde(default)]
    quick_connects: Vec<RawQuickConnect>,
    #[serde(default)]
    customers: BTreeMap<Spanned<String>, BTreeMap<String, toml::Value>>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    sip: RawSip,
    #[serde(default)]
    flows: Vec<RawFlowFile>,
    #[serde(default)]
    entry_points: Vec<RawEntryPoint>,
    #[serde(default)]
    functions: Vec<RawFunction>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Spanned<String>,
    crm_demo_listen: Option<Spanned<String>>,
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default = "default_public_dir")]
    public_dir: PathBuf,
    #[serde(default = "default_ccp_dir")]
    ccp_dir: PathBuf,
    #[serde(default)]
    approved_origins: Vec<Spanned<String>>,
    #[serde(default = "default_ring_timeout")]
    ring_timeout_s: u64,
    #[serde(default = "default_token_ttl")]
    token_ttl_s: u64,
    #[serde(default)]
    simulator: bool,
    #[serde(default = "default_answer_ms")]
    external_answer_ms: u64,
    #[serde(default = "default_true")]
    recording: bool,
    #[serde(default = "default_prompt")]
    caller_prompt: PathBuf,
    /// Test only: impair frames the bridge sends to agents.
    #[serde(default)]
    impair_loss_percent: f64,
    #[serde(default)]
    impair_jitter_ms: f64,
    #[serde(default)]
    impair_seed: u64,
    /// The key every simulator request must carry (see [`crate::fence`]).
    simulator_key: Option<Spanned<String>>,
    #[serde(default = "default_sim_calls_per_minute")]
    simulator_calls_per_minute: u32,
    // Login security (see `auth` and `Validator::login`).
    /// Accept plain-text agent passwords (development only).
    #[serde(default)]
    dev_plaintext_passwords: bool,
    #[serde(default = "default_token_warning")]
    token_warning_s: Spanned<u64>,
    #[serde(default = "default_free_per_user")]
    login_free_failures_per_user: Spanned<u32>,
    #[serde(default = "default_free_per_address")]
    login_free_failures_per_address: Spanned<u32>,
    #[serde(default = "default_backoff_base")]
    login_backoff_base_ms: Spanned<u64>,
    #[serde(default = "default_backoff_max")]
    login_backoff_max_s: Spanned<u64>,
    #[serde(default = "default_failure_window")]
    login_failure_window_s: Spanned<u64>,
}

fn default_sim_calls_per_minute() -> u32 {
    60
}
fn default_max_wait_s() -> u64 {
    600
}

fn default_token_warning() -> Spanned<u64> {
    Spanned::new(0..0, 300)
}
fn default_free_per_user() -> Spanned<u32> {
    Spanned::new(0..0, crate::auth::LoginPolicy::default().free_per_user)
}
fn default_free_per_address() -> Spanned<u32> {
    Spanned::new(0..0, crate::auth::LoginPolicy::default().free_per_address)
}
fn default_backoff_base() -> Spanned<u64> {
    Spanned::new(0..0, crate::auth::LoginPolicy::default().backoff_base_ms)
}
fn default_backoff_max() -> Spanned<u64> {
    Spanned::new(
        0..0,
        crate::auth::LoginPolicy::default().backoff_max_ms / 1000,
    )
}
fn default_failure_window() -> Spanned<u64> {
    Spanned::new(0..0, crate::auth::LoginPolicy::default().window_ms / 1000)
}

fn default_true() -> bool {
    true
}
fn default_prompt() -> PathBuf {
    "audio/caller-prompt.wav".into()
}

fn default_data_dir() -> PathBuf {
    "var".into()
}
fn default_public_dir() -> PathBuf {
    "public".into()
}
fn default_ccp_dir() -> PathBuf {
    "dist".into()
}
fn default_ring_timeout() -> u64 {
    20
}
fn default_token_ttl() -> u64 {
    12 * 3600
}
fn default_answer_ms() -> u64 {
    800
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    name: Spanned<String>,
    kind: Spanned<AgentStateKind>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    id: Spanned<String>,
    name: String,
    max_contacts: usize,
    time_zone: Option<Spanned<String>>,
    hours: Option<Spanned<BTreeMap<String, String>>>,
    max_wait_s: Option<Spanned<u64>>,
    outbound_caller_id_number: Option<Spanned<String>>,
    outbound_caller_id_name: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    id: Spanned<String>,
    name: String,
    queues: Vec<RawProfileQueue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfileQueue {
    queue: Spanned<String>,
    priority: u32,
    #[serde(default)]
    delay_s: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    username: Spanned<String>,
    password: Spanned<String>,
    name: String,
    routing_profile: Spanned<String>,
    #[serde(default)]
    supervisor: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuickConnect {
    id: Spanned<String>,
    name: String,
    kind: EndpointKind,
    agent: Option<Spanned<String>>,
    queue: Option<Spanned<String>>,
    phone_number: Option<Spanned<String>>,
    /// A transfer flow run when an agent transfers to it.
    flow: Option<Spanned<String>>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the backend listens.
    pub listen: SocketAddr,
    /// Where the demo CRM origin listens, if anywhere.
    pub crm_demo_listen: Option<SocketAddr>,
    /// SQLite and recordings.
    pub data_dir: PathBuf,
    /// Static assets.
    pub public_dir: PathBuf,
    /// The built CCP.
    pub ccp_dir: PathBuf,
    /// Origins allowed to frame the CCP.
    pub approved_origins: Vec<String>,
    /// Ring timeout in milliseconds.
    pub ring_timeout_ms: u64,
    /// Token lifetime in seconds.
    pub token_ttl_s: u64,
    /// How long before a token expires an open socket is told
    /// (`token_expiring`), in seconds.
    pub token_warning_s: u64,
    /// Failed-login throttling.
    pub login: crate::auth::LoginPolicy,
    /// Plain-text agent passwords are accepted (development only).
    pub dev_plaintext_passwords: bool,
    /// Whether the simulated-caller HTTP API is on.
    pub simulator: bool,
    /// How long simulated external parties take to answer.
    pub external_answer_ms: u64,
    /// Whether each contact's audio is recorded (per-party Ogg Opus under data_dir/recordings).
    pub recording: bool,
    /// The WAV a simulated caller plays, relative to `public_dir`.
    pub caller_prompt: PathBuf,
    /// Test only: seeded loss and jitter on frames sent to agents.
    pub impairment: crate::bridge::Impairment,
    /// Wrap-up codes.
    pub wrap_up_codes: Vec<String>,
    /// The agents' country calling code (numbers typed without `+` are
    /// national numbers of that country in the CCP).
    pub country_code: Option<u16>,
    /// Selectable agent states, in file order.
    pub agent_states: Vec<AgentState>,
    /// Queues by id.
    pub queues: HashMap<String, Queue>,
    /// Routing profiles by id.
    pub routing_profiles: HashMap<String, Profile>,
    /// Agents by username.
    pub agents: HashMap<String, Agent>,
    /// Agents in file order (for stable listings).
    pub agent_order: Vec<String>,
    /// Quick connects, in file order.
    pub quick_connects: Vec<Endpoint>,
    /// Customer attributes by caller number.
    pub customers: HashMap<String, BTreeMap<String, String>>,
    /// The simulator's key (empty when the simulator is off).
    pub simulator_key: String,
    /// Most simulated calls placed per minute (HTTP and customer phone).
    pub simulator_calls_per_minute: u32,
    /// Resource bounds (`[limits]`).
    pub limits: Limits,
    /// The SIP trunk gateway (`[sip]`, `[[sip.trunks]]`); off without trunks.
    pub sip: SipConfig,
    /// Contact flows, entry points and external functions (`[[flows]]`,
    /// `[[entry_points]]`, `[[functions]]`).
    pub flows: std::sync::Arc<crate::flow::Flows>,
}

/// `[[flows]]`: a flow file, relative to the configuration's directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlowFile {
    file: Spanned<String>,
}

/// `[[entry_points]]`: a number that starts a flow.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntryPoint {
    number: Spanned<String>,
    flow: Spanned<String>,
}

/// `[[functions]]`: an external function flows may invoke.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    name: Spanned<String>,
    url: Spanned<String>,
    #[serde(default = "default_function_timeout")]
    timeout_ms: Spanned<u64>,
}

fn default_function_timeout() -> Spanned<u64> {
    Spanned::new(0..0, 3000)
}

/// The directory relative paths in a configuration start from: the
/// file's own, or the shipped `server/config` for the sample.
fn config_dir(file: &str) -> PathBuf {
    if file == "<sample>" {
        return Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    }
    Path::new(file)
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

impl Validator<'_> {
    /// `[[functions]]`, `[[flows]]` and `[[entry_points]]`, checked
    /// together: flows name functions and queues, entry points name flows.
    fn flows(
        &self,
        (flow_files, raw_entries, raw_functions): (
            &[RawFlowFile],
            &[RawEntryPoint],
            &[RawFunction],
        ),
        queues: &HashMap<String, Queue>,
        trunk: bool,
        base: &Path,
    ) -> Result<crate::flow::Flows, ConfigError> {
        use crate::flow::{FlowEntry, FlowType, Function, Refs};
        let mut functions = BTreeMap::new();
        for f in raw_functions {
            let name = f.name.get_ref().clone();
            if name.is_empty() || functions.contains_key(&name) {
                return self.err(
                    &f.name.span(),
                    format!("function `{name}` is empty or defined twice"),
                );
            }
            if let Err(e) = crate::flow::invoke::parse_url(f.url.get_ref()) {
                return self.err(&f.url.span(), format!("function `{name}`: {e}"));
            }
            let timeout_ms = *f.timeout_ms.get_ref();
            if !(1..=crate::flow::MAX_FUNCTION_TIMEOUT_MS).contains(&timeout_ms) {
                return self.err(
                    &f.timeout_ms.span(),
                    format!(
                        "function `{name}`: timeout_ms must be between 1 and {}",
                        crate::flow::MAX_FUNCTION_TIMEOUT_MS
                    ),
                );
            }
            functions.insert(
                name.clone(),
                Function {
                    name,
                    url: f.url.get_ref().clone(),
                    timeout_ms,
                },
            );
        }
        let entries: Vec<FlowEntry> = flow_files
            .iter()
            .map(|f| FlowEntry {
                file: f.file.get_ref().clone(),
                line: line_of(self.text, f.file.span().start),
            })
            .collect();
        let queue_ids: HashSet<String> = queues.keys().cloned().collect();
        let function_names: HashSet<String> = functions.keys().cloned().collect();
        let refs = Refs {
            queues: &queue_ids,
            functions: &function_names,
            trunk,
            base,
        };
        let flows = crate::flow::file::load(&entries, self.file, &refs)?;
        let order = flow_files
            .iter()
            .filter_map(|f| {
                let stem = Path::new(f.file.get_ref()).file_stem()?;
                Some(stem.to_string_lossy().into_owned())
            })
            .collect();
        let mut entry_points = BTreeMap::new();
        for e in raw_entries {
            let number = e.number.get_ref();
            if !is_e164(number) {
                return self.err(
                    &e.number.span(),
                    format!("entry point `{number}` is not an E.164 number"),
                );
            }
            if entry_points.contains_key(number) {
                return self.err(
                    &e.number.span(),
                    format!("entry point `{number}` is defined twice"),
                );
            }
            match flows.get(e.flow.get_ref()) {
                None => {
                    return self.err(
                        &e.flow.span(),
                        format!(
                            "entry point `{number}` names unknown flow `{}`",
                            e.flow.get_ref()
                        ),
                    )
                }
                Some(f) if f.kind != FlowType::Inbound => {
                    return self.err(
                        &e.flow.span(),
                        format!(
                        "entry point `{number}` names `{}`, a {} flow (it needs an inbound one)",
                        f.id,
                        f.kind.as_str()
                    ),
                    )
                }
                Some(_) => {}
            }
            entry_points.insert(number.clone(), e.flow.get_ref().clone());
        }
        Ok(crate::flow::Flows {
            flows,
            order,
            entry_points,
            functions,
            quick_connects: BTreeMap::new(),
        })
    }
}

/// A queue.
#[derive(Debug, Clone)]
pub struct Queue {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Most contacts that may wait at once.
    pub max_contacts: usize,
    /// Opening hours; `None` means always open.
    pub hours: Option<Hours>,
    /// A contact waiting longer than this leaves the queue (`queue_timeout`).
    pub max_wait_ms: u64,
    /// Caller ID (E.164) of outbound calls placed for this queue through a
    /// SIP trunk.
    pub outbound_caller_id_number: Option<String>,
    /// Caller ID display name of those calls.
    pub outbound_caller_id_name: Option<String>,
}

/// A routing profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Queues served.
    pub queues: Vec<ProfileQueue>,
}

/// A queue within a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileQueue {
    /// Queue id.
    pub queue: String,
    /// Lower first.
    pub priority: u32,
    /// Minimum wait in seconds before this profile takes the contact.
    pub delay_s: u32,
}

/// An agent account.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Login name.
    pub username: String,
    /// An Argon2id hash (or, in development, plain text).
    pub password: crate::auth::Credential,
    /// Display name.
    pub name: String,
    /// Routing profile id.
    pub routing_profile: String,
    /// Reads every contact's record and the flows (`supervisor = true`).
    pub supervisor: bool,
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// The shipped sample.
    pub fn sample() -> Result<Config, ConfigError> {
        Config::parse(SAMPLE, "<sample>")
    }

    /// Parses and validates text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_owned(),
        })?;
        let base = config_dir(file);
        Validator { text, file }.validate(raw, &base)
    }

    /// A state by name among the selectable ones.
    pub fn agent_state(&self, name: &str) -> Option<&AgentState> {
        self.agent_states.iter().find(|s| s.name == name)
    }
}

/// The 1-based line of byte `offset` in `text` (flow files name their
/// lines the same way).
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

struct Validator<'a> {
    text: &'a str,
    file: &'a str,
}

impl Validator<'_> {
    fn err<T>(
        &self,
        at: &std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            file: self.file.to_owned(),
            line: Some(line_of(self.text, at.start)),
            message: message.into(),
        })
    }

    fn addr(&self, s: &Spanned<String>, key: &str) -> Result<SocketAddr, ConfigError> {
        s.get_ref().parse().or_else(|_| {
            self.err(
                &s.span(),
                format!(
                    "{key} `{}` is not an address like 127.0.0.1:8480",
                    s.get_ref()
                ),
            )
        })
    }

    /// Token lifetime and failed-login throttling keys.
    /// Returns the throttling policy and the expiry warning lead time
    /// (left at its default, it is at most half the token lifetime).
    fn login(&self, raw: &RawServer) -> Result<(crate::auth::LoginPolicy, u64), ConfigError> {
        let (token_ttl_s, server) = (raw.token_ttl_s, &raw.listen);
        // Keys left at their default have no span; point at [server].
        let at = |v: &std::ops::Range<usize>| {
            if v.is_empty() {
                server.span()
            } else {
                v.clone()
            }
        };
        if token_ttl_s == 0 || token_ttl_s > 30 * 86_400 {
            return self.err(
                &server.span(),
                "token_ttl_s must be between 1 and 2592000 (30 days)",
            );
        }
        let warning = &raw.token_warning_s;
        let warning_s = if warning.span().is_empty() {
            (*warning.get_ref()).min(token_ttl_s / 2)
        } else {
            *warning.get_ref()
        };
        if warning_s >= token_ttl_s {
            return self.err(
                &at(&warning.span()),
                format!(
                    "token_warning_s ({}) must be less than token_ttl_s ({token_ttl_s})",
                    warning.get_ref()
                ),
            );
        }
        for (key, v) in [
            (
                "login_free_failures_per_user",
                &raw.login_free_failures_per_user,
            ),
            (
                "login_free_failures_per_address",
                &raw.login_free_failures_per_address,
            ),
        ] {
            if *v.get_ref() == 0 || *v.get_ref() > 1_000 {
                return self.err(&at(&v.span()), format!("{key} must be between 1 and 1000"));
            }
        }
        let base = &raw.login_backoff_base_ms;
        if *base.get_ref() == 0 || *base.get_ref() > 60_000 {
            return self.err(
                &at(&base.span()),
                "login_backoff_base_ms must be between 1 and 60000",
            );
        }
        let max = &raw.login_backoff_max_s;
        if *max.get_ref() == 0 || *max.get_ref() > 86_400 || max.get_ref() * 1000 < *base.get_ref()
        {
            return self.err(
                &at(&max.span()),
                "login_backoff_max_s must be between the base delay and 86400",
            );
        }
        let window = &raw.login_failure_window_s;
        if *window.get_ref() == 0 || *window.get_ref() > 7 * 86_400 {
            return self.err(
                &at(&window.span()),
                "login_failure_window_s must be between 1 and 604800",
            );
        }
        let policy = crate::auth::LoginPolicy {
            free_per_user: *raw.login_free_failures_per_user.get_ref(),
            free_per_address: *raw.login_free_failures_per_address.get_ref(),
            backoff_base_ms: *base.get_ref(),
            backoff_max_ms: max.get_ref() * 1000,
            window_ms: window.get_ref() * 1000,
        };
        Ok((policy, warning_s))
    }

    fn validate(&self, raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
        let listen = self.addr(&raw.server.listen, "listen")?;
        let crm_demo_listen = raw
            .server
            .crm_demo_listen
            .as_ref()
            .map(|s| self.addr(s, "crm_demo_listen"))
            .transpose()?;
        let mut approved_origins = Vec::new();
        for origin in &raw.server.approved_origins {
            let o = origin.get_ref();
            if !valid_origin(o) {
                return self.err(
                    &origin.span(),
                    format!("approved origin `{o}` must be scheme://host[:port] with no path"),
                );
            }
            approved_origins.push(o.to_owned());
        }
        if raw.server.ring_timeout_s == 0 || raw.server.ring_timeout_s > 600 {
            return self.err(
                &raw.server.listen.span(),
                "ring_timeout_s must be between 1 and 600",
            );
        }

        let (login, token_warning_s) = self.login(&raw.server)?;

        let mut agent_states = Vec::new();
        for st in &raw.agent_states {
            let state = AgentState::new(st.name.get_ref(), *st.kind.get_ref());
            if !state.is_selectable() {
                return self.err(
                    &st.kind.span(),
                    format!(
                        "state `{}`: kind must be routable, not_routable or offline",
                        state.name
                    ),
                );
            }
            if agent_states
                .iter()
                .any(|s: &AgentState| s.name == state.name)
            {
                return self.err(
                    &st.name.span(),
                    format!("agent state `{}` is defined twice", state.name),
                );
            }
            if is_system_name(&state.name) {
                return self.err(
                    &st.name.span(),
                    format!("`{}` is a system state name", state.name),
                );
            }
            agent_states.push(state);
        }
        if !agent_states
            .iter()
            .any(|s| s.kind == AgentStateKind::Routable)
        {
            return self.err(
                &(0..0),
                "agent_states needs at least one routable state (Available)",
            );
        }
        if !agent_states
            .iter()
            .any(|s| s.kind == AgentStateKind::Offline)
        {
            return self.err(&(0..0), "agent_states needs an offline state (Offline)");
        }

        let mut queues = HashMap::new();
        for q in raw.queues {
            let id = q.id.get_ref().clone();
            if queues.contains_key(&id) {
                return self.err(&q.id.span(), format!("queue `{id}` is defined twice"));
            }
            if q.max_contacts == 0 {
                return self.err(
                    &q.id.span(),
                    format!("queue `{id}`: max_contacts must be at least 1"),
                );
            }
            let hours = match (&q.time_zone, &q.hours) {
                (None, None) => None,
                (Some(tz), Some(days)) => Some(
                    Hours::parse(tz.get_ref(), days.get_ref())
                        .or_else(|e| self.err(&days.span(), format!("queue `{id}`: {e}")))?,
                ),
                (None, Some(days)) => {
                    return self.err(
                        &days.span(),
                        format!("queue `{id}`: hours need a time_zone"),
                    )
                }
                (Some(tz), None) => {
                    return self.err(&tz.span(), format!("queue `{id}`: time_zone without hours"))
                }
            };
            let max_wait_s = match &q.max_wait_s {
                Some(w) if !(1..=86_400).contains(w.get_ref()) => {
                    return self.err(
                        &w.span(),
                        format!("queue `{id}`: max_wait_s must be between 1 and 86400"),
                    )
                }
                Some(w) => *w.get_ref(),
                None => default_max_wait_s(),
            };
            let (outbound_caller_id_number, outbound_caller_id_name) = self.caller_id(
                &id,
                &q.outbound_caller_id_number,
                &q.outbound_caller_id_name,
            )?;
            queues.insert(
                id.clone(),
                Queue {
                    id,
                    name: q.name,
                    max_contacts: q.max_contacts,
                    hours,
                    max_wait_ms: max_wait_s * 1000,
                    outbound_caller_id_number,
                    outbound_caller_id_name,
                },
            );
        }

        let mut routing_profiles = HashMap::new();
        for p in raw.routing_profiles {
            let id = p.id.get_ref().clone();
            if routing_profiles.contains_key(&id) {
                return self.err(
                    &p.id.span(),
                    format!("routing profile `{id}` is defined twice"),
                );
            }
            let mut seen = HashSet::new();
            let mut pq = Vec::new();
            for q in p.queues {
                if !queues.contains_key(q.queue.get_ref()) {
                    return self.err(
                        &q.queue.span(),
                        format!(
                            "routing profile `{id}` names unknown queue `{}`",
                            q.queue.get_ref()
                        ),
                    );
                }
                if !seen.insert(q.queue.get_ref().clone()) {
                    return self.err(
                        &q.queue.span(),
                        format!(
                            "routing profile `{id}` lists queue `{}` twice",
                            q.queue.get_ref()
                        ),
                    );
                }
                pq.push(ProfileQueue {
                    queue: q.queue.into_inner(),
                    priority: q.priority,
                    delay_s: q.delay_s,
                });
            }
            routing_profiles.insert(
                id.clone(),
                Profile {
                    id,
                    name: p.name,
                    queues: pq,
                },
            );
        }

        let mut agents = HashMap::new();
        let mut agent_order = Vec::new();
        for a in raw.agents {
            let username = a.username.get_ref().clone();
            if username.is_empty()
                || !username
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return self.err(
                    &a.username.span(),
                    format!("username `{username}` may use only letters, digits, `.`, `_`, `-`"),
                );
            }
            if agents.contains_key(&username) {
                return self.err(
                    &a.username.span(),
                    format!("agent `{username}` is defined twice"),
                );
            }
            if !routing_profiles.contains_key(a.routing_profile.get_ref()) {
                return self.err(
                    &a.routing_profile.span(),
                    format!(
                        "agent `{username}` names unknown routing profile `{}`",
                        a.routing_profile.get_ref()
                    ),
                );
            }
            let password = crate::auth::Credential::parse(
                a.password.get_ref(),
                raw.server.dev_plaintext_passwords,
            )
            .or_else(|e| self.err(&a.password.span(), format!("agent `{username}`: {e}")))?;
            agent_order.push(username.clone());
            agents.insert(
                username.clone(),
                Agent {
                    username,
                    password,
                    name: a.name,
                    routing_profile: a.routing_profile.into_inner(),
                    supervisor: a.supervisor,
                },
            );
        }

        let mut quick_connects: Vec<Endpoint> = Vec::new();
        let mut quick_connect_flows = Vec::new();
        for qc in raw.quick_connects {
            let id = qc.id.get_ref().clone();
            if let Some(flow) = qc.flow {
                quick_connect_flows.push((id.clone(), qc.kind, flow));
            }
            if quick_connects.iter().any(|e| e.id == id) {
                return self.err(
                    &qc.id.span(),
                    format!("quick connect `{id}` is defined twice"),
                );
            }
            let mut endpoint = Endpoint {
                id: id.clone(),
                kind: qc.kind,
                name: qc.name,
                phone_number: None,
                agent: None,
                queue: None,
            };
            match qc.kind {
                EndpointKind::Agent => {
                    let Some(agent) = qc.agent else {
                        return self.err(
                            &qc.id.span(),
                            format!("quick connect `{id}` of kind agent needs `agent`"),
                        );
                    };
                    if !agents.contains_key(agent.get_ref()) {
                        return self.err(
                            &agent.span(),
                            format!(
                                "quick connect `{id}` names unknown agent `{}`",
                                agent.get_ref()
                            ),
                        );
                    }
                    endpoint.agent = Some(agent.into_inner());
                }
                EndpointKind::Queue => {
                    let Some(queue) = qc.queue else {
                        return self.err(
                            &qc.id.span(),
                            format!("quick connect `{id}` of kind queue needs `queue`"),
                        );
                    };
                    if !queues.contains_key(queue.get_ref()) {
                        return self.err(
                            &queue.span(),
                            format!(
                                "quick connect `{id}` names unknown queue `{}`",
                                queue.get_ref()
                            ),
                        );
                    }
                    endpoint.queue = Some(queue.into_inner());
                }
                EndpointKind::PhoneNumber => {
                    let Some(number) = qc.phone_number else {
                        return self.err(
                            &qc.id.span(),
                            format!(
                                "quick connect `{id}` of kind phone_number needs `phone_number`"
                            ),
                        );
                    };
                    if !is_e164(number.get_ref()) {
                        return self.err(
                            &number.span(),
                            format!(
                                "quick connect `{id}`: `{}` is not an E.164 number",
                                number.get_ref()
                            ),
                        );
                    }
                    endpoint.phone_number = Some(number.into_inner());
                }
            }
            quick_connects.push(endpoint);
        }

        let limits = self.limits(&raw.limits)?;
        let sip = self.sip(&raw.sip, &queues)?;

        let mut customers = HashMap::new();
        for (number, fields) in raw.customers {
            if !is_e164(number.get_ref()) {
                return self.err(
                    &number.span(),
                    format!("customer key `{}` is not an E.164 number", number.get_ref()),
                );
            }
            let mut attrs = BTreeMap::new();
            for (k, v) in fields {
                let value = match v {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    toml::Value::Datetime(d) => d.to_string(),
                    _ => {
                        return self.err(
                            &number.span(),
                            format!(
                                "customer `{}`: attribute `{k}` must be a plain value",
                                number.get_ref()
                            ),
                        )
                    }
                };
                attrs.insert(k, value);
            }
            if let Err(e) = crate::limits::check_attributes(&attrs) {
                return self.err(
                    &number.span(),
                    format!("customer `{}`: {e}", number.get_ref()),
                );
            }
            customers.insert(number.into_inner(), attrs);
        }

        let country_code = match &raw.country_code {
            None => None,
            Some(c) => match u16::try_from(*c.get_ref()) {
                Ok(code @ 1..=999) => Some(code),
                _ => {
                    return self.err(
                        &c.span(),
                        format!(
                            "country_code {} is not a country calling code (1 to 999: 81 for Japan, 1 for the US)",
                            c.get_ref()
                        ),
                    )
                }
            },
        };
        let (simulator_key, simulator_calls_per_minute) = self.simulator_fence(&raw.server)?;
        let flows = self.flows(
            (&raw.flows, &raw.entry_points, &raw.functions),
            &queues,
            sip.enabled(),
            base,
        )?;
        let flows = self.quick_connect_flows(flows, quick_connect_flows)?;
        Ok(Config {
            listen,
            crm_demo_listen,
            data_dir: raw.server.data_dir,
            public_dir: raw.server.public_dir,
            ccp_dir: raw.server.ccp_dir,
            approved_origins,
            ring_timeout_ms: raw.server.ring_timeout_s * 1000,
            token_ttl_s: raw.server.token_ttl_s,
            token_warning_s,
            login,
            dev_plaintext_passwords: raw.server.dev_plaintext_passwords,
            simulator: raw.server.simulator,
            external_answer_ms: raw.server.external_answer_ms,
            recording: raw.server.recording,
            caller_prompt: raw.server.caller_prompt,
            impairment: crate::bridge::Impairment {
                loss_percent: raw.server.impair_loss_percent.clamp(0.0, 100.0),
                jitter_ms: raw.server.impair_jitter_ms.clamp(0.0, 1000.0),
                seed: raw.server.impair_seed,
            },
            wrap_up_codes: raw.wrap_up_codes,
            country_code,
            agent_states,
            queues,
            routing_profiles,
            agents,
            agent_order,
            quick_connects,
            customers,
            simulator_key,
            simulator_calls_per_minute,
            limits,
            sip,
            flows: std::sync::Arc::new(flows),
        })
    }

    /// Checks each quick connect's `flow`: a `transfer_to_agent` flow for
    /// an agent, a `transfer_to_queue` flow for a queue, none for a number.
    fn quick_connect_flows(
        &self,
        mut flows: crate::flow::Flows,
        wanted: Vec<(String, EndpointKind, Spanned<String>)>,
    ) -> Result<crate::flow::Flows, ConfigError> {
        use crate::flow::FlowType;
        for (id, kind, flow) in wanted {
            let want = match kind {
                EndpointKind::Agent => FlowType::TransferToAgent,
                EndpointKind::Queue => FlowType::TransferToQueue,
                EndpointKind::PhoneNumber => {
                    return self.err(
                        &flow.span(),
                        format!(
                            "quick connect `{id}`: only agent and queue quick connects run a flow"
                        ),
                    );
                }
            };
            match flows.flows.get(flow.get_ref()) {
                None => {
                    return self.err(
                        &flow.span(),
                        format!(
                            "quick connect `{id}` names unknown flow `{}`",
                            flow.get_ref()
                        ),
                    );
                }
                Some(f) if f.kind != want => {
                    return self.err(
                        &flow.span(),
                        format!(
                            "quick connect `{id}`: flow `{}` is a {} flow, not {}",
                            flow.get_ref(),
                            f.kind.as_str(),
                            want.as_str()
                        ),
                    );
                }
                Some(_) => {
                    flows.quick_connects.insert(id, flow.into_inner());
                }
            }
        }
        Ok(flows)
    }

    /// The simulator's key and rate: a simulator that is on needs a key
    /// of at least [`MIN_SIMULATOR_KEY`] printable characters, so no
    /// configuration turns it on open to anyone.
    fn simulator_fence(&self, server: &RawServer) -> Result<(String, u32), ConfigError> {
        let rate = server.simulator_calls_per_minute;
        if rate == 0 || rate > 1_000_000 {
            return self.err(
                &server.listen.span(),
                "simulator_calls_per_minute must be between 1 and 1000000",
            );
        }
        if !server.simulator {
            return Ok((String::new(), rate));
        }
        let Some(key) = &server.simulator_key else {
            return self.err(
                &server.listen.span(),
                format!(
                    "simulator = true needs simulator_key (at least {MIN_SIMULATOR_KEY} characters)"
                ),
            );
        };
        let k = key.get_ref();
        if k.len() < MIN_SIMULATOR_KEY || !k.chars().all(|c| c.is_ascii_graphic()) {
            return self.err(
                &key.span(),
                format!(
                    "simulator_key must be at least {MIN_SIMULATOR_KEY} printable ASCII characters without spaces"
                ),
            );
        }
        Ok((k.clone(), rate))
    }
}

/// Shortest simulator key the configuration accepts.
pub const MIN_SIMULATOR_KEY: usize = 16;

/// Resource bounds, from the `[limits]` table (every key optional). The
/// defaults are safe for a production backend; tests lower the timeouts.
/// `docs/architecture.md` ("Limits") explains each one.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest WebSocket message or frame the transport reads. Text frames
    /// between the protocol's 65,536 bytes and this get `frame_too_large`;
    /// larger ones close the socket with 1009 before they are buffered.
    pub max_frame_bytes: usize,
    /// A socket that has not said `hello` (or, on the customer phone,
    /// dialed) by then is closed.
    pub hello_timeout_ms: u64,
    /// A socket write that has not completed by then disconnects the client.
    pub write_timeout_ms: u64,
    /// Frames a socket's outgoing queue holds before the client counts as
    /// not reading and is disconnected.
    pub send_queue_frames: usize,
    /// Bytes a socket's outgoing queue holds, likewise.
    pub send_queue_bytes: usize,
    /// Sockets open at once, all kinds.
    pub max_sockets: usize,
    /// Sockets from one address (IPv6: one /64) that have not said hello.
    pub max_pre_hello_per_ip: usize,
    /// Authenticated sockets per agent; a newer one closes the oldest.
    pub max_sockets_per_agent: usize,
    /// Sockets from one address closed for abuse in a minute before the
    /// address may hold only one socket before `hello` for the rest of it.
    pub policy_closes_per_minute: u32,
    /// Errors a socket gets before `hello` before it is closed.
    pub pre_hello_errors: u32,
    /// Text frames per second per socket, sustained.
    pub messages_per_s: u32,
    /// Text frames a socket may send in a burst.
    pub message_burst: u32,
    /// Media frames per second per socket, sustained.
    pub media_per_s: u32,
    /// Media frames a socket may send in a burst.
    pub media_burst: u32,
    /// Messages answered `rate_limited` before the socket is closed.
    pub rate_limit_strikes: u32,
    /// Events an agent's backlog keeps for resuming clients.
    pub backlog_events: usize,
    /// Bytes (encoded) an agent's backlog keeps.
    pub backlog_bytes: usize,
    /// Media frames waiting for the media bridge before new ones are dropped.
    pub bridge_frame_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 65_536 + 4_096,
            hello_timeout_ms: 10_000,
            write_timeout_ms: 10_000,
            send_queue_frames: 1_024,
            send_queue_bytes: 384 << 10,
            max_sockets: 10_000,
            max_pre_hello_per_ip: 32,
            max_sockets_per_agent: 4,
            policy_closes_per_minute: 20,
            pre_hello_errors: 8,
            messages_per_s: 50,
            message_burst: 100,
            media_per_s: 100,
            media_burst: 200,
            rate_limit_strikes: 20,
            backlog_events: 512,
            backlog_bytes: 256 << 10,
            bridge_frame_queue: 4_096,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_frame_bytes: Option<Spanned<u64>>,
    hello_timeout_ms: Option<Spanned<u64>>,
    write_timeout_ms: Option<Spanned<u64>>,
    send_queue_frames: Option<Spanned<u64>>,
    send_queue_bytes: Option<Spanned<u64>>,
    max_sockets: Option<Spanned<u64>>,
    max_pre_hello_per_ip: Option<Spanned<u64>>,
    max_sockets_per_agent: Option<Spanned<u64>>,
    policy_closes_per_minute: Option<Spanned<u64>>,
    pre_hello_errors: Option<Spanned<u64>>,
    messages_per_s: Option<Spanned<u64>>,
    message_burst: Option<Spanned<u64>>,
    media_per_s: Option<Spanned<u64>>,
    media_burst: Option<Spanned<u64>>,
    rate_limit_strikes: Option<Spanned<u64>>,
    backlog_events: Option<Spanned<u64>>,
    backlog_bytes: Option<Spanned<u64>>,
    bridge_frame_queue: Option<Spanned<u64>>,
}

impl Validator<'_> {
    /// `key` within `min..=max`, or its default.
    fn bounded(
        &self,
        v: &Option<Spanned<u64>>,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) if (min..=max).contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => self.err(
                &s.span(),
                format!("limits.{key} must be between {min} and {max}"),
            ),
        }
    }

    fn limits(&self, raw: &RawLimits) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        let size = |v: &Option<Spanned<u64>>, key: &str, default: usize, min: u64, max: u64| {
            self.bounded(v, key, default as u64, min, max)
                .map(|n| n as usize)
        };
        let count = |v: &Option<Spanned<u64>>, key: &str, default: u32, min: u64, max: u64| {
            self.bounded(v, key, u64::from(default), min, max)
                .map(|n| n as u32)
        };
        let limits = Limits {
            max_frame_bytes: size(
                &raw.max_frame_bytes,
                "max_frame_bytes",
                d.max_frame_bytes,
                65_536,
                1 << 20,
            )?,
            hello_timeout_ms: self.bounded(
                &raw.hello_timeout_ms,
                "hello_timeout_ms",
                d.hello_timeout_ms,
                100,
                120_000,
            )?,
            write_timeout_ms: self.bounded(
                &raw.write_timeout_ms,
                "write_timeout_ms",
                d.write_timeout_ms,
                100,
                120_000,
            )?,
            send_queue_frames: size(
                &raw.send_queue_frames,
                "send_queue_frames",
                d.send_queue_frames,
                16,
                1 << 20,
            )?,
            send_queue_bytes: size(
                &raw.send_queue_bytes,
                "send_queue_bytes",
                d.send_queue_bytes,
                128 << 10,
                256 << 20,
            )?,
            max_sockets: size(&raw.max_sockets, "max_sockets", d.max_sockets, 1, 1_000_000)?,
            max_pre_hello_per_ip: size(
                &raw.max_pre_hello_per_ip,
                "max_pre_hello_per_ip",
                d.max_pre_hello_per_ip,
                1,
                1_000_000,
            )?,
            max_sockets_per_agent: size(
                &raw.max_sockets_per_agent,
                "max_sockets_per_agent",
                d.max_sockets_per_agent,
                1,
                64,
            )?,
            policy_closes_per_minute: count(
                &raw.policy_closes_per_minute,
                "policy_closes_per_minute",
                d.policy_closes_per_minute,
                1,
                1_000_000,
            )?,
            pre_hello_errors: count(
                &raw.pre_hello_errors,
                "pre_hello_errors",
                d.pre_hello_errors,
                1,
                1_000,
            )?,
            messages_per_s: count(
                &raw.messages_per_s,
                "messages_per_s",
                d.messages_per_s,
                1,
                100_000,
            )?,
            message_burst: count(
                &raw.message_burst,
                "message_burst",
                d.message_burst,
                1,
                100_000,
            )?,
            media_per_s: count(&raw.media_per_s, "media_per_s", d.media_per_s, 50, 100_000)?,
            media_burst: count(&raw.media_burst, "media_burst", d.media_burst, 1, 100_000)?,
            rate_limit_strikes: count(
                &raw.rate_limit_strikes,
                "rate_limit_strikes",
                d.rate_limit_strikes,
                0,
                100_000,
            )?,
            backlog_events: size(
                &raw.backlog_events,
                "backlog_events",
                d.backlog_events,
                1,
                1 << 20,
            )?,
            backlog_bytes: size(
                &raw.backlog_bytes,
                "backlog_bytes",
                d.backlog_bytes,
                64 << 10,
                64 << 20,
            )?,
            bridge_frame_queue: size(
                &raw.bridge_frame_queue,
                "bridge_frame_queue",
                d.bridge_frame_queue,
                16,
                1 << 20,
            )?,
        };
        // A resume replays the backlog into a fresh send queue in one go: it must fit.
        if limits.backlog_events + 2 > limits.send_queue_frames
            || limits.backlog_bytes + (64 << 10) > limits.send_queue_bytes
        {
            let at = raw
                .backlog_events
                .as_ref()
                .or(raw.backlog_bytes.as_ref())
                .or(raw.send_queue_frames.as_ref())
                .or(raw.send_queue_bytes.as_ref())
                .map_or(0..0, |s| s.span());
            return self.err(
                &at,
                "limits: the send queue must hold the whole backlog (send_queue_frames >= backlog_events + 2, send_queue_bytes >= backlog_bytes + 65536)",
            );
        }
        Ok(limits)
    }
}

fn is_system_name(name: &str) -> bool {
    [
        "Busy",
        "AfterCallWork",
        "CallingCustomer",
        "MissedCallAgent",
        "PendingBusy",
        "Error",
    ]
    .contains(&name)
}

/// `scheme://host[:port]` with no path, query or spaces: what a browser
/// puts in `Origin` and what CSP `frame-ancestors` expects.
fn valid_origin(o: &str) -> bool {
    let rest = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"));
    match rest {
        Some(host) => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        }
        None => false,
    }
}

// ---- SIP trunk gateway (`[sip]`, `[[sip.trunks]]`) -------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSip {
    listen_udp: Option<Spanned<String>>,
    rtp_ports: Option<Spanned<Vec<u16>>>,
    max_calls: Option<Spanned<usize>>,
    rtp_timeout_s: Option<Spanned<u64>>,
    session_min_se_s: Option<Spanned<u32>>,
    #[serde(default)]
    trunks: Vec<RawTrunk>,
    listen_tcp: Option<Spanned<String>>,
    tcp_max_connections: Option<Spanned<usize>>,
    tcp_idle_timeout_s: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrunk {
    name: Spanned<String>,
    address: Option<Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    dids: BTreeMap<String, Spanned<String>>,
    codecs: Option<Spanned<Vec<String>>>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    realm: Option<Spanned<String>>,
    #[serde(default)]
    register: bool,
    register_expires_s: Option<Spanned<u32>>,
    options_interval_s: Option<Spanned<u32>>,
    transport: Option<Spanned<String>>,
}

/// A codec a trunk may use, in the trunk's preference order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipCodec {
    /// G.711 μ-law (payload type 0).
    Pcmu,
    /// G.711 A-law (payload type 8).
    Pcma,
    /// Opus (RFC 7587, `opus/48000/2`, dynamic payload type; forwarded to
    /// and from the agents' engines without transcoding).
    Opus,
    /// RFC 4733 telephone events.
    TelephoneEvent,
}

/// Digest credentials for a trunk (registration and outbound calls are a
/// later slice; the keys are validated now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipCredentials {
    /// Auth user name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Realm, when the provider's is known in advance.
    pub realm: Option<String>,
}

/// One trunk.
#[derive(Debug, Clone)]
pub struct SipTrunk {
    /// Name (logs, contact events).
    pub name: String,
    /// The trunk's (or registrar's) address, `host:port`.
    pub address: Option<String>,
    /// Source addresses allowed to send us calls (toll-fraud protection).
    pub allow: Vec<std::net::IpAddr>,
    /// Inbound numbers (E.164) to queue ids.
    pub dids: HashMap<String, String>,
    /// Codecs in preference order.
    pub codecs: Vec<SipCodec>,
    /// Digest credentials.
    pub credentials: Option<SipCredentials>,
    /// Register with `address`.
    pub register: bool,
    /// Requested registration expiry in seconds.
    pub register_expires_s: u32,
    /// OPTIONS keepalive towards `address` every this many seconds; 0 off.
    pub options_interval_s: u32,
    /// How we send requests to `address` (`transport = "udp"|"tcp"`).
    pub transport: SipTransport,
}

/// The SIP gateway's configuration.
#[derive(Debug, Clone, Default)]
pub struct SipConfig {
    /// UDP listen address for SIP (required with trunks; port 0 picks one).
    pub listen_udp: Option<SocketAddr>,
    /// RTP ports, inclusive.
    pub rtp_ports: (u16, u16),
    /// Trunks, in file order.
    pub trunks: Vec<SipTrunk>,
    /// Most SIP calls (dialogs) at once; more INVITEs get 503.
    pub max_calls: usize,
    /// A confirmed call with no RTP from the far end for this long (while
    /// it is not holding us with `inactive`) is ended; 0 never.
    pub rtp_timeout_s: u64,
    /// Our Min-SE (RFC 4028): a shorter Session-Expires gets 422.
    pub session_min_se_s: u32,
    /// SIP over TCP (`listen_tcp` and its limits, `sip/tcp.rs`).
    pub tcp: SipTcp,
}

/// The transport a trunk's requests go over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SipTransport {
    /// Datagrams on the `listen_udp` socket (the default).
    #[default]
    Udp,
    /// A TCP connection to the trunk's address, opened when first needed
    /// and reused (needs `listen_tcp`).
    Tcp,
}

/// SIP over TCP: where we accept connections and the limits that bound
/// what peers can make us hold.
#[derive(Debug, Clone, Default)]
pub struct SipTcp {
    /// TCP listen address (off when unset; port 0 picks a free one).
    pub listen: Option<SocketAddr>,
    /// Most TCP connections at once, accepted and opened together.
    pub max_connections: usize,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout_s: u64,
}

impl SipConfig {
    /// Whether the gateway runs.
    pub fn enabled(&self) -> bool {
        !self.trunks.is_empty()
    }
}

impl Validator<'_> {
    /// A queue's outbound caller ID: an E.164 number and a display name of
    /// at most 64 printable characters without quotes (it goes into a SIP
    /// From header).
    fn caller_id(
        &self,
        queue: &str,
        number: &Option<Spanned<String>>,
        name: &Option<Spanned<String>>,
    ) -> Result<(Option<String>, Option<String>), ConfigError> {
        if let Some(n) = number {
            if !is_e164(n.get_ref()) {
                return self.err(
                    &n.span(),
                    format!("queue `{queue}`: outbound_caller_id_number is not an E.164 number"),
                );
            }
        }
        if let Some(n) = name {
            let v = n.get_ref();
            if v.is_empty()
                || v.chars().count() > 64
                || v.chars().any(|c| c.is_control() || c == '"' || c == '\\')
            {
                return self.err(
                    &n.span(),
                    format!("queue `{queue}`: outbound_caller_id_name must be 1-64 printable characters without quotes"),
                );
            }
        }
        Ok((
            number.as_ref().map(|n| n.get_ref().clone()),
            name.as_ref().map(|n| n.get_ref().clone()),
        ))
    }

    fn sip(&self, raw: &RawSip, queues: &HashMap<String, Queue>) -> Result<SipConfig, ConfigError> {
        let listen_udp = raw
            .listen_udp
            .as_ref()
            .map(|s| self.addr(s, "sip.listen_udp"))
            .transpose()?;
        let tcp = self.sip_tcp(raw)?;
        let rtp_ports = match &raw.rtp_ports {
            None => (20_000, 20_999),
            Some(p) => match p.get_ref().as_slice() {
                [a, b] if *a >= 1024 && a < b => (*a, *b),
                _ => {
                    return self.err(
                        &p.span(),
                        "sip.rtp_ports must be [first, last] with 1024 <= first < last",
                    )
                }
            },
        };
        let mut trunks = Vec::new();
        let mut seen_dids = std::collections::HashSet::new();
        for t in &raw.trunks {
            let at = t.name.span();
            let name = t.name.get_ref().clone();
            if name.is_empty() {
                return self.err(&at, "a sip trunk needs a name");
            }
            if listen_udp.is_none() {
                return self.err(&at, format!("sip trunk `{name}` needs sip.listen_udp"));
            }
            if let Some(a) = &t.address {
                let ok = a
                    .get_ref()
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !ok {
                    return self.err(
                        &a.span(),
                        format!(
                            "sip trunk `{name}`: address `{}` is not host:port",
                            a.get_ref()
                        ),
                    );
                }
            }
            let mut allow = Vec::new();
            for a in &t.allow {
                match a.get_ref().parse::<std::net::IpAddr>() {
                    Ok(ip) => allow.push(ip),
                    Err(_) => {
                        return self.err(
                            &a.span(),
                            format!(
                                "sip trunk `{name}`: allow `{}` is not an IP address",
                                a.get_ref()
                            ),
                        )
                    }
                }
            }
            if allow.is_empty() {
                return self.err(
                    &at,
                    format!("sip trunk `{name}`: allow must list the addresses it calls from"),
                );
            }
            let mut dids = HashMap::new();
            for (did, queue) in &t.dids {
                if !is_e164(did) {
                    return self.err(
                        &queue.span(),
                        format!("sip trunk `{name}`: DID `{did}` is not an E.164 number"),
                    );
                }
                if !queues.contains_key(queue.get_ref()) {
                    return self.err(
                        &queue.span(),
                        format!(
                            "sip trunk `{name}`: DID `{did}` maps to unknown queue `{}`",
                            queue.get_ref()
                        ),
                    );
                }
                if !seen_dids.insert(did.clone()) {
                    return self.err(&queue.span(), format!("DID `{did}` is on two trunks"));
                }
                dids.insert(did.clone(), queue.get_ref().clone());
            }
            let codecs = match &t.codecs {
                None => vec![SipCodec::Pcmu, SipCodec::Pcma, SipCodec::TelephoneEvent],
                Some(list) => {
                    let mut out = Vec::new();
                    for c in list.get_ref() {
                        let codec = match c.to_ascii_lowercase().as_str() {
                            "pcmu" => SipCodec::Pcmu,
                            "pcma" => SipCodec::Pcma,
                            "opus" => SipCodec::Opus,
                            "telephone-event" => SipCodec::TelephoneEvent,
                            _ => {
                                return self.err(
                                    &list.span(),
                                    format!("sip trunk `{name}`: codec `{c}` is not PCMU, PCMA, Opus or telephone-event"),
                                )
                            }
                        };
                        if out.contains(&codec) {
                            return self.err(
                                &list.span(),
                                format!("sip trunk `{name}`: codec `{c}` twice"),
                            );
                        }
                        out.push(codec);
                    }
                    if !out
                        .iter()
                        .any(|c| matches!(c, SipCodec::Pcmu | SipCodec::Pcma))
                    {
                        return self.err(
                            &list.span(),
                            format!("sip trunk `{name}`: codecs must include PCMU or PCMA"),
                        );
                    }
                    out
                }
            };
            let credentials = match (&t.username, &t.password) {
                (None, None) => None,
                (Some(u), Some(p)) if !u.get_ref().is_empty() && !p.get_ref().is_empty() => {
                    Some(SipCredentials {
                        username: u.get_ref().clone(),
                        password: p.get_ref().clone(),
                        realm: t.realm.as_ref().map(|r| r.get_ref().clone()),
                    })
                }
                _ => {
                    return self.err(
                        &at,
                        format!(
                        "sip trunk `{name}`: username and password go together and are not empty"
                    ),
                    )
                }
            };
            if t.register && (credentials.is_none() || t.address.is_none()) {
                return self.err(
                    &at,
                    format!(
                        "sip trunk `{name}`: register = true needs address, username and password"
                    ),
                );
            }
            let register_expires_s = match &t.register_expires_s {
                None => 600,
                Some(e) if (10..=86_400).contains(e.get_ref()) => *e.get_ref(),
                Some(e) => {
                    return self.err(
                        &e.span(),
                        format!(
                            "sip trunk `{name}`: register_expires_s must be between 10 and 86400"
                        ),
                    )
                }
            };
            let options_interval_s = match &t.options_interval_s {
                None => 0,
                Some(i) if *i.get_ref() <= 3600 && (*i.get_ref() == 0 || t.address.is_some()) => {
                    *i.get_ref()
                }
                Some(i) => {
                    return self.err(
                        &i.span(),
                        format!(
                            "sip trunk `{name}`: options_interval_s must be between 0 (off) and \
                             3600, and needs an address to probe"
                        ),
                    )
                }
            };
            let transport = self.sip_transport(t, &name, &tcp)?;
            trunks.push(SipTrunk {
                name,
                address: t.address.as_ref().map(|a| a.get_ref().clone()),
                allow,
                dids,
                codecs,
                credentials,
                register: t.register,
                register_expires_s,
                options_interval_s,
                transport,
            });
        }
        let max_calls = match &raw.max_calls {
            None => 1024,
            Some(m) if (1..=100_000).contains(m.get_ref()) => *m.get_ref(),
            Some(m) => return self.err(&m.span(), "sip.max_calls must be between 1 and 100000"),
        };
        let rtp_timeout_s = match &raw.rtp_timeout_s {
            None => 30,
            Some(t) if *t.get_ref() <= 3600 => *t.get_ref(),
            Some(t) => {
                return self.err(
                    &t.span(),
                    "sip.rtp_timeout_s must be between 0 (never) and 3600",
                )
            }
        };
        let session_min_se_s =
            match &raw.session_min_se_s {
                None => 90,
                Some(m) if (2..=86_400).contains(m.get_ref()) => *m.get_ref(),
                Some(m) => return self.err(
                    &m.span(),
                    "sip.session_min_se_s must be between 2 and 86400 (RFC 4028 wants 90 at least)",
                ),
            };
        Ok(SipConfig {
            listen_udp,
            rtp_ports,
            trunks,
            max_calls,
            rtp_timeout_s,
            session_min_se_s,
            tcp,
        })
    }

    /// `[sip]`'s TCP keys: `listen_tcp`, `tcp_max_connections` (1-100000,
    /// default 256), `tcp_idle_timeout_s` (1-86400, default 900).
    fn sip_tcp(&self, raw: &RawSip) -> Result<SipTcp, ConfigError> {
        let listen = raw
            .listen_tcp
            .as_ref()
            .map(|s| self.addr(s, "sip.listen_tcp"))
            .transpose()?;
        let max_connections = match &raw.tcp_max_connections {
            None => 256,
            Some(m) if (1..=100_000).contains(m.get_ref()) => *m.get_ref(),
            Some(m) => {
                return self.err(
                    &m.span(),
                    "sip.tcp_max_connections must be between 1 and 100000",
                )
            }
        };
        let idle_timeout_s = match &raw.tcp_idle_timeout_s {
            None => 900,
            Some(t) if (1..=86_400).contains(t.get_ref()) => *t.get_ref(),
            Some(t) => {
                return self.err(
                    &t.span(),
                    "sip.tcp_idle_timeout_s must be between 1 and 86400",
                )
            }
        };
        Ok(SipTcp {
            listen,
            max_connections,
            idle_timeout_s,
        })
    }

    /// A trunk's `transport`: `udp` (the default) or `tcp`, which needs
    /// `sip.listen_tcp` (the far end opens connections to our Contact).
    fn sip_transport(
        &self,
        t: &RawTrunk,
        name: &str,
        tcp: &SipTcp,
    ) -> Result<SipTransport, ConfigError> {
        let Some(v) = &t.transport else {
            return Ok(SipTransport::Udp);
        };
        match v.get_ref().to_ascii_lowercase().as_str() {
            "udp" => Ok(SipTransport::Udp),
            "tcp" if tcp.listen.is_some() => Ok(SipTransport::Tcp),
            "tcp" => self.err(
                &v.span(),
                format!("sip trunk `{name}`: transport = \"tcp\" needs sip.listen_tcp"),
            ),
            other => self.err(
                &v.span(),
                format!("sip trunk `{name}`: transport `{other}` is not \"udp\" or \"tcp\" (TLS is not supported)"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_valid_and_has_the_order_customer() {
        let cfg = Config::sample().expect("sample parses");
        let justin = &cfg.customers["+819012345678"];
        assert_eq!(justin["customerName"], "Justin");
        assert_eq!(
            justin["item"],
            "The North Face Summit L3 Ventrix 2.0 Hoodie"
        );
        assert_eq!(justin["orderId"], "100");
        assert_eq!(justin["shippingDate"], "2018-11-12");
        assert_eq!(justin["cancelled"], "false");
        assert!(cfg.agent_state("Available").is_some());
        assert_eq!(
            cfg.approved_origins,
            vec!["http://127.0.0.1:8481", "http://localhost:8481"]
        );
    }

    fn broken(from: &str, to: &str) -> ConfigError {
        assert!(sample_without_flows().contains(from), "sample lacks {from}");
        let text = sample_without_flows().replacen(from, to, 1);
        Config::parse(&text, "test.toml").expect_err("must fail")
    }

    fn line_containing(needle: &str) -> usize {
        sample_without_flows()
            .lines()
            .position(|l| l.contains(needle))
            .expect("present")
            + 1
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let err = broken("max_contacts = 20", "max_contacts = = 20");
        assert_eq!(err.file, "test.toml");
        assert_eq!(err.line, Some(line_containing("max_contacts = 20")));
        assert!(err.to_string().starts_with("test.toml:"), "{err}");
    }

    #[test]
    fn unknown_queue_in_profile_names_its_line() {
        let err = broken(
            "{ queue = \"orders\", priority = 1",
            "{ queue = \"ordres\", priority = 1",
        );
        assert_eq!(
            err.line,
            Some(line_containing("{ queue = \"orders\", priority = 1"))
        );
        assert!(
            err.message.contains("unknown queue `ordres`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn type_errors_and_unknown_keys_are_reported() {
        let err = broken("max_contacts = 50", "max_contacts = \"fifty\"");
        assert_eq!(err.line, Some(line_containing("max_contacts = 50")));
        let err = broken("ring_timeout_s = 20", "ring_timeout = 20");
        assert!(err.message.contains("ring_timeout"), "{}", err.message);
    }

    #[test]
    fn the_simulator_needs_a_key_and_queues_a_sane_max_wait() {
        let cfg = Config::sample().expect("sample");
        assert!(cfg.simulator);
        assert!(cfg.simulator_key.len() >= MIN_SIMULATOR_KEY);
        assert_eq!(cfg.simulator_calls_per_minute, 60);
        assert_eq!(cfg.queues["orders"].max_wait_ms, 300_000);
        assert_eq!(cfg.queues["support"].max_wait_ms, 600_000, "the default");
        let key_line = sample_without_flows()
            .lines()
            .find(|l| l.starts_with("simulator_key"))
            .expect("sample has a key");
        let err = broken(key_line, "");
        assert!(err.message.contains("simulator_key"), "{}", err.message);
        let err = broken(key_line, "simulator_key = \"short\"");
        assert_eq!(err.line, Some(line_containing("simulator_key")));
        assert!(err.message.contains("at least 16"), "{}", err.message);
        // Off, it needs no key.
        let off = sample_without_flows().replacen(key_line, "", 1).replacen(
            "simulator = true",
            "simulator = false",
            1,
        );
        let cfg = Config::parse(&off, "off.toml").expect("off needs no key");
        assert!(!cfg.simulator && cfg.simulator_key.is_empty());
        let err = broken("max_wait_s = 300", "max_wait_s = 0");
        assert_eq!(err.line, Some(line_containing("max_wait_s = 300")));
        assert!(err.message.contains("max_wait_s"), "{}", err.message);
        let err = broken(
            "simulator_calls_per_minute = 60",
            "simulator_calls_per_minute = 0",
        );
        assert!(
            err.message.contains("simulator_calls_per_minute"),
            "{}",
            err.message
        );
    }

    #[test]
    fn passwords_are_hashes_unless_the_development_flag_is_on() {
        let cfg = Config::sample().expect("sample");
        assert!(!cfg.dev_plaintext_passwords);
        assert!(matches!(
            cfg.agents["alice"].password,
            crate::auth::Credential::Hash(_)
        ));
        assert!(cfg.agents["alice"].password.verify("alice-pass"));
        let hashed = sample_without_flows()
            .lines()
            .find(|l| l.starts_with("password = \"$argon2id$"))
            .expect("a hashed password");
        let err = broken(hashed, "password = \"alice-pass\"");
        assert_eq!(err.line, Some(line_containing(hashed)));
        assert!(err.message.contains("agent `alice`"), "{}", err.message);
        assert!(
            err.message.contains("dev_plaintext_passwords = true"),
            "{}",
            err.message
        );
        let dev = sample_without_flows()
            .replacen(hashed, "password = \"alice-pass\"", 1)
            .replacen(
                "dev_plaintext_passwords = false",
                "dev_plaintext_passwords = true",
                1,
            );
        let cfg = Config::parse(&dev, "dev.toml").expect("allowed in development");
        assert!(cfg.agents["alice"].password.verify("alice-pass"));
        let err = broken(
            hashed,
            "password = \"$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"",
        );
        assert!(err.message.contains("argon2id"), "{}", err.message);
    }

    #[test]
    fn login_settings_are_checked() {
        let cfg = Config::sample().expect("sample");
        assert_eq!(cfg.token_warning_s, 300);
        assert_eq!(cfg.login, crate::auth::LoginPolicy::default());
        for (from, to, needle) in [
            (
                "token_warning_s = 300",
                "token_warning_s = 43200",
                "less than token_ttl_s",
            ),
            (
                "login_backoff_base_ms = 1000",
                "login_backoff_base_ms = 0",
                "login_backoff_base_ms",
            ),
            (
                "login_backoff_max_s = 900",
                "login_backoff_max_s = 0",
                "login_backoff_max_s",
            ),
            (
                "login_free_failures_per_user = 5",
                "login_free_failures_per_user = 0",
                "login_free_failures_per_user",
            ),
            (
                "login_failure_window_s = 900",
                "login_failure_window_s = 0",
                "login_failure_window_s",
            ),
        ] {
            let err = broken(from, to);
            assert_eq!(err.line, Some(line_containing(from)), "{to}: {err}");
            assert!(err.message.contains(needle), "{to}: {}", err.message);
        }
        // Left out, the warning is at most half the token's lifetime.
        let short = sample_without_flows()
            .replacen("token_warning_s = 300\n", "", 1)
            .replacen("token_ttl_s = 43200", "token_ttl_s = 60", 1);
        assert_eq!(
            Config::parse(&short, "t").expect("valid").token_warning_s,
            30
        );
    }

    #[test]
    fn country_code_is_a_calling_code() {
        assert_eq!(Config::sample().expect("sample").country_code, Some(81));
        let err = broken("country_code = 81", "country_code = 1000");
        assert_eq!(err.line, Some(line_containing("country_code = 81")));
        assert!(
            err.message.contains("country calling code"),
            "{}",
            err.message
        );
        assert!(broken("country_code = 81", "country_code = 0")
            .message
            .contains("1 to 999"));
        let none = sample_without_flows().replacen("country_code = 81", "", 1);
        assert_eq!(Config::parse(&none, "t").expect("valid").country_code, None);
    }

    #[test]
    fn bad_references_and_values_fail() {
        assert!(broken(
            "routing_profile = \"billing-team\"",
            "routing_profile = \"nope\""
        )
        .message
        .contains("nope"));
        assert!(broken("agent = \"bob\"", "agent = \"zed\"")
            .message
            .contains("zed"));
        assert!(broken(
            "phone_number = \"+81355550100\"",
            "phone_number = \"0355550100\""
        )
        .message
        .contains("E.164"));
        assert!(
            broken("time_zone = \"Asia/Tokyo\"", "time_zone = \"Mars/Base\"")
                .message
                .contains("Mars/Base")
        );
        assert!(broken("mon = \"09:00-18:00\"", "mon = \"18:00-09:00\"")
            .message
            .contains("18:00-09:00"));
        assert!(broken(
            "\"http://localhost:8481\"]",
            "\"http://localhost:8481/crm\"]"
        )
        .message
        .contains("no path"));
        assert!(broken("kind = \"not_routable\"", "kind = \"system\"")
            .message
            .contains("kind"));
        assert!(
            broken("listen = \"127.0.0.1:8480\"", "listen = \"localhost\"")
                .message
                .contains("address")
        );
    }

    #[test]
    fn limits_default_and_bad_values_name_their_line() {
        let cfg = Config::sample().expect("sample parses");
        assert_eq!(
            cfg.limits,
            Limits::default(),
            "the sample spells out the defaults"
        );
        let err = broken("hello_timeout_ms = 10000", "hello_timeout_ms = 0");
        assert_eq!(err.line, Some(line_containing("hello_timeout_ms = 10000")));
        assert!(
            err.message.contains("limits.hello_timeout_ms"),
            "{}",
            err.message
        );
        let err = broken("max_frame_bytes = 69632", "max_frame_bytes = 1000");
        assert!(err.message.contains("max_frame_bytes"), "{}", err.message);
        let err = broken("backlog_events = 512", "backlog_events = 4000");
        assert!(err.message.contains("whole backlog"), "{}", err.message);
        let err = broken("media_burst = 200", "media_burts = 200");
        assert!(err.message.contains("media_burts"), "{}", err.message);
        let err = broken(
            "orderId = \"100\"",
            &format!("orderId = \"{}\"", "9".repeat(5000)),
        );
        assert!(err.message.contains("orderId"), "{}", err.message);
    }
}
