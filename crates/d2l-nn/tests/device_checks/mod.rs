//! The d2l-nn "zoo on the device" checks (GPU issue), written once and parameterised by
//! a device and a tolerance: `device_sim.rs` runs them on a simulated CUDA device
//! (`D2L_SIMULATE_CUDA=1`, the CPU kernels, so CPU and device agree to rounding), and a
//! binary on a real GPU can run them on `cuda:0` with a looser tolerance.
//!
//! Every layer check builds the layer twice, copies the first one's state into the
//! second, moves the second to the device with `Module::to`, runs the same input through
//! both, backpropagates the same weighted sum, and compares outputs, input gradients
//! and every parameter gradient; everything computed on the device must report it.

#![allow(dead_code)]

use d2l_nn::clip::clip_grad_norm_;
use d2l_nn::conv::{Conv2d, ConvTranspose2d};
use d2l_nn::layers::{
    Dropout, Embedding, Flatten, LayerNorm, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Tanh,
};
use d2l_nn::loss::{self, CrossEntropyOptions, Reduction};
use d2l_nn::norm::{BatchNorm1d, BatchNorm2d};
use d2l_nn::optim::{Adagrad, Adam, AdamW, Optimizer, RmsProp, Sgd};
use d2l_nn::pool::{AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d};
use d2l_nn::rnn::{Recurrent, GRU, LSTM, RNN};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{DType, Device, Error, Result, Tensor};

use d2l_testkit::device::{assert_close_with, assert_input_grads_agree, copy_tensors};
pub use d2l_testkit::device::{det, expect_mismatch};

/// Whether `a` (CPU) and `b` (any device) agree within `tol` relative (two NaNs agree).
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f64) {
    assert_close_with(what, a, b, tol, true)
}

/// Copies every state-dict tensor of `src` into `dst` (same architecture).
pub fn copy_state(src: &dyn Module, dst: &dyn Module) -> Result<()> {
    copy_tensors(&src.state_dict(), &dst.state_dict())
}

/// Asserts that every parameter and buffer of `m` lives on `dev`.
pub fn assert_on(m: &dyn Module, dev: Device) {
    for (n, t) in m.state_dict() {
        assert_eq!(t.device(), dev, "{n} is on {} instead of {dev}", t.device());
        if let Some(g) = t.grad() {
            assert_eq!(g.device(), dev, "{n}'s grad is on {}", g.device());
        }
    }
}

/// The core layer check: forward + backward of `make()` on the CPU and on `dev` from the
/// same weights and input agree, and everything on the device reports it.
pub fn check_layer(
    name: &str,
    make: &dyn Fn() -> Result<Box<dyn Module>>,
    x: &Tensor,
    train: bool,
    dev: Device,
    tol: f64,
) -> Result<()> {
    let a = make()?;
    let b = make()?;
    copy_state(a.as_ref(), b.as_ref())?;
    b.to(dev)?;
    assert_on(b.as_ref(), dev);
    if !b.state_dict().is_empty() {
        assert_eq!(b.device(), Some(dev), "{name}: Module::device");
    }
    if train {
        a.train();
        b.train();
    } else {
        a.eval();
        b.eval();
    }
    let float = x.dtype().is_float();
    let xa = if float {
        x.detach().requires_grad_(true)?
    } else {
        x.clone()
    };
    let xb = if float {
        x.to(dev)?.requires_grad_(true)?
    } else {
        x.to(dev)?
    };
    let ya = a.forward(&xa)?;
    let yb = b.forward(&xb)?;
    assert_eq!(yb.device(), dev, "{name}: output device");
    assert_close(&format!("{name}: output"), &ya, &yb, tol);
    let w = det(ya.shape(), 3.0);
    ya.mul(&w)?.sum_all()?.backward()?;
    let lb = yb.mul(&w.to(dev)?)?.sum_all()?;
    assert_eq!(lb.device(), dev);
    lb.backward()?;
    if float {
        let (ga, gb) = (xa.grad().unwrap(), xb.grad().unwrap());
        assert_eq!(gb.device(), dev, "{name}: input grad device");
        assert_close(&format!("{name}: input grad"), &ga, &gb, tol);
    }
    for ((n, pa), (_, pb)) in a.named_parameters().iter().zip(b.named_parameters()) {
        match (pa.grad(), pb.grad()) {
            (Some(ga), Some(gb)) => {
                assert_eq!(gb.device(), dev, "{name}.{n}: grad device");
                assert_close(&format!("{name}.{n}: grad"), &ga, &gb, tol);
            }
            (None, None) => {}
            _ => panic!("{name}.{n}: a grad exists on one device only"),
        }
    }
    // Buffers (running statistics) evolve identically.
    for ((n, ta), (_, tb)) in a.state_dict().iter().zip(b.state_dict()) {
        assert_eq!(tb.device(), dev, "{name}.{n}: device after the step");
        assert_close(&format!("{name}.{n}: state"), ta, &tb, tol);
    }
    // The moved layer refuses a CPU input with an error naming both devices.
    if !b.parameters().is_empty() {
        let err = b
            .forward(x)
            .expect_err("a CPU input to a device layer must fail");
        expect_mismatch(name, &err, dev);
    }
    Ok(())
}

/// Cross-entropy of `x` against the targets `o[0]` with the class weights `o[1]` and
/// label smoothing `label_smoothing`.
fn weighted_cross_entropy(x: &Tensor, o: &[Tensor], label_smoothing: f64) -> Result<Tensor> {
    let options = CrossEntropyOptions {
        weight: Some(o[1].clone()),
        label_smoothing,
        ..Default::default()
    };
    loss::cross_entropy_with(x, &o[0], &options)
}

fn boxed<M: Module + 'static>(m: Result<M>) -> Result<Box<dyn Module>> {
    Ok(Box::new(m?))
}

/// (a) every layer type, forward and backward, CPU vs `dev`.
pub fn layers_match(dev: Device, tol: f64) -> Result<()> {
    let x2 = det(&[4, 6], 0.0);
    let x4 = det(&[2, 3, 6, 6], 1.0);
    check_layer("Linear", &|| boxed(Linear::new(6, 5)), &x2, true, dev, tol)?;
    check_layer(
        "Linear(no bias)",
        &|| boxed(Linear::with_bias(6, 5, false)),
        &x2,
        true,
        dev,
        tol,
    )?;
    check_layer(
        "Conv2d",
        &|| boxed(Conv2d::builder(3, 4, 3).padding(1).stride(2).build()),
        &x4,
        true,
        dev,
        tol,
    )?;
    check_layer(
        "ConvTranspose2d",
        &|| {
            boxed(
                ConvTranspose2d::builder(3, 2, 4)
                    .padding(1)
                    .stride(2)
                    .build(),
            )
        },
        &x4,
        true,
        dev,
        tol,
    )?;
    check_layer(
        "MaxPool2d",
        &|| boxed(Ok(MaxPool2d::new(2))),
        &x4,
        true,
        dev,
        tol,
    )?;
    check_layer(
        "AvgPool2d",
        &|| boxed(Ok(AvgPool2d::new(3).stride(2).padding(1))),
        &x4,
        true,
        dev,
        tol,
    )?;
    check_layer(
        "AdaptiveAvgPool2d",
        &|| boxed(Ok(AdaptiveAvgPool2d::new(1))),
        &x4,
        true,
        dev,
        tol,
    )?;
    check_layer(
        "AdaptiveMaxPool2d",
        &|| boxed(Ok(AdaptiveMaxPool2d::new(2))),
        &x4,
        true,
        dev,
        tol,
    )?;
    for train in [true, false] {
        check_layer(
            "BatchNorm1d",
            &|| boxed(BatchNorm1d::new(6)),
            &x2,
            train,
            dev,
            tol,
        )?;
        check_layer(
            "BatchNorm2d",
            &|| boxed(BatchNorm2d::new(3)),
            &x4,
            train,
            dev,
            tol,
        )?;
    }
    check_layer(
        "LayerNorm",
        &|| boxed(LayerNorm::new(&[6])),
        &x2,
        true,
        dev,
        tol,
    )?;
    check_layer(
        "Dropout(0)",
        &|| boxed(Dropout::new(0.0)),
        &x2,
        true,
        dev,
        tol,
    )?;
    check_layer(
        "Dropout(eval)",
        &|| boxed(Dropout::new(0.5)),
        &x2,
        false,
        dev,
        tol,
    )?;
    check_layer(
        "Flatten",
        &|| boxed(Ok(Flatten::new())),
        &x4,
        true,
        dev,
        tol,
    )?;
    check_layer("ReLU", &|| boxed(Ok(ReLU)), &x2, true, dev, tol)?;
    check_layer("Sigmoid", &|| boxed(Ok(Sigmoid)), &x2, true, dev, tol)?;
    check_layer("Tanh", &|| boxed(Ok(Tanh)), &x2, true, dev, tol)?;
    check_layer(
        "LeakyReLU",
        &|| boxed(Ok(LeakyReLU::new(0.1))),
        &x2,
        true,
        dev,
        tol,
    )?;
    check_layer(
        "Softmax",
        &|| boxed(Ok(Softmax::new(1))),
        &x2,
        true,
        dev,
        tol,
    )?;
    let ids = Tensor::from_vec(vec![0i64, 3, 2, 7, 7, 1], &[2, 3])?;
    check_layer(
        "Embedding",
        &|| boxed(Embedding::new(8, 5)),
        &ids,
        true,
        dev,
        tol,
    )?;
    let seq = det(&[5, 3, 4], 2.0); // [T, B, I]
    check_layer("RNN", &|| boxed(RNN::new(4, 6)), &seq, true, dev, tol)?;
    check_layer("GRU", &|| boxed(GRU::new(4, 6)), &seq, true, dev, tol)?;
    check_layer("LSTM", &|| boxed(LSTM::new(4, 6)), &seq, true, dev, tol)?;
    check_layer(
        "Sequential",
        &|| {
            boxed(Ok(Sequential::new()
                .add(Conv2d::builder(3, 4, 3).padding(1).build()?)
                .add(BatchNorm2d::new(4)?)
                .add(ReLU)
                .add(MaxPool2d::new(2))
                .add(Flatten::new())
                .add(Linear::new(36, 3)?)))
        },
        &x4,
        true,
        dev,
        tol,
    )?;
    Ok(())
}

/// Dropout in training mode draws its mask on the device: zeros or scaled inputs, and
/// the gradient is the same mask.
pub fn dropout_mask_on_device(dev: Device) -> Result<()> {
    let x = det(&[8, 16], 4.0)
        .add_scalar(2.0)?
        .to(dev)?
        .requires_grad_(true)?;
    for layer in [
        Box::new(Dropout::new(0.5)?) as Box<dyn Module>,
        Box::new(d2l_nn::norm::Dropout2d::new(0.5)?),
    ] {
        layer.train();
        let x = if layer.describe().contains("2d") {
            x.reshape([2, 4, 4, 4])?
        } else {
            x.clone()
        };
        let y = layer.forward(&x)?;
        assert_eq!(y.device(), dev);
        let (xv, yv) = (x.to_f64_vec(), y.to_f64_vec());
        for (a, b) in xv.iter().zip(&yv) {
            assert!(*b == 0.0 || (b - 2.0 * a).abs() < 1e-5, "{a} -> {b}");
        }
    }
    let y = d2l_nn::layers::functional::dropout(&x, 0.5, true)?;
    y.sum_all()?.backward()?;
    let g = x.grad().unwrap();
    assert_eq!(g.device(), dev);
    for (gv, yv) in g.to_f64_vec().iter().zip(y.to_f64_vec()) {
        assert!((*gv == 0.0) == (yv == 0.0));
    }
    Ok(())
}

/// Recurrent layers: `begin_state` and the final state live on the device, and a state
/// given on the wrong device is an error.
pub fn rnn_states_on_device(dev: Device, tol: f64) -> Result<()> {
    let seq = det(&[4, 2, 3], 5.0);
    type MakeRnn<'a> = &'a dyn Fn() -> Result<Box<dyn Recurrent>>;
    let makers: [(&str, MakeRnn); 3] = [
        ("RNN", &|| Ok(Box::new(RNN::new(3, 5)?))),
        ("GRU", &|| Ok(Box::new(GRU::new(3, 5)?))),
        ("LSTM", &|| Ok(Box::new(LSTM::new(3, 5)?))),
    ];
    for (name, make) in makers {
        let a = make()?;
        let b = make()?;
        copy_state(a.as_ref(), b.as_ref())?;
        b.to(dev)?;
        let s = b.begin_state(2)?;
        for t in s.tensors() {
            assert_eq!(t.device(), dev, "{name}: begin_state");
        }
        let (ya, sa) = a.forward_with_state(&seq, Some(&a.begin_state(2)?))?;
        let (yb, sb) = b.forward_with_state(&seq.to(dev)?, Some(&s))?;
        assert_close(&format!("{name}: output"), &ya, &yb, tol);
        for (ta, tb) in sa.tensors().into_iter().zip(sb.tensors()) {
            assert_eq!(tb.device(), dev);
            assert_close(&format!("{name}: state"), ta, tb, tol);
        }
        // A CPU state for a device layer.
        let err = b
            .forward_with_state(&seq.to(dev)?, Some(&a.begin_state(2)?))
            .expect_err("a CPU state must be refused");
        expect_mismatch(name, &err, dev);
    }
    Ok(())
}

/// Losses: value and input gradient agree, and the results live on the device.
pub fn losses_match(dev: Device, tol: f64) -> Result<()> {
    let yhat = det(&[6, 4], 6.0);
    let y = det(&[6, 4], 7.0);
    let probs = yhat.sigmoid()?;
    let targets01 = y.gt_scalar(0.0)?.to_dtype(DType::F32)?;
    let labels = Tensor::from_vec(vec![0i64, 3, 1, 2, 3, 0], &[6])?;
    let labels_ign = Tensor::from_vec(vec![0i64, -100, 1, 2, 3, 0], &[6])?;
    let class_w = Tensor::from_vec(vec![1.0f32, 0.5, 2.0, 1.5], &[4])?;
    let soft = det(&[6, 4], 8.0).softmax(1)?;
    type LossFn = Box<dyn Fn(&Tensor, &[Tensor]) -> Result<Tensor>>;
    let cases: Vec<(&str, Tensor, Vec<Tensor>, LossFn)> = vec![
        (
            "mse",
            yhat.clone(),
            vec![y.clone()],
            Box::new(|x, o| loss::mse_loss_with(x, &o[0], Reduction::Mean)),
        ),
        (
            "l1",
            yhat.clone(),
            vec![y.clone()],
            Box::new(|x, o| loss::l1_loss(x, &o[0], Reduction::Sum)),
        ),
        (
            "smooth_l1",
            yhat.clone(),
            vec![y.clone()],
            Box::new(|x, o| loss::smooth_l1_loss(x, &o[0], 0.5, Reduction::Mean)),
        ),
        (
            "huber",
            yhat.clone(),
            vec![y.clone()],
            Box::new(|x, o| loss::huber_loss(x, &o[0], 0.5, Reduction::Mean)),
        ),
        (
            "cross_entropy",
            yhat.clone(),
            vec![labels.clone()],
            Box::new(|x, o| loss::cross_entropy(x, &o[0])),
        ),
        (
            "cross_entropy(none, ignore)",
            yhat.clone(),
            vec![labels_ign.clone()],
            Box::new(|x, o| {
                loss::cross_entropy_with(
                    x,
                    &o[0],
                    &CrossEntropyOptions {
                        reduction: Reduction::None,
                        ..Default::default()
                    },
                )
            }),
        ),
        (
            "cross_entropy(weight, smoothing)",
            yhat.clone(),
            vec![labels.clone(), class_w.clone()],
            Box::new(|x, o| weighted_cross_entropy(x, o, 0.1)),
        ),
        (
            "cross_entropy(weight)",
            yhat.clone(),
            vec![labels.clone(), class_w.clone()],
            Box::new(|x, o| weighted_cross_entropy(x, o, 0.0)),
        ),
        (
            "cross_entropy(probabilities)",
            yhat.clone(),
            vec![soft.clone(), class_w.clone()],
            Box::new(|x, o| weighted_cross_entropy(x, o, 0.0)),
        ),
        (
            "nll",
            yhat.clone(),
            vec![labels.clone()],
            Box::new(|x, o| {
                loss::nll_loss(&x.log_softmax(1)?, &o[0], None, Some(-100), Reduction::Mean)
            }),
        ),
        (
            "bce",
            probs.clone(),
            vec![targets01.clone()],
            Box::new(|x, o| loss::binary_cross_entropy(x, &o[0], None, Reduction::Mean)),
        ),
        (
            "bce_with_logits",
            yhat.clone(),
            vec![targets01.clone()],
            Box::new(|x, o| {
                loss::binary_cross_entropy_with_logits(x, &o[0], None, Reduction::Mean)
            }),
        ),
    ];
    for (name, input, others, f) in cases {
        let xa = input.detach().requires_grad_(true)?;
        let xb = input.to(dev)?.requires_grad_(true)?;
        let la = f(&xa, &others)?;
        let others_dev = others
            .iter()
            .map(|t| t.to(dev))
            .collect::<Result<Vec<_>>>()?;
        let lb = f(&xb, &others_dev)?;
        assert_eq!(lb.device(), dev, "{name}: loss device");
        assert_close(&format!("{name}: value"), &la, &lb, tol);
        assert_input_grads_agree(name, [&xa, &la], [&xb, &lb], 9.0, tol, true)?;
        // Targets left on the CPU are refused, not silently used.
        if let Err(e) = f(&xb, &others) {
            expect_mismatch(name, &e, dev);
        } else {
            panic!("{name}: a CPU target with a device input must be an error");
        }
    }
    Ok(())
}

/// Each optimiser: 3 steps (with gradient clipping) on both devices give the same
/// parameters, and the state stays on the device.
pub fn optimizers_match(dev: Device, tol: f64) -> Result<()> {
    type MakeOpt = Box<dyn Fn(Vec<Tensor>) -> Result<Box<dyn Optimizer>>>;
    let opts: Vec<(&str, MakeOpt)> = vec![
        ("sgd", Box::new(|p| Ok(Box::new(Sgd::new(p, 0.1)?)))),
        (
            "sgd(momentum, wd, nesterov)",
            Box::new(|p| {
                Ok(Box::new(
                    Sgd::new(p, 0.1)?
                        .momentum(0.9)
                        .nesterov(true)
                        .weight_decay(1e-2),
                ))
            }),
        ),
        (
            "adam",
            Box::new(|p| Ok(Box::new(Adam::new(p, 0.01)?.weight_decay(1e-3)))),
        ),
        (
            "adam(amsgrad)",
            Box::new(|p| Ok(Box::new(Adam::new(p, 0.01)?.amsgrad(true)))),
        ),
        ("adamw", Box::new(|p| Ok(Box::new(AdamW::new(p, 0.01)?)))),
        (
            "rmsprop",
            Box::new(|p| {
                Ok(Box::new(
                    RmsProp::new(p, 0.01)?.momentum(0.5).centered(true),
                ))
            }),
        ),
        (
            "adagrad",
            Box::new(|p| Ok(Box::new(Adagrad::new(p, 0.1)?.lr_decay(0.01)))),
        ),
    ];
    let x = det(&[8, 5], 10.0);
    let y = det(&[8, 2], 11.0);
    for (name, make_opt) in opts {
        let make = || -> Result<Sequential> {
            Ok(Sequential::new()
                .add(Linear::new(5, 7)?)
                .add(BatchNorm1d::new(7)?)
                .add(ReLU)
                .add(Linear::new(7, 2)?))
        };
        let (a, b) = (make()?, make()?);
        copy_state(&a, &b)?;
        b.to(dev)?;
        let mut oa = make_opt(a.parameters())?;
        let mut ob = make_opt(b.parameters())?;
        let (xb, yb) = (x.to(dev)?, y.to(dev)?);
        for step in 0..3 {
            for (m, o, x, y) in [(&a, &mut oa, &x, &y), (&b, &mut ob, &xb, &yb)] {
                o.zero_grad();
                let l = loss::mse_loss_with(&m.forward(x)?, y, Reduction::Mean)?;
                l.backward()?;
                clip_grad_norm_(&m.parameters(), 0.5)?;
                o.step()?;
            }
            for ((n, ta), (_, tb)) in a.state_dict().iter().zip(b.state_dict()) {
                assert_eq!(tb.device(), dev, "{name} step {step}: {n}");
                assert_close(&format!("{name} step {step}: {n}"), ta, &tb, tol);
            }
        }
        assert_on(&b, dev);
    }
    Ok(())
}

/// `Module::to` moves every parameter, buffer and gradient (shared ones once), back to
/// the CPU too; an unavailable device is an error that moves nothing.
pub fn module_to_moves_everything(dev: Device) -> Result<()> {
    let shared = std::sync::Arc::new(Linear::new(4, 4)?);
    let net = Sequential::new()
        .add_shared(shared.clone())
        .add(BatchNorm1d::new(4)?)
        .add_shared(shared.clone())
        .add(ReLU);
    let x = det(&[3, 4], 12.0);
    net.forward(&x)?.sum_all()?.backward()?;
    assert_eq!(net.device(), Some(Device::Cpu));
    assert_eq!(ReLU.device(), None);
    let before: Vec<Vec<f64>> = net
        .state_dict()
        .iter()
        .map(|(_, t)| t.to_f64_vec())
        .collect();
    let opt_view = net.parameters(); // handles held elsewhere (an optimiser) move too
    net.to(dev)?;
    assert_eq!(net.device(), Some(dev));
    assert_on(&net, dev);
    for p in &opt_view {
        assert_eq!(p.device(), dev);
    }
    assert_eq!(shared.weight.device(), dev);
    let after: Vec<Vec<f64>> = net
        .state_dict()
        .iter()
        .map(|(_, t)| t.to_f64_vec())
        .collect();
    assert_eq!(before, after, "values survive the move");
    // A forward + backward on the device accumulates onto the moved grads.
    net.forward(&x.to(dev)?)?.sum_all()?.backward()?;
    assert_on(&net, dev);
    // Moving to a device that is not there fails before anything moves.
    let err = net
        .to(Device::Cuda(99))
        .expect_err("cuda:99 does not exist");
    assert!(matches!(err, Error::DeviceUnavailable { .. }), "{err:?}");
    assert_on(&net, dev);
    net.to(Device::Cpu)?;
    assert_on(&net, Device::Cpu);
    assert_eq!(net.device(), Some(Device::Cpu));
    net.forward(&x)?;
    // Initialisers sample on the host and write through `copy_`: the parameter stays.
    let l = Linear::new(4, 3)?;
    l.to(dev)?;
    d2l_nn::init::xavier_uniform_(&l.weight, 1.0)?;
    d2l_nn::init::kaiming_normal_(&l.weight, 0.0, d2l_nn::init::FanMode::FanIn, "relu")?;
    d2l_nn::init::normal_(&l.weight, 0.0, 0.01)?;
    d2l_nn::init::zeros_(l.bias.as_ref().unwrap())?;
    assert_on(&l, dev);
    // A lazy layer materialises its parameters on its first batch's device.
    let lazy = d2l_nn::layers::LazyLinear::new(3)?;
    lazy.to(dev)?; // nothing to move yet
    let y = lazy.forward(&x.to(dev)?)?;
    assert_eq!(y.device(), dev);
    assert_on(&lazy, dev);
    Ok(())
}

/// A device model saves like a CPU one, and loading a (CPU-read) file into a device
/// model keeps it on the device.
pub fn save_load_round_trip(dev: Device) -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let make = || -> Result<Sequential> {
        Ok(Sequential::new()
            .add(Linear::new(3, 4)?)
            .add(BatchNorm1d::new(4)?)
            .add(Linear::new(4, 2)?))
    };
    let a = make()?;
    a.forward(&det(&[5, 3], 13.0))?; // moves the running statistics
    a.to(dev)?;
    d2l_nn::serialize::save_state_dict(&a, &path)?;
    let b = make()?;
    b.to(dev)?;
    let report = d2l_nn::serialize::load_state_dict(&b, &path, true)?;
    assert!(report.is_clean());
    assert_on(&b, dev);
    for ((n, ta), (_, tb)) in a.state_dict().iter().zip(b.state_dict()) {
        assert_eq!(ta.to_f64_vec(), tb.to_f64_vec(), "{n}");
    }
    // And into a CPU model.
    let c = make()?;
    d2l_nn::serialize::load_state_dict(&c, &path, true)?;
    assert_on(&c, Device::Cpu);
    let x = det(&[2, 3], 14.0);
    a.eval();
    c.eval();
    assert_close("reloaded", &c.forward(&x)?, &a.forward(&x.to(dev)?)?, 0.0);
    Ok(())
}

/// Optimiser state made on the CPU follows a model moved to `dev` afterwards: the run
/// that moves between steps matches a run that stays on the CPU.
pub fn optimizer_state_follows_the_model(dev: Device, tol: f64) -> Result<()> {
    type MakeOpt = fn(Vec<Tensor>) -> Result<Box<dyn Optimizer>>;
    let opts: [(&str, MakeOpt); 4] = [
        ("sgd(momentum)", |p| {
            Ok(Box::new(Sgd::new(p, 0.1)?.momentum(0.9)))
        }),
        ("adam(amsgrad)", |p| {
            Ok(Box::new(Adam::new(p, 0.01)?.amsgrad(true)))
        }),
        ("rmsprop(centered)", |p| {
            Ok(Box::new(
                RmsProp::new(p, 0.01)?.momentum(0.5).centered(true),
            ))
        }),
        ("adagrad", |p| Ok(Box::new(Adagrad::new(p, 0.1)?))),
    ];
    let x = det(&[6, 3], 15.0);
    let y = det(&[6, 2], 16.0);
    for (name, make_opt) in opts {
        let (a, b) = (Linear::new(3, 2)?, Linear::new(3, 2)?);
        copy_state(&a, &b)?;
        let mut oa = make_opt(a.parameters())?;
        let mut ob = make_opt(b.parameters())?;
        for step in 0..3 {
            if step == 1 {
                b.to(dev)?;
            }
            let (xb, yb) = (x.to(b.device().unwrap())?, y.to(b.device().unwrap())?);
            for (m, o, x, y) in [(&a, &mut oa, &x, &y), (&b, &mut ob, &xb, &yb)] {
                o.zero_grad();
                loss::mse_loss_with(&m.forward(x)?, y, Reduction::Mean)?.backward()?;
                o.step()?;
            }
        }
        assert_on(&b, dev);
        for ((n, ta), (_, tb)) in a.state_dict().iter().zip(b.state_dict()) {
            assert_close(&format!("{name}: {n}"), ta, &tb, tol);
        }
    }
    Ok(())
}

/// Declares every check of this file as a test on `$device` (a
/// `fn(&str) -> Option<Device>` of `d2l_testkit::device`) with relative tolerance `$tol`.
macro_rules! tests_on {
    ($device:path, $tol:expr) => {
        d2l_testkit::device_tests! { $device;
            layers_match_on_the_device => |d| device_checks::layers_match(d, $tol),
            dropout_masks_are_drawn_for_the_device => device_checks::dropout_mask_on_device,
            recurrent_states_live_on_the_device => |d| device_checks::rnn_states_on_device(d, $tol),
            losses_match_on_the_device => |d| device_checks::losses_match(d, $tol),
            optimizers_match_on_the_device => |d| device_checks::optimizers_match(d, $tol),
            module_to_moves_everything => device_checks::module_to_moves_everything,
            save_and_load_a_device_model => device_checks::save_load_round_trip,
            optimizer_state_follows_a_moved_model => |d| {
                device_checks::optimizer_state_follows_the_model(d, $tol)
            },
        }
    };
}
pub(crate) use tests_on;
