//! Agent passwords: Argon2id hashes in PHC string format
//! (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) in the configuration, made
//! by `switchboard-server hash-password`. Plain text is accepted only when
//! the configuration says `dev_plaintext_passwords = true`.
//!
//! Checking a password costs one Argon2id evaluation on purpose; callers
//! run it on a blocking thread, never under the center's lock. A user name
//! that is not configured is checked against a dummy hash with the same
//! parameters, so the answer takes as long as for a real one.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// What the configuration holds for one agent.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// An Argon2id PHC string.
    Hash(String),
    /// Plain text (development configurations only).
    Plain(String),
}

impl std::fmt::Debug for Credential {
    // Never print a password, even a hashed one, in logs or panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Hash(_) => f.write_str("Credential::Hash(..)"),
            Credential::Plain(_) => f.write_str("Credential::Plain(..)"),
        }
    }
}

/// Why a password could not be hashed or a configured value read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// It starts like a PHC string but does not parse as one.
    #[error("not a valid PHC hash string: {0}")]
    BadHash(String),
    /// A PHC string for another algorithm than Argon2id.
    #[error("the hash uses `{0}`; only argon2id is accepted")]
    WrongAlgorithm(String),
    /// Plain text where a hash is required.
    #[error("plain-text password; store an Argon2id hash (`switchboard-server hash-password`) or set `dev_plaintext_passwords = true` in [server] for development")]
    PlainText,
    /// The hasher failed (no entropy for the salt, bad parameters).
    #[error("cannot hash: {0}")]
    Hashing(String),
    /// An empty password.
    #[error("the password is empty")]
    Empty,
}

impl Credential {
    /// Reads a configured `password`: a PHC string is a hash (and must be
    /// Argon2id); anything else is plain text, refused unless allowed.
    pub fn parse(value: &str, allow_plain: bool) -> Result<Credential, PasswordError> {
        if value.starts_with('$') {
            let hash =
                PasswordHash::new(value).map_err(|e| PasswordError::BadHash(e.to_string()))?;
            if hash.algorithm != Algorithm::Argon2id.ident() {
                return Err(PasswordError::WrongAlgorithm(hash.algorithm.to_string()));
            }
            // Parameters out of range would only fail at the first login.
            Params::try_from(&hash).map_err(|e| PasswordError::BadHash(e.to_string()))?;
            return Ok(Credential::Hash(value.to_owned()));
        }
        if value.is_empty() {
            return Err(PasswordError::Empty);
        }
        if allow_plain {
            Ok(Credential::Plain(value.to_owned()))
        } else {
            Err(PasswordError::PlainText)
        }
    }

    /// Whether `password` matches. Slow for a hash (run it off the async
    /// threads); a malformed stored hash never matches.
    pub fn verify(&self, password: &str) -> bool {
        match self {
            Credential::Hash(phc) => verify_hash(phc, password),
            Credential::Plain(plain) => same(plain, password),
        }
    }
}

fn verify_hash(phc: &str, password: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    // `verify_password` takes the algorithm and parameters from the string.
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// Hashes `password` with Argon2id and the crate's defaults (the OWASP
/// minimum: 19 MiB, 2 passes, 1 lane) and a random salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    hash_with(password, Params::default())
}

/// Hashes with Argon2id using `m_cost_kib` of memory and `t_cost` passes
/// (one lane): cheaper than the defaults only for test fixtures, dearer
/// where the hardware allows.
pub fn hash_password_with(
    password: &str,
    m_cost_kib: u32,
    t_cost: u32,
) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let params = Params::new(m_cost_kib, t_cost, 1, None)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    hash_with(password, params)
}

fn hash_with(password: &str, params: Params) -> Result<String, PasswordError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// A hash of a random password with the parameters of the first hashed
/// credential (the defaults when there is none): checking an unknown user
/// name against it costs what checking a real one does.
pub fn dummy_hash<'a>(configured: impl IntoIterator<Item = &'a Credential>) -> Credential {
    let params = configured
        .into_iter()
        .find_map(|c| match c {
            Credential::Hash(phc) => PasswordHash::new(phc)
                .ok()
                .and_then(|h| Params::try_from(&h).ok()),
            Credential::Plain(_) => None,
        })
        .unwrap_or_default();
    let mut secret = [0u8; 16];
    let _ = getrandom::fill(&mut secret);
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    match hash_with(&secret, params) {
        Ok(phc) => Credential::Hash(phc),
        // Without a hash the dummy still never matches (the secret is
        // random and never leaves this function), only faster.
        Err(_) => Credential::Plain(secret),
    }
}

/// Compares without an early exit, so timing does not reveal how much of
/// a plain-text password matched.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(password: &str) -> String {
        hash_with(password, Params::new(1024, 1, 1, None).expect("params")).expect("hash")
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = cheap("alice-pass");
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        let c = Credential::parse(&phc, false).expect("hash accepted");
        assert!(c.verify("alice-pass"));
        assert!(!c.verify("alice-pasS"));
        assert!(!c.verify(""));
    }

    #[test]
    fn default_hash_is_argon2id_with_owasp_parameters() {
        let phc = hash_password("pw").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(Credential::parse(&phc, false).expect("parses").verify("pw"));
        assert!(matches!(hash_password(""), Err(PasswordError::Empty)));
    }

    #[test]
    fn plain_text_needs_the_development_flag() {
        assert!(matches!(
            Credential::parse("alice-pass", false),
            Err(PasswordError::PlainText)
        ));
        let c = Credential::parse("alice-pass", true).expect("dev");
        assert!(c.verify("alice-pass"));
        assert!(!c.verify("alice-pas"));
        assert!(matches!(
            Credential::parse("", true),
            Err(PasswordError::Empty)
        ));
    }

    #[test]
    fn broken_or_foreign_hashes_are_refused() {
        assert!(matches!(
            Credential::parse("$argon2id$v=19$m=oops", true),
            Err(PasswordError::BadHash(_))
        ));
        let argon2i = cheap("x").replacen("$argon2id$", "$argon2i$", 1);
        assert!(matches!(
            Credential::parse(&argon2i, true),
            Err(PasswordError::WrongAlgorithm(_))
        ));
    }

    #[test]
    fn dummy_uses_the_configured_parameters_and_matches_nothing() {
        let real = Credential::Hash(cheap("pw"));
        let Credential::Hash(dummy) = dummy_hash([&real]) else {
            panic!("a hash")
        };
        assert!(
            dummy.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{dummy}"
        );
        let dummy = Credential::Hash(dummy);
        assert!(!dummy.verify("pw"));
        assert!(!dummy.verify(""));
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let c = Credential::Plain("hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn constant_time_compare_is_still_a_compare() {
        assert!(same("alice-pass", "alice-pass"));
        assert!(!same("alice-pass", "alice-pas"));
        assert!(!same("", "x"));
        assert!(same("", ""));
    }
}
