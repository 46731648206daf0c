//! Fuzzes journal recovery: see
//! `lockstep_sequencer::fuzz_checks::journal_reader` for the input format
//! and what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lockstep_sequencer::fuzz_checks::journal_reader(data));
