//! Login: user name and password in, a random short-lived token out, and
//! everything a token's life needs afterwards: refresh, logout and the
//! sockets open on it.
//!
//! Passwords are Argon2id hashes in the configuration ([`password`]);
//! checking one runs on a blocking thread, outside the center's lock, with
//! at most a few checks at a time. Failed logins are throttled per user
//! name and per client address ([`limit`]) and every failure gets the same
//! message. Tokens are 128-bit random strings; the store keeps only their
//! SHA-256 (a fast hash is right for a random secret of that size: there
//! is nothing to guess), so a copy of the database opens no session. A
//! token is presented in the socket's first frame or as an HTTP bearer,
//! never in a URL where logs and referrers keep it.

pub mod limit;
pub mod live;
pub mod password;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use protocol::error::{ErrorBody, ErrorCode};
use protocol::Millis;
use sha2::{Digest, Sha256};

use crate::center::{random_id, Center};
use crate::config::Config;
use crate::store::StoreError;

pub use limit::LoginPolicy;
pub use live::{Grant, GrantEvent, Registry};
pub use password::Credential;

/// The one answer to every failed login: it does not say whether the user
/// exists, the password was wrong, or the account is being throttled.
pub const LOGIN_FAILED: &str =
    "login failed: wrong user name or password, or too many attempts; try again later";

/// Password checks that may run at once; more wait their turn, so a flood
/// of logins cannot take every core (each check is ~20 ms of one core and
/// 19 MiB with the default parameters).
const CONCURRENT_CHECKS: usize = 2;

/// A fresh token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Login {
    /// Present it in `hello`.
    pub token: String,
    /// The agent's username.
    pub agent: String,
    /// When it stops working.
    pub expires_at: Millis,
}

/// A live token's owner, as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The agent.
    pub agent: String,
    /// The login it belongs to (shared by refreshed tokens).
    pub family: String,
    /// When it stops working.
    pub expires_at: Millis,
}

/// Why a login, refresh or logout failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Wrong user name or password.
    #[error("{LOGIN_FAILED}")]
    Failed,
    /// Too many failures; try again after this many milliseconds.
    #[error("{LOGIN_FAILED}")]
    Throttled {
        /// Until the next attempt is considered.
        retry_after_ms: u64,
    },
    /// No valid token was presented.
    #[error("a valid bearer token is required")]
    BadToken,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backend is shutting down or a lock was poisoned.
    #[error("backend unavailable")]
    Unavailable,
}

impl AuthError {
    /// The wire error (messages never carry internals).
    pub fn body(&self) -> ErrorBody {
        match self {
            AuthError::Failed => ErrorBody::new(ErrorCode::AuthFailed, LOGIN_FAILED),
            AuthError::Throttled { .. } => ErrorBody::new(ErrorCode::LoginThrottled, LOGIN_FAILED),
            AuthError::BadToken => ErrorBody::new(
                ErrorCode::AuthFailed,
                "a valid bearer token is required; log in again",
            ),
            AuthError::Store(e) => {
                tracing::error!("{e}");
                ErrorBody::new(
                    ErrorCode::Internal,
                    "the login could not be saved; try again",
                )
            }
            AuthError::Unavailable => ErrorBody::new(ErrorCode::Internal, "backend unavailable"),
        }
    }
}

/// Login state shared by the HTTP handlers and the sockets.
pub struct AuthState {
    limiter: Mutex<limit::Limiter>,
    dummy: Credential,
    checks: tokio::sync::Semaphore,
    /// Sockets open per login.
    pub live: Arc<Registry>,
}

impl AuthState {
    /// Builds the dummy hash (one Argon2id evaluation) and empty tables.
    pub fn new(cfg: &Config) -> Self {
        let ordered = cfg.agent_order.iter().filter_map(|u| cfg.agents.get(u));
        AuthState {
            limiter: Mutex::new(limit::Limiter::new(cfg.login)),
            dummy: password::dummy_hash(ordered.map(|a| &a.password)),
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
            live: Arc::new(Registry::default()),
        }
    }
}

/// SHA-256 of a token, hex: what the store keeps.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new 128-bit token.
fn new_token() -> String {
    format!("{}{}", random_id("t"), &random_id("")[1..])
}

/// Checks credentials from `ip` and issues a token. Throttled attempts
/// are refused before the password is looked at.
pub async fn login(
    state: &crate::http::AppState,
    username: &str,
    password: &str,
    ip: IpAddr,
) -> Result<Login, AuthError> {
    let auth = state.auth.clone();
    let cfg = state.cfg.clone();
    let now = state.now();
    let shown_user: String = username.chars().take(64).collect();
    let attempt = auth
        .limiter
        .lock()
        .map_err(|_| AuthError::Unavailable)?
        .begin(username, ip, now, |u| cfg.agents.contains_key(u));
    let attempt = match attempt {
        Ok(a) => a,
        Err(t) => {
            tracing::warn!(user = %shown_user.escape_debug(), address = %ip, retry_after_ms = t.retry_after_ms, "login throttled");
            return Err(AuthError::Throttled {
                retry_after_ms: t.retry_after_ms,
            });
        }
    };
    let credential = cfg
        .agents
        .get(username)
        .map_or_else(|| auth.dummy.clone(), |a| a.password.clone());
    let known = cfg.agents.contains_key(username);
    let ok = {
        let _permit = auth
            .checks
            .acquire()
            .await
            .map_err(|_| AuthError::Unavailable)?;
        // The address may have been blocked while this attempt waited.
        let recheck = auth
            .limiter
            .lock()
            .map_err(|_| AuthError::Unavailable)?
            .recheck(&attempt, state.now());
        if let Err(t) = recheck {
            tracing::warn!(user = %shown_user.escape_debug(), address = %ip, retry_after_ms = t.retry_after_ms, "login throttled");
            return Err(AuthError::Throttled {
                retry_after_ms: t.retry_after_ms,
            });
        }
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || credential.verify(&password))
            .await
            .unwrap_or(false)
    } && known;
    if !ok {
        let attempt = auth
            .limiter
            .lock()
            .map_err(|_| AuthError::Unavailable)?
            .failed(attempt, state.now());
        tracing::warn!(
            user = %shown_user.escape_debug(),
            address = %ip,
            user_failures = attempt.user_failures,
            address_failures = attempt.address_failures,
            "login failed"
        );
        return Err(AuthError::Failed);
    }
    if let Ok(mut l) = auth.limiter.lock() {
        l.succeeded(attempt);
    }
    let issued = {
        let center = state.center.lock().map_err(|_| AuthError::Unavailable)?;
        issue(&center, username, &random_id("l"), now)?
    };
    tracing::info!(user = %username, address = %ip, "login");
    Ok(issued)
}

/// Saves a new token for `agent` in login `family`.
fn issue(center: &Center, agent: &str, family: &str, now: Millis) -> Result<Login, AuthError> {
    let token = new_token();
    let expires_at = now.plus_secs(center.config().token_ttl_s);
    let _ = center.store().purge_tokens(now);
    center
        .store()
        .save_token(&token_hash(&token), family, agent, expires_at)?;
    Ok(Login {
        token,
        agent: agent.to_owned(),
        expires_at,
    })
}

/// The owner of a live token.
pub fn authenticate(center: &Center, token: &str, now: Millis) -> Option<TokenInfo> {
    if token.is_empty() || token.len() > 128 {
        return None;
    }
    center
        .store()
        .token_owner(&token_hash(token), now)
        .ok()
        .flatten()
}

/// A new token in the same login as `family` (the current one keeps
/// working until its own expiry, so a refresh whose answer is lost costs
/// nothing).
pub fn refresh(
    center: &Center,
    agent: &str,
    family: &str,
    now: Millis,
) -> Result<Login, AuthError> {
    let login = issue(center, agent, family, now)?;
    tracing::info!(user = %agent, "token refreshed");
    Ok(login)
}

/// Revokes the whole login `token` belongs to: every token refreshed
/// from it stops working, and every socket open on it is closed.
pub fn logout(state: &crate::http::AppState, token: &str) -> Result<String, AuthError> {
    let now = state.now();
    let info = {
        let center = state.center.lock().map_err(|_| AuthError::Unavailable)?;
        let info = authenticate(&center, token, now).ok_or(AuthError::BadToken)?;
        center.store().revoke_family(&info.family)?;
        info
    };
    let closed = state.auth.live.revoke(&info.family);
    tracing::info!(user = %info.agent, sockets_closed = closed, "logout");
    Ok(info.agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = new_token();
        assert_eq!(t.len(), 2 + 32, "{t}");
        assert_ne!(t, new_token());
    }
}
