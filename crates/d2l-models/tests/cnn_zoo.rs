//! The CNN zoo of D2L chapters 6–7: parameter counts of the reference's section D at the
//! book's configuration, the book's layer walks (output shapes), FLOP counts, the blocks'
//! demo shapes, the from-scratch batch norm, initialisation, sizes and errors, and forward
//! parity with PyTorch.
//!
//! # PyTorch parity fixtures
//!
//! `tests/fixtures/cnn_zoo/<model>.safetensors` were written once by
//! `scripts/gen_zoo_fixtures.py` from the PyTorch definitions in `scripts/zoo_torch.py`:
//! the model's `state_dict` (the book's module names, loaded here by name), an input batch
//! and PyTorch's outputs. Every model is checked in eval mode (`no_grad`, running
//! statistics); the batch-norm models (`lenet-bn-scratch`, `lenet-bn`, `resnet18`,
//! `densenet`) also in training mode, output and updated running statistics. To keep the
//! files small (about 2.2 MB in all) the heavy models are checked at a reduced width and
//! input — the same code path as the full model:
//!
//! | model | width_mult | input |
//! |---|---|---|
//! | `lenet`, `lenet-relu-max` | 1 | 2×1×28×28 |
//! | `alexnet` | 1/32 | 2×1×99×99 |
//! | `vgg11-full` (covers `vgg11`: same builder, channel ratio 1 instead of 4) | 1/32 | 2×1×64×64 |
//! | `nin` | 1/8 | 2×1×99×99 |
//! | `googlenet` | 1/16 | 2×1×64×64 |
//! | `lenet-bn-scratch`, `lenet-bn` | 1 | 4×1×28×28 |
//! | `resnet18` | 1/16 | 4×1×64×64 |
//! | `densenet` | 1/4 | 4×1×64×64 |

use d2l_models::cnn::{
    self, batch_norm, bn_report, conv_block, first_bn_gamma_beta, transition_block, BatchNorm,
    DenseBlock, Inception, Residual,
};
use d2l_models::summary::{summarize, Summary};
use d2l_models::zoo::{self, BuildConfig, TaskKind};
use d2l_nn::conv::Conv2d;
use d2l_nn::layers::Linear;
use d2l_nn::serialize::{load, load_state_dict};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{no_grad, Result, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;

mod common;
use common::CNNS;
// Tests share the global generator: each one holds the lock of `seeded` and reseeds.
use d2l_testkit::seeded;

fn cfg(shape: &[usize], width: f64) -> BuildConfig {
    let mut c = BuildConfig::new(shape, 10);
    c.width_mult = width;
    c
}

fn build(name: &str, shape: &[usize], width: f64) -> Result<Sequential> {
    zoo::model(name)?.build(&cfg(shape, width))
}

fn walk(s: &Summary) -> Vec<(String, Vec<usize>)> {
    s.rows
        .iter()
        .map(|r| (r.class_name().to_string(), r.output_shape.clone()))
        .collect()
}

fn rows(spec: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
    spec.iter()
        .map(|(n, s)| (n.to_string(), s.to_vec()))
        .collect()
}

// ------------------------------------------------------------------------- zoo entries

#[test]
fn the_zoo_lists_every_cnn_with_its_recipe() -> Result<()> {
    let _rng = seeded(0);
    let names = zoo::names();
    for n in CNNS {
        assert!(names.contains(&n), "{n} missing from {names:?}");
        let info = zoo::model(n)?;
        assert_eq!(info.task, TaskKind::Classification);
        assert_eq!(info.default_outputs, 10);
        assert_eq!(info.section, info.recipe.section, "{n}");
        assert_eq!(info.recipe.epochs, 10, "{n}");
        assert_eq!(info.recipe.dataset, "fashion-mnist");
        let side = info.recipe.resize.unwrap_or(28);
        assert_eq!(info.default_input, [1, side, side], "{n}");
    }
    // Book table B.2: (batch, lr, resize).
    let b2: [(&str, usize, f64, Option<usize>, &str); 11] = [
        ("lenet", 256, 0.9, None, "6.6"),
        ("lenet-relu-max", 256, 0.1, None, "6.6"),
        ("alexnet", 128, 0.01, Some(224), "7.1"),
        ("vgg11", 128, 0.05, Some(224), "7.2"),
        ("vgg11-full", 128, 0.05, Some(224), "7.2"),
        ("nin", 128, 0.1, Some(224), "7.3"),
        ("googlenet", 128, 0.1, Some(96), "7.4"),
        ("lenet-bn-scratch", 256, 1.0, None, "7.5"),
        ("lenet-bn", 256, 1.0, None, "7.5"),
        ("resnet18", 256, 0.05, Some(96), "7.6"),
        ("densenet", 256, 0.1, Some(96), "7.7"),
    ];
    for (n, batch, lr, resize, section) in b2 {
        let r = zoo::model(n)?.recipe;
        assert_eq!(
            (r.batch_size, r.lr, r.resize, r.section),
            (batch, lr, resize, section),
            "{n}"
        );
        assert_eq!(r.momentum, 0.0);
        assert_eq!(r.weight_decay, 0.0);
    }
    for n in ["alexnet", "vgg11", "nin"] {
        assert_eq!(zoo::model(n)?.recipe.dropout, Some((0.5, 0.5)), "{n}");
    }
    assert_eq!(
        zoo::model("alexnet")?.recipe.to_string(),
        "§7.1 fashion-mnist: 10 epochs, batch 128, sgd lr 0.01, dropout 0.5/0.5, resize 224"
    );
    Ok(())
}

#[test]
fn parameter_counts_match_section_d() -> Result<()> {
    let _rng = seeded(1);
    let expect = [
        ("lenet", 61_706),            // D.1
        ("lenet-relu-max", 61_706),   // D.1 with ReLU / max pooling
        ("alexnet", 46_764_746),      // D.2
        ("vgg11", 43_093_322),        // D.3, channels / 4, FC 4096
        ("vgg11-full", 128_806_154),  // D.3 full
        ("nin", 1_992_166),           // D.4
        ("googlenet", 5_977_530),     // D.5
        ("lenet-bn-scratch", 44_878), // D.6
        ("lenet-bn", 44_878),         // D.6
        ("resnet18", 11_178_378),     // D.7
        ("densenet", 758_226),        // D.9
    ];
    common::assert_parameter_counts(&expect)?;
    // The parameter count does not depend on the input for the nets ending in global
    // pooling.
    assert_eq!(
        build("resnet18", &[1, 224, 224], 1.0)?.num_parameters(),
        11_178_378
    );
    assert_eq!(
        build("googlenet", &[1, 224, 224], 1.0)?.num_parameters(),
        5_977_530
    );
    // BN-LeNet keeps running statistics as buffers: 2·(6 + 16 + 120 + 84) values (+ 4
    // batch counters for the concise one).
    let bn = build("lenet-bn", &[1, 28, 28], 1.0)?;
    let buffers: usize = bn.named_buffers().iter().map(|(_, t)| t.numel()).sum();
    assert_eq!(buffers, 2 * 226 + 4);
    let bn = build("lenet-bn-scratch", &[1, 28, 28], 1.0)?;
    let buffers: usize = bn.named_buffers().iter().map(|(_, t)| t.numel()).sum();
    assert_eq!(buffers, 2 * 226);
    Ok(())
}

// ------------------------------------------------------------------------- layer walks

#[test]
fn lenet_walk_is_the_books() -> Result<()> {
    let _rng = seeded(2);
    let net = build("lenet", &[1, 28, 28], 1.0)?;
    let s = summarize(&net, &[1, 28, 28])?;
    assert_eq!(
        s.shape_walk(),
        "Conv2d output shape:\t [1, 6, 28, 28]\n\
         Sigmoid output shape:\t [1, 6, 28, 28]\n\
         AvgPool2d output shape:\t [1, 6, 14, 14]\n\
         Conv2d output shape:\t [1, 16, 10, 10]\n\
         Sigmoid output shape:\t [1, 16, 10, 10]\n\
         AvgPool2d output shape:\t [1, 16, 5, 5]\n\
         Flatten output shape:\t [1, 400]\n\
         Linear output shape:\t [1, 120]\n\
         Sigmoid output shape:\t [1, 120]\n\
         Linear output shape:\t [1, 84]\n\
         Sigmoid output shape:\t [1, 84]\n\
         Linear output shape:\t [1, 10]\n"
    );
    // FLOPs per row by the documented rule.
    let flops: Vec<u64> = s.rows.iter().map(|r| r.flops).collect();
    assert_eq!(
        flops,
        [
            6 * 28 * 28 * (2 * 25 + 1),
            6 * 28 * 28,
            6 * 14 * 14 * 4,
            16 * 10 * 10 * (2 * 6 * 25 + 1),
            16 * 10 * 10,
            16 * 5 * 5 * 4,
            0,
            2 * 400 * 120 + 120,
            120,
            2 * 120 * 84 + 84,
            84,
            2 * 84 * 10 + 10,
        ]
    );
    assert_eq!(s.total_flops, 852_370);
    assert_eq!(s.total_params, 61_706);
    let text = s.to_string();
    assert!(text.contains("Total FLOPs per example: 852,370"), "{text}");

    let relu = build("lenet-relu-max", &[1, 28, 28], 1.0)?;
    let s = summarize(&relu, &[1, 28, 28])?;
    let classes: Vec<&str> = s.rows.iter().map(|r| r.class_name()).collect();
    assert_eq!(
        classes,
        [
            "Conv2d",
            "ReLU",
            "MaxPool2d",
            "Conv2d",
            "ReLU",
            "MaxPool2d",
            "Flatten",
            "Linear",
            "ReLU",
            "Linear",
            "ReLU",
            "Linear"
        ]
    );
    assert_eq!(s.output_shape(), [1, 10]);
    Ok(())
}

#[test]
fn alexnet_walk_is_the_books() -> Result<()> {
    let _rng = seeded(3);
    let net = build("alexnet", &[1, 224, 224], 1.0)?;
    let s = summarize(&net, &[1, 224, 224])?;
    assert_eq!(
        walk(&s),
        rows(&[
            ("Conv2d", &[1, 96, 54, 54]),
            ("ReLU", &[1, 96, 54, 54]),
            ("MaxPool2d", &[1, 96, 26, 26]),
            ("Conv2d", &[1, 256, 26, 26]),
            ("ReLU", &[1, 256, 26, 26]),
            ("MaxPool2d", &[1, 256, 12, 12]),
            ("Conv2d", &[1, 384, 12, 12]),
            ("ReLU", &[1, 384, 12, 12]),
            ("Conv2d", &[1, 384, 12, 12]),
            ("ReLU", &[1, 384, 12, 12]),
            ("Conv2d", &[1, 256, 12, 12]),
            ("ReLU", &[1, 256, 12, 12]),
            ("MaxPool2d", &[1, 256, 5, 5]),
            ("Flatten", &[1, 6400]),
            ("Linear", &[1, 4096]),
            ("ReLU", &[1, 4096]),
            ("Dropout", &[1, 4096]),
            ("Linear", &[1, 4096]),
            ("ReLU", &[1, 4096]),
            ("Dropout", &[1, 4096]),
            ("Linear", &[1, 10]),
        ])
    );
    assert_eq!(s.total_params, 46_764_746);
    // About 1.9 GFLOPs per 224×224 image, most of it in the second conv.
    assert_eq!(s.rows[3].flops, 256 * 26 * 26 * (2 * 96 * 25 + 1));
    assert!(
        (1.8e9..2.0e9).contains(&(s.total_flops as f64)),
        "{}",
        s.total_flops
    );
    Ok(())
}

#[test]
fn vgg_walk_is_the_books() -> Result<()> {
    let _rng = seeded(4);
    // The book's walk over the full VGG-11 (7.2).
    let net = build("vgg11-full", &[1, 224, 224], 1.0)?;
    let s = summarize(&net, &[1, 224, 224])?;
    assert_eq!(
        walk(&s),
        rows(&[
            ("Sequential", &[1, 64, 112, 112]),
            ("Sequential", &[1, 128, 56, 56]),
            ("Sequential", &[1, 256, 28, 28]),
            ("Sequential", &[1, 512, 14, 14]),
            ("Sequential", &[1, 512, 7, 7]),
            ("Flatten", &[1, 25088]),
            ("Linear", &[1, 4096]),
            ("ReLU", &[1, 4096]),
            ("Dropout", &[1, 4096]),
            ("Linear", &[1, 4096]),
            ("ReLU", &[1, 4096]),
            ("Dropout", &[1, 4096]),
            ("Linear", &[1, 10]),
        ])
    );
    // A block's FLOPs are its convs, ReLUs and pool: block 1 = conv + ReLU + 2×2 pool.
    let conv1 = 64 * 224 * 224 * (2 * 9 + 1);
    assert_eq!(s.rows[0].flops, conv1 + 64 * 224 * 224 + 64 * 112 * 112 * 4);
    // The trained, quarter-width network (small_conv_arch, ratio 4).
    let small = build("vgg11", &[1, 224, 224], 1.0)?;
    let s = summarize(&small, &[1, 224, 224])?;
    let shapes: Vec<Vec<usize>> = s.rows.iter().map(|r| r.output_shape.clone()).collect();
    assert_eq!(shapes[4], [1, 128, 7, 7]);
    assert_eq!(shapes[5], [1, 6272]);
    assert_eq!(
        cnn::small_conv_arch(4)?,
        [(1, 16), (1, 32), (2, 64), (2, 128), (2, 128)]
    );
    assert!(cnn::small_conv_arch(0).is_err());
    Ok(())
}

#[test]
fn nin_walk_is_the_books() -> Result<()> {
    let _rng = seeded(5);
    let net = build("nin", &[1, 224, 224], 1.0)?;
    let s = summarize(&net, &[1, 224, 224])?;
    assert_eq!(
        walk(&s),
        rows(&[
            ("Sequential", &[1, 96, 54, 54]),
            ("MaxPool2d", &[1, 96, 26, 26]),
            ("Sequential", &[1, 256, 26, 26]),
            ("MaxPool2d", &[1, 256, 12, 12]),
            ("Sequential", &[1, 384, 12, 12]),
            ("MaxPool2d", &[1, 384, 5, 5]),
            ("Dropout", &[1, 384, 5, 5]),
            ("Sequential", &[1, 10, 5, 5]),
            ("AdaptiveAvgPool2d", &[1, 10, 1, 1]),
            ("Flatten", &[1, 10]),
        ])
    );
    // Global average pooling costs one FLOP per input element.
    assert_eq!(s.rows[8].flops, 10 * 5 * 5);
    // The last block ends in ReLU: the logits are never negative.
    net.eval();
    let y = no_grad(|| net.forward(&Tensor::randn(&[2, 1, 224, 224])))?;
    assert!(y.to_f64_vec().iter().all(|&v| v >= 0.0));
    Ok(())
}

#[test]
fn googlenet_walk_is_the_books() -> Result<()> {
    let _rng = seeded(6);
    let net = build("googlenet", &[1, 96, 96], 1.0)?;
    let s = summarize(&net, &[1, 96, 96])?;
    assert_eq!(
        walk(&s),
        rows(&[
            ("Sequential", &[1, 64, 24, 24]),
            ("Sequential", &[1, 192, 12, 12]),
            ("Sequential", &[1, 480, 6, 6]),
            ("Sequential", &[1, 832, 3, 3]),
            ("Sequential", &[1, 1024]),
            ("Linear", &[1, 10]),
        ])
    );
    // Inside b3: two Inception blocks, 256 then 480 channels.
    let b3 = net.get_as::<Sequential>(2).unwrap();
    let inner = summarize(b3, &[192, 12, 12])?;
    assert_eq!(
        walk(&inner),
        rows(&[
            ("Inception", &[1, 256, 12, 12]),
            ("Inception", &[1, 480, 12, 12]),
            ("MaxPool2d", &[1, 480, 6, 6]),
        ])
    );
    // A block's row counts what is inside it.
    assert_eq!(s.rows[2].flops, inner.total_flops);
    assert_eq!(s.rows[2].params, inner.total_params);
    let inc = b3.get_as::<Inception>(0).unwrap();
    assert_eq!(inc.out_channels(), 256);
    // Inception(192, 64, (96, 128), (16, 32), 32) at 12×12: convs + ReLUs + pool.
    let hw = 144u64;
    let conv = |cin: u64, cout: u64, k: u64| hw * cout * (2 * cin * k * k + 1);
    let expect = conv(192, 64, 1)
        + conv(192, 96, 1)
        + conv(96, 128, 3)
        + conv(192, 16, 1)
        + conv(16, 32, 5)
        + hw * 192 * 9
        + conv(192, 32, 1)
        + hw * (64 + 96 + 128 + 16 + 32 + 32);
    assert_eq!(inner.rows[0].flops, expect);
    assert_eq!(
        common::parameter_names(inc),
        [
            "p1_1.weight",
            "p1_1.bias",
            "p2_1.weight",
            "p2_1.bias",
            "p2_2.weight",
            "p2_2.bias",
            "p3_1.weight",
            "p3_1.bias",
            "p3_2.weight",
            "p3_2.bias",
            "p4_2.weight",
            "p4_2.bias"
        ]
    );
    assert!(inc
        .describe()
        .starts_with("Inception(in_channels=192, c1=64"));
    Ok(())
}

#[test]
fn lenet_bn_walk_has_no_padding_on_the_first_conv() -> Result<()> {
    let _rng = seeded(7);
    for name in ["lenet-bn-scratch", "lenet-bn"] {
        let net = build(name, &[1, 28, 28], 1.0)?;
        let buffers = |net: &Sequential| -> Vec<Vec<f64>> {
            net.named_buffers()
                .iter()
                .map(|(_, t)| t.to_f64_vec())
                .collect()
        };
        let before = buffers(&net);
        let s = summarize(&net, &[1, 28, 28])?;
        let shapes: Vec<Vec<usize>> = s.rows.iter().map(|r| r.output_shape.clone()).collect();
        assert_eq!(
            shapes,
            [
                vec![1, 6, 24, 24],
                vec![1, 6, 24, 24],
                vec![1, 6, 24, 24],
                vec![1, 6, 12, 12],
                vec![1, 16, 8, 8],
                vec![1, 16, 8, 8],
                vec![1, 16, 8, 8],
                vec![1, 16, 4, 4],
                vec![1, 256],
                vec![1, 120],
                vec![1, 120],
                vec![1, 120],
                vec![1, 84],
                vec![1, 84],
                vec![1, 84],
                vec![1, 10],
            ],
            "{name}"
        );
        // Batch norm costs two FLOPs per element.
        assert_eq!(s.rows[1].flops, 2 * 6 * 24 * 24, "{name}");
        assert_eq!(s.rows[10].flops, 2 * 120, "{name}");
        // The walk (a batch of one) works on a net in training mode, leaves the running
        // statistics alone and the net in training mode.
        assert_eq!(before, buffers(&net), "{name}");
        let x = Tensor::rand(&[3, 1, 28, 28]);
        net.forward(&x)?; // a training forward moves the statistics
        assert_ne!(
            before,
            buffers(&net),
            "{name}: not in training mode after summarize"
        );
    }
    let scratch = build("lenet-bn-scratch", &[1, 28, 28], 1.0)?;
    assert_eq!(
        scratch.get(1).unwrap().describe(),
        "BatchNorm(6, num_dims=4)"
    );
    assert_eq!(
        scratch.get(10).unwrap().describe(),
        "BatchNorm(120, num_dims=2)"
    );
    Ok(())
}

#[test]
fn resnet_walk_is_the_books() -> Result<()> {
    let _rng = seeded(8);
    let net = build("resnet18", &[1, 224, 224], 1.0)?;
    // The book's walk uses a 224×224 input.
    let s = summarize(&net, &[1, 224, 224])?;
    assert_eq!(
        walk(&s),
        rows(&[
            ("Sequential", &[1, 64, 56, 56]),
            ("Sequential", &[1, 64, 56, 56]),
            ("Sequential", &[1, 128, 28, 28]),
            ("Sequential", &[1, 256, 14, 14]),
            ("Sequential", &[1, 512, 7, 7]),
            ("AdaptiveAvgPool2d", &[1, 512, 1, 1]),
            ("Flatten", &[1, 512]),
            ("Linear", &[1, 10]),
        ])
    );
    // About 3.4 GFLOPs per 1×224×224 image (1.7 G multiply-adds, the well-known ResNet-18
    // figure less the first conv's two extra input channels).
    assert!(
        (3.3e9..3.6e9).contains(&(s.total_flops as f64)),
        "{}",
        s.total_flops
    );
    // The 96×96 training input: 24 → 24 → 12 → 6 → 3.
    let s = summarize(&net, &[1, 96, 96])?;
    let sides: Vec<usize> = s.rows[..5].iter().map(|r| r.output_shape[2]).collect();
    assert_eq!(sides, [24, 24, 12, 6, 3]);
    // Parameter names follow the book's modules.
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"2.0.conv3.weight".to_string()));
    assert!(!names.iter().any(|n| n.starts_with("1.0.conv3")));
    assert_eq!(names[0], "0.0.weight");
    assert_eq!(names.last().unwrap(), "7.bias");
    Ok(())
}

#[test]
fn densenet_walk_is_the_books() -> Result<()> {
    let _rng = seeded(9);
    let net = build("densenet", &[1, 96, 96], 1.0)?;
    let s = summarize(&net, &[1, 96, 96])?;
    assert_eq!(
        walk(&s),
        rows(&[
            ("Sequential", &[1, 64, 24, 24]),
            ("DenseBlock", &[1, 192, 24, 24]),
            ("Sequential", &[1, 96, 12, 12]),
            ("DenseBlock", &[1, 224, 12, 12]),
            ("Sequential", &[1, 112, 6, 6]),
            ("DenseBlock", &[1, 240, 6, 6]),
            ("Sequential", &[1, 120, 3, 3]),
            ("DenseBlock", &[1, 248, 3, 3]),
            ("BatchNorm2d", &[1, 248, 3, 3]),
            ("ReLU", &[1, 248, 3, 3]),
            ("AdaptiveAvgPool2d", &[1, 248, 1, 1]),
            ("Flatten", &[1, 248]),
            ("Linear", &[1, 10]),
        ])
    );
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"1.net.3.2.weight".to_string()), "{names:?}");
    Ok(())
}

#[test]
fn blocks_give_the_books_demo_shapes() -> Result<()> {
    let _rng = seeded(10);
    // 7.6: Residual(3, 3) keeps (4, 3, 6, 6); Residual(3, 6, use_1x1conv, strides=2)
    // halves it to (4, 6, 3, 3).
    let x = Tensor::rand(&[4, 3, 6, 6]);
    let blk = Residual::new(3, 3, false, 1)?;
    assert_eq!(blk.forward(&x)?.shape(), [4, 3, 6, 6]);
    let blk = Residual::new(3, 6, true, 2)?;
    assert_eq!(blk.forward(&x)?.shape(), [4, 6, 3, 3]);
    assert_eq!(
        common::parameter_names(&blk),
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "conv3.weight",
            "conv3.bias",
            "bn1.weight",
            "bn1.bias",
            "bn2.weight",
            "bn2.bias"
        ]
    );
    assert_eq!(
        blk.describe(),
        "Residual(input_channels=3, num_channels=6, use_1x1conv=True, strides=2)"
    );
    let e = Residual::new(3, 6, false, 1).err().unwrap().to_string();
    assert!(e.contains("use_1x1conv"), "{e}");
    // 7.7: DenseBlock(2, 3, 10) on (4, 3, 8, 8) gives (4, 23, 8, 8); transition_block(23,
    // 10) gives (4, 10, 4, 4).
    let x = Tensor::rand(&[4, 3, 8, 8]);
    let blk = DenseBlock::new(2, 3, 10)?;
    let y = blk.forward(&x)?;
    assert_eq!(y.shape(), [4, 23, 8, 8]);
    assert_eq!(blk.out_channels(), 23);
    assert_eq!(
        transition_block(23, 10)?.forward(&y)?.shape(),
        [4, 10, 4, 4]
    );
    assert_eq!(conv_block(3, 10)?.forward(&x)?.shape(), [4, 10, 8, 8]);
    // The dense block passes its input through unchanged in the first channels.
    assert_eq!(y.narrow(1, 0, 3)?.to_f64_vec(), x.to_f64_vec());
    // 7.4: an Inception block keeps the size and concatenates its paths.
    let inc = Inception::new(3, 2, (4, 5), (1, 3), 6)?;
    assert_eq!(inc.forward(&x)?.shape(), [4, 16, 8, 8]);
    // 7.3 / 7.2 blocks.
    assert_eq!(
        cnn::nin_block(3, 5, 3, 1, 1)?.forward(&x)?.shape(),
        [4, 5, 8, 8]
    );
    assert_eq!(cnn::vgg_block(2, 3, 7)?.forward(&x)?.shape(), [4, 7, 4, 4]);
    assert_eq!(
        cnn::resnet_block(3, 6, 2, false)?.forward(&x)?.shape(),
        [4, 6, 4, 4]
    );
    Ok(())
}

// ------------------------------------------------------------------------- batch norm

#[test]
fn scratch_batch_norm_is_the_books() -> Result<()> {
    let _rng = seeded(11);
    // 4-D: per-channel statistics over batch, height and width; biased variance.
    let x = Tensor::randn(&[3, 2, 4, 5]);
    let gamma = Tensor::ones(&[1, 2, 1, 1]);
    let beta = Tensor::zeros(&[1, 2, 1, 1]);
    let mm = Tensor::zeros(&[1, 2, 1, 1]);
    let mv = Tensor::ones(&[1, 2, 1, 1]);
    let (y, m, v) = batch_norm(&x, &gamma, &beta, &mm, &mv, 1e-5, 0.9, true)?;
    let xs = x.to_f64_vec();
    for c in 0..2 {
        let vals: Vec<f64> = (0..3)
            .flat_map(|n| (0..20).map(move |i| (n, i)))
            .map(|(n, i)| xs[n * 40 + c * 20 + i])
            .collect();
        let mean = vals.iter().sum::<f64>() / 60.0;
        let var = vals.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 60.0;
        assert!((m.to_f64_vec()[c] - 0.1 * mean).abs() < 1e-6);
        assert!((v.to_f64_vec()[c] - (0.9 + 0.1 * var)).abs() < 1e-5);
        let y0 = y.to_f64_vec()[c * 20];
        assert!((y0 - (vals[0] - mean) / (var + 1e-5).sqrt()).abs() < 1e-4);
    }
    assert_eq!(m.shape(), [1, 2, 1, 1]);
    // Eval: the moving statistics normalise, and come back unchanged.
    let (y, m2, _) = batch_norm(&x, &gamma, &beta, &m, &v, 1e-5, 0.9, false)?;
    assert_eq!(m2.to_f64_vec(), m.to_f64_vec());
    let want = (xs[0] - m.to_f64_vec()[0]) / (v.to_f64_vec()[0] + 1e-5).sqrt();
    assert!((y.to_f64_vec()[0] - want).abs() < 1e-5);
    // 2-D: per feature over the batch; the moving statistics keep shape [1, C].
    let x2 = Tensor::randn(&[5, 3]);
    let (y2, m3, _) = batch_norm(
        &x2,
        &Tensor::ones(&[1, 3]),
        &Tensor::zeros(&[1, 3]),
        &Tensor::zeros(&[1, 3]),
        &Tensor::ones(&[1, 3]),
        1e-5,
        0.9,
        true,
    )?;
    assert_eq!(y2.shape(), [5, 3]);
    assert_eq!(m3.shape(), [1, 3]);
    let col_mean: f64 = (0..5).map(|i| y2.to_f64_vec()[i * 3]).sum::<f64>() / 5.0;
    assert!(col_mean.abs() < 1e-5);
    // Other ranks are errors.
    let e = batch_norm(
        &Tensor::rand(&[2, 3, 4]),
        &gamma,
        &beta,
        &mm,
        &mv,
        1e-5,
        0.9,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("rank 3"), "{e}");

    // The layer: parameters gamma / beta, buffers moving_mean / moving_var; training mode
    // updates the buffers, eval mode uses them.
    let bn = BatchNorm::new(2, 4)?;
    let names: Vec<String> = bn.state_dict().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["gamma", "beta", "moving_mean", "moving_var"]);
    assert_eq!(bn.num_parameters(), 4);
    bn.forward(&x)?;
    assert!((bn.moving_mean.to_f64_vec()[0] - m.to_f64_vec()[0]).abs() < 1e-7);
    bn.eval();
    let before = bn.moving_var.to_f64_vec();
    bn.forward(&x)?;
    assert_eq!(bn.moving_var.to_f64_vec(), before);
    // Gradients reach gamma and beta.
    bn.train();
    bn.forward(&x)?.sum_all()?.backward()?;
    assert!(bn.gamma.grad().is_some() && bn.beta.grad().is_some());
    assert!(BatchNorm::new(2, 3).is_err());
    assert!(BatchNorm::new(0, 2).is_err());
    let e = bn
        .forward(&Tensor::rand(&[2, 3, 4, 4]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 channels"), "{e}");
    Ok(())
}

#[test]
fn first_bn_layer_gamma_and_beta_are_printed_as_the_book_does() -> Result<()> {
    let _rng = seeded(12);
    for name in ["lenet-bn-scratch", "lenet-bn"] {
        let net = build(name, &[1, 28, 28], 1.0)?;
        let (g, b) = first_bn_gamma_beta(&net).unwrap();
        assert_eq!(g, vec![1.0; 6]);
        assert_eq!(b, vec![0.0; 6]);
        let r = bn_report(name, &net).unwrap();
        assert_eq!(
            r,
            "gamma: tensor([1.0000, 1.0000, 1.0000, 1.0000, 1.0000, 1.0000])\n\
             beta: tensor([0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000])"
        );
    }
    let net = build("resnet18", &[1, 96, 96], 0.25)?;
    assert!(bn_report("resnet18", &net).is_none());
    assert!(first_bn_gamma_beta(&build("lenet", &[1, 28, 28], 1.0)?).is_none());
    Ok(())
}

// ------------------------------------------------------------------------- init, sizes

#[test]
fn weights_are_xavier_uniform_biases_pytorch_default() -> Result<()> {
    let _rng = seeded(13);
    let net = build("lenet", &[1, 28, 28], 1.0)?;
    let l = net.get_as::<Linear>(7).unwrap();
    let a = (6.0f64 / (400.0 + 120.0)).sqrt();
    let w = l.weight.to_f64_vec();
    assert!(w.iter().all(|v| v.abs() <= a + 1e-7));
    let var = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
    assert!((var / (a * a / 3.0) - 1.0).abs() < 0.05, "var {var}");
    // Bias: PyTorch's U(±1/√400), untouched by the Xavier init.
    let b = l.bias.as_ref().unwrap().to_f64_vec();
    assert!(b.iter().all(|v| v.abs() <= 0.05 + 1e-7));
    assert!(b.iter().any(|v| v.abs() > 0.01));
    // Conv weight: fans include the receptive field (fan_in 6·25, fan_out 16·25).
    let c = net.get_as::<Conv2d>(3).unwrap();
    let a = (6.0f64 / (150.0 + 400.0)).sqrt();
    let w = c.weight.to_f64_vec();
    assert!(w.iter().all(|v| v.abs() <= a + 1e-7));
    assert!(w.iter().any(|v| v.abs() > 0.8 * a));
    // Inside blocks too (Residual's shortcut conv).
    let net = build("resnet18", &[1, 96, 96], 0.25)?;
    let w = net.parameter("2.0.conv3.weight")?;
    let (cin, cout) = (16.0, 32.0);
    let a = (6.0f64 / (cin + cout)).sqrt();
    assert!(w.to_f64_vec().iter().any(|v| v.abs() > 0.8 * a));
    assert!(w.to_f64_vec().iter().all(|v| v.abs() <= a + 1e-7));
    Ok(())
}

#[test]
fn width_mult_and_resize_give_smaller_networks() -> Result<()> {
    let _rng = seeded(14);
    for name in CNNS {
        let info = zoo::model(name)?;
        let full = info.build(&info.default_config())?.num_parameters();
        let side = info.recipe.resize.map(|r| r / 2).unwrap_or(28);
        let mut c = cfg(&[1, side, side], 0.25);
        c.num_outputs = 7;
        let net = info.build(&c)?;
        assert!(net.num_parameters() < full / 4, "{name}");
        net.eval();
        let y = no_grad(|| net.forward(&Tensor::rand(&[2, 1, side, side])))?;
        assert_eq!(y.shape(), [2, 7], "{name}");
        assert!(y.to_f64_vec().iter().all(|v| v.is_finite()), "{name}");
        let s = summarize(&net, &[1, side, side])?;
        assert_eq!(s.output_shape(), [1, 7], "{name}");
        assert!(s.total_flops > 0);
    }
    // AlexNet's first Linear follows the input: 112×112 leaves 256·2·2.
    let net = build("alexnet", &[1, 112, 112], 1.0)?;
    assert_eq!(
        net.get_as::<Linear>(14).unwrap().weight.shape(),
        [4096, 1024]
    );
    // Three input channels work (13.x uses RGB).
    let net = build("resnet18", &[3, 32, 32], 0.125)?;
    assert_eq!(
        net.forward(&Tensor::rand(&[2, 3, 32, 32]))?.shape(),
        [2, 10]
    );
    // The dropout override reaches AlexNet, VGG and NiN.
    let mut c = cfg(&[1, 224, 224], 0.0625);
    c.dropout = Some((0.1, 0.2));
    for name in ["alexnet", "vgg11"] {
        let tree = zoo::model(name)?.build(&c)?.summary_tree();
        assert!(
            tree.contains("Dropout(p=0.1)") && tree.contains("Dropout(p=0.2)"),
            "{name}"
        );
    }
    let tree = zoo::model("nin")?.build(&c)?.summary_tree();
    assert!(tree.contains("Dropout(p=0.1)"));
    Ok(())
}

#[test]
fn bad_inputs_are_clear_errors() -> Result<()> {
    let _rng = seeded(15);
    let e = build("alexnet", &[1, 28, 28], 1.0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("alexnet") && e.contains("at least 65x65"), "{e}");
    let e = build("vgg11", &[1, 16, 16], 1.0).err().unwrap().to_string();
    assert!(e.contains("at least 32x32"), "{e}");
    let e = build("lenet", &[784], 1.0).err().unwrap().to_string();
    assert!(e.contains("[C, H, W]"), "{e}");
    let e = build("densenet", &[1, 16, 16], 1.0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("too small"), "{e}");
    assert!(build("googlenet", &[1, 96, 96], 0.0).is_err());
    // A model built for one input size reports another clearly at run time.
    let net = build("lenet", &[1, 28, 28], 1.0)?;
    assert!(net.forward(&Tensor::rand(&[2, 1, 32, 32])).is_err());
    assert!(net.forward(&Tensor::rand(&[2, 3, 28, 28])).is_err());
    Ok(())
}

// ------------------------------------------------------------------------- PyTorch parity

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cnn_zoo")
        .join(format!("{name}.safetensors"))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Loads the fixture of `name` into a model built at `width` for `input`'s shape, and
/// checks the eval-mode output (and, with `train`, the training-mode output and the
/// updated buffers) against PyTorch's to 1e-4.
fn check_parity(name: &str, width: f64, train: bool) -> Result<()> {
    let path = fixture(name);
    let file: BTreeMap<String, Tensor> = load(&path)?.into_iter().collect();
    let x = file["fixture.input"].clone();
    let net = build(name, &x.shape()[1..], width)?;
    let report = load_state_dict(&net, &path, false)?;
    assert!(report.missing.is_empty(), "{name}: {report}");
    assert!(report.mismatched.is_empty(), "{name}: {report}");
    assert!(
        report
            .unexpected
            .iter()
            .all(|(n, _)| n.starts_with("fixture.")),
        "{name}: {report}"
    );
    assert_eq!(report.loaded.len(), net.state_dict().len(), "{name}");

    net.eval();
    let y = no_grad(|| net.forward(&x))?;
    let d = max_abs_diff(&y, &file["fixture.output_eval"]);
    assert!(d <= 1e-4, "{name} eval: max |Δ| = {d:e}");
    if train {
        net.train();
        let y = net.forward(&x)?;
        let d = max_abs_diff(&y, &file["fixture.output_train"]);
        assert!(d <= 1e-4, "{name} train: max |Δ| = {d:e}");
        let buffers = net.named_buffers();
        assert!(!buffers.is_empty());
        for (n, t) in buffers {
            let want = &file[&format!("fixture.after.{n}")];
            let d = max_abs_diff(
                &t.to_dtype(d2l_tensor::DType::F64)?,
                &want.to_dtype(d2l_tensor::DType::F64)?,
            );
            assert!(
                d <= 1e-4,
                "{name} buffer {n} after a training forward: max |Δ| = {d:e}"
            );
        }
    }
    Ok(())
}

#[test]
fn lenet_forward_matches_pytorch() -> Result<()> {
    let _rng = seeded(20);
    check_parity("lenet", 1.0, false)?;
    check_parity("lenet-relu-max", 1.0, false)
}

#[test]
fn alexnet_vgg_nin_forward_match_pytorch() -> Result<()> {
    let _rng = seeded(21);
    check_parity("alexnet", 1.0 / 32.0, false)?;
    check_parity("vgg11-full", 1.0 / 32.0, false)?;
    check_parity("nin", 1.0 / 8.0, false)
}

#[test]
fn googlenet_forward_matches_pytorch() -> Result<()> {
    let _rng = seeded(22);
    check_parity("googlenet", 1.0 / 16.0, false)
}

#[test]
fn batch_norm_lenets_match_pytorch_in_eval_and_training() -> Result<()> {
    let _rng = seeded(23);
    check_parity("lenet-bn-scratch", 1.0, true)?;
    check_parity("lenet-bn", 1.0, true)
}

#[test]
fn resnet_and_densenet_match_pytorch_in_eval_and_training() -> Result<()> {
    let _rng = seeded(24);
    check_parity("resnet18", 1.0 / 16.0, true)?;
    check_parity("densenet", 1.0 / 4.0, true)
}

#[test]
fn fixtures_stay_small() {
    let _rng = seeded(25);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cnn_zoo");
    let total: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total < 3_000_000, "fixtures take {total} bytes");
}
