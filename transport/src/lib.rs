//! `lockstep-transport` owns Lockstep's wire codecs and, later, the gateway
//! servers and the client library (issue 4). So far it holds the codecs only:
//! [`soupbintcp`] frames a TCP byte stream into SoupBinTCP 4.0 packets, and
//! [`ouch`] decodes and encodes the OUCH 4.2 messages those packets carry. Both
//! are byte-exact with Nasdaq's specifications (Wireshark's dissectors are the
//! arbiter of layout) and are documented in `docs/protocol.md`.

pub mod ascii_field;
pub mod ouch;
pub mod soupbintcp;
