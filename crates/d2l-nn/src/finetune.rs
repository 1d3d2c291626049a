//! Fine-tuning (D2L 13.2): choose parameters by name pattern, freeze them, and give groups
//! of them their own learning rate and weight decay — the book trains the new output layer
//! with 10× the learning rate of the pretrained body:
//!
//! ```python
//! params_1x = [p for name, p in net.named_parameters() if name not in ["fc.weight", "fc.bias"]]
//! trainer = torch.optim.SGD([{'params': params_1x}, {'params': net.fc.parameters(), 'lr': lr * 10}],
//!                           lr=lr, weight_decay=0.001)
//! ```
//!
//! Patterns are dotted parameter names in which `*` matches any run of characters (dots
//! included): `fc.*` is the head of a torchvision ResNet, `layer1.*` its first stage,
//! `*.bias` every bias, `*bn*` every batch-norm parameter.
//!
//! This module is the mechanism only. The 13.2 recipe built on it — loading a pretrained
//! network, replacing its head, the head/body SGD, the summed-to-mean loss conversion and
//! training — has one home, `d2l_book::finetune` (`crates/d2l-book/src/finetune.rs`, which
//! also holds the offline `d2l finetune-demo` experiment); `d2l finetune`
//! (`crates/d2l-cli/src/commands/finetune.rs`) is its command line.
//!
//! ```
//! use d2l_nn::finetune::{head_and_body_groups, matches};
//! use d2l_nn::layers::Linear;
//! use d2l_nn::Sequential;
//! # fn main() -> d2l_nn::Result<()> {
//! assert!(matches("fc.*", "fc.weight") && matches("*.bias", "layer1.0.conv1.bias"));
//! let mut net = Sequential::new();
//! net.push(Linear::new(4, 8)?);
//! net.push(Linear::new(8, 2)?);
//! let groups = head_and_body_groups(&net, &["1.*"], 5e-5, 10.0)?;
//! assert_eq!(groups[1].lr, Some(5e-4)); // the head: 10× the body's rate
//! # Ok(()) }
//! ```

use crate::module::Module;
use crate::optim::ParamGroup;
use d2l_tensor::{Error, Result, Tensor};

/// Named parameters, as [`Module::named_parameters`] lists them.
pub type NamedParams = Vec<(String, Tensor)>;

/// Whether `name` matches the glob `pattern` (`*` matches any characters, dots included;
/// everything else literally).
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    // Classic greedy glob with backtracking to the last star.
    let (mut i, mut j) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while j < s.len() {
        if i < p.len() && p[i] != '*' && p[i] == s[j] {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(st) = star {
            i = st + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// The named parameters of `module` matching any of `patterns`, and the rest, in the
/// module's order. A pattern that matches nothing is an error naming it (a typo would
/// otherwise silently train or freeze the wrong layers).
pub fn split_by_patterns(
    module: &dyn Module,
    patterns: &[&str],
) -> Result<(NamedParams, NamedParams)> {
    let named = module.named_parameters();
    for pat in patterns {
        if !named.iter().any(|(n, _)| matches(pat, n)) {
            let some: Vec<&str> = named.iter().take(6).map(|(n, _)| n.as_str()).collect();
            return Err(Error::InvalidArgument {
                op: "finetune",
                msg: format!(
                    "the pattern `{pat}` matches no parameter (names look like {}{})",
                    some.join(", "),
                    if named.len() > some.len() {
                        ", …"
                    } else {
                        ""
                    }
                ),
            });
        }
    }
    Ok(named
        .into_iter()
        .partition(|(n, _)| patterns.iter().any(|p| matches(p, n))))
}

/// Freezes (`requires_grad = false`) every parameter matching any of `patterns`, so that
/// optimisers skip it and backward computes no gradient for it; returns the frozen names.
pub fn freeze(module: &dyn Module, patterns: &[&str]) -> Result<Vec<String>> {
    set_trainable(module, patterns, false)
}

/// Undoes [`freeze`] for the parameters matching `patterns`; returns their names.
pub fn unfreeze(module: &dyn Module, patterns: &[&str]) -> Result<Vec<String>> {
    set_trainable(module, patterns, true)
}

fn set_trainable(module: &dyn Module, patterns: &[&str], on: bool) -> Result<Vec<String>> {
    let (hit, _) = split_by_patterns(module, patterns)?;
    let mut names = Vec::with_capacity(hit.len());
    for (n, p) in hit {
        p.requires_grad_(on)?;
        names.push(n);
    }
    Ok(names)
}

/// The book's two groups: the body (every parameter not matching `head_patterns`) at
/// `lr`, the head at `lr · head_lr_mult`. Both use the optimiser's weight decay.
pub fn head_and_body_groups(
    module: &dyn Module,
    head_patterns: &[&str],
    lr: f64,
    head_lr_mult: f64,
) -> Result<Vec<ParamGroup>> {
    if !(head_lr_mult > 0.0 && head_lr_mult.is_finite()) {
        return Err(Error::InvalidArgument {
            op: "finetune",
            msg: format!(
                "the head's learning-rate multiplier must be positive, got {head_lr_mult}"
            ),
        });
    }
    let (head, body) = split_by_patterns(module, head_patterns)?;
    Ok(vec![
        ParamGroup::new(body.into_iter().map(|(_, t)| t)).lr(lr),
        ParamGroup::new(head.into_iter().map(|(_, t)| t)).lr(lr * head_lr_mult),
    ])
}
