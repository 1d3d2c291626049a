//! D2L 13.1–13.2 readers: CIFAR-10's binary batches (fixtures in the real layout, through
//! the hub from a tar.gz checked against its MD5; the RFC 1321 MD5 vectors), image folders (class order, file order, skipped files, errors,
//! transforms for batching), the hot-dog loader and the pretrained-weight files.

use d2l_data::hub::{DataHub, RemoteFile};
use d2l_data::loader::{DataLoader, Dataset, Example};
use d2l_data::DataError;
use d2l_tensor::{DType, Tensor};
use d2l_vision::cifar::*;
use d2l_vision::folder::*;
use d2l_vision::image::write_png;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn hub(cache: &Path) -> DataHub {
    DataHub::new(cache).without_system_dirs().quiet()
}

// ---------------------------------------------------------------------------------------
// CIFAR-10
// ---------------------------------------------------------------------------------------

/// The pixel byte `j` (0..3072) of the fixture image with this seed.
fn pixel(seed: usize, j: usize) -> u8 {
    ((seed * 37 + j * 11 + j / 1024 * 5 + j / 32) % 256) as u8
}

/// One record: the label byte and 3072 pixel bytes.
fn record(label: u8, seed: usize) -> Vec<u8> {
    let mut r = vec![label];
    r.extend((0..3072).map(|j| pixel(seed, j)));
    r
}

/// Fixture records per file: (file, [(label, seed)]).
fn fixture_records() -> Vec<(&'static str, Vec<(u8, usize)>)> {
    vec![
        ("data_batch_1.bin", vec![(6, 0), (9, 1)]),
        ("data_batch_2.bin", vec![(0, 2)]),
        ("data_batch_3.bin", vec![(3, 3), (3, 4), (1, 5)]),
        ("data_batch_4.bin", vec![(7, 6)]),
        ("data_batch_5.bin", vec![(2, 7), (8, 8)]),
        ("test_batch.bin", vec![(4, 100), (5, 101), (0, 102)]),
    ]
}

fn batch_bytes(recs: &[(u8, usize)]) -> Vec<u8> {
    recs.iter().flat_map(|&(l, s)| record(l, s)).collect()
}

const META: &str = "plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";

/// Writes `root/cifar-10-batches-bin/` with the fixture batches (and the meta file).
fn write_cifar(root: &Path, meta: Option<&str>) -> PathBuf {
    let dir = root.join(CIFAR10_FOLDER);
    std::fs::create_dir_all(&dir).unwrap();
    for (f, recs) in fixture_records() {
        std::fs::write(dir.join(f), batch_bytes(&recs)).unwrap();
    }
    if let Some(m) = meta {
        std::fs::write(dir.join(CIFAR10_META_FILE), m).unwrap();
    }
    dir
}

fn check_split(x: &Tensor, y: &Tensor, expected: &[(u8, usize)]) {
    let n = expected.len();
    assert_eq!(x.shape(), &[n, 3, 32, 32]);
    assert_eq!(x.dtype(), DType::U8);
    assert_eq!(y.shape(), &[n]);
    assert_eq!(y.dtype(), DType::I64);
    let xs = x.to_vec::<u8>();
    let ys = y.to_vec::<i64>();
    for (i, &(label, seed)) in expected.iter().enumerate() {
        assert_eq!(ys[i], label as i64, "label {i}");
        let img = &xs[i * 3072..(i + 1) * 3072];
        for (j, &v) in img.iter().enumerate() {
            assert_eq!(v, pixel(seed, j), "image {i} byte {j}");
        }
    }
    // Channel-first: (c, r, col) is byte c*1024 + r*32 + col of the record's pixels.
    let (i, c, r, col) = (n - 1, 2, 17, 5);
    let v = x
        .select(0, i as isize)
        .unwrap()
        .select(0, c)
        .unwrap()
        .select(0, r)
        .unwrap()
        .select(0, col)
        .unwrap()
        .to_vec::<u8>()[0];
    assert_eq!(
        v,
        pixel(
            expected[i].1,
            c as usize * 1024 + r as usize * 32 + col as usize
        )
    );
}

fn train_expected() -> Vec<(u8, usize)> {
    fixture_records()
        .into_iter()
        .filter(|(f, _)| f.starts_with("data_batch"))
        .flat_map(|(_, r)| r)
        .collect()
}

#[test]
fn cifar_reads_exact_pixels_and_labels_in_file_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_cifar(tmp.path(), Some(META));
    let (x, y) = read_cifar10(tmp.path(), true).unwrap();
    check_split(&x, &y, &train_expected());
    let (x, y) = read_cifar10(tmp.path(), false).unwrap();
    check_split(&x, &y, &[(4, 100), (5, 101), (0, 102)]);
    // The batches folder itself is accepted as the root too.
    let (x2, y2) = read_cifar10(&dir, false).unwrap();
    assert_eq!(x2.to_vec::<u8>(), x.to_vec::<u8>());
    assert_eq!(y2.to_vec::<i64>(), y.to_vec::<i64>());
    // One file.
    let (x, y) = read_cifar10_batch(&dir.join("data_batch_3.bin")).unwrap();
    check_split(&x, &y, &[(3, 3), (3, 4), (1, 5)]);
}

#[test]
fn cifar_class_names_from_meta_or_standard() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_cifar(tmp.path(), Some(META));
    let c = read_cifar10_classes(tmp.path()).unwrap();
    assert_eq!(c[0], "plane");
    assert_eq!(c[9], "truck");
    assert_eq!(c.len(), 10);
    std::fs::remove_file(dir.join(CIFAR10_META_FILE)).unwrap();
    let c = read_cifar10_classes(tmp.path()).unwrap();
    assert_eq!(c, CIFAR10_CLASSES.map(String::from).to_vec());
    std::fs::write(dir.join(CIFAR10_META_FILE), "a\nb\nc\n").unwrap();
    let e = read_cifar10_classes(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("batches.meta.txt") && e.contains("expected 10 class names"),
        "{e}"
    );
}

#[test]
fn cifar_dataset_is_to_tensor_scaled_and_batches_match_examples() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar(tmp.path(), None);
    let ds = Cifar10Dataset::open(tmp.path(), true).unwrap();
    assert_eq!(ds.len(), 9);
    assert_eq!(ds.classes()[0], "airplane");
    let ex = ds.get(3).unwrap();
    assert_eq!(ex.x.shape(), &[3, 32, 32]);
    assert_eq!(ex.x.dtype(), DType::F32);
    assert_eq!(ex.y.shape(), &[] as &[usize]);
    assert_eq!(ex.y.dtype(), DType::I64);
    assert_eq!(ex.y.to_vec::<i64>(), vec![3]);
    let xs = ex.x.to_vec::<f32>();
    for (j, &v) in xs.iter().enumerate() {
        assert_eq!(v, pixel(3, j) as f32 / 255.0, "byte {j}");
        assert!((0.0..=1.0).contains(&v));
    }
    let b = ds.get_batch(&[8, 3, 0]).unwrap();
    assert_eq!(b.x.shape(), &[3, 3, 32, 32]);
    assert_eq!(b.y.to_vec::<i64>(), vec![8, 3, 6]);
    assert_eq!(&b.x.to_vec::<f32>()[3072..6144], xs.as_slice());
    assert!(ds.get(9).is_err());
    assert!(ds.get_batch(&[0, 9]).is_err());
}

#[test]
fn cifar_loaders_cover_both_splits() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar(tmp.path(), Some(META));
    let (train, test) = load_cifar10_from(tmp.path(), 4).unwrap();
    assert_eq!(train.num_examples(), 9);
    assert_eq!(test.num_examples(), 3);
    assert_eq!(train.len(), 3);
    let mut labels = Vec::new();
    for b in &train {
        let b = b.unwrap();
        assert_eq!(&b.x.shape()[1..], &[3, 32, 32]);
        labels.extend(b.y.to_vec::<i64>());
    }
    labels.sort();
    let mut want: Vec<i64> = train_expected().iter().map(|r| r.0 as i64).collect();
    want.sort();
    assert_eq!(labels, want);
    let b: Vec<_> = test.iter_epoch(0).map(|b| b.unwrap()).collect();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].y.to_vec::<i64>(), vec![4, 5, 0]);
}

#[test]
fn cifar_bad_files_are_errors_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_cifar(tmp.path(), Some(META));
    // A length that is not a whole number of records.
    let mut bytes = batch_bytes(&[(1, 1), (2, 2)]);
    bytes.extend([0u8; 5]);
    std::fs::write(dir.join("data_batch_2.bin"), &bytes).unwrap();
    let e = read_cifar10(tmp.path(), true).unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("data_batch_2.bin") && m.contains("3073") && m.contains("6151 bytes"),
        "{m}"
    );
    // An empty file.
    std::fs::write(dir.join("data_batch_2.bin"), b"").unwrap();
    let m = read_cifar10(tmp.path(), true).unwrap_err().to_string();
    assert!(
        m.contains("data_batch_2.bin") && m.contains("0 bytes"),
        "{m}"
    );
    // A label of 10 in record 2.
    let mut bytes = batch_bytes(&[(1, 1), (2, 2), (3, 3)]);
    bytes[2 * 3073] = 10;
    std::fs::write(dir.join("data_batch_2.bin"), &bytes).unwrap();
    let m = read_cifar10(tmp.path(), true).unwrap_err().to_string();
    assert!(
        m.contains("data_batch_2.bin") && m.contains("record 2") && m.contains("label 10"),
        "{m}"
    );
    // The test split does not read the training files.
    read_cifar10(tmp.path(), false).unwrap();
    // A missing file.
    std::fs::remove_file(dir.join("data_batch_2.bin")).unwrap();
    let m = read_cifar10(tmp.path(), true).unwrap_err().to_string();
    assert!(
        m.contains("data_batch_2.bin") && m.contains("not found"),
        "{m}"
    );
    std::fs::remove_file(dir.join("test_batch.bin")).unwrap();
    let m = Cifar10Dataset::open(tmp.path(), false)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("test_batch.bin") && m.contains("not found"),
        "{m}"
    );
    // Bad tensors for the data set.
    let x = Tensor::from_vec(vec![0u8; 3072], &[1, 3, 32, 32]).unwrap();
    let y = Tensor::from_vec(vec![0i64; 2], &[2]).unwrap();
    assert!(Cifar10Dataset::new(x, y, vec![]).is_err());
}

fn make_tar_gz(path: &Path, root: &Path) {
    let f = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    t.append_dir_all(CIFAR10_FOLDER, root.join(CIFAR10_FOLDER))
        .unwrap();
    t.into_inner().unwrap().finish().unwrap();
}

#[test]
fn cifar_through_the_hub_from_a_tar_gz_offline() {
    let src = tempfile::tempdir().unwrap();
    write_cifar(src.path(), Some(META));
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("cifar10")).unwrap();
    let archive = data.path().join(CIFAR10_HUB_NAME);
    make_tar_gz(&archive, src.path());
    let md5 = md5_file(&archive).unwrap();
    assert_ne!(md5, CIFAR10_MD5);

    let f = cifar10_file();
    assert_eq!(f.name, CIFAR10_HUB_NAME);
    assert_eq!(f.url, CIFAR10_URL);

    let h = hub(cache.path()).with_data_dir(data.path()).offline(true);
    let extracted = cache
        .path()
        .join("cifar10/cifar-10-binary.tar.gz.extracted");

    // The fixture is not Toronto's archive: refused before anything is extracted, and the
    // copy in the data dir (the user's) is kept.
    let e = load_cifar10(&h, 5).unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains(CIFAR10_HUB_NAME)
            && m.contains("MD5 mismatch")
            && m.contains(CIFAR10_MD5)
            && m.contains(&md5)
            && m.contains("kept")
            && m.contains(CIFAR10_URL),
        "{m}"
    );
    assert!(archive.is_file());
    assert!(!extracted.exists(), "extracted an unverified archive");

    // With the fixture's own MD5 injected, it is verified and unpacked into the cache.
    let root = cifar10_root_with_md5(&h, &md5.to_ascii_uppercase()).unwrap();
    assert_eq!(root, extracted.join(CIFAR10_FOLDER));
    let (x, y) = read_cifar10(&root, false).unwrap();
    check_split(&x, &y, &[(4, 100), (5, 101), (0, 102)]);

    // An existing extraction is accepted as before, without re-verifying the archive.
    assert_eq!(cifar10_root(&h).unwrap(), root);
    let (train, test) = load_cifar10(&h, 5).unwrap();
    assert_eq!((train.num_examples(), test.num_examples()), (9, 3));

    // Offline with nothing anywhere: an error naming the file and Toronto's URL.
    let empty = tempfile::tempdir().unwrap();
    let h = hub(empty.path()).offline(true);
    let e = load_cifar10(&h, 5).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains(CIFAR10_HUB_NAME) && m.contains(CIFAR10_URL),
        "{m}"
    );
}

#[test]
fn cifar_archive_with_a_wrong_md5_in_the_cache_is_deleted() {
    let src = tempfile::tempdir().unwrap();
    write_cifar(src.path(), None);
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cache.path().join("cifar10")).unwrap();
    let cached = cache.path().join(CIFAR10_HUB_NAME);
    make_tar_gz(&cached, src.path());
    let md5 = md5_file(&cached).unwrap();

    let h = hub(cache.path()).offline(true);
    let e = cifar10_root(&h).unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains(CIFAR10_HUB_NAME)
            && m.contains(CIFAR10_MD5)
            && m.contains(&md5)
            && m.contains("deleted"),
        "{m}"
    );
    assert!(!cached.exists(), "the bad copy in the cache was kept");
    assert!(!cache
        .path()
        .join("cifar10/cifar-10-binary.tar.gz.extracted")
        .exists());
    // The next call finds nothing and (offline) reports the file as missing.
    let e = cifar10_root(&h).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e:?}");

    // The same file with its MD5 given is accepted from the cache.
    make_tar_gz(&cached, src.path());
    let md5 = md5_file(&cached).unwrap();
    let root = cifar10_root_with_md5(&h, &md5).unwrap();
    assert_eq!(
        root,
        cache
            .path()
            .join("cifar10/cifar-10-binary.tar.gz.extracted")
            .join(CIFAR10_FOLDER)
    );
    assert!(cached.is_file());
}

#[test]
fn cifar_folder_unpacked_by_hand_is_used_without_an_archive_check() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let dir = write_cifar(&data.path().join("cifar10"), Some(META));
    // A wrong archive next to it does not matter: there is nothing to extract.
    std::fs::write(data.path().join(CIFAR10_HUB_NAME), b"not an archive").unwrap();
    let h = hub(cache.path()).with_data_dir(data.path()).offline(true);
    assert_eq!(cifar10_root(&h).unwrap(), dir);
    let (train, test) = load_cifar10(&h, 4).unwrap();
    assert_eq!((train.num_examples(), test.num_examples()), (9, 3));
}

#[test]
fn md5_matches_the_rfc_1321_vectors() {
    let vectors: [(&str, &str); 7] = [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        (
            "abcdefghijklmnopqrstuvwxyz",
            "c3fcd3d76192e4007dfb496cca67e13b",
        ),
        (
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "d174ab98d277d9f5a5611c2c9f419d9f",
        ),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("m");
    for (msg, sum) in vectors {
        assert_eq!(md5_hex(msg.as_bytes()), sum, "{msg:?}");
        std::fs::write(&p, msg).unwrap();
        assert_eq!(md5_file(&p).unwrap(), sum, "{msg:?}");
    }
    // A million 'a', read from a file in 1 MiB chunks.
    std::fs::write(&p, vec![b'a'; 1_000_000]).unwrap();
    assert_eq!(md5_file(&p).unwrap(), "7707d6ae4e027c70eea2a935c2296f21");
    // Lengths around the padding boundary agree between one update and a file.
    for n in [
        55usize,
        56,
        57,
        63,
        64,
        65,
        119,
        120,
        1 << 20,
        (1 << 20) + 3,
    ] {
        let bytes: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(md5_file(&p).unwrap(), md5_hex(&bytes), "n = {n}");
    }
}

#[test]
fn verify_md5_refuses_a_tar_gz_with_another_md5() {
    let src = tempfile::tempdir().unwrap();
    write_cifar(src.path(), None);
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("fixture.tar.gz");
    make_tar_gz(&p, src.path());
    let md5 = md5_file(&p).unwrap();
    verify_md5(&p, &md5).unwrap();
    verify_md5(&p, &md5.to_ascii_uppercase()).unwrap();
    let e = verify_md5(&p, CIFAR10_MD5).unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("fixture.tar.gz")
            && m.contains(CIFAR10_MD5)
            && m.contains(&md5)
            && m.contains("fetch it again"),
        "{m}"
    );
    assert!(p.is_file(), "verify_md5 leaves the file alone");
    let e = verify_md5(&tmp.path().join("absent.tar.gz"), CIFAR10_MD5).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------------
// Image folders
// ---------------------------------------------------------------------------------------

/// A deterministic `uint8` (3, h, w) image.
fn test_image(seed: usize, h: usize, w: usize) -> Tensor {
    let data: Vec<u8> = (0..3 * h * w)
        .map(|i| ((i * 13 + seed * 29 + i / 7) % 256) as u8)
        .collect();
    Tensor::from_vec(data, &[3, h, w]).unwrap()
}

fn write_jpeg(path: &Path, h: u32, w: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 20) as u8, (y * 30) as u8, 128])
    });
    img.save_with_format(path, image::ImageFormat::Jpeg)
        .unwrap();
}

/// `dir` with classes `C_upper`, `a_cls`, `b_cls` (sorted by byte), a stray top-level
/// file, non-image files, a nested folder, mixed-case extensions and different sizes.
fn write_folder(dir: &Path) {
    for c in ["b_cls/sub", "a_cls", "C_upper"] {
        std::fs::create_dir_all(dir.join(c)).unwrap();
    }
    std::fs::write(dir.join("README.txt"), "stray").unwrap();
    write_png(&test_image(1, 4, 5), dir.join("a_cls/2.png"), false).unwrap();
    write_png(&test_image(2, 6, 3), dir.join("a_cls/10.PNG"), false).unwrap();
    write_jpeg(&dir.join("a_cls/1.jpg"), 8, 8);
    std::fs::write(dir.join("a_cls/notes.txt"), "not an image").unwrap();
    std::fs::write(dir.join("a_cls/png"), "no extension").unwrap();
    write_png(&test_image(3, 4, 5), dir.join("b_cls/z.png"), false).unwrap();
    write_png(&test_image(4, 4, 5), dir.join("b_cls/sub/a.png"), false).unwrap();
    write_jpeg(&dir.join("C_upper/x.JPEG"), 5, 4);
}

#[test]
fn folder_lists_classes_and_files_like_torchvision() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder(tmp.path());
    let f = ImageFolder::open(tmp.path()).unwrap();
    assert_eq!(f.classes(), &["C_upper", "a_cls", "b_cls"]);
    assert_eq!(f.class_to_idx()["b_cls"], 2);
    let rel: Vec<(String, usize)> = f
        .samples()
        .iter()
        .map(|(p, l)| {
            (
                p.strip_prefix(tmp.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                *l,
            )
        })
        .collect();
    let want = [
        ("C_upper/x.JPEG", 0),
        ("a_cls/1.jpg", 1),
        ("a_cls/10.PNG", 1),
        ("a_cls/2.png", 1),
        ("b_cls/z.png", 2),
        ("b_cls/sub/a.png", 2),
    ];
    let want: Vec<(String, usize)> = want.iter().map(|(p, l)| (p.to_string(), *l)).collect();
    assert_eq!(rel, want);
    assert_eq!(f.targets(), vec![0, 1, 1, 1, 2, 2]);
    assert_eq!(f.len(), 6);
    assert!(is_image_file(Path::new("a/b.JpG")));
    assert!(!is_image_file(Path::new("a/b.gif")));
}

#[test]
fn folder_decodes_lazily_to_unit_range_f32() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder(tmp.path());
    let f = ImageFolder::open(tmp.path()).unwrap();
    // a_cls/10.PNG: exact pixels.
    let ex = f.get(2).unwrap();
    assert_eq!(ex.x.shape(), &[3, 6, 3]);
    assert_eq!(ex.x.dtype(), DType::F32);
    let want: Vec<f32> = test_image(2, 6, 3)
        .to_vec::<u8>()
        .into_iter()
        .map(|v| v as f32 / 255.0)
        .collect();
    assert_eq!(ex.x.to_vec::<f32>(), want);
    assert_eq!(ex.y.shape(), &[] as &[usize]);
    assert_eq!(ex.y.dtype(), DType::I64);
    assert_eq!(ex.y.to_vec::<i64>(), vec![1]);
    // The JPEG: its size and label (pixels are lossy).
    let ex = f.get(0).unwrap();
    assert_eq!(ex.x.shape(), &[3, 5, 4]);
    assert_eq!(ex.y.to_vec::<i64>(), vec![0]);
    let (raw, label) = f.read_raw(5).unwrap();
    assert_eq!(raw.to_vec::<u8>(), test_image(4, 4, 5).to_vec::<u8>());
    assert_eq!(label, 2);
    assert!(f.get(6).is_err());
}

#[test]
fn folder_errors() {
    // No class folders (only a stray file).
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.png"), "x").unwrap();
    let m = ImageFolder::open(tmp.path()).unwrap_err().to_string();
    assert!(m.contains("no class folders"), "{m}");
    // A missing folder.
    let m = ImageFolder::open(tmp.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(m.contains("nope"), "{m}");
    // Classes without images (non-image files only, or nothing): all named.
    let tmp = tempfile::tempdir().unwrap();
    write_folder(tmp.path());
    std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
    std::fs::create_dir_all(tmp.path().join("texts")).unwrap();
    std::fs::write(tmp.path().join("texts/a.txt"), "x").unwrap();
    let e = ImageFolder::open(tmp.path()).unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("no image file") && m.contains("`empty`") && m.contains("`texts`"),
        "{m}"
    );
    // A corrupt image: opening works, reading names the path.
    let tmp = tempfile::tempdir().unwrap();
    write_folder(tmp.path());
    std::fs::write(tmp.path().join("a_cls/2.png"), b"\x89PNG garbage").unwrap();
    let f = ImageFolder::open(tmp.path()).unwrap();
    let e = f.get(3).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("a_cls/2.png") || m.contains("a_cls\\2.png"),
        "{m}"
    );
    assert!(f.get(2).is_ok());
    // Removed after opening: an I/O error naming the path.
    std::fs::remove_file(tmp.path().join("b_cls/z.png")).unwrap();
    let m = f.get(4).unwrap_err().to_string();
    assert!(m.contains("z.png"), "{m}");
}

/// Resizes every image to 4×4 (a stand-in for 13.2's crops).
fn to_4x4(ex: Example) -> d2l_data::Result<Example> {
    Ok(Example {
        x: d2l_data::transforms::resize_bilinear(&ex.x, 4, 4)?,
        y: ex.y,
    })
}

#[test]
fn folder_batches_need_a_size_transform() {
    let tmp = tempfile::tempdir().unwrap();
    write_folder(tmp.path());
    let f = ImageFolder::open(tmp.path()).unwrap();
    // Without a transform, stacking different sizes fails, naming the examples.
    let loader = DataLoader::new(Arc::new(f.clone()), 6).unwrap().prefetch(0);
    let e = loader.iter_epoch(0).next().unwrap().unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("cannot batch examples 0 and 1")
            && m.contains("[3, 5, 4]")
            && m.contains("[3, 8, 8]"),
        "{m}"
    );
    // With the transform on the loader, or on the folder.
    let loader = DataLoader::new(Arc::new(f.clone()), 6)
        .unwrap()
        .transform(to_4x4);
    let b = loader.iter_epoch(0).next().unwrap().unwrap();
    assert_eq!(b.x.shape(), &[6, 3, 4, 4]);
    assert_eq!(b.y.to_vec::<i64>(), vec![0, 1, 1, 1, 2, 2]);
    let ft = f.with_transform(to_4x4);
    assert_eq!(ft.get(1).unwrap().x.shape(), &[3, 4, 4]);
    let loader = DataLoader::new(Arc::new(ft), 4).unwrap();
    let shapes: Vec<Vec<usize>> = loader
        .iter_epoch(0)
        .map(|b| b.unwrap().x.shape().to_vec())
        .collect();
    assert_eq!(shapes, vec![vec![4, 3, 4, 4], vec![2, 3, 4, 4]]);
}

#[test]
fn hotdog_from_a_folder_unpacked_by_hand() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let root = data.path().join("hotdog/hotdog");
    for (k, split) in ["train", "test"].iter().enumerate() {
        for (c, class) in ["not-hotdog", "hotdog"].iter().enumerate() {
            let d = root.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..(2 + k + c) {
                write_png(&test_image(i, 3, 2 + i), d.join(format!("{i}.png")), false).unwrap();
            }
        }
    }
    let h = hub(cache.path()).with_data_dir(data.path()).offline(true);
    assert_eq!(hotdog_root(&h).unwrap(), root);
    let (train, test) = load_hotdog(&h).unwrap();
    assert_eq!(train.classes(), &["hotdog", "not-hotdog"]);
    assert_eq!(test.classes(), &["hotdog", "not-hotdog"]);
    assert_eq!(train.targets(), vec![0, 0, 0, 1, 1]);
    assert_eq!(test.targets(), vec![0, 0, 0, 0, 1, 1, 1]);
    assert_eq!(train.get(4).unwrap().x.shape(), &[3, 3, 3]);

    // Offline with nothing anywhere: an error naming the registered zip.
    let empty = tempfile::tempdir().unwrap();
    let m = load_hotdog(&hub(empty.path()).offline(true))
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("hotdog/hotdog.zip") && m.contains("hotdog.zip"),
        "{m}"
    );
}

// ---------------------------------------------------------------------------------------
// Pretrained weights
// ---------------------------------------------------------------------------------------

#[test]
fn sha256_matches_the_standard_vectors() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    // A million 'a', read from a file in 1 MiB chunks (not a multiple of 64 per read end).
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("a");
    std::fs::write(&p, vec![b'a'; 1_000_000]).unwrap();
    assert_eq!(
        sha256_file(&p).unwrap(),
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    );
    // Lengths around the padding boundary agree between one update and a file.
    for n in [55usize, 56, 63, 64, 65, 119, 120, 1 << 20, (1 << 20) + 3] {
        let bytes: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256_hex(&bytes), "n = {n}");
    }
}

#[test]
fn weights_names_resolve_to_torchvision_files() {
    let f = weights_file("resnet18").unwrap();
    assert_eq!(f.name, "weights/resnet18-f37072fd.pth");
    assert_eq!(
        f.url,
        "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    );
    assert_eq!(f.sha1, None);
    assert_eq!(weights_file("weights/resnet18-f37072fd.pth").unwrap(), f);
    let v = weights_file("vgg19-dcbb9e9d.pth").unwrap();
    assert_eq!(v.name, "weights/vgg19-dcbb9e9d.pth");
    assert_eq!(
        v.url,
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    );
    let m = weights_file("alexnet").unwrap_err().to_string();
    assert!(m.contains("alexnet") && m.contains("resnet18"), "{m}");
    assert_eq!(
        sha256_prefix_of_name("resnet18-f37072fd.pth"),
        Some("f37072fd")
    );
    assert_eq!(
        sha256_prefix_of_name("weights/vgg19-dcbb9e9d.pth"),
        Some("dcbb9e9d")
    );
    assert_eq!(sha256_prefix_of_name("model.pth"), None);
    assert_eq!(sha256_prefix_of_name("my-model.pth"), None);
}

#[test]
fn weights_are_checked_against_the_sha256_in_their_name() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("weights")).unwrap();
    let h = hub(cache.path()).with_data_dir(data.path()).offline(true);

    // Offline and nowhere: the error names the file and its URL.
    let e = pretrained_weights(&h, "resnet18").unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e:?}");
    assert!(e
        .to_string()
        .contains("download.pytorch.org/models/resnet18-f37072fd.pth"));

    // A file whose SHA-256 does not start with f37072fd: an error naming it, kept in the
    // data dir (the user's).
    let p = data.path().join("weights/resnet18-f37072fd.pth");
    std::fs::write(&p, b"not the weights").unwrap();
    let e = pretrained_weights(&h, "resnet18").unwrap_err();
    assert!(matches!(e, DataError::Format { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("resnet18-f37072fd.pth") && m.contains("SHA-256 mismatch"),
        "{m}"
    );
    assert!(p.is_file());

    // A file named after its own SHA-256 prefix passes, from the data dir and the cache.
    let bytes = b"toy weights".to_vec();
    let prefix = sha256_hex(&bytes)[..8].to_string();
    let name = format!("weights/toy-{prefix}.pth");
    std::fs::write(data.path().join(&name), &bytes).unwrap();
    let f = RemoteFile::new(&name, "http://127.0.0.1:9/toy.pth", None);
    assert_eq!(fetch_hashed_file(&h, &f).unwrap(), data.path().join(&name));
    assert_eq!(fetch_hashed_file(&h, &f).unwrap(), data.path().join(&name));
    let h2 = hub(cache.path()).offline(true);
    std::fs::create_dir_all(cache.path().join("weights")).unwrap();
    std::fs::write(cache.path().join(&name), &bytes).unwrap();
    assert_eq!(
        fetch_hashed_file(&h2, &f).unwrap(),
        cache.path().join(&name)
    );
    // A corrupt copy in the cache is removed.
    std::fs::write(cache.path().join(&name), b"corrupt").unwrap();
    let e = fetch_hashed_file(&h2, &f).unwrap_err();
    assert!(e.to_string().contains(&prefix), "{e}");
    assert!(!cache.path().join(&name).exists());
}
