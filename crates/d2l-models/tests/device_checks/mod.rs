//! The zoo on the device (GPU issue): each model the CLI trains gives the same loss
//! curve for its first steps on the CPU and on `dev`. Written once, parameterised by the
//! device and a tolerance; `device_sim.rs` runs it on a simulated CUDA device and
//! `cuda_models.rs` on a real GPU when there is one.
//!
//! Each check builds the model, copies its state into a second copy that goes to the
//! device with `Module::to`, then runs 3 SGD steps on one small fixed batch on both,
//! reseeding the global generator before each run so dropout draws the same masks.
//! Inputs are tiny (the sizes of `cnn_zoo.rs`) so the file stays fast.

#![allow(dead_code)]

use d2l_models::fcn::{fcn, seg_loss};
use d2l_models::rnn_lm::{char_models, predict_ch8, LanguageModel};
use d2l_models::ssd::{ssd_loss, BoxLoss, ClsLoss, TinySsd};
use d2l_models::zoo::{self, BuildConfig, TaskKind};
use d2l_nn::clip::clip_grad_norm_;
use d2l_nn::loss::{cross_entropy, mse_loss_with, Reduction};
use d2l_nn::optim::{Optimizer, Sgd};
use d2l_nn::Module;
use d2l_tensor::{manual_seed, Device, Error, Result, Tensor};
use std::sync::{Mutex, MutexGuard};

pub use d2l_testkit::device::det;

/// The tests share the global generator (model init, dropout): each holds this lock.
pub fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Copies every state-dict tensor of `src` into `dst` (same architecture).
pub fn copy_state(src: &dyn Module, dst: &dyn Module) -> Result<()> {
    d2l_testkit::device::copy_tensors(&src.state_dict(), &dst.state_dict())
}

/// Asserts the loss curves agree within `tol` relative.
pub fn assert_curves(name: &str, cpu: &[f64], dev: &[f64], tol: f64) {
    assert_eq!(cpu.len(), dev.len());
    for (i, (a, b)) in cpu.iter().zip(dev).enumerate() {
        assert!(a.is_finite(), "{name}: step {i}: loss {a}");
        let scale = 1.0f64.max(a.abs()).max(b.abs());
        assert!(
            (a - b).abs() <= tol * scale,
            "{name}: step {i}: cpu loss {a} vs device loss {b} (curves {cpu:?} vs {dev:?})"
        );
    }
}

/// 3 SGD steps of `loss(net)` on `net`'s device; the losses, and everything on `dev`.
fn three_steps(
    net: &dyn Module,
    lr: f64,
    seed: u64,
    loss: &dyn Fn() -> Result<Tensor>,
) -> Result<Vec<f64>> {
    let dev = net.device().unwrap_or(Device::Cpu);
    let mut opt = Sgd::new(net.parameters(), lr)?;
    manual_seed(seed);
    let mut out = Vec::new();
    for _ in 0..3 {
        opt.zero_grad();
        let l = loss()?;
        assert_eq!(l.device(), dev, "the loss lives on the model's device");
        l.backward()?;
        clip_grad_norm_(&net.parameters(), 10.0)?;
        opt.step()?;
        out.push(l.item_f64()?);
    }
    for (n, t) in net.state_dict() {
        assert_eq!(t.device(), dev, "{n} left the device");
        if let Some(g) = t.grad() {
            assert_eq!(g.device(), dev, "{n}'s grad left the device");
        }
    }
    Ok(out)
}

/// Tiny input shape, width and batch per zoo model (as `cnn_zoo.rs` walks them).
fn tiny(name: &str) -> (Vec<usize>, f64, usize) {
    match name {
        "linreg" => (vec![2], 1.0, 8),
        "softmax" | "mlp" | "mlp-dropout" => (vec![1, 8, 8], 0.25, 8),
        "lenet" | "lenet-relu-max" => (vec![1, 28, 28], 1.0, 2),
        "lenet-bn-scratch" | "lenet-bn" => (vec![1, 28, 28], 1.0, 4),
        "alexnet" => (vec![1, 99, 99], 1.0 / 32.0, 2),
        "vgg11" | "vgg11-full" => (vec![1, 64, 64], 1.0 / 32.0, 2),
        "nin" => (vec![1, 99, 99], 1.0 / 8.0, 2),
        "googlenet" => (vec![1, 64, 64], 1.0 / 16.0, 2),
        "resnet18" => (vec![1, 64, 64], 1.0 / 16.0, 4),
        "densenet" => (vec![1, 64, 64], 1.0 / 4.0, 4),
        _ => (vec![1, 64, 64], 1.0 / 16.0, 2),
    }
}

/// (b) every zoo model: same 3-step loss curve on the CPU and on `dev`.
pub fn zoo_models_match(dev: Device, tol: f64) -> Result<()> {
    let _g = lock();
    for info in zoo::models() {
        let (shape, width, batch) = tiny(info.name);
        let mut cfg = BuildConfig::new(&shape, info.default_outputs);
        cfg.width_mult = width;
        manual_seed(1);
        let a = info.build(&cfg)?;
        let b = info.build(&cfg)?;
        copy_state(&a, &b)?;
        b.to(dev)?;
        assert_eq!(b.device(), Some(dev), "{}", info.name);
        let mut xs = vec![batch];
        xs.extend_from_slice(&shape);
        let x = det(&xs, 1.0);
        let y = match info.task {
            TaskKind::Classification => Tensor::from_vec(
                (0..batch as i64)
                    .map(|i| (i * 3) % info.default_outputs as i64)
                    .collect(),
                &[batch],
            )?,
            TaskKind::Regression => det(&[batch, info.default_outputs], 2.0),
            other => unreachable!("zoo::models() holds no {other:?} model"),
        };
        let (xd, yd) = (x.to(dev)?, y.to(dev)?);
        let task = info.task;
        let loss = |net: &dyn Module, x: &Tensor, y: &Tensor| -> Result<Tensor> {
            let out = net.forward(x)?;
            match task {
                TaskKind::Classification => cross_entropy(&out, y),
                TaskKind::Regression => mse_loss_with(&out, y, Reduction::Mean),
                other => unreachable!("zoo::models() holds no {other:?} model"),
            }
        };
        let lr = 0.05;
        let ca = three_steps(&a, lr, 7, &|| loss(&a, &x, &y))?;
        let cb = three_steps(&b, lr, 7, &|| loss(&b, &xd, &yd))?;
        assert_curves(info.name, &ca, &cb, tol);
        // A CPU batch for the device model is refused, not silently moved.
        let err = b.forward(&x).expect_err("a CPU batch for a device model");
        assert!(
            matches!(err, Error::DeviceMismatch { .. }),
            "{}: {err:?}",
            info.name
        );
    }
    Ok(())
}

/// Every char-level language model (D2L 8–9): same 3-step curve with clipping, states on
/// the device.
pub fn char_models_match(dev: Device, tol: f64) -> Result<()> {
    let _g = lock();
    let (vocab, hidden, b, t) = (11usize, 8usize, 3usize, 5usize);
    let ids: Vec<i64> = (0..b * t).map(|k| ((k * 7 + 3) % vocab) as i64).collect();
    let x = Tensor::from_vec(ids.clone(), &[b, t])?;
    let y = x.t()?.contiguous()?.reshape([t * b])?; // the targets' row order
    for info in char_models() {
        manual_seed(2);
        let a = info.build(vocab, hidden)?;
        let bm = info.build(vocab, hidden)?;
        copy_state(a.as_ref(), bm.as_ref())?;
        bm.to(dev)?;
        let s = bm.begin_state(b)?;
        for st in s.tensors() {
            assert_eq!(st.device(), dev, "{}: begin_state", info.name);
        }
        let (xd, yd) = (x.to(dev)?, y.to(dev)?);
        let loss = |m: &dyn LanguageModel, x: &Tensor, y: &Tensor| -> Result<Tensor> {
            let state = m.begin_state(b)?;
            let (logits, _) = m.forward_with_state(x, Some(&state))?;
            cross_entropy(&logits, y)
        };
        let ca = three_steps(a.as_ref(), 1.0, 3, &|| loss(a.as_ref(), &x, &y))?;
        let cb = three_steps(bm.as_ref(), 1.0, 3, &|| loss(bm.as_ref(), &xd, &yd))?;
        assert_curves(info.name, &ca, &cb, tol);
        let (_, state) = bm.forward_with_state(&xd, None)?;
        for st in state.tensors() {
            assert_eq!(st.device(), dev, "{}: final state", info.name);
        }
        // Greedy prediction feeds its tokens on the model's device.
        let text = "abcdefghij ";
        let vocab = d2l_data::text::Vocab::new(text.chars().map(|c| c.to_string()), 0, &[]);
        let small_a = info.build(vocab.len(), hidden)?;
        let small_b = info.build(vocab.len(), hidden)?;
        copy_state(small_a.as_ref(), small_b.as_ref())?;
        small_b.to(dev)?;
        let pa = predict_ch8("abc", 6, small_a.as_ref(), &vocab)?;
        let pb = predict_ch8("abc", 6, small_b.as_ref(), &vocab)?;
        assert_eq!(pa, pb, "{}: predict_ch8", info.name);
    }
    Ok(())
}

/// TinySSD with `multibox_target` and `ssd_loss` on 64×64 images.
pub fn tiny_ssd_matches(dev: Device, tol: f64) -> Result<()> {
    let _g = lock();
    manual_seed(3);
    let a = TinySsd::new(1, d2l_vision::detection::multibox_prior)?;
    let b = TinySsd::new(1, d2l_vision::detection::multibox_prior)?;
    copy_state(&a, &b)?;
    b.to(dev)?;
    let x = det(&[2, 3, 64, 64], 4.0);
    let labels = Tensor::from_vec(
        vec![0.0f32, 0.1, 0.1, 0.5, 0.6, 0.0, 0.3, 0.2, 0.9, 0.8],
        &[2, 1, 5],
    )?;
    let (xd, ld) = (x.to(dev)?, labels.to(dev)?);
    let loss = |m: &TinySsd, x: &Tensor, l: &Tensor| -> Result<Tensor> {
        let out = m.forward_ssd(x)?;
        assert_eq!(
            out.anchors.device(),
            x.device(),
            "anchors on the input's device"
        );
        let (bbox_labels, bbox_masks, cls_labels) =
            d2l_vision::detection::multibox_target(&out.anchors, l)?;
        ssd_loss(
            &out.cls_preds,
            &cls_labels,
            &out.bbox_preds,
            &bbox_labels,
            &bbox_masks,
            ClsLoss::CrossEntropy,
            BoxLoss::L1,
        )?
        .mean_all()
    };
    let ca = three_steps(&a, 0.2, 4, &|| loss(&a, &x, &labels))?;
    let cb = three_steps(&b, 0.2, 4, &|| loss(&b, &xd, &ld))?;
    assert_curves("TinySSD", &ca, &cb, tol);
    Ok(())
}

/// FCN (ResNet-18 body, bilinear transposed conv) on two 64×64 images: the bottleneck is
/// 2×2, so BatchNorm normalises 8 values per channel there (with 1×1 it normalised 2,
/// which magnifies a last-bit difference of the loss's gradient into a 5e-4 change of
/// the next loss). Even at 2×2 the magnification stays: with two threads the CPU and the
/// simulated device agree to 2e-7 after the first step and to 1.1e-4 after the second
/// (the products of the 2×2 maps have 4 columns and take the direct small-side GEMM), so
/// the check allows at least `FCN_TOL` relative — a wrong kernel moves the loss by far
/// more.
pub fn fcn_matches(dev: Device, tol: f64) -> Result<()> {
    let tol = tol.max(FCN_TOL);
    let _g = lock();
    manual_seed(5);
    let a = fcn(2, None)?;
    let b = fcn(2, None)?;
    copy_state(&a, &b)?;
    b.to(dev)?;
    let x = det(&[2, 3, 64, 64], 6.0);
    let y = Tensor::from_vec(
        (0..2 * 64 * 64)
            .map(|i| ((i / 7) % 2) as i64)
            .collect::<Vec<_>>(),
        &[2, 64, 64],
    )?;
    let (xd, yd) = (x.to(dev)?, y.to(dev)?);
    let loss = |m: &dyn Module, x: &Tensor, y: &Tensor| -> Result<Tensor> {
        seg_loss(&m.forward(x)?, y)?.sum_all()
    };
    let ca = three_steps(&a, 0.01, 6, &|| loss(&a, &x, &y))?;
    let cb = three_steps(&b, 0.01, 6, &|| loss(&b, &xd, &yd))?;
    assert_curves("FCN", &ca, &cb, tol);
    Ok(())
}

/// The least relative tolerance of [`fcn_matches`] (see there).
pub const FCN_TOL: f64 = 5e-4;

/// `summarize` walks a device model with a device probe batch.
pub fn summary_of_a_device_model(dev: Device) -> Result<()> {
    let _g = lock();
    let info = zoo::model("lenet")?;
    let net = info.build(&info.default_config())?;
    net.to(dev)?;
    let s = d2l_models::summary::summarize(&net, &[1, 28, 28])?;
    assert!(!s.rows.is_empty());
    Ok(())
}

/// Declares every check of this file as a test on `$device` (a
/// `fn(&str) -> Option<Device>` of `d2l_testkit::device`) with relative tolerance `$tol`.
macro_rules! tests_on {
    ($device:path, $tol:expr) => {
        d2l_testkit::device_tests! { $device;
            zoo_models_give_the_same_first_losses_on_the_device => |d| {
                device_checks::zoo_models_match(d, $tol)
            },
            char_models_give_the_same_first_losses_on_the_device => |d| {
                device_checks::char_models_match(d, $tol)
            },
            tiny_ssd_gives_the_same_first_losses_on_the_device => |d| {
                device_checks::tiny_ssd_matches(d, $tol)
            },
            fcn_gives_the_same_first_losses_on_the_device => |d| {
                device_checks::fcn_matches(d, $tol)
            },
            summaries_of_device_models => device_checks::summary_of_a_device_model,
        }
    };
}
pub(crate) use tests_on;
