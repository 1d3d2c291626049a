//! Checkpoints: everything a run needs to continue exactly where it stopped, in one
//! safetensors file (`checkpoint.safetensors` in the run folder), written atomically after
//! every epoch and on Ctrl-C.
//!
//! | tensor names | what |
//! |---|---|
//! | `model.<name>` | the model's state dict: parameters and buffers (batch-norm statistics) |
//! | `optim.<i>.<field>` | the optimiser's per-parameter state (momentum, moments, step counts) |
//! | `rng.global` | the engine's global generator (dropout, random initialisation, augmentation seeds) |
//! | `rng.source` | the training source's generator (a language model's offsets), when it has one |
//! | `task.<name>` | state the task carries between batches (a recurrent state), mid-epoch only |
//! | `sums.train` | the running sums of a partial epoch, mid-epoch only |
//!
//! The header's metadata holds the bookkeeping as JSON under `d2l.checkpoint`: the format
//! version, the task, a fingerprint of the model's parameter names and shapes, the epochs
//! completed (with their metrics), the step within a partial epoch, the schedule position
//! and the timing totals.
//!
//! Loading checks the format and the fingerprint first, so a checkpoint of another model or
//! a corrupt file is a one-line error and nothing is changed.

use crate::trainer::EpochMetrics;
use d2l_nn::Module;
use d2l_tensor::{DType, Error, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The metadata key of the bookkeeping JSON.
const META_KEY: &str = "d2l.checkpoint";
/// The bookkeeping format version.
const VERSION: u32 = 1;

fn ck_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::InvalidArgument {
        op: "checkpoint",
        msg: format!("{}: {msg}", path.display()),
    }
}

/// The bookkeeping part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Format version (1).
    pub version: u32,
    /// The task's kind (`"classification"`, …).
    pub task: String,
    /// [`model_fingerprint`] of the model.
    pub fingerprint: String,
    /// Epochs completed.
    pub epoch: usize,
    /// Training steps done in the partial epoch `epoch + 1` (0 at an epoch's end).
    pub step_in_epoch: usize,
    /// Training steps done in the whole run.
    pub global_step: usize,
    /// The learning-rate schedule's position (`LrScheduler::last_epoch`), when there is one.
    pub scheduler_epoch: Option<usize>,
    /// Seconds spent in training steps over the run, the partial epoch included.
    pub train_secs: f64,
    /// Examples (or tokens) trained on over the run, the partial epoch included.
    pub examples: f64,
    /// Seconds spent in training steps in the partial epoch.
    pub partial_train_secs: f64,
    /// Every completed epoch's metrics.
    pub epochs: Vec<EpochMetrics>,
}

/// A checkpoint in memory: tensors by their full names and the bookkeeping.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The bookkeeping.
    pub info: CheckpointInfo,
    /// Every tensor, by full name (`model.…`, `optim.…`, `rng.…`, `task.…`, `sums.train`).
    pub tensors: Vec<(String, Tensor)>,
}

/// A hex fingerprint (64-bit FNV-1a) of a model's state-dict names, shapes and dtypes: two
/// models can exchange checkpoints exactly when their fingerprints agree.
pub fn model_fingerprint(net: &dyn Module) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, t) in net.state_dict() {
        for b in format!("{name}:{:?}:{};", t.shape(), t.dtype()).bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Words as an `i64` tensor (bit for bit).
pub fn words_tensor(words: &[u64]) -> Tensor {
    let v: Vec<i64> = words.iter().map(|&w| w as i64).collect();
    let n = v.len();
    Tensor::from_vec(v, &[n]).expect("a 1-d tensor of n values")
}

/// The words an `i64` tensor holds (bit for bit).
pub fn tensor_words(t: &Tensor) -> Result<Vec<u64>> {
    if t.dtype() != DType::I64 {
        return Err(Error::DTypeMismatch {
            op: "checkpoint",
            expected: "i64 words".into(),
            got: t.dtype(),
        });
    }
    Ok(t.cpu()?
        .to_vec::<i64>()
        .into_iter()
        .map(|w| w as u64)
        .collect())
}

impl Checkpoint {
    /// The tensors whose names start with `prefix`, with the prefix removed.
    pub fn section(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.tensors
            .iter()
            .filter_map(|(n, t)| n.strip_prefix(prefix).map(|k| (k.to_string(), t.clone())))
            .collect()
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Writes the checkpoint to `path` atomically (a temporary file, synced, then renamed
    /// over the previous checkpoint): an interruption leaves the last good one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string(&self.info).map_err(|e| ck_err(path, e))?;
        let meta = HashMap::from([(META_KEY.to_string(), json)]);
        // Tensors on a device are copied to the host by the writer.
        d2l_nn::serialize::save_with_metadata(path, &self.tensors, meta)
    }

    /// Reads a checkpoint written by [`Checkpoint::save`]. A file that is not one (another
    /// safetensors file, a truncated or corrupt file, another format version) is an error.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let (tensors, meta) = d2l_nn::serialize::load_with_metadata(path)
            .map_err(|e| ck_err(path, format!("not a readable checkpoint ({e})")))?;
        let json = meta.get(META_KEY).ok_or_else(|| {
            ck_err(
                path,
                "not a d2l training checkpoint (no `d2l.checkpoint` metadata)",
            )
        })?;
        let info: CheckpointInfo = serde_json::from_str(json)
            .map_err(|e| ck_err(path, format!("corrupt checkpoint metadata ({e})")))?;
        if info.version != VERSION {
            return Err(ck_err(
                path,
                format!(
                    "checkpoint format version {}, this program reads version {VERSION}",
                    info.version
                ),
            ));
        }
        Ok(Checkpoint { info, tensors })
    }

    /// Checks that this checkpoint was made for `task` and a model shaped like `net`.
    pub fn check_fits(&self, path: &Path, task: &str, net: &dyn Module) -> Result<()> {
        if self.info.task != task {
            return Err(ck_err(
                path,
                format!(
                    "a checkpoint of a {} task, not of this {task} task",
                    self.info.task
                ),
            ));
        }
        let fp = model_fingerprint(net);
        if self.info.fingerprint != fp {
            return Err(ck_err(
                path,
                "a checkpoint of another model (its parameter names or shapes differ from this model's)",
            ));
        }
        Ok(())
    }
}
