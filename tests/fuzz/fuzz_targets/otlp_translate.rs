//! See `checks::otlp_translate` (tests/fuzz/checks.rs) for what this feeds and asserts.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::otlp_translate(data));
