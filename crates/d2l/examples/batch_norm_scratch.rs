//! The book's from-scratch `batch_norm` (D2L 7.5.2, `d2l_models::bn_scratch::batch_norm`,
//! written on the public tensor API) checked against the fused [`Tensor::batch_norm`] on a
//! fixed input.
//!
//! As in the book: the moving averages use momentum 0.9
//! (`moving = 0.9·moving + 0.1·batch`) and the batch variance is the biased one; the book
//! switches between training and prediction on `is_grad_enabled()`, the library function
//! takes the mode as its last argument. `Tensor::batch_norm` follows PyTorch instead:
//! `momentum = 0.1` weighs the *batch* (the same moving mean as the book's 0.9) and the
//! running variance takes the *unbiased* batch variance, so the two running variances
//! differ by the factor m/(m-1).
//!
//! ```text
//! cargo run --release -p d2l --example batch_norm_scratch
//! ```

use d2l::models::bn_scratch::batch_norm;
use d2l::tensor::{no_grad, Result, Tensor};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn main() -> Result<()> {
    let (n, c, h, w) = (4usize, 3usize, 5usize, 5usize);
    let m = (n * h * w) as f64;
    // A fixed input: a smooth pattern, different per channel.
    let data: Vec<f32> = (0..n * c * h * w)
        .map(|i| (i as f32 * 0.37).sin() * 2.0 + (i / (h * w) % c) as f32)
        .collect();
    let x = Tensor::from_vec(data, &[n, c, h, w])?;
    let gamma4 = Tensor::from_slice(&[1.0f32, 0.5, 2.0], &[1, c, 1, 1])?;
    let beta4 = Tensor::from_slice(&[0.0f32, 0.1, -0.3], &[1, c, 1, 1])?;
    let (gamma, beta) = (gamma4.reshape([c])?, beta4.reshape([c])?);

    // Training mode (grad mode on): batch statistics.
    let mm0 = Tensor::zeros(&[1, c, 1, 1]);
    let mv0 = Tensor::ones(&[1, c, 1, 1]);
    let (y_book, mm, mv) = batch_norm(&x, &gamma4, &beta4, &mm0, &mv0, 1e-5, 0.9, true)?;
    let (rm, rv) = (Tensor::zeros(&[c]), Tensor::ones(&[c]));
    let y = x.batch_norm(
        Some(&rm),
        Some(&rv),
        Some(&gamma),
        Some(&beta),
        true,
        0.1,
        1e-5,
    )?;
    let d_train = max_abs_diff(&y_book, &y);
    let d_mean = max_abs_diff(&mm.reshape([c])?, &rm);
    // PyTorch's running variance uses the unbiased batch variance: undo it to compare.
    let batch_var_book = mv.reshape([c])?.sub_scalar(0.9)?.div_scalar(0.1)?;
    let batch_var_torch = rv
        .sub_scalar(0.9)?
        .div_scalar(0.1)?
        .mul_scalar((m - 1.0) / m)?;
    let d_var = max_abs_diff(&batch_var_book, &batch_var_torch);
    println!("training mode:   max |Y_book - Y|            = {d_train:.2e}");
    println!("                 max |moving_mean - running| = {d_mean:.2e}");
    println!("                 max |batch var (book) - batch var (running_var, unbiased→biased)| = {d_var:.2e}");

    // Prediction mode (grad mode off): the same moving statistics for both.
    let (y_book, y) = no_grad(|| -> Result<(Tensor, Tensor)> {
        let (y_book, _, _) = batch_norm(&x, &gamma4, &beta4, &mm, &mv, 1e-5, 0.9, false)?;
        let y = x.batch_norm(
            Some(&mm.reshape([c])?),
            Some(&mv.reshape([c])?),
            Some(&gamma),
            Some(&beta),
            false,
            0.1,
            1e-5,
        )?;
        Ok((y_book, y))
    })?;
    let d_eval = max_abs_diff(&y_book, &y);
    println!("prediction mode: max |Y_book - Y|            = {d_eval:.2e}");

    // The fully connected case: [N, features].
    let x2 = x.reshape([n * c, h * w])?;
    let (ones, zeros) = (Tensor::ones(&[h * w]), Tensor::zeros(&[h * w]));
    let (y_book, _, _) = batch_norm(&x2, &ones, &zeros, &zeros, &ones, 1e-5, 0.9, true)?;
    let y = x2.batch_norm(None, None, None, None, true, 0.1, 1e-5)?;
    let d_fc = max_abs_diff(&y_book, &y);
    println!("2-D input:       max |Y_book - Y|            = {d_fc:.2e}");

    for (what, d, tol) in [
        ("training output", d_train, 1e-5),
        ("moving mean", d_mean, 1e-6),
        ("moving variance", d_var, 1e-5),
        ("prediction output", d_eval, 1e-5),
        ("2-D output", d_fc, 1e-5),
    ] {
        assert!(
            d <= tol,
            "{what}: the from-scratch batch_norm differs by {d}"
        );
    }
    println!("the from-scratch batch_norm agrees with Tensor::batch_norm");
    Ok(())
}
