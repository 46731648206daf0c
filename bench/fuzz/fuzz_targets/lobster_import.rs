//! Fuzzes the LOBSTER importer: see
//! `lockstep_bench::fuzz_checks::lobster_import` for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lockstep_bench::fuzz_checks::lobster_import(data));
