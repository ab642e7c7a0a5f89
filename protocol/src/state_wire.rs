//! How contact and connection states are read off the wire.
//!
//! On the wire a state is one object: `{"name": "connected", "since": …}`
//! with the fields its name calls for. serde's derive for such an
//! internally tagged enum first buffers the whole object into a generic
//! value and then reads it again, variant by variant; in the CCP's
//! WebAssembly that came to 27 KB of code for these two types. Reading a
//! flat record of every field and then checking it against the name does
//! the same job in a fraction of that, with the same errors for a missing
//! field or an unknown name. Writing is still derived.

use serde::Deserialize;

use crate::contact::{ConnectionState, ContactState};
use crate::time::Millis;

/// Every field a contact or connection state can carry, as read.
#[derive(Deserialize)]
pub(crate) struct StateRecord<N> {
    name: N,
    since: Option<Millis>,
    expires_at: Option<Millis>,
    reason: Option<String>,
}

/// A required field the state's name calls for is absent.
fn missing(field: &'static str) -> String {
    format!("missing field `{field}`")
}

impl<N> StateRecord<N> {
    fn since(&self) -> Result<Millis, String> {
        self.since.ok_or_else(|| missing("since"))
    }

    fn reason(&mut self) -> Result<String, String> {
        self.reason.take().ok_or_else(|| missing("reason"))
    }
}

/// The names of [`ContactState`]'s variants.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ContactStateName {
    Init,
    Incoming,
    Connecting,
    Connected,
    Ended,
    Missed,
    Rejected,
    Error,
}

impl TryFrom<StateRecord<ContactStateName>> for ContactState {
    type Error = String;

    fn try_from(mut r: StateRecord<ContactStateName>) -> Result<Self, String> {
        Ok(match r.name {
            ContactStateName::Init => ContactState::Init,
            ContactStateName::Incoming => ContactState::Incoming {
                since: r.since()?,
                expires_at: r.expires_at.ok_or_else(|| missing("expires_at"))?,
            },
            ContactStateName::Connecting => ContactState::Connecting { since: r.since()? },
            ContactStateName::Connected => ContactState::Connected { since: r.since()? },
            ContactStateName::Ended => ContactState::Ended {
                since: r.since()?,
                reason: r.reason()?,
            },
            ContactStateName::Missed => ContactState::Missed { since: r.since()? },
            ContactStateName::Rejected => ContactState::Rejected { since: r.since()? },
            ContactStateName::Error => ContactState::Error {
                since: r.since()?,
                reason: r.reason()?,
            },
        })
    }
}

/// The names of [`ConnectionState`]'s variants.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ConnectionStateName {
    Init,
    Connecting,
    Connected,
    Hold,
    Disconnected,
}

impl TryFrom<StateRecord<ConnectionStateName>> for ConnectionState {
    type Error = String;

    fn try_from(mut r: StateRecord<ConnectionStateName>) -> Result<Self, String> {
        Ok(match r.name {
            ConnectionStateName::Init => ConnectionState::Init,
            ConnectionStateName::Connecting => ConnectionState::Connecting { since: r.since()? },
            ConnectionStateName::Connected => ConnectionState::Connected { since: r.since()? },
            ConnectionStateName::Hold => ConnectionState::Hold { since: r.since()? },
            ConnectionStateName::Disconnected => ConnectionState::Disconnected {
                since: r.since()?,
                reason: r.reason()?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state written by the derived serializer reads back as itself;
    /// a missing field, a wrong type or an unknown name is an error.
    #[test]
    fn states_read_back_what_is_written_and_refuse_what_is_not_a_state() {
        let t = Millis(1_700_000_000_000);
        let contact = [
            ContactState::Init,
            ContactState::Incoming {
                since: t,
                expires_at: Millis(t.0 + 30_000),
            },
            ContactState::Connecting { since: t },
            ContactState::Connected { since: t },
            ContactState::Ended {
                since: t,
                reason: "customer_disconnect".into(),
            },
            ContactState::Missed { since: t },
            ContactState::Rejected { since: t },
            ContactState::Error {
                since: t,
                reason: "media_failed".into(),
            },
        ];
        for s in contact {
            let json = serde_json::to_string(&s).expect("write");
            assert_eq!(
                serde_json::from_str::<ContactState>(&json).ok(),
                Some(s),
                "{json}"
            );
        }
        let connection = [
            ConnectionState::Init,
            ConnectionState::Connecting { since: t },
            ConnectionState::Connected { since: t },
            ConnectionState::Hold { since: t },
            ConnectionState::Disconnected {
                since: t,
                reason: "hangup".into(),
            },
        ];
        for s in connection {
            let json = serde_json::to_string(&s).expect("write");
            assert_eq!(
                serde_json::from_str::<ConnectionState>(&json).ok(),
                Some(s),
                "{json}"
            );
        }
        // The wire's own shape, with a field other versions may add.
        assert_eq!(
            serde_json::from_str::<ContactState>(r#"{"name":"connected","since":5,"new":1}"#).ok(),
            Some(ContactState::Connected { since: Millis(5) })
        );
        for bad in [
            r#"{"name":"incoming","since":5}"#,
            r#"{"name":"ended","since":5}"#,
            r#"{"name":"connected"}"#,
            r#"{"name":"connected","since":"soon"}"#,
            r#"{"name":"ringing","since":5}"#,
            r#"{"since":5}"#,
            r#""connected""#,
        ] {
            assert!(serde_json::from_str::<ContactState>(bad).is_err(), "{bad}");
        }
        for bad in [
            r#"{"name":"disconnected","since":5}"#,
            r#"{"name":"hold"}"#,
            r#"{"name":"held","since":1}"#,
        ] {
            assert!(
                serde_json::from_str::<ConnectionState>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
