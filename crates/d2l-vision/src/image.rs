//! Images in and out: JPEG/PNG (grey, grey+alpha, RGB, RGBA, 8- or 16-bit) decoded into
//! `uint8` tensors of shape `(3, H, W)` (RGB, channels first, as `torchvision.io.read_image`
//! gives after dropping alpha), and `(C, H, W)` tensors written back as PNG.

use ::image::ImageEncoder;
use d2l_data::{DataError, Result};
use d2l_tensor::{DType, Tensor};
use std::path::Path;

/// Reads a JPEG or PNG file into a `uint8` RGB tensor of shape `(3, H, W)`.
///
/// Grey images are replicated into three channels, alpha is dropped and 16-bit samples are
/// scaled to 8 bits. A missing, truncated or corrupt file is an error naming the path.
pub fn read_image(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_image(&bytes).map_err(|e| match e {
        DataError::Invalid(msg) => DataError::Format {
            path: path.to_path_buf(),
            msg,
        },
        other => other,
    })
}

/// Decodes JPEG or PNG bytes into a `uint8` RGB tensor of shape `(3, H, W)`.
pub fn decode_image(bytes: &[u8]) -> Result<Tensor> {
    let img = ::image::load_from_memory(bytes)
        .map_err(|e| DataError::Invalid(format!("not a readable JPEG or PNG image: {e}")))?;
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    Ok(hwc_to_chw(rgb.as_raw(), h, w, 3))
}

/// Reads a JPEG or PNG file into a `float32` RGB tensor `(3, H, W)` with values in
/// `[0, 1]` (torchvision's `ToTensor`).
pub fn read_image_f32(path: impl AsRef<Path>) -> Result<Tensor> {
    // `to_float` divides each pixel exactly (x / 255), as torchvision's ToTensor does.
    d2l_data::transforms::to_float(&read_image(path)?)
}

fn hwc_to_chw(raw: &[u8], h: usize, w: usize, c: usize) -> Tensor {
    let mut out = vec![0u8; raw.len()];
    for (p, px) in raw.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            out[ch * h * w + p] = v;
        }
    }
    Tensor::from_vec(out, &[c, h, w]).expect("length is c*h*w by construction")
}

/// Converts a `(C, H, W)` tensor (C = 1 or 3) to interleaved 8-bit pixels.
///
/// `uint8` tensors are taken as they are; float tensors are taken as values in `[0, 1]`
/// when `unit_range` is true (torchvision's `ToTensor` scale), else in `[0, 255]`, and
/// are rounded and clamped.
pub fn to_pixels(img: &Tensor, unit_range: bool) -> Result<(Vec<u8>, usize, usize, usize)> {
    let shape = img.shape().to_vec();
    if shape.len() != 3 || !(shape[0] == 1 || shape[0] == 3) {
        return Err(DataError::Invalid(format!(
            "expected an image tensor of shape (1 or 3, H, W), got {shape:?}"
        )));
    }
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let chw: Vec<u8> = match img.dtype() {
        DType::U8 => img.contiguous()?.to_vec::<u8>(),
        _ => {
            let scale = if unit_range { 255.0 } else { 1.0 };
            img.to_dtype(DType::F32)?
                .to_vec::<f32>()
                .into_iter()
                .map(|v| (v * scale).round().clamp(0.0, 255.0) as u8)
                .collect()
        }
    };
    let mut hwc = vec![0u8; chw.len()];
    for ch in 0..c {
        for p in 0..h * w {
            hwc[p * c + ch] = chw[ch * h * w + p];
        }
    }
    Ok((hwc, c, h, w))
}

/// Writes a `(1|3, H, W)` tensor as a PNG (see [`to_pixels`] for the value range). The
/// file is written to a temporary name beside `path` and renamed, so a failure never
/// leaves a half-written image; `path` must be (or name) a regular file, as
/// [`d2l_nn::serialize::replace_atomic`] says (a device, FIFO, socket or directory there
/// is refused; a symbolic link is written through).
pub fn write_png(img: &Tensor, path: impl AsRef<Path>, unit_range: bool) -> Result<()> {
    let path = path.as_ref();
    let (hwc, c, h, w) = to_pixels(img, unit_range)?;
    let color = if c == 1 {
        ::image::ColorType::L8
    } else {
        ::image::ColorType::Rgb8
    };
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let mut png = Vec::new();
    ::image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&hwc, w as u32, h as u32, color)
        .map_err(|e| DataError::Format {
            path: path.to_path_buf(),
            msg: format!("cannot encode PNG: {e}"),
        })?;
    d2l_nn::serialize::write_atomic_io(path, &png).map_err(io_err)
}
