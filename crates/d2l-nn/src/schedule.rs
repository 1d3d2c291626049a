//! Learning-rate schedules (D2L 12.11): [`StepLr`], [`MultiStepLr`] and [`ExponentialLr`]
//! with the values of `torch.optim.lr_scheduler`, the book's [`CosineScheduler`] with
//! linear warm-up, and [`FnScheduler`] for any closure (the book's square-root and
//! factor schedules).
//!
//! A schedule maps an epoch (or update) number to a learning rate, counted from 0 (the
//! initial rate). Drive it the PyTorch way with [`LrScheduler::step`] once per epoch, or
//! the book's way with [`LrScheduler::apply`]`(opt, epoch)`. PyTorch's scheduler
//! constructors also set the epoch-0 rate; here call `apply(&mut opt, 0)` once before
//! training when that rate differs from the optimiser's (a warm-up start).
//!
//! ```
//! use d2l_nn::optim::{Optimizer, Sgd};
//! use d2l_nn::schedule::{LrScheduler, StepLr};
//! use d2l_nn::Tensor;
//! # fn main() -> d2l_nn::Result<()> {
//! let w = Tensor::zeros(&[3]).requires_grad_(true)?;
//! let mut opt = Sgd::new([w], 0.1)?;
//! let mut sched = StepLr::new(0.1, 2, 0.5)?;
//! for _epoch in 0..4 {
//!     // ... train one epoch with opt ...
//!     sched.step(&mut opt);
//! }
//! assert!((opt.lr() - 0.025).abs() < 1e-12);
//! # Ok(()) }
//! ```

use crate::optim::Optimizer;
use d2l_tensor::{Error, Result};

fn invalid(op: &'static str, msg: String) -> Error {
    Error::InvalidArgument { op, msg }
}

fn check_lr(op: &'static str, what: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(invalid(
            op,
            format!("invalid {what}: expected a finite value >= 0, got {v}"),
        ));
    }
    Ok(())
}

fn check_gamma(op: &'static str, gamma: f64) -> Result<()> {
    if !(gamma.is_finite() && gamma > 0.0) {
        return Err(invalid(
            op,
            format!("invalid gamma: expected a finite value > 0, got {gamma}"),
        ));
    }
    Ok(())
}

/// A learning-rate schedule: the rate for each epoch, plus PyTorch-style stepping.
pub trait LrScheduler {
    /// The learning rate for epoch (or update) `epoch`; epoch 0 is the initial rate.
    fn lr_at(&self, epoch: usize) -> f64;

    /// How many times [`LrScheduler::step`] has been called (PyTorch's `last_epoch`).
    fn last_epoch(&self) -> usize;

    /// Moves the step counter (to resume training, or to rewind).
    fn set_last_epoch(&mut self, epoch: usize);

    /// Advances one epoch and sets every group of `opt` to the new rate, which it returns
    /// (PyTorch's `scheduler.step()` after `optimizer.step()`).
    fn step(&mut self, opt: &mut dyn Optimizer) -> f64 {
        let e = self.last_epoch() + 1;
        self.set_last_epoch(e);
        self.apply(opt, e)
    }

    /// Sets every group of `opt` to the rate of `epoch` and returns it (the book's
    /// `trainer.param_groups[0]["lr"] = scheduler(epoch)`).
    fn apply(&self, opt: &mut dyn Optimizer, epoch: usize) -> f64 {
        let lr = self.lr_at(epoch);
        opt.set_lr(lr);
        lr
    }

    /// The rate at the current step count.
    fn current_lr(&self) -> f64 {
        self.lr_at(self.last_epoch())
    }
}

macro_rules! counter_impl {
    () => {
        fn last_epoch(&self) -> usize {
            self.last_epoch
        }
        fn set_last_epoch(&mut self, epoch: usize) {
            self.last_epoch = epoch;
        }
    };
}

/// Multiplies the rate by `gamma` every `step_size` epochs (`torch.optim.lr_scheduler.StepLR`).
#[derive(Clone, Debug, PartialEq)]
pub struct StepLr {
    base_lr: f64,
    step_size: usize,
    gamma: f64,
    last_epoch: usize,
}

impl StepLr {
    /// `base_lr · gamma^(epoch / step_size)`; `step_size` must be positive.
    pub fn new(base_lr: f64, step_size: usize, gamma: f64) -> Result<Self> {
        check_lr("StepLR", "base learning rate", base_lr)?;
        check_gamma("StepLR", gamma)?;
        if step_size == 0 {
            return Err(invalid(
                "StepLR",
                "step_size must be positive, got 0".into(),
            ));
        }
        Ok(StepLr {
            base_lr,
            step_size,
            gamma,
            last_epoch: 0,
        })
    }
}

impl LrScheduler for StepLr {
    fn lr_at(&self, epoch: usize) -> f64 {
        self.base_lr * self.gamma.powi((epoch / self.step_size) as i32)
    }
    counter_impl!();
}

/// Multiplies the rate by `gamma` at each milestone epoch
/// (`torch.optim.lr_scheduler.MultiStepLR`, the book's `MultiFactorScheduler`).
#[derive(Clone, Debug, PartialEq)]
pub struct MultiStepLr {
    base_lr: f64,
    milestones: Vec<usize>,
    gamma: f64,
    last_epoch: usize,
}

impl MultiStepLr {
    /// `base_lr · gamma^(number of milestones <= epoch)`; milestones in any order.
    pub fn new(base_lr: f64, milestones: &[usize], gamma: f64) -> Result<Self> {
        check_lr("MultiStepLR", "base learning rate", base_lr)?;
        check_gamma("MultiStepLR", gamma)?;
        let mut milestones = milestones.to_vec();
        milestones.sort_unstable();
        Ok(MultiStepLr {
            base_lr,
            milestones,
            gamma,
            last_epoch: 0,
        })
    }
}

impl LrScheduler for MultiStepLr {
    fn lr_at(&self, epoch: usize) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| m <= epoch).count();
        self.base_lr * self.gamma.powi(passed as i32)
    }
    counter_impl!();
}

/// Multiplies the rate by `gamma` every epoch (`torch.optim.lr_scheduler.ExponentialLR`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialLr {
    base_lr: f64,
    gamma: f64,
    last_epoch: usize,
}

impl ExponentialLr {
    /// `base_lr · gamma^epoch`.
    pub fn new(base_lr: f64, gamma: f64) -> Result<Self> {
        check_lr("ExponentialLR", "base learning rate", base_lr)?;
        check_gamma("ExponentialLR", gamma)?;
        Ok(ExponentialLr {
            base_lr,
            gamma,
            last_epoch: 0,
        })
    }
}

impl LrScheduler for ExponentialLr {
    fn lr_at(&self, epoch: usize) -> f64 {
        self.base_lr * self.gamma.powi(epoch as i32)
    }
    counter_impl!();
}

/// The book's cosine schedule with linear warm-up (D2L 12.11.3.4): rises linearly from
/// `warmup_begin_lr` to `base_lr` over `warmup_steps`, then follows half a cosine down
/// to `final_lr` at `max_update`, and stays there. Without warm-up it equals PyTorch's
/// `CosineAnnealingLR(T_max=max_update, eta_min=final_lr)` up to `max_update`.
#[derive(Clone, Debug, PartialEq)]
pub struct CosineScheduler {
    max_update: usize,
    base_lr: f64,
    final_lr: f64,
    warmup_steps: usize,
    warmup_begin_lr: f64,
    last_epoch: usize,
}

/// The cosine schedule under the name the brief of the issue uses.
pub type CosineLr = CosineScheduler;

impl CosineScheduler {
    /// `CosineScheduler(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr)`
    /// as in the book; needs `warmup_steps < max_update`.
    pub fn new(
        max_update: usize,
        base_lr: f64,
        final_lr: f64,
        warmup_steps: usize,
        warmup_begin_lr: f64,
    ) -> Result<Self> {
        const OP: &str = "CosineScheduler";
        check_lr(OP, "base learning rate", base_lr)?;
        check_lr(OP, "final learning rate", final_lr)?;
        check_lr(OP, "warm-up begin learning rate", warmup_begin_lr)?;
        if warmup_steps >= max_update {
            return Err(invalid(
                OP,
                format!("expected warmup_steps < max_update, got warmup_steps {warmup_steps} and max_update {max_update}"),
            ));
        }
        Ok(CosineScheduler {
            max_update,
            base_lr,
            final_lr,
            warmup_steps,
            warmup_begin_lr,
            last_epoch: 0,
        })
    }
}

impl LrScheduler for CosineScheduler {
    fn lr_at(&self, epoch: usize) -> f64 {
        if epoch < self.warmup_steps {
            let increase =
                (self.base_lr - self.warmup_begin_lr) * epoch as f64 / self.warmup_steps as f64;
            return self.warmup_begin_lr + increase;
        }
        if epoch > self.max_update {
            return self.final_lr;
        }
        let max_steps = (self.max_update - self.warmup_steps) as f64;
        let t = (epoch - self.warmup_steps) as f64;
        self.final_lr
            + (self.base_lr - self.final_lr) * (1.0 + (std::f64::consts::PI * t / max_steps).cos())
                / 2.0
    }
    counter_impl!();
}

/// Any schedule given as a closure from epoch to learning rate, e.g. the book's
/// square-root schedule `FnScheduler::new(|e| 0.1 * ((e + 1) as f64).powf(-0.5))`.
pub struct FnScheduler<F: Fn(usize) -> f64> {
    f: F,
    last_epoch: usize,
}

impl<F: Fn(usize) -> f64> FnScheduler<F> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        FnScheduler { f, last_epoch: 0 }
    }
}

impl<F: Fn(usize) -> f64> LrScheduler for FnScheduler<F> {
    fn lr_at(&self, epoch: usize) -> f64 {
        (self.f)(epoch)
    }
    counter_impl!();
}
