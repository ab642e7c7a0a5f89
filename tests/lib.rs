//! Cross-crate integration tests live in `tests/*.rs` beside this file.
