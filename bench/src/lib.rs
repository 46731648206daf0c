//! `lockstep-bench`: the flow CSV v1 format, synthetic flow generators, the
//! LOBSTER importer and the engine benchmarks. It owns everything that turns
//! order flow (written by hand, generated from a seed, or imported from real
//! market data) into the engine commands that replays and benchmarks apply.

#![forbid(unsafe_code)]

pub mod engine_latency;
pub mod flow;
pub mod generate;
pub mod lobster;
pub mod matchcore_compare;

pub use flow::{
    engine_config_for, flow_to_string, load_flow, parse_record, FlowError, FlowMapper, FlowReader,
    FlowRecord, FlowWriter, LoadedFlow, FLOW_ACCOUNT, FLOW_HEADER, FLOW_SESSION,
};
pub use generate::{generate, generate_commands, FlowGenerator, Mix, SplitMix64};
pub use lobster::{
    import_lobster, ImportError, ImportStats, KindCounts, FRESH_ORDER_ID_BASE, LOBSTER_INSTRUMENT,
};
