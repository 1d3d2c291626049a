//! D2L 4.7's "training needs more memory than prediction", measured: the peak resident
//! memory of one batch through a zoo model for prediction (evaluation mode, no graph)
//! against one training step (forward with the graph kept for backpropagation, backward,
//! SGD update), each above the same baseline. The peak is the process's `VmHWM`, reset
//! between the two by writing `5` to `/proc/self/clear_refs` (Linux); prediction runs
//! first, so memory it leaves mapped for reuse cannot inflate the training peak's excess
//! beyond what training itself needs.

use crate::{check_positive, ExperimentError, Result};
use d2l_models::zoo;
use d2l_nn::loss::cross_entropy;
use d2l_nn::optim::{Optimizer, Sgd};
use d2l_nn::Module;
use d2l_tensor::{no_grad, Generator, Tensor};
use d2l_train::bench::proc_status_mb;
use std::fmt;

/// Settings of [`run_memory`].
#[derive(Debug, Clone)]
pub struct MemoryOptions {
    /// A zoo image classifier (`lenet`).
    pub model: String,
    /// Images per batch (256).
    pub batch: usize,
    /// Width multiplier (1.0).
    pub width_mult: f64,
    /// Seed of the random images and the initialisation.
    pub seed: u64,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            model: "lenet".into(),
            batch: 256,
            width_mult: 1.0,
            seed: 0,
        }
    }
}

/// What [`run_memory`] returns (MiB).
#[derive(Debug, Clone)]
pub struct MemoryResults {
    /// The model.
    pub model: String,
    /// The input shape of one batch.
    pub input: Vec<usize>,
    /// Parameters and their size in MiB (f32).
    pub params: (usize, f64),
    /// Resident memory before either pass.
    pub baseline_mb: f64,
    /// Peak above the baseline during prediction.
    pub infer_mb: f64,
    /// Peak above the baseline during the training step.
    pub train_mb: f64,
}

impl MemoryResults {
    /// Training peak over prediction peak.
    pub fn ratio(&self) -> f64 {
        self.train_mb / self.infer_mb
    }
}

fn reset_peak() -> Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| {
        ExperimentError::Invalid(format!(
            "memory-demo measures peak memory through /proc/self/clear_refs (Linux): {e}"
        ))
    })
}

fn peak_mb() -> Result<f64> {
    let v = proc_status_mb("VmHWM");
    if v.is_nan() {
        return Err(ExperimentError::Invalid(
            "memory-demo needs /proc/self/status (Linux)".into(),
        ));
    }
    Ok(v)
}

/// Measures the prediction and training peaks of one batch (run it in a process of its
/// own: other threads' allocations would count too).
pub fn run_memory(opts: &MemoryOptions) -> Result<MemoryResults> {
    check_positive("batch", opts.batch)?;
    let info = zoo::model(&opts.model)?;
    if info.task != zoo::TaskKind::Classification {
        return Err(ExperimentError::Invalid(format!(
            "memory-demo needs an image classifier; `{}` is not one",
            info.name
        )));
    }
    d2l_tensor::manual_seed(opts.seed);
    let mut cfg = info.default_config();
    cfg.width_mult = opts.width_mult;
    let net = info.build(&cfg)?;
    let mut input = vec![opts.batch];
    input.extend(&cfg.in_shape);
    let mut g = Generator::new(opts.seed);
    let x = Tensor::rand_with(&mut g, &input);
    let y: Vec<i64> = (0..opts.batch)
        .map(|_| g.below(cfg.num_outputs as u64) as i64)
        .collect();
    let y = Tensor::from_vec(y, &[opts.batch])?;
    let n_params = net.num_parameters();
    let mut opt = Sgd::new(net.parameters(), 0.01)?;

    reset_peak()?;
    let baseline_mb = peak_mb()?;
    net.eval();
    let out = no_grad(|| net.forward(&x))?;
    drop(out);
    let infer_mb = peak_mb()? - baseline_mb;

    reset_peak()?;
    net.train();
    let l = cross_entropy(&net.forward(&x)?, &y)?;
    opt.zero_grad();
    l.backward()?;
    opt.step()?;
    drop(l);
    let train_mb = peak_mb()? - baseline_mb;
    Ok(MemoryResults {
        model: info.name.to_string(),
        input,
        params: (n_params, n_params as f64 * 4.0 / (1024.0 * 1024.0)),
        baseline_mb,
        infer_mb,
        train_mb,
    })
}

impl fmt::Display for MemoryResults {
    /// The two peaks and their ratio.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "D2L 4.7 memory: {} on a batch {:?}, {} parameters ({:.1} MiB), baseline resident {:.1} MiB",
            self.model, self.input, self.params.0, self.params.1, self.baseline_mb
        )?;
        writeln!(
            f,
            "  prediction (eval mode, no graph):            peak +{:.1} MiB",
            self.infer_mb
        )?;
        writeln!(
            f,
            "  training step (graph, backward, SGD update): peak +{:.1} MiB",
            self.train_mb
        )?;
        write!(
            f,
            "  training needs {:.1}× the memory of prediction",
            self.ratio()
        )
    }
}
