//! Seeded pseudo-randomness with no dependencies: a xoshiro256++ generator and samplers.
//! It backs D2L 2.6 (probability, `torch.multinomial`) and makes every run reproducible from a seed.

use std::sync::Mutex;

/// Seed of the global generator when [`manual_seed`] was never called (PyTorch's default seed).
pub const DEFAULT_SEED: u64 = 67_280_421_310_721;

/// The SplitMix64 finaliser (Vigna): a bijective mix of a 64-bit word.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One step of SplitMix64: advances `state` by the golden-ratio increment and returns the
/// mixed word. It expands a `u64` seed into xoshiro's 256-bit state here, and drives the
/// generated data sets of `d2l-vision`, whose images are fixed by this definition.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix64(*state)
}

/// A xoshiro256++ pseudo-random generator (Blackman & Vigna), seeded through splitmix64.
///
/// Not cryptographically secure. Equal seeds give equal streams on every platform.
#[derive(Clone, Debug)]
pub struct Generator {
    s: [u64; 4],
    /// Second value of the last Box–Muller pair, returned by the next `normal_f64` call.
    cached_normal: Option<f64>,
}

impl Generator {
    /// A generator whose whole state is derived from `seed`.
    pub fn new(seed: u64) -> Generator {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        // splitmix64 is a bijection of its counter, so four consecutive outputs are never all
        // zero (the one state xoshiro must avoid).
        Generator {
            s,
            cached_normal: None,
        }
    }

    /// Raw state constructor, for checking against the reference test vectors.
    #[cfg(test)]
    fn from_state(s: [u64; 4]) -> Generator {
        Generator {
            s,
            cached_normal: None,
        }
    }

    /// The whole state as six words: the four xoshiro words, then whether a Box–Muller
    /// value is cached (0 or 1) and its bits. [`Generator::from_words`] restores it, so a
    /// checkpoint can continue the exact stream.
    pub fn to_words(&self) -> [u64; 6] {
        let (flag, bits) = match self.cached_normal {
            Some(z) => (1, z.to_bits()),
            None => (0, 0),
        };
        [self.s[0], self.s[1], self.s[2], self.s[3], flag, bits]
    }

    /// The generator [`Generator::to_words`] described. An all-zero xoshiro state (which no
    /// seed produces) or a flag other than 0/1 is an error.
    pub fn from_words(w: [u64; 6]) -> crate::Result<Generator> {
        if w[..4].iter().all(|&x| x == 0) || w[4] > 1 {
            return Err(crate::Error::InvalidArgument {
                op: "Generator::from_words",
                msg: format!("not a generator state: {w:?}"),
            });
        }
        Ok(Generator {
            s: [w[0], w[1], w[2], w[3]],
            cached_normal: (w[4] == 1).then(|| f64::from_bits(w[5])),
        })
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform on `[0, 1)` with 53 random bits (every multiple of 2^-53 equally likely).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform on `[0, 1)` with 24 random bits (every multiple of 2^-24 equally likely).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// A standard normal sample (Box–Muller; the second value of each pair is cached).
    pub fn normal_f64(&mut self) -> f64 {
        if let Some(z) = self.cached_normal.take() {
            return z;
        }
        // u1 lies in (0, 1], so ln(u1) is finite and <= 0: log(0) cannot happen.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.cached_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// Uniform integer in `0..n`, without modulo bias (Lemire's multiply-and-reject method).
    ///
    /// # Panics
    /// If `n == 0` (the range is empty).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Generator::below: expected n > 0, got n = 0");
        let mut m = (self.next_u64() as u128) * (n as u128);
        let mut low = m as u64;
        if low < n {
            // 2^64 mod n: products whose low half falls below it belong to an incomplete bucket.
            let threshold = n.wrapping_neg() % n;
            while low < threshold {
                m = (self.next_u64() as u128) * (n as u128);
                low = m as u64;
            }
        }
        (m >> 64) as u64
    }
}

/// The process-wide default generator; `None` until first used or seeded.
static GLOBAL: Mutex<Option<Generator>> = Mutex::new(None);

/// Reset the process-wide default generator to the stream of `seed` (like `torch.manual_seed`).
pub fn manual_seed(seed: u64) {
    let mut guard = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    *guard = Some(Generator::new(seed));
}

/// The state of the process-wide default generator (see [`Generator::to_words`]), for
/// checkpoints.
pub fn global_state() -> [u64; 6] {
    with_global(|g| g.to_words())
}

/// Restores the process-wide default generator from [`global_state`]'s words.
pub fn set_global_state(words: [u64; 6]) -> crate::Result<()> {
    let g = Generator::from_words(words)?;
    let mut guard = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    *guard = Some(g);
    Ok(())
}

/// Run `f` with exclusive access to the process-wide default generator.
///
/// The generator starts from [`DEFAULT_SEED`] unless [`manual_seed`] was called, so runs are
/// reproducible by default. `f` must not call `with_global` or `manual_seed` itself (deadlock).
pub fn with_global<R>(f: impl FnOnce(&mut Generator) -> R) -> R {
    // A panic inside an earlier `f` leaves the generator in a valid state, so poisoning is ignored.
    let mut guard = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(|| Generator::new(DEFAULT_SEED)))
}

fn check_range(name: &str, lo: f64, hi: f64) {
    assert!(
        lo.is_finite() && hi.is_finite() && lo <= hi && (hi - lo).is_finite(),
        "{name}: expected finite bounds with lo <= hi and a finite width hi - lo, got lo = {lo}, hi = {hi}"
    );
}

/// `n` samples uniform on `[lo, hi)` (`lo` repeated when `lo == hi`), like `torch.rand` / `uniform_`.
///
/// # Panics
/// If a bound is not finite or `lo > hi`.
pub fn uniform_f32(g: &mut Generator, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    check_range("uniform_f32", lo as f64, hi as f64);
    (0..n)
        .map(|_| loop {
            // Computed in f64 so that `hi - lo` cannot overflow f32.
            let u = g.next_f32() as f64;
            let v = (lo as f64 + (hi as f64 - lo as f64) * u) as f32;
            // Rounding can land exactly on `hi`; redraw to keep the interval half-open.
            if v < hi || lo == hi {
                break v;
            }
        })
        .collect()
}

/// `n` samples uniform on `[lo, hi)` (`lo` repeated when `lo == hi`).
///
/// # Panics
/// If a bound is not finite, `lo > hi`, or `hi - lo` overflows.
pub fn uniform_f64(g: &mut Generator, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    check_range("uniform_f64", lo, hi);
    (0..n)
        .map(|_| loop {
            let v = lo + (hi - lo) * g.next_f64();
            if v < hi || lo == hi {
                break v;
            }
        })
        .collect()
}

fn check_normal(name: &str, mean: f64, std: f64) {
    assert!(
        mean.is_finite() && std.is_finite() && std >= 0.0,
        "{name}: expected finite mean and finite std >= 0, got mean = {mean}, std = {std}"
    );
}

/// `n` samples from N(mean, std²), like `torch.normal` / `torch.randn` (computed in f64).
///
/// # Panics
/// If `mean` or `std` is not finite or `std < 0`.
pub fn normal_f32(g: &mut Generator, n: usize, mean: f32, std: f32) -> Vec<f32> {
    check_normal("normal_f32", mean as f64, std as f64);
    (0..n)
        .map(|_| (mean as f64 + std as f64 * g.normal_f64()) as f32)
        .collect()
}

/// `n` samples from N(mean, std²).
///
/// # Panics
/// If `mean` or `std` is not finite or `std < 0`.
pub fn normal_f64(g: &mut Generator, n: usize, mean: f64, std: f64) -> Vec<f64> {
    check_normal("normal_f64", mean, std);
    (0..n).map(|_| mean + std * g.normal_f64()).collect()
}

/// `n` Bernoulli(p) draws as `1.0` (probability `p`) or `0.0`, like `torch.bernoulli`.
///
/// # Panics
/// If `p` is not in `[0, 1]`.
pub fn bernoulli_f32(g: &mut Generator, n: usize, p: f64) -> Vec<f32> {
    assert!(
        (0.0..=1.0).contains(&p),
        "bernoulli_f32: expected 0 <= p <= 1, got p = {p}"
    );
    (0..n)
        .map(|_| if g.next_f64() < p { 1.0 } else { 0.0 })
        .collect()
}

/// A uniformly random permutation of `0..n` (Fisher–Yates), like `torch.randperm`.
pub fn randperm(g: &mut Generator, n: usize) -> Vec<i64> {
    let mut v: Vec<i64> = (0..n as i64).collect();
    for i in (1..n).rev() {
        let j = g.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// Category indices drawn from each row of the weights `probs`, like `torch.multinomial`.
///
/// `probs` is row-major `[rows, k]` with `k = probs.len() / rows`; the weights must be finite,
/// non-negative and not all zero in a row, and need not sum to 1. The result is row-major
/// `[rows, num_samples]`. With `replacement`, each draw is an inverse-CDF lookup (binary search
/// on the cumulative sums); without, categories are drawn one after another and removed, so
/// `num_samples` may not exceed a row's number of non-zero weights.
pub fn multinomial(
    g: &mut Generator,
    probs: &[f64],
    rows: usize,
    num_samples: usize,
    replacement: bool,
) -> Result<Vec<i64>, String> {
    if num_samples == 0 {
        return Err("multinomial: expected num_samples > 0, got 0".to_string());
    }
    if rows == 0 {
        return if probs.is_empty() {
            Ok(Vec::new())
        } else {
            Err(format!(
                "multinomial: expected no weights for 0 rows, got {}",
                probs.len()
            ))
        };
    }
    if !probs.len().is_multiple_of(rows) {
        return Err(format!(
            "multinomial: {} weights cannot be split into {rows} rows of equal length",
            probs.len()
        ));
    }
    let k = probs.len() / rows;
    if k == 0 {
        return Err("multinomial: expected at least one category per row, got 0".to_string());
    }

    let mut out = Vec::with_capacity(rows * num_samples);
    let mut weights = vec![0.0f64; k];
    let mut cumulative = vec![0.0f64; k];
    for (r, row) in probs.chunks_exact(k).enumerate() {
        let mut max = 0.0f64;
        let mut nonzero = 0usize;
        for (c, &w) in row.iter().enumerate() {
            if !w.is_finite() || w < 0.0 {
                return Err(format!(
                    "multinomial: expected finite, non-negative weights, got {w} at row {r}, category {c}"
                ));
            }
            if w > 0.0 {
                nonzero += 1;
                max = max.max(w);
            }
        }
        if nonzero == 0 {
            return Err(format!(
                "multinomial: expected a positive weight sum, got all-zero weights in row {r}"
            ));
        }
        if !replacement && num_samples > nonzero {
            return Err(format!(
                "multinomial: cannot draw {num_samples} samples without replacement from {nonzero} categories with non-zero weight (row {r})"
            ));
        }
        // Scaling by the largest weight keeps the sums finite for any finite weights.
        for (dst, &w) in weights.iter_mut().zip(row) {
            *dst = w / max;
        }
        let last_nonzero = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);

        if replacement {
            let mut acc = 0.0;
            for (c, &w) in cumulative.iter_mut().zip(&weights) {
                acc += w;
                *c = acc;
            }
            let total = acc;
            for _ in 0..num_samples {
                let u = g.next_f64() * total;
                // First category whose cumulative sum exceeds u; zero-weight categories repeat
                // the previous sum and so are never picked. Rounding could push u up to
                // `total`, hence the clamp to the last category with weight.
                let idx = cumulative.partition_point(|&c| c <= u).min(last_nonzero);
                out.push(idx as i64);
            }
        } else {
            for _ in 0..num_samples {
                // Re-summing each draw (rather than subtracting) avoids accumulated drift.
                let total: f64 = weights.iter().sum();
                let u = g.next_f64() * total;
                let mut acc = 0.0;
                let mut chosen = None;
                let mut last_positive = 0;
                for (c, &w) in weights.iter().enumerate() {
                    if w > 0.0 {
                        acc += w;
                        last_positive = c;
                        if acc > u {
                            chosen = Some(c);
                            break;
                        }
                    }
                }
                let idx = chosen.unwrap_or(last_positive);
                weights[idx] = 0.0;
                out.push(idx as i64);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_std(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt())
    }

    #[test]
    fn words_round_trip_continues_the_stream_with_a_cached_normal() {
        let mut g = Generator::new(7);
        g.normal_f64(); // leaves the pair's second value cached
        let mut h = Generator::from_words(g.to_words()).unwrap();
        for _ in 0..5 {
            assert_eq!(g.normal_f64().to_bits(), h.normal_f64().to_bits());
            assert_eq!(g.next_u64(), h.next_u64());
        }
        assert!(Generator::from_words([0, 0, 0, 0, 0, 0]).is_err());
        assert!(Generator::from_words([1, 2, 3, 4, 2, 0]).is_err());
    }

    #[test]
    fn splitmix64_reference_vector() {
        // Reference outputs of Vigna's splitmix64.c for seed 1234567.
        let mut s = 1_234_567u64;
        let got: Vec<u64> = (0..5).map(|_| splitmix64(&mut s)).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821
            ]
        );
    }

    #[test]
    fn xoshiro256plusplus_reference_vector() {
        // Reference outputs of Vigna's xoshiro256plusplus.c from state [1, 2, 3, 4]
        // (the first two were also checked by hand).
        let mut g = Generator::from_state([1, 2, 3, 4]);
        let got: Vec<u64> = (0..10).map(|_| g.next_u64()).collect();
        assert_eq!(
            got,
            [
                41943041,
                58720359,
                3588806011781223,
                3591011842654386,
                9228616714210784205,
                9973669472204895162,
                14011001112246962877,
                12406186145184390807,
                15849039046786891736,
                10450023813501588000
            ]
        );
    }

    #[test]
    fn same_seed_same_stream_and_different_seeds_differ() {
        let mut a = Generator::new(42);
        let mut b = Generator::new(42);
        let mut c = Generator::new(43);
        let sa: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let sb: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        let sc: Vec<u64> = (0..100).map(|_| c.next_u64()).collect();
        assert_eq!(sa, sb);
        assert_ne!(sa, sc);
        // Samplers are deterministic too, including the cached Box–Muller value.
        let mut a = Generator::new(7);
        let mut b = Generator::new(7);
        assert_eq!(
            normal_f64(&mut a, 11, 0.0, 1.0),
            normal_f64(&mut b, 11, 0.0, 1.0)
        );
        assert_eq!(randperm(&mut a, 50), randperm(&mut b, 50));
    }

    #[test]
    fn global_generator_is_reseedable_and_seeded_by_default() {
        // Only this test touches the global generator, so parallel tests cannot interleave.
        let default_first = with_global(|g| g.next_u64());
        assert_eq!(default_first, Generator::new(DEFAULT_SEED).next_u64());
        manual_seed(5);
        let x: Vec<f64> = with_global(|g| uniform_f64(g, 4, 0.0, 1.0));
        manual_seed(5);
        let y: Vec<f64> = with_global(|g| uniform_f64(g, 4, 0.0, 1.0));
        assert_eq!(x, y);
        assert_eq!(x, uniform_f64(&mut Generator::new(5), 4, 0.0, 1.0));
    }

    #[test]
    fn unit_floats_are_in_range() {
        let mut g = Generator::new(1);
        for _ in 0..10_000 {
            let d = g.next_f64();
            let f = g.next_f32();
            assert!((0.0..1.0).contains(&d));
            assert!((0.0..1.0).contains(&f));
        }
    }

    #[test]
    fn uniform_mean_is_one_half() {
        // Mean of 1e5 U(0,1) draws has sd sqrt(1/12)/sqrt(1e5) ≈ 0.00091; 0.005 is ≈ 5.5 sd.
        let mut g = Generator::new(2024);
        let xs = uniform_f64(&mut g, 100_000, 0.0, 1.0);
        let (mean, _) = mean_std(&xs);
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
        let xs: Vec<f64> = uniform_f32(&mut g, 100_000, 0.0, 1.0)
            .into_iter()
            .map(f64::from)
            .collect();
        let (mean, _) = mean_std(&xs);
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
        // Bounds are respected for a shifted interval.
        let ys = uniform_f32(&mut g, 10_000, -3.0, 2.0);
        assert!(ys.iter().all(|&y| (-3.0..2.0).contains(&y)));
        assert_eq!(uniform_f64(&mut g, 3, 1.5, 1.5), vec![1.5; 3]);
        // The full f32 range does not overflow (the width is taken in f64).
        let wide = uniform_f32(&mut g, 1000, -f32::MAX, f32::MAX);
        assert!(wide.iter().all(|y| y.is_finite()));
        // A tiny interval where f32 rounding often hits `hi` still stays half-open.
        let lo = 1.0f32;
        let hi = f32::from_bits(lo.to_bits() + 1);
        assert!(uniform_f32(&mut g, 1000, lo, hi).iter().all(|&y| y == lo));
    }

    #[test]
    fn normal_moments() {
        // With 1e5 draws: sd of the sample mean is 1/sqrt(1e5) ≈ 0.0032, so 0.02 is ≈ 6 sd;
        // sd of the sample std is ≈ 1/sqrt(2e5) ≈ 0.0022, so 0.015 is ≈ 6.7 sd.
        let mut g = Generator::new(99);
        let xs = normal_f64(&mut g, 100_000, 0.0, 1.0);
        let (mean, std) = mean_std(&xs);
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((std - 1.0).abs() < 0.015, "std {std}");
        assert!(xs.iter().all(|x| x.is_finite()));
        // Shifted and scaled, in f32: mean sd ≈ 2/sqrt(1e5) ≈ 0.0063 -> 0.04; std sd ≈ 0.0045 -> 0.03.
        let ys: Vec<f64> = normal_f32(&mut g, 100_000, 3.0, 2.0)
            .into_iter()
            .map(f64::from)
            .collect();
        let (mean, std) = mean_std(&ys);
        assert!((mean - 3.0).abs() < 0.04, "mean {mean}");
        assert!((std - 2.0).abs() < 0.03, "std {std}");
    }

    #[test]
    fn bernoulli_rate() {
        // sd of the rate over 1e5 draws at p = 0.3 is sqrt(0.21/1e5) ≈ 0.0014; 0.01 is ≈ 7 sd.
        let mut g = Generator::new(3);
        let xs = bernoulli_f32(&mut g, 100_000, 0.3);
        assert!(xs.iter().all(|&x| x == 0.0 || x == 1.0));
        let rate = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        assert!((rate - 0.3).abs() < 0.01, "rate {rate}");
        assert!(bernoulli_f32(&mut g, 100, 0.0).iter().all(|&x| x == 0.0));
        assert!(bernoulli_f32(&mut g, 100, 1.0).iter().all(|&x| x == 1.0));
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut g = Generator::new(11);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = g.below(7);
            assert!(v < 7);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(g.below(1), 0);
        // A range just above 2^63 rejects almost half the raw draws; it must still terminate.
        let big = (1u64 << 63) + 1;
        assert!((0..100).all(|_| g.below(big) < big));
    }

    #[test]
    #[should_panic(expected = "expected n > 0")]
    fn below_zero_panics() {
        Generator::new(0).below(0);
    }

    #[test]
    fn randperm_is_a_permutation() {
        let mut g = Generator::new(8);
        for n in [0usize, 1, 2, 10, 1000] {
            let mut p = randperm(&mut g, n);
            assert_eq!(p.len(), n);
            p.sort_unstable();
            assert_eq!(p, (0..n as i64).collect::<Vec<_>>());
        }
        let p = randperm(&mut g, 1000);
        assert_ne!(
            p,
            (0..1000).collect::<Vec<i64>>(),
            "a shuffle of 1000 left everything in place"
        );
    }

    #[test]
    fn multinomial_fair_die_frequencies() {
        // D2L 2.6: 10000 rolls of a fair die. The sd of each frequency is
        // sqrt((1/6)(5/6)/10000) ≈ 0.0037, so 0.02 is ≈ 5.4 sd.
        let mut g = Generator::new(2);
        let probs = [1.0 / 6.0; 6];
        let draws = multinomial(&mut g, &probs, 1, 10_000, true).unwrap();
        assert_eq!(draws.len(), 10_000);
        let mut counts = [0usize; 6];
        for &d in &draws {
            counts[d as usize] += 1;
        }
        for c in counts {
            let f = c as f64 / 10_000.0;
            assert!((f - 1.0 / 6.0).abs() < 0.02, "frequency {f}");
        }
    }

    #[test]
    fn multinomial_unnormalised_rows_and_zero_weights() {
        // Row 0: weights 1:3 (sum 4, not 1); row 1: only category 2 has weight.
        // Frequency sd for p = 0.25 over 20000 draws ≈ 0.0031; 0.02 is ≈ 6.5 sd.
        let mut g = Generator::new(4);
        let probs = [1.0, 0.0, 3.0, 0.0, 0.0, 5.0];
        let n = 20_000;
        let draws = multinomial(&mut g, &probs, 2, n, true).unwrap();
        let (row0, row1) = draws.split_at(n);
        assert!(row0.iter().all(|&d| d == 0 || d == 2));
        let f0 = row0.iter().filter(|&&d| d == 0).count() as f64 / n as f64;
        assert!((f0 - 0.25).abs() < 0.02, "frequency {f0}");
        assert!(row1.iter().all(|&d| d == 2));
        // Huge finite weights do not overflow the cumulative sums.
        let big = multinomial(&mut g, &[f64::MAX, f64::MAX], 1, 100, true).unwrap();
        assert!(big.iter().all(|&d| d == 0 || d == 1));
    }

    #[test]
    fn multinomial_without_replacement_is_distinct() {
        let mut g = Generator::new(6);
        let probs = [0.1, 0.2, 0.3, 0.4, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        for _ in 0..200 {
            let d = multinomial(&mut g, &probs, 2, 4, false).unwrap();
            for row in d.chunks(4) {
                let mut r = row.to_vec();
                r.sort_unstable();
                r.dedup();
                assert_eq!(r.len(), 4, "repeated index in {row:?}");
            }
            // Row 0 has exactly 4 categories with weight: all of them, never the zero one.
            let mut row0 = d[..4].to_vec();
            row0.sort_unstable();
            assert_eq!(row0, [0, 1, 2, 3]);
        }
        // The first draw follows the weights: category 3 (p = 0.4) first about 40% of the time.
        // sd ≈ sqrt(0.24/10000) ≈ 0.0049; 0.03 is ≈ 6 sd.
        let mut first3 = 0;
        for _ in 0..10_000 {
            if multinomial(&mut g, &probs[..5], 1, 2, false).unwrap()[0] == 3 {
                first3 += 1;
            }
        }
        let f = first3 as f64 / 10_000.0;
        assert!((f - 0.4).abs() < 0.03, "frequency {f}");
    }

    #[test]
    fn multinomial_errors() {
        let mut g = Generator::new(0);
        let e = multinomial(&mut g, &[1.0, 0.0, 2.0, 3.0, 0.0], 1, 5, false).unwrap_err();
        assert_eq!(
            e,
            "multinomial: cannot draw 5 samples without replacement from 3 categories with non-zero weight (row 0)"
        );
        let e = multinomial(&mut g, &[1.0, -0.5], 1, 1, true).unwrap_err();
        assert!(e.contains("non-negative") && e.contains("-0.5"), "{e}");
        let e = multinomial(&mut g, &[1.0, f64::NAN], 1, 1, true).unwrap_err();
        assert!(e.contains("NaN"), "{e}");
        let e = multinomial(&mut g, &[f64::INFINITY, 1.0], 1, 1, true).unwrap_err();
        assert!(e.contains("inf"), "{e}");
        let e = multinomial(&mut g, &[1.0, 1.0, 0.0, 0.0], 2, 1, true).unwrap_err();
        assert!(e.contains("all-zero") && e.contains("row 1"), "{e}");
        let e = multinomial(&mut g, &[1.0, 1.0, 1.0], 2, 1, true).unwrap_err();
        assert!(e.contains("3 weights") && e.contains("2 rows"), "{e}");
        let e = multinomial(&mut g, &[1.0], 1, 0, true).unwrap_err();
        assert!(e.contains("num_samples > 0"), "{e}");
        assert!(multinomial(&mut g, &[], 1, 1, true).is_err());
        assert_eq!(
            multinomial(&mut g, &[], 0, 3, true).unwrap(),
            Vec::<i64>::new()
        );
    }

    #[test]
    #[should_panic(expected = "lo <= hi")]
    fn uniform_rejects_reversed_bounds() {
        uniform_f32(&mut Generator::new(0), 1, 1.0, 0.0);
    }

    #[test]
    #[should_panic(expected = "std >= 0")]
    fn normal_rejects_negative_std() {
        normal_f64(&mut Generator::new(0), 1, 0.0, -1.0);
    }
}
