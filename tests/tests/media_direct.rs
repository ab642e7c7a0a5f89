//! What the backend writes on the forwarding path, read byte by byte from
//! a bare TCP stream (the forwarding task writes a frame straight to an
//! idle listener's socket, the socket's writer task otherwise): every
//! frame is a whole, unmasked, final binary frame with a minimal length
//! (RFC 6455 §5.2: a server never masks, §5.6: media is binary), nothing
//! is interleaved or cut, and forwarded frames keep their order with the
//! source's numbering (a constant offset per source, docs/protocol.md
//! section 8), whether they come one at a time or in a burst.
//!
//! The agent talks to an echo line over its media socket, so each frame
//! it sends comes back forwarded, rewritten onto its own leg.

use std::time::Duration;

use protocol::media::{decode_media_frame, encode_media_frame, MediaHeader, FLAG_MARKER};
use protocol::wire::{Op, OpResult};
use switchboard_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A media frame numbered `seq` whose payload says `n` (a SILK WB 20 ms
/// TOC, then the index: enough for the echo line to return it).
fn frame(leg: u32, seq: u32, n: u16) -> Vec<u8> {
    let mut media = Vec::new();
    let [hi, lo] = n.to_be_bytes();
    encode_media_frame(
        &MediaHeader {
            flags: 0,
            leg,
            sequence: seq,
            timestamp: seq.wrapping_mul(960),
        },
        &[9 << 3, hi, lo],
        &mut media,
    );
    let mut out = raw::header(0x2, media.len() as u64);
    out.extend_from_slice(&media);
    out
}

/// A server frame, checked against RFC 6455 §5.2 as it is parsed.
#[derive(Debug)]
enum Server {
    Text(String),
    Binary(Vec<u8>),
}

/// Reads server frames from a bare stream, strictly.
struct Frames {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Frames {
    /// The next whole frame, within [`WAIT`].
    async fn next(&mut self) -> Server {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(f) = self.parse() {
                return f;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk))
                .await
                .expect("a frame in time")
                .expect("read");
            assert!(n > 0, "the backend closed the socket");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse(&mut self) -> Option<Server> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[0] & 0x80, 0x80, "FIN set: media is never fragmented");
        assert_eq!(b[0] & 0x70, 0, "no RSV bits (no extension negotiated)");
        assert_eq!(b[1] & 0x80, 0, "a server never masks its frames");
        let (len, head) = match b[1] & 0x7f {
            126 => {
                if b.len() < 4 {
                    return None;
                }
                let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
                assert!(len >= 126, "the shortest length encoding");
                (len, 4)
            }
            127 => panic!("no media or event frame needs a 64-bit length"),
            n => (usize::from(n), 2),
        };
        if b.len() < head + len {
            return None;
        }
        let payload = b[head..head + len].to_vec();
        let frame = match b[0] & 0x0f {
            0x1 => Server::Text(String::from_utf8(payload).expect("UTF-8 text")),
            0x2 => Server::Binary(payload),
            other => panic!("unexpected opcode {other:#x}"),
        };
        self.buf.drain(..head + len);
        Some(frame)
    }

    /// The next binary frame as a media frame: (flags, leg, sequence,
    /// the payload's index); text frames are skipped.
    async fn next_media(&mut self) -> (u8, u32, u32, u16) {
        loop {
            if let Server::Binary(b) = self.next().await {
                let f = decode_media_frame(&b).expect("a valid media frame");
                let [toc, hi, lo] = f.payload else {
                    panic!("the payload as sent: {:?}", f.payload);
                };
                assert_eq!(*toc, 9 << 3);
                return (
                    f.header.flags,
                    f.header.leg,
                    f.header.sequence,
                    u16::from_be_bytes([*hi, *lo]),
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_frames_are_whole_unmasked_binary_frames_in_order() {
    let dir = temp_dir("media-direct");
    let running = server::start(test_config(&dir)).await.expect("start");
    let addr = running.addr;
    let mut alice = Client::available(addr, "alice", "alice-pass").await;
    let (_, leg, _) = alice.accept_echo_call(addr).await;
    let OpResult::MediaSocket { ticket, path, .. } = alice.ok(Op::MediaSocket).await else {
        panic!("a media ticket");
    };
    let mut tcp = raw::upgrade(addr, &path).await.expect("upgrade");
    let hello = serde_json::json!({"type": "media_hello", "ticket": ticket}).to_string();
    tcp.write_all(&raw::text(&hello)).await.expect("hello");
    let mut frames = Frames {
        tcp,
        buf: Vec::new(),
    };
    match frames.next().await {
        Server::Text(t) => assert!(t.contains("media_welcome"), "{t}"),
        other => panic!("welcome first: {other:?}"),
    }

    // One at a time: each frame comes back before the next is sent, so
    // none can be dropped, and each is the one just sent.
    let base = u32::MAX - 20; // the numbering wraps on the way
    let mut offset = None;
    for n in 0..40u16 {
        let seq = base.wrapping_add(u32::from(n));
        frames
            .tcp
            .write_all(&frame(leg, seq, n))
            .await
            .expect("send");
        let (flags, got_leg, got_seq, got_n) = frames.next_media().await;
        assert_eq!(
            (got_leg, got_n),
            (leg, n),
            "the frame just sent, on its leg"
        );
        let off = got_seq.wrapping_sub(seq);
        assert_eq!(*offset.get_or_insert(off), off, "one offset for the source");
        assert_eq!(
            flags & FLAG_MARKER != 0,
            n == 0,
            "a marker on the first only"
        );
    }

    // A burst in one write: the backend reads the frames back to back,
    // so some are written by the reading task and some queued for the
    // writer task (and, by policy, a queue that is full drops). What
    // arrives is in order, with the source's numbering.
    let mut burst = Vec::new();
    for n in 40..140u16 {
        burst.extend(frame(leg, base.wrapping_add(u32::from(n)), n));
    }
    frames.tcp.write_all(&burst).await.expect("send");
    // Then one at a time again until one comes back: everything of the
    // burst that was not dropped is ahead of it.
    let mut seen = Vec::new();
    let mut n = 140u16;
    'sentinel: while n < 180 {
        let seq = base.wrapping_add(u32::from(n));
        frames
            .tcp
            .write_all(&frame(leg, seq, n))
            .await
            .expect("send");
        loop {
            // A sentinel the full queue dropped never comes: the next one
            // is sent after a while.
            let Ok((_, got_leg, got_seq, got_n)) =
                tokio::time::timeout(Duration::from_millis(300), frames.next_media()).await
            else {
                break;
            };
            assert_eq!(got_leg, leg);
            assert_eq!(
                got_seq.wrapping_sub(base.wrapping_add(u32::from(got_n))),
                offset.expect("offset"),
                "frame {got_n} keeps the source's numbering"
            );
            seen.push(got_n);
            if got_n == n {
                break 'sentinel;
            }
            if got_n >= 140 {
                break;
            }
        }
        n += 1;
    }
    assert!(n < 180, "a frame sent alone came back: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in the order sent: {seen:?}"
    );
    let from_burst = seen.iter().filter(|&&n| (40..140).contains(&n)).count();
    assert!(from_burst > 0, "the burst was forwarded: {seen:?}");
}
