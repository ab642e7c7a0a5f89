//! The CCP's display helpers, tested natively (the app itself builds only
//! for wasm): the module's own tests run here, plus the figures the call
//! quality line shows, checked against what an agent should read.

#[path = "../../app/src/format.rs"]
#[allow(dead_code)]
mod format;

#[test]
fn the_quality_line_reads_like_rusts_own_decimal_formatting() {
    assert_eq!(format::decimal(4.36, 1), "4.4");
    assert_eq!(format::decimal(0.049, 1), "0.0");
    assert_eq!(format::decimal(2.5, 1), "2.5");
    assert_eq!(format::decimal(19.6, 0), "20");
    assert_eq!(format::duration(61_000), "1:01");
}
