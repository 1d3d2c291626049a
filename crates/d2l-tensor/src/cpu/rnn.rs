// One file, over 1,000 lines, on purpose: the forward and backward kernels through time
// share the buffer layout, the row-block threading and the one SAFETY argument for the
// shared raw pointers; keeping them together keeps that argument checkable in one place.
//! The fused sequence kernels behind `d2l_nn::rnn::functional::rnn_sequence` (public as
//! [`crate::fused::rnn`]; they live here with the engine's other CPU kernels): one direction of
//! one recurrent layer over a whole time-major sequence, forward and backward through time,
//! on plain slices.
//!
//! Layout: every sequence buffer is row-major `[T, B, W]` (time, batch, width). The input
//! projection of all time steps is one GEMM `(T·B × I)·(I × G·H)` before the loop; each
//! step then needs one `(B × H)·(H × G·H)` product with a pre-packed `W_hhᵀ` and the gate
//! arithmetic. The batch is split into one block of rows per thread: the recurrence of a
//! row never reads another row, so the blocks run the whole time loop without meeting.
//! The weight gradients are summed over all steps afterwards with one GEMM each.

use crate::Float;
use gemm::Parallelism;
use rayon::prelude::*;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// The recurrent cell a kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// h = tanh(W_ih x + b_ih + W_hh h + b_hh).
    Tanh,
    /// h = relu(W_ih x + b_ih + W_hh h + b_hh).
    Relu,
    /// PyTorch's GRU: gates r, z, n.
    Gru,
    /// PyTorch's LSTM: gates i, f, g, o.
    Lstm,
}

impl Cell {
    /// Gates stacked in the weights (rows of `W_ih` are `gates · hidden`).
    pub fn gates(self) -> usize {
        match self {
            Cell::Tanh | Cell::Relu => 1,
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }
}

/// The activations the kernels need, with a fast vectorisable f32 version.
pub trait Act: Float {
    /// tanh.
    fn tanh_a(self) -> Self;
    /// The logistic sigmoid.
    fn sigmoid_a(self) -> Self;
}

impl Act for f64 {
    #[inline(always)]
    fn tanh_a(self) -> f64 {
        self.tanh()
    }
    #[inline(always)]
    fn sigmoid_a(self) -> f64 {
        1.0 / (1.0 + (-self).exp())
    }
}

impl Act for f32 {
    /// A 13/6 rational approximation of tanh on [-7.9, 7.9] (Eigen's
    /// `generic_fast_tanh_float`): branch-free, so loops over it vectorise; within
    /// about 2e-7 of tanh everywhere (tested below).
    #[inline(always)]
    fn tanh_a(self) -> f32 {
        const CLAMP: f32 = 7.905_311;
        let x = self.clamp(-CLAMP, CLAMP);
        let x2 = x * x;
        let mut p = x2 * -2.760_768_5e-16 + 2.000_188e-13;
        p = x2 * p + -8.604_672e-11;
        p = x2 * p + 5.122_297e-8;
        p = x2 * p + 1.485_722_4e-5;
        p = x2 * p + 6.372_619_3e-4;
        p = x2 * p + 4.893_524_6e-3;
        p *= x;
        let mut q = x2 * 1.198_258_4e-6 + 1.185_347_1e-4;
        q = x2 * q + 2.268_434_6e-3;
        q = x2 * q + 4.893_525e-3;
        if self.abs() < 0.0004 {
            self
        } else {
            p / q
        }
    }
    #[inline(always)]
    fn sigmoid_a(self) -> f32 {
        0.5 + 0.5 * (0.5 * self).tanh_a()
    }
}

/// A raw pointer that blocks of rows on different threads write through; every use
/// touches only its own block's rows.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: the pointer is only dereferenced for disjoint row blocks (one per thread) while
// the buffer it points into is alive and not otherwise borrowed; see each use.
unsafe impl<T: Send> Send for Shared<T> {}
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn of(v: &mut [T]) -> Self {
        Shared(v.as_mut_ptr())
    }
    fn ptr(&self) -> *mut T {
        self.0
    }
    /// # Safety
    /// `start..start + len` must lie in the buffer and no other live reference may
    /// overlap it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
    /// # Safety
    /// `start..start + len` must lie in the buffer and nobody may write it meanwhile.
    unsafe fn slice_ref(&self, start: usize, len: usize) -> &[T] {
        std::slice::from_raw_parts(self.0.add(start), len)
    }
}

/// `dst[m×n] = (acc ? dst : 0) + a[m×k] · b[k×n]`, every matrix given by its pointer and
/// row/column strides; `dst` has unit column stride.
///
/// # Safety
/// Every element addressed by the sizes and strides must lie inside its buffer, and `dst`
/// must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn mm<T: Float>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    dst_rs: usize,
    acc: bool,
    (a, a_rs, a_cs): (*const T, usize, usize),
    (b, b_rs, b_cs): (*const T, usize, usize),
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            for r in 0..m {
                std::slice::from_raw_parts_mut(dst.add(r * dst_rs), n).fill(T::ZERO);
            }
        }
        return;
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        acc,
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        if acc { T::ONE } else { T::ZERO },
        T::ONE,
        false,
        false,
        false,
        par,
    )
}

/// The parallelism for one large GEMM.
fn big_par() -> Parallelism {
    match crate::num_threads() {
        0 | 1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// Runs `f` in a rayon pool of the engine's thread count: the current pool when it has
/// that size, otherwise a pool kept for this purpose.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let nt = crate::num_threads().max(1);
    if nt == rayon::current_num_threads() {
        return f();
    }
    static POOL: Mutex<Option<Arc<rayon::ThreadPool>>> = Mutex::new(None);
    let pool = {
        let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(p) if p.current_num_threads() == nt => Some(p.clone()),
            _ => {
                let built = rayon::ThreadPoolBuilder::new()
                    .num_threads(nt)
                    .thread_name(|i| format!("d2l-rnn-{i}"))
                    .build()
                    .ok()
                    .map(Arc::new);
                slot.clone_from(&built);
                built
            }
        }
    };
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Splits the batch into one block of rows per thread when a step has enough work.
fn row_blocks(b: usize, macs_per_row: usize) -> Vec<Range<usize>> {
    let nt = crate::num_threads().max(1);
    let n = if b * macs_per_row < (1 << 15) {
        1
    } else {
        nt.min(b)
    };
    (0..n).map(|i| (b * i / n)..(b * (i + 1) / n)).collect()
}

fn run_blocks(blocks: &[Range<usize>], f: impl Fn(Range<usize>) + Sync) {
    if blocks.len() == 1 {
        f(blocks[0].clone());
    } else {
        blocks.par_iter().for_each(|r| f(r.clone()));
    }
}

/// `src` (`rows × cols`, row-major) transposed into a new `cols × rows` buffer, in
/// 32 × 32 tiles so that reads and writes both stay in cache.
fn transpose<T: Copy + Default>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
    const TILE: usize = 32;
    let mut out = vec![T::default(); rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
    out
}

/// Sums the rows of a row-major `[rows, cols]` buffer.
fn col_sums<T: Float>(m: &[T], cols: usize) -> Vec<T> {
    let mut acc = vec![T::ZERO; cols];
    for row in m.chunks_exact(cols) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a = *a + v;
        }
    }
    acc
}

/// The sizes of one run: time steps, batch, input width, hidden width.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub t: usize,
    pub b: usize,
    pub i: usize,
    pub h: usize,
}

/// What the forward kernel reads.
pub struct FwdIn<'a, T> {
    pub cell: Cell,
    pub reverse: bool,
    pub dims: Dims,
    /// `[T, B, I]`.
    pub x: &'a [T],
    /// `[B, H]`; `None` = zeros.
    pub h0: Option<&'a [T]>,
    /// `[B, H]` (LSTM); `None` = zeros.
    pub c0: Option<&'a [T]>,
    /// `[G·H, I]`.
    pub w_ih: &'a [T],
    /// `[G·H, H]`.
    pub w_hh: &'a [T],
    /// `[G·H]`.
    pub b_ih: Option<&'a [T]>,
    /// `[G·H]`.
    pub b_hh: Option<&'a [T]>,
}

/// What the forward kernel produces and the backward kernel reads again.
pub struct FwdOut<T> {
    /// `[T + E, B, H]`: the hidden state of every step, then (LSTM, `E = 1`) the final
    /// cell state.
    pub out: Vec<T>,
    /// `[T, B, G·H]`: the activated gates (GRU r, z, n; LSTM i, f, g, o); empty for RNN.
    pub gates: Vec<T>,
    /// `[T, B, H]`: GRU `W_hn h + b_hn`; LSTM cell states; empty for RNN.
    pub aux: Vec<T>,
    /// `[T, B, H]`: LSTM `tanh(c)`; empty otherwise.
    pub aux2: Vec<T>,
}

struct FwdCtx<'a, T> {
    cell: Cell,
    reverse: bool,
    d: Dims,
    h0: Option<&'a [T]>,
    c0: Option<&'a [T]>,
    /// `[H, G·H]`, packed `W_hhᵀ`.
    whh_t: &'a [T],
    /// GRU: the `n` part of `b_hh` (zeros when there is none).
    b_hn: &'a [T],
    out: Shared<T>,
    gates: Shared<T>,
    aux: Shared<T>,
    aux2: Shared<T>,
}

/// Runs one direction of one layer over the sequence.
pub fn forward<T: Act>(p: &FwdIn<T>) -> FwdOut<T> {
    let Dims { t, b, i, h } = p.dims;
    let g = p.cell.gates();
    let gh = g * h;
    let lstm = p.cell == Cell::Lstm;
    let mut aux = if g > 1 {
        vec![T::ZERO; t * b * h]
    } else {
        Vec::new()
    };
    let mut aux2 = if lstm {
        vec![T::ZERO; t * b * h]
    } else {
        Vec::new()
    };
    // Biases added once to the input projection; GRU keeps b_hn apart (r multiplies it).
    let mut bias = vec![T::ZERO; gh];
    if let Some(bi) = p.b_ih {
        bias.iter_mut().zip(bi).for_each(|(a, &v)| *a = *a + v);
    }
    let mut b_hn = vec![T::ZERO; if p.cell == Cell::Gru { h } else { 0 }];
    if let Some(bh) = p.b_hh {
        let folded = if p.cell == Cell::Gru { 2 * h } else { gh };
        bias[..folded]
            .iter_mut()
            .zip(bh)
            .for_each(|(a, &v)| *a = *a + v);
        if p.cell == Cell::Gru {
            b_hn.copy_from_slice(&bh[2 * h..]);
        }
    }
    // The pre-activation buffer starts as the bias of every row (no zero-fill first):
    // the outputs themselves for an RNN, the gate buffer otherwise.
    let biased = || {
        let mut v = Vec::with_capacity(t * b * gh);
        for _ in 0..t * b {
            v.extend_from_slice(&bias);
        }
        v
    };
    let (mut out, mut gates) = if g == 1 {
        (biased(), Vec::new())
    } else {
        (vec![T::ZERO; (t + lstm as usize) * b * h], biased())
    };
    let wih_t = transpose(p.w_ih, gh, i);
    let whh_t = transpose(p.w_hh, gh, h);
    let blocks = row_blocks(b, gh * h);
    {
        // Pre-activations of every step: bias, plus x·W_ihᵀ in one GEMM.
        let pre: &mut [T] = if g == 1 {
            &mut out[..t * b * h]
        } else {
            &mut gates[..]
        };
        let pre_ptr = Shared::of(pre);
        let ctx = FwdCtx {
            cell: p.cell,
            reverse: p.reverse,
            d: p.dims,
            h0: p.h0,
            c0: p.c0,
            whh_t: &whh_t,
            b_hn: &b_hn,
            out: Shared::of(&mut out),
            gates: Shared::of(&mut gates),
            aux: Shared::of(&mut aux),
            aux2: Shared::of(&mut aux2),
        };
        let x = p.x;
        in_pool(|| {
            // SAFETY: pre is [T·B, G·H] and x is [T·B, I]; W_ihᵀ is [I, G·H].
            unsafe {
                mm(
                    (t * b, gh, i),
                    pre_ptr.ptr(),
                    gh,
                    true,
                    (x.as_ptr(), i, 1),
                    (wih_t.as_ptr(), gh, 1),
                    big_par(),
                );
            }
            run_blocks(&blocks, |rows| fwd_block_dispatch(&ctx, rows));
        });
    }
    if lstm {
        // The final cell state goes after the outputs.
        let last = if p.reverse { 0 } else { t - 1 };
        let (dst, src) = (t * b * h, last * b * h);
        out[dst..dst + b * h].copy_from_slice(&aux[src..src + b * h]);
    }
    FwdOut {
        out,
        gates,
        aux,
        aux2,
    }
}

fn fwd_block_dispatch<T: Act>(ctx: &FwdCtx<T>, rows: Range<usize>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
            // The path `D2L_CPU` allows (see crate::cpu_path).
            if crate::cpu_path() >= crate::CpuPath::Avx512 {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { fwd_block_avx512(ctx, rows) };
            }
            if crate::cpu_path() >= crate::CpuPath::Avx2 {
                // SAFETY: as above.
                return unsafe { fwd_block_avx2(ctx, rows) };
            }
        }
    }
    fwd_block(ctx, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn fwd_block_avx512<T: Act>(ctx: &FwdCtx<T>, rows: Range<usize>) {
    fwd_block(ctx, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fwd_block_avx2<T: Act>(ctx: &FwdCtx<T>, rows: Range<usize>) {
    fwd_block(ctx, rows)
}

/// The time loop for the batch rows `rows`.
#[inline(always)]
fn fwd_block<T: Act>(c: &FwdCtx<T>, rows: Range<usize>) {
    let Dims { t: tn, b, h, .. } = c.d;
    let gh = c.cell.gates() * h;
    let (b0, nr) = (rows.start, rows.len());
    let zeros = vec![T::ZERO; h];
    let mut scratch = vec![T::ZERO; if c.cell == Cell::Gru { nr * gh } else { 0 }];
    let mut prev: Option<usize> = None;
    for s in 0..tn {
        let t = if c.reverse { tn - 1 - s } else { s };
        let at = |w: usize| (t * b + b0) * w;
        // The previous hidden state of these rows: h0, a zero state, or out[prev].
        // SAFETY (all slices below): rows b0..b0+nr of step t are this block's own; the
        // previous step's rows are only read.
        let hp: Option<&[T]> = match prev {
            None => c.h0.map(|h0| &h0[b0 * h..(b0 + nr) * h]),
            Some(tp) => Some(unsafe { c.out.slice_ref((tp * b + b0) * h, nr * h) }),
        };
        match c.cell {
            Cell::Tanh | Cell::Relu => {
                let y = unsafe { c.out.slice(at(h), nr * h) };
                if let Some(hp) = hp {
                    unsafe {
                        mm(
                            (nr, h, h),
                            y.as_mut_ptr(),
                            h,
                            true,
                            (hp.as_ptr(), h, 1),
                            (c.whh_t.as_ptr(), h, 1),
                            Parallelism::None,
                        )
                    };
                }
                if c.cell == Cell::Tanh {
                    y.iter_mut().for_each(|v| *v = v.tanh_a());
                } else {
                    y.iter_mut()
                        .for_each(|v| *v = if *v > T::ZERO { *v } else { T::ZERO });
                }
            }
            Cell::Gru => {
                match hp {
                    Some(hp) => unsafe {
                        mm(
                            (nr, gh, h),
                            scratch.as_mut_ptr(),
                            gh,
                            false,
                            (hp.as_ptr(), h, 1),
                            (c.whh_t.as_ptr(), gh, 1),
                            Parallelism::None,
                        )
                    },
                    None => scratch.fill(T::ZERO),
                }
                let gx = unsafe { c.gates.slice(at(gh), nr * gh) };
                let hn = unsafe { c.aux.slice(at(h), nr * h) };
                let y = unsafe { c.out.slice(at(h), nr * h) };
                for r in 0..nr {
                    let hp_row = hp.map_or(&zeros[..], |hp| &hp[r * h..(r + 1) * h]);
                    gru_fwd_row(
                        &mut gx[r * gh..(r + 1) * gh],
                        &scratch[r * gh..(r + 1) * gh],
                        c.b_hn,
                        &mut hn[r * h..(r + 1) * h],
                        &mut y[r * h..(r + 1) * h],
                        hp_row,
                        h,
                    );
                }
            }
            Cell::Lstm => {
                let gx = unsafe { c.gates.slice(at(gh), nr * gh) };
                if let Some(hp) = hp {
                    unsafe {
                        mm(
                            (nr, gh, h),
                            gx.as_mut_ptr(),
                            gh,
                            true,
                            (hp.as_ptr(), h, 1),
                            (c.whh_t.as_ptr(), gh, 1),
                            Parallelism::None,
                        )
                    };
                }
                let cp: Option<&[T]> = match prev {
                    None => c.c0.map(|c0| &c0[b0 * h..(b0 + nr) * h]),
                    Some(tp) => Some(unsafe { c.aux.slice_ref((tp * b + b0) * h, nr * h) }),
                };
                let cc = unsafe { c.aux.slice(at(h), nr * h) };
                let tc = unsafe { c.aux2.slice(at(h), nr * h) };
                let y = unsafe { c.out.slice(at(h), nr * h) };
                for r in 0..nr {
                    let cp_row = cp.map_or(&zeros[..], |cp| &cp[r * h..(r + 1) * h]);
                    lstm_fwd_row(
                        &mut gx[r * gh..(r + 1) * gh],
                        cp_row,
                        &mut cc[r * h..(r + 1) * h],
                        &mut tc[r * h..(r + 1) * h],
                        &mut y[r * h..(r + 1) * h],
                        h,
                    );
                }
            }
        }
        prev = Some(t);
    }
}

/// Lanes per block of the row kernels: the inputs of a block are loaded into local
/// arrays, computed on, and stored back, so the arithmetic vectorises without runtime
/// alias checks between the many row slices.
const LANES: usize = 16;

#[inline(always)]
fn ld<T: Copy + Default, const N: usize>(s: &[T], j: usize) -> [T; N] {
    let mut a = [T::default(); N];
    a.copy_from_slice(&s[j..j + N]);
    a
}

#[inline(always)]
fn st<T: Copy, const N: usize>(s: &mut [T], j: usize, a: &[T; N]) {
    s[j..j + N].copy_from_slice(a);
}

/// Calls `f::<LANES>(j)` on whole blocks, then `f::<1>(j)` on the rest of a row of `h`.
macro_rules! by_lanes {
    ($h:expr, |$j:ident, $n:ident| $body:expr) => {{
        let h = $h;
        let mut $j = 0;
        while $j + LANES <= h {
            {
                const $n: usize = LANES;
                $body;
            }
            $j += LANES;
        }
        while $j < h {
            {
                const $n: usize = 1;
                $body;
            }
            $j += 1;
        }
    }};
}

/// One GRU row: `x` holds the input pre-activations (r, z, n) and receives the gates;
/// `gh` holds `W_hh h` (r, z, n).
#[inline(always)]
fn gru_fwd_row<T: Act>(
    x: &mut [T],
    gh: &[T],
    b_hn: &[T],
    hn_out: &mut [T],
    y: &mut [T],
    hp: &[T],
    h: usize,
) {
    by_lanes!(h, |j, N| {
        let (xr, xz, xn) = (
            ld::<T, N>(x, j),
            ld::<T, N>(x, h + j),
            ld::<T, N>(x, 2 * h + j),
        );
        let (gr, gz, gn) = (
            ld::<T, N>(gh, j),
            ld::<T, N>(gh, h + j),
            ld::<T, N>(gh, 2 * h + j),
        );
        let (bn, hpv) = (ld::<T, N>(b_hn, j), ld::<T, N>(hp, j));
        let (mut r, mut z, mut n) = ([T::ZERO; N], [T::ZERO; N], [T::ZERO; N]);
        let (mut hn, mut out) = ([T::ZERO; N], [T::ZERO; N]);
        for k in 0..N {
            r[k] = (xr[k] + gr[k]).sigmoid_a();
            z[k] = (xz[k] + gz[k]).sigmoid_a();
            hn[k] = gn[k] + bn[k];
            n[k] = (xn[k] + r[k] * hn[k]).tanh_a();
            out[k] = n[k] + z[k] * (hpv[k] - n[k]);
        }
        st(x, j, &r);
        st(x, h + j, &z);
        st(x, 2 * h + j, &n);
        st(hn_out, j, &hn);
        st(y, j, &out);
    });
}

/// One LSTM row: `g` holds the pre-activations (i, f, g, o) and receives the gates.
#[inline(always)]
fn lstm_fwd_row<T: Act>(g: &mut [T], cp: &[T], c: &mut [T], tc: &mut [T], y: &mut [T], h: usize) {
    by_lanes!(h, |j, N| {
        let (ai, af) = (ld::<T, N>(g, j), ld::<T, N>(g, h + j));
        let (ag, ao) = (ld::<T, N>(g, 2 * h + j), ld::<T, N>(g, 3 * h + j));
        let cpv = ld::<T, N>(cp, j);
        let (mut i, mut f, mut gg, mut o) =
            ([T::ZERO; N], [T::ZERO; N], [T::ZERO; N], [T::ZERO; N]);
        let (mut cn, mut t, mut out) = ([T::ZERO; N], [T::ZERO; N], [T::ZERO; N]);
        for k in 0..N {
            i[k] = ai[k].sigmoid_a();
            f[k] = af[k].sigmoid_a();
            gg[k] = ag[k].tanh_a();
            o[k] = ao[k].sigmoid_a();
            cn[k] = f[k] * cpv[k] + i[k] * gg[k];
            t[k] = cn[k].tanh_a();
            out[k] = o[k] * t[k];
        }
        st(g, j, &i);
        st(g, h + j, &f);
        st(g, 2 * h + j, &gg);
        st(g, 3 * h + j, &o);
        st(c, j, &cn);
        st(tc, j, &t);
        st(y, j, &out);
    });
}

/// The saved forward buffers the backward kernel reads (see [`FwdOut`]).
pub struct FwdView<'a, T> {
    pub out: &'a [T],
    pub gates: &'a [T],
    pub aux: &'a [T],
    pub aux2: &'a [T],
}

/// Which gradients the backward kernel must produce.
#[derive(Clone, Copy, Debug, Default)]
pub struct Need {
    pub x: bool,
    pub h0: bool,
    pub c0: bool,
    pub w_ih: bool,
    pub w_hh: bool,
    pub b_ih: bool,
    pub b_hh: bool,
}

/// The gradients of one direction of one layer.
#[derive(Default)]
pub struct Grads<T> {
    pub x: Option<Vec<T>>,
    pub h0: Option<Vec<T>>,
    pub c0: Option<Vec<T>>,
    pub w_ih: Option<Vec<T>>,
    pub w_hh: Option<Vec<T>>,
    pub b_ih: Option<Vec<T>>,
    pub b_hh: Option<Vec<T>>,
}

struct BwdCtx<'a, T> {
    cell: Cell,
    reverse: bool,
    d: Dims,
    h0: Option<&'a [T]>,
    c0: Option<&'a [T]>,
    w_hh: &'a [T],
    out: &'a [T],
    gates: &'a [T],
    aux: &'a [T],
    aux2: &'a [T],
    grad: &'a [T],
    dxg: Shared<T>,
    dhg: Shared<T>,
    dh0: Shared<T>,
    dc0: Shared<T>,
}

/// Backpropagates `grad` (`[T + E, B, H]`, the gradient of [`FwdOut::out`]) through time.
pub fn backward<T: Act>(p: &FwdIn<T>, f: &FwdView<T>, grad: &[T], need: Need) -> Grads<T> {
    let Dims { t, b, i, h } = p.dims;
    let gh = p.cell.gates() * h;
    let gru = p.cell == Cell::Gru;
    // Gradients of the pre-activations: of the input projection, and (GRU, where r
    // multiplies the hidden part of n) of the hidden projection.
    let mut dxg = vec![T::ZERO; t * b * gh];
    let mut dhg = if gru {
        vec![T::ZERO; t * b * gh]
    } else {
        Vec::new()
    };
    let mut dh0 = vec![T::ZERO; b * h];
    let mut dc0 = vec![T::ZERO; if p.cell == Cell::Lstm { b * h } else { 0 }];
    let blocks = row_blocks(b, gh * h);
    let dxg_ptr = Shared::of(&mut dxg);
    let ctx = BwdCtx {
        cell: p.cell,
        reverse: p.reverse,
        d: p.dims,
        h0: p.h0,
        c0: p.c0,
        w_hh: p.w_hh,
        out: f.out,
        gates: f.gates,
        aux: f.aux,
        aux2: f.aux2,
        grad,
        dxg: dxg_ptr,
        dhg: if gru { Shared::of(&mut dhg) } else { dxg_ptr },
        dh0: Shared::of(&mut dh0),
        dc0: Shared::of(&mut dc0),
    };
    let mut g = Grads::default();
    in_pool(|| {
        run_blocks(&blocks, |rows| bwd_block_dispatch(&ctx, rows));
        let dxg = &dxg[..];
        let dhg = if gru { &dhg[..] } else { dxg };
        let par = big_par();
        if need.w_ih {
            let mut w = vec![T::ZERO; gh * i];
            // SAFETY: dW_ih [GH, I] = dxgᵀ [GH, T·B] · x [T·B, I].
            unsafe {
                mm(
                    (gh, i, t * b),
                    w.as_mut_ptr(),
                    i,
                    false,
                    (dxg.as_ptr(), 1, gh),
                    (p.x.as_ptr(), i, 1),
                    par,
                )
            };
            g.w_ih = Some(w);
        }
        if need.w_hh {
            // dW_hh [GH, H] = Σ_t dhg[t]ᵀ · h_prev(t): the steps whose previous state is an
            // output in one GEMM, the first step (previous state h0) in another.
            let mut w = vec![T::ZERO; gh * h];
            let (first_g, rest_g, rest_y) = if p.reverse {
                ((t - 1) * b * gh, 0, b * h)
            } else {
                (0, b * gh, 0)
            };
            // SAFETY: (T-1)·B rows of dhg and of the outputs, from the offsets above.
            unsafe {
                mm(
                    (gh, h, (t - 1) * b),
                    w.as_mut_ptr(),
                    h,
                    false,
                    (dhg[rest_g..].as_ptr(), 1, gh),
                    (f.out[rest_y..].as_ptr(), h, 1),
                    par,
                );
                if let Some(h0) = p.h0 {
                    mm(
                        (gh, h, b),
                        w.as_mut_ptr(),
                        h,
                        true,
                        (dhg[first_g..].as_ptr(), 1, gh),
                        (h0.as_ptr(), h, 1),
                        par,
                    );
                }
            }
            g.w_hh = Some(w);
        }
        if need.b_ih {
            g.b_ih = Some(col_sums(dxg, gh));
        }
        if need.b_hh {
            g.b_hh = Some(if gru {
                col_sums(dhg, gh)
            } else {
                col_sums(dxg, gh)
            });
        }
        if need.x {
            let mut dx = vec![T::ZERO; t * b * i];
            // SAFETY: dx [T·B, I] = dxg [T·B, GH] · W_ih [GH, I].
            unsafe {
                mm(
                    (t * b, i, gh),
                    dx.as_mut_ptr(),
                    i,
                    false,
                    (dxg.as_ptr(), gh, 1),
                    (p.w_ih.as_ptr(), i, 1),
                    par,
                )
            };
            g.x = Some(dx);
        }
    });
    if need.h0 {
        g.h0 = Some(dh0);
    }
    if need.c0 {
        g.c0 = Some(dc0);
    }
    g
}

fn bwd_block_dispatch<T: Act>(ctx: &BwdCtx<T>, rows: Range<usize>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
            // The path `D2L_CPU` allows (see crate::cpu_path).
            if crate::cpu_path() >= crate::CpuPath::Avx512 {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { bwd_block_avx512(ctx, rows) };
            }
            if crate::cpu_path() >= crate::CpuPath::Avx2 {
                // SAFETY: as above.
                return unsafe { bwd_block_avx2(ctx, rows) };
            }
        }
    }
    bwd_block(ctx, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn bwd_block_avx512<T: Act>(ctx: &BwdCtx<T>, rows: Range<usize>) {
    bwd_block(ctx, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bwd_block_avx2<T: Act>(ctx: &BwdCtx<T>, rows: Range<usize>) {
    bwd_block(ctx, rows)
}

/// Backpropagation through time for the batch rows `rows`.
#[inline(always)]
fn bwd_block<T: Act>(c: &BwdCtx<T>, rows: Range<usize>) {
    let Dims { t: tn, b, h, .. } = c.d;
    let gh = c.cell.gates() * h;
    let (b0, nr) = (rows.start, rows.len());
    let zeros = vec![T::ZERO; h];
    let step = |s: usize| if c.reverse { tn - 1 - s } else { s };
    let mut dh = vec![T::ZERO; nr * h];
    let mut dh_next = vec![T::ZERO; if c.cell == Cell::Gru { nr * h } else { 0 }];
    // LSTM: the gradient of the final cell state sits after the outputs.
    let mut dc = if c.cell == Cell::Lstm {
        c.grad[(tn * b + b0) * h..(tn * b + b0 + nr) * h].to_vec()
    } else {
        Vec::new()
    };
    for s in (0..tn).rev() {
        let t = step(s);
        let at = |w: usize| (t * b + b0) * w;
        let g_out = &c.grad[at(h)..at(h) + nr * h];
        dh.iter_mut().zip(g_out).for_each(|(a, &v)| *a = *a + v);
        let y = &c.out[at(h)..at(h) + nr * h];
        let prev = (s > 0).then(|| step(s - 1));
        let hp: Option<&[T]> = match prev {
            None => c.h0.map(|h0| &h0[b0 * h..(b0 + nr) * h]),
            Some(tp) => Some(&c.out[(tp * b + b0) * h..(tp * b + b0 + nr) * h]),
        };
        // SAFETY (all mutable slices below): rows b0..b0+nr of step t are this block's own.
        let da = unsafe { c.dxg.slice(at(gh), nr * gh) };
        let last = s == 0;
        match c.cell {
            Cell::Tanh => {
                for ((a, &d), &yv) in da.iter_mut().zip(&dh).zip(y) {
                    *a = d * (T::ONE - yv * yv);
                }
            }
            Cell::Relu => {
                for ((a, &d), &yv) in da.iter_mut().zip(&dh).zip(y) {
                    *a = if yv > T::ZERO { d } else { T::ZERO };
                }
            }
            Cell::Gru => {
                let dhg = unsafe { c.dhg.slice(at(gh), nr * gh) };
                let gates = &c.gates[at(gh)..at(gh) + nr * gh];
                let hn = &c.aux[at(h)..at(h) + nr * h];
                for r in 0..nr {
                    let hp_row = hp.map_or(&zeros[..], |hp| &hp[r * h..(r + 1) * h]);
                    gru_bwd_row(
                        &gates[r * gh..(r + 1) * gh],
                        &hn[r * h..(r + 1) * h],
                        hp_row,
                        &dh[r * h..(r + 1) * h],
                        &mut da[r * gh..(r + 1) * gh],
                        &mut dhg[r * gh..(r + 1) * gh],
                        &mut dh_next[r * h..(r + 1) * h],
                        h,
                    );
                }
                if !last || c.h0.is_some() {
                    // SAFETY: dh_next [nr, H] += dhg [nr, GH] · W_hh [GH, H].
                    unsafe {
                        mm(
                            (nr, h, gh),
                            dh_next.as_mut_ptr(),
                            h,
                            true,
                            (dhg.as_ptr(), gh, 1),
                            (c.w_hh.as_ptr(), h, 1),
                            Parallelism::None,
                        )
                    };
                }
                std::mem::swap(&mut dh, &mut dh_next);
                continue;
            }
            Cell::Lstm => {
                let gates = &c.gates[at(gh)..at(gh) + nr * gh];
                let tc = &c.aux2[at(h)..at(h) + nr * h];
                let cp: Option<&[T]> = match prev {
                    None => c.c0.map(|c0| &c0[b0 * h..(b0 + nr) * h]),
                    Some(tp) => Some(&c.aux[(tp * b + b0) * h..(tp * b + b0 + nr) * h]),
                };
                for r in 0..nr {
                    let cp_row = cp.map_or(&zeros[..], |cp| &cp[r * h..(r + 1) * h]);
                    lstm_bwd_row(
                        &gates[r * gh..(r + 1) * gh],
                        &tc[r * h..(r + 1) * h],
                        cp_row,
                        &dh[r * h..(r + 1) * h],
                        &mut dc[r * h..(r + 1) * h],
                        &mut da[r * gh..(r + 1) * gh],
                        h,
                    );
                }
            }
        }
        if !last || c.h0.is_some() {
            // SAFETY: dh [nr, H] = da [nr, GH] · W_hh [GH, H].
            unsafe {
                mm(
                    (nr, h, gh),
                    dh.as_mut_ptr(),
                    h,
                    false,
                    (da.as_ptr(), gh, 1),
                    (c.w_hh.as_ptr(), h, 1),
                    Parallelism::None,
                )
            };
        }
    }
    if c.h0.is_some() {
        // SAFETY: rows b0..b0+nr of dh0 are this block's own.
        unsafe { c.dh0.slice(b0 * h, nr * h) }.copy_from_slice(&dh);
    }
    if c.cell == Cell::Lstm {
        // SAFETY: as above.
        unsafe { c.dc0.slice(b0 * h, nr * h) }.copy_from_slice(&dc);
    }
}

/// One GRU row backwards: from `dh` (the gradient of this step's output), the gradients
/// of the input pre-activations `dx` (r, z, n), of the hidden projection `dhg` (r, z, n)
/// and the direct part `dh_next = dh·z` of the previous state's gradient.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gru_bwd_row<T: Act>(
    gates: &[T],
    hn: &[T],
    hp: &[T],
    dh: &[T],
    dx: &mut [T],
    dhg: &mut [T],
    dh_next: &mut [T],
    h: usize,
) {
    by_lanes!(h, |j, N| {
        let (r, z, n) = (
            ld::<T, N>(gates, j),
            ld::<T, N>(gates, h + j),
            ld::<T, N>(gates, 2 * h + j),
        );
        let (hnv, hpv, d) = (ld::<T, N>(hn, j), ld::<T, N>(hp, j), ld::<T, N>(dh, j));
        let (mut dar, mut daz, mut dan) = ([T::ZERO; N], [T::ZERO; N], [T::ZERO; N]);
        let (mut dhn, mut dnext) = ([T::ZERO; N], [T::ZERO; N]);
        for k in 0..N {
            let dn = d[k] * (T::ONE - z[k]);
            let dz = d[k] * (hpv[k] - n[k]);
            dan[k] = dn * (T::ONE - n[k] * n[k]);
            dar[k] = dan[k] * hnv[k] * r[k] * (T::ONE - r[k]);
            daz[k] = dz * z[k] * (T::ONE - z[k]);
            dhn[k] = dan[k] * r[k];
            dnext[k] = d[k] * z[k];
        }
        st(dx, j, &dar);
        st(dx, h + j, &daz);
        st(dx, 2 * h + j, &dan);
        st(dhg, j, &dar);
        st(dhg, h + j, &daz);
        st(dhg, 2 * h + j, &dhn);
        st(dh_next, j, &dnext);
    });
}

/// One LSTM row backwards: the gate pre-activation gradients `da` (i, f, g, o), and `dc`
/// updated in place from this step's cell gradient to the previous one's.
#[inline(always)]
fn lstm_bwd_row<T: Act>(
    gates: &[T],
    tc: &[T],
    cp: &[T],
    dh: &[T],
    dc: &mut [T],
    da: &mut [T],
    h: usize,
) {
    by_lanes!(h, |j, N| {
        let (i, f) = (ld::<T, N>(gates, j), ld::<T, N>(gates, h + j));
        let (g, o) = (ld::<T, N>(gates, 2 * h + j), ld::<T, N>(gates, 3 * h + j));
        let (t, cpv, d, dcv) = (
            ld::<T, N>(tc, j),
            ld::<T, N>(cp, j),
            ld::<T, N>(dh, j),
            ld::<T, N>(dc, j),
        );
        let (mut dai, mut daf, mut dag, mut dao) =
            ([T::ZERO; N], [T::ZERO; N], [T::ZERO; N], [T::ZERO; N]);
        let mut dcn = [T::ZERO; N];
        for k in 0..N {
            let dcj = dcv[k] + d[k] * o[k] * (T::ONE - t[k] * t[k]);
            dai[k] = dcj * g[k] * i[k] * (T::ONE - i[k]);
            daf[k] = dcj * cpv[k] * f[k] * (T::ONE - f[k]);
            dag[k] = dcj * i[k] * (T::ONE - g[k] * g[k]);
            dao[k] = d[k] * t[k] * o[k] * (T::ONE - o[k]);
            dcn[k] = dcj * f[k];
        }
        st(da, j, &dai);
        st(da, h + j, &daf);
        st(da, 2 * h + j, &dag);
        st(da, 3 * h + j, &dao);
        st(dc, j, &dcn);
    });
}

#[cfg(test)]
mod tests {
    use super::Act;

    #[test]
    fn fast_tanh_and_sigmoid_are_accurate() {
        let mut worst_t = 0f64;
        let mut worst_s = 0f64;
        let mut x = -12.0f64;
        while x <= 12.0 {
            let t = (x as f32).tanh_a() as f64;
            worst_t = worst_t.max((t - x.tanh()).abs() / x.tanh().abs().max(1e-3));
            let s = (x as f32).sigmoid_a() as f64;
            worst_s = worst_s.max((s - 1.0 / (1.0 + (-x).exp())).abs());
            x += 0.000_37;
        }
        assert!(worst_t < 1e-6, "tanh relative error {worst_t}");
        assert!(worst_s < 5e-7, "sigmoid absolute error {worst_s}");
        assert_eq!(1e-5f32.tanh_a(), 1e-5);
        assert_eq!(0f32.tanh_a(), 0.0);
        assert!((30f32).tanh_a() <= 1.0 && (-30f32).tanh_a() >= -1.0);
    }
}
