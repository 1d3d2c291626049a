//! Optimisers, learning-rate schedules and gradient clipping against PyTorch.
//!
//! `tests/fixtures/optim.json` comes from `scripts/gen_optim_fixtures.py` (read it for the
//! fixed problem). Each optimiser configuration is replayed for 5 steps in float64 and in
//! float32; after every step the loss and both parameters must equal PyTorch's to 1e-5
//! (|ours - torch| <= 1e-5 · max(1, |torch|)). float64 is the strict check of the update
//! formulas (it agrees to ~1e-13, and is also held to 1e-10); float32 shows the same
//! trajectory survives single-precision rounding.

use d2l_nn::clip::{clip_grad_norm_, clip_grad_norm_p_, clip_grad_value_, grad_norm};
use d2l_nn::optim::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, Optimizer, ParamGroup, RmsProp, RmsPropConfig,
    Sgd, SgdConfig,
};
use d2l_nn::schedule::{
    CosineScheduler, ExponentialLr, FnScheduler, LrScheduler, MultiStepLr, StepLr,
};
use d2l_nn::{Error, Result, Tensor};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/optim.json");
const TOL: f64 = 1e-5;
const TOL_F64: f64 = 1e-10;

fn fixtures() -> Value {
    let text = std::fs::read_to_string(FIXTURES).expect("read tests/fixtures/optim.json");
    serde_json::from_str(&text).expect("parse optim.json")
}

fn nums(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(nums).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("fixture: expected numbers, got {other}"),
    }
}

fn tensor(v: &Value, shape: &[usize], f64_dtype: bool) -> Tensor {
    let data = nums(v);
    if f64_dtype {
        Tensor::from_vec(data, shape).unwrap()
    } else {
        Tensor::from_vec(data.iter().map(|&x| x as f32).collect::<Vec<f32>>(), shape).unwrap()
    }
}

/// Largest |a - b| / max(1, |b|).
fn max_rel_err(ours: &[f64], torch: &[f64]) -> f64 {
    assert_eq!(ours.len(), torch.len());
    ours.iter()
        .zip(torch)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f64::max)
}

struct Problem {
    x: Tensor,
    y: Tensor,
    w: Tensor,
    b: Tensor,
}

fn problem(fx: &Value, f64_dtype: bool) -> Problem {
    let p = &fx["problem"];
    Problem {
        x: tensor(&p["x"], &[5, 3], f64_dtype),
        y: tensor(&p["y"], &[5, 4], f64_dtype),
        w: tensor(&p["W0"], &[3, 4], f64_dtype)
            .requires_grad_(true)
            .unwrap(),
        b: tensor(&p["b0"], &[4], f64_dtype)
            .requires_grad_(true)
            .unwrap(),
    }
}

impl Problem {
    /// sum((x @ W + b - y)^2), with gradients.
    fn loss(&self) -> Result<Tensor> {
        self.x
            .matmul(&self.w)?
            .add(&self.b)?
            .sub(&self.y)?
            .square()?
            .sum_all()
    }
}

fn opt_f(o: &Value, key: &str) -> Option<f64> {
    o.get(key).and_then(Value::as_f64)
}

fn opt_b(o: &Value, key: &str) -> bool {
    o.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn make_optimizer(case: &Value, p: &Problem) -> Box<dyn Optimizer> {
    let o = &case["options"];
    let groups: Vec<ParamGroup> = match case["groups"].as_array() {
        None => vec![ParamGroup::new([p.w.clone(), p.b.clone()])],
        Some(gs) => gs
            .iter()
            .map(|g| {
                let params: Vec<Tensor> = g["params"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| match n.as_str().unwrap() {
                        "W" => p.w.clone(),
                        "b" => p.b.clone(),
                        other => panic!("unknown param {other}"),
                    })
                    .collect();
                let mut group = ParamGroup::new(params);
                if let Some(lr) = opt_f(&g["options"], "lr") {
                    group = group.lr(lr);
                }
                if let Some(wd) = opt_f(&g["options"], "weight_decay") {
                    group = group.weight_decay(wd);
                }
                group
            })
            .collect(),
    };
    let lr = opt_f(o, "lr").unwrap();
    let wd = opt_f(o, "weight_decay");
    match case["optimizer"].as_str().unwrap() {
        "SGD" => Box::new(
            Sgd::with_groups(
                groups,
                SgdConfig {
                    lr,
                    momentum: opt_f(o, "momentum").unwrap_or(0.0),
                    dampening: opt_f(o, "dampening").unwrap_or(0.0),
                    nesterov: opt_b(o, "nesterov"),
                    weight_decay: wd.unwrap_or(0.0),
                },
            )
            .unwrap(),
        ),
        name @ ("Adam" | "AdamW") => {
            let betas = o.get("betas").map(nums).unwrap_or(vec![0.9, 0.999]);
            let cfg = AdamConfig {
                lr,
                betas: (betas[0], betas[1]),
                eps: opt_f(o, "eps").unwrap_or(1e-8),
                weight_decay: wd.unwrap_or(if name == "AdamW" { 1e-2 } else { 0.0 }),
                amsgrad: opt_b(o, "amsgrad"),
            };
            if name == "Adam" {
                Box::new(Adam::with_groups(groups, cfg).unwrap())
            } else {
                Box::new(AdamW::with_groups(groups, cfg).unwrap())
            }
        }
        "RMSprop" => Box::new(
            RmsProp::with_groups(
                groups,
                RmsPropConfig {
                    lr,
                    alpha: opt_f(o, "alpha").unwrap_or(0.99),
                    eps: opt_f(o, "eps").unwrap_or(1e-8),
                    weight_decay: wd.unwrap_or(0.0),
                    momentum: opt_f(o, "momentum").unwrap_or(0.0),
                    centered: opt_b(o, "centered"),
                },
            )
            .unwrap(),
        ),
        "Adagrad" => Box::new(
            Adagrad::with_groups(
                groups,
                AdagradConfig {
                    lr,
                    lr_decay: opt_f(o, "lr_decay").unwrap_or(0.0),
                    weight_decay: wd.unwrap_or(0.0),
                    initial_accumulator_value: opt_f(o, "initial_accumulator_value").unwrap_or(0.0),
                    eps: opt_f(o, "eps").unwrap_or(1e-10),
                },
            )
            .unwrap(),
        ),
        other => panic!("unknown optimizer {other}"),
    }
}

/// Replays one case in one dtype; returns the worst relative error over all steps.
fn replay(fx: &Value, case: &Value, f64_dtype: bool) -> f64 {
    let p = problem(fx, f64_dtype);
    let mut opt = make_optimizer(case, &p);
    let expected = case[if f64_dtype { "f64" } else { "f32" }]
        .as_array()
        .unwrap();
    let mut worst = 0.0f64;
    for (i, e) in expected.iter().enumerate() {
        opt.zero_grad();
        let loss = p.loss().unwrap();
        loss.backward().unwrap();
        opt.step().unwrap();
        let errs = [
            max_rel_err(&[loss.item_f64().unwrap()], &[e["loss"].as_f64().unwrap()]),
            max_rel_err(&p.w.to_f64_vec(), &nums(&e["W"])),
            max_rel_err(&p.b.to_f64_vec(), &nums(&e["b"])),
        ];
        let tol = if f64_dtype { TOL_F64 } else { TOL };
        for (what, err) in ["loss", "W", "b"].iter().zip(errs) {
            assert!(
                err <= tol,
                "{} ({}): {what} after step {} differs from PyTorch by {err:e} (tolerance {tol:e})",
                case["name"],
                if f64_dtype { "f64" } else { "f32" },
                i + 1
            );
            worst = worst.max(err);
        }
    }
    worst
}

#[test]
fn optimizer_trajectories_match_pytorch() {
    let fx = fixtures();
    let cases = fx["optimizers"].as_array().unwrap();
    assert!(cases.len() >= 12);
    for case in cases {
        let e64 = replay(&fx, case, true);
        let e32 = replay(&fx, case, false);
        println!(
            "{:<28} worst rel err  f64 {e64:.2e}  f32 {e32:.2e}",
            case["name"].as_str().unwrap()
        );
    }
}

#[test]
fn schedulers_match_pytorch() {
    let fx = fixtures();
    for case in fx["schedulers"].as_array().unwrap() {
        let base = case["base_lr"].as_f64().unwrap();
        let gamma = case.get("gamma").and_then(Value::as_f64).unwrap_or(1.0);
        let mut sched: Box<dyn LrScheduler> = match case["kind"].as_str().unwrap() {
            "StepLR" => Box::new(
                StepLr::new(base, case["step_size"].as_u64().unwrap() as usize, gamma).unwrap(),
            ),
            "MultiStepLR" => {
                let ms: Vec<usize> = nums(&case["milestones"])
                    .iter()
                    .map(|&m| m as usize)
                    .collect();
                Box::new(MultiStepLr::new(base, &ms, gamma).unwrap())
            }
            "ExponentialLR" => Box::new(ExponentialLr::new(base, gamma).unwrap()),
            "Cosine" => Box::new(
                CosineScheduler::new(
                    case["max_update"].as_u64().unwrap() as usize,
                    base,
                    case["final_lr"].as_f64().unwrap(),
                    case["warmup_steps"].as_u64().unwrap() as usize,
                    case["warmup_begin_lr"].as_f64().unwrap(),
                )
                .unwrap(),
            ),
            other => panic!("unknown scheduler {other}"),
        };
        let lrs = nums(&case["lrs"]);
        // lr_at, and stepping an optimiser the PyTorch way, both give torch's sequence.
        let w = Tensor::zeros(&[1]).requires_grad_(true).unwrap();
        let mut opt = Sgd::new([w], base).unwrap();
        // PyTorch's scheduler constructor sets the epoch-0 rate (differs for warm-up).
        sched.apply(&mut opt, 0);
        for (epoch, &want) in lrs.iter().enumerate() {
            if epoch > 0 {
                let got = sched.step(&mut opt);
                assert_eq!(got, opt.lr());
            }
            assert_eq!(sched.last_epoch(), epoch);
            for got in [sched.lr_at(epoch), opt.lr(), sched.current_lr()] {
                assert!(
                    (got - want).abs() <= 1e-12 * want.abs().max(1e-3),
                    "{} epoch {epoch}: got {got}, torch {want}",
                    case["name"]
                );
            }
        }
    }
}

#[test]
fn clipping_matches_pytorch() {
    let fx = fixtures();
    for case in fx["clip"].as_array().unwrap() {
        let p = problem(&fx, false);
        p.loss().unwrap().backward().unwrap();
        let params = [p.w.clone(), p.b.clone()];
        let name = case["name"].as_str().unwrap();
        match case["kind"].as_str().unwrap() {
            kind @ ("norm" | "norm_inf") => {
                let max_norm = case["max_norm"].as_f64().unwrap();
                let total = if kind == "norm" {
                    clip_grad_norm_(&params, max_norm).unwrap()
                } else {
                    clip_grad_norm_p_(&params, max_norm, f64::INFINITY).unwrap()
                };
                let want = case["total_norm"].as_f64().unwrap();
                assert!(
                    max_rel_err(&[total], &[want]) <= TOL,
                    "{name}: total norm {total} vs torch {want}"
                );
            }
            "value" => clip_grad_value_(&params, case["clip_value"].as_f64().unwrap()).unwrap(),
            other => panic!("unknown clip kind {other}"),
        }
        let gw = p.w.grad().unwrap().to_f64_vec();
        let gb = p.b.grad().unwrap().to_f64_vec();
        assert!(
            max_rel_err(&gw, &nums(&case["W_grad"])) <= TOL,
            "{name}: W grad {gw:?}"
        );
        assert!(
            max_rel_err(&gb, &nums(&case["b_grad"])) <= TOL,
            "{name}: b grad {gb:?}"
        );
    }
}

#[test]
fn clipping_after_clip_has_at_most_max_norm() -> Result<()> {
    let a = Tensor::zeros(&[3]).requires_grad_(true)?;
    let b = Tensor::zeros(&[2]).requires_grad_(true)?;
    let c = Tensor::zeros(&[2]).requires_grad_(true)?; // no gradient: ignored
    a.set_grad(Some(Tensor::from_vec(vec![1.0f32, 2.0, 2.0], &[3])?));
    b.set_grad(Some(Tensor::from_vec(vec![4.0f32, 0.0], &[2])?));
    let params = [a.clone(), b.clone(), c.clone()];
    let total = clip_grad_norm_(&params, 2.0)?;
    assert!((total - 5.0).abs() < 1e-9);
    assert!((grad_norm(&params, 2.0)? - 2.0).abs() < 1e-5);
    assert!(c.grad().is_none());
    // Below the threshold nothing changes.
    assert!((clip_grad_norm_(&params, 10.0)? - 2.0).abs() < 1e-5);
    assert!((grad_norm(&params, 2.0)? - 2.0).abs() < 1e-5);
    assert!(matches!(
        clip_grad_norm_(&params, -1.0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        clip_grad_value_(&params, -1.0),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(clip_grad_norm_(&[c], 1.0)?, 0.0);
    Ok(())
}

fn quadratic_grad(w: &Tensor) -> Result<()> {
    w.square()?.sum_all()?.backward()
}

#[test]
fn params_without_grad_or_frozen_are_skipped() -> Result<()> {
    let w = Tensor::ones(&[2]).requires_grad_(true)?;
    let unused = Tensor::ones(&[2]).requires_grad_(true)?;
    let frozen = Tensor::ones(&[2]).requires_grad_(true)?;
    let mut opt = Adam::new([w.clone(), unused.clone(), frozen.clone()], 0.1)?;
    quadratic_grad(&w)?;
    quadratic_grad(&frozen)?;
    let frozen = frozen.requires_grad_(false)?; // frozen after its gradient was computed
    opt.step()?;
    assert_ne!(w.to_vec::<f32>(), vec![1.0, 1.0]);
    assert_eq!(unused.to_vec::<f32>(), vec![1.0, 1.0]);
    assert_eq!(frozen.to_vec::<f32>(), vec![1.0, 1.0]);
    assert_eq!(opt.state_len(), 1);
    opt.zero_grad();
    assert!(w.grad().is_none() && frozen.grad().is_none());
    // A step with no gradients at all is a no-op.
    let before = w.to_vec::<f32>();
    opt.step()?;
    assert_eq!(w.to_vec::<f32>(), before);
    Ok(())
}

#[test]
fn update_is_in_place_so_shared_handles_see_it() -> Result<()> {
    let w = Tensor::ones(&[3]).requires_grad_(true)?;
    let view = w.detach(); // another handle on the same storage, as a second module would hold
    let mut opt = Sgd::new([w.clone()], 0.5)?.momentum(0.9);
    quadratic_grad(&w)?;
    opt.step()?;
    assert_eq!(view.to_vec::<f32>(), vec![0.0, 0.0, 0.0]); // 1 - 0.5 * 2
    assert!(w.is_leaf() && w.requires_grad());
    Ok(())
}

#[test]
fn momentum_state_persists_between_steps() -> Result<()> {
    // f(w) = w, gradient 1 every step: momentum buffer 1, 1.9, 2.71.
    let w = Tensor::zeros(&[1]).requires_grad_(true)?;
    let mut opt = Sgd::new([w.clone()], 1.0)?.momentum(0.9);
    for want in [-1.0, -2.9, -5.61] {
        opt.zero_grad();
        w.sum_all()?.backward()?;
        opt.step()?;
        assert!((w.to_vec::<f32>()[0] - want).abs() < 1e-5);
    }
    Ok(())
}

#[test]
fn no_bias_decay_groups_and_set_lr() -> Result<()> {
    let w = Tensor::ones(&[2]).requires_grad_(true)?;
    let b = Tensor::ones(&[2]).requires_grad_(true)?;
    let mut opt = Sgd::with_groups(
        vec![
            ParamGroup::new([w.clone()]).weight_decay(0.5),
            ParamGroup::new([b.clone()]),
        ],
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    )?;
    assert_eq!(opt.group_weight_decay(0), 0.5);
    assert_eq!(opt.group_weight_decay(1), 0.0);
    // Zero loss gradient: only weight decay moves w; b stays.
    w.set_grad(Some(Tensor::zeros(&[2])));
    b.set_grad(Some(Tensor::zeros(&[2])));
    opt.step()?;
    assert!((w.to_vec::<f32>()[0] - 0.95).abs() < 1e-6);
    assert_eq!(b.to_vec::<f32>(), vec![1.0, 1.0]);
    opt.set_lr(0.01);
    assert_eq!(
        (opt.lr(), opt.group_lr(0), opt.group_lr(1)),
        (0.01, 0.01, 0.01)
    );
    opt.param_groups_mut()[1].lr = Some(0.3);
    assert_eq!(opt.group_lr(1), 0.3);
    assert_eq!(opt.params().len(), 2);
    // Fine-tuning: a new group joins later.
    let head = Tensor::ones(&[1]).requires_grad_(true)?;
    opt.add_param_group(ParamGroup::new([head.clone()]).lr(1.0))?;
    head.set_grad(Some(Tensor::ones(&[1])));
    opt.step()?;
    assert_eq!(head.to_vec::<f32>(), vec![0.0]);
    // The same tensor twice is refused.
    assert!(matches!(
        opt.add_param_group(ParamGroup::new([w.clone()])),
        Err(Error::InvalidArgument { .. })
    ));
    Ok(())
}

#[test]
fn schedulers_drive_every_group() -> Result<()> {
    let w = Tensor::ones(&[1]).requires_grad_(true)?;
    let b = Tensor::ones(&[1]).requires_grad_(true)?;
    let mut opt = Adam::with_groups(
        vec![ParamGroup::new([w]), ParamGroup::new([b]).lr(0.5)],
        AdamConfig {
            lr: 0.1,
            ..Default::default()
        },
    )?;
    let mut sched = ExponentialLr::new(0.1, 0.5)?;
    assert_eq!(sched.step(&mut opt), 0.05);
    assert_eq!((opt.group_lr(0), opt.group_lr(1)), (0.05, 0.05));
    // The book's style: set the rate of a given epoch.
    let cos = CosineScheduler::new(10, 0.2, 0.0, 2, 0.0)?;
    assert_eq!(cos.apply(&mut opt, 1), 0.1);
    assert_eq!(opt.lr(), 0.1);
    assert!((cos.lr_at(10) - 0.0).abs() < 1e-15 && cos.lr_at(50) == 0.0);
    // Any closure: the square-root schedule of D2L 12.11.
    let mut sq = FnScheduler::new(|e| 0.1 * ((e + 1) as f64).powf(-0.5));
    sq.step(&mut opt);
    sq.step(&mut opt);
    assert!((opt.lr() - 0.1 / 3f64.sqrt()).abs() < 1e-15);
    sq.set_last_epoch(0);
    assert_eq!(sq.current_lr(), 0.1);
    Ok(())
}

fn is_invalid<T>(r: Result<T>, needle: &str) -> bool {
    match r {
        Err(Error::InvalidArgument { msg, .. }) => msg.contains(needle),
        _ => false,
    }
}

#[test]
fn invalid_configurations_are_clear_errors() -> Result<()> {
    let w = || Tensor::ones(&[2]).requires_grad_(true).unwrap();
    assert!(is_invalid(Sgd::new([w()], -0.1), "learning rate"));
    assert!(is_invalid(Adam::new([w()], f64::NAN), "learning rate"));
    assert!(is_invalid(
        Sgd::new(Vec::<Tensor>::new(), 0.1),
        "empty parameter list"
    ));
    let cfg = SgdConfig {
        lr: 0.1,
        nesterov: true,
        ..Default::default()
    };
    assert!(is_invalid(Sgd::with_config([w()], cfg), "Nesterov"));
    let cfg = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.1,
        nesterov: true,
        ..Default::default()
    };
    assert!(is_invalid(Sgd::with_config([w()], cfg), "zero dampening"));
    let cfg = AdamConfig {
        betas: (1.0, 0.999),
        ..Default::default()
    };
    assert!(is_invalid(
        Adam::with_config([w()], cfg),
        "beta parameter at index 0"
    ));
    let cfg = AdamConfig {
        betas: (0.9, -0.1),
        ..Default::default()
    };
    assert!(is_invalid(
        AdamW::with_config([w()], cfg),
        "beta parameter at index 1"
    ));
    assert!(is_invalid(
        RmsProp::with_config(
            [w()],
            RmsPropConfig {
                eps: -1.0,
                ..Default::default()
            }
        ),
        "epsilon"
    ));
    assert!(is_invalid(
        Adagrad::with_config(
            [w()],
            AdagradConfig {
                lr_decay: -1.0,
                ..Default::default()
            }
        ),
        "lr_decay"
    ));
    assert!(is_invalid(
        Sgd::with_groups(vec![ParamGroup::new([w()]).lr(-1.0)], SgdConfig::default()),
        "group learning rate"
    ));
    assert!(is_invalid(
        Sgd::with_groups(
            vec![ParamGroup::new([w()]).weight_decay(-1.0)],
            SgdConfig::default()
        ),
        "weight_decay"
    ));
    // Builder settings are checked before the first step changes anything.
    let p = w();
    p.set_grad(Some(Tensor::ones(&[2])));
    let mut opt = Sgd::new([p.clone()], 0.1)?.nesterov(true);
    assert!(is_invalid(opt.step(), "Nesterov"));
    let mut opt = Adam::new([p.clone()], 0.1)?.betas(0.9, 1.0);
    assert!(is_invalid(opt.step(), "beta parameter at index 1"));
    let mut opt = Sgd::new([p.clone()], 0.1)?;
    opt.set_lr(-0.5);
    assert!(is_invalid(opt.step(), "learning rate"));
    assert_eq!(p.to_vec::<f32>(), vec![1.0, 1.0]);
    // Parameters must be leaves, float, and listed once.
    let non_leaf = p.mul_scalar(2.0)?;
    assert!(is_invalid(Sgd::new([non_leaf], 0.1), "leaf"));
    assert!(is_invalid(
        Sgd::new([p.clone(), p.clone()], 0.1),
        "more than once"
    ));
    let ints = Tensor::from_vec(vec![1i64, 2], &[2])?;
    assert!(is_invalid(Sgd::new([ints], 0.1), "float"));
    // Schedulers.
    assert!(is_invalid(StepLr::new(0.1, 0, 0.5), "step_size"));
    assert!(is_invalid(ExponentialLr::new(0.1, 0.0), "gamma"));
    assert!(is_invalid(
        MultiStepLr::new(-0.1, &[1], 0.5),
        "base learning rate"
    ));
    assert!(is_invalid(
        CosineScheduler::new(5, 0.1, 0.0, 5, 0.0),
        "warmup_steps < max_update"
    ));
    Ok(())
}

type MakeOpt = Box<dyn Fn(Tensor) -> Box<dyn Optimizer>>;

#[test]
fn boxed_optimisers() -> Result<()> {
    // Every optimiser fits behind `dyn Optimizer` and decreases a quadratic.
    let make: Vec<MakeOpt> = vec![
        Box::new(|p| Box::new(Sgd::new([p], 0.1).unwrap().momentum(0.5).nesterov(true))),
        Box::new(|p| Box::new(Adam::new([p], 0.1).unwrap().amsgrad(true))),
        Box::new(|p| Box::new(AdamW::new([p], 0.1).unwrap())),
        Box::new(|p| {
            Box::new(
                RmsProp::new([p], 0.01)
                    .unwrap()
                    .centered(true)
                    .momentum(0.5),
            )
        }),
        Box::new(|p| Box::new(Adagrad::new([p], 0.5).unwrap().lr_decay(0.01))),
    ];
    for mk in make {
        let p = Tensor::full(&[3], 2.0).requires_grad_(true)?;
        let mut opt = mk(p.clone());
        for _ in 0..20 {
            opt.zero_grad();
            quadratic_grad(&p)?;
            opt.step()?;
        }
        assert!(p.norm(2.0)?.item()? < 2.0 * 3f32.sqrt());
    }
    Ok(())
}
