//! D2L 3.4's parameterised hypercomplex multiplication (PHM) layer in the 4.3 MLP: the
//! `784 → 256` hidden layer as a [`PhmLinear`] with `n` Kronecker terms, so its weight
//! matrix `W = Σᵢ Aᵢ ⊗ Sᵢ` costs `n³ + dq/n` parameters instead of `dq`. The output layer
//! stays a dense `Linear(256, 10)` (10 classes are not divisible by 4 or 8).

use crate::zoo::BuildConfig;
use d2l_nn::init;
use d2l_nn::layers::{Flatten, Linear, PhmLinear, ReLU};
use d2l_nn::Sequential;
use d2l_tensor::{Error, Result};

/// `Flatten, PhmLinear(784, 256, n), ReLU, Linear(256, 10)`: the 4.3 MLP with a PHM hidden
/// layer (its own initialisation, see [`PhmLinear::new`]); the output layer is
/// initialised `N(0, 0.01²)` as the book's MLP. `n = 1` is a dense layer with one extra
/// scalar. The input features and the hidden width must be divisible by `n`.
pub fn mlp_phm(cfg: &BuildConfig, n: usize) -> Result<Sequential> {
    let (d, h) = (cfg.in_features(), cfg.hidden(256));
    if n == 0 || d % n != 0 || h % n != 0 {
        return Err(Error::InvalidArgument {
            op: "mlp_phm",
            msg: format!(
                "the PHM layer needs its {d} input features and {h} hidden units divisible by n = {n}"
            ),
        });
    }
    let out = Linear::new(h, cfg.num_outputs)?;
    init::normal_(&out.weight, 0.0, 0.01)?;
    Ok(Sequential::new()
        .add(Flatten::new())
        .add(PhmLinear::new(d, h, n)?)
        .add(ReLU)
        .add(out))
}

/// The parameter count of [`mlp_phm`] for `d` inputs, `h` hidden units, `c` classes:
/// `n³ + d·h/n + h` (PHM layer) `+ h·c + c` (output layer).
pub fn mlp_phm_parameters(d: usize, h: usize, c: usize, n: usize) -> usize {
    n * n * n + d * h / n.max(1) + h + h * c + c
}
