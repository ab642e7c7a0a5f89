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

use protocol::contact::{ConnectionState, ContactState, Initiation};
use protocol::endpoint::Endpoint;
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
    /// `agent` (while the agent hears the agent whisper).
    CustomerWhisper {
        /// The agent who accepted.
        agent: String,
    },
    /// The customer hold flow, while `agent` holds the caller.
    CustomerHold {
        /// The agent who put the caller on hold.
        agent: String,
    },
    /// The agent hold flow, heard by `agent` while the caller is held.
    AgentHold {
        /// The agent who put the caller on hold.
        agent: String,
    },
    /// A quick connect's transfer flow (`transfer_to_agent` or
    /// `transfer_to_queue`), run for the held caller when `agent`
    /// transfers; its `transfer_to_queue` reaches the target.
    Transfer {
        /// The agent transferring.
        agent: String,
        /// The connection id the transferring agent was given.
        connection_id: String,
        /// The quick connect.
        endpoint: Endpoint,
        /// When the transfer began.
        since: Millis,
    },
}

/// Which party a flow beside a call plays to. A call has one flow per
/// lane, so the customer and the agent can each hear their own at once
/// (the two whispers, the two hold flows); keys go to the customer lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The caller (and the entry, queue and routing flows): `Call::flow`.
    Customer,
    /// The agent (agent whisper, agent hold): [`AgentLanes`].
    Agent,
}

/// The agent lane's flows, kept beside the calls (by call id) rather than
/// in them, and the calls whose agents are on a side media plan now.
///
/// While an agent hears a flow of its own (or waits for the caller's
/// whisper, or holds a caller who hears the hold flow), the agent leaves
/// the call's media plan for a side plan (`<call>~agent`) holding the
/// agent and its prompt, so each side hears only its own flow. The set
/// remembers which side plans exist so that their end reaches the bridge
/// before the agent rejoins the call's plan (the bridge routes an agent's
/// leg to the plan that named it last).
#[derive(Debug, Default)]
pub struct AgentLanes {
    runs: std::collections::HashMap<String, Box<FlowRun>>,
    sides: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl AgentLanes {
    /// When the agent lanes have something due on the center's tick.
    pub fn deadlines(&self) -> impl Iterator<Item = Millis> + '_ {
        self.runs.values().flat_map(|r| r.deadlines())
    }

    /// The agent lane's flow of a call, if one runs.
    pub fn get(&self, call_id: &str) -> Option<&FlowRun> {
        self.runs.get(call_id).map(|r| &**r)
    }

    /// Notes that `call_id`'s side plan exists (`true`) or was ended;
    /// whether it existed before.
    pub fn set_side(&self, call_id: &str, on: bool) -> bool {
        let mut sides = self.sides.lock().unwrap_or_else(|e| e.into_inner());
        if on {
            !sides.insert(call_id.to_owned())
        } else {
            sides.remove(call_id)
        }
    }
}

/// The id of a call's side media plan (see [`AgentLanes`]).
pub fn side_plan_id(call_id: &str) -> String {
    format!("{call_id}~agent")
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
        /// The lane of the runner that asked.
        lane: Lane,
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
        /// The lane of the runner that asked.
        lane: Lane,
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
        /// The lane of the runner that asked.
        lane: Lane,
        /// The runner's prompt number.
        seq: u64,
        /// The file and its length.
        result: Result<(PathBuf, u64), String>,
    },
    /// A function's attributes, or why it failed.
    Invoke {
        /// Contact id.
        contact: String,
        /// The lane of the runner that asked.
        lane: Lane,
        /// The runner's call number.
        seq: u64,
        /// Attributes.
        result: Result<BTreeMap<String, String>, String>,
    },
}

/// The working queue a `transfer_to_agent` flow starts with: the agent's
/// own queue, as in Connect (`agent:<username>`; its `transfer_to_queue`
/// offers the call to that agent).
pub const AGENT_QUEUE: &str = "agent:";

/// Queue hours and metrics as the runner sees them.
struct CenterEnv<'a> {
    center: &'a Center,
}

impl Env for CenterEnv<'_> {
    fn queue_open(&self, queue: &str, now: Millis) -> bool {
        if queue.starts_with(AGENT_QUEUE) {
            return true;
        }
        self.center
            .cfg
            .queues
            .get(queue)
            .is_some_and(|q| q.hours.as_ref().is_none_or(|h| h.is_open(now)))
    }

    fn queue_metric(&self, queue: &str, metric: Metric, now: Millis) -> f64 {
        if let Some(agent) = queue.strip_prefix(AGENT_QUEUE) {
            return match metric {
                Metric::AgentsAvailable => f64::from(u8::from(self.center.is_available(agent))),
                _ => 0.0,
            };
        }
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
        if let Some(agent) = queue.strip_prefix(AGENT_QUEUE) {
            if let Some(a) = self.center.cfg.agents.get(agent) {
                return a.name.clone();
            }
        }
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
        super::queue::check_caller(from)?;
        let Some(flow) = self.flow_for_number(to).map(str::to_owned) else {
            return Err(InboundRefused::unrecorded(QueueError::NoEntryPoint {
                number: to.into(),
            }));
        };
        let (id, attributes) = self.open_inbound(from, None, now)?;
        let _ = self
            .store
            .contact_event(&id, now, None, "flow_started", Some(&flow));
        let mut ctx = Context::new(&id, from, to);
        ctx.attributes = attributes.clone();
        let runner = Runner::new(self.cfg.flows.clone(), &flow, ctx);
        let call = self.inbound_call(&id, from, attributes, caller_play, now);
        self.calls.insert(
            id.clone(),
            Call {
                flow: Some(Box::new(FlowRun {
                    runner,
                    role: FlowRole::Entry,
                    playing: None,
                })),
                via_flow: true,
                ..call
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
                lane,
                seq,
                result,
            } => {
                let Some(run) = self.lane_mut(&contact, lane) else {
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
                        self.drive_lane(&contact, lane, Some(Input::PromptDone(seq)), now);
                    }
                }
            }
            FlowDone::Invoke {
                contact,
                lane,
                seq,
                result,
            } => self.drive_lane(&contact, lane, Some(Input::FunctionDone(seq, result)), now),
        }
    }

    /// The flow of `lane` of a live call, if one runs.
    fn lane_mut(&mut self, call_id: &str, lane: Lane) -> Option<&mut FlowRun> {
        let call = self.calls.get_mut(call_id).filter(|c| !c.ended)?;
        match lane {
            Lane::Customer => call.flow.as_deref_mut(),
            Lane::Agent => self.agent_lanes.runs.get_mut(call_id).map(|r| &mut **r),
        }
    }

    /// Takes the flow of `lane` out of a live call (to feed it).
    fn lane_take(&mut self, call_id: &str, lane: Lane) -> Option<Box<FlowRun>> {
        let call = self.calls.get_mut(call_id).filter(|c| !c.ended)?;
        match lane {
            Lane::Customer => call.flow.take(),
            Lane::Agent => self.agent_lanes.runs.remove(call_id),
        }
    }

    /// Puts a flow back in `lane` (dropped if the call ended meanwhile).
    fn lane_put(&mut self, call_id: &str, lane: Lane, run: Box<FlowRun>) {
        let Some(call) = self.calls.get_mut(call_id).filter(|c| !c.ended) else {
            return;
        };
        match lane {
            Lane::Customer => call.flow = Some(run),
            Lane::Agent => {
                self.agent_lanes.runs.insert(call_id.to_owned(), run);
            }
        }
    }

    /// Drops the agent lane of a call that ended (its side plan, if any,
    /// is ended by the call's last media plan).
    pub(super) fn end_agent_lane(&mut self, call_id: &str) {
        self.agent_lanes.runs.remove(call_id);
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
        let due = |f: &FlowRun| f.deadlines().any(|t| t <= now);
        let mut lanes: Vec<(String, Lane)> = self
            .calls
            .values()
            .filter(|c| !c.ended && c.flow.as_deref().is_some_and(due))
            .map(|c| (c.id.clone(), Lane::Customer))
            .collect();
        lanes.extend(
            self.agent_lanes
                .runs
                .iter()
                .filter(|(_, f)| due(f))
                .map(|(id, _)| (id.clone(), Lane::Agent)),
        );
        // Agent lanes of calls that are gone are dropped here at the latest.
        let calls = &self.calls;
        self.agent_lanes
            .runs
            .retain(|id, _| calls.get(id).is_some_and(|c| !c.ended));
        for (id, lane) in lanes {
            let ended = self.lane_mut(&id, lane).and_then(|f| {
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
                self.drive_lane(&id, lane, Some(Input::PromptDone(seq)), now);
            }
            self.drive_lane(&id, lane, None, now);
        }
    }

    /// Feeds the call's customer-lane runner (see [`Center::drive_lane`]).
    pub(super) fn drive_flow(&mut self, call_id: &str, input: Option<Input>, now: Millis) {
        self.drive_lane(call_id, Lane::Customer, input, now);
    }

    /// Feeds the runner of `lane` (or only fires its due timers, with no
    /// input) and performs what it asks.
    ///
    /// What the center answers at once (a job it cannot send, a queue
    /// that refuses) is fed back in this loop, not by recursion, so a flow
    /// failing over and over costs iterations (bounded by the runner's step
    /// limit), never stack.
    fn drive_lane(&mut self, call_id: &str, lane: Lane, input: Option<Input>, now: Millis) {
        let mut pending: std::collections::VecDeque<Option<Input>> =
            std::collections::VecDeque::from([input]);
        while let Some(input) = pending.pop_front() {
            for answer in self.drive_once(call_id, lane, input, now) {
                pending.push_back(Some(answer));
            }
        }
    }

    /// One feeding of the runner; the inputs the center answers at once.
    fn drive_once(
        &mut self,
        call_id: &str,
        lane: Lane,
        input: Option<Input>,
        now: Millis,
    ) -> Vec<Input> {
        let Some(mut run) = self.lane_take(call_id, lane) else {
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
        }
        self.lane_put(call_id, lane, run);
        actions
            .into_iter()
            .filter_map(|action| self.flow_action(call_id, lane, action, now))
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
    fn flow_action(
        &mut self,
        call_id: &str,
        lane: Lane,
        action: Action,
        now: Millis,
    ) -> Option<Input> {
        match action {
            Action::Play { seq, say, language } => {
                if let Some(run) = self.lane_mut(call_id, lane) {
                    run.playing = Some(Playing {
                        seq,
                        path: None,
                        ends_at: None,
                    });
                }
                let job = FlowJob::Prompt {
                    contact: call_id.to_owned(),
                    lane,
                    seq,
                    say,
                    language,
                };
                if self.send_job(job).is_err() {
                    // Skipped (the caller hears silence), never waited for.
                    tracing::warn!(contact = %call_id, "prompt: no prompt worker (or it is busy)");
                    if let Some(run) = self.lane_mut(call_id, lane) {
                        run.playing = None;
                    }
                    return Some(Input::PromptDone(seq));
                }
                None
            }
            Action::StopPrompt => {
                if let Some(run) = self.lane_mut(call_id, lane) {
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
                    lane,
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
            Action::End => {
                self.flow_ended(call_id, lane, now);
                None
            }
            // The agent lane's flow types (hold, whisper) cannot route or
            // hang up (checked at start); if one ever asks, it just ends.
            _ if lane == Lane::Agent => {
                self.flow_ended(call_id, lane, now);
                None
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
        }
    }

    /// A flow beside the call ended: a whisper lets its side connect (the
    /// call connects when both whispers are over); a queue flow leaves the
    /// caller waiting in silence; a hold flow leaves the held party the
    /// hold tone.
    fn flow_ended(&mut self, call_id: &str, lane: Lane, now: Millis) {
        let Some(run) = self.lane_take(call_id, lane) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(call_id) {
            call.flow_ctx = Some(Box::new(run.runner.ctx().clone()));
        }
        let (agent, event) = match &run.role {
            FlowRole::Whisper { agent } => (agent, "whisper_done"),
            FlowRole::CustomerWhisper { agent } => (agent, "customer_whisper_done"),
            FlowRole::CustomerHold { agent } => (agent, "customer_hold_done"),
            FlowRole::AgentHold { agent } => (agent, "agent_hold_done"),
            FlowRole::Transfer { agent, .. } => (agent, "transfer_flow_done"),
            FlowRole::Entry | FlowRole::Queue => return self.publish(call_id, now),
        };
        let _ = self
            .store
            .contact_event(call_id, now, Some(agent), event, None);
        self.plan_media(call_id);
        self.publish(call_id, now);
    }

    /// The flow queues the call: the caller waits with the flow's
    /// attributes, age and working queue; a closed or full queue is the
    /// flow's error branch.
    fn flow_queue(&mut self, call_id: &str, queue: &str, now: Millis) -> Option<Input> {
        if let Some(FlowRole::Transfer {
            agent,
            connection_id,
            ..
        }) = self
            .calls
            .get(call_id)?
            .flow
            .as_ref()
            .map(|f| f.role.clone())
        {
            return self.transfer_flow_reach(call_id, &agent, &connection_id, queue, now);
        }
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
                queue: Some(queue.to_owned()),
                waiting: Some(Wait {
                    queue: queue.to_owned(),
                    since: now,
                    connection_id: reserved,
                }),
                callback: true,
                ..Call::new(
                    &id,
                    Initiation::Callback,
                    Party {
                        connection_id: customer_conn,
                        endpoint: Endpoint::phone_number(number),
                        state: ConnectionState::Init,
                        answer_at: None,
                    },
                    attributes,
                    prompt,
                    now,
                )
            },
        );
        self.route(now);
    }

    /// An agent accepted: the queue flow stops; a callback dials the
    /// customer; the customer whisper flow (if one is set) plays to the
    /// caller and, at the same time, the agent whisper flow to the agent;
    /// the two are connected when both are over.
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
        let customer = FlowRole::CustomerWhisper {
            agent: agent.to_owned(),
        };
        let to_agent = FlowRole::Whisper {
            agent: agent.to_owned(),
        };
        let started = [
            self.start_side_flow(call_id, Lane::Customer, customer, now),
            self.start_side_flow(call_id, Lane::Agent, to_agent, now),
        ];
        if started.contains(&true) {
            self.plan_media(call_id);
        }
    }

    /// An agent put the caller on hold (`hold`) or resumed: the customer
    /// hold flow plays to the caller and the agent hold flow to the agent,
    /// if the call's flows set them; resuming stops both.
    pub(super) fn flow_hold(&mut self, call_id: &str, agent: &str, hold: bool, now: Millis) {
        let mut changed = false;
        if hold {
            let customer = FlowRole::CustomerHold {
                agent: agent.to_owned(),
            };
            let to_agent = FlowRole::AgentHold {
                agent: agent.to_owned(),
            };
            changed |= self.start_side_flow(call_id, Lane::Customer, customer, now);
            changed |= self.start_side_flow(call_id, Lane::Agent, to_agent, now);
        } else {
            for lane in [Lane::Customer, Lane::Agent] {
                let holding = self.lane_mut(call_id, lane).is_some_and(|f| {
                    matches!(
                        f.role,
                        FlowRole::CustomerHold { .. } | FlowRole::AgentHold { .. }
                    )
                });
                if holding {
                    self.flow_ended(call_id, lane, now);
                    changed = true;
                }
            }
        }
        if changed {
            self.plan_media(call_id);
        }
    }

    /// Starts the flow of `role` in `lane` if the call's flows set one of
    /// its type (replacing a whisper still playing there; never an entry
    /// or queue flow); whether one started.
    fn start_side_flow(&mut self, call_id: &str, lane: Lane, role: FlowRole, now: Millis) -> bool {
        let flows = self.cfg.flows.clone();
        let Some(call) = self.calls.get(call_id).filter(|c| !c.ended) else {
            return false;
        };
        let Some(ctx) = call.flow_ctx.clone() else {
            return false;
        };
        let (set, kind, event, agent) = match &role {
            FlowRole::CustomerWhisper { agent } => (
                &ctx.customer_whisper_flow,
                FlowType::CustomerWhisper,
                "customer_whisper",
                agent,
            ),
            FlowRole::Whisper { agent } => (
                &ctx.agent_whisper_flow,
                FlowType::AgentWhisper,
                "whisper",
                agent,
            ),
            FlowRole::CustomerHold { agent } => (
                &ctx.customer_hold_flow,
                FlowType::CustomerHold,
                "customer_hold",
                agent,
            ),
            FlowRole::AgentHold { agent } => (
                &ctx.agent_hold_flow,
                FlowType::AgentHold,
                "agent_hold",
                agent,
            ),
            FlowRole::Entry | FlowRole::Queue | FlowRole::Transfer { .. } => return false,
        };
        let Some(flow) = set
            .clone()
            .filter(|f| flows.flows.get(f).is_some_and(|f| f.kind == kind))
        else {
            return false;
        };
        let agent = agent.clone();
        let attributes = call.attributes.clone();
        let busy = match lane {
            Lane::Customer => call.flow.as_ref().map(|f| f.role.clone()),
            Lane::Agent => self.agent_lanes.get(call_id).map(|f| f.role.clone()),
        };
        match busy {
            None => {}
            Some(FlowRole::Whisper { .. } | FlowRole::CustomerWhisper { .. }) => {
                self.flow_ended(call_id, lane, now);
            }
            Some(_) => return false,
        }
        let mut ctx = *ctx;
        ctx.attributes = attributes;
        let run = Box::new(FlowRun {
            runner: Runner::new(flows, &flow, ctx),
            role,
            playing: None,
        });
        self.lane_put(call_id, lane, run);
        let _ = self
            .store
            .contact_event(call_id, now, Some(&agent), event, Some(&flow));
        self.drive_lane(call_id, lane, None, now);
        true
    }

    /// A transfer to a quick connect that names a flow: the flow runs for
    /// the held caller (prompts, attributes), its working queue the quick
    /// connect's queue or the agent's own (`agent:<username>`), and its
    /// `transfer_to_queue` reaches the target on `connection_id`.
    pub(super) fn start_transfer_flow(
        &mut self,
        call_id: &str,
        agent: &str,
        flow: &str,
        connection_id: &str,
        endpoint: Endpoint,
        now: Millis,
    ) {
        if self.calls.get(call_id).is_some_and(|c| c.flow.is_some()) {
            // A whisper or hold flow still playing to the caller ends.
            self.flow_ended(call_id, Lane::Customer, now);
        }
        let flows = self.cfg.flows.clone();
        let Some(call) = self.calls.get_mut(call_id).filter(|c| !c.ended) else {
            return;
        };
        let mut ctx = call.flow_ctx.as_deref().cloned().unwrap_or_else(|| {
            let from = call
                .customer
                .endpoint
                .phone_number
                .clone()
                .unwrap_or_default();
            Context::new(call_id, &from, "")
        });
        ctx.attributes = call.attributes.clone();
        ctx.queue = match (&endpoint.agent, &endpoint.queue) {
            (Some(a), _) => Some(format!("{AGENT_QUEUE}{a}")),
            (None, q) => q.clone(),
        };
        call.flow = Some(Box::new(FlowRun {
            runner: Runner::new(flows, flow, ctx),
            role: FlowRole::Transfer {
                agent: agent.to_owned(),
                connection_id: connection_id.to_owned(),
                endpoint,
                since: now,
            },
            playing: None,
        }));
        let _ = self
            .store
            .contact_event(call_id, now, Some(agent), "transfer_flow", Some(flow));
        self.drive_flow(call_id, None, now);
    }

    /// A transfer flow's `transfer_to_queue`: the call waits in `queue`
    /// for the next agent, or `agent:<username>` is offered it, on the
    /// connection the transferring agent was given; refused (the flow's
    /// error branch) when the queue is closed or full or the agent busy.
    fn transfer_flow_reach(
        &mut self,
        call_id: &str,
        by: &str,
        connection_id: &str,
        queue: &str,
        now: Millis,
    ) -> Option<Input> {
        if let Some(target) = queue.strip_prefix(AGENT_QUEUE) {
            let on_call = self
                .calls
                .get(call_id)
                .is_some_and(|c| c.participant(target).is_some());
            if on_call || !self.is_available(target) {
                return Some(Input::QueueRefused(format!("{target} is not available")));
            }
            let Ok(state) = ContactState::Init.offer(now, self.cfg.ring_timeout_ms) else {
                return Some(Input::QueueRefused("the offer failed".into()));
            };
            let leg = self.new_leg();
            let call = self.calls.get_mut(call_id)?;
            call.participants.push(super::Participant {
                agent: target.to_owned(),
                connection_id: connection_id.to_owned(),
                state,
                conn: ConnectionState::Connecting { since: now },
                initiation: Initiation::Transfer,
                offered_from: None,
                media_leg: leg,
            });
            self.add_contact(target, call_id);
            let _ =
                self.store
                    .contact_event(call_id, now, Some(target), "offered", Some("transfer"));
        } else {
            let Some(q) = self.cfg.queues.get(queue).cloned() else {
                return Some(Input::QueueRefused(format!("no queue `{queue}`")));
            };
            if let Some(error) = self.queue_refusal(queue, &q, now) {
                return Some(Input::QueueRefused(error.to_string()));
            }
            let call = self.calls.get_mut(call_id)?;
            let age = call.flow.as_ref().map_or(0, |f| f.runner.ctx().age_s);
            call.waiting = Some(Wait {
                queue: queue.to_owned(),
                since: Millis(now.0.saturating_sub(age.saturating_mul(1000))),
                connection_id: connection_id.to_owned(),
            });
        }
        let call = self.calls.get_mut(call_id)?;
        if let Some(run) = call.flow.take() {
            let ctx = run.runner.ctx().clone();
            call.attributes = ctx.attributes.clone();
            call.flow_ctx = Some(Box::new(ctx));
        }
        let attrs = call.attributes.clone();
        let _ = self.store.update_attributes(call_id, &attrs);
        let _ = self
            .store
            .contact_event(call_id, now, Some(by), "transfer_flow_done", Some(queue));
        self.plan_media(call_id);
        self.publish(call_id, now);
        self.route(now);
        None
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
[[agents]]
username = "bob"
password = "pw"
name = "Bob"
routing_profile = "p"
[[quick_connects]]
id = "qc-support"
name = "Support queue"
kind = "queue"
queue = "support"
[[quick_connects]]
id = "qc-bob"
name = "Bob"
kind = "agent"
agent = "bob"
"#;

    const FLOW: &str = include_str!("../../testdata/flows/center-menu-to-support.toml");

    /// A function that fails, retried forever (no loop block).
    const CYCLE: &str = include_str!("../../testdata/flows/center-cycle.toml");

    /// Queues with both whisper flows set.
    const WHISPERED: &str = include_str!("../../testdata/flows/center-whispered.toml");

    const CUSTOMER_WHISPER: &str =
        include_str!("../../testdata/flows/center-customer-whisper.toml");

    const AGENT_WHISPER: &str = include_str!("../../testdata/flows/center-agent-whisper.toml");

    /// Music on hold: a prompt, looped.
    const CUSTOMER_HOLD: &str = include_str!("../../testdata/flows/center-customer-hold.toml");

    const AGENT_HOLD: &str = include_str!("../../testdata/flows/center-agent-hold.toml");

    /// A transfer-to-queue flow: a prompt, an attribute, the queue.
    const XFER_QUEUE: &str = include_str!("../../testdata/flows/center-xfer-queue.toml");

    /// A transfer-to-agent flow: an attribute, then the agent.
    const XFER_AGENT: &str = include_str!("../../testdata/flows/center-xfer-agent.toml");

    const T0: Millis = Millis(1_795_514_400_000);

    fn center() -> Center {
        let mut cfg = Config::parse(CONFIG, "test").expect("config");
        let mut flows = crate::flow::file::test_flows(&[
            ("t", FLOW),
            ("cycle", CYCLE),
            ("w", WHISPERED),
            ("cw", CUSTOMER_WHISPER),
            ("aw", AGENT_WHISPER),
            ("ch", CUSTOMER_HOLD),
            ("ah", AGENT_HOLD),
            ("xq", XFER_QUEUE),
            ("xa", XFER_AGENT),
        ]);
        flows
            .quick_connects
            .insert("qc-support".into(), "xq".into());
        flows.quick_connects.insert("qc-bob".into(), "xa".into());
        flows.entry_points.insert("+18005550122".into(), "w".into());
        flows.entry_points.insert("+18005550100".into(), "t".into());
        flows
            .entry_points
            .insert("+18005550111".into(), "cycle".into());
        cfg.flows = Arc::new(flows);
        Center::new(Arc::new(cfg), Store::in_memory().expect("db"), T0).expect("center")
    }

    /// A silent caller from `from` dials `to` at T0.
    fn dial(c: &mut Center, from: &str, to: &str) -> Result<String, InboundRefused> {
        c.place_flow_call(from, to, crate::bridge::CallerAudio::Silence, T0)
    }

    /// `agent` attaches and becomes available at `now`. The inbox is what
    /// the agent's socket would read: kept for as long as the test needs
    /// the agent attached.
    fn available(c: &mut Center, agent: &str, now: Millis) -> crate::limits::Inbox {
        let (tx, inbox) = crate::limits::Outbox::new(64, 1 << 20);
        c.attach(agent, None, tx).expect("attach");
        c.handle(
            agent,
            Op::SetAgentState {
                state: "Available".into(),
            },
            now,
        )
        .expect("available");
        inbox
    }

    /// The flow worker rendered prompt `seq`: `ms` long.
    fn rendered(c: &mut Center, id: &str, lane: Lane, seq: u64, ms: u64, now: Millis) {
        c.flow_done(
            FlowDone::Prompt {
                contact: id.to_owned(),
                lane,
                seq,
                result: Ok((PathBuf::from("/x.wav"), ms)),
            },
            now,
        );
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
        let id = dial(&mut c, "+15555550100", "+18005550100").expect("placed");
        assert_eq!(
            c.caller_view(&id).map(|v| v.state),
            Some(super::super::CallerPhase::Flow)
        );
        let Ok(FlowJob::Prompt { seq, say, .. }) = rx.try_recv() else {
            panic!("a prompt job");
        };
        assert_eq!(say, Say::Text("Hello.".into()));
        // Rendered: 1.5 s long. Nothing happens before it ends.
        rendered(&mut c, &id, Lane::Customer, seq, 1500, T0.plus_ms(100));
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
                lane: Lane::Customer,
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
        let _inbox = available(&mut c, "alice", T0.plus_ms(2100));
        assert_eq!(
            c.caller_view(&id).map(|v| v.state),
            Some(super::super::CallerPhase::Ringing)
        );
    }

    #[test]
    fn without_a_worker_a_flow_still_never_hangs() {
        let mut c = center();
        let id = dial(&mut c, "+15555550100", "+18005550100").expect("placed");
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
        let err = dial(&mut c, "+15555550100", "+18005550999").expect_err("refused");
        assert!(matches!(err.error, QueueError::NoEntryPoint { .. }));
        assert!(err.contact_id.is_empty());
        let err = dial(&mut c, "5555", "+18005550100").expect_err("refused");
        assert!(matches!(err.error, QueueError::BadNumber { .. }));
        assert_eq!(c.flow_for_number("+18005550100"), Some("t"));
    }

    #[test]
    fn a_function_failing_in_a_cycle_ends_at_the_step_limit_without_recursion() {
        let mut c = center();
        // No worker: every invoke fails at once, so the cycle never waits.
        let id = dial(&mut c, "+15555550100", "+18005550111").expect("placed");
        let rec = c.store().contact(&id).expect("read").expect("record");
        assert_eq!(rec.disconnect_reason.as_deref(), Some("flow_error"));
        let last = rec.flow_log.last().expect("log");
        assert!(
            last["error"].as_str().is_some_and(|e| e.contains("blocks")),
            "{last}"
        );
        assert!(rec.flow_log.len() <= crate::flow::run::MAX_STEPS as usize + 1);
    }

    /// A flow call to the whispered entry point, accepted by alice; the
    /// jobs' receiver.
    fn accepted_whispered_call(
        c: &mut Center,
    ) -> (String, tokio::sync::mpsc::Receiver<FlowJob>, Millis) {
        let (tx, rx) = flow_channel();
        c.set_flow_jobs(tx);
        let id = dial(c, "+15555550100", "+18005550122").expect("placed");
        c.calls
            .get_mut(&id)
            .expect("call")
            .attributes
            .insert("order_id".into(), "100".into());
        let t = T0.plus_ms(10);
        let _inbox = available(c, "alice", t);
        c.handle(
            "alice",
            Op::Accept {
                contact_id: id.clone(),
            },
            t,
        )
        .expect("accept");
        (id, rx, t)
    }

    /// The prompt jobs waiting, as (lane, seq, text).
    fn prompt_jobs(rx: &mut tokio::sync::mpsc::Receiver<FlowJob>) -> Vec<(Lane, u64, Say)> {
        let mut out = Vec::new();
        while let Ok(job) = rx.try_recv() {
            if let FlowJob::Prompt { lane, seq, say, .. } = job {
                out.push((lane, seq, say));
            }
        }
        out
    }

    fn events(c: &Center, id: &str, part: &str) -> Vec<String> {
        c.store()
            .contact(id)
            .expect("read")
            .expect("record")
            .events
            .into_iter()
            .map(|e| e.event)
            .filter(|e| e.contains(part))
            .collect()
    }

    #[test]
    fn the_customer_and_agent_whispers_play_together_before_connecting() {
        let mut c = center();
        let (id, mut rx, t) = accepted_whispered_call(&mut c);
        // Both whispers start at once, each in its own lane.
        let jobs = prompt_jobs(&mut rx);
        assert_eq!(
            jobs.iter()
                .map(|(l, _, s)| (*l, s.clone()))
                .collect::<Vec<_>>(),
            [
                (Lane::Customer, Say::Text("You are connected.".into())),
                (Lane::Agent, Say::Text("Order 100.".into())),
            ]
        );
        assert_eq!(events(&c, &id, "whisper"), ["customer_whisper", "whisper"]);
        // The customer's is 700 ms long, the agent's 1200 ms.
        for (lane, seq, _) in &jobs {
            let ms = if *lane == Lane::Customer { 700 } else { 1200 };
            rendered(&mut c, &id, *lane, *seq, ms, t);
        }
        assert_eq!(c.next_deadline(t), Some(t.plus_ms(700)));
        c.tick(t.plus_ms(700));
        assert!(
            c.calls[&id].flow.is_none(),
            "the customer's whisper is over"
        );
        assert!(c.agent_lanes.get(&id).is_some(), "the agent's still plays");
        assert_eq!(c.next_deadline(t.plus_ms(700)), Some(t.plus_ms(1200)));
        c.tick(t.plus_ms(1200));
        assert!(c.agent_lanes.get(&id).is_none(), "both whispers over");
        assert_eq!(
            events(&c, &id, "whisper"),
            [
                "customer_whisper",
                "whisper",
                "customer_whisper_done",
                "whisper_done"
            ]
        );
    }

    #[test]
    fn holding_the_caller_plays_the_hold_flows_and_resuming_stops_them() {
        let mut c = center();
        let (id, mut rx, t) = accepted_whispered_call(&mut c);
        // Whispers skipped (not rendered): the call connects.
        skip_prompts(&mut c, &id, &mut rx, t);
        assert!(c.calls[&id].flow.is_none() && c.agent_lanes.get(&id).is_none());
        let customer = c.calls[&id].customer.connection_id.clone();
        let hold = |hold| {
            if hold {
                Op::Hold {
                    contact_id: id.clone(),
                    connection_id: customer.clone(),
                }
            } else {
                Op::Resume {
                    contact_id: id.clone(),
                    connection_id: customer.clone(),
                }
            }
        };
        let t1 = t.plus_ms(1000);
        c.handle("alice", hold(true), t1).expect("hold");
        let jobs = prompt_jobs(&mut rx);
        assert_eq!(
            jobs.iter()
                .map(|(l, _, s)| (*l, s.clone()))
                .collect::<Vec<_>>(),
            [
                (Lane::Customer, Say::Text("Please hold.".into())),
                (Lane::Agent, Say::Text("The caller is on hold.".into())),
            ]
        );
        // The customer's loops: its prompt again when it ends.
        let (_, seq, _) = jobs[0].clone();
        rendered(&mut c, &id, Lane::Customer, seq, 500, t1);
        c.tick(t1.plus_ms(500));
        let again = prompt_jobs(&mut rx);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].0, Lane::Customer);
        assert_eq!(again[0].2, Say::Text("Please hold.".into()));
        // Resume: both stop, nothing more plays.
        c.handle("alice", hold(false), t1.plus_ms(600))
            .expect("resume");
        assert!(c.calls[&id].flow.is_none() && c.agent_lanes.get(&id).is_none());
        rendered(
            &mut c,
            &id,
            Lane::Customer,
            again[0].1,
            500,
            t1.plus_ms(700),
        );
        assert!(prompt_jobs(&mut rx).is_empty());
        assert_eq!(
            events(&c, &id, "_hold"),
            [
                "customer_hold",
                "agent_hold",
                "customer_hold_done",
                "agent_hold_done"
            ]
        );
        // Holding again starts them again.
        c.handle("alice", hold(true), t1.plus_ms(800))
            .expect("hold");
        assert_eq!(prompt_jobs(&mut rx).len(), 2);
    }

    /// Alice transfers the connected whispered call to `qc`; the
    /// connection id she was given.
    fn transfer(c: &mut Center, id: &str, qc: &str, now: Millis) -> String {
        let endpoint = c
            .config()
            .quick_connects
            .iter()
            .find(|e| e.id == qc)
            .cloned()
            .expect("quick connect");
        match c
            .handle(
                "alice",
                Op::AddConnection {
                    contact_id: id.to_owned(),
                    endpoint,
                },
                now,
            )
            .expect("transfer")
        {
            protocol::wire::OpResult::ConnectionAdded { connection_id } => connection_id,
            other => panic!("{other:?}"),
        }
    }

    /// Skips the whispers of a freshly accepted call (not rendered).
    fn skip_prompts(
        c: &mut Center,
        id: &str,
        rx: &mut tokio::sync::mpsc::Receiver<FlowJob>,
        now: Millis,
    ) {
        for (lane, seq, _) in prompt_jobs(rx) {
            c.flow_done(
                FlowDone::Prompt {
                    contact: id.to_owned(),
                    lane,
                    seq,
                    result: Err("not rendered".into()),
                },
                now,
            );
        }
    }

    #[test]
    fn a_queue_quick_connect_with_a_flow_runs_it_then_queues_the_call() {
        let mut c = center();
        let (id, mut rx, t) = accepted_whispered_call(&mut c);
        skip_prompts(&mut c, &id, &mut rx, t);
        let t1 = t.plus_ms(1000);
        let conn = transfer(&mut c, &id, "qc-support", t1);
        // The flow runs for the held caller; the transfer shows as the
        // quick connect being reached, not yet as a queue wait.
        let jobs = prompt_jobs(&mut rx);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].0, Lane::Customer);
        assert_eq!(jobs[0].2, Say::Text("Transferring you.".into()));
        assert!(c.calls[&id].waiting.is_none());
        let view = c.calls[&id]
            .view("alice", c.config())
            .expect("alice's view");
        let pending = view
            .connections
            .iter()
            .find(|k| k.connection_id == conn)
            .expect("the transfer's connection");
        assert_eq!(pending.endpoint.id, "qc-support");
        assert!(matches!(pending.state, ConnectionState::Connecting { .. }));
        // A second transfer meanwhile is refused.
        let again = c.handle(
            "alice",
            Op::AddConnection {
                contact_id: id.clone(),
                endpoint: pending.endpoint.clone(),
            },
            t1,
        );
        assert!(again.is_err());
        // The prompt ends: the attribute is set and the call waits in the
        // quick connect's queue on the connection alice was given.
        rendered(&mut c, &id, Lane::Customer, jobs[0].1, 400, t1);
        c.tick(t1.plus_ms(400));
        let call = &c.calls[&id];
        assert!(call.flow.is_none());
        let w = call.waiting.as_ref().expect("waiting");
        assert_eq!(
            (w.queue.as_str(), w.connection_id.as_str()),
            ("support", conn.as_str())
        );
        assert_eq!(call.attributes["transferred_to"], "Support");
        assert_eq!(
            events(&c, &id, "transfer_flow"),
            ["transfer_flow", "transfer_flow_done"]
        );
        let p = path(&c, &id);
        assert!(p.contains(&("go".into(), String::new())), "{p:?}");
    }

    #[test]
    fn an_agent_quick_connect_with_a_flow_offers_the_agent_or_takes_the_error_branch() {
        // Bob is available: the flow's transfer_to_queue offers him the call.
        let mut c = center();
        let (id, mut rx, t) = accepted_whispered_call(&mut c);
        skip_prompts(&mut c, &id, &mut rx, t);
        let _inbox = available(&mut c, "bob", t);
        let conn = transfer(&mut c, &id, "qc-bob", t.plus_ms(1000));
        let call = &c.calls[&id];
        let bob = call.participant("bob").expect("bob offered");
        assert_eq!(bob.connection_id, conn);
        assert!(matches!(bob.state, ContactState::Incoming { .. }));
        assert_eq!(call.attributes["transferred_to"], "Bob");
        assert!(call.flow.is_none());

        // Bob is not available: the error branch (here a hang-up).
        let mut c = center();
        let (id, mut rx, t) = accepted_whispered_call(&mut c);
        skip_prompts(&mut c, &id, &mut rx, t);
        transfer(&mut c, &id, "qc-bob", t.plus_ms(1000));
        assert!(c.calls[&id].participant("bob").is_none());
        let p = path(&c, &id);
        assert!(p.contains(&("go".into(), "error".into())), "{p:?}");
        let rec = c.store().contact(&id).expect("read").expect("record");
        assert_eq!(rec.disconnect_reason.as_deref(), Some("flow_disconnect"));
    }
}
