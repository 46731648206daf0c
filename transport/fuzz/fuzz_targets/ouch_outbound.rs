//! Fuzzes the OUCH decoder of server messages: see
//! `lockstep_transport::fuzz_checks::ouch_outbound` for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lockstep_transport::fuzz_checks::ouch_outbound(data));
