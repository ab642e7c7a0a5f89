//! Recording each party without decoding: every talking party's packets,
//! as received, go into an Ogg Opus file of its own
//! (`recordings/<contact>/<connection id>.opus`, see [`super::ogg`]),
//! aligned to the call's start (the time before the party joined, and
//! every gap, is filled with concealment), beside a manifest
//! (`recordings/<contact>/manifest.jsonl`: one JSON line per join, leave,
//! hold, mute and their ends, with milliseconds since the call started).
//!
//! Files are written by one thread of its own, never by the sockets'
//! runtime. Sockets hand it packets through a bounded inbox that the
//! writer takes **a batch at a time**: a packet is copied into the
//! inbox's byte arena under a short lock, and nobody is woken; the writer
//! wakes on its own every [`BATCH_MS`] (or at once for a flush), swaps
//! the inbox with its spare, and writes the whole batch. So the cost per
//! packet is a copy and an uncontended lock, not a thread wake-up, and
//! after warm-up nothing is allocated per packet. When the inbox is full
//! ([`QUEUE`]) a packet is dropped and counted, which the file shows as a
//! concealed gap. Each file is written a page (about a second) at a time,
//! so a process killed at any instant leaves files that play up to their
//! last page.
//!
//! Creating files is the writer's largest cost on this machine's ext4
//! (an inode per file, a directory per contact), so it is kept to one
//! `mkdir` per contact (made only when opening a file finds the directory
//! missing), one `open` per party file and one per manifest (kept open
//! until the call's last line, [`MAX_OPEN_MANIFESTS`] at most), and no
//! `fsync`: every page is handed to the kernel with one `write` as soon as
//! it is complete, which is what survives `kill -9` (the page cache
//! outlives the process); an `fsync` per file cost about 7 ms of the
//! writer's time each (measured on this machine), which at a thousand
//! calls ending made the writer fall behind and drop packets. Power loss
//! is not covered, as for the SQLite store's own settings.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use protocol::media::Codec;

use super::ogg::OggOpusWriter;

/// Commands the inbox holds at most: about 310 ms of packets at 1,000
/// two-party calls (100,000 packets a second), so a writer thread the
/// scheduler leaves out for a while on a busy machine loses nothing (with
/// 8,192, 72 ms, it dropped audio on this 2-core machine under load). A
/// full inbox is about 2 MiB of commands plus the packets' bytes (about
/// 100 each), twice (the spare the writer swaps in).
pub const QUEUE: usize = 32_768;

/// Room in [`QUEUE`] kept for closes, manifest lines and flushes: packets
/// may fill the inbox only up to `QUEUE - CONTROL_ROOM`, so a backed-up
/// writer drops audio (a concealed gap) but never a file's end or a
/// manifest line.
const CONTROL_ROOM: usize = 1024;

/// How often the writer takes the inbox when nobody asks it to.
pub const BATCH_MS: u64 = 20;

/// Manifests kept open between lines (a call's is closed at its last
/// line); beyond this a line opens and closes its file.
pub const MAX_OPEN_MANIFESTS: usize = 1024;

/// A gap longer than this in a party's timestamps is taken from the wall
/// clock instead (the party's client restarted its numbering).
const MAX_TS_GAP: u32 = 48_000 * 10;

/// One party's file, as the sockets know it.
#[derive(Debug)]
pub struct PartyFile {
    /// Where the file goes.
    pub path: PathBuf,
    /// When the call started (the file's time zero).
    pub call_start: Instant,
    /// The Ogg stream's serial number.
    pub serial: u32,
}

enum Cmd {
    /// A packet whose payload is `bytes[start..start + len]` of its batch.
    Packet {
        file: Arc<PartyFile>,
        start: usize,
        len: usize,
        timestamp: u32,
        at: Instant,
        codec: Codec,
    },
    Close(PathBuf),
    Manifest {
        path: PathBuf,
        line: String,
        /// The call's last line: the file is closed after it.
        last: bool,
    },
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// Commands waiting for the writer, with the payload bytes of their
/// packets in one arena (cleared, not freed, between batches).
#[derive(Default)]
struct Batch {
    cmds: Vec<Cmd>,
    bytes: Vec<u8>,
    packets: usize,
    /// No more commands come: the writer finishes and stops.
    closed: bool,
}

struct Shared {
    inbox: Mutex<Batch>,
    /// Rung for a flush or a close of the recorder, not per packet.
    ring: Condvar,
}

impl Shared {
    fn inbox(&self) -> std::sync::MutexGuard<'_, Batch> {
        // Every update is a push: a poisoned lock is still consistent.
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stops the writer when the last handle goes.
struct Stopper(Arc<Shared>);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.inbox().closed = true;
        self.0.ring.notify_one();
    }
}

/// The writer thread's handle.
#[derive(Clone)]
pub struct PartyRecorder {
    shared: Arc<Shared>,
    _stopper: Arc<Stopper>,
    /// Packets (and, rarely, control commands) dropped because the writer
    /// was behind.
    pub dropped: Arc<AtomicU64>,
}

impl PartyRecorder {
    /// Starts the writer thread.
    pub fn start() -> PartyRecorder {
        let rec = PartyRecorder::unstarted();
        let shared = rec.shared.clone();
        let started = std::thread::Builder::new()
            .name("recording-writer".into())
            .spawn(move || run(&shared));
        if let Err(e) = started {
            tracing::error!("recording writer thread: {e}");
        }
        rec
    }

    /// A handle whose inbox nobody takes yet.
    fn unstarted() -> PartyRecorder {
        let shared = Arc::new(Shared {
            inbox: Mutex::default(),
            ring: Condvar::new(),
        });
        PartyRecorder {
            _stopper: Arc::new(Stopper(shared.clone())),
            shared,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    fn dropped(&self, control: bool) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if control || n == 1 || n % 1000 == 0 {
            tracing::warn!(
                dropped = n,
                control,
                "recording writer behind: dropped a command"
            );
        }
    }

    /// Queues a control command (not a packet); returns whether it fit.
    fn control(&self, cmd: Cmd) -> bool {
        let mut b = self.shared.inbox();
        if b.cmds.len() >= QUEUE {
            drop(b);
            self.dropped(true);
            return false;
        }
        b.cmds.push(cmd);
        true
    }

    /// A packet of `file`'s party as received (header timestamp kept for
    /// timing).
    pub fn packet(&self, file: &Arc<PartyFile>, payload: &[u8], timestamp: u32) {
        self.packet_codec(file, Codec::Opus, payload, timestamp);
    }

    /// Like [`PartyRecorder::packet`] for a payload in `codec`: G.711 (a
    /// trunk leg forwarded untouched, or an agent answering it) goes into
    /// the party's G.711 WAV beside its Ogg Opus file, as it came.
    pub fn packet_codec(
        &self,
        file: &Arc<PartyFile>,
        codec: Codec,
        payload: &[u8],
        timestamp: u32,
    ) {
        let at = Instant::now();
        let mut b = self.shared.inbox();
        if b.packets >= QUEUE - CONTROL_ROOM || b.cmds.len() >= QUEUE {
            drop(b);
            self.dropped(false);
            return;
        }
        let start = b.bytes.len();
        b.bytes.extend_from_slice(payload);
        b.packets += 1;
        b.cmds.push(Cmd::Packet {
            file: file.clone(),
            start,
            len: payload.len(),
            timestamp,
            at,
            codec,
        });
    }

    /// The party's file is complete (it left, or the call ended).
    pub fn close(&self, path: PathBuf) {
        self.control(Cmd::Close(path));
    }

    /// Appends one line to a call's manifest.
    pub fn manifest(&self, path: PathBuf, line: String) {
        self.control(Cmd::Manifest {
            path,
            line,
            last: false,
        });
    }

    /// Appends a call's last manifest line and closes the manifest.
    pub fn manifest_end(&self, path: PathBuf, line: String) {
        self.control(Cmd::Manifest {
            path,
            line,
            last: true,
        });
    }

    /// Waits until everything queued before this call is written.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.control(Cmd::Flush(tx)) {
            self.shared.ring.notify_one();
            let _ = rx.recv();
        }
    }
}

struct Open {
    writer: OggOpusWriter<File>,
    /// The next timestamp expected from the party.
    next_ts: u32,
}

/// Opens `path`, making its directory only when the open finds it
/// missing: one `mkdir` per contact rather than one per file or line.
fn open_in_dir(path: &Path, opts: &OpenOptions) -> std::io::Result<File> {
    match opts.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            opts.open(path)
        }
        other => other,
    }
}

/// Appends `line` to the manifest at `path`, keeping the file open for
/// the call's next lines unless it is the `last` (or too many are open).
fn write_manifest(
    manifests: &mut HashMap<PathBuf, File>,
    path: PathBuf,
    line: &str,
    last: bool,
) -> std::io::Result<()> {
    let mut file = match manifests.remove(&path) {
        Some(f) => f,
        None => open_in_dir(&path, OpenOptions::new().create(true).append(true))?,
    };
    // One write per line, so a line is never half on disk.
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    file.write_all(&bytes)?;
    if !last && manifests.len() < MAX_OPEN_MANIFESTS {
        manifests.insert(path, file);
    }
    Ok(())
}

fn run(shared: &Shared) {
    // Keyed by the path's bytes: a `PathBuf` key hashes and compares
    // component by component, which per packet was a visible share of
    // this thread's time.
    let mut open: HashMap<std::ffi::OsString, Open> = HashMap::new();
    let mut open_g711: HashMap<PathBuf, G711File> = HashMap::new();
    let mut manifests: HashMap<PathBuf, File> = HashMap::new();
    let mut batch = Batch::default();
    loop {
        {
            let mut inbox = shared.inbox();
            let due = Instant::now() + Duration::from_millis(BATCH_MS);
            // Sleep a batch's time unless a flush or the end rings first.
            while !inbox.closed && !inbox.cmds.iter().any(|c| matches!(c, Cmd::Flush(_))) {
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                inbox = shared
                    .ring
                    .wait_timeout(inbox, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut *inbox, &mut batch);
            // The spare goes back empty but keeps its capacity.
            inbox.closed = batch.closed;
        }
        for cmd in batch.cmds.drain(..) {
            match cmd {
                Cmd::Packet {
                    file,
                    start,
                    len,
                    timestamp,
                    at,
                    codec,
                } => {
                    let payload = batch.bytes.get(start..start + len).unwrap_or(&[]);
                    if codec.is_g711() {
                        if let Err(e) =
                            write_g711(&mut open_g711, &file, codec, payload, timestamp, at)
                        {
                            tracing::warn!("recording {}: {e}", file.path.display());
                            open_g711.remove(&g711_path(&file.path));
                        }
                    } else if let Err(e) = write_packet(&mut open, &file, payload, timestamp, at) {
                        tracing::warn!("recording {}: {e}", file.path.display());
                        open.remove(file.path.as_os_str());
                    }
                }
                Cmd::Close(path) => {
                    if let Some(g) = open_g711.remove(&g711_path(&path)) {
                        if let Err(e) = g.finish() {
                            tracing::warn!("recording {}: {e}", path.display());
                        }
                    }
                    // The end-of-stream page is written; no fsync (see
                    // the module's doc).
                    if let Some(o) = open.remove(path.as_os_str()) {
                        if let Err(e) = o.writer.finish() {
                            tracing::warn!("recording {}: {e}", path.display());
                        }
                    }
                }
                Cmd::Manifest { path, line, last } => {
                    let shown = path.display().to_string();
                    if let Err(e) = write_manifest(&mut manifests, path, &line, last) {
                        tracing::warn!("manifest {shown}: {e}");
                    }
                }
                Cmd::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
        batch.bytes.clear();
        batch.packets = 0;
        if batch.closed {
            break;
        }
    }
    for (_, o) in open {
        let _ = o.writer.finish();
    }
    for (_, g) in open_g711 {
        let _ = g.finish();
    }
}

/// Where a party's G.711 goes: beside its Ogg Opus file, `.wav`.
pub fn g711_path(opus: &Path) -> PathBuf {
    opus.with_extension("wav")
}

/// The WAV format tag of a G.711 law (RFC 2361: 6 A-law, 7 μ-law).
fn wav_format(law: Codec) -> u16 {
    if law == Codec::Pcma {
        6
    } else {
        7
    }
}

/// The header of an 8 kHz mono G.711 WAV holding `bytes` samples: a
/// `fmt ` chunk of 18 bytes (non-PCM), a `fact` chunk, then `data`.
pub fn g711_wav_header(law: Codec, bytes: u32) -> [u8; G711_HEADER] {
    let mut h = [0u8; G711_HEADER];
    let mut at = 0;
    let mut put = |b: &[u8]| {
        h[at..at + b.len()].copy_from_slice(b);
        at += b.len();
    };
    put(b"RIFF");
    put(&(G711_HEADER as u32 - 8).saturating_add(bytes).to_le_bytes());
    put(b"WAVEfmt ");
    put(&18u32.to_le_bytes());
    put(&wav_format(law).to_le_bytes());
    put(&1u16.to_le_bytes()); // mono
    put(&8000u32.to_le_bytes());
    put(&8000u32.to_le_bytes()); // bytes a second
    put(&1u16.to_le_bytes()); // block align
    put(&8u16.to_le_bytes()); // bits a sample
    put(&0u16.to_le_bytes()); // no extension
    put(b"fact");
    put(&4u32.to_le_bytes());
    put(&bytes.to_le_bytes());
    put(b"data");
    put(&bytes.to_le_bytes());
    h
}

/// Length of [`g711_wav_header`].
pub const G711_HEADER: usize = 58;

/// A party's G.711 WAV being written: 8 kHz bytes as they came, the
/// call's start and every gap filled with the law's silence.
struct G711File {
    out: std::io::BufWriter<File>,
    law: Codec,
    /// Bytes (8 kHz samples) written after the header.
    written: u64,
    /// The next timestamp expected (48 kHz).
    next_ts: u32,
}

impl G711File {
    fn silence(&mut self, samples: u64) -> std::io::Result<()> {
        let byte = media::g711::encode_one(self.law, 0.0);
        let chunk = [byte; 800];
        let mut left = samples;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            self.out.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        self.written += samples;
        Ok(())
    }

    fn fill_to(&mut self, position: u64) -> std::io::Result<()> {
        self.silence(position.saturating_sub(self.written))
    }

    /// Writes the sizes into the header: the file is complete.
    fn finish(self) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let mut f = self.out.into_inner().map_err(|e| e.into_error())?;
        let bytes = u32::try_from(self.written).unwrap_or(u32::MAX);
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&g711_wav_header(self.law, bytes))
    }
}

fn write_g711(
    open: &mut HashMap<PathBuf, G711File>,
    file: &PartyFile,
    law: Codec,
    payload: &[u8],
    timestamp: u32,
    at: Instant,
) -> std::io::Result<()> {
    // 8 kHz samples since the call started.
    let since_start = at.saturating_duration_since(file.call_start).as_micros() as u64 * 8 / 1000;
    let path = g711_path(&file.path);
    let g = match open.get_mut(&path) {
        Some(g) => g,
        None => {
            // As for the Ogg file: one that exists was finished.
            let created = open_in_dir(&path, OpenOptions::new().write(true).create_new(true));
            let mut created = match created {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
                other => other?,
            };
            // Sizes are written when the file is finished; a file cut
            // short reads to its end.
            created.write_all(&g711_wav_header(law, u32::MAX - G711_HEADER as u32))?;
            let mut g = G711File {
                out: std::io::BufWriter::with_capacity(8000, created),
                law,
                written: 0,
                next_ts: timestamp,
            };
            g.fill_to(since_start)?;
            open.entry(path).or_insert(g)
        }
    };
    let ahead = timestamp.wrapping_sub(g.next_ts);
    if ahead > MAX_TS_GAP && ahead < u32::MAX / 2 {
        g.fill_to(since_start)?;
    } else if ahead >= u32::MAX / 2 {
        return Ok(());
    } else {
        g.silence(u64::from(ahead / 6))?;
    }
    if law == g.law {
        g.out.write_all(payload)?;
    } else {
        // The other law in the same party's file (rare: a switch of the
        // trunk's codec): converted through linear.
        let mut pcm = Vec::new();
        media::g711::decode(law, payload, &mut pcm);
        let mut bytes = Vec::new();
        media::g711::encode(g.law, &pcm, &mut bytes);
        g.out.write_all(&bytes)?;
    }
    g.written += payload.len() as u64;
    g.next_ts = timestamp.wrapping_add(payload.len() as u32 * 6);
    Ok(())
}

fn write_packet(
    open: &mut HashMap<std::ffi::OsString, Open>,
    file: &PartyFile,
    payload: &[u8],
    timestamp: u32,
    at: Instant,
) -> Result<(), super::ogg::OggError> {
    let since_start = at.saturating_duration_since(file.call_start).as_micros() as u64 * 48 / 1000;
    let o = match open.get_mut(file.path.as_os_str()) {
        Some(o) => o,
        None => {
            // A file that exists was closed (its party left, or the call
            // ended): a packet still in flight after that is dropped rather
            // than truncating the finished file.
            let created = open_in_dir(&file.path, OpenOptions::new().write(true).create_new(true));
            let created = match created {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
                other => other?,
            };
            let mut writer = OggOpusWriter::new(created, file.serial)?;
            // The party's file starts at the call's start.
            writer.fill_to(since_start)?;
            open.entry(file.path.as_os_str().to_owned())
                .or_insert(Open {
                    writer,
                    next_ts: timestamp,
                })
        }
    };
    let ahead = timestamp.wrapping_sub(o.next_ts);
    if ahead > MAX_TS_GAP && ahead < u32::MAX / 2 {
        // A jump: the wall clock says where this packet belongs.
        o.writer.fill_to(since_start)?;
    } else if ahead >= u32::MAX / 2 {
        // Late, or a repeat: the file has moved past it.
        return Ok(());
    } else {
        o.writer.gap(u64::from(ahead))?;
    }
    o.writer.packet(payload)?;
    let dur = protocol::media::opus_packet_samples(payload).unwrap_or(960);
    o.next_ts = timestamp.wrapping_add(dur);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_far_behind_drops_packets_but_never_a_close_or_a_manifest_line() {
        // A writer that takes nothing yet: its inbox fills.
        let rec = PartyRecorder::unstarted();
        let file = Arc::new(PartyFile {
            path: PathBuf::from("/nonexistent/p.opus"),
            call_start: Instant::now(),
            serial: 1,
        });
        for k in 0..QUEUE as u32 {
            rec.packet(&file, &[31u8 << 3, 1], k * 960);
        }
        let dropped = rec.dropped.load(Ordering::Relaxed);
        assert_eq!(
            dropped, CONTROL_ROOM as u64,
            "packets beyond the packet share"
        );
        for _ in 0..100 {
            rec.manifest(PathBuf::from("/nonexistent/m.jsonl"), "{}".into());
        }
        rec.close(file.path.clone());
        assert_eq!(
            rec.dropped.load(Ordering::Relaxed),
            dropped,
            "no control command lost"
        );
        let inbox = rec.shared.inbox();
        assert!(matches!(inbox.cmds.last(), Some(Cmd::Close(_))));
        assert_eq!(inbox.cmds.len(), QUEUE - CONTROL_ROOM + 101);
        assert_eq!(
            inbox.bytes.len(),
            2 * (QUEUE - CONTROL_ROOM),
            "one arena for every payload"
        );
    }

    #[test]
    fn a_manifest_stays_open_until_its_last_line_and_a_late_line_appends() {
        let dir = std::env::temp_dir().join(format!("manifests-{}", std::process::id()));
        let path = dir.join("k1/manifest.jsonl");
        let mut open = HashMap::new();
        // The first line makes the contact's directory.
        write_manifest(&mut open, path.clone(), "a", false).expect("a");
        write_manifest(&mut open, path.clone(), "b", false).expect("b");
        assert_eq!(open.len(), 1, "kept open between lines");
        // Each line is on disk at once (no buffering to lose on kill -9).
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a\nb\n");
        write_manifest(&mut open, path.clone(), "c", true).expect("c");
        assert!(open.is_empty(), "closed at the last line");
        // A line after the end reopens the file and appends to it.
        write_manifest(&mut open, path.clone(), "d", true).expect("d");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "a\nb\nc\nd\n"
        );
        // At the bound, a line is written but its file not kept open.
        for k in 0..MAX_OPEN_MANIFESTS {
            open.insert(
                PathBuf::from(format!("/x/{k}")),
                File::open("/dev/null").expect("null"),
            );
        }
        write_manifest(&mut open, path.clone(), "e", false).expect("e");
        assert_eq!(open.len(), MAX_OPEN_MANIFESTS);
        assert!(!open.contains_key(&path));
        assert!(std::fs::read_to_string(&path)
            .expect("read")
            .ends_with("d\ne\n"));
        // A directory that cannot be made is an error, not a panic.
        assert!(write_manifest(
            &mut HashMap::new(),
            PathBuf::from("/proc/no/such/m.jsonl"),
            "x",
            false
        )
        .is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn g711_is_recorded_as_it_came_in_a_wav_aligned_to_the_call() {
        let dir = std::env::temp_dir().join(format!("parties-g711-{}", std::process::id()));
        let rec = PartyRecorder::start();
        let start = Instant::now() - std::time::Duration::from_millis(100);
        let file = Arc::new(PartyFile {
            path: dir.join("k1/p1.opus"),
            call_start: start,
            serial: 1,
        });
        let payload: Vec<u8> = (0..160u32).map(|k| (k * 7 % 251) as u8).collect();
        // Packets 0, 1 then 3 (packet 2 lost), then a late 2.
        for k in [0u32, 1, 3, 2] {
            rec.packet_codec(&file, Codec::Pcmu, &payload, 5000 + k * 960);
        }
        rec.close(file.path.clone());
        rec.flush();
        let bytes = std::fs::read(g711_path(&file.path)).expect("wav");
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(u16::from_le_bytes([bytes[20], bytes[21]]), 7, "μ-law tag");
        let data = &bytes[G711_HEADER..];
        let size = u32::from_le_bytes(bytes[54..58].try_into().expect("4")) as usize;
        assert_eq!(size, data.len(), "the header says how much data");
        // About 100 ms of μ-law silence (0xFF) first, then the packets'
        // bytes unchanged, 20 ms of silence for the lost one; the late one
        // is dropped.
        let lead = data.iter().take_while(|&&b| b == 0xff).count();
        assert!((790..=1200).contains(&lead), "{lead}");
        let rest = &data[lead..];
        assert_eq!(rest.len(), 4 * 160);
        assert_eq!(&rest[..160], &payload[..]);
        assert_eq!(&rest[160..320], &payload[..]);
        assert!(rest[320..480].iter().all(|&b| b == 0xff));
        assert_eq!(&rest[480..], &payload[..]);
        // No Ogg file was made: nothing was Opus.
        assert!(!file.path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_party_file_is_aligned_to_the_call_and_keeps_gaps() {
        let dir = std::env::temp_dir().join(format!("parties-{}", std::process::id()));
        let rec = PartyRecorder::start();
        let start = Instant::now() - std::time::Duration::from_millis(500);
        let file = Arc::new(PartyFile {
            path: dir.join("k1/p1.opus"),
            call_start: start,
            serial: 1,
        });
        let pkt = [31u8 << 3, 0xaa, 0xbb];
        for k in [0u32, 1, 2, 5, 6, 4] {
            rec.packet(&file, &pkt, 1000 + k * 960);
        }
        rec.manifest(dir.join("k1/manifest.jsonl"), "{\"a\":1}".into());
        rec.close(file.path.clone());
        rec.flush();
        let bytes = std::fs::read(&file.path).expect("file");
        let packets = super::super::ogg::read_packets(&bytes);
        let audio = &packets[2..];
        // About 500 ms of fillers first (25 packets, give or take the
        // scheduling of this test), then 0 1 2, two fillers, 5 6; the late
        // 4 is dropped.
        let lead = audio.iter().take_while(|p| p.len() == 1).count();
        assert!((24..=30).contains(&lead), "{lead}");
        let rest: Vec<usize> = audio[lead..].iter().map(Vec::len).collect();
        assert_eq!(rest, [3, 3, 3, 1, 1, 3, 3]);
        let manifest = std::fs::read_to_string(dir.join("k1/manifest.jsonl")).expect("manifest");
        assert_eq!(manifest, "{\"a\":1}\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
