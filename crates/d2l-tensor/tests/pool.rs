//! Pooling: the book's 6.5 examples, PyTorch fixtures (`tests/fixtures/pool.json`, made
//! by `scripts/gen_pool_fixtures.py`), gradient checks for every op and option, the
//! parallel path against the serial one, and errors on bad input.

use d2l_tensor::{gradcheck, DType, Error, Pool2dOptions, Result, Tensor};
use d2l_testkit::{arange, json, t};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pool.json");

/// Distinct values in a scrambled order (no ties in any window), f64.
fn distinct(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| ((i * 7919 + 13) % n) as f64 / n as f64 * 4.0 - 2.0 + 0.001 * (i as f64).sin())
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

// ---------------------------------------------------------------------------------------
// D2L 6.5
// ---------------------------------------------------------------------------------------

#[test]
fn book_pool2d_max_and_avg() {
    let x = arange(9, &[3, 3]).reshape([1, 3, 3]).unwrap();
    let o = Pool2dOptions::new(2).with_stride(1);
    let m = x.max_pool2d(&o).unwrap();
    assert_eq!(m.shape(), &[1, 2, 2]);
    assert_eq!(m.to_vec::<f32>(), vec![4.0, 5.0, 7.0, 8.0]);
    let a = x.avg_pool2d(&o).unwrap();
    assert_eq!(a.to_vec::<f32>(), vec![2.0, 3.0, 5.0, 6.0]);
}

#[test]
fn book_padding_and_stride() {
    let x = arange(16, &[1, 1, 4, 4]);
    let y = x.max_pool2d(&Pool2dOptions::new(3)).unwrap();
    assert_eq!(y.shape(), &[1, 1, 1, 1]);
    assert_eq!(y.to_vec::<f32>(), vec![10.0]);
    let y = x
        .max_pool2d(&Pool2dOptions::new(3).with_padding(1).with_stride(2))
        .unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.to_vec::<f32>(), vec![5.0, 7.0, 13.0, 15.0]);
    let y = x
        .max_pool2d(
            &Pool2dOptions::kernel_hw(2, 3)
                .with_padding_hw(0, 1)
                .with_stride_hw(2, 3),
        )
        .unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(y.to_vec::<f32>(), vec![5.0, 7.0, 13.0, 15.0]);
}

#[test]
fn book_multiple_channels() {
    let x = arange(16, &[1, 1, 4, 4]);
    let x2 = Tensor::cat(&[&x, &x.add_scalar(1.0).unwrap()], 1).unwrap();
    assert_eq!(x2.shape(), &[1, 2, 4, 4]);
    let y = x2
        .max_pool2d(&Pool2dOptions::new(3).with_padding(1).with_stride(2))
        .unwrap();
    assert_eq!(y.shape(), &[1, 2, 2, 2]);
    assert_eq!(
        y.to_vec::<f32>(),
        vec![5.0, 7.0, 13.0, 15.0, 6.0, 8.0, 14.0, 16.0]
    );
}

#[test]
fn options_defaults() {
    let o = Pool2dOptions::new(3);
    assert_eq!(o.kernel, (3, 3));
    assert_eq!(o.stride, (3, 3));
    assert_eq!(o.padding, (0, 0));
    assert_eq!(o.dilation, (1, 1));
    assert!(!o.ceil_mode);
    assert!(o.count_include_pad);
    let o = Pool2dOptions::kernel_hw(2, 3)
        .with_stride(1)
        .with_padding_hw(1, 0)
        .with_dilation(2)
        .with_ceil_mode(true)
        .with_count_include_pad(false);
    assert_eq!(o.kernel, (2, 3));
    assert_eq!(o.stride, (1, 1));
    assert_eq!(o.padding, (1, 0));
    assert_eq!(o.dilation, (2, 2));
    assert!(o.ceil_mode && !o.count_include_pad);
}

#[test]
fn indices_and_gradient_of_max() {
    let x = t(
        &[1.0, 3.0, 2.0, 0.0, 9.0, 4.0, 5.0, 6.0, 7.0],
        &[1, 1, 3, 3],
    )
    .requires_grad_(true)
    .unwrap();
    let (y, i) = x
        .max_pool2d_with_indices(&Pool2dOptions::new(2).with_stride(1))
        .unwrap();
    assert_eq!(i.dtype(), DType::I64);
    assert_eq!(i.to_vec::<i64>(), vec![4, 4, 4, 4]);
    assert_eq!(y.to_vec::<f32>(), vec![9.0; 4]);
    y.sum_all().unwrap().backward().unwrap();
    let g = x.grad().unwrap().to_vec::<f32>();
    assert_eq!(g, vec![0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn ties_go_to_the_first_maximum() {
    let x = Tensor::ones(&[1, 1, 4, 4]).requires_grad_(true).unwrap();
    let (y, i) = x.max_pool2d_with_indices(&Pool2dOptions::new(2)).unwrap();
    assert_eq!(i.to_vec::<i64>(), vec![0, 2, 8, 10]);
    y.sum_all().unwrap().backward().unwrap();
    let g = x.grad().unwrap().to_vec::<f32>();
    let want: Vec<f32> = (0..16)
        .map(|k| if [0, 2, 8, 10].contains(&k) { 1.0 } else { 0.0 })
        .collect();
    assert_eq!(g, want);
}

#[test]
fn nan_propagates_through_max() {
    let x = t(&[1.0, f32::NAN, 2.0, 0.0], &[1, 1, 2, 2]);
    let (y, i) = x.max_pool2d_with_indices(&Pool2dOptions::new(2)).unwrap();
    assert!(y.to_vec::<f32>()[0].is_nan());
    assert_eq!(i.to_vec::<i64>(), vec![1]);
    let y = x.max_pool2d(&Pool2dOptions::new(2).with_stride(1)).unwrap();
    assert!(y.to_vec::<f32>()[0].is_nan());
}

#[test]
fn global_average_pooling() {
    let x = arange(24, &[2, 3, 2, 2]);
    let y = x.adaptive_avg_pool2d((1, 1)).unwrap();
    assert_eq!(y.shape(), &[2, 3, 1, 1]);
    assert_eq!(y.to_vec::<f32>(), vec![1.5, 5.5, 9.5, 13.5, 17.5, 21.5]);
    let z = x.avg_pool2d(&Pool2dOptions::new(2)).unwrap();
    assert_eq!(z.to_vec::<f32>(), y.to_vec::<f32>());
}

#[test]
fn f64_in_f64_out() {
    let x = distinct(&[1, 2, 4, 4]);
    for y in [
        x.max_pool2d(&Pool2dOptions::new(2)).unwrap(),
        x.avg_pool2d(&Pool2dOptions::new(2)).unwrap(),
        x.adaptive_avg_pool2d((3, 3)).unwrap(),
        x.adaptive_max_pool2d((3, 3)).unwrap(),
    ] {
        assert_eq!(y.dtype(), DType::F64);
    }
}

#[test]
fn strided_input_is_read_correctly() {
    // A transposed (non-contiguous) view pools like its contiguous copy.
    let x = distinct(&[2, 3, 6, 5]).to_dtype(DType::F32).unwrap();
    let v = x.transpose(2, 3).unwrap();
    assert!(!v.is_contiguous());
    let c = v.contiguous().unwrap();
    let o = Pool2dOptions::new(3).with_stride(2).with_padding(1);
    assert_eq!(
        v.max_pool2d(&o).unwrap().to_vec::<f32>(),
        c.max_pool2d(&o).unwrap().to_vec::<f32>()
    );
    assert_eq!(
        v.avg_pool2d(&o).unwrap().to_vec::<f32>(),
        c.avg_pool2d(&o).unwrap().to_vec::<f32>()
    );
}

// ---------------------------------------------------------------------------------------
// gradcheck
// ---------------------------------------------------------------------------------------

fn check(f: impl Fn(&Tensor) -> Result<Tensor>, shape: &[usize]) {
    let x = distinct(shape);
    gradcheck(|xs| f(&xs[0]), &[x]).unwrap();
}

#[test]
fn gradcheck_max_pool2d() {
    let cases: Vec<(Pool2dOptions, &[usize])> = vec![
        (Pool2dOptions::new(2), &[2, 2, 6, 6]),
        (Pool2dOptions::new(2), &[1, 2, 7, 5]),
        (Pool2dOptions::new(2).with_ceil_mode(true), &[1, 2, 7, 5]),
        (
            Pool2dOptions::new(3).with_stride(2).with_padding(1),
            &[2, 2, 7, 8],
        ),
        (Pool2dOptions::new(2).with_stride(1), &[1, 2, 5, 5]),
        (
            Pool2dOptions::new(3)
                .with_stride(1)
                .with_padding(1)
                .with_dilation(2),
            &[1, 2, 7, 6],
        ),
        (
            Pool2dOptions::kernel_hw(2, 3)
                .with_stride_hw(2, 1)
                .with_padding_hw(1, 1)
                .with_ceil_mode(true),
            &[1, 2, 7, 8],
        ),
        (
            Pool2dOptions::new(3).with_stride(2).with_ceil_mode(true),
            &[1, 1, 8, 8],
        ),
        (Pool2dOptions::new(2), &[3, 4, 4]),
    ];
    for (o, shape) in cases {
        check(|x| x.max_pool2d(&o), shape);
        check(|x| Ok(x.max_pool2d_with_indices(&o)?.0), shape);
    }
}

#[test]
fn gradcheck_avg_pool2d() {
    let base = [
        Pool2dOptions::new(2),
        Pool2dOptions::new(2).with_ceil_mode(true),
        Pool2dOptions::new(3).with_stride(2).with_padding(1),
        Pool2dOptions::new(3)
            .with_stride(2)
            .with_padding(1)
            .with_ceil_mode(true),
        Pool2dOptions::new(3).with_stride(2).with_ceil_mode(true),
        Pool2dOptions::new(2).with_stride(1),
        Pool2dOptions::kernel_hw(2, 3)
            .with_stride_hw(1, 2)
            .with_padding_hw(1, 1)
            .with_ceil_mode(true),
    ];
    for o in base {
        for cip in [true, false] {
            let o = o.with_count_include_pad(cip);
            check(|x| x.avg_pool2d(&o), &[1, 2, 7, 8]);
        }
    }
    check(|x| x.avg_pool2d(&Pool2dOptions::new(2)), &[2, 3, 6, 4]);
    check(
        |x| x.avg_pool2d(&Pool2dOptions::kernel_hw(5, 4)),
        &[2, 2, 5, 4],
    );
    check(|x| x.avg_pool2d(&Pool2dOptions::new(2)), &[3, 4, 4]);
}

#[test]
fn gradcheck_adaptive() {
    for (out, shape) in [
        ((3, 2), &[2, 2, 7, 5][..]),
        ((1, 1), &[2, 3, 5, 5][..]),
        ((4, 4), &[1, 2, 3, 3][..]),
        ((5, 3), &[1, 1, 10, 9][..]),
        ((2, 3), &[3, 6, 7][..]),
    ] {
        check(|x| x.adaptive_avg_pool2d(out), shape);
        check(|x| x.adaptive_max_pool2d(out), shape);
    }
}

#[test]
fn gradient_accumulates_across_overlapping_windows() {
    // Overlapping windows that share their maximum send it the sum of their gradients.
    let x = t(
        &[0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0],
        &[1, 1, 3, 3],
    )
    .requires_grad_(true)
    .unwrap();
    let y = x.max_pool2d(&Pool2dOptions::new(2).with_stride(1)).unwrap();
    let g = t(&[1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
    y.backward_with(&g).unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>()[4], 10.0);
}

// ---------------------------------------------------------------------------------------
// parallel path
// ---------------------------------------------------------------------------------------

#[test]
fn parallel_matches_per_plane() {
    // Large enough to be split over threads; each plane alone runs serially.
    let x = distinct(&[4, 16, 24, 24]).to_dtype(DType::F32).unwrap();
    let ops: Vec<(&str, Box<dyn Fn(&Tensor) -> Tensor>)> = vec![
        (
            "max2",
            Box::new(|x| x.max_pool2d(&Pool2dOptions::new(2)).unwrap()),
        ),
        (
            "max3s2p1",
            Box::new(|x| {
                x.max_pool2d(&Pool2dOptions::new(3).with_stride(2).with_padding(1))
                    .unwrap()
            }),
        ),
        (
            "avg2",
            Box::new(|x| x.avg_pool2d(&Pool2dOptions::new(2)).unwrap()),
        ),
        (
            "avg3s2p1",
            Box::new(|x| {
                x.avg_pool2d(&Pool2dOptions::new(3).with_stride(2).with_padding(1))
                    .unwrap()
            }),
        ),
        ("gap", Box::new(|x| x.adaptive_avg_pool2d((1, 1)).unwrap())),
        ("amax", Box::new(|x| x.adaptive_max_pool2d((5, 7)).unwrap())),
    ];
    for (name, f) in &ops {
        let xr = x.detach().requires_grad_(true).unwrap();
        let y = f(&xr);
        let g = distinct(y.shape()).to_dtype(DType::F32).unwrap();
        y.backward_with(&g).unwrap();
        let (yv, gv) = (y.to_vec::<f32>(), xr.grad().unwrap().to_vec::<f32>());
        let (n, c) = (4, 16);
        let (po, pi) = (yv.len() / (n * c), 24 * 24);
        for p in 0..n * c {
            let xp = x
                .reshape([n * c, 1, 24, 24])
                .unwrap()
                .narrow(0, p, 1)
                .unwrap()
                .contiguous()
                .unwrap()
                .requires_grad_(true)
                .unwrap();
            let yp = f(&xp);
            let gp = g
                .reshape([n * c, po])
                .unwrap()
                .narrow(0, p, 1)
                .unwrap()
                .reshape(yp.shape())
                .unwrap();
            yp.backward_with(&gp).unwrap();
            assert_eq!(
                yp.to_vec::<f32>(),
                yv[p * po..(p + 1) * po],
                "{name} plane {p}"
            );
            assert_eq!(
                xp.grad().unwrap().to_vec::<f32>(),
                gv[p * pi..(p + 1) * pi],
                "{name} grad plane {p}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// bad input
// ---------------------------------------------------------------------------------------

fn err_msg(r: Result<Tensor>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got a tensor of shape {:?}", t.shape()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_input_is_an_error() {
    let x = Tensor::zeros(&[1, 1, 4, 4]);
    let m = err_msg(Tensor::zeros(&[4, 4]).max_pool2d(&Pool2dOptions::new(2)));
    assert!(m.contains("max_pool2d") && m.contains("[4, 4]"), "{m}");
    let m = err_msg(Tensor::zeros(&[1, 1, 1, 4, 4]).avg_pool2d(&Pool2dOptions::new(2)));
    assert!(
        m.contains("avg_pool2d") && m.contains("[1, 1, 1, 4, 4]"),
        "{m}"
    );
    let m = err_msg(x.max_pool2d(&Pool2dOptions::new(0)));
    assert!(m.contains("max_pool2d") && m.contains("kernel"), "{m}");
    let m = err_msg(x.avg_pool2d(&Pool2dOptions::new(2).with_stride(0)));
    assert!(m.contains("avg_pool2d") && m.contains("stride"), "{m}");
    let m = err_msg(x.max_pool2d(&Pool2dOptions::new(2).with_dilation(0)));
    assert!(m.contains("dilation"), "{m}");
    let m = err_msg(x.max_pool2d(&Pool2dOptions::new(5)));
    assert!(
        m.contains("max_pool2d")
            && m.contains("larger than the padded input")
            && m.contains("[1, 1, 4, 4]"),
        "{m}"
    );
    let m = err_msg(x.max_pool2d(&Pool2dOptions::new(3).with_dilation(2)));
    assert!(m.contains("larger than the padded input"), "{m}");
    let m = err_msg(x.max_pool2d(&Pool2dOptions::new(3).with_padding(2)));
    assert!(m.contains("padding") && m.contains("half"), "{m}");
    let m = err_msg(x.avg_pool2d(&Pool2dOptions::new(2).with_dilation(2)));
    assert!(m.contains("avg_pool2d") && m.contains("dilation"), "{m}");
    let m = err_msg(x.adaptive_avg_pool2d((0, 2)));
    assert!(
        m.contains("adaptive_avg_pool2d") && m.contains("(0, 2)"),
        "{m}"
    );
    let m = err_msg(Tensor::zeros(&[2, 0, 3]).adaptive_max_pool2d((1, 1)));
    assert!(m.contains("adaptive_max_pool2d"), "{m}");
    let m = err_msg(Tensor::zeros(&[1, 0, 4, 4]).max_pool2d(&Pool2dOptions::new(2)));
    assert!(m.contains("max_pool2d"), "{m}");
    let ints = Tensor::from_vec(vec![1i64; 16], &[1, 1, 4, 4]).unwrap();
    assert!(matches!(
        ints.max_pool2d(&Pool2dOptions::new(2)),
        Err(Error::DTypeMismatch {
            op: "max_pool2d",
            ..
        })
    ));
    let r = x.max_pool2d_with_indices(&Pool2dOptions::new(9));
    assert!(r.is_err());
}

#[test]
fn output_sizes_follow_pytorch() {
    let shape = |h: usize, w: usize, o: Pool2dOptions| -> Vec<usize> {
        Tensor::zeros(&[1, 1, h, w]).max_pool2d(&o).unwrap().shape()[2..].to_vec()
    };
    assert_eq!(shape(5, 5, Pool2dOptions::new(2)), vec![2, 2]);
    assert_eq!(
        shape(5, 5, Pool2dOptions::new(2).with_ceil_mode(true)),
        vec![3, 3]
    );
    // The last window would start in the right padding: dropped.
    assert_eq!(
        shape(
            4,
            4,
            Pool2dOptions::new(2).with_padding(1).with_ceil_mode(true)
        ),
        vec![3, 3]
    );
    assert_eq!(
        shape(
            6,
            6,
            Pool2dOptions::new(3).with_stride(2).with_ceil_mode(true)
        ),
        vec![3, 3]
    );
    assert_eq!(
        shape(48, 48, Pool2dOptions::new(3).with_stride(2).with_padding(1)),
        vec![24, 24]
    );
    // No batch dim: [C, H, W] in, [C, OH, OW] out.
    let y = Tensor::zeros(&[3, 6, 6])
        .avg_pool2d(&Pool2dOptions::new(2))
        .unwrap();
    assert_eq!(y.shape(), &[3, 3, 3]);
    // An empty batch gives an empty output.
    let y = Tensor::zeros(&[0, 3, 6, 6])
        .max_pool2d(&Pool2dOptions::new(2))
        .unwrap();
    assert_eq!(y.shape(), &[0, 3, 3, 3]);
}

// ---------------------------------------------------------------------------------------
// PyTorch fixtures
// ---------------------------------------------------------------------------------------

fn close(name: &str, what: &str, got: &[f64], want: &[f64], tol: f64) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!(
            "{name}: {what} has {} elements, expected {}",
            got.len(),
            want.len()
        ));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if (g - w).abs() > tol * (1.0 + w.abs()) {
            return Some(format!("{name}: {what}[{i}] = {g}, PyTorch {w}"));
        }
    }
    None
}

#[test]
fn matches_pytorch_fixtures() {
    let root = json::load(FIXTURES, "scripts/gen_pool_fixtures.py");
    let cases = root["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let op = case["op"].as_str().unwrap();
        let p = &case["params"];
        for dtype in [DType::F32, DType::F64] {
            let tag = format!("{name} ({dtype})");
            let x = Tensor::from_vec(json::data(&case["input"]), &json::shape(&case["input"]))
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
                .requires_grad_(true)
                .unwrap();
            let opts = || {
                let (k, s, pd, d) = (
                    json::pair(&p["kernel"]),
                    json::pair(&p["stride"]),
                    json::pair(&p["padding"]),
                    json::pair(&p["dilation"]),
                );
                let mut o = Pool2dOptions::kernel_hw(k.0, k.1)
                    .with_stride_hw(s.0, s.1)
                    .with_padding_hw(pd.0, pd.1)
                    .with_dilation_hw(d.0, d.1)
                    .with_ceil_mode(p["ceil_mode"].as_bool().unwrap())
                    .with_count_include_pad(p["count_include_pad"].as_bool().unwrap());
                o.kernel = k;
                o
            };
            let r: Result<(Tensor, Option<Tensor>)> = match op {
                "max" => x
                    .max_pool2d_with_indices(&opts())
                    .map(|(a, b)| (a, Some(b))),
                "avg" => x.avg_pool2d(&opts()).map(|a| (a, None)),
                "adaptive_avg" => x
                    .adaptive_avg_pool2d(json::pair(&p["output_size"]))
                    .map(|a| (a, None)),
                "adaptive_max" => x
                    .adaptive_max_pool2d_with_indices(json::pair(&p["output_size"]))
                    .map(|(a, b)| (a, Some(b))),
                _ => panic!("unknown op {op}"),
            };
            let (y, idx) = match r {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{tag}: {e}"));
                    continue;
                }
            };
            if y.shape() != json::shape(&case["output"]).as_slice() {
                failures.push(format!(
                    "{tag}: output shape {:?}, PyTorch {:?}",
                    y.shape(),
                    json::shape(&case["output"])
                ));
                continue;
            }
            assert_eq!(y.dtype(), dtype);
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
            failures.extend(close(
                &tag,
                "output",
                &y.to_f64_vec(),
                &json::data(&case["output"]),
                tol,
            ));
            if let Some(i) = idx {
                let got: Vec<f64> = i.to_vec::<i64>().iter().map(|&v| v as f64).collect();
                failures.extend(close(
                    &tag,
                    "indices",
                    &got,
                    &json::data(&case["indices"]),
                    0.0,
                ));
            }
            // Also check that the plain (index-free) forward agrees.
            let plain = match op {
                "max" => x.max_pool2d(&opts()).unwrap(),
                "adaptive_max" => x
                    .adaptive_max_pool2d(json::pair(&p["output_size"]))
                    .unwrap(),
                _ => y.clone(),
            };
            failures.extend(close(
                &tag,
                "output (no indices)",
                &plain.to_f64_vec(),
                &y.to_f64_vec(),
                0.0,
            ));
            let g = Tensor::from_vec(
                json::data(&case["grad_output"]),
                &json::shape(&case["grad_output"]),
            )
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
            y.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
            let gi = x.grad().unwrap();
            assert_eq!(gi.shape(), x.shape());
            failures.extend(close(
                &tag,
                "grad_input",
                &gi.to_f64_vec(),
                &json::data(&case["grad_input"]),
                tol,
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
