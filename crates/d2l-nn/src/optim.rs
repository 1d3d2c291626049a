// One file, over 1,000 lines, on purpose: the five optimisers share one parameter-group
// core, one state layout (for checkpoints) and one fused-update path; each update rule is
// short and reads best beside the others it mirrors from `torch.optim`.
//! Optimisers (D2L 3.2 minibatch SGD, 4.5 weight decay, 12.6 momentum, 12.7 Adagrad,
//! 12.8 RMSProp, 12.10 Adam; notes §0.2): [`Sgd`], [`Adam`], [`AdamW`], [`RmsProp`] and
//! [`Adagrad`] with exactly the update rules of `torch.optim`, per-group learning rate
//! and weight decay ([`ParamGroup`], the book's "do not decay the bias"), and
//! `zero_grad`.
//!
//! Every `step` runs under [`no_grad`] and writes the new value into the parameter with
//! `copy_`, so every module holding that tensor (shared layers) sees it. Parameters
//! without a gradient, and frozen ones (`requires_grad` false), are skipped and keep no
//! state; the per-parameter state (momentum buffers, moment estimates, step counts) lives
//! in the optimiser between steps.
//!
//! ```
//! use d2l_nn::optim::{Optimizer, ParamGroup, Sgd, SgdConfig};
//! use d2l_nn::Tensor;
//! # fn main() -> d2l_nn::Result<()> {
//! let w = Tensor::ones(&[2, 2]).requires_grad_(true)?;
//! let b = Tensor::zeros(&[2]).requires_grad_(true)?;
//! // D2L 4.5: weight decay on the weight only.
//! let mut opt = Sgd::with_groups(
//!     vec![ParamGroup::new([w.clone()]).weight_decay(0.01), ParamGroup::new([b.clone()])],
//!     SgdConfig { lr: 0.1, ..Default::default() },
//! )?;
//! let loss = w.sum_all()?.add(&b.sum_all()?)?;
//! loss.backward()?;
//! opt.step()?;
//! opt.zero_grad();
//! assert!((w.to_vec::<f32>()[0] - (1.0 - 0.1 * (1.0 + 0.01))).abs() < 1e-6);
//! # Ok(()) }
//! ```

use d2l_tensor::{Error, Result, Tensor, TensorId};
use std::collections::{HashMap, HashSet};

// ---------------------------------------------------------------------------
// Parameter groups and the trait
// ---------------------------------------------------------------------------

/// A set of parameters with its own learning rate and/or weight decay; `None` means
/// "the optimiser's default" (PyTorch's `{"params": ..., "lr": ...}` dicts).
#[derive(Clone, Debug)]
pub struct ParamGroup {
    /// The parameters (leaf float tensors) this group updates.
    pub params: Vec<Tensor>,
    /// This group's learning rate, or `None` for the optimiser's.
    pub lr: Option<f64>,
    /// This group's weight decay, or `None` for the optimiser's.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group using the optimiser's learning rate and weight decay.
    pub fn new(params: impl IntoIterator<Item = Tensor>) -> Self {
        ParamGroup {
            params: params.into_iter().collect(),
            lr: None,
            weight_decay: None,
        }
    }

    /// Overrides the learning rate for this group.
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = Some(lr);
        self
    }

    /// Overrides the weight decay for this group (`0.0` = no decay, e.g. for biases).
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }
}

/// What every optimiser offers (PyTorch's `torch.optim.Optimizer`).
pub trait Optimizer {
    /// Applies one update to every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;

    /// The parameter groups (with `None` where the optimiser's default applies).
    fn param_groups(&self) -> &[ParamGroup];

    /// Mutable access to the groups, e.g. to change one group's learning rate.
    fn param_groups_mut(&mut self) -> &mut [ParamGroup];

    /// The optimiser-wide default learning rate.
    fn default_lr(&self) -> f64;

    /// The optimiser-wide default weight decay.
    fn default_weight_decay(&self) -> f64;

    /// Sets the optimiser-wide default learning rate (groups with their own keep theirs).
    fn set_default_lr(&mut self, lr: f64);

    /// Adds a group of parameters (PyTorch's `add_param_group`); fine-tuning uses this.
    fn add_param_group(&mut self, group: ParamGroup) -> Result<()>;

    /// The per-parameter state (momentum buffers, moment estimates, step counts) as named
    /// tensors `"{index}.{field}"`, where `index` is the parameter's position in
    /// [`Optimizer::params`] — what a checkpoint stores (PyTorch's `state_dict()["state"]`).
    /// Parameters that have not been stepped yet have no entries.
    fn state_tensors(&self) -> Vec<(String, Tensor)>;

    /// Replaces the per-parameter state with entries from [`Optimizer::state_tensors`] of an
    /// optimiser of the same kind over parameters of the same shapes (PyTorch's
    /// `load_state_dict`). Each tensor is moved to its parameter's device and dtype. An
    /// entry for an unknown index or field, or of the wrong shape, is an error and nothing
    /// is changed.
    fn load_state_tensors(&mut self, entries: &[(String, Tensor)]) -> Result<()>;

    /// Clears the gradient of every parameter (PyTorch's `zero_grad(set_to_none=True)`).
    fn zero_grad(&self) {
        for g in self.param_groups() {
            for p in &g.params {
                p.zero_grad();
            }
        }
    }

    /// The learning rate of the first group (the one most code reads, like
    /// `trainer.param_groups[0]["lr"]`).
    fn lr(&self) -> f64 {
        self.group_lr(0)
    }

    /// Sets the learning rate of every group, like the book's
    /// `for g in trainer.param_groups: g["lr"] = lr` (what schedulers call).
    fn set_lr(&mut self, lr: f64) {
        self.set_default_lr(lr);
        for g in self.param_groups_mut() {
            g.lr = Some(lr);
        }
    }

    /// The learning rate group `i` uses (its own, else the default).
    fn group_lr(&self, i: usize) -> f64 {
        self.param_groups()
            .get(i)
            .and_then(|g| g.lr)
            .unwrap_or_else(|| self.default_lr())
    }

    /// The weight decay group `i` uses (its own, else the default).
    fn group_weight_decay(&self, i: usize) -> f64 {
        self.param_groups()
            .get(i)
            .and_then(|g| g.weight_decay)
            .unwrap_or_else(|| self.default_weight_decay())
    }

    /// Every parameter of every group, in order.
    fn params(&self) -> Vec<Tensor> {
        self.param_groups()
            .iter()
            .flat_map(|g| g.params.iter().cloned())
            .collect()
    }
}

fn invalid(op: &'static str, msg: String) -> Error {
    Error::InvalidArgument { op, msg }
}

fn check_lr(op: &'static str, what: &str, lr: f64) -> Result<()> {
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(invalid(
            op,
            format!("invalid {what}: expected a finite value >= 0, got {lr}"),
        ));
    }
    Ok(())
}

fn check_nonneg(op: &'static str, what: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(invalid(
            op,
            format!("invalid {what}: expected a finite value >= 0, got {v}"),
        ));
    }
    Ok(())
}

fn check_unit(op: &'static str, what: &str, v: f64) -> Result<()> {
    if !(0.0..1.0).contains(&v) {
        return Err(invalid(
            op,
            format!("invalid {what}: expected a value in [0, 1), got {v}"),
        ));
    }
    Ok(())
}

/// One parameter's optimiser state, as named tensors for checkpoints.
trait ParamState: Default {
    /// The fields that hold a value (`step` as a 0-d `i64` tensor).
    fn fields(&self) -> Vec<(&'static str, Tensor)>;
    /// Sets `field`; `false` when this state has no such field.
    fn set(&mut self, field: &str, t: Tensor) -> Result<bool>;
}

/// A 0-d `i64` tensor holding a step count.
fn step_tensor(step: u64) -> Tensor {
    Tensor::from_vec(vec![step as i64], &[]).expect("a 0-d tensor holds one value")
}

/// The step count a 0-d tensor holds (any dtype), or an error for a negative one.
fn step_value(t: &Tensor) -> Result<u64> {
    let v = t.to_dtype(d2l_tensor::DType::I64)?.cpu()?.to_vec::<i64>()[0];
    u64::try_from(v).map_err(|_| invalid("optimizer", format!("a negative step count {v}")))
}

/// Implements [`ParamState`] for a state struct: `step` (a `u64`) when named, and the
/// `Option<Tensor>` fields.
macro_rules! param_state {
    ($ty:ident $(, $step:ident)?; $($field:ident),*) => {
        impl ParamState for $ty {
            fn fields(&self) -> Vec<(&'static str, Tensor)> {
                #[allow(unused_mut)]
                let mut out = Vec::new();
                $( if self.$step > 0 { out.push(("step", step_tensor(self.$step))); } )?
                $( if let Some(t) = &self.$field { out.push((stringify!($field), t.clone())); } )*
                out
            }
            fn set(&mut self, field: &str, t: Tensor) -> Result<bool> {
                match field {
                    $( "step" => self.$step = step_value(&t)?, )?
                    $( stringify!($field) => self.$field = Some(t), )*
                    _ => return Ok(false),
                }
                Ok(true)
            }
        }
    };
}

/// Groups plus per-parameter state, shared by every optimiser.
#[derive(Clone, Debug)]
struct Core<S> {
    groups: Vec<ParamGroup>,
    state: HashMap<TensorId, S>,
}

impl<S: ParamState> Core<S> {
    fn new(op: &'static str, groups: Vec<ParamGroup>) -> Result<Self> {
        let mut core = Core {
            groups: Vec::new(),
            state: HashMap::new(),
        };
        for g in groups {
            core.add_group(op, g)?;
        }
        if core.groups.iter().all(|g| g.params.is_empty()) {
            return Err(invalid(op, "optimizer got an empty parameter list".into()));
        }
        Ok(core)
    }

    fn add_group(&mut self, op: &'static str, group: ParamGroup) -> Result<()> {
        let mut seen: HashSet<TensorId> = self
            .groups
            .iter()
            .flat_map(|g| g.params.iter().map(|p| p.id()))
            .collect();
        for (i, p) in group.params.iter().enumerate() {
            if !p.is_leaf() {
                return Err(invalid(
                    op,
                    format!("parameter {i} of the group is not a leaf tensor; optimise leaves (detach it first)"),
                ));
            }
            if !p.dtype().is_float() {
                return Err(invalid(
                    op,
                    format!(
                        "parameter {i} of the group has dtype {}, expected a float dtype",
                        p.dtype()
                    ),
                ));
            }
            if !seen.insert(p.id()) {
                return Err(invalid(
                    op,
                    format!("parameter {i} of the group appears more than once across the parameter groups"),
                ));
            }
        }
        if let Some(lr) = group.lr {
            check_lr(op, "group learning rate", lr)?;
        }
        if let Some(wd) = group.weight_decay {
            check_nonneg(op, "group weight_decay", wd)?;
        }
        self.groups.push(group);
        Ok(())
    }

    fn export(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, p) in self.groups.iter().flat_map(|g| g.params.iter()).enumerate() {
            if let Some(st) = self.state.get(&p.id()) {
                for (field, t) in st.fields() {
                    out.push((format!("{i}.{field}"), t));
                }
            }
        }
        out
    }

    fn import(&mut self, op: &'static str, entries: &[(String, Tensor)]) -> Result<()> {
        let params: Vec<&Tensor> = self.groups.iter().flat_map(|g| g.params.iter()).collect();
        let mut state: HashMap<TensorId, S> = HashMap::new();
        for (name, t) in entries {
            let bad = |why: String| invalid(op, format!("optimizer state entry `{name}`: {why}"));
            let (index, field) = name
                .split_once('.')
                .ok_or_else(|| bad("expected `INDEX.FIELD`".into()))?;
            let index: usize = index
                .parse()
                .map_err(|_| bad("the index is not a number".into()))?;
            let p = params.get(index).ok_or_else(|| {
                bad(format!(
                    "index {index}, but the optimizer has {} parameters",
                    params.len()
                ))
            })?;
            let st = state.entry(p.id()).or_default();
            let value = if field == "step" {
                if t.numel() != 1 {
                    return Err(bad(format!(
                        "a step count must be one value, got shape {:?}",
                        t.shape()
                    )));
                }
                t.clone()
            } else {
                if t.shape() != p.shape() {
                    return Err(bad(format!(
                        "shape {:?} does not match the parameter's {:?}",
                        t.shape(),
                        p.shape()
                    )));
                }
                t.to_dtype(p.dtype())?.to(p.device())?
            };
            if !st.set(field, value)? {
                return Err(bad(format!("unknown field `{field}` for {op}")));
            }
        }
        self.state = state;
        Ok(())
    }

    /// Runs `update(param, grad, lr, weight_decay, state) -> new value` for every
    /// trainable parameter with a gradient, under `no_grad`, and writes the result in place.
    fn for_each(
        &mut self,
        op: &'static str,
        default_lr: f64,
        default_wd: f64,
        mut update: impl FnMut(&Tensor, Tensor, f64, f64, &mut S) -> Result<Tensor>,
    ) -> Result<()> {
        for g in &self.groups {
            check_lr(op, "group learning rate", g.lr.unwrap_or(default_lr))?;
            check_nonneg(
                op,
                "group weight_decay",
                g.weight_decay.unwrap_or(default_wd),
            )?;
        }
        let _guard = d2l_tensor::NoGradGuard::new();
        for g in &self.groups {
            let lr = g.lr.unwrap_or(default_lr);
            let wd = g.weight_decay.unwrap_or(default_wd);
            for p in &g.params {
                if !p.requires_grad() {
                    continue;
                }
                let Some(grad) = p.grad() else { continue };
                let st = self.state.entry(p.id()).or_default();
                // An update that wrote `p` in place returns `p` itself.
                let new = update(p, grad, lr, wd, st)?;
                if new.id() != p.id() {
                    p.copy_(&new)?;
                }
            }
        }
        Ok(())
    }
}

/// `a + alpha * b` (PyTorch's `a.add(b, alpha=alpha)`).
fn axpy(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor> {
    if alpha == 1.0 {
        a.add(b)
    } else {
        a.add(&b.mul_scalar(alpha)?)
    }
}

/// `a + weight * (b - a)` (PyTorch's `a.lerp(b, weight)`, same two-branch rounding).
fn lerp(a: &Tensor, b: &Tensor, weight: f64) -> Result<Tensor> {
    if weight.abs() < 0.5 {
        a.add(&b.sub(a)?.mul_scalar(weight)?)
    } else {
        b.sub(&b.sub(a)?.mul_scalar(1.0 - weight)?)
    }
}

/// Implements the [`Optimizer`] trait and the shared accessors for one optimiser type.
macro_rules! optimizer_impl {
    ($ty:ident, $cfg:ident, $name:literal) => {
        impl $ty {
            /// An optimiser over parameter groups; groups without their own lr / weight
            /// decay use `config`'s.
            pub fn with_groups(groups: Vec<ParamGroup>, config: $cfg) -> Result<Self> {
                config.validate()?;
                Ok($ty {
                    config,
                    core: Core::new($name, groups)?,
                })
            }

            /// An optimiser over one group of parameters with the given configuration.
            pub fn with_config(
                params: impl IntoIterator<Item = Tensor>,
                config: $cfg,
            ) -> Result<Self> {
                Self::with_groups(vec![ParamGroup::new(params)], config)
            }

            /// The optimiser-wide configuration.
            pub fn config(&self) -> &$cfg {
                &self.config
            }

            /// Sets the weight decay (L2 penalty; decoupled for AdamW) for groups without their own.
            pub fn weight_decay(mut self, weight_decay: f64) -> Self {
                self.config.weight_decay = weight_decay;
                self
            }

            /// The number of parameters that currently hold optimiser state.
            pub fn state_len(&self) -> usize {
                self.core.state.len()
            }
        }

        impl Optimizer for $ty {
            fn step(&mut self) -> Result<()> {
                self.config.validate()?;
                self.step_impl()
            }
            fn param_groups(&self) -> &[ParamGroup] {
                &self.core.groups
            }
            fn param_groups_mut(&mut self) -> &mut [ParamGroup] {
                &mut self.core.groups
            }
            fn default_lr(&self) -> f64 {
                self.config.lr
            }
            fn default_weight_decay(&self) -> f64 {
                self.config.weight_decay
            }
            fn set_default_lr(&mut self, lr: f64) {
                self.config.lr = lr;
            }
            fn add_param_group(&mut self, group: ParamGroup) -> Result<()> {
                self.core.add_group($name, group)
            }
            fn state_tensors(&self) -> Vec<(String, Tensor)> {
                self.core.export()
            }
            fn load_state_tensors(&mut self, entries: &[(String, Tensor)]) -> Result<()> {
                self.core.import($name, entries)
            }
        }
    };
}

// ---------------------------------------------------------------------------
// SGD
// ---------------------------------------------------------------------------

/// Settings of [`Sgd`] (defaults as `torch.optim.SGD`: lr 1e-3, everything else off).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate η.
    pub lr: f64,
    /// Momentum factor μ (0 = plain SGD).
    pub momentum: f64,
    /// Dampening τ of the gradient added to the momentum buffer.
    pub dampening: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening 0).
    pub nesterov: bool,
    /// L2 penalty λ added to the gradient (λ·w).
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

impl SgdConfig {
    /// Checks the ranges PyTorch checks, with a message naming the bad value.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "SGD";
        check_lr(OP, "learning rate", self.lr)?;
        check_nonneg(OP, "momentum", self.momentum)?;
        check_nonneg(OP, "weight_decay", self.weight_decay)?;
        if !self.dampening.is_finite() {
            return Err(invalid(
                OP,
                format!(
                    "invalid dampening: expected a finite value, got {}",
                    self.dampening
                ),
            ));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(invalid(
                OP,
                format!(
                    "Nesterov momentum requires a momentum > 0 and zero dampening, got momentum {} and dampening {}",
                    self.momentum, self.dampening
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default)]
struct SgdState {
    momentum_buffer: Option<Tensor>,
}

param_state!(SgdState; momentum_buffer);

/// Stochastic gradient descent with optional momentum, dampening, Nesterov and weight
/// decay (`torch.optim.SGD`):
/// `g ← g + λw; b ← μb + (1-τ)g (b₁ = g); g ← g + μb (Nesterov) or b; w ← w - ηg`.
#[derive(Clone, Debug)]
pub struct Sgd {
    config: SgdConfig,
    core: Core<SgdState>,
}

optimizer_impl!(Sgd, SgdConfig, "SGD");

impl Sgd {
    /// Plain minibatch SGD with learning rate `lr` (D2L 3.2).
    pub fn new(params: impl IntoIterator<Item = Tensor>, lr: f64) -> Result<Self> {
        Self::with_config(
            params,
            SgdConfig {
                lr,
                ..Default::default()
            },
        )
    }

    /// Sets the momentum factor.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.config.momentum = momentum;
        self
    }

    /// Sets the dampening.
    pub fn dampening(mut self, dampening: f64) -> Self {
        self.config.dampening = dampening;
        self
    }

    /// Switches Nesterov momentum on or off.
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.config.nesterov = nesterov;
        self
    }

    fn step_impl(&mut self) -> Result<()> {
        let c = self.config;
        self.core
            .for_each("SGD", c.lr, c.weight_decay, |p, grad, lr, wd, st| {
                let mut d_p = if wd != 0.0 { axpy(&grad, p, wd)? } else { grad };
                if c.momentum != 0.0 {
                    let buf = match follow(st.momentum_buffer.take(), p)? {
                        None => d_p.copy()?,
                        Some(b) => axpy(&b.mul_scalar(c.momentum)?, &d_p, 1.0 - c.dampening)?,
                    };
                    d_p = if c.nesterov {
                        axpy(&d_p, &buf, c.momentum)?
                    } else {
                        buf.clone()
                    };
                    st.momentum_buffer = Some(buf);
                }
                p.add_scaled_(&d_p, -lr)?;
                Ok(p.clone())
            })
    }
}

// ---------------------------------------------------------------------------
// Adam and AdamW
// ---------------------------------------------------------------------------

/// Settings of [`Adam`] and [`AdamW`] (defaults as `torch.optim.Adam`; note
/// [`AdamW::new`] uses PyTorch's AdamW default weight decay 1e-2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate η.
    pub lr: f64,
    /// Decay rates (β₁, β₂) of the first- and second-moment estimates.
    pub betas: (f64, f64),
    /// ε added to the denominator.
    pub eps: f64,
    /// Weight decay: L2 added to the gradient for Adam, decoupled (w ← w(1-ηλ)) for AdamW.
    pub weight_decay: f64,
    /// Use the maximum of past second moments (AMSGrad).
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        }
    }
}

impl AdamConfig {
    /// Checks the ranges PyTorch checks, with a message naming the bad value.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "Adam";
        check_lr(OP, "learning rate", self.lr)?;
        check_nonneg(OP, "epsilon", self.eps)?;
        check_unit(OP, "beta parameter at index 0", self.betas.0)?;
        check_unit(OP, "beta parameter at index 1", self.betas.1)?;
        check_nonneg(OP, "weight_decay", self.weight_decay)
    }
}

#[derive(Clone, Debug, Default)]
struct AdamState {
    step: u64,
    exp_avg: Option<Tensor>,
    exp_avg_sq: Option<Tensor>,
    max_exp_avg_sq: Option<Tensor>,
}

param_state!(AdamState, step; exp_avg, exp_avg_sq, max_exp_avg_sq);

fn adam_update(
    c: &AdamConfig,
    decoupled: bool,
    p: &Tensor,
    grad: Tensor,
    lr: f64,
    wd: f64,
    st: &mut AdamState,
) -> Result<Tensor> {
    let (beta1, beta2) = c.betas;
    let mut param = p.clone();
    let mut grad = grad;
    if wd != 0.0 {
        if decoupled {
            param = p.mul_scalar(1.0 - lr * wd)?;
        } else {
            grad = axpy(&grad, p, wd)?;
        }
    }
    st.step += 1;
    let m = follow(st.exp_avg.take(), p)?.unwrap_or_else(|| p.zeros_like());
    let v = follow(st.exp_avg_sq.take(), p)?.unwrap_or_else(|| p.zeros_like());
    let m = lerp(&m, &grad, 1.0 - beta1)?;
    let v = axpy(&v.mul_scalar(beta2)?, &grad.square()?, 1.0 - beta2)?;
    let step = st.step as f64;
    let bias_correction1 = 1.0 - beta1.powf(step);
    let bias_correction2 = 1.0 - beta2.powf(step);
    let step_size = lr / bias_correction1;
    let bias_correction2_sqrt = bias_correction2.sqrt();
    let second = if c.amsgrad {
        let prev = follow(st.max_exp_avg_sq.take(), p)?.unwrap_or_else(|| p.zeros_like());
        let mx = prev.maximum(&v)?;
        st.max_exp_avg_sq = Some(mx.clone());
        mx
    } else {
        v.clone()
    };
    let denom = second
        .sqrt()?
        .div_scalar(bias_correction2_sqrt)?
        .add_scalar(c.eps)?;
    let new = axpy(&param, &m.div(&denom)?, -step_size)?;
    st.exp_avg = Some(m);
    st.exp_avg_sq = Some(v);
    Ok(new)
}

/// The whole Adam step in a few kernel launches (16 tensors each) when every parameter
/// with a gradient lives on one real GPU, is dense and shares its step count with the
/// rest; `Ok(false)` (nothing done) otherwise, and the per-tensor path runs. The
/// arithmetic is the per-tensor path's (PyTorch's), in one pass per element.
fn fused_adam_step(
    core: &mut Core<AdamState>,
    c: &AdamConfig,
    decoupled: bool,
    op: &'static str,
) -> Result<bool> {
    use d2l_tensor::{cuda, fused};
    let dense = |t: &Tensor| t.is_contiguous() && t.layout().offset() == 0;
    let mut device = None;
    let mut step = None;
    for g in &core.groups {
        check_lr(op, "group learning rate", g.lr.unwrap_or(c.lr))?;
        check_nonneg(
            op,
            "group weight_decay",
            g.weight_decay.unwrap_or(c.weight_decay),
        )?;
        for p in &g.params {
            let Some(grad) = p.grad().filter(|_| p.requires_grad()) else {
                continue;
            };
            let d = p.device();
            if !d.is_cuda() || cuda::is_simulated() || *device.get_or_insert(d) != d {
                return Ok(false);
            }
            if !dense(p) || !dense(&grad) || grad.dtype() != p.dtype() || !p.dtype().is_float() {
                return Ok(false);
            }
            let s = core.state.get(&p.id()).map_or(0, |st| st.step);
            if *step.get_or_insert(s) != s {
                return Ok(false);
            }
        }
    }
    let Some(step) = step else { return Ok(false) };
    let _guard = d2l_tensor::NoGradGuard::new();
    let mut launched = false;
    for g in &core.groups {
        let lr = g.lr.unwrap_or(c.lr);
        let wd = g.weight_decay.unwrap_or(c.weight_decay);
        let mut held: Vec<(Tensor, Tensor, Tensor, Tensor, Option<Tensor>)> = Vec::new();
        for p in &g.params {
            let Some(grad) = p.grad().filter(|_| p.requires_grad()) else {
                continue;
            };
            let st = core.state.entry(p.id()).or_default();
            let m = follow(st.exp_avg.take(), p)?.unwrap_or_else(|| p.zeros_like());
            let v = follow(st.exp_avg_sq.take(), p)?.unwrap_or_else(|| p.zeros_like());
            let mx = if c.amsgrad {
                Some(follow(st.max_exp_avg_sq.take(), p)?.unwrap_or_else(|| p.zeros_like()))
            } else {
                None
            };
            st.exp_avg = Some(m.clone());
            st.exp_avg_sq = Some(v.clone());
            st.max_exp_avg_sq = mx.clone();
            held.push((p.clone(), grad, m, v, mx));
        }
        if held.is_empty() {
            continue;
        }
        let items: Vec<fused::AdamTensors<'_>> = held
            .iter()
            .map(|(p, g, m, v, mx)| fused::AdamTensors {
                param: p,
                grad: g,
                exp_avg: m,
                exp_avg_sq: v,
                max_exp_avg_sq: mx.as_ref(),
            })
            .collect();
        let hyper = fused::AdamStep {
            lr,
            beta1: c.betas.0,
            beta2: c.betas.1,
            eps: c.eps,
            weight_decay: wd,
            decoupled,
            amsgrad: c.amsgrad,
            step: step + 1,
        };
        if !fused::adam_(&items, &hyper)? {
            if launched {
                return Err(invalid(
                    op,
                    "internal error: the fused GPU update declined a parameter group after \
                     updating another"
                        .into(),
                ));
            }
            return Ok(false);
        }
        launched = true;
        for (p, ..) in &held {
            if let Some(st) = core.state.get_mut(&p.id()) {
                st.step = step + 1;
            }
        }
    }
    Ok(launched)
}

/// Adam (D2L 12.10, `torch.optim.Adam`): bias-corrected moment estimates, L2 weight
/// decay added to the gradient, optional AMSGrad.
#[derive(Clone, Debug)]
pub struct Adam {
    config: AdamConfig,
    core: Core<AdamState>,
}

/// AdamW (`torch.optim.AdamW`): Adam with decoupled weight decay `w ← w(1 - ηλ)` applied
/// before the Adam update instead of an L2 term in the gradient.
#[derive(Clone, Debug)]
pub struct AdamW {
    config: AdamConfig,
    core: Core<AdamState>,
}

optimizer_impl!(Adam, AdamConfig, "Adam");
optimizer_impl!(AdamW, AdamConfig, "AdamW");

macro_rules! adam_builders {
    ($ty:ident, $decoupled:expr) => {
        impl $ty {
            /// Sets (β₁, β₂).
            pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
                self.config.betas = (beta1, beta2);
                self
            }

            /// Sets ε.
            pub fn eps(mut self, eps: f64) -> Self {
                self.config.eps = eps;
                self
            }

            /// Switches AMSGrad on or off.
            pub fn amsgrad(mut self, amsgrad: bool) -> Self {
                self.config.amsgrad = amsgrad;
                self
            }

            fn step_impl(&mut self) -> Result<()> {
                let c = self.config;
                let name = if $decoupled { "AdamW" } else { "Adam" };
                if fused_adam_step(&mut self.core, &c, $decoupled, name)? {
                    return Ok(());
                }
                self.core
                    .for_each(name, c.lr, c.weight_decay, |p, grad, lr, wd, st| {
                        adam_update(&c, $decoupled, p, grad, lr, wd, st)
                    })
            }
        }
    };
}

adam_builders!(Adam, false);
adam_builders!(AdamW, true);

impl Adam {
    /// Adam with learning rate `lr` and PyTorch's defaults otherwise.
    pub fn new(params: impl IntoIterator<Item = Tensor>, lr: f64) -> Result<Self> {
        Self::with_config(
            params,
            AdamConfig {
                lr,
                ..Default::default()
            },
        )
    }
}

impl AdamW {
    /// AdamW with learning rate `lr` and PyTorch's defaults (weight decay 1e-2).
    pub fn new(params: impl IntoIterator<Item = Tensor>, lr: f64) -> Result<Self> {
        Self::with_config(
            params,
            AdamConfig {
                lr,
                weight_decay: 1e-2,
                ..Default::default()
            },
        )
    }
}

// ---------------------------------------------------------------------------
// RMSprop
// ---------------------------------------------------------------------------

/// Settings of [`RmsProp`] (defaults as `torch.optim.RMSprop`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate η.
    pub lr: f64,
    /// Smoothing constant α of the squared-gradient average (the book's γ).
    pub alpha: f64,
    /// ε added to the denominator.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Momentum factor (0 = none).
    pub momentum: f64,
    /// Normalise by the estimated variance (subtract the squared mean gradient).
    pub centered: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

impl RmsPropConfig {
    /// Checks the ranges PyTorch checks, with a message naming the bad value.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "RMSprop";
        check_lr(OP, "learning rate", self.lr)?;
        check_nonneg(OP, "epsilon", self.eps)?;
        check_nonneg(OP, "momentum", self.momentum)?;
        check_nonneg(OP, "weight_decay", self.weight_decay)?;
        check_nonneg(OP, "alpha", self.alpha)
    }
}

#[derive(Clone, Debug, Default)]
struct RmsPropState {
    step: u64,
    square_avg: Option<Tensor>,
    grad_avg: Option<Tensor>,
    momentum_buffer: Option<Tensor>,
}

param_state!(RmsPropState, step; square_avg, grad_avg, momentum_buffer);

/// RMSProp (D2L 12.8, `torch.optim.RMSprop`), optionally centered and with momentum.
#[derive(Clone, Debug)]
pub struct RmsProp {
    config: RmsPropConfig,
    core: Core<RmsPropState>,
}

optimizer_impl!(RmsProp, RmsPropConfig, "RMSprop");

impl RmsProp {
    /// RMSprop with learning rate `lr` and PyTorch's defaults otherwise.
    pub fn new(params: impl IntoIterator<Item = Tensor>, lr: f64) -> Result<Self> {
        Self::with_config(
            params,
            RmsPropConfig {
                lr,
                ..Default::default()
            },
        )
    }

    /// Sets the smoothing constant α.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.config.alpha = alpha;
        self
    }

    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> Self {
        self.config.eps = eps;
        self
    }

    /// Sets the momentum factor.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.config.momentum = momentum;
        self
    }

    /// Switches the centered variant on or off.
    pub fn centered(mut self, centered: bool) -> Self {
        self.config.centered = centered;
        self
    }

    fn step_impl(&mut self) -> Result<()> {
        let c = self.config;
        self.core
            .for_each("RMSprop", c.lr, c.weight_decay, |p, grad, lr, wd, st| {
                st.step += 1;
                let grad = if wd != 0.0 { axpy(&grad, p, wd)? } else { grad };
                let sq = follow(st.square_avg.take(), p)?.unwrap_or_else(|| p.zeros_like());
                let sq = axpy(&sq.mul_scalar(c.alpha)?, &grad.square()?, 1.0 - c.alpha)?;
                let avg = if c.centered {
                    let ga = follow(st.grad_avg.take(), p)?.unwrap_or_else(|| p.zeros_like());
                    let ga = lerp(&ga, &grad, 1.0 - c.alpha)?;
                    let avg = sq.sub(&ga.square()?)?.sqrt()?;
                    st.grad_avg = Some(ga);
                    avg
                } else {
                    sq.sqrt()?
                };
                st.square_avg = Some(sq);
                let avg = avg.add_scalar(c.eps)?;
                if c.momentum > 0.0 {
                    let buf =
                        follow(st.momentum_buffer.take(), p)?.unwrap_or_else(|| p.zeros_like());
                    let buf = buf.mul_scalar(c.momentum)?.add(&grad.div(&avg)?)?;
                    let new = axpy(p, &buf, -lr)?;
                    st.momentum_buffer = Some(buf);
                    Ok(new)
                } else {
                    axpy(p, &grad.div(&avg)?, -lr)
                }
            })
    }
}

// ---------------------------------------------------------------------------
// Adagrad
// ---------------------------------------------------------------------------

/// Settings of [`Adagrad`] (defaults as `torch.optim.Adagrad`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradConfig {
    /// Learning rate η.
    pub lr: f64,
    /// Learning-rate decay: step t uses η / (1 + (t-1)·lr_decay).
    pub lr_decay: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Starting value of the sum of squared gradients.
    pub initial_accumulator_value: f64,
    /// ε added to the denominator.
    pub eps: f64,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        AdagradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
        }
    }
}

impl AdagradConfig {
    /// Checks the ranges PyTorch checks, with a message naming the bad value.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "Adagrad";
        check_lr(OP, "learning rate", self.lr)?;
        check_nonneg(OP, "lr_decay", self.lr_decay)?;
        check_nonneg(OP, "weight_decay", self.weight_decay)?;
        check_nonneg(
            OP,
            "initial_accumulator_value",
            self.initial_accumulator_value,
        )?;
        check_nonneg(OP, "epsilon", self.eps)
    }
}

#[derive(Clone, Debug, Default)]
struct AdagradState {
    step: u64,
    sum: Option<Tensor>,
}

param_state!(AdagradState, step; sum);

/// Adagrad (D2L 12.7, `torch.optim.Adagrad`): per-coordinate steps scaled by the root
/// of the summed squared gradients, with optional learning-rate decay.
#[derive(Clone, Debug)]
pub struct Adagrad {
    config: AdagradConfig,
    core: Core<AdagradState>,
}

optimizer_impl!(Adagrad, AdagradConfig, "Adagrad");

impl Adagrad {
    /// Adagrad with learning rate `lr` and PyTorch's defaults otherwise.
    pub fn new(params: impl IntoIterator<Item = Tensor>, lr: f64) -> Result<Self> {
        Self::with_config(
            params,
            AdagradConfig {
                lr,
                ..Default::default()
            },
        )
    }

    /// Sets the learning-rate decay.
    pub fn lr_decay(mut self, lr_decay: f64) -> Self {
        self.config.lr_decay = lr_decay;
        self
    }

    /// Sets the starting value of the squared-gradient sum.
    pub fn initial_accumulator_value(mut self, value: f64) -> Self {
        self.config.initial_accumulator_value = value;
        self
    }

    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> Self {
        self.config.eps = eps;
        self
    }

    fn step_impl(&mut self) -> Result<()> {
        let c = self.config;
        self.core
            .for_each("Adagrad", c.lr, c.weight_decay, |p, grad, lr, wd, st| {
                st.step += 1;
                let grad = if wd != 0.0 { axpy(&grad, p, wd)? } else { grad };
                let clr = lr / (1.0 + (st.step - 1) as f64 * c.lr_decay);
                let sum = follow(st.sum.take(), p)?
                    .unwrap_or_else(|| p.full_like(c.initial_accumulator_value));
                let sum = sum.add(&grad.square()?)?;
                let std = sum.sqrt()?.add_scalar(c.eps)?;
                let new = axpy(p, &grad.div(&std)?, -clr)?;
                st.sum = Some(sum);
                Ok(new)
            })
    }
}

/// An optimiser state tensor on its parameter's device: state made before the model was
/// moved with `Module::to` (or loaded from a CPU checkpoint) follows the parameter
/// instead of failing the step with a device mismatch.
fn follow(state: Option<Tensor>, p: &Tensor) -> Result<Option<Tensor>> {
    match state {
        Some(t) if t.device() != p.device() => Ok(Some(t.to(p.device())?)),
        other => Ok(other),
    }
}
