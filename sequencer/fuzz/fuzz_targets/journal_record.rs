//! Fuzzes the journal record and header codecs: see
//! `lockstep_sequencer::fuzz_checks::journal_record` for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lockstep_sequencer::fuzz_checks::journal_record(data));
