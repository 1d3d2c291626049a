//! Batch norm, group norm, 2-D upsampling and padding: gradient checks (f64), PyTorch
//! fixtures (outputs, gradients of `sum(out * g)`, running statistics after one step; see
//! `scripts/gen_norm_fixtures.py`), running-statistic updates, the parallel kernels on
//! large inputs, and the errors for bad shapes.

use d2l_tensor::{gradcheck, no_grad, DType, Error, Generator, PadMode, Result, Tensor};
use d2l_testkit::json;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/norm.json");
const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;

fn randn(seed: u64, shape: &[usize]) -> Tensor {
    Tensor::randn_with(&mut Generator::new(seed), shape)
        .to_dtype(DType::F64)
        .unwrap()
}

fn uniform(seed: u64, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    Tensor::uniform_with(&mut Generator::new(seed), shape, lo, hi)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{what}: element {i}: got {a}, expected {b}"
        );
    }
}

// ---------------------------------------------------------------- gradient checks

/// `[x]`, then with `affine` a weight in [0.5, 1.5) and a bias of `c` values (seeds `seed`
/// and `seed + 1`): a normalisation's inputs, its weight and bias at `t.get(1)` and
/// `t.get(2)`.
fn with_affine(x: Tensor, affine: bool, c: usize, seed: u64) -> Vec<Tensor> {
    let mut inputs = vec![x];
    if affine {
        inputs.push(uniform(seed, &[c], 0.5, 1.5));
        inputs.push(randn(seed + 1, &[c]));
    }
    inputs
}

#[test]
fn gradcheck_batch_norm_training() {
    for (shape, affine) in [
        (vec![6, 3], true),
        (vec![5, 4], false),
        (vec![3, 2, 3, 4], true),
        (vec![2, 3, 2, 3], false),
        (vec![3, 2, 5], true),
    ] {
        let c = shape[1];
        let x = randn(1, &shape)
            .mul_scalar(2.0)
            .unwrap()
            .add_scalar(0.5)
            .unwrap();
        let inputs = with_affine(x, affine, c, 2);
        gradcheck(
            |t| {
                let (w, b) = (t.get(1), t.get(2));
                t[0].batch_norm(None, None, w, b, true, 0.1, 1e-5)
            },
            &inputs,
        )
        .unwrap_or_else(|e| panic!("shape {shape:?}, affine {affine}: {e}"));
    }
}

#[test]
fn gradcheck_batch_norm_training_updates_running_stats_too() {
    // Running statistics given: the gradient is the same, and the buffers never get one.
    let x = randn(4, &[4, 3, 2, 2]);
    let w = uniform(5, &[3], 0.5, 1.5);
    let b = randn(6, &[3]);
    gradcheck(
        |t| {
            let rm = Tensor::zeros_dtype(&[3], DType::F64);
            let rv = Tensor::ones(&[3]).to_dtype(DType::F64)?;
            t[0].batch_norm(
                Some(&rm),
                Some(&rv),
                Some(&t[1]),
                Some(&t[2]),
                true,
                0.1,
                1e-5,
            )
        },
        &[x, w, b],
    )
    .unwrap();
}

#[test]
fn gradcheck_batch_norm_eval() {
    for shape in [vec![4, 3], vec![2, 3, 3, 2]] {
        let c = shape[1];
        let rm = randn(7, &[c]);
        let rv = uniform(8, &[c], 0.5, 2.0);
        let x = randn(9, &shape);
        let w = uniform(10, &[c], 0.5, 1.5);
        let b = randn(11, &[c]);
        gradcheck(
            |t| {
                t[0].batch_norm(
                    Some(&rm),
                    Some(&rv),
                    Some(&t[1]),
                    Some(&t[2]),
                    false,
                    0.1,
                    1e-5,
                )
            },
            &[x.clone(), w, b],
        )
        .unwrap();
        gradcheck(
            |t| t[0].batch_norm(Some(&rm), Some(&rv), None, None, false, 0.1, 1e-5),
            &[x],
        )
        .unwrap();
    }
}

#[test]
fn gradcheck_batch_norm_strided_input() {
    // A permuted (non-contiguous) view: NHWC storage read as NCHW.
    let x = randn(12, &[2, 3, 4, 3]); // N, H, W, C
    let w = uniform(13, &[3], 0.5, 1.5);
    gradcheck(
        |t| {
            t[0].permute(&[0, 3, 1, 2])?
                .batch_norm(None, None, Some(&t[1]), None, true, 0.1, 1e-5)
        },
        &[x, w],
    )
    .unwrap();
}

#[test]
fn gradcheck_group_norm() {
    for (shape, groups, affine) in [
        (vec![2, 6, 2, 3], 3, true),
        (vec![2, 4, 3, 2], 1, true),
        (vec![3, 4, 5], 4, false),
        (vec![2, 6], 2, true),
    ] {
        let c = shape[1];
        let x = randn(14, &shape).add_scalar(1.0).unwrap();
        let inputs = with_affine(x, affine, c, 15);
        gradcheck(
            |t| {
                let (w, b) = (t.get(1), t.get(2));
                t[0].group_norm(groups, w, b, 1e-5)
            },
            &inputs,
        )
        .unwrap_or_else(|e| panic!("shape {shape:?}, groups {groups}: {e}"));
    }
}

#[test]
fn gradcheck_upsample() {
    let x = randn(17, &[2, 2, 3, 4]);
    for out in [(5, 7), (6, 8), (2, 3), (3, 4), (1, 1)] {
        gradcheck(|t| t[0].upsample_nearest2d(out), &[x.clone()])
            .unwrap_or_else(|e| panic!("nearest {out:?}: {e}"));
        for ac in [false, true] {
            gradcheck(|t| t[0].upsample_bilinear2d(out, ac), &[x.clone()])
                .unwrap_or_else(|e| panic!("bilinear {out:?}, align_corners {ac}: {e}"));
        }
    }
}

#[test]
fn gradcheck_pad2d() {
    let x = randn(18, &[2, 2, 4, 3]);
    for mode in [PadMode::Constant(0.7), PadMode::Reflect, PadMode::Replicate] {
        for pads in [(1, 2, 3, 0), (2, 2, 1, 1), (0, 0, 0, 0)] {
            gradcheck(|t| t[0].pad2d(pads, mode), &[x.clone()])
                .unwrap_or_else(|e| panic!("{mode:?} {pads:?}: {e}"));
        }
    }
    // Replicate pads may exceed the dim; rank 3 works too.
    let y = randn(19, &[2, 2, 3]);
    gradcheck(|t| t[0].pad2d((5, 1, 0, 4), PadMode::Replicate), &[y]).unwrap();
}

// ---------------------------------------------------------------- PyTorch fixtures

fn tensor_of(v: &Value, dtype: DType) -> Tensor {
    json::tensor(v).to_dtype(dtype).unwrap()
}

fn check(what: String, got: &Tensor, want: &Value, failures: &mut Vec<String>) {
    let shape = json::shape(want);
    if got.shape() != shape.as_slice() {
        failures.push(format!(
            "{what}: shape {:?}, expected {shape:?}",
            got.shape()
        ));
        return;
    }
    let want = json::data(want);
    for (i, (a, b)) in got.to_f64_vec().iter().zip(&want).enumerate() {
        if (a - b).abs() > ATOL + RTOL * b.abs() || a.is_nan() {
            failures.push(format!("{what}: element {i}: got {a}, expected {b}"));
            return;
        }
    }
}

fn run_case(case: &Value, dtype: DType, failures: &mut Vec<String>) -> Result<()> {
    let name = format!("{} ({dtype})", case["name"].as_str().unwrap());
    let p = &case["params"];
    let inputs = &case["inputs"];
    let leaf = |k: &str| -> Option<Tensor> {
        inputs
            .get(k)
            .map(|v| tensor_of(v, dtype).requires_grad_(true).unwrap())
    };
    let (x, w, b) = (leaf("x").unwrap(), leaf("weight"), leaf("bias"));
    let running = case.get("running_before").map(|r| {
        (
            tensor_of(&r["running_mean"], dtype),
            tensor_of(&r["running_var"], dtype),
        )
    });
    let out = match case["op"].as_str().unwrap() {
        "batch_norm" => x.batch_norm(
            running.as_ref().map(|r| &r.0),
            running.as_ref().map(|r| &r.1),
            w.as_ref(),
            b.as_ref(),
            p["training"].as_bool().unwrap(),
            p["momentum"].as_f64().unwrap(),
            p["eps"].as_f64().unwrap(),
        )?,
        "group_norm" => x.group_norm(
            p["groups"].as_u64().unwrap() as usize,
            w.as_ref(),
            b.as_ref(),
            p["eps"].as_f64().unwrap(),
        )?,
        "upsample_nearest2d" => x.upsample_nearest2d(json::pair(&p["out_hw"]))?,
        "upsample_bilinear2d" => x.upsample_bilinear2d(
            json::pair(&p["out_hw"]),
            p["align_corners"].as_bool().unwrap(),
        )?,
        "pad2d" => {
            let pads = json::usizes(&p["pads"]);
            let mode = match p["mode"].as_str().unwrap() {
                "constant" => PadMode::Constant(p["value"].as_f64().unwrap()),
                "reflect" => PadMode::Reflect,
                "replicate" => PadMode::Replicate,
                m => panic!("unknown pad mode {m}"),
            };
            x.pad2d((pads[0], pads[1], pads[2], pads[3]), mode)?
        }
        op => panic!("unknown op {op}"),
    };
    assert_eq!(out.dtype(), dtype);
    check(format!("{name}: output"), &out, &case["output"], failures);
    out.backward_with(&tensor_of(&case["grad_output"], dtype))?;
    for (k, t) in [
        ("x", Some(&x)),
        ("weight", w.as_ref()),
        ("bias", b.as_ref()),
    ] {
        let Some(t) = t else { continue };
        match t.grad() {
            Some(g) => check(format!("{name}: grad {k}"), &g, &case["grads"][k], failures),
            None => failures.push(format!("{name}: no gradient for {k}")),
        }
    }
    if let (Some((rm, rv)), Some(after)) = (&running, case.get("running_after")) {
        check(
            format!("{name}: running_mean"),
            rm,
            &after["running_mean"],
            failures,
        );
        check(
            format!("{name}: running_var"),
            rv,
            &after["running_var"],
            failures,
        );
    }
    Ok(())
}

#[test]
fn matches_pytorch_fixtures() {
    let root = json::load(FIXTURES, "scripts/gen_norm_fixtures.py");
    let cases = root["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for case in cases {
        for dtype in [DType::F64, DType::F32] {
            if let Err(e) = run_case(case, dtype, &mut failures) {
                failures.push(format!("{}: error {e}", case["name"]));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------- running statistics

#[test]
fn running_stats_follow_pytorch_momentum_rule() {
    // Two training steps with momentum 0.25 on [N, C, L]; the expected values are
    // computed here with plain loops (unbiased variance for the running estimate).
    let (n, c, l) = (3usize, 2usize, 4usize);
    let rm = Tensor::from_slice(&[0.5f32, -1.0], &[c]).unwrap();
    let rv = Tensor::from_slice(&[2.0f32, 0.5], &[c]).unwrap();
    let (mut em, mut ev) = (vec![0.5f64, -1.0], vec![2.0f64, 0.5]);
    for step in 0..2u64 {
        let x = randn(30 + step, &[n, c, l])
            .mul_scalar(1.0 + step as f64)
            .unwrap();
        let xs = x.to_f64_vec();
        x.batch_norm(Some(&rm), Some(&rv), None, None, true, 0.25, 1e-5)
            .unwrap();
        for ci in 0..c {
            let vals: Vec<f64> = (0..n)
                .flat_map(|ni| (0..l).map(move |li| (ni, li)))
                .map(|(ni, li)| xs[(ni * c + ci) * l + li])
                .collect();
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (vals.len() - 1) as f64;
            em[ci] = 0.75 * em[ci] + 0.25 * m;
            ev[ci] = 0.75 * ev[ci] + 0.25 * var;
        }
        assert_close("running_mean", &rm.to_f64_vec(), &em, 1e-6, 1e-6);
        assert_close("running_var", &rv.to_f64_vec(), &ev, 1e-6, 1e-6);
    }
    // Eval mode leaves them alone and uses them.
    let x = randn(40, &[n, c, l]);
    let before = (rm.to_f64_vec(), rv.to_f64_vec());
    let y = x
        .batch_norm(Some(&rm), Some(&rv), None, None, false, 0.25, 1e-5)
        .unwrap();
    assert_eq!((rm.to_f64_vec(), rv.to_f64_vec()), before);
    let xs = x.to_f64_vec();
    let want: Vec<f64> = xs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ci = (i / l) % c;
            (v - em[ci]) / (ev[ci] + 1e-5).sqrt()
        })
        .collect();
    assert_close("eval output", &y.to_f64_vec(), &want, 1e-5, 1e-5);
}

#[test]
fn running_stats_are_updated_while_params_require_grad() {
    // Inside a graph-recording forward the buffers are written under no_grad, and they
    // never enter the graph.
    let x = randn(41, &[4, 2, 3, 3]).requires_grad_(true).unwrap();
    let w = Tensor::ones(&[2]).requires_grad_(true).unwrap();
    let rm = Tensor::zeros(&[2]);
    let rv = Tensor::ones(&[2]);
    let y = x
        .batch_norm(Some(&rm), Some(&rv), Some(&w), None, true, 0.1, 1e-5)
        .unwrap();
    assert!(y.requires_grad());
    assert!(!rm.requires_grad() && rm.is_leaf());
    assert_ne!(rm.to_f64_vec(), vec![0.0, 0.0]);
    y.sum_all().unwrap().backward().unwrap();
    // The sum of a batch-normalised output does not depend on x.
    let gx = x.grad().unwrap().to_f64_vec();
    assert!(gx.iter().all(|v| v.abs() < 1e-10), "{gx:?}");
    assert!(w.grad().is_some());
}

// ---------------------------------------------------------------- large inputs

/// The batch statistics with existing ops (the book's from-scratch formula).
fn composed_bn(x: &Tensor, dims: &[isize]) -> Tensor {
    let mean = x.mean(dims, true).unwrap();
    let var = x
        .sub(&mean)
        .unwrap()
        .square()
        .unwrap()
        .mean(dims, true)
        .unwrap();
    x.sub(&mean)
        .unwrap()
        .div(&var.add_scalar(1e-5).unwrap().sqrt().unwrap())
        .unwrap()
}

#[test]
fn large_f32_inputs_match_the_composed_formula() {
    // Big enough for the parallel path and for block sums; a large mean tests the
    // two-pass variance in f32.
    let x = Tensor::randn_with(&mut Generator::new(50), &[16, 8, 40, 40])
        .mul_scalar(3.0)
        .unwrap()
        .add_scalar(100.0)
        .unwrap();
    let y = x
        .batch_norm(None, None, None, None, true, 0.1, 1e-5)
        .unwrap();
    let want = composed_bn(&x.to_dtype(DType::F64).unwrap(), &[0, 2, 3]);
    assert_close(
        "batch_norm f32",
        &y.to_f64_vec(),
        &want.to_f64_vec(),
        2e-4,
        1e-4,
    );

    let xg = x.reshape(&[16, 4, 2 * 40 * 40]).unwrap();
    let y = x.group_norm(4, None, None, 1e-5).unwrap();
    let want = composed_bn(&xg.to_dtype(DType::F64).unwrap(), &[2]);
    assert_close(
        "group_norm f32",
        &y.to_f64_vec(),
        &want.to_f64_vec(),
        2e-4,
        1e-4,
    );

    // Backward on the parallel path agrees with the f64 one.
    let g = Tensor::randn_with(&mut Generator::new(51), &[16, 8, 40, 40]);
    let grads = |dtype: DType| {
        let xl = x
            .to_dtype(dtype)
            .unwrap()
            .detach()
            .requires_grad_(true)
            .unwrap();
        let w = Tensor::full_dtype(&[8], 1.5, dtype)
            .requires_grad_(true)
            .unwrap();
        let y = xl
            .batch_norm(None, None, Some(&w), None, true, 0.1, 1e-5)
            .unwrap();
        y.backward_with(&g).unwrap();
        (
            xl.grad().unwrap().to_f64_vec(),
            w.grad().unwrap().to_f64_vec(),
        )
    };
    let (a, aw) = grads(DType::F32);
    let (b, bw) = grads(DType::F64);
    assert_close("dx f32 vs f64", &a, &b, 1e-4, 1e-3);
    assert_close("dw f32 vs f64", &aw, &bw, 1e-2, 1e-4);
}

#[test]
fn untracked_forward_records_nothing() {
    let x = randn(52, &[2, 3, 4, 4]).requires_grad_(true).unwrap();
    let y = no_grad(|| {
        x.batch_norm(None, None, None, None, true, 0.1, 1e-5)
            .unwrap()
    });
    assert!(!y.requires_grad() && !y.has_graph());
    let z = randn(53, &[2, 3, 4, 4])
        .upsample_bilinear2d((8, 8), false)
        .unwrap();
    assert!(!z.requires_grad());
}

// ---------------------------------------------------------------- errors

fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn bad_inputs_are_errors() {
    let x = randn(60, &[2, 3, 4, 4]);
    let c3 = Tensor::ones(&[3]).to_dtype(DType::F64).unwrap();
    let c4 = Tensor::ones(&[4]).to_dtype(DType::F64).unwrap();

    // batch_norm: rank, channel mismatch, eval without running stats, one value per channel.
    let e = err(randn(61, &[5]).batch_norm(None, None, None, None, true, 0.1, 1e-5));
    assert!(e.contains("batch_norm") && e.contains("[5]"), "{e}");
    let e = err(x.batch_norm(None, None, Some(&c4), None, true, 0.1, 1e-5));
    assert!(e.contains("weight") && e.contains("[3]"), "{e}");
    let e = err(x.batch_norm(None, None, None, Some(&c4), true, 0.1, 1e-5));
    assert!(e.contains("bias"), "{e}");
    let e = err(x.batch_norm(Some(&c4), Some(&c3), None, None, true, 0.1, 1e-5));
    assert!(e.contains("running_mean"), "{e}");
    let e = err(x.batch_norm(Some(&c3), None, None, None, false, 0.1, 1e-5));
    assert!(e.contains("running_var") && e.contains("eval"), "{e}");
    let e = err(x.batch_norm(None, None, None, None, false, 0.1, 1e-5));
    assert!(e.contains("running"), "{e}");
    let e = err(randn(62, &[1, 3]).batch_norm(None, None, None, None, true, 0.1, 1e-5));
    assert!(e.contains("more than 1 value per channel"), "{e}");
    let e = err(Tensor::zeros_dtype(&[2, 3], DType::I64)
        .batch_norm(None, None, None, None, true, 0.1, 1e-5));
    assert!(e.contains("float"), "{e}");

    // group_norm: groups must divide C; rank; weight size.
    let e = err(x.group_norm(2, None, None, 1e-5));
    assert!(
        e.contains("divisible") && e.contains('3') && e.contains('2'),
        "{e}"
    );
    assert!(matches!(
        x.group_norm(0, None, None, 1e-5),
        Err(Error::InvalidArgument { .. })
    ));
    let e = err(randn(63, &[6]).group_norm(3, None, None, 1e-5));
    assert!(e.contains("group_norm") && e.contains("[6]"), "{e}");
    let e = err(x.group_norm(3, Some(&c4), None, 1e-5));
    assert!(e.contains("weight"), "{e}");

    // upsample: rank 4, positive sizes.
    let e = err(randn(64, &[3, 4, 4]).upsample_nearest2d((8, 8)));
    assert!(e.contains("[N, C, H, W]") && e.contains("[3, 4, 4]"), "{e}");
    let e = err(randn(65, &[3, 4, 4]).upsample_bilinear2d((8, 8), true));
    assert!(e.contains("upsample_bilinear2d"), "{e}");
    assert!(x.upsample_nearest2d((0, 3)).is_err());

    // pad2d: reflect pads must be smaller than the dim; rank >= 2.
    let e = err(x.pad2d((4, 0, 0, 0), PadMode::Reflect));
    assert!(e.contains("reflect") && e.contains("size 4"), "{e}");
    let e = err(x.pad2d((0, 0, 1, 4), PadMode::Reflect));
    assert!(e.contains("reflect") && e.contains("dim 2"), "{e}");
    assert!(x.pad2d((3, 3, 3, 3), PadMode::Reflect).is_ok());
    let e = err(randn(66, &[4]).pad2d((1, 1, 0, 0), PadMode::Replicate));
    assert!(e.contains("rank"), "{e}");
}

#[test]
fn pad_and_upsample_values_are_pytorch_rules() {
    // A 1×1×2×3 ramp: small, exact cases that document the index rules.
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[1, 1, 2, 3]).unwrap();
    let y = x.pad2d((2, 1, 1, 0), PadMode::Reflect).unwrap();
    assert_eq!(y.shape(), &[1, 1, 3, 6]);
    assert_eq!(
        y.to_vec::<f32>(),
        vec![6., 5., 4., 5., 6., 5., 3., 2., 1., 2., 3., 2., 6., 5., 4., 5., 6., 5.]
    );
    let y = x.pad2d((1, 2, 0, 1), PadMode::Replicate).unwrap();
    assert_eq!(
        y.to_vec::<f32>(),
        vec![1., 1., 2., 3., 3., 3., 4., 4., 5., 6., 6., 6., 4., 4., 5., 6., 6., 6.]
    );
    let y = x.pad2d((1, 0, 0, 0), PadMode::Constant(-1.0)).unwrap();
    assert_eq!(y.to_vec::<f32>(), vec![-1., 1., 2., 3., -1., 4., 5., 6.]);
    let y = x.upsample_nearest2d((4, 6)).unwrap();
    assert_eq!(
        y.to_vec::<f32>()[..12],
        [1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.]
    );
    let y = x.upsample_bilinear2d((3, 5), true).unwrap();
    assert_close(
        "bilinear align_corners",
        &y.to_f64_vec(),
        &[
            1., 1.5, 2., 2.5, 3., 2.5, 3., 3.5, 4., 4.5, 4., 4.5, 5., 5.5, 6.,
        ],
        1e-6,
        0.0,
    );
}
