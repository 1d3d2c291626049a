//! Image transforms: bilinear resize against PyTorch's `F.interpolate(mode="bilinear",
//! align_corners=False)` values (computed by hand from its half-pixel formula), `to_float`,
//! `normalize` and `Compose`.

use d2l_data::transforms::{
    normalize, resize_bilinear, to_float, Compose, ImageTransform, Normalize, Resize, Resizer,
    Size, ToTensor,
};
use d2l_data::DataError;
use d2l_tensor::Generator;
use d2l_tensor::{DType, Tensor};

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
fn upscale_2x2_to_4x4_matches_pytorch() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 2, 2]).unwrap();
    let y = resize_bilinear(&x, 4, 4).unwrap();
    assert_eq!(y.shape(), &[1, 4, 4]);
    #[rustfmt::skip]
    close(&y.to_vec::<f32>(), &[
        1.0, 1.25, 1.75, 2.0,
        1.5, 1.75, 2.25, 2.5,
        2.5, 2.75, 3.25, 3.5,
        3.0, 3.25, 3.75, 4.0,
    ]);
}

#[test]
fn downscale_and_non_integer_scale_match_pytorch() {
    let x = Tensor::from_vec((0..16).map(|v| v as f32).collect::<Vec<_>>(), &[1, 1, 4, 4]).unwrap();
    let y = resize_bilinear(&x, 2, 2).unwrap();
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    close(&y.to_vec::<f32>(), &[2.5, 4.5, 10.5, 12.5]);
    // 1×3 → 1×5: scale 0.6, sources -0.2 (clamped), 0.4, 1.0, 1.6, 2.2 (right edge clamped)
    let r = Tensor::from_vec(vec![0.0f32, 1.0, 2.0], &[1, 1, 3]).unwrap();
    let y = resize_bilinear(&r, 1, 5).unwrap();
    close(&y.to_vec::<f32>(), &[0.0, 0.4, 1.0, 1.6, 2.0]);
    // 3 → 2 rows: sources 0.25 and 1.75
    let c = Tensor::from_vec(vec![0.0f32, 10.0, 20.0], &[3, 1]).unwrap();
    let y = resize_bilinear(&c, 2, 1).unwrap();
    assert_eq!(y.shape(), &[2, 1]);
    close(&y.to_vec::<f32>(), &[2.5, 17.5]);
}

#[test]
fn constant_identity_and_one_pixel() {
    let one = Tensor::from_vec(vec![0.7f32, 0.2], &[2, 1, 1]).unwrap();
    let y = resize_bilinear(&one, 3, 5).unwrap();
    assert_eq!(y.shape(), &[2, 3, 5]);
    let v = y.to_vec::<f32>();
    close(&v[..15], &[0.7; 15]);
    close(&v[15..], &[0.2; 15]);
    let x = Tensor::from_vec(
        (0..2 * 3 * 5 * 7)
            .map(|v| (v as f32).sin())
            .collect::<Vec<_>>(),
        &[2, 3, 5, 7],
    )
    .unwrap();
    let y = resize_bilinear(&x, 5, 7).unwrap();
    close(&y.to_vec::<f32>(), &x.to_vec::<f32>());
}

#[test]
fn batch_28_to_224() {
    let n = 8;
    let x = Tensor::from_vec(
        (0..n * 784)
            .map(|v| (v % 255) as f32 / 255.0)
            .collect::<Vec<_>>(),
        &[n, 1, 28, 28],
    )
    .unwrap();
    let y = resize_bilinear(&x, 224, 224).unwrap();
    assert_eq!(y.shape(), &[n, 1, 224, 224]);
    let v = y.to_vec::<f32>();
    // each plane stays within its input's range, corners equal the input corners
    let xin = x.to_vec::<f32>();
    for b in 0..n {
        let p = &v[b * 224 * 224..(b + 1) * 224 * 224];
        let q = &xin[b * 784..(b + 1) * 784];
        let (lo, hi) = q
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &z| (l.min(z), h.max(z)));
        assert!(p.iter().all(|&z| z >= lo - 1e-6 && z <= hi + 1e-6));
        assert!((p[0] - q[0]).abs() < 1e-6);
        assert!((p[224 * 224 - 1] - q[783]).abs() < 1e-6);
    }
    // the plane API gives the same values
    let r = Resizer::new(28, 28, 224, 224).unwrap();
    let mut out = vec![0.0f32; 224 * 224];
    r.resize_plane(&xin[784..1568], &mut out).unwrap();
    close(&out, &v[224 * 224..2 * 224 * 224]);
    assert!(r.resize_plane(&xin[..10], &mut out).is_err());
}

#[test]
fn to_float_and_normalize() {
    let u = Tensor::from_vec(vec![0u8, 51, 255, 102], &[1, 2, 2]).unwrap();
    let f = to_float(&u).unwrap();
    assert_eq!(f.dtype(), DType::F32);
    close(&f.to_vec::<f32>(), &[0.0, 0.2, 1.0, 0.4]);
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[1, 2, 1, 3]).unwrap();
    let y = normalize(&x, &[1.0, 2.0], &[2.0, 4.0]).unwrap();
    close(&y.to_vec::<f32>(), &[0.0, 0.5, 1.0, 0.5, 0.75, 1.0]);
    assert!(matches!(
        normalize(&x, &[0.0; 3], &[1.0; 3]),
        Err(DataError::Invalid(_))
    ));
    assert!(matches!(
        normalize(&x, &[0.0], &[0.0]),
        Err(DataError::Invalid(_))
    ));
    let bad = Tensor::from_vec(vec![0.0f32; 4], &[4]).unwrap();
    assert!(matches!(
        resize_bilinear(&bad, 2, 2),
        Err(DataError::Invalid(_))
    ));
    assert!(matches!(
        resize_bilinear(&x, 0, 2),
        Err(DataError::Invalid(_))
    ));
}

#[test]
fn compose_chains_in_order() {
    let u = Tensor::from_vec(vec![0u8, 255, 255, 0], &[1, 2, 2]).unwrap();
    let t = Compose::default()
        .then(ToTensor)
        .then(Resize::new(Size::Exact(4, 4)).unwrap())
        .then(Normalize::new(&[0.5], &[0.5]).unwrap());
    let y = t.apply(&u, &mut Generator::new(0)).unwrap();
    assert_eq!(y.shape(), &[1, 4, 4]);
    let v = y.to_vec::<f32>();
    // [[0,1],[1,0]] upscaled (antialias changes nothing when enlarging): row 0 =
    // [0, .25, .75, 1] → normalised 2x-1
    close(&v[..4], &[-1.0, -0.5, 0.5, 1.0]);
    // The same steps one by one.
    let step = resize_bilinear(&to_float(&u).unwrap(), 4, 4).unwrap();
    let step = normalize(&step, &[0.5], &[0.5]).unwrap();
    close(&v, &step.to_vec::<f32>());
}
