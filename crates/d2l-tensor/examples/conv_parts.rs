//! CPU time of each part of a convolution (forward, input gradient, weight gradient) on
//! the ResNet-18 (96×96, batch 32) and LeNet shapes (or TinySSD's with the argument `ssd`, VGG's at 224×224 with `vgg`), measured as this thread's CPU time
//! so that a busy machine disturbs it less than wall time (wall time when more than one
//! engine thread may run, i.e. unless `RAYON_NUM_THREADS=1`). Run with one engine thread:
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release -p d2l-tensor --example conv_parts
//! ```
//!
//! For `perf record`: `CONV_ONLY="r18 s1"` keeps one case, and `CONV_REPEAT_BW=N` /
//! `CONV_REPEAT_BI=N` then repeat its weight / input gradient N more times.

use d2l_tensor::{conv2d_backward, no_grad, Conv2dOptions, Generator, Tensor};

fn cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: CLOCK_THREAD_CPUTIME_ID with a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Whether more than one engine thread may run (then this thread's CPU time misses the
/// others' work, and wall time is measured instead).
fn multi_threaded() -> bool {
    std::env::var("RAYON_NUM_THREADS").map_or(true, |v| v.trim() != "1")
}

fn time(mut f: impl FnMut()) -> f64 {
    let wall = multi_threaded();
    let now = || {
        if wall {
            std::time::UNIX_EPOCH.elapsed().unwrap().as_secs_f64()
        } else {
            cpu_s()
        }
    };
    f();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = now();
        f();
        best = best.min(now() - t);
    }
    best * 1e3
}

fn main() {
    let mut g = Generator::new(0);
    // (n, ci, h, co, k, stride, pad)
    let cases = [
        ("lenet c1", 256, 1, 28, 6, 5, 1, 2),
        ("lenet c2", 256, 6, 14, 16, 5, 1, 0),
        ("r18 stem", 32, 1, 96, 64, 7, 2, 3),
        ("r18 s1", 32, 64, 24, 64, 3, 1, 1),
        ("r18 s2", 32, 128, 12, 128, 3, 1, 1),
        ("r18 s3", 32, 256, 6, 256, 3, 1, 1),
        ("r18 s4", 32, 512, 3, 512, 3, 1, 1),
        ("r18 down4", 32, 256, 6, 512, 3, 2, 1),
    ];
    // TinySSD (13.7) at 256×256, batch 32: the base net and the first down-sampling block.
    let ssd = [
        ("ssd 3-16", 32, 3, 256, 16, 3, 1, 1),
        ("ssd 16-16", 32, 16, 256, 16, 3, 1, 1),
        ("ssd 16-32", 32, 16, 128, 32, 3, 1, 1),
        ("ssd 32-32", 32, 32, 128, 32, 3, 1, 1),
        ("ssd 32-64", 32, 32, 64, 64, 3, 1, 1),
        ("ssd 64-64", 32, 64, 64, 64, 3, 1, 1),
        ("ssd 64-128", 32, 64, 32, 128, 3, 1, 1),
    ];
    // VGG-11 at 224×224 (7.2), batch 8: wide maps with many channels.
    let vgg = [
        ("vgg 64", 8, 64, 224, 64, 3, 1, 1),
        ("vgg 128", 8, 128, 112, 128, 3, 1, 1),
        ("vgg 256", 8, 256, 56, 256, 3, 1, 1),
        ("vgg 512", 8, 512, 28, 512, 3, 1, 1),
    ];
    let cases: Vec<_> = if std::env::args().any(|a| a == "ssd") {
        ssd.to_vec()
    } else if std::env::args().any(|a| a == "vgg") {
        vgg.to_vec()
    } else {
        cases.to_vec()
    };
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>9}  (ms {}, best of 3)",
        "case",
        "fwd",
        "bwd_in",
        "bwd_w",
        "GFLOP",
        if multi_threaded() { "wall" } else { "CPU" }
    );
    let only = std::env::var("CONV_ONLY").ok();
    for (name, n, ci, h, co, k, s, p) in cases {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let x = Tensor::randn_with(&mut g, &[n, ci, h, h]);
        let w = Tensor::randn_with(&mut g, &[co, ci, k, k]);
        let opts = Conv2dOptions::default().with_stride(s, s).with_padding(p);
        let y = no_grad(|| x.conv2d(&w, None, &opts)).unwrap();
        let gy = Tensor::randn_with(&mut g, y.shape());
        let oh = y.shape()[2];
        let gf = 2.0 * (n * co * oh * oh * ci * k * k) as f64 / 1e9;
        let f = time(|| {
            no_grad(|| x.conv2d(&w, None, &opts)).unwrap();
        });
        let bi = time(|| {
            conv2d_backward(&x, &w, &gy, &opts, [true, false, false]).unwrap();
        });
        let bw = time(|| {
            conv2d_backward(&x, &w, &gy, &opts, [false, true, false]).unwrap();
        });
        println!("{name:<10} {f:>9.2} {bi:>9.2} {bw:>9.2} {gf:>9.3}");
        if let Ok(reps) = std::env::var("CONV_REPEAT_BW") {
            for _ in 0..reps.parse::<usize>().unwrap_or(0) {
                conv2d_backward(&x, &w, &gy, &opts, [false, true, false]).unwrap();
            }
        }
        if let Ok(reps) = std::env::var("CONV_REPEAT_BI") {
            for _ in 0..reps.parse::<usize>().unwrap_or(0) {
                conv2d_backward(&x, &w, &gy, &opts, [true, false, false]).unwrap();
            }
        }
        if std::env::var("CONV_PROFILE").is_ok() {
            d2l_tensor::profile::take();
            d2l_tensor::profile::enable(true);
            no_grad(|| x.conv2d(&w, None, &opts)).unwrap();
            d2l_tensor::profile::enable(false);
            print!(
                "{}",
                d2l_tensor::profile::report(&d2l_tensor::profile::take())
            );
        }
    }
}
