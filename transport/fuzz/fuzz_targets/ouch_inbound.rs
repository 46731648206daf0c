//! Fuzzes the OUCH decoder of client messages: see
//! `lockstep_transport::fuzz_checks::ouch_inbound` for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lockstep_transport::fuzz_checks::ouch_inbound(data));
