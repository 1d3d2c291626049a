//! Kaggle house prices (D2L 4.10, "Predicting House Prices on Kaggle"): reading the two
//! CSV files, the book's preprocessing, the log-RMSE metric and K-fold splits.
//!
//! The preprocessing is the book's, column for column:
//! - the features of train and test are concatenated, without `Id` (the first column) and
//!   without `SalePrice` (the last column of the training file);
//! - a column is numeric when every non-missing value parses as a number, categorical
//!   otherwise (inferred from the data, nothing is hard-coded); missing values are `NA` or
//!   empty fields, as pandas' `read_csv` reads them in the book's pandas version;
//! - numeric columns are standardised, `(x - mean) / std` with the sample standard
//!   deviation (pandas' `std`, `ddof = 1`) over both sets, then missing values become 0
//!   (the mean);
//! - categorical columns are one-hot encoded with an extra indicator for missing values
//!   (`pd.get_dummies(dummy_na=True)`): numeric columns first, in file order, then for each
//!   categorical column (in file order) one column per category in sorted order, then its
//!   `nan` column (present even when nothing is missing).
//!
//! On the real files this gives 331 features, the number the book prints
//! (`all_features.shape == (2919, 331)`). Newer pandas versions (2.x) also read the string
//! `None` as missing; `MasVnrType` has a `None` category, so there it folds into the `nan`
//! indicator and the count drops to 330. This module follows the book.

use crate::error::{read_text, DataError, Result};
use d2l_tensor::Tensor;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A CSV file read into memory: the header and the rows, every field as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvTable {
    /// The column names, from the first line.
    pub header: Vec<String>,
    /// The data rows, each with exactly `header.len()` fields.
    pub rows: Vec<Vec<String>>,
}

fn format_err(path: &Path, msg: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Splits CSV text into records with the `csv` crate (RFC 4180: quoted fields may hold
/// commas, doubled quotes and line breaks; blank lines are skipped). Returns each record
/// with its first line number.
fn parse_csv_records(path: &Path, text: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    let mut last_start = None;
    for r in reader.records() {
        let r = r.map_err(|e| format_err(path, format!("not valid CSV: {e}")))?;
        let (line, byte) = r
            .position()
            .map_or((0, 0), |p| (p.line() as usize, p.byte() as usize));
        last_start = Some((line, byte));
        records.push((line, r.iter().map(str::to_string).collect()));
    }
    // The csv crate reads a quote left open up to the end of the input as one field; a
    // file cut short inside a quoted field is an error here. Quotes come in pairs in a
    // well-formed record (doubled quotes included), so an odd count in the last record
    // means one was left open.
    if let Some((line, byte)) = last_start {
        let tail = text.get(byte..).unwrap_or("");
        if tail.bytes().filter(|&b| b == b'"').count() % 2 == 1 {
            return Err(format_err(
                path,
                format!("unterminated quoted field in the record starting on line {line}"),
            ));
        }
    }
    Ok(records)
}

/// Reads a CSV file with a header line; blank lines are skipped, and a row whose field count
/// differs from the header's is an error that names the line.
pub fn read_csv(path: impl AsRef<Path>) -> Result<CsvTable> {
    let path = path.as_ref();
    let text = read_text(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut records = parse_csv_records(path, text)?.into_iter();
    let (_, header) = records
        .next()
        .ok_or_else(|| format_err(path, "empty CSV file: expected a header line"))?;
    let header: Vec<String> = header.into_iter().map(|h| h.trim().to_string()).collect();
    if header.iter().any(|h| h.is_empty()) {
        return Err(format_err(
            path,
            format!("the header line has an empty column name: {header:?}"),
        ));
    }
    if header.iter().all(|h| parse_number(h).is_some()) {
        return Err(format_err(
            path,
            format!(
                "the first line looks like data, not a header of column names: {:?}",
                header
            ),
        ));
    }
    if header.len() < 2 {
        return Err(format_err(
            path,
            format!(
                "the header line has {} column(s), expected a comma-separated list of names",
                header.len()
            ),
        ));
    }
    let mut rows = Vec::new();
    for (line, r) in records {
        if r.len() != header.len() {
            return Err(format_err(
                path,
                format!(
                    "line {line} has {} fields, the header has {}",
                    r.len(),
                    header.len()
                ),
            ));
        }
        rows.push(r);
    }
    Ok(CsvTable { header, rows })
}

/// Whether a field is a missing value (`NA` or empty, pandas' reading in the book).
pub fn is_missing(field: &str) -> bool {
    let f = field.trim();
    f.is_empty() || f == "NA"
}

/// Parses a numeric field the way pandas would accept it (`inf`/`nan` words are not numbers).
fn parse_number(field: &str) -> Option<f64> {
    let f = field.trim();
    let ok = f
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    if !ok {
        return None;
    }
    f.parse::<f64>().ok()
}

/// The inferred type of a feature column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKind {
    /// Every non-missing value is a number; standardised.
    Numeric {
        /// The mean over the non-missing values of train and test.
        mean: f64,
        /// The sample standard deviation (ddof = 1) over the same values.
        std: f64,
    },
    /// Text values; one-hot encoded with these categories (sorted), plus a `nan` indicator.
    Categorical {
        /// The distinct non-missing values, sorted.
        categories: Vec<String>,
    },
}

/// The Kaggle house-price data after the book's preprocessing.
#[derive(Debug, Clone)]
pub struct KaggleHouse {
    /// The training features, `f32` `[1460, F]`.
    pub train_features: Tensor,
    /// The test features, `f32` `[1459, F]`.
    pub test_features: Tensor,
    /// The training labels (raw `SalePrice`), `f32` `[1460, 1]`.
    pub train_labels: Tensor,
    /// The name of each of the `F` feature columns (`LotArea`, `MSZoning_RL`, `Alley_nan`, ...).
    pub feature_names: Vec<String>,
    /// The `Id` of each test row, for a submission file.
    pub test_ids: Vec<String>,
    /// Each original feature column with its inferred kind, in file order.
    pub columns: Vec<(String, ColumnKind)>,
}

impl KaggleHouse {
    /// Reads and preprocesses the two CSV files (`kaggle_house_pred_train.csv` and
    /// `kaggle_house_pred_test.csv` in the data hub).
    pub fn load(train_csv: impl AsRef<Path>, test_csv: impl AsRef<Path>) -> Result<KaggleHouse> {
        let train = read_csv(train_csv.as_ref())?;
        let test = read_csv(test_csv.as_ref())?;
        preprocess(&train, &test, train_csv.as_ref())
    }

    /// The number of features `F`.
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }
}

/// The book's preprocessing of a parsed train table (Id, features..., label) and test table
/// (Id, features...); `train_path` only names the source in error messages.
pub fn preprocess(train: &CsvTable, test: &CsvTable, train_path: &Path) -> Result<KaggleHouse> {
    let th = &train.header;
    let eh = &test.header;
    if th.len() < 3 {
        return Err(format_err(
            train_path,
            format!(
                "expected Id, features and a label column, got {} columns",
                th.len()
            ),
        ));
    }
    let feat_names = &th[1..th.len() - 1];
    if eh.len() != th.len() - 1 || &eh[1..] != feat_names {
        return Err(DataError::Invalid(format!(
            "house prices: the test file's columns ({} of them) are not the training file's \
             columns without the label ({} of them)",
            eh.len(),
            th.len() - 1
        )));
    }
    if train.rows.is_empty() {
        return Err(format_err(
            train_path,
            "the training file has a header but no rows",
        ));
    }
    let label_name = &th[th.len() - 1];
    let mut labels = Vec::with_capacity(train.rows.len());
    for (i, r) in train.rows.iter().enumerate() {
        let v = parse_number(&r[r.len() - 1]).ok_or_else(|| {
            format_err(
                train_path,
                format!(
                    "row {} has label `{}` = {:?}, expected a number",
                    i + 1,
                    label_name,
                    r[r.len() - 1]
                ),
            )
        })?;
        labels.push(v as f32);
    }

    let n_train = train.rows.len();
    let n_test = test.rows.len();
    let n = n_train + n_test;
    // Field j of row i of the concatenated feature table.
    let field = |i: usize, j: usize| -> &str {
        if i < n_train {
            &train.rows[i][j + 1]
        } else {
            &test.rows[i - n_train][j + 1]
        }
    };

    let mut columns = Vec::with_capacity(feat_names.len());
    for (j, name) in feat_names.iter().enumerate() {
        let mut nums = Vec::with_capacity(n);
        let mut numeric = true;
        for i in 0..n {
            let f = field(i, j);
            if is_missing(f) {
                continue;
            }
            match parse_number(f) {
                Some(v) => nums.push(v),
                None => {
                    numeric = false;
                    break;
                }
            }
        }
        let kind = if numeric {
            let cnt = nums.len() as f64;
            let mean = if nums.is_empty() {
                f64::NAN
            } else {
                nums.iter().sum::<f64>() / cnt
            };
            let std = if nums.len() < 2 {
                f64::NAN
            } else {
                (nums.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (cnt - 1.0)).sqrt()
            };
            ColumnKind::Numeric { mean, std }
        } else {
            let cats: BTreeSet<&str> = (0..n)
                .map(|i| field(i, j))
                .filter(|f| !is_missing(f))
                .collect();
            ColumnKind::Categorical {
                categories: cats.into_iter().map(str::to_string).collect(),
            }
        };
        columns.push((name.clone(), kind));
    }

    // Output layout: numeric columns first, then the dummies of each categorical column.
    let mut feature_names = Vec::new();
    for (name, kind) in &columns {
        if matches!(kind, ColumnKind::Numeric { .. }) {
            feature_names.push(name.clone());
        }
    }
    let mut cat_offsets = Vec::new(); // (column index, first output column, category → offset)
    for (j, (name, kind)) in columns.iter().enumerate() {
        if let ColumnKind::Categorical { categories } = kind {
            let start = feature_names.len();
            let map: BTreeMap<&str, usize> = categories
                .iter()
                .enumerate()
                .map(|(k, c)| (c.as_str(), k))
                .collect();
            for c in categories {
                feature_names.push(format!("{name}_{c}"));
            }
            feature_names.push(format!("{name}_nan"));
            cat_offsets.push((j, start, map, categories.len()));
        }
    }
    let f = feature_names.len();
    let mut data = vec![0.0f32; n * f];
    let mut col = 0;
    for (j, (_, kind)) in columns.iter().enumerate() {
        if let ColumnKind::Numeric { mean, std } = kind {
            for i in 0..n {
                let s = field(i, j);
                let v = if is_missing(s) {
                    0.0
                } else {
                    let z = (parse_number(s).unwrap_or(f64::NAN) - mean) / std;
                    if z.is_finite() {
                        z
                    } else {
                        0.0
                    }
                };
                data[i * f + col] = v as f32;
            }
            col += 1;
        }
    }
    for (j, start, map, ncat) in &cat_offsets {
        for i in 0..n {
            let s = field(i, *j);
            let k = if is_missing(s) { *ncat } else { map[s] };
            data[i * f + start + k] = 1.0;
        }
    }
    let test_data = data.split_off(n_train * f);
    Ok(KaggleHouse {
        train_features: Tensor::from_vec(data, &[n_train, f])?,
        test_features: Tensor::from_vec(test_data, &[n_test, f])?,
        train_labels: Tensor::from_vec(labels, &[n_train, 1])?,
        feature_names,
        test_ids: test.rows.iter().map(|r| r[0].clone()).collect(),
        columns,
    })
}

/// The book's metric: `sqrt(mean((log(clamp(pred, 1, inf)) - log(label))^2))` over
/// predictions and labels of the same number of elements.
pub fn log_rmse(preds: &Tensor, labels: &Tensor) -> Result<f64> {
    if preds.numel() != labels.numel() {
        return Err(DataError::Invalid(format!(
            "log_rmse: predictions {:?} and labels {:?} differ in size",
            preds.shape(),
            labels.shape()
        )));
    }
    if preds.numel() == 0 {
        return Err(DataError::Invalid("log_rmse: no predictions".to_string()));
    }
    let p = preds.to_vec::<f64>();
    let y = labels.to_vec::<f64>();
    let se: f64 = p
        .iter()
        .zip(&y)
        .map(|(p, y)| {
            let d = p.max(1.0).ln() - y.ln();
            d * d
        })
        .sum();
    Ok((se / p.len() as f64).sqrt())
}

/// The `i`-th of `k` folds (the book's `get_k_fold_data`): contiguous folds of `n / k` rows
/// (rows past `k * (n / k)` are dropped); returns `(x_train, y_train, x_valid, y_valid)`.
pub fn k_fold_split(
    k: usize,
    i: usize,
    x: &Tensor,
    y: &Tensor,
) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    if k < 2 {
        return Err(DataError::Invalid(format!(
            "k_fold_split: k must be at least 2, got {k}"
        )));
    }
    if i >= k {
        return Err(DataError::Invalid(format!(
            "k_fold_split: fold {i} is out of range for k = {k}"
        )));
    }
    let (xs, ys) = (x.shape(), y.shape());
    if xs.is_empty() || ys.is_empty() || xs[0] != ys[0] {
        return Err(DataError::Invalid(format!(
            "k_fold_split: features {xs:?} and labels {ys:?} must have the same number of rows"
        )));
    }
    let fold = xs[0] / k;
    if fold == 0 {
        return Err(DataError::Invalid(format!(
            "k_fold_split: {} rows are too few for {k} folds",
            xs[0]
        )));
    }
    let x_valid = x.narrow(0, i * fold, fold)?;
    let y_valid = y.narrow(0, i * fold, fold)?;
    let xp: Vec<Tensor> = (0..k)
        .filter(|&j| j != i)
        .map(|j| x.narrow(0, j * fold, fold))
        .collect::<std::result::Result<_, _>>()?;
    let yp: Vec<Tensor> = (0..k)
        .filter(|&j| j != i)
        .map(|j| y.narrow(0, j * fold, fold))
        .collect::<std::result::Result<_, _>>()?;
    let x_train = Tensor::cat(&xp.iter().collect::<Vec<_>>(), 0)?;
    let y_train = Tensor::cat(&yp.iter().collect::<Vec<_>>(), 0)?;
    Ok((
        x_train,
        y_train,
        x_valid.contiguous()?,
        y_valid.contiguous()?,
    ))
}

/// The two file paths of the data set inside a data folder laid out like `shared/data`
/// (`<dir>/kaggle_house/kaggle_house_pred_{train,test}.csv`).
pub fn default_paths(data_dir: impl AsRef<Path>) -> (PathBuf, PathBuf) {
    let d = data_dir.as_ref().join("kaggle_house");
    (
        d.join("kaggle_house_pred_train.csv"),
        d.join("kaggle_house_pred_test.csv"),
    )
}
