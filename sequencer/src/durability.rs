//! Durability policies — when the journal calls `fdatasync` and what
//! `durable_seq` therefore promises — and the measurement of what each policy
//! costs. "Journal before output" is enforced by egress, which releases the
//! outputs of `seq` only once `Journal::durable_seq() >= seq`; this module says
//! how strong that promise is under each policy and measures it against a
//! plain `write` + `fdatasync` loop of the same sizes.

use crate::journal::{Journal, JournalError, JournalOptions};
use crate::journal_backend::JournalBackendKind;
use crate::journal_record::{SequencedCommand, HEADER_SIZE_BYTES, RECORD_SIZE_BYTES};
use core::fmt;
use core::str::FromStr;
use lockstep_engine::{AccountId, Command, InstrumentId, NewOrder, OrderType, SessionId, Side};
use lockstep_engine::{TimeInForce, Token};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

/// When the journal makes records durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DurabilityPolicy {
    /// Never `fdatasync`. Records reach the OS page cache when the journal's
    /// batch is written; they survive a crash of the process but not a power
    /// loss or kernel crash, which lose the OS-buffered tail. `durable_seq`
    /// is the highest seq written to the OS, a weaker promise than the other
    /// policies make. For tests, benchmarks and replicas that can re-fetch.
    None,
    /// Group commit (the default): the caller appends a batch and calls
    /// `sync` once; one `fdatasync` covers every record written since the
    /// last one. `durable_seq` is the highest seq covered by a completed
    /// `fdatasync`, so it survives power loss.
    #[default]
    Batch,
    /// `fdatasync` after every record: each `append` returns only once its
    /// record is durable. The strongest and slowest policy.
    Every,
}

impl DurabilityPolicy {
    /// Every policy, weakest first.
    pub const ALL: [DurabilityPolicy; 3] = [
        DurabilityPolicy::None,
        DurabilityPolicy::Batch,
        DurabilityPolicy::Every,
    ];

    /// The policy's name in configuration files and reports.
    pub const fn name(self) -> &'static str {
        match self {
            DurabilityPolicy::None => "none",
            DurabilityPolicy::Batch => "batch",
            DurabilityPolicy::Every => "every",
        }
    }

    /// True if the policy ever calls `fdatasync`.
    pub const fn syncs(self) -> bool {
        !matches!(self, DurabilityPolicy::None)
    }
}

impl fmt::Display for DurabilityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy name that is not `none`, `batch` or `every`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPolicy(pub String);

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown durability policy {:?} (expected none, batch or every)",
            self.0
        )
    }
}

impl std::error::Error for UnknownPolicy {}

impl FromStr for DurabilityPolicy {
    type Err = UnknownPolicy;

    fn from_str(text: &str) -> Result<DurabilityPolicy, UnknownPolicy> {
        match text {
            "none" => Ok(DurabilityPolicy::None),
            "batch" => Ok(DurabilityPolicy::Batch),
            "every" => Ok(DurabilityPolicy::Every),
            other => Err(UnknownPolicy(other.to_string())),
        }
    }
}

/// What wrote the bytes in a measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeasuredWriter {
    /// The journal, through this backend.
    Journal(JournalBackendKind),
    /// The baseline: a plain sequential `write` + `fdatasync` loop writing
    /// the same bytes in the same sizes, with no encoding and no checks.
    BaselineWriteFdatasync,
}

impl fmt::Display for MeasuredWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeasuredWriter::Journal(kind) => write!(f, "journal ({kind})"),
            MeasuredWriter::BaselineWriteFdatasync => write!(f, "baseline write+fdatasync"),
        }
    }
}

/// The result of one measurement run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JournalMeasurement {
    pub writer: MeasuredWriter,
    pub policy: DurabilityPolicy,
    pub records: u64,
    /// Records per commit: appended together, then one `sync`. Always 1
    /// under `Every`, where each record is its own commit.
    pub batch_records: usize,
    pub elapsed_ns: u64,
    pub commands_per_sec: f64,
    /// Latency of one commit (append `batch_records` records, then `sync`),
    /// which is what the last command of a commit waits for before its
    /// output may leave.
    pub commit_latency_mean_ns: u64,
    pub commit_latency_p50_ns: u64,
    pub commit_latency_p99_ns: u64,
    pub commit_latency_max_ns: u64,
}

impl fmt::Display for JournalMeasurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<26} policy={:<5} records={} batch={} commands/s={:.0} commit latency ns: mean={} p50={} p99={} max={}",
            self.writer.to_string(),
            self.policy,
            self.records,
            self.batch_records,
            self.commands_per_sec,
            self.commit_latency_mean_ns,
            self.commit_latency_p50_ns,
            self.commit_latency_p99_ns,
            self.commit_latency_max_ns
        )
    }
}

/// A deterministic synthetic command stream for measurements: new limit
/// orders with varying fields, so that records differ as real ones do.
pub fn synthetic_command(seq: u64) -> SequencedCommand {
    SequencedCommand {
        seq,
        timestamp_ns: 1_700_000_000_000_000_000 + seq * 1_000,
        command: Command::New(NewOrder {
            session: SessionId((seq % 64) as u16),
            account: AccountId((seq % 1_000) as u32),
            token: Token::from_u64(seq),
            instrument: InstrumentId((seq % 8) as u32),
            side: if seq.is_multiple_of(2) {
                Side::Buy
            } else {
                Side::Sell
            },
            order_type: OrderType::Limit,
            price: 10_000 + seq % 100,
            qty: 1 + (seq % 500) as u32,
            time_in_force: TimeInForce::Gtc,
            post_only: false,
            client_tag: 0,
        }),
    }
}

fn summarise(
    writer: MeasuredWriter,
    policy: DurabilityPolicy,
    records: u64,
    batch_records: usize,
    elapsed_ns: u64,
    commit_latencies_ns: &mut [u64],
) -> JournalMeasurement {
    commit_latencies_ns.sort_unstable();
    let count = commit_latencies_ns.len();
    let percentile = |per_mille: usize| -> u64 {
        if count == 0 {
            return 0;
        }
        let index = (count * per_mille / 1_000).min(count - 1);
        commit_latencies_ns[index]
    };
    let total_ns: u128 = commit_latencies_ns.iter().map(|&ns| u128::from(ns)).sum();
    let mean_ns = if count == 0 {
        0
    } else {
        (total_ns / count as u128) as u64
    };
    JournalMeasurement {
        writer,
        policy,
        records,
        batch_records,
        elapsed_ns,
        commands_per_sec: if elapsed_ns == 0 {
            0.0
        } else {
            records as f64 * 1e9 / elapsed_ns as f64
        },
        commit_latency_mean_ns: mean_ns,
        commit_latency_p50_ns: percentile(500),
        commit_latency_p99_ns: percentile(990),
        commit_latency_max_ns: commit_latencies_ns.last().copied().unwrap_or(0),
    }
}

/// Records per commit in a measurement. Under `Every` each record is its own
/// commit (its `append` returns once it is durable), so latency is measured
/// per record and `batch_records` does not apply.
fn commit_records(policy: DurabilityPolicy, batch_records: usize) -> usize {
    if policy == DurabilityPolicy::Every {
        1
    } else {
        batch_records.max(1)
    }
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Measures the journal: writes `records` synthetic commands to a fresh
/// journal at `path` (an existing file there is replaced), `batch_records` per
/// commit, under `policy`, through `backend` (io_uring falls back to the plain
/// file where it is unavailable; the result names the backend that ran).
/// Reports commands per second and the latency of each commit (each record
/// under `Every`).
pub fn measure_journal(
    path: &Path,
    policy: DurabilityPolicy,
    backend: JournalBackendKind,
    records: u64,
    batch_records: usize,
) -> Result<JournalMeasurement, JournalError> {
    let batch_records = commit_records(policy, batch_records);
    remove_if_present(path).map_err(|source| JournalError::Io {
        op: "remove the old measurement file",
        source,
    })?;
    let mut options = JournalOptions::new(policy);
    options.prefer_io_uring = backend == JournalBackendKind::IoUring;
    options.batch_records_max = batch_records;
    let mut journal = Journal::open_with(path, &options)?;
    let commits = records.div_ceil(batch_records as u64);
    let mut commit_latencies_ns = Vec::with_capacity(usize::try_from(commits).unwrap_or(0));
    let start = Instant::now();
    let mut seq = 1;
    while seq <= records {
        let commit_start = Instant::now();
        let batch_end = seq
            .saturating_add(batch_records as u64)
            .min(records.saturating_add(1));
        while seq < batch_end {
            journal.append(&synthetic_command(seq))?;
            seq += 1;
        }
        journal.sync()?;
        commit_latencies_ns.push(elapsed_ns(commit_start));
    }
    let total_ns = elapsed_ns(start);
    Ok(summarise(
        MeasuredWriter::Journal(journal.backend()),
        policy,
        records,
        batch_records,
        total_ns,
        &mut commit_latencies_ns,
    ))
}

/// Measures the baseline the journal is compared with: a plain sequential
/// `write` of the same 64-byte header and the same batches of 64-byte
/// records, with `fdatasync` where `policy` would call it (never for `None`,
/// once per batch for `Batch`, after every record for `Every`, which is
/// measured per record as [`measure_journal`] does). The bytes are
/// encoded before the clock starts, so this is the cost of the system calls
/// alone.
pub fn measure_baseline(
    path: &Path,
    policy: DurabilityPolicy,
    records: u64,
    batch_records: usize,
) -> io::Result<JournalMeasurement> {
    let batch_records = commit_records(policy, batch_records);
    remove_if_present(path)?;
    let mut file: File = OpenOptions::new().write(true).create_new(true).open(path)?;
    let batch_bytes = batch_records
        .checked_mul(RECORD_SIZE_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "batch_records is too large"))?;
    let mut batch = vec![0u8; batch_bytes];
    for (index, chunk) in batch.chunks_exact_mut(RECORD_SIZE_BYTES).enumerate() {
        let mut record = [0u8; RECORD_SIZE_BYTES];
        crate::journal_record::encode_record_into(
            &synthetic_command(index as u64 + 1),
            &mut record,
        );
        chunk.copy_from_slice(&record);
    }
    file.write_all(&[0u8; HEADER_SIZE_BYTES])?;
    if policy.syncs() {
        file.sync_data()?;
    }
    let commits = records.div_ceil(batch_records as u64);
    let mut commit_latencies_ns = Vec::with_capacity(usize::try_from(commits).unwrap_or(0));
    let start = Instant::now();
    let mut remaining = records;
    while remaining > 0 {
        let commit_start = Instant::now();
        let this_batch = remaining.min(batch_records as u64) as usize;
        let bytes = &batch[..this_batch * RECORD_SIZE_BYTES];
        match policy {
            DurabilityPolicy::None => file.write_all(bytes)?,
            DurabilityPolicy::Batch => {
                file.write_all(bytes)?;
                file.sync_data()?;
            }
            DurabilityPolicy::Every => {
                for record in bytes.chunks_exact(RECORD_SIZE_BYTES) {
                    file.write_all(record)?;
                    file.sync_data()?;
                }
            }
        }
        remaining -= this_batch as u64;
        commit_latencies_ns.push(elapsed_ns(commit_start));
    }
    let total_ns = elapsed_ns(start);
    Ok(summarise(
        MeasuredWriter::BaselineWriteFdatasync,
        policy,
        records,
        batch_records,
        total_ns,
        &mut commit_latencies_ns,
    ))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}
