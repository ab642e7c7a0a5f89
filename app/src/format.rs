//! Small display helpers.

/// `m:ss` (or `h:mm:ss`) from milliseconds.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// `v` with `places` decimals (at most 3), rounded half away from zero.
/// Integer arithmetic on purpose: `format!("{:.1}", f64)` links about
/// 11 KB of float-printing code into the CCP (measured with twiggy).
pub fn decimal(v: f64, places: u32) -> String {
    let places = places.min(3);
    let scale = 10_i64.pow(places);
    if !v.is_finite() {
        return "–".to_owned();
    }
    let scaled = (v * scale as f64).round() as i64;
    let sign = if scaled < 0 { "-" } else { "" };
    let abs = scaled.unsigned_abs();
    let (whole, frac) = (abs / scale as u64, abs % scale as u64);
    if places == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{frac:0width$}", width = places as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimals_match_rusts_own_formatting_for_ordinary_values() {
        for (v, places) in [
            (4.26, 1),
            (3.04, 1),
            (0.0, 1),
            (12.96, 1),
            (0.123, 3),
            (0.9996, 3),
            (27.4, 0),
            (-1.26, 1),
            (100.0, 2),
        ] {
            let ours = decimal(v, places);
            let std = format!("{v:.prec$}", prec = places as usize);
            // Rust rounds half to even on exact binary ties; ours rounds half
            // away from zero. None of these values is an exact tie.
            assert_eq!(ours, std, "{v} to {places}");
        }
        assert_eq!(decimal(f64::NAN, 1), "–");
    }
}
