//! Data sets the program generates itself, so that chapter 13's detection and
//! segmentation training runs offline: each is written in the layout of the real set it
//! stands in for, and read back by that set's reader.
//!
//! - [`detection`]: images with 1 to 64 objects of up to four classes and their tight
//!   boxes, in the banana set's `label.csv` layout (13.6), read by
//!   [`crate::bananas::read_detection_dir`]; every object's pixels are known, so the same
//!   renderer gives instance masks ([`detection::RenderedImage::instance_masks`]).
//! - [`segmentation`]: images with per-pixel classes in Pascal VOC's layout (13.9), read by
//!   [`crate::voc`].
//!
//! Generation is deterministic: image `i` of a split depends only on the spec's seed, the
//! split and `i` (a local SplitMix64 stream, and only `+ - * / sqrt` on floats, which are
//! exactly rounded everywhere), so equal specs give equal files on every machine and
//! whatever the thread timing. Images are rendered in parallel. Files are written
//! atomically (`d2l_nn::serialize::write_atomic_io`) and a `spec.txt` stamp, removed first
//! and written last, marks a complete set.

pub mod detection;
pub mod segmentation;

use d2l_data::{DataError, Result};
use std::path::Path;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` with the workspace's one atomic write.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    d2l_nn::serialize::write_atomic_io(path, bytes).map_err(io_err(path))
}

/// Encodes interleaved RGB `pixels` (`h × w`) as PNG with the `image` crate and writes it
/// atomically to `path`.
pub(crate) fn write_png_rgb(pixels: &[u8], h: usize, w: usize, path: &Path) -> Result<()> {
    use ::image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use ::image::ImageEncoder;
    let mut buf = Vec::with_capacity(h * w * 3 / 2);
    PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Adaptive)
        .write_image(pixels, w as u32, h as u32, ::image::ColorType::Rgb8)
        .map_err(|e| DataError::Format {
            path: path.to_path_buf(),
            msg: format!("cannot encode PNG: {e}"),
        })?;
    write_atomic(path, &buf)
}

/// Whether `name` is one of the generator's image files (`<digits>.png`), or a leftover of
/// an interrupted write: an older `<digits>.png.part`, the atomic write's temporary
/// (`tempfile`'s `.<digits>.png.<random letters and digits>.png`), or an older version's
/// temporary `.<digits>.png.<pid>.<n>.tmp.png`.
pub(crate) fn is_generated_name(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let image = |s: &str| s.strip_suffix(".png").is_some_and(digits);
    if image(name) || name.strip_suffix(".part").is_some_and(image) {
        return true;
    }
    let Some((stem, tail)) = name
        .strip_prefix('.')
        .and_then(|r| r.strip_suffix(".png"))
        .and_then(|r| r.split_once(".png."))
    else {
        return false;
    };
    let old_temp = tail
        .strip_suffix(".tmp")
        .is_some_and(|ids| ids.split('.').all(digits));
    let new_temp = !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_alphanumeric());
    digits(stem) && (old_temp || new_temp)
}

#[cfg(test)]
mod tests {
    use super::is_generated_name;

    #[test]
    fn generated_names_and_their_leftovers_are_recognised() {
        for yes in [
            "000001.png",
            "12.png.part",
            ".000003.png.4242.0.tmp.png",
            ".000003.png.a1B2c3.png",
        ] {
            assert!(is_generated_name(yes), "{yes}");
        }
        for no in [
            "photo.png",
            ".png",
            "0001.jpg",
            ".x.png.1.2.tmp.png",
            ".0001.png.12.tmp.jpg",
            ".0001.png.a-b.png",
            ".x.png.a1B2c3.png",
            "label.csv",
        ] {
            assert!(!is_generated_name(no), "{no}");
        }
    }
}
