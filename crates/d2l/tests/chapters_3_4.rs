//! D2L chapters 3–4 end to end on small data: the six Fashion-MNIST recipes — softmax
//! regression from scratch (3.6) and concise (3.7), the MLP from scratch (4.2) and concise
//! (4.3), dropout from scratch and concise (4.6) — each built as the model zoo builds it,
//! trained with its book recipe (learning rate, batch size; 5 epochs instead of 10) on
//! the built-in `shapes` set (10,000 training and 1,000 test images, 28×28, 10 balanced
//! classes), checking that the loss goes down and the test accuracy is clearly above
//! chance (0.1). Also: the scratch softmax's rows sum to 1, and the recipes are the book's.
//!
//! The margins are set from measurements (test profile, 4 seeds each): after these 5
//! epochs softmax regression reaches a test accuracy of about 0.4, the MLPs — slow to
//! start from their N(0, 0.01²) weights — 0.26–0.37 (dropout from scratch 0.5–0.65), and
//! test losses of 1.7–2.0 against ln 10 = 2.30 untrained. With 3,000 images and 2–3
//! epochs the MLPs were still at 0.11–0.25, too close to chance to be a test.
//!
//! The models' initialisation and dropout masks draw from the process-global generator,
//! so every test seeds it while holding one shared lock.

use d2l::data::load_data_shapes;
use d2l::data::loader::DataLoader;
use d2l::models::recipe::Recipe;
use d2l::models::scratch::{
    cross_entropy_scratch, sgd, softmax_scratch, DropoutMlpScratch, MlpScratch, SoftmaxScratch,
};
use d2l::models::zoo;
use d2l::prelude::*;
use d2l::train::metrics::{accuracy, data_error, evaluate_accuracy, Accumulator};
use d2l::train::trainer::{cross_entropy_loss, TrainConfig, TrainSummary, Trainer};
use std::sync::{Mutex, MutexGuard};

const N_TRAIN: usize = 10_000;
const N_TEST: usize = 1000;
const EPOCHS: usize = 5;
/// Chance is 0.1 on the ten balanced classes of `shapes`: softmax regression must reach
/// 3× that, the MLPs 2×.
const MIN_ACC_SOFTMAX: f64 = 0.3;
const MIN_ACC_MLP: f64 = 0.2;
/// The untrained loss is ln 10 = 2.30; after training the final train and test losses
/// must be below this.
const MAX_FINAL_LOSS: f64 = 2.15;

static RNG_LOCK: Mutex<()> = Mutex::new(());

/// Holds the global generator for this test, seeded with `seed`.
fn seeded(seed: u64) -> MutexGuard<'static, ()> {
    let guard = RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    manual_seed(seed);
    guard
}

fn shapes(batch_size: usize) -> (DataLoader, DataLoader) {
    load_data_shapes(N_TRAIN, N_TEST, batch_size, None, 0)
        .map_err(data_error)
        .unwrap()
}

/// What every recipe must show after its short run.
fn check_learned(name: &str, losses: &[f64], test_acc: f64, min_acc: f64) {
    eprintln!("{name}: train loss per epoch {losses:.3?}, test acc {test_acc:.3}");
    assert_eq!(losses.len(), EPOCHS, "{name}: one loss per epoch");
    assert!(
        losses.iter().all(|l| l.is_finite()),
        "{name}: non-finite loss {losses:?}"
    );
    assert!(
        losses[EPOCHS - 1] < losses[0],
        "{name}: the training loss did not decrease: {losses:?}"
    );
    // The untrained loss of 10 balanced classes is about ln 10 = 2.30.
    assert!(
        losses[EPOCHS - 1] < MAX_FINAL_LOSS,
        "{name}: the training loss stayed near chance: {losses:?}"
    );
    assert!(
        test_acc > min_acc,
        "{name}: test accuracy {test_acc:.3} is not clearly above chance (> {min_acc})"
    );
}

/// Trains `net` the concise way (`train_ch3` with a PyTorch optimiser): mean
/// cross-entropy, `Sgd` with the recipe's learning rate, `EPOCHS` epochs.
fn fit(net: &dyn Module, recipe: &Recipe) -> TrainSummary {
    let (train_iter, test_iter) = shapes(recipe.batch_size);
    let mut opt = Sgd::new(net.parameters(), recipe.lr).unwrap();
    let config = TrainConfig {
        epochs: EPOCHS,
        quiet: true,
        ..Default::default()
    };
    let summary = Trainer::new(net, cross_entropy_loss(), &mut opt, config)
        .fit(&train_iter, Some(&test_iter))
        .unwrap();
    summary
}

/// The zoo's model `name` at its default configuration, trained with its recipe, passes
/// [`check_summary`].
fn zoo_model_learns(name: &str, min_acc: f64) {
    let info = zoo::model(name).unwrap();
    let net = info.build(&info.default_config()).unwrap();
    let s = fit(&net, &info.recipe);
    check_summary(name, &s, min_acc);
}

fn check_summary(name: &str, s: &TrainSummary, min_acc: f64) {
    let losses: Vec<f64> = s.epochs.iter().map(|m| m.train_loss).collect();
    let test_loss = s
        .epochs
        .last()
        .and_then(|m| m.test_loss)
        .expect("a test loss");
    eprintln!("{name}: test loss {test_loss:.3}, {:.1} s", s.seconds);
    assert!(
        test_loss < MAX_FINAL_LOSS,
        "{name}: test loss {test_loss:.3} is not clearly below chance's ln 10 = 2.30"
    );
    check_learned(name, &losses, s.test_acc.expect("a test accuracy"), min_acc);
}

#[test]
fn recipes_are_the_books() {
    for (name, r) in Recipe::book() {
        // The chapter 6–7 CNN recipes are checked in d2l-models/tests/cnn_zoo.rs.
        let ch3_4 = r.section.starts_with('3') || r.section.starts_with('4');
        if r.dataset != "fashion-mnist" || !ch3_4 {
            continue;
        }
        let lr = if name.starts_with("mlp-dropout") {
            0.5
        } else {
            0.1
        };
        assert_eq!((r.epochs, r.batch_size, r.lr), (10, 256, lr), "{name}");
        assert_eq!((r.momentum, r.weight_decay), (0.0, 0.0), "{name}");
    }
    assert_eq!(Recipe::mlp_dropout().dropout, Some((0.2, 0.5)));
    assert_eq!(Recipe::mlp_dropout_scratch().dropout, Some((0.2, 0.5)));
    for (name, params) in [
        ("softmax", 7_850),
        ("mlp", 203_530),
        ("mlp-dropout", 269_322),
    ] {
        let info = zoo::model(name).unwrap();
        assert_eq!(info.recipe, Recipe::by_name(name).unwrap(), "{name}");
        let net = info.build(&info.default_config()).unwrap();
        assert_eq!(net.num_parameters(), params, "{name}");
    }
}

#[test]
fn scratch_softmax_rows_sum_to_one() {
    let _g = seeded(1);
    // The book's check: softmax of a random (2, 5) matrix has non-negative rows summing to 1.
    let x = Tensor::normal(&[2, 5], 0.0, 1.0).unwrap();
    let p = softmax_scratch(&x).unwrap();
    assert_eq!(p.shape(), &[2, 5]);
    assert!(p.to_f64_vec().iter().all(|&v| v > 0.0 && v < 1.0));
    for s in p.sum(&[1], false).unwrap().to_f64_vec() {
        assert!((s - 1.0).abs() < 1e-6, "row sum {s}");
    }
    // The model's outputs are probabilities too, one row per image.
    let net = SoftmaxScratch::new(784, 10).unwrap();
    let (_, test_iter) = shapes(256);
    let batch = test_iter.iter_epoch(0).next().unwrap().unwrap();
    let y_hat = net.forward(&batch.x).unwrap();
    assert_eq!(y_hat.shape(), &[256, 10]);
    let sums = y_hat.sum(&[1], false).unwrap().to_f64_vec();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
    // And the book's `cross_entropy` picks −log ŷ[y]: y_hat = [[.1 .3 .6] [.3 .2 .5]], y = [0 2].
    let y_hat = Tensor::from_vec(vec![0.1f32, 0.3, 0.6, 0.3, 0.2, 0.5], &[2, 3]).unwrap();
    let y = Tensor::from_vec(vec![0i64, 2], &[2]).unwrap();
    let l = cross_entropy_scratch(&y_hat, &y).unwrap().to_f64_vec();
    assert!(
        (l[0] - 10f64.ln()).abs() < 1e-5 && (l[1] - 2f64.ln()).abs() < 1e-5,
        "{l:?}"
    );
}

/// 3.6: `W`, `b`, the unstabilised softmax, −log ŷ[y], `loss.sum().backward()` and the
/// book's `sgd(params, lr, batch_size)`, in the book's `train_epoch_ch3` loop.
#[test]
fn softmax_regression_scratch_learns() {
    let _g = seeded(36);
    let recipe = Recipe::softmax_scratch();
    let (train_iter, test_iter) = shapes(recipe.batch_size);
    let net = SoftmaxScratch::new(784, 10).unwrap();
    let params = [net.w.clone(), net.b.clone()];
    let untrained = evaluate_accuracy(&net, &test_iter).unwrap();
    let mut losses = Vec::new();
    for epoch in 0..EPOCHS {
        let mut metric = Accumulator::new(3);
        for batch in train_iter.iter_epoch(epoch as u64) {
            let batch = batch.unwrap();
            let y_hat = net.forward(&batch.x).unwrap();
            let l = cross_entropy_scratch(&y_hat, &batch.y).unwrap();
            l.sum_all().unwrap().backward().unwrap();
            sgd(&params, recipe.lr, batch.len()).unwrap();
            metric.add(&[
                l.sum_all().unwrap().item_f64().unwrap(),
                accuracy(&y_hat, &batch.y).unwrap(),
                batch.len() as f64,
            ]);
        }
        losses.push(metric[0] / metric[2]);
    }
    let test_acc = evaluate_accuracy(&net, &test_iter).unwrap();
    eprintln!("softmax-scratch: untrained test acc {untrained:.3}");
    check_learned("softmax-scratch", &losses, test_acc, MIN_ACC_SOFTMAX);
    assert!(test_acc > untrained + 0.1, "{untrained} -> {test_acc}");
}

/// 3.7: the zoo's `softmax` (`Flatten, Linear(784, 10)`) with `Sgd` and the trainer.
#[test]
fn softmax_regression_concise_learns() {
    let _g = seeded(37);
    zoo_model_learns("softmax", MIN_ACC_SOFTMAX);
}

/// 4.2: `W1`, `b1`, `W2`, `b2` by hand, trained with `optim.SGD` (lr 0.1).
#[test]
fn mlp_scratch_learns() {
    let _g = seeded(42);
    let net = MlpScratch::book().unwrap();
    let s = fit(&net, &Recipe::mlp_scratch());
    check_summary("mlp-scratch", &s, MIN_ACC_MLP);
}

/// 4.3: the zoo's `mlp` (`Flatten, Linear(784, 256), ReLU, Linear(256, 10)`).
#[test]
fn mlp_concise_learns() {
    let _g = seeded(43);
    zoo_model_learns("mlp", MIN_ACC_MLP);
}

/// 4.6 from scratch: the book's `Net` with `dropout_layer` (0.2, 0.5), lr 0.5; dropout is
/// on while training and off in evaluation (the same input gives the same output).
#[test]
fn dropout_scratch_learns() {
    let _g = seeded(46);
    let net = DropoutMlpScratch::book().unwrap();
    let s = fit(&net, &Recipe::mlp_dropout_scratch());
    check_summary("mlp-dropout-scratch", &s, MIN_ACC_MLP);
    assert!(
        net.is_training(),
        "the trainer leaves the model in training mode"
    );
    let x = Tensor::rand(&[4, 1, 28, 28]);
    net.eval();
    let (a, b) = (net.forward(&x).unwrap(), net.forward(&x).unwrap());
    assert_eq!(a.to_f64_vec(), b.to_f64_vec(), "no dropout in eval mode");
    net.train();
    let (a, b) = (net.forward(&x).unwrap(), net.forward(&x).unwrap());
    assert_ne!(a.to_f64_vec(), b.to_f64_vec(), "dropout while training");
}

/// 4.6 concise: the zoo's `mlp-dropout` with `Dropout(0.2)`, `Dropout(0.5)` layers.
#[test]
fn dropout_concise_learns() {
    let _g = seeded(47);
    zoo_model_learns("mlp-dropout", MIN_ACC_MLP);
}
