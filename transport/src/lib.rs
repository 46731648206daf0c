//! `lockstep-transport` owns everything between a client's socket and the
//! sequencer: the wire codecs ([`soupbintcp`] frames a TCP byte stream into
//! SoupBinTCP 4.0 packets, [`ouch`] decodes and encodes the OUCH 4.2 messages
//! they carry, byte-exact with Nasdaq's specifications and documented in
//! `docs/protocol.md`), the gateway (a backend-neutral [`gateway_core`] with
//! its sessions, limits and OUCH translation, driven by a mio or an io_uring
//! event loop), and the client library ([`client`], [`client_nonblocking`]).

pub mod ascii_field;
pub mod client;
pub mod client_nonblocking;
pub mod event_inbox;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod gateway_config;
pub mod gateway_core;
pub mod gateway_mio;
pub mod gateway_runtime;
pub mod gateway_uring;
pub mod ouch;
pub mod ouch_adapter;
pub mod ouch_publisher;
pub mod server;
pub mod session_output_log;
pub mod soupbintcp;
pub mod token_bucket;
