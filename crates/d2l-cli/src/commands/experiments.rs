//! The chapter-4 experiments as commands: `poly-demo` (4.4), `weight-decay` (4.5),
//! `init-demo` (4.8), `shift-demo` (4.9), `house-prices` (4.10); and `seq-demo` (8.1),
//! `zipf` (8.2–8.3) and `gd-compare` (11.3–11.5); `augment-demo` (13.1) and
//! `finetune-demo` (13.2). Each prints its results beside the book's and writes its plots
//! to `--out`.

use super::{CliResult, DataArgs, DeviceArgs};
use clap::{Args, Subcommand};
use d2l_book::{
    augment, design, finetune, gd, house, images, mc_dropout, memory, mlp_basics, phm, poly,
    prelim, robust_loss, sequence, shift, shift_cases, stability, weight_decay, zipf,
    CommonOptions,
};
use std::fmt;
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

impl ImageExperimentArgs {
    /// The images asked for, with the subset sizes given (0: the experiment's default).
    fn subset(&self, default: (usize, usize)) -> CliResult<images::SubsetSpec> {
        let pick = |n: usize, d: usize| if n == 0 { d } else { n };
        Ok(images::SubsetSpec {
            dataset: self.dataset.parse()?,
            hub: self.common.hub(),
            fallback_to_shapes: true,
            n_train: pick(self.n_train, default.0),
            n_test: pick(self.n_test, default.1),
        })
    }
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

/// Flags of `poly-demo` (4.4).
#[derive(Args, Clone, Debug)]
pub struct PolyDemoArgs {
    /// The common flags.
    #[command(flatten)]
    pub common: ExperimentArgs,
    /// Training points (the book's 100): the third factor of overfitting.
    #[arg(long)]
    pub n_train: Option<usize>,
    /// Instead of the three fits: the degree-20 fit for each of these training-set sizes
    /// (e.g. 10,20,40,100,400,1000; about 15,000 SGD steps each, 1,000 test points) and
    /// the figure poly-sizes.png of train/test loss against the size.
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
}

/// Flags of `init-demo` (4.8).
#[derive(Args, Clone, Debug)]
pub struct InitDemoArgs {
    /// The common flags.
    #[command(flatten)]
    pub common: ExperimentArgs,
    /// The deep MLP's activation: relu, sigmoid or tanh (default: none, the book's linear
    /// check); adds per-layer gradient norms under Xavier and He initialisation.
    #[arg(long)]
    pub activation: Option<String>,
}

/// Flags of `mc-dropout` (4.6), `phm-demo` (3.4) and `design-demo` (7.2 / 7.5 / 7.6):
/// image subsets and the counts.
#[derive(Args, Clone, Debug)]
pub struct ImageExperimentArgs {
    /// The common flags.
    #[command(flatten)]
    pub common: ExperimentArgs,
    /// Images: fashion-mnist (default), mnist or shapes.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Training images, a seeded subset (0: the experiment's default — all, or 10,000
    /// for design-demo).
    #[arg(long, default_value_t = 0)]
    pub n_train: usize,
    /// Test images, a seeded subset (0: all, or 2,000 for design-demo).
    #[arg(long, default_value_t = 0)]
    pub n_test: usize,
    /// mc-dropout: the numbers of stochastic passes averaged.
    #[arg(long, value_delimiter = ',', default_value = "1,2,5,10,20,50")]
    pub passes: Vec<usize>,
    /// phm-demo: the PHM layers' n (each must divide 784 and 256).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub phm_n: Vec<usize>,
}

/// Flags of `memory-demo` (4.7).
#[derive(Args, Clone, Debug)]
pub struct MemoryDemoArgs {
    /// A zoo image classifier.
    #[arg(default_value = "lenet")]
    pub model: String,
    /// Images per batch.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Width multiplier of the model.
    #[arg(long, default_value_t = 1.0)]
    pub width_mult: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The experiment commands.
#[derive(Subcommand, Clone, Debug)]
pub enum ExperimentCommand {
    /// 2.4 / 2.6 / 3.1.3: the derivative as a limit and the tangent plot; normal and
    /// uniform pdf, cdf and log-probability with figures.
    PrelimDemo(ExperimentArgs),
    /// 4.4: polynomial regression — underfitting, normal, overfitting, with loss curves;
    /// --n-train N, or --sizes for loss against training-set size.
    PolyDemo(PolyDemoArgs),
    /// 4.5: weight decay from scratch and concise, λ = 0 vs 3.
    WeightDecay(ExperimentArgs),
    /// 4.8: vanishing sigmoid gradients, exploding matrix products, Xavier vs N(0,1);
    /// --activation relu|sigmoid|tanh adds per-layer gradient norms of a deep MLP.
    InitDemo(InitDemoArgs),
    /// 4.1 / 4.8: activations and their derivatives, stacked affine layers collapsing, an
    /// XOR-like set, constant-initialisation symmetry.
    MlpDemo(ExperimentArgs),
    /// Loss notes: a line with gross outliers fitted with the L2, L1 and Huber losses.
    LossDemo(ExperimentArgs),
    /// 4.9: label and covariate shift on Fashion-MNIST, and their corrections.
    ShiftDemo(ExperimentArgs),
    /// 4.9 on generated data: covariate shift with overlapping support (odds weights,
    /// clipped, effective sample size), concept shift (frozen vs online), empirical vs true risk.
    ShiftCases(ExperimentArgs),
    /// 4.6: Monte-Carlo dropout (K stochastic passes averaged) against the deterministic net.
    McDropout(ImageExperimentArgs),
    /// 3.4: the MLP with a PHM hidden layer for each --phm-n, against the dense MLP.
    PhmDemo(ImageExperimentArgs),
    /// 4.7: peak memory of a training step against prediction for a zoo model.
    MemoryDemo(MemoryDemoArgs),
    /// 7.2 / 7.5 / 7.6: deep-narrow 3×3 stacks vs a shallow-wide net of the same size; a
    /// plain 30-layer MLP vs the same depth with batch norm and with residual blocks.
    DesignDemo(ImageExperimentArgs),
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

/// The arm every experiment shares: the common flags set on `o` (seed, `quiet`, the plot
/// folder `runs/<name>` unless `--out`, `--epochs` where given), the experiment run and its
/// results printed.
fn run_experiment<O: CommonOptions, R: fmt::Display>(
    a: &ExperimentArgs,
    name: &str,
    mut o: O,
    run: impl FnOnce(&O) -> d2l_book::Result<R>,
) -> CliResult<()> {
    o.set_seed(a.seed);
    o.set_quiet(a.quiet);
    o.set_out_dir(Some(a.out_dir(name)));
    if let Some(e) = a.epochs {
        o.set_epochs(e)?;
    }
    println!("{}", run(&o)?);
    Ok(())
}

/// An error for `--data-dir` on an experiment that makes its own data.
fn no_data_dir(a: &ExperimentArgs, name: &str) -> CliResult<()> {
    if a.data_dir.is_some() {
        return Err(format!("{name} uses generated data: --data-dir does not apply").into());
    }
    Ok(())
}

/// Runs one experiment.
pub fn run(cmd: ExperimentCommand) -> CliResult<()> {
    match cmd {
        ExperimentCommand::PrelimDemo(a) => {
            if a.data_dir.is_some() || a.epochs.is_some() {
                return Err("prelim-demo computes: --data-dir and --epochs do not apply".into());
            }
            println!("{}", prelim::run_prelim(Some(&a.out_dir("prelim-demo")))?);
            Ok(())
        }
        ExperimentCommand::PolyDemo(p) => {
            let a = &p.common;
            let mut o = poly::PolyOptions::default();
            if let Some(n) = p.n_train {
                o.n_train = n;
            }
            if let Some(sizes) = &p.sizes {
                if p.n_train.is_some() {
                    return Err("--sizes and --n-train do not go together".into());
                }
                o.set_seed(a.seed);
                o.set_quiet(a.quiet);
                o.set_out_dir(Some(a.out_dir("poly")));
                o.n_test = 1000;
                let steps = a.epochs.map_or(15_000, |e| e * 10);
                println!("{}", poly::run_poly_sizes(&o, sizes, 20, steps)?);
                return Ok(());
            }
            run_experiment(a, "poly", o, poly::run_poly)
        }
        ExperimentCommand::WeightDecay(a) => run_experiment(
            &a,
            "weight-decay",
            weight_decay::WeightDecayOptions::default(),
            weight_decay::run_weight_decay,
        ),
        ExperimentCommand::InitDemo(d) => {
            let a = &d.common;
            let mut o = stability::StabilityOptions::default();
            let act: Option<mlp_basics::Act> = match &d.activation {
                Some(s) => Some(s.parse()?),
                None => None,
            };
            if let Some(s) = &d.activation {
                o.activation = s.parse()?;
            }
            run_experiment(a, "init-demo", o, stability::run_stability)?;
            if let Some(act) = act {
                let out = a.out_dir("init-demo");
                let r = mlp_basics::grad_norm_comparison(act, 20, 64, a.seed, Some(&out))?;
                println!("{r}");
            }
            Ok(())
        }
        ExperimentCommand::MlpDemo(a) => {
            no_data_dir(&a, "mlp-demo")?;
            let o = mlp_basics::MlpBasicsOptions::default();
            run_experiment(&a, "mlp-demo", o, mlp_basics::run_mlp_basics)
        }
        ExperimentCommand::LossDemo(a) => {
            no_data_dir(&a, "loss-demo")?;
            let o = robust_loss::RobustLossOptions::default();
            run_experiment(&a, "loss-demo", o, robust_loss::run_robust_loss)
        }
        ExperimentCommand::ShiftDemo(a) => {
            let o = shift::ShiftOptions {
                hub: a.hub(),
                ..Default::default()
            };
            run_experiment(&a, "shift-demo", o, shift::run_shift)
        }
        ExperimentCommand::ShiftCases(a) => {
            no_data_dir(&a, "shift-cases")?;
            let o = shift_cases::ShiftCasesOptions::default();
            run_experiment(&a, "shift-cases", o, shift_cases::run_shift_cases)
        }
        ExperimentCommand::McDropout(d) => {
            let o = mc_dropout::McDropoutOptions {
                data: d.subset((0, 0))?,
                passes: d.passes.clone(),
                ..Default::default()
            };
            run_experiment(&d.common, "mc-dropout", o, mc_dropout::run_mc_dropout)
        }
        ExperimentCommand::PhmDemo(d) => {
            let o = phm::PhmOptions {
                data: d.subset((0, 0))?,
                ns: d.phm_n.clone(),
                ..Default::default()
            };
            run_experiment(&d.common, "phm-demo", o, phm::run_phm)
        }
        ExperimentCommand::MemoryDemo(m) => {
            let o = memory::MemoryOptions {
                model: m.model,
                batch: m.batch_size,
                width_mult: m.width_mult,
                seed: m.seed,
            };
            println!("{}", memory::run_memory(&o)?);
            Ok(())
        }
        ExperimentCommand::DesignDemo(d) => {
            let o = design::DesignOptions {
                data: d.subset((10_000, 2_000))?,
                ..Default::default()
            };
            run_experiment(&d.common, "design-demo", o, design::run_design)
        }
        ExperimentCommand::HousePrices(a) => {
            let o = house::HouseOptions {
                hub: a.hub(),
                ..Default::default()
            };
            run_experiment(&a, "house-prices", o, house::run_house_prices)
        }
        ExperimentCommand::SeqDemo(a) => run_experiment(
            &a,
            "seq-demo",
            sequence::SequenceOptions::default(),
            sequence::run_sequence,
        ),
        ExperimentCommand::Zipf(a) => {
            let o = zipf::ZipfOptions {
                hub: a.hub(),
                ..Default::default()
            };
            run_experiment(&a, "zipf", o, zipf::run_zipf)
        }
        ExperimentCommand::GdCompare(a) => {
            let o = gd::GdOptions {
                hub: a.hub(),
                ..Default::default()
            };
            run_experiment(&a, "gd-compare", o, gd::run_gd_compare)
        }
        ExperimentCommand::AugmentDemo(d) => {
            let a = &d.common;
            let o = augment::AugmentOptions {
                dataset: d.dataset.parse()?,
                hub: a.hub(),
                n_train: d.n_train,
                n_test: d.n_test,
                width_mult: d.width_mult,
                augment: d.augment.parse()?,
                batch_size: d.batch_size,
                lr: d.lr,
                device: d.device.resolve()?,
                ..Default::default()
            };
            run_experiment(a, "augment-demo", o, augment::run_augment)
        }
        ExperimentCommand::FinetuneDemo(d) => {
            let a = &d.common;
            let o = finetune::FinetuneOptions {
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
                device: d.device.resolve()?,
                ..Default::default()
            };
            run_experiment(a, "finetune-demo", o, finetune::run_finetune)
        }
    }
}
