//! SIP messages (RFC 3261 §7), sans-IO: parse one UDP datagram into a
//! request or response, and write the few responses and requests the
//! gateway sends. Only what the inbound slice needs; every malformed input
//! is a [`SipError`], never a panic.

use super::SipError;

/// Most headers one message may carry (a flood of headers is refused).
const MAX_HEADERS: usize = 64;

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// `METHOD uri SIP/2.0`.
    Request {
        /// Upper-case method.
        method: String,
        /// The request URI.
        uri: String,
    },
    /// `SIP/2.0 code reason`.
    Response {
        /// Status code.
        code: u16,
    },
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request or status line.
    pub start: Start,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length bytes).
    pub body: Vec<u8>,
}

/// The long name of a compact header form (RFC 3261 §7.3.3).
fn long_name(name: &str) -> &str {
    match name {
        "v" | "V" => "via",
        "f" | "F" => "from",
        "t" | "T" => "to",
        "i" | "I" => "call-id",
        "m" | "M" => "contact",
        "l" | "L" => "content-length",
        "c" | "C" => "content-type",
        _ => name,
    }
}

impl Message {
    /// Parses one datagram.
    pub fn parse(bytes: &[u8]) -> Result<Message, SipError> {
        let bad = |m: &str| SipError::Malformed(m.to_owned());
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| bad("no blank line after the headers"))?;
        let head = std::str::from_utf8(&bytes[..split]).map_err(|_| bad("headers not UTF-8"))?;
        let rest = &bytes[split + 4..];
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let start = if let Some(status) = first.strip_prefix("SIP/2.0 ") {
            let code: u16 = status
                .get(..3)
                .and_then(|c| c.parse().ok())
                .filter(|c| (100..700).contains(c))
                .ok_or_else(|| bad("bad status code"))?;
            Start::Response { code }
        } else {
            let mut parts = first.split(' ');
            let (Some(method), Some(uri), Some("SIP/2.0"), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("bad request line"));
            };
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad("bad method"));
            }
            if !uri.starts_with("sip:") && !uri.starts_with("sips:") && !uri.starts_with("tel:") {
                return Err(bad("request URI is not sip:, sips: or tel:"));
            }
            Start::Request {
                method: method.to_owned(),
                uri: uri.to_owned(),
            }
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with(' ') || line.starts_with('\t') {
                // Folded continuation (RFC 3261 §7.3.1).
                let last = headers
                    .last_mut()
                    .ok_or_else(|| bad("continuation first"))?;
                last.1.push(' ');
                last.1.push_str(line.trim());
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad("header without ':'"))?;
            let name = name.trim();
            if name.is_empty() || name.contains(' ') {
                return Err(bad("bad header name"));
            }
            if headers.len() >= MAX_HEADERS {
                return Err(bad("too many headers"));
            }
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut msg = Message {
            start,
            headers,
            body: Vec::new(),
        };
        for required in ["via", "from", "to", "call-id", "cseq"] {
            if msg.header(required).is_none() {
                return Err(SipError::Malformed(format!("no {required} header")));
            }
        }
        msg.cseq().ok_or_else(|| bad("bad CSeq"))?;
        let len = match msg.header("content-length") {
            Some(l) => l.parse::<usize>().map_err(|_| bad("bad Content-Length"))?,
            None => rest.len(),
        };
        if len > rest.len() {
            return Err(bad("body shorter than Content-Length"));
        }
        msg.body = rest[..len].to_vec();
        Ok(msg)
    }

    /// The first value of header `name` (case-insensitive, compact forms too).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| long_name(n).eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| long_name(n).eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request method, or the CSeq method for a response.
    pub fn method(&self) -> &str {
        match &self.start {
            Start::Request { method, .. } => method,
            Start::Response { .. } => self.cseq().map_or("", |(_, m)| m),
        }
    }

    /// `(number, method)` of CSeq.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let (n, m) = self.header("cseq")?.split_once(' ')?;
        Some((n.trim().parse().ok()?, m.trim()))
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        self.header("call-id").unwrap_or_default()
    }

    /// The tag parameter of the To header, if any.
    pub fn to_tag(&self) -> Option<&str> {
        tag_of(self.header("to")?)
    }

    /// The branch parameter of the top Via.
    pub fn branch(&self) -> Option<&str> {
        param(self.header("via")?, "branch")
    }

    /// A response to this request: Via, From, To (with `to_tag` added when
    /// it has none), Call-ID and CSeq copied; `extra` headers; `body` with
    /// its type when not empty.
    pub fn response(
        &self,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[(&str, String)],
        body: &[u8],
    ) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {code} {reason}\r\n");
        for via in self.headers_named("via") {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        out.push_str(&format!(
            "From: {}\r\n",
            self.header("from").unwrap_or_default()
        ));
        let to = self.header("to").unwrap_or_default();
        match (tag_of(to), to_tag) {
            (None, Some(tag)) => out.push_str(&format!("To: {to};tag={tag}\r\n")),
            _ => out.push_str(&format!("To: {to}\r\n")),
        }
        out.push_str(&format!("Call-ID: {}\r\n", self.call_id()));
        out.push_str(&format!(
            "CSeq: {}\r\n",
            self.header("cseq").unwrap_or_default()
        ));
        for (name, value) in extra {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            out.push_str("Content-Type: application/sdp\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

/// The value of `;name=value` in a header (first match after the URI).
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    // Parameters after a `>` belong to the header; without <>, after the URI.
    let after = value.rfind('>').map_or(value, |i| &value[i..]);
    after.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn tag_of(value: &str) -> Option<&str> {
    param(value, "tag")
}

/// The URI inside a name-addr (`"Name" <sip:x@y>;tag=1` gives `sip:x@y`).
pub fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or_default().trim(),
    }
}

/// The user part of a SIP or tel URI (`sip:+1555@host` gives `+1555`).
pub fn user_of(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))?;
    let user = match rest.split_once('@') {
        Some((u, _)) => u,
        None if uri.starts_with("tel:") => rest,
        None => return None,
    };
    let user = user.split([';', ':']).next().unwrap_or_default();
    (!user.is_empty()).then_some(user)
}

/// The host:port of a SIP URI's host part (`sip:a@127.0.0.1:5070;x` gives
/// `127.0.0.1:5070`), for sending in-dialog requests.
pub fn hostport_of(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("sip:")?;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    host.split([';', '?', '>']).next().filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+15550100@127.0.0.1:5090 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n\
Max-Forwards: 70\r\n\
From: \"A\" <sip:+15551234@127.0.0.1>;tag=abc\r\n\
t: <sip:+15550100@127.0.0.1>\r\n\
Call-ID: x1@h\r\n\
CSeq: 7 INVITE\r\n\
Contact: <sip:+15551234@127.0.0.1:5070>\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn parses_an_invite() {
        let m = Message::parse(INVITE.as_bytes()).expect("parse");
        assert_eq!(
            m.start,
            Start::Request {
                method: "INVITE".into(),
                uri: "sip:+15550100@127.0.0.1:5090".into()
            }
        );
        assert_eq!(m.header("TO"), Some("<sip:+15550100@127.0.0.1>"));
        assert_eq!(m.cseq(), Some((7, "INVITE")));
        assert_eq!(m.branch(), Some("z9hG4bK1"));
        assert_eq!(m.body, b"v=0\n");
        assert_eq!(
            user_of(uri_of(m.header("from").unwrap_or_default())),
            Some("+15551234")
        );
        assert_eq!(
            hostport_of(uri_of(m.header("contact").unwrap_or_default())),
            Some("127.0.0.1:5070")
        );
        let r = String::from_utf8(m.response(180, "Ringing", Some("t9"), &[], b"")).expect("utf8");
        assert!(r.starts_with("SIP/2.0 180 Ringing\r\n"), "{r}");
        assert!(
            r.contains("To: <sip:+15550100@127.0.0.1>;tag=t9\r\n"),
            "{r}"
        );
        assert!(r.contains("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\n"));
        assert!(r.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn refuses_malformed_input() {
        for bad in [
            "".to_string(),
            "garbage".into(),
            "INVITE sip:x SIP/2.0\r\n\r\n".into(),
            INVITE.replace("CSeq: 7 INVITE", "CSeq: x INVITE"),
            INVITE.replace("Content-Length: 4", "Content-Length: 400"),
            INVITE.replace("INVITE sip:", "INVITE http:"),
            INVITE.replace("Call-ID: x1@h\r\n", ""),
            INVITE.replace("SIP/2.0\r\n", "SIP/3.0\r\n"),
            "SIP/2.0 99 x\r\n\r\n".into(),
        ] {
            assert!(Message::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        // Arbitrary bytes never panic.
        let mut x: u32 = 1;
        for n in 0..2000 {
            let mut b = INVITE.as_bytes().to_vec();
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let i = (x as usize) % b.len();
            b[i] = (x >> 24) as u8;
            b.truncate(b.len() - n % 7);
            let _ = Message::parse(&b);
        }
    }
}
