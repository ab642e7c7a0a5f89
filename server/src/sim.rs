//! The simulated caller as a command: `switchboard-server sim-call` places
//! an inbound call through the backend's HTTP API, like a customer dialing
//! a queue. A plain HTTP/1.1 exchange over a socket is all it needs, so the
//! backend carries no HTTP client dependency. Simulator requests carry the
//! configured key as `Authorization: Bearer <key>` (see [`crate::fence`]).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one HTTP request and returns the status and body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    http_request_with(addr, method, path, body, &[]).await
}

/// `headers` as `Name: value` lines, refusing any that would split the request.
fn header_lines(headers: &[(&str, &str)]) -> std::io::Result<String> {
    let mut out = String::new();
    for (name, value) in headers {
        if [name, value].iter().any(|s| s.contains(['\r', '\n'])) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a header may not contain a line break",
            ));
        }
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    Ok(out)
}

/// The `Authorization` header that carries the simulator key.
pub fn key_header(key: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {key}"))
}

/// [`http_request`] with extra headers (the simulator key, an `Origin`...).
pub async fn http_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let extra = header_lines(headers)?;
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = body.unwrap_or("");
    let has_type = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    let content_type = if has_type {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{content_type}{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Places a call from `from` to `queue` with the simulator `key`; returns
/// the backend's answer.
pub async fn place_call(
    addr: SocketAddr,
    key: &str,
    from: &str,
    queue: &str,
) -> std::io::Result<(u16, String)> {
    let body = serde_json::json!({ "from": from, "queue": queue }).to_string();
    let (name, value) = key_header(key);
    http_request_with(
        addr,
        "POST",
        "/v1/sim/calls",
        Some(&body),
        &[(name, &value)],
    )
    .await
}

/// Sends one HTTP request (with extra `headers`) and returns the status
/// and the raw body bytes.
pub async fn http_request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, Vec<u8>)> {
    let extra = header_lines(headers)?;
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, response[split..].to_vec()))
}
