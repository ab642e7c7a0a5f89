//! Endpoints: where a call can go. Quick connects are named endpoints the
//! backend configures (an agent, a queue or a phone number); an ad-hoc
//! outbound number is an endpoint too.

use serde::{Deserialize, Serialize};

/// What an endpoint reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// An external phone number (E.164).
    PhoneNumber,
    /// Another agent, rung directly.
    Agent,
    /// A queue; routing picks the agent.
    Queue,
}

/// A callable destination, as listed by `list_quick_connects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Stable id; for ad-hoc numbers `phone:<number>`.
    pub id: String,
    /// What it reaches.
    pub kind: EndpointKind,
    /// Display name.
    pub name: String,
    /// The number, for `phone_number` endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// The agent's username, for `agent` endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The queue id, for `queue` endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

impl Endpoint {
    /// An ad-hoc endpoint for an external number (like Streams'
    /// `Endpoint.byPhoneNumber`). The number is checked where it is used.
    pub fn phone_number(number: &str) -> Endpoint {
        Endpoint {
            id: format!("phone:{number}"),
            kind: EndpointKind::PhoneNumber,
            name: number.to_owned(),
            phone_number: Some(number.to_owned()),
            agent: None,
            queue: None,
        }
    }
}

/// Whether `number` is an E.164 number: `+` then 6 to 15 digits.
pub fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `digits` is a valid DTMF string: 1 to 64 of `0-9 * # A-D ,`
/// (a comma is a pause, as in Streams' `sendDigits`).
pub fn is_dtmf(digits: &str) -> bool {
    (1..=64).contains(&digits.len())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b"*#ABCD,".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_accepts_plus_and_digits_only() {
        assert!(is_e164("+819012345678"));
        assert!(!is_e164("819012345678"));
        assert!(!is_e164("+81-90"));
        assert!(!is_e164("+1234"));
        assert!(!is_e164("+1234567890123456"));
    }

    #[test]
    fn dtmf_accepts_keypad_characters() {
        assert!(is_dtmf("12*#A,9"));
        assert!(!is_dtmf(""));
        assert!(!is_dtmf("12x"));
        assert!(!is_dtmf(&"1".repeat(65)));
    }
}
