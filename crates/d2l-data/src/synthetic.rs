//! The book's synthetic data sets: linear-regression data (D2L 3.1/3.2.1
//! `synthetic_data`) and the polynomial-regression set of 4.4 (model selection,
//! underfitting and overfitting).

use crate::error::{DataError, Result};
use d2l_tensor::{random, DType, Generator, Tensor};

/// D2L 3.2.1's `synthetic_data`: `X ~ N(0, 1)` of shape `[n, d]` and
/// `y = X w + b + ε`, `ε ~ N(0, 0.01²)`, shaped `[n, 1]`; `w` is `[d]` or `[d, 1]`.
pub fn synthetic_data(w: &Tensor, b: f64, n: usize, g: &mut Generator) -> Result<(Tensor, Tensor)> {
    let d = match w.shape() {
        [d] => *d,
        [d, 1] => *d,
        s => {
            return Err(DataError::Invalid(format!(
                "synthetic_data: w must have shape [d] or [d, 1], got {s:?}"
            )))
        }
    };
    if n == 0 || d == 0 {
        return Err(DataError::Invalid(format!(
            "synthetic_data: need at least one example and one feature, got n = {n}, d = {d}"
        )));
    }
    if !b.is_finite() {
        return Err(DataError::Invalid(format!(
            "synthetic_data: bias must be finite, got {b}"
        )));
    }
    let w = if w.dtype() == DType::F32 {
        w.detach()
    } else {
        w.detach().to_dtype(DType::F32)?
    };
    let x = Tensor::randn_with(g, &[n, d]);
    let y = x.matmul(&w)?.add_scalar(b)?.reshape(&[n, 1][..])?;
    let noise = Tensor::normal_with(g, &[n, 1], 0.0, 0.01)?;
    let y = (&y + &noise)?;
    Ok((x, y))
}

/// The first coefficients of 4.4's true polynomial: `y = 5 + 1.2x − 3.4x²/2! + 5.6x³/3! + ε`.
pub const POLY_TRUE_W: [f64; 4] = [5.0, 1.2, -3.4, 5.6];

/// D2L 4.4's polynomial regression data.
#[derive(Debug, Clone)]
pub struct PolyData {
    /// The raw inputs `x ~ N(0, 1)`, `[n_train + n_test, 1]`.
    pub x: Tensor,
    /// Features `x^i / i!` for `i = 0..max_degree`, `[n_train + n_test, max_degree]`.
    pub poly_features: Tensor,
    /// Targets `poly_features · true_w + ε`, `ε ~ N(0, 0.1²)`, `[n_train + n_test, 1]`.
    pub labels: Tensor,
    /// The true weights (`POLY_TRUE_W` then zeros), length `max_degree`.
    pub true_w: Vec<f64>,
    /// Number of training rows (the first ones); the rest are the test rows.
    pub n_train: usize,
}

impl PolyData {
    /// The first `n_train` rows of the first `degree` feature columns and their labels.
    pub fn train(&self, degree: usize) -> Result<(Tensor, Tensor)> {
        self.rows(0, self.n_train, degree)
    }

    /// The test rows of the first `degree` feature columns and their labels.
    pub fn test(&self, degree: usize) -> Result<(Tensor, Tensor)> {
        let n = self.labels.shape()[0];
        self.rows(self.n_train, n - self.n_train, degree)
    }

    fn rows(&self, start: usize, len: usize, degree: usize) -> Result<(Tensor, Tensor)> {
        let max = self.poly_features.shape()[1];
        if degree == 0 || degree > max {
            return Err(DataError::Invalid(format!(
                "PolyData: degree must be in 1..={max}, got {degree}"
            )));
        }
        let f = self
            .poly_features
            .narrow(0, start, len)?
            .narrow(1, 0, degree)?
            .contiguous()?;
        let l = self.labels.narrow(0, start, len)?.contiguous()?;
        Ok((f, l))
    }
}

/// D2L 4.4's data: `n_train + n_test` points, features `x^i / i!` up to `max_degree`
/// columns (the book uses 20), true weights [`POLY_TRUE_W`] followed by zeros.
pub fn poly_data(
    n_train: usize,
    n_test: usize,
    max_degree: usize,
    g: &mut Generator,
) -> Result<PolyData> {
    let mut true_w = vec![0.0; max_degree];
    let k = POLY_TRUE_W.len().min(max_degree);
    true_w[..k].copy_from_slice(&POLY_TRUE_W[..k]);
    poly_data_with(n_train, n_test, &true_w, g)
}

/// [`poly_data`] with any true weights; `true_w.len()` is the number of feature columns.
pub fn poly_data_with(
    n_train: usize,
    n_test: usize,
    true_w: &[f64],
    g: &mut Generator,
) -> Result<PolyData> {
    let n = n_train + n_test;
    let m = true_w.len();
    if n == 0 || m == 0 {
        return Err(DataError::Invalid(format!(
            "poly_data: need at least one point and one degree, got {n} points and {m} degrees"
        )));
    }
    if m > 170 {
        return Err(DataError::Invalid(format!(
            "poly_data: max_degree {m} is too large (i! overflows f64 beyond 170)"
        )));
    }
    if true_w.iter().any(|w| !w.is_finite()) {
        return Err(DataError::Invalid(
            "poly_data: true_w must be finite".into(),
        ));
    }
    let xs = random::normal_f64(g, n, 0.0, 1.0);
    let noise = random::normal_f64(g, n, 0.0, 0.1);
    let mut feats = Vec::with_capacity(n * m);
    let mut labels = Vec::with_capacity(n);
    for (x, eps) in xs.iter().zip(&noise) {
        let mut pow = 1.0f64; // x^i
        let mut fact = 1.0f64; // i!
        let mut y = 0.0;
        for (i, w) in true_w.iter().enumerate() {
            if i > 0 {
                pow *= x;
                fact *= i as f64;
            }
            let f = pow / fact;
            feats.push(f as f32);
            y += f * w;
        }
        labels.push((y + eps) as f32);
    }
    Ok(PolyData {
        x: Tensor::from_vec(xs.iter().map(|&v| v as f32).collect::<Vec<f32>>(), &[n, 1])?,
        poly_features: Tensor::from_vec(feats, &[n, m])?,
        labels: Tensor::from_vec(labels, &[n, 1])?,
        true_w: true_w.to_vec(),
        n_train,
    })
}
