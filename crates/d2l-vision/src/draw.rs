//! Boxes with labels drawn onto an image and saved as PNG: the book's `show_bboxes`
//! (13.3–13.7), which draws each box with a 2-pixel outline in the colours b, g, r, m, c in
//! turn and writes its label at the top-left corner on a patch of the box's colour.

use d2l_tensor::{DType, Error, Result, Tensor};
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans (a subset; its licence is `assets/LICENSE-DejaVu.txt`), embedded so that
/// labels and plots render the same on every machine without system fonts.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// Registers the embedded font as plotters' `sans-serif` family (once per process); the
/// box drawing here and `d2l-train`'s curves both write with it.
pub fn ensure_font() -> Result<()> {
    static LOADED: OnceLock<bool> = OnceLock::new();
    let ok = *LOADED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
            && plotters::style::register_font("sans-serif", FontStyle::Bold, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op: "plot",
            msg: "the embedded DejaVu Sans font could not be loaded".into(),
        })
    }
}

/// matplotlib's `b`, `g`, `r`, `m`, `c`, the colours `show_bboxes` cycles through.
pub const BOOK_COLORS: [(u8, u8, u8); 5] = [
    (0, 0, 255),
    (0, 128, 0),
    (255, 0, 0),
    (191, 0, 191),
    (0, 191, 191),
];

/// One box to draw: corners in pixels, an optional label, an optional colour (else the
/// book's colour cycle by position).
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledBox {
    /// `[x1, y1, x2, y2]` in pixels.
    pub corners: [f32; 4],
    /// Text written at the top-left corner.
    pub label: Option<String>,
    /// RGB colour.
    pub color: Option<(u8, u8, u8)>,
}

impl LabeledBox {
    /// A box from normalised corners (`[0, 1]`, as anchors and predictions are) on an
    /// image of `width × height` pixels: the book's `bbox_scale` multiplication.
    pub fn scaled(corners: [f32; 4], width: usize, height: usize, label: Option<String>) -> Self {
        let (w, h) = (width as f32, height as f32);
        LabeledBox {
            corners: [
                corners[0] * w,
                corners[1] * h,
                corners[2] * w,
                corners[3] * h,
            ],
            label,
            color: None,
        }
    }
}

fn draw_err(msg: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op: "draw_boxes",
        msg: msg.into(),
    }
}

/// Draws `boxes` onto `image` (`(3, H, W)`, `uint8` or float in 0–255) and writes a PNG.
/// Boxes may reach outside the image (they are clipped); a box with a NaN corner or with
/// `x2 < x1` / `y2 < y1` is an error naming it.
pub fn save_image_with_boxes(image: &Tensor, boxes: &[LabeledBox], path: &Path) -> Result<()> {
    let shape = image.shape().to_vec();
    if shape.len() != 3 || shape[0] != 3 {
        return Err(draw_err(format!(
            "expected an RGB image (3, H, W), got shape {shape:?}"
        )));
    }
    let (h, w) = (shape[1], shape[2]);
    for (i, b) in boxes.iter().enumerate() {
        let c = b.corners;
        if c.iter().any(|v| !v.is_finite()) || c[2] < c[0] || c[3] < c[1] {
            return Err(draw_err(format!(
                "box {i} has corners {c:?}; expected finite x1 <= x2 and y1 <= y2"
            )));
        }
    }
    ensure_font()?;
    let hwc = image
        .to_dtype(DType::F32)?
        .permute(&[1, 2, 0])?
        .contiguous()?
        .to_vec::<f32>();
    let mut buf: Vec<u8> = hwc
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w as u32, h as u32)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| draw_err(e.to_string());
        for (i, b) in boxes.iter().enumerate() {
            let (r, g, bl) = b.color.unwrap_or(BOOK_COLORS[i % BOOK_COLORS.len()]);
            let color = RGBColor(r, g, bl);
            let [x1, y1, x2, y2] = b.corners.map(|v| v.round() as i32);
            for t in 0..2 {
                root.draw(&Rectangle::new(
                    [(x1 - t, y1 - t), (x2 + t, y2 + t)],
                    color.stroke_width(1),
                ))
                .map_err(e)?;
            }
            if let Some(label) = &b.label {
                let text_color = if (r, g, bl) == (255, 255, 255) {
                    BLACK
                } else {
                    WHITE
                };
                let style = ("sans-serif", 13).into_font().color(&text_color);
                let (tw, th) = root.estimate_text_size(label, &style).map_err(e)?;
                let (tx, ty) = (x1.max(0), y1.max(0));
                root.draw(&Rectangle::new(
                    [(tx, ty), (tx + tw as i32 + 4, ty + th as i32 + 2)],
                    color.filled(),
                ))
                .map_err(e)?;
                root.draw(&Text::new(label.clone(), (tx + 2, ty + 1), style))
                    .map_err(e)?;
            }
        }
        root.present().map_err(e)?;
    }
    let out = Tensor::from_vec(buf, &[h, w, 3])?.permute(&[2, 0, 1])?;
    crate::image::write_png(&out, path, false).map_err(|e| draw_err(e.to_string()))
}

/// Lays RGB images out in a grid, each with an optional title above it, and writes one PNG
/// (the book's `show_images(imgs, num_rows, num_cols, titles, scale)` for colour images, as
/// 13.1's `apply(img, aug)` uses it).
///
/// `images` are `(3, H, W)` tensors, `uint8` or float in `[0, 1]` (after `ToTensor`); each
/// is resized by `scale` (bilinear with antialias, at least 1 pixel) and placed in a cell as
/// large as the largest tile, `cols` cells per row, with a 4-pixel white margin. `titles` is
/// empty or has one entry per image (an empty string leaves that title out). The file is
/// written to a temporary name and renamed. Returns the PNG's `(width, height)`.
pub fn save_rgb_grid(
    images: &[Tensor],
    titles: &[String],
    cols: usize,
    scale: f64,
    path: &Path,
) -> Result<(usize, usize)> {
    const PAD: usize = 4;
    const TITLE_H: usize = 20;
    let err = |msg: String| Error::InvalidArgument {
        op: "save_rgb_grid",
        msg,
    };
    if images.is_empty() || cols == 0 {
        return Err(err(format!(
            "an image grid needs at least one image and one column, got {} images and {cols} columns",
            images.len()
        )));
    }
    if !(scale.is_finite() && scale > 0.0) {
        return Err(err(format!("scale must be positive, got {scale}")));
    }
    if !titles.is_empty() && titles.len() != images.len() {
        return Err(err(format!(
            "{} titles for {} images; give one per image or none",
            titles.len(),
            images.len()
        )));
    }
    let mut tiles = Vec::with_capacity(images.len());
    for (i, img) in images.iter().enumerate() {
        let s = img.shape();
        if s.len() != 3 || s[0] != 3 || s[1] == 0 || s[2] == 0 {
            return Err(err(format!(
                "image {i}: expected an RGB image (3, H, W), got shape {s:?}"
            )));
        }
        let th = ((s[1] as f64 * scale).round() as usize).max(1);
        let tw = ((s[2] as f64 * scale).round() as usize).max(1);
        let resized = if img.dtype() == DType::U8 {
            img.to_dtype(DType::F32)?
        } else {
            (img.to_dtype(DType::F32)? * 255.0)?
        };
        let resized = crate::transforms::resize(&resized, th, tw)
            .map_err(|e| err(format!("image {i}: {e}")))?;
        let px: Vec<u8> = resized
            .to_vec::<f32>()
            .into_iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect();
        tiles.push((px, th, tw));
    }
    let cell_h = tiles.iter().map(|t| t.1).max().unwrap_or(1);
    let cell_w = tiles.iter().map(|t| t.2).max().unwrap_or(1);
    let title_h = if titles.iter().any(|t| !t.is_empty()) {
        TITLE_H
    } else {
        0
    };
    let cols = cols.min(images.len());
    let rows = images.len().div_ceil(cols);
    let width = cols * cell_w + (cols + 1) * PAD;
    let height = rows * (cell_h + title_h) + (rows + 1) * PAD;
    let mut buf = vec![255u8; width * height * 3];
    let origin = |i: usize| {
        let (r, c) = (i / cols, i % cols);
        (
            PAD + c * (cell_w + PAD),
            PAD + r * (cell_h + title_h + PAD) + title_h,
        )
    };
    for (i, (px, th, tw)) in tiles.iter().enumerate() {
        let (x0, y0) = origin(i);
        let plane = th * tw;
        for y in 0..*th {
            for x in 0..*tw {
                let o = ((y0 + y) * width + x0 + x) * 3;
                for ch in 0..3 {
                    buf[o + ch] = px[ch * plane + y * tw + x];
                }
            }
        }
    }
    if title_h > 0 {
        ensure_font()?;
        let root =
            BitMapBackend::with_buffer(&mut buf, (width as u32, height as u32)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| err(e.to_string());
        for (i, t) in titles.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
            let (x0, y0) = origin(i);
            root.draw(&Text::new(
                t.clone(),
                (x0 as i32, (y0 - title_h) as i32 + 3),
                ("sans-serif", 14).into_font().color(&BLACK),
            ))
            .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    let out = Tensor::from_vec(buf, &[height, width, 3])?.permute(&[2, 0, 1])?;
    crate::image::write_png(&out, path, false).map_err(|e| err(e.to_string()))?;
    Ok((width, height))
}
