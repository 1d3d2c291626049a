//! Layer-by-layer summaries: the book's shape walk (D2L 6.6, 7.x — "for layer in net:
//! X = layer(X); print(layer.__class__.__name__, 'output shape:\t', X.shape)") for every
//! model of the zoo, plus parameter and FLOP counts.
//!
//! One row per top-level layer of the `Sequential`, as the book's loop prints: for VGG,
//! GoogLeNet, ResNet and DenseNet these are whole blocks (`Sequential`), whose parameters
//! and FLOPs are those of everything inside.
//!
//! # FLOP counting rule
//!
//! FLOPs are counted **per example** (the summary runs a batch of one), in evaluation mode,
//! one multiply and one add being two FLOPs:
//!
//! * `Linear(in, out)`: `2·in·out` per output row, plus `out` when it has a bias
//!   (a batch-1 input of more than two dims has several rows: `numel(output) / out`).
//! * `Conv2d` (and `ConvTranspose2d`): `2·(C_in / groups)·kh·kw` per output element, plus
//!   one per output element for the bias.
//! * `MaxPool2d` / `AvgPool2d`: `kh·kw` per output element (one compare or add per window
//!   element); `AdaptiveAvgPool2d` / `AdaptiveMaxPool2d`: one per input element.
//! * Batch normalisation (`BatchNorm1d`, `BatchNorm2d`, the from-scratch
//!   [`crate::cnn::BatchNorm`]): two per element — in evaluation mode it is one scale and
//!   one shift per element once the statistics are folded in.
//! * Elementwise activations (`ReLU`, `Sigmoid`, `Tanh`, `GELU`, `LeakyReLU`) and
//!   `Softmax`: one FLOP per output element.
//! * Composite blocks are summed over their parts, watched with
//!   [`crate::cnn::forward_hooked`]: a `Sequential` over its layers; an
//!   [`Inception`](crate::cnn::Inception) over its convs and pool plus one FLOP per element
//!   for each path's ReLU; a [`Residual`](crate::cnn::Residual) over its convs and batch
//!   norms plus one per element for each ReLU and for the shortcut sum; a
//!   [`DenseBlock`](crate::cnn::DenseBlock) over its conv blocks (the concatenation is
//!   free).
//! * Everything else (`Flatten`, `Dropout`, `Identity`, unknown layers): 0. Dropout is
//!   free at inference time, which is what the count describes.

use crate::cnn::{forward_hooked, BatchNorm, ForwardHook};
use d2l_nn::conv::{Conv2d, ConvTranspose2d};
use d2l_nn::layers::{LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Tanh, GELU};
use d2l_nn::norm::{BatchNorm1d, BatchNorm2d};
use d2l_nn::pool::{AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{no_grad, random, Error, Result, Tensor};
use std::fmt;

/// One layer of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    /// The layer's name in the `Sequential` (`"0"`, `"1"`, …).
    pub name: String,
    /// The layer's `describe()` (`"Linear(in_features=784, out_features=256, bias=True)"`).
    pub kind: String,
    /// The layer's output shape for a batch of one (`[1, 256]`).
    pub output_shape: Vec<usize>,
    /// Scalar parameters in the layer (with its sub-layers).
    pub params: usize,
    /// FLOPs per example, by the rule in the module docs.
    pub flops: u64,
}

impl LayerRow {
    /// The layer's class name: `kind` up to the first `(` (`"Linear"`), as the book's
    /// `layer.__class__.__name__`.
    pub fn class_name(&self) -> &str {
        self.kind.split('(').next().unwrap_or(&self.kind)
    }
}

/// A layer-by-layer account of a `Sequential` for one input shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// One row per top-level layer, in order.
    pub rows: Vec<LayerRow>,
    /// All scalar parameters of the network (shared ones once).
    pub total_params: usize,
    /// Sum of the rows' FLOPs: the cost of one forward pass per example.
    pub total_flops: u64,
    /// The input shape given, without the batch dim.
    pub input_shape: Vec<usize>,
}

impl Summary {
    /// The output shape of the network (batch of one), or the input's for an empty net.
    pub fn output_shape(&self) -> Vec<usize> {
        match self.rows.last() {
            Some(r) => r.output_shape.clone(),
            None => std::iter::once(1)
                .chain(self.input_shape.iter().copied())
                .collect(),
        }
    }

    /// Only the book's walk: one `"{Layer} output shape:\t {shape}"` line per layer.
    pub fn shape_walk(&self) -> String {
        let mut s = String::new();
        for r in &self.rows {
            s.push_str(&format!(
                "{} output shape:\t {:?}\n",
                r.class_name(),
                r.output_shape
            ));
        }
        s
    }
}

/// FLOPs per example of one leaf layer that turned `input` into `output` (see the module
/// docs).
pub fn layer_flops(layer: &dyn Module, input: &Tensor, output: &Tensor) -> u64 {
    let any = layer.as_any();
    let n = output.numel() as u64;
    if let Some(l) = any.downcast_ref::<Linear>() {
        let (out_f, in_f) = (l.weight.shape()[0] as u64, l.weight.shape()[1] as u64);
        let rows = n / out_f.max(1);
        let bias = if l.bias.is_some() { out_f } else { 0 };
        return rows * (2 * in_f * out_f + bias);
    }
    if let Some(c) = any.downcast_ref::<Conv2d>() {
        // weight [C_out, C_in / groups, kh, kw]: per output element, one multiply-add per
        // weight of its filter.
        let per_out: u64 = c.weight.shape()[1..].iter().product::<usize>() as u64;
        return n * (2 * per_out + u64::from(c.bias.is_some()));
    }
    if let Some(c) = any.downcast_ref::<ConvTranspose2d>() {
        // weight [C_in, C_out / groups, kh, kw]: each input element scatters into
        // C_out / groups · kh · kw outputs.
        let per_in: u64 = c.weight.shape()[1..].iter().product::<usize>() as u64;
        let bias = if c.bias.is_some() { n } else { 0 };
        return input.numel() as u64 * 2 * per_in + bias;
    }
    if let Some(p) = any.downcast_ref::<MaxPool2d>() {
        let (kh, kw) = p.options().kernel;
        return n * (kh * kw) as u64;
    }
    if let Some(p) = any.downcast_ref::<AvgPool2d>() {
        let (kh, kw) = p.options().kernel;
        return n * (kh * kw) as u64;
    }
    if any.is::<AdaptiveAvgPool2d>() || any.is::<AdaptiveMaxPool2d>() {
        return input.numel() as u64;
    }
    if any.is::<BatchNorm1d>() || any.is::<BatchNorm2d>() || any.is::<BatchNorm>() {
        return 2 * n;
    }
    let elementwise = any.is::<ReLU>()
        || any.is::<Sigmoid>()
        || any.is::<Tanh>()
        || any.is::<GELU>()
        || any.is::<LeakyReLU>()
        || any.is::<Softmax>();
    if elementwise {
        return n;
    }
    // Flatten, Dropout, Identity and layers without a rule yet.
    0
}

/// Adds up [`layer_flops`] and the blocks' own operations over one forward pass.
#[derive(Default)]
struct FlopCounter {
    total: u64,
}

impl ForwardHook for FlopCounter {
    fn layer(&mut self, layer: &dyn Module, input: &Tensor, output: &Tensor) {
        self.total += layer_flops(layer, input, output);
    }

    fn op(&mut self, _what: &'static str, flops: u64) {
        self.total += flops;
    }
}

/// Whether any batch-norm layer of `net` is in training mode.
fn batch_norm_training(net: &Sequential) -> bool {
    let mut training = false;
    let _ = net.apply(&mut |m: &dyn Module| {
        let any = m.as_any();
        training |= any
            .downcast_ref::<BatchNorm2d>()
            .is_some_and(|b| b.is_training())
            || any
                .downcast_ref::<BatchNorm1d>()
                .is_some_and(|b| b.is_training())
            || any
                .downcast_ref::<BatchNorm>()
                .is_some_and(|b| b.is_training());
        Ok(())
    });
    training
}

/// Runs a batch of one `input_shape` example (zeros) through `net` layer by layer under
/// `no_grad` and records each top-level layer's output shape, parameters and FLOPs (the
/// FLOPs of a block summed over its parts, see the module docs).
///
/// The walk must not disturb the network: the global random generator is saved and
/// restored (dropout masks drawn here do not shift a seeded run), and a network whose
/// batch-norm layers are in training mode is walked in evaluation mode — so running
/// statistics are neither used nor updated, and a batch of one is fine — then put back in
/// training mode (`net.train()`). Otherwise the mode is left as it is.
pub fn summarize(net: &Sequential, input_shape: &[usize]) -> Result<Summary> {
    if input_shape.is_empty() || input_shape.contains(&0) {
        return Err(Error::InvalidArgument {
            op: "summarize",
            msg: format!(
                "expected a non-empty input shape without zeros (no batch dim), got {input_shape:?}"
            ),
        });
    }
    let mut shape = vec![1];
    shape.extend_from_slice(input_shape);
    // The probe batch goes where the network lives.
    let device = net.device().unwrap_or(d2l_tensor::Device::Cpu);
    let x = Tensor::zeros(&shape).to(device)?;
    let saved = random::with_global(|g| g.clone());
    let restore_training = batch_norm_training(net);
    if restore_training {
        net.eval();
    }
    let walked = no_grad(|| -> Result<Vec<LayerRow>> {
        let mut rows = Vec::with_capacity(net.len());
        let mut cur = x.clone();
        for (i, (_, layer)) in net.children().into_iter().enumerate() {
            let mut counter = FlopCounter::default();
            cur = forward_hooked(layer.as_ref(), &cur, &mut counter)?;
            rows.push(LayerRow {
                name: i.to_string(),
                kind: layer.describe(),
                output_shape: cur.shape().to_vec(),
                params: layer.num_parameters(),
                flops: counter.total,
            });
        }
        Ok(rows)
    });
    if restore_training {
        net.train();
    }
    random::with_global(|g| *g = saved);
    let rows = walked?;
    Ok(Summary {
        total_flops: rows.iter().map(|r| r.flops).sum(),
        total_params: net.num_parameters(),
        rows,
        input_shape: input_shape.to_vec(),
    })
}

/// `1234567` → `"1,234,567"`.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Summary {
    /// The book's shape walk, then a table of layer, output shape, parameters and FLOPs
    /// with the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shape_walk())?;
        writeln!(f)?;
        let shapes: Vec<String> = self
            .rows
            .iter()
            .map(|r| format!("{:?}", r.output_shape))
            .collect();
        let labels: Vec<String> = self
            .rows
            .iter()
            .map(|r| format!("({}) {}", r.name, r.kind))
            .collect();
        // A column is as wide as its widest cell, its total and its header.
        let width = |cells: &[String], total: &str, header: usize| {
            cells
                .iter()
                .map(|s| s.len())
                .chain([total.len(), header])
                .max()
                .unwrap_or(header)
        };
        let w_layer = width(&labels, "", 5);
        let w_shape = width(&shapes, "", 12);
        let params: Vec<String> = self.rows.iter().map(|r| grouped(r.params as u64)).collect();
        let flops: Vec<String> = self.rows.iter().map(|r| grouped(r.flops)).collect();
        let tp = grouped(self.total_params as u64);
        let tf = grouped(self.total_flops);
        let w_params = width(&params, &tp, 6);
        let w_flops = width(&flops, &tf, 5);
        let header = format!(
            "{:<w_layer$}  {:<w_shape$}  {:>w_params$}  {:>w_flops$}",
            "Layer", "Output shape", "Params", "FLOPs"
        );
        writeln!(f, "{header}")?;
        writeln!(f, "{}", "-".repeat(header.len()))?;
        for i in 0..self.rows.len() {
            writeln!(
                f,
                "{:<w_layer$}  {:<w_shape$}  {:>w_params$}  {:>w_flops$}",
                labels[i], shapes[i], params[i], flops[i]
            )?;
        }
        writeln!(f, "{}", "-".repeat(header.len()))?;
        writeln!(f, "Input shape: {:?} (per example)", self.input_shape)?;
        writeln!(f, "Total params: {tp}")?;
        write!(f, "Total FLOPs per example: {tf}")
    }
}
