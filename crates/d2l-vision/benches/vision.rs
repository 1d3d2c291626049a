//! Throughput of the vision data path: generating the offline detection set (13.6),
//! the 13.2 training augmentation through a prefetching loader, and anchor labelling
//! (`multibox_target`) on TinySSD's 5,444 anchors (13.4–13.7).
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo bench -p d2l-vision --bench vision
//! ```

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use d2l_data::loader::{DataLoader, Dataset, TensorDataset};
use d2l_tensor::{Generator, Tensor};
use d2l_vision::detection::multibox_target;
use d2l_vision::generated::detection::{generate_detection_set, DetectionSetSpec};
use d2l_vision::transforms::{AugmentedDataset, Compose};
use std::sync::Arc;
use std::time::Duration;

#[path = "../tests/common/mod.rs"]
mod common;
use common::{shifting_labels, ssd_anchors};

fn generation(c: &mut Criterion) {
    let mut g = c.benchmark_group("detection_set");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(3));
    for (name, classes, objects) in [("1class_1object", 1, 1), ("3classes_3objects", 3, 3)] {
        let spec = DetectionSetSpec {
            num_train: 100,
            num_val: 10,
            num_classes: classes,
            max_objects: objects,
            ..Default::default()
        };
        g.throughput(Throughput::Elements(110));
        g.bench_function(name, |b| {
            b.iter(|| {
                let dir = tempfile::tempdir().unwrap();
                black_box(generate_detection_set(dir.path(), &spec).unwrap())
            })
        });
    }
    g.finish();
}

fn augmentation(c: &mut Criterion) {
    let (n, h, w) = (64usize, 256usize, 256usize);
    let mut gen = Generator::new(123);
    let raw: Vec<u8> = (0..n * 3 * h * w).map(|_| gen.below(256) as u8).collect();
    let x = Tensor::from_vec(raw, &[n, 3, h, w]).unwrap();
    let y = Tensor::from_vec((0..n as i64).collect::<Vec<_>>(), &[n]).unwrap();
    let inner: Arc<dyn Dataset> = Arc::new(TensorDataset::new(x, y).unwrap());
    let ds = Arc::new(AugmentedDataset::new(
        inner,
        Arc::new(Compose::imagenet_train(224).unwrap()),
        0,
    ));
    let loader = DataLoader::new(ds.clone(), 32)
        .unwrap()
        .shuffle(0)
        .prefetch(2);
    let mut g = c.benchmark_group("augmentation");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("random_resized_crop_flip_normalize_224", |b| {
        let mut epoch = 0u64;
        b.iter(|| {
            epoch += 1;
            ds.set_epoch(epoch);
            let mut seen = 0;
            for batch in loader.iter_epoch(epoch) {
                seen += batch.unwrap().len();
            }
            black_box(seen)
        })
    });
    g.finish();
}

fn anchor_labelling(c: &mut Criterion) {
    let anchors = ssd_anchors();
    let b = 32;
    let labels = shifting_labels(b);
    let mut g = c.benchmark_group("multibox_target");
    g.sample_size(10).measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(b as u64));
    g.bench_function("tinyssd_5444_anchors_batch32", |bch| {
        bch.iter(|| black_box(multibox_target(&anchors, &labels).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, generation, augmentation, anchor_labelling);
criterion_main!(benches);
