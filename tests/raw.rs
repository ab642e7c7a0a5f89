//! A hand-rolled WebSocket client on a bare TCP stream, for hostile
//! clients (tests/tests/hostile.rs and the `hostile` benchmark): it can
//! announce a frame and never finish it, write garbage as fast as the
//! socket takes it, or never read. Frames are masked with a zero key,
//! which RFC 6455 allows and leaves the payload as written.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why an upgrade did not give a WebSocket.
#[derive(Debug)]
pub enum UpgradeError {
    /// The server answered with this HTTP status instead of 101.
    Status(u16),
    /// The connection failed.
    Io(std::io::Error),
}

impl From<std::io::Error> for UpgradeError {
    fn from(e: std::io::Error) -> Self {
        UpgradeError::Io(e)
    }
}

/// Opens a WebSocket on `path` over `tcp`.
pub async fn upgrade_on(
    mut tcp: TcpStream,
    addr: SocketAddr,
    path: &str,
) -> Result<TcpStream, UpgradeError> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(UpgradeError::Status(0));
        }
        tcp.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status == 101 {
        Ok(tcp)
    } else {
        Err(UpgradeError::Status(status))
    }
}

/// Connects and opens a WebSocket on `path`.
pub async fn upgrade(addr: SocketAddr, path: &str) -> Result<TcpStream, UpgradeError> {
    let tcp = TcpStream::connect(addr).await?;
    upgrade_on(tcp, addr, path).await
}

/// The header of a client frame (FIN set) announcing `len` payload bytes.
pub fn header(opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= u64::from(u16::MAX) {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// A whole text frame.
pub fn text(payload: &str) -> Vec<u8> {
    let mut f = header(0x1, payload.len() as u64);
    f.extend_from_slice(payload.as_bytes());
    f
}

/// Reads server frames until a close frame (its code, or 1005 when it
/// has none), the end of the stream (`None`), or `within` passes (`None`).
/// Returns the close code and the text frames seen before it.
pub async fn read_until_close(tcp: &mut TcpStream, within: Duration) -> (Option<u16>, Vec<String>) {
    let deadline = tokio::time::Instant::now() + within;
    let mut texts = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // Parse whatever complete frames are buffered (server frames are unmasked).
        while buf.len() >= 2 {
            let opcode = buf[0] & 0x0f;
            let (len, at) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
                127 if buf.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&buf[2..10]);
                    (u64::from_be_bytes(b), 10)
                }
                126 | 127 => break,
                n => (u64::from(n), 2),
            };
            let end = at + len as usize;
            if buf.len() < end {
                break;
            }
            let payload = buf[at..end].to_vec();
            buf.drain(..end);
            match opcode {
                0x8 => {
                    let code = if payload.len() >= 2 {
                        u16::from_be_bytes([payload[0], payload[1]])
                    } else {
                        1005
                    };
                    return (Some(code), texts);
                }
                0x1 => texts.push(String::from_utf8_lossy(&payload).into_owned()),
                _ => {}
            }
        }
        match tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return (None, texts),
        }
    }
}
