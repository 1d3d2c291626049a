//! The chapter-4 experiments as commands: `poly-demo` (4.4), `weight-decay` (4.5),
//! `init-demo` (4.8), `shift-demo` (4.9), `house-prices` (4.10); and `seq-demo` (8.1),
//! `zipf` (8.2–8.3) and `gd-compare` (11.3–11.5). Each prints its results beside the
//! book's and writes its plots to `--out`.

use super::{CliResult, DataArgs};
use clap::{Args, Subcommand};
use d2l_train::experiments::{gd, house, poly, sequence, shift, stability, weight_decay, zipf};
use std::path::PathBuf;

/// Flags every experiment takes.
#[derive(Args, Clone, Debug)]
pub struct ExperimentArgs {
    /// Folder for plots (and submission.csv): default runs/<experiment>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fewer progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// A data directory laid out like ../shared/data (also D2L_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Epochs (default: the book's).
    #[arg(long)]
    pub epochs: Option<usize>,
}

impl ExperimentArgs {
    fn out_dir(&self, name: &str) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(name))
    }

    fn hub(&self) -> d2l_data::hub::DataHub {
        DataArgs {
            data_dir: self.data_dir.clone(),
            ..Default::default()
        }
        .hub(self.quiet)
    }
}

/// The experiment commands.
#[derive(Subcommand, Clone, Debug)]
pub enum ExperimentCommand {
    /// 4.4: polynomial regression — underfitting, normal, overfitting, with loss curves.
    PolyDemo(ExperimentArgs),
    /// 4.5: weight decay from scratch and concise, λ = 0 vs 3.
    WeightDecay(ExperimentArgs),
    /// 4.8: vanishing sigmoid gradients, exploding matrix products, Xavier vs N(0,1).
    InitDemo(ExperimentArgs),
    /// 4.9: label and covariate shift on Fashion-MNIST, and their corrections.
    ShiftDemo(ExperimentArgs),
    /// 4.10: Kaggle house prices, 5-fold log-rmse and a submission.csv.
    HousePrices(ExperimentArgs),
    /// 8.1: the noisy sine, an MLP on τ = 4 lags; 1-step, multi-step and k-step predictions.
    SeqDemo(ExperimentArgs),
    /// 8.2–8.3: n-gram tables of The Time Machine, the Zipf plot, n-gram perplexity.
    Zipf(ExperimentArgs),
    /// 11.3–11.5: GD vs SGD vs minibatch SGD (and momentum, Adam) on airfoil self-noise.
    GdCompare(ExperimentArgs),
}

/// Runs one experiment.
pub fn run(cmd: ExperimentCommand) -> CliResult<()> {
    match cmd {
        ExperimentCommand::PolyDemo(a) => {
            let mut o = poly::PolyOptions {
                seed: a.seed,
                quiet: a.quiet,
                out_dir: Some(a.out_dir("poly")),
                ..Default::default()
            };
            if let Some(e) = a.epochs {
                for c in &mut o.cases {
                    c.epochs = e;
                }
            }
            println!("{}", poly::run_poly(&o)?);
        }
        ExperimentCommand::WeightDecay(a) => {
            let mut o = weight_decay::WeightDecayOptions {
                seed: a.seed,
                quiet: a.quiet,
                out_dir: Some(a.out_dir("weight-decay")),
                ..Default::default()
            };
            if let Some(e) = a.epochs {
                o.epochs = e;
            }
            println!("{}", weight_decay::run_weight_decay(&o)?);
        }
        ExperimentCommand::InitDemo(a) => {
            let o = stability::StabilityOptions {
                seed: a.seed,
                quiet: a.quiet,
                out_dir: Some(a.out_dir("init-demo")),
                ..Default::default()
            };
            println!("{}", stability::run_stability(&o)?);
        }
        ExperimentCommand::ShiftDemo(a) => {
            let mut o = shift::ShiftOptions {
                hub: a.hub(),
                seed: a.seed,
                quiet: a.quiet,
                out_dir: Some(a.out_dir("shift-demo")),
                ..Default::default()
            };
            if let Some(e) = a.epochs {
                o.epochs = e;
            }
            println!("{}", shift::run_shift(&o)?);
        }
        ExperimentCommand::HousePrices(a) => {
            let mut o = house::HouseOptions {
                hub: a.hub(),
                seed: a.seed,
                quiet: a.quiet,
                out_dir: Some(a.out_dir("house-prices")),
                ..Default::default()
            };
            if let Some(e) = a.epochs {
                o.epochs = e;
            }
            println!("{}", house::run_house_prices(&o)?);
        }
        ExperimentCommand::SeqDemo(a) => {
            let mut o = sequence::SequenceOptions {
                seed: a.seed,
                quiet: a.quiet,
                out_dir: Some(a.out_dir("seq-demo")),
                ..Default::default()
            };
            if let Some(e) = a.epochs {
                o.epochs = e;
            }
            println!("{}", sequence::run_sequence(&o)?);
        }
        ExperimentCommand::Zipf(a) => {
            if a.epochs.is_some() {
                return Err("zipf trains nothing: --epochs does not apply".into());
            }
            let o = zipf::ZipfOptions {
                hub: a.hub(),
                quiet: a.quiet,
                out_dir: Some(a.out_dir("zipf")),
                ..Default::default()
            };
            println!("{}", zipf::run_zipf(&o)?);
        }
        ExperimentCommand::GdCompare(a) => {
            let mut o = gd::GdOptions {
                hub: a.hub(),
                seed: a.seed,
                quiet: a.quiet,
                out_dir: Some(a.out_dir("gd-compare")),
                ..Default::default()
            };
            if let Some(e) = a.epochs {
                for c in &mut o.cases {
                    c.epochs = e;
                }
            }
            println!("{}", gd::run_gd_compare(&o)?);
        }
    }
    Ok(())
}
