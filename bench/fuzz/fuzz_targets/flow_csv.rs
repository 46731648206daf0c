//! Fuzzes the flow CSV reader and loader: see
//! `lockstep_bench::fuzz_checks::flow_csv` for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lockstep_bench::fuzz_checks::flow_csv(data));
