//! What the zoo tests (`zoo.rs`, `cnn_zoo.rs`) share.
#![allow(dead_code)]

use d2l_models::zoo;
use d2l_nn::{Module, Sequential};
use d2l_tensor::Result;

/// The CNNs of D2L chapters 6–7, in the zoo's order.
pub const CNNS: [&str; 11] = [
    "lenet",
    "lenet-relu-max",
    "alexnet",
    "vgg11",
    "vgg11-full",
    "nin",
    "googlenet",
    "lenet-bn-scratch",
    "lenet-bn",
    "resnet18",
    "densenet",
];

/// The zoo's model `name` built at its default configuration.
pub fn build_default(name: &str) -> Result<Sequential> {
    let info = zoo::model(name)?;
    info.build(&info.default_config())
}

/// Asserts each `(model, count)`: the model at its default configuration has `count`
/// parameters.
pub fn assert_parameter_counts(expect: &[(&str, usize)]) -> Result<()> {
    for &(name, n) in expect {
        assert_eq!(build_default(name)?.num_parameters(), n, "{name}");
    }
    Ok(())
}

/// The names of `m`'s parameters, in order.
pub fn parameter_names(m: &dyn Module) -> Vec<String> {
    m.named_parameters().into_iter().map(|(n, _)| n).collect()
}
