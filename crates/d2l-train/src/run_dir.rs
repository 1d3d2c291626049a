//! Run directories: everything one training run leaves behind (the files behind D2L 3.6's
//! `train_ch3` animation and `torch.save` of 5.5, kept on disk).
//!
//! A [`RunDir`] (default `runs/<model>-<YYYYmmdd-HHMMSS>`, UTC) holds
//!
//! | file | written by | content |
//! |---|---|---|
//! | `config.json` | [`RunDir::write_config`] | the exact configuration of the run |
//! | `metrics.csv` | [`RunDir::write_metrics`] | a header row (`epoch`, the task's columns, speed, seconds), one row per epoch |
//! | `curves.png`, `curves.svg` | [`RunDir::plot_task_curves`] | the task's curves against epochs (loss and accuracies, perplexity, …) |
//! | `model.safetensors` | [`RunDir::save_model`] | the model's state dict |
//! | `checkpoint.safetensors` | [`crate::checkpoint::Checkpoint::save`] | weights, buffers, optimiser state, generators, epoch, metrics so far |
//! | `summary.json` | [`RunDir::write_summary`] | the run's [`TrainSummary`] |
//! | `.d2l-run.lock` | [`RunDir::open`] | empty; the writing process holds an OS lock on it |
//!
//! Every file is written atomically (a temporary file in the same folder, then a rename),
//! so a run stopped at any moment (Ctrl-C, a crash) leaves each file either as it was or
//! complete.

use crate::plot::{save_line_plot, PlotSpec, Series};
use crate::tasks::CurveSpec;
use crate::trainer::{EpochMetrics, TrainSummary};
use d2l_nn::Module;
use d2l_tensor::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The header row of a classification run's `metrics.csv`.
pub const METRICS_HEADER: &str =
    "epoch,train_loss,train_acc,test_acc,test_loss,examples_per_sec,seconds";

/// The files a training run writes into its folder (what makes a folder "hold a run").
pub const RUN_FILES: &[&str] = &[
    "config.json",
    "metrics.csv",
    "summary.json",
    "model.safetensors",
    "checkpoint.safetensors",
    "curves.png",
    "curves.svg",
];

/// The lock file a writing process holds (an OS file lock) in its run folder.
pub const LOCK_FILE: &str = ".d2l-run.lock";

/// What to do with a run folder that may hold an earlier run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunMode {
    /// A new run: a folder holding another run's files is refused.
    #[default]
    New,
    /// A new run replacing an earlier one: the earlier run's files are removed first.
    Overwrite,
    /// Continue the run in the folder from its `checkpoint.safetensors`.
    Resume,
}

fn run_err(msg: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op: "run_dir",
        msg: msg.into(),
    }
}

pub use d2l_nn::serialize::write_atomic;

/// `YYYYmmdd-HHMMSS` in UTC for a time in seconds since the Unix epoch.
pub fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{h:02}{m:02}{s:02}")
}

/// A model name made safe for a folder name (letters, digits, `-`, `_`, `.`).
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('.').to_string();
    if s.is_empty() {
        "model".into()
    } else {
        s
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The folder of one training run; see the module docs for its files. While a `RunDir`
/// (or a clone of it) lives, the process holds the folder's lock, so a second process
/// cannot write into the same folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
    model_name: String,
    _lock: Arc<fs::File>,
}

impl PartialEq for RunDir {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.model_name == other.model_name
    }
}

impl Eq for RunDir {}

/// Takes the folder's OS lock (released when the process ends, even on a kill).
fn lock(dir: &Path) -> Result<fs::File> {
    let path = dir.join(LOCK_FILE);
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| run_err(format!("cannot open the lock file {}: {e}", path.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(run_err(format!(
            "another process is writing to {} (it holds {}); wait for it to finish or choose another --out",
            dir.display(),
            path.display()
        ))),
        Err(fs::TryLockError::Error(e)) => Err(run_err(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

impl RunDir {
    /// Creates a new run folder ([`RunMode::New`]); see [`RunDir::open`].
    pub fn create(path: Option<PathBuf>, model_name: &str) -> Result<RunDir> {
        RunDir::open(path, model_name, RunMode::New)
    }

    /// Opens the run folder `path`, or creates `runs/<model_name>-<YYYYmmdd-HHMMSS>` (UTC)
    /// under the current folder (with `-2`, `-3`, … appended if that name is taken), and
    /// takes its lock. A folder that holds another run's files ([`RUN_FILES`]) is refused
    /// with [`RunMode::New`], emptied of them with [`RunMode::Overwrite`], and continued
    /// with [`RunMode::Resume`] (which needs its `checkpoint.safetensors`). A folder locked
    /// by another process is refused in every mode.
    pub fn open(path: Option<PathBuf>, model_name: &str, mode: RunMode) -> Result<RunDir> {
        let mkdir = |p: &Path| {
            fs::create_dir_all(p)
                .map_err(|e| run_err(format!("cannot create the run folder {}: {e}", p.display())))
        };
        let (path, lock) = match path {
            Some(p) => {
                if p.exists() && !p.is_dir() {
                    return Err(run_err(format!(
                        "{} exists and is not a folder",
                        p.display()
                    )));
                }
                if mode == RunMode::Resume && !p.join("checkpoint.safetensors").is_file() {
                    return Err(run_err(format!(
                        "nothing to resume in {}: it has no checkpoint.safetensors",
                        p.display()
                    )));
                }
                mkdir(&p)?;
                let lock = lock(&p)?;
                let held: Vec<&str> = RUN_FILES
                    .iter()
                    .copied()
                    .filter(|f| p.join(f).exists())
                    .collect();
                match mode {
                    RunMode::New if !held.is_empty() => {
                        return Err(run_err(format!(
                            "{} holds an earlier run ({}); pass --overwrite to replace it or --resume {} to continue it",
                            p.display(),
                            held.join(", "),
                            p.display()
                        )))
                    }
                    RunMode::Overwrite => {
                        for f in held {
                            let f = p.join(f);
                            fs::remove_file(&f).map_err(|e| {
                                run_err(format!("cannot remove the old {}: {e}", f.display()))
                            })?;
                        }
                    }
                    _ => {}
                }
                (p, lock)
            }
            None if mode == RunMode::Resume => {
                return Err(run_err("resuming needs the run folder to continue"));
            }
            None => {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let base = format!("{}-{}", sanitize(model_name), utc_timestamp(secs));
                let runs = PathBuf::from("runs");
                mkdir(&runs)?;
                let mut k = 1;
                let cand = loop {
                    let cand = if k == 1 {
                        runs.join(&base)
                    } else {
                        runs.join(format!("{base}-{k}"))
                    };
                    // create_dir (not _all) fails if it exists: claims the name atomically.
                    match fs::create_dir(&cand) {
                        Ok(()) => break cand,
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => k += 1,
                        Err(e) => {
                            return Err(run_err(format!(
                                "cannot create the run folder {}: {e}",
                                cand.display()
                            )))
                        }
                    }
                };
                let lock = lock(&cand)?;
                (cand, lock)
            }
        };
        Ok(RunDir {
            path,
            model_name: model_name.to_string(),
            _lock: Arc::new(lock),
        })
    }

    /// The checkpoint's path (`checkpoint.safetensors`).
    pub fn checkpoint_path(&self) -> PathBuf {
        self.file("checkpoint.safetensors")
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model name the run was created for (used as the curves' title).
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The path of a file in the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `config.json` (pretty-printed): the exact configuration of the run.
    pub fn write_config(&self, config: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_string_pretty(config)
            .map_err(|e| run_err(format!("cannot encode the config: {e}")))?;
        write_atomic(&self.file("config.json"), format!("{text}\n").as_bytes())
    }

    /// Writes `metrics.csv` (with the `csv` crate), atomically: a header row `epoch`, the
    /// task's `columns`, `{unit}_per_sec`, `seconds`, then one row per epoch, with an
    /// empty field for a value the epoch does not have.
    pub fn write_metrics(
        &self,
        epochs: &[EpochMetrics],
        columns: &[&str],
        unit: &str,
    ) -> Result<()> {
        let path = self.file("metrics.csv");
        let csv_err = |e: csv::Error| run_err(format!("cannot write {}: {e}", path.display()));
        let mut w = csv::Writer::from_writer(Vec::new());
        let speed = format!("{unit}_per_sec");
        let mut header = vec!["epoch"];
        header.extend_from_slice(columns);
        header.push(&speed);
        header.push("seconds");
        w.write_record(&header).map_err(csv_err)?;
        for m in epochs {
            let mut row = vec![m.epoch.to_string()];
            row.extend(columns.iter().map(|c| opt(m.column(c))));
            row.push(m.examples_per_sec.to_string());
            row.push(m.seconds.to_string());
            w.write_record(&row).map_err(csv_err)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| run_err(format!("cannot write {}: {e}", path.display())))?;
        write_atomic(&path, &bytes)
    }

    /// Writes `summary.json` (pretty-printed).
    pub fn write_summary(&self, summary: &TrainSummary) -> Result<()> {
        let text = serde_json::to_string_pretty(summary)
            .map_err(|e| run_err(format!("cannot encode the summary: {e}")))?;
        write_atomic(&self.file("summary.json"), format!("{text}\n").as_bytes())
    }

    /// Draws `curves.png` and `curves.svg`: the task's columns against the epoch, like the
    /// book's Animator. Columns without any value are left out; with `spec.log_y` the y
    /// axis is logarithmic when every value is positive (D2L 4.4–4.5).
    pub fn plot_task_curves(
        &self,
        epochs: &[EpochMetrics],
        spec: &CurveSpec,
    ) -> Result<(PathBuf, PathBuf)> {
        let x: Vec<f64> = epochs.iter().map(|m| m.epoch as f64).collect();
        let series: Vec<Series> = spec
            .series
            .iter()
            .filter_map(|(label, col)| {
                let v: Vec<Option<f64>> = epochs.iter().map(|m| m.column(col)).collect();
                v.iter().any(|o| o.is_some()).then(|| {
                    Series::new(
                        *label,
                        x.clone(),
                        v.iter().map(|o| o.unwrap_or(f64::NAN)).collect(),
                    )
                })
            })
            .collect();
        let finite = || {
            series
                .iter()
                .flat_map(|s| s.y.iter())
                .filter(|v| v.is_finite())
        };
        let log_y = spec.log_y && finite().all(|&v| v > 0.0) && finite().next().is_some();
        let n = epochs.iter().map(|m| m.epoch).max().unwrap_or(1).max(1) as f64;
        let plot = PlotSpec {
            title: self.model_name.clone(),
            xlabel: "epoch".into(),
            ylabel: spec.ylabel.into(),
            log_y,
            // The book's xlim=[1, num_epochs]; a single epoch gets a little room.
            xlim: Some(if n > 1.0 { (1.0, n) } else { (0.5, 1.5) }),
            ..PlotSpec::default()
        };
        save_line_plot(&self.file("curves"), &plot, &series)
    }

    /// Saves the model's state dict to `model.safetensors` (atomically); returns the path.
    pub fn save_model(&self, net: &dyn Module) -> Result<PathBuf> {
        let path = self.file("model.safetensors");
        d2l_nn::serialize::save_state_dict(net, &path)?;
        Ok(path)
    }
}
