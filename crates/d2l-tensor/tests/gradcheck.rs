// One file, over 1,000 lines, on purpose: the engine's gradient checks, one test per op
// family, so that a reader can see in one place that every differentiable op is covered.
//! Gradient checks for every differentiable op of the engine: the gradient `backward`
//! gives is compared with central finite differences in f64 (see `gradcheck`).
//!
//! One test per op family. Inputs come from a fixed-seed `Generator`, are small (at most
//! 24 elements each) and are kept away from kinks (relu/abs at 0, clamp bounds, ties of
//! max/min) by construction, so the finite differences are well defined. Each family
//! also runs its op on strided / permuted views and under broadcasting where it applies.

use d2l_tensor::{
    gradcheck, gradcheck_with, BackwardFn, DType, Generator, GradcheckOptions, Result, Tensor,
};
use std::sync::Arc;

// ---------------------------------------------------------------- input helpers

/// A fixed-seed generator per test, so every test is reproducible on its own.
fn gen(seed: u64) -> Generator {
    Generator::new(seed)
}

/// Standard-normal values of `shape`.
fn randn(g: &mut Generator, shape: &[usize]) -> Tensor {
    Tensor::randn_with(g, shape)
}

/// Uniform values in `[lo, hi)` of `shape`.
fn uniform(g: &mut Generator, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    Tensor::uniform_with(g, shape, lo, hi).unwrap()
}

/// Values with |x| in [0.2, 1.5] and a random sign: never near 0 (the kink of relu,
/// abs, leaky_relu and of |x| in the 1-norm).
fn away_from_zero(g: &mut Generator, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let m = 0.2 + 1.3 * g.next_f64();
            if g.next_f64() < 0.5 {
                -m
            } else {
                m
            }
        })
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// Distinct values at least 0.5 apart (a shuffled ramp plus small noise): max/min along
/// any dim has a unique winner that stays the winner under a 1e-6 perturbation.
fn distinct(g: &mut Generator, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let perm = Tensor::randperm_with(g, n).to_vec::<i64>();
    let v: Vec<f64> = perm
        .iter()
        .map(|&p| 0.5 * p as f64 - 0.25 * n as f64 + 0.1 * g.next_f64())
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// An i64 index tensor.
fn idx(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

/// A u8 mask.
fn mask(v: &[u8], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

/// `gradcheck`, panicking with the op's name and the mismatch.
fn check(name: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    if let Err(e) = gradcheck(f, inputs) {
        panic!("gradcheck failed for {name}: {e}");
    }
}

// ---------------------------------------------------------------- elementwise binary

#[test]
fn binary_arithmetic() {
    let mut g = gen(1);
    let a = randn(&mut g, &[2, 3]);
    let b = randn(&mut g, &[2, 3]);
    let pos = uniform(&mut g, &[2, 3], 0.5, 2.0); // divisor away from 0
    check("add", |x| x[0].add(&x[1]), &[a.clone(), b.clone()]);
    check("sub", |x| x[0].sub(&x[1]), &[a.clone(), b.clone()]);
    check("mul", |x| x[0].mul(&x[1]), &[a.clone(), b.clone()]);
    check("div", |x| x[0].div(&x[1]), &[a.clone(), pos.clone()]);

    // Broadcasting: [2,3] ⊕ [3], [2,1] ⊕ [1,3], [4,1,3] ⊕ [2,1].
    let r3 = randn(&mut g, &[3]);
    let c21 = randn(&mut g, &[2, 1]);
    let r13 = uniform(&mut g, &[1, 3], 0.5, 2.0);
    let t413 = randn(&mut g, &[4, 1, 3]);
    let p21 = uniform(&mut g, &[2, 1], 0.5, 2.0);
    for (name, f) in [
        ("add", Tensor::add as fn(&Tensor, &Tensor) -> Result<Tensor>),
        ("sub", Tensor::sub),
        ("mul", Tensor::mul),
    ] {
        check(
            &format!("{name} [2,3]x[3]"),
            |x| f(&x[0], &x[1]),
            &[a.clone(), r3.clone()],
        );
        check(
            &format!("{name} [3]x[2,3]"),
            |x| f(&x[0], &x[1]),
            &[r3.clone(), a.clone()],
        );
        check(
            &format!("{name} [2,1]x[1,3]"),
            |x| f(&x[0], &x[1]),
            &[c21.clone(), r13.clone()],
        );
        check(
            &format!("{name} [4,1,3]x[2,1]"),
            |x| f(&x[0], &x[1]),
            &[t413.clone(), c21.clone()],
        );
    }
    check(
        "div [2,1]/[1,3]",
        |x| x[0].div(&x[1]),
        &[c21.clone(), r13.clone()],
    );
    check(
        "div [4,1,3]/[2,1]",
        |x| x[0].div(&x[1]),
        &[t413.clone(), p21.clone()],
    );

    // Strided operands: a transposed and a narrowed view.
    let sq = randn(&mut g, &[3, 2]);
    let wide = randn(&mut g, &[2, 5]);
    check(
        "mul of .t() and narrow",
        |x| x[0].t()?.mul(&x[1].narrow(1, 1, 3)?),
        &[sq.clone(), wide.clone()],
    );
    check(
        "div of permuted",
        |x| x[0].permute(&[1, 0])?.div(&x[1]),
        &[sq.clone(), pos.clone()],
    );

    // One tensor used twice.
    check("x * x", |x| x[0].mul(&x[0]), &[a.clone()]);
    check("x + exp(x)", |x| x[0].add(&x[0].exp()?), &[a.clone()]);
    check(
        "x / x.t() broadcast",
        |x| x[0].div(&x[0].t()?.sum(&[1], true)?.t()?),
        &[pos.clone()],
    );
}

#[test]
fn binary_pow_maximum_minimum() {
    let mut g = gen(2);
    // pow with a tensor exponent: positive base so log(base) is defined.
    let base = uniform(&mut g, &[2, 3], 0.5, 2.0);
    let expo = randn(&mut g, &[2, 3]);
    check("pow", |x| x[0].pow(&x[1]), &[base.clone(), expo.clone()]);
    let e3 = randn(&mut g, &[3]);
    check(
        "pow broadcast [2,3]^[3]",
        |x| x[0].pow(&x[1]),
        &[base.clone(), e3.clone()],
    );
    check(
        "pow broadcast [3]^[2,3] (strided exponent)",
        |x| x[0].pow(&x[1].t()?.t()?),
        &[e3.abs().unwrap().add_scalar(0.5).unwrap(), expo.clone()],
    );

    // maximum / minimum: b = a ± an offset of at least 0.2, so no ties.
    let a = randn(&mut g, &[2, 3]);
    let b = a
        .add(
            &away_from_zero(&mut g, &[2, 3])
                .to_dtype(DType::F32)
                .unwrap(),
        )
        .unwrap();
    check("maximum", |x| x[0].maximum(&x[1]), &[a.clone(), b.clone()]);
    check("minimum", |x| x[0].minimum(&x[1]), &[a.clone(), b.clone()]);
    // Broadcast without ties: row [3] against [2,3] built as row + offsets.
    let row = randn(&mut g, &[3]);
    let grid = row
        .add(
            &away_from_zero(&mut g, &[2, 3])
                .to_dtype(DType::F32)
                .unwrap(),
        )
        .unwrap();
    check(
        "maximum [3] vs [2,3]",
        |x| x[0].maximum(&x[1]),
        &[row.clone(), grid.clone()],
    );
    check(
        "minimum [2,3] vs [3]",
        |x| x[0].minimum(&x[1]),
        &[grid.clone(), row.clone()],
    );
    check(
        "maximum of transposed views",
        |x| x[0].t()?.maximum(&x[1].t()?),
        &[a.clone(), b.clone()],
    );
}

#[test]
fn operator_overloads() {
    let mut g = gen(3);
    let a = randn(&mut g, &[2, 3]);
    let b = uniform(&mut g, &[2, 3], 0.5, 2.0);
    check("&a + &b", |x| &x[0] + &x[1], &[a.clone(), b.clone()]);
    check("&a - &b", |x| &x[0] - &x[1], &[a.clone(), b.clone()]);
    check("&a * &b", |x| &x[0] * &x[1], &[a.clone(), b.clone()]);
    check("&a / &b", |x| &x[0] / &x[1], &[a.clone(), b.clone()]);
    check("-&a", |x| -&x[0], &[a.clone()]);
    check(
        "owned a + b",
        |x| x[0].clone() + x[1].clone(),
        &[a.clone(), b.clone()],
    );
    check("&a + 2.0", |x| &x[0] + 2.0, &[a.clone()]);
    check("&a - 2.0", |x| &x[0] - 2.0, &[a.clone()]);
    check("&a * 3.0", |x| &x[0] * 3.0, &[a.clone()]);
    check("&a / 4.0", |x| &x[0] / 4.0, &[a.clone()]);
    check("2.0 + &a", |x| 2.0 + &x[0], &[a.clone()]);
    check("2.0 - &a", |x| 2.0 - &x[0], &[a.clone()]);
    check("2.0 * &a", |x| 2.0 * &x[0], &[a.clone()]);
    check("2.0 / &b", |x| 2.0 / &x[1], &[a.clone(), b.clone()]);
    check(
        "(&a * &a)? + &b",
        |x| &(&x[0] * &x[0])? + &x[1],
        &[a.clone(), b.clone()],
    );
}

// ---------------------------------------------------------------- elementwise unary

#[test]
fn unary_math() {
    let mut g = gen(4);
    let x = randn(&mut g, &[2, 3]);
    let pos = uniform(&mut g, &[2, 3], 0.5, 2.0); // log, sqrt, rsqrt need x > 0
    let gt_m1 = uniform(&mut g, &[2, 3], -0.5, 2.0); // log1p needs x > -1
    let nz = away_from_zero(&mut g, &[2, 3]); // abs: never at its kink 0
    check("neg", |x| x[0].neg(), &[x.clone()]);
    check("abs", |x| x[0].abs(), &[nz.clone()]);
    check("exp", |x| x[0].exp(), &[x.clone()]);
    check("log", |x| x[0].log(), &[pos.clone()]);
    check("log1p", |x| x[0].log1p(), &[gt_m1.clone()]);
    check("sqrt", |x| x[0].sqrt(), &[pos.clone()]);
    check("rsqrt", |x| x[0].rsqrt(), &[pos.clone()]);
    check("sin", |x| x[0].sin(), &[x.clone()]);
    check("cos", |x| x[0].cos(), &[x.clone()]);
    check("square", |x| x[0].square(), &[x.clone()]);

    // On strided views: transposed, narrowed and permuted inputs.
    let wide = uniform(&mut g, &[3, 5], 0.5, 2.0);
    check("exp of .t()", |x| x[0].t()?.exp(), &[x.clone()]);
    check(
        "sqrt of narrow",
        |x| x[0].narrow(1, 1, 3)?.sqrt(),
        &[wide.clone()],
    );
    check(
        "rsqrt of narrow().t()",
        |x| x[0].narrow(1, 2, 3)?.t()?.rsqrt(),
        &[wide.clone()],
    );
    check(
        "log of permute",
        |x| x[0].permute(&[1, 0])?.log(),
        &[wide.clone()],
    );
    check(
        "sin of broadcast",
        |x| x[0].broadcast_to(&[4, 2, 3])?.sin(),
        &[x.clone()],
    );
    check("abs of .t()", |x| x[0].t()?.abs(), &[nz.clone()]);
    check(
        "exp(x) * exp(x).t().t()",
        |x| x[0].exp()?.mul(&x[0].exp()?.t()?.t()?),
        &[x.clone()],
    );
}

#[test]
fn unary_activations() {
    let mut g = gen(5);
    let x = randn(&mut g, &[2, 3]);
    let nz = away_from_zero(&mut g, &[2, 3]); // relu / leaky_relu: never at 0
    check("tanh", |x| x[0].tanh(), &[x.clone()]);
    check("sigmoid", |x| x[0].sigmoid(), &[x.clone()]);
    check("relu", |x| x[0].relu(), &[nz.clone()]);
    check("leaky_relu(0.01)", |x| x[0].leaky_relu(0.01), &[nz.clone()]);
    check("leaky_relu(0.3)", |x| x[0].leaky_relu(0.3), &[nz.clone()]);
    check("gelu", |x| x[0].gelu(), &[x.clone()]);
    check("softplus", |x| x[0].softplus(), &[x.clone()]);
    // softplus is linear above its threshold 20; check both regimes (none within 1 of 20).
    let big = Tensor::from_vec(vec![21.0f64, 25.0, -1.5, 0.5, 30.0, 18.5], &[2, 3]).unwrap();
    check("softplus (inputs > 20)", |x| x[0].softplus(), &[big]);
    check("relu of .t()", |x| x[0].t()?.relu(), &[nz.clone()]);
    check(
        "sigmoid of permuted",
        |x| x[0].permute(&[1, 0])?.sigmoid(),
        &[x.clone()],
    );
    check("tanh(x) * x", |x| x[0].tanh()?.mul(&x[0]), &[x.clone()]);
}

#[test]
fn unary_scalar_ops_and_clamp() {
    let mut g = gen(6);
    let x = randn(&mut g, &[2, 3]);
    let pos = uniform(&mut g, &[2, 3], 0.5, 2.0);
    check("add_scalar", |x| x[0].add_scalar(1.5), &[x.clone()]);
    check("sub_scalar", |x| x[0].sub_scalar(1.5), &[x.clone()]);
    check("mul_scalar", |x| x[0].mul_scalar(-2.5), &[x.clone()]);
    check("div_scalar", |x| x[0].div_scalar(4.0), &[x.clone()]);
    check("pow_scalar(2)", |x| x[0].pow_scalar(2.0), &[x.clone()]);
    check("pow_scalar(3)", |x| x[0].pow_scalar(3.0), &[x.clone()]);
    check("pow_scalar(-1)", |x| x[0].pow_scalar(-1.0), &[pos.clone()]);
    check("pow_scalar(0.5)", |x| x[0].pow_scalar(0.5), &[pos.clone()]);
    check(
        "pow_scalar(2.5) of .t()",
        |x| x[0].t()?.pow_scalar(2.5),
        &[pos.clone()],
    );

    // clamp bounds ±0.5; no input lies within 0.05 of a bound (the kinks).
    let v = Tensor::from_vec(
        vec![
            -1.2f64,
            -0.7,
            -0.3,
            0.0,
            0.2,
            0.45 - 0.1,
            0.6,
            0.9,
            -0.55 - 0.1,
            1.3,
            -0.1,
            0.3,
        ],
        &[3, 4],
    )
    .unwrap();
    check("clamp", |x| x[0].clamp(-0.5, 0.5), &[v.clone()]);
    check("clamp_min", |x| x[0].clamp_min(-0.5), &[v.clone()]);
    check("clamp_max", |x| x[0].clamp_max(0.5), &[v.clone()]);
    check(
        "clamp of .t()",
        |x| x[0].t()?.clamp(-0.5, 0.5),
        &[v.clone()],
    );
}

// ---------------------------------------------------------------- reductions

#[test]
fn reduce_sum_mean() {
    let mut g = gen(7);
    let x = randn(&mut g, &[2, 3, 4]);
    check("sum_all", |x| x[0].sum_all(), &[x.clone()]);
    check("sum dim 0", |x| x[0].sum(&[0], false), &[x.clone()]);
    check("sum dim 1 keepdim", |x| x[0].sum(&[1], true), &[x.clone()]);
    check("sum dims [0,2]", |x| x[0].sum(&[0, 2], false), &[x.clone()]);
    check("sum dims [-1]", |x| x[0].sum(&[-1], false), &[x.clone()]);
    check(
        "sum dims [-1,-3] keepdim",
        |x| x[0].sum(&[-1, -3], true),
        &[x.clone()],
    );
    check(
        "sum dims [0,1] (leading)",
        |x| x[0].sum(&[0, 1], false),
        &[x.clone()],
    );
    check(
        "sum of permuted",
        |x| x[0].permute(&[2, 0, 1])?.sum(&[0], false),
        &[x.clone()],
    );
    check("mean dim 1", |x| x[0].mean(&[1], false), &[x.clone()]);
    check(
        "mean dims [-1,0] keepdim",
        |x| x[0].mean(&[-1, 0], true),
        &[x.clone()],
    );
    check("mean_all", |x| x[0].mean_all(), &[x.clone()]);
    check(
        "mean of narrow",
        |x| x[0].narrow(2, 1, 2)?.mean(&[2], false),
        &[x.clone()],
    );
    check(
        "sum(x * x)",
        |x| x[0].mul(&x[0])?.sum(&[1], false),
        &[x.clone()],
    );
}

#[test]
fn reduce_max_min() {
    let mut g = gen(8);
    let x = distinct(&mut g, &[2, 3, 4]); // unique winners, no ties
    check("max_dim 0", |x| Ok(x[0].max_dim(0, false)?.0), &[x.clone()]);
    check(
        "max_dim -1 keepdim",
        |x| Ok(x[0].max_dim(-1, true)?.0),
        &[x.clone()],
    );
    check("min_dim 1", |x| Ok(x[0].min_dim(1, false)?.0), &[x.clone()]);
    check(
        "min_dim -2 keepdim",
        |x| Ok(x[0].min_dim(-2, true)?.0),
        &[x.clone()],
    );
    check("max_all", |x| x[0].max_all(), &[x.clone()]);
    check("min_all", |x| x[0].min_all(), &[x.clone()]);
    check(
        "max_dim of permuted",
        |x| Ok(x[0].permute(&[2, 0, 1])?.max_dim(1, false)?.0),
        &[x.clone()],
    );
    check(
        "min_dim of narrow",
        |x| Ok(x[0].narrow(2, 1, 3)?.min_dim(-1, false)?.0),
        &[x.clone()],
    );
    check(
        "max_all of .t()",
        |x| x[0].reshape([4, 6])?.t()?.max_all(),
        &[x.clone()],
    );
}

#[test]
fn reduce_var_std_logsumexp_norm() {
    let mut g = gen(9);
    let x = randn(&mut g, &[2, 3, 4]);
    for unbiased in [true, false] {
        check(
            &format!("var dim 1 unbiased={unbiased}"),
            |x| x[0].var(&[1], unbiased, false),
            &[x.clone()],
        );
        check(
            &format!("var dims [0,-1] keepdim unbiased={unbiased}"),
            |x| x[0].var(&[0, -1], unbiased, true),
            &[x.clone()],
        );
        check(
            &format!("std dim -1 unbiased={unbiased}"),
            |x| x[0].std(&[-1], unbiased, false),
            &[x.clone()],
        );
        check(
            &format!("std dims [0,1] keepdim unbiased={unbiased}"),
            |x| x[0].std(&[0, 1], unbiased, true),
            &[x.clone()],
        );
    }
    check(
        "var of permuted",
        |x| x[0].permute(&[2, 1, 0])?.var(&[0], true, false),
        &[x.clone()],
    );
    check(
        "logsumexp -1",
        |x| x[0].logsumexp(&[-1], false),
        &[x.clone()],
    );
    check(
        "logsumexp [0,2] keepdim",
        |x| x[0].logsumexp(&[0, 2], true),
        &[x.clone()],
    );
    check(
        "logsumexp of .t()",
        |x| x[0].reshape([4, 6])?.t()?.logsumexp(&[1], false),
        &[x.clone()],
    );
    check(
        "logsumexp large",
        |x| x[0].mul_scalar(50.0)?.logsumexp(&[1], false),
        &[x.clone()],
    );

    let nz = away_from_zero(&mut g, &[3, 4]); // |x| in the 1- and 3-norm: not at 0
    check("norm p=1", |x| x[0].norm(1.0), &[nz.clone()]);
    check("norm p=2", |x| x[0].norm(2.0), &[nz.clone()]);
    check("norm p=3", |x| x[0].norm(3.0), &[nz.clone()]);
    check("norm p=2 of .t()", |x| x[0].t()?.norm(2.0), &[nz.clone()]);
}

#[test]
fn reduce_softmax() {
    let mut g = gen(10);
    let x = randn(&mut g, &[2, 3, 4]);
    for dim in [0isize, 1, -1] {
        check(
            &format!("softmax dim {dim}"),
            |x| x[0].softmax(dim),
            &[x.clone()],
        );
        check(
            &format!("log_softmax dim {dim}"),
            |x| x[0].log_softmax(dim),
            &[x.clone()],
        );
    }
    check(
        "softmax of permuted",
        |x| x[0].permute(&[2, 0, 1])?.softmax(-1),
        &[x.clone()],
    );
    check(
        "log_softmax of permuted dim 0",
        |x| x[0].permute(&[1, 2, 0])?.log_softmax(0),
        &[x.clone()],
    );
    check(
        "softmax of narrow",
        |x| x[0].narrow(2, 1, 3)?.softmax(-1),
        &[x.clone()],
    );
    check(
        "softmax(x) * x",
        |x| x[0].softmax(1)?.mul(&x[0]),
        &[x.clone()],
    );
    check(
        "log_softmax large logits",
        |x| x[0].mul_scalar(30.0)?.log_softmax(-1),
        &[x.clone()],
    );
}

// ---------------------------------------------------------------- matmul

/// `x·wᵀ` (a Linear layer) hands `w` a contiguous gradient: the backward pass needs no
/// copy of a transposed gradient.
#[test]
fn linear_weight_gradient_is_contiguous_and_right() {
    let mut g = gen(12);
    let x = randn(&mut g, &[5, 3]);
    let w = randn(&mut g, &[4, 3]).requires_grad_(true).unwrap();
    let y = x.matmul(&w.t().unwrap()).unwrap();
    let loss = y.sum_all().unwrap();
    d2l_tensor::profile::take();
    d2l_tensor::profile::enable(true);
    loss.backward().unwrap();
    d2l_tensor::profile::enable(false);
    let rows = d2l_tensor::profile::take();
    assert!(
        rows.iter().all(|r| r.name != "contiguous"),
        "the backward pass copied: {rows:?}"
    );
    let gw = w.grad().unwrap();
    assert!(gw.is_contiguous());
    // d(sum(x·wᵀ))/dw[j][c] = Σ_i x[i][c]
    let xs = x.to_vec::<f32>();
    let want: Vec<f32> = (0..4)
        .flat_map(|_| {
            (0..3)
                .map(|c| (0..5).map(|i| xs[i * 3 + c]).sum::<f32>())
                .collect::<Vec<_>>()
        })
        .collect();
    for (a, b) in gw.to_vec::<f32>().iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn matmul_shapes() {
    let mut g = gen(11);
    let a = randn(&mut g, &[2, 3]);
    let b = randn(&mut g, &[3, 4]);
    let v3 = randn(&mut g, &[3]);
    let w3 = randn(&mut g, &[3]);
    let v4 = randn(&mut g, &[4]);
    check("2-D x 2-D", |x| x[0].matmul(&x[1]), &[a.clone(), b.clone()]);
    // Transposed views on either side (Linear's `x·wᵀ`, and `aᵀ·b`): their gradients
    // take the transposed orientation of the product.
    let w = randn(&mut g, &[4, 3]);
    check(
        "2-D x transposed",
        |x| x[0].matmul(&x[1].t()?),
        &[a.clone(), w.clone()],
    );
    let at = randn(&mut g, &[3, 2]);
    check(
        "transposed x 2-D",
        |x| x[0].t()?.matmul(&x[1]),
        &[at.clone(), b.clone()],
    );
    check(
        "transposed x transposed",
        |x| x[0].t()?.matmul(&x[1].t()?),
        &[at.clone(), w.clone()],
    );
    check("mm", |x| x[0].mm(&x[1]), &[a.clone(), b.clone()]);
    check(
        "1-D x 2-D",
        |x| x[0].matmul(&x[1]),
        &[v3.clone(), b.clone()],
    );
    check(
        "2-D x 1-D",
        |x| x[0].matmul(&x[1]),
        &[b.clone(), v4.clone()],
    );
    check(
        "1-D . 1-D",
        |x| x[0].matmul(&x[1]),
        &[v3.clone(), w3.clone()],
    );

    let ba = randn(&mut g, &[2, 2, 3]);
    let bb = randn(&mut g, &[2, 3, 2]);
    check("batched", |x| x[0].matmul(&x[1]), &[ba.clone(), bb.clone()]);
    let b1 = randn(&mut g, &[1, 3, 2]);
    check(
        "broadcast batch [2,2,3]x[1,3,2]",
        |x| x[0].matmul(&x[1]),
        &[ba.clone(), b1.clone()],
    );
    check(
        "broadcast batch [2,2,3]x[3,2]",
        |x| x[0].matmul(&x[1]),
        &[ba.clone(), bb.select(0, 0).unwrap()],
    );
    let c = randn(&mut g, &[3, 1, 2, 3]);
    let d = randn(&mut g, &[2, 3, 2]);
    check(
        "broadcast batch [3,1,2,3]x[2,3,2]",
        |x| x[0].matmul(&x[1]),
        &[c.clone(), d.clone()],
    );
    check(
        "batched x 1-D",
        |x| x[0].matmul(&x[1]),
        &[ba.clone(), v3.clone()],
    );
    check(
        "1-D x batched",
        |x| x[0].matmul(&x[1]),
        &[v3.clone(), bb.clone()],
    );

    // Transposed / permuted views as operands.
    let at = randn(&mut g, &[3, 2]);
    let bt = randn(&mut g, &[4, 3]);
    check(
        "a.t() x b.t()",
        |x| x[0].t()?.matmul(&x[1].t()?),
        &[at.clone(), bt.clone()],
    );
    check(
        "permuted batch",
        |x| x[0].permute(&[0, 2, 1])?.matmul(&x[1].permute(&[0, 2, 1])?),
        &[bb.clone(), ba.clone()],
    );
    check(
        "narrowed operand",
        |x| x[0].narrow(1, 1, 2)?.matmul(&x[1]),
        &[bb.clone(), randn(&mut g, &[2, 3])],
    );

    // Repeated use.
    check("x.matmul(x.t())", |x| x[0].matmul(&x[0].t()?), &[a.clone()]);
    check("x.t().matmul(x)", |x| x[0].t()?.matmul(&x[0]), &[a.clone()]);
    check("v . v", |x| x[0].matmul(&x[0]), &[v3.clone()]);
}

// ---------------------------------------------------------------- views and shape ops

#[test]
fn movement_views() {
    let mut g = gen(12);
    let x = randn(&mut g, &[2, 3, 4]);
    let m = randn(&mut g, &[2, 3]);
    check("reshape", |x| x[0].reshape([4, -1])?.exp(), &[x.clone()]);
    check(
        "reshape of permuted (copy)",
        |x| x[0].permute(&[2, 0, 1])?.reshape([8, 3]),
        &[x.clone()],
    );
    check("view", |x| x[0].view([6, 4]), &[x.clone()]);
    check("permute", |x| x[0].permute(&[2, 0, 1]), &[x.clone()]);
    check(
        "permute twice",
        |x| {
            x[0].permute(&[1, 2, 0])?
                .permute(&[2, 0, 1])?
                .mul_scalar(2.0)
        },
        &[x.clone()],
    );
    check("transpose", |x| x[0].transpose(0, -1), &[x.clone()]);
    check("t", |x| x[0].t(), &[m.clone()]);
    let s = randn(&mut g, &[2, 1, 3]);
    check("squeeze", |x| x[0].squeeze(1), &[s.clone()]);
    check("squeeze_all", |x| x[0].squeeze_all(), &[s.clone()]);
    check("unsqueeze -1", |x| x[0].unsqueeze(-1), &[m.clone()]);
    check(
        "unsqueeze 0 of .t()",
        |x| x[0].t()?.unsqueeze(0),
        &[m.clone()],
    );
    check("flatten(0,1)", |x| x[0].flatten(0, 1), &[x.clone()]);
    check(
        "flatten(1,-1) of permuted",
        |x| x[0].permute(&[1, 0, 2])?.flatten(1, -1),
        &[x.clone()],
    );
    check("narrow", |x| x[0].narrow(2, 1, 2), &[x.clone()]);
    check(
        "narrow twice",
        |x| x[0].narrow(0, 1, 1)?.narrow(2, 0, 3),
        &[x.clone()],
    );
    check(
        "slice negative bounds",
        |x| x[0].slice(2, -3, -1),
        &[x.clone()],
    );
    check("select 0 -1", |x| x[0].select(0, -1), &[x.clone()]);
    check("select 1", |x| x[0].select(1, 2), &[x.clone()]);
    check(
        "broadcast_to",
        |x| x[0].broadcast_to(&[4, 2, 3]),
        &[m.clone()],
    );
    let col = randn(&mut g, &[3, 1]);
    check("expand", |x| x[0].expand(&[2, 3, 4]), &[col.clone()]);
    check(
        "expand of .t()",
        |x| x[0].t()?.expand(&[3, 3]),
        &[col.clone()],
    );
    check(
        "contiguous of .t()",
        |x| x[0].t()?.contiguous(),
        &[m.clone()],
    );
    check(
        "contiguous (no-op)",
        |x| x[0].contiguous()?.exp(),
        &[m.clone()],
    );
    check(
        "copy of permuted",
        |x| x[0].permute(&[2, 1, 0])?.copy(),
        &[x.clone()],
    );
    check(
        "narrow(x) + x (overlapping use)",
        |x| x[0].narrow(1, 0, 2)?.add(&x[0].narrow(1, 1, 2)?),
        &[x.clone()],
    );
}

#[test]
fn movement_dtype_cast() {
    let mut g = gen(13);
    let x = randn(&mut g, &[2, 3]);
    // Through f32 the forward is only accurate to ~1e-7, so the finite difference needs
    // a larger step and looser tolerances than the f64 default.
    let loose = GradcheckOptions {
        eps: 1e-3,
        atol: 1e-3,
        rtol: 1e-2,
    };
    let r = gradcheck_with(
        |x| {
            x[0].to_dtype(DType::F32)?
                .mul_scalar(2.0)?
                .to_dtype(DType::F64)
        },
        &[x.clone()],
        loose,
    );
    assert!(r.is_ok(), "to_dtype f64->f32->f64: {r:?}");
    let r = gradcheck_with(
        |x| x[0].to_dtype(DType::F32)?.exp()?.t()?.to_dtype(DType::F64),
        &[x.clone()],
        loose,
    );
    assert!(r.is_ok(), "to_dtype with exp in f32: {r:?}");
    let r = gradcheck_with(
        |x| {
            x[0].to_dtype(DType::F32)?
                .mul(&x[1].to_dtype(DType::F32)?)?
                .sum(&[1], false)
        },
        &[x.clone(), randn(&mut g, &[2, 3])],
        loose,
    );
    assert!(r.is_ok(), "to_dtype f32 output: {r:?}");
    // f64 -> f64 is the identity.
    check(
        "to_dtype F64 (no-op)",
        |x| x[0].to_dtype(DType::F64)?.square(),
        &[x.clone()],
    );
}

#[test]
fn movement_cat_stack_split_chunk() {
    let mut g = gen(14);
    let a = randn(&mut g, &[2, 3]);
    let b = randn(&mut g, &[2, 2]);
    let c = randn(&mut g, &[2, 3]);
    check(
        "cat dim 1",
        |x| Tensor::cat(&[&x[0], &x[1]], 1),
        &[a.clone(), b.clone()],
    );
    check(
        "cat dim 0",
        |x| Tensor::cat(&[&x[0], &x[1]], 0),
        &[a.clone(), c.clone()],
    );
    check(
        "cat dim -1 with a repeat and a transpose",
        |x| Tensor::cat(&[&x[0], &x[1].t()?.t()?, &x[0]], -1),
        &[a.clone(), b.clone()],
    );
    check(
        "cat of permuted",
        |x| Tensor::cat(&[&x[0].t()?, &x[1].t()?], 0),
        &[a.clone(), b.clone()],
    );
    check(
        "stack dim 0",
        |x| Tensor::stack(&[&x[0], &x[1]], 0),
        &[a.clone(), c.clone()],
    );
    check(
        "stack dim -1",
        |x| Tensor::stack(&[&x[0], &x[1].exp()?], -1),
        &[a.clone(), c.clone()],
    );
    check(
        "stack of .t()",
        |x| Tensor::stack(&[&x[0].t()?, &x[1].t()?], 1),
        &[a.clone(), c.clone()],
    );

    let w = randn(&mut g, &[3, 5]);
    check(
        "split(2, 1)",
        |x| {
            let p = x[0].split(2, 1)?;
            assert_eq!(p.len(), 3);
            Tensor::cat(&[&p[2].exp()?, &p[0], &p[1].mul_scalar(3.0)?], 1)
        },
        &[w.clone()],
    );
    check(
        "split on dim 0 of .t()",
        |x| {
            let p = x[0].t()?.split(3, 0)?;
            p[0].mul(&p[1].narrow(0, 0, 2)?.sum(&[0], true)?)
        },
        &[w.clone()],
    );
    check(
        "chunk(2, -1)",
        |x| {
            let p = x[0].chunk(2, -1)?;
            assert_eq!(p.len(), 2);
            p[0].sum(&[1], false)?.mul(&p[1].sin()?.sum(&[1], false)?)
        },
        &[w.clone()],
    );
    check(
        "chunk(3, 0)",
        |x| {
            let p = x[0].chunk(3, 0)?;
            Tensor::stack(&[&p[2], &p[0].square()?], 0)
        },
        &[w.clone()],
    );
}

#[test]
fn movement_pad_repeat_kron() {
    let mut g = gen(15);
    let x = randn(&mut g, &[2, 3]);
    check("pad last dim", |x| x[0].pad(&[1, 2], 0.0), &[x.clone()]);
    check(
        "pad two dims with value",
        |x| x[0].pad(&[1, 2, 0, 1], 0.5),
        &[x.clone()],
    );
    check(
        "pad of .t()",
        |x| x[0].t()?.pad(&[0, 1, 2, 0], -1.0),
        &[x.clone()],
    );
    check(
        "pad 3-D",
        |x| x[0].unsqueeze(0)?.pad(&[1, 0, 0, 1, 1, 1], 0.0),
        &[x.clone()],
    );
    check("repeat", |x| x[0].repeat(&[2, 2]), &[x.clone()]);
    check(
        "repeat with a new dim",
        |x| x[0].repeat(&[2, 1, 2]),
        &[x.clone()],
    );
    check(
        "repeat of .t()",
        |x| x[0].t()?.repeat(&[1, 2]),
        &[x.clone()],
    );
    let a = randn(&mut g, &[2, 2]);
    let b = randn(&mut g, &[2, 3]);
    check("kron", |x| x[0].kron(&x[1]), &[a.clone(), b.clone()]);
    check(
        "kron of .t()",
        |x| x[0].t()?.kron(&x[1]),
        &[a.clone(), b.clone()],
    );
    check("kron(x, x)", |x| x[0].kron(&x[0]), &[a.clone()]);
}

// ---------------------------------------------------------------- indexing

#[test]
fn index_select_gather() {
    let mut g = gen(16);
    let x = randn(&mut g, &[3, 4]);
    let rep = idx(&[2, 0, 2, 2], &[4]); // repeated indices accumulate
    check(
        "index_select dim 0",
        |x| x[0].index_select(0, &x[1]),
        &[x.clone(), rep.clone()],
    );
    check(
        "index_select dim 1",
        |x| x[0].index_select(1, &x[1]),
        &[x.clone(), idx(&[3, 3, 1], &[3])],
    );
    check(
        "index_select dim -1 of .t()",
        |x| x[0].t()?.index_select(-1, &x[1]),
        &[x.clone(), rep.clone()],
    );
    let x3 = randn(&mut g, &[2, 3, 4]);
    check(
        "index_select 3-D dim 1",
        |x| x[0].index_select(1, &x[1]),
        &[x3.clone(), idx(&[1, 1, 0, 2, 1], &[5])],
    );

    let gi = idx(&[0, 3, 3, 1, 2, 2], &[3, 2]);
    check(
        "gather dim 1",
        |x| x[0].gather(1, &x[1]),
        &[x.clone(), gi.clone()],
    );
    let gi0 = idx(&[2, 0, 1, 2, 2, 2, 0, 0], &[2, 4]);
    check(
        "gather dim 0",
        |x| x[0].gather(0, &x[1]),
        &[x.clone(), gi0.clone()],
    );
    check(
        "gather of .t()",
        |x| x[0].t()?.gather(0, &x[1]),
        &[x.clone(), idx(&[1, 0, 2, 2, 0, 1], &[2, 3])],
    );
    check(
        "gather dim -1 (cross-entropy pick)",
        |x| x[0].log_softmax(-1)?.gather(-1, &x[1]),
        &[x.clone(), idx(&[1, 3, 0], &[3, 1])],
    );
}

#[test]
fn index_scatter_add() {
    let mut g = gen(17);
    let base = randn(&mut g, &[3, 4]);
    let index = idx(&[0, 2, 2, 1, 2, 0, 1, 1], &[2, 4]);
    let src = randn(&mut g, &[2, 4]);
    check(
        "scatter_add dim 0 (x and src)",
        |x| x[0].scatter_add(0, &x[1], &x[2]),
        &[base.clone(), index.clone(), src.clone()],
    );
    let index1 = idx(&[3, 3, 0, 1, 1, 1], &[3, 2]);
    let src1 = randn(&mut g, &[3, 2]);
    check(
        "scatter_add dim 1",
        |x| x[0].scatter_add(1, &x[1], &x[2]),
        &[base.clone(), index1.clone(), src1.clone()],
    );
    // src larger than the index: only its index-shaped corner is used.
    let big_src = randn(&mut g, &[3, 4]);
    check(
        "scatter_add with src larger than index",
        |x| x[0].scatter_add(0, &x[1], &x[2]),
        &[base.clone(), index.clone(), big_src.clone()],
    );
    check(
        "scatter_add of strided views",
        |x| x[0].t()?.scatter_add(1, &x[1], &x[2].t()?),
        &[
            base.clone(),
            idx(&[0, 2, 1, 1, 2, 0], &[3, 2]),
            randn(&mut g, &[2, 3]),
        ],
    );
    check(
        "scatter_add(x, src = x)",
        |x| x[0].scatter_add(0, &x[1], &x[0].narrow(0, 0, 2)?),
        &[base.clone(), index.clone()],
    );
}

#[test]
fn index_where_masked_fill() {
    let mut g = gen(18);
    let a = randn(&mut g, &[2, 3]);
    let b = randn(&mut g, &[2, 3]);
    let cond = mask(&[1, 0, 1, 0, 0, 1], &[2, 3]);
    check(
        "where_cond",
        |x| Tensor::where_cond(&x[0], &x[1], &x[2]),
        &[cond.clone(), a.clone(), b.clone()],
    );
    // Broadcasting: cond [2,3], a [3], b [2,1].
    let r3 = randn(&mut g, &[3]);
    let c21 = randn(&mut g, &[2, 1]);
    check(
        "where_cond broadcast a[3] b[2,1]",
        |x| Tensor::where_cond(&x[0], &x[1], &x[2]),
        &[cond.clone(), r3.clone(), c21.clone()],
    );
    // cond [2,1] broadcast against a [3] and b [2,3].
    check(
        "where_cond broadcast cond[2,1]",
        |x| Tensor::where_cond(&x[0], &x[1], &x[2]),
        &[mask(&[0, 1], &[2, 1]), r3.clone(), b.clone()],
    );
    check(
        "where_cond of .t()",
        |x| Tensor::where_cond(&x[0], &x[1].t()?.t()?, &x[2].t()?),
        &[cond.clone(), a.clone(), randn(&mut g, &[3, 2])],
    );
    check(
        "where_cond(x, x.exp())",
        |x| Tensor::where_cond(&x[0], &x[1], &x[1].exp()?),
        &[cond.clone(), a.clone()],
    );

    check(
        "masked_fill",
        |x| x[0].masked_fill(&x[1], -2.0),
        &[a.clone(), cond.clone()],
    );
    check(
        "masked_fill broadcast mask [1,3]",
        |x| x[0].masked_fill(&x[1], 3.0),
        &[a.clone(), mask(&[0, 1, 1], &[1, 3])],
    );
    check(
        "masked_fill of .t()",
        |x| x[0].t()?.masked_fill(&x[1], 0.0),
        &[a.clone(), mask(&[1, 0, 0, 1, 1, 0], &[3, 2])],
    );
}

// ---------------------------------------------------------------- compositions

#[test]
fn composed_graphs() {
    let mut g = gen(19);
    let x = randn(&mut g, &[4, 3]);
    let w = randn(&mut g, &[3, 2]);
    let bias = randn(&mut g, &[2]);
    let y = idx(&[0, 1, 1, 0], &[4, 1]);
    // A linear layer with cross-entropy (D2L 4.5), the one-tensor-many-uses pattern of MLPs.
    check(
        "linear + cross-entropy",
        |x| {
            let logits = x[0].matmul(&x[1])?.add(&x[2])?;
            logits.log_softmax(-1)?.gather(1, &x[3])?.neg()?.mean_all()
        },
        &[x.clone(), w.clone(), bias.clone(), y.clone()],
    );
    // Layer norm built from primitives (mean, var, rsqrt with broadcasting).
    check(
        "layer norm",
        |x| {
            let mu = x[0].mean(&[-1], true)?;
            let v = x[0].var(&[-1], false, true)?;
            x[0].sub(&mu)?.mul(&v.add_scalar(1e-5)?.rsqrt()?)
        },
        &[x.clone()],
    );
    check(
        "MLP with gelu and a residual",
        |x| {
            let h = x[0].matmul(&x[1])?.gelu()?;
            h.matmul(&x[1].t()?)?.add(&x[0])?.tanh()
        },
        &[x.clone(), w.clone()],
    );
}

// ---------------------------------------------------------------- gradcheck itself

/// A custom op computing 2x whose backward is given by `scale`.
fn doubled(x: &Tensor, scale: f64) -> Result<Tensor> {
    let value = d2l_tensor::no_grad(|| x.mul_scalar(2.0))?;
    let backward: BackwardFn = Arc::new(move |g: &Tensor| Ok(vec![Some(g.mul_scalar(scale)?)]));
    Ok(Tensor::custom_op(value, &[x], backward))
}

#[test]
fn gradcheck_catches_a_wrong_gradient() {
    let mut g = gen(20);
    let x = randn(&mut g, &[2, 3]);
    // The correct rule passes ...
    check(
        "custom op 2x with backward 2g",
        |x| doubled(&x[0], 2.0),
        &[x.clone()],
    );
    // ... and a wrong one (3g instead of 2g) is reported.
    let err = gradcheck(|x| doubled(&x[0], 3.0), &[x.clone()]);
    assert!(err.is_err(), "gradcheck accepted a wrong gradient");
    let msg = err.unwrap_err().to_string();
    assert!(
        msg.contains("input 0"),
        "the error should name the input: {msg}"
    );
    // A gradient missing entirely (None) is also caught.
    let none = gradcheck(
        |x| {
            let value = d2l_tensor::no_grad(|| x[0].mul_scalar(2.0))?;
            let backward: BackwardFn = Arc::new(|_g: &Tensor| Ok(vec![None]));
            Ok(Tensor::custom_op(value, &[&x[0]], backward))
        },
        &[x.clone()],
    );
    assert!(none.is_err(), "gradcheck accepted a missing gradient");
    // A gradient that is off by a small amount only at one element is caught too.
    let off_one = gradcheck(
        |x| {
            let value = d2l_tensor::no_grad(|| x[0].sin())?;
            let saved = x[0].detach();
            let backward: BackwardFn = Arc::new(move |g: &Tensor| {
                let mut bump = vec![0.0f64; 6];
                bump[4] = 0.01;
                let bump = Tensor::from_vec(bump, &[2, 3])?.to_dtype(g.dtype())?;
                Ok(vec![Some(g.mul(&saved.cos()?.add(&bump)?)?)])
            });
            Ok(Tensor::custom_op(value, &[&x[0]], backward))
        },
        &[x.clone()],
    );
    assert!(
        off_one.is_err(),
        "gradcheck accepted a gradient wrong at one element"
    );
}

// ---------------------------------------------------------------- edge shapes

#[test]
fn edge_shapes() {
    let mut g = gen(21);
    let s = Tensor::from_vec(vec![0.7f64], &[]).unwrap(); // a 0-d input
    check("0-d exp", |x| x[0].exp(), &[s.clone()]);
    check(
        "0-d * [2,3]",
        |x| x[0].mul(&x[1]),
        &[s.clone(), randn(&mut g, &[2, 3])],
    );
    check("0-d sum_all", |x| x[0].sum_all(), &[s.clone()]);
    check(
        "0-d max_dim",
        |x| Ok(x[0].max_dim(0, false)?.0),
        &[s.clone()],
    );
    check("0-d softmax", |x| x[0].softmax(0)?.add(&x[0]), &[s.clone()]);
    check(
        "0-d unsqueeze/expand",
        |x| x[0].unsqueeze(0)?.expand(&[3]),
        &[s.clone()],
    );
    let x = randn(&mut g, &[3, 4]);
    check("sum over no dims", |x| x[0].sum(&[], false), &[x.clone()]);
    check(
        "softmax over a size-1 dim",
        |x| x[0].unsqueeze(1)?.softmax(1)?.add(&x[0].unsqueeze(1)?),
        &[x.clone()],
    );
    check(
        "max over a size-1 dim",
        |x| Ok(x[0].unsqueeze(0)?.max_dim(0, false)?.0),
        &[x.clone()],
    );
    check(
        "index_select with a 0-d index",
        |x| x[0].index_select(1, &x[1]),
        &[x.clone(), idx(&[2], &[])],
    );
    // Index smaller than the input outside `dim`.
    check(
        "gather with a small index",
        |x| x[0].gather(0, &x[1]),
        &[x.clone(), idx(&[2, 0, 1, 1], &[2, 2])],
    );
    check(
        "scatter_add with a small index and a larger src",
        |x| x[0].scatter_add(1, &x[1], &x[2]),
        &[
            x.clone(),
            idx(&[3, 0, 3, 1], &[2, 2]),
            randn(&mut g, &[3, 4]),
        ],
    );
    check(
        "narrow to length 0 and cat",
        |x| Tensor::cat(&[&x[0].narrow(1, 1, 0)?, &x[0]], 1),
        &[x.clone()],
    );
    check("repeat of 0-d", |x| x[0].repeat(&[2, 3]), &[s.clone()]);
}
