//! Samplers over SplitMix64 (`d2l_tensor::random::splitmix64`), the small generator the
//! generated data sets draw from: its output is fixed
//! by its definition (not by a crate's version), and only `+ − × ÷ sqrt` are used on
//! floats, so a seed gives the same images on every machine.

pub(crate) use d2l_tensor::random::mix64;

/// A SplitMix64 stream.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        d2l_tensor::random::splitmix64(&mut self.0)
    }

    /// Uniform on `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform on `[lo, hi)`.
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform on `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform on `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// A random unit vector (no trigonometry, so it is exactly reproducible).
    pub(crate) fn direction(&mut self) -> (f64, f64) {
        loop {
            let (x, y) = (self.uniform(-1.0, 1.0), self.uniform(-1.0, 1.0));
            let r2 = x * x + y * y;
            if r2 > 0.01 && r2 <= 1.0 {
                let r = r2.sqrt();
                return (x / r, y / r);
            }
        }
    }

    /// A random RGB colour, each channel uniform on `[0, 255)`.
    pub(crate) fn colour(&mut self) -> [f64; 3] {
        [
            self.uniform(0.0, 255.0),
            self.uniform(0.0, 255.0),
            self.uniform(0.0, 255.0),
        ]
    }
}
