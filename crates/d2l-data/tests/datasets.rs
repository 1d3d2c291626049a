//! The data-set loaders wired through the data hub: Fashion-MNIST from `../shared/data`
//! (skipped with a printed line when that folder is absent), the fallback to the built-in
//! `shapes` set, and `DatasetName` parsing.

use d2l_data::datasets::{
    load_data_fashion_mnist, load_data_shapes, load_image_classification, load_kaggle_house,
    load_time_machine, DatasetName, ImageDataset,
};
use d2l_data::hub::DataHub;
use d2l_data::idx::ImageSet;
use d2l_data::loader::{DataLoader, Dataset};
use d2l_data::transforms::{resize_bilinear, Compose, Normalize};
use d2l_data::DataError;
use d2l_tensor::{DType, Tensor};
use std::path::PathBuf;
use std::sync::Arc;

fn shared_data() -> Option<PathBuf> {
    let p = d2l_testkit::shared_data("fashion_mnist");
    if p.is_none() {
        println!("skipping: no real data at ../shared/data (see shared/data/README.md)");
    }
    p
}

/// An offline hub over the shared data with a throw-away cache and no system copies.
fn shared_hub(cache: &tempfile::TempDir) -> Option<DataHub> {
    let data = shared_data()?;
    Some(
        DataHub::new(cache.path())
            .with_data_dir(data)
            .without_system_dirs()
            .offline(true)
            .quiet(),
    )
}

fn empty_hub(dir: &tempfile::TempDir) -> DataHub {
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    DataHub::new(dir.path().join("cache"))
        .with_data_dir(data)
        .without_system_dirs()
        .offline(true)
        .quiet()
}

fn check_batch_values(x: &Tensor, y: &Tensor) {
    assert_eq!(x.dtype(), DType::F32);
    assert_eq!(y.dtype(), DType::I64);
    let v = x.to_vec::<f32>();
    assert!(
        v.iter().all(|p| (0.0..=1.0).contains(p)),
        "pixels outside [0, 1]"
    );
    assert!(v.iter().any(|&p| p > 0.5), "an all-dark batch");
    assert!(y.to_vec::<i64>().iter().all(|l| (0..10).contains(l)));
}

#[test]
fn fashion_mnist_loaders_match_the_book() {
    let cache = tempfile::tempdir().unwrap();
    let Some(hub) = shared_hub(&cache) else {
        return;
    };
    let (train, test) = load_data_fashion_mnist(&hub, 256, None, 0).unwrap();
    assert_eq!(train.len(), 235);
    assert_eq!(test.len(), 40);
    assert_eq!(train.num_examples(), 60_000);
    assert_eq!(test.num_examples(), 10_000);

    let mut n = 0;
    let mut batches = 0;
    for b in &train {
        let b = b.unwrap();
        if batches == 0 {
            assert_eq!(b.x.shape(), &[256, 1, 28, 28]);
            assert_eq!(b.y.shape(), &[256]);
            check_batch_values(&b.x, &b.y);
        }
        n += b.len();
        batches += 1;
    }
    assert_eq!((batches, n), (235, 60_000));
    let test_batches: Vec<_> = test.iter().map(|b| b.unwrap()).collect();
    assert_eq!(test_batches.len(), 40);
    assert_eq!(test_batches[0].x.shape(), &[256, 1, 28, 28]);
    assert_eq!(test_batches[39].x.shape(), &[16, 1, 28, 28]);
    check_batch_values(&test_batches[0].x, &test_batches[0].y);

    // The test loader is in file order: its first labels are the official ones
    // (ankle boot, pullover, trouser, trouser, shirt).
    assert_eq!(&test_batches[0].y.to_vec::<i64>()[..5], &[9, 2, 1, 1, 6]);
    // The training loader is shuffled: epochs differ, and a seed reproduces them.
    let (again, _) = load_data_fashion_mnist(&hub, 256, None, 0).unwrap();
    let first = |l: &DataLoader, e| l.iter_epoch(e).next().unwrap().unwrap().y.to_vec::<i64>();
    assert_eq!(first(&train, 0), first(&again, 0));
    assert_ne!(first(&train, 0), first(&train, 1));
}

#[test]
fn fashion_mnist_resized_to_224() {
    let cache = tempfile::tempdir().unwrap();
    let Some(hub) = shared_hub(&cache) else {
        return;
    };
    let (train, test) = load_data_fashion_mnist(&hub, 256, Some(224), 1).unwrap();
    assert_eq!((train.len(), test.len()), (235, 40));
    let b = test.iter().next().unwrap().unwrap();
    assert_eq!(b.x.shape(), &[256, 1, 224, 224]);
    assert_eq!(b.y.shape(), &[256]);
    check_batch_values(&b.x, &b.y);

    // The whole-batch path equals the per-image transforms (ToFloat, then Resize).
    let (_, small) = load_data_fashion_mnist(&hub, 4, None, 1).unwrap();
    let sb = small.iter().next().unwrap().unwrap();
    let want = resize_bilinear(&sb.x, 224, 224).unwrap().to_vec::<f32>();
    let got = b.x.to_vec::<f32>();
    let got4 = &got[..4 * 224 * 224];
    let diff = want
        .iter()
        .zip(got4)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-6,
        "batch resize differs from resize_bilinear by {diff}"
    );
}

#[test]
fn image_dataset_items_and_batches_agree() {
    let set = ImageSet::new(
        (0..3 * 4 * 5).map(|v| (v * 4) as u8).collect(),
        vec![7, 0, 3],
        4,
        5,
    )
    .unwrap();
    let ds = ImageDataset::new(set.clone());
    let e = ds.get(1).unwrap();
    assert_eq!(e.x.shape(), &[1, 4, 5]);
    assert_eq!(e.y.shape(), &[] as &[usize]);
    assert_eq!(e.y.dtype(), DType::I64);
    assert_eq!(e.y.to_vec::<i64>(), vec![0]);
    assert_eq!(e.x.to_vec::<f32>()[0], 80.0 / 255.0);
    let b = ds.get_batch(&[2, 0]).unwrap();
    assert_eq!(b.x.shape(), &[2, 1, 4, 5]);
    assert_eq!(b.y.to_vec::<i64>(), vec![3, 7]);
    assert_eq!(
        b.x.select(0, 0)
            .unwrap()
            .contiguous()
            .unwrap()
            .to_vec::<f32>(),
        ds.get(2).unwrap().x.to_vec::<f32>()
    );
    assert!(matches!(ds.get(3), Err(DataError::Invalid(_))));
    assert!(matches!(ds.get_batch(&[0, 3]), Err(DataError::Invalid(_))));

    // Resize + normalise, by item and by batch (a batch big enough for the parallel path).
    let ds = ImageDataset::new(set)
        .with_resize(Some(300))
        .unwrap()
        .with_transform(Compose::default().then(Normalize::new(&[0.5], &[0.25]).unwrap()));
    assert_eq!(ds.output_size(), (300, 300));
    let idx: Vec<usize> = (0..15).map(|i| i % 3).collect();
    let b = ds.get_batch(&idx).unwrap();
    assert_eq!(b.x.shape(), &[15, 1, 300, 300]);
    for (k, &i) in idx.iter().enumerate() {
        let one = ds.get(i).unwrap().x.to_vec::<f32>();
        let row =
            b.x.select(0, k as isize)
                .unwrap()
                .contiguous()
                .unwrap()
                .to_vec::<f32>();
        assert_eq!(one, row, "batch row {k} (image {i})");
    }
    assert!(
        ImageDataset::new(ImageSet::new(vec![0; 4], vec![0], 2, 2).unwrap())
            .with_resize(Some(0))
            .is_err()
    );

    // The loader's per-example path stacks the same thing.
    let loader = DataLoader::new(Arc::new(ds.clone()), 2)
        .unwrap()
        .transform(Ok)
        .prefetch(0);
    let b = loader.iter_epoch(0).next().unwrap().unwrap();
    assert_eq!(
        b.x.to_vec::<f32>(),
        ds.get_batch(&[0, 1]).unwrap().x.to_vec::<f32>()
    );
}

#[test]
fn missing_files_fall_back_to_shapes_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let hub = empty_hub(&dir);
    let (train, test, notice) =
        load_image_classification(DatasetName::FashionMnist, &hub, 256, None, 0, true).unwrap();
    assert!(notice.fell_back());
    assert_eq!(notice.used, DatasetName::Shapes);
    let msg = notice.message.clone().unwrap();
    println!("notice: {msg}");
    assert!(!msg.contains('\n'), "the notice is one line: {msg}");
    assert!(
        msg.starts_with("fashion-mnist not found (looked in "),
        "{msg}"
    );
    assert!(
        msg.ends_with("; training on the built-in `shapes` set instead"),
        "{msg}"
    );
    assert!(
        msg.contains(
            &dir.path()
                .join("data")
                .join("fashion_mnist")
                .display()
                .to_string()
        ),
        "{msg}"
    );
    assert_eq!(notice.to_string(), msg);
    assert_eq!(
        (train.num_examples(), test.num_examples()),
        (60_000, 10_000)
    );
    assert_eq!((train.len(), test.len()), (235, 40));
    let b = test.iter().next().unwrap().unwrap();
    assert_eq!(b.x.shape(), &[256, 1, 28, 28]);
    check_batch_values(&b.x, &b.y);

    // Without the fallback, the missing file is the error, naming where it was looked for.
    let err = load_image_classification(DatasetName::Mnist, &hub, 256, None, 0, false).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err}");
    assert!(
        err.to_string().contains("mnist/train-images-idx3-ubyte.gz"),
        "{err}"
    );
    assert!(load_data_fashion_mnist(&hub, 256, None, 0).is_err());

    // Asking for shapes is no fallback.
    let (_, _, notice) =
        load_image_classification(DatasetName::Shapes, &hub, 100, Some(32), 0, false).unwrap();
    assert!(!notice.fell_back() && notice.message.is_none());
    assert_eq!(notice.to_string(), "");
}

#[test]
fn a_corrupt_file_is_an_error_even_with_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let hub = empty_hub(&dir);
    let f = dir.path().join("data/fashion_mnist");
    std::fs::create_dir_all(&f).unwrap();
    std::fs::write(f.join("train-images-idx3-ubyte.gz"), b"not the real file").unwrap();
    let err =
        load_image_classification(DatasetName::FashionMnist, &hub, 256, None, 0, true).unwrap_err();
    assert!(matches!(err, DataError::Checksum { .. }), "{err}");
}

#[test]
fn shapes_loaders() {
    let (train, test) = load_data_shapes(1000, 300, 128, None, 5).unwrap();
    assert_eq!((train.len(), test.len()), (8, 3));
    let b = train.iter().next().unwrap().unwrap();
    assert_eq!(b.x.shape(), &[128, 1, 28, 28]);
    check_batch_values(&b.x, &b.y);
    let (again, _) = load_data_shapes(1000, 300, 128, None, 5).unwrap();
    assert_eq!(
        again
            .iter_epoch(0)
            .next()
            .unwrap()
            .unwrap()
            .x
            .to_vec::<f32>(),
        b.x.to_vec::<f32>()
    );
    let (_, test96) = load_data_shapes(1000, 300, 128, Some(96), 5).unwrap();
    assert_eq!(
        test96.iter().next().unwrap().unwrap().x.shape(),
        &[128, 1, 96, 96]
    );
    assert!(load_data_shapes(0, 10, 8, None, 0).is_err());
    assert!(load_data_shapes(10, 10, 0, None, 0).is_err());
}

#[test]
fn dataset_names_parse() {
    for (s, d) in [
        ("fashion-mnist", DatasetName::FashionMnist),
        ("Fashion_MNIST", DatasetName::FashionMnist),
        ("mnist", DatasetName::Mnist),
        ("shapes", DatasetName::Shapes),
    ] {
        assert_eq!(s.parse::<DatasetName>().unwrap(), d, "{s}");
    }
    for d in DatasetName::ALL {
        assert_eq!(d.to_string().parse::<DatasetName>().unwrap(), d);
        assert_eq!(d.num_classes(), 10);
    }
    let err = "cifar10".parse::<DatasetName>().unwrap_err().to_string();
    assert!(
        err.contains("cifar10") && err.contains("fashion-mnist, mnist, shapes"),
        "{err}"
    );
    assert_eq!(DatasetName::FashionMnist.class_names()[9], "ankle boot");
    assert_eq!(DatasetName::Mnist.class_names()[3], "3");
    assert_eq!(DatasetName::Shapes.class_names()[0], "disk");
}

#[test]
fn house_and_time_machine_through_the_hub() {
    let cache = tempfile::tempdir().unwrap();
    let Some(hub) = shared_hub(&cache) else {
        return;
    };
    let house = load_kaggle_house(&hub).unwrap();
    assert_eq!(house.train_features.shape()[0], 1460);
    assert_eq!(house.test_features.shape()[0], 1459);
    let (corpus, vocab) = load_time_machine(&hub, None).unwrap();
    assert_eq!((corpus.len(), vocab.len()), (170_580, 28));
    let (short, _) = load_time_machine(&hub, Some(1000)).unwrap();
    assert_eq!(short.len(), 1000);

    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        load_kaggle_house(&empty_hub(&dir)),
        Err(DataError::Missing { .. })
    ));
}
