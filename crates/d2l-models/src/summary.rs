//! Layer-by-layer summaries: the book's shape walk (D2L 6.6, 7.x — "for layer in net:
//! X = layer(X); print(layer.__class__.__name__, 'output shape:\t', X.shape)"), here for
//! the chapter 3–4 models (D2L 3.7, 4.3, 4.6), plus parameter and FLOP counts.
//!
//! # FLOP counting rule
//!
//! FLOPs are counted **per example** (the summary runs a batch of one), one multiply
//! and one add being two FLOPs:
//!
//! * `Linear(in, out)`: `2·in·out` per output row, plus `out` when it has a bias
//!   (a batch-1 input of more than two dims has several rows: `numel(output) / out`).
//! * Elementwise activations (`ReLU`, `Sigmoid`, `Tanh`, `GELU`, `LeakyReLU`) and
//!   `Softmax`: one FLOP per output element.
//! * Everything else (`Flatten`, `Dropout`, `Identity`, unknown layers): 0. Dropout is
//!   free at inference time, which is what the count describes.
//!
//! Convolution, pooling and normalisation rules will join when those layers do.

use d2l_nn::layers::{LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Tanh, GELU};
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

/// FLOPs per example of one layer that produced `output` (see the module docs).
fn layer_flops(layer: &dyn Module, output: &Tensor) -> u64 {
    let any = layer.as_any();
    let n = output.numel() as u64;
    if let Some(l) = any.downcast_ref::<Linear>() {
        let (out_f, in_f) = (l.weight.shape()[0] as u64, l.weight.shape()[1] as u64);
        let rows = n / out_f.max(1);
        let bias = if l.bias.is_some() { out_f } else { 0 };
        return rows * (2 * in_f * out_f + bias);
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

/// Runs a batch of one `input_shape` example (zeros) through `net` layer by layer under
/// `no_grad` and records each layer's output shape, parameters and FLOPs.
///
/// The train/eval mode is left as it is; the global random generator is saved and
/// restored, so dropout masks drawn here do not shift a seeded run.
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
    let x = Tensor::zeros(&shape);
    let saved = random::with_global(|g| g.clone());
    let outs = no_grad(|| net.forward_trace(&x));
    random::with_global(|g| *g = saved);
    let outs = outs?;
    let mut rows = Vec::with_capacity(outs.len());
    for (i, out) in outs.iter().enumerate() {
        let layer = net
            .get(i)
            .expect("forward_trace gives one output per layer");
        rows.push(LayerRow {
            name: i.to_string(),
            kind: layer.describe(),
            output_shape: out.shape().to_vec(),
            params: layer.num_parameters(),
            flops: layer_flops(layer.as_ref(), out),
        });
    }
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
        let w_layer = labels.iter().map(|s| s.len()).max().unwrap_or(0).max(5);
        let w_shape = shapes.iter().map(|s| s.len()).max().unwrap_or(0).max(12);
        let params: Vec<String> = self.rows.iter().map(|r| grouped(r.params as u64)).collect();
        let flops: Vec<String> = self.rows.iter().map(|r| grouped(r.flops)).collect();
        let tp = grouped(self.total_params as u64);
        let tf = grouped(self.total_flops);
        let w_params = params
            .iter()
            .map(|s| s.len())
            .chain([tp.len(), 6])
            .max()
            .unwrap_or(6);
        let w_flops = flops
            .iter()
            .map(|s| s.len())
            .chain([tf.len(), 5])
            .max()
            .unwrap_or(5);
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
