//! The d2l-vision device checks (GPU issue), parameterised by a device and a tolerance:
//! RoI pooling / align forward and backward, the multibox ops, the upsampling helpers and
//! the style-transfer image and loss functions give the CPU's results on `dev`, put their
//! results there, and refuse tensors on two devices.

#![allow(dead_code)]

use d2l_tensor::{Device, Error, Result, Tensor};
use d2l_vision::{detection, roi, style, upsample};

pub use d2l_testkit::device::{det, expect_mismatch};

/// `a` (CPU) and `b` (any device) agree within `tol` relative.
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) {
    d2l_testkit::device::assert_close_with(what, a, b, tol, false)
}

fn rois() -> Tensor {
    Tensor::from_vec(
        vec![
            0.0f32, 0.0, 0.0, 7.0, 7.0, //
            1.0, 2.0, 1.0, 9.5, 6.0, //
            0.0, 3.3, 2.2, 5.1, 9.9,
        ],
        &[3, 5],
    )
    .unwrap()
}

/// RoI pool and RoI align: forward and input gradient on `dev` equal the CPU's.
pub fn roi_ops_match(dev: Device, tol: f64) -> Result<()> {
    let x = det(&[2, 3, 10, 10], 1.0);
    type RoiFn = Box<dyn Fn(&Tensor, &Tensor) -> Result<Tensor>>;
    let ops: Vec<(&str, RoiFn)> = vec![
        (
            "roi_pool",
            Box::new(|x, r| roi::roi_pool(x, r, (2, 2), 1.0)),
        ),
        (
            "roi_align",
            Box::new(|x, r| roi::roi_align(x, r, (3, 2), 1.0, 2, false)),
        ),
        (
            "roi_align(aligned, adaptive)",
            Box::new(|x, r| roi::roi_align(x, r, (2, 2), 0.5, -1, true)),
        ),
    ];
    for (name, f) in ops {
        let xa = x.detach().requires_grad_(true)?;
        let xb = x.to(dev)?.requires_grad_(true)?;
        let ya = f(&xa, &rois())?;
        let yb = f(&xb, &rois().to(dev)?)?;
        assert_eq!(yb.device(), dev, "{name}");
        assert_close(name, &ya, &yb, tol);
        d2l_testkit::device::assert_input_grads_agree(
            name,
            [&xa, &ya],
            [&xb, &yb],
            2.0,
            tol,
            false,
        )?;
        let err = f(&xb, &rois()).expect_err("rois on the CPU");
        expect_mismatch(name, &err, dev);
    }
    let (_, arg) = roi::roi_pool_with_argmax(&x.to(dev)?, &rois().to(dev)?, (2, 2), 1.0)?;
    assert_eq!(arg.device(), dev);
    Ok(())
}

/// The multibox ops that take tensors put their results on the inputs' device.
pub fn multibox_ops_match(dev: Device, tol: f64) -> Result<()> {
    let img = det(&[1, 3, 8, 8], 3.0);
    let anchors = detection::multibox_prior_for(&img, &[0.75, 0.5], &[1.0, 2.0])?;
    let anchors_d = detection::multibox_prior_for(&img.to(dev)?, &[0.75, 0.5], &[1.0, 2.0])?;
    assert_eq!(anchors_d.device(), dev);
    assert_close("multibox_prior", &anchors, &anchors_d, tol);
    let na = anchors.shape()[1];
    let labels = Tensor::from_vec(
        vec![
            0.0f32, 0.1, 0.08, 0.52, 0.92, 1.0, 0.55, 0.2, 0.9, 0.88, -1.0, 0.0, 0.0, 0.0, 0.0,
        ],
        &[1, 3, 5],
    )?;
    let (o, m, c) = detection::multibox_target(&anchors, &labels)?;
    let (od, md, cd) = detection::multibox_target(&anchors_d, &labels.to(dev)?)?;
    for (n, a, b) in [
        ("offsets", &o, &od),
        ("mask", &m, &md),
        ("classes", &c, &cd),
    ] {
        assert_eq!(b.device(), dev, "multibox_target {n}");
        assert_close(n, a, b, tol);
    }
    let err = detection::multibox_target(&anchors_d, &labels).expect_err("labels on the CPU");
    expect_mismatch("multibox_target", &err, dev);

    let cls = det(&[1, 3, na], 4.0).softmax(1)?;
    let off = det(&[1, 4 * na], 5.0).mul_scalar(0.1)?;
    let out = detection::multibox_detection(&cls, &off, &anchors, 0.5, 0.009)?;
    let out_d =
        detection::multibox_detection(&cls.to(dev)?, &off.to(dev)?, &anchors_d, 0.5, 0.009)?;
    assert_eq!(out_d.device(), dev);
    assert_close("multibox_detection", &out, &out_d, tol);
    let err = detection::multibox_detection(&cls, &off.to(dev)?, &anchors_d, 0.5, 0.009)
        .expect_err("mixed devices");
    assert!(matches!(err, Error::DeviceMismatch { .. }));

    let a2 = anchors.reshape([na, 4])?;
    let a2d = anchors_d.reshape([na, 4])?;
    let iou = detection::box_iou(&a2, &a2)?;
    let iou_d = detection::box_iou(&a2d, &a2d)?;
    assert_eq!(iou_d.device(), dev);
    assert_close("box_iou", &iou, &iou_d, tol);
    expect_mismatch("box_iou", &detection::box_iou(&a2d, &a2).unwrap_err(), dev);
    let c2 = detection::box_corner_to_center(&a2d)?;
    assert_eq!(c2.device(), dev);
    assert_close(
        "corner_to_center",
        &detection::box_corner_to_center(&a2)?,
        &c2,
        tol,
    );
    let back = detection::box_center_to_corner(&c2)?;
    assert_eq!(back.device(), dev);
    let offs = det(&[na, 4], 6.0).mul_scalar(0.1)?;
    let inv = detection::offset_inverse(&a2, &offs)?;
    let inv_d = detection::offset_inverse(&a2d, &offs.to(dev)?)?;
    assert_eq!(inv_d.device(), dev);
    assert_close("offset_inverse", &inv, &inv_d, tol);
    let ob = detection::offset_boxes(&a2d, &inv_d, detection::OFFSET_EPS)?;
    assert_eq!(ob.device(), dev);
    assert_close(
        "offset_boxes",
        &detection::offset_boxes(&a2, &inv, detection::OFFSET_EPS)?,
        &ob,
        tol,
    );
    let keep = detection::nms(&a2d, &det(&[na], 7.0).to(dev)?, 0.5)?;
    assert_eq!(keep, detection::nms(&a2, &det(&[na], 7.0), 0.5)?);
    Ok(())
}

/// Upsampling helpers and the style-transfer functions on the device.
pub fn upsample_and_style_match(dev: Device, tol: f64) -> Result<()> {
    let img = det(&[3, 4, 5], 8.0);
    let up = upsample::upsample_bilinear(&img, 2)?;
    let up_d = upsample::upsample_bilinear(&img.to(dev)?, 2)?;
    assert_eq!(up_d.device(), dev);
    assert_close("upsample_bilinear", &up, &up_d, tol);
    let x = det(&[4, 4], 9.0);
    let k = det(&[2, 2], 10.0);
    let c = upsample::corr2d(&x.to(dev)?, &k.to(dev)?)?;
    assert_eq!(c.device(), dev);
    assert_close("corr2d", &upsample::corr2d(&x, &k)?, &c, tol);
    expect_mismatch(
        "corr2d",
        &upsample::corr2d(&x.to(dev)?, &k).unwrap_err(),
        dev,
    );
    let t = upsample::trans_conv(&x.to(dev)?, &k.to(dev)?)?;
    assert_eq!(t.device(), dev);
    let km = upsample::kernel2matrix(&k.to(dev)?, 3, 3)?;
    assert_eq!(km.device(), dev);

    let im = det(&[1, 3, 6, 6], 11.0);
    let p = style::postprocess(&im.to(dev)?)?;
    assert_eq!(p.device(), dev);
    assert_close("postprocess", &style::postprocess(&im)?, &p, tol);
    let y = det(&[1, 3, 6, 6], 12.0);
    let xa = im.detach().requires_grad_(true)?;
    let xb = im.to(dev)?.requires_grad_(true)?;
    let total = |x: &Tensor, y: &Tensor| -> Result<Tensor> {
        style::content_loss(x, y)?
            .add(&style::style_loss(x, &style::gram(y)?)?)?
            .add(&style::tv_loss(x)?)
    };
    let la = total(&xa, &y)?;
    let lb = total(&xb, &y.to(dev)?)?;
    assert_eq!(lb.device(), dev);
    assert_close("style losses", &la, &lb, tol);
    la.backward()?;
    lb.backward()?;
    assert_close("style grad", &xa.grad().unwrap(), &xb.grad().unwrap(), tol);
    assert_eq!(xb.grad().unwrap().device(), dev);
    Ok(())
}
