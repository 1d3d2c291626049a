//! The built-in offline image classification set `shapes`: a stand-in for Fashion-MNIST
//! (D2L 3.5) that the code renders itself, so every chapter-3-to-7 command runs on a machine
//! with no network and no data files.
//!
//! Same format as Fashion-MNIST: 1×28×28 `u8` grey images, 10 classes, 60,000 training and
//! 10,000 test images by default, returned as an [`ImageSet`]. Each image is one shape drawn
//! with anti-aliasing (coverage from a signed distance, a one-pixel ramp at the edge) with a
//! random position, size, rotation, stroke width and brightness, plus Gaussian pixel noise.
//! Sizes vary widely within every class, so the mean brightness does not give the class away
//! and a nearest-class-mean or linear classifier on raw pixels stays well below a CNN.
//!
//! Generation is deterministic: image `i` of a set depends only on the seed and `i` (each has
//! its own random stream), so equal seeds give equal bytes on every platform.

use crate::idx::ImageSet;
use d2l_tensor::Generator;
use std::f64::consts::PI;

/// The image side, in pixels.
pub const SHAPES_SIZE: usize = 28;
/// The default number of training images.
pub const SHAPES_TRAIN_SIZE: usize = 60_000;
/// The default number of test images.
pub const SHAPES_TEST_SIZE: usize = 10_000;

/// The class names of `shapes`, by index.
pub const SHAPES_CLASSES: [&str; 10] = [
    "disk",
    "ring",
    "square",
    "filled square",
    "triangle",
    "plus",
    "cross",
    "horizontal bars",
    "vertical bars",
    "diagonal line",
];

/// The generator of the built-in `shapes` data set.
pub struct Shapes;

impl Shapes {
    /// `n` images rendered from `seed`, classes balanced (each class `n / 10` times, the
    /// remainder spread over the first classes) in a seeded random order.
    pub fn generate(n: usize, seed: u64) -> ImageSet {
        let mut order = Generator::new(seed ^ 0x5348_4150_4553_0001);
        let mut labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        for i in (1..n).rev() {
            let j = order.below(i as u64 + 1) as usize;
            labels.swap(i, j);
        }
        let px = SHAPES_SIZE * SHAPES_SIZE;
        let mut images = vec![0u8; n * px];
        for (i, img) in images.chunks_exact_mut(px).enumerate() {
            let mut g = Generator::new(
                seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(i as u64),
            );
            render(labels[i] as usize, &mut g, img);
        }
        ImageSet {
            images,
            labels,
            n,
            height: SHAPES_SIZE,
            width: SHAPES_SIZE,
        }
    }

    /// The default split: 60,000 training images from `seed`, or 10,000 test images from a
    /// seed derived from it (so the two splits never share an image stream).
    pub fn load(train: bool, seed: u64) -> ImageSet {
        if train {
            Shapes::generate(SHAPES_TRAIN_SIZE, seed)
        } else {
            Shapes::generate(SHAPES_TEST_SIZE, seed ^ 0x7E57_7E57_7E57_7E57)
        }
    }

    /// The class names.
    pub fn classes() -> &'static [&'static str] {
        &SHAPES_CLASSES
    }
}

fn uniform(g: &mut Generator, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * g.next_f64()
}

/// Signed distance to an axis-aligned box of half-sizes `(bx, by)` centred at the origin.
#[inline]
fn sd_box(x: f64, y: f64, bx: f64, by: f64) -> f64 {
    let qx = x.abs() - bx;
    let qy = y.abs() - by;
    let ox = qx.max(0.0);
    let oy = qy.max(0.0);
    (ox * ox + oy * oy).sqrt() + qx.max(qy).min(0.0)
}

/// Signed distance to an equilateral triangle of half-side `r` centred at the origin
/// (pointing up in image coordinates, y down).
#[inline]
fn sd_triangle(x: f64, y: f64, r: f64) -> f64 {
    let k = 3f64.sqrt();
    let mut px = x.abs() - r;
    let mut py = -y + r / k;
    if px + k * py > 0.0 {
        let (nx, ny) = ((px - k * py) / 2.0, (-k * px - py) / 2.0);
        px = nx;
        py = ny;
    }
    px -= px.clamp(-2.0 * r, 0.0);
    -(px * px + py * py).sqrt() * py.signum()
}

/// The shape of one class with its random parameters, evaluated as a signed distance (in
/// pixels, negative inside) at a point of the shape's own frame.
enum Shape {
    Disk {
        r: f64,
    },
    Ring {
        r: f64,
        hw: f64,
    },
    Square {
        b: f64,
        hw: f64,
    },
    FilledSquare {
        b: f64,
    },
    Triangle {
        r: f64,
    },
    Plus {
        l: f64,
        hw: f64,
    },
    Bars {
        l: f64,
        hw: f64,
        offsets: [f64; 3],
        count: usize,
        vertical: bool,
    },
    Line {
        l: f64,
        hw: f64,
    },
}

impl Shape {
    #[inline]
    fn sdf(&self, x: f64, y: f64) -> f64 {
        match *self {
            Shape::Disk { r } => (x * x + y * y).sqrt() - r,
            Shape::Ring { r, hw } => ((x * x + y * y).sqrt() - r).abs() - hw,
            Shape::Square { b, hw } => sd_box(x, y, b, b).abs() - hw,
            Shape::FilledSquare { b } => sd_box(x, y, b, b),
            Shape::Triangle { r } => sd_triangle(x, y, r),
            Shape::Plus { l, hw } => sd_box(x, y, l, hw).min(sd_box(x, y, hw, l)),
            Shape::Bars {
                l,
                hw,
                offsets,
                count,
                vertical,
            } => {
                let (u, v) = if vertical { (y, x) } else { (x, y) };
                offsets[..count]
                    .iter()
                    .map(|o| sd_box(u, v - o, l, hw))
                    .fold(f64::INFINITY, f64::min)
            }
            Shape::Line { l, hw } => sd_box(x, y, l, hw),
        }
    }
}

/// Renders one image of class `class` into `img` (28×28 bytes).
fn render(class: usize, g: &mut Generator, img: &mut [u8]) {
    let hw = uniform(g, 0.75, 1.9); // half the stroke width
    let small_tilt = uniform(g, -0.26, 0.26); // about ±15°
    let any_angle = uniform(g, 0.0, 2.0 * PI);
    let (shape, angle, extent) = match class {
        0 => {
            let r = uniform(g, 3.5, 9.5);
            (Shape::Disk { r }, 0.0, r)
        }
        1 => {
            let r = uniform(g, 5.0, 11.0);
            (Shape::Ring { r, hw }, 0.0, r + hw)
        }
        2 => {
            let b = uniform(g, 4.5, 9.0);
            (Shape::Square { b, hw }, any_angle, b * 1.42 + hw)
        }
        3 => {
            let b = uniform(g, 3.0, 8.0);
            (Shape::FilledSquare { b }, any_angle, b * 1.42)
        }
        4 => {
            let r = uniform(g, 5.0, 11.0);
            (Shape::Triangle { r }, any_angle, r * 1.16)
        }
        5 | 6 => {
            let l = uniform(g, 5.0, 11.0);
            let base = if class == 6 { PI / 4.0 } else { 0.0 };
            (Shape::Plus { l, hw }, base + small_tilt, l * 1.05 + hw)
        }
        7 | 8 => {
            let l = uniform(g, 5.0, 11.0);
            let count = 2 + g.below(2) as usize;
            let gap = uniform(g, 2.0 * hw + 2.0, 2.0 * hw + 5.0);
            let mid = (count - 1) as f64 / 2.0;
            let mut offsets = [0.0; 3];
            for (k, o) in offsets.iter_mut().enumerate().take(count) {
                *o = (k as f64 - mid) * gap;
            }
            let span = mid * gap + hw;
            (
                Shape::Bars {
                    l,
                    hw,
                    offsets,
                    count,
                    vertical: class == 8,
                },
                small_tilt,
                l.max(span) * 1.1,
            )
        }
        _ => {
            let l = uniform(g, 6.0, 13.0);
            let base = if g.below(2) == 0 { PI / 4.0 } else { -PI / 4.0 };
            (Shape::Line { l, hw }, base + small_tilt, l * 0.75 + hw)
        }
    };
    // Keep the shape (mostly) inside the frame, then jitter its position.
    let c0 = (SHAPES_SIZE as f64 - 1.0) / 2.0;
    let room = (c0 - extent).clamp(0.5, 5.0);
    let cx = c0 + uniform(g, -room, room);
    let cy = c0 + uniform(g, -room, room);
    let fg = uniform(g, 140.0, 255.0);
    let bg = uniform(g, 0.0, 30.0);
    let sigma = uniform(g, 0.0, 18.0);
    let (s, c) = angle.sin_cos();
    for (yi, row) in img.chunks_exact_mut(SHAPES_SIZE).enumerate() {
        let dy = yi as f64 - cy;
        for (xi, p) in row.iter_mut().enumerate() {
            let dx = xi as f64 - cx;
            // Rotate the pixel into the shape's frame.
            let x = c * dx + s * dy;
            let y = -s * dx + c * dy;
            let cov = (0.5 - shape.sdf(x, y)).clamp(0.0, 1.0);
            let v = bg + (fg - bg) * cov + sigma * g.normal_f64();
            *p = v.round().clamp(0.0, 255.0) as u8;
        }
    }
}
