//! Fine-tuning helpers (D2L 13.2): name patterns, freezing, and the head/body learning
//! rates of the book's optimiser.

use d2l_nn::finetune::{freeze, head_and_body_groups, matches, split_by_patterns, unfreeze};
use d2l_nn::layers::{Linear, ReLU};
use d2l_nn::optim::{Optimizer, Sgd, SgdConfig};
use d2l_nn::{Module, Sequential};
use d2l_tensor::Tensor;

fn net() -> Sequential {
    let mut n = Sequential::new();
    n.push(Linear::new(3, 4).unwrap());
    n.push(ReLU);
    n.push(Linear::new(4, 2).unwrap());
    n
}

/// Backpropagates the sum of `n`'s output for a batch of two all-ones inputs.
fn backward_on_ones(n: &Sequential) {
    let x = Tensor::ones(&[2, 3]);
    n.forward(&x)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
}

#[test]
fn glob_patterns() {
    assert!(matches("fc.*", "fc.weight"));
    assert!(matches("fc.*", "fc.bias"));
    assert!(!matches("fc.*", "layer1.fc.weight"));
    assert!(matches("*fc.*", "layer1.fc.weight"));
    assert!(matches("*.bias", "layer1.0.bn1.bias"));
    assert!(!matches("*.bias", "layer1.0.bn1.weight"));
    assert!(matches("layer?.*", "layer?.x"));
    assert!(!matches("layer?.*", "layer1.x"));
    assert!(matches("*", ""));
    assert!(matches("a*b*c", "aXXbYYc"));
    assert!(!matches("a*b*c", "aXXbYY"));
    assert!(matches("conv1.weight", "conv1.weight"));
    assert!(!matches("conv1.weight", "conv1.weight2"));
}

#[test]
fn split_and_unknown_pattern() {
    let n = net();
    let (head, body) = split_by_patterns(&n, &["2.*"]).unwrap();
    let names: Vec<_> = head.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["2.weight", "2.bias"]);
    assert_eq!(body.len(), 2);
    let err = split_by_patterns(&n, &["fc.*"]).unwrap_err().to_string();
    assert!(
        err.contains("`fc.*` matches no parameter") && err.contains("0.weight"),
        "{err}"
    );
}

#[test]
fn frozen_parameters_get_no_gradient_and_do_not_move() {
    let n = net();
    let frozen = freeze(&n, &["0.*"]).unwrap();
    assert_eq!(frozen, ["0.weight", "0.bias"]);
    let before: Vec<Vec<f32>> = n.parameters().iter().map(|p| p.to_vec::<f32>()).collect();
    let mut opt = Sgd::new(n.parameters(), 0.5).unwrap();
    backward_on_ones(&n);
    opt.step().unwrap();
    let after: Vec<Vec<f32>> = n.parameters().iter().map(|p| p.to_vec::<f32>()).collect();
    assert_eq!(before[0], after[0]);
    assert_eq!(before[1], after[1]);
    assert_ne!(before[2], after[2]);
    assert!(n.parameters()[0].grad().is_none());
    unfreeze(&n, &["0.*"]).unwrap();
    assert!(n.parameters()[0].requires_grad());
}

#[test]
fn the_head_learns_ten_times_faster() {
    let n = net();
    let groups = head_and_body_groups(&n, &["2.*"], 0.01, 10.0).unwrap();
    assert_eq!(groups[0].lr, Some(0.01));
    assert_eq!(groups[1].lr, Some(0.1));
    let before: Vec<Vec<f32>> = n.parameters().iter().map(|p| p.to_vec::<f32>()).collect();
    let mut opt = Sgd::with_groups(
        groups,
        SgdConfig {
            lr: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    backward_on_ones(&n);
    let grads: Vec<Vec<f32>> = n
        .parameters()
        .iter()
        .map(|p| p.grad().unwrap().to_vec::<f32>())
        .collect();
    opt.step().unwrap();
    for (i, p) in n.parameters().iter().enumerate() {
        let lr = if i >= 2 { 0.1 } else { 0.01 };
        for ((a, b), g) in before[i].iter().zip(p.to_vec::<f32>()).zip(&grads[i]) {
            assert!((a - lr * g - b).abs() < 1e-6, "param {i}");
        }
    }
    assert!(head_and_body_groups(&n, &["2.*"], 0.01, 0.0).is_err());
}
