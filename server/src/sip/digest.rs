//! HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 2617 and
//! RFC 7616): read a `WWW-Authenticate` (401) or `Proxy-Authenticate`
//! (407) challenge and write the matching `Authorization` or
//! `Proxy-Authorization` header. MD5 with `qop=auth` or without qop
//! (RFC 2069 style); SHA-256 is left for a provider that asks for it.
//! MD5 is written here from RFC 1321 (a few dozen lines) rather than
//! adding a crate for one hash.

use super::SipError;

/// One parsed challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The protection space.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Echoed back when present.
    pub opaque: Option<String>,
    /// Whether the server offered `qop=auth`.
    pub qop_auth: bool,
    /// `stale=true`: the nonce expired, the credentials were fine.
    pub stale: bool,
}

impl Challenge {
    /// Parses `Digest realm="x", nonce="y", qop="auth,auth-int", ...`.
    pub fn parse(value: &str) -> Result<Challenge, SipError> {
        let bad = |m: &str| SipError::Malformed(format!("digest challenge: {m}"));
        let rest = value
            .trim()
            .strip_prefix("Digest")
            .or_else(|| value.trim().strip_prefix("digest"))
            .ok_or_else(|| bad("not Digest"))?;
        let params = parse_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        if let Some(alg) = get("algorithm") {
            if !alg.eq_ignore_ascii_case("MD5") {
                return Err(bad("algorithm is not MD5"));
            }
        }
        let qop = get("qop");
        let qop_auth = qop
            .as_deref()
            .is_some_and(|q| q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth")));
        if qop.is_some() && !qop_auth {
            return Err(bad("qop offers no auth"));
        }
        Ok(Challenge {
            realm: get("realm").ok_or_else(|| bad("no realm"))?,
            nonce: get("nonce").ok_or_else(|| bad("no nonce"))?,
            opaque: get("opaque"),
            qop_auth,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The credentials header value for `method` on `uri`; `nc` counts the
    /// requests made with this nonce, `cnonce` is ours.
    pub fn answer(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        let ha1 = md5_hex(format!("{user}:{}:{password}", self.realm).as_bytes());
        let ha2 = md5_hex(format!("{method}:{uri}").as_bytes());
        let mut out = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm=MD5",
            self.realm, self.nonce
        );
        let response = if self.qop_auth {
            let nc = format!("{nc:08x}");
            out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
            md5_hex(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce).as_bytes())
        } else {
            md5_hex(format!("{ha1}:{}:{ha2}", self.nonce).as_bytes())
        };
        out.push_str(&format!(", response=\"{response}\""));
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{o}\""));
        }
        out
    }
}

/// `k=v, k="v, w"` pairs (quoted values may hold commas).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim().trim_start_matches(',').trim().to_owned();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(q) = rest.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            value = q[..end].to_owned();
            rest = q.get(end + 1..).unwrap_or_default();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.push((name, value));
    }
    out
}

/// MD5 (RFC 1321) of `data`, as 32 lower-case hex digits.
pub fn md5_hex(data: &[u8]) -> String {
    md5(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 (RFC 1321) of `data`.
pub fn md5(data: &[u8]) -> [u8; 16] {
    // Per-round shift amounts and the sine-derived constants of RFC 1321
    // §3.4 (K[i] = floor(abs(sin(i + 1)) * 2^32)).
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: [u32; 64] =
        std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32);
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    for block in msg.chunks_exact(64) {
        let m: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ])
        });
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(k[i])
                .wrapping_add(m[g])
                .rotate_left(S[i]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(rotated);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (i, s) in state.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_rfc_1321_test_suite() {
        for (input, hex) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            assert_eq!(md5_hex(input.as_bytes()), hex, "{input:?}");
        }
    }

    #[test]
    fn answers_the_rfc_2617_example() {
        // RFC 2617 §3.5: Mufasa / "Circle Of Life", GET /dir/index.html.
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .expect("challenge");
        assert!(c.qop_auth);
        let h = c.answer(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert!(
            h.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{h}"
        );
        assert!(h.contains("nc=00000001"), "{h}");
        assert!(h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn refuses_bad_challenges() {
        for bad in [
            "Basic realm=\"x\"",
            "Digest nonce=\"n\"",
            "Digest realm=\"r\"",
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256",
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"",
        ] {
            assert!(Challenge::parse(bad).is_err(), "{bad}");
        }
        let ok = Challenge::parse("Digest realm=\"r\",nonce=\"n\",stale=TRUE").expect("ok");
        assert!(ok.stale && !ok.qop_auth);
    }
}
