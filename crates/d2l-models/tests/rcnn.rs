//! Faster R-CNN / Mask R-CNN parts against torchvision on fixed inputs
//! (fixtures by scripts/gen_rcnn_fixtures.py), the random sampler statistically, the
//! gradients of the composed losses, and a torchvision checkpoint loaded whole.

use d2l_models::rcnn::heads::{
    fastrcnn_loss, mask_heads, maskrcnn_loss, rpn_loss, FastRcnnPredictor, MaskRcnnPredictor,
    RpnHead, TwoMlpHead,
};
use d2l_models::rcnn::parts::*;
use d2l_models::rcnn::{
    paste_mask, project_masks, select_training_samples, MaskRcnn, RcnnConfig, RcnnTarget,
};
use d2l_nn::pth::load_state_dict_entries;
use d2l_nn::Module;
use d2l_tensor::{Generator, Tensor};
use d2l_vision::roi::roi_align;
use std::collections::HashMap;

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let p = format!(
        "{}/tests/fixtures/rcnn/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    d2l_nn::serialize::load(p).unwrap().into_iter().collect()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_dtype(d2l_tensor::DType::F32).unwrap().to_vec::<f32>()
}

/// The scalar loss `got` equals the fixture's `want` to 1e-5.
#[track_caller]
fn close_loss(got: &Tensor, want: &Tensor, what: &str) {
    close(&[got.item().unwrap()], &f32s(want), 1e-5, what);
}

#[track_caller]
fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(
        a.len(),
        b.len(),
        "{what}: lengths {} vs {}",
        a.len(),
        b.len()
    );
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs torchvision {y}"
        );
    }
}

fn load(module: &dyn Module, f: &HashMap<String, Tensor>, prefix: &str) {
    let entries: Vec<(String, Tensor)> = f
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
        .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
        .collect();
    load_state_dict_entries(module, &entries, true, prefix).unwrap();
}

fn flat(v: &[Box4]) -> Vec<f32> {
    v.iter().flatten().copied().collect()
}

#[test]
fn box_coding_matches_torchvision() {
    let _seeded = d2l_testkit::seeded(0);
    let f = fixture("parts");
    let props = tensor_boxes(&f["coder.proposals"]);
    let gts = tensor_boxes(&f["coder.gt"]);
    let rel = f32s(&f["coder.rel"]);
    for (name, coder) in [("rpn", RPN_CODER), ("head", HEAD_CODER)] {
        let enc: Vec<f32> = gts
            .iter()
            .zip(&props)
            .flat_map(|(g, p)| coder.encode(g, p))
            .collect();
        close(
            &enc,
            &f32s(&f[&format!("coder.{name}.encoded")]),
            1e-5,
            "encode",
        );
        let mut dec = Vec::new();
        for i in 0..12 {
            for j in 0..2 {
                dec.extend(coder.decode(&rel[i * 8 + 4 * j..i * 8 + 4 * j + 4], &props[i]));
            }
        }
        close(
            &dec,
            &f32s(&f[&format!("coder.{name}.decoded")]),
            1e-5,
            "decode",
        );
    }
}

#[test]
fn anchors_rpn_head_and_proposals_match_torchvision() {
    let _seeded = d2l_testkit::seeded(0);
    let f = fixture("parts");
    let anchors = grid_anchors(&[16.0, 32.0], &[0.5, 1.0, 2.0], (8, 8), (64, 64));
    assert_eq!(flat(&anchors), f32s(&f["rpn.anchors"]), "anchors");

    let head = RpnHead::new(16, 6).unwrap();
    load(&head, &f, "rpn.head.");
    let feat = &f["rpn.feature"];
    let (obj, deltas) = head.predict(feat).unwrap();
    // torchvision's raw (N, A, H, W) and (N, 4A, H, W), in the anchors' order.
    let want_o = f["rpn.objectness"]
        .permute(&[0, 2, 3, 1])
        .unwrap()
        .reshape([2, 384])
        .unwrap();
    let want_d = f["rpn.deltas"]
        .reshape([2, 6, 4, 8, 8])
        .unwrap()
        .permute(&[0, 3, 4, 1, 2])
        .unwrap()
        .reshape([2, 384, 4])
        .unwrap();
    close(
        &f32s(&obj),
        &f32s(&want_o.contiguous().unwrap()),
        1e-4,
        "objectness",
    );
    close(
        &f32s(&deltas),
        &f32s(&want_d.contiguous().unwrap()),
        1e-4,
        "deltas",
    );

    let o = f32s(&want_o.contiguous().unwrap());
    let d = f32s(&want_d.contiguous().unwrap());
    for (i, size) in [(64, 64), (60, 56)].into_iter().enumerate() {
        let boxes: Vec<Box4> = (0..384)
            .map(|k| RPN_CODER.decode(&d[(i * 384 + k) * 4..(i * 384 + k + 1) * 4], &anchors[k]))
            .collect();
        let (b, s) = filter_proposals(
            &boxes,
            &o[i * 384..(i + 1) * 384],
            size,
            100,
            20,
            0.7,
            0.0,
            1e-3,
        );
        close(
            &flat(&b),
            &f32s(&f[&format!("rpn.proposals.{i}")]),
            1e-4,
            "proposals",
        );
        close(
            &s,
            &f32s(&f[&format!("rpn.scores.{i}")]),
            1e-5,
            "proposal scores",
        );
    }
}

fn targets(f: &HashMap<String, Tensor>) -> Vec<RcnnTarget> {
    (0..2)
        .map(|i| RcnnTarget {
            boxes: tensor_boxes(&f[&format!("targets.{i}.boxes")]),
            labels: f[&format!("targets.{i}.labels")]
                .to_vec::<i64>()
                .into_iter()
                .map(|l| l as usize)
                .collect(),
            masks: Some(f[&format!("targets.{i}.masks")].clone()),
        })
        .collect()
}

#[test]
fn anchor_matching_and_rpn_loss_match_torchvision() {
    let _seeded = d2l_testkit::seeded(0);
    let f = fixture("parts");
    let anchors = tensor_boxes(&f["rpn.anchors"]);
    let tg = targets(&f);
    let o = f["rpn.objectness"]
        .permute(&[0, 2, 3, 1])
        .unwrap()
        .reshape([768])
        .unwrap();
    let d = f["rpn.deltas"]
        .reshape([2, 6, 4, 8, 8])
        .unwrap()
        .permute(&[0, 3, 4, 1, 2])
        .unwrap()
        .reshape([768, 4])
        .unwrap();
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    let mut reg = vec![0f32; 768 * 4];
    for (i, t) in tg.iter().enumerate() {
        let m = match_boxes(&t.boxes, &anchors, 0.7, 0.3, true);
        let labels: Vec<i64> = m
            .iter()
            .map(|&v| {
                if v >= 0 {
                    1
                } else if v == BELOW_LOW {
                    0
                } else {
                    -1
                }
            })
            .collect();
        let want: Vec<i64> = f32s(&f[&format!("rpn.match.labels.{i}")])
            .iter()
            .map(|&v| v as i64)
            .collect();
        assert_eq!(labels, want, "anchor labels of image {i}");
        assert!(labels.contains(&-1) && labels.contains(&1));
        let (p, n) = sample_pos_neg(&labels, 32, 0.5, &mut Sampling::First);
        for &k in &p {
            let e = RPN_CODER.encode(&t.boxes[m[k] as usize], &anchors[k]);
            reg[(i * 384 + k) * 4..(i * 384 + k + 1) * 4].copy_from_slice(&e);
        }
        pos.extend(p.iter().map(|&k| i * 384 + k));
        neg.extend(n.iter().map(|&k| i * 384 + k));
    }
    let reg = Tensor::from_vec(reg, &[768, 4]).unwrap();
    let (lo, lb) = rpn_loss(&o, &d.contiguous().unwrap(), &pos, &neg, &reg).unwrap();
    close_loss(&lo, &f["rpn.loss.objectness"], "objectness loss");
    close_loss(&lb, &f["rpn.loss.box"], "rpn box loss");
}

fn roi_modules(
    f: &HashMap<String, Tensor>,
) -> (
    TwoMlpHead,
    FastRcnnPredictor,
    d2l_nn::Sequential,
    MaskRcnnPredictor,
) {
    let bh = TwoMlpHead::new(16 * 49, 24).unwrap();
    let bp = FastRcnnPredictor::new(24, 3).unwrap();
    let mh = mask_heads(16, &[8, 8]).unwrap();
    let mp = MaskRcnnPredictor::new(8, 6, 3).unwrap();
    load(&bh, f, "roi.box_head.");
    load(&bp, f, "roi.box_predictor.");
    load(&mh, f, "roi.mask_head.");
    load(&mp, f, "roi.mask_predictor.");
    (bh, bp, mh, mp)
}

fn rois(p: &[Vec<Box4>]) -> Tensor {
    let mut v = Vec::new();
    for (i, b) in p.iter().enumerate() {
        for x in b {
            v.extend_from_slice(&[i as f32, x[0], x[1], x[2], x[3]]);
        }
    }
    let k = v.len() / 5;
    Tensor::from_vec(v, &[k, 5]).unwrap()
}

#[test]
fn roi_head_and_detections_match_torchvision() {
    let _seeded = d2l_testkit::seeded(0);
    let f = fixture("parts");
    let (bh, bp, _, _) = roi_modules(&f);
    let props: Vec<Vec<Box4>> = (0..2)
        .map(|i| tensor_boxes(&f[&format!("roi.proposals.{i}")]))
        .collect();
    let pooled = roi_align(&f["rpn.feature"], &rois(&props), (7, 7), 0.125, 2, false).unwrap();
    close(&f32s(&pooled), &f32s(&f["roi.pooled"]), 1e-5, "pooled");
    let (logits, regr) = bp.predict(&bh.forward(&pooled).unwrap()).unwrap();
    close(
        &f32s(&logits),
        &f32s(&f["roi.class_logits"]),
        1e-4,
        "class logits",
    );
    close(
        &f32s(&regr),
        &f32s(&f["roi.box_regression"]),
        1e-4,
        "box regression",
    );
    let (lg, rg) = (f32s(&f["roi.class_logits"]), f32s(&f["roi.box_regression"]));
    for (i, size) in [(64, 64), (60, 56)].into_iter().enumerate() {
        let d = postprocess_detections(
            &lg[i * 30..(i + 1) * 30],
            &rg[i * 120..(i + 1) * 120],
            &props[i],
            size,
            0.05,
            0.5,
            10,
        );
        let boxes: Vec<Box4> = d.iter().map(|x| x.bbox).collect();
        close(
            &flat(&boxes),
            &f32s(&f[&format!("roi.det.{i}.boxes")]),
            1e-4,
            "detection boxes",
        );
        let scores: Vec<f32> = d.iter().map(|x| x.score).collect();
        close(
            &scores,
            &f32s(&f[&format!("roi.det.{i}.scores")]),
            1e-5,
            "detection scores",
        );
        let labels: Vec<i64> = d.iter().map(|x| x.label as i64).collect();
        assert_eq!(labels, f[&format!("roi.det.{i}.labels")].to_vec::<i64>());
    }
}

#[test]
fn roi_training_samples_losses_and_masks_match_torchvision() {
    let _seeded = d2l_testkit::seeded(0);
    let f = fixture("parts");
    let (bh, bp, mh, mp) = roi_modules(&f);
    let props: Vec<Vec<Box4>> = (0..2)
        .map(|i| tensor_boxes(&f[&format!("roi.proposals.{i}")]))
        .collect();
    let tg = targets(&f);
    let sel = select_training_samples(&props, &tg, (16, 0.25), &mut Sampling::First);
    for (i, s) in sel.iter().enumerate() {
        close(
            &flat(&s.proposals),
            &f32s(&f[&format!("roi.train.{i}.proposals")]),
            0.0,
            "sampled proposals",
        );
        let labels: Vec<i64> = s.labels.iter().map(|&l| l as i64).collect();
        assert_eq!(
            labels,
            f[&format!("roi.train.{i}.labels")].to_vec::<i64>(),
            "labels {i}"
        );
        let matched: Vec<i64> = s.matched.iter().map(|&l| l as i64).collect();
        assert_eq!(
            matched,
            f[&format!("roi.train.{i}.matched")].to_vec::<i64>(),
            "matched {i}"
        );
        let t: Vec<f32> = s.targets.iter().flatten().copied().collect();
        close(
            &t,
            &f32s(&f[&format!("roi.train.{i}.regression_targets")]),
            1e-5,
            "regression targets",
        );
    }
    let boxes: Vec<Vec<Box4>> = sel.iter().map(|s| s.proposals.clone()).collect();
    let pooled = roi_align(&f["rpn.feature"], &rois(&boxes), (7, 7), 0.125, 2, false).unwrap();
    let (logits, regr) = bp.predict(&bh.forward(&pooled).unwrap()).unwrap();
    let labels: Vec<usize> = sel.iter().flat_map(|s| s.labels.clone()).collect();
    let t: Vec<f32> = sel
        .iter()
        .flat_map(|s| s.targets.iter().flatten().copied())
        .collect();
    let t = Tensor::from_vec(t, &[labels.len(), 4]).unwrap();
    let (cl, bl) = fastrcnn_loss(&logits, &regr, &labels, &t).unwrap();
    close_loss(&cl, &f["roi.loss.classifier"], "classifier loss");
    close_loss(&bl, &f["roi.loss.box_reg"], "box loss");

    // The mask branch on the positives.
    let mut pos_boxes = Vec::new();
    let mut pos_labels = Vec::new();
    let mut mask_targets = Vec::new();
    for (i, s) in sel.iter().enumerate() {
        let keep: Vec<usize> = (0..s.labels.len()).filter(|&k| s.labels[k] > 0).collect();
        let b: Vec<Box4> = keep.iter().map(|&k| s.proposals[k]).collect();
        let m: Vec<usize> = keep.iter().map(|&k| s.matched[k]).collect();
        pos_labels.extend(keep.iter().map(|&k| s.labels[k]));
        let mt = project_masks(tg[i].masks.as_ref().unwrap(), &b, &m, 28).unwrap();
        if i == 0 {
            close(
                &f32s(&mt),
                &f32s(&f["mask.targets.0"]),
                1e-5,
                "mask targets",
            );
        }
        mask_targets.push(mt);
        pos_boxes.push(b);
    }
    let pooled = roi_align(
        &f["rpn.feature"],
        &rois(&pos_boxes),
        (14, 14),
        0.125,
        2,
        false,
    )
    .unwrap();
    let ml = mp.forward(&mh.forward(&pooled).unwrap()).unwrap();
    close(&f32s(&ml), &f32s(&f["mask.logits"]), 1e-4, "mask logits");
    let mt = Tensor::cat(&mask_targets.iter().collect::<Vec<_>>(), 0).unwrap();
    let loss = maskrcnn_loss(&ml, &pos_labels, &mt).unwrap();
    close_loss(&loss, &f["mask.loss"], "mask loss");
}

#[test]
fn random_sampling_has_the_counts_and_is_uniform() {
    let _seeded = d2l_testkit::seeded(0);
    // 40 positives, 300 negatives, 20 ignored: 64 with at most a quarter positive.
    let mut labels = vec![0i64; 360];
    for l in labels.iter_mut().take(40) {
        *l = 2;
    }
    for l in labels.iter_mut().skip(40).take(20) {
        *l = -1;
    }
    let mut g = Generator::new(7);
    let mut hits = vec![0usize; 360];
    let trials = 3000;
    for _ in 0..trials {
        let (p, n) = sample_pos_neg(&labels, 64, 0.25, &mut Sampling::Random(&mut g));
        assert_eq!((p.len(), n.len()), (16, 48));
        assert!(p.iter().all(|&i| labels[i] >= 1) && n.iter().all(|&i| labels[i] == 0));
        assert!(p.windows(2).all(|w| w[0] < w[1]) && n.windows(2).all(|w| w[0] < w[1]));
        for &i in p.iter().chain(&n) {
            hits[i] += 1;
        }
    }
    // Each positive is picked with probability 16/40, each negative 48/300: within 5 sd.
    for (range, prob) in [(0..40, 16.0 / 40.0), (60..360, 48.0 / 300.0)] {
        for i in range {
            let mean = trials as f64 * prob;
            let sd = (trials as f64 * prob * (1.0 - prob)).sqrt();
            assert!(
                (hits[i] as f64 - mean).abs() < 5.0 * sd,
                "index {i}: {} vs {mean}",
                hits[i]
            );
        }
    }
    assert!(hits[40..60].iter().all(|&h| h == 0));
    // Fewer positives than the quota: all of them, and negatives fill the batch.
    let few = [1i64, 0, 0, 0, 1, -1, 0];
    let (p, n) = sample_pos_neg(&few, 4, 0.75, &mut Sampling::Random(&mut g));
    assert_eq!((p, n.len()), (vec![0, 4], 2));
}

#[test]
fn composed_losses_have_correct_gradients() {
    let _seeded = d2l_testkit::seeded(0);
    // The heads' losses are built from ops with their own gradient checks; this checks
    // the composition (index selection of the sampled rows and the class-specific deltas).
    let mut g = Generator::new(3);
    let mut rnd = |n: usize| -> Vec<f64> { (0..n).map(|_| g.normal_f64()).collect() };
    let obj = Tensor::from_vec(rnd(10), &[10]).unwrap();
    let del = Tensor::from_vec(rnd(40), &[10, 4]).unwrap();
    let tgt = Tensor::from_vec(rnd(40), &[10, 4]).unwrap();
    d2l_tensor::gradcheck(
        |x| {
            let (a, b) = rpn_loss(&x[0], &x[1], &[1, 4], &[0, 2, 7], &x[2])?;
            a.add(&b)
        },
        &[obj, del, tgt.clone()],
    )
    .unwrap();
    let logits = Tensor::from_vec(rnd(15), &[5, 3]).unwrap();
    let reg = Tensor::from_vec(rnd(60), &[5, 12]).unwrap();
    let t5 = Tensor::from_vec(rnd(20), &[5, 4]).unwrap();
    d2l_tensor::gradcheck(
        |x| {
            let (a, b) = fastrcnn_loss(&x[0], &x[1], &[0, 2, 1, 0, 2], &x[2])?;
            a.add(&b)
        },
        &[logits, reg, t5],
    )
    .unwrap();
    let ml = Tensor::from_vec(rnd(2 * 3 * 4 * 4), &[2, 3, 4, 4]).unwrap();
    let mt: Vec<f64> = (0..32).map(|i| (i % 3 == 0) as i32 as f64).collect();
    let mt = Tensor::from_vec(mt, &[2, 4, 4]).unwrap();
    d2l_tensor::gradcheck(|x| maskrcnn_loss(&x[0], &[2, 1], &x[1]), &[ml, mt]).unwrap();
}

fn fixture_config() -> RcnnConfig {
    RcnnConfig {
        num_classes: 3,
        body_layers: 1,
        anchor_sizes: vec![16.0, 32.0],
        aspect_ratios: vec![0.5, 1.0, 2.0],
        representation: 16,
        mask_layers: Some(vec![16, 16]),
        mask_dim_reduced: 16,
        rpn_pre_nms_top_n: (200, 200),
        rpn_post_nms_top_n: (50, 50),
        box_score_thresh: 0.0,
        detections_per_img: 20,
        ..RcnnConfig::small(3, true)
    }
}

#[test]
fn a_torchvision_mask_rcnn_state_dict_loads_and_gives_its_outputs() {
    let _seeded = d2l_testkit::seeded(0);
    let f = fixture("model");
    let net = MaskRcnn::new(fixture_config()).unwrap();
    load(&net, &f, "state.");
    net.eval();
    let x = f["input"].reshape([1, 3, 64, 64]).unwrap();
    let feat = net.features(&x).unwrap();
    close(
        &f32s(&feat.narrow(1, 0, 8).unwrap().contiguous().unwrap()),
        &f32s(&f["out.feature"]),
        1e-4,
        "backbone feature (first 8 channels)",
    );
    let (props, _, _, _) = net.rpn(&feat, (64, 64)).unwrap();
    close(
        &flat(&props[0].0),
        &f32s(&f["out.proposals"]),
        1e-3,
        "proposals",
    );
    let out = net.detect(&x).unwrap();
    let d = &out[0].detections;
    let boxes: Vec<Box4> = d.iter().map(|x| x.bbox).collect();
    close(&flat(&boxes), &f32s(&f["out.boxes"]), 1e-3, "boxes");
    let scores: Vec<f32> = d.iter().map(|x| x.score).collect();
    close(&scores, &f32s(&f["out.scores"]), 1e-4, "scores");
    let labels: Vec<i64> = d.iter().map(|x| x.label as i64).collect();
    assert_eq!(labels, f["out.labels"].to_vec::<i64>());
    let masks = out[0].masks.as_ref().unwrap();
    let mv = f32s(masks);
    let want = f32s(&f["out.masks"]);
    for k in 0..4 {
        let pasted = paste_mask(&mv[k * 784..(k + 1) * 784], 28, &boxes[k], 64, 64);
        close(
            &pasted,
            &want[k * 4096..(k + 1) * 4096],
            1e-4,
            "pasted mask",
        );
    }
}

#[test]
fn losses_of_the_whole_model_train_and_faster_rcnn_has_no_mask_branch() {
    let _seeded = d2l_testkit::seeded(0);
    let f = fixture("parts");
    let tg = targets(&f);
    let mut cfg = RcnnConfig::small(3, true);
    cfg.body_layers = 1;
    cfg.mask_layers = Some(vec![8]);
    let net = MaskRcnn::new(cfg.clone()).unwrap();
    let x = Tensor::rand(&[2, 3, 64, 64]);
    let mut g = Generator::new(1);
    let l = net.losses(&x, &tg, &mut Sampling::Random(&mut g)).unwrap();
    let total = l.total().unwrap();
    assert!(total.item().unwrap().is_finite() && l.loss_mask.is_some());
    total.backward().unwrap();
    let named = net.named_parameters();
    assert!(named
        .iter()
        .any(|(n, _)| n == "roi_heads.mask_predictor.conv5_mask.weight"));
    for (n, p) in &named {
        assert!(p.grad().is_some(), "no gradient reached {n}");
    }
    cfg.mask_layers = None;
    let faster = MaskRcnn::new(cfg).unwrap();
    assert!(!faster
        .named_parameters()
        .iter()
        .any(|(n, _)| n.contains("mask")));
    assert!(faster
        .losses(&x, &tg, &mut Sampling::First)
        .unwrap()
        .loss_mask
        .is_none());
}

#[test]
fn a_few_sgd_steps_fit_one_batch() {
    use d2l_nn::optim::{Optimizer, Sgd};
    let _seeded = d2l_testkit::seeded(5);
    let f = fixture("parts");
    let mut tg = targets(&f);
    for t in tg.iter_mut() {
        t.masks = None;
    }
    let mut cfg = RcnnConfig::small(3, false);
    cfg.body_layers = 1;
    cfg.representation = 32;
    let net = MaskRcnn::new(cfg).unwrap();
    let x = Tensor::rand(&[2, 3, 64, 64]);
    let mut opt = Sgd::new(net.parameters(), 0.005).unwrap().momentum(0.9);
    let mut losses = Vec::new();
    for _ in 0..20 {
        opt.zero_grad();
        let l = net
            .losses(&x, &tg, &mut Sampling::First)
            .unwrap()
            .total()
            .unwrap();
        losses.push(l.item().unwrap());
        l.backward().unwrap();
        opt.step().unwrap();
    }
    // (Other tests draw from the global generator too, so the initialisation varies from
    // run to run; the bound leaves room for that.)
    let late = losses[15..].iter().copied().fold(f32::INFINITY, f32::min);
    assert!(
        late < 0.85 * losses[0],
        "the loss should fall when fitting one batch: {losses:?}"
    );
}
