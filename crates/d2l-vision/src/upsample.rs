//! Transposed convolution from scratch and bilinear upsampling (D2L 13.10 and the
//! upsampling part of 13.11).
//!
//! - [`corr2d`]: the book's 2-D cross-correlation (6.2), the operation being transposed.
//! - [`trans_conv`]: the book's from-scratch transposed convolution (13.10.1): every
//!   input element times the kernel, added into an `(h + kh - 1, w + kw - 1)` output.
//! - [`kernel2matrix`]: the sparse matrix `W` of a kernel (13.10.3), so that
//!   `W · vec(X) = vec(corr2d(X, K))` and `Wᵀ · vec(Y) = vec(trans_conv(Y, K))`.
//! - [`bilinear_kernel`]: the book's bilinear initialisation of a transposed convolution
//!   (13.11.3), and [`upsample_bilinear`], the book's demo: `ConvTranspose2d(3, 3,
//!   kernel_size=2s, padding=s/2, stride=s)` with that weight enlarges an image `s` times.
//!
//! The from-scratch functions compute in `f64` and return the input's dtype; the
//! engine's [`Tensor::conv_transpose2d`] computes the same thing batched (see the tests).

use d2l_tensor::{ConvTranspose2dOptions, DType, Error, Result, Tensor};

/// These helpers compute on host copies: both tensors must share a device (the result
/// goes there).
fn same_device(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.device() != b.device() {
        return Err(Error::DeviceMismatch {
            op,
            lhs: a.device(),
            rhs: b.device(),
        });
    }
    Ok(())
}

fn matrix(op: &'static str, name: &str, t: &Tensor) -> Result<(usize, usize, Vec<f64>)> {
    match *t.shape() {
        [h, w] => {
            let v = t.to_dtype(DType::F64)?.contiguous()?.to_vec::<f64>();
            Ok((h, w, v))
        }
        ref s => Err(Error::BadShape {
            op,
            msg: format!("expected {name} to be a matrix (h, w), got shape {s:?}"),
        }),
    }
}

fn float_dtype(t: &Tensor) -> DType {
    match t.dtype() {
        d @ (DType::F32 | DType::F64) => d,
        _ => DType::F32,
    }
}

/// The book's `corr2d` (D2L 6.2, used again in 13.10.3): the 2-D cross-correlation of
/// `x` `(h, w)` with the kernel `k` `(kh, kw)`, an `(h - kh + 1, w - kw + 1)` matrix with
/// `Y[i, j] = Σ_{a,b} X[i + a, j + b] · K[a, b]`.
///
/// A kernel larger than the input is an error. Float inputs keep their dtype; integer
/// inputs give `float32`.
///
/// ```
/// use d2l_tensor::Tensor;
/// use d2l_vision::upsample::corr2d;
/// let x = Tensor::arange(0.0, 9.0, 1.0).unwrap().reshape([3usize, 3]).unwrap();
/// let k = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
/// let y = corr2d(&x, &k).unwrap();
/// assert_eq!(y.to_dtype(d2l_tensor::DType::F64).unwrap().to_vec::<f64>(),
///            vec![27.0, 37.0, 57.0, 67.0]);
/// ```
pub fn corr2d(x: &Tensor, k: &Tensor) -> Result<Tensor> {
    const OP: &str = "corr2d";
    same_device(OP, x, k)?;
    let (h, w, xv) = matrix(OP, "the input", x)?;
    let (kh, kw, kv) = matrix(OP, "the kernel", k)?;
    if kh == 0 || kw == 0 || kh > h || kw > w {
        return Err(Error::BadShape {
            op: OP,
            msg: format!(
                "the kernel ({kh}, {kw}) must be non-empty and fit in the input ({h}, {w})"
            ),
        });
    }
    let (oh, ow) = (h - kh + 1, w - kw + 1);
    let mut y = vec![0.0f64; oh * ow];
    for i in 0..oh {
        for j in 0..ow {
            let mut s = 0.0;
            for a in 0..kh {
                for b in 0..kw {
                    s += xv[(i + a) * w + j + b] * kv[a * kw + b];
                }
            }
            y[i * ow + j] = s;
        }
    }
    Tensor::from_vec(y, &[oh, ow])?
        .to_dtype(float_dtype(x))?
        .to(x.device())
}

/// The book's `trans_conv` (D2L 13.10.1): the basic transposed convolution of `x`
/// `(h, w)` with the kernel `k` `(kh, kw)` — stride 1, no padding, one channel. Each input
/// element `X[i, j]` multiplies the whole kernel and the product is added into the
/// `(h + kh - 1, w + kw - 1)` output at rows `i..i + kh`, columns `j..j + kw`.
///
/// Float inputs keep their dtype; integer inputs give `float32`.
///
/// ```
/// use d2l_tensor::Tensor;
/// use d2l_vision::upsample::trans_conv;
/// let x = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0], &[2, 2]).unwrap();
/// let y = trans_conv(&x, &x).unwrap();
/// assert_eq!(y.shape(), &[3, 3]);
/// assert_eq!(y.to_vec::<f32>(), vec![0.0, 0.0, 1.0, 0.0, 4.0, 6.0, 4.0, 12.0, 9.0]);
/// ```
pub fn trans_conv(x: &Tensor, k: &Tensor) -> Result<Tensor> {
    const OP: &str = "trans_conv";
    same_device(OP, x, k)?;
    let (h, w, xv) = matrix(OP, "the input", x)?;
    let (kh, kw, kv) = matrix(OP, "the kernel", k)?;
    if kh == 0 || kw == 0 {
        return Err(Error::BadShape {
            op: OP,
            msg: format!("the kernel must be non-empty, got ({kh}, {kw})"),
        });
    }
    let (oh, ow) = (h + kh - 1, w + kw - 1);
    let mut y = vec![0.0f64; oh * ow];
    for i in 0..h {
        for j in 0..w {
            let v = xv[i * w + j];
            for a in 0..kh {
                for b in 0..kw {
                    y[(i + a) * ow + j + b] += v * kv[a * kw + b];
                }
            }
        }
    }
    Tensor::from_vec(y, &[oh, ow])?
        .to_dtype(float_dtype(x))?
        .to(x.device())
}

/// The book's `kernel2matrix` (D2L 13.10.3), generalised from its 2×2 kernel and 3×3
/// input: the `(oh·ow, in_h·in_w)` matrix `W` of the cross-correlation with `k` on an
/// `(in_h, in_w)` input (`oh = in_h - kh + 1`, `ow = in_w - kw + 1`), row `i·ow + j`
/// holding the kernel at the positions it covers when producing output `(i, j)`.
///
/// Then `W · vec(X) = vec(corr2d(X, K))` and `Wᵀ · vec(Y) = vec(trans_conv(Y, K))`:
/// the transposed convolution is the transpose of the convolution's matrix. For the
/// book's `K = [[1, 2], [3, 4]]` on 3×3 the first row is `[1, 2, 0, 3, 4, 0, 0, 0, 0]`.
/// A kernel larger than the input is an error.
pub fn kernel2matrix(k: &Tensor, in_h: usize, in_w: usize) -> Result<Tensor> {
    const OP: &str = "kernel2matrix";
    let (kh, kw, kv) = matrix(OP, "the kernel", k)?;
    if kh == 0 || kw == 0 || kh > in_h || kw > in_w {
        return Err(Error::BadShape {
            op: OP,
            msg: format!(
                "the kernel ({kh}, {kw}) must be non-empty and fit in the input ({in_h}, {in_w})"
            ),
        });
    }
    let (oh, ow) = (in_h - kh + 1, in_w - kw + 1);
    let n = in_h * in_w;
    let mut m = vec![0.0f64; oh * ow * n];
    for i in 0..oh {
        for j in 0..ow {
            let row = (i * ow + j) * n;
            for a in 0..kh {
                for b in 0..kw {
                    m[row + (i + a) * in_w + j + b] = kv[a * kw + b];
                }
            }
        }
    }
    Tensor::from_vec(m, &[oh * ow, n])?
        .to_dtype(float_dtype(k))?
        .to(k.device())
}

/// The book's `bilinear_kernel(in_channels, out_channels, kernel_size)` (D2L 13.11.3): a
/// `float32` weight `(in_channels, out_channels, k, k)` for a transposed convolution
/// that performs bilinear interpolation.
///
/// With `f = ⌈k/2⌉` and `c = f − 0.5` for even `k` (`f − 1` for odd `k`), the filter is
/// `(1 − |i − c|/f)·(1 − |j − c|/f)`; it is placed on the diagonal channel pairs
/// `(i, i)` only and every other entry is zero, so each channel is upsampled on its own.
/// (The book indexes `weight[range(in), range(out)]`, which PyTorch accepts only for
/// equal counts; here the pairs stop at `min(in_channels, out_channels)`.)
///
/// ```
/// use d2l_vision::upsample::bilinear_kernel;
/// let w = bilinear_kernel(1, 1, 4);
/// let row: Vec<f32> = w.to_vec::<f32>()[..4].to_vec();
/// assert_eq!(row, vec![0.0625, 0.1875, 0.1875, 0.0625]); // 0.25 × [0.25, 0.75, 0.75, 0.25]
/// ```
pub fn bilinear_kernel(in_channels: usize, out_channels: usize, kernel_size: usize) -> Tensor {
    let k = kernel_size;
    let factor = k.div_ceil(2) as f64;
    let center = if k % 2 == 1 {
        factor - 1.0
    } else {
        factor - 0.5
    };
    let og: Vec<f64> = (0..k)
        .map(|i| 1.0 - (i as f64 - center).abs() / factor)
        .collect();
    let mut filt = vec![0.0f32; k * k];
    for i in 0..k {
        for j in 0..k {
            filt[i * k + j] = (og[i] * og[j]) as f32;
        }
    }
    let mut w = vec![0.0f32; in_channels * out_channels * k * k];
    for c in 0..in_channels.min(out_channels) {
        let at = (c * out_channels + c) * k * k;
        w[at..at + k * k].copy_from_slice(&filt);
    }
    Tensor::from_vec(w, &[in_channels, out_channels, k, k])
        .expect("length is in·out·k·k by construction")
}

/// Bilinear upsampling of an image `(C, H, W)` by an even integer `scale`, as the book
/// does it (D2L 13.11.3): `ConvTranspose2d(C, C, kernel_size=2·scale, padding=scale/2,
/// stride=scale, bias=False)` initialised with [`bilinear_kernel`]`(C, C, 2·scale)`.
/// The output is `float32` `(C, scale·H, scale·W)`; for the book's `scale = 2` that is
/// kernel 4, padding 1, stride 2, and 561×728 becomes 1122×1456.
///
/// The input may be any dtype (it is converted to `float32`, values unchanged). Away from
/// the border each output pixel is PyTorch's `interpolate(mode='bilinear',
/// align_corners=False)`; the outermost `scale/2` rows and columns see only part of the
/// filter and come out darker, exactly as in the book's picture. A scale that is zero or
/// odd, or an input that is not `(C, H, W)`, is an error.
pub fn upsample_bilinear(img: &Tensor, scale: usize) -> Result<Tensor> {
    const OP: &str = "upsample_bilinear";
    if scale == 0 || scale % 2 == 1 {
        return Err(Error::InvalidArgument {
            op: OP,
            msg: format!(
                "the scale must be a positive even integer (kernel 2·scale, padding scale/2), got {scale}"
            ),
        });
    }
    let c = match *img.shape() {
        [c, h, w] if c > 0 && h > 0 && w > 0 => c,
        ref s => {
            return Err(Error::BadShape {
                op: OP,
                msg: format!("expected a non-empty image (C, H, W), got shape {s:?}"),
            })
        }
    };
    let x = img.to_dtype(DType::F32)?.contiguous()?.unsqueeze(0)?;
    let weight = bilinear_kernel(c, c, 2 * scale).to(x.device())?;
    let opts = ConvTranspose2dOptions::stride(scale).with_padding(scale / 2);
    x.conv_transpose2d(&weight, None, &opts)?.squeeze(0)
}
