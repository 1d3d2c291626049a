//! The Faster / Mask R-CNN training step and inference timed on fixed shapes, to set beside
//! `scripts/bench_rcnn_torch.py` (torchvision, the same configuration): a batch of 4
//! random 256×256 images with 2 random boxes (and masks) each, `RcnnConfig::small(3, _)`
//! (ResNet-18 body to layer2, 12 anchors per pixel, 600/300 proposals in training, 128
//! anchors and 64 proposals sampled per image); a training step is the losses, backward
//! and an SGD update; inference is `detect` in eval mode.
//!
//!     cargo bench -p d2l-models --bench rcnn_step [-- --reps 5 --steps 3]
//!
//! One JSON line per measurement: {"peer": "d2l", "workload": "faster-rcnn" | "mask-rcnn",
//! "metric": "train_images_per_s" | "infer_images_per_s", "value", "median_step_ms", ...}.
//! Timings on a shared machine are indicative only.

use d2l_models::rcnn::parts::Sampling;
use d2l_models::rcnn::{MaskRcnn, RcnnConfig, RcnnTarget};
use d2l_nn::optim::{Optimizer, Sgd};
use d2l_nn::Module;
use d2l_tensor::{Generator, Tensor};
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median over `reps` repetitions of the mean time of one of `steps` calls of `f`,
/// in seconds.
fn median_step(reps: usize, steps: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..steps {
                f();
            }
            t0.elapsed().as_secs_f64() / steps as f64
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

/// Prints one measurement's JSON line: `metric` for a batch of `b` images of 3×`s`×`s`
/// taking `t` seconds a step.
fn report(name: &str, metric: &str, b: usize, s: usize, t: f64) {
    println!(
        "{{\"peer\": \"d2l\", \"workload\": \"{name}\", \"metric\": \"{metric}\", \"value\": {:.3}, \"median_step_ms\": {:.1}, \"batch\": {b}, \"input\": [3, {s}, {s}], \"threads\": {}}}",
        b as f64 / t,
        t * 1e3,
        d2l_tensor::num_threads()
    );
}

fn main() {
    let reps = arg("--reps", 5);
    let steps = arg("--steps", 3);
    let (b, s) = (4usize, 256usize);
    d2l_tensor::manual_seed(0);
    let x = Tensor::rand(&[b, 3, s, s]);
    let mut g = Generator::new(0);
    let targets: Vec<RcnnTarget> = (0..b)
        .map(|_| {
            let boxes: Vec<[f32; 4]> = (0..2)
                .map(|_| {
                    let x1 = (g.next_f32() * 150.0).floor();
                    let y1 = (g.next_f32() * 150.0).floor();
                    let w = 30.0 + (g.next_f32() * 70.0).floor();
                    let h = 30.0 + (g.next_f32() * 70.0).floor();
                    [x1, y1, x1 + w, y1 + h]
                })
                .collect();
            let mut m = vec![0f32; 2 * s * s];
            for (k, bx) in boxes.iter().enumerate() {
                for y in bx[1] as usize..bx[3] as usize {
                    for xx in bx[0] as usize..bx[2] as usize {
                        m[k * s * s + y * s + xx] = 1.0;
                    }
                }
            }
            RcnnTarget {
                boxes,
                labels: vec![1, 2],
                masks: Some(Tensor::from_vec(m, &[2, s, s]).unwrap()),
            }
        })
        .collect();
    for (name, mask) in [("faster-rcnn", false), ("mask-rcnn", true)] {
        let net = MaskRcnn::new(RcnnConfig::small(3, mask)).unwrap();
        let mut opt = Sgd::new(net.parameters(), 0.001).unwrap().momentum(0.9);
        let mut step = || {
            opt.zero_grad();
            let l = net
                .losses(&x, &targets, &mut Sampling::Random(&mut g))
                .unwrap();
            l.total().unwrap().backward().unwrap();
            opt.step().unwrap();
        };
        step();
        let t = median_step(reps, steps, &mut step);
        report(name, "train_images_per_s", b, s, t);
        net.eval();
        let t = median_step(reps, steps, || {
            net.detect(&x).unwrap();
        });
        report(name, "infer_images_per_s", b, s, t);
    }
}
