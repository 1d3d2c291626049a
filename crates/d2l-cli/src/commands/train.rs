//! `d2l train MODEL`: the book's recipe for the model, flags override it; a run
//! directory collects metrics, curves, weights and the config (D2L 3.6 `train_ch3`).

use super::{find_model, image_data, CliResult, DataArgs, DeviceArgs};
use clap::Args;
use d2l_data::loader::{load_array, DataLoader};
use d2l_data::synthetic::synthetic_data;
use d2l_dist::Comm;
use d2l_models::recipe::OptimizerKind;
use d2l_models::zoo::{ModelInfo, TaskKind};
use d2l_nn::loss::{cross_entropy, mse_loss_with, Reduction};
use d2l_nn::optim::{Adam, AdamConfig, AdamW, Optimizer, ParamGroup, Sgd, SgdConfig};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{Generator, Tensor};
use d2l_train::dist::Distributed;
use d2l_train::run_dir::{RunDir, RunMode};
use d2l_train::trainer::{LossFn, Task, TrainConfig, TrainSummary, Trainer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Flags of `d2l train`. They are saved in the run's `config.json` (under `args`), so
/// that `--resume` continues with exactly the same settings.
#[derive(Args, Clone, Debug, Serialize, Deserialize)]
pub struct TrainArgs {
    /// Model name (`d2l models` lists them; with --resume, the run's model by default).
    #[arg(required_unless_present = "resume", default_value = "")]
    pub model: String,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    #[serde(skip)]
    pub device: DeviceArgs,
    /// Continue the run in this folder from its checkpoint (the settings come from its
    /// config.json; --epochs may raise the total).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Replace the earlier run in --out (its files are removed first).
    #[arg(long)]
    pub overwrite: bool,
    /// With --weight-decay, decay the biases too (PyTorch's default); without it only
    /// weights decay, as D2L 4.5 does.
    #[arg(long)]
    pub decay_bias: bool,
    /// Epochs (default: the book's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate (default: the book's).
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Optimiser: sgd, adam or adamw (default: the book's).
    #[arg(long)]
    pub optimizer: Option<String>,
    /// SGD momentum.
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Weight decay (L2 for sgd/adam, decoupled for adamw).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Dropout probability for models that have dropout (both layers).
    #[arg(long, allow_negative_numbers = true)]
    pub dropout: Option<f64>,
    /// Scale hidden widths (a smaller model for a laptop).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub width_mult: f64,
    /// Run directory (default runs/<model>-<timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
    /// End with one JSON line summarising the run.
    #[arg(long)]
    pub json: bool,
    /// char-* models: random sampling with a fresh state per batch (D2L 8.3) instead of
    /// sequential partitioning.
    #[arg(long)]
    pub random_iter: bool,
    /// char-* models: time steps per sequence (default: the book's 35).
    #[arg(long)]
    pub num_steps: Option<usize>,
    /// char-* models: hidden units (default: the book's 256; 512 for char-rnn-scratch).
    #[arg(long)]
    pub num_hiddens: Option<usize>,
    /// char-* models: use the first N characters of the corpus, 0 for all (default: the
    /// book's 10000).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// tiny-ssd: class loss `ce` (the book), `focal` or `focal:GAMMA` (13.7 exercise).
    #[arg(long)]
    pub cls_loss: Option<String>,
    /// tiny-ssd: box loss `l1` (the book), `smooth-l1` or `smooth-l1:SIGMA` (13.7 exercise).
    #[arg(long)]
    pub box_loss: Option<String>,
    /// tiny-ssd on the generated set: object classes, 1–4 (default 1, like bananas).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// tiny-ssd on the generated set: most objects per image (default 1).
    #[arg(long)]
    pub max_objects: Option<usize>,
    /// fcn: torchvision ResNet-18 weights (.pth) for the body (13.11; else from scratch).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Data-parallel training over the processes of an MPI launch (`mpirun -np 4
    /// --bind-to none d2l train lenet --distributed`): --batch-size is the global batch,
    /// split over the ranks; only rank 0 prints and writes the run folder. Without a
    /// launcher: one rank. See docs/DISTRIBUTED.md.
    #[arg(long)]
    #[serde(default)]
    pub distributed: bool,
    /// With --distributed: batch-norm statistics over the global batch (PyTorch's
    /// SyncBatchNorm) instead of each rank's rows.
    #[arg(long)]
    #[serde(default)]
    pub sync_bn: bool,
}

impl TrainArgs {
    /// The arguments of `d2l train NAME` with no flags.
    pub fn default_for(model: &str) -> TrainArgs {
        TrainArgs {
            model: model.to_string(),
            data: DataArgs::default(),
            device: DeviceArgs::default(),
            resume: None,
            overwrite: false,
            decay_bias: false,
            epochs: None,
            lr: None,
            optimizer: None,
            momentum: None,
            weight_decay: None,
            dropout: None,
            width_mult: 1.0,
            out: None,
            quiet: false,
            json: false,
            random_iter: false,
            num_steps: None,
            num_hiddens: None,
            max_tokens: None,
            cls_loss: None,
            box_loss: None,
            num_classes: None,
            max_objects: None,
            weights: None,
            distributed: false,
            sync_bn: false,
        }
    }
}

/// Checks the numeric flags before any work starts.
fn validate(a: &TrainArgs) -> CliResult<()> {
    if let Some(lr) = a.lr {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!("--lr must be a positive number, got {lr}").into());
        }
    }
    if a.epochs == Some(0) {
        return Err("--epochs must be at least 1, got 0".into());
    }
    if let Some(p) = a.dropout {
        if !(0.0..1.0).contains(&p) {
            return Err(format!("--dropout must be in [0, 1), got {p}").into());
        }
    }
    for (flag, v) in [
        ("--momentum", a.momentum),
        ("--weight-decay", a.weight_decay),
    ] {
        if let Some(v) = v {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("{flag} must be a non-negative number, got {v}").into());
            }
        }
    }
    if !(a.width_mult > 0.0 && a.width_mult.is_finite()) {
        return Err(format!("--width-mult must be positive, got {}", a.width_mult).into());
    }
    Ok(())
}

/// Builds the optimiser the recipe (or the flags) ask for over `named` parameters.
/// Weight decay applies to every parameter with `decay_bias`, and otherwise only to
/// parameters that are not biases (D2L 4.5 decays `net[0].weight` alone).
pub fn make_optimizer(
    kind: OptimizerKind,
    named: Vec<(String, Tensor)>,
    lr: f64,
    momentum: f64,
    wd: f64,
    decay_bias: bool,
) -> CliResult<Box<dyn Optimizer>> {
    let groups = if wd == 0.0 || decay_bias {
        vec![ParamGroup::new(named.into_iter().map(|(_, t)| t))]
    } else {
        let (bias, weights): (Vec<_>, Vec<_>) = named.into_iter().partition(|(n, _)| is_bias(n));
        let mut groups = vec![ParamGroup::new(weights.into_iter().map(|(_, t)| t))];
        if !bias.is_empty() {
            groups.push(ParamGroup::new(bias.into_iter().map(|(_, t)| t)).weight_decay(0.0));
        }
        groups
    };
    let adam = AdamConfig {
        lr,
        weight_decay: wd,
        ..Default::default()
    };
    Ok(match kind {
        OptimizerKind::Sgd => Box::new(Sgd::with_groups(
            groups,
            SgdConfig {
                lr,
                momentum,
                weight_decay: wd,
                ..Default::default()
            },
        )?),
        OptimizerKind::Adam => Box::new(Adam::with_groups(groups, adam)?),
        OptimizerKind::AdamW => Box::new(AdamW::with_groups(groups, adam)?),
    })
}

/// Whether a parameter name names a bias (`0.bias`, `conv.b`, `b_h`).
fn is_bias(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    last == "bias" || last == "b" || last.starts_with("b_")
}

/// `a` with the settings of the run it resumes (from the run's `config.json`), when
/// `--resume` is given. Flags that would change the run are refused; `--epochs`,
/// `--quiet`, `--json`, `--device` and `--threads` may differ.
pub fn resolve_resume(a: TrainArgs) -> CliResult<TrainArgs> {
    if a.overwrite && a.resume.is_none() && a.out.is_none() {
        return Err("--overwrite needs --out DIR (the folder to replace)".into());
    }
    let Some(dir) = a.resume.clone() else {
        return Ok(a);
    };
    if a.overwrite {
        return Err("--resume and --overwrite exclude each other".into());
    }
    if a.out.as_ref().is_some_and(|o| o != &dir) {
        return Err(
            "--out does not apply with --resume (the run continues in its own folder)".into(),
        );
    }
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| {
        format!(
            "cannot resume {}: cannot read {} ({e})",
            dir.display(),
            cfg_path.display()
        )
    })?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "cannot resume {}: {} is not JSON ({e})",
            dir.display(),
            cfg_path.display()
        )
    })?;
    let stored: TrainArgs = serde_json::from_value(config["args"].clone()).map_err(|_| {
        format!(
            "cannot resume {}: its config.json holds no `d2l train` settings (a run of another command or an older version)",
            dir.display()
        )
    })?;
    let norm = |m: &str| m.trim().to_ascii_lowercase().replace('_', "-");
    if !a.model.is_empty() && norm(&a.model) != norm(&stored.model) {
        return Err(format!(
            "cannot resume {}: it trains `{}`, not `{}`",
            dir.display(),
            stored.model,
            a.model
        )
        .into());
    }
    // Every flag given that differs from both its default and the run's is refused.
    let flat = |v: serde_json::Value| -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        if let serde_json::Value::Object(m) = v {
            for (k, v) in m {
                match v {
                    serde_json::Value::Object(inner) => out.extend(inner),
                    v => out.push((k, v)),
                }
            }
        }
        out
    };
    let given = flat(serde_json::to_value(&a)?);
    let defaults: std::collections::HashMap<String, serde_json::Value> =
        flat(serde_json::to_value(TrainArgs::default_for(&stored.model))?)
            .into_iter()
            .collect();
    let kept: std::collections::HashMap<String, serde_json::Value> =
        flat(serde_json::to_value(&stored)?).into_iter().collect();
    for (k, v) in given {
        let free = matches!(
            k.as_str(),
            "model"
                | "epochs"
                | "quiet"
                | "json"
                | "resume"
                | "out"
                | "overwrite"
                | "threads"
                | "distributed"
        );
        if !free && Some(&v) != defaults.get(&k) && Some(&v) != kept.get(&k) {
            return Err(format!(
                "--{} cannot change when resuming (the run's config.json has {}); start a new run instead",
                k.replace('_', "-"),
                kept.get(&k).cloned().unwrap_or(serde_json::Value::Null)
            )
            .into());
        }
    }
    let mut r = stored;
    r.resume = Some(dir.clone());
    r.out = Some(dir);
    r.overwrite = false;
    if let Some(e) = a.epochs {
        r.epochs = Some(e);
    }
    r.quiet = a.quiet;
    r.json = a.json;
    r.device = a.device;
    r.distributed = a.distributed;
    if a.data.threads.is_some() {
        r.data.threads = a.data.threads;
    }
    Ok(r)
}

/// The run folder of `d2l train`: continued with `--resume`, replaced with
/// `--overwrite`, otherwise new (a folder holding another run is refused).
pub fn open_run_dir(a: &TrainArgs, name: &str) -> CliResult<RunDir> {
    let mode = if a.resume.is_some() {
        RunMode::Resume
    } else if a.overwrite {
        if a.out.is_none() {
            return Err("--overwrite needs --out DIR (the folder to replace)".into());
        }
        RunMode::Overwrite
    } else {
        RunMode::New
    };
    Ok(RunDir::open(a.out.clone(), name, mode)?)
}

/// The run folder of this process: [`open_run_dir`] for a plain run and for rank 0 of a
/// distributed one; the other ranks write nothing (`None`).
pub fn open_train_dir(a: &TrainArgs, name: &str) -> CliResult<Option<RunDir>> {
    if dist_rank() != 0 {
        return Ok(None);
    }
    open_run_dir(a, name).map(Some)
}

/// The run folder's path (empty on the ranks that write none).
pub fn run_path(run_dir: &Option<RunDir>) -> PathBuf {
    run_dir
        .as_ref()
        .map(|r| r.path().to_path_buf())
        .unwrap_or_default()
}

/// Writes `config.json` with the flags under `args` (kept as it is when resuming; nothing
/// without a run folder).
pub fn write_run_config(
    run_dir: Option<&RunDir>,
    a: &TrainArgs,
    mut config: serde_json::Value,
) -> CliResult<()> {
    let Some(run_dir) = run_dir else {
        return Ok(());
    };
    if a.resume.is_some() {
        return Ok(());
    }
    config["args"] = serde_json::to_value(a)?;
    Ok(run_dir.write_config(&config)?)
}

/// After a run: an interrupted one (Ctrl-C) becomes the exit status 130.
pub fn check_interrupted(stopped_early: Option<&str>, run_dir: &Path) -> CliResult<()> {
    if stopped_early == Some("interrupted") {
        return Err(super::Interrupted(format!(
            "interrupted: the run is saved in {}; continue it with `d2l train --resume {}`",
            run_dir.display(),
            run_dir.display()
        ))
        .into());
    }
    Ok(())
}

/// This process's communicator in a `--distributed` run.
static COMM: std::sync::OnceLock<Comm> = std::sync::OnceLock::new();

/// This process's rank (0 outside a distributed run).
pub fn dist_rank() -> usize {
    COMM.get().map_or(0, |c| c.rank())
}

/// The distributed part of the trainer's configuration (`None` without --distributed):
/// the communicator and the settings every rank must share.
pub fn distributed(a: &TrainArgs) -> CliResult<Option<Distributed>> {
    let Some(comm) = COMM.get() else {
        return Ok(None);
    };
    // The flags that may differ between ranks (rank 0 alone prints) are left out.
    let mut shared = a.clone();
    shared.quiet = false;
    shared.json = false;
    shared.data.threads = None;
    if a.sync_bn && comm.size() > 1 {
        d2l_nn::norm::set_batch_norm_sync(Some(sync_bn_reducer(comm.clone())));
    }
    Ok(Some(Distributed {
        comm: comm.clone(),
        config_key: serde_json::to_string(&shared)?,
    }))
}

/// The sum over the ranks that synchronised batch norm needs.
fn sync_bn_reducer(comm: Comm) -> d2l_nn::norm::BatchNormSync {
    std::sync::Arc::new(move |buf: &mut [f32]| {
        comm.allreduce_sum(buf).map_err(d2l_train::dist::comm_error)
    })
}

/// Starts the communicator for `--distributed`: rank 0 says how the job runs, the other
/// ranks go quiet (no progress, no stdout), and threads per rank default to the cores
/// per rank.
fn start_distributed(a: &mut TrainArgs) -> CliResult<()> {
    if a.sync_bn && !a.distributed {
        return Err("--sync-bn needs --distributed".into());
    }
    if !a.distributed {
        return Ok(());
    }
    let comm = Comm::init()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if a.data.threads.is_none() && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        a.data.threads = Some((cores / comm.local_size().max(1)).max(1));
    }
    if comm.is_root() {
        match comm.note() {
            Some(n) => eprintln!("note: --distributed: {n}"),
            None if !a.quiet => eprintln!(
                "distributed: {} ranks over {} ({} on this machine), {} threads per rank; --batch-size is the global batch",
                comm.size(),
                comm.backend(),
                comm.local_size(),
                a.data.threads.map_or("all".to_string(), |t| t.to_string()),
            ),
            None => {}
        }
    } else {
        a.quiet = true;
        a.json = false;
        silence_stdout();
    }
    let _ = COMM.set(comm);
    Ok(())
}

/// Sends this process's standard output to /dev/null (the ranks other than 0: only rank
/// 0 prints results; errors still go to standard error).
fn silence_stdout() {
    #[cfg(unix)]
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: opening /dev/null and duplicating it onto descriptor 1; no Rust object
        // owns descriptor 1, and the stdout handle keeps writing to it.
        unsafe {
            let fd = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if fd >= 0 && fd != 1 {
                libc::dup2(fd, 1);
                libc::close(fd);
            }
        }
    }
}

/// Ends a distributed run: in order when every rank finished (or failed together), and
/// by ending the whole job when this rank alone failed (the others would wait for it in
/// the next collective forever).
fn finish_distributed(result: CliResult<()>) -> CliResult<()> {
    let Some(comm) = COMM.get() else {
        return result;
    };
    let (rank, size) = (comm.rank(), comm.size());
    match result {
        Ok(()) => {
            comm.barrier()?;
            comm.shutdown();
            Ok(())
        }
        Err(e) if size == 1 => {
            comm.shutdown();
            Err(e)
        }
        Err(e) => {
            let interrupted = e.downcast_ref::<super::Interrupted>().is_some();
            let shared = interrupted
                || e.downcast_ref::<d2l_tensor::Error>()
                    .is_some_and(d2l_train::dist::is_shared_error);
            if shared {
                // Every rank stopped at the same point: rank 0 says why, all end in order.
                if rank == 0 {
                    eprintln!("{}{e}", if interrupted { "" } else { "error: " });
                }
                comm.shutdown();
                std::process::exit(if interrupted { 130 } else { 1 });
            }
            eprintln!("error: rank {rank} of {size} failed, stopping the job: {e}");
            comm.abort(1)
        }
    }
}

/// Runs `d2l train`: the zoo says the model's task, which picks the data and the task of
/// the one training loop.
pub fn run(a: TrainArgs) -> CliResult<()> {
    let mut a = resolve_resume(a)?;
    start_distributed(&mut a)?;
    let result = run_task(a);
    finish_distributed(result)
}

fn run_task(a: TrainArgs) -> CliResult<()> {
    let entry = d2l_models::zoo::entry(&a.model)?;
    if a.weights.is_some() && entry.task != TaskKind::Segmentation {
        return Err(format!(
            "--weights (pretrained body weights) applies to fcn only, not `{}`",
            a.model
        )
        .into());
    }
    match entry.task {
        TaskKind::LanguageModel => return super::seq::run(a),
        TaskKind::Detection => return super::detect::train(a),
        TaskKind::Segmentation => return super::segment::train(a),
        TaskKind::Classification | TaskKind::Regression => {}
    }
    validate(&a)?;
    let model = find_model(&a.model)?;
    let device = a.device.resolve()?;
    a.data.apply_engine_settings()?;
    let r = &model.recipe;
    let epochs = a.epochs.unwrap_or(r.epochs);
    let lr = a.lr.unwrap_or(r.lr);
    let kind: OptimizerKind = match &a.optimizer {
        Some(s) => s.parse()?,
        None => r.optimizer,
    };
    let momentum = a.momentum.unwrap_or(r.momentum);
    let wd = a.weight_decay.unwrap_or(r.weight_decay);

    let (net, train, test, dataset, task) = match model.task {
        other @ (TaskKind::LanguageModel | TaskKind::Detection | TaskKind::Segmentation) => {
            return Err(format!("`{}` is a {} model", model.name, other.as_str()).into())
        }
        TaskKind::Classification => {
            let (train, test, notice) = image_data(&model, &a.data, a.quiet)?;
            if let Some(m) = &notice.message {
                eprintln!("notice: {m}");
            }
            let (h, w) = train_image_size(&a, &model);
            let mut cfg = model.config_for(a.data.resize.or(r.resize));
            cfg.in_shape = vec![1, h, w];
            cfg.num_outputs = notice.used.num_classes();
            cfg.width_mult = a.width_mult;
            if let Some(p) = a.dropout {
                cfg.dropout = Some((p, p));
            }
            (
                model.build(&cfg).map_err(|e| {
                    super::sizes::name_flags(e, &format!("--width-mult {}", a.width_mult))
                })?,
                train,
                Some(test),
                notice.used.as_str().to_string(),
                Task::Classification,
            )
        }
        TaskKind::Regression => {
            // The book's synthetic set (3.1): w = [2, -3.4], b = 4.2, 1000 examples.
            let batch = a.data.batch_size.unwrap_or(r.batch_size);
            if batch == 0 {
                return Err("--batch-size must be at least 1, got 0".into());
            }
            let true_w = Tensor::from_slice(&[2.0f32, -3.4], &[2])?;
            let (x, y) = synthetic_data(&true_w, 4.2, 1000, &mut Generator::new(a.data.seed))?;
            let train = load_array(x.clone(), y.clone(), batch, true)?;
            let test = load_array(x, y, 1000, false)?;
            (
                model.build(&model.default_config())?,
                train,
                Some(test),
                "synthetic".to_string(),
                Task::Regression,
            )
        }
    };

    let mut optimizer =
        make_optimizer(kind, net.named_parameters(), lr, momentum, wd, a.decay_bias)?;
    if let Some(b) = a.data.batch_size {
        let ranks = COMM.get().map_or(1, |c| c.size());
        if b < ranks {
            return Err(format!(
                "--batch-size {b} is the global batch and must be at least the number of ranks ({ranks})"
            )
            .into());
        }
    }
    let distributed = distributed(&a)?;
    if let (Some(d), true) = (&distributed, a.sync_bn) {
        // Synchronised batch norm needs rows on every rank in every batch.
        let ranks = d.comm.size();
        let (n, b) = (train.num_examples(), train.batch_size());
        if n % b != 0 && n % b < ranks {
            return Err(format!(
                "--sync-bn: the last batch of {} examples is smaller than the {ranks} ranks (choose --batch-size or --train-limit so that it is not)",
                n % b
            )
            .into());
        }
    }
    let run_dir = open_train_dir(&a, model.name)?;
    let config = json!({
        "model": model.name, "dataset": dataset, "epochs": epochs, "lr": lr,
        "optimizer": kind.as_str(), "momentum": momentum, "weight_decay": wd,
        "weight_decay_applies_to": if wd == 0.0 { "nothing" } else if a.decay_bias { "all parameters" } else { "weights only (not biases)" },
        "batch_size": a.data.batch_size.unwrap_or(r.batch_size), "resize": a.data.resize.or(r.resize),
        "dropout": a.dropout, "width_mult": a.width_mult, "seed": a.data.seed,
        "train_limit": a.data.train_limit, "test_limit": a.data.test_limit,
        "threads": d2l_tensor::num_threads(), "params": net.num_parameters(), "section": model.section,
        "device": device.to_string(),
        "ranks": distributed.as_ref().map_or(1, |d| d.comm.size()),
    });
    write_run_config(run_dir.as_ref(), &a, config)?;
    if !a.quiet && a.resume.is_none() {
        eprintln!(
            "training {} ({}, D2L {}) on {dataset} on {device}: {epochs} epochs, {} lr {lr}, {} parameters → {}",
            model.name,
            model.title,
            model.section,
            kind.as_str(),
            net.num_parameters(),
            run_path(&run_dir).display()
        );
    }
    let loss: LossFn = match task {
        Task::Classification => Box::new(|y_hat: &Tensor, y: &Tensor| cross_entropy(y_hat, y)),
        Task::Regression => {
            Box::new(|y_hat: &Tensor, y: &Tensor| mse_loss_with(y_hat, y, Reduction::Mean))
        }
    };
    let run_path = run_path(&run_dir);
    let config_t = TrainConfig {
        epochs,
        quiet: a.quiet,
        task,
        run_dir,
        device,
        resume: a.resume.is_some(),
        distributed,
        ..Default::default()
    };
    let summary = {
        let mut trainer = Trainer::new(&net, loss, optimizer.as_mut(), config_t);
        trainer.fit(&train, test.as_ref())?
    };
    report(&a, &model, &net, &dataset, epochs, &summary, &run_path)?;
    check_interrupted(summary.stopped_early.as_deref(), &run_path)?;
    // D2L 7.5 prints the first batch-norm layer's learned γ and β after training BN-LeNet.
    if let Some(bn) = d2l_models::cnn::bn_report(model.name, &net) {
        println!("{bn}");
    }
    Ok(())
}

fn train_image_size(a: &TrainArgs, model: &ModelInfo) -> (usize, usize) {
    match a.data.resize.or(model.recipe.resize) {
        Some(r) => (r, r),
        None => (28, 28),
    }
}

/// The learned `w` and `b` of `linreg` against the synthetic data's true
/// `w = [2, -3.4]`, `b = 4.2` (D2L 3.3's "error in estimating w / b").
fn linreg_report(net: &Sequential) -> Option<String> {
    let params = net.named_parameters();
    let get = |n: &str| {
        params
            .iter()
            .find(|(k, _)| k.ends_with(n))
            .map(|(_, t)| t.to_f64_vec())
    };
    let (w, b) = (get("weight")?, get("bias")?);
    if w.len() != 2 || b.len() != 1 {
        return None;
    }
    Some(format!(
        "w = [{:.4}, {:.4}] (true [2, -3.4], error [{:.2e}, {:.2e}]), b = {:.4} (true 4.2, error {:.2e})",
        w[0],
        w[1],
        2.0 - w[0],
        -3.4 - w[1],
        b[0],
        4.2 - b[0]
    ))
}

fn report(
    a: &TrainArgs,
    model: &ModelInfo,
    net: &Sequential,
    dataset: &str,
    epochs: usize,
    s: &TrainSummary,
    run_path: &std::path::Path,
) -> CliResult<()> {
    let fmt = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
    if model.task == TaskKind::Regression {
        // D2L 3.3 prints the squared loss and the estimation errors of w and b.
        let test_loss = s.epochs.last().and_then(|m| m.test_loss);
        println!(
            "loss {:.6}, test loss {}",
            s.train_loss,
            test_loss.map_or("-".into(), |v| format!("{v:.6}"))
        );
        if model.name == "linreg" {
            if let Some(line) = linreg_report(net) {
                println!("{line}");
            }
        }
    } else {
        println!(
            "loss {:.3}, train acc {}, test acc {}",
            s.train_loss,
            fmt(s.train_acc),
            fmt(s.test_acc)
        );
    }
    println!(
        "{:.1} examples/sec, {:.1} s; run saved in {}",
        s.examples_per_sec,
        s.seconds,
        run_path.display()
    );
    if let Some(why) = &s.stopped_early {
        println!("stopped early: {why}");
    }
    if a.json {
        let line = json!({
            "model": model.name, "dataset": dataset, "epochs": epochs,
            "epochs_run": s.epochs.len(), "train_loss": s.train_loss, "train_acc": s.train_acc,
            "test_acc": s.test_acc, "examples_per_sec": s.examples_per_sec,
            "params": net.num_parameters(), "seconds": s.seconds,
            "run_dir": run_path, "stopped_early": s.stopped_early, "device": s.device,
            "distributed": s.distributed,
        });
        println!("{line}");
    }
    Ok(())
}

/// The checks `d2l train` makes for a model with a fixed recipe (tiny-ssd, the R-CNNs,
/// fcn): none of the `unused` flags (each with whether it was given) may be given, as they
/// do not apply to `model` (its name and, in brackets, what it trains with), `--lr` must be
/// positive and `--epochs` and `--batch-size` at least 1.
pub(super) fn check_recipe_flags(
    a: &TrainArgs,
    model: &str,
    unused: &[(&str, bool)],
) -> CliResult<()> {
    if let Some((flag, _)) = unused.iter().find(|(_, given)| *given) {
        return Err(format!("{flag} does not apply to {model}").into());
    }
    if let Some(lr) = a.lr {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!("--lr must be a positive number, got {lr}").into());
        }
    }
    if a.epochs == Some(0) || a.data.batch_size == Some(0) {
        return Err("--epochs and --batch-size must be at least 1".into());
    }
    Ok(())
}

/// Unless `--quiet`: how many training and validation examples were read, and from where.
pub(super) fn print_data_sizes(a: &TrainArgs, train: &DataLoader, val: &DataLoader, source: &str) {
    if !a.quiet {
        println!(
            "read {} training examples, {} validation examples ({source})",
            train.num_examples(),
            val.num_examples()
        );
    }
}
