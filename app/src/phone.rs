//! Phone numbers as agents type them. An agent in Japan types
//! 03-1234-5678, one in the US (415) 555-0100: the backend's country
//! calling code (`country_code` in the agent's configuration) says which
//! country a number without `+` belongs to, and [`to_e164`] turns it into
//! the E.164 number the backend dials. The form's examples come from the
//! same region ([`examples`]), so a +81 form never shows a US number.
//!
//! Deliberately small: the national (trunk) prefix rules of the regions
//! agents are likely to work in, not a numbering plan database. A number
//! that does not fit is refused here with a sentence, before any request.

/// Why a typed number cannot be dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// Something other than digits, spaces, `-`, `.`, `(`, `)` and a
    /// leading `+`.
    NotANumber,
    /// No `+` and no region to read it in.
    NeedsCountryCode,
    /// Too short or too long for E.164 once normalised.
    WrongLength,
}

impl NumberError {
    /// The agent's sentence (an English key for `tr`).
    pub fn sentence(self) -> &'static str {
        match self {
            NumberError::NotANumber => {
                "That is not a phone number: use digits only, as in the example."
            }
            NumberError::NeedsCountryCode => "Type the number with + and the country code.",
            NumberError::WrongLength => "That number has too few or too many digits.",
        }
    }
}

/// `typed` as an E.164 number (`+` and digits), reading a number without
/// `+` as a national number of `country` (a country calling code).
pub fn to_e164(typed: &str, country: Option<u16>) -> Result<String, NumberError> {
    let typed = typed.trim();
    let (plus, rest) = match typed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, typed),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '\u{3000}' => {}
            _ => return Err(NumberError::NotANumber),
        }
    }
    if digits.is_empty() {
        return Err(NumberError::NotANumber);
    }
    let e164 = if plus {
        format!("+{digits}")
    } else {
        let cc = country.ok_or(NumberError::NeedsCountryCode)?;
        match international(cc, &digits) {
            Some(intl) => format!("+{intl}"),
            None => format!("+{cc}{}", national(cc, &digits)?),
        }
    };
    if protocol::endpoint::is_e164(&e164) {
        Ok(e164)
    } else {
        Err(NumberError::WrongLength)
    }
}

/// The digits after the region's international call prefix, when `digits`
/// starts with it (011 in the North American plan, 010 in Japan, 00 in
/// most other countries).
fn international(cc: u16, digits: &str) -> Option<&str> {
    let prefix = match cc {
        1 => "011",
        81 => "010",
        61 => "0011",
        _ => "00",
    };
    digits.strip_prefix(prefix).filter(|d| !d.is_empty())
}

/// The national significant number: the region's trunk prefix dropped
/// (a leading 0 in most countries; a leading 1 of an 11-digit North
/// American number). Italy keeps its 0; a few countries have no prefix.
fn national(cc: u16, digits: &str) -> Result<String, NumberError> {
    let n = match cc {
        1 => {
            let ten = if digits.len() == 11 {
                digits.strip_prefix('1').unwrap_or(digits)
            } else {
                digits
            };
            if ten.len() != 10 {
                return Err(NumberError::WrongLength);
            }
            ten
        }
        // No trunk prefix: Italy (the 0 is part of the number), Spain,
        // Denmark, Norway, Greece, Portugal, Luxembourg, Czechia, Slovakia.
        39 | 34 | 45 | 47 | 30 | 351 | 352 | 420 | 421 => digits,
        _ => digits.strip_prefix('0').unwrap_or(digits),
    };
    Ok(n.to_owned())
}

/// Examples of a number in the region of `country`: how it is written
/// nationally (none for regions without a known format) and in E.164.
pub fn examples(country: Option<u16>) -> (Option<&'static str>, String) {
    match country {
        Some(81) => (Some("03-1234-5678"), "+81 3 1234 5678".into()),
        Some(1) => (Some("(415) 555-0100"), "+1 415 555 0100".into()),
        Some(44) => (Some("020 7946 0018"), "+44 20 7946 0018".into()),
        Some(cc) => (None, format!("+{cc} …")),
        None => (None, "+…".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japanese_national_numbers_become_e164() {
        let jp = Some(81);
        assert_eq!(to_e164("03-1234-5678", jp).as_deref(), Ok("+81312345678"));
        assert_eq!(to_e164("090 1234 5678", jp).as_deref(), Ok("+819012345678"));
        assert_eq!(to_e164("(03) 1234-5678", jp).as_deref(), Ok("+81312345678"));
        assert_eq!(
            to_e164("+81 3 1234 5678", jp).as_deref(),
            Ok("+81312345678")
        );
        assert_eq!(
            to_e164("010 1 415 555 0100", jp).as_deref(),
            Ok("+14155550100")
        );
    }

    #[test]
    fn north_american_numbers_become_e164() {
        let us = Some(1);
        assert_eq!(to_e164("(415) 555-0100", us).as_deref(), Ok("+14155550100"));
        assert_eq!(to_e164("1-415-555-0100", us).as_deref(), Ok("+14155550100"));
        assert_eq!(to_e164("415.555.0100", us).as_deref(), Ok("+14155550100"));
        assert_eq!(
            to_e164("011 81 3 1234 5678", us).as_deref(),
            Ok("+81312345678")
        );
        assert_eq!(to_e164("555-0100", us), Err(NumberError::WrongLength));
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        assert_eq!(to_e164("call me", Some(81)), Err(NumberError::NotANumber));
        assert_eq!(to_e164("", Some(81)), Err(NumberError::NotANumber));
        assert_eq!(to_e164("+", Some(81)), Err(NumberError::NotANumber));
        assert_eq!(
            to_e164("03-1234-5678", None),
            Err(NumberError::NeedsCountryCode)
        );
        assert_eq!(
            to_e164("+81 3 1234 5678", None).as_deref(),
            Ok("+81312345678")
        );
        assert_eq!(to_e164("0", Some(81)), Err(NumberError::WrongLength));
        assert_eq!(
            to_e164(&"9".repeat(20), Some(81)),
            Err(NumberError::WrongLength)
        );
    }

    #[test]
    fn examples_are_in_the_agents_region() {
        assert_eq!(examples(Some(81)).0, Some("03-1234-5678"));
        assert!(examples(Some(81)).1.starts_with("+81"));
        assert!(examples(Some(1)).1.starts_with("+1 "));
        assert!(!examples(None).1.contains("415"));
    }
}
