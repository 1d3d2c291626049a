//! Vectorisable inner loops for the reduction and softmax kernels. Each body is written
//! so LLVM can vectorise it, and compiled twice: for the baseline target and, behind a
//! run-time CPU check, with AVX2 + FMA (AVX-512 for the wide registers where present).

use crate::cpu::caps::{cpu_path, CpuPath};

/// exp(x) for f32 and x <= 0 (all softmax needs, after subtracting the row max), from a
/// degree-6 polynomial on [-ln2/2, ln2/2] and an exponent built in the float's bits:
/// within a few ulp of `f32::exp`, branch-free so a loop over it vectorises. Inputs
/// below -87.3 (where e^x is no longer a normal f32) give 0.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const MIN: f32 = -87.336_55;
    let xc = x.clamp(MIN, 0.0);
    // Round to nearest by the 1.5·2^23 trick: plain adds, so it vectorises everywhere.
    // The integer n also sits in the low mantissa bits of y: read it with integer ops
    // (a float-to-int cast would be scalarised for its saturation checks).
    const SHIFT: f32 = 12_582_912.0;
    let y = xc * LOG2E + SHIFT;
    let n = y - SHIFT;
    let ni = y.to_bits().wrapping_sub(SHIFT.to_bits()) as i32;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_452 + r * 0.001_388_893_2)))));
    let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
    if x < MIN {
        0.0
    } else {
        p * scale
    }
}

const LANES: usize = 16;

#[inline(always)]
fn row_max(row: &[f32]) -> (f32, bool) {
    let mut m = [f32::NEG_INFINITY; LANES];
    let mut nan = [false; LANES];
    let mut it = row.chunks_exact(LANES);
    for c in &mut it {
        for k in 0..LANES {
            m[k] = if c[k] > m[k] { c[k] } else { m[k] };
            nan[k] |= c[k].is_nan();
        }
    }
    let mut best = m
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let mut has_nan = nan.iter().any(|&b| b);
    for &v in it.remainder() {
        best = if v > best { v } else { best };
        has_nan |= v.is_nan();
    }
    (best, has_nan)
}

#[inline(always)]
fn softmax_row_body(src: &[f32], dst: &mut [f32], log: bool) {
    let (m, has_nan) = row_max(src);
    if has_nan {
        dst.iter_mut().for_each(|v| *v = f32::NAN);
        return;
    }
    let m = if m == f32::NEG_INFINITY { 0.0 } else { m };
    let mut lanes = [0f32; LANES];
    let mut tail = 0f32;
    let mut si = src.chunks_exact(LANES);
    if log {
        for c in &mut si {
            for k in 0..LANES {
                lanes[k] += exp_f32(c[k] - m);
            }
        }
        for &v in si.remainder() {
            tail += exp_f32(v - m);
        }
        let ls = (lanes.iter().sum::<f32>() + tail).ln();
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = (v - m) - ls;
        }
    } else {
        let mut di = dst.chunks_exact_mut(LANES);
        for (c, d) in (&mut si).zip(&mut di) {
            for k in 0..LANES {
                let e = exp_f32(c[k] - m);
                d[k] = e;
                lanes[k] += e;
            }
        }
        for (d, &v) in di.into_remainder().iter_mut().zip(si.remainder()) {
            let e = exp_f32(v - m);
            *d = e;
            tail += e;
        }
        let inv = 1.0 / (lanes.iter().sum::<f32>() + tail);
        for d in dst.iter_mut() {
            *d *= inv;
        }
    }
}

#[inline(always)]
fn sum_body(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 32];
    let mut it = x.chunks_exact(32);
    for c in &mut it {
        for k in 0..32 {
            lanes[k] += c[k];
        }
    }
    let mut s: f32 = it.remainder().iter().sum();
    for l in lanes {
        s += l;
    }
    s
}

/// Logistic sigmoid of every element, exact to a few ulp: `e = exp(-|x|)` never
/// overflows, and `1/(1+e)` or `e/(1+e)` by the sign.
#[inline(always)]
fn sigmoid_body(src: &[f32], dst: &mut [f32]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        let e = exp_f32(-x.abs());
        let r = 1.0 / (1.0 + e);
        *d = if x >= 0.0 { r } else { e * r };
    }
}

/// tanh of every element: `(1 - e)/(1 + e)` with `e = exp(-2|x|)` and the sign of x,
/// and the odd Taylor series up to x⁹ below |x| = 0.2 (where `1 - e` would cancel).
#[inline(always)]
fn tanh_body(src: &[f32], dst: &mut [f32]) {
    const C3: f32 = -1.0 / 3.0;
    const C5: f32 = 2.0 / 15.0;
    const C7: f32 = -17.0 / 315.0;
    const C9: f32 = 62.0 / 2835.0;
    for (d, &x) in dst.iter_mut().zip(src) {
        let a = x.abs();
        let e = exp_f32(-2.0 * a);
        let t = ((1.0 - e) / (1.0 + e)).copysign(x);
        let x2 = x * x;
        let small = x * (1.0 + x2 * (C3 + x2 * (C5 + x2 * (C7 + x2 * C9))));
        *d = if a < 0.2 { small } else { t };
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sigmoid_avx2(src: &[f32], dst: &mut [f32]) {
        super::sigmoid_body(src, dst)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn sigmoid_avx512(src: &[f32], dst: &mut [f32]) {
        super::sigmoid_body(src, dst)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tanh_avx2(src: &[f32], dst: &mut [f32]) {
        super::tanh_body(src, dst)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn tanh_avx512(src: &[f32], dst: &mut [f32]) {
        super::tanh_body(src, dst)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax_row_avx2(src: &[f32], dst: &mut [f32], log: bool) {
        super::softmax_row_body(src, dst, log)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn softmax_row_avx512(src: &[f32], dst: &mut [f32], log: bool) {
        super::softmax_row_body(src, dst, log)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sum_avx2(x: &[f32]) -> f32 {
        super::sum_body(x)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn sum_avx512(x: &[f32]) -> f32 {
        super::sum_body(x)
    }
}

/// The slice as `&[f32]` when `T` is `f32` (lets generic kernels take the f32 fast path).
#[inline]
pub(crate) fn as_f32<T: 'static>(x: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32, so the cast changes nothing.
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr() as *const f32, x.len()) })
}

/// The slice as `&mut [f32]` when `T` is `f32`.
#[inline]
pub(crate) fn as_f32_mut<T: 'static>(x: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32, so the cast changes nothing.
        .then(|| unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut f32, x.len()) })
}

/// A `Vec<f32>` as `Vec<T>` when `T` is `f32` (the f32 fast paths' results).
///
/// # Panics
/// When `T` is not `f32` (callers check with [`as_f32`] first).
pub(crate) fn vec_from_f32<T: 'static>(v: Vec<f32>) -> Vec<T> {
    assert_eq!(std::any::TypeId::of::<T>(), std::any::TypeId::of::<f32>());
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: T is f32, so pointer, length and capacity describe a valid Vec<T>.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr() as *mut T, v.len(), v.capacity()) }
}

/// Softmax (or log-softmax) of the f32 row `src` into `dst` (same length); NaN anywhere
/// makes the row NaN.
pub(crate) fn softmax_row_f32(src: &[f32], dst: &mut [f32], log: bool) {
    match cpu_path() {
        // SAFETY: the CPU supports the features these functions were compiled for.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => unsafe { x86::softmax_row_avx512(src, dst, log) },
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => unsafe { x86::softmax_row_avx2(src, dst, log) },
        _ => softmax_row_body(src, dst, log),
    }
}

/// `dst[i] = sigmoid(src[i])` (same lengths), vectorised.
pub(crate) fn sigmoid_f32(src: &[f32], dst: &mut [f32]) {
    match cpu_path() {
        // SAFETY: the CPU supports the features these functions were compiled for.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => unsafe { x86::sigmoid_avx512(src, dst) },
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => unsafe { x86::sigmoid_avx2(src, dst) },
        _ => sigmoid_body(src, dst),
    }
}

/// `dst[i] = tanh(src[i])` (same lengths), vectorised.
pub(crate) fn tanh_f32(src: &[f32], dst: &mut [f32]) {
    match cpu_path() {
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => unsafe { x86::tanh_avx512(src, dst) },
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => unsafe { x86::tanh_avx2(src, dst) },
        _ => tanh_body(src, dst),
    }
}

/// Sum of an f32 run with 32 independent lanes (block-sized runs keep f32 precision).
pub(crate) fn sum_f32(x: &[f32]) -> f32 {
    match cpu_path() {
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => unsafe { x86::sum_avx512(x) },
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => unsafe { x86::sum_avx2(x) },
        _ => sum_body(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_a_few_ulp() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let (a, b) = (exp_f32(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
            x += 0.0137;
        }
        assert!(worst < 4.0 * f32::EPSILON, "max relative error {worst}");
        assert_eq!(exp_f32(-1000.0), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn fast_sigmoid_and_tanh_are_within_a_few_ulp() {
        let xs: Vec<f32> = (0..40_000)
            .map(|i| (i as f32 - 20_000.0) * 0.0013)
            .chain([
                0.0, -0.0, 1e-30, -1e-30, 0.19999, 0.2, 0.20001, 90.0, -90.0, 1e4, -1e4,
            ])
            .collect();
        let mut s = vec![0f32; xs.len()];
        let mut t = vec![0f32; xs.len()];
        sigmoid_f32(&xs, &mut s);
        tanh_f32(&xs, &mut t);
        let (mut ws, mut wt) = (0f64, 0f64);
        for ((&x, &a), &b) in xs.iter().zip(&s).zip(&t) {
            let x = x as f64;
            let es = 1.0 / (1.0 + (-x).exp());
            let et = x.tanh();
            ws = ws.max(((a as f64 - es) / es.abs().max(1e-30)).abs());
            if et != 0.0 {
                wt = wt.max(((b as f64 - et) / et.abs()).abs());
            } else {
                assert_eq!(b, 0.0);
            }
        }
        assert!(ws < 4.0 * f32::EPSILON as f64, "sigmoid max rel error {ws}");
        assert!(wt < 4.0 * f32::EPSILON as f64, "tanh max rel error {wt}");
        let mut n = [0f32; 2];
        sigmoid_f32(&[f32::NAN, f32::NAN], &mut n);
        assert!(n[0].is_nan());
        tanh_f32(&[f32::NAN, 1.0], &mut n);
        assert!(n[0].is_nan());
    }

    #[test]
    fn dispatched_kernels_agree_with_the_plain_ones() {
        let v: Vec<f32> = (0..1003)
            .map(|i| ((i * 37) % 101) as f32 / 7.0 - 5.0)
            .collect();
        assert!((sum_f32(&v) - sum_body(&v)).abs() < 1e-3);
        let (mut a, mut b) = (v.clone(), v.clone());
        softmax_row_f32(&v, &mut a, false);
        softmax_row_body(&v, &mut b, false);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-7);
        }
    }
}
