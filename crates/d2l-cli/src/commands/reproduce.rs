//! `d2l reproduce SECTION… | all | --quick | --list`: runs the book's recipe for each
//! section with printed results, prints *book | ours | difference | tolerance | within?*,
//! writes the run records and exits with status 1 when a value lies outside its
//! tolerance. The numbers and tolerances come from `crates/d2l-book/reproduce.toml`
//! (see `d2l_book::reproduce`). `--from-run DIR` compares and records a finished
//! `d2l train --out DIR` run instead of training (the chapter-7 models take hours).

use super::train::TrainArgs;
use super::{CliResult, DataArgs};
use clap::Args;
use d2l_book::reproduce::{self, Comparison, Cost, RunValues, Section};
use std::path::{Path, PathBuf};

/// Flags of `d2l reproduce`.
#[derive(Args, Clone, Debug)]
pub struct ReproduceArgs {
    /// Book sections (`3.7`, `4.10`), record names (`8.5-char-rnn-scratch`) or `all`.
    pub sections: Vec<String>,
    /// Seeds per section (default: the data file's — 3 where one seed is noisy).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Only the cheap sections (of those named, or of all).
    #[arg(long)]
    pub quick: bool,
    /// List every section with its expected time on the development machine, and exit.
    #[arg(long)]
    pub list: bool,
    /// Compare and record this finished run folder (`d2l train --out DIR`) instead of
    /// training; names one section with a `train:` recipe. Repeat it for several seeds
    /// (their mean is compared).
    #[arg(long, value_name = "RUN_DIR")]
    pub from_run: Vec<PathBuf>,
    /// Where the records go, one folder `<id>-<name>` per section (`docs/runs` refreshes
    /// the repository's).
    #[arg(long, default_value = "runs/reproduce")]
    pub records: PathBuf,
    /// Where the runs themselves go (with their weights and checkpoints).
    #[arg(long, default_value = "runs/reproduce-work")]
    pub work: PathBuf,
    /// A data directory laid out like ../shared/data (also D2L_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Worker threads for the kernels (default: RAYON_NUM_THREADS or all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress lines from the runs.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `d2l reproduce`.
pub fn run(a: ReproduceArgs) -> CliResult<()> {
    let all = reproduce::sections()?;
    if a.list {
        print_list(&all);
        return Ok(());
    }
    if a.seeds == Some(0) {
        return Err("--seeds must be at least 1, got 0".into());
    }
    let mut picked: Vec<&Section> = Vec::new();
    let names: Vec<String> = if a.sections.is_empty() && a.quick {
        vec!["quick".into()]
    } else {
        a.sections.clone()
    };
    if names.is_empty() {
        return Err(
            "name a section (e.g. `d2l reproduce 4.10`), `all` or --quick; --list shows them"
                .into(),
        );
    }
    for n in &names {
        for s in reproduce::select(&all, n)? {
            if !picked.iter().any(|p| p.key() == s.key()) && (!a.quick || s.cost == Cost::Quick) {
                picked.push(s);
            }
        }
    }
    if picked.is_empty() {
        return Err(format!("none of {} is a quick section", names.join(", ")).into());
    }
    DataArgs {
        threads: a.threads,
        ..Default::default()
    }
    .apply_engine_settings()?;

    if !a.from_run.is_empty() {
        let [s] = picked.as_slice() else {
            return Err("--from-run records one section: name exactly one".into());
        };
        if s.zoo_model().is_none() {
            return Err(format!(
                "--from-run reads a `d2l train` run; {} is an experiment (recipe `{}`)",
                s.key(),
                s.recipe
            )
            .into());
        }
        let mut runs = Vec::new();
        let mut seeds = Vec::new();
        for dir in &a.from_run {
            let run = reproduce::values_from_run(dir)?;
            check_run_matches(s, &run, dir)?;
            let seed = run.config["seed"].as_u64().unwrap_or(0);
            if seeds.contains(&seed) {
                return Err(format!("--from-run: two runs with seed {seed}").into());
            }
            seeds.push(seed);
            runs.push(run);
        }
        let cmp = reproduce::compare(s, &seeds, &runs)?;
        return finish(&a, &[(s, cmp, runs)]);
    }

    let mut done = Vec::new();
    for s in picked {
        let n = a.seeds.unwrap_or(s.seeds);
        let seeds: Vec<u64> = (0..n as u64).collect();
        if !a.quiet {
            eprintln!(
                "reproducing {} ({}; {} seed{}, about {} on the development machine)",
                s.key(),
                s.title,
                n,
                if n == 1 { "" } else { "s" },
                human(s.seconds * n as f64)
            );
        }
        let mut runs = Vec::new();
        for &seed in &seeds {
            runs.push(run_once(&a, s, seed)?);
        }
        let cmp = reproduce::compare(s, &seeds, &runs)?;
        done.push((s, cmp, runs));
    }
    finish(&a, &done)
}

/// Prints the comparisons, writes the records and fails when a value is outside.
fn finish(a: &ReproduceArgs, done: &[(&Section, Comparison, Vec<RunValues>)]) -> CliResult<()> {
    let mut failed = Vec::new();
    for (s, cmp, runs) in done {
        println!("{cmp}");
        let dir = a.records.join(s.key());
        let mut m = machine();
        m["runs"] = if a.from_run.is_empty() {
            "run by this d2l reproduce".into()
        } else {
            "read from finished run folders (--from-run); their config.json says how they ran"
                .into()
        };
        reproduce::write_record(&dir, s, cmp, runs, m)?;
        println!("  record: {}\n", dir.display());
        if !cmp.passed() {
            failed.push(s.key());
        }
    }
    if failed.is_empty() {
        println!(
            "all {} section{} within the book's tolerances",
            done.len(),
            if done.len() == 1 { "" } else { "s" }
        );
        Ok(())
    } else {
        Err(format!(
            "outside the book's tolerance: {} (of {} sections)",
            failed.join(", "),
            done.len()
        )
        .into())
    }
}

/// One seed of one section: a zoo training through `d2l train`'s own code, or an
/// experiment of d2l-book.
fn run_once(a: &ReproduceArgs, s: &Section, seed: u64) -> CliResult<RunValues> {
    let out = a.work.join(s.key()).join(format!("seed{seed}"));
    if let Some((model, random_iter)) = s.zoo_model() {
        let mut t = TrainArgs::default_for(model);
        t.data.data_dir = a.data_dir.clone();
        t.data.seed = seed;
        t.data.threads = a.threads;
        t.random_iter = random_iter;
        t.out = Some(out.clone());
        t.overwrite = true;
        t.quiet = a.quiet;
        super::train::run(t)?;
        return Ok(reproduce::values_from_run(&out)?);
    }
    let hub = DataArgs {
        data_dir: a.data_dir.clone(),
        ..Default::default()
    }
    .hub(a.quiet);
    Ok(reproduce::run_experiment(
        &s.recipe, seed, &hub, &out, a.quiet,
    )?)
}

/// A run folder given to --from-run must be the section's model at the book's budget.
fn check_run_matches(s: &Section, run: &RunValues, dir: &Path) -> CliResult<()> {
    let (model, random_iter) = s.zoo_model().unwrap_or_default();
    let c = &run.config;
    let got = c["model"].as_str().unwrap_or("?");
    if got != model {
        return Err(format!(
            "{}: a run of `{got}`, but {} is `{model}`",
            dir.display(),
            s.key()
        )
        .into());
    }
    // Every flag that changes the recipe must be at the book's value (absent or null).
    let args = &c["args"];
    let changed: Vec<&str> = [
        "epochs",
        "lr",
        "optimizer",
        "momentum",
        "weight_decay",
        "dropout",
        "num_steps",
        "num_hiddens",
        "max_tokens",
    ]
    .into_iter()
    .filter(|k| !args[*k].is_null())
    .chain(
        [
            "batch_size",
            "resize",
            "train_limit",
            "test_limit",
            "dataset",
        ]
        .into_iter()
        .filter(|k| !args["data"][*k].is_null()),
    )
    .collect();
    let width = args["width_mult"].as_f64().unwrap_or(1.0);
    if !changed.is_empty() || width != 1.0 || args["random_iter"].as_bool() != Some(random_iter) {
        return Err(format!(
            "{}: not the book's recipe (changed: {}{})",
            dir.display(),
            changed.join(", "),
            if width != 1.0 { " width_mult" } else { "" }
        )
        .into());
    }
    Ok(())
}

/// What the records say about the machine.
fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|m| m.trim().to_string())
    });
    serde_json::json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "threads": d2l_tensor::num_threads(),
        "device": "cpu",
        "build": if cfg!(debug_assertions) { "debug (or test profile)" } else { "release" },
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "d2l_version": env!("CARGO_PKG_VERSION"),
    })
}

/// Seconds as `40 s`, `12 min`, `2.1 h`.
fn human(s: f64) -> String {
    if s < 1.0 {
        "<1 s".into()
    } else if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// `d2l reproduce --list`.
fn print_list(all: &[Section]) {
    println!(
        "{:<30} {:<8} {:>5} {:>9}  what (book: where)",
        "section", "cost", "seeds", "expected"
    );
    let mut total = [0.0f64; 3];
    for s in all {
        let t = s.seconds * s.seeds as f64;
        total[s.cost as usize] += t;
        println!(
            "{:<30} {:<8} {:>5} {:>9}  {} ({})",
            s.key(),
            s.cost.to_string(),
            s.seeds,
            human(t),
            s.title,
            s.where_
        );
    }
    println!(
        "\nexpected time on the development machine (2 shared cores, release build; a debug build is several times slower):\n  --quick {}, quick + minutes {}, all {}",
        human(total[0]),
        human(total[0] + total[1]),
        human(total.iter().sum())
    );
}
