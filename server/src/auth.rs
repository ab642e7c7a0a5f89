//! Login: user name and password in, a random short-lived token out. The
//! token is stored (so it survives a backend restart) and is presented in
//! the socket's first frame, never in a URL where logs and referrers keep it.

use protocol::error::{ErrorBody, ErrorCode};
use protocol::Millis;

use crate::center::{random_id, Center};

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

/// Compares without an early exit, so timing does not reveal how much of
/// the password matched.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// Checks credentials and issues a token.
pub fn login(
    center: &Center,
    username: &str,
    password: &str,
    now: Millis,
) -> Result<Login, ErrorBody> {
    let agent = center.config().agents.get(username);
    let ok = agent.is_some_and(|a| same(&a.password, password));
    if !ok {
        return Err(ErrorBody::new(
            ErrorCode::AuthFailed,
            "wrong user name or password",
        ));
    }
    let token = format!("{}{}", random_id("t"), &random_id("")[1..]);
    let expires_at = now.plus_secs(center.config().token_ttl_s);
    let _ = center.store().purge_tokens(now);
    center
        .store()
        .save_token(&token, username, expires_at)
        .map_err(|e| {
            tracing::error!("{e}");
            ErrorBody::new(ErrorCode::Internal, "login could not be saved; try again")
        })?;
    Ok(Login {
        token,
        agent: username.to_owned(),
        expires_at,
    })
}

/// The agent a token belongs to, if it is live.
pub fn authenticate(center: &Center, token: &str, now: Millis) -> Option<String> {
    if token.is_empty() || token.len() > 128 {
        return None;
    }
    center.store().token_owner(token, now).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn constant_time_compare_is_still_a_compare() {
        assert!(same("alice-pass", "alice-pass"));
        assert!(!same("alice-pass", "alice-pas"));
        assert!(!same("alice-pass", "alice-pasS"));
        assert!(!same("", "x"));
        assert!(same("", ""));
    }
}
