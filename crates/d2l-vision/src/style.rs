//! Neural style transfer, the loss part (D2L 13.12).
//!
//! - [`preprocess`] / [`postprocess`]: an image to a normalised `(1, 3, H, W)` batch and
//!   back to a `(3, H, W)` image in `[0, 1]` (ImageNet mean and std, [`RGB_MEAN`], [`RGB_STD`]).
//! - [`STYLE_LAYERS`] / [`CONTENT_LAYERS`] (also as [`style_layers`] / [`content_layers`]):
//!   the indices into VGG-19's `features` the book reads, `[0, 5, 10, 19, 28]` and `[25]`.
//! - [`extract_features`] / [`select_features`]: run a stack of layers one child at a time
//!   and keep the outputs at those indices (with a `post_relu` switch, see below).
//! - [`content_loss`], [`gram`], [`style_loss`], [`tv_loss`] and [`compute_loss`] with
//!   [`StyleWeights`].
//!
//! # The book's total (a list repetition)
//!
//! The book states the weights `content_weight, style_weight, tv_weight = 1, 1e3, 10` and
//! sums the losses with `l = sum(10 * styles_l + contents_l + [tv_l])`. `styles_l` is a
//! Python **list**, so `10 * styles_l` repeats the list ten times instead of scaling it:
//! every style loss enters the total ten times, and the style term is effectively weighted
//! `1e4`, not `1e3`. The per-layer style losses the book plots are weighted `1e3`.
//! [`StyleWeights::book`] (also the `Default`) reproduces the book's total exactly;
//! [`StyleWeights::stated`] uses the weights as written. Both give the same `styles_l`;
//! their totals differ by exactly `9 × Σ styles_l`.
//!
//! # Pre- or post-ReLU features
//!
//! Every ReLU of torchvision's VGG is `inplace=True`. The book's `extract_features` stores
//! the conv output of layer `i` and then runs layer `i + 1`, the ReLU, which overwrites
//! that very tensor. So the book's features at 0, 5, 10, 19 and 25 are in effect
//! **post-ReLU**; 28 stays pre-ReLU only because the net ends there (see
//! `D2L-REFERENCE.md` D.12). Our layers never work in place: [`extract_features`] with
//! `post_relu = false` returns the layer's own (pre-ReLU) output, and with
//! `post_relu = true` it returns the output of the next child, when there is one — which
//! is the book's tensor exactly, provided that child is the ReLU (true for every conv of
//! VGG).
//!
//! `Sequential` (in `d2l-nn`) can be used through [`select_features`] on its
//! `forward_trace`, or by handing its children to [`extract_features`] as closures:
//!
//! ```text
//! let layers: Vec<_> = (0..net.len())
//!     .map(|i| { let l = net.get(i).unwrap().clone(); move |x: &Tensor| l.forward(x) })
//!     .collect();
//! let (contents, styles) = extract_features(&layers, &x, &CONTENT_LAYERS, &STYLE_LAYERS, true)?;
//! ```

use d2l_tensor::{Error, Result, Tensor};

/// ImageNet channel means (`rgb_mean` of 13.12).
pub const RGB_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (`rgb_std` of 13.12).
pub const RGB_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The book's style layers: VGG-19 `features` indices of conv1_1, conv2_1, conv3_1,
/// conv4_1 and conv5_1.
pub const STYLE_LAYERS: [usize; 5] = [0, 5, 10, 19, 28];
/// The book's content layer: VGG-19 `features` index of conv4_4.
pub const CONTENT_LAYERS: [usize; 1] = [25];

/// [`STYLE_LAYERS`] as a slice.
pub fn style_layers() -> &'static [usize] {
    &STYLE_LAYERS
}

/// [`CONTENT_LAYERS`] as a slice.
pub fn content_layers() -> &'static [usize] {
    &CONTENT_LAYERS
}

fn bad_shape(op: &'static str, msg: String) -> Error {
    Error::BadShape { op, msg }
}

fn invalid(op: &'static str, msg: String) -> Error {
    Error::InvalidArgument { op, msg }
}

fn mismatch(op: &'static str, lhs: &Tensor, rhs: &Tensor, why: &str) -> Error {
    Error::ShapeMismatch {
        op,
        lhs: lhs.shape().to_vec(),
        rhs: rhs.shape().to_vec(),
        why: why.into(),
    }
}

// ------------------------------------------------------------------ images

/// The book's `preprocess`: optionally resizes a `(3, H, W)` image to `size = (h, w)`
/// (bilinear with antialias, [`crate::transforms::resize`]), converts it to float in
/// `[0, 1]` (`ToTensor`: `uint8 / 255`; a float image is kept as is), normalises it with
/// [`RGB_MEAN`] / [`RGB_STD`] and adds the batch dim: `(1, 3, h, w)` float32.
pub fn preprocess(img: &Tensor, size: Option<(usize, usize)>) -> Result<Tensor> {
    const OP: &str = "style::preprocess";
    if img.rank() != 3 || img.shape()[0] != 3 {
        return Err(bad_shape(
            OP,
            format!("expected a (3, H, W) image, got {:?}", img.shape()),
        ));
    }
    let data_err = |e: d2l_data::DataError| invalid(OP, e.to_string());
    let img = match size {
        Some((h, w)) => crate::transforms::resize(img, h, w).map_err(data_err)?,
        None => img.clone(),
    };
    let x = crate::transforms::to_tensor(&img).map_err(data_err)?;
    crate::transforms::normalize(&x, &RGB_MEAN, &RGB_STD)
        .map_err(data_err)?
        .unsqueeze(0)
}

/// The book's `postprocess`: takes `(1, 3, H, W)` (the book's `img[0]`) or `(3, H, W)`,
/// un-normalises (`x · std + mean` per channel) and clamps to `[0, 1]`. Returns a detached
/// `(3, H, W)` float32 image (the book then converts it to a PIL image).
pub fn postprocess(img: &Tensor) -> Result<Tensor> {
    const OP: &str = "style::postprocess";
    let x = match img.shape() {
        [1, 3, _, _] => img.squeeze(0)?,
        [3, _, _] => img.clone(),
        s => {
            return Err(bad_shape(
                OP,
                format!("expected a (1, 3, H, W) or (3, H, W) image, got {s:?}"),
            ))
        }
    };
    if !x.dtype().is_float() {
        return Err(invalid(
            OP,
            format!("expected a float image, got {}", x.dtype()),
        ));
    }
    let x = x.detach().to_dtype(d2l_tensor::DType::F32)?;
    let mean = Tensor::from_slice(&RGB_MEAN, &[3, 1, 1])?.to(x.device())?;
    let std = Tensor::from_slice(&RGB_STD, &[3, 1, 1])?.to(x.device())?;
    x.mul(&std)?.add(&mean)?.clamp(0.0, 1.0)
}

// ------------------------------------------------------------------ features

fn check_indices(op: &'static str, n: usize, content: &[usize], style: &[usize]) -> Result<()> {
    if let Some(&i) = content.iter().chain(style).find(|&&i| i >= n) {
        return Err(invalid(
            op,
            format!("layer index {i} is out of range for {n} layers"),
        ));
    }
    Ok(())
}

/// Picks the content and style features from the per-child outputs of a layer stack
/// (`outputs[i]` is child `i`'s output, as `Sequential::forward_trace` returns them).
/// With `post_relu`, index `i` takes `outputs[i + 1]` when it exists (the book's in-place
/// ReLU, see the module notes), else `outputs[i]`. Returns `(contents, styles)` in the
/// order of the index lists. An index past the end is an error.
pub fn select_features(
    outputs: &[Tensor],
    content_layers: &[usize],
    style_layers: &[usize],
    post_relu: bool,
) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    check_indices(
        "style::select_features",
        outputs.len(),
        content_layers,
        style_layers,
    )?;
    let pick = |i: usize| {
        if post_relu && i + 1 < outputs.len() {
            outputs[i + 1].clone()
        } else {
            outputs[i].clone()
        }
    };
    Ok((
        content_layers.iter().map(|&i| pick(i)).collect(),
        style_layers.iter().map(|&i| pick(i)).collect(),
    ))
}

/// The book's `extract_features`: runs `layers` (the children of a `Sequential`, e.g.
/// VGG-19's `features[0..=28]`) one by one on `x` and collects the outputs at
/// `content_layers` and `style_layers`. `post_relu = false` keeps each layer's own output
/// (pre-ReLU for a conv); `post_relu = true` takes the output of the following child, as
/// the book effectively does through torchvision's in-place ReLU (module notes). Every
/// layer is run, like the book's loop over `range(len(net))`. Returns `(contents, styles)`.
pub fn extract_features<F>(
    layers: &[F],
    x: &Tensor,
    content_layers: &[usize],
    style_layers: &[usize],
    post_relu: bool,
) -> Result<(Vec<Tensor>, Vec<Tensor>)>
where
    F: Fn(&Tensor) -> Result<Tensor>,
{
    check_indices(
        "style::extract_features",
        layers.len(),
        content_layers,
        style_layers,
    )?;
    let mut outputs = Vec::with_capacity(layers.len());
    let mut cur = x.clone();
    for layer in layers {
        cur = layer(&cur)?;
        outputs.push(cur.clone());
    }
    select_features(&outputs, content_layers, style_layers, post_relu)
}

// ------------------------------------------------------------------ losses

/// The book's `content_loss`: `mean((y_hat − y)²)` with `y` detached. The shapes must be
/// equal (no broadcasting).
pub fn content_loss(y_hat: &Tensor, y: &Tensor) -> Result<Tensor> {
    if y_hat.shape() != y.shape() {
        return Err(mismatch("style::content_loss", y_hat, y, "must be equal"));
    }
    y_hat.sub(&y.detach())?.square()?.mean_all()
}

/// The book's `gram`: for `x` of shape `(1, c, h, w)` or `(c, h, w)`, `X·Xᵀ / (c·h·w)` with
/// `X = x` reshaped to `(c, h·w)`. Returns `(c, c)`. Other ranks, a batch other than 1 and
/// empty inputs are errors.
pub fn gram(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "style::gram";
    let c = match x.shape() {
        [1, c, _, _] | [c, _, _] => *c,
        s => {
            return Err(bad_shape(
                OP,
                format!("expected (1, c, h, w) or (c, h, w), got {s:?}"),
            ))
        }
    };
    let numel = x.numel();
    if numel == 0 {
        return Err(bad_shape(OP, format!("empty input {:?}", x.shape())));
    }
    let n = numel / c;
    let m = x.reshape([c, n].as_slice())?;
    m.matmul(&m.t()?)?.div_scalar((c * n) as f64)
}

/// The book's `style_loss`: `mean((gram(y_hat) − gram_y)²)` with `gram_y` (the style
/// image's Gram matrix, `(c, c)`) detached. `y_hat` is `(1, c, h, w)` or `(c, h, w)`.
pub fn style_loss(y_hat: &Tensor, gram_y: &Tensor) -> Result<Tensor> {
    let g = gram(y_hat)?;
    if g.shape() != gram_y.shape() {
        return Err(mismatch(
            "style::style_loss",
            &g,
            gram_y,
            "(gram(y_hat) and gram_y) must be equal",
        ));
    }
    g.sub(&gram_y.detach())?.square()?.mean_all()
}

/// The book's `tv_loss` (total variation):
/// `0.5 · (mean|x[:, :, 1:, :] − x[:, :, :-1, :]| + mean|x[:, :, :, 1:] − x[:, :, :, :-1]|)`
/// for `x` of shape `(n, c, h, w)` with `h, w ≥ 2` (smaller would take the mean of
/// nothing).
pub fn tv_loss(y_hat: &Tensor) -> Result<Tensor> {
    const OP: &str = "style::tv_loss";
    let (h, w) = match y_hat.shape() {
        [n, c, h, w] if *n > 0 && *c > 0 && *h >= 2 && *w >= 2 => (*h, *w),
        s => {
            return Err(bad_shape(
                OP,
                format!("expected (n, c, h, w) with n, c ≥ 1 and h, w ≥ 2, got {s:?}"),
            ))
        }
    };
    let dh = y_hat
        .narrow(2, 1, h - 1)?
        .sub(&y_hat.narrow(2, 0, h - 1)?)?
        .abs()?
        .mean_all()?;
    let dw = y_hat
        .narrow(3, 1, w - 1)?
        .sub(&y_hat.narrow(3, 0, w - 1)?)?
        .abs()?
        .mean_all()?;
    dh.add(&dw)?.mul_scalar(0.5)
}

/// The weights of [`compute_loss`]. `content`, `style` and `tv` scale the individual
/// losses (the book's `content_weight, style_weight, tv_weight`); `style_repeat` is how
/// many times the (weighted) style losses enter the total. See the module notes for why
/// the book's total counts them ten times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StyleWeights {
    /// Weight of each content loss (book: 1).
    pub content: f64,
    /// Weight of each style loss (book: 1e3).
    pub style: f64,
    /// Weight of the total-variation loss (book: 10).
    pub tv: f64,
    /// Multiplier of `Σ styles_l` in the total: 10 reproduces the book's
    /// `sum(10 * styles_l + …)` list repetition, 1 is the weighting as stated.
    pub style_repeat: f64,
}

impl StyleWeights {
    /// The book's effective total: weights `(1, 1e3, 10)` and the style losses counted
    /// ten times (`style_repeat = 10`), i.e. style weighted `1e4` in the total. The default.
    pub fn book() -> Self {
        StyleWeights {
            content: 1.0,
            style: 1e3,
            tv: 10.0,
            style_repeat: 10.0,
        }
    }

    /// The weights as the book writes them, `(1, 1e3, 10)`, each loss counted once.
    pub fn stated() -> Self {
        StyleWeights {
            style_repeat: 1.0,
            ..Self::book()
        }
    }
}

impl Default for StyleWeights {
    /// [`StyleWeights::book`].
    fn default() -> Self {
        Self::book()
    }
}

/// The book's `compute_loss`: returns `(contents_l, styles_l, tv_l, total)` with
/// `contents_l[i] = content_loss(contents_y_hat[i], contents_y[i]) · w.content`,
/// `styles_l[i] = style_loss(styles_y_hat[i], styles_y_gram[i]) · w.style`,
/// `tv_l = tv_loss(x) · w.tv` and
/// `total = w.style_repeat · Σ styles_l + Σ contents_l + tv_l`. With
/// [`StyleWeights::book`] that is the book's `sum(10 * styles_l + contents_l + [tv_l])`.
/// The paired lists must have equal lengths.
pub fn compute_loss(
    x: &Tensor,
    contents_y_hat: &[Tensor],
    styles_y_hat: &[Tensor],
    contents_y: &[Tensor],
    styles_y_gram: &[Tensor],
    weights: &StyleWeights,
) -> Result<(Vec<Tensor>, Vec<Tensor>, Tensor, Tensor)> {
    const OP: &str = "style::compute_loss";
    if contents_y_hat.len() != contents_y.len() {
        return Err(invalid(
            OP,
            format!(
                "{} content features but {} content targets",
                contents_y_hat.len(),
                contents_y.len()
            ),
        ));
    }
    if styles_y_hat.len() != styles_y_gram.len() {
        return Err(invalid(
            OP,
            format!(
                "{} style features but {} style Gram matrices",
                styles_y_hat.len(),
                styles_y_gram.len()
            ),
        ));
    }
    let contents_l = contents_y_hat
        .iter()
        .zip(contents_y)
        .map(|(a, b)| content_loss(a, b)?.mul_scalar(weights.content))
        .collect::<Result<Vec<_>>>()?;
    let styles_l = styles_y_hat
        .iter()
        .zip(styles_y_gram)
        .map(|(a, b)| style_loss(a, b)?.mul_scalar(weights.style))
        .collect::<Result<Vec<_>>>()?;
    let tv_l = tv_loss(x)?.mul_scalar(weights.tv)?;
    let mut total = tv_l.clone();
    for l in &contents_l {
        total = total.add(l)?;
    }
    if !styles_l.is_empty() {
        let mut s = styles_l[0].clone();
        for l in &styles_l[1..] {
            s = s.add(l)?;
        }
        total = total.add(&s.mul_scalar(weights.style_repeat)?)?;
    }
    Ok((contents_l, styles_l, tv_l, total))
}
