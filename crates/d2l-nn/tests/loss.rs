//! Losses against PyTorch fixtures (values and input gradients, from
//! `scripts/gen_loss_fixtures.py`), gradient checks, stability at large logits, and errors.

use d2l_nn::loss::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, cross_entropy_with,
    huber_loss, l1_loss, mse_loss_with, nll_loss, smooth_l1_loss, BCEWithLogitsLoss,
    CrossEntropyLoss, CrossEntropyOptions, HuberLoss, L1Loss, MSELoss, Reduction, SmoothL1Loss,
};
use d2l_tensor::{gradcheck, DType, Result, Tensor};
use d2l_testkit::json::shape;
use serde_json::Value;
use std::collections::HashMap;

const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => match s.as_str() {
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            "nan" => f64::NAN,
            other => panic!("bad number {other:?}"),
        },
        other => panic!("bad number {other:?}"),
    }
}

fn data(v: &Value) -> Vec<f64> {
    v["data"].as_array().unwrap().iter().map(num).collect()
}

fn tensor(v: &Value) -> Tensor {
    let s = shape(v);
    match v["dtype"].as_str().unwrap_or("f32") {
        "i64" => Tensor::from_vec(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect(),
            &s,
        )
        .unwrap(),
        _ => Tensor::from_vec(data(v).into_iter().map(|x| x as f32).collect(), &s).unwrap(),
    }
}

fn reduction(p: &Value) -> Reduction {
    match p["reduction"].as_str().unwrap() {
        "none" => Reduction::None,
        "mean" => Reduction::Mean,
        "sum" => Reduction::Sum,
        r => panic!("unknown reduction {r}"),
    }
}

/// Computes one fixture case's loss from its (already built) inputs.
fn compute(case: &Value, t: &HashMap<String, Tensor>) -> Result<Tensor> {
    let p = &case["params"];
    let r = reduction(p);
    let (x, y) = (&t["input"], &t["target"]);
    let w = t.get("weight");
    match case["loss"].as_str().unwrap() {
        "mse" => mse_loss_with(x, y, r),
        "l1" => l1_loss(x, y, r),
        "smooth_l1" => smooth_l1_loss(x, y, p["beta"].as_f64().unwrap(), r),
        "huber" => huber_loss(x, y, p["delta"].as_f64().unwrap(), r),
        "cross_entropy" => cross_entropy_with(
            x,
            y,
            &CrossEntropyOptions {
                weight: w.cloned(),
                ignore_index: p["ignore_index"].as_i64(),
                label_smoothing: p["label_smoothing"].as_f64().unwrap(),
                reduction: r,
            },
        ),
        "nll" => nll_loss(x, y, w, p["ignore_index"].as_i64(), r),
        "bce" => binary_cross_entropy(x, y, w, r),
        "bce_with_logits" => binary_cross_entropy_with_logits(x, y, t.get("pos_weight"), r),
        l => panic!("unknown loss {l}"),
    }
}

fn close(a: f64, e: f64) -> bool {
    if !e.is_finite() {
        return a == e || (a.is_nan() && e.is_nan());
    }
    (a - e).abs() <= ATOL + RTOL * e.abs()
}

fn compare(
    failures: &mut Vec<String>,
    checked: &mut usize,
    what: &str,
    got: &Tensor,
    want: &Value,
) {
    *checked += got.numel();
    if got.shape() != shape(want).as_slice() {
        failures.push(format!(
            "{what}: shape {:?}, expected {:?}",
            got.shape(),
            shape(want)
        ));
        return;
    }
    for (i, (a, e)) in got.to_f64_vec().into_iter().zip(data(want)).enumerate() {
        if !close(a, e) {
            failures.push(format!("{what}[{i}]: got {a:.9}, expected {e:.9}"));
        }
    }
}

#[test]
fn losses_match_pytorch_values_and_gradients() {
    let doc: Value = serde_json::from_str(include_str!("fixtures/loss.json")).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() > 100, "fixture file looks truncated");
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let grads = case["grads"].as_object().unwrap();
        let mut t = HashMap::new();
        for (k, v) in case["inputs"].as_object().unwrap() {
            let mut x = tensor(v);
            if grads.contains_key(k) {
                x = x.requires_grad_(true).unwrap();
            }
            t.insert(k.clone(), x);
        }
        let out = match compute(case, &t) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{name}: error {e}"));
                continue;
            }
        };
        compare(
            &mut failures,
            &mut checked,
            &format!("{name} value"),
            &out,
            &case["output"],
        );
        let g = tensor(&case["grad_output"]);
        if let Err(e) = out.backward_with(&g) {
            failures.push(format!("{name}: backward failed: {e}"));
            continue;
        }
        for (k, want) in grads {
            match t[k].grad() {
                Some(got) => compare(
                    &mut failures,
                    &mut checked,
                    &format!("{name} grad[{k}]"),
                    &got,
                    want,
                ),
                None => failures.push(format!("{name}: no gradient for {k}")),
            }
        }
    }
    assert!(checked > 2000, "only {checked} numbers compared");
    assert!(
        failures.is_empty(),
        "{} mismatches against PyTorch:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut g = d2l_tensor::Generator::new(seed);
    Tensor::randn_with(&mut g, shape)
}

fn f64s(v: &[f64], s: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), s).unwrap()
}

#[test]
fn gradcheck_regression_losses() -> Result<()> {
    let x = randn(&[3, 4], 1).mul_scalar(2.0)?;
    let y = randn(&[3, 4], 2);
    gradcheck(
        |t| mse_loss_with(&t[0], &t[1], Reduction::Mean),
        &[x.clone(), y.clone()],
    )?;
    gradcheck(
        |t| l1_loss(&t[0], &t[1], Reduction::Sum),
        &[x.clone(), y.clone()],
    )?;
    gradcheck(
        |t| smooth_l1_loss(&t[0], &t[1], 0.7, Reduction::None),
        &[x.clone(), y.clone()],
    )?;
    gradcheck(|t| huber_loss(&t[0], &t[1], 1.5, Reduction::Mean), &[x, y])
}

#[test]
fn gradcheck_cross_entropy() -> Result<()> {
    let logits = randn(&[5, 4], 3).mul_scalar(2.0)?;
    let target = Tensor::from_vec(vec![0i64, 3, -100, 1, 2], &[5])?;
    let w = f64s(&[0.5, 1.5, 1.0, 2.0], &[4]);
    for ls in [0.0, 0.1] {
        for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            let opts = CrossEntropyOptions {
                weight: Some(w.clone()),
                ignore_index: Some(-100),
                label_smoothing: ls,
                reduction,
            };
            gradcheck(
                |t| cross_entropy_with(&t[0], &t[1], &opts),
                &[logits.clone(), target.clone()],
            )?;
        }
    }
    // [N, C, d] input, and probability targets (gradient for both arguments).
    let lg3 = randn(&[2, 4, 3], 4);
    let t3 = Tensor::from_vec(vec![0i64, 3, 1, 2, 2, 0], &[2, 3])?;
    gradcheck(|t| cross_entropy(&t[0], &t[1]), &[lg3, t3])?;
    let probs = randn(&[5, 4], 5).softmax(1)?;
    let opts = CrossEntropyOptions {
        weight: Some(w.clone()),
        label_smoothing: 0.2,
        ..Default::default()
    };
    gradcheck(
        |t| cross_entropy_with(&t[0], &t[1], &opts),
        &[logits, probs],
    )
}

#[test]
fn gradcheck_nll_and_binary_losses() -> Result<()> {
    let logp = randn(&[5, 4], 6).log_softmax(1)?;
    let target = Tensor::from_vec(vec![0i64, 3, 2, 1, 2], &[5])?;
    let w = f64s(&[0.5, 1.5, 1.0, 2.0], &[4]);
    gradcheck(
        |t| nll_loss(&t[0], &t[1], Some(&w), Some(2), Reduction::Mean),
        &[logp, target],
    )?;
    let p = randn(&[3, 4], 7).sigmoid()?;
    let y = Tensor::rand_with(&mut d2l_tensor::Generator::new(8), &[3, 4]);
    gradcheck(
        |t| binary_cross_entropy(&t[0], &t[1], Some(&w), Reduction::Mean),
        &[p, y.clone()],
    )?;
    let z = randn(&[3, 4], 9).mul_scalar(3.0)?;
    let pw = f64s(&[0.3, 1.0, 2.0, 4.0], &[4]);
    gradcheck(
        |t| binary_cross_entropy_with_logits(&t[0], &t[1], Some(&pw), Reduction::Sum),
        &[z, y],
    )
}

#[test]
fn cross_entropy_is_finite_at_huge_logits() -> Result<()> {
    let logits = Tensor::from_vec(
        vec![
            1000.0f32, -1000.0, 0.0, -1000.0, 1000.0, 999.0, -1000.0, -1000.0, -1000.0,
        ],
        &[3, 3],
    )?;
    let target = Tensor::from_vec(vec![1i64, 0, 2], &[3])?;
    for ls in [0.0, 0.1] {
        let x = logits.clone().requires_grad_(true)?;
        let opts = CrossEntropyOptions {
            label_smoothing: ls,
            weight: Some(Tensor::from_vec(vec![1.0f32, 2.0, 0.5], &[3])?),
            ..Default::default()
        };
        let l = cross_entropy_with(&x, &target, &opts)?;
        assert!(l.item()?.is_finite(), "loss {l} with label_smoothing {ls}");
        l.backward()?;
        let g = x.grad().unwrap().to_vec::<f32>();
        assert!(g.iter().all(|v| v.is_finite()), "gradient {g:?}");
    }
    // The all-equal row gives exactly log 3 for its sample.
    let per = cross_entropy_with(
        &logits,
        &target,
        &CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        },
    )?
    .to_vec::<f32>();
    assert!((per[2] - 3f32.ln()).abs() < 1e-6, "{per:?}");
    assert!((per[0] - 2000.0).abs() < 1e-2, "{per:?}");
    let z = Tensor::from_vec(vec![1000.0f32, -1000.0], &[2])?;
    let y = Tensor::from_vec(vec![0.0f32, 1.0], &[2])?;
    let l = binary_cross_entropy_with_logits(&z, &y, None, Reduction::None)?.to_vec::<f32>();
    assert_eq!(l, vec![1000.0, 1000.0]);
    Ok(())
}

#[test]
fn d2l_cross_entropy_example() -> Result<()> {
    // D2L 4.2.3: y_hat[[0, 1], y] with y = [0, 2] picks 0.1 and 0.5.
    let y_hat = Tensor::from_vec(vec![0.1f32, 0.3, 0.6, 0.3, 0.2, 0.5], &[2, 3])?;
    let y = Tensor::from_vec(vec![0i64, 2], &[2])?;
    let l = nll_loss(&y_hat.log()?, &y, None, None, Reduction::Mean)?.item()?;
    let want = (-(0.1f32).ln() - (0.5f32).ln()) / 2.0;
    assert!((l - want).abs() < 1e-6);
    // From logits: log(y_hat) are logits whose softmax is y_hat again.
    let l2 = cross_entropy(&y_hat.log()?, &y)?.item()?;
    assert!((l2 - want).abs() < 1e-6);
    Ok(())
}

#[test]
fn ignored_samples_and_weighted_mean() -> Result<()> {
    let logits = randn(&[4, 3], 11);
    let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3])?;
    let target = Tensor::from_vec(vec![0i64, 2, -100, 1], &[4])?;
    let none = cross_entropy_with(
        &logits,
        &target,
        &CrossEntropyOptions {
            weight: Some(w.clone()),
            reduction: Reduction::None,
            ..Default::default()
        },
    )?
    .to_vec::<f32>();
    assert_eq!(none[2], 0.0);
    let mean = cross_entropy_with(
        &logits,
        &target,
        &CrossEntropyOptions {
            weight: Some(w),
            ..Default::default()
        },
    )?
    .item()?;
    // Mean divides by the summed weights of the kept samples: 1 + 3 + 2.
    let want = (none[0] + none[1] + none[3]) / 6.0;
    assert!((mean - want).abs() < 1e-6, "{mean} vs {want}");
    // A target equal to a custom ignore_index is skipped, not an error.
    let t = Tensor::from_vec(vec![0i64, 7, 1, 1], &[4])?;
    let opts = CrossEntropyOptions {
        ignore_index: Some(7),
        ..Default::default()
    };
    assert!(cross_entropy_with(&logits, &t, &opts)?.item()?.is_finite());
    Ok(())
}

fn err_text(r: Result<Tensor>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got {t}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn clear_errors() -> Result<()> {
    let a = Tensor::zeros(&[2, 3]);
    let b = Tensor::zeros(&[3, 2]);
    for (name, msg) in [
        ("mse_loss", err_text(mse_loss_with(&a, &b, Reduction::Mean))),
        ("l1_loss", err_text(l1_loss(&a, &b, Reduction::Mean))),
        (
            "smooth_l1_loss",
            err_text(smooth_l1_loss(&a, &b, 1.0, Reduction::Mean)),
        ),
        (
            "huber_loss",
            err_text(huber_loss(&a, &b, 1.0, Reduction::Mean)),
        ),
        (
            "binary_cross_entropy",
            err_text(binary_cross_entropy(&a, &b, None, Reduction::Mean)),
        ),
        (
            "binary_cross_entropy_with_logits",
            err_text(binary_cross_entropy_with_logits(
                &a,
                &b,
                None,
                Reduction::Mean,
            )),
        ),
    ] {
        assert!(
            msg.starts_with(name) && msg.contains("[2, 3]") && msg.contains("[3, 2]"),
            "{msg}"
        );
    }
    // Class index out of range: an error (not a panic), on both CE paths and in NLL.
    let logits = Tensor::zeros(&[2, 3]);
    let bad = Tensor::from_vec(vec![0i64, 3], &[2])?;
    let msg = err_text(cross_entropy(&logits, &bad));
    assert!(
        msg.contains("cross_entropy") && msg.contains("out of range"),
        "{msg}"
    );
    let smooth = CrossEntropyOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let msg = err_text(cross_entropy_with(&logits, &bad, &smooth));
    assert!(msg.contains("out of range"), "{msg}");
    let neg = Tensor::from_vec(vec![-1i64, 0], &[2])?;
    let msg = err_text(nll_loss(&logits, &neg, None, Some(-100), Reduction::Mean));
    assert!(msg.contains("nll_loss") && msg.contains("-1"), "{msg}");
    // -100 with no ignore_index is out of range too.
    let ign = Tensor::from_vec(vec![-100i64, 0], &[2])?;
    let none = CrossEntropyOptions {
        ignore_index: None,
        ..Default::default()
    };
    assert!(cross_entropy_with(&logits, &ign, &none).is_err());
    assert!(cross_entropy(&logits, &ign).is_ok());
    // Target shape, weight shape, probabilities out of [0, 1].
    let msg = err_text(cross_entropy(
        &logits,
        &Tensor::from_vec(vec![0i64, 1, 2], &[3])?,
    ));
    assert!(
        msg.contains("cross_entropy") && msg.contains("[2, 3]") && msg.contains("[3]"),
        "{msg}"
    );
    let w = CrossEntropyOptions {
        weight: Some(Tensor::ones(&[4])),
        ..Default::default()
    };
    assert!(err_text(cross_entropy_with(
        &logits,
        &Tensor::from_vec(vec![0i64, 1], &[2])?,
        &w
    ))
    .contains("weight"));
    let p = Tensor::full(&[2], 1.5);
    assert!(err_text(binary_cross_entropy(
        &p,
        &Tensor::zeros(&[2]),
        None,
        Reduction::Mean
    ))
    .contains("between 0 and 1"));
    let float_target = Tensor::zeros(&[2]);
    assert!(cross_entropy(&logits, &float_target).is_err());
    Ok(())
}

#[test]
fn struct_wrappers_match_functions() -> Result<()> {
    let x = randn(&[3, 4], 12);
    let y = randn(&[3, 4], 13);
    let t = Tensor::from_vec(vec![0i64, 3, 1], &[3])?;
    let eq = |a: Tensor, b: Tensor| assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>());
    eq(
        MSELoss::new().forward(&x, &y)?,
        mse_loss_with(&x, &y, Reduction::Mean)?,
    );
    eq(
        L1Loss::new().forward(&x, &y)?,
        l1_loss(&x, &y, Reduction::Mean)?,
    );
    eq(
        SmoothL1Loss::default().forward(&x, &y)?,
        smooth_l1_loss(&x, &y, 1.0, Reduction::Mean)?,
    );
    eq(
        HuberLoss::default().forward(&x, &y)?,
        huber_loss(&x, &y, 1.0, Reduction::Mean)?,
    );
    eq(
        CrossEntropyLoss::new().forward(&x, &t)?,
        cross_entropy(&x, &t)?,
    );
    let yb = y.sigmoid()?;
    eq(
        BCEWithLogitsLoss::default().forward(&x, &yb)?,
        binary_cross_entropy_with_logits(&x, &yb, None, Reduction::Mean)?,
    );
    // CE of logits equals BCE-free NLL of their log-softmax, in f64 too.
    let x64 = x.to_dtype(DType::F64)?;
    let a = cross_entropy(&x64, &t)?.item_f64()?;
    let b = nll_loss(&x64.log_softmax(1)?, &t, None, None, Reduction::Mean)?.item_f64()?;
    assert!((a - b).abs() < 1e-12);
    Ok(())
}
