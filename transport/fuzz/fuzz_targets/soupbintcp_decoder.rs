//! Fuzzes the SoupBinTCP stream decoder: see
//! `lockstep_transport::fuzz_checks::soupbintcp_decoder` for what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| lockstep_transport::fuzz_checks::soupbintcp_decoder(data));
