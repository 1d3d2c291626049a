//! Character-level language models (D2L 8.5, 8.6, 9.1, 9.2): the from-scratch RNN of 8.5
//! ([`RnnLmScratch`], the book's `RNNModelScratch`), the concise model of 8.6 that wraps
//! any recurrent layer ([`RnnLm`], the book's `RNNModel`: one-hot input, an `RNN`/`GRU`/
//! `LSTM` layer, `Linear(hidden·directions → vocab)` on the reshaped `(T·B, H)` output),
//! greedy generation from a prefix ([`predict_ch8`]), and the registry of the `char-*`
//! models that `d2l train` and `d2l models` use ([`char_models`]).
//!
//! Both models take token ids `X` of shape `[B, T]` and return logits `[T·B, V]` whose row
//! `t·B + b` is time `t` of sequence `b` — so the targets are `Yᵀ` flattened, as in the
//! book's `train_epoch_ch8`.
//!
//! | name | § | model | hidden | recipe |
//! |---|---|---|---|---|
//! | `char-rnn-scratch` | 8.5 | RNN from scratch (randn·0.01 weights, zero biases) | 512 | batch 32, 35 steps, lr 1, 500 epochs, clip 1 |
//! | `char-rnn` | 8.6 | `nn.RNN(28, 256)` + `Linear(256, 28)` | 256 | same |
//! | `char-gru` | 9.1 | `nn.GRU(28, 256)` + `Linear(256, 28)` | 256 | same |
//! | `char-lstm` | 9.2 | `nn.LSTM(28, 256)` + `Linear(256, 28)` | 256 | same |
//!
//! All train on the first 10,000 characters of *The Time Machine* (`max_tokens`) with SGD
//! and sequential partitioning unless random sampling is asked for.

use d2l_data::text::Vocab;
use d2l_nn::layers::Linear;
use d2l_nn::rnn::{one_hot, recurrent_layer, Recurrent, RnnMode, RnnOptions, RnnState};
use d2l_nn::Module;
use d2l_tensor::{no_grad, DType, Error, Result, Tensor};
use std::fmt;
use std::sync::Arc;

fn invalid(op: &'static str, msg: String) -> Error {
    Error::InvalidArgument { op, msg }
}

/// A language model over token ids with a recurrent state (what `train_ch8` and
/// `predict_ch8` need).
pub trait LanguageModel: Module {
    /// Logits `[T·B, V]` for token ids `x` `[B, T]` (`i64`) from `state` (the zero state
    /// when `None`), and the state after the last step.
    fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)>;

    /// The zero state for `batch_size` sequences (the book's `begin_state`).
    fn begin_state(&self, batch_size: usize) -> Result<RnnState>;

    /// The vocabulary size `V`.
    fn vocab_size(&self) -> usize;
}

fn check_tokens(op: &'static str, x: &Tensor) -> Result<()> {
    if x.rank() != 2 || x.dtype() != DType::I64 {
        return Err(Error::BadShape {
            op,
            msg: format!(
                "expected i64 token ids of shape [batch, num_steps], got {} of shape {:?}",
                x.dtype(),
                x.shape()
            ),
        });
    }
    if x.numel() == 0 {
        return Err(Error::BadShape {
            op,
            msg: format!("expected a non-empty batch, got shape {:?}", x.shape()),
        });
    }
    Ok(())
}

/// D2L 8.6's `RNNModel`: one-hot encoding of `Xᵀ` (time-major), a recurrent layer, and a
/// `Linear(hidden·directions → vocab)` applied to the output reshaped to `(T·B, H·D)`.
/// Parameters are named `rnn.*` and `linear.*` as in the book.
pub struct RnnLm {
    rnn: Arc<dyn Recurrent>,
    linear: Arc<Linear>,
    vocab_size: usize,
}

impl RnnLm {
    /// Wraps `rnn` (whose `input_size` must be the vocabulary size) with a fresh output
    /// layer.
    pub fn new(rnn: Arc<dyn Recurrent>, vocab_size: usize) -> Result<Self> {
        if rnn.input_size() != vocab_size {
            return Err(invalid(
                "RnnLm",
                format!(
                    "the recurrent layer takes {} inputs per step but the vocabulary has {vocab_size} tokens (the input is one-hot)",
                    rnn.input_size()
                ),
            ));
        }
        let linear = Linear::new(rnn.hidden_size() * rnn.num_directions(), vocab_size)?;
        Ok(RnnLm {
            rnn,
            linear: Arc::new(linear),
            vocab_size,
        })
    }

    /// A model around a one-layer layer of `mode` with `num_hiddens` units.
    pub fn with_mode(mode: RnnMode, vocab_size: usize, num_hiddens: usize) -> Result<Self> {
        Self::new(
            recurrent_layer(mode, vocab_size, num_hiddens, RnnOptions::default())?,
            vocab_size,
        )
    }

    /// The recurrent layer.
    pub fn rnn(&self) -> &Arc<dyn Recurrent> {
        &self.rnn
    }

    /// The output layer.
    pub fn linear(&self) -> &Linear {
        &self.linear
    }
}

impl LanguageModel for RnnLm {
    fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)> {
        check_tokens("RnnLm", x)?;
        let (b, t) = (x.shape()[0], x.shape()[1]);
        let batch_first = self.rnn.batch_first();
        let inputs = if batch_first {
            one_hot(x, self.vocab_size)?
        } else {
            one_hot(&x.t()?, self.vocab_size)?
        };
        let (y, state) = self.rnn.forward_with_state(&inputs, state)?;
        let y = if batch_first { y.transpose(0, 1)? } else { y };
        let width = y.shape()[2];
        let out = self.linear.forward(&y.reshape([t * b, width])?)?;
        Ok((out, state))
    }

    fn begin_state(&self, batch_size: usize) -> Result<RnnState> {
        self.rnn.begin_state(batch_size)
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

impl Module for RnnLm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_state(x, None)?.0)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        let rnn: Arc<dyn Module> = self.rnn.clone();
        vec![
            ("rnn".into(), rnn),
            ("linear".into(), self.linear.clone() as Arc<dyn Module>),
        ]
    }

    fn describe(&self) -> String {
        "RNNModel".into()
    }
}

/// D2L 8.5's `RNNModelScratch` with its `get_params`, `init_rnn_state` and `rnn`: weights
/// `W_xh [V, H]`, `W_hh [H, H]`, `W_hq [H, V]` drawn from N(0, 0.01²), zero biases `b_h`,
/// `b_q`, and a loop over time steps `H = tanh(X_t W_xh + H W_hh + b_h)`,
/// `Y_t = H W_hq + b_q` written with tensor operations (autograd does backpropagation
/// through time). The input products `X_t W_xh` of all steps are one matmul before the
/// loop and the outputs `Y_t` one after it — the same arithmetic as the book's loop.
pub struct RnnLmScratch {
    w_xh: Tensor,
    w_hh: Tensor,
    b_h: Tensor,
    w_hq: Tensor,
    b_q: Tensor,
    vocab_size: usize,
    num_hiddens: usize,
}

impl RnnLmScratch {
    /// The model with the book's initialisation from the global generator.
    pub fn new(vocab_size: usize, num_hiddens: usize) -> Result<Self> {
        if vocab_size == 0 || num_hiddens == 0 {
            return Err(invalid(
                "RnnLmScratch",
                format!("expected non-zero sizes, got vocab_size={vocab_size}, num_hiddens={num_hiddens}"),
            ));
        }
        let normal = |shape: &[usize]| -> Result<Tensor> {
            Tensor::randn(shape).mul_scalar(0.01)?.requires_grad_(true)
        };
        let zeros = |n: usize| Tensor::zeros(&[n]).requires_grad_(true);
        Ok(RnnLmScratch {
            w_xh: normal(&[vocab_size, num_hiddens])?,
            w_hh: normal(&[num_hiddens, num_hiddens])?,
            b_h: zeros(num_hiddens)?,
            w_hq: normal(&[num_hiddens, vocab_size])?,
            b_q: zeros(vocab_size)?,
            vocab_size,
            num_hiddens,
        })
    }

    /// Hidden units.
    pub fn num_hiddens(&self) -> usize {
        self.num_hiddens
    }
}

impl LanguageModel for RnnLmScratch {
    fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)> {
        check_tokens("RnnLmScratch", x)?;
        let (b, t) = (x.shape()[0], x.shape()[1]);
        let (v, hn) = (self.vocab_size, self.num_hiddens);
        let mut h = match state {
            None => Tensor::full_on(&[b, hn], 0.0, self.w_hh.dtype(), self.w_hh.device())?,
            Some(RnnState::Hidden(h)) if h.shape() == [1, b, hn] => h.reshape([b, hn])?,
            Some(RnnState::Hidden(h)) if h.shape() == [b, hn] => h.clone(),
            Some(s) => {
                return Err(Error::BadShape {
                    op: "RnnLmScratch",
                    msg: format!(
                    "expected a hidden state of shape [1, {b}, {hn}] (or [{b}, {hn}]), got {:?}",
                    s.h().shape()
                ),
                })
            }
        };
        // One-hot Xᵀ: [T, B, V]; the input projection of every step at once.
        let xw = one_hot(&x.t()?, v)?
            .reshape([t * b, v])?
            .matmul(&self.w_xh)?
            .reshape([t, b, hn])?;
        let mut hs = Vec::with_capacity(t);
        for step in 0..t {
            h = xw
                .select(0, step as isize)?
                .add(&h.matmul(&self.w_hh)?)?
                .add(&self.b_h)?
                .tanh()?;
            hs.push(h.clone());
        }
        let refs: Vec<&Tensor> = hs.iter().collect();
        let all = Tensor::cat(&refs, 0)?; // [T·B, H]
        let y = all.matmul(&self.w_hq)?.add(&self.b_q)?;
        Ok((y, RnnState::Hidden(h.reshape([1, b, hn])?)))
    }

    fn begin_state(&self, batch_size: usize) -> Result<RnnState> {
        // On the parameters' device, like the concise models' states.
        Ok(RnnState::Hidden(Tensor::full_on(
            &[1, batch_size, self.num_hiddens],
            0.0,
            self.w_hh.dtype(),
            self.w_hh.device(),
        )?))
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

impl Module for RnnLmScratch {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_state(x, None)?.0)
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        vec![
            ("W_xh".into(), self.w_xh.clone()),
            ("W_hh".into(), self.w_hh.clone()),
            ("b_h".into(), self.b_h.clone()),
            ("W_hq".into(), self.w_hq.clone()),
            ("b_q".into(), self.b_q.clone()),
        ]
    }

    fn describe(&self) -> String {
        format!(
            "RNNModelScratch(vocab_size={}, num_hiddens={})",
            self.vocab_size, self.num_hiddens
        )
    }
}

/// The book's `predict_ch8`: warms the state up on `prefix` (every character but the last
/// is fed, its prediction ignored), then appends `num_preds` characters chosen greedily
/// (argmax). Runs without autograd. Characters outside the vocabulary read as `<unk>`.
pub fn predict_ch8(
    prefix: &str,
    num_preds: usize,
    net: &dyn LanguageModel,
    vocab: &Vocab,
) -> Result<String> {
    let chars: Vec<String> = prefix.chars().map(|c| c.to_string()).collect();
    if chars.is_empty() {
        return Err(invalid("predict_ch8", "expected a non-empty prefix".into()));
    }
    no_grad(|| {
        let mut state = net.begin_state(1)?;
        // The tokens go to the model's device (where its state lives).
        let device = state.h().device();
        let mut outputs = vec![vocab.to_index(&chars[0])];
        let input = |id: usize| Tensor::from_vec(vec![id as i64], &[1, 1])?.to(device);
        for c in &chars[1..] {
            let (_, s) = net.forward_with_state(&input(*outputs.last().unwrap())?, Some(&state))?;
            state = s;
            outputs.push(vocab.to_index(c));
        }
        for _ in 0..num_preds {
            let (y, s) = net.forward_with_state(&input(*outputs.last().unwrap())?, Some(&state))?;
            state = s;
            let next = y.argmax(1, false)?.to_vec::<i64>()[0];
            outputs.push(next as usize);
        }
        Ok(outputs
            .iter()
            .map(|&i| vocab.to_token(i).unwrap_or("<unk>"))
            .collect())
    })
}

/// Which network a `char-*` model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharArch {
    /// [`RnnLmScratch`] (D2L 8.5).
    Scratch,
    /// [`RnnLm`] around a layer of this mode.
    Concise(RnnMode),
}

/// A character-level language model of the zoo with its book recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct CharModelInfo {
    /// Name used on the command line (`char-rnn`).
    pub name: &'static str,
    /// Book section.
    pub section: &'static str,
    /// One-line description.
    pub title: &'static str,
    /// The network.
    pub arch: CharArch,
    /// Hidden units (`num_hiddens`).
    pub num_hiddens: usize,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Time steps per sequence (`num_steps`).
    pub num_steps: usize,
    /// Learning rate of SGD.
    pub lr: f64,
    /// Epochs.
    pub epochs: usize,
    /// The global gradient-norm bound (`grad_clipping(net, 1)`).
    pub clip: f64,
    /// Characters of the corpus used (`max_tokens`).
    pub max_tokens: usize,
}

impl CharModelInfo {
    /// Builds the network for a vocabulary of `vocab_size` with `num_hiddens` units.
    pub fn build(&self, vocab_size: usize, num_hiddens: usize) -> Result<Arc<dyn LanguageModel>> {
        Ok(match self.arch {
            CharArch::Scratch => Arc::new(RnnLmScratch::new(vocab_size, num_hiddens)?),
            CharArch::Concise(mode) => Arc::new(RnnLm::with_mode(mode, vocab_size, num_hiddens)?),
        })
    }
}

impl fmt::Display for CharModelInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "time-machine[:{}] batch {} steps {} hidden {} sgd lr {} clip {}, {} epochs",
            self.max_tokens,
            self.batch_size,
            self.num_steps,
            self.num_hiddens,
            self.lr,
            self.clip,
            self.epochs
        )
    }
}

const fn char_model(
    name: &'static str,
    section: &'static str,
    title: &'static str,
    arch: CharArch,
    num_hiddens: usize,
) -> CharModelInfo {
    CharModelInfo {
        name,
        section,
        title,
        arch,
        num_hiddens,
        batch_size: 32,
        num_steps: 35,
        lr: 1.0,
        epochs: 500,
        clip: 1.0,
        max_tokens: d2l_data::seq::DEFAULT_MAX_TOKENS,
    }
}

/// Every `char-*` model, in book order.
pub fn char_models() -> Vec<CharModelInfo> {
    vec![
        char_model(
            "char-rnn-scratch",
            "8.5",
            "char RNN language model from scratch",
            CharArch::Scratch,
            512,
        ),
        char_model(
            "char-rnn",
            "8.6",
            "char RNN language model (nn.RNN)",
            CharArch::Concise(RnnMode::RnnTanh),
            256,
        ),
        char_model(
            "char-gru",
            "9.1",
            "char GRU language model (nn.GRU)",
            CharArch::Concise(RnnMode::Gru),
            256,
        ),
        char_model(
            "char-lstm",
            "9.2",
            "char LSTM language model (nn.LSTM)",
            CharArch::Concise(RnnMode::Lstm),
            256,
        ),
    ]
}

/// Looks a `char-*` model up by name; the error lists the known names.
pub fn find_char_model(name: &str) -> Result<CharModelInfo> {
    let all = char_models();
    all.iter().find(|m| m.name == name).cloned().ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|m| m.name).collect();
        invalid(
            "char model",
            format!("unknown model `{name}`; known: {}", names.join(", ")),
        )
    })
}

/// Whether `name` names a character-level language model.
pub fn is_char_model(name: &str) -> bool {
    char_models().iter().any(|m| m.name == name)
}
