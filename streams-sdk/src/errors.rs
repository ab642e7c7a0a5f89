//! The one list of error codes every client reports: the wire's
//! [`ErrorCode`] (which the Rust core uses for its own failures too, such
//! as `timeout`) followed by the codes only the JS SDK and the Streams
//! facade can produce (a page-side failure has no wire code). The JS SDK's
//! `ERROR_CODES` is generated from [`js_codes`] (`cargo xtask sdk-types`),
//! and a test fails when the committed file differs, so the lists cannot
//! drift. The SDK reports any code outside the list as `unknown`.

use protocol::error::ErrorCode;

/// Codes raised in the page (the JS SDK, the facade) or by the CCP's
/// softphone, with what each means.
pub const SDK_CODES: &[(&str, &str)] = &[
    (
        "init_timeout",
        "the CCP or backend did not become ready in time",
    ),
    (
        "version_mismatch",
        "the CCP speaks another frame protocol version",
    ),
    ("not_logged_in", "no agent is logged in to the CCP"),
    ("popup_blocked", "the browser blocked the login popup"),
    ("login_cancelled", "the login popup was closed"),
    ("terminated", "the session was terminated"),
    ("frame_lost", "the CCP stopped answering"),
    (
        "not_initialized",
        "the facade's initCCP has not been called",
    ),
    (
        "not_supported",
        "a Streams API Switchboard does not offer (chat, task...)",
    ),
    (
        "microphone_denied",
        "the softphone may not use the microphone",
    ),
    ("microphone_missing", "the softphone found no microphone"),
    (
        "microphone_removed",
        "the softphone's microphone was removed",
    ),
    (
        "engine_failed",
        "the softphone's audio engine did not start",
    ),
];

/// Every code a client may report, wire codes first, in a stable order.
pub fn js_codes() -> Vec<&'static str> {
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .chain(SDK_CODES.iter().map(|(c, _)| *c))
        .collect()
}

/// The generated block of `streams-sdk/js/switchboard.js`, between
/// [`JS_BEGIN`] and [`JS_END`].
pub fn js_block() -> String {
    let mut out = String::from(JS_BEGIN);
    out.push_str("\nexport const ERROR_CODES = Object.freeze([\n");
    for chunk in js_codes().chunks(6) {
        let line: Vec<String> = chunk.iter().map(|c| format!("'{c}'")).collect();
        out.push_str("  ");
        out.push_str(&line.join(", "));
        out.push_str(",\n");
    }
    out.push_str("]);\n");
    out.push_str(JS_END);
    out
}

/// Where the generated list starts in switchboard.js.
pub const JS_BEGIN: &str = "// BEGIN ERROR_CODES: generated from protocol/src/error.rs and \
streams-sdk/src/errors.rs by `cargo xtask sdk-types`; do not edit.\n\
/** Every error code the SDK reports (anything else becomes `unknown`). @type {ReadonlyArray<string>} */";
/// Where it ends.
pub const JS_END: &str = "// END ERROR_CODES";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_include_the_wire_codes() {
        let all = js_codes();
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "a code is listed twice");
        for c in &all {
            assert!(
                !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
        }
        for c in ErrorCode::ALL {
            assert!(all.contains(&c.as_str()), "{c}");
        }
        assert!(all.contains(&"timeout") && all.contains(&"unknown"));
    }

    /// The JS SDK's list is the Rust list. `SWITCHBOARD_BLESS=1` rewrites
    /// the file (what `cargo xtask sdk-types` does).
    #[test]
    fn the_js_sdk_list_is_the_rust_list() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/js/switchboard.js");
        let text = std::fs::read_to_string(path).expect("switchboard.js");
        let start = text.find("// BEGIN ERROR_CODES");
        let end = text.find(JS_END).map(|e| e + JS_END.len());
        let (Some(start), Some(end)) = (start, end) else {
            panic!("switchboard.js has no generated ERROR_CODES block");
        };
        let block = js_block();
        if std::env::var_os("SWITCHBOARD_BLESS").is_some() && text[start..end] != block {
            let fresh = format!("{}{}{}", &text[..start], block, &text[end..]);
            std::fs::write(path, fresh).expect("writes switchboard.js");
            return;
        }
        assert_eq!(
            &text[start..end],
            block,
            "switchboard.js's ERROR_CODES differ from the Rust list: run `cargo xtask sdk-types`"
        );
        // And the block is really what the module exports (one string per code).
        let listed: Vec<&str> = text[start..end].split('\'').skip(1).step_by(2).collect();
        assert_eq!(listed, js_codes());
    }
}
