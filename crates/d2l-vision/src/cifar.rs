//! CIFAR-10 (D2L 13.1) from its **binary** release, `cifar-10-binary.tar.gz`.
//!
//! The archive unpacks to `cifar-10-batches-bin/`, holding `data_batch_1.bin` …
//! `data_batch_5.bin` (the 50 000 training images), `test_batch.bin` (10 000 test images)
//! and `batches.meta.txt` (the 10 class names, one a line). Every batch file is a run of
//! 3073-byte records: 1 label byte (0–9), then 3072 pixel bytes, the red plane, the green
//! plane and the blue plane of a 32×32 image, each row-major. So a record *is* a `uint8`
//! `(3, 32, 32)` image in channel-first order, and no Python pickle is ever read (the book
//! gets the same data through torchvision's pickled `cifar-10-python.tar.gz`).
//!
//! The real batch files hold exactly 10 000 records each. The reader accepts any whole,
//! non-zero number of records per file (so small fixtures in the real layout work), but a
//! file whose length is not a multiple of 3073 bytes, an empty file, a label of 10 or more
//! and a missing file are [`DataError`]s naming the file (and, for a bad label, the record).
//!
//! [`read_cifar10`] returns all images of a split as one `uint8` `(N, 3, 32, 32)` tensor
//! and the labels as `i64` `(N,)`. [`Cifar10Dataset`] serves them as torchvision's
//! `ToTensor` does: `x` is `f32` `(3, 32, 32)` in `[0, 1]` (the byte divided by 255) and
//! `y` a 0-d `i64` label. [`load_cifar10`] fetches the archive through the data hub and
//! returns the book's two loaders (training shuffled, test in order); the 13.1
//! augmentation (`RandomHorizontalFlip`) is a per-example transform for the caller to add
//! with `DataLoader::transform`.
//!
//! # The archive's checksum
//!
//! Toronto publishes only an **MD5** for `cifar-10-binary.tar.gz`,
//! `c32a1d4ab5d03f1284b67883e8d87530` ([`CIFAR10_MD5`]); its SHA-1 could not be
//! established (MXNet's Gluon registers the SHA-1 `fab780a1e191a7eda0f345501ccd62d20f7ed891`
//! for *its own* copy, which is not known to be byte-identical). The data hub verifies
//! SHA-1s only, so it is given the archive by [`cifar10_file`] with no SHA-1 (it finds the
//! file in the data dir or the cache, or downloads it, and accepts any content), and
//! [`cifar10_root`] then checks the MD5 itself, **before** anything is extracted, with the
//! same rules as the pretrained weights' SHA-256 (`folder::fetch_hashed_file`):
//!
//! - a mismatching archive is a [`DataError::Format`] naming the file, the expected and the
//!   actual MD5 and what to do, and nothing is extracted;
//! - a mismatching copy in the hub's **cache** (the hub's own, downloaded) is deleted, so
//!   the next call downloads it again; one in the **data dir** (the user's) is kept and
//!   reported.
//!
//! The extraction is not done by the hub's `fetch_file_and_extract` (which would unpack
//! an unverified archive) but here, with the same layout: a folder unpacked by hand as
//! `<data dir>/cifar10/cifar-10-batches-bin` is used as it is, and the archive is unpacked
//! once, atomically, into `<cache>/cifar10/cifar-10-binary.tar.gz.extracted/`. In both of
//! these cases, an **already-extracted folder is accepted without re-verifying the
//! archive** (it may not even be there any more; an extraction in the cache was verified
//! when it was made, unless an older version made it). The reader's format checks
//! (record size, label range) still apply to what is read. Should
//! `cifar10/cifar-10-binary.tar.gz` be registered with a SHA-1 later, [`cifar10_file`]
//! uses that entry and the hub checks the SHA-1 too.

/// The MD5 of a file's bytes, as lowercase hex (what Toronto publishes for
/// `cifar-10-binary.tar.gz`). MD5 is broken as a defence against a deliberate forgery; here
/// it guards against truncated, corrupt or wrong downloads.
pub fn md5_file(path: &std::path::Path) -> Result<String> {
    d2l_data::hub::digest_file::<md5::Md5>(path)
}

/// The MD5 of bytes in memory, as lowercase hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    d2l_data::hub::digest_hex::<md5::Md5>(bytes)
}
use d2l_data::hub::{self, DataHub, RemoteFile};
use d2l_data::loader::{Batch, DataLoader, Dataset, Example};
use d2l_data::{DataError, Result};
use d2l_tensor::{DType, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The name of the archive in a data dir or the cache.
pub const CIFAR10_HUB_NAME: &str = "cifar10/cifar-10-binary.tar.gz";
/// Where the binary release is downloaded from.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// The MD5 that the CIFAR page publishes for `cifar-10-binary.tar.gz`, checked by
/// [`cifar10_root`] before the archive is extracted.
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// The folder the archive unpacks to.
pub const CIFAR10_FOLDER: &str = "cifar-10-batches-bin";
/// The training batch files, in reading order.
pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch file.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";
/// The class-name file (one name a line).
pub const CIFAR10_META_FILE: &str = "batches.meta.txt";
/// The standard class names, by label (used when `batches.meta.txt` is absent).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// Bytes of one image: 3 planes of 32×32.
pub const CIFAR10_IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one record: the label byte and the image.
pub const CIFAR10_RECORD_BYTES: usize = 1 + CIFAR10_IMAGE_BYTES;
/// Records in each real batch file.
pub const CIFAR10_RECORDS_PER_FILE: usize = 10_000;

fn format_err(path: &Path, msg: String) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        msg,
    }
}

/// The archive as the hub fetches it: the registry's entry if one is registered, else a
/// run-time description with Toronto's URL and no SHA-1 (see the module docs).
pub fn cifar10_file() -> RemoteFile {
    match hub::entry(CIFAR10_HUB_NAME) {
        Ok(e) => RemoteFile::from(e),
        Err(_) => RemoteFile::new(CIFAR10_HUB_NAME, CIFAR10_URL, None),
    }
}

/// Checks that the MD5 of the file at `path` is `expected` (hex, either case). A mismatch
/// is a [`DataError::Format`] naming the file and showing the expected and the actual MD5;
/// the file is left where it is.
pub fn verify_md5(path: &Path, expected: &str) -> Result<()> {
    let (got, expected) = (md5_file(path)?, expected.trim().to_ascii_lowercase());
    if got == expected {
        return Ok(());
    }
    Err(format_err(
        path,
        format!(
            "MD5 mismatch: expected {expected}, got {got}; the file is truncated, corrupt or \
             not the one expected (delete it and fetch it again)"
        ),
    ))
}

/// Fetches `file` through the hub and checks its MD5 against `expected` before returning
/// its path. On a mismatch, a copy in the hub's cache is deleted (so the next call
/// downloads it again) and one anywhere else (the data dir, a system copy) is kept; the
/// error names the file, both MD5s, where the file came from and what to do.
fn fetch_md5_file(hub: &DataHub, file: &RemoteFile, expected: &str) -> Result<PathBuf> {
    let path = hub.fetch_file(file)?;
    let expected = expected.trim().to_ascii_lowercase();
    let got = md5_file(&path)?;
    if got == expected {
        return Ok(path);
    }
    let fix = if path.starts_with(hub.cache_dir()) {
        match std::fs::remove_file(&path) {
            Ok(()) => format!(
                "the copy in the cache was deleted; run again to download it afresh from {}",
                hub.url_for(file)
            ),
            Err(e) => format!("deleting it from the cache failed ({e}); delete it by hand"),
        }
    } else {
        format!(
            "this copy was kept (it is not in the hub's cache); delete or replace it with a \
             good copy from {}",
            hub.url_for(file)
        )
    };
    Err(format_err(
        &path,
        format!(
            "MD5 mismatch for {}: expected {expected}, got {got}; the archive is truncated, \
             corrupt or not the published one, and was not extracted; {fix}",
            file.name
        ),
    ))
}

/// [`DataHub::fetch_file_and_extract`] with an MD5 check between fetching and extracting
/// (see the module docs for the layout and for what is accepted without a check).
fn fetch_md5_and_extract(
    hub: &DataHub,
    file: &RemoteFile,
    expected_md5: &str,
    folder: &str,
) -> Result<PathBuf> {
    hub.fetch_file_and_extract_with(file, folder, |f| fetch_md5_file(hub, f, expected_md5))
}

/// The unpacked `cifar-10-batches-bin` folder, fetched through the hub, checked against
/// Toronto's MD5 ([`CIFAR10_MD5`]) and extracted if needed (see the module docs: a folder
/// unpacked by hand as `<data dir>/cifar10/cifar-10-batches-bin`, or an earlier extraction
/// in the cache, is used as it is, without re-verifying the archive).
pub fn cifar10_root(hub: &DataHub) -> Result<PathBuf> {
    cifar10_root_with_md5(hub, CIFAR10_MD5)
}

/// [`cifar10_root`] with another expected MD5 for the archive: for a re-packed copy whose
/// MD5 is known, and for tests with fixture archives. The official archive is checked
/// against [`CIFAR10_MD5`] by [`cifar10_root`] and [`load_cifar10`].
pub fn cifar10_root_with_md5(hub: &DataHub, expected_md5: &str) -> Result<PathBuf> {
    fetch_md5_and_extract(hub, &cifar10_file(), expected_md5, CIFAR10_FOLDER)
}

/// The folder holding the batch files: `root/cifar-10-batches-bin` if that is a folder,
/// else `root` itself.
fn batches_dir(root: &Path) -> PathBuf {
    let sub = root.join(CIFAR10_FOLDER);
    if sub.is_dir() {
        sub
    } else {
        root.to_path_buf()
    }
}

/// Reads one batch file into (`uint8` `(N, 3, 32, 32)` images, `i64` `(N,)` labels).
///
/// Any whole, non-zero number of 3073-byte records is accepted (real files hold 10 000).
/// Errors name the file: a missing or unreadable file, a length that is not a multiple
/// of 3073 (or zero), a label of 10 or more (with the record's index and byte offset).
pub fn read_cifar10_batch(path: &Path) -> Result<(Tensor, Tensor)> {
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            format_err(
                path,
                format!(
                    "CIFAR-10 batch file not found; expected the binary release's `{CIFAR10_FOLDER}/` \
                     with {} and {CIFAR10_TEST_FILE} (from cifar-10-binary.tar.gz; the Python \
                     pickle release is not read)",
                    CIFAR10_TRAIN_FILES.join(", ")
                ),
            )
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    if bytes.is_empty() || bytes.len() % CIFAR10_RECORD_BYTES != 0 {
        return Err(format_err(
            path,
            format!(
                "a CIFAR-10 batch file is a whole number of {CIFAR10_RECORD_BYTES}-byte records \
                 (1 label byte + {CIFAR10_IMAGE_BYTES} pixel bytes), but this one has {} bytes \
                 ({} records and {} bytes over); the real files have {} bytes",
                bytes.len(),
                bytes.len() / CIFAR10_RECORD_BYTES,
                bytes.len() % CIFAR10_RECORD_BYTES,
                CIFAR10_RECORDS_PER_FILE * CIFAR10_RECORD_BYTES
            ),
        ));
    }
    let n = bytes.len() / CIFAR10_RECORD_BYTES;
    let mut pixels = Vec::with_capacity(n * CIFAR10_IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(CIFAR10_RECORD_BYTES).enumerate() {
        let label = rec[0];
        if label as usize >= CIFAR10_CLASSES.len() {
            return Err(format_err(
                path,
                format!(
                    "record {i} (byte offset {}) has label {label}; CIFAR-10 labels are 0 to 9",
                    i * CIFAR10_RECORD_BYTES
                ),
            ));
        }
        labels.push(label as i64);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok((
        Tensor::from_vec(pixels, &[n, 3, 32, 32])?,
        Tensor::from_vec(labels, &[n])?,
    ))
}

/// Reads a split: the five training batches in order (`train`) or the test batch, from
/// `root/cifar-10-batches-bin/` (or from `root` itself when it is that folder). Returns
/// `uint8` `(N, 3, 32, 32)` images and `i64` `(N,)` labels; see [`read_cifar10_batch`]
/// for the errors.
pub fn read_cifar10(root: &Path, train: bool) -> Result<(Tensor, Tensor)> {
    let dir = batches_dir(root);
    let files: &[&str] = if train {
        &CIFAR10_TRAIN_FILES
    } else {
        &[CIFAR10_TEST_FILE]
    };
    let mut images = Vec::with_capacity(files.len());
    let mut labels = Vec::with_capacity(files.len());
    for f in files {
        let (x, y) = read_cifar10_batch(&dir.join(f))?;
        images.push(x);
        labels.push(y);
    }
    if images.len() == 1 {
        return Ok((images.remove(0), labels.remove(0)));
    }
    let xs: Vec<&Tensor> = images.iter().collect();
    let ys: Vec<&Tensor> = labels.iter().collect();
    Ok((Tensor::cat(&xs, 0)?, Tensor::cat(&ys, 0)?))
}

/// The class names from `batches.meta.txt` in `root/cifar-10-batches-bin/` (or `root`):
/// its non-blank lines, trimmed. A missing file gives the standard [`CIFAR10_CLASSES`];
/// a file present without exactly 10 names is an error naming it.
pub fn read_cifar10_classes(root: &Path) -> Result<Vec<String>> {
    let path = batches_dir(root).join(CIFAR10_META_FILE);
    let text = match std::fs::read(&path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect())
        }
        Err(source) => return Err(DataError::Io { path, source }),
    };
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() != CIFAR10_CLASSES.len() {
        return Err(format_err(
            &path,
            format!(
                "expected {} class names, one a line, found {}: {names:?}",
                CIFAR10_CLASSES.len(),
                names.len()
            ),
        ));
    }
    Ok(names)
}

/// A CIFAR-10 split in memory. Example `i` is `x` = image `i` as `f32` `(3, 32, 32)` in
/// `[0, 1]` (torchvision's `ToTensor`: the byte divided by 255) and `y` = its 0-d `i64`
/// label.
#[derive(Debug, Clone)]
pub struct Cifar10Dataset {
    images: Tensor,
    labels: Tensor,
    classes: Vec<String>,
}

impl Cifar10Dataset {
    /// A data set from `uint8` `(N, 3, 32, 32)` images, `i64` `(N,)` labels and the class
    /// names.
    pub fn new(images: Tensor, labels: Tensor, classes: Vec<String>) -> Result<Cifar10Dataset> {
        let (s, l) = (images.shape(), labels.shape());
        if images.dtype() != DType::U8 || s.len() != 4 || s[1..] != [3, 32, 32] {
            return Err(DataError::Invalid(format!(
                "CIFAR-10 images must be uint8 (N, 3, 32, 32), got {:?} {}",
                s,
                images.dtype()
            )));
        }
        if labels.dtype() != DType::I64 || l != [s[0]] {
            return Err(DataError::Invalid(format!(
                "CIFAR-10 labels must be i64 ({},) for {} images, got {:?} {}",
                s[0],
                s[0],
                l,
                labels.dtype()
            )));
        }
        Ok(Cifar10Dataset {
            images,
            labels,
            classes,
        })
    }

    /// Reads a split from `root` ([`read_cifar10`]) with its class names
    /// ([`read_cifar10_classes`]).
    pub fn open(root: &Path, train: bool) -> Result<Cifar10Dataset> {
        let classes = read_cifar10_classes(root)?;
        let (images, labels) = read_cifar10(root, train)?;
        Cifar10Dataset::new(images, labels, classes)
    }

    /// The images, `uint8` `(N, 3, 32, 32)`.
    pub fn images(&self) -> &Tensor {
        &self.images
    }

    /// The labels, `i64` `(N,)`.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }

    /// The class names, by label.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    fn check(&self, index: usize) -> Result<()> {
        if index >= self.len() {
            return Err(DataError::Invalid(format!(
                "index {index} is out of range for a data set of {} examples",
                self.len()
            )));
        }
        Ok(())
    }
}

/// `uint8` → `f32` divided by 255 exactly (`ToTensor`'s `img.float().div(255)`).
fn to_unit(img: &Tensor) -> Result<Tensor> {
    d2l_data::transforms::to_float(img)
}

impl Dataset for Cifar10Dataset {
    fn len(&self) -> usize {
        self.images.shape()[0]
    }

    fn get(&self, index: usize) -> Result<Example> {
        self.check(index)?;
        Ok(Example {
            x: to_unit(&self.images.select(0, index as isize)?.contiguous()?)?,
            y: self.labels.select(0, index as isize)?.contiguous()?,
        })
    }

    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        for &i in indices {
            self.check(i)?;
        }
        let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let idx = Tensor::from_vec(idx, &[indices.len()])?;
        Ok(Batch {
            x: to_unit(&self.images.index_select(0, &idx)?)?,
            y: self.labels.index_select(0, &idx)?,
        })
    }
}

/// The book's CIFAR-10 loaders on an unpacked folder (`root` holding
/// `cifar-10-batches-bin/`, or that folder itself): (training loader, shuffled with a seed
/// drawn from the engine's global generator so `manual_seed` makes it reproducible; test
/// loader, in order).
pub fn load_cifar10_from(root: &Path, batch_size: usize) -> Result<(DataLoader, DataLoader)> {
    let train = Cifar10Dataset::open(root, true)?;
    let test = Cifar10Dataset::open(root, false)?;
    let seed = d2l_tensor::random::with_global(|g| g.next_u64());
    let train = DataLoader::new(Arc::new(train), batch_size)?.shuffle(seed);
    let test = DataLoader::new(Arc::new(test), batch_size)?;
    Ok((train, test))
}

/// D2L 13.1's CIFAR-10 loaders: fetches `cifar-10-binary.tar.gz` through the hub, checks
/// its MD5 and unpacks it ([`cifar10_root`]), and returns (training loader, shuffled; test
/// loader).
pub fn load_cifar10(hub: &DataHub, batch_size: usize) -> Result<(DataLoader, DataLoader)> {
    let root = cifar10_root(hub)?;
    load_cifar10_from(&root, batch_size)
}
