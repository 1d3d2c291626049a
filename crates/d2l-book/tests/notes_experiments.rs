//! The notes' points shown by the experiments of issue 25, each checked against its
//! claim with small settings (seconds): covariate-shift correction with overlapping
//! support, concept shift, empirical vs true risk, and the rest.

use d2l_book::images::SubsetSpec;
use d2l_book::shift_cases::{run_shift_cases, ShiftCasesOptions};
use d2l_book::Common;
use std::path::{Path, PathBuf};

/// The shared Fashion-MNIST files, or `None` (the test prints a skip line).
/// `n_train` / `n_test` Fashion-MNIST images (no fallback to `shapes`) from
/// `../shared/data`, or `None` (the test is skipped) when the set is not there.
fn fashion_subset(n_train: usize, n_test: usize) -> Option<SubsetSpec> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if !p.join("fashion_mnist").exists() {
        eprintln!("skipping: ../shared/data/fashion_mnist not found");
        return None;
    }
    Some(SubsetSpec {
        dataset: d2l_data::datasets::DatasetName::FashionMnist,
        hub: d2l_data::hub::DataHub::from_env().with_data_dir(p).quiet(),
        fallback_to_shapes: false,
        n_train,
        n_test,
    })
}

/// A temporary folder for a test's plots, or `$D2L_TEST_PLOTS/<name>` when that is set
/// (to look at them).
fn plot_dir(name: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("D2L_TEST_PLOTS") {
        Some(d) => (None, PathBuf::from(d).join(name)),
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

#[test]
fn overlapping_covariate_shift_is_corrected_by_odds_weights() {
    let (_keep, dir) = plot_dir("shift-cases");
    let opts = ShiftCasesOptions {
        n_test: 5000,
        n_fresh: 5000,
        risk_sizes: vec![20, 1000],
        mlp_steps: 600,
        common: Common::quiet_in(dir.clone()),
        ..Default::default()
    };
    let r = run_shift_cases(&opts).unwrap();
    println!("{r}");
    let o = &r.overlap;
    let acc = |n: &str| o.row(n).unwrap().target_acc;
    let base = acc("unweighted");
    let fixed = acc("odds, self-normalised, clipped");
    let best = acc("trained on labelled target");
    // The shift costs accuracy, and the clipped odds weights win most of it back.
    assert!(best - base > 0.05, "{r}");
    assert!(o.recovered() > 0.5, "{r}");
    assert!(fixed > base, "{r}");
    // The domain classifier's log-odds follow the true log ratio (it is linear here).
    assert!(o.log_ratio_corr > 0.95, "{r}");
    // The weights cost effective sample size: fewer than n, more than a handful.
    let ess = o.row("odds, self-normalised, clipped").unwrap().ess;
    assert!(ess < 0.9 * opts.n_source as f64 && ess > 20.0, "{r}");
    // Concept shift: the frozen model decays, the online one keeps up.
    let (frozen, online) = r.concept.late_means();
    assert!(online > frozen + 0.1, "{r}");
    assert!(*r.concept.frozen.last().unwrap() < 0.6, "{r}");
    // Empirical risk understates the true risk most when n is small.
    let (small, large) = (&r.risk.points[0], &r.risk.points[1]);
    assert!(small.true_risk - small.empirical > 0.2, "{r}");
    assert!(
        large.true_risk - large.empirical < small.true_risk - small.empirical,
        "{r}"
    );
    // The true risk is never below the Bayes risk by more than sampling noise.
    assert!(large.true_risk > r.risk.bayes_risk - 0.05, "{r}");
    for name in ["covariate-overlap", "concept-shift", "risk-gap"] {
        assert!(dir.join(format!("{name}.png")).exists(), "{name}");
        assert!(dir.join(format!("{name}.svg")).exists(), "{name}");
    }
}

#[test]
fn activations_symmetry_collapse_and_xor() {
    use d2l_book::mlp_basics::{run_mlp_basics, MlpBasicsOptions};
    let (_keep, dir) = plot_dir("mlp-demo");
    let opts = MlpBasicsOptions {
        common: Common::quiet_in(dir.clone()),
        ..Default::default()
    };
    let r = run_mlp_basics(&opts).unwrap();
    println!("{r}");
    // Derivatives by autograd: ReLU' is a step, sigmoid' peaks at 1/4, tanh' at 1.
    let max_grad = |i: usize| r.curves[i].grad.iter().cloned().fold(0.0f64, f64::max);
    assert!((max_grad(0) - 1.0).abs() < 1e-6);
    assert!((max_grad(1) - 0.25).abs() < 1e-4);
    assert!((max_grad(2) - 1.0).abs() < 1e-4);
    // Stacked affine layers are one affine map.
    assert!(r.collapse_error < 1e-4, "{r}");
    let fit = |n: &str| r.fit(n).unwrap().clone();
    // No linear model fits the XOR-like set; a randomly initialised MLP does.
    assert!(fit("logistic regression").train_acc < 0.7, "{r}");
    assert!(fit("3 stacked affine layers").train_acc < 0.7, "{r}");
    assert!(fit("MLP, random init").train_acc > 0.95, "{r}");
    // Constant initialisation: the hidden units stay identical, and the MLP is no better
    // than one unit.
    let c = fit("MLP, constant init 0.5");
    assert!(c.unit_spread < 1e-5, "{r}");
    assert!(c.train_acc < 0.8, "{r}");
    assert!(fit("MLP, random init").unit_spread > 0.1, "{r}");
    for name in ["activations", "activation-grads", "xor-set"] {
        assert!(dir.join(format!("{name}.png")).exists(), "{name}");
    }
}

#[test]
fn sigmoid_gradients_vanish_and_relu_with_he_init_keeps_them() {
    use d2l_book::mlp_basics::{grad_norm_comparison, Act};
    let (_keep, dir) = plot_dir("init-demo");
    let r = grad_norm_comparison(Act::Sigmoid, 20, 64, 0, Some(&dir)).unwrap();
    println!("{r}");
    assert!(r.xavier_ratio() < 1e-4, "{r}");
    let relu = grad_norm_comparison(Act::Relu, 20, 64, 0, None).unwrap();
    println!("{relu}");
    assert!(relu.he_ratio() > 0.1 && relu.he_ratio() < 10.0, "{relu}");
    // Under Xavier, ReLU loses far less per layer than the sigmoid.
    assert!(
        relu.xavier_ratio() > 100.0 * r.xavier_ratio(),
        "{relu}\n{r}"
    );
}

#[test]
fn l1_and_huber_resist_outliers_that_pull_l2() {
    use d2l_book::robust_loss::{run_robust_loss, RobustLossOptions};
    let (_keep, dir) = plot_dir("loss-demo");
    let r = run_robust_loss(&RobustLossOptions {
        common: Common::quiet_in(dir.clone()),
        ..Default::default()
    })
    .unwrap();
    println!("{r}");
    let (l1, l2, hub) = (
        r.fit("L1").unwrap(),
        r.fit("L2").unwrap(),
        r.fit("Huber").unwrap(),
    );
    assert!(l1.slope_error() < l2.slope_error() / 5.0, "{r}");
    assert!(hub.slope_error() < l2.slope_error() / 2.0, "{r}");
    assert!(l1.slope_error() < 0.2, "{r}");
    assert!(dir.join("robust-loss.png").exists());
}

#[test]
fn more_training_points_close_the_overfitting_gap() {
    use d2l_book::poly::{run_poly_sizes, PolyOptions};
    let (_keep, dir) = plot_dir("poly-sizes");
    let opts = PolyOptions {
        n_test: 1000,
        common: Common::quiet_in(dir.clone()),
        ..Default::default()
    };
    let r = run_poly_sizes(&opts, &[10, 20, 40, 100, 400, 1000], 20, 15_000).unwrap();
    println!("{r}");
    let (small, large) = (&r.points[0], &r.points[4]);
    // Few points: the degree-20 model fits them better than the noise allows and tests far
    // worse; many points: train and test losses meet near the noise variance.
    assert!(small.test_loss > 3.0 * small.train_loss, "{r}");
    assert!(small.test_loss > 3.0 * large.test_loss, "{r}");
    assert!(large.test_loss < 2.0 * large.train_loss, "{r}");
    assert!(dir.join("poly-sizes.png").exists());
}

#[test]
fn mc_dropout_is_measured_against_the_deterministic_net() {
    use d2l_book::mc_dropout::{run_mc_dropout, McDropoutOptions};
    let Some(data) = fashion_subset(10_000, 2000) else {
        return;
    };
    let r = run_mc_dropout(&McDropoutOptions {
        data,
        epochs: 8,
        passes: vec![1, 5, 30],
        common: Common::quiet(),
        ..Default::default()
    })
    .unwrap();
    println!("{r}");
    let det = r.deterministic;
    let (k1, k30) = (r.mc[0], r.mc[2]);
    // One stochastic pass is a noisier predictor than the deterministic net; averaging
    // many passes approaches it (the inverted dropout scaling keeps the expectation).
    assert!(k1.nll > det.nll, "{r}");
    assert!(k30.nll < k1.nll, "{r}");
    assert!((k30.acc - det.acc).abs() < 0.03, "{r}");
}

#[test]
fn phm_layers_cut_parameters_by_n() {
    use d2l_book::phm::{run_phm, PhmOptions};
    let Some(data) = fashion_subset(6000, 2000) else {
        return;
    };
    let r = run_phm(&PhmOptions {
        data,
        epochs: 5,
        lr: 0.3,
        ns: vec![1, 4],
        common: Common::quiet(),
        ..Default::default()
    })
    .unwrap();
    println!("{r}");
    let (dense, n1, n4) = (&r.rows[0], &r.rows[1], &r.rows[2]);
    // dq → n³ + dq/n (+ bias): 784·256 = 200,704 weights; n = 4: 64 + 50,176.
    assert_eq!(dense.hidden_params, 784 * 256 + 256);
    assert_eq!(n1.hidden_params, 1 + 784 * 256 + 256);
    assert_eq!(n4.hidden_params, 64 + 784 * 256 / 4 + 256);
    assert_eq!(
        n4.params,
        d2l_models::phm::mlp_phm_parameters(784, 256, 10, 4)
    );
    // Both learn (10 classes: chance is 0.1).
    assert!(n4.test_acc > 0.6 && dense.test_acc > 0.6, "{r}");
}

#[test]
fn chapter_2_limit_tangent_and_distributions() {
    use d2l_book::prelim::run_prelim;
    use d2l_tensor::distributions::{Normal, Uniform};
    use d2l_tensor::Tensor;
    let (_keep, dir) = plot_dir("prelim-demo");
    let r = run_prelim(Some(&dir)).unwrap();
    println!("{r}");
    // The book's printout: 2.3, 2.03, 2.003, ... → 2; autograd gives 2.
    assert!((r.limits[0].1 - 2.3).abs() < 1e-9);
    assert!((r.limits[4].1 - 2.0).abs() < 1e-4);
    assert!((r.autograd - 2.0).abs() < 1e-12);
    for m in &r.normal_mass {
        assert!((m - 1.0).abs() < 1e-3, "{r}");
    }
    let n = Normal::new(0.0, 1.0).unwrap();
    let x = Tensor::from_vec(vec![-1.96f64, 0.0, 1.0], &[3]).unwrap();
    let (p, c, l) = (
        n.pdf(&x).unwrap().to_f64_vec(),
        n.cdf(&x).unwrap().to_f64_vec(),
        n.log_prob(&x).unwrap().to_f64_vec(),
    );
    // scipy.stats.norm: pdf(0) = 0.3989423, cdf(−1.96) = 0.0249979, cdf(1) = 0.8413447.
    assert!((p[1] - 0.398_942_3).abs() < 1e-6);
    assert!((c[0] - 0.024_997_9).abs() < 1e-6);
    assert!((c[2] - 0.841_344_7).abs() < 1e-6);
    assert!((l[2] - (-1.418_938_5)).abs() < 1e-6);
    // log_prob is differentiable: d/dx log p(x) = −(x − μ)/σ².
    let n2 = Normal::new(1.0, 2.0).unwrap();
    let xg = Tensor::from_vec(vec![3.0f64], &[1])
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    n2.log_prob(&xg)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!((xg.grad().unwrap().to_f64_vec()[0] + 0.5).abs() < 1e-12);
    let u = Uniform::new(-1.0, 1.0).unwrap();
    let xu = Tensor::from_vec(vec![-2.0f64, 0.5, 1.0], &[3]).unwrap();
    assert_eq!(u.pdf(&xu).unwrap().to_f64_vec(), vec![0.0, 0.5, 0.0]);
    assert_eq!(u.cdf(&xu).unwrap().to_f64_vec(), vec![0.0, 0.75, 1.0]);
    assert!(u.log_prob(&xu).unwrap().to_f64_vec()[0].is_infinite());
    assert!(Normal::new(0.0, 0.0).is_err() && Uniform::new(1.0, 1.0).is_err());
    for name in ["tangent", "normal-pdf", "normal-cdf"] {
        assert!(dir.join(format!("{name}.png")).exists(), "{name}");
    }
}

#[test]
fn depth_needs_batch_norm_or_residuals_and_narrow_3x3_stacks_compete() {
    use d2l_book::design::{run_design, DesignOptions};
    let Some(data) = fashion_subset(4000, 1000) else {
        return;
    };
    let r = run_design(&DesignOptions {
        data,
        epochs: 3,
        common: Common::quiet(),
        ..Default::default()
    })
    .unwrap();
    println!("{r}");
    let (plain, bn, res) = (&r.depth[0], &r.depth[1], &r.depth[2]);
    // The plain 30-layer MLP does not train (its loss stays at log 10 = 2.303 and its
    // accuracy at chance); batch norm and residual blocks of the same depth do.
    assert!(plain.train_loss > 2.2 && plain.test_acc < 0.2, "{r}");
    assert!(
        bn.train_loss < 2.0 && bn.test_acc > plain.test_acc + 0.1,
        "{r}"
    );
    assert!(
        res.train_loss < 1.0 && res.test_acc > plain.test_acc + 0.2,
        "{r}"
    );
    let (deep, wide) = (&r.width[0], &r.width[1]);
    // The same budget: within 10% of each other's parameters.
    let ratio = deep.params as f64 / wide.params as f64;
    assert!((0.9..1.1).contains(&ratio), "{r}");
}
