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
            ErrorCode::Internal => "internal",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unknown => "unknown",
        }
    }
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
