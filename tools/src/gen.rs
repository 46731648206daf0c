//! `lockstep gen`: writes a synthetic Flow CSV v1 file from a mix and a seed.
//! This module owns only the command line and the file handling; the flows
//! themselves come from `lockstep_bench::generate`, which makes them a pure
//! function of mix, seed and length, so two runs with the same arguments
//! write byte-identical files.

use clap::{Args, ValueEnum};
use lockstep_bench::{FlowGenerator, FlowWriter, Mix};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

/// The mixes, as the command line names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MixName {
    /// exchange-core's benchmark load: 9% GTC, 3% IOC, 6% cancel, 82% move,
    /// about 1,000 live orders on one instrument.
    ExchangeCore,
    /// Every order type plus cancels and modifies over three instruments.
    Simple,
}

impl From<MixName> for Mix {
    fn from(name: MixName) -> Mix {
        match name {
            MixName::ExchangeCore => Mix::ExchangeCore,
            MixName::Simple => Mix::Simple,
        }
    }
}

/// Generate a deterministic synthetic order flow.
#[derive(Args, Debug)]
pub struct GenArgs {
    /// The seed; the same seed always gives the same flow.
    #[arg(long)]
    pub seed: u64,
    /// How many records (commands) to write.
    #[arg(long)]
    pub orders: u64,
    /// Which kind of flow to generate.
    #[arg(long, value_enum)]
    pub mix: MixName,
    /// The flow file to write.
    #[arg(long, value_name = "FILE.csv")]
    pub out: PathBuf,
}

pub fn run(args: &GenArgs) -> Result<String, String> {
    let failed = |error: std::io::Error| format!("cannot write {}: {error}", args.out.display());
    let file = File::create(&args.out).map_err(failed)?;
    let mut writer = FlowWriter::new(BufWriter::with_capacity(1 << 16, file)).map_err(failed)?;
    let mix = Mix::from(args.mix);
    for record in FlowGenerator::new(mix, args.seed).take(args.orders as usize) {
        writer.write(&record).map_err(failed)?;
    }
    writer.finish().map_err(failed)?;
    Ok(format!(
        "wrote {} records of mix {mix} (seed {}) to {}\n",
        args.orders,
        args.seed,
        args.out.display()
    ))
}
