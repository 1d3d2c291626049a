//! Run directories: everything one training run leaves behind (the files behind D2L 3.6's
//! `train_ch3` animation and `torch.save` of 5.5, kept on disk).
//!
//! A [`RunDir`] (default `runs/<model>-<YYYYmmdd-HHMMSS>`, UTC) holds
//!
//! | file | written by | content |
//! |---|---|---|
//! | `config.json` | [`RunDir::write_config`] | the exact configuration of the run |
//! | `metrics.csv` | [`RunDir::append_metrics`] | one row per epoch after a header row |
//! | `curves.png`, `curves.svg` | [`RunDir::plot_curves`] | train loss, train acc, test acc against epochs |
//! | `model.safetensors` | [`RunDir::save_model`] | the model's state dict |
//! | `summary.json` | [`RunDir::write_summary`] | the run's [`TrainSummary`] |
//!
//! Every file is written atomically (a temporary file in the same folder, then a rename),
//! so a run stopped at any moment (Ctrl-C, a crash) leaves each file either as it was or
//! complete.

use crate::plot::{save_line_plot, PlotSpec, Series};
use crate::trainer::{EpochMetrics, TrainSummary};
use d2l_nn::Module;
use d2l_tensor::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The header row of `metrics.csv`.
pub const METRICS_HEADER: &str =
    "epoch,train_loss,train_acc,test_acc,examples_per_sec,seconds,test_loss";

fn run_err(msg: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op: "run_dir",
        msg: msg.into(),
    }
}

/// Writes `bytes` to `path` atomically: into a fresh temporary file in the same folder,
/// synced, then renamed over `path` (readers see the old file or the new one, never half).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    d2l_nn::serialize::write_atomic(path, bytes)
}

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

/// The folder of one training run; see the module docs for its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
    model_name: String,
}

impl RunDir {
    /// Creates the run folder: `path` when given (it may exist; a `metrics.csv` and
    /// `summary.json` left there by an earlier run are removed so this run starts
    /// afresh), otherwise `runs/<model_name>-<YYYYmmdd-HHMMSS>` (UTC) under the current
    /// folder, with `-2`, `-3`, … appended if that name is taken.
    pub fn create(path: Option<PathBuf>, model_name: &str) -> Result<RunDir> {
        let mkdir = |p: &Path| {
            fs::create_dir_all(p)
                .map_err(|e| run_err(format!("cannot create the run folder {}: {e}", p.display())))
        };
        let path = match path {
            Some(p) => {
                if p.exists() && !p.is_dir() {
                    return Err(run_err(format!(
                        "{} exists and is not a folder",
                        p.display()
                    )));
                }
                mkdir(&p)?;
                for stale in ["metrics.csv", "summary.json"] {
                    let f = p.join(stale);
                    if f.exists() {
                        fs::remove_file(&f).map_err(|e| {
                            run_err(format!("cannot remove the old {}: {e}", f.display()))
                        })?;
                    }
                }
                p
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
                loop {
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
                }
            }
        };
        Ok(RunDir {
            path,
            model_name: model_name.to_string(),
        })
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

    /// Adds one row to `metrics.csv` (writing the header row first when the file is new):
    /// `epoch,train_loss,train_acc,test_acc,examples_per_sec,seconds,test_loss`, with an
    /// empty field for a value the task does not have. The whole file is rewritten
    /// atomically.
    pub fn append_metrics(&self, m: &EpochMetrics) -> Result<()> {
        let path = self.file("metrics.csv");
        let mut text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("{METRICS_HEADER}\n"),
            Err(e) => return Err(run_err(format!("cannot read {}: {e}", path.display()))),
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            m.epoch,
            m.train_loss,
            opt(m.train_acc),
            opt(m.test_acc),
            m.examples_per_sec,
            m.seconds,
            opt(m.test_loss)
        ));
        write_atomic(&path, text.as_bytes())
    }

    /// Writes `summary.json` (pretty-printed).
    pub fn write_summary(&self, summary: &TrainSummary) -> Result<()> {
        let text = serde_json::to_string_pretty(summary)
            .map_err(|e| run_err(format!("cannot encode the summary: {e}")))?;
        write_atomic(&self.file("summary.json"), format!("{text}\n").as_bytes())
    }

    /// Draws `curves.png` and `curves.svg`: train loss, train acc and test acc (for a
    /// task without accuracy, train and test loss) against the epoch, like the book's Animator in `train_ch3`.
    /// Without any accuracy (regression) the y axis is logarithmic when every loss is
    /// positive, as in D2L 4.4 and 4.5.
    pub fn plot_curves(&self, epochs: &[EpochMetrics]) -> Result<(PathBuf, PathBuf)> {
        let x: Vec<f64> = epochs.iter().map(|m| m.epoch as f64).collect();
        let col = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Option<Vec<f64>> {
            let v: Vec<Option<f64>> = epochs.iter().map(f).collect();
            v.iter()
                .any(|o| o.is_some())
                .then(|| v.iter().map(|o| o.unwrap_or(f64::NAN)).collect())
        };
        let mut series = vec![Series::new(
            "train loss",
            x.clone(),
            epochs.iter().map(|m| m.train_loss).collect(),
        )];
        let train_acc = col(&|m| m.train_acc);
        let test_acc = col(&|m| m.test_acc);
        let test_loss = col(&|m| m.test_loss);
        let has_acc = train_acc.is_some() || test_acc.is_some();
        if let Some(y) = train_acc {
            series.push(Series::new("train acc", x.clone(), y));
        }
        if let Some(y) = test_acc {
            series.push(Series::new("test acc", x.clone(), y));
        }
        // The book's Animator shows the test loss only where there is no accuracy.
        if let Some(y) = test_loss.filter(|_| !has_acc) {
            series.push(Series::new("test loss", x.clone(), y));
        }
        let log_y = !has_acc
            && series
                .iter()
                .flat_map(|s| s.y.iter())
                .filter(|v| v.is_finite())
                .all(|&v| v > 0.0)
            && series
                .iter()
                .flat_map(|s| s.y.iter())
                .any(|v| v.is_finite());
        let n = epochs.iter().map(|m| m.epoch).max().unwrap_or(1).max(1) as f64;
        let spec = PlotSpec {
            title: self.model_name.clone(),
            xlabel: "epoch".into(),
            ylabel: if has_acc {
                String::new()
            } else {
                "loss".into()
            },
            log_y,
            // The book's xlim=[1, num_epochs]; a single epoch gets a little room.
            xlim: Some(if n > 1.0 { (1.0, n) } else { (0.5, 1.5) }),
            ..PlotSpec::default()
        };
        save_line_plot(&self.file("curves"), &spec, &series)
    }

    /// Saves the model's state dict to `model.safetensors` (atomically); returns the path.
    pub fn save_model(&self, net: &dyn Module) -> Result<PathBuf> {
        let path = self.file("model.safetensors");
        d2l_nn::serialize::save_state_dict(net, &path)?;
        Ok(path)
    }
}
