//! D2L 13.11's FCN: names and parameter counts as PyTorch's, the bilinear init of the
//! transposed conv, output shapes, the torchvision → body name mapping against the
//! committed torchvision-format checkpoint, and the per-image loss / pixel accuracy.

use d2l_models::fcn::{fcn, load_body_weights, pixel_accuracy, seg_loss, torchvision_to_body_name};
use d2l_models::torchvision::{resnet18, resnet18_body, vgg19_features};
use d2l_nn::{pth, Module};
use d2l_tensor::{gradcheck, no_grad, DType, Generator, Tensor};
use d2l_vision::upsample::bilinear_kernel;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torchvision")
        .join(name)
}

fn labels(v: Vec<i64>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape).unwrap()
}

#[test]
fn fcn_names_counts_and_bilinear_init() {
    let net = fcn(21, None).unwrap();
    assert_eq!(net.num_classes(), 21);
    assert_eq!(net.num_parameters(), 12_993_642);
    assert_eq!(net.body.num_parameters(), 11_176_512);
    assert_eq!(net.final_conv.num_parameters(), 10_773);
    assert_eq!(net.transpose_conv.num_parameters(), 1_806_357);

    // The book's nn.Sequential after add_module: 0..7, final_conv, transpose_conv.
    let names: Vec<String> = net.children().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "0",
            "1",
            "2",
            "3",
            "4",
            "5",
            "6",
            "7",
            "final_conv",
            "transpose_conv"
        ]
    );
    let sd: Vec<(String, Vec<usize>)> = net
        .state_dict()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec()))
        .collect();
    assert_eq!(sd[0], ("0.weight".to_string(), vec![64, 3, 7, 7]));
    assert_eq!(sd[1].0, "1.weight");
    assert!(sd.iter().any(|(n, _)| n == "7.1.bn2.running_var"));
    let tail: Vec<_> = sd[sd.len() - 4..].to_vec();
    assert_eq!(
        tail,
        vec![
            ("final_conv.weight".to_string(), vec![21, 512, 1, 1]),
            ("final_conv.bias".to_string(), vec![21]),
            ("transpose_conv.weight".to_string(), vec![21, 21, 64, 64]),
            ("transpose_conv.bias".to_string(), vec![21]),
        ]
    );
    // Same keys as the body of a torchvision ResNet-18 through the mapping.
    let tv = resnet18(1000).unwrap();
    let mapped: Vec<String> = tv
        .state_dict()
        .into_iter()
        .filter_map(|(n, _)| torchvision_to_body_name(&n))
        .collect();
    let body: Vec<String> = net.body.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(mapped, body);

    let w = &net.transpose_conv.weight;
    assert_eq!(
        w.to_vec::<f32>(),
        bilinear_kernel(21, 21, 64).to_vec::<f32>()
    );
    // Diagonal pairs only; the filter peaks at (31, 31) and (32, 32) with (1 - 0.5/32)².
    let v = w.to_vec::<f32>();
    let at = |i: usize, o: usize, y: usize, x: usize| v[((i * 21 + o) * 64 + y) * 64 + x];
    let peak = (1.0 - 0.5 / 32.0f32).powi(2);
    assert!((at(3, 3, 31, 32) - peak).abs() < 1e-6);
    assert_eq!(at(3, 4, 31, 32), 0.0);
    assert!(w.requires_grad());

    assert!(fcn(0, None).is_err());
}

#[test]
fn fcn_shapes() {
    let net = fcn(21, None).unwrap();
    net.eval();
    no_grad(|| {
        let x = Tensor::randn_with(&mut Generator::new(1), &[2, 3, 64, 96]);
        assert_eq!(net.forward_body(&x).unwrap().shape(), &[2, 512, 2, 3]);
        assert_eq!(net.forward(&x).unwrap().shape(), &[2, 21, 64, 96]);
        // The book's check: a 320×480 image gives 512×10×15 from the body and comes
        // back at full size.
        let x = Tensor::randn_with(&mut Generator::new(2), &[1, 3, 320, 480]);
        assert_eq!(net.forward_body(&x).unwrap().shape(), &[1, 512, 10, 15]);
        let y = net.forward(&x).unwrap();
        assert_eq!(y.shape(), &[1, 21, 320, 480]);
        assert!(y.to_vec::<f32>().iter().all(|v| v.is_finite()));
    });
    assert_eq!(
        net.transpose_conv.output_size((10, 15)).unwrap(),
        (320, 480)
    );
}

#[test]
fn body_loads_torchvision_checkpoint_by_mapped_name() {
    let path = fixture("resnet18_strided.pth");
    let net = fcn(21, Some(path.as_path())).unwrap();
    let file: HashMap<String, Tensor> = pth::load_pth(&path).unwrap().into_iter().collect();
    let body = net.body.state_dict();
    let mut checked = 0;
    for (n, t) in &body {
        if n.ends_with("num_batches_tracked") {
            continue;
        }
        let tv_name = match n.split_once('.').unwrap() {
            ("0", r) => format!("conv1.{r}"),
            ("1", r) => format!("bn1.{r}"),
            (i, r) => format!("layer{}.{r}", i.parse::<usize>().unwrap() - 3),
        };
        let want = &file[&tv_name];
        assert_eq!(t.shape(), want.shape(), "{n}");
        assert_eq!(t.to_vec::<f32>(), want.to_vec::<f32>(), "{n} <- {tv_name}");
        checked += 1;
    }
    // 102 loaded entries of the full model less fc.weight and fc.bias.
    assert_eq!(checked, 100);
    // The head is untouched: still the bilinear kernel.
    assert_eq!(
        net.transpose_conv.weight.to_vec::<f32>(),
        bilinear_kernel(21, 21, 64).to_vec::<f32>()
    );

    // Loading into a bare body reports 100 entries, cleanly.
    let b = resnet18_body().unwrap();
    let report = load_body_weights(&b, &path).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.loaded.len(), 100);

    // The wrong architecture: one error, nothing loaded.
    let vgg = vgg19_features(4).unwrap();
    let before = vgg.state_dict()[0].1.to_vec::<f32>();
    let msg = load_body_weights(&vgg, &path).unwrap_err().to_string();
    assert!(msg.contains("resnet18_strided.pth"), "{msg}");
    assert_eq!(vgg.state_dict()[0].1.to_vec::<f32>(), before);
}

#[test]
fn name_mapping() {
    let m = |s: &str| torchvision_to_body_name(s);
    assert_eq!(m("conv1.weight").as_deref(), Some("0.weight"));
    assert_eq!(m("bn1.running_mean").as_deref(), Some("1.running_mean"));
    assert_eq!(
        m("layer1.0.conv1.weight").as_deref(),
        Some("4.0.conv1.weight")
    );
    assert_eq!(
        m("layer2.0.downsample.1.bias").as_deref(),
        Some("5.0.downsample.1.bias")
    );
    assert_eq!(m("layer3.1.bn2.weight").as_deref(), Some("6.1.bn2.weight"));
    assert_eq!(
        m("layer4.1.conv2.weight").as_deref(),
        Some("7.1.conv2.weight")
    );
    assert_eq!(m("fc.weight"), None);
    assert_eq!(m("fc.bias"), None);
    assert_eq!(m("conv10.weight"), None);
}

#[test]
fn seg_loss_by_hand() {
    // Image 0: pixel (0,0) logits (0, 0), label 0 → ln 2; pixel (0,1) logits (ln 3, 0),
    // label 1 → ln 4. Image 1: (0, ln 3) label 1 → ln(4/3); (0, 0) label 1 → ln 2.
    let l3 = 3f64.ln();
    // [N=2, C=2, H=1, W=2]: index [n][c][0][w].
    let logits = Tensor::from_vec(vec![0.0, l3, 0.0, 0.0, 0.0, 0.0, l3, 0.0], &[2, 2, 1, 2])
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let y = labels(vec![0, 1, 1, 1], &[2, 1, 2]);
    let l = seg_loss(&logits, &y).unwrap();
    assert_eq!(l.shape(), &[2]);
    let got = l.to_vec::<f64>();
    let want = [
        (2f64.ln() + 4f64.ln()) / 2.0,
        ((4.0f64 / 3.0).ln() + 2f64.ln()) / 2.0,
    ];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
    // Pixel accuracy: image 0 predicts (0 tie → 0, 0) vs (0, 1): 1 right; image 1
    // predicts (1, 0 tie) vs (1, 1): 1 right.
    assert_eq!(pixel_accuracy(&logits, &y).unwrap(), (2, 4));
}

#[test]
fn seg_loss_gradcheck() {
    let mut g = Generator::new(7);
    let x = Tensor::randn_with(&mut g, &[2, 3, 2, 3]);
    let y = labels(vec![0, 2, 1, 1, 0, 2, 2, 2, 0, 1, 0, 1], &[2, 2, 3]);
    gradcheck(|xs| seg_loss(&xs[0], &xs[1]), &[x, y]).unwrap();
}

#[test]
fn pixel_accuracy_counts() {
    // [1, 3, 2, 2]: argmax per pixel is 2, 0, 1, 2.
    let logits = Tensor::from_vec(
        vec![
            0.0f32, 5.0, 0.0, 0.0, //
            0.0, 0.0, 5.0, 0.0, //
            5.0, 0.0, 0.0, 5.0,
        ],
        &[1, 3, 2, 2],
    )
    .unwrap();
    assert_eq!(
        pixel_accuracy(&logits, &labels(vec![2, 0, 1, 2], &[1, 2, 2])).unwrap(),
        (4, 4)
    );
    assert_eq!(
        pixel_accuracy(&logits, &labels(vec![2, 1, 1, 0], &[1, 2, 2])).unwrap(),
        (2, 4)
    );
}

#[test]
fn shape_and_dtype_errors() {
    let x = Tensor::zeros(&[2, 3, 4, 5]);
    let ok = labels(vec![0; 40], &[2, 4, 5]);
    assert!(seg_loss(&x, &ok).is_ok());
    for bad in [
        labels(vec![0; 40], &[2, 5, 4]),
        labels(vec![0; 20], &[1, 4, 5]),
        labels(vec![0; 40], &[2, 20]),
        labels(vec![0; 40], &[2, 1, 4, 5]),
    ] {
        let e = seg_loss(&x, &bad).unwrap_err().to_string();
        assert!(e.contains("seg_loss") && e.contains("[N, H, W]"), "{e}");
        let e = pixel_accuracy(&x, &bad).unwrap_err().to_string();
        assert!(e.contains("pixel_accuracy"), "{e}");
    }
    // Logits of the wrong rank, labels of the wrong dtype, integer logits.
    assert!(seg_loss(&Tensor::zeros(&[2, 3, 20]), &ok).is_err());
    assert!(seg_loss(&x, &ok.to_dtype(DType::F32).unwrap()).is_err());
    assert!(pixel_accuracy(&x.to_dtype(DType::I64).unwrap(), &ok).is_err());
    // An out-of-range class is an error too (from cross_entropy), not a panic.
    assert!(seg_loss(&x, &labels(vec![3; 40], &[2, 4, 5])).is_err());
}
