//! `d2l reproduce`: the book's numbers beside ours, checked against stated tolerances.
//!
//! The book's numbers, where it prints them and how close ours must come live in one data
//! file, `crates/d2l-book/reproduce.toml` ([`BOOK_FILE`], compiled in). Each
//! [`Section`] names a recipe: a zoo training (`train:<model>`, run by the `d2l` program
//! exactly as `d2l train <model>` with the book's settings) or one of this crate's
//! experiments ([`run_experiment`]). Either way a run yields named values (per seed);
//! [`compare`] sets their mean beside the book's and says whether each lies within its
//! tolerance, and [`write_record`] keeps the run's record (`config.json`, `metrics.csv`,
//! `summary.json`, `curves.svg` and the comparison, `reproduce.json`; never weights) in a
//! folder such as `docs/runs/<id>-<name>/`.

use crate::{gd, house, poly, sequence, weight_decay, zipf, CommonOptions, ExperimentError};
use crate::{ExperimentError as E, Result};
use d2l_data::hub::DataHub;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The data file of the book's numbers and tolerances (`reproduce.toml`).
pub const BOOK_FILE: &str = include_str!("../reproduce.toml");

/// How long a section takes; `--quick` runs the [`Cost::Quick`] ones only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cost {
    /// Seconds: runs in CI.
    Quick,
    /// Minutes on two cores.
    Minutes,
    /// Hours on two cores (the chapter-7 CNNs at the book's budget).
    Hours,
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cost::Quick => "quick",
            Cost::Minutes => "minutes",
            Cost::Hours => "hours",
        })
    }
}

/// One number the book prints, with how close ours must come.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    /// The value's name (`test_acc`, `fold1_valid`, ...).
    pub name: String,
    /// The book's number.
    pub book: f64,
    /// Within ±`abs` of the book.
    pub abs: Option<f64>,
    /// Within ±`rel`·|book|.
    pub rel: Option<f64>,
    /// Equal to the book's printed digits (within half a unit of the last one).
    pub digits: Option<u32>,
    /// Why the tolerance is what it is (or why there is none).
    pub note: Option<String>,
    /// Where the book's number is odd: what the book's code gives in PyTorch on the same
    /// recipe on the development machine (`scripts/train_torch_zoo.py`), shown beside it.
    pub pytorch: Option<f64>,
}

impl Metric {
    /// The tolerance as an absolute distance from the book's number; `None` when the value
    /// is shown but not checked.
    pub fn tolerance(&self) -> Option<f64> {
        if let Some(a) = self.abs {
            return Some(a);
        }
        if let Some(r) = self.rel {
            return Some(r * self.book.abs());
        }
        self.digits.map(|d| 0.5 * 10f64.powi(-(d as i32)))
    }

    /// The tolerance as the data file states it: `±0.015`, `±5 %`, `printed digits`, `–`.
    pub fn tolerance_text(&self) -> String {
        match (self.abs, self.rel, self.digits) {
            (Some(0.0), _, _) => "exact".into(),
            (Some(a), _, _) => format!("±{a}"),
            (_, Some(r), _) => format!("±{} %", r * 100.0),
            (_, _, Some(d)) => format!("{d} digits"),
            _ => "–".into(),
        }
    }

    /// Whether `ours` lies within the tolerance (`None`: not checked). A non-finite value
    /// is never within.
    pub fn within(&self, ours: f64) -> Option<bool> {
        // A hair of slack for the decimal numbers of the data file (0.1 + 0.2 ≠ 0.3).
        self.tolerance()
            .map(|t| ours.is_finite() && (ours - self.book).abs() <= t * (1.0 + 1e-9) + 1e-12)
    }

    fn check_kind(&self, section: &str) -> Result<()> {
        let kinds = [
            self.abs.is_some(),
            self.rel.is_some(),
            self.digits.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err(E::Invalid(format!(
                "reproduce.toml, section {section}, metric {}: give at most one of abs, rel, digits",
                self.name
            )));
        }
        if let Some(t) = self.abs.or(self.rel) {
            if !(t.is_finite() && t >= 0.0) {
                return Err(E::Invalid(format!(
                    "reproduce.toml, section {section}, metric {}: tolerance {t} is not a number ≥ 0",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

/// One section of the book with printed results, and how to reproduce them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The book's section (zh-v2 numbering), e.g. `3.7`.
    pub id: String,
    /// Short name; the record folder is `<id>-<name>`.
    pub name: String,
    /// What is reproduced.
    pub title: String,
    /// Where the book prints (or plots) the numbers.
    #[serde(rename = "where")]
    pub where_: String,
    /// `train:<model>[:random-iter]` or an experiment name (see [`run_experiment`]).
    pub recipe: String,
    /// How long it takes.
    pub cost: Cost,
    /// Expected seconds per seed on the development machine (2 shared cores, release).
    pub seconds: f64,
    /// Seeds run by default (their mean is compared).
    pub seeds: usize,
    /// The `docs/RESULTS.md` heading of its row.
    pub results: String,
    /// The numbers compared.
    pub metric: Vec<Metric>,
}

impl Section {
    /// `<id>-<name>`: the record folder's name and an unambiguous selector.
    pub fn key(&self) -> String {
        format!("{}-{}", self.id, self.name)
    }

    /// The zoo model and whether to sample randomly, for a `train:` recipe.
    pub fn zoo_model(&self) -> Option<(&str, bool)> {
        let rest = self.recipe.strip_prefix("train:")?;
        Some(match rest.strip_suffix(":random-iter") {
            Some(m) => (m, true),
            None => (rest, false),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookFile {
    section: Vec<Section>,
}

/// The sections of the data file, checked: unique keys, at most one tolerance per metric,
/// at least one seed, a known recipe.
pub fn sections() -> Result<Vec<Section>> {
    parse_sections(BOOK_FILE)
}

/// [`sections`] from the text of a data file.
pub fn parse_sections(text: &str) -> Result<Vec<Section>> {
    let f: BookFile =
        toml::from_str(text).map_err(|e| E::Invalid(format!("reproduce.toml: {e}")))?;
    let mut keys = std::collections::BTreeSet::new();
    for s in &f.section {
        if !keys.insert(s.key()) {
            return Err(E::Invalid(format!(
                "reproduce.toml: section {} twice",
                s.key()
            )));
        }
        if s.seeds == 0 {
            return Err(E::Invalid(format!(
                "reproduce.toml, section {}: seeds must be ≥ 1",
                s.key()
            )));
        }
        if s.zoo_model().is_none() && !EXPERIMENTS.contains(&s.recipe.as_str()) {
            return Err(E::Invalid(format!(
                "reproduce.toml, section {}: unknown recipe `{}`",
                s.key(),
                s.recipe
            )));
        }
        for m in &s.metric {
            m.check_kind(&s.key())?;
        }
    }
    Ok(f.section)
}

/// The book's number `metric` of section `key` (`<id>-<name>`) in the data file, for the
/// experiments' printouts; `None` when the file has no such number.
pub fn book_value(key: &str, metric: &str) -> Option<f64> {
    static SECTIONS: std::sync::OnceLock<Vec<Section>> = std::sync::OnceLock::new();
    SECTIONS
        .get_or_init(|| sections().unwrap_or_default())
        .iter()
        .find(|s| s.key() == key)?
        .metric
        .iter()
        .find(|m| m.name == metric)
        .map(|m| m.book)
}

/// The sections a command line names: `all`, `quick` (the cheap ones), a section id
/// (`4.10`; every section of that id), a key (`8.5-char-rnn-scratch`) or a name
/// (`house-prices`).
pub fn select<'a>(sections: &'a [Section], what: &str) -> Result<Vec<&'a Section>> {
    let picked: Vec<&Section> = match what {
        "all" => sections.iter().collect(),
        "quick" => sections.iter().filter(|s| s.cost == Cost::Quick).collect(),
        w => sections
            .iter()
            .filter(|s| s.id == w || s.key() == w || s.name == w)
            .collect(),
    };
    if picked.is_empty() {
        let known: Vec<String> = sections.iter().map(Section::key).collect();
        return Err(E::Invalid(format!(
            "no book section `{what}` to reproduce; known: all, quick, {}",
            known.join(", ")
        )));
    }
    Ok(picked)
}

/// The experiment recipes [`run_experiment`] knows.
pub const EXPERIMENTS: [&str; 8] = [
    "ch13-values",
    "poly",
    "weight-decay",
    "house",
    "seq",
    "zipf",
    "gd-11.3",
    "airfoil",
];

/// What one run of a recipe gave: named values, and where its files are.
#[derive(Debug, Clone, Default)]
pub struct RunValues {
    /// The values by metric name.
    pub values: Vec<(String, f64)>,
    /// The run's settings, for `config.json`.
    pub config: serde_json::Value,
    /// The figure to keep as `curves.svg`, when there is one.
    pub curves: Option<PathBuf>,
    /// The per-epoch `metrics.csv` to keep, when the run wrote one.
    pub metrics_csv: Option<PathBuf>,
    /// The run's `summary.json` to keep, when it wrote one.
    pub summary_json: Option<PathBuf>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl RunValues {
    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Runs an experiment recipe (not a `train:` one) for one seed, its plots written to
/// `out_dir`: `poly` (4.4), `weight-decay` (4.5), `house` (4.10), `seq` (8.1), `zipf`
/// (8.2–8.3), `gd-11.3` (11.3's worked examples) or `airfoil` (11.5).
pub fn run_experiment(
    recipe: &str,
    seed: u64,
    hub: &DataHub,
    out_dir: &Path,
    quiet: bool,
) -> Result<RunValues> {
    let start = std::time::Instant::now();
    let svg = |name: &str| Some(out_dir.join(format!("{name}.svg")));
    let mut r = match recipe {
        "poly" => {
            let mut o = poly::PolyOptions::default();
            common(&mut o, seed, quiet, out_dir);
            let res = poly::run_poly(&o)?;
            let run = |name: &str| {
                res.runs
                    .iter()
                    .find(|r| r.name == name)
                    .ok_or_else(|| E::Invalid(format!("4.4: no `{name}` fit in the results")))
            };
            let normal = run("normal")?;
            let mut values: Vec<(String, f64)> = (normal.weights.iter().take(4))
                .enumerate()
                .map(|(i, w)| (format!("w{i}"), *w))
                .collect();
            values.push(("train_loss".into(), normal.train_loss));
            values.push(("test_loss".into(), normal.test_loss));
            values.push(("underfit_train_loss".into(), run("underfit")?.train_loss));
            values.push(("overfit_test_loss".into(), run("overfit")?.test_loss));
            RunValues {
                values,
                config: serde_json::json!({
                    "n_train": o.n_train, "n_test": o.n_test, "max_degree": o.max_degree,
                    "lr": o.lr, "batch_size": o.batch_size,
                    "cases": o.cases.iter().map(|c| serde_json::json!({"name": c.name, "degree": c.degree, "epochs": c.epochs})).collect::<Vec<_>>(),
                }),
                curves: svg("poly-normal"),
                ..Default::default()
            }
        }
        "weight-decay" => {
            let mut o = weight_decay::WeightDecayOptions::default();
            common(&mut o, seed, quiet, out_dir);
            let res = weight_decay::run_weight_decay(&o)?;
            let norm = |v: weight_decay::WdVariant, l: f64| {
                res.runs
                    .iter()
                    .find(|r| r.variant == v && r.lambda == l)
                    .map(|r| r.w_norm)
                    .ok_or_else(|| E::Invalid(format!("4.5: no {v} run with λ = {l}")))
            };
            use weight_decay::WdVariant::{Concise, Scratch};
            RunValues {
                values: vec![
                    ("scratch_norm_lambda0".into(), norm(Scratch, 0.0)?),
                    ("scratch_norm_lambda3".into(), norm(Scratch, 3.0)?),
                    ("concise_norm_wd0".into(), norm(Concise, 0.0)?),
                    ("concise_norm_wd3".into(), norm(Concise, 3.0)?),
                ],
                config: serde_json::json!({
                    "n_train": o.n_train, "n_test": o.n_test, "num_inputs": o.num_inputs,
                    "batch_size": o.batch_size, "lr": o.lr, "epochs": o.epochs, "lambdas": o.lambdas,
                }),
                curves: svg("weight-decay-scratch-lambda3"),
                ..Default::default()
            }
        }
        "house" => {
            let mut o = house::HouseOptions {
                hub: hub.clone(),
                ..Default::default()
            };
            common(&mut o, seed, quiet, out_dir);
            let res = house::run_house_prices(&o)?;
            let mut values: Vec<(String, f64)> = (res.folds.iter())
                .map(|f| (format!("fold{}_valid", f.fold), f.valid_log_rmse))
                .collect();
            values.extend(
                (res.folds.iter()).map(|f| (format!("fold{}_train", f.fold), f.train_log_rmse)),
            );
            values.push(("mean_train".into(), res.mean_train));
            values.push(("mean_valid".into(), res.mean_valid));
            values.push(("final_train".into(), res.final_train_log_rmse));
            RunValues {
                values,
                config: serde_json::json!({
                    "k": o.k, "epochs": o.epochs, "lr": o.lr, "weight_decay": o.weight_decay,
                    "batch_size": o.batch_size, "features": res.train_shape.1,
                }),
                curves: svg("house-fold1"),
                ..Default::default()
            }
        }
        "seq" => {
            let mut o = sequence::SequenceOptions::default();
            common(&mut o, seed, quiet, out_dir);
            let res = sequence::run_sequence(&o)?;
            let mut values: Vec<(String, f64)> = (res.epoch_losses.iter())
                .enumerate()
                .map(|(i, l)| (format!("epoch{}_loss", i + 1), *l))
                .collect();
            values.push(("multistep_mse".into(), res.multistep_mse));
            RunValues {
                values,
                config: serde_json::json!({"tau": res.tau, "n_train": res.n_train, "epochs": o.epochs}),
                curves: svg("seq-kstep"),
                ..Default::default()
            }
        }
        "zipf" => {
            let mut o = zipf::ZipfOptions {
                hub: hub.clone(),
                ..Default::default()
            };
            common(&mut o, seed, quiet, out_dir);
            let res = zipf::run_zipf(&o)?;
            let mut values = vec![
                ("lines".to_string(), res.lines as f64),
                ("char_tokens".to_string(), res.char_tokens as f64),
                ("word_tokens".to_string(), res.word_tokens as f64),
            ];
            for g in &res.ngrams {
                for (tok, count) in &g.top {
                    values.push((format!("{}gram:{tok}", g.n), *count as f64));
                }
            }
            RunValues {
                values,
                config: serde_json::json!({"corpus": "timemachine/timemachine.txt"}),
                curves: svg("zipf"),
                ..Default::default()
            }
        }
        "gd-11.3" => RunValues {
            values: gd::gd_checks()
                .into_iter()
                .map(|c| (c.key.to_string(), c.ours))
                .collect(),
            config: serde_json::json!({"examples": gd::gd_checks().iter().map(|c| c.name).collect::<Vec<_>>()}),
            ..Default::default()
        },
        "ch13-values" => RunValues {
            values: ch13_values()?,
            config: serde_json::json!({
                "13.4": "multibox_prior(561, 728, sizes [0.75, 0.5, 0.25], ratios [1, 2, 0.5]), the box at pixel (250, 250)",
                "13.8": "roi_pool(arange(16) as 1x1x4x4, rois [[0,0,0,20,20],[0,0,10,30,30]], (2, 2), spatial_scale 0.1)",
                "13.10": "trans_conv and conv_transpose2d of X = K = [[0,1],[2,3]] (padding 1, stride 2); corr2d(arange(9) as 3x3, [[1,2],[3,4]])",
            }),
            ..Default::default()
        },
        "airfoil" => {
            let mut o = gd::GdOptions {
                hub: hub.clone(),
                cases: gd::GdCase::book(),
                ..Default::default()
            };
            common(&mut o, seed, quiet, out_dir);
            let res = gd::run_gd_compare(&o)?;
            let mut values = Vec::new();
            for run in &res.runs {
                let Some(key) = gd::airfoil_key(&run.case.name) else {
                    continue;
                };
                let last = run.losses.last().copied().unwrap_or(f64::NAN);
                values.push((format!("{key}_loss"), last));
                values.push((format!("{key}_sec_per_epoch"), run.book_sec_per_epoch));
            }
            RunValues {
                values,
                config: serde_json::json!({
                    "n": res.n,
                    "cases": o.cases.iter().map(|c| serde_json::json!({"name": c.name, "lr": c.lr, "batch_size": c.batch_size, "epochs": c.epochs})).collect::<Vec<_>>(),
                }),
                curves: svg("gd-compare"),
                ..Default::default()
            }
        }
        other => {
            return Err(E::Invalid(format!(
                "unknown experiment recipe `{other}` (known: {})",
                EXPERIMENTS.join(", ")
            )))
        }
    };
    r.curves = r.curves.filter(|p| p.is_file());
    r.seconds = start.elapsed().as_secs_f64();
    Ok(r)
}

/// The deterministic printed values of 13.4 (anchors), 13.8 (RoI pooling) and 13.10
/// (transposed convolution), named `anchor_*`, `roi_pool_*`, `trans_conv_*`,
/// `trans_conv_pad1`, `trans_conv_stride2_*` and `corr2d_*` (row-major indices).
fn ch13_values() -> Result<Vec<(String, f64)>> {
    use d2l_tensor::{ConvTranspose2dOptions, Tensor};
    use d2l_vision::{detection::multibox_prior, roi::roi_pool, upsample};
    let mut out = Vec::new();
    let mut push = |prefix: &str, t: &Tensor| {
        for (i, v) in t.to_f64_vec().into_iter().enumerate() {
            out.push((format!("{prefix}_{i}"), v));
        }
    };
    // 13.4: catdog.jpg is 561 × 728; boxes = Y.reshape(h, w, 5, 4); boxes[250, 250, 0, :].
    let (h, w) = (561usize, 728usize);
    let y = multibox_prior(h, w, &[0.75, 0.5, 0.25], &[1.0, 2.0, 0.5])?;
    let k = (250 * w + 250) * 5;
    push("anchor", &y.reshape([h * w * 5, 4])?.narrow(0, k, 1)?);
    let n_anchors = y.shape()[1] as f64;
    // 13.8.
    let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([1, 1, 4, 4])?;
    let rois = Tensor::from_vec(vec![0f32, 0., 0., 20., 20., 0., 0., 10., 30., 30.], &[2, 5])?;
    push("roi_pool", &roi_pool(&x, &rois, (2, 2), 0.1)?);
    // 13.10.
    let x2 = Tensor::from_vec(vec![0f32, 1., 2., 3.], &[2, 2])?;
    push("trans_conv", &upsample::trans_conv(&x2, &x2)?);
    let x4 = x2.reshape([1, 1, 2, 2])?;
    let pad1 = x4.conv_transpose2d(
        &x4,
        None,
        &ConvTranspose2dOptions::default().with_padding(1),
    )?;
    push("trans_conv_pad1", &pad1);
    let s2 = x4.conv_transpose2d(&x4, None, &ConvTranspose2dOptions::stride(2))?;
    push("trans_conv_stride2", &s2);
    let x9 = Tensor::arange(0.0, 9.0, 1.0)?.reshape([3, 3])?;
    let k2 = Tensor::from_vec(vec![1f32, 2., 3., 4.], &[2, 2])?;
    push("corr2d", &upsample::corr2d(&x9, &k2)?);
    out.push(("anchors".into(), n_anchors));
    Ok(out)
}

fn common<O: CommonOptions>(o: &mut O, seed: u64, quiet: bool, out_dir: &Path) {
    o.set_seed(seed);
    o.set_quiet(quiet);
    o.set_out_dir(Some(out_dir.to_path_buf()));
}

/// Reads the values of a finished training run from its folder (as `d2l train --out DIR`
/// leaves it): `train_loss`, `train_acc`, `test_acc` and, for language models, the last
/// epoch's `perplexity` from `summary.json`; the folder's `config.json`, `metrics.csv`
/// and `curves.svg` become the record's.
pub fn values_from_run(dir: &Path) -> Result<RunValues> {
    let read = |name: &str| -> Result<serde_json::Value> {
        let p = dir.join(name);
        let text = std::fs::read_to_string(&p).map_err(|source| E::Io {
            path: p.clone(),
            source,
        })?;
        serde_json::from_str(&text)
            .map_err(|e| E::Invalid(format!("{}: not a run's JSON: {e}", p.display())))
    };
    if dir.join("config.json").is_file() && !dir.join("summary.json").is_file() {
        return Err(E::Invalid(format!(
            "{}: the run has not finished (no summary.json yet); `d2l train --resume {}` continues it",
            dir.display(),
            dir.display()
        )));
    }
    let summary = read("summary.json")?;
    let config = read("config.json")?;
    if let Some(why) = summary.get("stopped_early").and_then(|v| v.as_str()) {
        return Err(E::Invalid(format!(
            "{}: the run stopped early ({why}); resume it before recording",
            dir.display()
        )));
    }
    let mut values = Vec::new();
    for key in ["train_loss", "train_acc", "test_acc"] {
        if let Some(v) = summary.get(key).and_then(|v| v.as_f64()) {
            values.push((key.to_string(), v));
        }
    }
    let last_epoch = summary
        .get("epochs")
        .and_then(|e| e.as_array())
        .and_then(|a| a.last());
    if let Some(cols) = last_epoch
        .and_then(|e| e.get("columns"))
        .and_then(|c| c.as_array())
    {
        for c in cols {
            if let (Some(n), Some(v)) = (
                c.get(0).and_then(|n| n.as_str()),
                c.get(1).and_then(|v| v.as_f64()),
            ) {
                if !values.iter().any(|(k, _)| k == n) {
                    values.push((n.to_string(), v));
                }
            }
        }
    }
    let file = |n: &str| Some(dir.join(n)).filter(|p| p.is_file());
    Ok(RunValues {
        values,
        config,
        curves: file("curves.svg"),
        metrics_csv: file("metrics.csv"),
        summary_json: file("summary.json"),
        seconds: summary
            .get("seconds")
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::NAN),
    })
}

/// One line of the comparison: the book's number, ours (the mean over seeds) and whether
/// it lies within the tolerance.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The metric.
    pub metric: String,
    /// The book's number.
    pub book: f64,
    /// Ours: the mean over the seeds.
    pub ours: f64,
    /// Each seed's value.
    pub per_seed: Vec<f64>,
    /// ours − book.
    pub difference: f64,
    /// The tolerance as written in the data file.
    pub tolerance: String,
    /// Within the tolerance; `None` when not checked.
    pub within: Option<bool>,
    /// The data file's note.
    pub note: Option<String>,
    /// PyTorch on the same recipe, where the data file gives it.
    pub pytorch: Option<f64>,
}

/// The comparison of one section.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// `<id>-<name>`.
    pub key: String,
    /// The section's title.
    pub title: String,
    /// Where the book's numbers are.
    #[serde(rename = "where")]
    pub where_: String,
    /// The seeds run.
    pub seeds: Vec<u64>,
    /// One row per metric of the data file.
    pub rows: Vec<Row>,
}

impl Comparison {
    /// Whether every checked value is within its tolerance.
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.within != Some(false))
    }
}

/// Sets the mean over `runs` (one per seed) of each of the section's metrics beside the
/// book's number. A metric missing from a run is an error (the recipe and the data file
/// disagree).
pub fn compare(section: &Section, seeds: &[u64], runs: &[RunValues]) -> Result<Comparison> {
    if runs.is_empty() {
        return Err(E::Invalid(format!("{}: no runs to compare", section.key())));
    }
    let mut rows = Vec::new();
    for m in &section.metric {
        let per_seed = runs
            .iter()
            .map(|r| {
                r.get(&m.name).ok_or_else(|| {
                    ExperimentError::Invalid(format!(
                        "{}: the run has no value `{}` (it has: {})",
                        section.key(),
                        m.name,
                        r.values
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<f64>>>()?;
        let ours = per_seed.iter().sum::<f64>() / per_seed.len() as f64;
        rows.push(Row {
            metric: m.name.clone(),
            book: m.book,
            ours,
            per_seed,
            difference: ours - m.book,
            tolerance: m.tolerance_text(),
            within: m.within(ours),
            note: m.note.clone(),
            pytorch: m.pytorch,
        });
    }
    Ok(Comparison {
        key: section.key(),
        title: section.title.clone(),
        where_: section.where_.clone(),
        seeds: seeds.to_vec(),
        rows,
    })
}

/// Formats a number with about five significant digits, as the book prints them.
fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (v.fract() == 0.0 && v.abs() < 1e9) {
        return format!("{v}");
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&mag) {
        return format!("{v:.4e}");
    }
    let decimals = (5 - mag).clamp(0, 8) as usize;
    format!("{v:.decimals$}")
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seeds = match self.seeds.as_slice() {
            [s] => format!("seed {s}"),
            s => format!(
                "mean of seeds {}",
                s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        writeln!(
            f,
            "{} — {} ({seeds}; book: {})",
            self.key, self.title, self.where_
        )?;
        writeln!(
            f,
            "  {:<26} {:>12} {:>12} {:>12} {:>10}  within?",
            "metric", "book", "ours", "difference", "tolerance"
        )?;
        for r in &self.rows {
            let within = match r.within {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "not checked",
            };
            writeln!(
                f,
                "  {:<26} {:>12} {:>12} {:>12} {:>10}  {within}",
                r.metric,
                num(r.book),
                num(r.ours),
                num(r.difference),
                r.tolerance
            )?;
            if let Some(p) = r.pytorch {
                writeln!(
                    f,
                    "  {:<26} PyTorch, the book's code on the same recipe here: {}",
                    "",
                    num(p)
                )?;
            }
            if r.per_seed.len() > 1 {
                let s: Vec<String> = r.per_seed.iter().map(|v| num(*v)).collect();
                writeln!(f, "  {:<26} seeds: {}", "", s.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Writes the record of a section into `dir` (created; earlier record files replaced):
/// `config.json`, `metrics.csv`, `summary.json` and `curves.svg` of the first seed's run
/// (copied where the run wrote them; else `config.json` from the recipe, `metrics.csv`
/// with every seed's values, `summary.json` with the values and seconds) and
/// `reproduce.json`, the comparison with the machine it ran on. Never weights.
pub fn write_record(
    dir: &Path,
    section: &Section,
    comparison: &Comparison,
    runs: &[RunValues],
    machine: serde_json::Value,
) -> Result<()> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| E::Io { path: p, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let first = runs
        .first()
        .ok_or_else(|| E::Invalid(format!("{}: no runs to record", section.key())))?;
    let copy = |from: &Path, name: &str| -> Result<()> {
        let bytes = std::fs::read(from).map_err(io(from))?;
        d2l_nn::serialize::write_atomic(&dir.join(name), &bytes)?;
        Ok(())
    };
    let json = |v: &serde_json::Value, name: &str| -> Result<()> {
        let text =
            serde_json::to_string_pretty(v).map_err(|e| E::Invalid(format!("{name}: {e}")))?;
        d2l_nn::serialize::write_atomic(&dir.join(name), format!("{text}\n").as_bytes())?;
        Ok(())
    };
    json(
        &serde_json::json!({
            "section": section.id,
            "name": section.name,
            "title": section.title,
            "where": section.where_,
            "recipe": section.recipe,
            "seeds": comparison.seeds,
            "settings": first.config,
        }),
        "config.json",
    )?;
    match &first.metrics_csv {
        Some(p) => copy(p, "metrics.csv")?,
        None => {
            let rows = runs.iter().zip(&comparison.seeds).flat_map(|(r, seed)| {
                r.values
                    .iter()
                    .map(move |(n, v)| [seed.to_string(), n.clone(), format!("{v}")])
            });
            crate::write_csv(&dir.join("metrics.csv"), &["seed", "metric", "value"], rows)?;
        }
    }
    match &first.summary_json {
        Some(p) => copy(p, "summary.json")?,
        None => {
            let per_seed: Vec<serde_json::Value> = runs
                .iter()
                .zip(&comparison.seeds)
                .map(|(r, s)| {
                    serde_json::json!({
                        "seed": s,
                        "seconds": r.seconds,
                        "values": r.values.iter()
                            .map(|(n, v)| (n.clone(), serde_json::json!(v)))
                            .collect::<serde_json::Map<_, _>>(),
                    })
                })
                .collect();
            json(&serde_json::json!({ "runs": per_seed }), "summary.json")?;
        }
    }
    let curves = dir.join("curves.svg");
    match &first.curves {
        Some(p) => copy(p, "curves.svg")?,
        None if curves.is_file() => std::fs::remove_file(&curves).map_err(io(&curves))?,
        None => {}
    }
    json(
        &serde_json::json!({
            "comparison": comparison,
            "passed": comparison.passed(),
            "seconds_per_seed": runs.iter().map(|r| r.seconds).collect::<Vec<_>>(),
            "machine": machine,
        }),
        "reproduce.json",
    )
}
