//! The reports of `lockstep bench` over a set of runs: the text table (one
//! row per run and offered load: p50, p90, p99, p99.9, p99.99 and max in
//! microseconds, and the achieved rate, for order to Accepted, order to
//! Executed and cancel to Canceled), Lockstep's p50 and p99 as ratios to the
//! echo baseline run of the same I/O backend at the same load and of its
//! io_uring gateway to its mio gateway, and [`write_reports`], which writes
//! the `.hgrm` files, `summary.json` and `latency.png` into a directory.

use crate::echo::EchoBackend;
use crate::hgrm::percentile_distribution;
use crate::latency::Percentiles;
use crate::load::{KillOutcome, LoadReport, Pacing, TargetKind};
use crate::plot::{write_latency_plot, PlotSeries};
use crate::session_flow::{CANCEL_PER_MILLE, CROSSING_PER_MILLE};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// "10k", "2.5k", "1M" or "750".
pub fn rate_text(rate: u64) -> String {
    let (value, suffix) = if rate >= 1_000_000 {
        (rate as f64 / 1e6, "M")
    } else if rate >= 1_000 {
        (rate as f64 / 1e3, "k")
    } else {
        (rate as f64, "")
    };
    let text = format!("{value:.3}");
    format!(
        "{}{suffix}",
        text.trim_end_matches('0').trim_end_matches('.')
    )
}

/// "10k/s" open loop, "K=4 closed" closed loop.
pub fn pacing_text(pacing: Pacing) -> String {
    match pacing {
        Pacing::OpenLoop { rate_per_s } => format!("{}/s", rate_text(rate_per_s)),
        Pacing::ClosedLoop { outstanding } => format!("closed K={outstanding}"),
    }
}

/// A Lockstep (or external) run over its echo baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct BaselineRatio {
    pub run: String,
    pub baseline: String,
    pub p50: f64,
    pub p99: f64,
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Pairs each run with the echo run of its I/O backend family, pacing and
/// session count, and compares their order-to-Accepted latency.
pub fn baseline_ratios(runs: &[LoadReport]) -> Vec<BaselineRatio> {
    runs.iter()
        .filter_map(|run| {
            let backend = run.target.baseline()?;
            let baseline = runs.iter().find(|other| {
                other.target == TargetKind::Echo(backend)
                    && other.pacing == run.pacing
                    && other.sessions == run.sessions
            })?;
            let ours = Percentiles::of(&run.accepted);
            let theirs = Percentiles::of(&baseline.accepted);
            Some(BaselineRatio {
                run: run.label.clone(),
                baseline: baseline.label.clone(),
                p50: ratio(ours.p50_ns, theirs.p50_ns),
                p99: ratio(ours.p99_ns, theirs.p99_ns),
            })
        })
        .collect()
}

/// Each Lockstep io_uring run over the Lockstep mio run at the same load,
/// for order to Accepted: the two gateway backends side by side.
pub fn backend_ratios(runs: &[LoadReport]) -> Vec<BaselineRatio> {
    use lockstep_transport::gateway_config::IoBackend;
    runs.iter()
        .filter(|run| run.target == TargetKind::Lockstep(IoBackend::Uring))
        .filter_map(|run| {
            let mio = runs.iter().find(|other| {
                other.target == TargetKind::Lockstep(IoBackend::Mio)
                    && other.pacing == run.pacing
                    && other.sessions == run.sessions
            })?;
            let uring = Percentiles::of(&run.accepted);
            let mio_row = Percentiles::of(&mio.accepted);
            Some(BaselineRatio {
                run: run.label.clone(),
                baseline: mio.label.clone(),
                p50: ratio(uring.p50_ns, mio_row.p50_ns),
                p99: ratio(uring.p99_ns, mio_row.p99_ns),
            })
        })
        .collect()
}

fn micros(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1_000.0)
}

fn table(text: &mut String, title: &str, rows: &[(&LoadReport, &Histogram<u64>)]) {
    if rows.iter().all(|(_, histogram)| histogram.is_empty()) {
        return;
    }
    let _ = writeln!(text, "\n{title} (µs)");
    let _ = writeln!(
        text,
        "{:<22} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "run", "offered", "p50", "p90", "p99", "p99.9", "p99.99", "max", "achieved/s"
    );
    for (run, histogram) in rows {
        if histogram.is_empty() {
            continue;
        }
        let row = Percentiles::of(histogram);
        let _ = writeln!(
            text,
            "{:<22} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12.0}",
            run.label,
            pacing_text(run.pacing),
            micros(row.p50_ns),
            micros(row.p90_ns),
            micros(row.p99_ns),
            micros(row.p999_ns),
            micros(row.p9999_ns),
            micros(row.max_ns),
            run.achieved_rate
        );
    }
}

/// The report as text: the runs' setting, three latency tables, the ratios
/// to the echo baselines and each run's counts.
pub fn text_report(runs: &[LoadReport]) -> String {
    let mut text = String::new();
    if let Some(first) = runs.first() {
        let mode = match first.pacing {
            Pacing::OpenLoop { .. } => "open loop (latency from each message's intended send time)",
            Pacing::ClosedLoop { .. } => "closed loop",
        };
        let _ = writeln!(
            text,
            "lockstep bench: {} sessions, {mode}, {:.1} s measured after {:.1} s warm-up",
            first.sessions,
            first.duration.as_secs_f64(),
            first.warmup.as_secs_f64()
        );
        let _ = writeln!(
            text,
            "flow: AMZN; {}% resting GTC orders, {}% crossing IOC orders, {}% cancels; echo runs send Enter Orders only",
            (1000 - CANCEL_PER_MILLE - CROSSING_PER_MILLE) / 10,
            CROSSING_PER_MILLE / 10,
            CANCEL_PER_MILLE / 10
        );
    }
    let all: Vec<_> = runs.iter().map(|run| (run, &run.accepted)).collect();
    table(&mut text, "Order -> Accepted", &all);
    let executed: Vec<_> = runs.iter().map(|run| (run, &run.executed)).collect();
    table(&mut text, "Order -> Executed, as the taker", &executed);
    let canceled: Vec<_> = runs.iter().map(|run| (run, &run.canceled)).collect();
    table(&mut text, "Cancel -> Canceled", &canceled);
    let ratios = baseline_ratios(runs);
    if !ratios.is_empty() {
        let _ = writeln!(
            text,
            "\nOrder -> Accepted over the echo baseline (same I/O backend, same load)"
        );
        for ratio in &ratios {
            let _ = writeln!(
                text,
                "{:<22} over {:<20} p50 {:>6.2}x   p99 {:>6.2}x",
                ratio.run, ratio.baseline, ratio.p50, ratio.p99
            );
        }
    }
    let backends = backend_ratios(runs);
    if !backends.is_empty() {
        let _ = writeln!(
            text,
            "\nOrder -> Accepted, the io_uring gateway over the mio gateway (same load)"
        );
        for ratio in &backends {
            let _ = writeln!(
                text,
                "{:<22} over {:<20} p50 {:>6.2}x   p99 {:>6.2}x",
                ratio.run, ratio.baseline, ratio.p50, ratio.p99
            );
        }
    }
    let _ = writeln!(text, "\nRuns");
    for run in runs {
        let counts = &run.counts;
        let lag = Percentiles::of(&run.send_lag);
        let _ = write!(
            text,
            "{:<22} {} orders ({} IOC), {} cancels; {} accepted, {} rejected, {} executions, {} unanswered; driver lag p99 {} µs",
            run.label,
            counts.enters_sent,
            counts.iocs_sent,
            counts.cancels_sent,
            counts.accepted,
            counts.rejected,
            counts.executions,
            run.unanswered,
            micros(lag.p99_ns)
        );
        if let Some(server) = &run.server {
            let _ = write!(
                text,
                "; {} commands, state hash {}, {} replicas {}",
                server.last_seq,
                server
                    .state_hash
                    .map_or_else(|| "none".to_string(), |hash| format!("{hash:016x}")),
                server.replicas,
                if server.replicas_agree {
                    "agree"
                } else {
                    "DISAGREE"
                }
            );
            if let Some(failure) = &server.failure {
                let _ = write!(text, "; server failure: {failure}");
            }
        }
        if run.capped {
            let _ = write!(text, "; stopped at the per-run message cap");
        }
        text.push('\n');
    }
    for run in runs {
        if let Some(kill) = &run.kill {
            kill_text(&mut text, run, kill);
        }
    }
    text
}

/// The failover section of a run with a replica kill.
fn kill_text(text: &mut String, run: &LoadReport, kill: &KillOutcome) {
    let _ = writeln!(
        text,
        "\nReplica kill ({}): replica {} ({}) killed {:.3} s into the run, at published seq {}; it panicked {} time(s), was fenced, rebuilt {} time(s) and rejoined",
        run.label,
        kill.replica,
        if kill.was_leader {
            "the leader: egress was publishing from it"
        } else {
            "egress was between leaders"
        },
        kill.at.as_secs_f64(),
        kill.published_seq_at_kill,
        kill.replica_panics,
        kill.replica_rebuilds
    );
    let _ = writeln!(
        text,
        "gaps seen by the clients: {}   duplicates seen by the clients: {}   ({} match numbers, each seen by both sides)",
        kill.gaps, kill.duplicates, run.match_audit.match_number_max
    );
    let _ = writeln!(
        text,
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "Order -> Accepted (µs)", "orders", "p50", "p90", "p99", "p99.9", "max"
    );
    let window = format!(
        "kill window ({:.0} ms before, {:.0} ms after)",
        kill.window_before.as_secs_f64() * 1e3,
        kill.window_after.as_secs_f64() * 1e3
    );
    for (name, histogram) in [
        (window.as_str(), &kill.accepted_kill_window),
        ("steady state (the rest)", &kill.accepted_steady),
    ] {
        let row = Percentiles::of(histogram);
        let _ = writeln!(
            text,
            "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            row.count,
            micros(row.p50_ns),
            micros(row.p90_ns),
            micros(row.p99_ns),
            micros(row.p999_ns),
            micros(row.max_ns)
        );
    }
}

fn kill_json(run: &LoadReport) -> Value {
    match &run.kill {
        None => Value::Null,
        Some(kill) => json!({
            "replica": kill.replica,
            "was_leader": kill.was_leader,
            "published_seq_at_kill": kill.published_seq_at_kill,
            "at_s": kill.at.as_secs_f64(),
            "window_before_s": kill.window_before.as_secs_f64(),
            "window_after_s": kill.window_after.as_secs_f64(),
            "replica_panics": kill.replica_panics,
            "replica_rebuilds": kill.replica_rebuilds,
            "gaps": kill.gaps,
            "duplicates": kill.duplicates,
            "accepted_kill_window_ns": Percentiles::of(&kill.accepted_kill_window).to_json(),
            "accepted_steady_ns": Percentiles::of(&kill.accepted_steady).to_json(),
        }),
    }
}

/// The histograms a run writes, with their file stems.
fn histograms(run: &LoadReport) -> Vec<(&'static str, &Histogram<u64>)> {
    let mut all = vec![
        ("order_to_accepted", &run.accepted),
        ("order_to_executed", &run.executed),
        ("cancel_to_canceled", &run.canceled),
        ("send_lag", &run.send_lag),
    ];
    if let Some(kill) = &run.kill {
        all.push(("order_to_accepted_kill_window", &kill.accepted_kill_window));
        all.push(("order_to_accepted_steady", &kill.accepted_steady));
    }
    all
}

fn file_label(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn pacing_json(pacing: Pacing) -> Value {
    match pacing {
        Pacing::OpenLoop { rate_per_s } => json!({"mode": "open", "rate_per_s": rate_per_s}),
        Pacing::ClosedLoop { outstanding } => {
            json!({"mode": "closed", "outstanding_per_session": outstanding})
        }
    }
}

fn run_json(run: &LoadReport, files: &Value) -> Value {
    let mut latency = serde_json::Map::new();
    for (name, histogram) in histograms(run) {
        latency.insert(name.to_string(), Percentiles::of(histogram).to_json());
    }
    let counts = &run.counts;
    json!({
        "label": run.label,
        "target": run.target.name(),
        "sessions": run.sessions,
        "pacing": pacing_json(run.pacing),
        "duration_s": run.duration.as_secs_f64(),
        "warmup_s": run.warmup.as_secs_f64(),
        "elapsed_s": run.elapsed.as_secs_f64(),
        "achieved_rate_per_s": run.achieved_rate,
        "unanswered": run.unanswered,
        "capped": run.capped,
        "latency_ns": latency,
        "counts": {
            "enters_sent": counts.enters_sent,
            "iocs_sent": counts.iocs_sent,
            "cancels_sent": counts.cancels_sent,
            "accepted": counts.accepted,
            "rejected": counts.rejected,
            "executions": counts.executions,
            "taker_executions": counts.taker_executions,
            "canceled_by_request": counts.canceled_by_request,
            "canceled_ioc_remainder": counts.canceled_ioc_remainder,
            "canceled_self_match": counts.canceled_self_match,
            "canceled_other": counts.canceled_other,
            "cancel_rejected": counts.cancel_rejected,
            "unmatched_replies": counts.unmatched_replies,
            "measured_sent": counts.measured_sent,
            "measured_answered": counts.measured_answered,
        },
        "server": run.server.as_ref().map(|server| json!({
            "last_seq": server.last_seq,
            "state_hash": server.state_hash.map(|hash| format!("{hash:016x}")),
            "replicas": server.replicas,
            "replicas_agree": server.replicas_agree,
            "failure": server.failure,
            "fenced_panicked": server.fenced_panicked,
            "fenced_leaders": server.fenced_leaders,
            "replica_panics": server.replica_panics,
            "replica_rebuilds": server.replica_rebuilds,
        })),
        "match_audit": {
            "match_number_max": run.match_audit.match_number_max,
            "sides_missing": run.match_audit.sides_missing,
            "sides_duplicated": run.match_audit.sides_duplicated,
        },
        "kill": kill_json(run),
        "echo": run.echo.map(|echo| json!({
            "connections": echo.connections,
            "replies": echo.replies,
            "bytes_in": echo.bytes_in,
            "bytes_out": echo.bytes_out,
        })),
        "files": files,
    })
}

/// The JSON summary; `meta` (command line, machine) is carried as given.
pub fn summary_json(runs: &[LoadReport], meta: Value) -> Value {
    summary_with_files(runs, meta, &vec![Value::Null; runs.len()])
}

fn summary_with_files(runs: &[LoadReport], meta: Value, files: &[Value]) -> Value {
    let ratios: Vec<Value> = baseline_ratios(runs)
        .iter()
        .map(|ratio| {
            json!({
                "run": ratio.run,
                "baseline": ratio.baseline,
                "p50_ratio": ratio.p50,
                "p99_ratio": ratio.p99,
            })
        })
        .collect();
    let backends: Vec<Value> = backend_ratios(runs)
        .iter()
        .map(|ratio| {
            json!({
                "run": ratio.run,
                "mio_run": ratio.baseline,
                "p50_ratio": ratio.p50,
                "p99_ratio": ratio.p99,
            })
        })
        .collect();
    json!({
        "meta": meta,
        "latency_unit": "ns",
        "runs": runs.iter().zip(files).map(|(run, files)| run_json(run, files)).collect::<Vec<_>>(),
        "baseline_ratios": ratios,
        "uring_over_mio": backends,
    })
}

/// Writes into `dir` (made if missing) one `.hgrm` per non-empty histogram
/// of each run (values in µs), `summary.json` and `latency.png` (order to
/// Accepted of every run); returns the files written.
pub fn write_reports(dir: &Path, runs: &[LoadReport], meta: Value) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|error| format!("{}: {error}", path.display()))
    };
    let mut written = Vec::new();
    let mut files = Vec::new();
    for run in runs {
        let mut run_files = serde_json::Map::new();
        for (name, histogram) in histograms(run) {
            if histogram.is_empty() {
                continue;
            }
            let file = format!("{}.{name}.hgrm", file_label(&run.label));
            let path = dir.join(&file);
            write(&path, &percentile_distribution(histogram, 1_000.0))?;
            run_files.insert(name.to_string(), Value::String(file));
            written.push(path);
        }
        files.push(Value::Object(run_files));
    }
    let plot = dir.join("latency.png");
    // A run and its echo baseline share a colour: one group per I/O
    // backend family and load, in order of first appearance.
    let mut groups: Vec<(Option<EchoBackend>, Pacing, usize)> = Vec::new();
    let series: Vec<PlotSeries> = runs
        .iter()
        .map(|run| {
            let family = match run.target {
                TargetKind::Echo(backend) => Some(backend),
                other => other.baseline(),
            };
            let group = match groups
                .iter()
                .find(|(f, pacing, _)| *f == family && *pacing == run.pacing)
            {
                Some(&(_, _, group)) => group,
                None => {
                    groups.push((family, run.pacing, groups.len()));
                    groups.len() - 1
                }
            };
            PlotSeries {
                name: run.label.clone(),
                histogram: &run.accepted,
                thin: matches!(run.target, TargetKind::Echo(_)),
                group,
            }
        })
        .collect();
    write_latency_plot(&plot, "Order -> Accepted latency by percentile", &series)?;
    written.push(plot);
    let summary = dir.join("summary.json");
    let value = summary_with_files(runs, meta, &files);
    let text = serde_json::to_string_pretty(&value).map_err(|error| error.to_string())?;
    write(&summary, &(text + "\n"))?;
    written.push(summary);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_written_short() {
        assert_eq!(rate_text(10_000), "10k");
        assert_eq!(rate_text(2_500), "2.5k");
        assert_eq!(rate_text(1_000_000), "1M");
        assert_eq!(rate_text(750), "750");
        assert_eq!(
            pacing_text(Pacing::ClosedLoop { outstanding: 4 }),
            "closed K=4"
        );
    }
}
