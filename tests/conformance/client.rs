//! The suite's own client: plain HTTP/1.1 over a socket and a WebSocket
//! that hands back every text frame as raw JSON (`serde_json::Value`), so
//! the checks see exactly what the backend put on the wire. Every frame
//! received is also inspected against the documented shapes
//! ([`super::shape`]) and its event numbering followed, whatever check is
//! running; what does not fit is collected as a violation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::shape;

/// How long the suite waits for an answer the contract says must come.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long an HTTP exchange may take (a backend may slow failed logins down).
const HTTP_WAIT: Duration = Duration::from_secs(15);
/// The least time between two frames the suite sends on one socket (about
/// 45 a second): a client following the contract must not meet a
/// backend's message-rate limit. Only the flood of `limits.rate_limited`
/// and the pipelined requests go faster.
const MIN_GAP: Duration = Duration::from_millis(22);

/// Where the backend is: `host:port` for sockets and a path prefix.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
    /// A path prefix without a trailing slash ("" for none).
    pub prefix: String,
}

impl Endpoint {
    /// Parses `http://HOST:PORT[/prefix]`.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("`{url}`: the URL must start with http:// (put a TLS terminator in front for https)")
        })?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(format!("`{url}`: no host"));
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let prefix = path.trim_end_matches('/');
        Ok(Endpoint {
            authority,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("/{prefix}")
            },
        })
    }

    /// The WebSocket URL of `GET /v1/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}/v1/ws", self.authority, self.prefix)
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: Value,
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the answer.
pub async fn http(
    ep: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpReply, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(&ep.authority)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", ep.authority))?;
        let body = body.unwrap_or("");
        let mut request = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            ep.prefix,
            ep.authority,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut raw = Vec::new();
        stream
            .take(4 * 1024 * 1024)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok::<_, String>(raw)
    };
    let raw = tokio::time::timeout(HTTP_WAIT, exchange)
        .await
        .map_err(|_| format!("{method} {path}: no answer within {HTTP_WAIT:?}"))??;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: not an HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: no status line in {head:?}"))?;
    let mut payload = raw[split + 4..].to_vec();
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        payload = dechunk(&payload);
    }
    let body = String::from_utf8_lossy(&payload).to_string();
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    Ok(HttpReply { status, body, json })
}

/// Decodes a chunked body (best effort: stops at the first malformed chunk).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        let start = eol + 2;
        if size == 0 || data.len() < start + size {
            break;
        }
        out.extend_from_slice(&data[start..start + size]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// Violations noticed while reading frames, shared by every connection.
pub type Violations = Arc<Mutex<Vec<String>>>;

/// Records a violation.
pub fn note(v: &Violations, what: String) {
    if let Ok(mut list) = v.lock() {
        if list.len() < 200 {
            list.push(what);
        }
    }
}

/// Why a read ended without a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// A close frame with this code (or none).
    Close(Option<u16>),
    /// The TCP connection ended or failed.
    Gone(String),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::Close(Some(code)) => write!(f, "the backend closed the socket (code {code})"),
            Closed::Close(None) => write!(f, "the backend closed the socket"),
            Closed::Gone(e) => write!(f, "the connection ended ({e})"),
        }
    }
}

/// One WebSocket to `/v1/ws`, reading raw JSON.
pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    /// Who this socket is, for messages (`alice#3`).
    pub label: String,
    next_id: u64,
    /// Binary frames received, in order.
    pub media: Vec<Vec<u8>>,
    /// The `seq` of the last snapshot or event seen on this socket.
    pub last_seq: Option<u64>,
    /// Every event frame received, in order.
    pub events: Vec<Value>,
    violations: Violations,
    last_send: Option<tokio::time::Instant>,
}

impl Conn {
    /// Opens a socket (no hello).
    pub async fn open(ep: &Endpoint, label: &str, v: &Violations) -> Result<Conn, String> {
        Self::open_with(ep, label, v, None).await
    }

    /// Opens a socket whose kernel receive buffer is `rcvbuf` bytes (a
    /// client that reads slowly fills it quickly).
    pub async fn open_with(
        ep: &Endpoint,
        label: &str,
        v: &Violations,
        rcvbuf: Option<u32>,
    ) -> Result<Conn, String> {
        let addr = tokio::net::lookup_host(&ep.authority)
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", ep.authority))?
            .next()
            .ok_or_else(|| format!("cannot resolve {}", ep.authority))?;
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(|e| format!("socket: {e}"))?;
        if let Some(size) = rcvbuf {
            socket
                .set_recv_buffer_size(size)
                .map_err(|e| format!("SO_RCVBUF: {e}"))?;
        }
        let stream = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .map_err(|_| format!("cannot connect to {addr} within {WAIT:?}"))?
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        // Read up to 64 MiB messages: the suite must be able to see what
        // a backend sends, however large, to judge it.
        let config = WebSocketConfig::default()
            .max_message_size(Some(64 << 20))
            .max_frame_size(Some(64 << 20));
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async_with_config(ep.ws_url(), stream, Some(config)),
        )
        .await
        .map_err(|_| format!("no WebSocket upgrade at {} within {WAIT:?}", ep.ws_url()))?
        .map_err(|e| format!("WebSocket upgrade at {} failed: {e}", ep.ws_url()))?;
        Ok(Conn {
            ws,
            label: label.to_owned(),
            next_id: 1,
            media: Vec::new(),
            last_seq: None,
            events: Vec::new(),
            violations: v.clone(),
            last_send: None,
        })
    }

    /// Waits until [`MIN_GAP`] has passed since the last frame sent.
    async fn pace(&mut self) {
        if let Some(last) = self.last_send {
            tokio::time::sleep_until(last + MIN_GAP).await;
        }
        self.last_send = Some(tokio::time::Instant::now());
    }

    /// Sends a text frame as is.
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.pace().await;
        self.ws
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| format!("{}: send failed: {e}", self.label))
    }

    /// Sends a JSON frame.
    pub async fn send_json(&mut self, v: &Value) -> Result<(), String> {
        self.send_text(&v.to_string()).await
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.pace().await;
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .map_err(|e| format!("{}: send failed: {e}", self.label))
    }

    /// Queues a text frame without flushing (for pipelining).
    pub async fn feed_text(&mut self, text: &str) -> Result<(), String> {
        self.ws
            .feed(Message::Text(text.into()))
            .await
            .map_err(|e| format!("{}: send failed: {e}", self.label))
    }

    /// Flushes what [`Conn::feed_text`] queued.
    pub async fn flush(&mut self) -> Result<(), String> {
        self.ws
            .flush()
            .await
            .map_err(|e| format!("{}: send failed: {e}", self.label))
    }

    /// Closes the socket from this side.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }

    /// A fresh request id on this socket.
    pub fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The next text frame within `wait`: `Ok(None)` on timeout, `Err`
    /// when the socket closed. Binary frames are collected on the way.
    pub async fn recv(&mut self, wait: Duration) -> Result<Option<Value>, Closed> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Err(Closed::Gone("end of stream".into())),
                Ok(Some(Err(e))) => return Err(Closed::Gone(e.to_string())),
                Ok(Some(Ok(msg))) => msg,
            };
            match msg {
                Message::Text(text) => {
                    let value = match serde_json::from_str::<Value>(text.as_str()) {
                        Ok(v) => v,
                        Err(e) => {
                            note(
                                &self.violations,
                                format!(
                                    "{}: a text frame is not JSON ({e}): {}",
                                    self.label,
                                    clip(text.as_str())
                                ),
                            );
                            continue;
                        }
                    };
                    self.inspect(&value);
                    return Ok(Some(value));
                }
                Message::Binary(bytes) => {
                    if let Err(e) = shape::media_header(&bytes) {
                        note(
                            &self.violations,
                            format!("{}: media frame from the backend: {e}", self.label),
                        );
                    }
                    self.media.push(bytes.to_vec());
                }
                Message::Close(frame) => {
                    return Err(Closed::Close(frame.map(|f| u16::from(f.code))));
                }
                _ => {}
            }
        }
    }

    /// The next text frame, failing after [`WAIT`].
    pub async fn expect(&mut self, what: &str) -> Result<Value, String> {
        match self.recv(WAIT).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(format!("{}: no {what} within {WAIT:?}", self.label)),
            Err(c) => Err(format!("{}: waiting for {what}: {c}", self.label)),
        }
    }

    /// Checks a received frame against the contract and follows `seq`.
    fn inspect(&mut self, v: &Value) {
        let mut errs = Vec::new();
        shape::server_frame(v, &mut errs);
        match v["type"].as_str() {
            Some("snapshot") => self.last_seq = v["seq"].as_u64(),
            Some("event") => {
                if let Some(seq) = v["seq"].as_u64() {
                    if let Some(last) = self.last_seq {
                        if seq != last + 1 {
                            errs.push(format!(
                                "event seq {seq} after seq {last} (must be {})",
                                last + 1
                            ));
                        }
                    }
                    self.last_seq = Some(seq);
                }
                self.events.push(v.clone());
            }
            _ => {}
        }
        for e in errs {
            note(
                &self.violations,
                format!("{}: {e} in {}", self.label, clip(&v.to_string())),
            );
        }
    }

    /// Sends `hello` and returns the answer (`welcome` or `error`).
    pub async fn hello_raw(&mut self, hello: &Value) -> Result<Value, String> {
        self.send_json(hello).await?;
        let v = self.expect("answer to hello").await?;
        match v["type"].as_str() {
            Some("welcome") | Some("error") => Ok(v),
            _ => Err(format!(
                "{}: expected `welcome` or `error` after hello, got {}",
                self.label,
                clip(&v.to_string())
            )),
        }
    }

    /// Says hello and reads the welcome and the snapshot (or, when
    /// resumed, nothing more: the replayed events are read by the caller).
    pub async fn hello(
        &mut self,
        token: &str,
        resume: Option<(&str, u64)>,
    ) -> Result<(Value, Option<Value>), String> {
        let mut hello = json!({"type": "hello", "versions": [1], "token": token});
        if let Some((session, last_seq)) = resume {
            hello["resume"] = json!({"session": session, "last_seq": last_seq});
        }
        let welcome = self.hello_raw(&hello).await?;
        if welcome["type"] != "welcome" {
            return Err(format!(
                "{}: hello refused: {}",
                self.label,
                clip(&welcome.to_string())
            ));
        }
        if welcome["resumed"] == true {
            self.last_seq = resume.map(|(_, s)| s);
            return Ok((welcome, None));
        }
        let snapshot = self.expect("snapshot after welcome").await?;
        if snapshot["type"] != "snapshot" {
            return Err(format!(
                "{}: expected a snapshot after a welcome with resumed false, got {}",
                self.label,
                clip(&snapshot.to_string())
            ));
        }
        Ok((welcome, Some(snapshot)))
    }

    /// Sends a request with `fields` merged in and waits for its response;
    /// returns the response and every frame that came before it.
    pub async fn request(&mut self, op: &str, fields: Value) -> Result<Reply, String> {
        let id = self.id();
        let mut frame = json!({"type": "request", "id": id, "op": op});
        if let (Some(obj), Some(extra)) = (frame.as_object_mut(), fields.as_object()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        self.send_json(&frame).await?;
        self.response_to(id, op).await
    }

    /// Sends a raw text frame carrying request `id` and waits for its response.
    pub async fn request_raw(&mut self, id: u64, text: &str) -> Result<Reply, String> {
        self.send_text(text).await?;
        self.response_to(id, "raw request").await
    }

    /// Reads until the response to `id` arrives.
    pub async fn response_to(&mut self, id: u64, what: &str) -> Result<Reply, String> {
        let mut before = Vec::new();
        loop {
            let v = self
                .expect(&format!("response to `{what}` (id {id})"))
                .await?;
            if v["type"] == "response" && v["id"].as_u64() == Some(id) {
                return Ok(Reply {
                    response: v,
                    before,
                });
            }
            before.push(v);
        }
    }

    /// Runs an op that must succeed; returns its `result` and the frames before it.
    pub async fn ok(&mut self, op: &str, fields: Value) -> Result<(Value, Vec<Value>), String> {
        let reply = self.request(op, fields).await?;
        match reply.response.get("result") {
            Some(r) => Ok((r.clone(), reply.before)),
            None => Err(format!(
                "{}: `{op}` failed: {}",
                self.label,
                clip(&reply.response.to_string())
            )),
        }
    }

    /// The next frame-level `error` (other frames are skipped).
    pub async fn next_error(&mut self, what: &str) -> Result<Value, String> {
        loop {
            let v = self.expect(what).await?;
            if v["type"] == "error" || (v["type"] == "response" && v.get("error").is_some()) {
                return Ok(v);
            }
        }
    }

    /// Sends a ping and reads until its pong; returns the frames before it.
    pub async fn sync(&mut self) -> Result<Vec<Value>, String> {
        let reply = self.request("ping", json!({})).await?;
        if reply.response["result"]["kind"] != "pong" {
            return Err(format!(
                "{}: ping answered with {}",
                self.label,
                clip(&reply.response.to_string())
            ));
        }
        Ok(reply.before)
    }
}

/// A response and the frames that arrived before it.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The `response` frame.
    pub response: Value,
    /// Frames received before it (events caused by the request among them).
    pub before: Vec<Value>,
}

impl Reply {
    /// The error code, if the response is an error.
    pub fn code(&self) -> Option<&str> {
        self.response["error"]["code"].as_str()
    }
}

/// The error code of an `error` frame or of a response's `error`.
pub fn code_of(v: &Value) -> Option<&str> {
    v["code"].as_str().or_else(|| v["error"]["code"].as_str())
}

/// A frame shortened for messages.
pub fn clip(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}
