#![no_main]

#[path = "../../tests/support/fuzz_checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_query_parse(data));
