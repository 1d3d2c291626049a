//! `d2l upsample IMAGE --scale 2 --out up.png`: the book's bilinear upsampling demo
//! (D2L 13.11.3) — a transposed convolution `ConvTranspose2d(3, 3, kernel_size=2s,
//! padding=s/2, stride=s)` initialised with `bilinear_kernel` enlarges the image `s`
//! times (561×728 → 1122×1456 for catdog.jpg at the book's `s = 2`).

use super::CliResult;
use clap::Args;
use d2l_vision::image::{read_image_f32, write_png};
use d2l_vision::upsample::upsample_bilinear;
use std::path::PathBuf;

/// The scales `d2l upsample` accepts (kernel `2s`, padding `s/2`, stride `s`).
pub const SCALES: [usize; 3] = [2, 4, 8];

/// Flags of `d2l upsample`.
#[derive(Args, Clone, Debug)]
pub struct UpsampleArgs {
    /// The JPEG or PNG image to enlarge, e.g. ../shared/data/d2l_images/catdog.jpg.
    pub image: PathBuf,
    /// The upsampling factor: 2 (the book's), 4 or 8.
    #[arg(long, default_value = "2")]
    pub scale: String,
    /// The PNG to write (values clamped to [0, 1]).
    #[arg(long, default_value = "upsampled.png")]
    pub out: PathBuf,
}

/// Parses `--scale`: one of [`SCALES`], else a one-line error.
pub fn parse_scale(s: &str) -> CliResult<usize> {
    match s.trim().parse::<usize>() {
        Ok(n) if SCALES.contains(&n) => Ok(n),
        _ => Err(format!("--scale must be 2, 4 or 8, got `{s}`").into()),
    }
}

/// Runs `d2l upsample`: reads the image, upsamples it bilinearly with the book's
/// transposed convolution and writes the PNG, printing both sizes (height×width).
pub fn run(a: UpsampleArgs) -> CliResult<()> {
    let scale = parse_scale(&a.scale)?;
    super::sizes::check_output(&a.out)?;
    let img = read_image_f32(&a.image)?;
    let (h, w) = (img.shape()[1], img.shape()[2]);
    // The transposed convolution's column buffer (3·(2s)² values per input pixel) and
    // its 3×sH×sW output, f32: 15·s² values per input pixel.
    super::sizes::check_elements(
        &format!(
            "--scale {scale} (a 3×{}×{} image from the {h}×{w} input, with the transposed convolution's buffers, f32)",
            h.saturating_mul(scale),
            w.saturating_mul(scale)
        ),
        &[15, h, scale, w, scale],
        4,
    )?;
    let up = upsample_bilinear(&img, scale)?;
    let (oh, ow) = (up.shape()[1], up.shape()[2]);
    write_png(&up, &a.out, true)?;
    println!("input {}: {h}×{w} (height×width)", a.image.display());
    println!(
        "output {}: {oh}×{ow} (×{scale}, ConvTranspose2d k={} p={} s={scale}, bilinear init)",
        a.out.display(),
        2 * scale,
        scale / 2
    );
    Ok(())
}
