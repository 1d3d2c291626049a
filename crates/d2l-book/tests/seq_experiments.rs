//! The chapter 8.1–8.3 experiments and the gradient-descent notes (D2L 11.3–11.5) with
//! the book's settings where they are cheap: each runs end to end and lands on the
//! numbers the book's argument rests on. Tests on real data skip with a printed line
//! when ../shared/data is absent.

use d2l_book::gd::{
    gd_checks, run_gd_compare, run_gd_compare_on, train_ch11, Ch11Method, GdCase, GdOptions,
};
use d2l_book::sequence::{book_epoch_losses, run_sequence, SequenceOptions};
use d2l_book::zipf::{book_top, run_zipf, ZipfOptions};
use d2l_book::Common;
use d2l_data::hub::DataHub;
use d2l_tensor::{Generator, Tensor};
use std::path::{Path, PathBuf};

fn shared_data(file: &str) -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if d.join(file).is_file() {
        Some(d)
    } else {
        println!("skipped: {} not found", d.join(file).display());
        None
    }
}

fn offline_hub(dir: &Path) -> DataHub {
    DataHub::new(std::env::temp_dir().join("d2l-seq-exp-test-cache"))
        .with_data_dir(dir)
        .without_system_dirs()
        .offline(true)
        .quiet()
}

#[test]
fn sequence_model_errors_grow_with_the_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_sequence(&SequenceOptions {
        common: Common::quiet_in(dir.path()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(r.x.len(), 1000);
    assert_eq!(r.epoch_losses.len(), 5);
    // The book's losses run 0.0768 → 0.0517; ours should land in the same band, above the
    // noise variance (0.04) and well below the series' variance (≈ 0.5).
    let last = *r.epoch_losses.last().unwrap();
    assert!(last > 0.035 && last < 0.08, "{:?}", r.epoch_losses);
    assert!(r.epoch_losses[0] < 0.3, "{:?}", r.epoch_losses);
    assert!(
        (last - book_epoch_losses()[4]).abs() < 0.03,
        "{:?}",
        r.epoch_losses
    );
    // One step ahead generalises past the training range.
    assert!(r.onestep_mse.1 < 0.08, "{r}");
    assert_eq!(r.onestep.len(), 996);
    // Multi-step predictions from index 604 drift: far worse than one step.
    assert_eq!(r.multistep[..604], r.x[..604]);
    assert!(r.multistep_mse > 2.0 * r.onestep_mse.1, "{r}");
    // k-step error grows with k.
    let e = |k| r.kstep_error(k).unwrap();
    assert!((e(1) - r.onestep_mse.0).abs() < 0.05, "{r}");
    assert!(e(1) < e(4) && e(4) < e(16) && e(16) < e(64), "{r}");
    assert_eq!(r.kstep.len(), 4);
    assert_eq!(r.kstep[3].1.len(), 1000 - 4 - 64 + 1);
    for name in [
        "seq-data",
        "seq-onestep",
        "seq-multistep",
        "seq-kstep",
        "seq-kstep-error",
    ] {
        assert!(dir.path().join(format!("{name}.png")).is_file(), "{name}");
        assert!(dir.path().join(format!("{name}.svg")).is_file(), "{name}");
    }
    let text = r.to_string();
    assert!(text.contains("epoch 1, loss: ") && text.contains("(book: 0.076846)"));
}

#[test]
fn sequence_options_are_checked() {
    let bad = [
        SequenceOptions {
            tau: 0,
            ..Default::default()
        },
        SequenceOptions {
            n_train: 997,
            ..Default::default()
        },
        SequenceOptions {
            steps: vec![1, 65],
            ..Default::default()
        },
        SequenceOptions {
            t_max: 60,
            n_train: 10,
            ..Default::default()
        },
        SequenceOptions {
            lr: f64::NAN,
            ..Default::default()
        },
    ];
    for o in bad {
        assert!(run_sequence(&o).is_err(), "{o:?}");
    }
}

#[test]
fn zipf_on_the_time_machine() {
    let Some(data) = shared_data("timemachine/timemachine.txt") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let r = run_zipf(&ZipfOptions {
        hub: offline_hub(&data),
        epsilons: vec![1.0, 100.0],
        common: Common::quiet_in(dir.path()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!((r.lines, r.char_tokens), (3221, 170580));
    assert_eq!(r.ngrams[0].top, book_top(1));
    assert_eq!(book_top(1).len(), 10);
    assert_eq!(r.ngrams[1].top[0], ("of the".to_string(), 309));
    assert_eq!(r.ngrams[2].top[0], ("the time traveller".to_string(), 59));
    let a: Vec<f64> = r.ngrams.iter().map(|s| s.zipf_alpha.unwrap()).collect();
    assert!(a[0] > a[1] && a[1] > a[2], "{a:?}");
    // Characters: more context, lower perplexity.
    let chars = &r.perplexity[1];
    let p = chars.rows[0].ppl;
    assert!(p[2] < p[1] && p[1] < p[0], "{p:?}");
    for name in ["zipf", "zipf-unigram"] {
        assert!(dir.path().join(format!("{name}.png")).is_file());
    }
    let text = r.to_string();
    assert!(text.contains("[('the', 2261), ('i', 1267)"), "{text}");
    assert!(
        text.contains("(('the', 'time', 'traveller'), 59)"),
        "{text}"
    );
}

#[test]
fn missing_text_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let e = run_zipf(&ZipfOptions {
        hub: offline_hub(empty.path()),
        common: Common::quiet(),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("timemachine/timemachine.txt"), "{e}");
}

#[test]
fn gd_section_11_3_matches_the_book() {
    for c in gd_checks() {
        let tol = if c.book.abs() > 1.0 { 1e-4 } else { 1e-6 };
        assert!(
            (c.ours - c.book).abs() < tol,
            "{}: ours {} book {}",
            c.name,
            c.ours,
            c.book
        );
    }
}

#[test]
fn gd_sgd_and_minibatch_on_airfoil_match_the_book() {
    let Some(data) = shared_data("airfoil/airfoil_self_noise.dat") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let r = run_gd_compare(&GdOptions {
        hub: offline_hub(&data),
        common: Common::quiet_in(dir.path()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(r.n, 1500);
    // The book: GD 0.243, SGD 0.246, batch 100 0.243, batch 10 0.243; the least-squares
    // optimum is 0.2417. Single runs scatter around those: the minibatch runs by their
    // noise, and GD because lr 1 sits just past its stability limit (the largest
    // eigenvalue of the Hessian is 2.098 > 2/η), so its slowly growing mode depends on
    // the initial w. Over seeds 0–7 every final loss lies in 0.2421–0.2572.
    for name in [
        "gd",
        "sgd",
        "batch size=100",
        "batch size=10",
        "momentum",
        "adam",
    ] {
        let run = r.run(name).unwrap();
        let l = run.final_loss();
        assert!((0.2415..0.26).contains(&l), "{name}: {l}\n{r}");
        let best = run.losses.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(best < 0.249, "{name}: best {best}\n{r}");
        assert!(
            run.initial_loss > 0.45,
            "{name}: starts near ½ var(y) = 0.5"
        );
    }
    let mean: f64 = ["gd", "sgd", "batch size=100", "batch size=10"]
        .iter()
        .map(|n| r.run(n).unwrap().final_loss())
        .sum::<f64>()
        / 4.0;
    assert!((0.242..0.252).contains(&mean), "{mean}");
    // GD evaluates when 200 divides the examples seen: every second epoch.
    let gd = r.run("gd").unwrap();
    assert_eq!(gd.examples, vec![3000, 6000, 9000, 12000, 15000]);
    assert_eq!(gd.epochs, vec![2.0, 4.0, 6.0, 8.0, 10.0]);
    assert_eq!(gd.updates, 10);
    let sgd = r.run("sgd").unwrap();
    assert_eq!((sgd.losses.len(), sgd.updates), (15, 3000));
    assert!(sgd.times.windows(2).all(|w| w[0] <= w[1]));
    assert!(dir.path().join("gd-compare.png").is_file());
    assert!(dir.path().join("gd-compare.svg").is_file());
    let svg = std::fs::read_to_string(dir.path().join("gd-compare.svg")).unwrap();
    assert!(
        svg.contains("loss against examples seen") && svg.contains("loss against training time")
    );
    assert_eq!(svg.matches("</svg>").count(), 1, "one well-formed document");
    assert!(d2l_train::plot::save_line_panels(&dir.path().join("none"), &[]).is_err());
    assert!(r.to_string().contains("book: loss: 0.243, 0.055 sec/epoch"));
}

fn synthetic(n: usize, g: &mut Generator) -> (Tensor, Tensor) {
    let x = Tensor::normal_with(g, &[n, 3], 0.0, 1.0).unwrap();
    let w = Tensor::from_vec(vec![0.5f32, -0.3, 0.2], &[3, 1]).unwrap();
    let noise = Tensor::normal_with(g, &[n, 1], 0.0, 0.1).unwrap();
    let y = x
        .matmul(&w)
        .unwrap()
        .add(&noise)
        .unwrap()
        .reshape([n])
        .unwrap();
    (x, y)
}

#[test]
fn train_ch11_on_synthetic_data() {
    let mut g = Generator::new(1);
    let (x, y) = synthetic(400, &mut g);
    let cases = vec![
        GdCase::new("gd", Ch11Method::Sgd, 1.0, 400, 10),
        GdCase::new("sgd", Ch11Method::Sgd, 0.01, 1, 2),
        GdCase::new("momentum", Ch11Method::Momentum(0.5), 0.05, 10, 2),
        GdCase::new("adam", Ch11Method::Adam, 0.05, 10, 2),
        // Batches of 7 out of 400 (57 of 7, then 1): 200 divides no count of examples seen
        // until the end (400), where the one evaluation falls.
        GdCase::new("odd", Ch11Method::Sgd, 0.1, 7, 1),
    ];
    let r = run_gd_compare_on(
        &x,
        &y,
        &GdOptions {
            cases,
            common: Common::quiet(),
            ..Default::default()
        },
    )
    .unwrap();
    for run in &r.runs {
        // The noise variance is 0.01, so the best loss is about 0.005.
        assert!(
            run.final_loss() < 0.02,
            "{}: {}",
            run.case.name,
            run.final_loss()
        );
        assert!(run.initial_loss > 0.1);
    }
    assert_eq!(
        r.run("gd").unwrap().examples,
        (1..=10).map(|e| 400 * e).collect::<Vec<_>>()
    );
    let odd = r.run("odd").unwrap();
    assert_eq!((odd.examples.clone(), odd.updates), (vec![400], 58));

    // 200 examples never divide evenly here: one evaluation at the end instead.
    let ok = GdCase::new("x", Ch11Method::Sgd, 0.1, 7, 1);
    let r = train_ch11(&x, &y, &ok, 300, &mut g).unwrap();
    assert_eq!(
        (r.examples.clone(), r.epochs.clone()),
        (vec![400], vec![1.0])
    );
    assert!(r.final_loss() < r.initial_loss);

    // Bad input.
    let bad = GdCase::new("x", Ch11Method::Sgd, 0.0, 10, 1);
    assert!(train_ch11(&x, &y, &bad, 200, &mut g).is_err());
    let bad = GdCase::new("x", Ch11Method::Momentum(1.5), 0.1, 10, 1);
    assert!(train_ch11(&x, &y, &bad, 200, &mut g).is_err());
    let ok = GdCase::new("x", Ch11Method::Sgd, 0.1, 10, 1);
    let short = Tensor::zeros(&[5]);
    assert!(train_ch11(&x, &short, &ok, 200, &mut g).is_err());
    assert!(train_ch11(&x, &y, &ok, 0, &mut g).is_err());
}
