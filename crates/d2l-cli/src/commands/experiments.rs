//! The chapter-4 experiments as commands: `poly-demo` (4.4), `weight-decay` (4.5),
//! `init-demo` (4.8), `shift-demo` (4.9), `house-prices` (4.10); and `seq-demo` (8.1),
//! `zipf` (8.2–8.3) and `gd-compare` (11.3–11.5); `augment-demo` (13.1) and
//! `finetune-demo` (13.2). Each prints its results beside the book's and writes its plots
//! to `--out`.

use super::{CliResult, DataArgs, DeviceArgs};
use clap::{Args, Subcommand};
use d2l_train::experiments::{
    augment, finetune, gd, house, poly, sequence, shift, stability, weight_decay, zipf,
};
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

/// Flags of `augment-demo` (13.1).
#[derive(Args, Clone, Debug)]
pub struct AugmentDemoArgs {
    /// The common flags.
    #[command(flatten)]
    pub common: ExperimentArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Images: fashion-mnist (default), mnist, shapes or cifar10 (the book's, if present).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Training images, a seeded subset (0: all).
    #[arg(long, default_value_t = 1000)]
    pub n_train: usize,
    /// Test images, a seeded subset (0: all).
    #[arg(long, default_value_t = 2000)]
    pub n_test: usize,
    /// Width multiplier of the ResNet-18 (1.0: the book's).
    #[arg(long, default_value_t = 0.5)]
    pub width_mult: f64,
    /// Augmentation of the second run: flip or flip-crop.
    #[arg(long, default_value = "flip")]
    pub augment: String,
    /// Minibatch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.001)]
    pub lr: f64,
}

/// Flags of `finetune-demo` (13.2).
#[derive(Args, Clone, Debug)]
pub struct FinetuneDemoArgs {
    /// The common flags.
    #[command(flatten)]
    pub common: ExperimentArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Images both tasks come from: fashion-mnist (default), mnist or shapes.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Width multiplier of the ResNet-18.
    #[arg(long, default_value_t = 0.25)]
    pub width_mult: f64,
    /// Pretraining images of classes 0–4 (0: all).
    #[arg(long, default_value_t = 15_000)]
    pub n_pretrain: usize,
    /// Pretraining epochs (Adam).
    #[arg(long, default_value_t = 1)]
    pub pretrain_epochs: usize,
    /// Training images of classes 5–9 for fine-tuning and scratch.
    #[arg(long, default_value_t = 100)]
    pub n_finetune: usize,
    /// Test images of classes 5–9 (0: all).
    #[arg(long, default_value_t = 0)]
    pub n_test: usize,
    /// Minibatch size of fine-tuning and scratch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// The body's SGD learning rate with the mean loss (head and scratch: 10×).
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// SGD weight decay with the mean loss (default: the book's 0.001 / batch size).
    #[arg(long)]
    pub weight_decay: Option<f64>,
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
    /// 13.1: train a ResNet-18 with and without image augmentation (offline: a Fashion-MNIST
    /// subset unless --dataset cifar10).
    AugmentDemo(AugmentDemoArgs),
    /// 13.2: fine-tuning a pretrained body vs training from scratch (offline: Fashion-MNIST
    /// classes 0–4 → 5–9).
    FinetuneDemo(FinetuneDemoArgs),
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
        ExperimentCommand::AugmentDemo(d) => {
            let a = &d.common;
            let device = d.device.resolve()?;
            let mut o = augment::AugmentOptions {
                dataset: d.dataset.parse()?,
                hub: a.hub(),
                n_train: d.n_train,
                n_test: d.n_test,
                width_mult: d.width_mult,
                augment: d.augment.parse()?,
                batch_size: d.batch_size,
                lr: d.lr,
                seed: a.seed,
                quiet: a.quiet,
                out_dir: Some(a.out_dir("augment-demo")),
                device,
                ..Default::default()
            };
            if let Some(e) = a.epochs {
                o.epochs = e;
            }
            println!("{}", augment::run_augment(&o)?);
        }
        ExperimentCommand::FinetuneDemo(d) => {
            let a = &d.common;
            let device = d.device.resolve()?;
            let mut o = finetune::FinetuneOptions {
                dataset: d.dataset.parse()?,
                hub: a.hub(),
                width_mult: d.width_mult,
                n_pretrain: d.n_pretrain,
                pretrain_epochs: d.pretrain_epochs,
                n_finetune: d.n_finetune,
                n_test: d.n_test,
                batch_size: d.batch_size,
                lr: d.lr,
                weight_decay: d.weight_decay.unwrap_or(0.001 / d.batch_size.max(1) as f64),
                seed: a.seed,
                quiet: a.quiet,
                out_dir: Some(a.out_dir("finetune-demo")),
                device,
                ..Default::default()
            };
            if let Some(e) = a.epochs {
                o.epochs = e;
            }
            println!("{}", finetune::run_finetune(&o)?);
        }
    }
    Ok(())
}
