//! `d2l augment`: the figures of D2L 13.1 (image augmentation). The book's
//! `apply(img, aug, num_rows=2, num_cols=4, scale=1.5)` applies an augmentation 8 times to
//! `img/cat1.jpg` and shows the results in a 2 × 4 grid; this command does the same and
//! writes the grid as one PNG.

use super::CliResult;
use clap::Args;
use d2l_vision::image::read_image;
use d2l_vision::transforms::{
    example_generator, to_tensor, ColorJitter, Compose, ImageTransform, RandomHorizontalFlip,
    RandomResizedCrop, RandomVerticalFlip,
};
use std::path::PathBuf;
use std::sync::Arc;

/// The transform names `--transform` accepts, in the book's order.
pub const TRANSFORMS: [&str; 7] = ["flip", "vflip", "crop", "color", "hue", "brightness", "all"];

/// Flags of `d2l augment`.
#[derive(Args, Clone, Debug)]
pub struct AugmentArgs {
    /// The image (JPEG or PNG), e.g. ../shared/data/d2l_images/cat1.jpg.
    pub image: PathBuf,
    /// flip | vflip | crop | color | hue | brightness | all (the book's 13.1 settings).
    #[arg(long, default_value = "flip")]
    pub transform: String,
    /// Output PNG.
    #[arg(long, default_value = "augment.png")]
    pub out: PathBuf,
    /// Seed of the random draws (tile k uses the stream of example k).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rows of the grid (the book's num_rows).
    #[arg(long, default_value_t = 2)]
    pub rows: usize,
    /// Columns of the grid (the book's num_cols).
    #[arg(long, default_value_t = 4)]
    pub cols: usize,
    /// Each tile's size relative to the augmented image.
    #[arg(long, default_value_t = 0.5)]
    pub scale: f64,
    /// Write the tile number and size above each tile.
    #[arg(long)]
    pub titles: bool,
}

/// The book's augmentation for `name` (13.1): `flip` = `RandomHorizontalFlip()`,
/// `vflip` = `RandomVerticalFlip()`, `crop` = `RandomResizedCrop((200, 200), scale=(0.1, 1),
/// ratio=(0.5, 2))`, `color` = `ColorJitter(0.5, 0.5, 0.5, 0.5)`, `hue` =
/// `ColorJitter(hue=0.5)`, `brightness` = `ColorJitter(brightness=0.5)`, `all` =
/// `Compose([flip, color, crop])`.
pub fn book_transform(name: &str) -> CliResult<Arc<dyn ImageTransform>> {
    let crop = || RandomResizedCrop::with_params((200, 200), (0.1, 1.0), (0.5, 2.0));
    Ok(match name {
        "flip" => Arc::new(RandomHorizontalFlip::default()),
        "vflip" => Arc::new(RandomVerticalFlip::default()),
        "crop" => Arc::new(crop()?),
        "color" => Arc::new(ColorJitter::new(0.5, 0.5, 0.5, 0.5)?),
        "hue" => Arc::new(ColorJitter::new(0.0, 0.0, 0.0, 0.5)?),
        "brightness" => Arc::new(ColorJitter::new(0.5, 0.0, 0.0, 0.0)?),
        "all" => Arc::new(
            Compose::default()
                .then(RandomHorizontalFlip::default())
                .then(ColorJitter::new(0.5, 0.5, 0.5, 0.5)?)
                .then(crop()?),
        ),
        other => {
            return Err(format!(
                "unknown transform `{other}`; expected one of {}",
                TRANSFORMS.join(", ")
            )
            .into())
        }
    })
}

/// Checks what `--rows`, `--cols` and `--scale` ask for with an `h`×`w` image: the
/// `rows × cols` augmented f32 tiles (a crop is at most 200×200 or the image) and the RGB
/// grid of tiles scaled by `--scale`. Returns the number of tiles.
fn check_grid(a: &AugmentArgs, h: usize, w: usize) -> CliResult<usize> {
    let (th, tw) = (h.max(200), w.max(200));
    let what = format!("--rows {} --cols {}", a.rows, a.cols);
    let n = super::sizes::check_elements(
        &format!(
            "{what} ({}×{} augmented {th}×{tw} f32 images)",
            a.rows, a.cols
        ),
        &[a.rows, a.cols, 3, th, tw],
        4,
    )?;
    let grid_px = (a.rows as f64 * (th as f64 * a.scale + 24.0))
        * (a.cols as f64 * (tw as f64 * a.scale + 4.0));
    // The grid as RGB bytes and its f32 tiles while they are scaled.
    super::sizes::check_bytes_f64(
        &format!("{what} --scale {} (a grid of {grid_px:.0} pixels)", a.scale),
        grid_px * (3.0 + 12.0),
    )?;
    Ok(n / (3 * th * tw))
}

/// Runs `d2l augment`.
pub fn run(a: AugmentArgs) -> CliResult<()> {
    let aug = book_transform(&a.transform)?;
    super::sizes::check_output(&a.out)?;
    if a.rows == 0 || a.cols == 0 {
        return Err(format!(
            "--rows and --cols must be at least 1, got {} and {}",
            a.rows, a.cols
        )
        .into());
    }
    if !(a.scale.is_finite() && a.scale > 0.0) {
        return Err(format!("--scale must be a positive number, got {}", a.scale).into());
    }
    let img = to_tensor(&read_image(&a.image)?)?;
    let n = check_grid(&a, img.shape()[1], img.shape()[2])?;
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let mut rng = example_generator(a.seed, 0, k as u64);
        out.push(aug.apply(&img, &mut rng)?);
    }
    let titles: Vec<String> = if a.titles {
        out.iter()
            .enumerate()
            .map(|(k, t)| format!("#{} {}×{}", k + 1, t.shape()[1], t.shape()[2]))
            .collect()
    } else {
        Vec::new()
    };
    let (w, h) = d2l_vision::draw::save_rgb_grid(&out, &titles, a.cols, a.scale, &a.out)?;
    println!(
        "{} {}: {n} draws of `{}` (seed {}), {}×{} grid → {} ({w}×{h} pixels)",
        a.image.display(),
        format_args!("{}×{}", img.shape()[1], img.shape()[2]),
        a.transform,
        a.seed,
        a.rows,
        a.cols,
        a.out.display()
    );
    Ok(())
}
