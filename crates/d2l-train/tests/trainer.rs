//! The training loop end to end (D2L 3.6/3.7 softmax regression on the built-in shapes
//! set, 3.3 linear regression), its run folder, non-finite losses, interruption, and the
//! book's metric helpers.

use d2l_data::loader::load_array;
use d2l_data::synthetic::synthetic_data;
use d2l_nn::layers::{Flatten, Linear};
use d2l_nn::optim::Sgd;
use d2l_nn::serialize::load_state_dict;
use d2l_nn::{Module, Sequential};
use d2l_tensor::{Generator, Tensor};
use d2l_train::metrics::{accuracy, evaluate_accuracy, evaluate_loss, Accumulator, Timer};
use d2l_train::plot::{save_line_plot, save_scatter_plot, PlotSpec, Series};
use d2l_train::run_dir::{utc_timestamp, RunDir, METRICS_HEADER};
use d2l_train::trainer::{cross_entropy_loss, mse_loss, Task, TrainConfig, Trainer};
use std::cell::RefCell;

mod common;
use common::{fit_error, shapes};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

fn softmax_net() -> Sequential {
    Sequential::new()
        .add(Flatten::new())
        .add(Linear::new(784, 10).unwrap())
}

#[test]
fn softmax_regression_on_shapes_writes_a_run_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, test) = shapes(2000, 500, 64, 7);
    let net = softmax_net();
    let mut opt = Sgd::new(net.parameters(), 0.1).unwrap();
    let run = RunDir::create(Some(tmp.path().join("run")), "softmax").unwrap();
    run.write_config(&serde_json::json!({"model": "softmax", "lr": 0.1}))
        .unwrap();
    let batch_losses = RefCell::new(Vec::new());
    let epochs_seen = RefCell::new(0usize);
    let config = TrainConfig {
        epochs: 2,
        quiet: true,
        run_dir: Some(run.clone()),
        ..Default::default()
    };
    let summary = Trainer::new(&net, cross_entropy_loss(), &mut opt, config)
        .on_batch(|e| batch_losses.borrow_mut().push(e.loss))
        .on_epoch(|_| *epochs_seen.borrow_mut() += 1)
        .fit(&train, Some(&test))
        .unwrap();

    // Learning happened: the loss went down and accuracy is well above chance.
    let losses = batch_losses.borrow();
    assert_eq!(losses.len(), 2 * train.len());
    assert_eq!(*epochs_seen.borrow(), 2);
    let head: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let tail: f64 = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
    assert!(tail < head, "loss did not decrease: {head} -> {tail}");
    assert_eq!(summary.epochs.len(), 2);
    assert!(summary.epochs[1].train_loss < summary.epochs[0].train_loss);
    let classes = d2l_data::shapes::Shapes::classes().len() as f64;
    let test_acc = summary.test_acc.unwrap();
    assert!(
        test_acc > 1.5 / classes,
        "test acc {test_acc} is near chance"
    );
    assert!(summary.train_acc.unwrap() > 1.5 / classes);
    assert!(summary.examples_per_sec > 0.0 && summary.seconds > 0.0);
    assert!(summary.stopped_early.is_none());
    // The trainer's test accuracy is evaluate_accuracy's.
    let again = evaluate_accuracy(&net, &test).unwrap();
    assert!((again - test_acc).abs() < 1e-12);

    // The run folder.
    let dir = run.path();
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert_eq!(lines[0], METRICS_HEADER);
    assert_eq!(
        lines[0],
        "epoch,train_loss,train_acc,test_acc,test_loss,examples_per_sec,seconds"
    );
    assert!(lines[1].starts_with("1,") && lines[2].starts_with("2,"));
    let summary_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary_json["epochs"].as_array().unwrap().len(), 2);
    assert!((summary_json["test_acc"].as_f64().unwrap() - test_acc).abs() < 1e-12);
    assert!(summary_json["stopped_early"].is_null());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"], "softmax");
    let png = std::fs::read(dir.join("curves.png")).unwrap();
    assert!(png.starts_with(PNG_MAGIC));
    let svg = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("train loss") && svg.contains("test acc"));
    // No temporary files are left behind.
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.') || name == ".d2l-run.lock",
            "left over: {name}"
        );
    }
    // The checkpoint loads back into a fresh model and gives the same accuracy.
    let fresh = softmax_net();
    let report = load_state_dict(&fresh, dir.join("model.safetensors"), true).unwrap();
    assert!(report.is_clean());
    let acc = evaluate_accuracy(&fresh, &test).unwrap();
    assert!((acc - test_acc).abs() < 1e-12);
}

#[test]
fn linear_regression_recovers_the_weights() {
    let mut g = Generator::new(42);
    let true_w = Tensor::from_vec(vec![2.0f32, -3.4], &[2]).unwrap();
    let (x, y) = synthetic_data(&true_w, 4.2, 1000, &mut g).unwrap();
    let train = load_array(x.clone(), y.clone(), 10, true).unwrap();
    let test = load_array(x, y, 100, false).unwrap();
    let net = Sequential::new().add(Linear::new(2, 1).unwrap());
    let mut opt = Sgd::new(net.parameters(), 0.03).unwrap();
    let config = TrainConfig {
        epochs: 3,
        quiet: true,
        task: Task::Regression,
        ..Default::default()
    };
    let summary = Trainer::new(&net, mse_loss(), &mut opt, config)
        .fit(&train, Some(&test))
        .unwrap();
    let lin = net.get_as::<Linear>(0).unwrap();
    let w = lin.weight.to_f64_vec();
    let b = lin.bias.as_ref().unwrap().to_f64_vec()[0];
    assert!(
        (w[0] - 2.0).abs() < 0.05 && (w[1] + 3.4).abs() < 0.05,
        "w = {w:?}"
    );
    assert!((b - 4.2).abs() < 0.05, "b = {b}");
    let last = summary.epochs.last().unwrap();
    assert!(last.train_acc.is_none() && last.test_acc.is_none());
    assert!(summary.train_acc.is_none() && summary.test_acc.is_none());
    let test_loss = last.test_loss.unwrap();
    assert!(test_loss < 1e-3, "test loss {test_loss}");
    let again = evaluate_loss(&net, &test, &mse_loss()).unwrap();
    assert!((again - test_loss).abs() < 1e-9);
}

#[test]
fn regression_run_dir_plots_on_a_log_axis() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Generator::new(3);
    let true_w = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    let (x, y) = synthetic_data(&true_w, 0.5, 200, &mut g).unwrap();
    let train = load_array(x.clone(), y.clone(), 20, true).unwrap();
    let test = load_array(x, y, 100, false).unwrap();
    let net = Sequential::new().add(Linear::new(2, 1).unwrap());
    let mut opt = Sgd::new(net.parameters(), 0.05).unwrap();
    let run = RunDir::create(Some(tmp.path().to_path_buf()), "linreg").unwrap();
    let config = TrainConfig {
        epochs: 3,
        quiet: true,
        task: Task::Regression,
        run_dir: Some(run.clone()),
        max_grad_norm: Some(10.0),
        ..Default::default()
    };
    Trainer::new(&net, mse_loss(), &mut opt, config)
        .fit(&train, Some(&test))
        .unwrap();
    let csv = std::fs::read_to_string(run.file("metrics.csv")).unwrap();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    // epoch, train_loss, test_loss, examples_per_sec, seconds: no accuracy columns.
    assert_eq!(
        csv.lines().next().unwrap(),
        "epoch,train_loss,test_loss,examples_per_sec,seconds"
    );
    assert_eq!(row.len(), 5);
    assert!(row[2].parse::<f64>().unwrap() > 0.0); // test loss
    assert!(std::fs::read(run.file("curves.png"))
        .unwrap()
        .starts_with(PNG_MAGIC));
    let svg = std::fs::read_to_string(run.file("curves.svg")).unwrap();
    assert!(svg.contains("test loss"));
}

#[test]
fn nan_loss_stops_with_an_error_naming_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = Generator::new(1);
    let true_w = Tensor::from_vec(vec![2.0f32, -3.4], &[2]).unwrap();
    let (x, y) = synthetic_data(&true_w, 4.2, 500, &mut g).unwrap();
    let train = load_array(x, y, 10, true).unwrap();
    let net = Sequential::new().add(Linear::new(2, 1).unwrap());
    let mut opt = Sgd::new(net.parameters(), 1e6).unwrap();
    let run = RunDir::create(Some(tmp.path().join("nan")), "linreg").unwrap();
    let config = TrainConfig {
        epochs: 5,
        quiet: true,
        task: Task::Regression,
        run_dir: Some(run.clone()),
        ..Default::default()
    };
    let err = fit_error(&net, mse_loss(), &mut opt, config, &train);
    assert!(err.contains("epoch 1, step "), "{err}");
    assert!(err.contains("NaN") || err.contains("inf"), "{err}");
    // The summary records why it stopped.
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.file("summary.json")).unwrap()).unwrap();
    assert!(s["stopped_early"].as_str().unwrap().contains("step"));
}

#[test]
fn a_stop_request_finishes_the_batch_saves_and_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, test) = shapes(640, 64, 64, 1);
    let net = softmax_net();
    let mut opt = Sgd::new(net.parameters(), 0.1).unwrap();
    let run = RunDir::create(Some(tmp.path().join("stop")), "softmax").unwrap();
    let config = TrainConfig {
        epochs: 3,
        quiet: true,
        run_dir: Some(run.clone()),
        ..Default::default()
    };
    let trainer = Trainer::new(&net, cross_entropy_loss(), &mut opt, config);
    let handle = trainer.stop_handle();
    let steps = RefCell::new(0);
    let steps_ref = &steps;
    let mut trainer = trainer.on_batch(move |e| {
        *steps_ref.borrow_mut() += 1;
        if e.epoch == 2 && e.step == 3 {
            handle.stop();
        }
    });
    let summary = trainer.fit(&train, Some(&test)).unwrap();
    drop(trainer);
    assert_eq!(*steps.borrow(), train.len() + 3);
    assert_eq!(summary.stopped_early.as_deref(), Some("interrupted"));
    // The partial epoch is not an epoch of the summary: its state is in the checkpoint.
    assert_eq!(summary.epochs.len(), 1);
    assert!(summary.test_acc.is_some()); // the last measured one
    assert!(run.file("model.safetensors").exists());
    let ck = d2l_train::checkpoint::Checkpoint::load(&run.checkpoint_path()).unwrap();
    assert_eq!((ck.info.epoch, ck.info.step_in_epoch), (1, 3));
    let csv = std::fs::read_to_string(run.file("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.file("summary.json")).unwrap()).unwrap();
    assert_eq!(s["stopped_early"], "interrupted");
}

#[test]
fn default_run_dir_name_and_timestamps() {
    assert_eq!(utc_timestamp(0), "19700101-000000");
    assert_eq!(utc_timestamp(951_782_400), "20000229-000000");
    assert_eq!(utc_timestamp(1_700_000_000), "20231114-221320");
    // The default folder, relative to the current folder (the crate's, under cargo test).
    let cwd = std::env::current_dir().unwrap();
    let tmp = tempfile::tempdir_in(&cwd).unwrap();
    let rel = tmp.path().strip_prefix(&cwd).unwrap().join("given");
    let r = RunDir::create(Some(rel.clone()), "mlp").unwrap();
    assert!(r.path().is_dir());
    let a = RunDir::create(None, "mlp dropout").unwrap();
    let b = RunDir::create(None, "mlp dropout").unwrap();
    let name = a.path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(a.path().starts_with("runs"));
    assert!(
        name.starts_with("mlp-dropout-") && name.len() == "mlp-dropout-".len() + 15,
        "{name}"
    );
    assert_ne!(a.path(), b.path());
    // Each holds only its (empty) lock file.
    for d in [a.path(), b.path()] {
        let files: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, [d2l_train::run_dir::LOCK_FILE]);
        std::fs::remove_dir_all(d).unwrap();
    }
    let _ = std::fs::remove_dir("runs"); // only if empty
}

#[test]
fn plots_skip_non_finite_points_and_support_log_axes() {
    let tmp = tempfile::tempdir().unwrap();
    let x: Vec<f64> = (1..=40).map(|i| i as f64).collect();
    let y1: Vec<f64> = x
        .iter()
        .map(|v| if *v == 10.0 { f64::NAN } else { 1.0 / v })
        .collect();
    let y2: Vec<f64> = x.iter().map(|v| v.sqrt()).collect();
    let mut y3 = y2.clone();
    y3[3] = f64::INFINITY;
    let series = [
        Series::new("1/x", x.clone(), y1),
        Series::new("sqrt x", x.clone(), y2),
        Series::new("with inf", x.clone(), y3),
        Series::new("empty", vec![], vec![]),
    ];
    let spec = PlotSpec {
        title: "test".into(),
        xlabel: "x".into(),
        ylabel: "y".into(),
        log_y: true,
        log_x: true,
        ..Default::default()
    };
    let (png, svg) = save_line_plot(&tmp.path().join("lines"), &spec, &series).unwrap();
    assert_eq!(png, tmp.path().join("lines.png"));
    assert_eq!(svg, tmp.path().join("lines.svg"));
    assert!(std::fs::read(&png).unwrap().starts_with(PNG_MAGIC));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("1/x") && !text.contains("NaN"));

    let spec = PlotSpec {
        ylim: Some((-2.0, 2.0)),
        ..Default::default()
    };
    let pts = Series::new(
        "pts",
        vec![0.0, 1.0, f64::NAN, 2.0],
        vec![1.0, -1.0, 0.0, f64::INFINITY],
    );
    let (png, _) = save_scatter_plot(&tmp.path().join("sub/scatter"), &spec, &[pts]).unwrap();
    assert!(std::fs::read(png).unwrap().starts_with(PNG_MAGIC));

    // Bad limits are an error naming the plot.
    let bad = PlotSpec {
        xlim: Some((1.0, 1.0)),
        ..Default::default()
    };
    let err = save_line_plot(&tmp.path().join("bad"), &bad, &series).unwrap_err();
    assert!(err.to_string().starts_with("plot:"), "{err}");
}

#[test]
fn accuracy_counts_correct_predictions_like_the_book() {
    // D2L 3.6.4.
    let y_hat = Tensor::from_vec(vec![0.1f32, 0.3, 0.6, 0.3, 0.2, 0.5], &[2, 3]).unwrap();
    let y = Tensor::from_vec(vec![0i64, 2], &[2]).unwrap();
    assert_eq!(accuracy(&y_hat, &y).unwrap(), 1.0);
    assert_eq!(accuracy(&y_hat, &y).unwrap() / 2.0, 0.5);
    // Labels as predictions (1-D y_hat).
    let pred = Tensor::from_vec(vec![2i64, 2, 1], &[3]).unwrap();
    let y3 = Tensor::from_vec(vec![2i64, 0, 1], &[3]).unwrap();
    assert_eq!(accuracy(&pred, &y3).unwrap(), 2.0);
    // A size mismatch is an error.
    assert!(accuracy(&y_hat, &y3).is_err());
}

#[test]
fn accumulator_and_timer() {
    let mut m = Accumulator::new(3);
    m.add(&[1.0, 2.0, 3.0]);
    m.add(&[0.5, 0.5, 0.5]);
    assert_eq!((m.get(0), m[1], m.get(2)), (1.5, 2.5, 3.5));
    assert_eq!(m.len(), 3);
    m.reset();
    assert_eq!(m.values(), &[0.0, 0.0, 0.0]);

    let mut t = Timer::new();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let a = t.stop();
    t.start();
    let b = t.stop();
    assert!(a >= 0.004 && b >= 0.0);
    assert_eq!(t.times().len(), 2);
    assert!((t.sum() - (a + b)).abs() < 1e-12);
    assert!((t.avg() - (a + b) / 2.0).abs() < 1e-12);
    assert_eq!(t.cumsum(), vec![a, a + b]);
}
