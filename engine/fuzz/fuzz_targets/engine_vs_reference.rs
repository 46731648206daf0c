//! Fuzzes the engine against its reference model: see
//! `lockstep_engine::fuzz_checks::engine_vs_reference` for the input format
//! and what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lockstep_engine::fuzz_checks::engine_vs_reference(data));
