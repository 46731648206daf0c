//! `lockstep-bench`: the flow CSV v1 format, synthetic flow generators, the
//! LOBSTER importer and the engine benchmarks.
