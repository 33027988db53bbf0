//! Fuzz target `range_proof`: see `checks::range_proof` for what it asserts.
#![no_main]

// Each target uses one of the checks.
#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::range_proof(data));
