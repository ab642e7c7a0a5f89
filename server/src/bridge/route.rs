//! Media routes: what happens to a frame the moment its socket reads it,
//! without the contact center's lock and without the mixing thread.
//!
//! Every listening party is in one of a few modes, chosen when its call's
//! plan changes ([`listen_modes`]): it hears exactly one socket source
//! (**Forward**: that source's Opus packets pass through with their header
//! rewritten), generated audio only (**Canned**: hold music, a prompt,
//! silence: packets encoded once and looped by the mixer), or two or more
//! talkers (**Mix**: the mixer decodes, sums and encodes). Only the last
//! costs an encode per packet.
//!
//! The plan is turned into routes synchronously, in [`Routes::apply_plan`]
//! (called by [`super::Bridge::send`], i.e. by the center as the call
//! changes), and published per socket: a socket holds its [`SocketSlot`]
//! and reads the slot's leg table (an `Arc` swapped under a lock only plan
//! changes write) for every frame. Forwarding then happens in the reading
//! socket's task: rewrite 12 header bytes and write the frame to the
//! listener's socket at once when its writer is idle ([`DirectWrite`]), or
//! `try_send` it to the listener's bounded writer queue.
//!
//! The rewrite keeps each listening leg one continuous stream across
//! source switches (forwarded, canned, mixed): sequence and timestamp are
//! the source's plus an offset fixed when the source starts, so the gaps
//! and reordering of the source are preserved (the receiver's jitter
//! buffer recovers a lost packet from the next one's in-band FEC), and the
//! first packet after a switch carries [`FLAG_MARKER`]. The expected next
//! timestamp advances by the packet's own duration (from its Opus TOC, so
//! 10 ms and 20 ms packets both work).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use protocol::media::{Codec, MediaHeader, FLAG_MARKER, HEADER_LEN};
use tokio::sync::mpsc;

use super::parties::{PartyFile, PartyRecorder};
use super::{customer_key, Audio, CallPlan, CallerAudio, PartyKind, PlannedParty};

/// A frame on its way to a socket's writer, stamped when the backend read
/// the frame it came from (or made it), for the forwarding-delay histogram.
#[derive(Debug)]
pub struct MediaOut {
    /// The whole frame.
    pub bytes: Vec<u8>,
    /// When its source frame was read (forwarded) or made (mixer).
    pub since: Instant,
    /// Made or sent by the mixer (canned, mixed, or a lone talker's
    /// packet in a mix's place): its delay is also kept apart, in
    /// [`MIXER_DELAY`].
    pub from_mixer: bool,
}

/// What one listening party hears, decided per plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Not a socket listener (a simulated caller: the mixer writes what it
    /// hears to its file).
    NotSocket,
    /// Exactly one socket source: forwarded from `(key, leg)`.
    Forward {
        /// The source socket's key.
        key: String,
        /// The source's leg.
        leg: u32,
    },
    /// Held: the canned hold loop.
    Hold,
    /// The only talker is a simulated caller playing this party's prompt
    /// (index into the plan's parties): its canned packets.
    Prompt(usize),
    /// Nobody talking: canned silence.
    Silence,
    /// Two or more talkers, or one that is not a socket nor canned: the
    /// mixer decodes, sums and encodes.
    Mix,
    /// Two or more talkers, every one a socket, heard by an agent whose
    /// client announced `media_legs`: each talker's packets are forwarded
    /// on the talker's own leg id (`(key, leg)` of each source), and the
    /// client mixes them. The listener's own leg carries only DTMF.
    Legs(Vec<(String, u32)>),
}

/// The socket key and leg a party's audio comes and goes on, if any.
pub fn socket_of(call: &str, p: &PlannedParty) -> Option<(String, u32)> {
    match &p.kind {
        PartyKind::Agent { agent, leg } => Some((agent.clone(), *leg)),
        PartyKind::Caller {
            play: CallerAudio::Live { leg },
            ..
        } => Some((customer_key(call), *leg)),
        PartyKind::Caller { .. } => None,
    }
}

/// Each party's listening mode, in plan order, when no client mixes legs
/// itself. Pure: the routes and the mixer both use it, so they agree on
/// who forwards what.
pub fn listen_modes(call: &str, parties: &[PlannedParty]) -> Vec<Listen> {
    listen_modes_with_legs(call, parties, |_| false)
}

/// Like [`listen_modes`], where `mixes_legs(key)` says whether the socket
/// `key` announced `media_legs`: an agent that did, hearing two or more
/// talkers that are all sockets, gets [`Listen::Legs`] instead of a mix.
pub fn listen_modes_with_legs(
    call: &str,
    parties: &[PlannedParty],
    mixes_legs: impl Fn(&str) -> bool,
) -> Vec<Listen> {
    let mut modes = base_modes(call, parties);
    for (j, mode) in modes.iter_mut().enumerate() {
        if *mode != Listen::Mix || !matches!(parties[j].kind, PartyKind::Agent { .. }) {
            continue;
        }
        let Some((key, _)) = socket_of(call, &parties[j]) else {
            continue;
        };
        if !mixes_legs(&key) {
            continue;
        }
        let sources: Option<Vec<(String, u32)>> = (0..parties.len())
            .filter(|&i| i != j && parties[i].audio == Audio::Talking)
            .map(|i| socket_of(call, &parties[i]))
            .collect();
        if let Some(sources) = sources.filter(|s| s.len() >= 2) {
            *mode = Listen::Legs(sources);
        }
    }
    modes
}

fn base_modes(call: &str, parties: &[PlannedParty]) -> Vec<Listen> {
    (0..parties.len())
        .map(|j| {
            let me = &parties[j];
            let Some(own) = socket_of(call, me) else {
                return Listen::NotSocket;
            };
            if me.audio == Audio::Held {
                return Listen::Hold;
            }
            let talkers: Vec<usize> = (0..parties.len())
                .filter(|&i| i != j && parties[i].audio == Audio::Talking)
                .collect();
            match talkers.as_slice() {
                [] => Listen::Silence,
                [i] => {
                    let src = &parties[*i];
                    if let Some((key, leg)) = socket_of(call, src) {
                        return Listen::Forward { key, leg };
                    }
                    match &src.kind {
                        PartyKind::Caller {
                            play: CallerAudio::Prompt(_),
                            ..
                        } => Listen::Prompt(*i),
                        PartyKind::Caller {
                            play: CallerAudio::Silence,
                            ..
                        } => Listen::Silence,
                        // An echo line that hears only this party says
                        // back exactly this party's packets.
                        PartyKind::Caller {
                            play: CallerAudio::Echo,
                            ..
                        } if only_hears(parties, *i, j) => Listen::Forward {
                            key: own.0,
                            leg: own.1,
                        },
                        _ => Listen::Mix,
                    }
                }
                _ => Listen::Mix,
            }
        })
        .collect()
}

/// Whether party `i` hears exactly one talker, party `j`.
fn only_hears(parties: &[PlannedParty], i: usize, j: usize) -> bool {
    parties[i].audio != Audio::Held
        && (0..parties.len())
            .filter(|&k| k != i && parties[k].audio == Audio::Talking)
            .eq(std::iter::once(j))
}

/// A stable id for a source of packets (a socket leg, or the mixer for
/// one party), used to tell when a listening leg's source changes.
pub fn source_id(kind: &str, key: &str, leg: u32) -> u64 {
    let mut h = DefaultHasher::new();
    (kind, key, leg).hash(&mut h);
    h.finish()
}

/// The planned "source" of a listener's own leg in [`Listen::Legs`] mode:
/// no socket sends on it (the talkers come on legs of their own), and the
/// mixer only while it plays DTMF.
const LEGS_ONLY: u64 = 1;

/// Rewriting state of one listening leg.
#[derive(Debug, Default)]
struct Rewrite {
    /// The socket source the plan forwards, if the leg is in Forward mode.
    planned: Option<u64>,
    /// The mixer has taken the leg over for a while (DTMF being played).
    mixer_override: bool,
    /// Whoever sent last.
    source: Option<u64>,
    seq_off: u32,
    ts_off: u32,
    next_seq: u32,
    next_ts: u32,
}

/// One party's listening leg: where its frames go and how they are
/// renumbered.
#[derive(Debug)]
pub struct OutLeg {
    /// The listener's leg id (written into every header).
    pub leg: u32,
    slot: Arc<SocketSlot>,
    state: Mutex<Rewrite>,
}

/// What happened to a frame offered to a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Queued for the socket.
    Queued,
    /// The socket was backed up or gone.
    Dropped,
    /// Not this sender's turn (the leg hears another source now).
    NotMine,
}

impl OutLeg {
    fn rewrite(&self) -> std::sync::MutexGuard<'_, Rewrite> {
        // Every update leaves the state consistent: a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the mixer should send this leg's audio now.
    pub fn mixer_sends(&self) -> bool {
        let r = self.rewrite();
        r.planned.is_none() || r.mixer_override
    }

    /// The mixer takes the leg over (true) or gives it back to the
    /// forwarded source (false).
    pub fn set_mixer_override(&self, on: bool) {
        self.rewrite().mixer_override = on;
    }

    /// Offers a packet from `source` (header as the source numbered it):
    /// rewritten and queued when it is that source's turn. `mixer` marks
    /// the mixer's own packets, which go when the leg is not forwarding.
    pub fn offer(
        &self,
        source: u64,
        mixer: bool,
        header: &MediaHeader,
        payload: &[u8],
        since: Instant,
        stats: &RouteStats,
    ) -> Sent {
        self.offer_codec(source, mixer, header, Codec::Opus, payload, since, stats)
    }

    /// Whether the listener's client takes `codec` (Opus always; G.711
    /// when its `hello` announced it, or a SIP leg of that law).
    pub fn accepts(&self, codec: Codec) -> bool {
        self.slot.accepts(codec)
    }

    /// Like [`OutLeg::offer`] for a payload in `codec`: the codec byte is
    /// kept and the packet's duration read from it. A codec the listener
    /// did not announce is dropped, never sent to a decoder that cannot
    /// play it.
    #[allow(clippy::too_many_arguments)]
    pub fn offer_codec(
        &self,
        source: u64,
        mixer: bool,
        header: &MediaHeader,
        codec: Codec,
        payload: &[u8],
        since: Instant,
        stats: &RouteStats,
    ) -> Sent {
        if !self.slot.accepts(codec) {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return Sent::Dropped;
        }
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        {
            let mut r = self.rewrite();
            let turn = if mixer {
                r.planned.is_none() || r.mixer_override
            } else {
                r.planned == Some(source) && !r.mixer_override
            };
            if !turn {
                return Sent::NotMine;
            }
            let mut flags = header.flags;
            if r.source != Some(source) {
                // A new source: continue where the leg's stream was.
                r.seq_off = r.next_seq.wrapping_sub(header.sequence);
                r.ts_off = r.next_ts.wrapping_sub(header.timestamp);
                r.source = Some(source);
                flags |= FLAG_MARKER;
            }
            let seq = header.sequence.wrapping_add(r.seq_off);
            let ts = header.timestamp.wrapping_add(r.ts_off);
            // Only a packet ahead of the stream moves it on; a late one
            // keeps its place (and the gap before it stays a gap).
            if seq.wrapping_sub(r.next_seq) as i32 >= 0 {
                r.next_seq = seq.wrapping_add(1);
                let dur = codec
                    .payload_samples(payload)
                    .unwrap_or(media::frame::PACKET as u32);
                r.next_ts = ts.wrapping_add(dur);
            }
            protocol::media::encode_media_frame_codec(
                &MediaHeader {
                    flags,
                    leg: self.leg,
                    sequence: seq,
                    timestamp: ts,
                },
                codec,
                payload,
                &mut out,
            );
        }
        let frame = MediaOut {
            bytes: out,
            since,
            from_mixer: mixer,
        };
        if self.slot.push(frame) {
            stats.sent.fetch_add(1, Ordering::Relaxed);
            Sent::Queued
        } else {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            Sent::Dropped
        }
    }
}

/// Where one socket's leg sends what it reads.
#[derive(Debug, Clone)]
pub struct InRoute {
    /// The call the leg belongs to.
    pub call: Arc<str>,
    /// This leg as a source.
    pub source: u64,
    /// Listening legs that hear this leg alone.
    pub forward: Vec<Arc<OutLeg>>,
    /// The party's own recording, while it is heard and the call records.
    pub record: Option<Arc<PartyFile>>,
    /// Whether the mixer needs this leg's frames (someone hears it in a
    /// mix, or a simulated caller hears it). A call whose every leg is
    /// forwarded (every two-party call of sockets) hands the mixer
    /// nothing.
    pub to_mixer: bool,
}

/// Writes a frame to a socket from the task that read its source, without
/// waking the socket's writer task: the forwarding path's fast lane.
///
/// `try_write` writes only when the socket's writer is idle (it holds no
/// frame of its own and is not finishing an earlier write) and `queue`,
/// the socket's bounded media queue, is empty, so a frame never passes
/// one queued before it. Otherwise it gives the frame back, to be queued
/// (and dropped when the queue is full, as before). A write the socket
/// cannot take at once stays in the socket's buffer and the writer task
/// is woken to finish it under its write deadline; until it has, every
/// frame goes through the queue.
pub trait DirectWrite: Send + Sync + std::fmt::Debug {
    /// Writes `frame` now, or gives it back.
    fn try_write(&self, frame: MediaOut, queue: &mpsc::Sender<MediaOut>) -> Result<(), MediaOut>;
}

/// Where a socket's frames go: its writer's bounded queue, and the
/// writer's direct lane when it has one.
#[derive(Debug)]
struct Sink {
    queue: mpsc::Sender<MediaOut>,
    direct: Option<Arc<dyn DirectWrite>>,
}

/// A socket's routed legs: a handful at most (one per call leg of the
/// agent), so a scan of a short vector, without hashing, per frame.
#[derive(Debug, Default, Clone)]
pub struct LegTable(Vec<(u32, Arc<InRoute>)>);

impl LegTable {
    fn get(&self, leg: u32) -> Option<&Arc<InRoute>> {
        self.0.iter().find(|(l, _)| *l == leg).map(|(_, r)| r)
    }

    fn insert(&mut self, leg: u32, route: Arc<InRoute>) {
        match self.0.iter_mut().find(|(l, _)| *l == leg) {
            Some(entry) => entry.1 = route,
            None => self.0.push((leg, route)),
        }
    }

    fn remove(&mut self, leg: u32) {
        self.0.retain(|(l, _)| *l != leg);
    }
}

/// One socket (an agent's, or a customer phone's) as the routes see it:
/// where frames to it go, and the table of its legs.
#[derive(Debug, Default)]
pub struct SocketSlot {
    sink: Mutex<Option<Sink>>,
    legs: RwLock<Arc<LegTable>>,
    /// The socket's client announced `media_legs`.
    mixes_legs: std::sync::atomic::AtomicBool,
    /// Codecs besides Opus the socket takes, one bit per codec id (its
    /// `hello`'s `codecs`; a SIP leg's G.711).
    codecs: std::sync::atomic::AtomicU8,
}

impl SocketSlot {
    /// The route of a frame this socket read on `leg`, if the leg is in a
    /// call's media now.
    pub fn route(&self, leg: u32) -> Option<InRoute> {
        self.route_shared(leg).map(|r| InRoute::clone(&r))
    }

    /// Like [`SocketSlot::route`], without copying the route: what the
    /// sockets use for every frame (no allocation per frame).
    pub fn route_shared(&self, leg: u32) -> Option<Arc<InRoute>> {
        let legs = self.legs.read().unwrap_or_else(|e| e.into_inner());
        legs.get(leg).cloned()
    }

    /// The codecs besides Opus this socket's client decodes and sends
    /// (replacing any earlier announcement).
    pub fn set_codecs(&self, codecs: &[Codec]) {
        let bits = codecs.iter().fold(0u8, |b, c| b | (1 << c.id()));
        self.codecs.store(bits, Ordering::Relaxed);
    }

    /// Whether frames in `codec` may go to this socket.
    pub fn accepts(&self, codec: Codec) -> bool {
        codec == Codec::Opus || self.codecs.load(Ordering::Relaxed) & (1 << codec.id()) != 0
    }

    /// Hands a frame to the socket: written at once by the sending task
    /// when the socket's writer is idle and nothing is queued before it
    /// ([`DirectWrite`]), queued otherwise (and dropped when the queue is
    /// full). The slot's lock is held throughout, so two senders to one
    /// socket never pass each other between the check and the write.
    fn push(&self, frame: MediaOut) -> bool {
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sink) = sink.as_ref() else {
            return false;
        };
        let frame = match &sink.direct {
            // The mixer's thread never writes to sockets itself: its tick
            // must not wait on a system call per listener.
            Some(direct) if !frame.from_mixer => match direct.try_write(frame, &sink.queue) {
                Ok(()) => return true,
                Err(frame) => frame,
            },
            _ => frame,
        };
        sink.queue.try_send(frame).is_ok()
    }

    fn edit_legs(&self, f: impl FnOnce(&mut LegTable)) {
        let mut guard = self.legs.write().unwrap_or_else(|e| e.into_inner());
        let mut legs = LegTable::clone(&guard);
        f(&mut legs);
        *guard = Arc::new(legs);
    }
}

/// Counters of the frames the routes moved.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Frames queued to sockets (forwarded or from the mixer).
    pub sent: AtomicU64,
    /// Frames dropped because the socket was backed up or gone.
    pub dropped: AtomicU64,
    /// Frames received from sockets on routed legs.
    pub received: AtomicU64,
    /// Frames forwarded without decoding.
    pub forwarded: AtomicU64,
}

/// What a call registered, to undo it when its plan changes.
#[derive(Default)]
struct CallRoutes {
    /// Socket legs that are sources in this call.
    inputs: Vec<(String, u32)>,
    /// Listening legs of this call.
    outputs: Vec<(String, u32)>,
    /// Per-talker legs of listeners in [`Listen::Legs`] mode: (listener
    /// key, listener leg, talker leg).
    leg_outputs: Vec<(String, u32, u32)>,
}

#[derive(Default)]
struct Table {
    slots: HashMap<String, Arc<SocketSlot>>,
    outs: HashMap<(String, u32), Arc<OutLeg>>,
    /// See [`CallRoutes::leg_outputs`].
    leg_outs: HashMap<(String, u32, u32), Arc<OutLeg>>,
    calls: HashMap<String, CallRoutes>,
    logs: HashMap<String, CallLog>,
}

/// What a recorded call's manifest has said so far.
struct CallLog {
    start: Instant,
    /// The call's recording directory.
    dir: PathBuf,
    /// Each party's id and how it took part at the last plan.
    parties: Vec<(String, Audio)>,
    /// Party files open.
    files: Vec<PathBuf>,
}

/// Every socket's routes. Written when plans change or sockets attach;
/// read by sockets through their own slot (never through this lock).
pub struct Routes {
    table: Mutex<Table>,
    /// Counters.
    pub stats: RouteStats,
    /// Off when the test impairment is on: every frame then goes through
    /// the mixer, which applies it.
    forward_enabled: bool,
    /// Writes each party's packets to its own file (None: no recording
    /// per party).
    pub recorder: Option<PartyRecorder>,
}

impl Routes {
    /// Empty routes.
    pub fn new(forward_enabled: bool) -> Routes {
        Routes {
            table: Mutex::default(),
            stats: RouteStats::default(),
            forward_enabled,
            recorder: None,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A socket can take frames through `tx` (replacing an older socket of
    /// the same key, whose queue is closed); returns its slot.
    pub fn attach(&self, key: &str, tx: mpsc::Sender<MediaOut>) -> Arc<SocketSlot> {
        self.attach_with_legs(key, tx, false)
    }

    /// Like [`Routes::attach`], for a socket whose client may have
    /// announced `media_legs` (`mixes_legs`). Takes effect from the call's
    /// next plan.
    pub fn attach_with_legs(
        &self,
        key: &str,
        tx: mpsc::Sender<MediaOut>,
        mixes_legs: bool,
    ) -> Arc<SocketSlot> {
        self.attach_sink(
            key,
            Sink {
                queue: tx,
                direct: None,
            },
            mixes_legs,
        )
    }

    /// Like [`Routes::attach_with_legs`], for a socket whose writer also
    /// takes frames straight from the sending task (`direct`, see
    /// [`DirectWrite`]): the ordinary socket, whose writer is a task of
    /// [`crate::ws::spawn_writer`].
    pub fn attach_direct(
        &self,
        key: &str,
        tx: mpsc::Sender<MediaOut>,
        mixes_legs: bool,
        direct: Arc<dyn DirectWrite>,
    ) -> Arc<SocketSlot> {
        self.attach_sink(
            key,
            Sink {
                queue: tx,
                direct: Some(direct),
            },
            mixes_legs,
        )
    }

    /// Both ways of attaching a socket: the key's slot (made on first use)
    /// takes the new sink in place of an older socket's, whose queue
    /// closes as it is dropped.
    fn attach_sink(&self, key: &str, sink: Sink, mixes_legs: bool) -> Arc<SocketSlot> {
        let slot = self
            .table()
            .slots
            .entry(key.to_owned())
            .or_default()
            .clone();
        *slot.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
        slot.mixes_legs.store(mixes_legs, Ordering::Relaxed);
        slot
    }

    /// Each party's listening mode, knowing which sockets mix legs
    /// themselves (what the mixer must agree with).
    pub fn modes(&self, call: &str, parties: &[PlannedParty]) -> Vec<Listen> {
        let t = self.table();
        Self::modes_in(&t, call, parties)
    }

    fn modes_in(t: &Table, call: &str, parties: &[PlannedParty]) -> Vec<Listen> {
        listen_modes_with_legs(call, parties, |key| {
            t.slots
                .get(key)
                .is_some_and(|s| s.mixes_legs.load(Ordering::Relaxed))
        })
    }

    /// The listening leg of `(key, leg)`, created if the plan has not made
    /// it (the mixer then sends to it as usual).
    pub fn out_leg(&self, key: &str, leg: u32) -> Arc<OutLeg> {
        let mut t = self.table();
        if let Some(o) = t.outs.get(&(key.to_owned(), leg)) {
            return o.clone();
        }
        let slot = t.slots.entry(key.to_owned()).or_default().clone();
        Arc::new(OutLeg {
            leg,
            slot,
            state: Mutex::default(),
        })
    }

    /// Writes what changed to the call's manifest, closes the files of
    /// parties no longer heard, and returns the files of those heard.
    fn log_plan(&self, t: &mut Table, plan: &CallPlan) -> HashMap<(String, u32), Arc<PartyFile>> {
        let mut files = HashMap::new();
        let Some(rec) = &self.recorder else {
            return files;
        };
        // The final plan of a call may not name its recording: the log
        // remembers where it is.
        let Some(dir) = plan
            .recording
            .as_ref()
            .map(|p| p.with_extension(""))
            .or_else(|| t.logs.get(&plan.call).map(|l| l.dir.clone()))
        else {
            return files;
        };
        let manifest = dir.join("manifest.jsonl");
        let now = Instant::now();
        let fresh = !t.logs.contains_key(&plan.call);
        let log = t.logs.entry(plan.call.clone()).or_insert_with(|| CallLog {
            start: now,
            dir: dir.clone(),
            parties: Vec::new(),
            files: Vec::new(),
        });
        let ms = now.saturating_duration_since(log.start).as_millis() as u64;
        let line = |party: &str, event: &str| {
            serde_json::json!({ "t_ms": ms, "party": party, "event": event }).to_string()
        };
        if fresh {
            rec.manifest(
                manifest.clone(),
                serde_json::json!({ "t_ms": 0, "event": "start", "call": plan.call }).to_string(),
            );
        }
        let parties: Vec<(String, Audio)> = if plan.ended {
            Vec::new()
        } else {
            plan.parties
                .iter()
                .map(|p| (p.id.clone(), p.audio))
                .collect()
        };
        for (id, audio) in &parties {
            let before = log.parties.iter().find(|(i, _)| i == id).map(|(_, a)| *a);
            if before != Some(*audio) {
                if before.is_none() {
                    rec.manifest(manifest.clone(), line(id, "join"));
                }
                let event = match audio {
                    Audio::Talking => "talking",
                    Audio::Held => "held",
                    Audio::Muted => "muted",
                };
                rec.manifest(manifest.clone(), line(id, event));
            }
        }
        for (id, _) in &log.parties {
            if !parties.iter().any(|(i, _)| i == id) {
                rec.manifest(manifest.clone(), line(id, "leave"));
            }
        }
        let mut open = Vec::new();
        for p in plan.parties.iter().filter(|_| !plan.ended) {
            let Some((key, leg)) = socket_of(&plan.call, p) else {
                continue;
            };
            if p.audio != Audio::Talking {
                continue;
            }
            let file = dir.join(format!("{}.opus", p.id));
            open.push(file.clone());
            files.insert(
                (key, leg),
                Arc::new(PartyFile {
                    path: file,
                    call_start: log.start,
                    serial: source_id("party", &p.id, 0) as u32,
                }),
            );
        }
        // A party that left closes its file; one that comes back (after a
        // hold) continues it: the writer keeps it open, filling the gap.
        let in_plan = |f: &PathBuf| {
            parties
                .iter()
                .any(|(id, _)| dir.join(format!("{id}.opus")) == *f)
        };
        for f in &log.files {
            if !in_plan(f) {
                rec.close(f.clone());
            }
        }
        log.files.retain(|f| in_plan(f));
        for f in open {
            if !log.files.contains(&f) {
                log.files.push(f);
            }
        }
        log.parties = parties;
        if plan.ended {
            rec.manifest_end(manifest, line("", "end"));
            t.logs.remove(&plan.call);
        }
        files
    }

    /// The recording file of a party the mixer feeds (a simulated caller
    /// playing a prompt), if the call records: aligned to the call's start
    /// like the sockets' parties, and closed with them when the party
    /// leaves or the call ends.
    pub fn party_file(&self, call: &str, party: &str) -> Option<Arc<PartyFile>> {
        self.recorder.as_ref()?;
        let mut t = self.table();
        let log = t.logs.get_mut(call)?;
        let path = log.dir.join(format!("{party}.opus"));
        if !log.files.contains(&path) {
            log.files.push(path.clone());
        }
        Some(Arc::new(PartyFile {
            path,
            call_start: log.start,
            serial: source_id("party", party, 0) as u32,
        }))
    }

    /// Brings the routes in line with a call's plan.
    pub fn apply_plan(&self, plan: &CallPlan) {
        let mut t = self.table();
        let old = t.calls.remove(&plan.call).unwrap_or_default();
        let live = !(plan.ended || plan.parties.is_empty());
        let modes = if live {
            Self::modes_in(&t, &plan.call, &plan.parties)
        } else {
            Vec::new()
        };
        let mut now = CallRoutes::default();
        let call: Arc<str> = Arc::from(plan.call.as_str());
        // Listening legs, with their planned source.
        let mut forwards: HashMap<(String, u32), Vec<Arc<OutLeg>>> = HashMap::new();
        for (p, mode) in plan.parties.iter().zip(&modes) {
            let Some((key, leg)) = socket_of(&plan.call, p) else {
                continue;
            };
            let slot = t.slots.entry(key.clone()).or_default().clone();
            let out = t
                .outs
                .entry((key.clone(), leg))
                .or_insert_with(|| {
                    Arc::new(OutLeg {
                        leg,
                        slot,
                        state: Mutex::default(),
                    })
                })
                .clone();
            let planned = match mode {
                Listen::Forward { key: k, leg: l } if self.forward_enabled => {
                    forwards
                        .entry((k.clone(), *l))
                        .or_default()
                        .push(out.clone());
                    Some(source_id("socket", k, *l))
                }
                Listen::Legs(sources) if self.forward_enabled => {
                    for (k, l) in sources {
                        let slot = t.slots.entry(key.clone()).or_default().clone();
                        let talker = t
                            .leg_outs
                            .entry((key.clone(), leg, *l))
                            .or_insert_with(|| {
                                Arc::new(OutLeg {
                                    leg: *l,
                                    slot,
                                    state: Mutex::default(),
                                })
                            })
                            .clone();
                        talker.rewrite().planned = Some(source_id("socket", k, *l));
                        forwards.entry((k.clone(), *l)).or_default().push(talker);
                        now.leg_outputs.push((key.clone(), leg, *l));
                    }
                    // The own leg: nobody's but the mixer's DTMF.
                    Some(LEGS_ONLY)
                }
                _ => None,
            };
            out.rewrite().planned = planned;
            now.outputs.push((key.clone(), leg));
            now.inputs.push((key, leg));
        }
        let files = self.log_plan(&mut t, plan);
        // The mixer needs the sockets' frames only for a mix or for a
        // simulated caller's ears; with the test impairment on, it sends
        // everything.
        let to_mixer = !self.forward_enabled
            || modes
                .iter()
                .any(|m| matches!(m, Listen::Mix | Listen::NotSocket));
        // Sources: every socket party's leg is routed (to the mixer at
        // least, which records it and mixes it for whoever needs it).
        for (key, leg) in &now.inputs {
            let route = InRoute {
                call: call.clone(),
                source: source_id("socket", key, *leg),
                forward: forwards.remove(&(key.clone(), *leg)).unwrap_or_default(),
                record: files.get(&(key.clone(), *leg)).cloned(),
                to_mixer,
            };
            let slot = t.slots.entry(key.clone()).or_default().clone();
            slot.edit_legs(|legs| {
                legs.insert(*leg, Arc::new(route));
            });
        }
        // What the old plan had and this one has not.
        for (key, leg) in old.inputs {
            if !now.inputs.contains(&(key.clone(), leg)) {
                if let Some(slot) = t.slots.get(&key) {
                    slot.edit_legs(|legs| {
                        legs.remove(leg);
                    });
                }
            }
        }
        for k in old.outputs {
            if !now.outputs.contains(&k) {
                t.outs.remove(&k);
            }
        }
        for k in old.leg_outputs {
            if !now.leg_outputs.contains(&k) {
                t.leg_outs.remove(&k);
            }
        }
        if plan.ended {
            // A customer phone's slot lives as long as its call.
            if let Some(slot) = t.slots.remove(&customer_key(&plan.call)) {
                *slot.sink.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
        if live {
            t.calls.insert(plan.call.clone(), now);
        }
    }
}

/// Forwarding delay inside the backend, from reading a frame to writing
/// the frame made from it: a histogram of 100 µs buckets up to 50 ms.
/// Process-wide (one backend per process in production; tests that run
/// several share it, which only blurs a statistic).
pub struct DelayHistogram {
    buckets: [AtomicU64; DELAY_BUCKETS + 1],
    max_us: AtomicU64,
}

const DELAY_BUCKETS: usize = 500;
const BUCKET_US: u64 = 100;

/// The one histogram.
pub static FORWARD_DELAY: DelayHistogram = DelayHistogram {
    buckets: [const { AtomicU64::new(0) }; DELAY_BUCKETS + 1],
    max_us: AtomicU64::new(0),
};

/// The same, for the packets the mixer sends only (from its tick's
/// start: canned packets, mixes, lone talkers' packets), so a
/// benchmark can tell the mixer's share of the delay from the sockets'.
pub static MIXER_DELAY: DelayHistogram = DelayHistogram {
    buckets: [const { AtomicU64::new(0) }; DELAY_BUCKETS + 1],
    max_us: AtomicU64::new(0),
};

/// A summary of the histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DelaySummary {
    /// Frames measured.
    pub count: u64,
    /// Median, microseconds (bucket upper bound).
    pub p50_us: u64,
    /// 99th percentile, microseconds (bucket upper bound).
    pub p99_us: u64,
    /// Slowest, microseconds.
    pub max_us: u64,
}

impl DelayHistogram {
    /// Records one delay.
    pub fn record(&self, since: Instant) {
        let us = since.elapsed().as_micros() as u64;
        let i = ((us / BUCKET_US) as usize).min(DELAY_BUCKETS);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        // Read first: a new maximum is rare, and a read-modify-write of
        // this one shared word from every socket task on every frame
        // would bounce its cache line between the cores.
        if us > self.max_us.load(Ordering::Relaxed) {
            self.max_us.fetch_max(us, Ordering::Relaxed);
        }
    }

    /// The non-empty buckets so far: (upper bound in µs, frames), so a
    /// benchmark can take the difference of two readings.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| ((i as u64 + 1) * BUCKET_US, b.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Counts, percentiles and maximum so far.
    pub fn summary(&self) -> DelaySummary {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let max_us = self.max_us.load(Ordering::Relaxed);
        let at = |q: f64| {
            let want = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    return ((i as u64 + 1) * BUCKET_US).min(max_us.max(1));
                }
            }
            max_us
        };
        DelaySummary {
            count,
            p50_us: if count == 0 { 0 } else { at(0.5) },
            p99_us: if count == 0 { 0 } else { at(0.99) },
            max_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, leg: u32, audio: Audio) -> PlannedParty {
        PlannedParty {
            id: format!("c-{name}"),
            kind: PartyKind::Agent {
                agent: name.into(),
                leg,
            },
            audio,
        }
    }

    fn caller(play: CallerAudio, audio: Audio) -> PlannedParty {
        PlannedParty {
            id: "c-customer".into(),
            kind: PartyKind::Caller { play, heard: None },
            audio,
        }
    }

    #[test]
    fn two_socket_parties_forward_to_each_other() {
        let parties = [
            caller(CallerAudio::Live { leg: 9 }, Audio::Talking),
            agent("alice", 1, Audio::Talking),
        ];
        let m = listen_modes("k1", &parties);
        assert_eq!(
            m,
            vec![
                Listen::Forward {
                    key: "alice".into(),
                    leg: 1
                },
                Listen::Forward {
                    key: "customer:k1".into(),
                    leg: 9
                },
            ]
        );
    }

    #[test]
    fn held_muted_prompt_echo_and_conference_modes() {
        let prompt = caller(CallerAudio::Prompt("a.wav".into()), Audio::Held);
        let m = listen_modes("k", &[prompt.clone(), agent("alice", 1, Audio::Talking)]);
        assert_eq!(
            m,
            vec![Listen::NotSocket, Listen::Silence],
            "held caller is not heard"
        );
        let talking = caller(CallerAudio::Prompt("a.wav".into()), Audio::Talking);
        let m = listen_modes("k", &[talking.clone(), agent("alice", 1, Audio::Held)]);
        assert_eq!(m[1], Listen::Hold);
        let m = listen_modes("k", &[talking.clone(), agent("alice", 1, Audio::Muted)]);
        assert_eq!(m[1], Listen::Prompt(0));
        let echo = caller(CallerAudio::Echo, Audio::Talking);
        let m = listen_modes("k", &[echo.clone(), agent("alice", 1, Audio::Talking)]);
        assert_eq!(
            m[1],
            Listen::Forward {
                key: "alice".into(),
                leg: 1
            }
        );
        // A conference: the customer hears two agents; each agent hears
        // the customer and the other agent.
        let live = caller(CallerAudio::Live { leg: 9 }, Audio::Talking);
        let m = listen_modes(
            "k",
            &[
                live,
                agent("alice", 1, Audio::Talking),
                agent("bob", 2, Audio::Talking),
            ],
        );
        assert_eq!(m, vec![Listen::Mix, Listen::Mix, Listen::Mix]);
        // A muted supervisor: the echo line still hears alice alone, so
        // alice gets her own packets back; bob hears two talkers.
        let m = listen_modes(
            "k",
            &[
                echo.clone(),
                agent("alice", 1, Audio::Talking),
                agent("bob", 2, Audio::Muted),
            ],
        );
        assert_eq!(
            m[1],
            Listen::Forward {
                key: "alice".into(),
                leg: 1
            }
        );
        assert_eq!(m[2], Listen::Mix, "bob hears alice and the echo of alice");
        // The echo line hearing two agents says back a mix.
        let m = listen_modes(
            "k",
            &[
                echo,
                agent("alice", 1, Audio::Talking),
                agent("bob", 2, Audio::Talking),
            ],
        );
        assert_eq!(m[1], Listen::Mix);
        assert_eq!(m[2], Listen::Mix);
    }

    /// A 20 ms CELT fullband packet (TOC config 31, one frame) and a 10 ms
    /// one (config 30).
    const P20: [u8; 3] = [31 << 3, 1, 2];
    const P10: [u8; 3] = [30 << 3, 1, 2];

    fn header(seq: u32, ts: u32) -> MediaHeader {
        MediaHeader {
            flags: 0,
            leg: 77,
            sequence: seq,
            timestamp: ts,
        }
    }

    fn received(rx: &mut mpsc::Receiver<MediaOut>) -> Vec<MediaHeader> {
        let mut v = Vec::new();
        while let Ok(f) = rx.try_recv() {
            v.push(
                protocol::media::decode_media_frame(&f.bytes)
                    .expect("valid frame")
                    .header,
            );
        }
        v
    }

    #[test]
    fn forwarded_headers_stay_continuous_across_switches_and_keep_gaps() {
        let routes = Routes::new(true);
        let (tx, mut rx) = mpsc::channel(64);
        routes.attach("alice", tx);
        let plan = CallPlan {
            call: "k".into(),
            parties: vec![
                caller(CallerAudio::Live { leg: 9 }, Audio::Talking),
                agent("alice", 1, Audio::Talking),
            ],
            ended: false,
            recording: None,
        };
        routes.apply_plan(&plan);
        let slot = routes.attach("customer:k", mpsc::channel(4).0);
        let route = slot.route(9).expect("the customer's leg is routed");
        assert_eq!(route.forward.len(), 1, "to alice");
        assert!(
            !route.to_mixer,
            "a call forwarded both ways hands the mixer nothing"
        );
        // A third talker makes a mix: every leg goes to the mixer too.
        let mut three = plan.clone();
        three.parties.push(agent("bob", 2, Audio::Talking));
        routes.apply_plan(&three);
        assert!(slot.route_shared(9).expect("routed").to_mixer);
        routes.apply_plan(&plan);
        let route = slot.route(9).expect("routed again");
        assert!(!route.to_mixer);
        let out = &route.forward[0];
        let stats = RouteStats::default();
        let t = Instant::now();
        // The customer's stream starts at an arbitrary place; packet 1002 is lost.
        for seq in [1000u32, 1001, 1003] {
            let h = header(seq, 5_000 + (seq - 1000) * 960);
            assert_eq!(
                out.offer(route.source, false, &h, &P20, t, &stats),
                Sent::Queued
            );
        }
        // The mixer is not this leg's source now.
        assert_eq!(
            out.offer(7, true, &header(0, 0), &P20, t, &stats),
            Sent::NotMine
        );
        let got = received(&mut rx);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].leg, 1, "rewritten to alice's leg");
        assert!(got[0].flags & FLAG_MARKER != 0, "a new source is marked");
        assert_eq!(got[1].sequence, got[0].sequence.wrapping_add(1));
        assert_eq!(got[1].flags & FLAG_MARKER, 0);
        assert_eq!(got[2].sequence, got[0].sequence.wrapping_add(3), "gap kept");
        assert_eq!(got[2].timestamp, got[0].timestamp.wrapping_add(3 * 960));

        // Alice goes on hold: the mixer owns her leg and continues the
        // stream right after the last forwarded packet.
        let mut held = plan.clone();
        held.parties[1].audio = Audio::Held;
        routes.apply_plan(&held);
        assert!(slot.route(9).expect("still routed").forward.is_empty());
        let out = routes.out_leg("alice", 1);
        assert!(out.mixer_sends());
        assert_eq!(
            out.offer(42, true, &header(0, 0), &P10, t, &stats),
            Sent::Queued
        );
        assert_eq!(
            out.offer(42, true, &header(1, 480), &P10, t, &stats),
            Sent::Queued
        );
        let got2 = received(&mut rx);
        assert_eq!(got2[0].sequence, got[2].sequence.wrapping_add(1));
        assert_eq!(got2[0].timestamp, got[2].timestamp.wrapping_add(960));
        assert!(got2[0].flags & FLAG_MARKER != 0);
        assert_eq!(got2[1].timestamp, got2[0].timestamp.wrapping_add(480));

        // Resumed: forwarding again, continuing after 10 ms packets, even
        // though the customer's numbers wrapped meanwhile.
        routes.apply_plan(&plan);
        let route = slot.route(9).expect("routed");
        let h = header(u32::MAX, u32::MAX - 100);
        assert_eq!(
            route.forward[0].offer(route.source, false, &h, &P20, t, &stats),
            Sent::Queued
        );
        let h = header(0, (u32::MAX - 100).wrapping_add(960));
        route.forward[0].offer(route.source, false, &h, &P20, t, &stats);
        let got3 = received(&mut rx);
        assert_eq!(got3[0].sequence, got2[1].sequence.wrapping_add(1));
        assert_eq!(got3[0].timestamp, got2[1].timestamp.wrapping_add(480));
        assert!(got3[0].flags & FLAG_MARKER != 0);
        assert_eq!(got3[1].sequence, got3[0].sequence.wrapping_add(1));
        assert_eq!(got3[1].timestamp, got3[0].timestamp.wrapping_add(960));

        // The call ends: nothing is routed any more.
        let mut ended = plan.clone();
        ended.ended = true;
        routes.apply_plan(&ended);
        assert!(slot.route(9).is_none());
        assert!(routes
            .attach("alice", mpsc::channel(1).0)
            .route(1)
            .is_none());
    }

    #[test]
    fn delay_histogram_percentiles() {
        let h = DelayHistogram {
            buckets: [const { AtomicU64::new(0) }; DELAY_BUCKETS + 1],
            max_us: AtomicU64::new(0),
        };
        assert_eq!(h.summary().count, 0);
        for _ in 0..100 {
            h.record(Instant::now());
        }
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert!(s.p99_us <= BUCKET_US, "{s:?}");
    }

    /// A direct lane that takes what it is offered while `open`, and
    /// records what it took.
    #[derive(Debug, Default)]
    struct Lane {
        open: std::sync::atomic::AtomicBool,
        took: Mutex<Vec<u8>>,
    }

    impl DirectWrite for Lane {
        fn try_write(
            &self,
            frame: MediaOut,
            _queue: &mpsc::Sender<MediaOut>,
        ) -> Result<(), MediaOut> {
            if !self.open.load(Ordering::SeqCst) {
                return Err(frame);
            }
            self.took.lock().expect("lock").push(frame.bytes[0]);
            Ok(())
        }
    }

    fn out(n: u8, from_mixer: bool) -> MediaOut {
        MediaOut {
            bytes: vec![n; 8],
            since: Instant::now(),
            from_mixer,
        }
    }

    #[test]
    fn forwarded_frames_take_the_direct_lane_and_the_mixers_the_queue() {
        let routes = Routes::new(true);
        let (tx, mut rx) = mpsc::channel(2);
        let lane = Arc::new(Lane::default());
        lane.open.store(true, Ordering::SeqCst);
        let slot = routes.attach_direct("alice", tx, false, lane.clone());
        assert!(slot.push(out(1, false)), "forwarded: written directly");
        assert!(slot.push(out(2, true)), "the mixer's: queued");
        assert_eq!(*lane.took.lock().expect("lock"), [1]);
        assert_eq!(rx.try_recv().map(|f| f.bytes[0]).ok(), Some(2));
        // A lane that gives the frame back: queued, and dropped when the
        // queue is full (bounded as before).
        lane.open.store(false, Ordering::SeqCst);
        assert!(slot.push(out(3, false)));
        assert!(slot.push(out(4, false)));
        assert!(!slot.push(out(5, false)), "the queue is full: dropped");
        assert_eq!(rx.try_recv().map(|f| f.bytes[0]).ok(), Some(3));
        assert_eq!(rx.try_recv().map(|f| f.bytes[0]).ok(), Some(4));
        // A newer socket of the same key without a lane replaces it all.
        let (tx2, mut rx2) = mpsc::channel(2);
        lane.open.store(true, Ordering::SeqCst);
        routes.attach("alice", tx2);
        assert!(slot.push(out(6, false)));
        assert_eq!(rx2.try_recv().map(|f| f.bytes[0]).ok(), Some(6));
        assert_eq!(*lane.took.lock().expect("lock"), [1], "the old lane is out");
    }
}
