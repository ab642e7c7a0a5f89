//! The simulator's fence. The simulated-caller API (`/v1/sim/*`) and the
//! customer phone socket (`/v1/customer/ws`) put calls into agents'
//! screens, with a caller number of the requester's choosing, and can hang
//! them up or fetch what the caller heard. So they are off unless the
//! configuration turns them on, and when on, every request passes three
//! checks before it touches the center:
//!
//! 1. **Origin.** A browser always names the page's origin on a
//!    cross-origin request (and on every WebSocket); a request naming an
//!    origin outside `approved_origins` is refused whatever else it
//!    carries. This stops the drive-by: a foreign page's `text/plain` POST.
//!    Requests without `Origin` are not from a web page's script (curl, the
//!    `sim-call` command, tests) and go on to the key check.
//! 2. **Key.** `Authorization: Bearer <simulator_key>` on HTTP, the `key`
//!    field of the customer phone's dial message; never in a URL, where
//!    logs and referrers would keep it. Compared in constant time.
//! 3. **Rate.** Calls placed, all callers together, per minute: a token
//!    bucket holding one minute's worth, refilled continuously.

use std::sync::Mutex;

use axum::http::{header, HeaderMap, StatusCode};
use protocol::error::{ErrorBody, ErrorCode};
use protocol::Millis;

use crate::config::Config;

/// Why a simulator request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// The simulator is off in the configuration.
    #[error("the simulator is switched off in the configuration")]
    Off,
    /// A browser request from an origin that is not approved.
    #[error("pages on this origin may not use the simulator")]
    ForeignOrigin,
    /// The key is missing or wrong.
    #[error("the simulator key is missing or wrong")]
    BadKey,
    /// Over the calls-per-minute budget.
    #[error(
        "too many simulated calls: at most {per_minute} a minute; try again in {retry_after_s} s"
    )]
    RateLimited {
        /// The configured budget.
        per_minute: u32,
        /// Seconds until one more call is allowed.
        retry_after_s: u64,
    },
}

impl FenceError {
    /// The wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            FenceError::Off => ErrorCode::NotFound,
            FenceError::ForeignOrigin | FenceError::BadKey => ErrorCode::AuthFailed,
            FenceError::RateLimited { .. } => ErrorCode::RateLimited,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            FenceError::Off => StatusCode::NOT_FOUND,
            FenceError::ForeignOrigin => StatusCode::FORBIDDEN,
            FenceError::BadKey => StatusCode::UNAUTHORIZED,
            FenceError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The `{code, message}` body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string())
    }
}

/// One minute, the rate limit's window.
const MINUTE_MS: u64 = 60_000;

/// Calls-per-minute budget as a token bucket. Amounts are in
/// call-milliseconds over a minute (one call = [`MINUTE_MS`] units), so
/// refilling `per_minute` calls a minute is exact integer arithmetic.
#[derive(Debug)]
struct Bucket {
    units: u64,
    at: Option<Millis>,
}

/// The simulator's checks, built once from the configuration.
#[derive(Debug)]
pub struct SimFence {
    on: bool,
    key: Vec<u8>,
    origins: Vec<String>,
    per_minute: u32,
    bucket: Mutex<Bucket>,
}

impl SimFence {
    /// The fence `cfg` describes.
    pub fn new(cfg: &Config) -> SimFence {
        let per_minute = cfg.simulator_calls_per_minute.max(1);
        SimFence {
            // A simulator without a key stays shut (the configuration
            // refuses that combination; this is the belt to its braces).
            on: cfg.simulator && !cfg.simulator_key.is_empty(),
            key: cfg.simulator_key.as_bytes().to_vec(),
            origins: cfg
                .approved_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            per_minute,
            bucket: Mutex::new(Bucket {
                units: u64::from(per_minute) * MINUTE_MS,
                at: None,
            }),
        }
    }

    /// The simulator is on and the request's `Origin`, if any, is approved.
    pub fn admit_origin(&self, headers: &HeaderMap) -> Result<(), FenceError> {
        if !self.on {
            return Err(FenceError::Off);
        }
        match headers.get(header::ORIGIN) {
            None => Ok(()),
            Some(origin) => {
                let origin = origin.to_str().map_err(|_| FenceError::ForeignOrigin)?;
                let origin = origin.to_ascii_lowercase();
                if self.origins.contains(&origin) {
                    Ok(())
                } else {
                    Err(FenceError::ForeignOrigin)
                }
            }
        }
    }

    /// [`SimFence::admit_origin`], then the bearer key.
    pub fn admit(&self, headers: &HeaderMap) -> Result<(), FenceError> {
        self.admit_origin(headers)?;
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        self.check_key(presented)
    }

    /// Whether `presented` is the key, in time independent of where they differ.
    pub fn check_key(&self, presented: &str) -> Result<(), FenceError> {
        if self.on && !presented.is_empty() && ct_eq(presented.as_bytes(), &self.key) {
            Ok(())
        } else {
            Err(FenceError::BadKey)
        }
    }

    /// Spends one call of the per-minute budget, or says when to retry.
    pub fn take_call(&self, now: Millis) -> Result<(), FenceError> {
        let cap = u64::from(self.per_minute) * MINUTE_MS;
        // A poisoned lock only means another request panicked mid-update;
        // the bucket's two numbers are still usable.
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = b.at {
            let elapsed = now.since(at).min(MINUTE_MS);
            b.units = (b.units + elapsed * u64::from(self.per_minute)).min(cap);
        }
        b.at = Some(now);
        if b.units >= MINUTE_MS {
            b.units -= MINUTE_MS;
            Ok(())
        } else {
            let missing = MINUTE_MS - b.units;
            let per_ms = u64::from(self.per_minute);
            Err(FenceError::RateLimited {
                per_minute: self.per_minute,
                retry_after_s: missing.div_ceil(per_ms).div_ceil(1000).max(1),
            })
        }
    }
}

/// Byte-string equality whose running time depends only on the lengths,
/// not on where the strings first differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn fence(per_minute: u32) -> SimFence {
        let mut cfg = Config::sample().expect("sample");
        cfg.simulator_calls_per_minute = per_minute;
        SimFence::new(&cfg)
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn constant_time_equality_is_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn key_and_origin_are_both_required() {
        let f = fence(60);
        let key = Config::sample().expect("sample").simulator_key;
        let bearer = format!("Bearer {key}");
        assert_eq!(f.admit(&headers(&[])), Err(FenceError::BadKey));
        assert_eq!(
            f.admit(&headers(&[(header::AUTHORIZATION, "Bearer nope")])),
            Err(FenceError::BadKey)
        );
        assert_eq!(
            f.admit(&headers(&[(header::AUTHORIZATION, key.as_str())])),
            Err(FenceError::BadKey),
            "the key without the Bearer scheme"
        );
        assert_eq!(
            f.admit(&headers(&[(header::AUTHORIZATION, &bearer)])),
            Ok(())
        );
        assert_eq!(
            f.admit(&headers(&[
                (header::AUTHORIZATION, &bearer),
                (header::ORIGIN, "http://evil.example")
            ])),
            Err(FenceError::ForeignOrigin)
        );
        assert_eq!(
            f.admit(&headers(&[
                (header::AUTHORIZATION, &bearer),
                (header::ORIGIN, "null")
            ])),
            Err(FenceError::ForeignOrigin)
        );
        assert_eq!(
            f.admit(&headers(&[
                (header::AUTHORIZATION, &bearer),
                (header::ORIGIN, "http://127.0.0.1:8481")
            ])),
            Ok(())
        );
    }

    #[test]
    fn an_off_simulator_refuses_even_the_right_key() {
        let mut cfg = Config::sample().expect("sample");
        cfg.simulator = false;
        let f = SimFence::new(&cfg);
        let bearer = format!("Bearer {}", cfg.simulator_key);
        assert_eq!(
            f.admit(&headers(&[(header::AUTHORIZATION, &bearer)])),
            Err(FenceError::Off)
        );
        assert_eq!(f.check_key(&cfg.simulator_key), Err(FenceError::BadKey));
    }

    #[test]
    fn the_bucket_holds_a_minute_and_refills_continuously() {
        let f = fence(6);
        let t0 = Millis(1_000_000);
        for _ in 0..6 {
            f.take_call(t0).expect("within the budget");
        }
        let Err(FenceError::RateLimited { retry_after_s, .. }) = f.take_call(t0) else {
            panic!("the seventh call in a minute is refused");
        };
        assert_eq!(retry_after_s, 10, "one call every 10 s at 6 a minute");
        assert!(f.take_call(t0.plus_ms(9_999)).is_err());
        f.take_call(t0.plus_ms(10_000)).expect("refilled one");
        assert!(f.take_call(t0.plus_ms(10_000)).is_err());
        // A long pause refills to the cap, not beyond.
        let later = t0.plus_ms(3_600_000);
        for _ in 0..6 {
            f.take_call(later).expect("full again");
        }
        assert!(f.take_call(later).is_err());
    }
}
