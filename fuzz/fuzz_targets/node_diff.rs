//! Fuzz target `node_diff`: see `checks::node_diff` for what it asserts.
#![no_main]

// Each target uses one of the checks.
#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::node_diff(data));
