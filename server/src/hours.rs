//! Hours of operation: per weekday opening intervals in a queue's time zone.
//! A contact arriving outside them is told the queue is closed.

use std::collections::BTreeMap;

use chrono::{Datelike, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use protocol::Millis;

/// Opening hours of a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Hours {
    tz: Tz,
    /// Minutes since local midnight, `[open, close)`, per weekday (Mon = 0).
    days: [Option<(u32, u32)>; 7],
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Hours {
    /// Parses a time zone name and a map like `mon = "09:00-18:00"`.
    pub fn parse(tz: &str, days: &BTreeMap<String, String>) -> Result<Hours, String> {
        let tz: Tz = tz
            .parse()
            .map_err(|_| format!("unknown time zone `{tz}`"))?;
        let mut out = [None; 7];
        for (day, span) in days {
            let Some(i) = DAYS.iter().position(|d| d == day) else {
                return Err(format!("unknown day `{day}` (use mon..sun)"));
            };
            out[i] = Some(parse_span(span).ok_or_else(|| {
                format!("`{day} = \"{span}\"`: expected HH:MM-HH:MM with open before close")
            })?);
        }
        Ok(Hours { tz, days: out })
    }

    /// Whether the queue is open at `now`.
    pub fn is_open(&self, now: Millis) -> bool {
        let Some(utc) = chrono::DateTime::from_timestamp_millis(now.0 as i64) else {
            return false;
        };
        let local = self.tz.from_utc_datetime(&utc.naive_utc());
        let day = match local.weekday() {
            Weekday::Mon => 0,
            Weekday::Tue => 1,
            Weekday::Wed => 2,
            Weekday::Thu => 3,
            Weekday::Fri => 4,
            Weekday::Sat => 5,
            Weekday::Sun => 6,
        };
        let minute = local.hour() * 60 + local.minute();
        matches!(self.days[day], Some((open, close)) if minute >= open && minute < close)
    }
}

fn parse_span(span: &str) -> Option<(u32, u32)> {
    let (a, b) = span.split_once('-')?;
    let (open, close) = (parse_hm(a.trim())?, parse_hm(b.trim())?);
    (open < close).then_some((open, close))
}

fn parse_hm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || h == 24 && m == 0)).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Millis {
        Millis(
            chrono::DateTime::parse_from_rfc3339(rfc3339)
                .expect("date")
                .timestamp_millis() as u64,
        )
    }

    fn tokyo_weekdays() -> Hours {
        let days = DAYS[..5]
            .iter()
            .map(|d| (d.to_string(), "09:00-18:00".to_string()))
            .collect();
        Hours::parse("Asia/Tokyo", &days).expect("valid")
    }

    #[test]
    fn open_and_closed_follow_the_local_clock() {
        let h = tokyo_weekdays();
        // 2026-11-24 is a Tuesday. 00:30 UTC = 09:30 in Tokyo.
        assert!(h.is_open(at("2026-11-24T00:30:00Z")));
        // 08:59 Tokyo.
        assert!(!h.is_open(at("2026-11-23T23:59:00Z")));
        // 18:00 Tokyo is closing time.
        assert!(!h.is_open(at("2026-11-24T09:00:00Z")));
        // Saturday 12:00 Tokyo.
        assert!(!h.is_open(at("2026-11-28T03:00:00Z")));
    }

    #[test]
    fn malformed_spans_are_refused() {
        for bad in ["9-5", "18:00-09:00", "09:00-24:30", "09:60-10:00", "x"] {
            let days = BTreeMap::from([("mon".to_string(), bad.to_string())]);
            assert!(Hours::parse("UTC", &days).is_err(), "{bad}");
        }
        let days = BTreeMap::from([("funday".to_string(), "09:00-10:00".to_string())]);
        assert!(Hours::parse("UTC", &days).is_err());
        let whole_day = BTreeMap::from([("mon".to_string(), "00:00-24:00".to_string())]);
        assert!(Hours::parse("UTC", &whole_day).is_ok());
    }
}
