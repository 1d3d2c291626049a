//! D2L 13.2 (fine-tuning), offline: a network pretrained on one task and fine-tuned on a
//! small sample of another beats the same network trained from scratch on that sample.
//!
//! The book fine-tunes torchvision's ImageNet ResNet-18 on the hot-dog set: the pretrained
//! body is copied, the output layer `fc` is replaced by a new `Linear(512, 2)` with a
//! Xavier-uniform weight, and SGD trains the body at `lr = 5e-5` and the new head at
//! `10 × lr`, weight decay 0.001, batch 128, 5 epochs; from scratch, every parameter is
//! trained at `5e-4`. It reports test accuracy 0.939 fine-tuned vs 0.843 from scratch.
//!
//! Neither ImageNet weights nor the hot-dog images are on this machine, so the substitute
//! makes both tasks out of Fashion-MNIST: the **source** task is classes 0–4 (T-shirt,
//! trouser, pullover, dress, coat), on which [`resnet18_small`](d2l_models::cnn::resnet18_small)
//! (one input channel, reduced width) is pretrained with Adam; the **target** task is a
//! small sample of classes 5–9 (sandal, shirt, sneaker, bag, ankle boot, relabelled 0–4).
//! Fine-tuned and scratch networks see the same sample in the same order for the same
//! epochs and are tested on every test image of classes 5–9 after each epoch.
//!
//! # Summed vs mean loss
//!
//! The book backpropagates the **sum** of the per-example losses. With plain SGD and weight
//! decay `λ`, a summed-loss step is `w ← w − η(B·ḡ + λw) = w − (ηB)(ḡ + (λ/B)w)`, where
//! `ḡ` is the batch-mean gradient. So a mean-loss run reproduces the book's update with
//! learning rate `ηB` and weight decay `λ/B`. [`FinetuneOptions`] takes the mean-loss
//! values (`lr`, `weight_decay`); [`FinetuneOptions::book_equivalent`] gives the summed-loss
//! `(η, λ)` they correspond to (the book's `(5e-5, 0.001)` at batch 128 is `lr = 0.0064`,
//! `weight_decay = 7.8e-6`). The last, smaller batch of an epoch is the only place the two
//! differ.
//!
//! # The recipe on a real pretrained network
//!
//! The second half of this module is 13.2's recipe for torchvision's ImageNet ResNet-18 on
//! an image folder — [`imagenet_folder_loaders`], [`pretrained_resnet18`],
//! [`finetune_sgd`], [`mean_loss_equivalent`], [`train_finetune`] — which `d2l finetune`
//! (`d2l-cli/src/commands/finetune.rs`, flags and printing only) puts together. The
//! mechanism both use (parameter-name patterns, freezing, head/body parameter groups) is
//! `d2l_nn::finetune`.

use crate::augment::{
    fmt_outputs, load_grey_sets, plot_runs, sample_indices, select, small_resnet, write_runs_csv,
    TrainRun,
};
use crate::{check_non_negative, check_positive, check_rate, Common, ExperimentError, Result};
use d2l_data::datasets::{DatasetName, ImageDataset};
use d2l_data::hub::DataHub;
use d2l_data::idx::ImageSet;
use d2l_data::loader::{DataLoader, Dataset};
use d2l_models::torchvision::{load_torchvision_weights, resnet18, ResNet};
use d2l_nn::finetune::head_and_body_groups;
use d2l_nn::layers::Linear;
use d2l_nn::optim::{Adam, Optimizer, Sgd, SgdConfig};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{no_grad, Generator};
use d2l_train::trainer::{cross_entropy_loss, TrainConfig, TrainSummary, Trainer};
use d2l_vision::folder::ImageFolder;
use d2l_vision::transforms::{AugmentedDataset, Compose};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The book's 13.2 results: (loss, train acc, test acc) fine-tuned and from scratch
/// (hot-dog, ImageNet ResNet-18, 5 epochs).
pub const BOOK_FINETUNE: [(f64, f64, f64); 2] = [(0.220, 0.915, 0.939), (0.374, 0.839, 0.843)];

/// Settings of [`run_finetune`]. The defaults are the run documented in `docs/RESULTS.md`.
#[derive(Debug, Clone)]
pub struct FinetuneOptions {
    /// The grey-scale set both tasks come from (Fashion-MNIST).
    pub dataset: DatasetName,
    /// Where the files are looked for.
    pub hub: DataHub,
    /// Use `shapes`, with a notice, when the files cannot be had.
    pub fallback_to_shapes: bool,
    /// Classes `0..split` are the source task, `split..10` the target task (5).
    pub split: usize,
    /// The network's width multiplier (0.25).
    pub width_mult: f64,
    /// Pretraining images, a seeded sample of the source classes' training images (0: all).
    pub n_pretrain: usize,
    /// Pretraining epochs (1).
    pub pretrain_epochs: usize,
    /// Pretraining Adam learning rate (0.001).
    pub pretrain_lr: f64,
    /// Pretraining batch size (128).
    pub pretrain_batch: usize,
    /// Target-task training images, a seeded sample of the target classes (100).
    pub n_finetune: usize,
    /// Target-task test images, a seeded sample of the target classes' test images (0: all).
    pub n_test: usize,
    /// Epochs of the fine-tuning and the scratch run (10).
    pub epochs: usize,
    /// Batch size of both runs (32).
    pub batch_size: usize,
    /// The body's learning rate with the **mean** loss (0.01); the head gets
    /// `lr · head_lr_mult`, and the scratch network `lr · head_lr_mult` everywhere.
    pub lr: f64,
    /// The head's multiple of the body's learning rate (10, the book's).
    pub head_lr_mult: f64,
    /// SGD weight decay with the **mean** loss (0.001 / 32: the book's 0.001 at batch 32).
    pub weight_decay: f64,
    /// The settings every experiment has ([`Common`]): the seed of the samples, the
    /// initialisations and the minibatch orders; the folder for `metrics.csv` and
    /// `curves.png/.svg`; `quiet`.
    pub common: Common,
    /// Where the three runs train (the CPU by default).
    pub device: d2l_tensor::Device,
}

impl Default for FinetuneOptions {
    fn default() -> Self {
        FinetuneOptions {
            dataset: DatasetName::FashionMnist,
            hub: DataHub::from_env(),
            fallback_to_shapes: true,
            split: 5,
            width_mult: 0.25,
            n_pretrain: 15_000,
            pretrain_epochs: 1,
            pretrain_lr: 0.001,
            pretrain_batch: 128,
            n_finetune: 100,
            n_test: 0,
            epochs: 10,
            batch_size: 32,
            lr: 0.01,
            head_lr_mult: 10.0,
            weight_decay: 0.001 / 32.0,
            common: Common::default(),
            device: d2l_tensor::Device::Cpu,
        }
    }
}

impl FinetuneOptions {
    /// The summed-loss `(learning rate, weight decay)` of the book's code that give the same
    /// SGD step as this mean-loss `(lr, weight_decay)` at this batch size: `(lr / B, wd · B)`.
    pub fn book_equivalent(&self) -> (f64, f64) {
        summed_loss_equivalent(self.lr, self.weight_decay, self.batch_size)
    }
}

/// What [`run_finetune`] returns.
#[derive(Debug, Clone)]
pub struct FinetuneResults {
    /// The set used (`shapes` after a fallback).
    pub dataset: DatasetName,
    /// The fallback notice, if any.
    pub notice: Option<String>,
    /// The options, for the printout.
    pub options: FinetuneOptions,
    /// Images: (pretraining, source test, target training, target test).
    pub sizes: (usize, usize, usize, usize),
    /// The network's parameter count.
    pub num_parameters: usize,
    /// The pretraining run (test accuracy on the source classes' test images).
    pub pretrain: TrainRun,
    /// The fine-tuned run.
    pub finetune: TrainRun,
    /// The scratch run.
    pub scratch: TrainRun,
    /// The name prefix of the replaced head (`7`: the last child of the `Sequential`).
    pub head: String,
    /// The largest `|w_finetune − w_pretrained|` over the body's parameters before
    /// fine-tuning (0: the body was copied exactly).
    pub body_diff_at_start: f64,
    /// The fine-tuning optimiser's learning rates, (body, head).
    pub group_lrs: (f64, f64),
    /// `metrics.csv`, when written.
    pub csv: Option<PathBuf>,
    /// `curves.png`, when drawn.
    pub plot: Option<PathBuf>,
    /// Wall-clock seconds of the whole experiment.
    pub seconds: f64,
}

/// The index of `net`'s head: its last child, which must be a `Linear` (13.2's `fc`; in
/// [`resnet18_small`](d2l_models::cnn::resnet18_small) it is child `7`, after the body, the
/// pooling and the `Flatten`).
pub fn head_index(net: &Sequential) -> Result<usize> {
    let last = net
        .len()
        .checked_sub(1)
        .ok_or_else(|| ExperimentError::Invalid("the network has no layers".into()))?;
    if net.get_as::<Linear>(last).is_none() {
        return Err(ExperimentError::Invalid(format!(
            "the network's last layer (child {last}) is not a Linear head"
        )));
    }
    Ok(last)
}

/// The parameter-name pattern of `net`'s head (`"7.*"`).
pub fn head_pattern(net: &Sequential) -> Result<String> {
    Ok(format!("{}.*", head_index(net)?))
}

/// 13.2's `finetune_net`: a fresh network like `pretrained` but with `classes` outputs,
/// whose body (every parameter and buffer outside the head) is a copy of `pretrained`'s and
/// whose head is new — `Linear` with a Xavier-uniform weight and PyTorch's default bias,
/// drawn from `seed`. `pretrained` is not changed.
pub fn finetune_net(
    pretrained: &Sequential,
    in_shape: &[usize],
    classes: usize,
    width_mult: f64,
    seed: u64,
) -> Result<Sequential> {
    let net = small_resnet(in_shape, classes, width_mult, seed)?;
    let head = format!("{}.", head_index(&net)?);
    let src: std::collections::HashMap<String, d2l_tensor::Tensor> =
        pretrained.state_dict().into_iter().collect();
    for (name, dst) in net.state_dict() {
        if name.starts_with(&head) {
            continue;
        }
        let s = src.get(&name).ok_or_else(|| {
            ExperimentError::Invalid(format!("the pretrained network has no `{name}`"))
        })?;
        if s.shape() != dst.shape() {
            return Err(ExperimentError::Invalid(format!(
                "`{name}`: the pretrained network's shape {:?} differs from {:?}",
                s.shape(),
                dst.shape()
            )));
        }
        no_grad(|| dst.copy_(s))?;
    }
    Ok(net)
}

/// The largest absolute difference between the body parameters (all but `head_prefix.*`)
/// of two networks with the same layout.
pub fn body_max_abs_diff(a: &dyn Module, b: &dyn Module, head_prefix: &str) -> f64 {
    let bp: std::collections::HashMap<String, d2l_tensor::Tensor> =
        b.named_parameters().into_iter().collect();
    let mut worst = 0.0f64;
    for (name, p) in a.named_parameters() {
        if name.starts_with(head_prefix) {
            continue;
        }
        let Some(q) = bp.get(&name) else {
            return f64::INFINITY;
        };
        let (x, y) = (p.to_vec::<f64>(), q.to_vec::<f64>());
        if x.len() != y.len() {
            return f64::INFINITY;
        }
        for (u, v) in x.iter().zip(&y) {
            worst = worst.max((u - v).abs());
        }
    }
    worst
}

/// 13.2's fine-tuning optimiser for a [`Sequential`] whose last child is the head:
/// [`finetune_sgd`] with the head's pattern ([`head_pattern`]), the body at `lr` and the
/// head at `lr · head_lr_mult`, weight decay `weight_decay` on both.
pub fn finetune_optimizer(
    net: &Sequential,
    lr: f64,
    head_lr_mult: f64,
    weight_decay: f64,
) -> Result<Sgd> {
    let pat = head_pattern(net)?;
    finetune_sgd(net, Some(&[pat.as_str()]), lr, head_lr_mult, weight_decay)
}

/// 13.2's SGD with weight decay `weight_decay`: with `head` patterns, two groups
/// ([`head_and_body_groups`]) — the body at `lr`, the parameters matching `head` at
/// `lr · head_lr_mult`; without (training from scratch), every parameter at `lr`.
pub fn finetune_sgd(
    net: &dyn Module,
    head: Option<&[&str]>,
    lr: f64,
    head_lr_mult: f64,
    weight_decay: f64,
) -> Result<Sgd> {
    let config = SgdConfig {
        lr,
        weight_decay,
        ..Default::default()
    };
    Ok(match head {
        Some(patterns) => {
            let groups = head_and_body_groups(net, patterns, lr, head_lr_mult)?;
            Sgd::with_groups(groups, config)?
        }
        None => Sgd::with_config(net.parameters(), config)?,
    })
}

/// The book's summed-loss `(lr, weight_decay)` as the mean-loss values that give the same
/// SGD step at batch size `batch`: `(lr · B, wd / B)` (see the module docs).
pub fn mean_loss_equivalent(lr: f64, weight_decay: f64, batch: usize) -> (f64, f64) {
    let b = batch as f64;
    (lr * b, weight_decay / b)
}

/// The inverse of [`mean_loss_equivalent`]: the summed-loss `(lr / B, wd · B)` of a
/// mean-loss `(lr, weight_decay)` at batch size `batch`.
pub fn summed_loss_equivalent(lr: f64, weight_decay: f64, batch: usize) -> (f64, f64) {
    let b = batch as f64;
    (lr / b, weight_decay * b)
}

/// The images of `set` whose label is in `classes` (relabelled to start at 0), a seeded
/// sample of `n` of them (all when 0).
fn class_sample(
    set: &ImageSet,
    classes: std::ops::Range<usize>,
    n: usize,
    g: &mut Generator,
) -> Result<ImageSet> {
    let pool: Vec<usize> = (0..set.n)
        .filter(|&i| classes.contains(&(set.labels[i] as usize)))
        .collect();
    if pool.is_empty() {
        return Err(ExperimentError::Invalid(format!(
            "no image of classes {classes:?} in the data"
        )));
    }
    let pick: Vec<usize> = sample_indices(pool.len(), n, g)
        .into_iter()
        .map(|k| pool[k])
        .collect();
    let base = classes.start as u8;
    select(set, &pick, |l| l - base)
}

/// Trains `net` with `opt` on `train` (shuffled with the options' seed) for `epochs` in
/// batches of `batch`, testing on `test` each epoch, on the options' device.
fn fit(
    name: &str,
    net: &Sequential,
    opt: &mut dyn Optimizer,
    (train, test): (&ImageSet, &ImageSet),
    (epochs, batch): (usize, usize),
    opts: &FinetuneOptions,
) -> Result<TrainRun> {
    let train: Arc<dyn Dataset> = Arc::new(ImageDataset::new(train.clone()));
    let test: Arc<dyn Dataset> = Arc::new(ImageDataset::new(test.clone()));
    let train_iter = DataLoader::new(train, batch)?.shuffle(opts.common.seed);
    let test_iter = DataLoader::new(test, 256)?;
    opts.common.progress(|| format!("13.2 run `{name}`"));
    let config = TrainConfig {
        epochs,
        quiet: opts.common.quiet,
        device: opts.device,
        ..Default::default()
    };
    let summary =
        Trainer::new(net, cross_entropy_loss(), opt, config).fit(&train_iter, Some(&test_iter))?;
    TrainRun::from_summary(name, &summary)
}

/// Runs 13.2's comparison; see the module docs.
pub fn run_finetune(opts: &FinetuneOptions) -> Result<FinetuneResults> {
    let started = std::time::Instant::now();
    check_positive("epochs", opts.epochs)?;
    check_positive("pretraining epochs", opts.pretrain_epochs)?;
    check_positive("batch size", opts.batch_size)?;
    check_positive("pretraining batch size", opts.pretrain_batch)?;
    check_positive("fine-tuning images", opts.n_finetune)?;
    check_rate("learning rate", opts.lr)?;
    check_rate("pretraining learning rate", opts.pretrain_lr)?;
    check_rate("head learning-rate multiplier", opts.head_lr_mult)?;
    check_rate("width multiplier", opts.width_mult)?;
    check_non_negative("weight decay", opts.weight_decay)?;
    if !(1..10).contains(&opts.split) {
        return Err(ExperimentError::Invalid(format!(
            "split must be in 1..=9 (source classes 0..split), got {}",
            opts.split
        )));
    }
    // Generated `shapes` images (the set itself, or the fallback): enough for the samples.
    let shapes_train = match opts.n_pretrain {
        0 => 0,
        n => 2 * (n + opts.n_finetune),
    };
    let shapes_test = 2 * opts.n_test;
    let (tr, te, used, notice) = load_grey_sets(
        opts.dataset,
        &opts.hub,
        opts.fallback_to_shapes,
        shapes_train,
        shapes_test,
    )?;
    if let Some(n) = &notice {
        opts.common.progress(|| n.clone());
    }
    let mut g = Generator::new(opts.common.seed ^ 0x1320_1320_0000_0001);
    let (src, dst) = (0..opts.split, opts.split..10);
    let (n_src, n_dst) = (src.len(), dst.len());
    let pre_train = class_sample(&tr, src.clone(), opts.n_pretrain, &mut g)?;
    let pre_test = class_sample(&te, src, 0, &mut g)?;
    let ft_train = class_sample(&tr, dst.clone(), opts.n_finetune, &mut g)?;
    let ft_test = class_sample(&te, dst, opts.n_test, &mut g)?;
    let in_shape = [1, tr.height, tr.width];

    // 1. Pretraining on the source classes.
    let pretrained = small_resnet(&in_shape, n_src, opts.width_mult, opts.common.seed ^ 0x11)?;
    let num_parameters = pretrained.num_parameters();
    let mut adam = Adam::new(pretrained.parameters(), opts.pretrain_lr)?;
    let pretrain = fit(
        "pretrain",
        &pretrained,
        &mut adam,
        (&pre_train, &pre_test),
        (opts.pretrain_epochs, opts.pretrain_batch),
        opts,
    )?;
    // The fine-tuned and the scratch network see the same target-task images.
    let on_target = |name: &str, net: &Sequential, opt: &mut dyn Optimizer| {
        let data = (&ft_train, &ft_test);
        fit(name, net, opt, data, (opts.epochs, opts.batch_size), opts)
    };

    // 2. Fine-tuning: the pretrained body, a new head at 10× the body's rate.
    let ft_net = finetune_net(
        &pretrained,
        &in_shape,
        n_dst,
        opts.width_mult,
        opts.common.seed ^ 0x22,
    )?;
    let head_prefix = format!("{}.", head_index(&ft_net)?);
    let body_diff_at_start = body_max_abs_diff(&ft_net, &pretrained, &head_prefix);
    drop(pretrained);
    let mut sgd = finetune_optimizer(&ft_net, opts.lr, opts.head_lr_mult, opts.weight_decay)?;
    let group_lrs = (sgd.group_lr(0), sgd.group_lr(1));
    let finetune = on_target("fine-tune", &ft_net, &mut sgd)?;
    drop(ft_net);

    // 3. Scratch: a fresh network, every parameter at 10× the body's rate.
    let scratch_net = small_resnet(&in_shape, n_dst, opts.width_mult, opts.common.seed ^ 0x33)?;
    let scratch_lr = opts.lr * opts.head_lr_mult;
    let mut sgd = finetune_sgd(&scratch_net, None, scratch_lr, 1.0, opts.weight_decay)?;
    let scratch = on_target("scratch", &scratch_net, &mut sgd)?;

    let dir = opts.common.dir();
    let runs = [&pretrain, &finetune, &scratch];
    let csv = write_runs_csv(dir, &runs)?;
    let plot = plot_runs(
        dir,
        &format!("13.2 fine-tuning vs scratch ({used}, classes 5-9)"),
        &[&finetune, &scratch],
    )?;
    Ok(FinetuneResults {
        dataset: used,
        notice,
        options: opts.clone(),
        sizes: (pre_train.n, pre_test.n, ft_train.n, ft_test.n),
        num_parameters,
        pretrain,
        finetune,
        scratch,
        head: head_prefix.trim_end_matches('.').to_string(),
        body_diff_at_start,
        group_lrs,
        csv,
        plot,
        seconds: started.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------- 13.2 on torchvision's ImageNet ResNet-18

/// The parameter pattern of the head of torchvision's ResNets (`fc.weight`, `fc.bias`).
pub const RESNET_HEAD: &str = "fc.*";

/// 13.2's image pipeline over two image folders (one sub-folder per class): the training
/// images through RandomResizedCrop(`image_size`) + horizontal flip + ImageNet
/// normalisation, in batches of `batch` shuffled with `seed`; the test images resized to
/// `test_resize` and centre-cropped to `image_size`. Also returns the training
/// augmentation's epoch, which [`train_finetune`] advances so each epoch draws fresh crops.
pub fn imagenet_folder_loaders(
    (train, test): (ImageFolder, ImageFolder),
    (image_size, test_resize): (usize, usize),
    batch: usize,
    seed: u64,
) -> Result<(DataLoader, DataLoader, Arc<AtomicU64>)> {
    let train_aug = Arc::new(AugmentedDataset::new(
        Arc::new(train),
        Arc::new(Compose::imagenet_train(image_size)?),
        seed,
    ));
    let epoch = train_aug.epoch_handle();
    let test_aug: Arc<dyn Dataset> = Arc::new(AugmentedDataset::new(
        Arc::new(test),
        Arc::new(Compose::imagenet_test(test_resize, image_size)?),
        seed,
    ));
    let train = DataLoader::new(train_aug, batch)?.shuffle(seed);
    let test = DataLoader::new(test_aug, batch)?;
    Ok((train, test, epoch))
}

/// torchvision's ImageNet ResNet-18 ready to fine-tune on `classes` classes: the pretrained
/// weights loaded from `weights` (a `.pth` written by `torch.save`, e.g.
/// `resnet18-f37072fd.pth`, or a `.safetensors` with torchvision's names, e.g. from
/// `d2l convert`; `None` keeps the random initialisation, for training from scratch), then
/// the head `fc` replaced by a new `Linear(512, classes)` with a Xavier-uniform weight.
pub fn pretrained_resnet18(weights: Option<&Path>, classes: usize) -> Result<ResNet> {
    let mut net = resnet18(1000)?;
    if let Some(w) = weights {
        if w.extension().and_then(|e| e.to_str()) == Some("safetensors") {
            d2l_nn::serialize::load_state_dict(&net, w, true)?;
        } else {
            load_torchvision_weights(&net, w)?;
        }
    }
    net.replace_fc(classes)?;
    Ok(net)
}

/// Trains `net` with `opt` and the (batch-mean) cross-entropy loss on `train`, testing on
/// `test` after each epoch, as `config` says; `epoch` (from [`imagenet_folder_loaders`]) is
/// set to each finished epoch so the next one draws new augmentations.
pub fn train_finetune(
    net: &dyn Module,
    opt: &mut dyn Optimizer,
    (train, test): (&DataLoader, &DataLoader),
    config: TrainConfig,
    epoch: Arc<AtomicU64>,
) -> Result<TrainSummary> {
    Ok(Trainer::new(net, cross_entropy_loss(), opt, config)
        .on_epoch(move |m| epoch.store(m.epoch as u64, Ordering::SeqCst))
        .fit(train, Some(test))?)
}

impl fmt::Display for FinetuneResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "13.2 fine-tuning: pretrained body + new head vs training from scratch"
        )?;
        if let Some(n) = &self.notice {
            writeln!(f, "note: {n}")?;
        }
        let (pre_n, pre_test, ft_n, ft_test) = self.sizes;
        writeln!(
            f,
            "offline substitute for ImageNet → hot dogs: {} classes 0–{} → classes {}–9; resnet18_small(in 1, width ×{}, {} params)",
            self.dataset,
            o.split - 1,
            o.split,
            o.width_mult,
            self.num_parameters
        )?;
        if let Some(e) = self.pretrain.last() {
            writeln!(
                f,
                "pretraining: {pre_n} images, Adam lr {}, batch {}, {} epoch(s): loss {:.3}, train acc {:.3}, test acc {:.3} ({pre_test} test images), {:.1}s",
                o.pretrain_lr,
                o.pretrain_batch,
                o.pretrain_epochs,
                e.train_loss,
                e.train_acc,
                e.test_acc,
                self.pretrain.seconds
            )?;
        }
        let (eta, lambda) = o.book_equivalent();
        writeln!(
            f,
            "target task: {ft_n} training images, {ft_test} test images; SGD, batch {}, {} epochs, mean loss: body lr {} / head `{}` lr {} (×{}), weight decay {:.3e} (= the book's summed-loss η {:.3e}, λ {}); scratch: all at {}",
            o.batch_size,
            o.epochs,
            self.group_lrs.0,
            self.head,
            self.group_lrs.1,
            o.head_lr_mult,
            o.weight_decay,
            eta,
            lambda,
            o.lr * o.head_lr_mult
        )?;
        writeln!(
            f,
            "body copied from the pretrained network: max |Δw| = {:.1e} before fine-tuning",
            self.body_diff_at_start
        )?;
        writeln!(f)?;
        crate::augment::fmt_epoch_table(f, &[&self.finetune, &self.scratch])?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<24} {:>6} {:>9} {:>8} {:>8}",
            "run", "loss", "train acc", "test acc", "seconds"
        )?;
        for r in [&self.finetune, &self.scratch] {
            if let Some(e) = r.last() {
                writeln!(
                    f,
                    "{:<24} {:>6.3} {:>9.3} {:>8.3} {:>8.1}",
                    r.name, e.train_loss, e.train_acc, e.test_acc, r.seconds
                )?;
            }
        }
        for (name, (l, tr, te)) in ["book fine-tune (hotdog)", "book scratch (hotdog)"]
            .iter()
            .zip(BOOK_FINETUNE)
        {
            writeln!(f, "{name:<24} {l:>6.3} {tr:>9.3} {te:>8.3} {:>8}", "2 GPUs")?;
        }
        if let (Some(a), Some(b)) = (self.finetune.last(), self.scratch.last()) {
            let d = a.test_acc - b.test_acc;
            let book = BOOK_FINETUNE[0].2 - BOOK_FINETUNE[1].2;
            if d > 0.0 {
                writeln!(
                    f,
                    "fine-tuning beats training from scratch by {d:+.3} test accuracy (book: +{book:.3})"
                )?;
            } else if d == 0.0 {
                writeln!(
                    f,
                    "fine-tuning ties with training from scratch: both {:.3} test accuracy (book: fine-tuning ahead by +{book:.3})",
                    a.test_acc
                )?;
            } else {
                writeln!(
                    f,
                    "fine-tuning falls behind training from scratch by {:.3} test accuracy (book: fine-tuning ahead by +{book:.3})",
                    -d
                )?;
            }
        }
        fmt_outputs(f, self.csv.as_deref(), self.plot.as_deref(), self.seconds)
    }
}
