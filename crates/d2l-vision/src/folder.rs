//! Image classification folders (torchvision's `ImageFolder`, D2L 13.2's hot-dog set) and
//! the pretrained torchvision weights of 13.2 and 13.12.
//!
//! # Layout
//!
//! ```text
//! <dir>/<class A>/xxx.png
//! <dir>/<class A>/sub/yyy.jpg
//! <dir>/<class B>/zzz.jpeg
//! ```
//!
//! [`ImageFolder::open`] follows torchvision's `ImageFolder`:
//! - every sub-folder of `dir` is a class (hidden ones too), sorted by name; label `k` is
//!   the `k`-th name ([`ImageFolder::classes`]);
//! - the files of a class are found recursively (symbolic links followed), folder by folder
//!   in sorted path order and sorted by name within a folder, and kept when their
//!   extension is `jpg`, `jpeg` or `png` in any case (the formats
//!   [`read_image`] decodes; torchvision also takes bmp, ppm, tif, webp, …);
//! - files without such an extension are skipped, in class folders and below;
//! - files at the top level of `dir` (next to the class folders) are ignored;
//! - a class folder holding no image is an error listing every such class (torchvision:
//!   "Found no valid file for the classes …"), and so is a `dir` with no class folder.
//!
//! Images are decoded lazily, in [`Dataset::get`], so opening a folder reads only the
//! directory tree. A corrupt or unreadable image is an error naming its path when it is
//! read. Example `i` is `x` = the image as `f32` `(3, H, W)` in `[0, 1]` (`ToTensor`) and
//! `y` = its 0-d `i64` label, passed through the folder's transform if it has one
//! ([`ImageFolder::with_transform`], torchvision's `transform=`).
//!
//! # Batching images of different sizes
//!
//! Real photographs (the hot-dog set's among them) have different sizes, and a
//! `DataLoader` stacks the examples of a batch into one tensor. Without a transform that
//! brings every image to one size (a resize, a crop, as 13.2's `RandomResizedCrop(224)` or
//! `Resize(256)` + `CenterCrop(224)`), a batch of two differently sized images fails with
//!
//! ```text
//! cannot batch examples 0 and 1: their x are [3, 5, 4] f32 and [3, 6, 7] f32
//! ```
//!
//! Set the transform on the folder ([`ImageFolder::with_transform`]) or on the loader
//! (`DataLoader::transform`); both run per example, before stacking.
//!
//! # Pretrained weights
//!
//! [`pretrained_weights`] resolves torchvision's `resnet18-f37072fd.pth` (13.2) and
//! `vgg19-dcbb9e9d.pth` (13.12) through the data hub, as `weights/<file>` in a data dir or
//! the cache, downloading from `download.pytorch.org` when online. torchvision's file
//! names carry the first 8 hex digits of the file's **SHA-256**, not a SHA-1; no SHA-1 of
//! these files is known, so the hub (whose registry requires SHA-1s) is given them as
//! run-time files without a SHA-1 ([`weights_file`]), and [`pretrained_weights`] checks
//! the SHA-256 prefix of the name instead (as `torch.hub`'s `check_hash` does).

use crate::image::read_image;
use d2l_data::hub::{self, DataHub, RemoteFile};
use d2l_data::loader::{Dataset, Example, Transform};
use d2l_data::{DataError, Result};
use d2l_tensor::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// File extensions accepted as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The registered name of the hot-dog zip in the data hub.
pub const HOTDOG_HUB_NAME: &str = "hotdog/hotdog.zip";
/// The folder the hot-dog zip unpacks to (holding `train/` and `test/`).
pub const HOTDOG_FOLDER: &str = "hotdog";

/// Whether a file name has one of the [`IMAGE_EXTENSIONS`].
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The image files under `dir`, recursively: folders in sorted path order, files sorted
/// by name within each (torchvision's `sorted(os.walk(...))` then `sorted(fnames)`).
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    // (folder, its image files), every folder below `dir`.
    let mut folders: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&d).map_err(io_err(&d))? {
            let entry = entry.map_err(io_err(&d))?;
            let p = entry.path();
            // `is_dir`/`is_file` follow symbolic links, as `os.walk(followlinks=True)`.
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() && is_image_file(&p) {
                files.push(p);
            }
        }
        files.sort();
        folders.push((d, files));
    }
    folders.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    Ok(folders.into_iter().flat_map(|(_, f)| f).collect())
}

/// A folder of images sorted into class sub-folders (torchvision's `ImageFolder`); see the
/// module docs for the rules.
#[derive(Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    samples: Vec<(PathBuf, usize)>,
    transform: Option<Transform>,
}

impl std::fmt::Debug for ImageFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFolder")
            .field("root", &self.root)
            .field("classes", &self.classes)
            .field("examples", &self.samples.len())
            .field("transform", &self.transform.is_some())
            .finish()
    }
}

impl ImageFolder {
    /// Lists `dir`: its sub-folders as classes and their image files as examples. Reads
    /// no image. Errors: `dir` missing or unreadable, no class folder, a class folder
    /// with no image file (all such classes are named), a class folder name that is not
    /// valid UTF-8.
    pub fn open(dir: impl AsRef<Path>) -> Result<ImageFolder> {
        let root = dir.as_ref().to_path_buf();
        let mut classes = Vec::new();
        for entry in std::fs::read_dir(&root).map_err(io_err(&root))? {
            let entry = entry.map_err(io_err(&root))?;
            let p = entry.path();
            if !p.is_dir() {
                continue; // stray top-level files are ignored, as torchvision does
            }
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| DataError::Format {
                    path: root.clone(),
                    msg: format!("class folder name {n:?} is not valid UTF-8"),
                })?;
            classes.push(name);
        }
        classes.sort();
        if classes.is_empty() {
            return Err(DataError::Format {
                path: root,
                msg: "no class folders found; an image folder holds one sub-folder per class \
                      (<dir>/<class>/<image>.jpg|jpeg|png)"
                    .into(),
            });
        }
        let mut samples = Vec::new();
        let mut empty = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let files = image_files(&root.join(class))?;
            if files.is_empty() {
                empty.push(class.as_str());
            }
            samples.extend(files.into_iter().map(|p| (p, label)));
        }
        if !empty.is_empty() {
            return Err(DataError::Format {
                path: root.clone(),
                msg: format!(
                    "found no image file for the class{} {}; supported extensions are {}",
                    if empty.len() > 1 { "es" } else { "" },
                    empty
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    IMAGE_EXTENSIONS.join(", ")
                ),
            });
        }
        Ok(ImageFolder {
            root,
            classes,
            samples,
            transform: None,
        })
    }

    /// Applies `f` to every example [`Dataset::get`] returns (after decoding and scaling
    /// to `[0, 1]`), as torchvision's `ImageFolder(transform=...)`; needed to batch images
    /// of different sizes (see the module docs).
    pub fn with_transform(
        mut self,
        f: impl Fn(Example) -> Result<Example> + Send + Sync + 'static,
    ) -> ImageFolder {
        self.transform = Some(Arc::new(f));
        self
    }

    /// Like [`ImageFolder::with_transform`], with a shared transform.
    pub fn with_shared_transform(mut self, f: Transform) -> ImageFolder {
        self.transform = Some(f);
        self
    }

    /// The folder this was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The class names (folder names), sorted; label `k` is `classes()[k]`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The class names with their labels (torchvision's `class_to_idx`).
    pub fn class_to_idx(&self) -> HashMap<String, usize> {
        self.classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect()
    }

    /// Every example as (image path, label), in order (torchvision's `samples`).
    pub fn samples(&self) -> &[(PathBuf, usize)] {
        &self.samples
    }

    /// The labels of all examples, in order (torchvision's `targets`).
    pub fn targets(&self) -> Vec<usize> {
        self.samples.iter().map(|s| s.1).collect()
    }

    /// Decodes example `index` without the transform: `uint8` `(3, H, W)` and the label.
    pub fn read_raw(&self, index: usize) -> Result<(Tensor, usize)> {
        let (path, label) = self.samples.get(index).ok_or_else(|| {
            DataError::Invalid(format!(
                "index {index} is out of range for an image folder of {} examples",
                self.samples.len()
            ))
        })?;
        Ok((read_image(path)?, *label))
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn get(&self, index: usize) -> Result<Example> {
        let (img, label) = self.read_raw(index)?;
        let ex = Example {
            // Exact division by 255, as `ToTensor`'s `img.float().div(255)`.
            x: d2l_data::transforms::to_float(&img)?,
            y: Tensor::from_vec(vec![label as i64], &[])?,
        };
        match &self.transform {
            Some(f) => f(ex),
            None => Ok(ex),
        }
    }
}

/// The unpacked hot-dog folder (holding `train/` and `test/`), fetched and extracted
/// through the hub if needed (a folder unpacked by hand as `<data dir>/hotdog/hotdog` is
/// used as it is).
pub fn hotdog_root(hub: &DataHub) -> Result<PathBuf> {
    hub.fetch_and_extract(HOTDOG_HUB_NAME, HOTDOG_FOLDER)
}

/// D2L 13.2's hot-dog set: `(ImageFolder over hotdog/train, ImageFolder over hotdog/test)`,
/// each with the classes `hotdog` (0) and `not-hotdog` (1). The images have different
/// sizes: give each folder (or loader) its resize/crop transform before batching.
pub fn load_hotdog(hub: &DataHub) -> Result<(ImageFolder, ImageFolder)> {
    let root = hotdog_root(hub)?;
    Ok((
        ImageFolder::open(root.join("train"))?,
        ImageFolder::open(root.join("test"))?,
    ))
}

// ---------------------------------------------------------------------------------------
// Pretrained weights
// ---------------------------------------------------------------------------------------

/// torchvision's pretrained weights that the book uses: (model name, file name, URL).
pub const PRETRAINED_WEIGHTS: [(&str, &str, &str); 2] = [
    (
        "resnet18",
        "resnet18-f37072fd.pth",
        "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    ),
    (
        "vgg19",
        "vgg19-dcbb9e9d.pth",
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    ),
];

/// The hub folder the weights live in (`<data dir>/weights/resnet18-f37072fd.pth`).
pub const WEIGHTS_FOLDER: &str = "weights";

/// The hub file of pretrained weights `name`: a model name (`resnet18`, `vgg19`), a file
/// name (`resnet18-f37072fd.pth`) or a hub name (`weights/resnet18-f37072fd.pth`). It is
/// the registry's entry if one is registered, else a run-time file with no SHA-1 (see
/// the module docs). An unknown name is an error listing the known ones.
pub fn weights_file(name: &str) -> Result<RemoteFile> {
    let leaf = name.strip_prefix("weights/").unwrap_or(name);
    let Some((_, file, url)) = PRETRAINED_WEIGHTS
        .iter()
        .find(|(model, file, _)| *model == leaf || *file == leaf)
    else {
        let known: Vec<String> = PRETRAINED_WEIGHTS
            .iter()
            .map(|(m, f, _)| format!("{m} ({f})"))
            .collect();
        return Err(DataError::Invalid(format!(
            "unknown pretrained weights `{name}`; known: {}",
            known.join(", ")
        )));
    };
    let hub_name = format!("{WEIGHTS_FOLDER}/{file}");
    Ok(match hub::entry(&hub_name) {
        Ok(e) => RemoteFile::from(e),
        Err(_) => RemoteFile::new(hub_name, *url, None),
    })
}

/// The verified local path of torchvision's pretrained weights `name` (see
/// [`weights_file`] for the names), from the data dir or the cache, downloaded when
/// missing and online. The file's SHA-256 must start with the hex digits its name carries
/// ([`fetch_hashed_file`]).
pub fn pretrained_weights(hub: &DataHub, name: &str) -> Result<PathBuf> {
    fetch_hashed_file(hub, &weights_file(name)?)
}

/// The hex digits a torchvision-style file name carries after its last `-`
/// (`resnet18-f37072fd.pth` → `f37072fd`), if there are at least 8 of them.
pub fn sha256_prefix_of_name(file_name: &str) -> Option<&str> {
    let leaf = file_name.rsplit('/').next().unwrap_or(file_name);
    let stem = leaf.split('.').next().unwrap_or(leaf);
    let (_, tail) = stem.rsplit_once('-')?;
    (tail.len() >= 8 && tail.bytes().all(|b| b.is_ascii_hexdigit())).then_some(tail)
}

/// Fetches `file` through the hub, then checks that the SHA-256 of its bytes starts with
/// the hex digits its name carries ([`sha256_prefix_of_name`]; names without them are not
/// checked). A mismatch is a [`DataError::Format`] naming the path, showing the expected
/// prefix and the whole SHA-256; a mismatching copy in the hub's cache is removed, so the
/// next call downloads it again. A file that passed is remembered for the rest of the
/// process (by path, size and modification time).
pub fn fetch_hashed_file(hub: &DataHub, file: &RemoteFile) -> Result<PathBuf> {
    let path = hub.fetch_file(file)?;
    let Some(prefix) = sha256_prefix_of_name(&file.name) else {
        return Ok(path);
    };
    let prefix = prefix.to_ascii_lowercase();
    let stamp = std::fs::metadata(&path)
        .ok()
        .map(|m| (m.len(), m.modified().ok()));
    type Seen = HashMap<PathBuf, ((u64, Option<SystemTime>), String)>;
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    let seen = SEEN.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(s) = stamp {
        let v = seen.lock().unwrap_or_else(|e| e.into_inner());
        if v.get(&path) == Some(&(s, prefix.clone())) {
            return Ok(path);
        }
    }
    let sum = sha256_file(&path)?;
    if !sum.starts_with(&prefix) {
        if path.starts_with(hub.cache_dir()) {
            let _ = std::fs::remove_file(&path);
        }
        return Err(DataError::Format {
            path,
            msg: format!(
                "SHA-256 mismatch: the file name promises a SHA-256 starting with {prefix}, \
                 got {sum}; the file is corrupt or not the one named (delete it and fetch \
                 it again)"
            ),
        });
    }
    if let Some(s) = stamp {
        let mut v = seen.lock().unwrap_or_else(|e| e.into_inner());
        v.insert(path.clone(), (s, prefix));
    }
    Ok(path)
}

/// The SHA-256 of a file's bytes, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    hub::digest_file::<sha2::Sha256>(path)
}

/// The SHA-256 of bytes in memory, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hub::digest_hex::<sha2::Sha256>(bytes)
}
