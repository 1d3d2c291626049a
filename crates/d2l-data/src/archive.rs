//! Safe archive extraction for the data hub (D2L 13.2, 13.6, 13.9 unpack `hotdog.zip`,
//! `banana-detection.zip` and the VOC2012 tar; 8.2's PTB comes as a zip).
//!
//! [`extract`] unpacks a zip, tar or tar.gz (the kind is read from the file's first bytes)
//! into a destination folder *atomically*: everything goes into a hidden temporary sibling
//! folder first, a marker file is written last, and only then is the folder renamed into
//! place. A failed or interrupted extraction therefore never leaves a folder at the
//! destination that looks complete. Entries with absolute paths or `..` components (and
//! links pointing outside the folder) are refused with [`DataError::UnsafeArchive`].

use crate::error::{io, DataError, Result};
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

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

    match kind {
        ArchiveKind::Zip => extract_zip(archive, &tmp)?,
        ArchiveKind::Tar => {
            let f = File::open(archive).map_err(io(archive))?;
            extract_tar(archive, BufReader::new(f), &tmp)?
        }
        ArchiveKind::TarGz => {
            let f = File::open(archive).map_err(io(archive))?;
            let gz = flate2::read::GzDecoder::new(BufReader::new(f));
            extract_tar(archive, gz, &tmp)?
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

fn extract_zip(archive: &Path, tmp: &Path) -> Result<()> {
    let f = File::open(archive).map_err(io(archive))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(f)).map_err(|e| corrupt(archive, e))?;
    // Check every name before writing anything.
    let mut paths = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| corrupt(archive, e))?;
        paths.push(safe_entry_path(archive, entry.name())?);
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
        copy_entry(archive, &rel, &mut entry, &mut w, &out)?;
    }
    Ok(())
}

/// Copies one entry, telling read errors (a corrupt archive) from write errors.
fn copy_entry(
    archive: &Path,
    rel: &Path,
    r: &mut impl Read,
    w: &mut File,
    out: &Path,
) -> Result<()> {
    use std::io::Write;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(archive, format!("entry {}: {e}", rel.display()))),
        };
        w.write_all(&buf[..n]).map_err(io(out))?;
    }
    Ok(())
}

fn extract_tar(archive: &Path, r: impl Read, tmp: &Path) -> Result<()> {
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(false);
    ar.set_overwrite(true);
    let entries = ar.entries().map_err(|e| corrupt(archive, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(archive, e))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = safe_entry_path(archive, &raw)?;
        let ty = entry.header().entry_type();
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
