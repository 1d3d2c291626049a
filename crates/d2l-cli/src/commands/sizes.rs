//! Size checks of the flags that ask for memory (`--scale`, `--rows`, `--fmap`, `--size`,
//! `--input`, `--resize`, `--threads`): each computes what the flag asks for in checked
//! arithmetic and compares it with the memory limit of [`d2l_tensor::limit`] before
//! anything is allocated, so that an oversized request is one line naming the flag, the
//! size and the limit, not an abort.

use super::CliResult;

/// Checks `product(dims)` elements of `elem_size` bytes asked for by `what` (the flag
/// and its value, with what it makes); returns the element count.
pub fn check_elements(what: &str, dims: &[usize], elem_size: usize) -> CliResult<usize> {
    Ok(d2l_tensor::limit::check_elements(what, dims, elem_size)?)
}

/// Checks a size in bytes given as a float product (flags such as `--scale 1.5` scale
/// pixel counts); a non-finite or negative size counts as an overflow.
pub fn check_bytes_f64(what: &str, bytes: f64) -> CliResult<usize> {
    let b =
        (bytes.is_finite() && bytes >= 0.0 && bytes < u128::MAX as f64).then_some(bytes as u128);
    Ok(d2l_tensor::limit::check_bytes(what, b)?)
}

/// The most `--threads` a command accepts: 4 × the machine's logical cores (a larger
/// pool only adds switching; `--threads 100000` once made ~7,500 threads).
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Checks a thread count from `flag` (`--threads`, `RAYON_NUM_THREADS`): at least 1 and
/// at most [`max_threads`].
pub fn check_threads(flag: &str, n: usize) -> CliResult<usize> {
    let max = max_threads();
    if n == 0 {
        return Err(format!("{flag} must be at least 1, got 0").into());
    }
    if n > max {
        return Err(format!(
            "{flag} {n} is over the bound of {max} threads (4 × the {} logical cores of this machine)",
            max / 4
        )
        .into());
    }
    Ok(n)
}

/// Applies `--threads` to the engine after checking it.
pub fn set_threads(n: Option<usize>) -> CliResult<()> {
    if let Some(n) = n {
        d2l_tensor::set_num_threads(check_threads("--threads", n)?)?;
    }
    Ok(())
}

/// Checks `RAYON_NUM_THREADS` (the kernels' default pool size) like `--threads`.
pub fn check_rayon_env() -> CliResult<()> {
    match std::env::var("RAYON_NUM_THREADS") {
        Ok(s) if !s.trim().is_empty() => match s.trim().parse::<usize>() {
            // rayon reads 0 as "all cores".
            Ok(0) => Ok(()),
            Ok(n) => check_threads("RAYON_NUM_THREADS", n).map(|_| ()),
            Err(_) => Err(format!("RAYON_NUM_THREADS must be a thread count, got `{s}`").into()),
        },
        _ => Ok(()),
    }
}

/// The bytes of a `--resize N` image set: each image becomes `channels × N × N` f32
/// values; checks one mini-batch of them (`batch` images), the unit the loader builds.
pub fn check_resize(n: usize, channels: usize, batch: usize) -> CliResult<()> {
    check_elements(
        &format!("--resize {n} (mini-batches of {batch} images of {channels}×{n}×{n} f32)"),
        &[batch.max(1), channels, n, n],
        4,
    )
    .map(|_| ())
}

/// An error of building or running a model, with `flags` (the size-taking flags and their
/// values) named in front when it is the memory limit's: the layer that hit the limit is
/// deep inside, the flags are what the user can change.
pub fn name_flags(e: d2l_tensor::Error, flags: &str) -> super::CliError {
    match e {
        d2l_tensor::Error::TooLarge { .. } => format!("{flags}: {e}").into(),
        other => other.into(),
    }
}

/// Checks an output path (`--out`) before any work: it must be (or name, through a
/// symbolic link) a regular file or nothing yet — the rule of the atomic write
/// ([`d2l_nn::serialize::replace_atomic`]), applied up front so that a bad path fails in
/// a moment, not after the computation.
pub fn check_output(path: &std::path::Path) -> CliResult<()> {
    d2l_nn::serialize::output_target(path)
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", path.display()).into())
}
