//! Fuzzes a gateway connection end to end without sockets: see
//! `lockstep_transport::fuzz_checks::gateway_session` for the input format
//! and what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lockstep_transport::fuzz_checks::gateway_session(data));
