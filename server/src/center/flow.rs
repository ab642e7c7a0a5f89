//! The flow domain of the center: calls to an entry point run a flow
//! before they queue, and flows run beside calls (the customer queue flow
//! while waiting, the agent whisper before the agent is connected).
//!
//! The center stays driven and clock-free: a call's [`FlowRun`] holds the
//! sans-IO [`Runner`]; what the runner asks for that takes time off the
//! lock (rendering a prompt, invoking a function) goes out as a
//! [`FlowJob`] on a bounded channel to a worker ([`crate::flow::worker`])
//! that answers through [`Center::flow_done`]. Prompt ends and the
//! runner's own timeouts are deadlines on the center's tick, so a
//! virtual-clock test steps flows like everything else.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use protocol::contact::{ConnectionState, Initiation};
use protocol::endpoint::{is_e164, Endpoint};
use protocol::Millis;

use super::queue::{InboundRefused, QueueError};
use super::{Call, Center, Party, Wait};
use crate::flow::run::{Action, Context, Env, Input, Runner, Say};
use crate::flow::{FlowType, Language, Metric};

/// Jobs that may wait for the flow worker; beyond, a prompt is skipped and
/// a function fails at once (logged), rather than queueing without bound.
pub const FLOW_JOBS: usize = 256;

/// Why a flow runs beside the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowRole {
    /// The entry point's flow (and flows it transfers to).
    Entry,
    /// The customer queue flow, while the call waits.
    Queue,
    /// The agent whisper flow, before `agent` is connected to the caller.
    Whisper {
        /// The agent hearing it.
        agent: String,
    },
    /// The customer whisper flow, before the caller is connected to
    /// `agent` (and before the agent whisper).
    CustomerWhisper {
        /// The agent who accepted.
        agent: String,
    },
}

/// A prompt being rendered or played.
#[derive(Debug, Clone, PartialEq)]
pub struct Playing {
    /// The runner's number for it.
    pub seq: u64,
    /// The WAV, once rendered.
    pub path: Option<PathBuf>,
    /// When it ends, once playing.
    pub ends_at: Option<Millis>,
}

/// A flow running beside a call.
pub struct FlowRun {
    /// The machine.
    pub runner: Runner,
    /// Why it runs.
    pub role: FlowRole,
    /// Its prompt, if one is due.
    pub playing: Option<Playing>,
}

impl std::fmt::Debug for FlowRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRun")
            .field("flow", &self.runner.flow())
            .field("role", &self.role)
            .field("playing", &self.playing)
            .finish()
    }
}

impl Clone for FlowRun {
    fn clone(&self) -> Self {
        // Calls are cloned only for views and tests; a flow does not
        // travel with a clone.
        FlowRun {
            runner: Runner::new(
                Arc::new(crate::flow::Flows::default()),
                "",
                self.runner.ctx().clone(),
            ),
            role: self.role.clone(),
            playing: None,
        }
    }
}

impl FlowRun {
    /// When the center's tick has something to do for it.
    pub fn deadlines(&self) -> impl Iterator<Item = Millis> + '_ {
        self.runner
            .deadline()
            .into_iter()
            .chain(self.playing.as_ref().and_then(|p| p.ends_at))
    }

    /// The prompt playing now, if any.
    pub fn playing_path(&self) -> Option<(u64, &PathBuf)> {
        let p = self.playing.as_ref()?;
        p.ends_at?;
        Some((p.seq, p.path.as_ref()?))
    }
}

/// Work for the flow worker.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowJob {
    /// Render (or find) a prompt's WAV and measure it.
    Prompt {
        /// Contact id.
        contact: String,
        /// The runner's prompt number.
        seq: u64,
        /// What.
        say: Say,
        /// Voice.
        language: Language,
    },
    /// POST to a function.
    Invoke {
        /// Contact id.
        contact: String,
        /// The runner's call number.
        seq: u64,
        /// Where.
        url: String,
        /// Longest wait.
        timeout_ms: u64,
        /// JSON body.
        body: String,
    },
}

/// A finished job.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowDone {
    /// A prompt's WAV and length (ms), or why there is none.
    Prompt {
        /// Contact id.
        contact: String,
        /// The runner's prompt number.
        seq: u64,
        /// The file and its length.
        result: Result<(PathBuf, u64), String>,
    },
    /// A function's attributes, or why it failed.
    Invoke {
        /// Contact id.
        contact: String,
        /// The runner's call number.
        seq: u64,
        /// Attributes.
        result: Result<BTreeMap<String, String>, String>,
    },
}

/// Queue hours and metrics as the runner sees them.
struct CenterEnv<'a> {
    center: &'a Center,
}

impl Env for CenterEnv<'_> {
    fn queue_open(&self, queue: &str, now: Millis) -> bool {
        self.center
            .cfg
            .queues
            .get(queue)
            .is_some_and(|q| q.hours.as_ref().is_none_or(|h| h.is_open(now)))
    }

    fn queue_metric(&self, queue: &str, metric: Metric, now: Millis) -> f64 {
        let waiting = self
            .center
            .calls
            .values()
            .filter_map(|c| c.waiting.as_ref())
            .filter(|w| w.queue == queue);
        match metric {
            Metric::ContactsInQueue => waiting.count() as f64,
            Metric::OldestContactAgeS => waiting
                .map(|w| now.since(w.since) / 1000)
                .max()
                .unwrap_or(0) as f64,
            Metric::AgentsAvailable => {
                self.center
                    .idle
                    .available_for(&self.center.cfg.routing_profiles, queue) as f64
            }
        }
    }

    fn queue_name(&self, queue: &str) -> String {
        self.center
            .cfg
            .queues
            .get(queue)
            .map_or_else(|| queue.to_owned(), |q| q.name.clone())
    }
}

impl Center {
    /// Connects the flow worker: from now on prompts are rendered and
    /// functions invoked through `jobs`.
    pub fn set_flow_jobs(&mut self, jobs: tokio::sync::mpsc::Sender<FlowJob>) {
        self.flow_jobs = Some(jobs);
    }

    /// The flow a call to `number` enters (an entry point), if any. SIP
    /// DIDs use the same lookup.
    pub fn flow_for_number(&self, number: &str) -> Option<&str> {
        self.cfg.flows.for_number(number).map(|f| f.id.as_str())
    }

    /// A caller from `from` dials `to`, an entry point: the call runs its
    /// flow, which decides where it goes.
    pub fn place_flow_call(
        &mut self,
        from: &str,
        to: &str,
        caller_play: crate::bridge::CallerAudio,
        now: Millis,
    ) -> Result<String, InboundRefused> {
        let refuse = |error| InboundRefused {
            contact_id: String::new(),
            error,
        };
        if !is_e164(from) {
            return Err(refuse(QueueError::BadNumber { from: from.into() }));
        }
        let Some(flow) = self.flow_for_number(to).map(str::to_owned) else {
            return Err(refuse(QueueError::NoEntryPoint { number: to.into() }));
        };
        if self.stopping {
            return Err(refuse(QueueError::ShuttingDown));
        }
        let id = self.new_id("c");
        let attributes = self.cfg.customers.get(from).cloned().unwrap_or_default();
        self.store
            .create_contact(&id, "inbound", None, from, &attributes, now)
            .and_then(|()| match self.recording_path(&id) {
                Some(path) => self.store.set_recording(&id, &path.display().to_string()),
                None => Ok(()),
            })
            .map_err(|e| refuse(e.into()))?;
        let _ = self
            .store
            .contact_event(&id, now, None, "flow_started", Some(&flow));
        let mut ctx = Context::new(&id, from, to);
        ctx.attributes = attributes.clone();
        let runner = Runner::new(self.cfg.flows.clone(), &flow, ctx);
        let customer_conn = self.new_id("k");
        self.calls.insert(
            id.clone(),
            Call {
                id: id.clone(),
                initiation: Initiation::Inbound,
                queue: None,
                created_at: now,
                attributes,
                customer: Party {
                    connection_id: customer_conn,
                    endpoint: Endpoint::phone_number(from),
                    state: ConnectionState::Connecting { since: now },
                    answer_at: None,
                },
                participants: Vec::new(),
                externals: Vec::new(),
                waiting: None,
                rejected: Vec::new(),
                ended: false,
                digits_heard: String::new(),
                caller_play,
                flow: Some(Box::new(FlowRun {
                    runner,
                    role: FlowRole::Entry,
                    playing: None,
                })),
                flow_ctx: None,
                callback: false,
                via_flow: true,
            },
        );
        self.drive_flow(&id, None, now);
        Ok(id)
    }

    /// A job finished: its result goes to the runner that asked.
    pub fn flow_done(&mut self, done: FlowDone, now: Millis) {
        match done {
            FlowDone::Prompt {
                contact,
                seq,
                result,
            } => {
                let Some(run) = self
                    .calls
                    .get_mut(&contact)
                    .filter(|c| !c.ended)
                    .and_then(|c| c.flow.as_mut())
                else {
                    return;
                };
                let Some(p) = run.playing.as_mut().filter(|p| p.seq == seq) else {
                    return;
                };
                match result {
                    Ok((path, ms)) => {
                        p.path = Some(path);
                        p.ends_at = Some(now.plus_ms(ms));
                        self.plan_media(&contact);
                    }
                    Err(why) => {
                        // A prompt that cannot be rendered is skipped (the
                        // caller hears silence), never a stuck flow.
                        tracing::warn!(%contact, "prompt: {why}");
                        run.playing = None;
                        self.drive_flow(&contact, Some(Input::PromptDone(seq)), now);
                    }
                }
            }
            FlowDone::Invoke {
                contact,
                seq,
                result,
            } => self.drive_flow(&contact, Some(Input::FunctionDone(seq, result)), now),
        }
    }

    /// The caller's keys, if a flow listens: true when one did.
    pub(super) fn flow_digits(&mut self, contact_id: &str, digits: &str, now: Millis) -> bool {
        let listening = self
            .calls
            .get(contact_id)
            .and_then(|c| c.flow.as_ref())
            .is_some_and(|f| f.role != FlowRole::Queue || !f.runner.finished());
        if listening {
            self.drive_flow(contact_id, Some(Input::Digits(digits.to_owned())), now);
        }
        listening
    }

    /// Prompts that ended and runner timeouts, on the tick.
    pub(super) fn flow_ticks(&mut self, now: Millis) {
        let due: Vec<String> = self
            .calls
            .values()
            .filter(|c| {
                !c.ended
                    && c.flow
                        .as_ref()
                        .is_some_and(|f| f.deadlines().any(|t| t <= now))
            })
            .map(|c| c.id.clone())
            .collect();
        for id in due {
            let ended = self
                .calls
                .get_mut(&id)
                .and_then(|c| c.flow.as_mut())
                .and_then(|f| {
                    let p = f.playing.as_ref()?;
                    if p.ends_at.is_some_and(|t| t <= now) {
                        let seq = p.seq;
                        f.playing = None;
                        Some(seq)
                    } else {
                        None
                    }
                });
            if let Some(seq) = ended {
                self.plan_media(&id);
                self.drive_flow(&id, Some(Input::PromptDone(seq)), now);
            }
            self.drive_flow(&id, None, now);
        }
    }

    /// Feeds the call's runner (or only fires its due timers, with no
    /// input) and performs what it asks.
    ///
    /// What the center answers at once (a job it cannot send, a queue
    /// that refuses) is fed back in this loop, not by recursion, so a flow
    /// failing over and over costs iterations (bounded by the runner's step
    /// limit), never stack.
    pub(super) fn drive_flow(&mut self, call_id: &str, input: Option<Input>, now: Millis) {
        let mut pending: std::collections::VecDeque<Option<Input>> =
            std::collections::VecDeque::from([input]);
        while let Some(input) = pending.pop_front() {
            for answer in self.drive_once(call_id, input, now) {
                pending.push_back(Some(answer));
            }
        }
    }

    /// One feeding of the runner; the inputs the center answers at once.
    fn drive_once(&mut self, call_id: &str, input: Option<Input>, now: Millis) -> Vec<Input> {
        let Some(mut run) = self
            .calls
            .get_mut(call_id)
            .filter(|c| !c.ended)
            .and_then(|c| c.flow.take())
        else {
            return Vec::new();
        };
        let actions = {
            let env = CenterEnv { center: self };
            match input {
                None if run.runner.deadline().is_some_and(|t| t <= now) => {
                    run.runner.tick(now, &env)
                }
                None => {
                    // First drive of a new runner: start it.
                    if run.playing.is_none() && !run.runner.finished() && self.is_fresh(&run) {
                        run.runner.start(now, &env)
                    } else {
                        Vec::new()
                    }
                }
                Some(i) => run.runner.input(i, now, &env),
            }
        };
        self.save_flow_log(call_id, &mut run, now);
        if let Some(call) = self.calls.get_mut(call_id) {
            // Attributes a flow set are the contact's from now on.
            let attrs = run.runner.ctx().attributes.clone();
            if call.attributes != attrs {
                call.attributes = attrs;
                let _ = self.store.update_attributes(call_id, &call.attributes);
            }
            call.flow = Some(run);
        }
        actions
            .into_iter()
            .filter_map(|action| self.flow_action(call_id, action, now))
            .collect()
    }

    /// Whether a runner has not run a block yet.
    fn is_fresh(&self, run: &FlowRun) -> bool {
        run.runner.steps() == 0
    }

    /// Writes the runner's new log entries to the contact's record.
    fn save_flow_log(&mut self, call_id: &str, run: &mut FlowRun, now: Millis) {
        for entry in run.runner.take_log() {
            if let Ok(json) = serde_json::to_string(&entry) {
                let _ = self.store.contact_event(
                    call_id,
                    now,
                    None,
                    crate::store::FLOW_BLOCK_EVENT,
                    Some(&json),
                );
            }
        }
    }

    fn send_job(&mut self, job: FlowJob) -> Result<(), FlowJob> {
        match &self.flow_jobs {
            Some(tx) => tx.try_send(job).map_err(|e| match e {
                tokio::sync::mpsc::error::TrySendError::Full(j)
                | tokio::sync::mpsc::error::TrySendError::Closed(j) => j,
            }),
            None => Err(job),
        }
    }

    /// Performs an action; an input for the runner when the answer is
    /// immediate (a job that cannot be sent, a queue that refuses).
    fn flow_action(&mut self, call_id: &str, action: Action, now: Millis) -> Option<Input> {
        match action {
            Action::Play { seq, say, language } => {
                if let Some(run) = self.calls.get_mut(call_id).and_then(|c| c.flow.as_mut()) {
                    run.playing = Some(Playing {
                        seq,
                        path: None,
                        ends_at: None,
                    });
                }
                let job = FlowJob::Prompt {
                    contact: call_id.to_owned(),
                    seq,
                    say,
                    language,
                };
                if self.send_job(job).is_err() {
                    // Skipped (the caller hears silence), never waited for.
                    tracing::warn!(contact = %call_id, "prompt: no prompt worker (or it is busy)");
                    if let Some(run) = self.calls.get_mut(call_id).and_then(|c| c.flow.as_mut()) {
                        run.playing = None;
                    }
                    return Some(Input::PromptDone(seq));
                }
                None
            }
            Action::StopPrompt => {
                if let Some(run) = self.calls.get_mut(call_id).and_then(|c| c.flow.as_mut()) {
                    run.playing = None;
                }
                self.plan_media(call_id);
                None
            }
            Action::Invoke {
                seq,
                function,
                body,
            } => {
                let f = self.cfg.flows.functions.get(&function).cloned();
                let job = f.map(|f| FlowJob::Invoke {
                    contact: call_id.to_owned(),
                    seq,
                    url: f.url,
                    timeout_ms: f.timeout_ms,
                    body: body.to_string(),
                });
                let failed = match job {
                    Some(job) => self.send_job(job).is_err(),
                    None => true,
                };
                failed.then(|| {
                    Input::FunctionDone(
                        seq,
                        Err("the function could not be invoked (no worker, or busy)".into()),
                    )
                })
            }
            Action::Queue { queue } => self.flow_queue(call_id, &queue, now),
            Action::Callback { queue, number } => {
                self.queue_callback(call_id, &queue, &number, now);
                None
            }
            Action::TransferToPhone { number } => {
                self.flow_transfer_to_phone(call_id, &number, now)
            }
            Action::Disconnect { reason } => {
                self.end_call(call_id, &reason, now);
                None
            }
            Action::End => {
                self.flow_ended(call_id, now);
                None
            }
        }
    }

    /// A flow beside the call ended: a whisper lets the call connect; a
    /// queue flow leaves the caller waiting in silence.
    fn flow_ended(&mut self, call_id: &str, now: Millis) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let run = call.flow.take();
        if let Some(run) = run {
            call.flow_ctx = Some(Box::new(run.runner.ctx().clone()));
            match &run.role {
                FlowRole::Whisper { agent } => {
                    let agent = agent.clone();
                    let _ =
                        self.store
                            .contact_event(call_id, now, Some(&agent), "whisper_done", None);
                }
                FlowRole::CustomerWhisper { agent } => {
                    let agent = agent.clone();
                    let _ = self.store.contact_event(
                        call_id,
                        now,
                        Some(&agent),
                        "customer_whisper_done",
                        None,
                    );
                    // Then the agent's own whisper, if one is set.
                    self.start_whisper(call_id, &agent, false, now);
                    return self.publish(call_id, now);
                }
                _ => {}
            }
        }
        self.publish(call_id, now);
    }

    /// The flow queues the call: the caller waits with the flow's
    /// attributes, age and working queue; a closed or full queue is the
    /// flow's error branch.
    fn flow_queue(&mut self, call_id: &str, queue: &str, now: Millis) -> Option<Input> {
        let Some(q) = self.cfg.queues.get(queue).cloned() else {
            return Some(Input::QueueRefused(format!("no queue `{queue}`")));
        };
        if let Some(error) = self.queue_refusal(queue, &q, now) {
            return Some(Input::QueueRefused(error.to_string()));
        }
        let reserved = self.new_id("k");
        let flows = self.cfg.flows.clone();
        let call = self.calls.get_mut(call_id)?;
        let run = call.flow.take()?;
        let ctx = run.runner.ctx().clone();
        call.queue = Some(queue.to_owned());
        call.attributes = ctx.attributes.clone();
        // The flow's age counts as time already waited.
        call.waiting = Some(Wait {
            queue: queue.to_owned(),
            since: Millis(now.0.saturating_sub(ctx.age_s.saturating_mul(1000))),
            connection_id: reserved,
        });
        let queue_flow = ctx.queue_flow.clone().filter(|f| {
            flows
                .flows
                .get(f)
                .is_some_and(|f| f.kind == FlowType::CustomerQueue)
        });
        call.flow = queue_flow.map(|f| {
            Box::new(FlowRun {
                runner: Runner::new(flows.clone(), &f, ctx.clone()),
                role: FlowRole::Queue,
                playing: None,
            })
        });
        call.flow_ctx = Some(Box::new(ctx));
        let _ = self.store.set_queue(call_id, queue);
        let attrs = call.attributes.clone();
        let _ = self.store.update_attributes(call_id, &attrs);
        let _ = self
            .store
            .contact_event(call_id, now, None, "queued", Some(queue));
        self.plan_media(call_id);
        self.route(now);
        if self
            .calls
            .get(call_id)
            .is_some_and(|c| c.flow.is_some() && c.waiting.is_some())
        {
            // The queue flow, a runner of its own.
            self.drive_flow(call_id, None, now);
        }
        None
    }

    /// A callback: a new contact waits in `queue`; the agent who takes it
    /// is connected first, then the customer is called.
    fn queue_callback(&mut self, from_call: &str, queue: &str, number: &str, now: Millis) {
        let attributes = self
            .calls
            .get(from_call)
            .map(|c| c.attributes.clone())
            .unwrap_or_default();
        let id = self.new_id("c");
        if let Err(e) =
            self.store
                .create_contact(&id, "callback", Some(queue), number, &attributes, now)
        {
            tracing::error!("callback: {e}");
            return;
        }
        let _ = self
            .store
            .contact_event(&id, now, None, "callback_queued", Some(from_call));
        let _ = self
            .store
            .contact_event(from_call, now, None, "callback_queued", Some(&id));
        let (customer_conn, reserved) = (self.new_id("k"), self.new_id("k"));
        let prompt =
            crate::bridge::CallerAudio::Prompt(self.cfg.public_dir.join(&self.cfg.caller_prompt));
        self.calls.insert(
            id.clone(),
            Call {
                id: id.clone(),
                initiation: Initiation::Outbound,
                queue: Some(queue.to_owned()),
                created_at: now,
                attributes,
                customer: Party {
                    connection_id: customer_conn,
                    endpoint: Endpoint::phone_number(number),
                    state: ConnectionState::Init,
                    answer_at: None,
                },
                participants: Vec::new(),
                externals: Vec::new(),
                waiting: Some(Wait {
                    queue: queue.to_owned(),
                    since: now,
                    connection_id: reserved,
                }),
                rejected: Vec::new(),
                ended: false,
                digits_heard: String::new(),
                caller_play: prompt,
                flow: None,
                flow_ctx: None,
                callback: true,
                via_flow: false,
            },
        );
        self.route(now);
    }

    /// An agent accepted: the queue flow stops; a callback dials the
    /// customer; the customer whisper flow, if one is set, plays to the
    /// caller, then the agent whisper flow to the agent, before the two
    /// are connected.
    pub(super) fn flow_accepted(&mut self, call_id: &str, agent: &str, now: Millis) {
        let answer_ms = self.cfg.external_answer_ms;
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if call.callback && call.customer.answer_at.is_none() {
            call.customer.state = ConnectionState::Connecting { since: now };
            call.customer.answer_at = Some(now.plus_ms(answer_ms));
        }
        if call
            .flow
            .as_ref()
            .is_some_and(|f| f.role == FlowRole::Queue)
        {
            if let Some(run) = call.flow.take() {
                call.flow_ctx = Some(Box::new(run.runner.ctx().clone()));
            }
        }
        self.start_whisper(call_id, agent, true, now);
    }

    /// Starts the customer whisper flow (`customer_first`, if one is set)
    /// or else the agent whisper flow, if one is set.
    fn start_whisper(&mut self, call_id: &str, agent: &str, customer_first: bool, now: Millis) {
        let flows = self.cfg.flows.clone();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(ctx) = call.flow_ctx.clone() else {
            return;
        };
        let valid = |f: &Option<String>, kind: FlowType| {
            f.clone()
                .filter(|f| flows.flows.get(f).is_some_and(|f| f.kind == kind))
        };
        let customer =
            valid(&ctx.customer_whisper_flow, FlowType::CustomerWhisper).filter(|_| customer_first);
        let (flow, role, event) = match customer {
            Some(f) => (
                f,
                FlowRole::CustomerWhisper {
                    agent: agent.to_owned(),
                },
                "customer_whisper",
            ),
            None => match valid(&ctx.agent_whisper_flow, FlowType::AgentWhisper) {
                Some(f) => (
                    f,
                    FlowRole::Whisper {
                        agent: agent.to_owned(),
                    },
                    "whisper",
                ),
                None => return,
            },
        };
        let mut ctx = *ctx;
        ctx.attributes = call.attributes.clone();
        call.flow = Some(Box::new(FlowRun {
            runner: Runner::new(flows, &flow, ctx),
            role,
            playing: None,
        }));
        let _ = self
            .store
            .contact_event(call_id, now, Some(agent), event, Some(&flow));
        self.drive_flow(call_id, None, now);
    }
}

/// The bounded channel between the center and the flow worker.
pub fn flow_channel() -> (
    tokio::sync::mpsc::Sender<FlowJob>,
    tokio::sync::mpsc::Receiver<FlowJob>,
) {
    tokio::sync::mpsc::channel(FLOW_JOBS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::Store;
    use protocol::wire::Op;

    const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
dev_plaintext_passwords = true
[[agent_states]]
name = "Available"
kind = "routable"
[[agent_states]]
name = "Offline"
kind = "offline"
[[queues]]
id = "support"
name = "Support"
max_contacts = 5
[[routing_profiles]]
id = "p"
name = "P"
queues = [{ queue = "support", priority = 1 }]
[[agents]]
username = "alice"
password = "pw"
name = "Alice"
routing_profile = "p"
"#;

    const FLOW: &str = r#"name = "T"
type = "inbound"
start = "hello"

[blocks.hello]
type = "play_prompt"
text = "Hello."
next = "lookup"

[blocks.lookup]
type = "invoke_function"
function = "f"
next = "menu"
error = "menu"

[blocks.menu]
type = "get_customer_input"
text = "Press 1."
timeout_ms = 2000
keys = { "1" = "q" }
timeout = "bye"
error = "bye"

[blocks.q]
type = "set_working_queue"
queue = "support"
next = "go"

[blocks.go]
type = "transfer_to_queue"
error = "bye"

[blocks.bye]
type = "disconnect"
"#;

    /// A function that fails, retried forever (no loop block).
    const CYCLE: &str = r#"name = "C"
type = "inbound"
start = "a"

[blocks.a]
type = "invoke_function"
function = "f"
next = "a"
error = "a"
"#;

    /// Queues with both whisper flows set.
    const WHISPERED: &str = r#"name = "W"
type = "inbound"
start = "cw"

[blocks.cw]
type = "set_whisper_flow"
flow = "cw"
next = "aw"

[blocks.aw]
type = "set_whisper_flow"
flow = "aw"
next = "q"

[blocks.q]
type = "set_working_queue"
queue = "support"
next = "go"

[blocks.go]
type = "transfer_to_queue"
"#;

    const CUSTOMER_WHISPER: &str = r#"name = "CW"
type = "customer_whisper"
start = "say"

[blocks.say]
type = "play_prompt"
text = "You are connected."
"#;

    const AGENT_WHISPER: &str = r#"name = "AW"
type = "agent_whisper"
start = "say"

[blocks.say]
type = "play_prompt"
text = "Order $.Attributes.order_id."
"#;

    const T0: Millis = Millis(1_795_514_400_000);

    fn center() -> Center {
        let mut cfg = Config::parse(CONFIG, "test").expect("config");
        let mut flows = crate::flow::file::test_flows(&[
            ("t", FLOW),
            ("cycle", CYCLE),
            ("w", WHISPERED),
            ("cw", CUSTOMER_WHISPER),
            ("aw", AGENT_WHISPER),
        ]);
        flows.entry_points.insert("+18005550122".into(), "w".into());
        flows.entry_points.insert("+18005550100".into(), "t".into());
        flows
            .entry_points
            .insert("+18005550111".into(), "cycle".into());
        cfg.flows = Arc::new(flows);
        Center::new(Arc::new(cfg), Store::in_memory().expect("db"), T0).expect("center")
    }

    fn path(c: &Center, id: &str) -> Vec<(String, String)> {
        c.store()
            .contact(id)
            .expect("read")
            .expect("record")
            .flow_log
            .iter()
            .map(|e| {
                (
                    e["block"].as_str().unwrap_or("").to_owned(),
                    e["branch"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_flow_call_plays_asks_and_queues_on_a_virtual_clock() {
        let mut c = center();
        let (tx, mut rx) = flow_channel();
        c.set_flow_jobs(tx);
        let id = c
            .place_flow_call(
                "+15555550100",
                "+18005550100",
                crate::bridge::CallerAudio::Silence,
                T0,
            )
            .expect("placed");
        assert_eq!(
            c.caller_view(&id).map(|v| v.state),
            Some(super::super::CallerPhase::Flow)
        );
        let Ok(FlowJob::Prompt { seq, say, .. }) = rx.try_recv() else {
            panic!("a prompt job");
        };
        assert_eq!(say, Say::Text("Hello.".into()));
        // Rendered: 1.5 s long. Nothing happens before it ends.
        c.flow_done(
            FlowDone::Prompt {
                contact: id.clone(),
                seq,
                result: Ok((PathBuf::from("/x.wav"), 1500)),
            },
            T0.plus_ms(100),
        );
        assert_eq!(c.next_deadline(T0.plus_ms(100)), Some(T0.plus_ms(1600)));
        c.tick(T0.plus_ms(1599));
        assert!(rx.try_recv().is_err());
        c.tick(T0.plus_ms(1600));
        let Ok(FlowJob::Invoke { seq, body, url, .. }) = rx.try_recv() else {
            panic!("an invoke job");
        };
        assert_eq!(url, "http://127.0.0.1:9/");
        assert!(body.contains("ContactFlowEvent"));
        let answer = [("tier".to_string(), "gold".to_string())]
            .into_iter()
            .collect();
        c.flow_done(
            FlowDone::Invoke {
                contact: id.clone(),
                seq,
                result: Ok(answer),
            },
            T0.plus_ms(1700),
        );
        assert!(matches!(rx.try_recv(), Ok(FlowJob::Prompt { .. })));
        c.caller_digits(&id, "1", T0.plus_ms(2000)).expect("digits");
        assert_eq!(
            c.caller_view(&id).map(|v| v.state),
            Some(super::super::CallerPhase::Queued)
        );
        assert_eq!(c.calls[&id].attributes["tier"], "gold");
        let p = path(&c, &id);
        assert_eq!(
            p,
            [
                ("hello".into(), "next".into()),
                ("lookup".into(), "next".into()),
                ("menu".into(), "1".into()),
                ("q".into(), "next".into()),
                ("go".into(), String::new()),
            ]
        );
        // An agent becomes available: the call rings with the attributes.
        let (tx, _rx) = crate::limits::Outbox::new(64, 1 << 20);
        c.attach("alice", None, tx).expect("attach");
        c.handle(
            "alice",
            Op::SetAgentState {
                state: "Available".into(),
            },
            T0.plus_ms(2100),
        )
        .expect("available");
        assert_eq!(
            c.caller_view(&id).map(|v| v.state),
            Some(super::super::CallerPhase::Ringing)
        );
    }

    #[test]
    fn without_a_worker_a_flow_still_never_hangs() {
        let mut c = center();
        let id = c
            .place_flow_call(
                "+15555550100",
                "+18005550100",
                crate::bridge::CallerAudio::Silence,
                T0,
            )
            .expect("placed");
        // Prompts are skipped, the function fails at once; the menu waits
        // for keys with its timeout, then hangs up.
        assert_eq!(c.next_deadline(T0), Some(T0.plus_ms(2000)));
        c.tick(T0.plus_ms(2000));
        assert_eq!(c.caller_view(&id).map(|v| v.state), None, "ended and gone");
        let p = path(&c, &id);
        assert_eq!(p[1], ("lookup".into(), "error".into()));
        assert_eq!(p[2], ("menu".into(), "timeout".into()));
        let rec = c.store().contact(&id).expect("read").expect("record");
        assert_eq!(rec.disconnect_reason.as_deref(), Some("flow_disconnect"));
    }

    #[test]
    fn calls_to_numbers_that_are_no_entry_point_are_refused() {
        let mut c = center();
        let err = c
            .place_flow_call(
                "+15555550100",
                "+18005550999",
                crate::bridge::CallerAudio::Silence,
                T0,
            )
            .expect_err("refused");
        assert!(matches!(err.error, QueueError::NoEntryPoint { .. }));
        assert!(err.contact_id.is_empty());
        let err = c
            .place_flow_call(
                "5555",
                "+18005550100",
                crate::bridge::CallerAudio::Silence,
                T0,
            )
            .expect_err("refused");
        assert!(matches!(err.error, QueueError::BadNumber { .. }));
        assert_eq!(c.flow_for_number("+18005550100"), Some("t"));
    }

    #[test]
    fn a_function_failing_in_a_cycle_ends_at_the_step_limit_without_recursion() {
        let mut c = center();
        // No worker: every invoke fails at once, so the cycle never waits.
        let id = c
            .place_flow_call(
                "+15555550100",
                "+18005550111",
                crate::bridge::CallerAudio::Silence,
                T0,
            )
            .expect("placed");
        let rec = c.store().contact(&id).expect("read").expect("record");
        assert_eq!(rec.disconnect_reason.as_deref(), Some("flow_error"));
        let last = rec.flow_log.last().expect("log");
        assert!(
            last["error"].as_str().is_some_and(|e| e.contains("blocks")),
            "{last}"
        );
        assert!(rec.flow_log.len() <= crate::flow::run::MAX_STEPS as usize + 1);
    }

    #[test]
    fn the_customer_whisper_then_the_agent_whisper_play_before_connecting() {
        let mut c = center();
        let (tx, mut rx) = flow_channel();
        c.set_flow_jobs(tx);
        let id = c
            .place_flow_call(
                "+15555550100",
                "+18005550122",
                crate::bridge::CallerAudio::Silence,
                T0,
            )
            .expect("placed");
        c.calls
            .get_mut(&id)
            .expect("call")
            .attributes
            .insert("order_id".into(), "100".into());
        let (otx, _orx) = crate::limits::Outbox::new(64, 1 << 20);
        c.attach("alice", None, otx).expect("attach");
        let t = T0.plus_ms(10);
        c.handle(
            "alice",
            Op::SetAgentState {
                state: "Available".into(),
            },
            t,
        )
        .expect("available");
        c.handle(
            "alice",
            Op::Accept {
                contact_id: id.clone(),
            },
            t,
        )
        .expect("accept");
        let mut said = Vec::new();
        let mut now = t;
        for _ in 0..2 {
            let Ok(FlowJob::Prompt { seq, say, .. }) = rx.try_recv() else {
                panic!("a prompt job");
            };
            said.push(say);
            c.flow_done(
                FlowDone::Prompt {
                    contact: id.clone(),
                    seq,
                    result: Ok((PathBuf::from("/x.wav"), 700)),
                },
                now,
            );
            now = now.plus_ms(700);
            c.tick(now);
        }
        assert_eq!(
            said,
            [
                Say::Text("You are connected.".into()),
                Say::Text("Order 100.".into())
            ]
        );
        assert!(c.calls[&id].flow.is_none(), "both whispers over");
        let events: Vec<String> = c
            .store()
            .contact(&id)
            .expect("read")
            .expect("record")
            .events
            .into_iter()
            .map(|e| e.event)
            .filter(|e| e.contains("whisper"))
            .collect();
        assert_eq!(
            events,
            [
                "customer_whisper",
                "customer_whisper_done",
                "whisper",
                "whisper_done"
            ]
        );
    }
}
