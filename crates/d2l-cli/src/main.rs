//! The `d2l` program: trains, evaluates, summarises and plots the book's models.
//! `d2l --help` lists the commands; with no command it trains the 4.3 MLP.

mod commands;

/// Every allocation goes through the memory limit's backstop: one over the limit (or one
/// the system refuses) ends the program with one `error:` line and exit code 1, not an
/// abort (see `d2l_tensor::limit`).
#[global_allocator]
static ALLOC: d2l_tensor::limit::LimitedAlloc = d2l_tensor::limit::LimitedAlloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Dive into Deep Learning, in Rust.
#[derive(Parser)]
#[command(name = "d2l", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model with the book's hyper-parameters (flags override them).
    Train(Box<commands::train::TrainArgs>),
    /// Evaluate saved weights on a data set's test split.
    Eval(commands::eval::EvalArgs),
    /// Predict the first test images and save a labelled grid (the book's predict_ch3).
    Predict(commands::eval::PredictArgs),
    /// The layer-by-layer output shapes, parameter counts and FLOPs of a model.
    Summary(commands::info::SummaryArgs),
    /// List the models with their sections and book recipes.
    Models,
    /// Time the peer workloads W1–W5 (or zoo models) and compare with PyTorch.
    Bench(commands::bench::BenchArgs),
    /// Draw anchor boxes on an image (D2L 13.4 at one pixel, 13.5 on a feature map).
    Anchors(commands::detect::AnchorsArgs),
    /// Draw a trained detector's boxes on an image (D2L 13.7's prediction).
    Detect(commands::detect::DetectArgs),
    /// Apply an augmentation 8 times and save the grid (D2L 13.1's figures).
    Augment(commands::augment::AugmentArgs),
    /// Fine-tune a pretrained ResNet-18 on an image folder (D2L 13.2).
    Finetune(commands::finetune::FinetuneArgs),
    /// Segment an image with a trained FCN and save it beside its coloured class map (13.11).
    Segment(commands::segment::SegmentArgs),
    /// Convert a PyTorch checkpoint (.pth) to safetensors (D2L 13.2's pretrained weights).
    Convert(commands::convert::ConvertArgs),
    /// Neural style transfer with VGG-19 (D2L 13.12).
    Style(commands::style::StyleArgs),
    /// Upsample an image ×2/4/8 with a bilinear transposed convolution (D2L 13.11).
    Upsample(commands::upsample::UpsampleArgs),
    /// List the devices: the CPU and each CUDA GPU with its memory (or why there is none).
    Devices,
    /// List the data sets and where their files are (or would be) found.
    Datasets(commands::info::DatasetsArgs),
    /// The book's numbers beside ours: run a section's recipe (or `all`, `--quick`), check
    /// each value against its tolerance, write the run records (`--list` shows them).
    Reproduce(commands::reproduce::ReproduceArgs),
    /// Chapter-4 experiments (4.4, 4.5, 4.8, 4.9, 4.10).
    #[command(flatten)]
    Experiment(commands::experiments::ExperimentCommand),
}

/// Restores the default SIGPIPE action, so that `d2l ... | head` ends quietly when the
/// reader closes the pipe instead of panicking on the next `println!` (Rust ignores
/// SIGPIPE by default).
fn default_sigpipe() {
    #[cfg(unix)]
    {
        // SAFETY: installing the default disposition for SIGPIPE at start-up, before any
        // thread exists; no handler code runs.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}

/// `D2L_MAX_ALLOC` and `RAYON_NUM_THREADS`, read before any work.
fn check_environment() -> commands::CliResult<()> {
    if let Some(e) = d2l_tensor::limit::env_error() {
        return Err(e.into());
    }
    commands::sizes::check_rayon_env()
}

fn main() -> ExitCode {
    default_sigpipe();
    let cli = Cli::parse();
    if let Err(e) = check_environment() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    // Sizes over the memory limit end with one line from here on.
    d2l_tensor::limit::install();
    // Reuse freed buffers instead of faulting fresh pages in every step.
    d2l_tensor::alloc::tune();
    let result = match cli.command {
        None => {
            eprintln!("no command given: training the D2L 4.3 MLP with the book's settings (see `d2l --help`)");
            commands::train::run(commands::train::TrainArgs::default_for("mlp"))
        }
        Some(Command::Train(a)) => commands::train::run(*a),
        Some(Command::Eval(a)) => commands::eval::run_eval(a),
        Some(Command::Predict(a)) => commands::eval::run_predict(a),
        Some(Command::Summary(a)) => commands::info::summary(a),
        Some(Command::Models) => commands::info::models(),
        Some(Command::Bench(a)) => commands::bench::run(a),
        Some(Command::Devices) => commands::devices::devices(),
        Some(Command::Datasets(a)) => commands::info::datasets(a),
        Some(Command::Anchors(a)) => commands::detect::anchors(a),
        Some(Command::Convert(a)) => commands::convert::run(a),
        Some(Command::Segment(a)) => commands::segment::segment(a),
        Some(Command::Style(a)) => commands::style::run(a),
        Some(Command::Upsample(a)) => commands::upsample::run(a),
        Some(Command::Finetune(a)) => commands::finetune::run(a),
        Some(Command::Detect(a)) => commands::detect::detect(a),
        Some(Command::Augment(a)) => commands::augment::run(a),
        Some(Command::Reproduce(a)) => commands::reproduce::run(a),
        Some(Command::Experiment(e)) => commands::experiments::run(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<commands::Interrupted>().is_some() => {
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
