//! Parameter initialisation (D2L 4.8, 5.2.2), with PyTorch's fan and gain conventions.
//! Each function overwrites a parameter in place, so modules sharing it see the change.

use d2l_tensor::{no_grad, Error, Generator, Result, Tensor};

/// Runs `f` with the caller's generator or the global one.
fn sample(
    shape: &[usize],
    g: Option<&mut Generator>,
    f: impl FnOnce(&mut Generator, &[usize]) -> Result<Tensor>,
) -> Result<Tensor> {
    match g {
        Some(g) => f(g, shape),
        None => d2l_tensor::random::with_global(|g| f(g, shape)),
    }
}

fn write(p: &Tensor, v: &Tensor) -> Result<()> {
    no_grad(|| p.copy_(v))
}

/// (fan_in, fan_out) as PyTorch computes them: dims 1 and 0 times the receptive field.
pub fn fans(p: &Tensor) -> Result<(usize, usize)> {
    let s = p.shape();
    if s.len() < 2 {
        return Err(Error::InvalidArgument {
            op: "init",
            msg: format!("fan in and fan out need a tensor with at least 2 dims, got shape {s:?}"),
        });
    }
    let receptive: usize = s[2..].iter().product();
    Ok((s[1] * receptive, s[0] * receptive))
}

/// The recommended gain of a nonlinearity (`torch.nn.init.calculate_gain`).
pub fn calculate_gain(nonlinearity: &str, param: Option<f64>) -> Result<f64> {
    Ok(match nonlinearity {
        "linear" | "identity" | "conv1d" | "conv2d" | "conv3d" | "sigmoid" => 1.0,
        "tanh" => 5.0 / 3.0,
        "relu" => 2f64.sqrt(),
        "leaky_relu" => {
            let a = param.unwrap_or(0.01);
            (2.0 / (1.0 + a * a)).sqrt()
        }
        "selu" => 0.75,
        other => {
            return Err(Error::InvalidArgument {
                op: "calculate_gain",
                msg: format!("unsupported nonlinearity `{other}`"),
            })
        }
    })
}

/// Which fan Kaiming initialisation preserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// Preserve the forward variance (PyTorch's default).
    FanIn,
    /// Preserve the backward variance.
    FanOut,
}

/// Fills with N(mean, std²).
pub fn normal_(p: &Tensor, mean: f64, std: f64) -> Result<()> {
    let v = sample(p.shape(), None, |g, s| Tensor::normal_with(g, s, mean, std))?;
    write(p, &v)
}

/// Fills with U(lo, hi).
pub fn uniform_(p: &Tensor, lo: f64, hi: f64) -> Result<()> {
    let v = sample(p.shape(), None, |g, s| Tensor::uniform_with(g, s, lo, hi))?;
    write(p, &v)
}

/// Fills with U(lo, hi) drawn from `g`.
pub fn uniform_with_(p: &Tensor, lo: f64, hi: f64, g: &mut Generator) -> Result<()> {
    let v = Tensor::uniform_with(g, p.shape(), lo, hi)?;
    write(p, &v)
}

/// Fills with one value.
pub fn constant_(p: &Tensor, value: f64) -> Result<()> {
    no_grad(|| p.fill_(value))
}

/// Fills with zeros.
pub fn zeros_(p: &Tensor) -> Result<()> {
    constant_(p, 0.0)
}

/// Fills with ones.
pub fn ones_(p: &Tensor) -> Result<()> {
    constant_(p, 1.0)
}

/// Xavier/Glorot uniform (D2L 5.4.2.2): U(-a, a), a = gain·√(6 / (fan_in + fan_out)).
pub fn xavier_uniform_(p: &Tensor, gain: f64) -> Result<()> {
    let (fi, fo) = fans(p)?;
    let a = gain * (6.0 / (fi + fo) as f64).sqrt();
    uniform_(p, -a, a)
}

/// Xavier/Glorot normal: N(0, gain²·2 / (fan_in + fan_out)).
pub fn xavier_normal_(p: &Tensor, gain: f64) -> Result<()> {
    let (fi, fo) = fans(p)?;
    normal_(p, 0.0, gain * (2.0 / (fi + fo) as f64).sqrt())
}

fn kaiming_std(p: &Tensor, a: f64, mode: FanMode, nonlinearity: &str) -> Result<f64> {
    let (fi, fo) = fans(p)?;
    let fan = match mode {
        FanMode::FanIn => fi,
        FanMode::FanOut => fo,
    };
    if fan == 0 {
        return Err(Error::InvalidArgument {
            op: "kaiming init",
            msg: "the tensor has zero elements in its fan".into(),
        });
    }
    Ok(calculate_gain(nonlinearity, Some(a))? / (fan as f64).sqrt())
}

/// Kaiming/He uniform: U(-b, b), b = gain·√(3 / fan) (`a` is the leaky-ReLU slope).
pub fn kaiming_uniform_(p: &Tensor, a: f64, mode: FanMode, nonlinearity: &str) -> Result<()> {
    let b = 3f64.sqrt() * kaiming_std(p, a, mode, nonlinearity)?;
    uniform_(p, -b, b)
}

/// Kaiming/He normal: N(0, gain² / fan).
pub fn kaiming_normal_(p: &Tensor, a: f64, mode: FanMode, nonlinearity: &str) -> Result<()> {
    let std = kaiming_std(p, a, mode, nonlinearity)?;
    normal_(p, 0.0, std)
}

/// Sets a parameter from a function of its shape (the book's custom `my_init`).
pub fn custom_(p: &Tensor, f: impl FnOnce(&[usize]) -> Result<Tensor>) -> Result<()> {
    let v = f(p.shape())?;
    if v.shape() != p.shape() {
        return Err(Error::ShapeMismatch {
            op: "init::custom_",
            lhs: p.shape().to_vec(),
            rhs: v.shape().to_vec(),
            why: "must be equal: the init function returned the wrong shape".into(),
        });
    }
    write(p, &v)
}
