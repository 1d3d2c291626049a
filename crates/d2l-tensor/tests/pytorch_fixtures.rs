//! Checks every op against PyTorch reference values.
//!
//! The fixtures in `tests/fixtures/ops.json` are produced by `scripts/gen_fixtures.py`
//! (read it for the exact semantics of each case). For every case this test builds the
//! inputs, runs the op through the engine, compares the output (shape, dtype, values)
//! and, for differentiable cases, backpropagates `grad_output` and compares each input's
//! gradient. All failures are collected and reported together, so one run shows every
//! disagreement with PyTorch.

use d2l_tensor::{DType, Result, Tensor};
use d2l_testkit::json;
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ops.json");

/// Float tolerance: |actual - expected| <= ATOL + RTOL * |expected|.
const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;

/// A case failure: what differed, in words.
type Failure = String;

// ---------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------

fn dtype_of(v: &Value) -> DType {
    match v["dtype"].as_str() {
        Some("f32") => DType::F32,
        Some("i64") => DType::I64,
        Some("u8") => DType::U8,
        other => panic!("fixture: unknown dtype {other:?}"),
    }
}

fn param<'a>(params: &'a Value, key: &str) -> std::result::Result<&'a Value, Failure> {
    params
        .get(key)
        .ok_or_else(|| format!("missing param {key:?} in {params}"))
}

fn p_f64(params: &Value, key: &str) -> std::result::Result<f64, Failure> {
    param(params, key)?
        .as_f64()
        .ok_or_else(|| format!("param {key:?} is not a number"))
}

fn p_bool(params: &Value, key: &str) -> std::result::Result<bool, Failure> {
    param(params, key)?
        .as_bool()
        .ok_or_else(|| format!("param {key:?} is not a bool"))
}

fn p_isize(params: &Value, key: &str) -> std::result::Result<isize, Failure> {
    param(params, key)?
        .as_i64()
        .map(|v| v as isize)
        .ok_or_else(|| format!("param {key:?} is not an int"))
}

fn p_usize(params: &Value, key: &str) -> std::result::Result<usize, Failure> {
    param(params, key)?
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| format!("param {key:?} is not a non-negative int"))
}

fn p_list(params: &Value, key: &str) -> std::result::Result<Vec<i64>, Failure> {
    param(params, key)?
        .as_array()
        .ok_or_else(|| format!("param {key:?} is not a list"))?
        .iter()
        .map(|x| {
            x.as_i64()
                .ok_or_else(|| format!("param {key:?} has a non-int entry"))
        })
        .collect()
}

fn p_usizes(params: &Value, key: &str) -> std::result::Result<Vec<usize>, Failure> {
    Ok(p_list(params, key)?
        .into_iter()
        .map(|v| v as usize)
        .collect())
}

fn p_isizes(params: &Value, key: &str) -> std::result::Result<Vec<isize>, Failure> {
    Ok(p_list(params, key)?
        .into_iter()
        .map(|v| v as isize)
        .collect())
}

/// `Some(dims)` for a list, `None` for JSON null (reduce over everything).
fn p_opt_dims(params: &Value, key: &str) -> std::result::Result<Option<Vec<isize>>, Failure> {
    if param(params, key)?.is_null() {
        Ok(None)
    } else {
        p_isizes(params, key).map(Some)
    }
}

/// Fails unless `params[key] == expected` (for options the engine hard-codes).
fn require_param(params: &Value, key: &str, expected: Value) -> std::result::Result<(), Failure> {
    let got = param(params, key)?;
    if *got == expected {
        Ok(())
    } else {
        Err(format!(
            "unsupported param {key} = {got} (engine only implements {expected})"
        ))
    }
}

// ---------------------------------------------------------------------------
// Tensor helpers
// ---------------------------------------------------------------------------

/// Builds one input tensor; f32 inputs become leaves requiring grad when `grad` is set.
fn build_input(v: &Value, grad: bool) -> Result<Tensor> {
    let shape = json::shape(v);
    let data = json::data(v);
    match dtype_of(v) {
        DType::F32 => {
            let t = Tensor::from_vec(data.iter().map(|&x| x as f32).collect::<Vec<f32>>(), &shape)?;
            t.requires_grad_(grad)
        }
        DType::I64 => {
            Tensor::from_vec(data.iter().map(|&x| x as i64).collect::<Vec<i64>>(), &shape)
        }
        DType::U8 => Tensor::from_vec(data.iter().map(|&x| x as u8).collect::<Vec<u8>>(), &shape),
        other => panic!("fixture: unexpected input dtype {other}"),
    }
}

/// Compares a tensor against `expected` ({shape, data}) and `dtype`: floats within the
/// tolerance, integers and masks exactly.
fn compare(what: &str, actual: &Tensor, expected: &Value, dtype: DType) -> Option<Failure> {
    let shape = json::shape(expected);
    if actual.shape() != shape.as_slice() {
        return Some(format!(
            "{what}: shape {:?}, expected {:?}",
            actual.shape(),
            shape
        ));
    }
    if actual.dtype() != dtype {
        return Some(format!(
            "{what}: dtype {}, expected {dtype}",
            actual.dtype()
        ));
    }
    let want = json::data(expected);
    let got = actual.to_f64_vec();
    if got.len() != want.len() {
        return Some(format!(
            "{what}: {} elements, expected {}",
            got.len(),
            want.len()
        ));
    }
    let exact = !dtype.is_float();
    let mut bad = Vec::new();
    let mut max_err = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let err = (g - w).abs();
        let ok = if exact {
            g == w
        } else {
            err <= ATOL + RTOL * w.abs()
        };
        if !ok || err.is_nan() {
            bad.push(i);
            max_err = if err.is_nan() {
                f64::NAN
            } else {
                max_err.max(err)
            };
        }
    }
    if bad.is_empty() {
        return None;
    }
    let first = bad[0];
    Some(format!(
        "{what}: {} of {} values differ, max abs error {max_err:.3e}; first at flat index {first}: got {}, expected {}",
        bad.len(),
        want.len(),
        got[first],
        want[first],
    ))
}

// ---------------------------------------------------------------------------
// The op mapping
// ---------------------------------------------------------------------------

/// Runs the case's op on `x` (the inputs, in fixture order).
fn run_op(op: &str, params: &Value, x: &[Tensor]) -> std::result::Result<Result<Tensor>, Failure> {
    let arity = |n: usize| -> std::result::Result<(), Failure> {
        if x.len() == n {
            Ok(())
        } else {
            Err(format!(
                "op {op:?} expects {n} inputs, fixture has {}",
                x.len()
            ))
        }
    };
    let refs: Vec<&Tensor> = x.iter().collect();
    let out = match op {
        // Broadcasting binary arithmetic.
        "add" | "sub" | "mul" | "div" | "pow" | "maximum" | "minimum" => {
            arity(2)?;
            let (a, b) = (&x[0], &x[1]);
            match op {
                "add" => a.add(b),
                "sub" => a.sub(b),
                "mul" => a.mul(b),
                "div" => a.div(b),
                "pow" => a.pow(b),
                "maximum" => a.maximum(b),
                _ => a.minimum(b),
            }
        }
        // Comparisons (u8 masks).
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            arity(2)?;
            let (a, b) = (&x[0], &x[1]);
            match op {
                "eq" => a.eq(b),
                "ne" => a.ne(b),
                "lt" => a.lt(b),
                "le" => a.le(b),
                "gt" => a.gt(b),
                _ => a.ge(b),
            }
        }
        // Unary ops with a scalar parameter.
        "add_scalar" => {
            arity(1)?;
            x[0].add_scalar(p_f64(params, "value")?)
        }
        "mul_scalar" => {
            arity(1)?;
            x[0].mul_scalar(p_f64(params, "value")?)
        }
        "pow_scalar" => {
            arity(1)?;
            x[0].pow_scalar(p_f64(params, "value")?)
        }
        "leaky_relu" => {
            arity(1)?;
            x[0].leaky_relu(p_f64(params, "negative_slope")?)
        }
        "clamp" => {
            arity(1)?;
            x[0].clamp(p_f64(params, "min")?, p_f64(params, "max")?)
        }
        // Parameterless unary ops (gelu / softplus only in PyTorch's default form).
        "neg" | "abs" | "exp" | "log" | "log1p" | "sqrt" | "rsqrt" | "sin" | "cos" | "tanh"
        | "sigmoid" | "relu" | "gelu" | "softplus" => {
            arity(1)?;
            let t = &x[0];
            match op {
                "neg" => t.neg(),
                "abs" => t.abs(),
                "exp" => t.exp(),
                "log" => t.log(),
                "log1p" => t.log1p(),
                "sqrt" => t.sqrt(),
                "rsqrt" => t.rsqrt(),
                "sin" => t.sin(),
                "cos" => t.cos(),
                "tanh" => t.tanh(),
                "sigmoid" => t.sigmoid(),
                "relu" => t.relu(),
                "gelu" => {
                    require_param(params, "approximate", "none".into())?;
                    t.gelu()
                }
                _ => {
                    require_param(params, "beta", 1.0.into())?;
                    require_param(params, "threshold", 20.0.into())?;
                    t.softplus()
                }
            }
        }
        // Reductions.
        "sum" | "mean" => {
            arity(1)?;
            let keepdim = p_bool(params, "keepdim")?;
            match (p_opt_dims(params, "dims")?, op) {
                (None, _) if keepdim => {
                    return Err("dims=null with keepdim=true is not mapped".into())
                }
                (None, "sum") => x[0].sum_all(),
                (None, _) => x[0].mean_all(),
                (Some(d), "sum") => x[0].sum(&d, keepdim),
                (Some(d), _) => x[0].mean(&d, keepdim),
            }
        }
        "max" | "min" => {
            arity(1)?;
            let (dim, keepdim) = (p_isize(params, "dim")?, p_bool(params, "keepdim")?);
            let r = if op == "max" {
                x[0].max_dim(dim, keepdim)
            } else {
                x[0].min_dim(dim, keepdim)
            };
            r.map(|(values, _)| values)
        }
        "argmax" | "argmin" => {
            arity(1)?;
            let (dim, keepdim) = (p_isize(params, "dim")?, p_bool(params, "keepdim")?);
            if op == "argmax" {
                x[0].argmax(dim, keepdim)
            } else {
                x[0].argmin(dim, keepdim)
            }
        }
        "var" | "std" => {
            arity(1)?;
            let dims = p_isizes(params, "dims")?;
            let (unbiased, keepdim) = (p_bool(params, "unbiased")?, p_bool(params, "keepdim")?);
            if op == "var" {
                x[0].var(&dims, unbiased, keepdim)
            } else {
                x[0].std(&dims, unbiased, keepdim)
            }
        }
        "logsumexp" => {
            arity(1)?;
            x[0].logsumexp(&p_isizes(params, "dims")?, p_bool(params, "keepdim")?)
        }
        "norm" => {
            arity(1)?;
            x[0].norm(p_f64(params, "p")?)
        }
        "softmax" => {
            arity(1)?;
            x[0].softmax(p_isize(params, "dim")?)
        }
        "log_softmax" => {
            arity(1)?;
            x[0].log_softmax(p_isize(params, "dim")?)
        }
        // Linear algebra.
        "matmul" => {
            arity(2)?;
            if p_bool(params, "transpose_lhs")? {
                x[0].t().and_then(|a| a.matmul(&x[1]))
            } else {
                x[0].matmul(&x[1])
            }
        }
        "kron" => {
            arity(2)?;
            x[0].kron(&x[1])
        }
        // Movement.
        "reshape" => {
            arity(1)?;
            x[0].reshape(p_usizes(params, "shape")?)
        }
        "permute" => {
            arity(1)?;
            x[0].permute(&p_usizes(params, "dims")?)
        }
        "transpose" => {
            arity(1)?;
            x[0].transpose(p_isize(params, "dim0")?, p_isize(params, "dim1")?)
        }
        "narrow" => {
            arity(1)?;
            x[0].narrow(
                p_isize(params, "dim")?,
                p_usize(params, "start")?,
                p_usize(params, "length")?,
            )
        }
        "expand" => {
            arity(1)?;
            x[0].broadcast_to(&p_usizes(params, "shape")?)
        }
        "cat" => Tensor::cat(&refs, p_isize(params, "dim")?),
        "stack" => Tensor::stack(&refs, p_isize(params, "dim")?),
        "pad" => {
            arity(1)?;
            x[0].pad(&p_usizes(params, "pad")?, p_f64(params, "value")?)
        }
        "repeat" => {
            arity(1)?;
            x[0].repeat(&p_usizes(params, "repeats")?)
        }
        // Indexing.
        "index_select" => {
            arity(2)?;
            x[0].index_select(p_isize(params, "dim")?, &x[1])
        }
        "gather" => {
            arity(2)?;
            x[0].gather(p_isize(params, "dim")?, &x[1])
        }
        "scatter_add" => {
            arity(3)?;
            x[0].scatter_add(p_isize(params, "dim")?, &x[1], &x[2])
        }
        "where" => {
            arity(3)?;
            Tensor::where_cond(&x[0], &x[1], &x[2])
        }
        "masked_fill" => {
            arity(2)?;
            x[0].masked_fill(&x[1], p_f64(params, "value")?)
        }
        _ => return Err(format!("op {op:?} has no mapping in pytorch_fixtures.rs")),
    };
    Ok(out)
}

/// Runs one case; returns every difference found (empty when it agrees with PyTorch).
fn run_case(case: &Value) -> Vec<Failure> {
    let op = case["op"].as_str().expect("fixture: op must be a string");
    let params = &case["params"];
    let differentiable = !case["grad_output"].is_null();
    let specs = case["inputs"]
        .as_array()
        .expect("fixture: inputs must be an array");

    let inputs: Vec<Tensor> = match specs
        .iter()
        .map(|v| build_input(v, differentiable && dtype_of(v) == DType::F32))
        .collect::<Result<_>>()
    {
        Ok(t) => t,
        Err(e) => return vec![format!("building inputs failed: {e}")],
    };

    let out = match run_op(op, params, &inputs) {
        Err(unmapped) => return vec![unmapped],
        Ok(Err(e)) => return vec![format!("forward returned an error: {e}")],
        Ok(Ok(t)) => t,
    };

    let mut failures = Vec::new();
    let expected_out = &case["output"];
    if let Some(f) = compare("output", &out, expected_out, dtype_of(expected_out)) {
        failures.push(f);
    }
    if !differentiable {
        return failures;
    }

    // Backward: gradient of sum(out * grad_output) with respect to every float input.
    let go = &case["grad_output"];
    let go_data: Vec<f32> = json::data(go).iter().map(|&v| v as f32).collect();
    let go_tensor = match Tensor::from_vec(go_data, &json::shape(go)) {
        Ok(t) => t,
        Err(e) => return vec![format!("building grad_output failed: {e}")],
    };
    if let Err(e) = out.backward_with(&go_tensor) {
        failures.push(format!("backward returned an error: {e}"));
        return failures;
    }
    let expected_grads = case["grads"]
        .as_array()
        .expect("fixture: grads must be an array");
    for (i, (input, want)) in inputs.iter().zip(expected_grads).enumerate() {
        if want.is_null() {
            continue;
        }
        let what = format!("grad[{i}]");
        match input.grad() {
            Some(g) => failures.extend(compare(&what, &g, want, DType::F32)),
            // No gradient reached the leaf: fine only if PyTorch's gradient is all zeros.
            None if json::data(want).iter().all(|&v| v == 0.0) => {}
            None => failures.push(format!(
                "{what}: no gradient reached the input (.grad() is None)"
            )),
        }
    }
    failures
}

/// Runs a case, turning a panic inside the engine into a failure.
fn run_case_catching(case: &Value) -> Vec<Failure> {
    catch_unwind(AssertUnwindSafe(|| run_case(case))).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "<non-string payload>".into());
        vec![format!("PANIC: {msg}")]
    })
}

#[test]
fn ops_match_pytorch() {
    let text = std::fs::read_to_string(FIXTURES).expect("read tests/fixtures/ops.json");
    let root: Value = serde_json::from_str(&text).expect("parse tests/fixtures/ops.json");
    let cases = root["cases"]
        .as_array()
        .expect("fixture: `cases` must be an array");
    assert!(!cases.is_empty(), "no cases in {FIXTURES}");

    let mut checked = 0usize;
    let mut report = Vec::new();
    for case in cases {
        let name = case["name"]
            .as_str()
            .expect("fixture: name must be a string");
        let failures = run_case_catching(case);
        checked += 1;
        for f in failures {
            report.push(format!(
                "  {name} ({}): {f}",
                case["op"].as_str().unwrap_or("?")
            ));
        }
    }

    assert_eq!(checked, cases.len(), "not every fixture case was checked");
    if !report.is_empty() {
        let failed_cases = {
            let mut names: Vec<&str> = report
                .iter()
                .map(|l| l.trim_start().split(' ').next().unwrap())
                .collect();
            names.dedup();
            names.len()
        };
        panic!(
            "{failed_cases} of {} PyTorch fixture cases failed ({} problems):\n{}",
            cases.len(),
            report.len(),
            report.join("\n")
        );
    }
    eprintln!("all {checked} PyTorch fixture cases match");
}
