//! D2L 13.10 (transposed convolution from scratch, its matrix form, the engine's
//! `conv_transpose2d`) and the upsampling of 13.11 (`bilinear_kernel`, ×2 on catdog.jpg),
//! checked against the book's printed results (D2L-REFERENCE C.4, D.11).

use d2l_tensor::{ConvTranspose2dOptions, DType, Tensor};
use d2l_testkit::t;
use d2l_vision::image::read_image_f32;
use d2l_vision::upsample::{bilinear_kernel, corr2d, kernel2matrix, trans_conv, upsample_bilinear};
use std::path::Path;

fn vals(x: &Tensor) -> Vec<f64> {
    x.to_dtype(DType::F64)
        .unwrap()
        .contiguous()
        .unwrap()
        .to_vec::<f64>()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w}");
    }
}

/// The book's X = K = [[0, 1], [2, 3]] as (1, 1, 2, 2) for the engine.
fn book_x4() -> Tensor {
    t(&[0.0, 1.0, 2.0, 3.0], &[1, 1, 2, 2])
}

#[test]
fn trans_conv_matches_the_book() {
    let x = t(&[0.0, 1.0, 2.0, 3.0], &[2, 2]);
    let y = trans_conv(&x, &x).unwrap();
    assert_eq!(y.shape(), &[3, 3]);
    assert_eq!(y.dtype(), DType::F32);
    assert_eq!(vals(&y), vec![0.0, 0.0, 1.0, 0.0, 4.0, 6.0, 4.0, 12.0, 9.0]);
    // A non-square kernel on a non-square input: (2, 3) with (3, 2) gives (4, 4).
    let y = trans_conv(&Tensor::ones(&[2, 3]), &Tensor::ones(&[3, 2])).unwrap();
    assert_eq!(y.shape(), &[4, 4]);
    assert_eq!(vals(&y).iter().sum::<f64>(), 36.0);
}

#[test]
fn engine_conv_transpose2d_matches_the_book() {
    let x = book_x4();
    let y = x
        .conv_transpose2d(&x, None, &ConvTranspose2dOptions::default())
        .unwrap();
    assert_eq!(vals(&y), vec![0.0, 0.0, 1.0, 0.0, 4.0, 6.0, 4.0, 12.0, 9.0]);
    // padding=1 removes the first and last row and column: [[4]].
    let y = x
        .conv_transpose2d(&x, None, &ConvTranspose2dOptions::default().with_padding(1))
        .unwrap();
    assert_eq!(y.shape(), &[1, 1, 1, 1]);
    assert_eq!(vals(&y), vec![4.0]);
    // stride=2: the kernels no longer overlap.
    let y = x
        .conv_transpose2d(&x, None, &ConvTranspose2dOptions::stride(2))
        .unwrap();
    assert_eq!(y.shape(), &[1, 1, 4, 4]);
    assert_eq!(
        vals(&y),
        vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 3.0, 0.0, 2.0, 0.0, 3.0, 4.0, 6.0, 6.0, 9.0]
    );
}

#[test]
fn corr2d_matches_the_book() {
    let x = Tensor::arange(0.0, 9.0, 1.0)
        .unwrap()
        .reshape([3usize, 3])
        .unwrap();
    let k = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let y = corr2d(&x, &k).unwrap();
    assert_eq!(y.shape(), &[2, 2]);
    assert_eq!(vals(&y), vec![27.0, 37.0, 57.0, 67.0]);
    assert!(corr2d(&k, &x).is_err(), "a kernel larger than the input");
    assert!(
        corr2d(&Tensor::ones(&[1, 3, 3]), &k).is_err(),
        "not a matrix"
    );
    assert!(
        trans_conv(&k, &Tensor::ones(&[2, 2, 1])).is_err(),
        "not a matrix"
    );
}

#[test]
fn kernel2matrix_is_the_books_w_both_ways() {
    let k = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let w = kernel2matrix(&k, 3, 3).unwrap();
    assert_eq!(w.shape(), &[4, 9]);
    #[rustfmt::skip]
    let book = vec![
        1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 3.0, 4.0,
    ];
    assert_eq!(vals(&w), book);

    // W · vec(X) = vec(corr2d(X, K)).
    let x = Tensor::arange(0.0, 9.0, 1.0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let y = corr2d(&x.reshape([3usize, 3]).unwrap(), &k).unwrap();
    let wx = w.matmul(&x.reshape([9usize, 1]).unwrap()).unwrap();
    assert_eq!(vals(&wx), vals(&y));
    assert_eq!(vals(&y), vec![27.0, 37.0, 57.0, 67.0]);

    // Wᵀ · vec(Y) = vec(trans_conv(Y, K)).
    let z = trans_conv(&y, &k).unwrap();
    assert_eq!(z.shape(), &[3, 3]);
    let wty = w
        .t()
        .unwrap()
        .matmul(&y.reshape([4usize, 1]).unwrap())
        .unwrap();
    assert_eq!(vals(&wty), vals(&z));

    // The same both ways on random kernels and inputs of other sizes.
    for (kh, kw, h, w_) in [(3, 2, 5, 4), (1, 1, 2, 3), (2, 3, 4, 6)] {
        let k = Tensor::randn(&[kh, kw]);
        let wm = kernel2matrix(&k, h, w_).unwrap();
        let (oh, ow) = (h - kh + 1, w_ - kw + 1);
        assert_eq!(wm.shape(), &[oh * ow, h * w_]);
        let x = Tensor::randn(&[h, w_]);
        let got = wm.matmul(&x.reshape([h * w_, 1]).unwrap()).unwrap();
        assert_close(&vals(&got), &vals(&corr2d(&x, &k).unwrap()), 1e-5, "W x");
        let y = Tensor::randn(&[oh, ow]);
        let got = wm
            .t()
            .unwrap()
            .matmul(&y.reshape([oh * ow, 1]).unwrap())
            .unwrap();
        assert_close(
            &vals(&got),
            &vals(&trans_conv(&y, &k).unwrap()),
            1e-5,
            "Wᵀ y",
        );
    }
    assert!(kernel2matrix(&k, 1, 3).is_err());
}

#[test]
fn engine_conv_transpose2d_agrees_with_trans_conv_on_random_inputs() {
    d2l_tensor::manual_seed(13);
    for (h, w, kh, kw) in [
        (2, 2, 2, 2),
        (3, 5, 2, 3),
        (4, 4, 3, 3),
        (1, 6, 1, 4),
        (5, 3, 4, 2),
    ] {
        let x = Tensor::randn(&[h, w]);
        let k = Tensor::randn(&[kh, kw]);
        let want = trans_conv(&x, &k).unwrap();
        assert_eq!(want.shape(), &[h + kh - 1, w + kw - 1]);
        let got = x
            .reshape([1usize, 1, h, w])
            .unwrap()
            .conv_transpose2d(
                &k.reshape([1usize, 1, kh, kw]).unwrap(),
                None,
                &ConvTranspose2dOptions::default(),
            )
            .unwrap();
        assert_eq!(got.shape(), &[1, 1, h + kh - 1, w + kw - 1]);
        assert_close(
            &vals(&got),
            &vals(&want),
            1e-5,
            "conv_transpose2d vs trans_conv",
        );
    }
}

/// The book's filter for kernel size k: f = ceil(k/2), c = f - 0.5 (even k) or f - 1.
fn book_filter_1d(k: usize) -> Vec<f64> {
    let f = k.div_ceil(2) as f64;
    let c = if k % 2 == 1 { f - 1.0 } else { f - 0.5 };
    (0..k).map(|i| 1.0 - (i as f64 - c).abs() / f).collect()
}

#[test]
fn bilinear_kernel_is_the_books() {
    let w = bilinear_kernel(3, 3, 4);
    assert_eq!(w.shape(), &[3, 3, 4, 4]);
    assert_eq!(w.dtype(), DType::F32);
    let v = vals(&w);
    let one = [0.25, 0.75, 0.75, 0.25];
    for i in 0..3 {
        for o in 0..3 {
            for a in 0..4 {
                for b in 0..4 {
                    let got = v[((i * 3 + o) * 4 + a) * 4 + b];
                    let want = if i == o { one[a] * one[b] } else { 0.0 };
                    assert_eq!(got, want, "({i}, {o}, {a}, {b})");
                }
            }
        }
    }
    // Odd sizes centre on f - 1: k = 3 gives f = 2, c = 1, [0.5, 1, 0.5].
    assert_eq!(book_filter_1d(3), vec![0.5, 1.0, 0.5]);
    let w = bilinear_kernel(1, 1, 3);
    assert_close(
        &vals(&w),
        &[0.25, 0.5, 0.25, 0.5, 1.0, 0.5, 0.25, 0.5, 0.25],
        0.0,
        "k = 3",
    );
    // FCN's transpose_conv: bilinear_kernel(21, 21, 64).
    let w = bilinear_kernel(21, 21, 64);
    assert_eq!(w.shape(), &[21, 21, 64, 64]);
    let f = book_filter_1d(64);
    let v = vals(&w);
    let plane = 64 * 64;
    for (p, chunk) in v.chunks(plane).enumerate() {
        let (i, o) = (p / 21, p % 21);
        if i != o {
            assert!(chunk.iter().all(|&x| x == 0.0), "off-diagonal ({i}, {o})");
        } else {
            for a in [0, 17, 31, 32, 63] {
                for b in [0, 5, 31, 40, 63] {
                    let want = (f[a] * f[b]) as f32 as f64;
                    assert!((chunk[a * 64 + b] - want).abs() < 1e-7);
                }
            }
        }
    }
    // Unequal counts: diagonal pairs up to the smaller one.
    let w = bilinear_kernel(2, 3, 2);
    assert_eq!(w.shape(), &[2, 3, 2, 2]);
    let v = vals(&w);
    let nonzero: Vec<usize> = (0..6)
        .filter(|p| v[p * 4..p * 4 + 4].iter().any(|&x| x != 0.0))
        .collect();
    assert_eq!(nonzero, vec![0, 4]);
}

/// The transposed convolution written out: out[o] = Σ_i x[i] · filt[o + p - i·s] over
/// the taps that land inside the kernel, separable in rows and columns.
fn direct_upsample(x: &[f64], c: usize, h: usize, w: usize, s: usize) -> Vec<f64> {
    let k = 2 * s;
    let p = s / 2;
    let f = book_filter_1d(k);
    let (oh, ow) = (h * s, w * s);
    let mut out = vec![0.0; c * oh * ow];
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0.0;
                for iy in 0..h {
                    let ty = (oy + p) as isize - (iy * s) as isize;
                    if !(0..k as isize).contains(&ty) {
                        continue;
                    }
                    for ix in 0..w {
                        let tx = (ox + p) as isize - (ix * s) as isize;
                        if !(0..k as isize).contains(&tx) {
                            continue;
                        }
                        acc += x[(ch * h + iy) * w + ix] * f[ty as usize] * f[tx as usize];
                    }
                }
                out[(ch * oh + oy) * ow + ox] = acc;
            }
        }
    }
    out
}

#[test]
fn upsample_bilinear_matches_the_direct_formula() {
    d2l_tensor::manual_seed(7);
    for (c, h, w, s) in [(3, 4, 5, 2), (3, 3, 2, 4), (1, 2, 3, 8), (2, 5, 5, 2)] {
        let img = Tensor::rand(&[c, h, w]);
        let x = vals(&img);
        let up = upsample_bilinear(&img, s).unwrap();
        assert_eq!(up.shape(), &[c, h * s, w * s]);
        assert_eq!(up.dtype(), DType::F32);
        assert_close(
            &vals(&up),
            &direct_upsample(&x, c, h, w, s),
            1e-5,
            "upsample",
        );
    }
    // Scale 2 away from the border is PyTorch's bilinear interpolation with
    // align_corners=False: output o samples the input at (o + 0.5) / 2 - 0.5.
    let (h, w) = (6, 7);
    let img = Tensor::rand(&[1, h, w]);
    let x = vals(&img);
    let up = vals(&upsample_bilinear(&img, 2).unwrap());
    let lerp = |pos: f64, n: usize| {
        let lo = pos.floor() as usize;
        (lo, (lo + 1).min(n - 1), pos - lo as f64)
    };
    for oy in 1..2 * h - 1 {
        for ox in 1..2 * w - 1 {
            let (y0, y1, ty) = lerp((oy as f64 + 0.5) / 2.0 - 0.5, h);
            let (x0, x1, tx) = lerp((ox as f64 + 0.5) / 2.0 - 0.5, w);
            let at = |yy: usize, xx: usize| x[yy * w + xx];
            let want = (1.0 - ty) * ((1.0 - tx) * at(y0, x0) + tx * at(y0, x1))
                + ty * ((1.0 - tx) * at(y1, x0) + tx * at(y1, x1));
            let got = up[oy * 2 * w + ox];
            assert!((got - want).abs() < 1e-5, "({oy}, {ox}): {got} vs {want}");
        }
    }
    // A constant image stays constant inside and darkens to 0.75 / 0.5625 on the border.
    let up = vals(&upsample_bilinear(&Tensor::ones(&[3, 4, 4]), 2).unwrap());
    assert!((up[8 * 3 + 3] - 1.0).abs() < 1e-6);
    assert!((up[3] - 0.75).abs() < 1e-6);
    assert!((up[0] - 0.5625).abs() < 1e-6);
}

#[test]
fn upsample_bilinear_refuses_bad_arguments() {
    let img = Tensor::ones(&[3, 4, 4]);
    for s in [0, 1, 3, 5] {
        let e = upsample_bilinear(&img, s).unwrap_err().to_string();
        assert!(e.contains("even"), "{e}");
    }
    assert!(upsample_bilinear(&Tensor::ones(&[4, 4]), 2).is_err());
    assert!(upsample_bilinear(&Tensor::ones(&[1, 3, 4, 4]), 2).is_err());
    assert!(upsample_bilinear(&Tensor::ones(&[3, 0, 4]), 2).is_err());
}

#[test]
fn upsamples_the_books_catdog_561x728_to_1122x1456() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/d2l_images/catdog.jpg");
    assert!(
        path.exists(),
        "../shared/data must sit beside the repository"
    );
    let img = read_image_f32(&path).unwrap();
    assert_eq!(img.shape(), &[3, 561, 728]);
    let up = upsample_bilinear(&img, 2).unwrap();
    assert_eq!(up.shape(), &[3, 1122, 1456]);
    let (x, u) = (vals(&img), vals(&up));
    // Inside, every output pixel is a convex mix of four input pixels: spot-check some.
    let (h, w) = (561usize, 728usize);
    for (c, oy, ox) in [(0, 2, 2), (1, 601, 333), (2, 1000, 1400), (0, 3, 1451)] {
        let (y0, x0) = ((oy - 1) / 2, (ox - 1) / 2);
        let ty = if oy % 2 == 0 { 0.75 } else { 0.25 };
        let tx = if ox % 2 == 0 { 0.75 } else { 0.25 };
        let at = |yy: usize, xx: usize| x[(c * h + yy) * w + xx];
        let want = (1.0 - ty) * ((1.0 - tx) * at(y0, x0) + tx * at(y0, x0 + 1))
            + ty * ((1.0 - tx) * at(y0 + 1, x0) + tx * at(y0 + 1, x0 + 1));
        let got = u[(c * 1122 + oy) * 1456 + ox];
        assert!(
            (got - want).abs() < 1e-5,
            "({c}, {oy}, {ox}): {got} vs {want}"
        );
    }
    assert!(u.iter().all(|&v| (-1e-6..=1.0 + 1e-6).contains(&v)));
}
