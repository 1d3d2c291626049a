//! conv2d and conv_transpose2d: gradchecks (f64) over strides, per-side padding,
//! dilation, groups (1, general, depthwise), non-square shapes, with and without bias;
//! the adjointness of the two ops; PyTorch fixtures (`scripts/gen_conv_fixtures.py`);
//! and the errors on bad input.

use d2l_tensor::{
    conv2d_backward, gradcheck, manual_seed, Conv2dOptions, ConvTranspose2dOptions, DType, Tensor,
};
use d2l_testkit::json;
use serde_json::Value;

fn rand64(shape: &[usize]) -> Tensor {
    Tensor::randn(shape).to_dtype(DType::F64).unwrap()
}

fn check_conv(x: &[usize], w: &[usize], bias: bool, o: Conv2dOptions) {
    manual_seed(7);
    let mut inputs = vec![rand64(x), rand64(w)];
    if bias {
        inputs.push(rand64(&[w[0]]));
    }
    gradcheck(|t: &[Tensor]| t[0].conv2d(&t[1], t.get(2), &o), &inputs)
        .unwrap_or_else(|e| panic!("conv2d x {x:?} w {w:?} bias {bias} {o:?}: {e}"));
}

fn check_convt(x: &[usize], w: &[usize], bias: bool, o: ConvTranspose2dOptions) {
    manual_seed(11);
    let mut inputs = vec![rand64(x), rand64(w)];
    if bias {
        inputs.push(rand64(&[w[1] * o.groups]));
    }
    gradcheck(
        |t: &[Tensor]| t[0].conv_transpose2d(&t[1], t.get(2), &o),
        &inputs,
    )
    .unwrap_or_else(|e| panic!("conv_transpose2d x {x:?} w {w:?} bias {bias} {o:?}: {e}"));
}

#[test]
fn gradcheck_conv2d_basic_and_bias() {
    check_conv(&[2, 3, 5, 4], &[4, 3, 3, 2], true, Conv2dOptions::default());
    check_conv(
        &[1, 2, 4, 4],
        &[3, 2, 2, 2],
        false,
        Conv2dOptions::default(),
    );
}

#[test]
fn gradcheck_conv2d_stride_padding() {
    check_conv(
        &[2, 2, 7, 6],
        &[3, 2, 3, 3],
        true,
        Conv2dOptions::stride(2).with_padding(1),
    );
    check_conv(
        &[1, 2, 6, 7],
        &[2, 2, 3, 2],
        false,
        Conv2dOptions::default()
            .with_stride(3, 2)
            .with_padding_hw(2, 1),
    );
    // asymmetric per-side padding
    check_conv(
        &[2, 2, 5, 5],
        &[3, 2, 2, 3],
        true,
        Conv2dOptions::default().with_padding_sides(0, 2, 1, 0),
    );
}

#[test]
fn gradcheck_conv2d_dilation() {
    check_conv(
        &[1, 2, 8, 7],
        &[2, 2, 3, 2],
        true,
        Conv2dOptions::default().with_dilation(2, 3).with_padding(1),
    );
}

#[test]
fn gradcheck_conv2d_groups() {
    // general groups
    check_conv(
        &[2, 4, 5, 5],
        &[6, 2, 3, 3],
        true,
        Conv2dOptions::default().with_groups(2).with_padding(1),
    );
    // depthwise (direct kernel) with stride
    check_conv(
        &[2, 3, 6, 5],
        &[3, 1, 3, 3],
        true,
        Conv2dOptions::stride(2)
            .with_groups(3)
            .with_padding_sides(1, 0, 1, 2),
    );
    // depthwise with a channel multiplier (GEMM path)
    check_conv(
        &[1, 2, 5, 4],
        &[4, 1, 2, 2],
        false,
        Conv2dOptions::default().with_groups(2),
    );
}

#[test]
fn gradcheck_conv2d_pointwise_and_small_maps() {
    check_conv(&[2, 3, 4, 5], &[4, 3, 1, 1], true, Conv2dOptions::default());
    check_conv(
        &[2, 3, 5, 5],
        &[2, 3, 1, 1],
        false,
        Conv2dOptions::stride(2),
    );
    // 1×1 output maps: many samples unfolded side by side into one GEMM
    check_conv(&[5, 2, 3, 3], &[3, 2, 3, 3], true, Conv2dOptions::default());
}

#[test]
fn gradcheck_conv_transpose2d() {
    check_convt(
        &[2, 3, 3, 4],
        &[3, 2, 3, 3],
        true,
        ConvTranspose2dOptions::default(),
    );
    check_convt(
        &[1, 2, 3, 3],
        &[2, 3, 3, 2],
        true,
        ConvTranspose2dOptions::default()
            .with_stride(2, 3)
            .with_padding_hw(1, 0)
            .with_output_padding(1, 2),
    );
    check_convt(
        &[2, 2, 3, 3],
        &[2, 2, 2, 3],
        false,
        ConvTranspose2dOptions::default()
            .with_dilation(2, 2)
            .with_padding(1),
    );
    check_convt(
        &[1, 4, 3, 2],
        &[4, 2, 3, 3],
        true,
        ConvTranspose2dOptions::stride(2)
            .with_groups(2)
            .with_padding(1)
            .with_output_padding(1, 0),
    );
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| x * y)
        .sum()
}

#[test]
fn conv_transpose2d_is_the_adjoint_of_conv2d() {
    manual_seed(3);
    let cases: Vec<(Vec<usize>, Vec<usize>, Conv2dOptions)> = vec![
        (
            vec![2, 3, 7, 6],
            vec![4, 3, 3, 2],
            Conv2dOptions::stride(2).with_padding(1),
        ),
        (
            vec![1, 4, 9, 8],
            vec![6, 2, 3, 3],
            Conv2dOptions::default().with_groups(2).with_dilation(2, 1),
        ),
        (
            vec![3, 2, 6, 6],
            vec![2, 1, 3, 3],
            Conv2dOptions::stride(3).with_groups(2).with_padding(1),
        ),
        (vec![2, 3, 4, 4], vec![5, 3, 1, 1], Conv2dOptions::default()),
        (
            vec![4, 8, 3, 3],
            vec![8, 8, 3, 3],
            Conv2dOptions::default().with_padding(1),
        ),
    ];
    for (xs, ws, o) in cases {
        let x = rand64(&xs);
        let w = rand64(&ws);
        let y = x.conv2d(&w, None, &o).unwrap();
        let (s, p, d) = (o.stride, o.padding, o.dilation);
        // the output padding that recovers x's size (conv2d floors)
        let full_h = (y.shape()[2] - 1) * s.0 + d.0 * (ws[2] - 1) + 1;
        let full_w = (y.shape()[3] - 1) * s.1 + d.1 * (ws[3] - 1) + 1;
        let t = ConvTranspose2dOptions {
            stride: s,
            padding: (p.0, p.2),
            output_padding: (xs[2] + 2 * p.0 - full_h, xs[3] + 2 * p.2 - full_w),
            dilation: d,
            groups: o.groups,
        };
        let v = rand64(y.shape());
        let xt = v.conv_transpose2d(&w, None, &t).unwrap();
        assert_eq!(xt.shape(), x.shape());
        let (lhs, rhs) = (dot(&y, &v), dot(&x, &xt));
        assert!(
            (lhs - rhs).abs() <= 1e-9 * lhs.abs().max(1.0),
            "{o:?}: {lhs} vs {rhs}"
        );
    }
}

#[test]
fn f32_matches_f64_and_backward_helper() {
    manual_seed(5);
    let x = Tensor::randn(&[3, 4, 10, 9]);
    let w = Tensor::randn(&[6, 4, 3, 3]);
    let b = Tensor::randn(&[6]);
    let o = Conv2dOptions::stride(2).with_padding(1);
    let y32 = x.conv2d(&w, Some(&b), &o).unwrap();
    let y64 = x
        .to_dtype(DType::F64)
        .unwrap()
        .conv2d(
            &w.to_dtype(DType::F64).unwrap(),
            Some(&b.to_dtype(DType::F64).unwrap()),
            &o,
        )
        .unwrap();
    for (a, e) in y32.to_f64_vec().iter().zip(y64.to_f64_vec()) {
        assert!((a - e).abs() < 1e-4 * (1.0 + e.abs()));
    }
    // conv2d_backward agrees with autograd
    let xg = x.detach().requires_grad_(true).unwrap();
    let wg = w.detach().requires_grad_(true).unwrap();
    let bg = b.detach().requires_grad_(true).unwrap();
    let gy = Tensor::randn(y32.shape());
    xg.conv2d(&wg, Some(&bg), &o)
        .unwrap()
        .mul(&gy)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let [gx, gw, gb] = conv2d_backward(&x, &w, &gy, &o, [true, true, true]).unwrap();
    for (a, e) in [(gx, xg.grad()), (gw, wg.grad()), (gb, bg.grad())] {
        let (a, e) = (a.unwrap().to_f64_vec(), e.unwrap().to_f64_vec());
        assert_eq!(a.len(), e.len());
        for (p, q) in a.iter().zip(&e) {
            assert!((p - q).abs() < 1e-4 * (1.0 + q.abs()));
        }
    }
    // a strided (non-contiguous) input gives the same result
    let xt = x
        .permute(&[0, 1, 3, 2])
        .unwrap()
        .contiguous()
        .unwrap()
        .permute(&[0, 1, 3, 2])
        .unwrap();
    assert!(!xt.is_contiguous());
    assert_eq!(
        xt.conv2d(&w, Some(&b), &o).unwrap().to_vec::<f32>(),
        y32.to_vec::<f32>()
    );
}

// ---------- PyTorch fixtures ----------

fn close(name: &str, what: &str, got: &Tensor, want: &Value, dtype: DType) -> Vec<String> {
    let want_t = json::tensor(want);
    if got.shape() != want_t.shape() {
        return vec![format!(
            "{name} {what} ({dtype}): shape {:?}, expected {:?}",
            got.shape(),
            want_t.shape()
        )];
    }
    let mut errs = vec![];
    for (i, (a, e)) in got.to_f64_vec().iter().zip(want_t.to_f64_vec()).enumerate() {
        if (a - e).abs() > 1e-5 + 1e-4 * e.abs() {
            errs.push(format!("{name} {what} ({dtype}) [{i}]: {a} vs PyTorch {e}"));
            break;
        }
    }
    errs
}

#[test]
fn matches_pytorch_fixtures() {
    let root = json::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/conv.json"),
        "scripts/gen_conv_fixtures.py",
    );
    let cases = root["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    let mut errs = vec![];
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let o = &c["opts"];
        for dtype in [DType::F32, DType::F64] {
            let leaf = |k: &str| {
                json::tensor(&c[k])
                    .to_dtype(dtype)
                    .unwrap()
                    .requires_grad_(true)
                    .unwrap()
            };
            let (x, w) = (leaf("x"), leaf("w"));
            let b = c.get("b").map(|_| leaf("b"));
            let groups = o["groups"].as_u64().unwrap() as usize;
            let out = if c["op"] == "conv2d" {
                let p = json::usizes(&o["padding"]);
                let opts = Conv2dOptions {
                    stride: json::pair(&o["stride"]),
                    padding: (p[0], p[1], p[2], p[3]),
                    dilation: json::pair(&o["dilation"]),
                    groups,
                };
                x.conv2d(&w, b.as_ref(), &opts).unwrap()
            } else {
                let opts = ConvTranspose2dOptions {
                    stride: json::pair(&o["stride"]),
                    padding: json::pair(&o["padding"]),
                    output_padding: json::pair(&o["output_padding"]),
                    dilation: json::pair(&o["dilation"]),
                    groups,
                };
                x.conv_transpose2d(&w, b.as_ref(), &opts).unwrap()
            };
            errs.extend(close(name, "out", &out, &c["out"], dtype));
            let g = json::tensor(&c["g"]).to_dtype(dtype).unwrap();
            out.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
            errs.extend(close(name, "grad x", &x.grad().unwrap(), &c["gx"], dtype));
            errs.extend(close(name, "grad w", &w.grad().unwrap(), &c["gw"], dtype));
            if let Some(b) = &b {
                errs.extend(close(name, "grad b", &b.grad().unwrap(), &c["gb"], dtype));
            }
        }
    }
    assert!(
        errs.is_empty(),
        "{} disagreements with PyTorch:\n{}",
        errs.len(),
        errs.join("\n")
    );
}

// ---------- bad input ----------

fn err_of(r: d2l_tensor::Result<Tensor>) -> String {
    r.err().expect("expected an error").to_string()
}

#[test]
fn bad_input_gives_errors_naming_op_and_shapes() {
    let o = Conv2dOptions::default();
    let x = Tensor::zeros(&[2, 4, 8, 8]);
    let w = Tensor::zeros(&[6, 4, 3, 3]);
    // wrong ranks
    let e = err_of(Tensor::zeros(&[4, 8, 8]).conv2d(&w, None, &o));
    assert!(e.contains("conv2d") && e.contains("[4, 8, 8]"), "{e}");
    let e = err_of(x.conv2d(&Tensor::zeros(&[6, 4, 3]), None, &o));
    assert!(e.contains("conv2d") && e.contains("[6, 4, 3]"), "{e}");
    // channel mismatch
    let e = err_of(x.conv2d(&Tensor::zeros(&[6, 3, 3, 3]), None, &o));
    assert!(
        e.contains("conv2d") && e.contains("[2, 4, 8, 8]") && e.contains("[6, 3, 3, 3]"),
        "{e}"
    );
    // channels not divisible by groups
    let e = err_of(x.conv2d(&Tensor::zeros(&[6, 1, 3, 3]), None, &o.with_groups(3)));
    assert!(e.contains("conv2d") && e.contains("groups = 3"), "{e}");
    let e = err_of(x.conv2d(&Tensor::zeros(&[5, 2, 3, 3]), None, &o.with_groups(2)));
    assert!(e.contains("divisible"), "{e}");
    // kernel larger than the padded input
    let e = err_of(Tensor::zeros(&[1, 4, 2, 2]).conv2d(&w, None, &o));
    assert!(
        e.contains("conv2d") && e.contains("[1, 4, 2, 2]") && e.contains("[6, 4, 3, 3]"),
        "{e}"
    );
    assert!(Tensor::zeros(&[1, 4, 2, 2])
        .conv2d(&w, None, &o.with_padding(1))
        .is_ok());
    let e = err_of(x.conv2d(&w, None, &o.with_dilation(5, 1)));
    assert!(e.contains("smaller than the dilated kernel"), "{e}");
    // zero stride / dilation / groups
    assert!(err_of(x.conv2d(&w, None, &Conv2dOptions::stride(0))).contains("stride"));
    assert!(err_of(x.conv2d(&w, None, &o.with_dilation(0, 1))).contains("dilation"));
    assert!(err_of(x.conv2d(&w, None, &o.with_groups(0))).contains("groups"));
    // bias shape
    let e = err_of(x.conv2d(&w, Some(&Tensor::zeros(&[4])), &o));
    assert!(
        e.contains("conv2d") && e.contains("[6]") && e.contains("[4]"),
        "{e}"
    );
    // dtype mismatch
    let e = err_of(x.conv2d(&w.to_dtype(DType::F64).unwrap(), None, &o));
    assert!(e.contains("conv2d") && e.contains("f64"), "{e}");
    let e = err_of(x.conv2d(
        &w,
        Some(&Tensor::zeros(&[6]).to_dtype(DType::F64).unwrap()),
        &o,
    ));
    assert!(e.contains("conv2d") && e.contains("bias"), "{e}");
    let e = err_of(x.to_dtype(DType::I64).unwrap().conv2d(
        &w.to_dtype(DType::I64).unwrap(),
        None,
        &o,
    ));
    assert!(e.contains("conv2d"), "{e}");

    // conv_transpose2d
    let t = ConvTranspose2dOptions::default();
    let wt = Tensor::zeros(&[4, 3, 3, 3]);
    assert_eq!(
        x.conv_transpose2d(&wt, None, &t).unwrap().shape(),
        &[2, 3, 10, 10]
    );
    let e = err_of(x.conv_transpose2d(&Tensor::zeros(&[3, 4, 3, 3]), None, &t));
    assert!(
        e.contains("conv_transpose2d") && e.contains("[3, 4, 3, 3]"),
        "{e}"
    );
    let e = err_of(x.conv_transpose2d(&wt, None, &t.with_groups(3)));
    assert!(
        e.contains("conv_transpose2d") && e.contains("divisible"),
        "{e}"
    );
    let e = err_of(x.conv_transpose2d(&wt, None, &t.with_output_padding(1, 0)));
    assert!(e.contains("output_padding"), "{e}");
    let e = err_of(Tensor::zeros(&[1, 4, 1, 1]).conv_transpose2d(
        &Tensor::zeros(&[4, 3, 1, 1]),
        None,
        &t.with_padding(1),
    ));
    assert!(
        e.contains("conv_transpose2d") && e.contains("empty output"),
        "{e}"
    );
    let e = err_of(x.conv_transpose2d(&wt, Some(&Tensor::zeros(&[4])), &t));
    assert!(e.contains("[3]") && e.contains("[4]"), "{e}");
    assert!(
        err_of(x.conv_transpose2d(&wt, None, &ConvTranspose2dOptions::stride(0)))
            .contains("stride")
    );
}

#[test]
fn book_examples_6_2_and_14_10() {
    // D2L 7.2: corr2d on the 3×3 example
    let x = Tensor::from_vec((0..9).map(|v| v as f32).collect(), &[1, 1, 3, 3]).unwrap();
    let k = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0], &[1, 1, 2, 2]).unwrap();
    let y = x.conv2d(&k, None, &Conv2dOptions::default()).unwrap();
    assert_eq!(y.to_vec::<f32>(), vec![19.0, 25.0, 37.0, 43.0]);
    // D2L 14.10: transposed conv with stride 2
    let x = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0], &[1, 1, 2, 2]).unwrap();
    let y = x
        .conv_transpose2d(&k, None, &ConvTranspose2dOptions::stride(2))
        .unwrap();
    assert_eq!(
        y.to_vec::<f32>(),
        vec![0., 0., 0., 1., 0., 0., 2., 3., 0., 2., 0., 3., 4., 6., 6., 9.]
    );
}
