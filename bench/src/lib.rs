//! `lockstep-bench`: the flow CSV v1 format, synthetic flow generators, the
//! LOBSTER importer and the engine benchmarks. It owns everything that turns
//! order flow (written by hand, generated from a seed, or imported from real
//! market data) into the engine commands that replays and benchmarks apply,
//! and the load generator of `lockstep bench`, which drives a whole server
//! over TCP (`load`, `driver`, `session_flow`, `echo`, `latency`, `hgrm`,
//! `report`, `plot`, `progress`), and `lockstep bench --replay`, which
//! replays a captured order log through a whole server over TCP and checks
//! it against an offline replay (`replay`, `replay_source`, `replay_plan`,
//! `replay_drive`).

// Unsafe code is refused everywhere but in the two modules that make system
// calls std does not wrap (`sys`: ppoll and the timer slack; `echo_uring`:
// io_uring submissions), each of which allows it for itself.
#![deny(unsafe_code)]

mod driver;
pub mod echo;
mod echo_uring;
pub mod engine_latency;
pub mod flow;
pub mod fuzz_checks;
pub mod generate;
pub mod hgrm;
pub mod latency;
pub mod load;
pub mod lobster;
pub mod matchcore_compare;
pub mod plot;
pub mod progress;
pub mod replay;
mod replay_drive;
mod replay_plan;
pub mod replay_source;
pub mod report;
pub mod session_flow;
mod sys;
mod text;

pub use driver::MESSAGES_PER_RUN_MAX;
pub use echo::{EchoBackend, EchoServer, EchoStats};
pub use flow::{
    engine_config_for, flow_to_string, load_flow, parse_record, FlowError, FlowMapper, FlowReader,
    FlowRecord, FlowWriter, LoadedFlow, FLOW_ACCOUNT, FLOW_HEADER, FLOW_SESSION,
};
pub use generate::{generate, generate_commands, FlowGenerator, Mix, SplitMix64};
pub use load::{
    run_load, run_load_with_progress, Credentials, InProcessServer, KillOutcome, LoadOptions,
    LoadReport, Pacing, ReplicaKill, ServerOutcome, Target, TargetKind,
};
pub use lobster::{
    import_lobster, ImportError, ImportStats, KindCounts, FRESH_ORDER_ID_BASE, LOBSTER_INSTRUMENT,
};
pub use replay::{replay_text_report, run_replay, ReplayOptions, ReplayReport, ReplyCounts, Speed};
pub use report::{
    backend_ratios, baseline_ratios, summary_json, text_report, write_reports, BaselineRatio,
};
