//! The media bridge: every 20 ms, for each call with audio, it takes 20 ms
//! from each party (an agent's socket through a jitter buffer and decoder,
//! or a simulated caller's prompt), and gives each party the mix of all the
//! others that are talking. A held party hears the hold tone instead and is
//! not heard; a muted agent is not heard; DTMF sent to a party is mixed
//! into what it hears. With two parties the "mix" is just the other side;
//! the same path does conferences. (That is the mixer's model; most legs
//! are forwarded or canned without it, see [`route`].) Recordings are each
//! party's packets in Ogg Opus ([`parties`]); a mix is made only when one
//! is fetched ([`mixdown`]).
//!
//! The bridge is a task of its own with its own state, so media work never
//! holds the contact center's lock. The center sends it a [`CallPlan`]
//! whenever a call changes; sockets send it frames. Frames to an agent go
//! through a small bounded channel: when the socket backs up, stale frames
//! are dropped rather than queued, because a WebSocket retransmits and a
//! queue only turns into delay.
//!
//! Into the bridge, nothing is unbounded and nothing blocks the sender
//! (often the center, under its lock). Media frames the mixer needs (only
//! those someone hears in a mix, or a simulated caller hears: a forwarded
//! call hands it nothing) go into a bounded inbox per mixer
//! (`limits.bridge_frame_queue` frames), copied into its byte arena under
//! a short lock, **without waking the mixer**: the mixer takes the whole
//! inbox each time it wakes for a phase slot that has calls (see
//! [`SLOTS`] and [`wheel`]: one swap, no allocation per frame), and each
//! frame keeps the instant it was read, so the jitter buffer sees true
//! arrival times. When the inbox is full, new frames are dropped and
//! counted, which the jitter buffer conceals. Plans must not be lost, so they do not share
//! that queue: they go to a mailbox that keeps, per call, only the latest
//! plan (a plan is the call's whole desired media, so an older one is
//! worthless once a newer one exists) plus the final `ended` one, so a call
//! that starts and ends between two wake-ups still opens and closes its
//! recording. The mailbox is bounded by the number of calls, like the
//! bridge itself. Socket registrations keep the latest per key; DTMF keeps
//! at most [`MAX_PENDING_DTMF`] requests waiting.

pub mod mixdown;
pub mod ogg;
pub mod parties;
pub mod route;
pub mod tones;
pub mod wav;
mod wheel;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use media::codec::{Encoder, EncoderSettings};
use media::frame::{BLOCK, PACKET};
use media::jitter::JitterSettings;
use media::receive::ReceiveChain;
use protocol::media::{MediaHeader, FLAG_FEC, HEADER_LEN};
use tokio::sync::mpsc;

use parties::PartyFile;
use route::{InRoute, Listen, MediaOut, OutLeg, Routes, SocketSlot};
use tones::{DtmfQueue, HoldTone};

/// Frames an agent's socket may have waiting before new ones are dropped.
pub const AGENT_QUEUE: usize = 4;

/// DTMF requests that may wait for the bridge; more are dropped (logged).
pub const MAX_PENDING_DTMF: usize = 256;

/// The most mixer threads the bridge starts (one per core up to this).
pub const MAX_MIXERS: usize = 8;

/// Packets of a socket party kept between two ticks for a simulated
/// caller that hears it alone (its "heard" file); more are dropped.
const RAW_KEPT: usize = 32;

/// Prompts a mixer keeps decoded and encoded; beyond, the ones no party
/// plays are dropped.
const MAX_CACHED_PROMPTS: usize = 256;

/// A talker whose 20 ms is below this power (-55 dBFS RMS, well under
/// speech and a denoised microphone's room noise) is silent for the mix.
const SILENT_POWER: f32 = 3.16e-6;

/// Ticks a talker stays active for the mix after its last loud 20 ms
/// (200 ms: the pauses inside a sentence do not switch a listener between
/// a mix and one talker's packets).
const ACTIVE_HANG: u8 = 10;

/// The encoder effort of the mixes (0-10). A mix is the one stream the
/// bridge still encodes, once per mixed listener per tick, so capacity
/// matters more here than the last decibel: complexity 0 costs about 64
/// us an encode against 109 at 2 (/work/shared/notes/bridge-scale.md),
/// and on a two-talker speech mix loses 0.4 dB of SNR (8.9 against 9.3
/// dB) and 0.006 of correlation (0.933 against 0.940), on two tones 0.5
/// dB (media-wasm/tests/mix_complexity.rs, docs/benchmarks.md).
const MIX_COMPLEXITY: i32 = 0;

/// Stats requests that may wait for the bridge; more are answered empty.
const MAX_PENDING_STATS: usize = 64;

/// Phase slots in a mixer's 20 ms tick. Each call is ticked at its own
/// slot's offset (slot `k` at `k` ms), so a mixer spreads its calls over
/// the tick instead of mixing them all at its start: a call's packets
/// wait for the few mixes of its own slot, not for every encode of the
/// mixer, and the encodes no longer come as one burst that takes a core
/// for milliseconds. A mixer wakes only for the slots that have calls
/// to tick ([`wheel`]).
const SLOTS: usize = 20;

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
        /// The call its route names (`None`: look in every call).
        call: Option<Arc<str>>,
        /// Username.
        agent: String,
        /// Leg id from the header.
        leg: u32,
        /// The whole frame.
        bytes: Vec<u8>,
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
    /// Mixing ticks that ran late (more than 10 ms behind the clock),
    /// counted per phase slot with calls to tick (see [`SLOTS`]).
    pub late_ticks: u64,
    /// The slowest tick so far, microseconds: a phase slot's work, which
    /// is what its calls' packets wait for.
    pub worst_tick_us: u64,
    /// 99th percentile tick time (a phase slot's work) over the last
    /// 1,000 slot ticks, microseconds.
    pub p99_tick_us: u64,
    /// Frames from sockets dropped because the bridge's input queue was
    /// full, plus DTMF requests dropped from a full mailbox.
    pub input_dropped: u64,
    /// Frames forwarded without decoding (a subset of `frames_sent`).
    pub frames_forwarded: u64,
    /// Forwarding delay inside the backend, frame read to frame written.
    pub delay: route::DelaySummary,
    /// Packets (or, rarely, control commands) the recording writer's
    /// full inbox refused.
    pub recording_dropped: u64,
    /// Calls the mixer's tick skips now: forwarded throughout, so it has
    /// nothing to do for them.
    pub calls_idle: usize,
    /// Mixes encoded (one Opus encode each).
    pub mix_encodes: u64,
    /// Mixes sent without an encode: every other talker was silent, so
    /// the listener got the one talker's own packets, or canned silence.
    pub mix_encodes_saved: u64,
    /// Times the mixers woke (for a busy phase slot's deadline or for a
    /// command): an idle mixer sleeps until a command comes.
    pub wakes: u64,
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
    dtmf: Vec<(String, String, String)>,
    stats: Vec<tokio::sync::oneshot::Sender<BridgeStats>>,
    /// A graceful stop: applied after everything else in the mailbox, so
    /// the plans that end calls close their recordings first.
    shutdown: Option<tokio::sync::oneshot::Sender<usize>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.plans.is_empty()
            && self.dtmf.is_empty()
            && self.stats.is_empty()
            && self.shutdown.is_none()
    }
}

struct Mailbox {
    pending: Mutex<Pending>,
    /// Wakes a mixer thread sleeping in [`Mailbox::wait`].
    ready: Condvar,
    /// Wakes a mixer running as a task (tests).
    wake: tokio::sync::Notify,
    dropped: AtomicU64,
    /// Every handle of the bridge is gone: the mixer stops.
    closed: AtomicBool,
}

impl Mailbox {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Every update is one insert or push: a poisoned lock is still consistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        self.ready.notify_one();
        self.wake.notify_one();
    }

    /// Blocks the mixer's thread until a command waits, the bridge is
    /// dropped, or `until` passes (`None`: no deadline). The deadline is
    /// a futex wait to that instant, within about 0.1-0.2 ms of it (see
    /// [`wheel`] for why not the Tokio timer).
    fn wait(&self, until: Option<Instant>) {
        let mut p = self.pending();
        while p.is_empty() && !self.closed.load(Ordering::Acquire) {
            p = match until {
                None => self.ready.wait(p).unwrap_or_else(|e| e.into_inner()),
                Some(t) => {
                    let left = t.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.ready
                        .wait_timeout(p, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// A command waits, or the bridge is gone.
    fn has_work(&self) -> bool {
        !self.pending().is_empty() || self.closed.load(Ordering::Acquire)
    }

    /// The bridge's last handle is gone: the mixer stops at its next wake.
    fn close(&self) {
        {
            // Under the lock, so a mixer between its check and its wait
            // cannot miss it.
            let _p = self.pending();
            self.closed.store(true, Ordering::Release);
        }
        self.notify();
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

/// Dropped with the last handle of the bridge: the mixer stops.
struct Alive(Arc<Mailbox>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// One mixer thread: its frame inbox and its mailbox. (`alive` carries
/// nothing: the mixer stops when every copy of it is gone, i.e. when the
/// bridge is dropped.)
#[derive(Clone)]
struct Shard {
    _alive: Arc<Alive>,
    inbox: Arc<FrameInbox>,
    mailbox: Arc<Mailbox>,
}

/// A frame waiting for its mixer: its bytes are
/// `FrameBatch::bytes[start..start + len]`.
struct Inbound {
    /// The call its route names (`None`: look in every call).
    call: Option<Arc<str>>,
    /// The socket leg it came from, as [`route::source_id`] names it.
    source: u64,
    start: usize,
    len: usize,
    /// When the socket read it.
    at: Instant,
}

#[derive(Default)]
struct FrameBatch {
    frames: Vec<Inbound>,
    bytes: Vec<u8>,
}

/// Media frames for one mixer, taken a batch per tick (see the module
/// documentation).
struct FrameInbox {
    batch: Mutex<FrameBatch>,
    cap: usize,
}

impl FrameInbox {
    fn batch(&self) -> std::sync::MutexGuard<'_, FrameBatch> {
        // Every update is a push: a poisoned lock is still consistent.
        self.batch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies a frame in; false when the inbox is full.
    fn push(&self, call: Option<Arc<str>>, source: u64, bytes: &[u8], at: Instant) -> bool {
        let mut b = self.batch();
        if b.frames.len() >= self.cap {
            return false;
        }
        let start = b.bytes.len();
        b.bytes.extend_from_slice(bytes);
        b.frames.push(Inbound {
            call,
            source,
            start,
            len: bytes.len(),
            at,
        });
        true
    }

    /// Swaps the waiting frames into `spare` (which must be empty).
    fn take(&self, spare: &mut FrameBatch) {
        std::mem::swap(&mut *self.batch(), spare);
    }
}

/// Sends commands to the bridge: routes for the sockets, and a small fixed
/// set of mixer threads (about one per core), each with its own clock and
/// its share of the calls (by a hash of the call id).
#[derive(Clone)]
pub struct Bridge {
    shards: Arc<[Shard]>,
    routes: Arc<Routes>,
}

impl Bridge {
    /// Starts the bridge's mixers, one thread per core (at most
    /// [`MAX_MIXERS`]), each with its own 20 ms clock so mixing never
    /// occupies the sockets' runtime; at most `frame_queue` media frames
    /// wait for each.
    pub fn spawn(impairment: Impairment, frame_queue: usize) -> Bridge {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_MIXERS);
        let bridge = Bridge::new(impairment, frame_queue, n);
        for (i, shard) in bridge.shards.iter().enumerate() {
            let mixer = Mixer::new(shard, impairment, bridge.routes.clone());
            let started = std::thread::Builder::new()
                .name(format!("bridge-mixer-{i}"))
                .spawn(move || {
                    // The mixer sleeps on its own clock (see `wheel`), not
                    // on a runtime's timer; the runtime is entered only so
                    // that whatever its sends reach may find one.
                    match tokio::runtime::Builder::new_current_thread().build() {
                        Ok(rt) => {
                            let _in = rt.enter();
                            run_thread(mixer);
                        }
                        Err(e) => tracing::error!("media mixer runtime: {e}"),
                    }
                });
            if let Err(e) = started {
                tracing::error!("media mixer thread: {e}");
            }
        }
        bridge
    }

    /// Starts one mixer as a task on the current runtime (tests that need
    /// it to run only when they yield).
    #[cfg(test)]
    fn spawn_task(impairment: Impairment, frame_queue: usize) -> Bridge {
        let bridge = Bridge::new(impairment, frame_queue, 1);
        for shard in bridge.shards.iter() {
            tokio::spawn(run_task(Mixer::new(
                shard,
                impairment,
                bridge.routes.clone(),
            )));
        }
        bridge
    }

    fn new(impairment: Impairment, frame_queue: usize, mixers: usize) -> Bridge {
        let mut shards = Vec::new();
        for _ in 0..mixers.max(1) {
            let mailbox = Arc::new(Mailbox {
                pending: Mutex::default(),
                ready: Condvar::new(),
                wake: tokio::sync::Notify::new(),
                dropped: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            });
            shards.push(Shard {
                _alive: Arc::new(Alive(mailbox.clone())),
                inbox: Arc::new(FrameInbox {
                    batch: Mutex::default(),
                    cap: frame_queue.max(1),
                }),
                mailbox,
            });
        }
        let impaired = impairment.loss_percent > 0.0 || impairment.jitter_ms > 0.0;
        let mut routes = Routes::new(!impaired);
        routes.recorder = Some(parties::PartyRecorder::start());
        let routes = Arc::new(routes);
        Bridge {
            shards: shards.into(),
            routes,
        }
    }

    /// The mixer that owns `call`.
    fn shard(&self, call: &str) -> &Shard {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        call.hash(&mut h);
        &self.shards[(h.finish() % self.shards.len() as u64) as usize]
    }

    /// A socket registered under `key` (an agent's name, or
    /// [`customer_key`]) takes media frames through `tx` from now on; a
    /// newer socket of the same key replaces it. The slot returned is
    /// where the socket looks up the route of each frame it reads.
    pub fn attach(&self, key: &str, tx: mpsc::Sender<MediaOut>) -> Arc<SocketSlot> {
        self.routes.attach(key, tx)
    }

    /// Like [`Bridge::attach`], for an agent socket whose client announced
    /// `media_legs` (`mixes_legs`): in a conference it gets each talker on
    /// the talker's own leg instead of a mix.
    pub fn attach_with_legs(
        &self,
        key: &str,
        tx: mpsc::Sender<MediaOut>,
        mixes_legs: bool,
    ) -> Arc<SocketSlot> {
        self.routes.attach_with_legs(key, tx, mixes_legs)
    }

    /// Like [`Bridge::attach_with_legs`], for a socket whose writer takes
    /// forwarded frames straight from the reading task when it is idle
    /// (see [`route::DirectWrite`]).
    pub fn attach_direct(
        &self,
        key: &str,
        tx: mpsc::Sender<MediaOut>,
        mixes_legs: bool,
        direct: Arc<dyn route::DirectWrite>,
    ) -> Arc<SocketSlot> {
        self.routes.attach_direct(key, tx, mixes_legs, direct)
    }

    /// A media frame a socket read on a routed leg: forwarded at once to
    /// whoever hears this leg alone, and given to the mixer (which
    /// records it and mixes it for whoever hears more than one talker).
    pub fn on_frame(&self, key: &str, route: &InRoute, bytes: &[u8], since: Instant) {
        let stats = &self.routes.stats;
        stats.received.fetch_add(1, Ordering::Relaxed);
        let Ok(frame) = protocol::media::decode_media_frame(bytes) else {
            return;
        };
        if let (Some(file), Some(rec)) = (&route.record, &self.routes.recorder) {
            rec.packet_codec(file, frame.codec, frame.payload, frame.header.timestamp);
        }
        for out in &route.forward {
            if out.offer_codec(
                route.source,
                false,
                &frame.header,
                frame.codec,
                frame.payload,
                since,
                stats,
            ) != route::Sent::NotMine
            {
                stats.forwarded.fetch_add(1, Ordering::Relaxed);
            }
        }
        if route.to_mixer {
            let _ = key;
            let shard = self.shard(&route.call);
            if !shard
                .inbox
                .push(Some(route.call.clone()), route.source, bytes, since)
            {
                shard.mailbox.dropped("media frames");
            }
        }
    }

    /// Sends a command. Never waits: a media frame is dropped (and counted)
    /// when the bridge is behind; everything else goes to the mailbox.
    /// Stats and shutdown go to every mixer (see [`Bridge::stats`] and
    /// [`Bridge::shutdown`]); everything else to the call's mixer.
    pub fn send(&self, cmd: Command) {
        let shard = match &cmd {
            Command::Plan(p) => self.shard(&p.call),
            Command::AgentFrame { call: Some(c), .. } => self.shard(c),
            Command::Dtmf { call, .. } => self.shard(call),
            _ => &self.shards[0],
        };
        shard.send(cmd, &self.routes);
    }

    /// Finishes every recording (complete headers, synced to disk) and
    /// stops the bridge; resolves with the number of files closed, or
    /// `None` if the bridge had already stopped. Commands sent before this
    /// one (the plans that end calls) are applied first.
    pub async fn shutdown(&self) -> Option<usize> {
        let mut waits = Vec::new();
        for shard in self.shards.iter() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            shard.send(Command::Shutdown(tx), &self.routes);
            waits.push(rx);
        }
        let mut closed = None;
        for rx in waits {
            if let Ok(n) = rx.await {
                closed = Some(closed.unwrap_or(0) + n);
            }
        }
        closed
    }

    /// Resolves once every command the mixers had (the plans ending calls)
    /// is applied and every recording write queued before is on disk: a
    /// recording fetched after this is complete.
    pub async fn settle_recordings(&self) {
        let _ = self.stats().await;
        if let Some(rec) = self.routes.recorder.clone() {
            let _ = tokio::task::spawn_blocking(move || rec.flush()).await;
        }
    }

    /// Current counters, summed over the mixers.
    pub async fn stats(&self) -> BridgeStats {
        let mut waits = Vec::new();
        for shard in self.shards.iter() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            shard.send(Command::Stats(tx), &self.routes);
            waits.push(rx);
        }
        let mut total = BridgeStats::default();
        for rx in waits {
            let s = rx.await.unwrap_or_default();
            total.calls += s.calls;
            total.calls_idle += s.calls_idle;
            total.frames_received += s.frames_received;
            total.frames_dropped += s.frames_dropped;
            total.late_ticks += s.late_ticks;
            total.worst_tick_us = total.worst_tick_us.max(s.worst_tick_us);
            total.p99_tick_us = total.p99_tick_us.max(s.p99_tick_us);
            total.input_dropped += s.input_dropped;
            total.mix_encodes += s.mix_encodes;
            total.mix_encodes_saved += s.mix_encodes_saved;
            total.wakes += s.wakes;
        }
        let r = &self.routes.stats;
        total.frames_sent = r.sent.load(Ordering::Relaxed);
        total.frames_dropped += r.dropped.load(Ordering::Relaxed);
        total.frames_forwarded = r.forwarded.load(Ordering::Relaxed);
        total.frames_received = total
            .frames_received
            .max(r.received.load(Ordering::Relaxed));
        total.delay = route::FORWARD_DELAY.summary();
        total.recording_dropped = self
            .routes
            .recorder
            .as_ref()
            .map_or(0, |r| r.dropped.load(Ordering::Relaxed));
        total
    }
}

impl Shard {
    fn send(&self, cmd: Command, routes: &Routes) {
        if let Command::AgentFrame {
            call,
            agent,
            leg,
            bytes,
        } = cmd
        {
            let source = route::source_id("socket", &agent, leg);
            if !self.inbox.push(call, source, &bytes, Instant::now()) {
                self.mailbox.dropped("media frames");
            }
            return;
        }
        {
            let mut p = self.mailbox.pending();
            match cmd {
                Command::Plan(plan) => {
                    // Routes first, synchronously: a frame read after the
                    // center changed the call goes where the call now says.
                    routes.apply_plan(&plan);
                    let slot = p.plans.entry(plan.call.clone()).or_default();
                    if plan.ended {
                        slot.1 = Some(plan);
                    } else {
                        slot.0 = Some(plan);
                    }
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
        self.mailbox.notify();
    }
}

enum Input {
    /// A socket leg; its jitter buffer and decoder exist only while
    /// someone hears it in a mix (a forwarded party needs neither, and
    /// they were most of a forwarded call's memory).
    Socket(Option<Box<ReceiveChain>>),
    Prompt {
        samples: Arc<Vec<f32>>,
        /// The same prompt encoded once: what a listener hearing only
        /// this caller gets, with no encode per tick.
        packets: Arc<Mutex<PromptPackets>>,
        pos: usize,
    },
    /// Says back what it heard on the previous tick.
    Echo(Box<[f32; PACKET]>),
}

enum Output {
    Socket {
        out: Arc<OutLeg>,
        /// The mixer as this leg's source.
        source: u64,
        /// Made the first time the party hears a mix (a forwarded or
        /// canned leg never needs one).
        encoder: Option<Box<Encoder>>,
        seq: u32,
        ts: u32,
        /// Position in the canned hold loop.
        hold_pos: usize,
    },
    /// A simulated caller: what it hears goes to its "heard" file as
    /// packets (the ones it would be sent), see [`Heard`].
    Heard(Option<Box<Heard>>),
}

/// A simulated caller's "heard" file: the packets a socket in its place
/// would get (forwarded, canned, or mixed only when it hears several
/// talkers or DTMF), with timestamps kept continuous across source
/// switches like [`route::OutLeg`] does. Nothing is decoded for it.
struct Heard {
    file: Arc<PartyFile>,
    /// The source of the last packet, and the timestamp offset fixed when
    /// it started.
    src: u64,
    offset: u32,
    /// This tick's timestamp on the file's timeline (20 ms a tick).
    tick_ts: u32,
    /// Where the file's stream has got to (the end of the furthest packet
    /// written). A forwarded source can run ahead of the tick (a burst of
    /// queued packets at its switch, or its own clock), and the writer
    /// drops a packet behind the stream, so a switch never starts behind
    /// it.
    next_ts: u32,
    /// Position in the canned hold loop.
    hold_pos: usize,
    /// Made on first use: only a caller hearing a mix needs one.
    encoder: Option<Box<Encoder>>,
}

/// The mixer's own packets in a heard file (canned or mixed).
const MIXER_SOURCE: u64 = 0;

impl Heard {
    /// A heard file starting now, with nothing written yet.
    fn new(file: PartyFile) -> Heard {
        Heard {
            file: Arc::new(file),
            src: MIXER_SOURCE,
            offset: 0,
            tick_ts: 0,
            next_ts: 0,
            hold_pos: 0,
            encoder: None,
        }
    }

    fn packet(&mut self, rec: &parties::PartyRecorder, src: u64, ts: u32, payload: &[u8]) {
        self.packet_of_batch(rec, src, ts, ts, payload);
    }

    /// Like [`Heard::packet`] for one of the packets a source sent since
    /// the last tick, `newest` being the latest timestamp among them.
    fn packet_of_batch(
        &mut self,
        rec: &parties::PartyRecorder,
        src: u64,
        ts: u32,
        newest: u32,
        payload: &[u8],
    ) {
        let at = self.file_ts(src, ts, newest, payload);
        rec.packet(&self.file, payload, at);
    }

    /// The file's timestamp for a packet `src` numbered `ts`. A new source
    /// is anchored so its newest packet this tick (`newest`) lands on the
    /// tick: packets that queued up before it (a burst) belong to earlier
    /// ticks. It never starts behind where the stream has got to, since
    /// the writer drops a packet behind the stream as late.
    fn file_ts(&mut self, src: u64, ts: u32, newest: u32, payload: &[u8]) -> u32 {
        if src != self.src {
            self.src = src;
            let wanted = self.tick_ts.wrapping_sub(newest.wrapping_sub(ts));
            let behind = self.next_ts.wrapping_sub(wanted) as i32 > 0;
            let start = if behind { self.next_ts } else { wanted };
            self.offset = start.wrapping_sub(ts);
        }
        let at = ts.wrapping_add(self.offset);
        let samples = protocol::media::opus_packet_samples(payload).unwrap_or(PACKET as u32);
        let end = at.wrapping_add(samples);
        if end.wrapping_sub(self.next_ts) as i32 > 0 {
            self.next_ts = end;
        }
        at
    }
}

struct Party {
    plan: PlannedParty,
    /// What it hears (see [`route::listen_modes`]).
    listen: Listen,
    /// For [`Listen::Prompt`]: the id of the caller whose prompt it hears.
    prompt_of: Option<String>,
    /// This tick's packet was already sent (canned) or is forwarded.
    done: bool,
    input: Input,
    output: Output,
    pcm: Box<[f32; PACKET]>,
    hold: HoldTone,
    dtmf: DtmfQueue,
    /// A socket party's packets since the last tick (header timestamp,
    /// whole frame), for a caller that hears it alone.
    raw: VecDeque<(u32, Vec<u8>)>,
    /// Whether its frames go through the jitter buffer and decoder: only
    /// while someone hears it in a mix.
    decode: bool,
    /// A simulated caller's own recording (its prompt's packets).
    rec: Option<Arc<PartyFile>>,
    /// Its socket leg as a source ([`route::source_id`]; 0 if none).
    source_in: u64,
    /// Ticks it still counts as talking in a mix (see [`ACTIVE_HANG`]);
    /// 0: silent, so a listener who hears it and one other talker gets
    /// that talker's packets instead of an encode.
    active: u8,
}

impl Party {
    /// A party whose audio comes and goes on a socket leg, `out`.
    fn on_socket(plan: PlannedParty, key: &str, leg: u32, out: Arc<OutLeg>) -> Option<Party> {
        let source = route::source_id("mixer", &plan.id, leg);
        Some(Party {
            input: Input::Socket(None),
            output: Output::Socket {
                out,
                source,
                encoder: None,
                seq: 0,
                ts: 0,
                hold_pos: 0,
            },
            plan,
            listen: Listen::Mix,
            prompt_of: None,
            done: false,
            pcm: Box::new([0.0; PACKET]),
            hold: HoldTone::new(),
            dtmf: DtmfQueue::default(),
            raw: VecDeque::new(),
            decode: false,
            rec: None,
            source_in: route::source_id("socket", key, leg),
            active: ACTIVE_HANG,
        })
    }
}

struct CallMedia {
    parties: Vec<Party>,
    /// Every party is forwarded by the sockets, no digit plays and
    /// nothing is decoded: the mixer's tick skips the call (its walk is
    /// then proportional to the calls it has work for, not to every
    /// call) until a plan, a digit or a frame for the mixer wakes it.
    idle: bool,
    /// Set by the tick's first pass: every party was forwarded by the
    /// sockets, with no digit playing.
    forwarded: bool,
    /// Its phase slot in the mixer's 20 ms (see [`SLOTS`]): the call is
    /// ticked every 20 ms at that slot's offset.
    slot: usize,
    /// Its weight in the slot: the mixes it encodes per tick (its
    /// parties that hear a mix).
    weight: u32,
}

/// Packets encoded once and looped: hold music and silence, and each
/// DTMF key's packets (encoded the first time the key is played).
struct Canned {
    hold: Vec<Vec<u8>>,
    silence: Vec<u8>,
    dtmf: Vec<Option<Vec<Vec<u8>>>>,
}

impl Canned {
    fn new() -> Canned {
        // Quality over speed: this runs once.
        let mut enc = Encoder::new(EncoderSettings::default()).ok();
        let mut encode = |pcm: &[f32; PACKET]| -> Vec<u8> {
            enc.as_mut()
                .and_then(|e| e.encode(pcm).ok().map(<[u8]>::to_vec))
                .unwrap_or_default()
        };
        let mut tone = HoldTone::new();
        let mut pcm = [0.0f32; PACKET];
        let hold = (0..tones::HOLD_LOOP_PACKETS)
            .map(|_| {
                tone.fill(&mut pcm);
                encode(&pcm)
            })
            .collect();
        let silence = encode(&[0.0; PACKET]);
        Canned {
            hold,
            silence,
            dtmf: vec![None; tones::DTMF_KEYS.len()],
        }
    }

    /// A DTMF packet: a key's, encoded once on its first use, or silence.
    fn dtmf_packet(&mut self, p: tones::DtmfPacket) -> Vec<u8> {
        let tones::DtmfPacket::Key(key, k) = p else {
            return self.silence.clone();
        };
        let Some(slot) = self.dtmf.get_mut(key) else {
            return self.silence.clone();
        };
        let packets = slot.get_or_insert_with(|| {
            let Some(c) = tones::DTMF_KEYS.chars().nth(key) else {
                return Vec::new();
            };
            let pcm = tones::key_pcm(c);
            let mut enc = Encoder::new(EncoderSettings::default()).ok();
            pcm.chunks_exact(PACKET)
                .map(|chunk| {
                    let mut block = [0.0f32; PACKET];
                    block.copy_from_slice(chunk);
                    enc.as_mut()
                        .and_then(|e| e.encode(&block).ok().map(<[u8]>::to_vec))
                        .unwrap_or_default()
                })
                .collect()
        });
        packets
            .get(k)
            .cloned()
            .unwrap_or_else(|| self.silence.clone())
    }
}

/// A prompt encoded once, 20 ms a packet, lazily and in order: packet
/// `k` is encoded the first time any listener reaches it, so a prompt
/// costs at most one encode per tick (the furthest listener's) and then
/// nothing, however many calls play it.
pub struct PromptPackets {
    samples: Arc<Vec<f32>>,
    encoder: Option<Encoder>,
    packets: Vec<Vec<u8>>,
}

impl PromptPackets {
    fn new(samples: Arc<Vec<f32>>) -> PromptPackets {
        PromptPackets {
            samples,
            encoder: Encoder::new(EncoderSettings::default()).ok(),
            packets: Vec::new(),
        }
    }

    /// Packet `k` (the prompt's samples `k * PACKET ..`), or `None` past
    /// the end.
    fn packet(&mut self, k: usize) -> Option<Vec<u8>> {
        while self.packets.len() <= k {
            let from = self.packets.len() * PACKET;
            let chunk = self.samples.get(from..)?;
            if chunk.is_empty() {
                return None;
            }
            let mut pcm = [0.0f32; PACKET];
            let n = chunk.len().min(PACKET);
            pcm[..n].copy_from_slice(&chunk[..n]);
            let packet = self
                .encoder
                .as_mut()
                .and_then(|e| e.encode(&pcm).ok().map(<[u8]>::to_vec))
                .unwrap_or_default();
            self.packets.push(packet);
        }
        self.packets.get(k).cloned()
    }
}

type Prompt = (Arc<Vec<f32>>, Arc<Mutex<PromptPackets>>);

struct Hub {
    calls: HashMap<String, CallMedia>,
    routes: Arc<Routes>,
    canned: Canned,
    prompts: HashMap<PathBuf, Prompt>,
    start: Instant,
    stats: BridgeStats,
    tick_times: Vec<u64>,
    mix: Box<[f32; PACKET]>,
    impairment: Impairment,
    rng: u64,
    /// Impaired frames waiting for their delayed send time.
    delayed: Vec<Delayed>,
    /// The packets a mix is replaced by this tick (see [`Lone`]).
    lone: Vec<Vec<u8>>,
    /// Per phase slot: the calls in it and their summed weight (the
    /// mixes they encode per tick), to place a call in the lightest.
    slot_calls: [u32; SLOTS],
    slot_weight: [u32; SLOTS],
}

/// What a mixed listener gets instead of an encode, when every talker it
/// hears but one (or all) is silent.
enum Lone {
    /// Encode the mix.
    Mix,
    /// Nobody it hears talks: canned silence.
    Silence,
    /// Only this party talks: the packets its receive chain played this
    /// tick, which are exactly its 20 ms of the mix.
    Talker(usize),
}

/// A mixer packet held back by the test impairment.
struct Delayed {
    due: f64,
    out: Arc<OutLeg>,
    source: u64,
    header: MediaHeader,
    payload: Vec<u8>,
}

const TICK: Duration = Duration::from_millis(20);

/// What a mixer does after a wake.
enum Step {
    /// Sleep until this instant (`None`: no slot has calls, so until a
    /// command comes).
    Sleep(Option<Instant>),
    /// Stop, answering the graceful stop's asker if there is one.
    Stop(Option<tokio::sync::oneshot::Sender<usize>>),
}

/// One mixer's state between wakes, driven by a thread ([`run_thread`])
/// or, in tests, a task.
struct Mixer {
    hub: Hub,
    wheel: wheel::Wheel,
    inbox: Arc<FrameInbox>,
    mailbox: Arc<Mailbox>,
    frames: FrameBatch,
}

impl Mixer {
    fn new(shard: &Shard, impairment: Impairment, routes: Arc<Routes>) -> Mixer {
        let hub = Hub::new(routes, impairment);
        Mixer {
            wheel: wheel::Wheel::new(hub.start),
            hub,
            inbox: shard.inbox.clone(),
            mailbox: shard.mailbox.clone(),
            frames: FrameBatch::default(),
        }
    }

    /// One wake: the mailbox's commands first, then every busy phase
    /// slot due by now (a late one is made up, not skipped, so every
    /// party gets 50 packets a second), and when to wake next.
    fn step(&mut self) -> Step {
        self.hub.stats.wakes += 1;
        let mut pending = std::mem::take(&mut *self.mailbox.pending());
        if !pending.is_empty() {
            let stop = pending.shutdown.take();
            self.hub.stats.input_dropped = self.mailbox.dropped.load(Ordering::Relaxed);
            self.hub.apply_pending(pending);
            if stop.is_some() {
                return Step::Stop(stop);
            }
        }
        if self.mailbox.closed.load(Ordering::Acquire) {
            return Step::Stop(None);
        }
        if !self.hub.delayed.is_empty() {
            let now = self.hub.now_ms();
            self.hub.send_delayed(now);
        }
        loop {
            // The frames since the last wake, all at once (a frame can
            // wake a sleeping call, so before the slots are weighed).
            self.inbox.take(&mut self.frames);
            self.hub.take_frames(&mut self.frames);
            let now = Instant::now();
            self.wheel.set_busy(&self.hub.busy_slots(), now);
            let Some((slot, at)) = self.wheel.pop_due(now) else {
                break;
            };
            let ticked = self.hub.tick(slot);
            // A slot's tick is what its calls' packets wait for.
            if ticked > 0 {
                if at.elapsed() > Duration::from_millis(10) {
                    self.hub.stats.late_ticks += 1;
                }
                self.hub.record_tick(now.elapsed().as_micros() as u64);
            }
            // A mixer making up ticks it missed (a starved thread) still
            // takes its commands between two ticks, as it did on the
            // biased select before: a plan or a stats request never waits
            // for the whole backlog (the wait below returns at once).
            if self.mailbox.has_work() {
                break;
            }
        }
        let next = match (self.wheel.next(), self.hub.next_delayed()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Step::Sleep(next)
    }

    /// Closes every call's files and answers the graceful stop.
    fn finish(mut self, stopped: Option<tokio::sync::oneshot::Sender<usize>>) {
        let mut closed = 0;
        for (_, call) in self.hub.calls.drain() {
            closed += close_call(call, &self.hub.routes);
        }
        if let Some(rec) = &self.hub.routes.recorder {
            // Every file closed above is written (handed to the kernel)
            // before the answer.
            rec.flush();
        }
        if let Some(reply) = stopped {
            let _ = reply.send(closed);
        }
    }
}

/// A mixer thread: sleeps to the next busy slot's deadline (or, with no
/// busy slot, until a command), never on a fixed tick.
fn run_thread(mut mixer: Mixer) {
    loop {
        match mixer.step() {
            Step::Sleep(until) => mixer.mailbox.wait(until),
            Step::Stop(reply) => return mixer.finish(reply),
        }
    }
}

/// A mixer as a task on the test's runtime (on Tokio's coarser timer).
#[cfg(test)]
async fn run_task(mut mixer: Mixer) {
    loop {
        match mixer.step() {
            Step::Sleep(until) => {
                let mailbox = mixer.mailbox.clone();
                let woken = mailbox.wake.notified();
                match until {
                    Some(t) => {
                        tokio::select! {
                            () = woken => {}
                            () = tokio::time::sleep_until(t.into()) => {}
                        }
                    }
                    None => woken.await,
                }
            }
            Step::Stop(reply) => return mixer.finish(reply),
        }
    }
}

/// Finishes a call's "heard" files (the parties' recordings are closed by
/// the routes when the call's plan ends); returns how many it closed.
fn close_call(call: CallMedia, routes: &Routes) -> usize {
    let mut closed = 0;
    for p in call.parties {
        if let (Output::Heard(Some(h)), Some(rec)) = (p.output, &routes.recorder) {
            rec.close(h.file.path.clone());
            closed += 1;
        }
    }
    closed
}

impl Hub {
    fn new(routes: Arc<Routes>, impairment: Impairment) -> Hub {
        Hub {
            calls: HashMap::new(),
            routes,
            canned: Canned::new(),
            prompts: HashMap::new(),
            start: Instant::now(),
            stats: BridgeStats::default(),
            tick_times: Vec::with_capacity(1000),
            mix: Box::new([0.0; PACKET]),
            impairment,
            rng: impairment.seed | 1,
            delayed: Vec::new(),
            lone: Vec::new(),
            slot_calls: [0; SLOTS],
            slot_weight: [0; SLOTS],
        }
    }

    fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    /// The phase slots with a call to tick (a call forwarded throughout
    /// sleeps: its slot needs no wake for it).
    fn busy_slots(&self) -> [bool; SLOTS] {
        let mut busy = [false; SLOTS];
        for c in self.calls.values() {
            if !c.idle {
                busy[c.slot] = true;
            }
        }
        busy
    }

    /// When the first packet held back by the test impairment is due.
    fn next_delayed(&self) -> Option<Instant> {
        self.delayed
            .iter()
            .map(|d| d.due)
            .min_by(f64::total_cmp)
            .map(|ms| self.start + Duration::from_secs_f64(ms.max(0.0) / 1000.0))
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

    /// Takes a batch of frames from the inbox (leaving `batch` empty, its
    /// capacity kept for the next swap).
    fn take_frames(&mut self, batch: &mut FrameBatch) {
        for f in batch.frames.drain(..) {
            let Some(bytes) = batch.bytes.get(f.start..f.start + f.len) else {
                continue;
            };
            let at = f.at.saturating_duration_since(self.start).as_secs_f64() * 1000.0;
            self.frame(f.call.as_deref(), f.source, bytes, at);
        }
        batch.bytes.clear();
    }

    /// One frame from the socket leg `source`, read at `at` (ms on the
    /// mixer's clock).
    fn frame(&mut self, call: Option<&str>, source: u64, bytes: &[u8], at: f64) {
        self.stats.frames_received += 1;
        // The route names the call: one lookup, not a scan of every call
        // (its string compares showed in the profile).
        let calls: Vec<(&str, &mut CallMedia)> = match call {
            Some(c) => self
                .calls
                .get_mut(c)
                .map(|m| vec![(c, m)])
                .unwrap_or_default(),
            None => self
                .calls
                .iter_mut()
                .map(|(k, m)| (k.as_str(), m))
                .collect(),
        };
        for (_, media) in calls {
            let CallMedia { parties, idle, .. } = media;
            for p in parties.iter_mut() {
                if let (true, Input::Socket(chain)) = (p.source_in == source, &mut p.input) {
                    // A frame for the mixer: the call has work again.
                    *idle = false;
                    if let (true, Some(chain)) = (p.decode, chain) {
                        if let Err(e) = chain.push_frame(bytes, at) {
                            tracing::debug!("frame from {}: {e}", p.plan.id);
                        }
                    }
                    if let Ok(f) = protocol::media::decode_media_frame(bytes) {
                        if p.raw.len() == RAW_KEPT {
                            p.raw.pop_front();
                        }
                        p.raw.push_back((f.header.timestamp, bytes.to_vec()));
                    }
                    return;
                }
            }
        }
    }

    /// Applies the mailbox: plans (each call's live plan before its
    /// `ended` one), then DTMF for the parties they made.
    fn apply_pending(&mut self, p: Pending) {
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
            Command::AgentFrame {
                call,
                agent,
                leg,
                bytes,
            } => {
                let source = route::source_id("socket", &agent, leg);
                let now = self.now_ms();
                self.frame(call.as_deref(), source, &bytes, now);
            }
            Command::Dtmf { call, to, digits } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.idle = false;
                }
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
                s.calls_idle = self.calls.values().filter(|c| c.idle).count();
                let _ = reply.send(s);
            }
            // Handled by the loop, which stops.
            Command::Shutdown(_) => {}
        }
    }

    fn prompt(&mut self, path: &PathBuf) -> Prompt {
        if let Some(p) = self.prompts.get(path) {
            return p.clone();
        }
        let samples = match wav::read_48k_mono(path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("caller prompt: {e}");
                Vec::new()
            }
        };
        let samples = Arc::new(samples);
        let packets = Arc::new(Mutex::new(PromptPackets::new(samples.clone())));
        let p = (samples, packets);
        if self.prompts.len() >= MAX_CACHED_PROMPTS {
            // Flow prompts can be one per caller ("Order 100, Justin"):
            // keep only the ones some party still plays.
            self.prompts
                .retain(|_, (samples, _)| Arc::strong_count(samples) > 2);
        }
        self.prompts.insert(path.clone(), p.clone());
        p
    }

    fn plan(&mut self, plan: CallPlan) {
        if plan.ended || plan.parties.is_empty() {
            if let Some(call) = self.calls.remove(&plan.call) {
                self.slot_calls[call.slot] -= 1;
                self.slot_weight[call.slot] -= call.weight;
                let _ = close_call(call, &self.routes);
            }
            return;
        }
        if !self.calls.contains_key(&plan.call) {
            let slot = self.lightest_slot();
            self.slot_calls[slot] += 1;
            self.calls.insert(
                plan.call.clone(),
                CallMedia {
                    parties: Vec::new(),
                    idle: false,
                    forwarded: false,
                    slot,
                    weight: 0,
                },
            );
        }
        // Parties that left.
        let Some(call) = self.calls.get_mut(&plan.call) else {
            return;
        };
        call.idle = false;
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
            if let (Output::Heard(Some(h)), Some(rec)) = (out, &self.routes.recorder) {
                rec.close(h.file.path.clone());
            }
        }
        let modes = self.routes.modes(&plan.call, &plan.parties);
        let weight = modes.iter().filter(|m| matches!(m, Listen::Mix)).count() as u32;
        self.weigh(&plan.call, weight);
        // Parties that joined or changed.
        for (q, listen) in plan.parties.iter().zip(modes) {
            let prompt_of = match listen {
                Listen::Prompt(i) => plan.parties.get(i).map(|c| c.id.clone()),
                _ => None,
            };
            let call = match self.calls.get_mut(&plan.call) {
                Some(c) => c,
                None => return,
            };
            if let Some(p) = call.parties.iter_mut().find(|p| p.plan.id == q.id) {
                if q.audio == Audio::Held && p.plan.audio != Audio::Held {
                    // Start the hold pattern with its beeps: the caller
                    // hears at once that they are on hold.
                    p.hold = HoldTone::new();
                    match &mut p.output {
                        Output::Socket { hold_pos, .. } => *hold_pos = 0,
                        Output::Heard(Some(h)) => h.hold_pos = 0,
                        Output::Heard(None) => {}
                    }
                }
                p.plan.audio = q.audio;
                p.listen = listen;
                p.prompt_of = prompt_of;
                continue;
            }
            let mut party = match route::socket_of(&plan.call, q) {
                Some((key, leg)) => {
                    let out = self.routes.out_leg(&key, leg);
                    match Party::on_socket(q.clone(), &key, leg, out) {
                        Some(p) => p,
                        None => continue,
                    }
                }
                None => {
                    let PartyKind::Caller { play, heard } = &q.kind else {
                        continue;
                    };
                    let input = match play {
                        CallerAudio::Prompt(path) => {
                            let (samples, packets) = self.prompt(path);
                            Input::Prompt {
                                samples,
                                packets,
                                pos: 0,
                            }
                        }
                        CallerAudio::Silence => Input::Prompt {
                            samples: Arc::new(Vec::new()),
                            packets: Arc::new(Mutex::new(PromptPackets::new(Arc::default()))),
                            pos: 0,
                        },
                        CallerAudio::Echo => Input::Echo(Box::new([0.0; PACKET])),
                        CallerAudio::Live { .. } => continue,
                    };
                    let heard = heard
                        .as_ref()
                        .filter(|_| self.routes.recorder.is_some())
                        .map(|p| {
                            Box::new(Heard::new(PartyFile {
                                path: p.clone(),
                                call_start: Instant::now(),
                                serial: route::source_id("heard", &q.id, 0) as u32,
                            }))
                        });
                    // Its own words are recorded (packets encoded once,
                    // shared with its listeners); an echo line's are not.
                    let rec = match play {
                        CallerAudio::Prompt(_) => self.routes.party_file(&plan.call, &q.id),
                        _ => None,
                    };
                    Party {
                        input,
                        output: Output::Heard(heard),
                        plan: q.clone(),
                        listen: Listen::NotSocket,
                        prompt_of: None,
                        done: false,
                        pcm: Box::new([0.0; PACKET]),
                        hold: HoldTone::new(),
                        dtmf: DtmfQueue::default(),
                        raw: VecDeque::new(),
                        decode: false,
                        rec,
                        source_in: 0,
                        active: ACTIVE_HANG,
                    }
                }
            };
            party.listen = listen;
            party.prompt_of = prompt_of;
            if let Some(call) = self.calls.get_mut(&plan.call) {
                call.parties.push(party);
            }
        }
    }

    /// The slot with the fewest mixes to encode (then the fewest calls).
    fn lightest_slot(&self) -> usize {
        (0..SLOTS)
            .min_by_key(|&k| (self.slot_weight[k], self.slot_calls[k]))
            .unwrap_or(0)
    }

    /// Sets a call's weight (the mixes it encodes per tick). A call that
    /// starts mixing (a two-party call becoming a conference: forwarded
    /// until now, so the mixer did nothing for it) moves to the lightest
    /// slot, which keeps the slots' encodes even; its phase moves once,
    /// before it has any mix to send. A call that already mixes stays put,
    /// so its listeners' cadence never jumps.
    fn weigh(&mut self, call: &str, weight: u32) {
        let Some(c) = self.calls.get(call) else {
            return;
        };
        let (old_slot, old_weight) = (c.slot, c.weight);
        self.slot_weight[old_slot] -= old_weight;
        self.slot_calls[old_slot] -= 1;
        let slot = if old_weight == 0 && weight > 0 {
            self.lightest_slot()
        } else {
            old_slot
        };
        self.slot_weight[slot] += weight;
        self.slot_calls[slot] += 1;
        if let Some(c) = self.calls.get_mut(call) {
            c.slot = slot;
            c.weight = weight;
        }
    }

    fn next_random(&mut self) -> f64 {
        // xorshift64*: seeded, so an impaired test run is repeatable.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Applies the impairment to packets leaving this tick.
    fn impair(&mut self, now: f64, outgoing: Vec<Delayed>) {
        for mut d in outgoing {
            if self.next_random() * 100.0 < self.impairment.loss_percent {
                self.stats.frames_dropped += 1;
                continue;
            }
            d.due = now + self.next_random() * self.impairment.jitter_ms;
            self.delayed.push(d);
        }
        self.send_delayed(now);
    }

    /// Sends impaired packets whose delay is over, oldest first.
    fn send_delayed(&mut self, now: f64) {
        self.delayed.sort_by(|a, b| a.due.total_cmp(&b.due));
        let due = self.delayed.iter().take_while(|d| d.due <= now).count();
        let since = Instant::now();
        for d in self.delayed.drain(..due) {
            d.out.offer(
                d.source,
                true,
                &d.header,
                &d.payload,
                since,
                &self.routes.stats,
            );
        }
    }

    /// Ticks the calls of phase slot `slot`; returns how many had work.
    fn tick(&mut self, slot: usize) -> usize {
        let now = self.now_ms();
        let since = Instant::now();
        let impaired = self.impairment.loss_percent > 0.0 || self.impairment.jitter_ms > 0.0;
        let mut outgoing: Vec<Delayed> = Vec::new();
        let Hub {
            calls,
            routes,
            canned,
            mix,
            lone: lone_buf,
            stats,
            ..
        } = self;
        let recorder = routes.recorder.as_ref();
        // First pass, cheap: every canned packet of every call leaves
        // before any decoding or encoding, so its delay does not grow with
        // the mixing work of the calls ahead of it.
        let mut ticked = 0;
        for call in calls.values_mut() {
            if call.idle || call.slot != slot {
                continue;
            }
            ticked += 1;
            for p in call.parties.iter_mut() {
                if let Input::Prompt { pos, packets, .. } = &mut p.input {
                    *pos += PACKET;
                    // A talking caller's own recording: its prompt's
                    // packets (encoded once, shared with its listeners).
                    if let (Some(file), Some(rec), Audio::Talking) =
                        (&p.rec, recorder, p.plan.audio)
                    {
                        let k = *pos / PACKET - 1;
                        let packet = packets.lock().unwrap_or_else(|e| e.into_inner()).packet(k);
                        if let Some(packet) = packet {
                            rec.packet(file, &packet, (k * PACKET) as u32);
                        }
                    }
                }
            }
            for j in 0..call.parties.len() {
                call.parties[j].done = false;
                let dtmf = call.parties[j].dtmf.is_active();
                if let Output::Heard(_) = call.parties[j].output {
                    call.parties[j].done =
                        heard_without_mixing(&mut call.parties, j, canned, recorder);
                    continue;
                }
                let Output::Socket { out, hold_pos, .. } = &call.parties[j].output else {
                    continue;
                };
                let hold_pos = *hold_pos;
                if matches!(
                    call.parties[j].listen,
                    Listen::Forward { .. } | Listen::Legs(_)
                ) {
                    // DTMF to a forwarded party: the mixer takes the leg
                    // over while the digits play.
                    out.set_mixer_override(dtmf);
                }
                if !out.mixer_sends() {
                    // Forwarded by the sockets.
                    call.parties[j].done = true;
                    continue;
                }
                // DTMF to a party that hears one source or canned audio:
                // the key's canned packets replace that audio while the
                // digits play (no decode, no encode). A party hearing a mix
                // gets them mixed in.
                let dtmf_packet = match call.parties[j].listen {
                    Listen::Mix => None,
                    _ => call.parties[j].dtmf.next_packet(),
                };
                let packet = match &call.parties[j].listen {
                    _ if dtmf_packet.is_some() => dtmf_packet.map(|d| canned.dtmf_packet(d)),
                    _ if dtmf => None,
                    Listen::Hold => canned
                        .hold
                        .get(hold_pos % canned.hold.len().max(1))
                        .cloned(),
                    Listen::Silence => Some(canned.silence.clone()),
                    Listen::Prompt(_) => Some(
                        call.parties[j]
                            .prompt_of
                            .as_ref()
                            .and_then(|id| call.parties.iter().find(|c| &c.plan.id == id))
                            .and_then(|c| match &c.input {
                                Input::Prompt { packets, pos, .. } => packets
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .packet((pos / PACKET).saturating_sub(1)),
                                _ => None,
                            })
                            .unwrap_or_else(|| canned.silence.clone()),
                    ),
                    _ => None,
                };
                let Some(packet) = packet else {
                    continue;
                };
                let p = &mut call.parties[j];
                p.done = true;
                if let Output::Socket {
                    out,
                    source,
                    seq,
                    ts,
                    hold_pos,
                    ..
                } = &mut p.output
                {
                    let header = MediaHeader {
                        flags: FLAG_FEC,
                        leg: out.leg,
                        sequence: *seq,
                        timestamp: *ts,
                    };
                    *seq = seq.wrapping_add(1);
                    *ts = ts.wrapping_add(PACKET as u32);
                    *hold_pos = hold_pos.wrapping_add(1);
                    if impaired {
                        outgoing.push(Delayed {
                            due: 0.0,
                            out: out.clone(),
                            source: *source,
                            header,
                            payload: packet,
                        });
                    } else {
                        out.offer(*source, true, &header, &packet, since, &routes.stats);
                    }
                }
            }
            call.forwarded = call.parties.iter().all(|p| {
                p.done
                    && !p.dtmf.is_active()
                    && matches!(p.input, Input::Socket(_))
                    && matches!(&p.output, Output::Socket { out, .. } if !out.mixer_sends())
            });
        }
        // Second pass: decode, mix and encode only what someone hears in a
        // mix. A call whose every party is forwarded or canned (every
        // two-party call) decodes nothing.
        for call in calls.values_mut() {
            if call.idle || call.slot != slot {
                continue;
            }
            for p in call.parties.iter_mut() {
                p.raw.clear();
            }
            let mixing = call.parties.iter().filter(|p| !p.done).count();
            // 1. The 20 ms of everyone heard in a mix.
            for j in 0..call.parties.len() {
                let needed = call.parties[j].plan.audio == Audio::Talking
                    && (mixing > 1 || (mixing == 1 && call.parties[j].done));
                let p = &mut call.parties[j];
                match &mut p.input {
                    Input::Socket(chain) => {
                        if needed && !p.decode {
                            // Its frames skipped the jitter buffer while
                            // nobody mixed it: start afresh rather than
                            // from where it stopped, seconds ago.
                            *chain = route::socket_of("", &p.plan).and_then(|(_, leg)| {
                                ReceiveChain::new(Some(leg), JitterSettings::default())
                                    .ok()
                                    .map(Box::new)
                            });
                        }
                        p.decode = needed;
                        let Some(chain) = chain.as_mut().filter(|_| needed) else {
                            // Nobody mixes it: its buffer and decoder go.
                            *chain = None;
                            continue;
                        };
                        // The packets this tick plays, for a listener
                        // who may get them instead of a mix (see `Lone`).
                        chain.start_window();
                        let (a, b) = p.pcm.split_at_mut(BLOCK);
                        chain.next_block(a.try_into().expect("half a packet is a block"), now);
                        chain.next_block(
                            b.try_into().expect("half a packet is a block"),
                            now + 10.0,
                        );
                    }
                    Input::Prompt { samples, pos, .. } => {
                        let from = pos.saturating_sub(PACKET);
                        for (k, x) in p.pcm.iter_mut().enumerate() {
                            *x = samples.get(from + k).copied().unwrap_or(0.0);
                        }
                    }
                    Input::Echo(last) => p.pcm.copy_from_slice(&last[..]),
                }
                if needed {
                    let power = p.pcm.iter().map(|x| x * x).sum::<f32>() / PACKET as f32;
                    p.active = if power > SILENT_POWER {
                        ACTIVE_HANG
                    } else {
                        p.active.saturating_sub(1)
                    };
                }
            }
            if mixing == 0 {
                // Nothing decoded now (`decode` follows `needed`, false
                // for all): a call forwarded throughout can sleep.
                call.idle = call.forwarded && !call.parties.iter().any(|p| p.decode);
                continue;
            }
            // 2. Each party's mix of the others, unless what it hears is
            // forwarded or canned (sent above).
            for j in 0..call.parties.len() {
                if call.parties[j].done {
                    continue;
                }
                mix.fill(0.0);
                // Held, or hearing digits: always a mix. Otherwise, when
                // at most one talker it hears is active, no encode.
                let mut lone = if call.parties[j].plan.audio == Audio::Held
                    || call.parties[j].dtmf.is_active()
                {
                    Lone::Mix
                } else {
                    Lone::Silence
                };
                if call.parties[j].plan.audio == Audio::Held {
                    call.parties[j].hold.fill(mix);
                } else {
                    for (i, p) in call.parties.iter().enumerate() {
                        if i != j && p.plan.audio == Audio::Talking {
                            for (m, x) in mix.iter_mut().zip(p.pcm.iter()) {
                                *m += x;
                            }
                            if p.active > 0 {
                                lone = match lone {
                                    Lone::Silence => Lone::Talker(i),
                                    Lone::Talker(_) | Lone::Mix => Lone::Mix,
                                };
                            }
                        }
                    }
                }
                // The packets that replace the encode, if any: copies, as
                // party `j` is borrowed for sending below.
                let mut n_lone = 0;
                let mut keep = |q: &[u8]| {
                    if lone_buf.len() <= n_lone {
                        lone_buf.push(Vec::new());
                    }
                    lone_buf[n_lone].clear();
                    lone_buf[n_lone].extend_from_slice(q);
                    n_lone += 1;
                };
                match lone {
                    Lone::Mix => {}
                    Lone::Silence => keep(&canned.silence),
                    Lone::Talker(i) => {
                        if let Input::Socket(Some(chain)) = &call.parties[i].input {
                            for q in chain.window_packets().into_iter().flatten() {
                                keep(q);
                            }
                        }
                    }
                }
                let lone_packets = &lone_buf[..n_lone];
                if lone_packets.is_empty() {
                    stats.mix_encodes += 1;
                } else {
                    stats.mix_encodes_saved += 1;
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
                    Output::Heard(h) => {
                        let (Some(h), Some(rec)) = (h, recorder) else {
                            continue;
                        };
                        if h.encoder.is_none() {
                            h.encoder = Encoder::new(EncoderSettings {
                                complexity: MIX_COMPLEXITY,
                                ..EncoderSettings::default()
                            })
                            .ok()
                            .map(Box::new);
                        }
                        let ts = h.tick_ts;
                        h.tick_ts = ts.wrapping_add(PACKET as u32);
                        if !lone_packets.is_empty() {
                            let mut at = ts;
                            for q in lone_packets {
                                h.packet(rec, MIXER_SOURCE, at, q);
                                at = at.wrapping_add(packet_samples(q));
                            }
                            continue;
                        }
                        let packet = h
                            .encoder
                            .as_mut()
                            .and_then(|e| e.encode(mix).ok().map(<[u8]>::to_vec));
                        if let Some(packet) = packet {
                            h.packet(rec, MIXER_SOURCE, ts, &packet);
                        }
                    }
                    Output::Socket {
                        out,
                        source,
                        encoder,
                        seq,
                        ts,
                        ..
                    } => {
                        if !lone_packets.is_empty() {
                            // The lone talker's packets (or silence) in the
                            // mix's place, numbered on as the mix would be.
                            for q in lone_packets {
                                let header = MediaHeader {
                                    flags: FLAG_FEC,
                                    leg: out.leg,
                                    sequence: *seq,
                                    timestamp: *ts,
                                };
                                *seq = seq.wrapping_add(1);
                                *ts = ts.wrapping_add(packet_samples(q));
                                if impaired {
                                    outgoing.push(Delayed {
                                        due: 0.0,
                                        out: out.clone(),
                                        source: *source,
                                        header,
                                        payload: q.clone(),
                                    });
                                } else {
                                    out.offer(*source, true, &header, q, since, &routes.stats);
                                }
                            }
                            continue;
                        }
                        let header = MediaHeader {
                            flags: FLAG_FEC,
                            leg: out.leg,
                            sequence: *seq,
                            timestamp: *ts,
                        };
                        *seq = seq.wrapping_add(1);
                        *ts = ts.wrapping_add(PACKET as u32);
                        if encoder.is_none() {
                            *encoder = Encoder::new(EncoderSettings {
                                complexity: MIX_COMPLEXITY,
                                ..EncoderSettings::default()
                            })
                            .ok()
                            .map(Box::new);
                        }
                        let Some(Ok(payload)) = encoder.as_mut().map(|e| e.encode(mix)) else {
                            continue;
                        };
                        if impaired {
                            outgoing.push(Delayed {
                                due: 0.0,
                                out: out.clone(),
                                source: *source,
                                header,
                                payload: payload.to_vec(),
                            });
                        } else {
                            out.offer(*source, true, &header, payload, since, &routes.stats);
                        }
                    }
                }
            }
        }
        if impaired {
            self.impair(now, outgoing);
        }
        ticked
    }
}

/// A packet's duration in samples at 48 kHz (20 ms when its TOC is
/// unreadable, the mixer's own packet size).
fn packet_samples(packet: &[u8]) -> u32 {
    protocol::media::opus_packet_samples(packet).unwrap_or(PACKET as u32)
}

/// A simulated caller's tick (party `j`): writes what it hears to its
/// "heard" file without decoding when that is one source or canned audio;
/// returns false when it needs a mix (it hears several talkers,
/// or it is an echo line, which says back what it hears).
fn heard_without_mixing(
    parties: &mut [Party],
    j: usize,
    canned: &mut Canned,
    recorder: Option<&parties::PartyRecorder>,
) -> bool {
    if matches!(parties[j].input, Input::Echo(_)) {
        return false;
    }
    let held = parties[j].plan.audio == Audio::Held;
    // DTMF replaces what it hears while the digits play (canned packets).
    let dtmf = parties[j].dtmf.next_packet();
    let talkers: Vec<usize> = (0..parties.len())
        .filter(|&i| i != j && parties[i].plan.audio == Audio::Talking)
        .collect();
    let single_socket = match talkers.as_slice() {
        [i] if matches!(parties[*i].input, Input::Socket(_)) => Some(*i),
        _ => None,
    };
    // The packets this tick: a copy of the one source's, or canned.
    let from_socket: Vec<(u64, u32, Vec<u8>)> = match single_socket {
        Some(i) if !held && dtmf.is_none() => {
            let src = route::source_id("heard-src", &parties[i].plan.id, 0);
            parties[i]
                .raw
                .iter()
                .map(|(ts, bytes)| (src, *ts, bytes.get(HEADER_LEN..).unwrap_or(&[]).to_vec()))
                .collect()
        }
        _ => Vec::new(),
    };
    let p = &mut parties[j];
    let Output::Heard(heard) = &mut p.output else {
        return false;
    };
    let Some(h) = heard else {
        // Nothing records what it hears: nothing to do.
        return true;
    };
    let Some(rec) = recorder else {
        return true;
    };
    let ts = h.tick_ts;
    if let Some(d) = dtmf {
        let packet = canned.dtmf_packet(d);
        h.packet(rec, MIXER_SOURCE, ts, &packet);
    } else if held {
        let k = h.hold_pos % canned.hold.len().max(1);
        h.hold_pos = h.hold_pos.wrapping_add(1);
        if let Some(packet) = canned.hold.get(k) {
            h.packet(rec, MIXER_SOURCE, ts, packet);
        }
    } else if !talkers.is_empty() && single_socket.is_none() {
        // Mixed in the second pass, which moves the clock on.
        return false;
    } else if talkers.is_empty() {
        h.packet(rec, MIXER_SOURCE, ts, &canned.silence);
    } else {
        // The newest packet of the batch (timestamps compared as a window,
        // since they wrap).
        let newest = from_socket.iter().map(|(_, pts, _)| *pts).reduce(|a, b| {
            if b.wrapping_sub(a) as i32 > 0 {
                b
            } else {
                a
            }
        });
        for (src, pts, payload) in &from_socket {
            h.packet_of_batch(rec, *src, *pts, newest.unwrap_or(*pts), payload);
        }
    }
    h.tick_ts = ts.wrapping_add(PACKET as u32);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h_empty() -> Heard {
        Heard::new(PartyFile {
            path: PathBuf::from("/nonexistent/heard.opus"),
            call_start: Instant::now(),
            serial: 1,
        })
    }

    /// A 20 ms Opus packet (CELT fullband, one frame) for timestamp tests.
    const PACKET_20MS: [u8; 2] = [31 << 3, 1];

    #[test]
    fn a_heard_file_never_starts_a_new_source_behind_the_stream() {
        let mut h = h_empty();
        // The agent's socket switches in with four packets queued (a burst
        // at the first tick): the newest lands on the tick, the others
        // before it, but never behind what the file already holds.
        h.file_ts(MIXER_SOURCE, 0, 0, &PACKET_20MS);
        h.tick_ts = 960 * 10;
        let agent = 7;
        let newest = 5_000 + 3 * 960;
        let at: Vec<u32> = (0..4)
            .map(|k| h.file_ts(agent, 5_000 + k * 960, newest, &PACKET_20MS))
            .collect();
        assert_eq!(at, [960 * 7, 960 * 8, 960 * 9, 960 * 10]);
        // A burst longer than the silence before it starts where the file is.
        let mut g = h_empty();
        g.file_ts(MIXER_SOURCE, 0, 0, &PACKET_20MS);
        g.tick_ts = 960;
        let at: Vec<u32> = (0..4)
            .map(|k| g.file_ts(agent, 5_000 + k * 960, newest, &PACKET_20MS))
            .collect();
        assert_eq!(at, [960, 1_920, 2_880, 3_840]);
        // Then DTMF (the mixer's canned packets) starts at the next tick: it
        // must follow the agent's last packet, not overlap it, or the
        // writer drops it as late.
        g.tick_ts += 960;
        assert_eq!(
            g.file_ts(MIXER_SOURCE, g.tick_ts, g.tick_ts, &PACKET_20MS),
            4_800
        );
        g.tick_ts += 960;
        assert_eq!(
            g.file_ts(MIXER_SOURCE, g.tick_ts, g.tick_ts, &PACKET_20MS),
            5_760
        );
        // After a silence longer than the lead, a source starts at the tick.
        g.tick_ts += 960 * 50;
        assert_eq!(g.file_ts(agent, 90_000, 90_000, &PACKET_20MS), g.tick_ts);
    }

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
        let bridge = Bridge::spawn_task(Impairment::default(), 16);
        for i in 0..5_000u32 {
            bridge.send(Command::AgentFrame {
                call: None,
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
            let p = bridge.shards[0].mailbox.pending();
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
        assert_eq!(
            bridge.shards[0].mailbox.pending().dtmf.len(),
            MAX_PENDING_DTMF
        );
        let stats = bridge.stats().await;
        assert_eq!(stats.input_dropped, 5_000 - 16 + 10);
    }

    pub(super) fn two_sockets(call: &str, agent_audio: Audio) -> CallPlan {
        CallPlan {
            call: call.into(),
            parties: vec![
                PlannedParty {
                    id: format!("a-{call}"),
                    kind: PartyKind::Agent {
                        agent: format!("agent-{call}"),
                        leg: 1,
                    },
                    audio: agent_audio,
                },
                PlannedParty {
                    id: format!("k-{call}"),
                    kind: PartyKind::Caller {
                        play: CallerAudio::Live { leg: 2 },
                        heard: None,
                    },
                    audio: Audio::Talking,
                },
            ],
            ended: false,
            recording: None,
        }
    }

    pub(super) fn conference(call: &str) -> CallPlan {
        let mut plan = two_sockets(call, Audio::Talking);
        plan.parties.push(PlannedParty {
            id: format!("b-{call}"),
            kind: PartyKind::Agent {
                agent: format!("agent-b-{call}"),
                leg: 3,
            },
            audio: Audio::Talking,
        });
        plan
    }

    /// The mixer spreads its conferences over the 20 ms tick, one phase
    /// slot each in turn (the lightest slot by mixes to encode), so that
    /// no call's packet waits for every encode of the mixer; a slot's
    /// tick works only for its own calls; a two-party call (forwarded,
    /// nothing to mix) that becomes a conference moves to the lightest
    /// slot, and a call that ends frees its place.
    #[test]
    fn conferences_take_the_phase_slots_in_turn_and_a_slot_ticks_only_its_own() {
        let mut hub = Hub::new(Arc::new(Routes::new(true)), Impairment::default());
        // Two-party calls first: they spread by count, weighing nothing.
        for k in 0..SLOTS {
            hub.plan(two_sockets(&format!("p{k}"), Audio::Talking));
        }
        assert_eq!(hub.slot_calls, [1; SLOTS]);
        assert_eq!(hub.slot_weight, [0; SLOTS]);
        // Conferences (every party hears a mix here: three encodes each).
        for k in 0..2 * SLOTS {
            hub.plan(conference(&format!("c{k}")));
        }
        assert_eq!(hub.slot_weight, [6; SLOTS], "two conferences a slot");
        assert_eq!(hub.slot_calls, [3; SLOTS]);
        // Each slot's tick works for its own three calls, none twice.
        let ticked: Vec<usize> = (0..SLOTS).map(|k| hub.tick(k)).collect();
        assert_eq!(ticked, vec![3; SLOTS]);
        // A conference ends; a two-party call becomes one and takes its
        // place (the lightest slot), not its old slot.
        let freed = hub.calls["c5"].slot;
        hub.plan(CallPlan {
            ended: true,
            ..conference("c5")
        });
        assert_eq!(hub.slot_weight[freed], 3);
        let before = hub.calls["p0"].slot;
        hub.plan(conference("p0"));
        let after = hub.calls["p0"].slot;
        assert_eq!(after, freed, "moved from {before} to the lightest slot");
        assert_eq!(hub.slot_weight, [6; SLOTS]);
        assert_eq!(hub.slot_calls.iter().sum::<u32>(), 3 * SLOTS as u32 - 1);
        // A conference that stays one keeps its slot (its cadence).
        let c1 = hub.calls["c1"].slot;
        hub.plan(conference("c1"));
        assert_eq!(hub.calls["c1"].slot, c1);
    }

    /// Waits (bounded) until the mixer's stats satisfy `ok`.
    async fn stats_until(bridge: &Bridge, ok: impl Fn(&BridgeStats) -> bool) -> BridgeStats {
        for _ in 0..200 {
            let s = bridge.stats().await;
            if ok(&s) {
                return s;
            }
            tokio::time::sleep(TICK).await;
        }
        bridge.stats().await
    }

    /// A call forwarded both ways gives the mixer nothing to do: after one
    /// tick its walk skips it; a digit, or a plan that holds a party,
    /// wakes it, and the mixer then sends that party its canned packets.
    #[tokio::test(flavor = "current_thread")]
    async fn the_mixer_skips_a_forwarded_call_until_a_digit_or_a_plan_wakes_it() {
        let bridge = Bridge::spawn_task(Impairment::default(), 64);
        let (agent_tx, mut agent_rx) = mpsc::channel(64);
        let (cust_tx, _cust_rx) = mpsc::channel(64);
        bridge.attach("agent-c-1", agent_tx);
        bridge.attach(&customer_key("c-1"), cust_tx);
        bridge.send(Command::Plan(two_sockets("c-1", Audio::Talking)));
        let s = stats_until(&bridge, |s| s.calls_idle == 1).await;
        assert_eq!((s.calls, s.calls_idle), (1, 1), "{s:?}");
        assert!(
            agent_rx.try_recv().is_err(),
            "forwarded: the mixer sends nothing"
        );

        // A digit to the agent: the call is awake at once and the agent
        // gets the key's packets from the mixer.
        bridge.send(Command::Dtmf {
            call: "c-1".into(),
            to: "a-c-1".into(),
            digits: "5".into(),
        });
        let s = bridge.stats().await;
        assert_eq!(s.calls_idle, 0, "{s:?}");
        let mut got = 0;
        for _ in 0..200 {
            while agent_rx.try_recv().is_ok() {
                got += 1;
            }
            if got >= 3 {
                break;
            }
            tokio::time::sleep(TICK).await;
        }
        assert!(got >= 3, "the digit's packets reached the agent: {got}");
        // Once the digit has played, the call sleeps again.
        let s = stats_until(&bridge, |s| s.calls_idle == 1).await;
        assert_eq!(s.calls_idle, 1, "{s:?}");

        // Holding the agent wakes the call: hold music comes from the mixer.
        while agent_rx.try_recv().is_ok() {}
        bridge.send(Command::Plan(two_sockets("c-1", Audio::Held)));
        let s = bridge.stats().await;
        assert_eq!(s.calls_idle, 0, "{s:?}");
        let mut held = 0;
        for _ in 0..200 {
            while agent_rx.try_recv().is_ok() {
                held += 1;
            }
            if held >= 5 {
                break;
            }
            tokio::time::sleep(TICK).await;
        }
        assert!(held >= 5, "hold music reached the held agent: {held}");
        let s = bridge.stats().await;
        assert_eq!(s.calls_idle, 0, "a held party keeps the call awake");
    }
}

#[cfg(test)]
mod wake_tests {
    //! The mixer threads as they run in the backend ([`Bridge::spawn`]),
    //! judged from outside: how often they wake, and the cadence of what
    //! each listener receives.

    use super::tests::{conference, two_sockets};
    use super::*;

    /// A listener's socket: the arrival and timestamp of each frame it
    /// gets until `until`.
    async fn arrivals(rx: &mut mpsc::Receiver<MediaOut>, until: Instant) -> Vec<(Instant, u32)> {
        let mut got = Vec::new();
        while let Ok(Some(f)) = tokio::time::timeout_at(until.into(), rx.recv()).await {
            if let Ok(m) = protocol::media::decode_media_frame(&f.bytes) {
                got.push((Instant::now(), m.header.timestamp));
            }
        }
        got
    }

    /// Attaches the three sockets of [`conference`] `call`; the customer's
    /// receiver first.
    fn attach_conference(bridge: &Bridge, call: &str) -> Vec<mpsc::Receiver<MediaOut>> {
        let mut rxs = Vec::new();
        for key in [
            customer_key(call),
            format!("agent-{call}"),
            format!("agent-b-{call}"),
        ] {
            let (tx, rx) = mpsc::channel(256);
            bridge.attach(&key, tx);
            rxs.push(rx);
        }
        rxs
    }

    /// Waits (bounded) for a listener's first packet.
    async fn first_packet(rx: &mut mpsc::Receiver<MediaOut>) {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(got, Ok(Some(_))), "the mixer sent nothing");
    }

    /// Checks one listener's packets over `secs` seconds: 50 a second,
    /// one per 20 ms tick (timestamps in steps of 20 ms, none missing),
    /// and no drift: the arrivals do not fall further and further behind
    /// a 20 ms clock started at the first (the median lateness of the
    /// last second against the first's; scheduling noise does not pile
    /// up, a clock that drifts by even 1 % does, 50 ms over 5 s).
    fn assert_cadence(who: &str, got: &[(Instant, u32)], secs: u32) {
        let want = 50 * secs as usize;
        assert!(
            got.len().abs_diff(want) <= 5,
            "{who}: {} packets in {secs} s, want {want}",
            got.len()
        );
        for w in got.windows(2) {
            assert_eq!(
                w[1].1.wrapping_sub(w[0].1),
                PACKET as u32,
                "{who}: one packet per tick"
            );
        }
        let t0 = got[0].0;
        let late: Vec<f64> = got
            .iter()
            .enumerate()
            .map(|(i, (at, _))| at.duration_since(t0).as_secs_f64() * 1000.0 - 20.0 * i as f64)
            .collect();
        let median = |xs: &[f64]| {
            let mut v = xs.to_vec();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let drift = median(&late[late.len() - 50..]) - median(&late[..50]);
        assert!(
            drift.abs() < 10.0,
            "{who}: drifted {drift:.1} ms in {secs} s"
        );
    }

    /// How late each way of sleeping to a deadline wakes, on the phase
    /// slots' schedule (three busy slots, 4 s each), for the choice in
    /// [`wheel`]: `cargo test -p switchboard-server --release
    /// bridge::wake_tests::measure_sleep_lateness -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn measure_sleep_lateness() {
        fn deadlines() -> Vec<Instant> {
            let t0 = Instant::now() + Duration::from_millis(5);
            (0..200u32)
                .flat_map(|n| {
                    [0u32, 7, 13].map(|k| t0 + TICK * n + Duration::from_millis(k.into()))
                })
                .collect()
        }
        fn report(how: &str, mut late_us: Vec<u128>) {
            late_us.sort_unstable();
            let n = late_us.len();
            println!(
                "{how:<44} p50 {:>6} us  p99 {:>6} us  worst {:>6} us",
                late_us[n / 2],
                late_us[n * 99 / 100],
                late_us[n - 1]
            );
        }
        let late = |d: Instant| Instant::now().saturating_duration_since(d).as_micros();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let got = rt.block_on(async {
            let mut got = Vec::new();
            for d in deadlines() {
                tokio::time::sleep_until(d.into()).await;
                got.push(late(d));
            }
            got
        });
        report("tokio::time::sleep_until (current thread)", got);
        let got = deadlines()
            .into_iter()
            .map(|d| {
                std::thread::sleep(d.saturating_duration_since(Instant::now()));
                late(d)
            })
            .collect();
        report("std::thread::sleep(deadline - now)", got);
        let bridge = Bridge::new(Impairment::default(), 1, 1);
        let mailbox = bridge.shards[0].mailbox.clone();
        let got = deadlines()
            .into_iter()
            .map(|d| {
                mailbox.wait(Some(d));
                late(d)
            })
            .collect();
        report("Mailbox::wait (futex to the deadline)", got);
    }

    /// An idle mixer sleeps until a command comes: no wake in half a
    /// second but the ones the stats requests themselves cause (the
    /// fixed 1 ms tick before it woke 500 times); nor with a call that is
    /// forwarded both ways, which gives the mixer nothing to do.
    #[tokio::test]
    async fn an_idle_mixer_does_not_wake_even_with_a_forwarded_call() {
        let bridge = Bridge::spawn(Impairment::default(), 64);
        let mixers = bridge.shards.len() as u64;
        for forwarded_call in [false, true] {
            if forwarded_call {
                let (agent_tx, _agent_rx) = mpsc::channel(64);
                let (cust_tx, _cust_rx) = mpsc::channel(64);
                bridge.attach("agent-c-1", agent_tx);
                bridge.attach(&customer_key("c-1"), cust_tx);
                bridge.send(Command::Plan(two_sockets("c-1", Audio::Talking)));
                let mut idle = false;
                for _ in 0..200 {
                    let s = bridge.stats().await;
                    idle = s.calls == 1 && s.calls_idle == 1;
                    if idle {
                        break;
                    }
                    tokio::time::sleep(TICK).await;
                }
                assert!(idle, "the forwarded call sleeps");
            }
            let before = bridge.stats().await;
            // The window measured: there is no state to wait for.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = bridge.stats().await;
            let wakes = after.wakes - before.wakes;
            assert!(
                wakes <= 2 * mixers,
                "{mixers} idle mixers woke {wakes} times in 0.5 s (forwarded call: {forwarded_call})"
            );
        }
    }

    /// A conference's three listeners each get a packet every 20 ms for
    /// five seconds, with no drift, while the mixer wakes only for the
    /// conference's phase slot (about 50 times a second, not 1,000).
    #[tokio::test]
    async fn a_conference_gets_a_packet_every_20_ms_with_no_drift() {
        let bridge = Bridge::spawn(Impairment::default(), 64);
        let mut rxs = attach_conference(&bridge, "c-1");
        bridge.send(Command::Plan(conference("c-1")));
        for rx in rxs.iter_mut() {
            first_packet(rx).await;
        }
        let before = bridge.stats().await;
        let until = Instant::now() + Duration::from_secs(5);
        let [a, b, c] = &mut rxs[..] else {
            unreachable!("three listeners")
        };
        let (a, b, c) = tokio::join!(arrivals(a, until), arrivals(b, until), arrivals(c, until));
        let after = bridge.stats().await;
        for (who, got) in [("customer", a), ("agent", b), ("agent b", c)] {
            assert_cadence(who, &got, 5);
        }
        let wakes = after.wakes - before.wakes;
        assert!(
            wakes <= 2 * 250,
            "one busy slot: about 250 wakes in 5 s, not 5,000: {wakes}"
        );
    }

    /// A mixer far behind on its ticks (a starved thread: here 100 s of
    /// ticks of 20 busy slots overdue) still answers a command between
    /// two of the ticks it makes up, not after the whole backlog.
    #[tokio::test]
    async fn a_mixer_making_up_ticks_still_answers_commands() {
        let bridge = Bridge::new(Impairment::default(), 64, 1);
        let mut first = None;
        for k in 0..SLOTS {
            let rxs = attach_conference(&bridge, &format!("c-{k}"));
            first = first.or(rxs.into_iter().next());
            bridge.send(Command::Plan(conference(&format!("c-{k}"))));
        }
        let mut mixer = Mixer::new(
            &bridge.shards[0],
            Impairment::default(),
            bridge.routes.clone(),
        );
        // The plans, applied: one conference in each slot.
        assert!(matches!(mixer.step(), Step::Sleep(Some(_))));
        let past = Instant::now()
            .checked_sub(Duration::from_secs(100))
            .expect("up for 100 s");
        mixer.wheel = wheel::Wheel::new(past);
        mixer.wheel.set_busy(&[true; SLOTS], past);
        let backlog = 100 * 50 * SLOTS as u64;
        std::thread::spawn(move || run_thread(mixer));
        first_packet(first.as_mut().expect("a listener")).await;
        let s = tokio::time::timeout(Duration::from_secs(10), bridge.stats())
            .await
            .expect("answered while making up the backlog");
        assert!(
            s.late_ticks < backlog / 2,
            "answered after {} of the {backlog} late ticks",
            s.late_ticks
        );
    }

    /// Conferences that start and end in other phase slots while one runs
    /// do not disturb its cadence, and each gets its own 50 packets a
    /// second while it lasts.
    #[tokio::test]
    async fn calls_joining_and_leaving_other_slots_keep_a_calls_cadence() {
        let bridge = Bridge::spawn(Impairment::default(), 64);
        let mut first = attach_conference(&bridge, "c-1");
        bridge.send(Command::Plan(conference("c-1")));
        first_packet(&mut first[0]).await;
        let start = Instant::now();
        let until = start + Duration::from_secs(4);
        let others = async {
            tokio::time::sleep_until((start + Duration::from_millis(500)).into()).await;
            let mut c2 = attach_conference(&bridge, "c-2");
            let mut c3 = attach_conference(&bridge, "c-3");
            bridge.send(Command::Plan(conference("c-2")));
            bridge.send(Command::Plan(conference("c-3")));
            first_packet(&mut c2[0]).await;
            first_packet(&mut c3[0]).await;
            let c3_from = Instant::now();
            let c2_until = c3_from + Duration::from_secs(1);
            let (c2_got, c3_got) = tokio::join!(
                arrivals(&mut c2[0], c2_until),
                arrivals(&mut c3[0], c3_from + Duration::from_secs(3))
            );
            (c2_got, c3_got)
        };
        let ending = async {
            tokio::time::sleep_until((start + Duration::from_millis(2_500)).into()).await;
            bridge.send(Command::Plan(CallPlan {
                ended: true,
                ..conference("c-2")
            }));
        };
        let (got, (c2_got, c3_got), ()) =
            tokio::join!(arrivals(&mut first[0], until), others, ending);
        assert_cadence("c-1", &got, 4);
        assert_cadence("c-2", &c2_got, 1);
        assert_cadence("c-3", &c3_got, 3);
    }
}
