//! Line and scatter plots written as PNG and SVG (the static counterpart of D2L 2.4's
//! `plot` and 3.6's `Animator`).
//!
//! [`save_line_plot`] draws one line per [`Series`], with the book's Animator styles in
//! turn (`'-'`, `'m--'`, `'g-.'`, `'r:'`: a blue solid line, a magenta dashed one, a green
//! long-dashed one, a red dotted one, then the cycle again in other colours), a legend,
//! axis labels and optional log scales and limits. [`save_scatter_plot`] draws point
//! clouds. Both write `<base>.png` and `<base>.svg`, each atomically (a temporary file
//! then a rename), and skip NaN and infinite points (a line is broken where one was).
//!
//! Text is drawn with an embedded subset of DejaVu Sans (see `assets/`), so plots render
//! the same on machines without any system font.
//!
//! ```no_run
//! use d2l_train::plot::{save_line_plot, PlotSpec, Series};
//! # fn main() -> d2l_tensor::Result<()> {
//! let x: Vec<f64> = (0..50).map(|i| i as f64 / 10.0).collect();
//! let y = x.iter().map(|v| v.sin()).collect();
//! let spec = PlotSpec { xlabel: "x".into(), ylabel: "sin(x)".into(), ..Default::default() };
//! let (png, svg) = save_line_plot("sin".as_ref(), &spec, &[Series::new("sin", x, y)])?;
//! # Ok(()) }
//! ```

use crate::run_dir::write_atomic;
use d2l_tensor::{Error, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One named curve or point cloud: `y[i]` against `x[i]` (extra values of the longer
/// vector are ignored).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// The legend label (empty: no legend entry).
    pub label: String,
    /// The x coordinates.
    pub x: Vec<f64>,
    /// The y coordinates.
    pub y: Vec<f64>,
}

impl Series {
    /// A series from a label and its coordinates.
    pub fn new(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series {
            label: label.into(),
            x,
            y,
        }
    }

    /// The finite points, in order, with `None` where a non-finite one was skipped.
    fn points(&self, log_x: bool, log_y: bool) -> Vec<Option<(f64, f64)>> {
        self.x
            .iter()
            .zip(&self.y)
            .map(|(&x, &y)| {
                let ok =
                    x.is_finite() && y.is_finite() && (!log_x || x > 0.0) && (!log_y || y > 0.0);
                ok.then_some((x, y))
            })
            .collect()
    }
}

/// Titles, axis labels, scales and limits of a plot (the arguments of the book's
/// `set_axes` / `Animator`). The default is an untitled plot with linear, automatic axes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlotSpec {
    /// The title above the plot (empty: none).
    pub title: String,
    /// The x-axis label.
    pub xlabel: String,
    /// The y-axis label.
    pub ylabel: String,
    /// Logarithmic x axis (points with x ≤ 0 are skipped).
    pub log_x: bool,
    /// Logarithmic y axis (points with y ≤ 0 are skipped).
    pub log_y: bool,
    /// Fixed y range (`None`: from the data, with a margin).
    pub ylim: Option<(f64, f64)>,
    /// Fixed x range (`None`: from the data).
    pub xlim: Option<(f64, f64)>,
}

/// The pixel size of the PNG and SVG images.
pub const PLOT_SIZE: (u32, u32) = (800, 560);

fn plot_err(msg: impl Into<String>) -> Error {
    Error::InvalidArgument {
        op: "plot",
        msg: msg.into(),
    }
}

pub(crate) use d2l_vision::draw::ensure_font;

/// The Animator's line formats in turn: (colour, dash) with dash `None` = solid,
/// `Some((dash, gap))` in pixels.
#[allow(clippy::type_complexity)]
const STYLES: [(RGBColor, Option<(u32, u32)>); 8] = [
    (RGBColor(31, 119, 180), None), // '-'   (matplotlib's default blue)
    (RGBColor(191, 0, 191), Some((10, 6))), // 'm--'
    (RGBColor(0, 128, 0), Some((16, 5))), // 'g-.' (long dashes)
    (RGBColor(214, 39, 40), Some((3, 4))), // 'r:'
    (RGBColor(255, 127, 14), None), // then the tab10 colours
    (RGBColor(148, 103, 189), Some((10, 6))),
    (RGBColor(140, 86, 75), Some((16, 5))),
    (RGBColor(23, 190, 207), Some((3, 4))),
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Lines,
    Points,
}

/// The data range of one axis over every series, or `lim` when given.
fn axis_range(
    series: &[Vec<Option<(f64, f64)>>],
    pick: impl Fn((f64, f64)) -> f64,
    lim: Option<(f64, f64)>,
    log: bool,
    margin: bool,
) -> Result<(f64, f64)> {
    if let Some((lo, hi)) = lim {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) || (log && lo <= 0.0) {
            return Err(plot_err(format!(
                "axis limits must be finite with low < high{}, got ({lo}, {hi})",
                if log {
                    " and low > 0 on a log axis"
                } else {
                    ""
                }
            )));
        }
        return Ok((lo, hi));
    }
    let vals = series.iter().flatten().flatten().map(|&p| pick(p));
    let (mut lo, mut hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if lo > hi {
        // No finite point at all: an empty frame.
        return Ok(if log { (0.1, 10.0) } else { (0.0, 1.0) });
    }
    if log {
        if lo == hi {
            return Ok((lo / 2.0, hi * 2.0));
        }
        if margin {
            let f = (hi / lo).powf(0.05);
            lo /= f;
            hi *= f;
        }
        return Ok((lo, hi));
    }
    if lo == hi {
        let d = if lo == 0.0 { 0.5 } else { lo.abs() * 0.1 };
        return Ok((lo - d, hi + d));
    }
    if margin {
        let d = (hi - lo) * 0.05;
        lo -= d;
        hi += d;
    }
    Ok((lo, hi))
}

/// A short tick label: few digits, scientific notation for very large or small values.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    // A tick at 0 computed as a sum of steps lands a rounding error away from it.
    if a < 1e-15 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.0e}");
        if s.parse::<f64>()
            .map(|p| (p - v).abs() > a * 1e-6)
            .unwrap_or(true)
        {
            format!("{v:.1e}")
        } else {
            s
        }
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

/// Labelled and unlabelled tick positions of a log axis over `[lo, hi]` (`0 < lo < hi`):
/// the powers of ten in range, with 2× and 5× them added when fewer than three powers fall
/// inside, and every multiple `m·10^k` (m = 1..9) when even those are fewer than three; the
/// light grid lines are at every `m·10^k` (thinned to powers of ten over many decades).
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo < hi) {
        return (Vec::new(), Vec::new());
    }
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let in_range = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
    let with = |ms: &[f64]| -> Vec<f64> {
        (k0..=k1)
            .flat_map(|k| ms.iter().map(move |m| m * 10f64.powi(k)))
            .filter(in_range)
            .collect()
    };
    let mut bold = with(&[1.0]);
    if bold.len() > 12 {
        let step = bold.len().div_ceil(10);
        bold = bold.into_iter().step_by(step).collect();
    }
    if bold.len() < 3 {
        bold = with(&[1.0, 2.0, 5.0]);
    }
    if bold.len() < 3 {
        bold = with(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    }
    let light = if k1 - k0 > 12 {
        with(&[1.0])
    } else {
        with(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    };
    (bold, light)
}

/// Picks the legend corner whose area holds the fewest data points (matplotlib's
/// `loc='best'`, roughly).
fn legend_corner(
    series: &[Vec<Option<(f64, f64)>>],
    xr: (f64, f64),
    yr: (f64, f64),
    log_x: bool,
    log_y: bool,
) -> SeriesLabelPosition {
    let norm = |v: f64, (lo, hi): (f64, f64), log: bool| {
        if log {
            (v.ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (v - lo) / (hi - lo)
        }
    };
    // (position, x interval, y interval) in [0, 1]² with y up; legend ≈ 40% × 35%.
    let corners = [
        (SeriesLabelPosition::UpperRight, (0.6, 1.0), (0.65, 1.0)),
        (SeriesLabelPosition::LowerRight, (0.6, 1.0), (0.0, 0.35)),
        (SeriesLabelPosition::UpperLeft, (0.0, 0.4), (0.65, 1.0)),
        (SeriesLabelPosition::LowerLeft, (0.0, 0.4), (0.0, 0.35)),
        (SeriesLabelPosition::MiddleRight, (0.6, 1.0), (0.33, 0.67)),
    ];
    let mut best = (usize::MAX, SeriesLabelPosition::UpperRight);
    for (pos, (x0, x1), (y0, y1)) in corners {
        let mut count = 0;
        for s in series {
            // Sample along segments too, so a line crossing a corner counts.
            let pts: Vec<(f64, f64)> = s.iter().flatten().copied().collect();
            let mut test = |x: f64, y: f64| {
                let (u, v) = (norm(x, xr, log_x), norm(y, yr, log_y));
                if u >= x0 && u <= x1 && v >= y0 && v <= y1 {
                    count += 1;
                }
            };
            for w in pts.windows(2) {
                for k in 0..8 {
                    let t = k as f64 / 8.0;
                    test(
                        w[0].0 + t * (w[1].0 - w[0].0),
                        w[0].1 + t * (w[1].1 - w[0].1),
                    );
                }
            }
            if let Some(&(x, y)) = pts.last() {
                test(x, y);
            }
        }
        if count < best.0 {
            best = (count, pos);
        }
    }
    best.1
}

/// The points of a plot's series with its axis ranges and legend corner, computed once
/// and drawn on every backend.
struct Frame {
    pts: Vec<Vec<Option<(f64, f64)>>>,
    xr: (f64, f64),
    yr: (f64, f64),
    corner: SeriesLabelPosition,
}

impl Frame {
    /// The frame of `series` under `spec`; `x_margin` pads the x range (scatter plots).
    fn new(spec: &PlotSpec, series: &[Series], x_margin: bool) -> Result<Frame> {
        let pts: Vec<Vec<Option<(f64, f64)>>> = series
            .iter()
            .map(|s| s.points(spec.log_x, spec.log_y))
            .collect();
        let xr = axis_range(&pts, |p| p.0, spec.xlim, spec.log_x, x_margin)?;
        let yr = axis_range(&pts, |p| p.1, spec.ylim, spec.log_y, true)?;
        let corner = legend_corner(&pts, xr, yr, spec.log_x, spec.log_y);
        Ok(Frame {
            pts,
            xr,
            yr,
            corner,
        })
    }
}

/// Draws the whole plot on `root` with the given x and y coordinate specs.
fn draw_chart<DB, XS, YS>(
    root: &DrawingArea<DB, Shift>,
    spec: &PlotSpec,
    series: &[Series],
    frame: &Frame,
    (xs, ys): (XS, YS),
    kind: Kind,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    XS: AsRangedCoord<Value = f64>,
    YS: AsRangedCoord<Value = f64>,
    XS::CoordDescType: ValueFormatter<f64>,
    YS::CoordDescType: ValueFormatter<f64>,
{
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    root.fill(&WHITE).map_err(e)?;
    let mut builder = ChartBuilder::on(root);
    builder
        .margin(16)
        .x_label_area_size(52)
        .y_label_area_size(72);
    if !spec.title.is_empty() {
        builder.caption(&spec.title, ("sans-serif", 24));
    }
    let mut chart = builder.build_cartesian_2d(xs, ys).map_err(e)?;
    let fmt = |v: &f64| tick_label(*v);
    chart
        .configure_mesh()
        .x_desc(spec.xlabel.as_str())
        .y_desc(spec.ylabel.as_str())
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 18))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(e)?;

    let mut any_label = false;
    for (i, (s, p)) in series.iter().zip(&frame.pts).enumerate() {
        let (color, dash) = STYLES[i % STYLES.len()];
        let style = ShapeStyle {
            color: color.to_rgba(),
            filled: kind == Kind::Points,
            stroke_width: 2,
        };
        // The first draw carries the legend entry.
        let anno = if kind == Kind::Points {
            let pts: Vec<(f64, f64)> = p.iter().flatten().copied().collect();
            chart
                .draw_series(pts.into_iter().map(|xy| Circle::new(xy, 3, style)))
                .map_err(e)?
        } else {
            // Split into runs of finite points.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for q in p {
                match q {
                    Some(xy) => runs.last_mut().expect("non-empty").push(*xy),
                    None if !runs.last().expect("non-empty").is_empty() => runs.push(Vec::new()),
                    None => {}
                }
            }
            // Later runs first, so the first run's draw (which carries the legend
            // entry) is the last borrow of the chart in this iteration.
            for run in runs.drain(1..) {
                match dash {
                    None => chart.draw_series(LineSeries::new(run, style)).map(drop),
                    Some((d, g)) => chart
                        .draw_series(DashedLineSeries::new(run, d, g, style))
                        .map(drop),
                }
                .map_err(e)?;
            }
            let run = runs.pop().expect("one run");
            match dash {
                None => chart.draw_series(LineSeries::new(run, style)),
                Some((d, g)) => chart.draw_series(DashedLineSeries::new(run, d, g, style)),
            }
            .map_err(e)?
        };
        if !s.label.is_empty() {
            any_label = true;
            let anno = anno.label(s.label.clone());
            if kind == Kind::Points {
                anno.legend(move |(x, y)| Circle::new((x + 10, y), 4, style));
            } else {
                match dash {
                    None => anno.legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], style).into_dyn()
                    }),
                    Some((d, g)) => anno.legend(move |(x, y)| {
                        DashedPathElement::new(vec![(x, y), (x + 24, y)], d, g, style).into_dyn()
                    }),
                };
            }
        }
    }
    if any_label {
        chart
            .configure_series_labels()
            .position(frame.corner.clone())
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

/// Draws on `root` choosing linear or log coordinates for each axis; the caller presents
/// `root` (one image may hold several panels).
fn draw_any<DB>(
    root: &DrawingArea<DB, Shift>,
    spec: &PlotSpec,
    series: &[Series],
    frame: &Frame,
    kind: Kind,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let (x, y) = (frame.xr.0..frame.xr.1, frame.yr.0..frame.yr.1);
    // Log axes get their own ticks: plotters' start at the first power of ten in the
    // range, so an axis from 0.12 to 3 would label only 1.
    let log = |r: std::ops::Range<f64>| {
        let (bold, light) = log_ticks(r.start, r.end);
        r.log_scale().with_key_points(bold).with_light_points(light)
    };
    match (spec.log_x, spec.log_y) {
        (false, false) => draw_chart(root, spec, series, frame, (x, y), kind),
        (true, false) => draw_chart(root, spec, series, frame, (log(x), y), kind),
        (false, true) => draw_chart(root, spec, series, frame, (x, log(y)), kind),
        (true, true) => draw_chart(root, spec, series, frame, (log(x), log(y)), kind),
    }
}

/// Draws a PNG with `draw` (given a temporary path that keeps the `.png` extension: the
/// encoder picks the format from it) and moves it to `png` through the workspace's one
/// atomic write ([`d2l_nn::serialize::replace_atomic`]: regular files only).
fn write_png_with(
    png: &Path,
    draw: impl FnOnce(&Path) -> std::result::Result<(), String>,
) -> Result<()> {
    d2l_nn::serialize::replace_atomic(png, |tmp| draw(tmp).map_err(std::io::Error::other))
        .map_err(|e| plot_err(format!("writing {}: {e}", png.display())))
}

/// The file name of an output base (`runs/x/curves` → `curves`), or an error without one.
fn file_name_of(base: &Path) -> Result<&std::ffi::OsStr> {
    base.file_name().ok_or_else(|| {
        plot_err(format!(
            "the output base `{}` has no file name",
            base.display()
        ))
    })
}

/// `<base>.png` and `<base>.svg` (`name` is `base`'s file name), with their folder created.
fn output_paths(base: &Path, name: &std::ffi::OsStr) -> Result<(PathBuf, PathBuf)> {
    let with_ext = |ext: &str| {
        let mut name = name.to_os_string();
        name.push(ext);
        base.with_file_name(name)
    };
    let (png, svg) = (with_ext(".png"), with_ext(".svg"));
    if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| plot_err(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok((png, svg))
}

fn save_plot(
    base: &Path,
    spec: &PlotSpec,
    series: &[Series],
    kind: Kind,
) -> Result<(PathBuf, PathBuf)> {
    ensure_font()?;
    let base_name = file_name_of(base)?;
    let frame = Frame::new(spec, series, kind == Kind::Points)?;
    let (png, svg) = output_paths(base, base_name)?;

    // SVG: render into a string, then write it atomically.
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, PLOT_SIZE).into_drawing_area();
        draw_any(&root, spec, series, &frame, kind)
            .and_then(|()| root.present().map_err(|err| err.to_string()))
            .map_err(|m| plot_err(format!("drawing {}: {m}", svg.display())))?;
    }
    write_atomic(&svg, text.as_bytes())?;

    // PNG: render to a temporary file with a .png name, then rename it into place.
    write_png_with(&png, |tmp| {
        let root = BitMapBackend::new(tmp, PLOT_SIZE).into_drawing_area();
        draw_any(&root, spec, series, &frame, kind)?;
        root.present().map_err(|err| err.to_string())
    })?;
    Ok((png, svg))
}

/// Draws each series as a line (the book's Animator formats in turn, with a legend) and
/// writes `<base>.png` and `<base>.svg`; returns both paths. Non-finite points (and
/// non-positive ones on a log axis) are skipped, breaking the line there.
pub fn save_line_plot(
    base: &Path,
    spec: &PlotSpec,
    series: &[Series],
) -> Result<(PathBuf, PathBuf)> {
    save_plot(base, spec, series, Kind::Lines)
}

/// Draws each series as a cloud of dots in its own colour (with a legend) and writes
/// `<base>.png` and `<base>.svg`; returns both paths. Non-finite points are skipped.
pub fn save_scatter_plot(
    base: &Path,
    spec: &PlotSpec,
    series: &[Series],
) -> Result<(PathBuf, PathBuf)> {
    save_plot(base, spec, series, Kind::Points)
}

/// One panel of [`save_line_panels`]: its axes and its curves.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Panel {
    /// Titles, labels, scales and limits of this panel.
    pub spec: PlotSpec,
    /// The curves drawn in it.
    pub series: Vec<Series>,
}

/// Draws several line plots side by side in one image (like matplotlib's
/// `subplots(1, k)`), each as [`save_line_plot`] would, and writes `<base>.png` and
/// `<base>.svg` ([`PLOT_SIZE`] per panel); returns both paths.
pub fn save_line_panels(base: &Path, panels: &[Panel]) -> Result<(PathBuf, PathBuf)> {
    ensure_font()?;
    if panels.is_empty() {
        return Err(plot_err("a panel plot needs at least one panel"));
    }
    let base_name = file_name_of(base)?;
    let prepared = panels
        .iter()
        .map(|p| Frame::new(&p.spec, &p.series, false))
        .collect::<Result<Vec<_>>>()?;
    let size = (PLOT_SIZE.0 * panels.len() as u32, PLOT_SIZE.1);
    let (png, svg) = output_paths(base, base_name)?;
    fn draw_all<DB>(
        root: &DrawingArea<DB, Shift>,
        panels: &[Panel],
        prepared: &[Frame],
    ) -> std::result::Result<(), String>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let areas = root.split_evenly((1, panels.len()));
        for ((area, p), q) in areas.iter().zip(panels).zip(prepared) {
            draw_any(area, &p.spec, &p.series, q, Kind::Lines)?;
        }
        root.present().map_err(|err| err.to_string())
    }
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        draw_all(&root, panels, &prepared)
            .map_err(|m| plot_err(format!("drawing {}: {m}", svg.display())))?;
    }
    write_atomic(&svg, text.as_bytes())?;
    write_png_with(&png, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        draw_all(&root, panels, &prepared)
    })?;
    Ok((png, svg))
}

/// One grey-scale image of an image grid, with its (possibly multi-line) title.
#[derive(Debug, Clone)]
pub struct Tile {
    /// Row-major intensities in [0, 1] (values outside are clamped).
    pub pixels: Vec<f32>,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// Title drawn above the image; `\n` separates lines.
    pub title: String,
}

const GRID_SCALE: usize = 3;
const GRID_LINE_H: usize = 18;

fn draw_grid<DB>(
    root: &DrawingArea<DB, Shift>,
    tiles: &[Tile],
    cols: usize,
    cell: (usize, usize),
    title_h: usize,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    root.fill(&WHITE).map_err(e)?;
    for (i, t) in tiles.iter().enumerate() {
        let (x0, y0) = ((i % cols) * cell.0, (i / cols) * cell.1);
        for (k, line) in t.title.lines().enumerate() {
            root.draw(&Text::new(
                line.to_string(),
                (x0 as i32 + 4, (y0 + 2 + k * GRID_LINE_H) as i32),
                ("sans-serif", 15),
            ))
            .map_err(e)?;
        }
        let top = y0 + title_h;
        for r in 0..t.height {
            for c in 0..t.width {
                let v = t.pixels.get(r * t.width + c).copied().unwrap_or(0.0);
                let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                let (px, py) = (
                    (x0 + 4 + c * GRID_SCALE) as i32,
                    (top + r * GRID_SCALE) as i32,
                );
                root.draw(&Rectangle::new(
                    [(px, py), (px + GRID_SCALE as i32, py + GRID_SCALE as i32)],
                    RGBColor(g, g, g).filled(),
                ))
                .map_err(e)?;
            }
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

/// Lays grey-scale images out in a grid with a title above each, the way the book's
/// `show_images` / `predict_ch3` do, and writes `<base>.png` and `<base>.svg`.
pub fn save_image_grid(base: &Path, tiles: &[Tile], cols: usize) -> Result<(PathBuf, PathBuf)> {
    ensure_font()?;
    if tiles.is_empty() || cols == 0 {
        return Err(plot_err(
            "an image grid needs at least one image and one column",
        ));
    }
    for t in tiles {
        if t.pixels.len() != t.height * t.width || t.height == 0 || t.width == 0 {
            return Err(plot_err(format!(
                "a {}×{} tile needs {} pixels, got {}",
                t.height,
                t.width,
                t.height * t.width,
                t.pixels.len()
            )));
        }
    }
    let base_name = file_name_of(base)?;
    let lines = tiles
        .iter()
        .map(|t| t.title.lines().count())
        .max()
        .unwrap_or(0);
    let title_h = lines * GRID_LINE_H + 6;
    let (mh, mw) = (
        tiles.iter().map(|t| t.height).max().unwrap_or(0),
        tiles.iter().map(|t| t.width).max().unwrap_or(0),
    );
    let cell = ((mw * GRID_SCALE + 8).max(90), mh * GRID_SCALE + title_h + 6);
    let cols = cols.min(tiles.len());
    let rows = tiles.len().div_ceil(cols);
    let size = ((cols * cell.0) as u32, (rows * cell.1) as u32);
    let (png, svg) = output_paths(base, base_name)?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        draw_grid(&root, tiles, cols, cell, title_h)
            .map_err(|m| plot_err(format!("drawing {}: {m}", svg.display())))?;
    }
    write_atomic(&svg, text.as_bytes())?;
    write_png_with(&png, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        draw_grid(&root, tiles, cols, cell, title_h)
    })?;
    Ok((png, svg))
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_ticks_label_values_below_one() {
        // House-prices fold curves: log RMSE from about 0.12 to 3.
        let (bold, _) = super::log_ticks(0.12, 3.0);
        assert!(
            bold.contains(&0.2) && bold.contains(&0.5) && bold.contains(&1.0),
            "{bold:?}"
        );
        assert!(bold.iter().all(|&v| (0.12..=3.0).contains(&v)));
        // Many decades: powers of ten only.
        let (bold, light) = super::log_ticks(1e-13, 1.0);
        assert!(bold.len() >= 3 && bold.len() <= 14, "{bold:?}");
        assert!(light.len() >= bold.len());
        // Within one decade: every multiple.
        let (bold, _) = super::log_ticks(0.15, 0.45);
        assert_eq!(bold.len(), 3, "{bold:?}");
    }

    #[test]
    fn tick_labels_snap_rounding_noise_to_zero() {
        assert_eq!(super::tick_label(-2.2e-16), "0");
        assert_eq!(super::tick_label(0.2), "0.2");
    }
}
