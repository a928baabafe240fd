//! Fuzz target: see `kuzet_fuzz::params` for the input and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kuzet_fuzz::params::check(data));
