//! File I/O (D2L 5.5): save and load a tensor, a list or a dictionary of tensors, and a
//! model's parameters, in the [safetensors](https://huggingface.co/docs/safetensors) format
//! with PyTorch's dotted names.
//!
//! A file written by `safetensors.torch.save_file(model.state_dict(), path)` loads into the
//! same architecture built here with [`load_state_dict`], and a file written by
//! [`save_state_dict`] loads in PyTorch with `model.load_state_dict(load_file(path))`.
//! Element types map one to one: f32, f64, i64 and u8 are safetensors' `F32`, `F64`, `I64`
//! and `U8`; `F16` and `BF16` tensors load as f32 (exactly, as `.pth` files' do); any
//! other dtype in a file is refused with an error naming the tensor.
//!
//! Saving is atomic: the bytes go to a temporary file in the target's directory, which
//! is flushed and then renamed over the target, so a failed save leaves neither a partial
//! file nor a temporary one, and an existing file is kept unchanged. [`replace_atomic`] is
//! the workspace's one atomic write (every crate's outputs go through it): it writes
//! regular files only, refuses directories, devices, FIFOs and sockets, and writes
//! through symbolic links to regular files.
//!
//! ```no_run
//! use d2l_nn::serialize;
//! use d2l_tensor::Tensor;
//! # fn main() -> d2l_tensor::Result<()> {
//! let x = Tensor::arange(0.0, 4.0, 1.0)?;
//! serialize::save_tensor("x-file", &x)?; // torch.save(x, 'x-file')
//! let x2 = serialize::load_tensor("x-file")?; // torch.load('x-file')
//! assert_eq!(x2.to_vec::<f32>(), x.to_vec::<f32>());
//! # Ok(()) }
//! ```

use crate::module::Module;
use d2l_tensor::{no_grad, DType, Error, Result, Tensor, TensorId};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The name [`save_tensor`] stores a single tensor under.
pub const SINGLE_TENSOR_NAME: &str = "tensor";

fn io_err(op: &'static str, path: &Path, what: impl fmt::Display) -> Error {
    Error::InvalidArgument {
        op,
        msg: format!("{}: {what}", path.display()),
    }
}

// ---------------------------------------------------------------------------------------
// dtype mapping

fn to_st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::I64 => Dtype::I64,
        DType::U8 => Dtype::U8,
    }
}

fn from_st_dtype(d: Dtype) -> Option<DType> {
    match d {
        Dtype::F32 => Some(DType::F32),
        Dtype::F64 => Some(DType::F64),
        Dtype::I64 => Some(DType::I64),
        Dtype::U8 => Some(DType::U8),
        _ => None,
    }
}

/// A tensor's bytes in safetensors' layout (row-major, little-endian).
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Raw {
    fn of(t: &Tensor) -> Raw {
        fn le<T, const N: usize>(v: Vec<T>, f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
            v.into_iter().flat_map(f).collect()
        }
        let bytes = match t.dtype() {
            DType::F32 => le(t.to_vec::<f32>(), f32::to_le_bytes),
            DType::F64 => le(t.to_vec::<f64>(), f64::to_le_bytes),
            DType::I64 => le(t.to_vec::<i64>(), i64::to_le_bytes),
            DType::U8 => t.to_vec::<u8>(),
        };
        Raw {
            dtype: to_st_dtype(t.dtype()),
            shape: t.shape().to_vec(),
            bytes,
        }
    }
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn decode(
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    data: &[u8],
) -> std::result::Result<Tensor, String> {
    fn from_le<T, const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        data.chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunks_exact yields N bytes")))
            .collect()
    }
    let half = match dtype {
        Dtype::F16 => Some(from_le(data, |b| {
            crate::pth::f16_to_f32(u16::from_le_bytes(b))
        })),
        Dtype::BF16 => Some(from_le(data, |b: [u8; 2]| {
            crate::pth::bf16_to_f32(u16::from_le_bytes(b))
        })),
        _ => None,
    };
    if let Some(v) = half {
        return Tensor::from_vec(v, shape).map_err(|e| format!("tensor `{name}`: {e}"));
    }
    let Some(d) = from_st_dtype(dtype) else {
        return Err(format!(
            "tensor `{name}` has dtype {dtype:?}, which d2l-rs cannot hold (supported: F32, F64, I64, U8, and F16/BF16 converted to F32)"
        ));
    };
    let r = match d {
        DType::F32 => Tensor::from_vec(from_le(data, f32::from_le_bytes), shape),
        DType::F64 => Tensor::from_vec(from_le(data, f64::from_le_bytes), shape),
        DType::I64 => Tensor::from_vec(from_le(data, i64::from_le_bytes), shape),
        DType::U8 => Tensor::from_vec(data.to_vec(), shape),
    };
    r.map_err(|e| format!("tensor `{name}`: {e}"))
}

// ---------------------------------------------------------------------------------------
// atomic write

/// Writes `bytes` to `path` through a temporary file in the same folder, synced and then
/// renamed into place: readers see the old file or the new one, never a partial one.
/// What may be at `path` is as [`write_atomic_io`] says.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_io(path, bytes).map_err(|e| io_err("save", path, e))
}

/// The one atomic write of the workspace, with [`std::io::Error`]s for callers with their
/// own error types: [`replace_atomic`] with a temporary file that receives `bytes`.
pub fn write_atomic_io(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_atomic(path, |tmp| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(tmp)?;
        f.write_all(bytes)
    })
}

/// Replaces the file at `path` with one that `write` fills at a temporary path in the same
/// folder (made by `tempfile`; its name ends with `path`'s extension, for writers that pick
/// a format by it, and the file already exists, empty, when `write` runs). The temporary is
/// synced and persisted (renamed) over the target, or removed on any failure. The new file
/// gets mode 0644 on Unix (a temporary file's 0600 would hide outputs from other users).
///
/// Outputs go to regular files only:
/// * nothing at `path`, or a regular file: written (replaced);
/// * a directory, character or block device, FIFO or socket: refused with an error that
///   names the kind, before anything is written — so `--out /dev/null` never replaces a
///   device node;
/// * a symbolic link: **written through** — the regular file it finally points to is
///   replaced and the link is kept; a link to a missing file, or to anything but a
///   regular file, is refused.
pub fn replace_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let target = output_target(path)?;
    let file_name = target.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path does not name a file",
        )
    })?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let ext = target
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let prefix = format!(".{}.", file_name.to_string_lossy());
    // Dropped (and so removed) on every early return below.
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(&ext)
        .tempfile_in(&dir)?;
    write(tmp.path())?;
    let f = fs::OpenOptions::new().write(true).open(tmp.path())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    f.sync_all()?;
    // Again just before the rename: what is there may have changed while writing.
    check_kind(&target)?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

/// The file an output to `path` replaces: `path` itself, or the regular file a symbolic
/// link at `path` points to; an error when that is not a regular file (see
/// [`replace_atomic`]).
pub fn output_target(path: &Path) -> std::io::Result<PathBuf> {
    let refuse = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg);
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path.to_path_buf()),
        Err(e) => Err(e),
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs::canonicalize(path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    refuse(
                        "is a symbolic link to a missing file: refusing to write through it".into(),
                    )
                } else {
                    e
                }
            })?;
            check_kind(&target).map_err(|e| {
                refuse(format!(
                    "is a symbolic link to {}, which {e}",
                    target.display()
                ))
            })?;
            Ok(target)
        }
        Ok(_) => {
            check_kind(path)?;
            Ok(path.to_path_buf())
        }
    }
}

/// Ok when nothing is at `path` or a regular file is; else an error naming what is there.
fn check_kind(path: &Path) -> std::io::Result<()> {
    let m = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) => m,
    };
    let t = m.file_type();
    if t.is_file() {
        return Ok(());
    }
    let kind = if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        special_kind(&t)
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("is {kind}, not a regular file: refusing to replace it"),
    ))
}

#[cfg(unix)]
fn special_kind(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &fs::FileType) -> &'static str {
    "a special file"
}

fn check_unique<'a>(path: &Path, names: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen = HashSet::new();
    let dups: Vec<&str> = names.filter(|n| !seen.insert(*n)).collect();
    if dups.is_empty() {
        Ok(())
    } else {
        Err(io_err(
            "save",
            path,
            format!("duplicate tensor names {dups:?}"),
        ))
    }
}

fn save_entries<'a>(
    path: &Path,
    entries: impl Iterator<Item = (&'a str, &'a Tensor)>,
) -> Result<()> {
    save_entries_meta(path, entries, HashMap::new())
}

fn save_entries_meta<'a>(
    path: &Path,
    entries: impl Iterator<Item = (&'a str, &'a Tensor)>,
    mut meta: HashMap<String, String>,
) -> Result<()> {
    let entries: Vec<(&str, &Tensor)> = entries.collect();
    check_unique(path, entries.iter().map(|(n, _)| *n))?;
    let raws: Vec<(&str, Raw)> = entries.iter().map(|(n, t)| (*n, Raw::of(t))).collect();
    meta.entry("format".to_string())
        .or_insert_with(|| "pt".to_string());
    let meta = Some(meta);
    let bytes = safetensors::serialize(raws.iter().map(|(n, r)| (*n, r)), &meta)
        .map_err(|e| io_err("save", path, e))?;
    write_atomic(path, &bytes)
}

// ---------------------------------------------------------------------------------------
// tensors, lists, dictionaries

/// Saves named tensors to a safetensors file (atomically; names must be unique).
pub fn save(path: impl AsRef<Path>, tensors: &[(String, Tensor)]) -> Result<()> {
    save_entries(path.as_ref(), tensors.iter().map(|(n, t)| (n.as_str(), t)))
}

/// Saves named tensors with string metadata (the safetensors header's `__metadata__`;
/// `format` defaults to `pt`), atomically. Checkpoints keep their bookkeeping there.
pub fn save_with_metadata(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    save_entries_meta(
        path.as_ref(),
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        metadata,
    )
}

/// Named tensors and the header's string metadata, as [`load_with_metadata`] returns them.
pub type TensorsWithMetadata = (Vec<(String, Tensor)>, HashMap<String, String>);

/// Loads every tensor of a safetensors file, sorted by name, with the header's metadata
/// (empty when it has none).
pub fn load_with_metadata(path: impl AsRef<Path>) -> Result<TensorsWithMetadata> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| io_err("load", path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| {
        io_err(
            "load",
            path,
            format!("not a valid safetensors file ({e:?})"),
        )
    })?;
    let meta = header.metadata().clone().unwrap_or_default();
    Ok((load_bytes(path, &bytes)?, meta))
}

/// Loads every tensor of a safetensors file, sorted by name.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| io_err("load", path, e))?;
    load_bytes(path, &bytes)
}

fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        io_err(
            "load",
            path,
            format!("not a valid safetensors file ({e:?})"),
        )
    })?;
    let mut out = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            decode(&name, v.dtype(), v.shape(), v.data())
                .map(|t| (name, t))
                .map_err(|m| io_err("load", path, m))
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Saves one tensor (`torch.save(x, 'x-file')`), under the name [`SINGLE_TENSOR_NAME`].
pub fn save_tensor(path: impl AsRef<Path>, tensor: &Tensor) -> Result<()> {
    save_entries(path.as_ref(), std::iter::once((SINGLE_TENSOR_NAME, tensor)))
}

/// Loads a file holding exactly one tensor, whatever its name (`torch.load('x-file')`).
pub fn load_tensor(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let mut all = load(path)?;
    if all.len() != 1 {
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        return Err(io_err(
            "load",
            path,
            format!(
                "expected a file with exactly one tensor, found {} ({names:?})",
                all.len()
            ),
        ));
    }
    Ok(all.pop().expect("one entry").1)
}

/// Saves a list of tensors (`torch.save([x, y], 'x-files')`) under the names `0`, `1`, ….
pub fn save_list(path: impl AsRef<Path>, tensors: &[Tensor]) -> Result<()> {
    let names: Vec<String> = (0..tensors.len()).map(|i| i.to_string()).collect();
    save_entries(path.as_ref(), names.iter().map(String::as_str).zip(tensors))
}

/// Loads a list saved by [`save_list`]: the names must be exactly `0`, `1`, …, `n-1`.
pub fn load_list(path: impl AsRef<Path>) -> Result<Vec<Tensor>> {
    let path = path.as_ref();
    let all = load(path)?;
    let n = all.len();
    let mut slots: Vec<Option<Tensor>> = vec![None; n];
    for (name, t) in all {
        match name.parse::<usize>() {
            Ok(i) if i < n && name == i.to_string() => slots[i] = Some(t),
            _ => {
                return Err(io_err(
                    "load",
                    path,
                    format!("not a list of tensors: expected names 0..{n}, found `{name}`"),
                ))
            }
        }
    }
    Ok(slots
        .into_iter()
        .map(|t| t.expect("names 0..n are distinct"))
        .collect())
}

/// Saves a dictionary of tensors (`torch.save({'x': x, 'y': y}, 'mydict')`); takes a
/// `&BTreeMap<String, Tensor>`, a `&HashMap<String, Tensor>` or any (name, tensor) pairs.
pub fn save_dict<'a, K, I>(path: impl AsRef<Path>, dict: I) -> Result<()>
where
    K: AsRef<str> + 'a,
    I: IntoIterator<Item = (&'a K, &'a Tensor)>,
{
    save_entries(
        path.as_ref(),
        dict.into_iter().map(|(k, t)| (k.as_ref(), t)),
    )
}

/// Loads a file as a dictionary from name to tensor (`torch.load('mydict')`).
pub fn load_dict(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>> {
    Ok(load(path)?.into_iter().collect())
}

// ---------------------------------------------------------------------------------------
// state dicts

/// Saves a module's [`Module::state_dict`] (parameters and buffers with PyTorch's dotted
/// names; a tensor shared by several layers is written once, under its first name).
pub fn save_state_dict(module: &dyn Module, path: impl AsRef<Path>) -> Result<()> {
    let sd = module.state_dict();
    save_entries(path.as_ref(), sd.iter().map(|(n, t)| (n.as_str(), t)))
}

/// The names of `module`'s parameters and buffers that hold NaN or infinite values (with
/// how many), in `state_dict` order: weights like that make every prediction meaningless,
/// so programs warn when they load them.
pub fn non_finite_entries(module: &dyn Module) -> Vec<(String, usize)> {
    module
        .state_dict()
        .into_iter()
        .filter(|(_, t)| t.dtype().is_float())
        .filter_map(|(name, t)| {
            let n = t.to_f64_vec().iter().filter(|v| !v.is_finite()).count();
            (n > 0).then_some((name, n))
        })
        .collect()
}

/// What [`load_state_dict`] did: the entries it copied and those it could not match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Module entries that received a value, by the module's (first) name.
    pub loaded: Vec<String>,
    /// Module entries absent from the file, with the module's shapes.
    pub missing: Vec<(String, Vec<usize>)>,
    /// File entries the module does not have, with the file's shapes.
    pub unexpected: Vec<(String, Vec<usize>)>,
    /// Entries in both whose shapes differ: (name, module shape, file shape).
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl LoadReport {
    /// Whether every entry matched: nothing missing, unexpected or mismatched.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "missing from the file: {}; unexpected in the file: {}; shape mismatches (module vs file): {}",
            list(self.missing.iter().map(|(n, s)| format!("{n} {s:?}")).collect()),
            list(self.unexpected.iter().map(|(n, s)| format!("{n} {s:?}")).collect()),
            list(self.mismatched.iter().map(|(n, m, s)| format!("{n} {m:?} vs {s:?}")).collect()),
        )
    }
}

/// Every name under which the module reaches each of its tensors (a shared parameter
/// has several), in `state_dict` order, grouped per tensor.
fn all_names(module: &dyn Module) -> Vec<(Tensor, Vec<String>)> {
    fn walk(m: &dyn Module, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        for (n, t) in m.parameters_local().into_iter().chain(m.buffers_local()) {
            out.push((format!("{prefix}{n}"), t));
        }
        for (n, c) in m.children() {
            walk(c.as_ref(), &format!("{prefix}{n}."), out);
        }
    }
    let mut flat = Vec::new();
    walk(module, "", &mut flat);
    let mut groups: Vec<(Tensor, Vec<String>)> = Vec::new();
    let mut index: HashMap<TensorId, usize> = HashMap::new();
    for (name, t) in flat {
        match index.get(&t.id()) {
            Some(&i) => groups[i].1.push(name),
            None => {
                index.insert(t.id(), groups.len());
                groups.push((t, vec![name]));
            }
        }
    }
    groups
}

/// Loads a safetensors state dict into `module`'s existing tensors, in place under
/// `no_grad`, so shared parameters and optimiser handles stay valid (values are converted
/// to each parameter's dtype, as PyTorch's `copy_` does).
///
/// A shared parameter is found under any of its names. With `strict`, any missing,
/// unexpected or shape-mismatched entry makes one error listing all three groups and
/// nothing is changed; without it, the matching entries are loaded and the rest are
/// reported (PyTorch errors on shape mismatches even then; here they are skipped).
pub fn load_state_dict(
    module: &dyn Module,
    path: impl AsRef<Path>,
    strict: bool,
) -> Result<LoadReport> {
    let path = path.as_ref();
    // Read and decode everything first: a bad file changes nothing.
    let file: BTreeMap<String, Tensor> = load(path)?.into_iter().collect();
    let entries: Vec<(&str, &Tensor)> = file.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let (report, plan) = match_state_dict(module, &entries, |_| false);
    if strict && !report.is_clean() {
        return Err(Error::InvalidArgument {
            op: "load_state_dict",
            msg: format!(
                "{}: the file does not match the module ({report}); nothing was loaded",
                path.display()
            ),
        });
    }
    apply_load_plan(&plan).map_err(|e| io_err("load", path, e))?;
    Ok(report)
}

/// [`load_state_dict`] from entries already in memory (a checkpoint's `model.*` part):
/// with `strict`, a mismatch is one error and nothing is changed.
pub fn load_state_dict_entries(
    module: &dyn Module,
    entries: &[(String, Tensor)],
    strict: bool,
) -> Result<LoadReport> {
    let refs: Vec<(&str, &Tensor)> = entries.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let (report, plan) = match_state_dict(module, &refs, |_| false);
    if strict && !report.is_clean() {
        return Err(Error::InvalidArgument {
            op: "load_state_dict",
            msg: format!("the weights do not match the module ({report}); nothing was loaded"),
        });
    }
    apply_load_plan(&plan).map_err(|e| Error::InvalidArgument {
        op: "load_state_dict",
        msg: e.to_string(),
    })?;
    Ok(report)
}

/// Matches state-dict `entries` (names unique; `unexpected` keeps their order) against
/// every tensor of `module`: the first of a tensor's names present supplies its value,
/// other aliases present must agree in shape. A tensor none of whose names is present is
/// `missing` unless `optional(first name)` says it may be absent. Returns the report and
/// the `(target, value)` copies to make; nothing is changed yet.
pub(crate) fn match_state_dict<'a>(
    module: &dyn Module,
    entries: &[(&'a str, &'a Tensor)],
    optional: impl Fn(&str) -> bool,
) -> (LoadReport, Vec<(Tensor, &'a Tensor)>) {
    let file: HashMap<&str, &Tensor> = entries.iter().copied().collect();
    let mut report = LoadReport::default();
    let mut used: HashSet<&str> = HashSet::new();
    let mut plan = Vec::new();
    for (target, names) in all_names(module) {
        let present: Vec<(&str, &'a Tensor)> = names
            .iter()
            .filter_map(|n| file.get_key_value(n.as_str()).map(|(k, v)| (*k, *v)))
            .collect();
        let Some(&(_, value)) = present.first() else {
            if !optional(&names[0]) {
                report
                    .missing
                    .push((names[0].clone(), target.shape().to_vec()));
            }
            continue;
        };
        let mut ok = true;
        for &(n, src) in &present {
            used.insert(n);
            if src.shape() != target.shape() {
                report.mismatched.push((
                    n.to_string(),
                    target.shape().to_vec(),
                    src.shape().to_vec(),
                ));
                ok = false;
            }
        }
        if ok {
            plan.push((target, value));
            report.loaded.push(names[0].clone());
        }
    }
    report.unexpected = entries
        .iter()
        .filter(|(n, _)| !used.contains(n))
        .map(|(n, t)| (n.to_string(), t.shape().to_vec()))
        .collect();
    (report, plan)
}

/// Makes the copies of a [`match_state_dict`] plan, under `no_grad`.
pub(crate) fn apply_load_plan(plan: &[(Tensor, &Tensor)]) -> Result<()> {
    no_grad(|| -> Result<()> {
        for (target, src) in plan {
            target.copy_(src)?;
        }
        Ok(())
    })
}
