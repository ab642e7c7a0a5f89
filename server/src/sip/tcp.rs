//! SIP over a byte stream, sans-IO: cutting a TCP connection's bytes into
//! messages (RFC 3261 §18.3). A stream has no datagram boundaries, so each
//! message's end is its blank line plus its `Content-Length` body, and
//! Content-Length is required (§18.3: "MUST be used with stream-oriented
//! transports"). Everything a peer can make us hold is bounded: the header
//! block by [`Limits::max_header`], a whole message by
//! [`Limits::max_message`], and the buffer never holds more than one
//! message's worth. Anything that cannot be framed is a [`FrameError`],
//! after which the connection is closed: once framing is lost on a stream
//! there is no telling where the next message starts. CRLF keep-alives
//! (RFC 5626 §3.5.1: a double CRLF "ping", a single CRLF "pong") between
//! messages are recognised, never passed on as messages. The socket side
//! is `sip/transport.rs`.

/// Bounds on what one connection may send us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of a start line plus headers (with the blank line).
    pub max_header: usize,
    /// Most bytes of one message, headers and body.
    pub max_message: usize,
}

impl Default for Limits {
    /// 16 KiB of headers, 64 KiB a message: a datagram's worth, which is
    /// the most the UDP side takes too.
    fn default() -> Self {
        Limits {
            max_header: 16 * 1024,
            max_message: 64 * 1024,
        }
    }
}

/// Why a stream can no longer be framed (the connection is then closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes do not start with a SIP request or status line.
    #[error("not a SIP start line")]
    NotSip,
    /// No blank line within the header limit.
    #[error("headers longer than {limit} bytes")]
    HeaderTooLong {
        /// The limit.
        limit: usize,
    },
    /// A message longer than the message limit.
    #[error("a message of {len} bytes, more than {limit}")]
    TooLarge {
        /// Its length (headers and body), or what was buffered.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// No Content-Length, which a stream transport requires.
    #[error("no Content-Length (required over TCP, RFC 3261 18.3)")]
    NoContentLength,
    /// A Content-Length that is not a number, or two that disagree.
    #[error("bad Content-Length: {0}")]
    BadContentLength(String),
}

/// What the stream held next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole message (headers and body), to parse as a datagram's.
    Message(Vec<u8>),
    /// A CRLF CRLF keep-alive ping, to be answered with one CRLF.
    Ping,
}

/// One connection's framing state.
#[derive(Debug, Default)]
pub struct Framer {
    limits: Limits,
    buf: Vec<u8>,
    /// CRLFs seen in a row between messages (two make a ping, even when
    /// they come in separate reads).
    crlfs: usize,
}

impl Framer {
    /// A framer with these limits.
    pub fn new(limits: Limits) -> Framer {
        Framer {
            limits,
            buf: Vec::new(),
            crlfs: 0,
        }
    }

    /// How many more bytes may be pushed now. A reader reads at most this
    /// much, so the buffer never outgrows [`Limits::max_message`]; it is
    /// never 0 after [`Framer::next_frame`] returned `Ok(None)`.
    pub fn space(&self) -> usize {
        self.limits.max_message.saturating_sub(self.buf.len())
    }

    /// Whether part of a message is buffered (a peer that stops in the
    /// middle of one is timed out sooner than an idle one).
    pub fn partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Appends bytes read from the stream; more than [`Framer::space`] is
    /// refused as too large.
    pub fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        if data.len() > self.space() {
            return Err(FrameError::TooLarge {
                len: self.buf.len() + data.len(),
                limit: self.limits.max_message,
            });
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next whole frame, `Ok(None)` until more bytes come, or why the
    /// stream cannot be framed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        // Keep-alives between messages: CRLF CRLF is a ping, a lone CRLF
        // a pong (ignored).
        while self.buf.starts_with(b"\r\n") {
            self.buf.drain(..2);
            self.crlfs += 1;
            if self.crlfs == 2 {
                self.crlfs = 0;
                return Ok(Some(Frame::Ping));
            }
        }
        if self.buf.is_empty() || self.buf == b"\r" {
            return Ok(None);
        }
        self.crlfs = 0;
        // A SIP message starts with a method token or "SIP/2.0": garbage
        // is refused at its first byte, not after 16 KiB.
        if !self.buf[0].is_ascii_alphabetic() {
            return Err(FrameError::NotSip);
        }
        if let Some(eol) = find(&self.buf, b"\r\n") {
            let line = &self.buf[..eol];
            if !(line.starts_with(b"SIP/2.0 ") || line.ends_with(b" SIP/2.0")) {
                return Err(FrameError::NotSip);
            }
        }
        let window = &self.buf[..self.buf.len().min(self.limits.max_header)];
        let Some(blank) = find(window, b"\r\n\r\n") else {
            if self.buf.len() >= self.limits.max_header {
                return Err(FrameError::HeaderTooLong {
                    limit: self.limits.max_header,
                });
            }
            if find(&self.buf, b"\r\n").is_none() && self.buf.len() > 1024 {
                // A start line longer than any real one.
                return Err(FrameError::NotSip);
            }
            return Ok(None);
        };
        let head_len = blank + 4;
        let body_len = content_length(&self.buf[..blank])?;
        let total = head_len
            .checked_add(body_len)
            .filter(|t| *t <= self.limits.max_message)
            .ok_or(FrameError::TooLarge {
                len: head_len.saturating_add(body_len),
                limit: self.limits.max_message,
            })?;
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let message = std::mem::replace(&mut self.buf, rest);
        Ok(Some(Frame::Message(message)))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The Content-Length of a header block (`Content-Length` or its compact
/// form `l`); required, and every copy must agree.
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut found: Option<usize> = None;
    // Header lines after the start line; a folded line (leading space)
    // continues the previous header, which is never Content-Length's
    // number in practice, so it is skipped.
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = line[colon + 1..].trim_ascii();
        let shown = || String::from_utf8_lossy(&value[..value.len().min(20)]).into_owned();
        if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadContentLength(shown()));
        }
        let n: usize = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| FrameError::BadContentLength(shown()))?;
        if found.is_some_and(|f| f != n) {
            return Err(FrameError::BadContentLength(format!(
                "{} and {n}",
                found.unwrap_or_default()
            )));
        }
        found = Some(n);
    }
    found.ok_or(FrameError::NoContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
Call-ID: a\r\nCSeq: 1 INVITE\r\nContent-Length: 5\r\n\r\nhello";
    const OK: &[u8] =
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\nl: 0\r\n\r\n";

    fn all(f: &mut Framer) -> Result<Vec<Frame>, FrameError> {
        let mut out = Vec::new();
        while let Some(fr) = f.next_frame()? {
            out.push(fr);
        }
        Ok(out)
    }

    #[test]
    fn messages_are_cut_by_content_length_whatever_the_chunking() {
        let stream = [b"\r\n\r\n".as_slice(), INVITE, OK, b"\r\n", INVITE].concat();
        let want = vec![
            Frame::Ping,
            Frame::Message(INVITE.to_vec()),
            Frame::Message(OK.to_vec()),
            Frame::Message(INVITE.to_vec()),
        ];
        for chunk in [1, 2, 3, 7, 64, stream.len()] {
            let mut f = Framer::new(Limits::default());
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                f.push(c).expect("fits");
                got.extend(all(&mut f).expect("frames"));
            }
            assert_eq!(got, want, "chunk {chunk}");
            assert!(!f.partial());
        }
    }

    #[test]
    fn what_cannot_be_framed_is_an_error() {
        let cases: &[(&[u8], FrameError)] = &[
            (b"\x00\x01garbage", FrameError::NotSip),
            (b"hello world\r\n\r\n", FrameError::NotSip),
            (
                b"INVITE sip:x SIP/2.0\r\nVia: x\r\n\r\n",
                FrameError::NoContentLength,
            ),
            (
                b"INVITE sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n",
                FrameError::BadContentLength("-1".into()),
            ),
            (
                b"INVITE sip:x SIP/2.0\r\nContent-Length: 2\r\nl: 3\r\n\r\n",
                FrameError::BadContentLength("2 and 3".into()),
            ),
            (
                b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n",
                FrameError::BadContentLength("99999999999".into()),
            ),
            (
                b"INVITE sip:x SIP/2.0\r\nContent-Length: 70000\r\n\r\n",
                FrameError::TooLarge {
                    len: 70000 + 47,
                    limit: 64 * 1024,
                },
            ),
        ];
        for (input, want) in cases {
            let mut f = Framer::new(Limits::default());
            f.push(input).expect("fits");
            assert_eq!(all(&mut f).as_ref(), Err(want), "{input:?}");
        }
    }

    #[test]
    fn headers_and_messages_are_bounded() {
        let limits = Limits {
            max_header: 100,
            max_message: 300,
        };
        // Headers without an end: refused at the header limit.
        let mut f = Framer::new(limits);
        f.push(b"INVITE sip:x SIP/2.0\r\n").expect("fits");
        let mut err = None;
        for _ in 0..20 {
            if f.push(b"X-Pad: aaaaaaaa\r\n").is_err() {
                break;
            }
            if let Err(e) = f.next_frame() {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(FrameError::HeaderTooLong { limit: 100 }));
        // A message at the limit passes; the buffer never takes more.
        let head = "INVITE sip:x SIP/2.0\r\nContent-Length: 255\r\n\r\n";
        let body = vec![b'a'; 300 - head.len()];
        assert_eq!(body.len(), 255);
        let mut f = Framer::new(limits);
        f.push(head.as_bytes()).expect("fits");
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.space(), body.len());
        assert!(f.push(&[body.clone(), b"x".to_vec()].concat()).is_err());
        f.push(&body).expect("fits exactly");
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Message(m))) if m.len() == 300));
        // A start line that never ends.
        let mut f = Framer::new(Limits::default());
        f.push(&[b'A'; 2000]).expect("fits");
        assert_eq!(f.next_frame(), Err(FrameError::NotSip));
    }

    /// Random bytes, and random mutations of a good stream, cut at random
    /// points: frames or an error, never a panic, and the buffer within its
    /// bound (a deterministic generator, so a failure replays).
    #[test]
    fn random_streams_never_panic_or_overgrow() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let limits = Limits {
            max_header: 256,
            max_message: 1024,
        };
        let good = [INVITE, OK, b"\r\n\r\n", INVITE].concat();
        for round in 0..2000 {
            let mut stream = if round % 2 == 0 {
                good.clone()
            } else {
                (0..(rand() % 600)).map(|_| rand() as u8).collect()
            };
            for _ in 0..(rand() % 6) {
                if stream.is_empty() {
                    break;
                }
                let i = (rand() as usize) % stream.len();
                stream[i] = rand() as u8;
            }
            let mut f = Framer::new(limits);
            let mut rest = &stream[..];
            'feed: while !rest.is_empty() {
                let n = ((rand() as usize) % 50 + 1).min(rest.len()).min(f.space());
                if n == 0 {
                    break;
                }
                f.push(&rest[..n]).expect("within space");
                rest = &rest[n..];
                loop {
                    match f.next_frame() {
                        Ok(Some(Frame::Message(m))) => assert!(m.len() <= limits.max_message),
                        Ok(Some(Frame::Ping)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
                assert!(f.space() > 0 || rest.is_empty());
            }
        }
    }
}
