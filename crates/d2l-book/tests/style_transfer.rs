//! D2L 13.12's training loop on a small image and a small random conv stack.

use d2l_book::style_transfer::{transfer, transfer_with, StyleConfig};
use d2l_nn::conv::Conv2d;
use d2l_nn::layers::ReLU;
use d2l_nn::pool::MaxPool2d;
use d2l_nn::{Module, Sequential};
use d2l_tensor::Tensor;
use d2l_vision::style::StyleWeights;

fn conv(i: usize, o: usize) -> Conv2d {
    Conv2d::builder(i, o, 3).padding(1).build().unwrap()
}

/// conv–relu–conv–relu–pool–conv–relu–conv: indices 0 and 5 are "style", 5 "content".
fn small_net() -> Sequential {
    Sequential::new()
        .add(conv(3, 8))
        .add(ReLU)
        .add(conv(8, 8))
        .add(ReLU)
        .add(MaxPool2d::new(2).stride(2))
        .add(conv(8, 16))
        .add(ReLU)
        .add(conv(16, 16))
}

fn small_cfg(epochs: usize) -> StyleConfig {
    StyleConfig {
        epochs,
        image_size: (32, 48),
        log_every: 1,
        content_layers: vec![5],
        style_layers: vec![0, 5, 7],
        ..StyleConfig::default()
    }
}

fn images() -> (Tensor, Tensor) {
    d2l_tensor::manual_seed(7);
    (Tensor::rand(&[3, 32, 48]), Tensor::rand(&[3, 40, 40]))
}

#[test]
fn defaults_are_the_books() {
    let _seeded = d2l_testkit::seeded(0);
    let c = StyleConfig::default();
    assert_eq!(c.epochs, 500);
    assert_eq!(c.lr, 0.3);
    assert_eq!(c.lr_decay_epoch, 50);
    assert_eq!(c.gamma, 0.8);
    assert_eq!(c.weights, StyleWeights::book());
    assert_eq!(c.image_size, (300, 450));
    assert!(c.post_relu);
    assert_eq!(c.log_every, 10);
    assert_eq!(c.content_layers, vec![25]);
    assert_eq!(c.style_layers, vec![0, 5, 10, 19, 28]);
}

#[test]
fn loss_falls_and_only_the_image_changes() {
    let _seeded = d2l_testkit::seeded(0);
    let net = small_net();
    let (content, style) = images();
    let before: Vec<Vec<f32>> = net.parameters().iter().map(|p| p.to_vec()).collect();
    let cfg = small_cfg(40);
    let (img, log) = transfer(&net, &content, &style, &cfg).unwrap();
    assert_eq!(img.shape(), &[3, 32, 48]);
    let v: Vec<f32> = img.to_vec();
    assert!(v.iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert_eq!(log.len(), 40);
    assert_eq!(log[0].epoch, 1);
    let (first, last) = (log[0].total, log[39].total);
    assert!(last.is_finite() && last < 0.5 * first, "{first} -> {last}");
    // The total is style_repeat · Σ style + Σ content + tv.
    for r in &log {
        let t = 10.0 * r.style + r.content + r.tv;
        assert!(
            (t - r.total).abs() <= 1e-3 * r.total.abs().max(1e-6),
            "{r:?}"
        );
    }
    // The net is frozen and unchanged.
    for (p, b) in net.parameters().iter().zip(&before) {
        assert!(!p.requires_grad());
        assert!(p.grad().is_none());
        assert_eq!(&p.to_vec::<f32>(), b);
    }
    // The image did change: it is no longer the (resized) content image.
    let c: Vec<f32> = content.to_vec();
    let diff: f32 = c.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum::<f32>() / c.len() as f32;
    assert!(diff > 1e-3, "mean change {diff}");
}

#[test]
fn lr_decays_every_step_epochs() {
    let _seeded = d2l_testkit::seeded(0);
    let net = small_net();
    let (content, style) = images();
    let cfg = StyleConfig {
        lr_decay_epoch: 3,
        gamma: 0.5,
        ..small_cfg(10)
    };
    let mut lrs = Vec::new();
    transfer_with(&net, &content, &style, &cfg, |r, _| lrs.push(r.lr)).unwrap();
    let want = [0.3, 0.3, 0.3, 0.15, 0.15, 0.15, 0.075, 0.075, 0.075, 0.0375];
    assert_eq!(lrs.len(), want.len());
    for (e, (a, b)) in lrs.iter().zip(want).enumerate() {
        assert!((a - b).abs() < 1e-12, "epoch {e}: {a} vs {b}");
        assert!((cfg.lr_at(e) - b).abs() < 1e-12);
    }
    // The book's schedule: 0.3 · 0.8^(epoch / 50).
    let book = StyleConfig::default();
    assert!((book.lr_at(49) - 0.3).abs() < 1e-12);
    assert!((book.lr_at(50) - 0.24).abs() < 1e-12);
    assert!((book.lr_at(499) - 0.3 * 0.8f64.powi(9)).abs() < 1e-12);
}

#[test]
fn logs_every_n_epochs_and_the_last() {
    let _seeded = d2l_testkit::seeded(0);
    let net = small_net();
    let (content, style) = images();
    let cfg = StyleConfig {
        log_every: 4,
        ..small_cfg(10)
    };
    let (_, log) = transfer(&net, &content, &style, &cfg).unwrap();
    let epochs: Vec<usize> = log.iter().map(|r| r.epoch).collect();
    assert_eq!(epochs, vec![4, 8, 10]);
}

#[test]
fn bad_settings_are_errors() {
    let _seeded = d2l_testkit::seeded(0);
    let net = small_net();
    let (content, style) = images();
    for cfg in [
        small_cfg(0),
        StyleConfig {
            image_size: (1, 8),
            ..small_cfg(2)
        },
        StyleConfig {
            style_layers: vec![99],
            ..small_cfg(2)
        },
    ] {
        assert!(transfer(&net, &content, &style, &cfg).is_err());
    }
    let gray = Tensor::rand(&[1, 32, 48]);
    assert!(transfer(&net, &gray, &style, &small_cfg(2)).is_err());
}
