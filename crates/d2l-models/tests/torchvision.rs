//! torchvision's ResNet-18 and VGG-19 (D2L 13.2, 13.11, 13.12): names, kinds and shapes
//! against lists exported from torchvision by `scripts/gen_pth_fixtures.py`, parameter
//! counts, a checkpoint in torchvision's format loaded by name, and eval-mode forward
//! parity with torchvision under deterministic weights.

use d2l_models::torchvision::{
    load_torchvision_weights, resnet18, resnet18_body, vgg19, vgg19_features, VGG19_FEATURES_LEN,
};
use d2l_nn::{serialize, Module};
use d2l_tensor::{no_grad, DType, Tensor};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torchvision")
        .join(name)
}

/// (name, is parameter, shape) from a `*_keys.txt` fixture, in state-dict order.
fn keys(file: &str) -> Vec<(String, bool, Vec<usize>)> {
    std::fs::read_to_string(fixture(file))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let shape = if f[2].is_empty() {
                vec![]
            } else {
                f[2].split(',').map(|s| s.parse().unwrap()).collect()
            };
            (f[0].to_string(), f[1] == "P", shape)
        })
        .collect()
}

fn ours(net: &dyn Module, prefix: &str) -> Vec<(String, bool, Vec<usize>)> {
    let params: HashSet<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    net.state_dict()
        .into_iter()
        .map(|(n, t)| {
            let p = params.contains(&n);
            (format!("{prefix}{n}"), p, t.shape().to_vec())
        })
        .collect()
}

#[test]
fn resnet18_names_shapes_and_counts() {
    let net = resnet18(1000).unwrap();
    assert_eq!(ours(&net, ""), keys("resnet18_keys.txt"));
    assert_eq!(net.num_parameters(), 11_689_512);
    assert_eq!(resnet18(2).unwrap().num_parameters(), 11_177_538);

    let mut net = net;
    let fc = net.replace_fc(2).unwrap();
    assert_eq!(fc.weight.shape(), &[2, 512]);
    assert_eq!(net.num_parameters(), 11_177_538);
    assert_eq!(net.fc.weight.id(), fc.weight.id());

    let body = resnet18_body().unwrap();
    assert_eq!(body.len(), 8);
    // conv1 + bn1 + the four layers: everything but fc.
    assert_eq!(body.num_parameters(), 11_689_512 - 512 * 1000 - 1000);
    assert_eq!(body.named_parameters()[0].0, "0.weight");
    let y = body.forward(&Tensor::zeros(&[1, 3, 64, 64])).unwrap();
    assert_eq!(y.shape(), &[1, 512, 2, 2]);
    assert!(resnet18(0).is_err());
}

#[test]
fn vgg19_names_shapes_and_counts() {
    let feats = vgg19_features(28).unwrap();
    assert_eq!(feats.len(), 29);
    assert_eq!(feats.num_parameters(), 12_944_960);
    let want: Vec<_> = keys("vgg19_keys.txt")
        .into_iter()
        .filter(|(n, _, _)| {
            n.strip_prefix("features.")
                .and_then(|r| r.split('.').next())
                .is_some_and(|i| i.parse::<usize>().unwrap() <= 28)
        })
        .collect();
    assert_eq!(ours(&feats, "features."), want);
    assert!(vgg19_features(VGG19_FEATURES_LEN).is_err());
    assert_eq!(vgg19_features(VGG19_FEATURES_LEN - 1).unwrap().len(), 37);

    // The whole model: 575 MB of f32, built once.
    let mut net = vgg19(1000).unwrap();
    assert_eq!(ours(&net, ""), keys("vgg19_keys.txt"));
    assert_eq!(net.num_parameters(), 143_667_240);
    let upto = net.features_upto(28).unwrap();
    assert_eq!(
        upto.named_parameters()[0].1.id(),
        net.features.named_parameters()[0].1.id()
    );
    let head = net.replace_head(2).unwrap();
    assert_eq!(head.weight.shape(), &[2, 4096]);
    assert_eq!(net.num_parameters(), 143_667_240 - 4097 * 998);
}

#[test]
fn torchvision_checkpoint_loads_by_name() {
    let path = fixture("resnet18_strided.pth");
    let net = resnet18(1000).unwrap();
    let report = load_torchvision_weights(&net, &path).unwrap();
    assert!(report.is_clean(), "{report}");
    // 122 state-dict entries less 20 num_batches_tracked.
    assert_eq!(report.loaded.len(), 102);

    // Element [o, ...] of entry n is base[salt(n)·7 + o] (see the script).
    let base = |k: usize, var: bool| {
        let s = (0.1 * k as f64).sin();
        (if var { 1.0 + 0.1 * s.abs() } else { 0.05 * s }) as f32
    };
    let salt = |n: &str| n.bytes().map(|b| b as usize).sum::<usize>() % 97;
    for (n, t) in net.state_dict() {
        if n.ends_with("num_batches_tracked") {
            continue;
        }
        let v = t.to_vec::<f32>();
        let per_row = t.numel() / t.shape()[0];
        let var = n.ends_with("running_var");
        for (i, x) in v.iter().enumerate().step_by(37) {
            let want = base(salt(&n) * 7 + i / per_row, var);
            assert!((x - want).abs() < 1e-7, "{n}[{i}] = {x}, want {want}");
        }
    }

    // A 2-class head: the error names fc and both shapes, and nothing is loaded.
    let two = resnet18(2).unwrap();
    let before = two.conv1.weight.to_vec::<f32>();
    let msg = load_torchvision_weights(&two, &path)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("fc.weight [2, 512] vs [1000, 512]"), "{msg}");
    assert!(msg.contains("fc.bias [2] vs [1000]"), "{msg}");
    assert!(msg.contains("resnet18_strided.pth"), "{msg}");
    assert_eq!(two.conv1.weight.to_vec::<f32>(), before);

    // The wrong architecture: names missing on both sides.
    let vgg = vgg19_features(4).unwrap();
    let msg = load_torchvision_weights(&vgg, &path)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing from the file: 0.weight"), "{msg}");
    assert!(msg.contains("conv1.weight [64, 3, 7, 7]"), "{msg}");
}

/// The deterministic weights of the parity fixtures (`formula` in the script): for the
/// entry named n, s_i = sin(0.7·i + salt(n)) with salt = Σ bytes of n mod 97.
fn set_formula(net: &dyn Module, prefix: &str) {
    no_grad(|| {
        for (n, t) in net.state_dict() {
            let name = format!("{prefix}{n}");
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            let salt = (name.bytes().map(|b| b as u64).sum::<u64>() % 97) as f64;
            let numel = t.numel();
            let s = (0..numel).map(|i| (0.7 * i as f64 + salt).sin());
            let v: Vec<f64> = if name.ends_with("running_mean") {
                s.map(|x| 0.1 * x).collect()
            } else if name.ends_with("running_var") {
                s.map(|x| 1.0 + 0.1 * x.abs()).collect()
            } else if t.rank() >= 2 {
                let fan_in = (numel / t.shape()[0]) as f64;
                s.map(|x| x / fan_in.sqrt()).collect()
            } else if name.ends_with("weight") {
                s.map(|x| 1.0 + 0.1 * x).collect()
            } else {
                s.map(|x| 0.1 * x).collect()
            };
            let src = Tensor::from_vec(v, t.shape()).unwrap();
            assert_eq!(t.dtype(), DType::F32);
            t.copy_(&src).unwrap();
        }
    });
}

/// max |got − want| ≤ 1e-4 · max(1, max |want|).
fn assert_close(got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape());
    let (g, w) = (got.to_vec::<f32>(), want.to_vec::<f32>());
    let scale = w.iter().fold(1f32, |m, x| m.max(x.abs()));
    let err = g
        .iter()
        .zip(&w)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= 1e-4 * scale, "max error {err} at scale {scale}");
}

/// With its weights set by `set_formula(net, prefix)`, `net` in eval mode maps the
/// fixture `file`'s input to its output.
fn assert_forward_parity(net: &dyn Module, prefix: &str, file: &str) {
    set_formula(net, prefix);
    net.eval();
    let io: BTreeMap<String, Tensor> = serialize::load_dict(fixture(file)).unwrap();
    assert_close(&net.forward(&io["input"]).unwrap(), &io["output"]);
}

#[test]
fn resnet18_forward_parity() {
    let net = resnet18(1000).unwrap();
    assert_forward_parity(&net, "", "resnet18_forward.safetensors");
}

#[test]
fn vgg19_features_forward_parity() {
    let net = vgg19_features(28).unwrap();
    assert_forward_parity(&net, "features.", "vgg19_features_forward.safetensors");
}
