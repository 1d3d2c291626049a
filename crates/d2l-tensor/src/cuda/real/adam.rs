//! The multi-tensor Adam/AdamW update (`d2l_tensor::fused::adam_`).

use super::*;

// ------------------------------------------------------------------ Adam

/// Tensors per fused-Adam launch (must match `ADAM_MAX` in kernels.cu).
pub(super) const ADAM_MAX: usize = 16;

/// One parameter of a fused Adam step: the first `n` elements of each block
/// (contiguous, same dtype, same device) are updated in place.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamParam<'a> {
    /// The parameter (updated).
    pub(crate) param: &'a Block,
    /// Its gradient (read).
    pub(crate) grad: &'a Block,
    /// First-moment estimate (updated).
    pub(crate) exp_avg: &'a Block,
    /// Second-moment estimate (updated).
    pub(crate) exp_avg_sq: &'a Block,
    /// Running maximum of the second moment, required when `amsgrad` (updated).
    pub(crate) max_exp_avg_sq: Option<&'a Block>,
    /// Number of elements.
    pub(crate) n: usize,
}

/// Hyper-parameters of one Adam/AdamW step (`step` counts from 1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamHyper {
    /// Learning rate.
    pub(crate) lr: f64,
    /// β₁.
    pub(crate) beta1: f64,
    /// β₂.
    pub(crate) beta2: f64,
    /// ε.
    pub(crate) eps: f64,
    /// Weight decay λ.
    pub(crate) weight_decay: f64,
    /// AdamW (decoupled decay `p ← p(1 − lr·λ)`) instead of L2 (`g ← g + λp`).
    pub(crate) decoupled: bool,
    /// AMSGrad (use the running max of the second moment).
    pub(crate) amsgrad: bool,
    /// The step number after this update (1 for the first step).
    pub(crate) step: u64,
}

/// Kernel-side tensor list; mirrors `struct AdamList` in kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(super) struct AdamListK {
    param: [u64; ADAM_MAX],
    grad: [u64; ADAM_MAX],
    m: [u64; ADAM_MAX],
    v: [u64; ADAM_MAX],
    vmax: [u64; ADAM_MAX],
    n: [i64; ADAM_MAX],
    count: i32,
    pad: i32,
}

// SAFETY: POD with the C layout of `struct AdamList` in kernels.cu.
unsafe impl DeviceRepr for AdamListK {}

/// Kernel-side hyper-parameters; mirrors `struct AdamHyper` in kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(super) struct AdamHyperK {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    wd: f64,
    bc1: f64,
    bc2_sqrt: f64,
    decoupled: i32,
    amsgrad: i32,
}

// SAFETY: POD with the C layout of `struct AdamHyper` in kernels.cu.
unsafe impl DeviceRepr for AdamHyperK {}

/// One fused Adam/AdamW step over many parameters (f32/f64), in place, in
/// launches of up to 16 tensors each — the same arithmetic as d2l-nn's
/// `adam_update`.
pub(crate) fn adam_multi(dt: Dt, params: &[AdamParam<'_>], h: &AdamHyper) -> Result<(), String> {
    need_float(dt, "adam_multi")?;
    if h.step == 0 {
        return Err("CUDA: adam_multi: step must be at least 1".into());
    }
    for (j, p) in params.iter().enumerate() {
        let mut blocks = vec![p.param, p.grad, p.exp_avg, p.exp_avg_sq];
        if h.amsgrad {
            blocks.push(p.max_exp_avg_sq.ok_or_else(|| {
                format!("CUDA: adam_multi: parameter {j} lacks max_exp_avg_sq (amsgrad)")
            })?);
        }
        same_device(&blocks, "adam_multi")?;
        if blocks.iter().any(|b| b.len(dt) < p.n) || p.n > i64::MAX as usize {
            return Err(format!(
                "CUDA: adam_multi: parameter {j}: a block is shorter than {} elements",
                p.n
            ));
        }
    }
    let step = h.step as f64;
    let hk = AdamHyperK {
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        wd: h.weight_decay,
        bc1: 1.0 - h.beta1.powf(step),
        bc2_sqrt: (1.0 - h.beta2.powf(step)).sqrt(),
        decoupled: h.decoupled as i32,
        amsgrad: h.amsgrad as i32,
    };
    let name = format!("d2l_adam_{}", dt.suffix());
    let work: Vec<&AdamParam<'_>> = params.iter().filter(|p| p.n > 0).collect();
    for chunk in work.chunks(ADAM_MAX) {
        let d = chunk[0].param.dev;
        let mut l = AdamListK {
            param: [0; ADAM_MAX],
            grad: [0; ADAM_MAX],
            m: [0; ADAM_MAX],
            v: [0; ADAM_MAX],
            vmax: [0; ADAM_MAX],
            n: [0; ADAM_MAX],
            count: chunk.len() as i32,
            pad: 0,
        };
        let mut max_n = 0usize;
        for (j, p) in chunk.iter().enumerate() {
            if p.param.dev.ordinal != d.ordinal {
                return Err("CUDA: adam_multi: parameters on different devices".into());
            }
            l.param[j] = p.param.ptr;
            l.grad[j] = p.grad.ptr;
            l.m[j] = p.exp_avg.ptr;
            l.v[j] = p.exp_avg_sq.ptr;
            l.vmax[j] = p.max_exp_avg_sq.map_or(0, |b| b.ptr);
            l.n[j] = p.n as i64;
            max_n = max_n.max(p.n);
        }
        let cfg = LaunchConfig {
            grid_dim: (
                (max_n as u64).div_ceil(THREADS as u64).clamp(1, 1024) as u32,
                chunk.len() as u32,
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(d, &name, cfg, &l, &hk)?;
    }
    Ok(())
}
