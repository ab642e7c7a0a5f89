//! Typed errors on the wire. Every failed request gets exactly one of these
//! codes; clients branch on the code, people read the message.

use serde::{Deserialize, Serialize};

/// Why a request or frame was refused. Unknown codes from a newer peer
/// decode as [`ErrorCode::Unknown`] rather than failing the whole frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The text frame is not JSON.
    BadJson,
    /// A binary frame whose header is malformed.
    BadMediaFrame,
    /// The JSON has no known `type`.
    UnknownType,
    /// A request names an operation this server does not know.
    UnknownOp,
    /// A known operation with missing or ill-typed fields.
    BadRequest,
    /// None of the versions offered in `hello` is supported.
    UnsupportedVersion,
    /// A request arrived before a successful `hello`.
    NotAuthenticated,
    /// The token is unknown or expired (or the password was wrong at login).
    AuthFailed,
    /// A `hello` on a session that already completed one.
    AlreadyAuthenticated,
    /// The frame is larger than the protocol allows.
    FrameTooLarge,
    /// The contact, connection, state or endpoint does not exist.
    NotFound,
    /// The contact or connection belongs to another agent.
    NotOwner,
    /// The operation is not allowed in the current state.
    InvalidState,
    /// An argument is well-typed but not acceptable (bad phone number, digits).
    InvalidArgument,
    /// The endpoint kind cannot be used for this operation.
    UnsupportedEndpoint,
    /// The queue is at its maximum number of waiting contacts.
    QueueFull,
    /// The queue is outside its hours of operation.
    QueueClosed,
    /// No media path exists for this frame's leg.
    NoMediaLeg,
    /// Too many failed logins for this user name or client address; the
    /// HTTP answer is 429 with `Retry-After`.
    LoginThrottled,
    /// The token expired on an open socket (no `refresh_token` in time);
    /// the server closes the socket after this error.
    SessionExpired,
    /// The token was revoked (logout); the server closes the socket after
    /// this error.
    TokenRevoked,
    /// The same agent opened a newer session elsewhere (another browser or
    /// device): this one gets no more events and the server closes it after
    /// this error. The login stays valid; reconnecting takes the session back.
    SessionReplaced,
    /// The server failed; the message never carries internals.
    Internal,
    /// Too many messages or connections; slow down. A socket that keeps
    /// sending after this is closed.
    RateLimited,
    /// No answer before the request's deadline. Raised by clients (the
    /// client core, a follower tab, the JS SDK) for their own requests,
    /// never sent by a backend; one code for one failure everywhere.
    Timeout,
    /// A code this version does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The wire name of the code, e.g. `"not_owner"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadMediaFrame => "bad_media_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::AlreadyAuthenticated => "already_authenticated",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotOwner => "not_owner",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::UnsupportedEndpoint => "unsupported_endpoint",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::QueueClosed => "queue_closed",
            ErrorCode::NoMediaLeg => "no_media_leg",
            ErrorCode::LoginThrottled => "login_throttled",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::TokenRevoked => "token_revoked",
            ErrorCode::SessionReplaced => "session_replaced",
            ErrorCode::Internal => "internal",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl ErrorCode {
    /// Every code, in declaration order. Clients' code lists are generated
    /// from it (the JS SDK's `ERROR_CODES`); the test
    /// `every_code_is_listed_once_and_round_trips` checks it is complete.
    pub const ALL: [ErrorCode; 26] = [
        ErrorCode::BadJson,
        ErrorCode::BadMediaFrame,
        ErrorCode::UnknownType,
        ErrorCode::UnknownOp,
        ErrorCode::BadRequest,
        ErrorCode::UnsupportedVersion,
        ErrorCode::NotAuthenticated,
        ErrorCode::AuthFailed,
        ErrorCode::AlreadyAuthenticated,
        ErrorCode::FrameTooLarge,
        ErrorCode::NotFound,
        ErrorCode::NotOwner,
        ErrorCode::InvalidState,
        ErrorCode::InvalidArgument,
        ErrorCode::UnsupportedEndpoint,
        ErrorCode::QueueFull,
        ErrorCode::QueueClosed,
        ErrorCode::NoMediaLeg,
        ErrorCode::LoginThrottled,
        ErrorCode::SessionExpired,
        ErrorCode::TokenRevoked,
        ErrorCode::SessionReplaced,
        ErrorCode::Internal,
        ErrorCode::RateLimited,
        ErrorCode::Timeout,
        ErrorCode::Unknown,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error half of a response: a code to branch on and a sentence to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorBody {
    /// What went wrong, as a stable code.
    pub code: ErrorCode,
    /// A human-readable explanation without server internals.
    pub message: String,
}

impl ErrorBody {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod all_codes_tests {
    use super::*;

    /// Exhaustive (a new variant does not compile without an arm here):
    /// its place in [`ErrorCode::ALL`].
    fn position(code: ErrorCode) -> usize {
        match code {
            ErrorCode::BadJson => 0,
            ErrorCode::BadMediaFrame => 1,
            ErrorCode::UnknownType => 2,
            ErrorCode::UnknownOp => 3,
            ErrorCode::BadRequest => 4,
            ErrorCode::UnsupportedVersion => 5,
            ErrorCode::NotAuthenticated => 6,
            ErrorCode::AuthFailed => 7,
            ErrorCode::AlreadyAuthenticated => 8,
            ErrorCode::FrameTooLarge => 9,
            ErrorCode::NotFound => 10,
            ErrorCode::NotOwner => 11,
            ErrorCode::InvalidState => 12,
            ErrorCode::InvalidArgument => 13,
            ErrorCode::UnsupportedEndpoint => 14,
            ErrorCode::QueueFull => 15,
            ErrorCode::QueueClosed => 16,
            ErrorCode::NoMediaLeg => 17,
            ErrorCode::LoginThrottled => 18,
            ErrorCode::SessionExpired => 19,
            ErrorCode::TokenRevoked => 20,
            ErrorCode::SessionReplaced => 21,
            ErrorCode::Internal => 22,
            ErrorCode::RateLimited => 23,
            ErrorCode::Timeout => 24,
            // Keep `Unknown` last: a new code goes before it, so its
            // position is `ALL.len() - 1` and `ALL` must grow to hold it.
            ErrorCode::Unknown => 25,
        }
    }

    #[test]
    fn every_code_is_listed_once_and_round_trips() {
        assert_eq!(position(ErrorCode::Unknown), ErrorCode::ALL.len() - 1);
        let mut names = std::collections::BTreeSet::new();
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(position(code), i, "{code} is out of place in ALL");
            let name = code.as_str();
            assert!(names.insert(name), "{name} twice");
            let json = serde_json::to_string(&code).expect("serializes");
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<ErrorCode>(&json).expect("parses"),
                code
            );
            let body = ErrorBody::new(code, "m");
            let text = serde_json::to_string(&body).expect("serializes");
            assert_eq!(
                serde_json::from_str::<ErrorBody>(&text).expect("parses"),
                body
            );
        }
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"from_the_future\"").expect("parses"),
            ErrorCode::Unknown
        );
    }
}
