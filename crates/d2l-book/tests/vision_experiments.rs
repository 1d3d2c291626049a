//! The mechanics of the chapter 13 experiments (13.1 `augment-demo`, 13.2
//! `finetune-demo`) on tiny settings and the built-in `shapes` set: the two augmentation
//! runs differ only by the augmentation, the fine-tuned network starts from the pretrained
//! body with a new head at 10× the body's learning rate, and the outputs are written.
//! Whether augmentation or fine-tuning *helps* is a question for the full runs
//! (docs/RESULTS.md), not for networks trained for a few steps.

use d2l_book::augment::{
    augment_data, augment_seed, init_seed, run_augment, small_resnet, AugmentKind, AugmentOptions,
    DataChoice,
};
use d2l_book::finetune::{
    body_max_abs_diff, finetune_net, finetune_optimizer, finetune_sgd, head_index, head_pattern,
    mean_loss_equivalent, run_finetune, summed_loss_equivalent, FinetuneOptions,
};
use d2l_book::Common;
use d2l_data::datasets::DatasetName;
use d2l_data::hub::DataHub;
use d2l_data::loader::Dataset;
use d2l_nn::optim::{Adam, Optimizer, Sgd};
use d2l_nn::Module;
use d2l_tensor::Tensor;
use d2l_train::trainer::{cross_entropy_loss, TrainConfig, Trainer};
use d2l_vision::transforms::{hflip, AugmentedDataset, ImageTransform};
use std::sync::Arc;

fn tiny_augment(out: Option<std::path::PathBuf>) -> AugmentOptions {
    AugmentOptions {
        dataset: DataChoice::Images(DatasetName::Shapes),
        hub: DataHub::new("/nonexistent"),
        n_train: 96,
        n_test: 64,
        epochs: 2,
        batch_size: 32,
        width_mult: 0.125,
        common: Common {
            seed: 3,
            out_dir: out,
            quiet: true,
        },
        ..Default::default()
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f64>()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn the_same_seed_gives_the_same_initial_weights() {
    let a = small_resnet(&[1, 28, 28], 10, 0.125, 7).unwrap();
    let b = small_resnet(&[1, 28, 28], 10, 0.125, 7).unwrap();
    let c = small_resnet(&[1, 28, 28], 10, 0.125, 8).unwrap();
    let (pa, pb, pc) = (
        a.named_parameters(),
        b.named_parameters(),
        c.named_parameters(),
    );
    assert_eq!(pa.len(), pb.len());
    let mut differ = false;
    for (((n, x), (_, y)), (_, z)) in pa.iter().zip(&pb).zip(&pc) {
        assert_eq!(values(x), values(y), "{n}");
        differ |= values(x) != values(z);
    }
    assert!(differ, "another seed must give other weights");
    // Xavier-uniform on the head: |w| ≤ √(6 / (fan_in + fan_out)).
    let head = a.parameter("7.weight").unwrap();
    let s = head.shape().to_vec();
    let bound = (6.0 / (s[0] + s[1]) as f64).sqrt();
    assert!(values(&head).iter().all(|w| w.abs() <= bound));
}

#[test]
fn flip_augmentation_only_mirrors_training_images() {
    let opts = tiny_augment(None);
    let data = augment_data(&opts).unwrap();
    let t: Arc<dyn ImageTransform> = Arc::new(AugmentKind::Flip.transform(28, 28).unwrap());
    let aug = AugmentedDataset::new(data.train.clone(), t, augment_seed(opts.common.seed));
    let (mut flipped, mut kept) = (0, 0);
    let mut first_epoch = Vec::new();
    for i in 0..data.train.len() {
        let x = data.train.get(i).unwrap();
        let a = aug.get(i).unwrap();
        assert_eq!(values(&x.y), values(&a.y));
        let (xa, fa) = (values(&a.x), values(&hflip(&x.x).unwrap()));
        if xa == values(&x.x) {
            kept += 1;
        } else {
            assert_eq!(xa, fa, "image {i} is neither itself nor its mirror image");
            flipped += 1;
        }
        first_epoch.push(xa);
    }
    assert!(flipped > 20 && kept > 20, "flipped {flipped}, kept {kept}");
    // A new epoch draws new flips.
    aug.set_epoch(1);
    let changed = (0..data.train.len())
        .filter(|&i| values(&aug.get(i).unwrap().x) != first_epoch[i])
        .count();
    assert!(changed > 10, "only {changed} images changed between epochs");
}

#[test]
fn augment_demo_runs_differ_only_by_the_augmentation() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny_augment(Some(dir.path().to_path_buf()));
    let r = run_augment(&opts).unwrap();
    assert_eq!(r.sizes, (96, 64));
    assert_eq!(r.plain.epochs.len(), 2);
    assert_eq!(r.augmented.epochs.len(), 2);
    assert_eq!(r.augmented.name, "flip");
    // A fresh augmentation epoch for every training epoch.
    assert_eq!(r.augment_epochs, vec![0, 1]);

    // The run without augmentation is a plain Trainer run from the same initialisation,
    // in the same order: its first epoch is reproduced exactly.
    let data = augment_data(&opts).unwrap();
    let net = small_resnet(
        &data.in_shape,
        10,
        opts.width_mult,
        init_seed(opts.common.seed),
    )
    .unwrap();
    let train = d2l_data::loader::DataLoader::new(data.train.clone(), opts.batch_size)
        .unwrap()
        .shuffle(opts.common.seed);
    let test = d2l_data::loader::DataLoader::new(data.test.clone(), 256).unwrap();
    let mut adam = Adam::new(net.parameters(), opts.lr).unwrap();
    let config = TrainConfig {
        epochs: 1,
        quiet: true,
        ..Default::default()
    };
    let s = Trainer::new(&net, cross_entropy_loss(), &mut adam, config)
        .fit(&train, Some(&test))
        .unwrap();
    let (mine, theirs) = (&s.epochs[0], &r.plain.epochs[0]);
    assert!(
        close(mine.train_loss, theirs.train_loss),
        "{mine:?} vs {theirs:?}"
    );
    assert!(close(mine.train_acc.unwrap(), theirs.train_acc));
    assert!(close(mine.test_acc.unwrap(), theirs.test_acc));
    // The augmented run saw other images, so its first epoch differs.
    assert!(r.augmented.epochs[0].train_loss != theirs.train_loss);

    // Outputs: metrics.csv (header + 2 runs × 2 epochs) and the plot.
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("run,epoch,train_loss,train_acc,test_acc"));
    assert!(csv.contains("\nno-aug,1,") && csv.contains("\nflip,2,"));
    assert!(dir.path().join("curves.png").exists());
    assert!(dir.path().join("curves.svg").exists());
    let text = r.to_string();
    assert!(
        text.contains("train−test gap") && text.contains("0.854"),
        "{text}"
    );
}

#[test]
fn flip_crop_is_an_option_and_bad_names_are_errors() {
    assert_eq!("flip".parse::<AugmentKind>().unwrap(), AugmentKind::Flip);
    assert_eq!(
        "flip-crop".parse::<AugmentKind>().unwrap(),
        AugmentKind::FlipCrop
    );
    assert!("rotate".parse::<AugmentKind>().is_err());
    assert_eq!(
        "cifar10".parse::<DataChoice>().unwrap(),
        DataChoice::Cifar10
    );
    assert!("imagenet".parse::<DataChoice>().is_err());
    // The crop keeps the image size.
    let t = AugmentKind::FlipCrop.transform(28, 28).unwrap();
    let x = Tensor::rand(&[1, 28, 28]);
    let y = t.apply(&x, &mut d2l_tensor::Generator::new(1)).unwrap();
    assert_eq!(y.shape(), &[1, 28, 28]);
}

#[test]
fn fine_tuning_starts_from_the_pretrained_body_with_a_new_head() {
    let pretrained = small_resnet(&[1, 28, 28], 5, 0.125, 1).unwrap();
    let net = finetune_net(&pretrained, &[1, 28, 28], 5, 0.125, 2).unwrap();
    assert_eq!(head_index(&net).unwrap(), 7);
    assert_eq!(head_pattern(&net).unwrap(), "7.*");
    // The body is copied exactly (parameters and batch-norm buffers) ...
    assert_eq!(body_max_abs_diff(&net, &pretrained, "7."), 0.0);
    let (a, b) = (net.state_dict(), pretrained.state_dict());
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        if !n.starts_with("7.") {
            assert_eq!(values(x), values(y), "{n}");
        }
    }
    // ... the head is new: Xavier-uniform, not the pretrained head.
    let (w_new, w_old) = (
        net.parameter("7.weight").unwrap(),
        pretrained.parameter("7.weight").unwrap(),
    );
    assert_eq!(w_new.shape(), &[5, 64]);
    assert!(values(&w_new) != values(&w_old));
    let bound = (6.0f64 / (5 + 64) as f64).sqrt();
    assert!(values(&w_new).iter().all(|w| w.abs() <= bound));

    // The optimiser: body at lr, head at 10 × lr, both with the weight decay.
    let mut opt = finetune_optimizer(&net, 0.01, 10.0, 1e-4).unwrap();
    assert_eq!(opt.param_groups().len(), 2);
    assert!(close(opt.group_lr(0), 0.01) && close(opt.group_lr(1), 0.1));
    assert!(close(opt.group_weight_decay(0), 1e-4) && close(opt.group_weight_decay(1), 1e-4));
    let head_ids: Vec<_> = opt.param_groups()[1]
        .params
        .iter()
        .map(|p| p.id())
        .collect();
    assert_eq!(head_ids.len(), 2);
    assert!(head_ids.contains(&w_new.id()));
    assert!(head_ids.contains(&net.parameter("7.bias").unwrap().id()));
    assert_eq!(
        opt.param_groups()[0].params.len() + 2,
        net.parameters().len()
    );
    // From scratch: one group, every parameter at the one rate, with the weight decay.
    let scratch = finetune_sgd(&net, None, 0.05, 10.0, 1e-4).unwrap();
    assert_eq!(scratch.param_groups().len(), 1);
    assert_eq!(
        scratch.param_groups()[0].params.len(),
        net.parameters().len()
    );
    assert!(close(scratch.group_lr(0), 0.05) && close(scratch.group_weight_decay(0), 1e-4));
    // A head pattern that names no parameter is an error, not a silent one-group run.
    let e = finetune_sgd(&net, Some(&["fc.*"]), 0.05, 10.0, 1e-4).unwrap_err();
    assert!(e.to_string().contains("fc.*"), "{e}");
    // The book's (5e-5, 0.001) on the summed loss at batch 128 is (0.0064, 0.001 / 128) on
    // the mean loss, and back.
    let (lr, wd) = mean_loss_equivalent(5e-5, 0.001, 128);
    assert!((lr - 0.0064).abs() < 1e-15 && (wd - 7.8125e-6).abs() < 1e-18);
    let (lr_sum, wd_sum) = summed_loss_equivalent(lr, wd, 128);
    assert!((lr_sum - 5e-5).abs() < 1e-18 && (wd_sum - 0.001).abs() < 1e-15);

    // One step changes the fine-tuned copy, never the pretrained network.
    let before = values(&pretrained.parameter("0.0.weight").unwrap());
    let x = Tensor::rand(&[4, 1, 28, 28]);
    let y = Tensor::from_vec(vec![0i64, 1, 2, 3], &[4]).unwrap();
    opt.zero_grad();
    let loss = cross_entropy_loss()(&net.forward(&x).unwrap(), &y).unwrap();
    loss.backward().unwrap();
    opt.step().unwrap();
    assert!(body_max_abs_diff(&net, &pretrained, "7.") > 0.0);
    assert_eq!(values(&pretrained.parameter("0.0.weight").unwrap()), before);
    let _: &Sgd = &opt;
}

#[test]
fn finetune_demo_runs_end_to_end_and_writes_its_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FinetuneOptions {
        dataset: DatasetName::Shapes,
        hub: DataHub::new("/nonexistent"),
        width_mult: 0.125,
        n_pretrain: 256,
        pretrain_batch: 64,
        n_finetune: 40,
        n_test: 100,
        epochs: 2,
        batch_size: 16,
        lr: 0.01,
        weight_decay: 0.001 / 16.0,
        common: Common {
            seed: 5,
            ..Common::quiet_in(dir.path())
        },
        ..Default::default()
    };
    let r = run_finetune(&opts).unwrap();
    assert_eq!(r.dataset, DatasetName::Shapes);
    assert_eq!(r.sizes.0, 256);
    assert_eq!(r.sizes.2, 40);
    assert_eq!(r.sizes.3, 100);
    assert_eq!(r.head, "7");
    assert_eq!(r.body_diff_at_start, 0.0);
    assert!(close(r.group_lrs.0, 0.01) && close(r.group_lrs.1, 0.1));
    assert_eq!(r.pretrain.epochs.len(), 1);
    assert_eq!(r.finetune.epochs.len(), 2);
    assert_eq!(r.scratch.epochs.len(), 2);
    for run in [&r.pretrain, &r.finetune, &r.scratch] {
        for e in &run.epochs {
            assert!(e.train_loss.is_finite() && (0.0..=1.0).contains(&e.test_acc));
        }
    }
    // The book's summed-loss equivalent: η = lr / B, λ = wd · B.
    let (eta, lambda) = opts.book_equivalent();
    assert!(close(eta, 0.01 / 16.0) && close(lambda, 0.001));
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 1 + 2 + 2, "{csv}");
    assert!(csv.contains("\npretrain,1,") && csv.contains("\nfine-tune,2,"));
    assert!(csv.contains("\nscratch,2,"));
    assert!(dir.path().join("curves.png").exists());
    let text = r.to_string();
    assert!(
        text.contains("0.939") && text.contains("max |Δw| = 0.0e0"),
        "{text}"
    );
}
