//! `lockstep-tests`: integration tests across crates live in `tests/tests/`.
