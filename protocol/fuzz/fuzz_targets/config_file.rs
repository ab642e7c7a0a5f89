//! Any text as the backend's configuration file: a config or an error
//! with a location, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = server::config::Config::parse(text, "fuzz.toml");
    }
});
