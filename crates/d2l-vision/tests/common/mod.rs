//! The TinySSD anchor-labelling workload, shared by `tests/detection.rs` (its shapes and
//! labels) and `benches/vision.rs` (its speed).
#![allow(dead_code)]

use d2l_tensor::Tensor;
use d2l_vision::detection::multibox_prior;

/// The SSD anchors of 13.7 (5 scales on 32,16,8,4,1 maps): (1, 5444, 4).
pub fn ssd_anchors() -> Tensor {
    let sizes = [
        [0.2, 0.272],
        [0.37, 0.447],
        [0.54, 0.619],
        [0.71, 0.79],
        [0.88, 0.961],
    ];
    let maps = [32usize, 16, 8, 4, 1];
    let mut all = Vec::new();
    for (s, m) in sizes.iter().zip(maps) {
        all.extend(
            multibox_prior(m, m, s, &[1.0, 2.0, 0.5])
                .unwrap()
                .to_vec::<f32>(),
        );
    }
    let n = all.len() / 4;
    Tensor::from_vec(all, &[1, n, 4]).unwrap()
}

/// Labels of `b` images, (b, 3, 5): three objects each, two (classes 0 and 1) that move
/// with the image's index and a fixed one of class 0.
pub fn shifting_labels(b: usize) -> Tensor {
    let mut d = Vec::new();
    for i in 0..b {
        let o = (i as f32) / 64.0;
        d.extend([0.0, 0.1 + o, 0.2, 0.4 + o, 0.5]);
        d.extend([1.0, 0.5, 0.5 - o, 0.8, 0.9 - o]);
        d.extend([0.0, 0.05, 0.6, 0.3, 0.95]);
    }
    Tensor::from_vec(d, &[b, 3, 5]).unwrap()
}
