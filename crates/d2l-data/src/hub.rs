//! The data hub (D2L 4.10's `DATA_HUB`, `download` and `download_extract`, done properly):
//! a registry of named files with their URL and SHA-1, and a [`DataHub`] that resolves a
//! name to a verified local file.
//!
//! Resolution order for a name such as `fashion_mnist/train-images-idx3-ubyte.gz`:
//! 1. the data dir (`--data-dir` / `D2L_DATA_DIR`), as `<data dir>/<name>`;
//! 2. the cache (`D2L_CACHE_DIR`, else `$XDG_CACHE_HOME/d2l`, else `~/.cache/d2l`);
//! 3. system copies where a distribution ships them (Debian's `dataset-fashion-mnist`
//!    installs the four Fashion-MNIST files under `/usr/share/datasets/fashion-mnist/`);
//! 4. a download into the cache (unless offline, `D2L_OFFLINE=1`), with a progress bar.
//!
//! Every file found is checked against its SHA-1 (the result is remembered for the rest
//! of the process, keyed by path, size and modification time). Gzip files may also
//! register the SHA-1 of their *decompressed* content: Debian's Fashion-MNIST copies carry
//! rewritten gzip headers, so their gz checksum differs while the data is identical; such
//! a copy is accepted by its content. (The IDX reader checks magic numbers and sizes on
//! top of that when it parses the file.)
//!
//! Downloads go to a hidden temporary file next to the target and are renamed into place
//! only after the length and the SHA-1 match, so an interrupted or corrupt download never
//! leaves a file that looks complete. A mismatch is a [`DataError::Checksum`] showing both
//! sums, and the bad bytes are removed.

use crate::archive::{self, RemoveOnDrop};
use crate::error::{io, DataError, Result};
pub use sha1::Digest;
use sha1::Sha1;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// One registered file: its place in a data dir, where to download it, and its SHA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubEntry {
    /// Path inside a data dir, `folder/file` (e.g. `fashion_mnist/train-images-idx3-ubyte.gz`).
    pub name: &'static str,
    /// The canonical download URL.
    pub url: &'static str,
    /// SHA-1 of the file's bytes (lowercase hex), if known.
    pub sha1: Option<&'static str>,
    /// SHA-1 of the decompressed bytes of a gzip file, accepted for re-packed copies.
    pub gunzip_sha1: Option<&'static str>,
}

/// Base URL of D2L's own files (`d2l.DATA_URL`).
pub const D2L_DATA_URL: &str = "http://d2l-data.s3-accelerate.amazonaws.com/";
/// Base URL of the Fashion-MNIST release files.
pub const FASHION_MNIST_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";
/// Base URL of the MNIST files (the mirror torchvision uses; HTTPS only, see [`DataHub::fetch`]).
pub const MNIST_URL: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";
/// Where Debian's `dataset-fashion-mnist` package installs its files.
pub const DEBIAN_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

macro_rules! d2l {
    ($name:literal, $file:literal, $sha:literal) => {
        HubEntry {
            name: concat!($name, "/", $file),
            url: concat!("http://d2l-data.s3-accelerate.amazonaws.com/", $file),
            sha1: Some($sha),
            gunzip_sha1: None,
        }
    };
}

macro_rules! idx {
    ($folder:literal, $base:literal, $file:literal, $sha:literal, $gsha:literal) => {
        HubEntry {
            name: concat!($folder, "/", $file),
            url: concat!($base, $file),
            sha1: Some($sha),
            gunzip_sha1: Some($gsha),
        }
    };
}

static REGISTRY: &[HubEntry] = &[
    // 4.10 Kaggle house prices.
    d2l!(
        "kaggle_house",
        "kaggle_house_pred_train.csv",
        "585e9cc93e70b39160e7921475f9bcd7d31219ce"
    ),
    d2l!(
        "kaggle_house",
        "kaggle_house_pred_test.csv",
        "fa19780a7b011d9b009e8bff8e99922a8ee2eb90"
    ),
    // 8.2 The Time Machine.
    d2l!(
        "timemachine",
        "timemachine.txt",
        "090b5e7e70c295757f55df93cb0a180b9691891a"
    ),
    // 11.5 airfoil self-noise (tab-separated, CRLF line ends; the checksum is of that form).
    d2l!(
        "airfoil",
        "airfoil_self_noise.dat",
        "76e5be1548fd8222e5074cf0faae75edff8cf93f"
    ),
    // 3.5 Fashion-MNIST: the official release files.
    idx!(
        "fashion_mnist",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "train-images-idx3-ubyte.gz",
        "95978b76b6897f6ca69a25145d01716efb615989",
        "b9bd999c0106c9b8b4b0cefce58c9a6060f27095"
    ),
    idx!(
        "fashion_mnist",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "train-labels-idx1-ubyte.gz",
        "09814cfef5a041118ceace42f8dae995319d331a",
        "4bccf37222e01638381eaa326bf730337a597267"
    ),
    idx!(
        "fashion_mnist",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "t10k-images-idx3-ubyte.gz",
        "5edda96c6d8c36ff915115a0e8136d370a021576",
        "880056926db704f9f713097915f99da346f5b1d1"
    ),
    idx!(
        "fashion_mnist",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "t10k-labels-idx1-ubyte.gz",
        "9caad14e1aff9adac77d3744963212d36af15bee",
        "958122e8b4b97fd4e71eca2d08ef754ed77c3ad9"
    ),
    // MNIST digits.
    idx!(
        "mnist",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "train-images-idx3-ubyte.gz",
        "6c95f4b05d2bf285e1bfb0e7960c31bd3b3f8a7d",
        "c3557c10f29b266e19b3eeee1553c85e0ef4a8ea"
    ),
    idx!(
        "mnist",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "train-labels-idx1-ubyte.gz",
        "2a80914081dc54586dbdf242f9805a6b8d2a15fc",
        "adbf52269f5d842899f287c269e2883e40b4f6e2"
    ),
    idx!(
        "mnist",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "t10k-images-idx3-ubyte.gz",
        "c3a25af1f52dad7f726cce8cacb138654b760d48",
        "65e11ec1fd220343092a5070b58418b5c2644e26"
    ),
    idx!(
        "mnist",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "t10k-labels-idx1-ubyte.gz",
        "763e7fa3757d93b0cdec073cef058b2004252c17",
        "a6d52cc628797e845885543326e9f10abb8a6f89"
    ),
    // 8.3+ Penn Treebank (a stored zip holding ptb/ptb.{train,valid,test}.txt).
    d2l!("ptb", "ptb.zip", "319d85e578af0cdc590547f26231e4e31cdf1e42"),
    // 13.x the book's images. They live in the d2l-zh repo under img/; the DATA_URL
    // bucket is the best known download location, not a confirmed one.
    d2l!(
        "d2l_images",
        "cat1.jpg",
        "f9c5b905d908b97eeeb64ff34a46fa8b143f88f8"
    ),
    d2l!(
        "d2l_images",
        "catdog.jpg",
        "60b7d540db03eef6b9834329bccc4417ef349bf6"
    ),
    d2l!(
        "d2l_images",
        "banana.jpg",
        "cdcc1e668faf05c173389b6a73d33ed8d44cf4b4"
    ),
    d2l!(
        "d2l_images",
        "rainier.jpg",
        "b0193ffd8ecea1631ac1092130017b884faafa30"
    ),
    d2l!(
        "d2l_images",
        "autumn-oak.jpg",
        "bbe11f01403b9726bbc625589550e574fc45980a"
    ),
    // 13.2 hot dog (hotdog/{train,test}/{hotdog,not-hotdog}).
    d2l!(
        "hotdog",
        "hotdog.zip",
        "fba480ffa8aa7e0febbb511d181409f899b9baa5"
    ),
    // 13.6 banana detection (bananas_{train,val}/label.csv + images/).
    d2l!(
        "banana-detection",
        "banana-detection.zip",
        "5de26c8fce5ccdea9f91267273464dc968d20d72"
    ),
    // 13.9 Pascal VOC2012 (extracts to VOCdevkit/VOC2012).
    d2l!(
        "voc2012",
        "VOCtrainval_11-May-2012.tar",
        "4e443f8a2eca6b1dac8a6c57641b67dd40621a49"
    ),
];

/// Every registered file, in a stable order.
pub fn registry() -> &'static [HubEntry] {
    REGISTRY
}

/// Looks a registered file up by name; an unknown name is an error listing the known ones.
pub fn entry(name: &str) -> Result<&'static HubEntry> {
    REGISTRY.iter().find(|e| e.name == name).ok_or_else(|| {
        let known: Vec<&str> = REGISTRY.iter().map(|e| e.name).collect();
        DataError::Invalid(format!(
            "unknown data file `{name}`; the hub knows:\n  {}",
            known.join("\n  ")
        ))
    })
}

/// A downloadable file described at run time (for files outside the registry, and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Relative path inside a data dir, `folder/file`.
    pub name: String,
    /// Download URL.
    pub url: String,
    /// Expected SHA-1 of the bytes (lowercase hex); `None` accepts any content.
    pub sha1: Option<String>,
    /// Expected SHA-1 of the decompressed bytes of a gzip file (re-packed copies).
    pub gunzip_sha1: Option<String>,
}

impl RemoteFile {
    /// A file with a name, a URL and an optional SHA-1.
    pub fn new(name: impl Into<String>, url: impl Into<String>, sha1: Option<&str>) -> RemoteFile {
        RemoteFile {
            name: name.into(),
            url: url.into(),
            sha1: sha1.map(|s| s.to_ascii_lowercase()),
            gunzip_sha1: None,
        }
    }

    /// Also accepts a gzip file whose decompressed bytes have this SHA-1.
    pub fn with_gunzip_sha1(mut self, sha1: &str) -> RemoteFile {
        self.gunzip_sha1 = Some(sha1.to_ascii_lowercase());
        self
    }
}

impl From<&HubEntry> for RemoteFile {
    fn from(e: &HubEntry) -> RemoteFile {
        RemoteFile {
            name: e.name.to_string(),
            url: e.url.to_string(),
            sha1: e.sha1.map(str::to_string),
            gunzip_sha1: e.gunzip_sha1.map(str::to_string),
        }
    }
}

/// A folder where a distribution installs the files of one data set folder.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SystemDir {
    folder: String,
    dir: PathBuf,
}

/// Resolves data file names to verified local paths, downloading when it must.
#[derive(Debug, Clone)]
pub struct DataHub {
    data_dir: Option<PathBuf>,
    cache_dir: PathBuf,
    system_dirs: Vec<SystemDir>,
    offline: bool,
    progress: bool,
    mirror: Option<String>,
    timeout: Duration,
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The default cache folder: `D2L_CACHE_DIR`, else `$XDG_CACHE_HOME/d2l`, else `~/.cache/d2l`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(p) = env_path("D2L_CACHE_DIR") {
        return p;
    }
    if let Some(p) = env_path("XDG_CACHE_HOME") {
        return p.join("d2l");
    }
    match env_path("HOME") {
        Some(h) => h.join(".cache").join("d2l"),
        None => std::env::temp_dir().join("d2l-cache"),
    }
}

impl DataHub {
    /// A hub with this cache folder, no data dir, the default system copies, online, with
    /// a progress bar.
    pub fn new(cache_dir: impl Into<PathBuf>) -> DataHub {
        DataHub {
            data_dir: None,
            cache_dir: cache_dir.into(),
            system_dirs: vec![SystemDir {
                folder: "fashion_mnist".into(),
                dir: PathBuf::from(DEBIAN_FASHION_MNIST_DIR),
            }],
            offline: false,
            progress: true,
            mirror: None,
            timeout: Duration::from_secs(60),
        }
    }

    /// A hub configured from the environment: `D2L_DATA_DIR`, `D2L_CACHE_DIR` (else
    /// `~/.cache/d2l`), `D2L_OFFLINE=1` (or `true`/`yes`) for no downloads.
    pub fn from_env() -> DataHub {
        let mut hub = DataHub::new(default_cache_dir());
        hub.data_dir = env_path("D2L_DATA_DIR");
        hub.offline = std::env::var("D2L_OFFLINE")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
            .unwrap_or(false);
        hub
    }

    /// Looks in this folder first (`--data-dir`).
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> DataHub {
        self.data_dir = Some(dir.into());
        self
    }

    /// Caches downloads (and extractions) in this folder.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> DataHub {
        self.cache_dir = dir.into();
        self
    }

    /// Also looks for the files of data set `folder` (e.g. `fashion_mnist`) in `dir`.
    pub fn with_system_dir(mut self, folder: &str, dir: impl Into<PathBuf>) -> DataHub {
        self.system_dirs.push(SystemDir {
            folder: folder.to_string(),
            dir: dir.into(),
        });
        self
    }

    /// Forgets every system location (including the Debian default).
    pub fn without_system_dirs(mut self) -> DataHub {
        self.system_dirs.clear();
        self
    }

    /// Never downloads when `true`; a file found nowhere is a [`DataError::Missing`].
    pub fn offline(mut self, offline: bool) -> DataHub {
        self.offline = offline;
        self
    }

    /// Draws no progress bar.
    pub fn quiet(mut self) -> DataHub {
        self.progress = false;
        self
    }

    /// Downloads every file from `base_url` + its file name instead of its own URL (a
    /// mirror, or a test server).
    pub fn with_mirror(mut self, base_url: &str) -> DataHub {
        self.mirror = Some(base_url.trim_end_matches('/').to_string());
        self
    }

    /// Gives up on a download after this long without progress (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> DataHub {
        self.timeout = timeout;
        self
    }

    /// The data dir, if any.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// The cache folder.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Whether downloads are disabled.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The URL a file is downloaded from (its own, or the mirror's).
    pub fn url_for(&self, file: &RemoteFile) -> String {
        match &self.mirror {
            None => file.url.clone(),
            Some(base) => {
                let leaf = file.url.rsplit('/').next().unwrap_or(&file.url);
                format!("{base}/{leaf}")
            }
        }
    }

    /// Every place a file is looked for, in order: data dir, cache, system copies.
    pub fn candidates(&self, name: &str) -> Vec<PathBuf> {
        let rel = Path::new(name);
        let mut out = Vec::new();
        if let Some(d) = &self.data_dir {
            out.push(d.join(rel));
        }
        out.push(self.cache_dir.join(rel));
        out.extend(self.system_candidates(name));
        out
    }

    fn system_candidates(&self, name: &str) -> Vec<PathBuf> {
        let Some((folder, file)) = name.split_once('/') else {
            return Vec::new();
        };
        self.system_dirs
            .iter()
            .filter(|s| s.folder == folder)
            .map(|s| s.dir.join(file))
            .collect()
    }

    /// The verified local path of the registered file `name`, downloading it into the
    /// cache if it is nowhere on disk (see the module docs for the order).
    ///
    pub fn fetch(&self, name: &str) -> Result<PathBuf> {
        self.fetch_file(&RemoteFile::from(entry(name)?))
    }

    /// Like [`DataHub::fetch`], for a file described at run time.
    pub fn fetch_file(&self, file: &RemoteFile) -> Result<PathBuf> {
        archive::safe_entry_path(Path::new("<data hub>"), &file.name).map_err(|_| {
            DataError::Invalid(format!(
                "data file name `{}` must be a relative path without `..`",
                file.name
            ))
        })?;
        if file.name.trim_matches('/').is_empty() {
            return Err(DataError::Invalid("empty data file name".into()));
        }
        // 1. data dir: a file there with a wrong checksum is the user's to fix.
        if let Some(d) = &self.data_dir {
            let p = d.join(&file.name);
            if p.is_file() {
                verify(&p, file)?;
                return Ok(p);
            }
        }
        // 2. cache: ours, so a bad file is removed and fetched again where possible.
        let cached = self.cache_dir.join(&file.name);
        let mut cache_error = None;
        if cached.is_file() {
            match verify(&cached, file) {
                Ok(()) => return Ok(cached),
                Err(e @ DataError::Checksum { .. }) => {
                    fs::remove_file(&cached).map_err(io(&cached))?;
                    if self.progress {
                        eprintln!("warning: {e}; removed it");
                    }
                    cache_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        // 3. system copies (accepted by content, since distributions may re-pack them).
        for p in self.system_candidates(&file.name) {
            if p.is_file() && verify(&p, file).is_ok() {
                return Ok(p);
            }
        }
        // 4. download.
        let url = self.url_for(file);
        if self.offline {
            if let Some(e) = cache_error {
                return Err(e);
            }
            return Err(DataError::Missing {
                name: file.name.clone(),
                looked_in: self.candidates(&file.name),
                url,
            });
        }
        self.download(&url, &cached, file)?;
        Ok(cached)
    }

    /// Downloads `url` to `target` through a temporary sibling, verifying length and SHA-1.
    fn download(&self, url: &str, target: &Path, file: &RemoteFile) -> Result<()> {
        let dl_err = |msg: String| DataError::Download {
            url: url.to_string(),
            msg,
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(dl_err(format!(
                "only http and https URLs can be downloaded; fetch the file by hand and save it as {} (or under --data-dir)",
                target.display()
            )));
        }
        let dir = target.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io(dir))?;
        sweep_stale_parts(target, (self.timeout * 2).max(Duration::from_secs(600)));

        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30).min(self.timeout))
            .timeout_read(self.timeout)
            .build();
        let resp = match agent.get(url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                return Err(dl_err(format!("HTTP {code} {}", r.status_text())))
            }
            Err(e) => return Err(dl_err(e.to_string())),
        };
        let total: Option<u64> = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse().ok());

        let tmp = temp_download_path(target);
        let guard = RemoveOnDrop(Some(tmp.clone()));
        let mut out = File::create(&tmp).map_err(io(&tmp))?;
        let bar = if self.progress {
            let bar = match total {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(format!("downloading {}", file.name));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };

        let mut reader = resp.into_reader();
        let mut hasher = Sha1::new();
        let mut got: u64 = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    bar.abandon();
                    return Err(dl_err(format!("after {got} bytes: {e}")));
                }
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io(&tmp))?;
            got += n as u64;
            bar.set_position(got);
        }
        bar.finish_and_clear();
        if let Some(n) = total {
            if got != n {
                return Err(dl_err(format!(
                    "truncated: the server announced {n} bytes but sent {got}"
                )));
            }
        }
        out.sync_all().map_err(io(&tmp))?;
        drop(out);
        let sum = hex(&hasher.finalize());
        if let Some(expected) = &file.sha1 {
            if !sum.eq_ignore_ascii_case(expected) {
                // The guard removes the temporary file; nothing lands at the target.
                return Err(DataError::Checksum {
                    path: target.to_path_buf(),
                    expected: expected.clone(),
                    got: sum,
                });
            }
        }
        fs::rename(&tmp, target).map_err(io(target))?;
        guard.disarm();
        remember(target, file.sha1.as_deref().unwrap_or(""));
        Ok(())
    }

    /// Fetches the archive `name` and extracts it; returns the path of `folder` inside
    /// the extracted tree (e.g. `fetch_and_extract("hotdog/hotdog.zip", "hotdog")`).
    ///
    /// A folder already unpacked by hand next to the archive in the data dir
    /// (`<data dir>/hotdog/hotdog`) is used as it is. Otherwise the archive is unpacked
    /// once, atomically, into `<cache>/<archive name>.extracted/`.
    pub fn fetch_and_extract(&self, name: &str, folder: &str) -> Result<PathBuf> {
        self.fetch_file_and_extract(&RemoteFile::from(entry(name)?), folder)
    }

    /// Like [`DataHub::fetch_and_extract`], for an archive described at run time.
    pub fn fetch_file_and_extract(&self, file: &RemoteFile, folder: &str) -> Result<PathBuf> {
        self.fetch_file_and_extract_with(file, folder, |f| self.fetch_file(f))
    }

    /// [`DataHub::fetch_file_and_extract`] with the archive fetched by `fetch` (which may,
    /// say, verify a checksum before anything is extracted). A folder unpacked by hand in
    /// the data dir is used as it is, and a completed extraction in the cache is accepted
    /// as before: `fetch` runs only when the archive must be extracted.
    pub fn fetch_file_and_extract_with(
        &self,
        file: &RemoteFile,
        folder: &str,
        fetch: impl FnOnce(&RemoteFile) -> Result<PathBuf>,
    ) -> Result<PathBuf> {
        let sub = archive::safe_entry_path(Path::new(&file.name), folder).map_err(|_| {
            DataError::Invalid(format!(
                "folder `{folder}` must be a relative path without `..`"
            ))
        })?;
        let rel = Path::new(&file.name);
        let parent = rel.parent().unwrap_or(Path::new(""));
        if let Some(d) = &self.data_dir {
            let by_hand = d.join(parent).join(&sub);
            if by_hand.is_dir() {
                return Ok(by_hand);
            }
        }
        let leaf = rel
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = self
            .cache_dir
            .join(parent)
            .join(format!("{leaf}.extracted"));
        if !archive::is_extracted(&dest) {
            let path = fetch(file)?;
            archive::extract(&path, &dest)?;
        }
        let out = dest.join(&sub);
        if !out.exists() {
            return Err(DataError::Format {
                path: dest,
                msg: format!("the archive {} holds no `{folder}`", file.name),
            });
        }
        Ok(out)
    }
}

fn temp_download_path(target: &Path) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let leaf = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!(".{leaf}.part-{}-{n}", std::process::id()))
}

/// Removes partial downloads of `target` left by killed processes (untouched for `age`;
/// a live download writes at least once per read timeout).
fn sweep_stale_parts(target: &Path, age: Duration) {
    let (Some(dir), Some(leaf)) = (target.parent(), target.file_name()) else {
        return;
    };
    let prefix = format!(".{}.part-", leaf.to_string_lossy());
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|el| el > age);
        if old {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-1 of a file's bytes, as lowercase hex.
pub fn sha1_file(path: &Path) -> Result<String> {
    digest_file::<Sha1>(path)
}

/// The digest `D` (any RustCrypto hash: SHA-1 here, MD5 and SHA-256 in `d2l-vision`) of a
/// file's bytes, as lowercase hex; the file is read in 1 MiB pieces.
pub fn digest_file<D: Digest>(path: &Path) -> Result<String> {
    let f = File::open(path).map_err(io(path))?;
    digest_reader::<D>(f).map_err(io(path))
}

/// The digest `D` of bytes in memory, as lowercase hex.
pub fn digest_hex<D: Digest>(bytes: &[u8]) -> String {
    hex(&D::digest(bytes))
}

fn digest_reader<D: Digest>(mut r: impl Read) -> std::io::Result<String> {
    let mut h = D::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex(&h.finalize()))
}

type Stamp = (u64, Option<SystemTime>);

/// Files verified in this process: path → (size, mtime, expected sum it matched).
fn verified() -> &'static Mutex<HashMap<PathBuf, (Stamp, String)>> {
    static V: OnceLock<Mutex<HashMap<PathBuf, (Stamp, String)>>> = OnceLock::new();
    V.get_or_init(|| Mutex::new(HashMap::new()))
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()))
}

fn remember(path: &Path, expected: &str) {
    if let Some(s) = stamp(path) {
        let mut v = verified().lock().unwrap_or_else(|e| e.into_inner());
        v.insert(path.to_path_buf(), (s, expected.to_string()));
    }
}

/// Checks a file on disk against its registered SHA-1 (or its decompressed content's).
fn verify(path: &Path, file: &RemoteFile) -> Result<()> {
    let Some(expected) = &file.sha1 else {
        return Ok(());
    };
    let st = stamp(path);
    {
        let v = verified().lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(s), Some((s0, e0))) = (&st, v.get(path)) {
            if s == s0 && e0 == expected {
                return Ok(());
            }
        }
    }
    let got = sha1_file(path)?;
    let ok = got.eq_ignore_ascii_case(expected)
        || match &file.gunzip_sha1 {
            Some(g) => {
                let f = File::open(path).map_err(io(path))?;
                let len = f.metadata().map_err(io(path))?.len();
                let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
                // An unreadable gzip simply is not an acceptable copy; one that expands
                // past what deflate can give is cut short (and so does not match).
                digest_reader::<Sha1>(gz.take(len.saturating_mul(crate::archive::MAX_EXPANSION)))
                    .map(|s| s.eq_ignore_ascii_case(g))
                    .unwrap_or(false)
            }
            None => false,
        };
    if !ok {
        return Err(DataError::Checksum {
            path: path.to_path_buf(),
            expected: expected.clone(),
            got,
        });
    }
    if let Some(s) = st {
        let mut v = verified().lock().unwrap_or_else(|e| e.into_inner());
        v.insert(path.to_path_buf(), (s, expected.clone()));
    }
    Ok(())
}
