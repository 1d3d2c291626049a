//! Safe archive extraction for the data hub (D2L 13.2, 13.6, 13.9 unpack `hotdog.zip`,
//! `banana-detection.zip` and the VOC2012 tar; 8.2's PTB comes as a zip).
//!
//! [`extract`] unpacks a zip, tar or tar.gz (the kind is read from the file's first bytes)
//! into a destination folder *atomically*: everything goes into a hidden temporary sibling
//! folder first, a marker file is written last, and only then is the folder renamed into
//! place. A failed or interrupted extraction therefore never leaves a folder at the
//! destination that looks complete. Entries with absolute paths or `..` components (and
//! links pointing outside the folder) are refused with [`DataError::UnsafeArchive`].
//!
//! Extraction is bounded: all entries together may hold at most [`MAX_EXPANSION`] times
//! the archive's size (or 1 MiB, for tiny archives), and a zip entry
//! no more than the size its header declares; past either, extraction stops with an
//! error and nothing is left behind. GNU sparse tar entries (which declare sizes their
//! data does not hold) are refused.

use crate::error::{io, DataError, Result};
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most an archive (or a gzip file) may expand to, as a multiple of its own size
/// ([`d2l_tensor::limit::MAX_EXPANSION`]).
pub const MAX_EXPANSION: u64 = d2l_tensor::limit::MAX_EXPANSION;

/// Name of the marker file written inside a completely extracted folder.
pub const MARKER: &str = ".d2l-extracted";

/// The archive formats the hub can unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// A zip file (stored or deflated entries).
    Zip,
    /// An uncompressed tar file.
    Tar,
    /// A gzip-compressed tar file (`.tar.gz`, `.tgz`).
    TarGz,
}

impl ArchiveKind {
    /// Detects the kind from the file's magic bytes (zip `PK`, gzip `1f 8b`, tar `ustar`),
    /// falling back to the file name's extension.
    pub fn detect(path: &Path) -> Result<ArchiveKind> {
        let mut f = File::open(path).map_err(io(path))?;
        let mut head = [0u8; 512];
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]).map_err(io(path))? {
                0 => break,
                k => n += k,
            }
        }
        let head = &head[..n];
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            return Ok(ArchiveKind::Zip);
        }
        if head.starts_with(&[0x1f, 0x8b]) {
            return Ok(ArchiveKind::TarGz);
        }
        if head.len() >= 262 && &head[257..262] == b"ustar" {
            return Ok(ArchiveKind::Tar);
        }
        let name = path
            .file_name()
            .map(|s| s.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if name.ends_with(".tar") && head.len() == 512 {
            // An old (v7) tar without the `ustar` magic.
            return Ok(ArchiveKind::Tar);
        }
        Err(DataError::Format {
            path: path.to_path_buf(),
            msg: "not a zip, tar or tar.gz archive (unrecognised leading bytes)".into(),
        })
    }
}

/// Checks that an archive entry name is a plain relative path with no `..` component,
/// treating both `/` and `\` as separators; returns the relative path to create.
pub fn safe_entry_path(archive: &Path, entry: &str) -> Result<PathBuf> {
    let unsafe_entry = || DataError::UnsafeArchive {
        archive: archive.to_path_buf(),
        entry: entry.to_string(),
    };
    if entry.starts_with('/') || entry.starts_with('\\') || entry.contains('\0') {
        return Err(unsafe_entry());
    }
    // A Windows drive prefix such as `C:` is absolute as well.
    if entry.len() >= 2 && entry.as_bytes()[1] == b':' && entry.as_bytes()[0].is_ascii_alphabetic()
    {
        return Err(unsafe_entry());
    }
    let mut out = PathBuf::new();
    for part in entry.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_entry()),
            p => out.push(p),
        }
    }
    // Belt and braces: the platform's own parse must agree it is a normal relative path.
    if out.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(unsafe_entry());
    }
    Ok(out)
}

/// Whether `dest` holds a completed extraction (its marker file exists).
pub fn is_extracted(dest: &Path) -> bool {
    dest.join(MARKER).is_file()
}

/// Extracts `archive` into the folder `dest`, atomically; returns `false` without doing
/// anything when `dest` already holds a completed extraction (its marker file exists).
///
/// `dest` must not exist yet (or be a completed extraction); a folder there without the
/// marker was not made by this function and is reported as an error rather than touched.
pub fn extract(archive: &Path, dest: &Path) -> Result<bool> {
    if is_extracted(dest) {
        return Ok(false);
    }
    if dest.exists() {
        return Err(DataError::Invalid(format!(
            "cannot extract {} into {}: that path exists but holds no completed extraction \
             (no {MARKER} marker); remove it and try again",
            archive.display(),
            dest.display()
        )));
    }
    let kind = ArchiveKind::detect(archive)?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = temp_sibling(&parent, dest);
    fs::create_dir(&tmp).map_err(io(&tmp))?;
    let guard = RemoveOnDrop(Some(tmp.clone()));

    let size = fs::metadata(archive).map_err(io(archive))?.len();
    let budget = size.saturating_mul(MAX_EXPANSION).max(1 << 20);
    match kind {
        ArchiveKind::Zip => extract_zip(archive, &tmp, budget)?,
        ArchiveKind::Tar => {
            let f = File::open(archive).map_err(io(archive))?;
            extract_tar(archive, Budget::new(BufReader::new(f), budget), &tmp)?
        }
        ArchiveKind::TarGz => {
            let f = File::open(archive).map_err(io(archive))?;
            let gz = flate2::read::GzDecoder::new(BufReader::new(f));
            extract_tar(archive, Budget::new(gz, budget), &tmp)?
        }
    }

    let marker = tmp.join(MARKER);
    let name = archive
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    fs::write(&marker, format!("extracted from {name}\n")).map_err(io(&marker))?;
    match fs::rename(&tmp, dest) {
        Ok(()) => {
            guard.disarm();
            Ok(true)
        }
        // Someone else finished the same extraction meanwhile: theirs is as good as ours.
        Err(_) if is_extracted(dest) => Ok(false),
        Err(e) => Err(DataError::Io {
            path: dest.to_path_buf(),
            source: e,
        }),
    }
}

fn temp_sibling(parent: &Path, dest: &Path) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let base = dest
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "x".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent.join(format!(".{base}.partial-{}-{n}", std::process::id()))
}

/// Removes a path (file or folder) when dropped, unless disarmed.
pub(crate) struct RemoveOnDrop(pub(crate) Option<PathBuf>);

impl RemoveOnDrop {
    /// Keeps the path.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if p.is_dir() {
                let _ = fs::remove_dir_all(&p);
            } else {
                let _ = fs::remove_file(&p);
            }
        }
    }
}

fn corrupt(archive: &Path, what: impl std::fmt::Display) -> DataError {
    DataError::Format {
        path: archive.to_path_buf(),
        msg: format!("cannot read the archive: {what}"),
    }
}

/// A reader that fails (as invalid data) once more than `left` bytes came through: the
/// expansion bound of a whole tar stream.
struct Budget<R> {
    inner: R,
    left: u64,
    total: u64,
    /// Set when the bound was hit (the tar reader wraps the error in its own message).
    tripped: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R> Budget<R> {
    fn new(inner: R, total: u64) -> Self {
        Budget {
            inner,
            left: total,
            total,
            tripped: Default::default(),
        }
    }
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.tripped.set(true);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                expansion_msg(self.total),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn expansion_msg(total: u64) -> String {
    format!(
        "the archive expands past {total} bytes ({MAX_EXPANSION} times its size): refused as a decompression bomb"
    )
}

fn extract_zip(archive: &Path, tmp: &Path, budget: u64) -> Result<()> {
    let f = File::open(archive).map_err(io(archive))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(f)).map_err(|e| corrupt(archive, e))?;
    // Check every name before writing anything.
    let mut paths = Vec::with_capacity(zip.len());
    let mut declared = 0u64;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| corrupt(archive, e))?;
        paths.push(safe_entry_path(archive, entry.name())?);
        declared = declared.saturating_add(entry.size());
    }
    if declared > budget {
        return Err(corrupt(
            archive,
            format!(
                "its entries declare {declared} bytes; {}",
                expansion_msg(budget)
            ),
        ));
    }
    for (i, rel) in paths.into_iter().enumerate() {
        let mut entry = zip.by_index(i).map_err(|e| corrupt(archive, e))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let out = tmp.join(&rel);
        if entry.is_dir() {
            fs::create_dir_all(&out).map_err(io(&out))?;
            continue;
        }
        if let Some(p) = out.parent() {
            fs::create_dir_all(p).map_err(io(p))?;
        }
        // Symlinks are written as small regular files holding the target: never followed.
        let mut w = File::create(&out).map_err(io(&out))?;
        let size = entry.size();
        let copied = copy_entry(
            archive,
            &rel,
            &mut (&mut entry).take(size + 1),
            &mut w,
            &out,
        )?;
        if copied > size {
            return Err(corrupt(
                archive,
                format!(
                    "entry {} holds more than the {size} bytes its header declares",
                    rel.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Copies one entry, telling read errors (a corrupt archive) from write errors; returns
/// the bytes copied.
fn copy_entry(
    archive: &Path,
    rel: &Path,
    r: &mut impl Read,
    w: &mut File,
    out: &Path,
) -> Result<u64> {
    use std::io::Write;
    let mut buf = vec![0u8; 1 << 16];
    let mut copied = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(archive, format!("entry {}: {e}", rel.display()))),
        };
        w.write_all(&buf[..n]).map_err(io(out))?;
        copied += n as u64;
    }
    Ok(copied)
}

fn extract_tar(archive: &Path, r: Budget<impl Read>, tmp: &Path) -> Result<()> {
    let (tripped, total) = (r.tripped.clone(), r.total);
    extract_tar_entries(archive, r, tmp).map_err(|e| {
        if tripped.get() {
            corrupt(archive, expansion_msg(total))
        } else {
            e
        }
    })
}

fn extract_tar_entries(archive: &Path, r: impl Read, tmp: &Path) -> Result<()> {
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(false);
    ar.set_overwrite(true);
    let entries = ar.entries().map_err(|e| corrupt(archive, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(archive, e))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = safe_entry_path(archive, &raw)?;
        let ty = entry.header().entry_type();
        if ty.is_gnu_sparse() {
            return Err(corrupt(
                archive,
                format!("entry {raw} is a GNU sparse file, which data sets never hold: refused"),
            ));
        }
        if ty.is_symlink() || ty.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let ok = if ty.is_hard_link() {
                // Hard-link targets are relative to the archive root.
                safe_entry_path(archive, &target).is_ok()
            } else {
                symlink_stays_inside(&rel, &target)
            };
            if !ok {
                return Err(DataError::UnsafeArchive {
                    archive: archive.to_path_buf(),
                    entry: format!("{raw} -> {target}"),
                });
            }
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        // `unpack_in` re-checks containment; `false` means it refused the entry.
        match entry.unpack_in(tmp) {
            Ok(true) => {}
            Ok(false) => {
                return Err(DataError::UnsafeArchive {
                    archive: archive.to_path_buf(),
                    entry: raw,
                })
            }
            Err(e) => {
                // Tell a full disk or a permission problem from a corrupt archive.
                use std::io::ErrorKind::{InvalidData, InvalidInput, UnexpectedEof};
                if matches!(e.kind(), UnexpectedEof | InvalidData | InvalidInput) {
                    return Err(corrupt(archive, format!("entry {raw}: {e}")));
                }
                return Err(DataError::Io {
                    path: tmp.join(&rel),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

/// Whether a symlink at `rel` pointing to `target` resolves inside the extraction root.
fn symlink_stays_inside(rel: &Path, target: &str) -> bool {
    if target.starts_with('/') || target.starts_with('\\') {
        return false;
    }
    // Depth of the folder holding the link, then walk the target's components.
    let mut depth = rel.components().count() as isize - 1;
    for part in target.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}
