//! The CCP's phone-number reading (app/src/phone.rs), tested natively (the
//! app itself builds only for wasm): the module's own tests run here, plus
//! numbers as agents in Japan and the US type them, read against the E.164
//! numbers their national formats stand for (ITU-T E.164; Japan's trunk
//! prefix 0, the North American 1).

#[path = "../../app/src/phone.rs"]
#[allow(dead_code)]
mod phone;

#[test]
fn national_numbers_are_read_in_the_agents_region() {
    assert_eq!(
        phone::to_e164("03-1234-5678", Some(81)),
        Ok("+81312345678".into())
    );
    assert_eq!(
        phone::to_e164("(415) 555-0100", Some(1)),
        Ok("+14155550100".into())
    );
    assert_eq!(
        phone::to_e164("+44 20 7946 0000", Some(81)),
        Ok("+442079460000".into())
    );
    assert!(
        phone::to_e164("03-1234-5678", None).is_err(),
        "no region, no guess"
    );
    assert!(phone::to_e164("call me", Some(81)).is_err());
}
