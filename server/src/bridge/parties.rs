//! Recording each party without decoding: every talking party's packets,
//! as received, go into an Ogg Opus file of its own
//! (`recordings/<contact>/<connection id>.opus`, see [`super::ogg`]),
//! aligned to the call's start (the time before the party joined, and
//! every gap, is filled with concealment), beside a manifest
//! (`recordings/<contact>/manifest.jsonl`: one JSON line per join, leave,
//! hold, mute and their ends, with milliseconds since the call started).
//!
//! Files are written by one thread of its own, never by the sockets'
//! runtime: sockets hand it packets through a bounded queue
//! ([`QUEUE`]; when it is full the packet is dropped and counted, which
//! the file shows as a concealed gap). Each file is written a page (about
//! a second) at a time, so a process killed at any instant leaves files
//! that play up to their last page.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use super::ogg::OggOpusWriter;

/// Commands waiting for the writer thread, at most.
pub const QUEUE: usize = 8192;

/// Room in [`QUEUE`] kept for closes, manifest lines and flushes: packets
/// may fill the queue only up to `QUEUE - CONTROL_ROOM`, so a backed-up
/// writer drops audio (a concealed gap) but never a file's end or a
/// manifest line.
const CONTROL_ROOM: usize = 1024;

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
    Packet {
        file: Arc<PartyFile>,
        payload: Vec<u8>,
        timestamp: u32,
        at: Instant,
    },
    Close(PathBuf),
    Manifest {
        path: PathBuf,
        line: String,
    },
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// The writer thread's handle.
#[derive(Clone)]
pub struct PartyRecorder {
    tx: SyncSender<Cmd>,
    /// Packets sent and not yet taken by the writer.
    queued_packets: Arc<AtomicUsize>,
    /// Packets dropped because the writer was behind.
    pub dropped: Arc<AtomicU64>,
}

impl PartyRecorder {
    /// Starts the writer thread.
    pub fn start() -> PartyRecorder {
        let (tx, rx) = sync_channel(QUEUE);
        let queued_packets = Arc::new(AtomicUsize::new(0));
        let taken = queued_packets.clone();
        let started = std::thread::Builder::new()
            .name("recording-writer".into())
            .spawn(move || run(rx, &taken));
        if let Err(e) = started {
            tracing::error!("recording writer thread: {e}");
        }
        PartyRecorder {
            tx,
            queued_packets,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    fn send(&self, cmd: Cmd) {
        let is_packet = matches!(cmd, Cmd::Packet { .. });
        // Counted before sending, so the writer's decrement never comes
        // first; undone when the packet is not sent.
        let room = !is_packet
            || self.queued_packets.fetch_add(1, Ordering::Relaxed) < QUEUE - CONTROL_ROOM;
        let sent = room && !matches!(self.tx.try_send(cmd), Err(TrySendError::Full(_)));
        if is_packet && !sent {
            self.queued_packets.fetch_sub(1, Ordering::Relaxed);
        }
        if !sent {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if !is_packet || n == 1 || n % 1000 == 0 {
                tracing::warn!(
                    dropped = n,
                    control = !is_packet,
                    "recording writer behind: dropped a command"
                );
            }
        }
    }

    /// A packet of `file`'s party as received (header timestamp kept for
    /// timing).
    pub fn packet(&self, file: &Arc<PartyFile>, payload: &[u8], timestamp: u32) {
        self.send(Cmd::Packet {
            file: file.clone(),
            payload: payload.to_vec(),
            timestamp,
            at: Instant::now(),
        });
    }

    /// The party's file is complete (it left, or the call ended).
    pub fn close(&self, path: PathBuf) {
        self.send(Cmd::Close(path));
    }

    /// Appends one line to a call's manifest.
    pub fn manifest(&self, path: PathBuf, line: String) {
        self.send(Cmd::Manifest { path, line });
    }

    /// Waits until everything queued before this call is written.
    pub fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        if self.tx.send(Cmd::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

struct Open {
    writer: OggOpusWriter<File>,
    /// The next timestamp expected from the party.
    next_ts: u32,
}

fn run(rx: Receiver<Cmd>, queued_packets: &AtomicUsize) {
    let mut open: HashMap<PathBuf, Open> = HashMap::new();
    while let Ok(cmd) = rx.recv() {
        match cmd {
            Cmd::Packet {
                file,
                payload,
                timestamp,
                at,
            } => {
                queued_packets.fetch_sub(1, Ordering::Relaxed);
                if let Err(e) = write_packet(&mut open, &file, &payload, timestamp, at) {
                    tracing::warn!("recording {}: {e}", file.path.display());
                    open.remove(&file.path);
                }
            }
            Cmd::Close(path) => {
                if let Some(o) = open.remove(&path) {
                    if let Err(e) = o.writer.finish().map(|f| f.sync_all()) {
                        tracing::warn!("recording {}: {e}", path.display());
                    }
                }
            }
            Cmd::Manifest { path, line } => {
                let written = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| {
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&path)
                    })
                    .and_then(|mut f| writeln!(f, "{line}"));
                if let Err(e) = written {
                    tracing::warn!("manifest {}: {e}", path.display());
                }
            }
            Cmd::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
    for (_, o) in open {
        let _ = o.writer.finish();
    }
}

fn write_packet(
    open: &mut HashMap<PathBuf, Open>,
    file: &PartyFile,
    payload: &[u8],
    timestamp: u32,
    at: Instant,
) -> Result<(), super::ogg::OggError> {
    let since_start = at.saturating_duration_since(file.call_start).as_micros() as u64 * 48 / 1000;
    let o = match open.get_mut(&file.path) {
        Some(o) => o,
        None => {
            if let Some(dir) = file.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // A file that exists was closed (its party left, or the call
            // ended): a packet still in flight after that is dropped rather
            // than truncating the finished file.
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&file.path);
            let created = match created {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
                other => other?,
            };
            let mut writer = OggOpusWriter::new(created, file.serial)?;
            // The party's file starts at the call's start.
            writer.fill_to(since_start)?;
            open.entry(file.path.clone()).or_insert(Open {
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
        // A writer that takes nothing yet: its queue fills.
        let (tx, rx) = sync_channel(QUEUE);
        let rec = PartyRecorder {
            tx,
            queued_packets: Arc::new(AtomicUsize::new(0)),
            dropped: Arc::new(AtomicU64::new(0)),
        };
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
        let queued: Vec<Cmd> = rx.try_iter().collect();
        assert!(matches!(queued.last(), Some(Cmd::Close(_))));
        assert_eq!(queued.len(), QUEUE - CONTROL_ROOM + 101);
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
