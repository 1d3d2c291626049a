//! Matrix products: f32 through our packed GEMM ([`super::sgemm`]) or the `gemm` crate
//! (see [`own_sgemm`]), f64 through the `gemm` crate; the strides are passed through, so
//! transposed and permuted views need no copy.

use super::sgemm::Mat;
use crate::dtype::Float;
use crate::threads;
use gemm::Parallelism;
use rayon::prelude::*;

/// One side of a (batched) product: buffer, offset, and the strides of its batch dims,
/// rows and columns.
pub(crate) struct MatView<'a, T> {
    pub data: &'a [T],
    pub offset: usize,
    pub batch_strides: Vec<usize>,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> MatView<'a, T> {
    /// The matrices of `data` under layout `l` with `nb` leading batch dims (the last two
    /// dims are the rows and columns).
    pub(crate) fn new(data: &'a [T], l: &crate::layout::Layout, nb: usize) -> Self {
        MatView {
            data,
            offset: l.offset,
            batch_strides: l.strides[..nb].to_vec(),
            rs: l.strides[nb],
            cs: l.strides[nb + 1],
        }
    }
}

/// Computes `out[b] = lhs[b] · rhs[b]` for every batch index of `batch_shape`; the result
/// is row-major `[batch..., m, n]`.
pub(crate) fn matmul<T: Float>(
    lhs: &MatView<T>,
    rhs: &MatView<T>,
    batch_shape: &[usize],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<T> {
    let batches: usize = batch_shape.iter().product();
    let len = batches * m * n;
    if len == 0 || k == 0 {
        return vec![T::ZERO; len];
    }
    // The kernels write every element of the result without reading it (no
    // accumulation), so the buffer is not zeroed first: zeroing a 784×256 result cost
    // about a tenth of the product itself (glibc's calloc clears reused heap memory).
    let mut out: Vec<T> = Vec::with_capacity(len);
    let base = super::sgemm::Shared(out.as_mut_ptr());
    let offset = |v: &MatView<T>, mut b: usize| {
        let mut off = v.offset;
        for d in (0..batch_shape.len()).rev() {
            off += (b % batch_shape[d]) * v.batch_strides[d];
            b /= batch_shape[d];
        }
        off
    };
    let one = |b: usize, par: Parallelism| {
        let (ol, or) = (offset(lhs, b), offset(rhs, b));
        // SAFETY: the offsets and strides come from validated layouts, so every element
        // the kernel reads lies inside `lhs.data` / `rhs.data`; the destination is the
        // `b`-th m×n row-major block of `out`'s capacity, which only this call writes.
        unsafe {
            gemm_any(
                m,
                n,
                k,
                base.get().add(b * m * n),
                n,
                1,
                false,
                lhs.data.as_ptr().add(ol),
                lhs.rs,
                lhs.cs,
                rhs.data.as_ptr().add(or),
                rhs.rs,
                rhs.cs,
                par,
            )
        }
    };
    let flops = m * n * k;
    let nt = threads::num_threads();
    // A product that would run on one thread anyway runs on the calling thread: handing
    // it to a worker of the pool costs a wake-up, and the operands and the result move
    // between the cores' caches (a 256×256·256×10 head ran 3× slower that way from
    // outside the pool). The direct kernels for a small side split earlier when this
    // thread is one of the pool's.
    if nt == 1 || (flops < super::sgemm_small::par_min_fmas(m, n, k) && batches == 1) {
        for b in 0..batches {
            one(b, Parallelism::None);
        }
    } else if batches >= nt && flops < 128 * 128 * 128 {
        threads::run(|| {
            (0..batches)
                .into_par_iter()
                .for_each(|b| one(b, Parallelism::None))
        });
    } else {
        threads::run(|| {
            for b in 0..batches {
                one(b, Parallelism::Rayon(nt));
            }
        });
    }
    // SAFETY: every batch's m×n block was written above (k > 0: no kernel skips it).
    unsafe { out.set_len(len) };
    out
}

/// The f32 GEMM behind the products that the direct small-side kernels do not take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sgemm {
    /// The `gemm` crate (the default).
    Crate,
    /// Ours (`cpu/sgemm.rs`).
    Own,
    /// The system's CBLAS (`cpu/blas.rs`, cargo feature `blas`).
    Blas,
}

/// Which GEMM the f32 products use. `D2L_GEMM=d2l`, `gemm` or `blas` (builds with the
/// `blas` feature) choose; by default the `gemm` crate (measured faster than ours on the
/// hot shapes with its AVX2 and its AVX-512 kernels, docs/PERFORMANCE.md), except when
/// `D2L_CPU` lowers the path below what the processor has: the crate's dispatch cannot
/// follow, ours can. An unknown or unavailable choice is noted on stderr and ignored.
pub(crate) fn sgemm_choice() -> Sgemm {
    static CHOICE: std::sync::OnceLock<Sgemm> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| {
        let default = if super::caps::cpu_path() < super::caps::detected_cpu_path() {
            Sgemm::Own
        } else {
            Sgemm::Crate
        };
        match std::env::var("D2L_GEMM").as_deref().map(str::trim) {
            Err(_) | Ok("") => default,
            Ok("gemm") => Sgemm::Crate,
            Ok("d2l") => Sgemm::Own,
            Ok("blas") if cfg!(feature = "blas") => Sgemm::Blas,
            Ok("blas") => {
                eprintln!(
                    "D2L_GEMM=blas: this build has no system BLAS (build d2l-tensor with \
                     `--features blas`); using {}",
                    name(default)
                );
                default
            }
            Ok(v) => {
                eprintln!(
                    "D2L_GEMM={v} is not one of d2l, gemm, blas; using {}",
                    name(default)
                );
                default
            }
        }
    })
}

/// True when the f32 products take our own GEMM (see [`sgemm_choice`]).
pub(crate) fn own_sgemm() -> bool {
    sgemm_choice() == Sgemm::Own
}

fn name(s: Sgemm) -> &'static str {
    match s {
        Sgemm::Own => "d2l",
        Sgemm::Crate => "gemm-crate",
        Sgemm::Blas => "blas",
    }
}

/// Which f32 GEMM the products use: `"d2l"` (ours), `"gemm-crate"` or `"blas"` (the
/// system's CBLAS); see `D2L_GEMM`.
pub fn sgemm_name() -> &'static str {
    name(sgemm_choice())
}

/// `dst[i*d_rs + j*d_cs] (+)= Σ_p a[i*a_rs + p*a_cs] · b[p*b_rs + j*b_cs]`, adding to
/// `dst` when `accumulate`: f32 through [`super::sgemm::sgemm`], f64 through the `gemm`
/// crate.
///
/// # Safety
/// As [`super::sgemm::sgemm`]: every addressed element valid, `dst` not overlapping the
/// operands, distinct `(i, j)` distinct elements of `dst`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) unsafe fn gemm_any<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    d_rs: usize,
    d_cs: usize,
    accumulate: bool,
    a: *const T,
    a_rs: usize,
    a_cs: usize,
    b: *const T,
    b_rs: usize,
    b_cs: usize,
    par: Parallelism,
) {
    let threads = match par {
        Parallelism::None => 1,
        Parallelism::Rayon(n) => n.max(1),
    };
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        let ran = super::sgemm_small::sgemm_small(
            super::caps::cpu_path(),
            m,
            n,
            k,
            Mat::new(dst as *mut f32, d_rs as isize, d_cs as isize),
            accumulate,
            Mat::new(a as *const f32, a_rs as isize, a_cs as isize),
            Mat::new(b as *const f32, b_rs as isize, b_cs as isize),
            threads,
        );
        if ran {
            return;
        }
    }
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && own_sgemm() {
        return super::sgemm::sgemm(
            m,
            n,
            k,
            dst as *mut f32,
            d_rs as isize,
            d_cs as isize,
            accumulate,
            a as *const f32,
            a_rs as isize,
            a_cs as isize,
            b as *const f32,
            b_rs as isize,
            b_cs as isize,
            threads,
        );
    }
    if let Parallelism::Rayon(nt) = par {
        if nt > 1 && m * n * k >= super::sgemm::PAR_MIN_FMAS {
            return split_for_crate(
                m, n, k, dst, d_rs, d_cs, accumulate, a, a_rs, a_cs, b, b_rs, b_cs, nt,
            );
        }
    }
    #[cfg(feature = "blas")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && sgemm_choice() == Sgemm::Blas
        // SAFETY: as this function's contract; CBLAS declines (untouched) what it cannot
        // address, and the crate below takes it.
        && unsafe {
            super::blas::sgemm(
                m,
                n,
                k,
                Mat::new(dst as *mut f32, d_rs as isize, d_cs as isize),
                accumulate,
                Mat::new(a as *const f32, a_rs as isize, a_cs as isize),
                Mat::new(b as *const f32, b_rs as isize, b_cs as isize),
            )
        }
    {
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        d_cs as isize,
        d_rs as isize,
        accumulate,
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        if accumulate { T::ONE } else { T::ZERO },
        T::ONE,
        false,
        false,
        false,
        par,
    )
}

/// The `gemm` crate (or the system's CBLAS) on `nt` threads: the result's rows or its
/// columns (see the choice below) are split into `nt` blocks of whole 16s, each
/// computed by a one-threaded call on a thread of the pool. The crate's own threading scaled by 1.2× from one to
/// two threads on W1's `256×784·784×256`, where this split gives 1.6× (docs/PERFORMANCE.md).
///
/// # Safety
/// As [`gemm_any`].
#[allow(clippy::too_many_arguments)]
unsafe fn split_for_crate<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    d_rs: usize,
    d_cs: usize,
    accumulate: bool,
    a: *const T,
    a_rs: usize,
    a_cs: usize,
    b: *const T,
    b_rs: usize,
    b_cs: usize,
    nt: usize,
) {
    use super::sgemm::Shared;
    let (d, a, b) = (Shared(dst), Shared(a), Shared(b));
    // Each thread reads all of the operand that is not split. The crate packs an
    // operand whose rows are not contiguous (column stride ≠ 1, a transposed view: `wᵀ`
    // in `x · wᵀ`, `gᵀ` in `gᵀ · x`) with a transpose, its costliest packing; split that
    // one, so that each thread packs only its share. W1's forward `x · w1ᵀ` by columns and its weight
    // gradient `gᵀ · x` by rows ran 5 % and 4 % faster than the other way round
    // (docs/PERFORMANCE.md, sixth round). Otherwise, or when that side is too short to
    // give every thread two tiles of 16, split the longer side.
    let by_rows = match (a_cs == 1, b_cs == 1) {
        (true, false) if n >= 32 * nt => false,
        (false, true) if m >= 32 * nt => true,
        _ => m >= n,
    };
    let len = if by_rows { m } else { n };
    let per = len.div_ceil(nt).div_ceil(16) * 16;
    let part = |t: usize| {
        let s = t * per;
        let l = per.min(len - s);
        let (d, a, b) = (d.get(), a.get(), b.get());
        // SAFETY: the blocks are disjoint rows (or columns) of the result, inside the
        // caller's bounds; the operands are only read.
        unsafe {
            if by_rows {
                gemm_any(
                    l,
                    n,
                    k,
                    d.add(s * d_rs),
                    d_rs,
                    d_cs,
                    accumulate,
                    a.add(s * a_rs),
                    a_rs,
                    a_cs,
                    b,
                    b_rs,
                    b_cs,
                    Parallelism::None,
                )
            } else {
                gemm_any(
                    m,
                    l,
                    k,
                    d.add(s * d_cs),
                    d_rs,
                    d_cs,
                    accumulate,
                    a,
                    a_rs,
                    a_cs,
                    b.add(s * b_cs),
                    b_rs,
                    b_cs,
                    Parallelism::None,
                )
            }
        }
    };
    threads::run(|| {
        (0..len.div_ceil(per))
            .into_par_iter()
            .with_max_len(1)
            .for_each(part)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::sgemm::tests::{data, reference};

    /// [`matmul`] hands the GEMMs an unwritten buffer, so without accumulation no path
    /// may read the result: a result filled with NaN must come out as the product. Covers
    /// the direct small-side kernels, the chosen GEMM on one thread and split over two,
    /// and our own GEMM, every transpose of the operands.
    #[test]
    fn products_without_accumulation_never_read_the_result() {
        for &(m, n, k) in &[(256, 10, 256), (40, 33, 70), (200, 180, 160), (7, 300, 5)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = data(m * k, (m + 3 * k) as u32);
                let b = data(k * n, (n + 5 * k) as u32);
                let (ar, ac) = if ta { (1, m) } else { (k, 1) };
                let (br, bc) = if tb { (1, k) } else { (n, 1) };
                let expect = reference(
                    m,
                    n,
                    k,
                    &a,
                    ar as isize,
                    ac as isize,
                    &b,
                    br as isize,
                    bc as isize,
                );
                let check = |got: &[f32], what: &str| {
                    for (idx, (&g, &e)) in got.iter().zip(&expect).enumerate() {
                        assert!(
                            (g as f64 - e).abs() <= 1e-4 * (1.0 + e.abs()),
                            "{what} {m}x{n}x{k} ta={ta} tb={tb} at {idx}: {g} vs {e}"
                        );
                    }
                };
                for par in [Parallelism::None, Parallelism::Rayon(2)] {
                    let mut got = vec![f32::NAN; m * n];
                    // SAFETY: the strides address a's, b's and got's elements exactly.
                    unsafe {
                        gemm_any(
                            m,
                            n,
                            k,
                            got.as_mut_ptr(),
                            n,
                            1,
                            false,
                            a.as_ptr(),
                            ar,
                            ac,
                            b.as_ptr(),
                            br,
                            bc,
                            par,
                        )
                    };
                    check(&got, &format!("{} {par:?}", sgemm_name()));
                }
                for threads in [1, 2] {
                    let mut got = vec![f32::NAN; m * n];
                    // SAFETY: as above.
                    unsafe {
                        super::super::sgemm::sgemm(
                            m,
                            n,
                            k,
                            got.as_mut_ptr(),
                            n as isize,
                            1,
                            false,
                            a.as_ptr(),
                            ar as isize,
                            ac as isize,
                            b.as_ptr(),
                            br as isize,
                            bc as isize,
                            threads,
                        )
                    };
                    check(&got, &format!("own, {threads} threads"));
                }
            }
        }
    }
}
