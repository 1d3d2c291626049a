//! Loss functions with PyTorch's names and semantics (`torch.nn.functional`): the squared
//! loss of D2L 3.1.3, the softmax cross-entropy of D2L 4.1.2 and its numerically stable
//! "LogSumExp" form of D2L 4.4, and the rest of the losses in the notes on losses (§0.1):
//! L1, smooth L1 / Huber, negative log-likelihood, binary cross-entropy (on probabilities
//! and on logits).
//!
//! Every loss takes a [`Reduction`]: `None` keeps one value per element (or per sample for
//! the classification losses), `Mean` (the default) averages and `Sum` adds them up.
//! Shapes are checked up front, and a mismatch is an error naming the loss and both shapes.
//!
//! ```
//! use d2l_nn::loss::{cross_entropy, mse_loss};
//! use d2l_nn::{Result, Tensor};
//! # fn main() -> Result<()> {
//! let logits = Tensor::from_vec(vec![2.0f32, 0.0, 0.0, 0.0, 3.0, 0.0], &[2, 3])?;
//! let labels = Tensor::from_vec(vec![0i64, 1], &[2])?;
//! let l = cross_entropy(&logits, &labels)?; // D2L 4.1.2
//! assert!(l.item()? > 0.0);
//! let y_hat = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?;
//! let y = Tensor::from_vec(vec![1.0f32, 4.0], &[2])?;
//! assert_eq!(mse_loss(&y_hat, &y)?.item()?, 2.0); // D2L 3.1.3
//! # Ok(()) }
//! ```

use d2l_tensor::{no_grad, DType, Element, Error, Float, Result, Tensor};
use std::sync::Arc;

/// How per-element losses are combined, as PyTorch's `reduction=` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// No reduction: one loss per element (per sample for classification losses).
    None,
    /// The average (PyTorch's default; weighted for the classification losses).
    #[default]
    Mean,
    /// The sum.
    Sum,
}

fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op,
        msg: msg.into(),
    }
}

fn shape_err(op: &'static str, lhs: &Tensor, rhs: &Tensor, why: &str) -> Error {
    Error::ShapeMismatch {
        op,
        lhs: lhs.shape().to_vec(),
        rhs: rhs.shape().to_vec(),
        why: why.into(),
    }
}

fn expect_float(op: &'static str, what: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::DTypeMismatch {
            op,
            expected: format!("a float {what}"),
            got: t.dtype(),
        })
    }
}

/// Checks that `input` and `target` are float tensors of one shape and dtype.
fn check_pair(op: &'static str, input: &Tensor, target: &Tensor) -> Result<()> {
    expect_float(op, "input", input)?;
    if input.shape() != target.shape() {
        return Err(shape_err(
            op,
            input,
            target,
            "must be equal: the input (first) and target (second) need the same shape",
        ));
    }
    if target.dtype() != input.dtype() {
        return Err(Error::DTypeMismatch {
            op,
            expected: format!("a target of the input's dtype {}", input.dtype()),
            got: target.dtype(),
        });
    }
    Ok(())
}

/// Applies a reduction to elementwise losses.
fn reduce(loss: Tensor, reduction: Reduction) -> Result<Tensor> {
    match reduction {
        Reduction::None => Ok(loss),
        Reduction::Mean => loss.mean_all(),
        Reduction::Sum => loss.sum_all(),
    }
}

/// Mean squared error `(x − y)²`, averaged (D2L 3.1.3, PyTorch's `F.mse_loss(x, y)`; no ½
/// factor). Another reduction goes through [`mse_loss_with`].
pub fn mse_loss(input: &Tensor, target: &Tensor) -> Result<Tensor> {
    mse_loss_with(input, target, Reduction::Mean)
}

/// [`mse_loss`] with a [`Reduction`] (`reduction=` in PyTorch).
pub fn mse_loss_with(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    check_pair("mse_loss", input, target)?;
    reduce(input.sub(target)?.square()?, reduction)
}

/// Mean absolute error `|x − y|` (PyTorch's `l1_loss`).
pub fn l1_loss(input: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    check_pair("l1_loss", input, target)?;
    reduce(input.sub(target)?.abs()?, reduction)
}

/// Smooth L1: `½d²/β` where `|d| < β`, else `|d| − ½β` (PyTorch's `smooth_l1_loss`; β = 0 is L1).
pub fn smooth_l1_loss(
    input: &Tensor,
    target: &Tensor,
    beta: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    check_pair("smooth_l1_loss", input, target)?;
    if beta.is_nan() || beta < 0.0 {
        return Err(invalid(
            "smooth_l1_loss",
            format!("beta must be >= 0, got {beta}"),
        ));
    }
    let d = input.sub(target)?;
    let a = d.abs()?;
    if beta == 0.0 {
        return reduce(a, reduction);
    }
    let quad = d.square()?.mul_scalar(0.5 / beta)?;
    let lin = a.sub_scalar(0.5 * beta)?;
    let small = a.lt_scalar(beta)?;
    reduce(Tensor::where_cond(&small, &quad, &lin)?, reduction)
}

/// Huber loss: `½d²` where `|d| < δ`, else `δ(|d| − ½δ)` (PyTorch's `huber_loss`).
pub fn huber_loss(
    input: &Tensor,
    target: &Tensor,
    delta: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    check_pair("huber_loss", input, target)?;
    if delta.is_nan() || delta <= 0.0 {
        return Err(invalid(
            "huber_loss",
            format!("delta must be > 0, got {delta}"),
        ));
    }
    let d = input.sub(target)?;
    let a = d.abs()?;
    let quad = d.square()?.mul_scalar(0.5)?;
    let lin = a.sub_scalar(0.5 * delta)?.mul_scalar(delta)?;
    let small = a.lt_scalar(delta)?;
    reduce(Tensor::where_cond(&small, &quad, &lin)?, reduction)
}

/// Options of [`cross_entropy`], with PyTorch's defaults.
#[derive(Debug, Clone)]
pub struct CrossEntropyOptions {
    /// Per-class weights, a 1-D tensor of length C.
    pub weight: Option<Tensor>,
    /// Class index whose samples are skipped (PyTorch's default is -100); index targets only.
    pub ignore_index: Option<i64>,
    /// Mixes the target with the uniform distribution: `(1 − ε)·target + ε/C`.
    pub label_smoothing: f64,
    /// How per-sample losses are combined.
    pub reduction: Reduction,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions {
            weight: None,
            ignore_index: Some(-100),
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
        }
    }
}

/// The input's class count and the shape of the per-sample loss, for an input of shape
/// `[C]`, `[N, C]` or `[N, C, d1, ...]`.
fn class_layout(op: &'static str, input: &Tensor) -> Result<(usize, Vec<usize>)> {
    match input.rank() {
        0 => Err(Error::BadShape {
            op,
            msg: "expected an input of shape [C], [N, C] or [N, C, d1, ...], got a 0-d tensor"
                .into(),
        }),
        1 => Ok((input.shape()[0], vec![])),
        _ => {
            let mut s = input.shape().to_vec();
            let c = s.remove(1);
            Ok((c, s))
        }
    }
}

/// Moves the class dim of `[C]`, `[N, C]` or `[N, C, d...]` last and flattens to `[M, C]`.
fn to_rows(x: &Tensor, c: usize) -> Result<Tensor> {
    match x.rank() {
        1 => x.reshape([1, c]),
        2 => Ok(x.clone()),
        r => {
            let mut perm: Vec<usize> = (0..r).filter(|&i| i != 1).collect();
            perm.push(1);
            x.permute(&perm)?.reshape([-1, c as isize])
        }
    }
}

/// Reads and validates the per-class weights as f64.
fn class_weights(
    op: &'static str,
    input: &Tensor,
    weight: Option<&Tensor>,
    c: usize,
) -> Result<Option<Vec<f64>>> {
    let Some(w) = weight else { return Ok(None) };
    expect_float(op, "weight", w)?;
    crate::module::same_device(op, &[input, w])?;
    if w.shape() != [c] {
        return Err(Error::BadShape {
            op,
            msg: format!(
                "expected a weight of shape [{c}] (one per class), got {:?}",
                w.shape()
            ),
        });
    }
    Ok(Some(w.to_f64_vec()))
}

/// The shared core of `nll_loss` and index-target `cross_entropy`: `logp` is `[M, C]`
/// log-probabilities, `targets` the M class indices; `out_shape` is the unreduced shape.
#[allow(clippy::too_many_arguments)]
fn nll_rows(
    op: &'static str,
    logp: &Tensor,
    targets: &[i64],
    weight: Option<&[f64]>,
    ignore_index: Option<i64>,
    label_smoothing: f64,
    out_shape: &[usize],
    reduction: Reduction,
) -> Result<Tensor> {
    let c = logp.shape()[1];
    let m = targets.len();
    let mut safe = Vec::with_capacity(m);
    let mut sw = Vec::with_capacity(m);
    let mut keep = Vec::with_capacity(m);
    for (i, &t) in targets.iter().enumerate() {
        if Some(t) == ignore_index {
            safe.push(0i64);
            sw.push(0.0);
            keep.push(0.0);
        } else if t < 0 || t as usize >= c {
            let ign = match ignore_index {
                Some(v) => format!("ignore_index is {v}"),
                None => "no ignore_index".to_string(),
            };
            return Err(invalid(
                op,
                format!("target {t} (sample {i}) is out of range for {c} classes (expected 0 to {}; {ign})", c as i64 - 1),
            ));
        } else {
            safe.push(t);
            sw.push(weight.map_or(1.0, |w| w[t as usize]));
            keep.push(1.0);
        }
    }
    let dt = logp.dtype();
    let dev = logp.device();
    let denom: f64 = sw.iter().sum();
    let idx = Tensor::from_vec(safe, &[m, 1])?.to(dev)?;
    let swt = Tensor::from_vec(sw, &[m])?.to_dtype(dt)?.to(dev)?;
    let picked = logp.gather(1, &idx)?.reshape([m])?;
    let mut nll = picked.mul(&swt)?.neg()?;
    let eps = label_smoothing;
    let mut smooth = None;
    if eps > 0.0 {
        let row = match weight {
            Some(w) => logp.mul(
                &Tensor::from_vec(w.to_vec(), &[1, c])?
                    .to_dtype(dt)?
                    .to(dev)?,
            )?,
            None => logp.clone(),
        };
        let keept = Tensor::from_vec(keep, &[m])?.to_dtype(dt)?.to(dev)?;
        smooth = Some(row.sum(&[1], false)?.neg()?.mul(&keept)?);
    }
    let combine = |nll: Tensor, smooth: Option<Tensor>| -> Result<Tensor> {
        match smooth {
            None => Ok(nll),
            Some(s) => nll
                .mul_scalar(1.0 - eps)?
                .add(&s.mul_scalar(eps / c as f64)?),
        }
    };
    match reduction {
        Reduction::None => combine(nll, smooth)?.reshape(out_shape),
        Reduction::Sum => combine(nll.sum_all()?, smooth.map(|s| s.sum_all()).transpose()?),
        Reduction::Mean => {
            // Both terms are normalised by the total weight of the non-ignored samples.
            nll = nll.sum_all()?.div_scalar(denom)?;
            let smooth = smooth.map(|s| s.sum_all()?.div_scalar(denom)).transpose()?;
            combine(nll, smooth)
        }
    }
}

/// Checks an index target against the input of a classification loss and reads it.
fn read_index_target(op: &'static str, input: &Tensor, target: &Tensor) -> Result<Vec<i64>> {
    let (_, per_sample) = class_layout(op, input)?;
    if target.shape() != per_sample.as_slice() {
        return Err(shape_err(
            op,
            input,
            target,
            &format!("do not agree: class-index targets for an input of shape [N, C, d1, ...] need shape [N, d1, ...] (here {per_sample:?})"),
        ));
    }
    // The fused kernels read the target on the host; like PyTorch, it must still live on
    // the input's device.
    crate::module::same_device(op, &[input, target])?;
    Ok(target.to_vec::<i64>())
}

/// Negative log-likelihood of log-probabilities `[N, C]` (or `[C]`, `[N, C, d...]`) at
/// class indices (PyTorch's `nll_loss`); `Mean` divides by the summed target weights.
pub fn nll_loss(
    log_probs: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    ignore_index: Option<i64>,
    reduction: Reduction,
) -> Result<Tensor> {
    const OP: &str = "nll_loss";
    expect_float(OP, "input", log_probs)?;
    if target.dtype() != DType::I64 {
        return Err(Error::DTypeMismatch {
            op: OP,
            expected: "an i64 class-index target".into(),
            got: target.dtype(),
        });
    }
    let (c, per_sample) = class_layout(OP, log_probs)?;
    let t = read_index_target(OP, log_probs, target)?;
    let w = class_weights(OP, log_probs, weight, c)?;
    let rows = to_rows(log_probs, c)?;
    nll_rows(
        OP,
        &rows,
        &t,
        w.as_deref(),
        ignore_index,
        0.0,
        &per_sample,
        reduction,
    )
}

/// Cross-entropy from logits with options ([`CrossEntropyOptions`]: weights, ignored index,
/// label smoothing, reduction; PyTorch's `cross_entropy` with keywords): a stable
/// log-softmax then NLL. `target` is either `i64` class indices of shape `[N]` (`[]`,
/// `[N, d...]`) or float class probabilities of the input's shape.
pub fn cross_entropy_with(
    logits: &Tensor,
    target: &Tensor,
    opts: &CrossEntropyOptions,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    expect_float(OP, "input (logits)", logits)?;
    let (c, per_sample) = class_layout(OP, logits)?;
    let eps = opts.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        return Err(invalid(
            OP,
            format!("label_smoothing must be in [0, 1], got {eps}"),
        ));
    }
    let w = class_weights(OP, logits, opts.weight.as_ref(), c)?;
    if target.dtype() == DType::I64 {
        let t = read_index_target(OP, logits, target)?;
        let rows = to_rows(logits, c)?;
        if eps == 0.0 && rows.rank() == 2 {
            return fused_ce(
                &rows,
                &t,
                w.as_deref(),
                opts.ignore_index,
                &per_sample,
                opts.reduction,
            );
        }
        let logp = rows.log_softmax(1)?;
        return nll_rows(
            OP,
            &logp,
            &t,
            w.as_deref(),
            opts.ignore_index,
            eps,
            &per_sample,
            opts.reduction,
        );
    }
    if !target.dtype().is_float() {
        return Err(Error::DTypeMismatch {
            op: OP,
            expected: "an i64 class-index target or a float probability target".into(),
            got: target.dtype(),
        });
    }
    if target.shape() != logits.shape() {
        return Err(shape_err(
            OP,
            logits,
            target,
            "must be equal: a probability target needs the input's shape",
        ));
    }
    if target.dtype() != logits.dtype() {
        return Err(Error::DTypeMismatch {
            op: OP,
            expected: format!(
                "a probability target of the input's dtype {}",
                logits.dtype()
            ),
            got: target.dtype(),
        });
    }
    let dt = logits.dtype();
    let logp = to_rows(logits, c)?.log_softmax(1)?;
    let mut p = to_rows(target, c)?;
    if eps > 0.0 {
        p = p.mul_scalar(1.0 - eps)?.add_scalar(eps / c as f64)?;
    }
    let mut prod = logp.mul(&p)?;
    if let Some(w) = &w {
        prod = prod.mul(
            &Tensor::from_vec(w.clone(), &[1, c])?
                .to_dtype(dt)?
                .to(logits.device())?,
        )?;
    }
    let per = prod.sum(&[1], false)?.neg()?;
    match opts.reduction {
        Reduction::None => per.reshape(per_sample.as_slice()),
        Reduction::Sum => per.sum_all(),
        // Probability targets average over samples, whatever the weights.
        Reduction::Mean => per.mean_all(),
    }
}

/// The fused forward/backward of index-target cross-entropy on `[M, C]` logits without
/// label smoothing: one pass for the loss and the saved softmax, one for the gradient.
fn fused_ce(
    rows: &Tensor,
    targets: &[i64],
    weight: Option<&[f64]>,
    ignore_index: Option<i64>,
    out_shape: &[usize],
    reduction: Reduction,
) -> Result<Tensor> {
    // Fall back to the composed form for anything unusual; it validates the targets.
    let (m, c) = (rows.shape()[0], rows.shape()[1]);
    let bad = targets
        .iter()
        .any(|&t| Some(t) != ignore_index && (t < 0 || t as usize >= c));
    if bad || c == 0 {
        let logp = rows.log_softmax(1)?;
        return nll_rows(
            "cross_entropy",
            &logp,
            targets,
            weight,
            ignore_index,
            0.0,
            out_shape,
            reduction,
        );
    }
    // Per-sample weights (0 for ignored samples).
    let sw: Vec<f64> = targets
        .iter()
        .map(|&t| {
            if Some(t) == ignore_index {
                0.0
            } else {
                weight.map_or(1.0, |w| w[t as usize])
            }
        })
        .collect();
    let denom: f64 = sw.iter().sum();
    let scale = match reduction {
        Reduction::Mean => 1.0 / denom,
        _ => 1.0,
    };
    let dt = rows.dtype();
    let dev = rows.device();
    if dev.is_cuda() {
        // On a GPU the host kernel would copy the logits out and the gradient back every
        // step: compose device ops instead (log-softmax, a one-hot selection built by a
        // comparison, the per-sample weights), uploading only M targets and M weights.
        let logp = rows.log_softmax(1)?;
        let t = Tensor::from_vec(targets.to_vec(), &[m, 1])?.to(dev)?;
        let classes = Tensor::arange_dtype(0.0, c as f64, 1.0, DType::I64)?
            .reshape([1, c])?
            .to(dev)?;
        let onehot = classes.eq(&t)?.to_dtype(dt)?;
        let weights = Tensor::from_vec(sw, &[m])?.to_dtype(dt)?.to(dev)?;
        let per = logp.mul(&onehot)?.sum(&[1], false)?.neg()?.mul(&weights)?;
        return match reduction {
            Reduction::None => per.reshape(out_shape),
            Reduction::Sum => per.sum_all(),
            Reduction::Mean => per.sum_all()?.div_scalar(denom),
        };
    }
    // Per-sample losses and softmax probabilities, in f64 for f64 inputs and f32 otherwise
    // (computed on host copies; the loss goes back to the logits' device, the saved
    // probabilities stay on the host for the backward kernel).
    let (loss_vals, probs) = match dt {
        DType::F64 => {
            let (l, p) = rows.with_slice::<f64, _>(|x| ce_rows_kernel(x, m, c, targets, &sw))?;
            (Tensor::from_vec(l, &[m])?, Tensor::from_vec(p, &[m, c])?)
        }
        _ => {
            let (l, p) = rows.with_slice::<f32, _>(|x| ce_rows_kernel(x, m, c, targets, &sw))?;
            (Tensor::from_vec(l, &[m])?, Tensor::from_vec(p, &[m, c])?)
        }
    };
    let loss_vals = loss_vals.to(dev)?;
    let value = match reduction {
        Reduction::None => loss_vals.reshape(out_shape)?,
        Reduction::Sum => loss_vals.sum_all()?,
        Reduction::Mean => loss_vals.sum_all()?.div_scalar(denom)?,
    };
    let targets = targets.to_vec();
    let out_len = m;
    let backward: d2l_tensor::BackwardFn = Arc::new(move |g: &Tensor| {
        // d loss_i / d z_ic = sw_i (p_ic − [c = t_i]); the output gradient scales row i.
        let gv = g.to_f64_vec();
        let gi = |i: usize| if gv.len() == 1 { gv[0] } else { gv[i] };
        let coef: Vec<f64> = (0..out_len).map(|i| gi(i) * sw[i] * scale).collect();
        let grad = match probs.dtype() {
            DType::F64 => {
                let v = probs.with_slice::<f64, _>(|p| ce_grad_kernel(p, c, &targets, &coef))?;
                Tensor::from_vec(v, &[out_len, c])?
            }
            _ => {
                let v = probs.with_slice::<f32, _>(|p| ce_grad_kernel(p, c, &targets, &coef))?;
                Tensor::from_vec(v, &[out_len, c])?
            }
        };
        Ok(vec![Some(grad.to(dev)?)])
    });
    Ok(Tensor::custom_op(value, &[rows], backward))
}

/// Per-row `sw_i·(logsumexp(z_i) − z_i,t)` and the row softmax, shifted by the row max
/// (sums and the loss in f64 whatever `T` is).
fn ce_rows_kernel<T: Float>(
    x: &[T],
    m: usize,
    c: usize,
    targets: &[i64],
    sw: &[f64],
) -> (Vec<T>, Vec<T>) {
    let mut loss = Vec::with_capacity(m);
    let mut probs = vec![T::from_f64(0.0); m * c];
    for i in 0..m {
        let row = &x[i * c..(i + 1) * c];
        let mut mx = f64::NEG_INFINITY;
        for &v in row {
            let v = v.to_f64();
            if v > mx || v.is_nan() {
                mx = v;
            }
        }
        let shift = if mx.is_finite() { mx } else { 0.0 };
        let shift_t = T::from_f64(shift);
        let out = &mut probs[i * c..(i + 1) * c];
        let mut s = 0.0f64;
        for (o, &v) in out.iter_mut().zip(row) {
            // exp in the input's precision (the row max is exact in it), summed in f64.
            let e = (v - shift_t).exp();
            s += e.to_f64();
            *o = e;
        }
        let inv = 1.0 / s;
        for o in out.iter_mut() {
            *o = T::from_f64(o.to_f64() * inv);
        }
        let l = if sw[i] == 0.0 {
            0.0
        } else {
            sw[i] * (s.ln() + shift - row[targets[i] as usize].to_f64())
        };
        loss.push(T::from_f64(l));
    }
    (loss, probs)
}

/// `coef_i·(p_ic − [c = t_i])` for every row (rows with a zero coefficient are zero).
fn ce_grad_kernel<T: Element>(p: &[T], c: usize, targets: &[i64], coef: &[f64]) -> Vec<T> {
    let mut out = vec![T::from_f64(0.0); p.len()];
    for (i, &k) in coef.iter().enumerate() {
        if k == 0.0 {
            continue;
        }
        let (pr, o) = (&p[i * c..(i + 1) * c], &mut out[i * c..(i + 1) * c]);
        for (oj, &pj) in o.iter_mut().zip(pr) {
            *oj = T::from_f64(k * pj.to_f64());
        }
        let t = targets[i] as usize;
        o[t] = T::from_f64(k * (pr[t].to_f64() - 1.0));
    }
    out
}

/// Cross-entropy with PyTorch's defaults (mean over samples, no weights or smoothing,
/// `ignore_index = -100`): the loss D2L 4.1 and 4.4 train with, called as
/// `F.cross_entropy(logits, y)` is. Options (weights, label smoothing, a reduction) go
/// through [`cross_entropy_with`].
pub fn cross_entropy(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    cross_entropy_with(logits, target, &CrossEntropyOptions::default())
}

/// Checks an optional weight broadcasts to the input's shape (for the binary losses).
fn check_broadcast_weight(op: &'static str, input: &Tensor, w: &Tensor, what: &str) -> Result<()> {
    if w.dtype() != input.dtype() {
        return Err(Error::DTypeMismatch {
            op,
            expected: format!("a {what} of the input's dtype {}", input.dtype()),
            got: w.dtype(),
        });
    }
    let r = input.rank();
    let ok = w.rank() <= r
        && w.shape()
            .iter()
            .rev()
            .zip(input.shape().iter().rev())
            .all(|(&a, &b)| a == b || a == 1);
    if !ok {
        return Err(shape_err(
            op,
            input,
            w,
            &format!(
                "do not agree: the {what} (second) must broadcast to the input's shape (first)"
            ),
        ));
    }
    Ok(())
}

/// Binary cross-entropy of probabilities in [0, 1] (PyTorch's `binary_cross_entropy`):
/// `−w·(y·log x + (1 − y)·log(1 − x))` with each log clamped to ≥ −100, and PyTorch's
/// gradients `w·(x − y) / max(x(1 − x), 1e−12)` for x and `w·(log(1 − x) − log x)` for y.
pub fn binary_cross_entropy(
    probs: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    const OP: &str = "binary_cross_entropy";
    check_pair(OP, probs, target)?;
    if let Some(w) = weight {
        check_broadcast_weight(OP, probs, w, "weight")?;
    }
    if probs
        .to_f64_vec()
        .iter()
        .any(|&v| !(0.0..=1.0).contains(&v))
    {
        return Err(invalid(
            OP,
            "all elements of the input should be probabilities between 0 and 1 (use binary_cross_entropy_with_logits for logits)",
        ));
    }
    let x = probs.detach();
    let y = target.detach();
    let w = weight.map(|w| w.detach());
    let value = no_grad(|| -> Result<Tensor> {
        let lx = x.log()?.clamp_min(-100.0)?;
        let l1x = x.neg()?.add_scalar(1.0)?.log()?.clamp_min(-100.0)?;
        let mut v = y
            .mul(&lx)?
            .add(&y.neg()?.add_scalar(1.0)?.mul(&l1x)?)?
            .neg()?;
        if let Some(w) = &w {
            v = v.mul(w)?;
        }
        Ok(v)
    })?;
    let backward: d2l_tensor::BackwardFn = Arc::new(move |g: &Tensor| {
        let mut gw = g.clone();
        if let Some(w) = &w {
            gw = gw.mul(w)?;
        }
        let denom = x.mul(&x.neg()?.add_scalar(1.0)?)?.clamp_min(1e-12)?;
        let gx = gw.mul(&x.sub(&y)?)?.div(&denom)?;
        // PyTorch's target gradient uses the unclamped logs (infinite at x = 0 or 1).
        let gy = gw.mul(&x.neg()?.log1p()?.sub(&x.log()?)?)?;
        Ok(vec![Some(gx), Some(gy)])
    });
    let elem = Tensor::custom_op(value, &[probs, target], backward);
    reduce(elem, reduction)
}

/// Binary cross-entropy on logits, stable for any magnitude (PyTorch's
/// `binary_cross_entropy_with_logits`): `(1 − y)·x + (1 + (p − 1)·y)·softplus(−x)`, with
/// `pos_weight` p broadcast over the last (class) dim.
pub fn binary_cross_entropy_with_logits(
    logits: &Tensor,
    target: &Tensor,
    pos_weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    const OP: &str = "binary_cross_entropy_with_logits";
    check_pair(OP, logits, target)?;
    if let Some(p) = pos_weight {
        check_broadcast_weight(OP, logits, p, "pos_weight")?;
    }
    // softplus(−x) = log(1 + e^−x) = −log σ(x), linear past 20 so it never overflows.
    let sp = logits.neg()?.softplus()?;
    let one_minus_y = target.neg()?.add_scalar(1.0)?;
    let log_w = match pos_weight {
        Some(p) => target.mul(&p.sub_scalar(1.0)?)?.add_scalar(1.0)?,
        None => target.full_like(1.0),
    };
    let loss = match pos_weight {
        Some(_) => one_minus_y.mul(logits)?.add(&log_w.mul(&sp)?)?,
        None => one_minus_y.mul(logits)?.add(&sp)?,
    };
    reduce(loss, reduction)
}

/// `MSELoss` as a struct, like `nn.MSELoss(reduction=...)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MSELoss {
    /// How per-element losses are combined.
    pub reduction: Reduction,
}

impl MSELoss {
    /// A mean-reduced squared loss.
    pub fn new() -> Self {
        Self::default()
    }
    /// The loss of `input` against `target`.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        mse_loss_with(input, target, self.reduction)
    }
}

/// `L1Loss` as a struct, like `nn.L1Loss(reduction=...)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct L1Loss {
    /// How per-element losses are combined.
    pub reduction: Reduction,
}

impl L1Loss {
    /// A mean-reduced L1 loss.
    pub fn new() -> Self {
        Self::default()
    }
    /// The loss of `input` against `target`.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        l1_loss(input, target, self.reduction)
    }
}

/// `SmoothL1Loss` as a struct, like `nn.SmoothL1Loss(beta=..., reduction=...)`.
#[derive(Debug, Clone, Copy)]
pub struct SmoothL1Loss {
    /// Threshold between the quadratic and the linear part (PyTorch default 1).
    pub beta: f64,
    /// How per-element losses are combined.
    pub reduction: Reduction,
}

impl Default for SmoothL1Loss {
    fn default() -> Self {
        SmoothL1Loss {
            beta: 1.0,
            reduction: Reduction::Mean,
        }
    }
}

impl SmoothL1Loss {
    /// The loss of `input` against `target`.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        smooth_l1_loss(input, target, self.beta, self.reduction)
    }
}

/// `HuberLoss` as a struct, like `nn.HuberLoss(delta=..., reduction=...)`.
#[derive(Debug, Clone, Copy)]
pub struct HuberLoss {
    /// Threshold between the quadratic and the linear part (PyTorch default 1).
    pub delta: f64,
    /// How per-element losses are combined.
    pub reduction: Reduction,
}

impl Default for HuberLoss {
    fn default() -> Self {
        HuberLoss {
            delta: 1.0,
            reduction: Reduction::Mean,
        }
    }
}

impl HuberLoss {
    /// The loss of `input` against `target`.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        huber_loss(input, target, self.delta, self.reduction)
    }
}

/// `CrossEntropyLoss` as a struct, like `nn.CrossEntropyLoss(...)` (D2L 4.5's `loss`).
#[derive(Debug, Clone, Default)]
pub struct CrossEntropyLoss {
    /// Weights, ignore_index, label smoothing and reduction.
    pub opts: CrossEntropyOptions,
}

impl CrossEntropyLoss {
    /// Cross-entropy with PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// The loss of `logits` against class indices or probabilities.
    pub fn forward(&self, logits: &Tensor, target: &Tensor) -> Result<Tensor> {
        cross_entropy_with(logits, target, &self.opts)
    }
}

/// `BCEWithLogitsLoss` as a struct, like `nn.BCEWithLogitsLoss(pos_weight=..., reduction=...)`.
#[derive(Debug, Clone, Default)]
pub struct BCEWithLogitsLoss {
    /// Weight of positive examples, broadcast over the last dim.
    pub pos_weight: Option<Tensor>,
    /// How per-element losses are combined.
    pub reduction: Reduction,
}

impl BCEWithLogitsLoss {
    /// The loss of `logits` against 0/1 (or soft) targets.
    pub fn forward(&self, logits: &Tensor, target: &Tensor) -> Result<Tensor> {
        binary_cross_entropy_with_logits(logits, target, self.pos_weight.as_ref(), self.reduction)
    }
}
