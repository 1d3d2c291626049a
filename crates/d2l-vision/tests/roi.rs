//! RoI pooling and RoI align (D2L 13.8): the book's example, torchvision reference values
//! (forward, argmax and input gradient), finite-difference gradient checks and the
//! errors on malformed arguments.
//!
//! `tests/fixtures/roi.txt` is written by `scripts/gen_roi_fixtures.py` from
//! torchvision's CPU kernels (see the script for the format and the cases).

use d2l_tensor::{gradcheck, DType, Generator, Result, Tensor};
use d2l_vision::roi::{roi_align, roi_pool, roi_pool_with_argmax};

const FIXTURES: &str = include_str!("fixtures/roi.txt");
const ATOL: f64 = 1e-5;

fn t32(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

/// The book's feature map: `arange(16)` as `(1, 1, 4, 4)`.
fn book_x() -> Tensor {
    Tensor::arange(0.0, 16.0, 1.0)
        .unwrap()
        .reshape([1, 1, 4, 4])
        .unwrap()
}

/// The book's two region proposals, in a 40 × 40 image.
fn book_rois() -> Tensor {
    t32(&[0., 0., 0., 20., 20., 0., 0., 10., 30., 30.], &[2, 5])
}

fn assert_close(what: &str, got: &[f64], want: &[f64], atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, w))| (*g - *w).abs() > atol || g.is_nan() != w.is_nan())
        .take(8)
        .map(|(i, (g, w))| format!("[{i}] got {g}, want {w}"))
        .collect();
    assert!(bad.is_empty(), "{what}: {}", bad.join("; "));
}

// ---------------------------------------------------------------- the book's example

#[test]
fn book_example_roi_pool() -> Result<()> {
    let y = roi_pool(&book_x(), &book_rois(), (2, 2), 0.1)?;
    assert_eq!(y.shape(), &[2, 1, 2, 2]);
    assert_eq!(y.dtype(), DType::F32);
    assert_eq!(y.to_vec::<f32>(), vec![5., 6., 9., 10., 9., 11., 13., 15.]);
    Ok(())
}

#[test]
fn book_example_gradient_goes_to_the_maxima() -> Result<()> {
    let x = book_x().requires_grad_(true)?;
    let (y, arg) = roi_pool_with_argmax(&x, &book_rois(), (2, 2), 0.1)?;
    assert_eq!(arg.dtype(), DType::I64);
    assert_eq!(arg.to_vec::<i64>(), vec![5, 6, 9, 10, 9, 11, 13, 15]);
    y.sum_all()?.backward()?;
    let mut want = vec![0.0f32; 16];
    for i in [5, 6, 9, 10, 9, 11, 13, 15] {
        want[i] += 1.0;
    }
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), want);
    Ok(())
}

#[test]
fn book_example_roi_align() -> Result<()> {
    // torchvision.ops.roi_align(X, rois, (2, 2), 0.1, sampling_ratio=2)
    let y = roi_align(&book_x(), &book_rois(), (2, 2), 0.1, 2, false)?;
    assert_eq!(y.shape(), &[2, 1, 2, 2]);
    assert_close(
        "roi_align book",
        &y.to_f64_vec(),
        &[2.5, 3.5, 6.5, 7.5, 6.75, 8.25, 10.75, 12.25],
        1e-6,
    );
    Ok(())
}

// ---------------------------------------------------------------- torchvision fixtures

/// One case of `tests/fixtures/roi.txt`.
#[derive(Default, Debug)]
struct Case {
    name: String,
    op: String,
    output_size: (usize, usize),
    spatial_scale: f32,
    sampling_ratio: i32,
    aligned: bool,
    tensors: Vec<(String, Vec<usize>, Vec<f64>)>,
}

impl Case {
    fn get(&self, name: &str) -> (&[usize], &[f64]) {
        let (_, s, v) = self
            .tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("fixture {}: no tensor {name}", self.name));
        (s, v)
    }

    fn tensor(&self, name: &str, dtype: DType) -> Tensor {
        let (s, v) = self.get(name);
        Tensor::from_vec(v.to_vec(), s)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }
}

fn parse_fixtures() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut cur: Option<Case> = None;
    let mut lines = FIXTURES.lines();
    while let Some(line) = lines.next() {
        let mut words = line.split_whitespace();
        let Some(key) = words.next() else { continue };
        let rest: Vec<&str> = words.collect();
        if key.starts_with('#') {
            continue;
        }
        if key == "case" {
            cur = Some(Case {
                name: rest[0].to_string(),
                ..Case::default()
            });
            continue;
        }
        let c = cur.as_mut().expect("fixture: line outside a case");
        match key {
            "op" => c.op = rest[0].to_string(),
            "output_size" => c.output_size = (rest[0].parse().unwrap(), rest[1].parse().unwrap()),
            "spatial_scale" => c.spatial_scale = rest[0].parse().unwrap(),
            "sampling_ratio" => c.sampling_ratio = rest[0].parse().unwrap(),
            "aligned" => c.aligned = rest[0] == "1",
            "tensor" => {
                let shape: Vec<usize> = rest[1..].iter().map(|d| d.parse().unwrap()).collect();
                let data: Vec<f64> = lines
                    .next()
                    .expect("fixture: tensor without data")
                    .split_whitespace()
                    .map(|v| v.parse().unwrap())
                    .collect();
                assert_eq!(
                    data.len(),
                    shape.iter().product::<usize>(),
                    "fixture {}: tensor {}",
                    c.name,
                    rest[0]
                );
                c.tensors.push((rest[0].to_string(), shape, data));
            }
            "end" => cases.push(cur.take().unwrap()),
            other => panic!("fixture: unknown line {other:?}"),
        }
    }
    assert!(cur.is_none(), "fixture: last case has no end");
    cases
}

/// Runs a case's op on `input` (forward and backward of `sum(out * grad_output)`) and
/// returns the output, the argmax (roi_pool) and the input gradient.
fn run_case(c: &Case, dtype: DType) -> Result<(Tensor, Option<Tensor>, Tensor)> {
    let x = c
        .tensor("input", DType::F32)
        .to_dtype(dtype)?
        .requires_grad_(true)?;
    let rois = c.tensor("rois", DType::F32);
    let (y, arg) = match c.op.as_str() {
        "roi_pool" => {
            let (y, a) = roi_pool_with_argmax(&x, &rois, c.output_size, c.spatial_scale)?;
            (y, Some(a))
        }
        "roi_align" => (
            roi_align(
                &x,
                &rois,
                c.output_size,
                c.spatial_scale,
                c.sampling_ratio,
                c.aligned,
            )?,
            None,
        ),
        other => panic!("fixture {}: unknown op {other}", c.name),
    };
    let g = c.tensor("grad_output", dtype);
    y.mul(&g)?.sum_all()?.backward()?;
    let gi = x.grad().expect("input gradient");
    Ok((y, arg, gi))
}

#[test]
fn matches_torchvision() -> Result<()> {
    let cases = parse_fixtures();
    assert_eq!(cases.len(), 7, "fixture cases");
    for c in &cases {
        let (y, arg, gi) = run_case(c, DType::F32)?;
        let (oshape, out) = c.get("output");
        assert_eq!(y.shape(), oshape, "{}: output shape", c.name);
        assert_eq!(y.dtype(), DType::F32);
        assert_close(&format!("{} output", c.name), &y.to_f64_vec(), out, ATOL);
        if let Some(arg) = arg {
            let (_, want) = c.get("argmax");
            let got: Vec<f64> = arg.to_vec::<i64>().iter().map(|&v| v as f64).collect();
            assert_eq!(got, want, "{}: argmax", c.name);
        }
        let (gshape, want) = c.get("grad_input");
        assert_eq!(gi.shape(), gshape, "{}: grad shape", c.name);
        assert_close(
            &format!("{} grad_input", c.name),
            &gi.to_f64_vec(),
            want,
            ATOL,
        );
    }
    Ok(())
}

#[test]
fn f64_inputs_agree_with_the_f32_references() -> Result<()> {
    for c in &parse_fixtures() {
        let (y, _, gi) = run_case(c, DType::F64)?;
        assert_eq!(y.dtype(), DType::F64);
        assert_close(
            &format!("{} output (f64)", c.name),
            &y.to_f64_vec(),
            c.get("output").1,
            1e-4,
        );
        assert_close(
            &format!("{} grad_input (f64)", c.name),
            &gi.to_f64_vec(),
            c.get("grad_input").1,
            1e-4,
        );
    }
    Ok(())
}

#[test]
fn strided_input_gives_the_same_result() -> Result<()> {
    let c = parse_fixtures()
        .into_iter()
        .find(|c| c.op == "roi_align")
        .unwrap();
    let x = c.tensor("input", DType::F32);
    // The same values through a non-contiguous view (a transposed copy transposed back).
    let xt = x.transpose(2, 3)?.contiguous()?.transpose(2, 3)?;
    let rois = c.tensor("rois", DType::F32);
    let a = roi_align(&x, &rois, c.output_size, c.spatial_scale, 2, true)?;
    let b = roi_align(&xt, &rois, c.output_size, c.spatial_scale, 2, true)?;
    assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>());
    let a = roi_pool(&x, &rois, c.output_size, c.spatial_scale)?;
    let b = roi_pool(&xt, &rois, c.output_size, c.spatial_scale)?;
    assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>());
    Ok(())
}

// ---------------------------------------------------------------- gradient checks

/// Regions over a `(2, C, 5, 6)` map at scale 0.5 (a 12 × 10 image): inside, fractional,
/// partly outside, on the second image.
fn check_rois() -> Tensor {
    t32(
        &[
            0., 1.3, 0.7, 9.1, 8.2, //
            1., -2.0, 3.5, 6.4, 12.6, //
            1., 4.0, 2.0, 5.0, 3.0, //
            0., 7.7, 5.5, 13.0, 9.9,
        ],
        &[4, 5],
    )
}

#[test]
fn gradcheck_roi_align() -> Result<()> {
    let mut g = Generator::new(13);
    let x = Tensor::randn_with(&mut g, &[2, 2, 5, 6]);
    let rois = check_rois();
    for (sr, aligned) in [(2, false), (2, true), (-1, false), (-1, true), (1, true)] {
        gradcheck(
            |xs| roi_align(&xs[0], &rois, (2, 3), 0.5, sr, aligned),
            std::slice::from_ref(&x),
        )
        .unwrap_or_else(|e| panic!("sampling_ratio {sr}, aligned {aligned}: {e}"));
    }
    Ok(())
}

#[test]
fn gradcheck_roi_pool() -> Result<()> {
    // Distinct values at least 0.5 apart: every bin has a unique maximum that stays
    // the maximum under a finite-difference step.
    let mut g = Generator::new(7);
    let n = 2 * 2 * 5 * 6;
    let perm = Tensor::randperm_with(&mut g, n).to_vec::<i64>();
    let v: Vec<f64> = perm.iter().map(|&p| 0.5 * p as f64 - 30.0).collect();
    let x = Tensor::from_vec(v, &[2, 2, 5, 6])?;
    let rois = check_rois();
    for out in [(2, 3), (3, 2), (1, 1)] {
        gradcheck(
            |xs| roi_pool(&xs[0], &rois, out, 0.5),
            std::slice::from_ref(&x),
        )
        .unwrap_or_else(|e| panic!("output {out:?}: {e}"));
    }
    Ok(())
}

// ---------------------------------------------------------------- edge cases

#[test]
fn no_rois_give_an_empty_output() -> Result<()> {
    let x = book_x().requires_grad_(true)?;
    let rois = Tensor::from_vec(Vec::<f32>::new(), &[0, 5])?;
    let y = roi_align(&x, &rois, (2, 2), 1.0, -1, true)?;
    assert_eq!(y.shape(), &[0, 1, 2, 2]);
    let (p, arg) = roi_pool_with_argmax(&x, &rois, (2, 2), 1.0)?;
    assert_eq!(p.shape(), &[0, 1, 2, 2]);
    assert_eq!(arg.shape(), &[0, 1, 2, 2]);
    Ok(())
}

#[test]
fn regions_off_the_map_pool_to_zero() -> Result<()> {
    let x = book_x().add_scalar(1.0)?;
    let rois = t32(
        &[0., 100., 100., 120., 130., 0., -90., -80., -50., -40.],
        &[2, 5],
    );
    let (y, arg) = roi_pool_with_argmax(&x, &rois, (2, 2), 1.0)?;
    assert_eq!(y.to_vec::<f32>(), vec![0.0; 8]);
    assert_eq!(arg.to_vec::<i64>(), vec![-1; 8]);
    let a = roi_align(&x, &rois, (2, 2), 1.0, 2, false)?;
    assert_eq!(a.to_vec::<f32>(), vec![0.0; 8]);
    // Huge but finite coordinates do not overflow.
    let far = t32(&[0., 0., 0., 3e38, 3e38], &[1, 5]);
    assert_eq!(roi_pool(&x, &far, (2, 2), 1.0)?.shape(), &[1, 1, 2, 2]);
    assert_eq!(
        roi_align(&x, &far, (2, 2), 1.0, 2, true)?.shape(),
        &[1, 1, 2, 2]
    );
    Ok(())
}

#[test]
fn zero_sized_aligned_region_gives_zero() -> Result<()> {
    // aligned=true does not widen a point to one cell: the adaptive grid is empty.
    let rois = t32(&[0., 2., 2., 2., 2.], &[1, 5]);
    let y = roi_align(&book_x().add_scalar(1.0)?, &rois, (1, 1), 1.0, -1, true)?;
    assert_eq!(y.to_vec::<f32>(), vec![0.0]);
    Ok(())
}

// ---------------------------------------------------------------- errors

fn err_text(r: Result<Tensor>) -> String {
    match r {
        Ok(t) => panic!("expected an error, got a tensor of shape {:?}", t.shape()),
        Err(e) => e.to_string(),
    }
}

fn both_fail(x: &Tensor, rois: &Tensor, out: (usize, usize), scale: f32, needle: &str) {
    let p = err_text(roi_pool(x, rois, out, scale));
    assert!(
        p.starts_with("roi_pool:") && p.contains(needle),
        "roi_pool: {p}"
    );
    let a = err_text(roi_align(x, rois, out, scale, 2, false));
    assert!(
        a.starts_with("roi_align:") && a.contains(needle),
        "roi_align: {a}"
    );
}

#[test]
fn malformed_arguments_are_errors() {
    let x = book_x();
    let rois = book_rois();
    both_fail(&x, &t32(&[0., 0., 0., 1.], &[1, 4]), (2, 2), 1.0, "(K, 5)");
    both_fail(
        &x,
        &t32(&[0., 0., 0., 1., 1.], &[5]),
        (2, 2),
        1.0,
        "got shape [5]",
    );
    both_fail(
        &x,
        &t32(&[1., 0., 0., 1., 1.], &[1, 5]),
        (2, 2),
        1.0,
        "batch index",
    );
    both_fail(
        &x,
        &t32(&[-1., 0., 0., 1., 1.], &[1, 5]),
        (2, 2),
        1.0,
        "got -1",
    );
    both_fail(
        &x,
        &t32(&[0.5, 0., 0., 1., 1.], &[1, 5]),
        (2, 2),
        1.0,
        "got 0.5",
    );
    both_fail(
        &x,
        &t32(&[0., 3., 0., 1., 1.], &[1, 5]),
        (2, 2),
        1.0,
        "x1 <= x2",
    );
    both_fail(
        &x,
        &t32(&[0., 0., 3., 1., 1.], &[1, 5]),
        (2, 2),
        1.0,
        "y1 <= y2",
    );
    both_fail(
        &x,
        &t32(&[0., f32::NAN, 0., 1., 1.], &[1, 5]),
        (2, 2),
        1.0,
        "finite coordinates",
    );
    both_fail(&x, &rois, (2, 2), -0.1, "spatial_scale");
    both_fail(&x, &rois, (2, 2), f32::INFINITY, "spatial_scale");
    both_fail(&x, &rois, (0, 2), 0.1, "output size");
    both_fail(&x, &rois, (2, 0), 0.1, "output size");
    both_fail(
        &x.reshape([1, 4, 4]).unwrap(),
        &rois,
        (2, 2),
        0.1,
        "4-D input",
    );
    both_fail(
        &x.to_dtype(DType::I64).unwrap(),
        &rois,
        (2, 2),
        0.1,
        "f32 or f64",
    );
    both_fail(&x, &rois.to_dtype(DType::I64).unwrap(), (2, 2), 0.1, "rois");
    both_fail(&Tensor::zeros(&[1, 1, 0, 4]), &rois, (2, 2), 0.1, "H >= 1");
    // An adaptive sampling grid beyond torchvision's int range.
    let huge = t32(&[0., 0., 0., 1e30, 1e30], &[1, 5]);
    let e = err_text(roi_align(&x, &huge, (1, 1), 1.0, -1, false));
    assert!(
        e.starts_with("roi_align:") && e.contains("sampling grid"),
        "{e}"
    );
}
