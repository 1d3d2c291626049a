//! IDX reading (D2L 3.5): the real Fashion-MNIST and MNIST files when present, and crafted
//! bad files (wrong magic, truncated data, truncated gzip, count mismatch).

use d2l_data::idx::{
    get_fashion_mnist_labels, read_idx_images, read_idx_labels, FashionMnist, ImageSet, Mnist,
    FASHION_MNIST_LABELS,
};
use d2l_data::DataError;
use d2l_tensor::DType;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::{Path, PathBuf};

fn data_dir(sub: &str) -> Option<PathBuf> {
    d2l_testkit::shared_path_or_skip(sub)
}

fn idx_images(n: u32, h: u32, w: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [n, h, w] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn format_msg(r: Result<impl std::fmt::Debug, DataError>) -> String {
    match r {
        Err(e @ DataError::Format { .. }) => e.to_string(),
        other => panic!("expected a Format error, got {other:?}"),
    }
}

#[test]
fn fashion_mnist_real_files() {
    let Some(dir) = data_dir("fashion_mnist") else {
        return;
    };
    let train = FashionMnist::load(&dir, true).unwrap();
    assert_eq!((train.n, train.height, train.width), (60000, 28, 28));
    assert_eq!(train.images.len(), 60000 * 784);
    assert_eq!(
        train.labels[0], 9,
        "the first training image is an ankle boot"
    );
    assert_eq!(
        get_fashion_mnist_labels(&[train.labels[0] as i64]),
        vec!["ankle boot"]
    );
    let mut counts = [0usize; 10];
    for &l in &train.labels {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [6000; 10]);
    let test = FashionMnist::load(&dir, false).unwrap();
    assert_eq!((test.n, test.height, test.width), (10000, 28, 28));

    let small = test.subset(0..5).unwrap();
    let x = small.images_f32().unwrap();
    assert_eq!(x.shape(), &[5, 1, 28, 28]);
    assert_eq!(x.dtype(), DType::F32);
    let v = x.to_vec::<f32>();
    assert!(v.iter().all(|p| (0.0..=1.0).contains(p)));
    assert!(v.iter().any(|&p| p > 0.9));
    let y = small.labels_i64().unwrap();
    assert_eq!(y.dtype(), DType::I64);
    assert_eq!(y.shape(), &[5]);
    let u = small.images_u8().unwrap();
    assert_eq!(u.dtype(), DType::U8);
    assert_eq!(u.to_vec::<u8>(), small.images);
}

#[test]
fn mnist_real_files() {
    let Some(dir) = data_dir("mnist") else { return };
    let train = Mnist::load(&dir, true).unwrap();
    assert_eq!((train.n, train.height, train.width), (60000, 28, 28));
    assert_eq!(train.labels[0], 5);
    let test = Mnist::load(&dir, false).unwrap();
    assert_eq!(test.n, 10000);
    assert_eq!(test.labels[0], 7);
}

#[test]
fn text_labels() {
    assert_eq!(FASHION_MNIST_LABELS.len(), 10);
    assert_eq!(
        get_fashion_mnist_labels(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -1]),
        vec![
            "t-shirt",
            "trouser",
            "pullover",
            "dress",
            "coat",
            "sandal",
            "shirt",
            "sneaker",
            "bag",
            "ankle boot",
            "?",
            "?"
        ]
    );
}

#[test]
fn crafted_files_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
    let raw = write(dir.path(), "imgs", &idx_images(2, 3, 4, &pixels));
    let gz = write(
        dir.path(),
        "imgs.gz.bin",
        &gzip(&idx_images(2, 3, 4, &pixels)),
    );
    for p in [&raw, &gz] {
        let (v, n, h, w) = read_idx_images(p).unwrap();
        assert_eq!((n, h, w), (2, 3, 4));
        assert_eq!(v, pixels);
    }
    let l = write(dir.path(), "labels.gz", &gzip(&idx_labels(&[3, 7])));
    assert_eq!(read_idx_labels(&l).unwrap(), vec![3, 7]);
    // the official names, decompressed, in a folder
    write(
        dir.path(),
        "train-images-idx3-ubyte",
        &idx_images(2, 3, 4, &pixels),
    );
    write(dir.path(), "train-labels-idx1-ubyte", &idx_labels(&[3, 7]));
    let set: ImageSet = FashionMnist::load(dir.path(), true).unwrap();
    assert_eq!(set.labels, vec![3, 7]);
    assert_eq!(set.image(1).unwrap(), &pixels[12..]);
    assert!(set.image(2).is_none());
}

#[test]
fn wrong_magic_is_a_format_error() {
    let dir = tempfile::tempdir().unwrap();
    let labels = write(dir.path(), "l", &idx_labels(&[1, 2, 3]));
    let msg = format_msg(read_idx_images(&labels));
    assert!(
        msg.contains("magic") && msg.contains("0x00000801") && msg.contains("0x00000803"),
        "{msg}"
    );
    let imgs = write(dir.path(), "i", &idx_images(1, 2, 2, &[0; 4]));
    let msg = format_msg(read_idx_labels(&imgs));
    assert!(msg.contains("magic"), "{msg}");
    let junk = write(dir.path(), "j", b"hello world, not idx");
    format_msg(read_idx_images(&junk));
    let tiny = write(dir.path(), "t", &[0, 0]);
    let msg = format_msg(read_idx_labels(&tiny));
    assert!(msg.contains("too short"), "{msg}");
    let empty = write(dir.path(), "e", &[]);
    format_msg(read_idx_images(&empty));
}

#[test]
fn truncated_and_oversized_data_are_format_errors() {
    let dir = tempfile::tempdir().unwrap();
    let short = write(dir.path(), "s", &idx_images(3, 28, 28, &[0; 100]));
    let msg = format_msg(read_idx_images(&short));
    assert!(
        msg.contains("truncated") && msg.contains("2352") && msg.contains("100"),
        "{msg}"
    );
    let header_only = write(dir.path(), "h", &[0, 0, 8, 3, 0, 0, 0, 1, 0, 0]);
    let msg = format_msg(read_idx_images(&header_only));
    assert!(msg.contains("header is truncated"), "{msg}");
    let long = write(
        dir.path(),
        "x",
        &idx_labels(&[1, 2, 3])
            .into_iter()
            .chain([9, 9])
            .collect::<Vec<_>>(),
    );
    let msg = format_msg(read_idx_labels(&long));
    assert!(msg.contains("2 unexpected bytes"), "{msg}");
}

#[test]
fn truncated_gzip_is_a_format_error() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let gz = gzip(&idx_images(5, 1000, 1, &pixels));
    for cut in [gz.len() / 2, gz.len() - 4, 3] {
        let p = write(dir.path(), "cut.gz", &gz[..cut]);
        let msg = format_msg(read_idx_images(&p));
        assert!(msg.contains("gzip") || msg.contains("truncated"), "{msg}");
    }
    // corrupt the CRC
    let mut bad = gz.clone();
    let k = bad.len() - 6;
    bad[k] ^= 0xff;
    let p = write(dir.path(), "crc.gz", &bad);
    format_msg(read_idx_images(&p));
}

#[test]
fn mismatched_counts_and_bad_labels() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "t10k-images-idx3-ubyte.gz",
        &gzip(&idx_images(2, 2, 2, &[0; 8])),
    );
    write(
        dir.path(),
        "t10k-labels-idx1-ubyte.gz",
        &gzip(&idx_labels(&[1, 2, 3])),
    );
    let msg = format_msg(Mnist::load(dir.path(), false));
    assert!(
        msg.contains("3 labels") && msg.contains("2 images"),
        "{msg}"
    );
    write(
        dir.path(),
        "t10k-labels-idx1-ubyte.gz",
        &gzip(&idx_labels(&[1, 12])),
    );
    let msg = format_msg(Mnist::load(dir.path(), false));
    assert!(msg.contains("label 12"), "{msg}");
}

#[test]
fn missing_files_are_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    match FashionMnist::load(dir.path(), true) {
        Err(DataError::Io { path, .. }) => assert!(path.ends_with("train-images-idx3-ubyte.gz")),
        other => panic!("expected an Io error, got {other:?}"),
    }
    assert!(matches!(
        ImageSet::new(vec![0; 5], vec![0], 2, 2),
        Err(DataError::Invalid(_))
    ));
}

#[test]
fn gzip_idx_files_stop_at_the_size_their_header_declares() {
    let dir = tempfile::tempdir().unwrap();
    // A header for one 2×2 image, followed by 64 MB of zeros: the stream is cut at 21
    // bytes (+1), not inflated.
    let mut bytes = idx_images(1, 2, 2, &[1, 2, 3, 4]);
    bytes.extend(std::iter::repeat_n(0u8, 64 << 20));
    let p = dir.path().join("bomb-images.gz");
    std::fs::write(&p, gzip(&bytes)).unwrap();
    let e = read_idx_images(&p).unwrap_err().to_string();
    assert!(
        e.contains("more than the 20 bytes its header declares"),
        "{e}"
    );
    // A header that declares more than memory holds is refused before inflating.
    let huge = idx_images(u32::MAX, 65535, 65535, &[]);
    let p = dir.path().join("huge-images.gz");
    std::fs::write(&p, gzip(&huge)).unwrap();
    let e = read_idx_images(&p).unwrap_err().to_string();
    assert!(
        e.contains("the size its header declares") && e.contains("memory limit"),
        "{e}"
    );
    // Without a header to go by, a gzip stream stops at 100 × its size.
    let p = dir.path().join("plain.gz");
    std::fs::write(&p, gzip(&vec![7u8; 64 << 20])).unwrap();
    let e = d2l_data::idx::read_maybe_gzip(&p).unwrap_err().to_string();
    assert!(e.contains("100 times the file's size"), "{e}");
    // An honest gzip file still reads.
    let p = dir.path().join("ok-labels.gz");
    std::fs::write(&p, gzip(&idx_labels(&[3, 1, 4]))).unwrap();
    assert_eq!(read_idx_labels(&p).unwrap(), vec![3, 1, 4]);
}
