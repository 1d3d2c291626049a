//! The NASA airfoil self-noise data of D2L 11.5 ("Minibatch Stochastic Gradient
//! Descent"), data hub name `airfoil/airfoil_self_noise.dat`: 1,503 rows of 5 features
//! (frequency, angle of attack, chord length, free-stream velocity, suction-side
//! displacement thickness) and 1 target (scaled sound pressure level), tab-separated.
//!
//! [`load_airfoil`] is the book's `get_data_ch11(batch_size, n=1500)` without the loader:
//! every column (the label included) standardised with its mean and population standard
//! deviation over all rows, then the first `n` rows as a `[n, 5]` feature tensor and an
//! `[n]` label tensor (f32).
//!
//! ```
//! use d2l_data::airfoil::AirfoilTable;
//! let t = AirfoilTable::parse("800\t0\t0.3048\t71.3\t0.00266337\t126.201\r\n\
//!                              1000\t1.5\t0.2286\t39.6\t0.00310138\t125.201\r\n").unwrap();
//! assert_eq!((t.rows(), t.columns()), (2, 6));
//! let s = t.standardized().unwrap();
//! assert_eq!(s.row(0)[0], -1.0); // (800 − 900) / 100
//! ```

use crate::error::{read_text, DataError, Result};
use crate::hub::DataHub;
use d2l_tensor::Tensor;
use std::path::Path;

/// The hub name of the airfoil file.
pub const AIRFOIL_FILE: &str = "airfoil/airfoil_self_noise.dat";
/// Columns of the file: 5 features then the label.
pub const AIRFOIL_COLUMNS: usize = 6;
/// Feature columns (the book's `feature_dim`).
pub const AIRFOIL_FEATURES: usize = 5;
/// Rows the book keeps (`get_data_ch11`'s default `n`).
pub const AIRFOIL_BOOK_ROWS: usize = 1500;

/// A numeric table read from the airfoil file: rows × columns, row-major, in f64.
#[derive(Debug, Clone, PartialEq)]
pub struct AirfoilTable {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl AirfoilTable {
    /// Parses whitespace-separated numbers, one row per non-empty line (`\n` or `\r\n`),
    /// each with [`AIRFOIL_COLUMNS`] values. A bad number or a short row is an error
    /// naming the line.
    pub fn parse(text: &str) -> Result<AirfoilTable> {
        Self::parse_named(text, None)
    }

    fn parse_named(text: &str, path: Option<&Path>) -> Result<AirfoilTable> {
        let fail = |msg: String| match path {
            Some(p) => DataError::Format {
                path: p.to_path_buf(),
                msg,
            },
            None => DataError::Invalid(format!("airfoil data: {msg}")),
        };
        let mut data = Vec::new();
        let mut rows = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut k = 0;
            for field in line.split_whitespace() {
                let v: f64 = field
                    .parse()
                    .map_err(|_| fail(format!("line {}: `{field}` is not a number", i + 1)))?;
                if !v.is_finite() {
                    return Err(fail(format!("line {}: `{field}` is not finite", i + 1)));
                }
                data.push(v);
                k += 1;
            }
            if k != AIRFOIL_COLUMNS {
                return Err(fail(format!(
                    "line {}: expected {AIRFOIL_COLUMNS} values, got {k}",
                    i + 1
                )));
            }
            rows += 1;
        }
        if rows == 0 {
            return Err(fail("no data rows".into()));
        }
        Ok(AirfoilTable {
            rows,
            cols: AIRFOIL_COLUMNS,
            data,
        })
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<AirfoilTable> {
        let path = path.as_ref();
        let text = read_text(path)?;
        Self::parse_named(&text, Some(path))
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns (6).
    pub fn columns(&self) -> usize {
        self.cols
    }

    /// Row `i` (panics past the end, like slice indexing).
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The mean and population standard deviation (NumPy's `std`, ddof 0) of each column.
    pub fn column_stats(&self) -> Vec<(f64, f64)> {
        (0..self.cols)
            .map(|c| {
                let n = self.rows as f64;
                let mean = (0..self.rows)
                    .map(|r| self.data[r * self.cols + c])
                    .sum::<f64>()
                    / n;
                let var = (0..self.rows)
                    .map(|r| (self.data[r * self.cols + c] - mean).powi(2))
                    .sum::<f64>()
                    / n;
                (mean, var.sqrt())
            })
            .collect()
    }

    /// Every column standardised, `(x − mean) / std` over all rows (the book's
    /// `(data - data.mean(axis=0)) / data.std(axis=0)`); a constant column is an error.
    pub fn standardized(&self) -> Result<AirfoilTable> {
        let stats = self.column_stats();
        if let Some(c) = stats.iter().position(|&(_, s)| s == 0.0) {
            return Err(DataError::Invalid(format!(
                "airfoil data: column {c} is constant and cannot be standardised"
            )));
        }
        let data = self
            .data
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let (m, s) = stats[i % self.cols];
                (v - m) / s
            })
            .collect();
        Ok(AirfoilTable {
            rows: self.rows,
            cols: self.cols,
            data,
        })
    }

    /// The first `n` rows as tensors: features `[n, 5]` and labels `[n]` (f32). `n` must
    /// be between 1 and the number of rows.
    pub fn to_tensors(&self, n: usize) -> Result<(Tensor, Tensor)> {
        if n == 0 || n > self.rows {
            return Err(DataError::Invalid(format!(
                "airfoil data: asked for the first {n} rows of {}",
                self.rows
            )));
        }
        let mut x = Vec::with_capacity(n * AIRFOIL_FEATURES);
        let mut y = Vec::with_capacity(n);
        for r in 0..n {
            let row = self.row(r);
            x.extend(row[..AIRFOIL_FEATURES].iter().map(|&v| v as f32));
            y.push(row[AIRFOIL_FEATURES] as f32);
        }
        Ok((
            Tensor::from_vec(x, &[n, AIRFOIL_FEATURES])?,
            Tensor::from_vec(y, &[n])?,
        ))
    }
}

/// D2L 11.5's `get_data_ch11(n=n)` data: the airfoil file fetched through the hub,
/// standardised per column over all rows, and its first `n` rows as features `[n, 5]`
/// and labels `[n]` (the book uses `n` = [`AIRFOIL_BOOK_ROWS`]).
pub fn load_airfoil(hub: &DataHub, n: usize) -> Result<(Tensor, Tensor)> {
    let path = hub.fetch(AIRFOIL_FILE)?;
    AirfoilTable::read(path)?.standardized()?.to_tensors(n)
}
