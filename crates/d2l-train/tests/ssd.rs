//! TinySSD (D2L 13.7): the parameter count of D.10, the forward outputs, anchor targets and
//! loss against the book's PyTorch code on fixed weights (`scripts/ssd_torch.py fixture`),
//! the loss variants, and a short training run on a generated detection set that must
//! lower the class error and the bbox MAE.

use d2l_models::ssd::{bbox_eval, cls_eval, ssd_loss, BoxLoss, ClsLoss, TinySsd};
use d2l_nn::Module;
use d2l_tensor::{no_grad, DType, Tensor};
use d2l_train::tasks::detection::{evaluate_ssd, train_ssd, SsdTrainConfig};
use d2l_vision::detection::{multibox_prior, multibox_target};
use d2l_vision::generated::detection::{load_detection_set, DetectionSetSpec};
use std::collections::HashMap;

fn fixture() -> HashMap<String, Tensor> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ssd_parity.safetensors"
    );
    d2l_nn::serialize::load(path).unwrap().into_iter().collect()
}

/// The same formula as `formula_init` in scripts/ssd_torch.py.
fn formula_init(net: &dyn Module) {
    no_grad(|| {
        for (name, p) in net.named_parameters() {
            let salt = name.bytes().map(|b| b as u64).sum::<u64>() % 97;
            let shape = p.shape().to_vec();
            let n = p.numel();
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    let s = (0.7 * i as f64 + salt as f64).sin();
                    let v = if shape.len() >= 2 {
                        s / ((n / shape[0]) as f64).sqrt()
                    } else if name.ends_with(".weight") {
                        1.0 + 0.1 * s
                    } else {
                        0.1 * s
                    };
                    v as f32
                })
                .collect();
            p.copy_(&Tensor::from_vec(v, &shape).unwrap()).unwrap();
        }
    });
}

fn assert_close(name: &str, got: &Tensor, want: &Tensor, tol: f32) {
    assert_eq!(got.shape(), want.shape(), "{name}: shape");
    let g = got.to_dtype(DType::F32).unwrap().to_vec::<f32>();
    let w = want.to_dtype(DType::F32).unwrap().to_vec::<f32>();
    let mut worst = (0.0f32, 0);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let err = (a - b).abs() / (1.0 + b.abs());
        if err > worst.0 {
            worst = (err, i);
        }
    }
    assert!(
        worst.0 <= tol,
        "{name}: relative error {} at {} ({} vs {})",
        worst.0,
        worst.1,
        g[worst.1],
        w[worst.1]
    );
}

#[test]
fn parameter_count_and_names_follow_the_book() {
    let _seeded = d2l_testkit::seeded(0);
    let net = TinySsd::new(1, multibox_prior).unwrap();
    assert_eq!(net.num_parameters(), 1_010_376);
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "blk_0.0.0.weight");
    assert!(names.contains(&"cls_4.bias".to_string()));
    assert!(names.contains(&"bbox_2.weight".to_string()));
    assert!(TinySsd::new(0, multibox_prior).is_err());
}

#[test]
fn book_shapes_for_a_256_batch() {
    let _seeded = d2l_testkit::seeded(0);
    // 13.7: anchors (1, 5444, 4), cls_preds (32, 5444, 2), bbox_preds (32, 21776); a batch
    // of 2 keeps the test fast.
    let net = TinySsd::new(1, multibox_prior).unwrap();
    let x = Tensor::zeros(&[2, 3, 256, 256]);
    let out = no_grad(|| net.forward_ssd(&x)).unwrap();
    assert_eq!(out.anchors.shape(), &[1, 5444, 4]);
    assert_eq!(out.cls_preds.shape(), &[2, 5444, 2]);
    assert_eq!(out.bbox_preds.shape(), &[2, 21776]);
    let err = net
        .forward_ssd(&Tensor::zeros(&[1, 3, 32, 32]))
        .unwrap_err();
    assert!(err.to_string().contains("64×64"), "{err}");
    let err = net
        .forward_ssd(&Tensor::zeros(&[1, 1, 64, 64]))
        .unwrap_err();
    assert!(err.to_string().contains("(B, 3, H, W)"), "{err}");
}

#[test]
fn forward_targets_and_loss_match_pytorch() {
    let _seeded = d2l_testkit::seeded(0);
    let f = fixture();
    let net = TinySsd::new(2, multibox_prior).unwrap();
    formula_init(&net);
    net.train();
    let out = net.forward_ssd(&f["x"]).unwrap();
    assert_close("anchors", &out.anchors, &f["anchors"], 1e-6);
    assert_close("cls_preds", &out.cls_preds, &f["cls_preds"], 1e-4);
    assert_close("bbox_preds", &out.bbox_preds, &f["bbox_preds"], 1e-4);
    let (bl, bm, cl) = multibox_target(&out.anchors, &f["labels"]).unwrap();
    assert_eq!(cl.to_vec::<i64>(), f["cls_labels"].to_vec::<i64>());
    assert_close("bbox_masks", &bm, &f["bbox_masks"], 0.0);
    assert_close("bbox_labels", &bl, &f["bbox_labels"], 1e-5);
    let l = ssd_loss(
        &out.cls_preds,
        &cl,
        &out.bbox_preds,
        &bl,
        &bm,
        ClsLoss::CrossEntropy,
        BoxLoss::L1,
    )
    .unwrap();
    assert_close("loss", &l, &f["loss"], 1e-4);
    // The loss has gradients for every parameter, and they are PyTorch's.
    l.mean_all().unwrap().backward().unwrap();
    for (name, p) in net.named_parameters() {
        let g = p.grad();
        assert!(g.is_some(), "{name} got no gradient");
        if let Some(want) = f.get(&format!("grad.{name}")) {
            assert_close(&format!("grad of {name}"), &g.unwrap(), want, 1e-3);
        }
    }
    assert_eq!(f.keys().filter(|k| k.starts_with("grad.")).count(), 5);
}

#[test]
fn loss_variants_reduce_to_the_book_loss_at_their_limits() {
    let _seeded = d2l_testkit::seeded(0);
    let f = fixture();
    let net = TinySsd::new(2, multibox_prior).unwrap();
    formula_init(&net);
    let out = no_grad(|| net.forward_ssd(&f["x"])).unwrap();
    let (bl, bm, cl) = multibox_target(&out.anchors, &f["labels"]).unwrap();
    let loss = |c, b| {
        ssd_loss(&out.cls_preds, &cl, &out.bbox_preds, &bl, &bm, c, b)
            .unwrap()
            .to_vec::<f32>()
    };
    let book = loss(ClsLoss::CrossEntropy, BoxLoss::L1);
    // Focal loss with γ = 0 is cross entropy.
    let focal0 = loss(ClsLoss::Focal { gamma: 0.0 }, BoxLoss::L1);
    for (a, b) in book.iter().zip(&focal0) {
        assert!((a - b).abs() < 1e-5, "{book:?} vs {focal0:?}");
    }
    // γ > 0 down-weights easy anchors: the loss is smaller.
    let focal2 = loss(ClsLoss::Focal { gamma: 2.0 }, BoxLoss::L1);
    for (a, b) in book.iter().zip(&focal2) {
        assert!(b < a, "{book:?} vs {focal2:?}");
    }
    // Smooth L1 with a large σ is L1 (less 0.5/σ² per masked entry).
    let smooth = loss(ClsLoss::CrossEntropy, BoxLoss::SmoothL1 { sigma: 1e3 });
    for (a, b) in book.iter().zip(&smooth) {
        assert!((a - b).abs() < 1e-4, "{book:?} vs {smooth:?}");
    }
}

#[test]
fn metrics_count_like_the_book() {
    let _seeded = d2l_testkit::seeded(0);
    let cls_preds = Tensor::from_vec(vec![2.0f32, 1.0, 0.0, 3.0, 5.0, -1.0], &[1, 3, 2]).unwrap();
    let cls_labels = Tensor::from_vec(vec![0i64, 1, 1], &[1, 3]).unwrap();
    assert_eq!(cls_eval(&cls_preds, &cls_labels).unwrap(), 2.0);
    let p = Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 0.0], &[1, 4]).unwrap();
    let l = Tensor::from_vec(vec![1.0f32, 1.0, 1.0, 1.0], &[1, 4]).unwrap();
    let m = Tensor::from_vec(vec![1.0f32, 1.0, 0.0, 0.0], &[1, 4]).unwrap();
    assert_eq!(bbox_eval(&p, &l, &m).unwrap(), 2.5);
}

#[test]
fn training_on_a_generated_set_lowers_both_errors() {
    let _seeded = d2l_testkit::seeded(0);
    let dir = tempfile::tempdir().unwrap();
    let spec = DetectionSetSpec {
        num_train: 64,
        num_val: 16,
        image_size: 64,
        min_object_size: 16,
        max_object_size: 40,
        ..DetectionSetSpec::default()
    };
    let (train, val) = load_detection_set(dir.path(), &spec, 16).unwrap();
    d2l_tensor::manual_seed(0);
    let net = TinySsd::new(1, multibox_prior).unwrap();
    let (err0, mae0) = evaluate_ssd(&net, &val).unwrap();
    let cfg = SsdTrainConfig {
        epochs: 6,
        quiet: true,
        ..SsdTrainConfig::default()
    };
    let s = train_ssd(&net, &train, Some(&val), &cfg).unwrap();
    let first = s.epochs[0];
    let last = s.epochs.last().unwrap();
    assert!(
        last.class_err < first.class_err && last.bbox_mae < first.bbox_mae,
        "training errors did not fall: {:?}",
        s.epochs
    );
    let (err1, mae1) = evaluate_ssd(&net, &val).unwrap();
    assert!(
        err1 < err0 && mae1 < mae0,
        "val: {err0} {mae0} -> {err1} {mae1}"
    );
    assert!(last.target_share > 0.0 && last.target_share < 1.0);
}
