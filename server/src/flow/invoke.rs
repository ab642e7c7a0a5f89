//! The "invoke external function" block's HTTP exchange: the request is
//! Amazon Connect's Lambda event shape (so a function written for Connect
//! ports easily), POSTed as JSON; the answer must be a 2xx with a flat JSON
//! object, whose values become contact attributes.
//!
//! The backend has no HTTP client dependency; like the simulator's client
//! ([`crate::sim`]) this is HTTP/1.1 over a plain socket, `Connection:
//! close`, with the whole exchange under the function's timeout and the
//! answer read up to a bound, so a slow or chatty function costs at most
//! its timeout and [`MAX_RESPONSE`] bytes. Only `http://` URLs are taken:
//! functions are expected beside the backend (TLS would need a client
//! library, see docs/flows.md).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest response body taken (bigger is an error).
pub const MAX_BODY: usize = 32 * 1024;

/// The most bytes read from a function (headers and body).
pub const MAX_RESPONSE: usize = MAX_BODY + 16 * 1024;

/// Where a function listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` as written.
    pub authority: String,
    /// Path and query (`/` at least).
    pub path: String,
}

/// Splits `http://host:port/path`.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("url `{url}` must start with http://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty()
        || authority.contains(['@', ' '])
        || path.contains([' ', '\r', '\n', '#'])
    {
        return Err(format!("url `{url}` is not http://host:port/path"));
    }
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else if authority.contains(':') && !authority.ends_with(']') {
        return Err(format!("url `{url}` has a bad port"));
    } else {
        format!("{authority}:80")
    };
    Ok(Target {
        authority,
        path: path.to_owned(),
    })
}

/// The contact as a function sees it.
#[derive(Debug, Clone)]
pub struct EventData<'a> {
    /// Contact id.
    pub contact_id: &'a str,
    /// The caller's number.
    pub customer: &'a str,
    /// The number called.
    pub system: &'a str,
    /// The working queue's display name.
    pub queue: Option<&'a str>,
    /// Attributes now.
    pub attributes: &'a BTreeMap<String, String>,
    /// `en-US` or `ja-JP`.
    pub language: &'a str,
    /// The block's parameters (plus `StoredCustomerInput` when there is one).
    pub parameters: &'a BTreeMap<String, String>,
}

/// The request body (Connect's `ContactFlowEvent`).
pub fn event(d: &EventData<'_>) -> serde_json::Value {
    serde_json::json!({
        "Name": "ContactFlowEvent",
        "Details": {
            "ContactData": {
                "ContactId": d.contact_id,
                "Channel": "VOICE",
                "InitialContactId": d.contact_id,
                "CustomerEndpoint": { "Address": d.customer, "Type": "TELEPHONE_NUMBER" },
                "SystemEndpoint": { "Address": d.system, "Type": "TELEPHONE_NUMBER" },
                "Queue": d.queue.map(|q| serde_json::json!({ "Name": q })),
                "Attributes": d.attributes,
                "LanguageCode": d.language,
            },
            "Parameters": d.parameters,
        }
    })
}

/// The attributes in a function's answer, or why it is refused.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    if !(200..300).contains(&status) {
        return Err(format!("the function answered HTTP {status}"));
    }
    if body.len() > MAX_BODY {
        return Err(format!("the answer is over {MAX_BODY} bytes"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("the answer is not a JSON object".into());
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let s = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => String::new(),
            _ => return Err(format!("`{k}` is not a string, number or boolean")),
        };
        out.insert(k, s);
    }
    Ok(out)
}

/// POSTs `body` to `url` and returns the attributes of the answer, all
/// within `timeout`.
pub async fn call(
    url: &str,
    body: &str,
    timeout: Duration,
) -> Result<BTreeMap<String, String>, String> {
    let target = parse_url(url)?;
    match tokio::time::timeout(timeout, exchange(&target, body)).await {
        Ok(Ok((status, body))) => parse_answer(status, &body),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn exchange(t: &Target, body: &str) -> Result<(u16, Vec<u8>), String> {
    let mut stream = tokio::net::TcpStream::connect(&t.authority)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", t.authority))?;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        t.path,
        t.authority,
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
        if response.len() > MAX_RESPONSE {
            return Err(format!("the answer is over {MAX_BODY} bytes"));
        }
        if let Some(done) = complete(&response) {
            return done;
        }
    }
    complete(&response).unwrap_or_else(|| Err("the answer ended early".into()))
}

/// A whole response (status, body), an error, or `None` while more is due.
fn complete(bytes: &[u8]) -> Option<Result<(u16, Vec<u8>), String>> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let body = &bytes[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok());
    let Some(status) = status else {
        return Some(Err("the answer is not HTTP".into()));
    };
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    if chunked {
        return dechunk(body).map(|b| b.map(|b| (status, b)));
    }
    match length {
        Some(n) if n > MAX_BODY => Some(Err(format!("the answer is over {MAX_BODY} bytes"))),
        Some(n) if body.len() >= n => Some(Ok((status, body[..n].to_vec()))),
        Some(_) => None,
        // No length: the body runs to the end of the stream.
        None => None,
    }
}

/// A chunked body, once its last chunk is in.
fn dechunk(mut body: &[u8]) -> Option<Result<Vec<u8>, String>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Some(Err("a bad chunk in the answer".into()));
        };
        let data = body.get(line_end + 2..)?;
        if size == 0 {
            return Some(Ok(out));
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        body = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_host_port_path() {
        let t = parse_url("http://127.0.0.1:8091/v1/orders/lookup").expect("url");
        assert_eq!(t.authority, "127.0.0.1:8091");
        assert_eq!(t.path, "/v1/orders/lookup");
        assert_eq!(
            parse_url("http://localhost").expect("url").authority,
            "localhost:80"
        );
        assert!(parse_url("https://example.com/").is_err());
        assert!(parse_url("http:///x").is_err());
        assert!(parse_url("http://a:b/x").is_err());
    }

    #[test]
    fn answers_are_flat_objects_of_plain_values() {
        let ok = parse_answer(200, br#"{"a":"x","n":5,"b":true}"#).expect("ok");
        assert_eq!(ok["a"], "x");
        assert_eq!(ok["n"], "5");
        assert_eq!(ok["b"], "true");
        assert!(parse_answer(500, b"{}").expect_err("500").contains("500"));
        assert!(parse_answer(200, b"not json").is_err());
        assert!(parse_answer(200, b"[1]").is_err());
        assert!(parse_answer(200, br#"{"a":{"b":1}}"#).is_err());
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_BODY));
        assert!(parse_answer(200, big.as_bytes()).is_err());
    }

    #[test]
    fn responses_complete_by_length_or_chunks() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(
            complete(r).expect("done").expect("ok"),
            (200, b"{}".to_vec())
        );
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}").is_none());
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        assert_eq!(complete(c).expect("done").expect("ok").1, b"{}".to_vec());
    }
}
