//! The zoo, the recipes, the summaries and the from-scratch models of D2L chapters 3–4.

use d2l_data::datasets::DatasetName;
use d2l_models::recipe::{OptimizerKind, Recipe};
use d2l_models::scratch::{
    cross_entropy_scratch, dropout_layer, linreg, relu_scratch, sgd, softmax_scratch, squared_loss,
    DropoutMlpScratch, LinRegScratch, MlpScratch, SoftmaxScratch,
};
use d2l_models::summary::summarize;
use d2l_models::zoo::{self, BuildConfig, TaskKind};
use d2l_nn::layers::Linear;
use d2l_nn::Module;
use d2l_tensor::{manual_seed, Error, Result, Tensor};
use std::str::FromStr;

mod common;
// Tests share the global generator: each one holds the lock of `seeded` (and reseeds) so
// seeded draws, and the check that `summarize` leaves the generator alone, are not
// disturbed by tests running in parallel.
use d2l_testkit::seeded;

fn batch(n: usize, shape: &[usize]) -> Tensor {
    let mut s = vec![n];
    s.extend_from_slice(shape);
    Tensor::randn(&s)
}

fn labels(v: &[i64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap()
}

/// Backpropagates the mean negative log-likelihood of the classes `y` under the logits
/// `logits` (what `cross_entropy` computes, written out).
fn backward_nll(logits: &Tensor, y: &[i64]) -> Result<()> {
    logits
        .log_softmax(1)?
        .gather(1, &labels(y).reshape([-1, 1])?)?
        .neg()?
        .mean_all()?
        .backward()
}

fn std_of(t: &Tensor) -> f64 {
    let v = t.to_f64_vec();
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

#[test]
fn every_model_builds_and_runs_its_default_input() -> Result<()> {
    let _rng = seeded(0);
    let names: Vec<&str> = zoo::models().iter().map(|m| m.name).collect();
    let chapters_3_to_5 = ["linreg", "softmax", "mlp", "mlp-dropout"];
    let phm = ["mlp-phm-2", "mlp-phm-4", "mlp-phm-8"];
    assert_eq!(names, [&chapters_3_to_5[..], &common::CNNS, &phm].concat());
    assert_eq!(zoo::names(), names);
    for info in zoo::models() {
        // The resized CNNs run at 1/8 width here (tests/cnn_zoo.rs checks them in full).
        let mut cfg = info.default_config();
        if info.recipe.resize.is_some() {
            cfg.width_mult = 0.125;
        }
        let net = info.build(&cfg)?;
        let y = net.forward(&batch(4, &info.default_input))?;
        assert_eq!(y.shape(), [4, info.default_outputs], "{}", info.name);
        assert!(
            y.to_f64_vec().iter().all(|v| v.is_finite()),
            "{}",
            info.name
        );
        assert!(!info.title.is_empty());
        assert_eq!(info.section, info.recipe.section, "{}", info.name);
    }
    Ok(())
}

#[test]
fn parameter_counts_match_the_book() -> Result<()> {
    let _rng = seeded(100);
    let expect = [
        ("linreg", 3),
        ("softmax", 7850),
        ("mlp", 203_530),
        (
            "mlp-dropout",
            784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10,
        ),
    ];
    assert_eq!(expect[3].1, 269_322);
    common::assert_parameter_counts(&expect)?;
    Ok(())
}

#[test]
fn parameter_names_follow_nn_sequential() -> Result<()> {
    let _rng = seeded(100);
    let net = common::build_default("mlp-dropout")?;
    assert_eq!(
        common::parameter_names(&net),
        ["1.weight", "1.bias", "4.weight", "4.bias", "7.weight", "7.bias"]
    );
    Ok(())
}

#[test]
fn initialisation_is_the_books() -> Result<()> {
    let _rng = seeded(1);
    // linreg: weight N(0, 0.01²), bias exactly 0.
    let net = zoo::model("linreg")?.build(&BuildConfig::new(&[2], 1))?;
    let l = net.get_as::<Linear>(0).unwrap();
    assert_eq!(l.weight.shape(), [1, 2]);
    assert!(l.weight.to_f64_vec().iter().all(|w| w.abs() < 0.06));
    assert_eq!(l.bias.as_ref().unwrap().to_f64_vec(), vec![0.0]);

    // mlp: weights N(0, 0.01²); biases keep PyTorch's U(±1/√in).
    let net = common::build_default("mlp")?;
    let l1 = net.get_as::<Linear>(1).unwrap();
    let s = std_of(&l1.weight);
    assert!((s - 0.01).abs() < 0.0005, "std {s}");
    let b = l1.bias.as_ref().unwrap().to_f64_vec();
    let bound = 1.0 / 784f64.sqrt();
    assert!(b.iter().all(|v| v.abs() <= bound));
    assert!(
        b.iter().any(|v| v.abs() > 0.01),
        "bias should be default-initialised"
    );
    let l2 = net.get_as::<Linear>(3).unwrap();
    assert!((std_of(&l2.weight) - 0.01).abs() < 0.001);

    // softmax and mlp-dropout: every weight N(0, 0.01²).
    for name in ["softmax", "mlp-dropout"] {
        let net = common::build_default(name)?;
        for (n, p) in net.named_parameters() {
            if n.ends_with("weight") {
                let s = std_of(&p);
                assert!((s - 0.01).abs() < 0.001, "{name} {n}: std {s}");
            }
        }
    }
    Ok(())
}

#[test]
fn build_config_controls_sizes() -> Result<()> {
    let _rng = seeded(100);
    let info = zoo::model("mlp")?;
    // Resized images widen the first layer.
    let cfg = info.config_for(Some(32));
    assert_eq!(cfg.in_shape, [1, 32, 32]);
    let net = info.build(&cfg)?;
    assert_eq!(net.get_as::<Linear>(1).unwrap().weight.shape(), [256, 1024]);
    assert_eq!(net.forward(&batch(2, &[1, 32, 32]))?.shape(), [2, 10]);
    // Width multiplier and output count.
    let mut cfg = BuildConfig::new(&[3, 8, 8], 5);
    cfg.width_mult = 0.5;
    let net = info.build(&cfg)?;
    assert_eq!(net.get_as::<Linear>(1).unwrap().weight.shape(), [128, 192]);
    assert_eq!(net.forward(&batch(2, &[3, 8, 8]))?.shape(), [2, 5]);
    // Dropout override.
    let info = zoo::model("mlp-dropout")?;
    let mut cfg = info.default_config();
    assert_eq!(cfg.dropout, Some((0.2, 0.5)));
    cfg.dropout = Some((0.1, 0.3));
    let net = info.build(&cfg)?;
    assert!(net.summary_tree().contains("Dropout(p=0.1)"));
    assert!(net.summary_tree().contains("Dropout(p=0.3)"));
    // Bad configs are errors.
    assert!(info.build(&BuildConfig::new(&[], 10)).is_err());
    assert!(info.build(&BuildConfig::new(&[1, 28, 28], 0)).is_err());
    cfg.dropout = Some((1.5, 0.5));
    assert!(info.build(&cfg).is_err());
    Ok(())
}

#[test]
fn mlp_dropout_respects_train_and_eval() -> Result<()> {
    let _rng = seeded(2);
    let net = common::build_default("mlp-dropout")?;
    let x = batch(3, &[1, 28, 28]);
    net.eval();
    let a = net.forward(&x)?.to_f64_vec();
    let b = net.forward(&x)?.to_f64_vec();
    assert_eq!(a, b);
    net.train();
    let c = net.forward(&x)?.to_f64_vec();
    assert_ne!(a, c);
    Ok(())
}

#[test]
fn recipes_match_the_books_table() -> Result<()> {
    let _rng = seeded(100);
    let check = |r: &Recipe, section, epochs, batch, lr: f64, dataset, dropout| {
        assert_eq!(r.section, section);
        assert_eq!(r.epochs, epochs, "{section}");
        assert_eq!(r.batch_size, batch, "{section}");
        assert_eq!(r.lr, lr, "{section}");
        assert_eq!(r.optimizer, OptimizerKind::Sgd, "{section}");
        assert_eq!(r.momentum, 0.0);
        assert_eq!(r.weight_decay, 0.0);
        assert_eq!(r.resize, None, "{section}");
        assert_eq!(r.dataset, dataset, "{section}");
        assert_eq!(r.dropout, dropout, "{section}");
    };
    let z = |n: &str| zoo::model(n).unwrap().recipe;
    check(&z("linreg"), "3.3", 3, 10, 0.03, "synthetic", None);
    check(&z("softmax"), "3.7", 10, 256, 0.1, "fashion-mnist", None);
    check(&z("mlp"), "4.3", 10, 256, 0.1, "fashion-mnist", None);
    check(
        &z("mlp-dropout"),
        "4.6",
        10,
        256,
        0.5,
        "fashion-mnist",
        Some((0.2, 0.5)),
    );
    check(
        &Recipe::linreg_scratch(),
        "3.2",
        3,
        10,
        0.03,
        "synthetic",
        None,
    );
    check(
        &Recipe::softmax_scratch(),
        "3.6",
        10,
        256,
        0.1,
        "fashion-mnist",
        None,
    );
    check(
        &Recipe::mlp_scratch(),
        "4.2",
        10,
        256,
        0.1,
        "fashion-mnist",
        None,
    );
    check(
        &Recipe::mlp_dropout_scratch(),
        "4.6",
        10,
        256,
        0.5,
        "fashion-mnist",
        Some((0.2, 0.5)),
    );
    // The book's table and the zoo agree on names, and data set names parse.
    for info in zoo::models() {
        // The PHM MLPs (3.4) are not in the book's table; they train with the 4.3 recipe.
        let want = match info.name.strip_prefix("mlp-phm-") {
            Some(_) => Recipe {
                section: "3.4",
                ..Recipe::mlp()
            },
            None => Recipe::by_name(info.name)?,
        };
        assert_eq!(want, info.recipe);
        if info.task == TaskKind::Classification {
            assert_eq!(
                DatasetName::from_str(info.recipe.dataset).unwrap(),
                DatasetName::FashionMnist
            );
            assert_eq!(
                info.default_outputs,
                DatasetName::FashionMnist.num_classes()
            );
        } else {
            assert_eq!(info.name, "linreg");
        }
    }
    // 8 recipes of chapters 3–4 and 11 of chapters 6–7 (tests/cnn_zoo.rs checks those).
    assert_eq!(Recipe::book().len(), 19);
    let e = Recipe::by_name("nope").unwrap_err().to_string();
    assert!(e.contains("mlp-dropout-scratch"), "{e}");
    assert_eq!(
        Recipe::mlp_dropout().to_string(),
        "§4.6 fashion-mnist: 10 epochs, batch 256, sgd lr 0.5, dropout 0.2/0.5"
    );
    Ok(())
}

#[test]
fn optimizer_kind_parses() {
    let _rng = seeded(100);
    assert_eq!("sgd".parse::<OptimizerKind>().unwrap(), OptimizerKind::Sgd);
    assert_eq!(
        "Adam".parse::<OptimizerKind>().unwrap(),
        OptimizerKind::Adam
    );
    assert_eq!(
        "adamw".parse::<OptimizerKind>().unwrap(),
        OptimizerKind::AdamW
    );
    for k in OptimizerKind::ALL {
        assert_eq!(k.to_string().parse::<OptimizerKind>().unwrap(), k);
    }
    let e = "rmsprop".parse::<OptimizerKind>().unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }));
    assert!(e.to_string().contains("sgd, adam, adamw"), "{e}");
}

#[test]
fn unknown_model_lists_the_names() {
    let _rng = seeded(100);
    let e = zoo::model("resnet-1000").unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }));
    let msg = e.to_string();
    for n in ["linreg", "softmax", "mlp", "mlp-dropout"] {
        assert!(msg.contains(n), "{msg}");
    }
    assert!(msg.contains("resnet-1000"));
    // Case and underscores are forgiven.
    assert_eq!(zoo::model("MLP_Dropout").unwrap().name, "mlp-dropout");
}

#[test]
fn summary_walks_shapes_and_counts() -> Result<()> {
    let _rng = seeded(100);
    let net = common::build_default("mlp")?;
    let s = summarize(&net, &[1, 28, 28])?;
    let shapes: Vec<Vec<usize>> = s.rows.iter().map(|r| r.output_shape.clone()).collect();
    assert_eq!(
        shapes,
        [vec![1, 784], vec![1, 256], vec![1, 256], vec![1, 10]]
    );
    let names: Vec<&str> = s.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["0", "1", "2", "3"]);
    assert_eq!(
        s.rows[1].kind,
        "Linear(in_features=784, out_features=256, bias=True)"
    );
    let params: Vec<usize> = s.rows.iter().map(|r| r.params).collect();
    assert_eq!(params, [0, 200_960, 0, 2570]);
    assert_eq!(s.total_params, 203_530);
    let flops: Vec<u64> = s.rows.iter().map(|r| r.flops).collect();
    assert_eq!(flops, [0, 2 * 784 * 256 + 256, 256, 2 * 256 * 10 + 10]);
    assert_eq!(s.total_flops, 407_050);
    assert_eq!(s.output_shape(), [1, 10]);
    let text = s.to_string();
    println!("{text}");
    assert!(text.starts_with("Flatten output shape:\t [1, 784]\nLinear output shape:\t [1, 256]\nReLU output shape:\t [1, 256]\nLinear output shape:\t [1, 10]\n"), "{text}");
    assert!(text.contains("Total params: 203,530"), "{text}");
    assert!(text.contains("407,050"), "{text}");

    // Dropout layers are free and keep their shape; summarising leaves the RNG alone.
    let net = common::build_default("mlp-dropout")?;
    manual_seed(5);
    let s = summarize(&net, &[1, 28, 28])?;
    let after = Tensor::rand(&[4]).to_f64_vec();
    manual_seed(5);
    assert_eq!(Tensor::rand(&[4]).to_f64_vec(), after);
    assert_eq!(s.rows.len(), 8);
    assert_eq!(s.rows[3].class_name(), "Dropout");
    assert_eq!(s.rows[3].flops, 0);
    assert_eq!(s.rows[3].output_shape, [1, 256]);
    assert_eq!(s.total_params, 269_322);

    // A resized input shows in the first rows.
    let net = zoo::model("softmax")?.build(&BuildConfig::new(&[1, 64, 64], 10))?;
    let s = summarize(&net, &[1, 64, 64])?;
    assert_eq!(s.rows[0].output_shape, [1, 4096]);
    assert_eq!(s.total_flops, 2 * 4096 * 10 + 10);
    // Wrong shapes are errors, not panics.
    assert!(summarize(&net, &[1, 28, 28]).is_err());
    assert!(summarize(&net, &[]).is_err());
    Ok(())
}

#[test]
fn linreg_scratch_is_the_books() -> Result<()> {
    let _rng = seeded(3);
    let net = LinRegScratch::new(2)?;
    assert_eq!(common::parameter_names(&net), ["w", "b"]);
    assert_eq!(net.w.shape(), [2, 1]);
    assert_eq!(net.b.to_f64_vec(), vec![0.0]);
    let x = batch(10, &[2]);
    let y = batch(10, &[1]).reshape([-1])?;
    let y_hat = net.forward(&x)?;
    assert_eq!(y_hat.shape(), [10, 1]);
    assert_eq!(linreg(&x, &net.w, &net.b)?.to_f64_vec(), y_hat.to_f64_vec());
    let l = squared_loss(&y_hat, &y)?;
    assert_eq!(l.shape(), [10, 1]);
    l.sum_all()?.backward()?;
    assert!(net.w.grad().is_some() && net.b.grad().is_some());
    let before = net.w.to_f64_vec();
    sgd(&net.parameters(), 0.03, 10)?;
    assert_ne!(net.w.to_f64_vec(), before);
    assert!(net.w.grad().is_none(), "sgd clears the gradient");

    // squared_loss is (ŷ − y)²/2.
    let v = squared_loss(
        &Tensor::from_vec(vec![3.0f32], &[1, 1])?,
        &Tensor::from_vec(vec![1.0f32], &[1])?,
    )?;
    assert_eq!(v.to_f64_vec(), vec![2.0]);
    Ok(())
}

#[test]
fn linreg_scratch_recovers_the_true_parameters() -> Result<()> {
    let _rng = seeded(100);
    // D2L 3.2 in miniature: the book's data, init, batch 10, lr 0.03, 3 epochs.
    manual_seed(42);
    let n = 1000;
    let x = Tensor::randn(&[n, 2]);
    let true_w = Tensor::from_vec(vec![2.0f32, -3.4], &[2, 1])?;
    let y = x.matmul(&true_w)?.add_scalar(4.2)?;
    let y = y.add(&Tensor::normal(&[n, 1], 0.0, 0.01)?)?;
    let net = LinRegScratch::new(2)?;
    let r = Recipe::linreg_scratch();
    for _ in 0..r.epochs {
        let perm = Tensor::randperm(n);
        for start in (0..n).step_by(r.batch_size) {
            let idx = perm.narrow(0, start, r.batch_size.min(n - start))?;
            let (xb, yb) = (x.index_select(0, &idx)?, y.index_select(0, &idx)?);
            squared_loss(&net.forward(&xb)?, &yb)?
                .sum_all()?
                .backward()?;
            sgd(&net.parameters(), r.lr, r.batch_size)?;
        }
    }
    let w = net.w.to_f64_vec();
    let b = net.b.to_f64_vec()[0];
    assert!(
        (w[0] - 2.0).abs() < 0.01 && (w[1] + 3.4).abs() < 0.01,
        "{w:?}"
    );
    assert!((b - 4.2).abs() < 0.01, "{b}");
    Ok(())
}

#[test]
fn softmax_scratch_rows_sum_to_one() -> Result<()> {
    let _rng = seeded(100);
    // D2L 3.6.2: X = torch.normal(0, 1, (2, 5)); X_prob = softmax(X); X_prob.sum(1).
    manual_seed(4);
    let x = Tensor::normal(&[2, 5], 0.0, 1.0)?;
    let p = softmax_scratch(&x)?;
    println!("{p}\n{}", p.sum(&[1], false)?);
    assert_eq!(p.shape(), [2, 5]);
    assert!(p.to_f64_vec().iter().all(|&v| v > 0.0));
    for s in p.sum(&[1], false)?.to_f64_vec() {
        assert!((s - 1.0).abs() < 1e-6, "{s}");
    }
    // It agrees with the stable library softmax on moderate inputs.
    let lib = x.softmax(1)?.to_f64_vec();
    for (a, b) in p.to_f64_vec().iter().zip(lib) {
        assert!((a - b).abs() < 1e-6);
    }
    // D2L 3.6.4: y = [0, 2], y_hat = [[0.1, 0.3, 0.6], [0.3, 0.2, 0.5]] → -log [0.1, 0.5].
    let y_hat = Tensor::from_vec(vec![0.1f32, 0.3, 0.6, 0.3, 0.2, 0.5], &[2, 3])?;
    let ce = cross_entropy_scratch(&y_hat, &labels(&[0, 2]))?.to_f64_vec();
    assert!((ce[0] - (-(0.1f64).ln())).abs() < 1e-5 && (ce[1] - (-(0.5f64).ln())).abs() < 1e-5);
    Ok(())
}

#[test]
fn softmax_scratch_model_forward_and_gradients() -> Result<()> {
    let _rng = seeded(6);
    let net = SoftmaxScratch::new(784, 10)?;
    assert_eq!(common::parameter_names(&net), ["W", "b"]);
    assert_eq!(net.num_parameters(), 7850);
    assert!((std_of(&net.w) - 0.01).abs() < 0.0005);
    assert!(net.b.to_f64_vec().iter().all(|&v| v == 0.0));
    let p = net.forward(&batch(8, &[1, 28, 28]))?;
    assert_eq!(p.shape(), [8, 10]);
    for s in p.sum(&[1], false)?.to_f64_vec() {
        assert!((s - 1.0).abs() < 1e-5);
    }
    let l = cross_entropy_scratch(&p, &labels(&[0, 1, 2, 3, 4, 5, 6, 7]))?;
    assert_eq!(l.shape(), [8]);
    l.sum_all()?.backward()?;
    for t in net.parameters() {
        let g = t.grad().expect("gradient");
        assert!(g.to_f64_vec().iter().any(|v| *v != 0.0));
    }
    Ok(())
}

#[test]
fn mlp_scratch_forward_and_gradients() -> Result<()> {
    let _rng = seeded(7);
    let net = MlpScratch::book()?;
    assert_eq!(common::parameter_names(&net), ["W1", "b1", "W2", "b2"]);
    assert_eq!(net.num_parameters(), 203_530);
    assert!((std_of(&net.w1) - 0.01).abs() < 0.0005);
    assert!(net.b1.to_f64_vec().iter().all(|&v| v == 0.0));
    let y = net.forward(&batch(4, &[1, 28, 28]))?;
    assert_eq!(y.shape(), [4, 10]);
    backward_nll(&y, &[1, 2, 3, 4])?;
    for (n, t) in net.named_parameters() {
        let g = t.grad().unwrap_or_else(|| panic!("no gradient for {n}"));
        assert_eq!(g.shape(), t.shape());
        assert!(g.to_f64_vec().iter().any(|v| *v != 0.0), "{n}");
    }
    let r = relu_scratch(&Tensor::from_vec(vec![-1.0f32, 0.0, 2.0], &[3])?)?;
    assert_eq!(r.to_f64_vec(), vec![0.0, 0.0, 2.0]);
    Ok(())
}

#[test]
fn dropout_layer_is_the_books() -> Result<()> {
    let _rng = seeded(100);
    // D2L 4.6.4: X = arange(16).reshape(2, 8); dropout 0, 0.5, 1.
    manual_seed(8);
    let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([2, 8])?;
    assert_eq!(dropout_layer(&x, 0.0)?.to_f64_vec(), x.to_f64_vec());
    assert!(dropout_layer(&x, 1.0)?
        .to_f64_vec()
        .iter()
        .all(|&v| v == 0.0));
    let h = dropout_layer(&x, 0.5)?;
    println!("{h}");
    for (a, b) in h.to_f64_vec().iter().zip(x.to_f64_vec()) {
        assert!(*a == 0.0 || *a == 2.0 * b, "{a} vs {b}");
    }
    assert!(dropout_layer(&x, 1.5).is_err());
    // About half survive on a large tensor.
    let big = dropout_layer(&Tensor::ones(&[10_000]), 0.5)?.to_f64_vec();
    let kept = big.iter().filter(|&&v| v != 0.0).count();
    assert!((4500..5500).contains(&kept), "{kept}");
    Ok(())
}

#[test]
fn dropout_mlp_scratch_forward_modes_and_gradients() -> Result<()> {
    let _rng = seeded(9);
    let net = DropoutMlpScratch::book()?;
    assert_eq!(
        common::parameter_names(&net),
        [
            "lin1.weight",
            "lin1.bias",
            "lin2.weight",
            "lin2.bias",
            "lin3.weight",
            "lin3.bias"
        ]
    );
    assert_eq!(net.num_parameters(), 269_322);
    assert!(net.is_training());
    let x = batch(4, &[1, 28, 28]);
    let y = net.forward(&x)?;
    assert_eq!(y.shape(), [4, 10]);
    backward_nll(&y, &[1, 2, 3, 4])?;
    for (n, t) in net.named_parameters() {
        assert!(t.grad().is_some(), "no gradient for {n}");
    }
    net.eval();
    assert!(!net.is_training());
    assert_eq!(net.forward(&x)?.to_f64_vec(), net.forward(&x)?.to_f64_vec());
    net.train();
    assert_ne!(net.forward(&x)?.to_f64_vec(), net.forward(&x)?.to_f64_vec());
    let off = DropoutMlpScratch::new(4, 2, 3, 3, 0.2, 0.5, false)?;
    assert!(!off.is_training());
    assert!(DropoutMlpScratch::new(4, 2, 3, 3, 1.2, 0.5, true).is_err());
    Ok(())
}
