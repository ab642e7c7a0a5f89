//! The simulated caller as a command: `switchboard-server sim-call` places
//! an inbound call through the backend's HTTP API, like a customer dialing
//! a queue. A plain HTTP/1.1 exchange over a socket is all it needs, so the
//! backend carries no HTTP client dependency.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one HTTP request and returns the status and body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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

/// Places a call from `from` to `queue`; returns the backend's answer.
pub async fn place_call(
    addr: SocketAddr,
    from: &str,
    queue: &str,
) -> std::io::Result<(u16, String)> {
    let body = serde_json::json!({ "from": from, "queue": queue }).to_string();
    http_request(addr, "POST", "/v1/sim/calls", Some(&body)).await
}

/// Sends one HTTP request and returns the status and the raw body bytes.
pub async fn http_request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
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
