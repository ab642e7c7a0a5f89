//! The media bridge: every 20 ms, for each call with audio, it takes 20 ms
//! from each party (an agent's socket through a jitter buffer and decoder,
//! or a simulated caller's prompt), and gives each party the mix of all the
//! others that are talking. A held party hears the hold tone instead and is
//! not heard; a muted agent is not heard; DTMF sent to a party is mixed
//! into what it hears. With two parties the "mix" is just the other side;
//! the same path does conferences. Each call's mix of every talking party
//! is recorded to a WAV file.
//!
//! The bridge is a task of its own with its own state, so media work never
//! holds the contact center's lock. The center sends it a [`CallPlan`]
//! whenever a call changes; sockets send it frames. Frames to an agent go
//! through a small bounded channel: when the socket backs up, stale frames
//! are dropped rather than queued, because a WebSocket retransmits and a
//! queue only turns into delay.
//!
//! Into the bridge, nothing is unbounded and nothing blocks the sender
//! (often the center, under its lock). Media frames from sockets go
//! through a bounded queue (`limits.bridge_frame_queue`) with `try_send`:
//! when the bridge falls behind, new frames are dropped and counted, which
//! the jitter buffer conceals. Plans must not be lost, so they do not share
//! that queue: they go to a mailbox that keeps, per call, only the latest
//! plan (a plan is the call's whole desired media, so an older one is
//! worthless once a newer one exists) plus the final `ended` one, so a call
//! that starts and ends between two wake-ups still opens and closes its
//! recording. The mailbox is bounded by the number of calls, like the
//! bridge itself. Socket registrations keep the latest per key; DTMF keeps
//! at most [`MAX_PENDING_DTMF`] requests waiting.

pub mod recorder;
pub mod tones;
pub mod wav;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use media::codec::{Encoder, EncoderSettings};
use media::frame::{BLOCK, PACKET};
use media::jitter::JitterSettings;
use media::receive::ReceiveChain;
use protocol::media::{encode_media_frame, MediaHeader, FLAG_FEC};
use tokio::sync::mpsc;

use recorder::Recorder;
use tones::{DtmfQueue, HoldTone};

/// Frames an agent's socket may have waiting before new ones are dropped.
pub const AGENT_QUEUE: usize = 4;

/// DTMF requests that may wait for the bridge; more are dropped (logged).
pub const MAX_PENDING_DTMF: usize = 256;

/// Stats requests that may wait for the bridge; more are answered empty.
const MAX_PENDING_STATS: usize = 64;

/// How a party takes part right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audio {
    /// Heard by the others, hears them.
    Talking,
    /// Hears the hold tone; not heard.
    Held,
    /// Hears the others; not heard.
    Muted,
}

/// Who a party is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartyKind {
    /// An agent's browser: frames on its socket, tagged with `leg`.
    Agent {
        /// Username.
        agent: String,
        /// Media leg id.
        leg: u32,
    },
    /// A simulated caller playing a prompt and recording what it hears.
    Caller {
        /// What it says.
        play: CallerAudio,
        /// Where to record what it hears (None: not recorded).
        heard: Option<PathBuf>,
    },
}

/// What a simulated caller says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerAudio {
    /// Nothing.
    Silence,
    /// A WAV file, once.
    Prompt(PathBuf),
    /// Whatever it heard 20 ms earlier: an echo line, for measuring the
    /// round trip through the whole path.
    Echo,
    /// A person on the customer phone page: frames on its own socket,
    /// registered with the bridge under `customer:<contact id>`.
    Live {
        /// Media leg id.
        leg: u32,
    },
}

/// The key a customer phone's socket registers its sink under.
pub fn customer_key(contact_id: &str) -> String {
    format!("customer:{contact_id}")
}

/// A party in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedParty {
    /// Its connection id (stable for the call's life).
    pub id: String,
    /// Who.
    pub kind: PartyKind,
    /// How.
    pub audio: Audio,
}

/// The media a call should have now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPlan {
    /// Contact id.
    pub call: String,
    /// The parties with audio; empty or `ended` tears the call's media down.
    pub parties: Vec<PlannedParty>,
    /// The call is over: close its recordings.
    pub ended: bool,
    /// Where to record the call's mix, if recording is on.
    pub recording: Option<PathBuf>,
}

/// What the bridge is told.
#[derive(Debug)]
pub enum Command {
    /// Bring a call's media in line with this plan.
    Plan(CallPlan),
    /// A media frame from an agent's socket (its leg was checked).
    AgentFrame {
        /// Username.
        agent: String,
        /// Leg id from the header.
        leg: u32,
        /// The whole frame.
        bytes: Vec<u8>,
    },
    /// An agent's socket can take frames through this sender.
    AttachAgent {
        /// Username.
        agent: String,
        /// Bounded; full means drop.
        tx: mpsc::Sender<Vec<u8>>,
    },
    /// Play DTMF to one party of a call.
    Dtmf {
        /// Contact id.
        call: String,
        /// The party's connection id.
        to: String,
        /// Keys.
        digits: String,
    },
    /// Test and benchmark hook: report counters.
    Stats(tokio::sync::oneshot::Sender<BridgeStats>),
    /// The backend is stopping: finish every recording, answer with how
    /// many files were closed, and stop.
    Shutdown(tokio::sync::oneshot::Sender<usize>),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BridgeStats {
    /// Calls with media now.
    pub calls: usize,
    /// Frames sent to agents.
    pub frames_sent: u64,
    /// Frames dropped because an agent's socket was backed up or gone.
    pub frames_dropped: u64,
    /// Frames received from agents.
    pub frames_received: u64,
    /// Mixing ticks that ran late (more than 10 ms behind the clock).
    pub late_ticks: u64,
    /// The slowest tick so far, microseconds.
    pub worst_tick_us: u64,
    /// 99th percentile tick time over the last 1,000 ticks, microseconds.
    pub p99_tick_us: u64,
    /// Frames from sockets dropped because the bridge's input queue was
    /// full, plus DTMF requests dropped from a full mailbox.
    pub input_dropped: u64,
}

/// A test-only network impairment on frames the bridge sends to agents:
/// seeded random loss, and random extra delay (which also reorders).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    /// Percent of frames dropped.
    pub loss_percent: f64,
    /// Extra delay, uniformly 0..this many ms.
    pub jitter_ms: f64,
    /// Seed for both.
    pub seed: u64,
}

/// Commands other than media frames, waiting for the bridge task. See
/// the module documentation for why each part is bounded.
#[derive(Default)]
struct Pending {
    /// Per call: the latest live plan, and the `ended` plan if one came.
    plans: HashMap<String, (Option<CallPlan>, Option<CallPlan>)>,
    attach: HashMap<String, mpsc::Sender<Vec<u8>>>,
    dtmf: Vec<(String, String, String)>,
    stats: Vec<tokio::sync::oneshot::Sender<BridgeStats>>,
    /// A graceful stop: applied after everything else in the mailbox, so
    /// the plans that end calls close their recordings first.
    shutdown: Option<tokio::sync::oneshot::Sender<usize>>,
}

struct Mailbox {
    pending: Mutex<Pending>,
    wake: tokio::sync::Notify,
    dropped: AtomicU64,
}

impl Mailbox {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Every update is one insert or push: a poisoned lock is still consistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dropped(&self, what: &str) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // Log the first drop and then every thousandth: a flood must not
        // become a flood of log lines.
        if n == 1 || n % 1000 == 0 {
            tracing::warn!(dropped = n, "media bridge behind: dropped {what}");
        }
    }
}

/// Sends commands to the bridge task.
#[derive(Clone)]
pub struct Bridge {
    frames: mpsc::Sender<Command>,
    mailbox: Arc<Mailbox>,
}

impl Bridge {
    /// Starts the bridge task; at most `frame_queue` media frames wait for it.
    pub fn spawn(impairment: Impairment, frame_queue: usize) -> Bridge {
        let (frames, rx) = mpsc::channel(frame_queue.max(1));
        let mailbox = Arc::new(Mailbox {
            pending: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            dropped: AtomicU64::new(0),
        });
        tokio::spawn(run(rx, mailbox.clone(), impairment));
        Bridge { frames, mailbox }
    }

    /// Sends a command. Never waits: a media frame is dropped (and counted)
    /// when the bridge is behind; everything else goes to the mailbox.
    pub fn send(&self, cmd: Command) {
        if let Command::AgentFrame { .. } = cmd {
            if let Err(mpsc::error::TrySendError::Full(_)) = self.frames.try_send(cmd) {
                self.mailbox.dropped("media frames");
            }
            return;
        }
        {
            let mut p = self.mailbox.pending();
            match cmd {
                Command::Plan(plan) => {
                    let slot = p.plans.entry(plan.call.clone()).or_default();
                    if plan.ended {
                        slot.1 = Some(plan);
                    } else {
                        slot.0 = Some(plan);
                    }
                }
                Command::AttachAgent { agent, tx } => {
                    p.attach.insert(agent, tx);
                }
                Command::Dtmf { call, to, digits } => {
                    if p.dtmf.len() >= MAX_PENDING_DTMF {
                        drop(p);
                        self.mailbox.dropped("DTMF");
                        return;
                    }
                    p.dtmf.push((call, to, digits));
                }
                Command::Stats(reply) => {
                    // Dropping `reply` answers the asker with empty stats.
                    if p.stats.len() < MAX_PENDING_STATS {
                        p.stats.push(reply);
                    }
                }
                Command::Shutdown(reply) => p.shutdown = Some(reply),
                Command::AgentFrame { .. } => {}
            }
        }
        self.mailbox.wake.notify_one();
    }

    /// Finishes every recording (complete headers, synced to disk) and
    /// stops the bridge; resolves with the number of files closed, or
    /// `None` if the bridge had already stopped. Commands sent before this
    /// one (the plans that end calls) are applied first.
    pub async fn shutdown(&self) -> Option<usize> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Shutdown(tx));
        rx.await.ok()
    }

    /// Current counters.
    pub async fn stats(&self) -> BridgeStats {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Stats(tx));
        rx.await.unwrap_or_default()
    }
}

enum Input {
    Socket(Box<ReceiveChain>),
    Prompt {
        samples: Arc<Vec<f32>>,
        pos: usize,
    },
    /// Says back what it heard on the previous tick.
    Echo(Box<[f32; PACKET]>),
}

enum Output {
    Socket {
        agent: String,
        leg: u32,
        encoder: Box<Encoder>,
        seq: u32,
        ts: u32,
    },
    Heard(Option<Box<dyn Recorder>>),
}

struct Party {
    plan: PlannedParty,
    input: Input,
    output: Output,
    pcm: Box<[f32; PACKET]>,
    hold: HoldTone,
    dtmf: DtmfQueue,
}

impl Party {
    /// A party whose audio comes and goes on a socket registered under
    /// `key` (an agent's name, or a customer phone's key) with `leg`.
    fn on_socket(plan: PlannedParty, key: String, leg: u32) -> Option<Party> {
        let chain = ReceiveChain::new(Some(leg), JitterSettings::default()).ok()?;
        // Complexity 2: the bridge encodes one stream per party per tick,
        // and capacity matters more here than the last decibel.
        let encoder = Encoder::new(EncoderSettings {
            complexity: 2,
            ..EncoderSettings::default()
        })
        .ok()?;
        Some(Party {
            input: Input::Socket(Box::new(chain)),
            output: Output::Socket {
                agent: key,
                leg,
                encoder: Box::new(encoder),
                seq: 0,
                ts: 0,
            },
            plan,
            pcm: Box::new([0.0; PACKET]),
            hold: HoldTone::new(),
            dtmf: DtmfQueue::default(),
        })
    }
}

struct CallMedia {
    parties: Vec<Party>,
    recording: Option<Box<dyn Recorder>>,
}

struct Hub {
    calls: HashMap<String, CallMedia>,
    sinks: HashMap<String, mpsc::Sender<Vec<u8>>>,
    prompts: HashMap<PathBuf, Arc<Vec<f32>>>,
    start: Instant,
    stats: BridgeStats,
    tick_times: Vec<u64>,
    mix: Box<[f32; PACKET]>,
    frame: Vec<u8>,
    impairment: Impairment,
    rng: u64,
    /// Impaired frames waiting for their delayed send time (ms, agent, frame).
    delayed: Vec<(f64, String, Vec<u8>)>,
}

const TICK: Duration = Duration::from_millis(20);

async fn run(mut rx: mpsc::Receiver<Command>, mailbox: Arc<Mailbox>, impairment: Impairment) {
    let mut hub = Hub {
        calls: HashMap::new(),
        sinks: HashMap::new(),
        prompts: HashMap::new(),
        start: Instant::now(),
        stats: BridgeStats::default(),
        tick_times: Vec::with_capacity(1000),
        mix: Box::new([0.0; PACKET]),
        frame: Vec::with_capacity(1400),
        impairment,
        rng: impairment.seed | 1,
        delayed: Vec::new(),
    };
    let mut interval = tokio::time::interval(TICK);
    // Audio is paced by this clock: a late tick is made up, not skipped,
    // so every party gets 50 packets a second.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut stopped: Option<tokio::sync::oneshot::Sender<usize>> = None;
    loop {
        tokio::select! {
            biased;
            () = mailbox.wake.notified() => {
                let mut pending = std::mem::take(&mut *mailbox.pending());
                let stop = pending.shutdown.take();
                hub.stats.input_dropped = mailbox.dropped.load(Ordering::Relaxed);
                hub.apply_pending(pending);
                if let Some(reply) = stop {
                    stopped = Some(reply);
                    break;
                }
            }
            cmd = rx.recv() => match cmd {
                Some(Command::Shutdown(reply)) => {
                    stopped = Some(reply);
                    break;
                }
                Some(cmd) => hub.apply(cmd),
                None => break,
            },
            at = interval.tick() => {
                if at.elapsed() > Duration::from_millis(10) {
                    hub.stats.late_ticks += 1;
                }
                let t = Instant::now();
                hub.tick();
                hub.record_tick(t.elapsed().as_micros() as u64);
            }
        }
    }
    let mut closed = 0;
    for (_, call) in hub.calls.drain() {
        closed += close_call(call);
    }
    if let Some(reply) = stopped {
        let _ = reply.send(closed);
    }
}

/// Finishes a call's recordings; returns how many files it closed.
fn close_call(call: CallMedia) -> usize {
    let mut closed = 0;
    if let Some(w) = call.recording {
        match w.finish() {
            Ok(()) => closed += 1,
            Err(e) => tracing::warn!("recording: {e}"),
        }
    }
    for p in call.parties {
        if let Output::Heard(Some(w)) = p.output {
            match w.finish() {
                Ok(()) => closed += 1,
                Err(e) => tracing::warn!("caller recording: {e}"),
            }
        }
    }
    closed
}

impl Hub {
    fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    fn record_tick(&mut self, us: u64) {
        self.stats.worst_tick_us = self.stats.worst_tick_us.max(us);
        if self.tick_times.len() == 1000 {
            let mut sorted = self.tick_times.clone();
            sorted.sort_unstable();
            self.stats.p99_tick_us = sorted[989];
            self.tick_times.clear();
        }
        self.tick_times.push(us);
    }

    /// Applies the mailbox: sockets first, then plans (each call's live
    /// plan before its `ended` one), then DTMF for the parties they made.
    fn apply_pending(&mut self, p: Pending) {
        for (agent, tx) in p.attach {
            self.sinks.insert(agent, tx);
        }
        for (_, (live, ended)) in p.plans {
            for plan in [live, ended].into_iter().flatten() {
                self.plan(plan);
            }
        }
        for (call, to, digits) in p.dtmf {
            self.apply(Command::Dtmf { call, to, digits });
        }
        for reply in p.stats {
            self.apply(Command::Stats(reply));
        }
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Plan(plan) => self.plan(plan),
            Command::AttachAgent { agent, tx } => {
                self.sinks.insert(agent, tx);
            }
            Command::AgentFrame { agent, leg, bytes } => {
                let now = self.now_ms();
                self.stats.frames_received += 1;
                for call in self.calls.values_mut() {
                    for p in call.parties.iter_mut() {
                        let mine = matches!(&p.output, Output::Socket { agent: a, leg: l, .. } if *a == agent && *l == leg);
                        if let (true, Input::Socket(chain)) = (mine, &mut p.input) {
                            if let Err(e) = chain.push_frame(&bytes, now) {
                                tracing::debug!("frame from {agent}: {e}");
                            }
                            return;
                        }
                    }
                }
            }
            Command::Dtmf { call, to, digits } => {
                if let Some(p) = self
                    .calls
                    .get_mut(&call)
                    .and_then(|c| c.parties.iter_mut().find(|p| p.plan.id == to))
                {
                    p.dtmf.push(&digits);
                }
            }
            Command::Stats(reply) => {
                let mut s = self.stats;
                s.calls = self.calls.len();
                let _ = reply.send(s);
            }
            // Handled by the loop, which stops.
            Command::Shutdown(_) => {}
        }
    }

    fn prompt(&mut self, path: &PathBuf) -> Arc<Vec<f32>> {
        if let Some(p) = self.prompts.get(path) {
            return p.clone();
        }
        let samples = match wav::read_48k_mono(path) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!("caller prompt: {e}");
                Arc::new(Vec::new())
            }
        };
        self.prompts.insert(path.clone(), samples.clone());
        samples
    }

    fn plan(&mut self, plan: CallPlan) {
        if plan.ended || plan.parties.is_empty() {
            if let Some(call) = self.calls.remove(&plan.call) {
                let _ = close_call(call);
            }
            if plan.ended {
                // A customer phone's sink lives as long as its call.
                self.sinks.remove(&customer_key(&plan.call));
            }
            return;
        }
        if !self.calls.contains_key(&plan.call) {
            let recording = plan.recording.as_ref().and_then(|p| {
                recorder::create(p)
                    .map_err(|e| tracing::warn!("recording: {e}"))
                    .ok()
            });
            self.calls.insert(
                plan.call.clone(),
                CallMedia {
                    parties: Vec::new(),
                    recording,
                },
            );
        }
        // Parties that left.
        let Some(call) = self.calls.get_mut(&plan.call) else {
            return;
        };
        let mut leaving = Vec::new();
        call.parties.retain_mut(|p| {
            let keep = plan
                .parties
                .iter()
                .any(|q| q.id == p.plan.id && q.kind == p.plan.kind);
            if !keep {
                leaving.push(std::mem::replace(&mut p.output, Output::Heard(None)));
            }
            keep
        });
        for out in leaving {
            if let Output::Heard(Some(w)) = out {
                let _ = w.finish();
            }
        }
        // Parties that joined or changed.
        for q in plan.parties {
            let call = match self.calls.get_mut(&plan.call) {
                Some(c) => c,
                None => return,
            };
            if let Some(p) = call.parties.iter_mut().find(|p| p.plan.id == q.id) {
                if q.audio == Audio::Held && p.plan.audio != Audio::Held {
                    // Start the hold pattern with its beeps: the caller
                    // hears at once that they are on hold.
                    p.hold = HoldTone::new();
                }
                p.plan.audio = q.audio;
                continue;
            }
            let party = match &q.kind {
                PartyKind::Agent { agent, leg } => {
                    match Party::on_socket(q.clone(), agent.clone(), *leg) {
                        Some(p) => p,
                        None => continue,
                    }
                }
                PartyKind::Caller {
                    play: CallerAudio::Live { leg },
                    ..
                } => match Party::on_socket(q.clone(), customer_key(&plan.call), *leg) {
                    Some(p) => p,
                    None => continue,
                },
                PartyKind::Caller { play, heard } => {
                    let input = match play {
                        CallerAudio::Prompt(path) => Input::Prompt {
                            samples: self.prompt(path),
                            pos: 0,
                        },
                        CallerAudio::Silence => Input::Prompt {
                            samples: Arc::new(Vec::new()),
                            pos: 0,
                        },
                        CallerAudio::Echo => Input::Echo(Box::new([0.0; PACKET])),
                        CallerAudio::Live { .. } => continue,
                    };
                    let heard = heard.as_ref().and_then(|p| {
                        recorder::create(p)
                            .map_err(|e| tracing::warn!("caller recording: {e}"))
                            .ok()
                    });
                    Party {
                        input,
                        output: Output::Heard(heard),
                        plan: q.clone(),
                        pcm: Box::new([0.0; PACKET]),
                        hold: HoldTone::new(),
                        dtmf: DtmfQueue::default(),
                    }
                }
            };
            if let Some(call) = self.calls.get_mut(&plan.call) {
                call.parties.push(party);
            }
        }
    }

    fn next_random(&mut self) -> f64 {
        // xorshift64*: seeded, so an impaired test run is repeatable.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Applies the impairment to frames leaving this tick.
    fn impair(&mut self, now: f64, outgoing: Vec<(String, Vec<u8>)>) {
        for (agent, frame) in outgoing {
            if self.next_random() * 100.0 < self.impairment.loss_percent {
                self.stats.frames_dropped += 1;
                continue;
            }
            let due = now + self.next_random() * self.impairment.jitter_ms;
            self.delayed.push((due, agent, frame));
        }
        self.send_delayed(now);
    }

    /// Sends impaired frames whose delay is over, oldest first.
    fn send_delayed(&mut self, now: f64) {
        self.delayed.sort_by(|a, b| a.0.total_cmp(&b.0));
        let due = self.delayed.iter().take_while(|d| d.0 <= now).count();
        for (_, agent, frame) in self.delayed.drain(..due) {
            match self.sinks.get(&agent) {
                Some(tx) if tx.try_send(frame).is_ok() => self.stats.frames_sent += 1,
                _ => self.stats.frames_dropped += 1,
            }
        }
    }

    fn tick(&mut self) {
        let now = self.now_ms();
        let impaired = self.impairment.loss_percent > 0.0 || self.impairment.jitter_ms > 0.0;
        let mut outgoing: Vec<(String, Vec<u8>)> = Vec::new();
        let Hub {
            calls,
            sinks,
            stats,
            mix,
            frame,
            ..
        } = self;
        for call in calls.values_mut() {
            // 1. Everyone's 20 ms.
            for p in call.parties.iter_mut() {
                match &mut p.input {
                    Input::Socket(chain) => {
                        let (a, b) = p.pcm.split_at_mut(BLOCK);
                        chain.next_block(a.try_into().expect("half a packet is a block"), now);
                        chain.next_block(
                            b.try_into().expect("half a packet is a block"),
                            now + 10.0,
                        );
                    }
                    Input::Prompt { samples, pos } => {
                        for x in p.pcm.iter_mut() {
                            *x = samples.get(*pos).copied().unwrap_or(0.0);
                            *pos += 1;
                        }
                    }
                    Input::Echo(last) => p.pcm.copy_from_slice(&last[..]),
                }
            }
            // 2. The recording: everyone who is heard.
            if let Some(rec) = &mut call.recording {
                mix.fill(0.0);
                for p in call
                    .parties
                    .iter()
                    .filter(|p| p.plan.audio == Audio::Talking)
                {
                    for (m, x) in mix.iter_mut().zip(p.pcm.iter()) {
                        *m += x;
                    }
                }
                let _ = rec.write(&mix[..]);
            }
            // 3. Each party's mix of the others.
            for j in 0..call.parties.len() {
                mix.fill(0.0);
                if call.parties[j].plan.audio == Audio::Held {
                    call.parties[j].hold.fill(mix);
                } else {
                    for (i, p) in call.parties.iter().enumerate() {
                        if i != j && p.plan.audio == Audio::Talking {
                            for (m, x) in mix.iter_mut().zip(p.pcm.iter()) {
                                *m += x;
                            }
                        }
                    }
                }
                let p = &mut call.parties[j];
                p.dtmf.mix_into(mix);
                for m in mix.iter_mut() {
                    *m = m.clamp(-1.0, 1.0);
                }
                if let Input::Echo(last) = &mut p.input {
                    last.copy_from_slice(&mix[..]);
                }
                match &mut p.output {
                    Output::Heard(w) => {
                        if let Some(w) = w {
                            let _ = w.write(&mix[..]);
                        }
                    }
                    Output::Socket {
                        agent,
                        leg,
                        encoder,
                        seq,
                        ts,
                    } => {
                        let header = MediaHeader {
                            flags: FLAG_FEC,
                            leg: *leg,
                            sequence: *seq,
                            timestamp: *ts,
                        };
                        *seq = seq.wrapping_add(1);
                        *ts = ts.wrapping_add(PACKET as u32);
                        let Ok(payload) = encoder.encode(mix) else {
                            continue;
                        };
                        encode_media_frame(&header, payload, frame);
                        if impaired {
                            outgoing.push((agent.clone(), frame.clone()));
                            continue;
                        }
                        match sinks.get(agent.as_str()) {
                            Some(tx) if tx.try_send(frame.clone()).is_ok() => {
                                stats.frames_sent += 1
                            }
                            _ => stats.frames_dropped += 1,
                        }
                    }
                }
            }
        }
        if impaired {
            self.impair(now, outgoing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller_plan(call: &str, ended: bool) -> CallPlan {
        CallPlan {
            call: call.into(),
            parties: vec![PlannedParty {
                id: format!("k-{call}"),
                kind: PartyKind::Caller {
                    play: CallerAudio::Silence,
                    heard: None,
                },
                audio: Audio::Talking,
            }],
            ended,
            recording: None,
        }
    }

    /// On a single-threaded runtime the bridge task cannot run while this
    /// test sends: the frame queue fills and drops, the plans do not.
    #[tokio::test(flavor = "current_thread")]
    async fn a_flood_of_frames_is_dropped_but_plans_are_not() {
        let bridge = Bridge::spawn(Impairment::default(), 16);
        for i in 0..5_000u32 {
            bridge.send(Command::AgentFrame {
                agent: "alice".into(),
                leg: 1,
                bytes: vec![0; 100 + (i % 10) as usize],
            });
        }
        // Many plans for one call coalesce into its latest; another call
        // starts and ends before the bridge runs.
        for _ in 0..1_000 {
            bridge.send(Command::Plan(caller_plan("c-1", false)));
        }
        bridge.send(Command::Plan(caller_plan("c-2", false)));
        bridge.send(Command::Plan(caller_plan("c-2", true)));
        {
            let p = bridge.mailbox.pending();
            assert_eq!(p.plans.len(), 2, "one slot per call");
        }
        let stats = bridge.stats().await;
        assert_eq!(stats.calls, 1, "c-1 live, c-2 opened and closed");
        assert_eq!(stats.input_dropped, 5_000 - 16, "{stats:?}");
        for _ in 0..(MAX_PENDING_DTMF + 10) {
            bridge.send(Command::Dtmf {
                call: "c-1".into(),
                to: "k-c-1".into(),
                digits: "1".into(),
            });
        }
        assert_eq!(bridge.mailbox.pending().dtmf.len(), MAX_PENDING_DTMF);
        let stats = bridge.stats().await;
        assert_eq!(stats.input_dropped, 5_000 - 16 + 10);
    }
}
