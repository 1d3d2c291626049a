// One file, over 1,000 lines, on purpose: the three layers share one parameter layout,
// one functional core (`functional::rnn_sequence`) and one custom backward, which must
// agree exactly with PyTorch's names and gate order; split, they would drift apart.
//! Recurrent layers (D2L 8.4–8.6, 9.1–9.4): [`RNN`] (tanh or ReLU), [`GRU`] and [`LSTM`]
//! with PyTorch's semantics — parameter names and layouts (`weight_ih_l{k}[_reverse]`,
//! `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`; GRU gates r, z, n with
//! `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`; LSTM gates i, f, g, o), the default
//! initialisation U(−1/√H, 1/√H), several layers, both directions, time-major
//! `[T, B, I]` or batch-first `[B, T, I]` input (or unbatched `[T, I]`), an initial state
//! in and the final state out — plus [`one_hot`], the input encoding of D2L 8.5.
//!
//! Each direction of each layer runs as one fused op ([`functional::rnn_sequence`]): the
//! input projection of all time steps is a single GEMM before the loop, each step one
//! `(B × H)·(H × G·H)` product and the gate arithmetic, and backpropagation through time is
//! a hand-written backward rule ([`Tensor::custom_op`]). The batch is split over the
//! engine's threads, which never meet inside the time loop.
//!
//! # The W4 training step (`d2l bench W4`)
//!
//! The peer benchmark's character-level RNN step (one-hot inside the step, `RNN(28 → 256)`
//! time-major with a zero state, `Linear(256 → 28)`, mean cross-entropy, backward, global
//! gradient clipping to 1, SGD with lr 0.1) is built from these public types; use
//! [`GRU`] in place of [`RNN`] for the GRU variant:
//!
//! ```
//! use d2l_nn::clip::clip_grad_norm_;
//! use d2l_nn::layers::Linear;
//! use d2l_nn::loss::cross_entropy;
//! use d2l_nn::optim::{Optimizer, Sgd};
//! use d2l_nn::rnn::{one_hot, Recurrent, RNN};
//! use d2l_nn::{Module, Tensor};
//! # fn main() -> d2l_nn::Result<()> {
//! let (batch, steps, vocab, hidden) = (4, 5, 28, 16); // W4: 32, 35, 28, 256
//! let rnn = RNN::new(vocab, hidden)?;
//! let head = Linear::new(hidden, vocab)?;
//! let mut params = rnn.parameters();
//! params.extend(head.parameters());
//! let mut opt = Sgd::new(params.clone(), 0.1)?;
//! // One synthetic batch: token ids [batch, steps] and targets, made once.
//! let ids: Vec<i64> = (0..batch * steps).map(|k| (k * 7 % vocab) as i64).collect();
//! let tokens = Tensor::from_vec(ids.clone(), &[batch, steps])?;
//! let targets = Tensor::from_vec(ids, &[steps * batch])?;
//! // The timed step:
//! opt.zero_grad();
//! let x = one_hot(&tokens.t()?, vocab)?; // [steps, batch, vocab], time-major
//! let (y, _state) = rnn.forward_with_state(&x, None)?; // zero initial state
//! let logits = head.forward(&y.reshape([steps * batch, hidden])?)?;
//! let loss = cross_entropy(&logits, &targets)?; // mean
//! loss.backward()?;
//! clip_grad_norm_(&params, 1.0)?;
//! opt.step()?;
//! # Ok(()) }
//! ```
//!
//! Targets are ordered like the reshaped output: row `t·B + b` is time `t` of sequence `b`
//! (so for token ids `Y [B, T]` the targets are `Yᵀ` flattened, as in D2L 8.6).

use crate::init;
use crate::layers::functional::dropout;
use crate::module::Module;
use d2l_tensor::fused::rnn::{self as kernel, Act, Cell, Dims, FwdIn, Need};
use d2l_tensor::{is_grad_enabled, BackwardFn, DType, Error, Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn invalid(op: &'static str, msg: String) -> Error {
    Error::InvalidArgument { op, msg }
}

fn bad_shape(op: &'static str, msg: String) -> Error {
    Error::BadShape { op, msg }
}

/// One-hot encoding of integer ids (`F.one_hot(x, n).float()`, D2L 8.5.1): an `i64`
/// tensor of any shape becomes an `f32` tensor with a trailing dimension of
/// `num_classes`. Every id must lie in `0..num_classes`.
pub fn one_hot(indices: &Tensor, num_classes: usize) -> Result<Tensor> {
    if indices.dtype() != DType::I64 {
        return Err(Error::DTypeMismatch {
            op: "one_hot",
            expected: "i64 class ids".into(),
            got: indices.dtype(),
        });
    }
    if num_classes == 0 {
        return Err(invalid(
            "one_hot",
            "expected num_classes >= 1, got 0".into(),
        ));
    }
    let ids = indices.to_vec::<i64>();
    let mut out = vec![0f32; ids.len() * num_classes];
    for (k, &id) in ids.iter().enumerate() {
        if id < 0 || id as usize >= num_classes {
            return Err(Error::IndexOutOfRange {
                op: "one_hot",
                index: id,
                size: num_classes,
            });
        }
        out[k * num_classes + id as usize] = 1.0;
    }
    let mut shape = indices.shape().to_vec();
    shape.push(num_classes);
    Tensor::from_vec(out, &shape)?.to(indices.device())
}

/// Which recurrent cell a layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RnnMode {
    /// Elman RNN with tanh (`nn.RNN`, the default).
    RnnTanh,
    /// Elman RNN with ReLU (`nn.RNN(nonlinearity='relu')`).
    RnnRelu,
    /// Gated recurrent unit (`nn.GRU`, D2L 9.1).
    Gru,
    /// Long short-term memory (`nn.LSTM`, D2L 9.2).
    Lstm,
}

impl RnnMode {
    /// How many gates are stacked in the weights (1, 3 for GRU, 4 for LSTM).
    pub fn num_gates(self) -> usize {
        self.cell().gates()
    }

    /// The PyTorch class name (`RNN`, `GRU`, `LSTM`).
    pub fn class_name(self) -> &'static str {
        match self {
            RnnMode::RnnTanh | RnnMode::RnnRelu => "RNN",
            RnnMode::Gru => "GRU",
            RnnMode::Lstm => "LSTM",
        }
    }

    fn cell(self) -> Cell {
        match self {
            RnnMode::RnnTanh => Cell::Tanh,
            RnnMode::RnnRelu => Cell::Relu,
            RnnMode::Gru => Cell::Gru,
            RnnMode::Lstm => Cell::Lstm,
        }
    }
}

/// The recurrent state: `h` of shape `[num_layers · num_directions, B, H]`, and for an
/// LSTM also the cell state `c` of the same shape (PyTorch's `h_n` / `(h_n, c_n)`).
#[derive(Clone, Debug)]
pub enum RnnState {
    /// The hidden state of an RNN or GRU.
    Hidden(Tensor),
    /// The hidden and cell states of an LSTM.
    Lstm {
        /// Hidden state.
        h: Tensor,
        /// Cell state.
        c: Tensor,
    },
}

impl RnnState {
    /// The hidden state.
    pub fn h(&self) -> &Tensor {
        match self {
            RnnState::Hidden(h) | RnnState::Lstm { h, .. } => h,
        }
    }

    /// The cell state (LSTM only).
    pub fn c(&self) -> Option<&Tensor> {
        match self {
            RnnState::Hidden(_) => None,
            RnnState::Lstm { c, .. } => Some(c),
        }
    }

    /// The same state cut from the graph (D2L 8.5's `state.detach_()` between sequential
    /// mini-batches).
    pub fn detach(&self) -> RnnState {
        match self {
            RnnState::Hidden(h) => RnnState::Hidden(h.detach()),
            RnnState::Lstm { h, c } => RnnState::Lstm {
                h: h.detach(),
                c: c.detach(),
            },
        }
    }

    /// Every tensor of the state (one, or two for an LSTM).
    pub fn tensors(&self) -> Vec<&Tensor> {
        match self {
            RnnState::Hidden(h) => vec![h],
            RnnState::Lstm { h, c } => vec![h, c],
        }
    }
}

/// The settings of a recurrent layer besides its sizes (PyTorch's keyword arguments).
#[derive(Clone, Debug, PartialEq)]
pub struct RnnOptions {
    /// Stacked layers (default 1).
    pub num_layers: usize,
    /// Whether the layers have `bias_ih` / `bias_hh` (default true).
    pub bias: bool,
    /// Input and output as `[B, T, ·]` instead of `[T, B, ·]` (default false).
    pub batch_first: bool,
    /// Dropout on the outputs of every layer but the last, in training mode (default 0).
    pub dropout: f64,
    /// A second, reversed direction per layer (default false).
    pub bidirectional: bool,
}

impl Default for RnnOptions {
    fn default() -> Self {
        RnnOptions {
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
        }
    }
}

impl RnnOptions {
    /// Sets the number of stacked layers.
    pub fn num_layers(mut self, n: usize) -> Self {
        self.num_layers = n;
        self
    }
    /// Sets whether there are biases.
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }
    /// Sets batch-first input and output.
    pub fn batch_first(mut self, on: bool) -> Self {
        self.batch_first = on;
        self
    }
    /// Sets the dropout between layers.
    pub fn dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self
    }
    /// Sets bidirectionality.
    pub fn bidirectional(mut self, on: bool) -> Self {
        self.bidirectional = on;
        self
    }
}

/// The output of one direction of one layer ([`functional::rnn_sequence`]).
#[derive(Clone, Debug)]
pub struct SeqOutput {
    /// The hidden state of every step, `[T, B, H]` (in time order also when reversed).
    pub output: Tensor,
    /// The final hidden state `[B, H]` (time 0's for a reversed direction).
    pub h_n: Tensor,
    /// The final cell state `[B, H]` (LSTM only).
    pub c_n: Option<Tensor>,
}

/// Functional forms: one direction of one layer with explicit weights.
pub mod functional {
    use super::*;

    /// Runs one direction of one recurrent layer over a time-major sequence `x`
    /// `[T, B, I]` with weights `w_ih [G·H, I]`, `w_hh [G·H, H]`, optional biases `[G·H]`,
    /// and optional initial states `h0`, `c0` (`[B, H]`, zeros when absent; `c0` only for
    /// an LSTM). `reverse` walks from the last step to the first. All float tensors must
    /// share one dtype (f32 or f64). Differentiable in every tensor argument.
    #[allow(clippy::too_many_arguments)]
    pub fn rnn_sequence(
        mode: RnnMode,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        w_ih: &Tensor,
        w_hh: &Tensor,
        b_ih: Option<&Tensor>,
        b_hh: Option<&Tensor>,
        reverse: bool,
    ) -> Result<SeqOutput> {
        const OP: &str = "rnn_sequence";
        if x.rank() != 3 {
            return Err(bad_shape(
                OP,
                format!(
                    "expected a time-major input [T, B, I] (rank 3), got shape {:?}",
                    x.shape()
                ),
            ));
        }
        let (t, b, i) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        if t == 0 || b == 0 {
            return Err(bad_shape(
                OP,
                format!(
                    "expected at least one time step and one sequence, got shape {:?}",
                    x.shape()
                ),
            ));
        }
        let g = mode.num_gates();
        if w_hh.rank() != 2 || !w_hh.shape()[0].is_multiple_of(g) || w_hh.shape()[0] == 0 {
            return Err(bad_shape(
                OP,
                format!(
                    "expected weight_hh of shape [{g}·H, H], got {:?}",
                    w_hh.shape()
                ),
            ));
        }
        let h = w_hh.shape()[0] / g;
        let expect = |name: &str, t: &Tensor, shape: &[usize]| -> Result<()> {
            if t.shape() != shape {
                return Err(bad_shape(
                    OP,
                    format!("expected {name} of shape {shape:?}, got {:?}", t.shape()),
                ));
            }
            Ok(())
        };
        expect("weight_hh", w_hh, &[g * h, h])?;
        expect("weight_ih", w_ih, &[g * h, i])?;
        if let Some(bb) = b_ih {
            expect("bias_ih", bb, &[g * h])?;
        }
        if let Some(bb) = b_hh {
            expect("bias_hh", bb, &[g * h])?;
        }
        if let Some(s) = h0 {
            expect("the initial hidden state", s, &[b, h])?;
        }
        if let Some(s) = c0 {
            if mode != RnnMode::Lstm {
                return Err(invalid(
                    OP,
                    format!("a cell state is only for an LSTM, got one for {mode:?}"),
                ));
            }
            expect("the initial cell state", s, &[b, h])?;
        }
        let dt = x.dtype();
        let all: Vec<(&str, &Tensor)> = [
            Some(("weight_ih", w_ih)),
            Some(("weight_hh", w_hh)),
            b_ih.map(|t| ("bias_ih", t)),
            b_hh.map(|t| ("bias_hh", t)),
            h0.map(|t| ("h0", t)),
            c0.map(|t| ("c0", t)),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (name, t) in &all {
            if t.dtype() != dt {
                return Err(Error::DTypeMismatch {
                    op: OP,
                    expected: format!("{name} with the input's dtype {dt}"),
                    got: t.dtype(),
                });
            }
            if t.device() != x.device() {
                return Err(Error::DeviceMismatch {
                    op: OP,
                    lhs: x.device(),
                    rhs: t.device(),
                });
            }
        }
        let a = SeqArgs {
            mode,
            dims: Dims { t, b, i, h },
            x,
            h0,
            c0,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            reverse,
        };
        match dt {
            DType::F32 => seq_typed::<f32>(&a),
            DType::F64 => seq_typed::<f64>(&a),
            d => Err(Error::DTypeMismatch {
                op: OP,
                expected: "a float input (f32 or f64)".into(),
                got: d,
            }),
        }
    }
}

struct SeqArgs<'a> {
    mode: RnnMode,
    dims: Dims,
    x: &'a Tensor,
    h0: Option<&'a Tensor>,
    c0: Option<&'a Tensor>,
    w_ih: &'a Tensor,
    w_hh: &'a Tensor,
    b_ih: Option<&'a Tensor>,
    b_hh: Option<&'a Tensor>,
    reverse: bool,
}

/// The tensors a direction's backward rule keeps.
struct Saved<T> {
    x: Vec<T>,
    h0: Option<Vec<T>>,
    c0: Option<Vec<T>>,
    w_ih: Vec<T>,
    w_hh: Vec<T>,
    fwd: kernel::FwdOut<T>,
}

fn seq_typed<T: Act>(a: &SeqArgs) -> Result<SeqOutput> {
    let Dims { t, b, h, .. } = a.dims;
    let cell = a.mode.cell();
    let lstm = cell == Cell::Lstm;
    // The fused kernel runs on host copies of the inputs (all on one device, checked by
    // `rnn_sequence`); the output and the gradients go back to that device.
    let device = a.x.device();
    let read = |x: &Tensor| x.to_vec::<T>();
    let x = read(a.x);
    let h0 = a.h0.map(read);
    let c0 = a.c0.map(read);
    let w_ih = read(a.w_ih);
    let w_hh = read(a.w_hh);
    let b_ih = a.b_ih.map(read);
    let b_hh = a.b_hh.map(read);
    let fin = FwdIn {
        cell,
        reverse: a.reverse,
        dims: a.dims,
        x: &x,
        h0: h0.as_deref(),
        c0: c0.as_deref(),
        w_ih: &w_ih,
        w_hh: &w_hh,
        b_ih: b_ih.as_deref(),
        b_hh: b_hh.as_deref(),
    };
    let mut fwd = kernel::forward(&fin);
    let e = lstm as usize;
    let out_shape = [t + e, b, h];

    let mut inputs: Vec<&Tensor> = vec![a.x];
    inputs.extend(a.h0);
    inputs.extend(a.c0);
    inputs.push(a.w_ih);
    inputs.push(a.w_hh);
    inputs.extend(a.b_ih);
    inputs.extend(a.b_hh);
    let tracks = is_grad_enabled() && inputs.iter().any(|x| x.requires_grad());
    let full = if tracks {
        let rg = |x: Option<&Tensor>| x.is_some_and(|x| x.requires_grad());
        let need = Need {
            x: rg(Some(a.x)),
            h0: rg(a.h0),
            c0: rg(a.c0),
            w_ih: rg(Some(a.w_ih)),
            w_hh: rg(Some(a.w_hh)),
            b_ih: rg(a.b_ih),
            b_hh: rg(a.b_hh),
        };
        let value = Tensor::from_vec(std::mem::take(&mut fwd.out), &out_shape)?.to(device)?;
        let saved_out = value.clone();
        let saved = Saved {
            x,
            h0,
            c0,
            w_ih,
            w_hh,
            fwd,
        };
        let (has_h0, has_c0, has_bih, has_bhh) = (
            a.h0.is_some(),
            a.c0.is_some(),
            a.b_ih.is_some(),
            a.b_hh.is_some(),
        );
        let (reverse, dims) = (a.reverse, a.dims);
        let backward: BackwardFn = Arc::new(move |g: &Tensor| {
            // The output gradient, read in place when it is contiguous and of type T.
            let g = if g.dtype() == T::DTYPE {
                g.clone()
            } else {
                g.to_dtype(T::DTYPE)?
            };
            let grads = g.with_slice::<T, _>(|g| {
                saved_out.with_slice::<T, _>(|out| {
                    let fin = FwdIn {
                        cell,
                        reverse,
                        dims,
                        x: &saved.x,
                        h0: saved.h0.as_deref(),
                        c0: saved.c0.as_deref(),
                        w_ih: &saved.w_ih,
                        w_hh: &saved.w_hh,
                        b_ih: None,
                        b_hh: None,
                    };
                    let view = kernel::FwdView {
                        out,
                        gates: &saved.fwd.gates,
                        aux: &saved.fwd.aux,
                        aux2: &saved.fwd.aux2,
                    };
                    kernel::backward(&fin, &view, g, need)
                })
            })??;
            let gh = cell.gates() * dims.h;
            let mk = |v: Option<Vec<T>>, shape: &[usize]| -> Result<Option<Tensor>> {
                v.map(|v| Tensor::from_vec(v, shape)?.to(device))
                    .transpose()
            };
            let mut res = vec![mk(grads.x, &[dims.t, dims.b, dims.i])?];
            if has_h0 {
                res.push(mk(grads.h0, &[dims.b, dims.h])?);
            }
            if has_c0 {
                res.push(mk(grads.c0, &[dims.b, dims.h])?);
            }
            res.push(mk(grads.w_ih, &[gh, dims.i])?);
            res.push(mk(grads.w_hh, &[gh, dims.h])?);
            if has_bih {
                res.push(mk(grads.b_ih, &[gh])?);
            }
            if has_bhh {
                res.push(mk(grads.b_hh, &[gh])?);
            }
            Ok(res)
        });
        Tensor::custom_op(value, &inputs, backward)
    } else {
        Tensor::from_vec(fwd.out, &out_shape)?.to(device)?
    };
    let output = if lstm {
        full.narrow(0, 0, t)?
    } else {
        full.clone()
    };
    let last = if a.reverse { 0 } else { t as isize - 1 };
    let h_n = output.select(0, last)?;
    let c_n = if lstm {
        Some(full.select(0, t as isize)?)
    } else {
        None
    };
    Ok(SeqOutput { output, h_n, c_n })
}

/// What every recurrent layer offers beyond [`Module`]: a forward pass with an explicit
/// state, and the zero state to start from (D2L 8.6's `RNNModel` is generic over it).
pub trait Recurrent: Module {
    /// Runs the layer over `x` (`[T, B, I]`, or `[B, T, I]` when batch-first, or unbatched
    /// `[T, I]`) from `state` (zeros when `None`); returns the output of the last layer at
    /// every step (`[T, B, D·H]` / `[B, T, D·H]` / `[T, D·H]`) and the final state
    /// (`[L·D, B, H]`, or `[L·D, H]` unbatched).
    fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)>;

    /// The zero state for `batch_size` sequences (`begin_state` in D2L 8.6).
    fn begin_state(&self, batch_size: usize) -> Result<RnnState>;

    /// The cell the layer runs.
    fn mode(&self) -> RnnMode;

    /// Input features per step.
    fn input_size(&self) -> usize;

    /// Hidden units per direction.
    fn hidden_size(&self) -> usize;

    /// Stacked layers.
    fn num_layers(&self) -> usize;

    /// 2 when bidirectional, else 1.
    fn num_directions(&self) -> usize;

    /// Whether input and output are batch-first.
    fn batch_first(&self) -> bool;
}

/// The shared body of [`RNN`], [`GRU`] and [`LSTM`].
struct RnnBase {
    mode: RnnMode,
    input_size: usize,
    hidden_size: usize,
    opts: RnnOptions,
    /// Per (layer, direction): weight_ih, weight_hh, bias_ih, bias_hh.
    weights: Vec<[Option<Tensor>; 4]>,
    training: AtomicBool,
}

impl RnnBase {
    fn new(mode: RnnMode, input_size: usize, hidden_size: usize, opts: RnnOptions) -> Result<Self> {
        let op = mode.class_name();
        let op: &'static str = match op {
            "RNN" => "RNN",
            "GRU" => "GRU",
            _ => "LSTM",
        };
        if input_size == 0 || hidden_size == 0 || opts.num_layers == 0 {
            return Err(invalid(
                op,
                format!(
                    "expected non-zero sizes, got input_size={input_size}, hidden_size={hidden_size}, num_layers={}",
                    opts.num_layers
                ),
            ));
        }
        if !(0.0..1.0).contains(&opts.dropout) {
            return Err(invalid(
                op,
                format!("expected dropout in [0, 1), got {}", opts.dropout),
            ));
        }
        let g = mode.num_gates();
        let dirs = if opts.bidirectional { 2 } else { 1 };
        let bound = 1.0 / (hidden_size as f64).sqrt();
        let mut weights = Vec::new();
        for l in 0..opts.num_layers {
            let in_l = if l == 0 {
                input_size
            } else {
                hidden_size * dirs
            };
            for _ in 0..dirs {
                let mk = |shape: &[usize]| -> Result<Tensor> {
                    let p = Tensor::zeros(shape).requires_grad_(true)?;
                    init::uniform_(&p, -bound, bound)?;
                    Ok(p)
                };
                let w_ih = mk(&[g * hidden_size, in_l])?;
                let w_hh = mk(&[g * hidden_size, hidden_size])?;
                let (b_ih, b_hh) = if opts.bias {
                    (Some(mk(&[g * hidden_size])?), Some(mk(&[g * hidden_size])?))
                } else {
                    (None, None)
                };
                weights.push([Some(w_ih), Some(w_hh), b_ih, b_hh]);
            }
        }
        Ok(RnnBase {
            mode,
            input_size,
            hidden_size,
            opts,
            weights,
            training: AtomicBool::new(true),
        })
    }

    fn dirs(&self) -> usize {
        if self.opts.bidirectional {
            2
        } else {
            1
        }
    }

    fn op(&self) -> &'static str {
        match self.mode {
            RnnMode::RnnTanh | RnnMode::RnnRelu => "RNN",
            RnnMode::Gru => "GRU",
            RnnMode::Lstm => "LSTM",
        }
    }

    fn params(&self) -> Vec<(String, Tensor)> {
        let dirs = self.dirs();
        let mut out = Vec::new();
        for (k, w) in self.weights.iter().enumerate() {
            let (l, d) = (k / dirs, k % dirs);
            let sfx = if d == 1 { "_reverse" } else { "" };
            for (name, t) in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
                .iter()
                .zip(w)
            {
                if let Some(t) = t {
                    out.push((format!("{name}_l{l}{sfx}"), t.clone()));
                }
            }
        }
        out
    }

    fn state_shape(&self, batch: Option<usize>) -> Vec<usize> {
        let ld = self.opts.num_layers * self.dirs();
        match batch {
            Some(b) => vec![ld, b, self.hidden_size],
            None => vec![ld, self.hidden_size],
        }
    }

    fn begin_state(&self, batch: usize) -> Result<RnnState> {
        if batch == 0 {
            return Err(invalid(
                self.op(),
                "begin_state: expected a batch size >= 1, got 0".into(),
            ));
        }
        // Zeros with the weights' dtype, on the weights' device.
        let (dt, dev) = self.weights[0][0]
            .as_ref()
            .map_or((DType::F32, d2l_tensor::Device::Cpu), |w| {
                (w.dtype(), w.device())
            });
        let z = || Tensor::full_on(&self.state_shape(Some(batch)), 0.0, dt, dev);
        Ok(match self.mode {
            RnnMode::Lstm => RnnState::Lstm { h: z()?, c: z()? },
            _ => RnnState::Hidden(z()?),
        })
    }

    fn check_state(&self, state: &RnnState, batch: Option<usize>) -> Result<()> {
        let op = self.op();
        let want = self.state_shape(batch);
        match (self.mode, state) {
            (RnnMode::Lstm, RnnState::Hidden(_)) => {
                return Err(invalid(
                    op,
                    "expected an LSTM state (h, c), got a hidden state alone".into(),
                ))
            }
            (RnnMode::Lstm, _) => {}
            (_, RnnState::Lstm { .. }) => {
                return Err(invalid(
                    op,
                    format!("expected a hidden state alone, got an LSTM state (h, c) for {op}"),
                ))
            }
            _ => {}
        }
        for (name, t) in ["hidden state", "cell state"].iter().zip(state.tensors()) {
            if t.shape() != want.as_slice() {
                return Err(bad_shape(
                    op,
                    format!(
                        "expected the initial {name} of shape {want:?} ([num_layers·num_directions, batch, hidden]), got {:?}",
                        t.shape()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)> {
        let op = self.op();
        let unbatched = match x.rank() {
            2 => true,
            3 => false,
            r => {
                return Err(bad_shape(
                    op,
                    format!(
                        "expected an input of rank 3 ([T, B, {}] or batch-first [B, T, {}]) or 2 (unbatched [T, {}]), got shape {:?} (rank {r})",
                        self.input_size, self.input_size, self.input_size, x.shape()
                    ),
                ))
            }
        };
        if x.shape()[x.rank() - 1] != self.input_size {
            return Err(bad_shape(
                op,
                format!(
                    "expected input_size = {} features in the last dim, got shape {:?}",
                    self.input_size,
                    x.shape()
                ),
            ));
        }
        // Time-major, batched.
        let xt = if unbatched {
            x.unsqueeze(1)?
        } else if self.opts.batch_first {
            x.transpose(0, 1)?
        } else {
            x.clone()
        };
        let (t, b) = (xt.shape()[0], xt.shape()[1]);
        if let Some(s) = state {
            self.check_state(s, (!unbatched).then_some(b))?;
        }
        let st = |k: usize, c: bool| -> Result<Option<Tensor>> {
            let Some(s) = state else { return Ok(None) };
            let src = if c { s.c() } else { Some(s.h()) };
            let Some(src) = src else { return Ok(None) };
            let one = src.select(0, k as isize)?;
            Ok(Some(if unbatched { one.unsqueeze(0)? } else { one }))
        };
        if t == 0 {
            return Err(bad_shape(
                op,
                format!("expected at least one time step, got shape {:?}", x.shape()),
            ));
        }
        let dirs = self.dirs();
        let lstm = self.mode == RnnMode::Lstm;
        let mut layer_in = if xt.is_contiguous() {
            xt
        } else {
            xt.contiguous()?
        };
        let (mut hs, mut cs) = (Vec::new(), Vec::new());
        for l in 0..self.opts.num_layers {
            let mut outs = Vec::with_capacity(dirs);
            for d in 0..dirs {
                let k = l * dirs + d;
                let [w_ih, w_hh, b_ih, b_hh] = &self.weights[k];
                let h0 = st(k, false)?;
                let c0 = if lstm { st(k, true)? } else { None };
                let r = functional::rnn_sequence(
                    self.mode,
                    &layer_in,
                    h0.as_ref(),
                    c0.as_ref(),
                    w_ih.as_ref().expect("weights are always present"),
                    w_hh.as_ref().expect("weights are always present"),
                    b_ih.as_ref(),
                    b_hh.as_ref(),
                    d == 1,
                )?;
                outs.push(r.output);
                hs.push(r.h_n);
                if let Some(c) = r.c_n {
                    cs.push(c);
                }
            }
            layer_in = if dirs == 1 {
                outs.pop().expect("one direction")
            } else {
                Tensor::cat(&[&outs[0], &outs[1]], 2)?
            };
            if self.opts.dropout > 0.0 && l + 1 < self.opts.num_layers {
                layer_in = dropout(
                    &layer_in,
                    self.opts.dropout,
                    self.training.load(Ordering::Relaxed),
                )?;
            }
        }
        let stack = |v: &[Tensor]| -> Result<Tensor> {
            let refs: Vec<&Tensor> = v.iter().collect();
            let s = Tensor::stack(&refs, 0)?;
            if unbatched {
                s.squeeze(1)
            } else {
                Ok(s)
            }
        };
        let h_n = stack(&hs)?;
        let state = if lstm {
            RnnState::Lstm {
                h: h_n,
                c: stack(&cs)?,
            }
        } else {
            RnnState::Hidden(h_n)
        };
        let out = if unbatched {
            layer_in.squeeze(1)?
        } else if self.opts.batch_first {
            layer_in.transpose(0, 1)?
        } else {
            layer_in
        };
        Ok((out, state))
    }

    fn describe(&self) -> String {
        let mut s = format!("{}({}, {}", self.op(), self.input_size, self.hidden_size);
        let o = &self.opts;
        if o.num_layers != 1 {
            s.push_str(&format!(", num_layers={}", o.num_layers));
        }
        if self.mode == RnnMode::RnnRelu {
            s.push_str(", nonlinearity='relu'");
        }
        if !o.bias {
            s.push_str(", bias=False");
        }
        if o.batch_first {
            s.push_str(", batch_first=True");
        }
        if o.dropout > 0.0 {
            s.push_str(&format!(", dropout={}", o.dropout));
        }
        if o.bidirectional {
            s.push_str(", bidirectional=True");
        }
        s.push(')');
        s
    }
}

macro_rules! recurrent_layer {
    ($(#[$doc:meta])* $name:ident, $mode:expr) => {
        $(#[$doc])*
        pub struct $name {
            base: RnnBase,
        }

        impl $name {
            /// A one-layer, unidirectional, time-major layer with biases.
            pub fn new(input_size: usize, hidden_size: usize) -> Result<Self> {
                Self::with_options(input_size, hidden_size, RnnOptions::default())
            }

            /// A layer with the given options, initialised U(−1/√H, 1/√H) from the
            /// global generator (`manual_seed`).
            pub fn with_options(
                input_size: usize,
                hidden_size: usize,
                opts: RnnOptions,
            ) -> Result<Self> {
                Ok($name {
                    base: RnnBase::new($mode, input_size, hidden_size, opts)?,
                })
            }

            /// The options the layer was built with.
            pub fn options(&self) -> &RnnOptions {
                &self.base.opts
            }

            /// The weights of layer `layer`, direction `direction` (0 forward, 1 reverse):
            /// `[weight_ih, weight_hh, bias_ih, bias_hh]` (biases `None` without bias).
            pub fn weights(&self, layer: usize, direction: usize) -> Option<&[Option<Tensor>; 4]> {
                if direction >= self.base.dirs() {
                    return None;
                }
                self.base.weights.get(layer * self.base.dirs() + direction)
            }
        }

        impl Module for $name {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                Ok(self.base.forward_with_state(x, None)?.0)
            }

            fn parameters_local(&self) -> Vec<(String, Tensor)> {
                self.base.params()
            }

            fn set_training_local(&self, training: bool) {
                self.base.training.store(training, Ordering::Relaxed);
            }

            fn describe(&self) -> String {
                self.base.describe()
            }
        }

        impl Recurrent for $name {
            fn forward_with_state(
                &self,
                x: &Tensor,
                state: Option<&RnnState>,
            ) -> Result<(Tensor, RnnState)> {
                self.base.forward_with_state(x, state)
            }
            fn begin_state(&self, batch_size: usize) -> Result<RnnState> {
                self.base.begin_state(batch_size)
            }
            fn mode(&self) -> RnnMode {
                self.base.mode
            }
            fn input_size(&self) -> usize {
                self.base.input_size
            }
            fn hidden_size(&self) -> usize {
                self.base.hidden_size
            }
            fn num_layers(&self) -> usize {
                self.base.opts.num_layers
            }
            fn num_directions(&self) -> usize {
                self.base.dirs()
            }
            fn batch_first(&self) -> bool {
                self.base.opts.batch_first
            }
        }
    };
}

recurrent_layer!(
    /// An Elman RNN layer (`nn.RNN`, D2L 8.4 / 8.6): `h_t = tanh(W_ih x_t + b_ih + W_hh
    /// h_{t−1} + b_hh)`, or ReLU with [`RNN::with_relu`].
    RNN,
    RnnMode::RnnTanh
);
recurrent_layer!(
    /// A gated recurrent unit layer (`nn.GRU`, D2L 9.1).
    GRU,
    RnnMode::Gru
);
recurrent_layer!(
    /// A long short-term memory layer (`nn.LSTM`, D2L 9.2); its state is `(h, c)`.
    LSTM,
    RnnMode::Lstm
);

impl RNN {
    /// An RNN layer with ReLU in place of tanh (`nonlinearity='relu'`).
    pub fn with_relu(input_size: usize, hidden_size: usize, opts: RnnOptions) -> Result<Self> {
        Ok(RNN {
            base: RnnBase::new(RnnMode::RnnRelu, input_size, hidden_size, opts)?,
        })
    }
}

/// Builds a layer of any mode behind the [`Recurrent`] trait.
pub fn recurrent_layer(
    mode: RnnMode,
    input_size: usize,
    hidden_size: usize,
    opts: RnnOptions,
) -> Result<Arc<dyn Recurrent>> {
    Ok(match mode {
        RnnMode::RnnTanh => Arc::new(RNN::with_options(input_size, hidden_size, opts)?),
        RnnMode::RnnRelu => Arc::new(RNN::with_relu(input_size, hidden_size, opts)?),
        RnnMode::Gru => Arc::new(GRU::with_options(input_size, hidden_size, opts)?),
        RnnMode::Lstm => Arc::new(LSTM::with_options(input_size, hidden_size, opts)?),
    })
}
