//! PyTorch checkpoints (D2L 13.2, fine-tuning): read the `.pth` / `.pt` files written by
//! `torch.save(model.state_dict(), path)` directly, without Python.
//!
//! Both of `torch.save`'s layouts are read:
//!
//! * the **zip** format (the default since PyTorch 1.6): a zip archive with one folder
//!   `<archive>/` holding `data.pkl` (the pickled object), `data/<key>` (each storage's
//!   raw bytes), `version` and `byteorder` (`little` or `big`; absent means little);
//! * the **legacy** format (`_use_new_zipfile_serialization=False`): five pickles in a
//!   row — the magic number, the protocol version (1001), the system info (endianness,
//!   type sizes), the object itself and the sorted list of storage keys — followed by each
//!   storage in that order as an 8-byte element count and the raw bytes.
//!
//! In both, tensors are pickled as `torch._utils._rebuild_tensor_v2(storage,
//! storage_offset, size, stride, requires_grad, backward_hooks)` whose storage is a
//! persistent id `('storage', torch.FloatStorage, key, location, numel)`.
//!
//! # Safety: a restricted unpickler
//!
//! A pickle is a program; Python's `pickle.load` runs whatever callable it names. The
//! reader here is written by hand and **executes nothing**: it knows the opcodes that
//! `torch.save` emits for state dicts and checkpoints (protocol 2 to 5 framing, ints,
//! floats, strings, bytes, tuples, lists, dicts, sets, memo, persistent ids, `REDUCE`,
//! `BUILD`, `NEWOBJ`) and accepts `GLOBAL` / `STACK_GLOBAL` only for a fixed allow-list:
//!
//! * `collections.OrderedDict` (an empty dict; a `BUILD` on it, which restores the
//!   state dict's `_metadata` attribute, is ignored),
//! * `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_tensor` (pre-0.4 files) and
//!   `torch._utils._rebuild_parameter` (a tensor, however pickled),
//! * the storage types `torch.FloatStorage`, `DoubleStorage`, `HalfStorage`,
//!   `BFloat16Storage`, `LongStorage`, `IntStorage`, `ShortStorage`, `CharStorage`,
//!   `ByteStorage` and `BoolStorage` (only as a persistent id's storage type).
//!
//! Any other global (`posix.system`, `builtins.eval`, a pickled `nn.Module` class, …) or
//! opcode is an error that names it and its byte offset in the pickle.
//! `torch.storage._load_from_bytes` is refused too: it only appears when a storage was
//! pickled outside `torch.save`, and honouring it would mean a nested, separately
//! framed checkpoint.
//!
//! # Element types
//!
//! f32, f64, i64 and u8 tensors load as they are. f16 and bf16 are widened to **f32**
//! (exactly: every half value is an f32 value); i32, i16 and i8 are widened to **i64**;
//! bool loads as **u8** (0 or 1). Tensors of the dtypes PyTorch added later (saved with
//! `_rebuild_tensor_v3`: uint16/32/64, float8, …) are refused. Sizes, strides and storage
//! offsets are honoured, so a transposed or sliced view loads as the values it shows
//! (contiguous); several tensors may share one storage. Stride-0 (expanded) views are
//! materialised too, within a bound a hostile file cannot pass: all the tensors of a file
//! together hold at most 16 elements per byte of the storages they read, plus 2^28.
//!
//! # What is loaded
//!
//! [`load_pth`] returns the state dict's entries in the file's order. The file may hold a
//! state dict (a dict of tensors) or a training checkpoint: a dict whose `state_dict` (or
//! else `model`) entry is the state dict, as `torch.save({'epoch': e, 'state_dict':
//! net.state_dict(), 'optimizer': ...})` writes; the other entries (plain Python values,
//! optimiser state) are read and dropped. `num_batches_tracked` entries are kept: a
//! caller that does not want them filters them. Keys are taken as they are (a
//! `DataParallel` checkpoint keeps its `module.` prefixes).
//!
//! A file that cannot be read — not a checkpoint, truncated, a missing storage record, a
//! tensor reading past its storage, a refused global — is an error naming the path and
//! what is wrong; nothing panics.
//!
//! ```no_run
//! use d2l_nn::pth;
//! # fn main() -> d2l_tensor::Result<()> {
//! for (name, t) in pth::load_pth("resnet18-f37072fd.pth")? {
//!     println!("{name} {:?}", t.shape());
//! }
//! pth::convert_pth_to_safetensors("resnet18-f37072fd.pth", "resnet18.safetensors")?;
//! # Ok(()) }
//! ```

use crate::module::Module;
use crate::serialize::{self, LoadReport};
use d2l_tensor::{DType, Error, Result, Tensor};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::rc::Rc;

type Res<T> = std::result::Result<T, String>;

mod unpickle;
use unpickle::*;

fn err_at(op: &'static str, path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::InvalidArgument {
        op,
        msg: format!("{}: {msg}", path.display()),
    }
}

// ---------------------------------------------------------------------------------------
// public API

/// Reads a PyTorch checkpoint (`torch.save`, zip or legacy format) and returns its state
/// dict's tensors in file order; see the [module docs](self) for what is accepted.
pub fn load_pth(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    read_checkpoint(path).map_err(|m| err_at("load_pth", path, m))
}

/// Converts a PyTorch checkpoint to a safetensors file (written atomically by
/// [`serialize::save`]; f16/bf16 become f32, as [`load_pth`] reads them) and returns the
/// number of tensors written.
pub fn convert_pth_to_safetensors(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
) -> Result<usize> {
    let entries = load_pth(input)?;
    serialize::save(output, &entries)?;
    Ok(entries.len())
}

/// Loads a PyTorch checkpoint into `module` by name: `model.load_state_dict(torch.load(
/// path), strict)`. Same rules as [`load_state_dict_entries`].
pub fn load_pth_into(
    module: &dyn Module,
    path: impl AsRef<Path>,
    strict: bool,
) -> Result<LoadReport> {
    let path = path.as_ref();
    let entries = load_pth(path)?;
    load_state_dict_entries(module, &entries, strict, &path.display().to_string())
}

/// Loads named tensors into `module`'s existing tensors, in place under `no_grad`, with
/// the semantics of [`serialize::load_state_dict`]: values are converted to each
/// tensor's dtype, a shared parameter is found under any of its names, and with `strict`
/// any missing, unexpected or shape-mismatched entry is one error listing all of them
/// (each mismatch with its name, the module's shape and the file's) and nothing changes.
/// Without `strict` the matching entries load and the rest are reported.
///
/// One difference, as in PyTorch's `BatchNorm` loading: a module's `num_batches_tracked`
/// buffer that `entries` lacks is not "missing" (it is left as it is and not listed in
/// [`LoadReport::loaded`]), so state dicts saved without those counters (or with them
/// filtered out) load strictly. `source` names the entries' origin in messages.
pub fn load_state_dict_entries(
    module: &dyn Module,
    entries: &[(String, Tensor)],
    strict: bool,
    source: &str,
) -> Result<LoadReport> {
    let mut file: HashMap<&str, &Tensor> = HashMap::new();
    let mut dups = Vec::new();
    for (n, t) in entries {
        if file.insert(n.as_str(), t).is_some() {
            dups.push(n.as_str());
        }
    }
    if !dups.is_empty() {
        return Err(Error::InvalidArgument {
            op: "load_state_dict",
            msg: format!("{source}: duplicate entry names {dups:?}"),
        });
    }
    let list: Vec<(&str, &Tensor)> = entries.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let (report, plan) =
        serialize::match_state_dict(module, &list, |n| n.ends_with("num_batches_tracked"));
    if strict && !report.is_clean() {
        return Err(Error::InvalidArgument {
            op: "load_state_dict",
            msg: format!(
                "{source}: the checkpoint does not match the module ({report}); nothing was loaded"
            ),
        });
    }
    serialize::apply_load_plan(&plan).map_err(|e| Error::InvalidArgument {
        op: "load_state_dict",
        msg: format!("{source}: {e}"),
    })?;
    Ok(report)
}

// ---------------------------------------------------------------------------------------
// element types

/// A storage's element type, from its `torch.<X>Storage` class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Elem {
    fn from_storage_class(name: &str) -> Option<Elem> {
        Some(match name {
            "FloatStorage" => Elem::F32,
            "DoubleStorage" => Elem::F64,
            "HalfStorage" => Elem::F16,
            "BFloat16Storage" => Elem::BF16,
            "LongStorage" => Elem::I64,
            "IntStorage" => Elem::I32,
            "ShortStorage" => Elem::I16,
            "CharStorage" => Elem::I8,
            "ByteStorage" => Elem::U8,
            "BoolStorage" => Elem::Bool,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Elem::F64 | Elem::I64 => 8,
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 | Elem::BF16 | Elem::I16 => 2,
            Elem::I8 | Elem::U8 | Elem::Bool => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Elem::F32 => "float32",
            Elem::F64 => "float64",
            Elem::F16 => "float16",
            Elem::BF16 => "bfloat16",
            Elem::I64 => "int64",
            Elem::I32 => "int32",
            Elem::I16 => "int16",
            Elem::I8 => "int8",
            Elem::U8 => "uint8",
            Elem::Bool => "bool",
        }
    }
}

/// IEEE half → f32 (exact: every half value is an f32 value).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// bfloat16 → f32 (exact: a bfloat16 is the top half of an f32).
pub(crate) fn bf16_to_f32(h: u16) -> f32 {
    half::bf16::from_bits(h).to_f32()
}

// ---------------------------------------------------------------------------------------
// containers: zip and legacy

/// A storage's bytes by key, as the container stores them.
trait Records {
    /// The bytes of storage `key`; `declared` is the byte count the pickle gives it.
    fn storage(&mut self, key: &str, declared: Option<u64>) -> Res<Vec<u8>>;
}

struct ZipRecords {
    zip: zip::ZipArchive<BufReader<File>>,
    prefix: String,
}

/// Reads zip record `name`, whose header may declare at most `max` bytes (`what_max`
/// says where that bound comes from): decompression never goes past it.
fn read_record(
    zip: &mut zip::ZipArchive<BufReader<File>>,
    name: &str,
    max: Option<(u64, &str)>,
) -> Res<Option<Vec<u8>>> {
    let mut f = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(format!("cannot read record `{name}`: {e}")),
    };
    let size = f.size();
    // Without a declared size, a record may expand as far as deflate can.
    let (max, why) = max.unwrap_or((
        f.compressed_size()
            .saturating_mul(d2l_tensor::limit::MAX_EXPANSION)
            .saturating_add(1 << 20),
        "the most a compressed record may expand",
    ));
    if size > max {
        return Err(format!(
            "record `{name}` declares {size} bytes, more than {max} ({why}): refused"
        ));
    }
    d2l_tensor::limit::check_bytes(&format!("record `{name}`"), Some(size as u128))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(size.min(1 << 26) as usize);
    (&mut f)
        .take(size.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read record `{name}`: {e} (truncated or corrupt file?)"))?;
    if buf.len() as u64 != size {
        return Err(format!(
            "record `{name}` holds {} bytes, its header says {size} (corrupt file?)",
            buf.len()
        ));
    }
    Ok(Some(buf))
}

impl Records for ZipRecords {
    fn storage(&mut self, key: &str, declared: Option<u64>) -> Res<Vec<u8>> {
        let name = format!("{}data/{key}", self.prefix);
        let max = declared.map(|d| (d, "the size its pickle declares"));
        read_record(&mut self.zip, &name, max)?
            .ok_or_else(|| format!("storage record `{name}` is missing from the archive"))
    }
}

struct LegacyRecords {
    data: Vec<u8>,
    ranges: HashMap<String, (usize, usize)>,
}

impl Records for LegacyRecords {
    fn storage(&mut self, key: &str, _declared: Option<u64>) -> Res<Vec<u8>> {
        match self.ranges.get(key) {
            Some(&(s, e)) => Ok(self.data[s..e].to_vec()),
            None => Err(format!(
                "storage `{key}` is not in the file's list of storages"
            )),
        }
    }
}

const LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;
const LEGACY_PROTOCOL: i64 = 1001;

fn read_checkpoint(path: &Path) -> Res<Vec<(String, Tensor)>> {
    let mut f = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut f, &mut magic).map_err(|e| format!("cannot read: {e}"))?;
    drop(f);
    if n == 4 && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06") {
        read_zip(path)
    } else if n >= 2 && magic[0] == 0x80 {
        read_legacy(path)
    } else {
        Err(format!(
            "not a PyTorch checkpoint: neither a zip archive nor a legacy pickle (starts with {:02x?})",
            &magic[..n]
        ))
    }
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn read_zip(path: &Path) -> Res<Vec<(String, Tensor)>> {
    let f = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(f))
        .map_err(|e| format!("not a valid zip checkpoint ({e}); truncated or corrupt file?"))?;
    let pkl = zip
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| (n.matches('/').count(), n.len()))
        .map(str::to_string)
        .ok_or_else(|| {
            "a zip archive without a `data.pkl` record: not a torch.save checkpoint".to_string()
        })?;
    let prefix = pkl[..pkl.len() - "data.pkl".len()].to_string();
    let big_endian = match read_record(
        &mut zip,
        &format!("{prefix}byteorder"),
        Some((16, "a byte order is `little` or `big`")),
    )? {
        None => false,
        Some(b) => match b.as_slice() {
            b"little" => false,
            b"big" => true,
            other => {
                return Err(format!(
                    "record `{prefix}byteorder` says {:?}, expected `little` or `big`",
                    String::from_utf8_lossy(other)
                ))
            }
        },
    };
    let data = read_record(&mut zip, &pkl, None)?.expect("the name was listed");
    let mut heap = Heap::default();
    let root = Unpickler::new(&data, 0, &pkl, &mut heap).load()?;
    let entries = state_dict_entries(&heap, &root)?;
    let mut records = ZipRecords { zip, prefix };
    materialize(&heap, entries, &mut records, big_endian)
}

fn read_legacy(path: &Path) -> Res<Vec<(String, Tensor)>> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut heap = Heap::default();
    let mut pos = 0;
    let next = |what: &str, heap: &mut Heap, pos: &mut usize| -> Res<Value> {
        let mut u = Unpickler::new(&data, *pos, what, heap);
        let v = u.load();
        *pos = u.pos;
        v
    };
    let magic = next("the magic-number pickle", &mut heap, &mut pos)?;
    match magic {
        Value::BigInt(m) if m == LEGACY_MAGIC => {}
        _ => {
            return Err(
                "a pickle, but not a torch.save checkpoint (legacy magic number missing)".into(),
            )
        }
    }
    match next("the protocol-version pickle", &mut heap, &mut pos)? {
        Value::Int(LEGACY_PROTOCOL) => {}
        Value::Int(v) => return Err(format!("unsupported legacy protocol version {v}")),
        _ => return Err("the legacy protocol version is not an int".into()),
    }
    let sys_info = next("the sys-info pickle", &mut heap, &mut pos)?;
    let mut big_endian = false;
    if let Some(d) = heap.dict(&sys_info) {
        for (k, v) in d {
            if let (Value::Str(k), Value::Bool(b)) = (k, v) {
                if &**k == "little_endian" {
                    big_endian = !b;
                }
            }
        }
    }
    let root = next("the object pickle", &mut heap, &mut pos)?;
    let keys_val = next("the storage-keys pickle", &mut heap, &mut pos)?;
    let keys: Vec<String> = match &keys_val {
        Value::Obj(i) => match &heap.objs[*i] {
            Obj::List(l) | Obj::Tuple(l) => l
                .iter()
                .map(|k| match k {
                    Value::Str(s) => Ok(s.to_string()),
                    Value::Int(i) => Ok(i.to_string()),
                    _ => Err("a storage key is not a str".to_string()),
                })
                .collect::<Res<_>>()?,
            _ => return Err("the storage-keys pickle is not a list".into()),
        },
        _ => return Err("the storage-keys pickle is not a list".into()),
    };
    let mut elems: HashMap<&str, Elem> = HashMap::new();
    for s in &heap.storages {
        if let Some(e) = elems.insert(&s.key, s.elem) {
            if e != s.elem {
                return Err(format!(
                    "storage `{}` is used as both {} and {}",
                    s.key,
                    e.name(),
                    s.elem.name()
                ));
            }
        }
    }
    let mut ranges = HashMap::new();
    for key in &keys {
        let Some(elem) = elems.get(key.as_str()) else {
            return Err(format!(
                "storage `{key}` is listed but no tensor uses it, so its element size is unknown"
            ));
        };
        let header = data
            .get(pos..pos + 8)
            .ok_or_else(|| format!("the file ends before storage `{key}` (truncated file?)"))?;
        let header: [u8; 8] = header.try_into().expect("8 bytes");
        let count = if big_endian {
            i64::from_be_bytes(header)
        } else {
            i64::from_le_bytes(header)
        };
        let nbytes = u64::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(elem.size() as u64))
            .ok_or_else(|| format!("storage `{key}` has an invalid element count {count}"))?;
        let start = pos + 8;
        let end = (start as u64)
            .checked_add(nbytes)
            .filter(|&e| e <= data.len() as u64)
            .ok_or_else(|| {
                format!(
                    "the file ends inside storage `{key}` ({count} elements of {} bytes; truncated file?)",
                    elem.size()
                )
            })? as usize;
        ranges.insert(key.clone(), (start, end));
        pos = end;
    }
    let entries = state_dict_entries(&heap, &root)?;
    let mut records = LegacyRecords { data, ranges };
    materialize(&heap, entries, &mut records, big_endian)
}

// ---------------------------------------------------------------------------------------
// the state dict inside the object

fn state_dict_entries(heap: &Heap, root: &Value) -> Res<Vec<(String, usize)>> {
    let Some(top) = heap.dict(root) else {
        return Err(format!(
            "the checkpoint holds {}, not a state dict (a dict of tensors)",
            heap.kind(root)
        ));
    };
    let lookup = |name: &str| {
        top.iter().find_map(|(k, v)| match k {
            Value::Str(s) if &**s == name => Some(v),
            _ => None,
        })
    };
    let all_tensors = top.iter().all(|(_, v)| matches!(v, Value::Tensor(_)));
    let dict = if all_tensors {
        top
    } else if let Some(v) = lookup("state_dict").or_else(|| lookup("model")) {
        heap.dict(v).ok_or_else(|| {
            format!(
                "the checkpoint's state_dict/model entry is {}, not a dict of tensors",
                heap.kind(v)
            )
        })?
    } else {
        let keys: Vec<String> = top.iter().map(|(k, _)| key_str(k)).take(20).collect();
        return Err(format!(
            "the checkpoint is a dict with non-tensor entries and no `state_dict` or `model` entry (keys {keys:?})"
        ));
    };
    dict.iter()
        .map(|(k, v)| {
            let name = match k {
                Value::Str(s) => s.to_string(),
                other => {
                    return Err(format!(
                        "a state dict key is {}, not a str",
                        heap.kind(other)
                    ))
                }
            };
            match v {
                Value::Tensor(i) => Ok((name, *i)),
                other => Err(format!(
                    "state dict entry `{name}` is {}, not a tensor",
                    heap.kind(other)
                )),
            }
        })
        .collect()
}

fn key_str(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bytes(b) => format!("<{} bytes>", b.len()),
        other => format!("{other:?}"),
    }
}

/// How many elements the tensors of one file may hold in all: [`EXPANSION`] per byte of
/// the storages they read, plus [`EXPANSION_FLOOR`]. Views with stride 0 (expanded
/// tensors) are legal and are materialised, so a tiny file may describe large tensors;
/// this bounds how large, so a hostile file cannot make the reader allocate without
/// limit.
const EXPANSION: u128 = 16;
/// See [`EXPANSION`]: 2^28 elements (1 GiB of f32).
const EXPANSION_FLOOR: u128 = 1 << 28;

fn materialize(
    heap: &Heap,
    entries: Vec<(String, usize)>,
    records: &mut dyn Records,
    big_endian: bool,
) -> Res<Vec<(String, Tensor)>> {
    let mut cache: HashMap<String, Rc<Vec<u8>>> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    let (mut storage_bytes, mut elements) = (0u128, 0u128);
    for (name, ti) in entries {
        let t = &heap.tensors[ti];
        let s = &heap.storages[t.storage];
        let bytes = match cache.get(&s.key) {
            Some(b) => b.clone(),
            None => {
                let b = Rc::new(
                    records
                        .storage(
                            &s.key,
                            s.numel.and_then(|n| n.checked_mul(s.elem.size() as u64)),
                        )
                        .map_err(|m| format!("tensor `{name}`: {m}"))?,
                );
                storage_bytes += b.len() as u128;
                cache.insert(s.key.clone(), b.clone());
                b
            }
        };
        let numel = t
            .size
            .iter()
            .try_fold(1u128, |a, &d| a.checked_mul(d as u128))
            .unwrap_or(u128::MAX);
        elements = elements.saturating_add(numel);
        let limit = EXPANSION * storage_bytes + EXPANSION_FLOOR;
        if elements > limit {
            return Err(format!(
                "tensor `{name}` (size {:?}, stride {:?}) brings the file's tensors to {elements} elements from {storage_bytes} bytes of storage: refused as implausible (limit {limit})",
                t.size, t.stride
            ));
        }
        let tensor = build_tensor(&name, t, s, &bytes, big_endian)?;
        out.push((name, tensor));
    }
    Ok(out)
}

fn build_tensor(
    name: &str,
    t: &TensorRef,
    s: &StorageRef,
    bytes: &[u8],
    big_endian: bool,
) -> Res<Tensor> {
    let es = s.elem.size();
    if !bytes.len().is_multiple_of(es) {
        return Err(format!(
            "tensor `{name}`: its storage holds {} bytes, not a whole number of {} elements",
            bytes.len(),
            s.elem.name()
        ));
    }
    let root_len = bytes.len() / es;
    let (base, len) = match s.view {
        None => (0, root_len),
        Some((off, size)) => {
            if off.checked_add(size).is_none_or(|e| e > root_len) {
                return Err(format!(
                    "tensor `{name}`: its storage view [{off}, {off}+{size}) lies outside the {root_len}-element storage"
                ));
            }
            (off, size)
        }
    };
    let numel = t
        .size
        .iter()
        .try_fold(1u128, |a, &d| a.checked_mul(d as u128))
        .unwrap_or(u128::MAX);
    let desc = || {
        format!(
            "size {:?}, stride {:?}, storage offset {}",
            t.size, t.stride, t.offset
        )
    };
    let dtype = match s.elem {
        Elem::F32 | Elem::F16 | Elem::BF16 => DType::F32,
        Elem::F64 => DType::F64,
        Elem::I64 | Elem::I32 | Elem::I16 | Elem::I8 => DType::I64,
        Elem::U8 | Elem::Bool => DType::U8,
    };
    if numel == 0 {
        return Ok(Tensor::zeros_dtype(&t.size, dtype));
    }
    let max_off = t
        .size
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset as u128, |a, (&d, &st)| {
            a.checked_add((d as u128 - 1).checked_mul(st as u128)?)
        });
    match max_off {
        Some(m) if m < len as u128 => {}
        _ => {
            return Err(format!(
                "tensor `{name}` ({}) reads past the end of its {len}-element {} storage",
                desc(),
                s.elem.name()
            ))
        }
    }
    let numel = numel as usize;
    // Element offsets in row-major order of the view.
    let mut offsets = Vec::with_capacity(numel);
    let rank = t.size.len();
    let mut idx = vec![0usize; rank];
    let mut off = base + t.offset;
    for _ in 0..numel {
        offsets.push(off);
        for d in (0..rank).rev() {
            // Wrapping: a dimension of size 1 may have any stride, so the running offset
            // may pass usize::MAX on its way back; every offset pushed is in range.
            idx[d] += 1;
            off = off.wrapping_add(t.stride[d]);
            if idx[d] < t.size[d] {
                break;
            }
            off = off.wrapping_sub(t.stride[d].wrapping_mul(t.size[d]));
            idx[d] = 0;
        }
    }
    fn get<const N: usize>(bytes: &[u8], i: usize, big: bool) -> [u8; N] {
        let mut a: [u8; N] = bytes[i * N..i * N + N].try_into().expect("N bytes");
        if big {
            a.reverse();
        }
        a
    }
    let shape = &t.size;
    let be = big_endian;
    let r = match s.elem {
        Elem::F32 => Tensor::from_vec(
            offsets
                .iter()
                .map(|&i| f32::from_le_bytes(get(bytes, i, be)))
                .collect::<Vec<_>>(),
            shape,
        ),
        Elem::F16 => Tensor::from_vec(
            offsets
                .iter()
                .map(|&i| f16_to_f32(u16::from_le_bytes(get(bytes, i, be))))
                .collect::<Vec<_>>(),
            shape,
        ),
        Elem::BF16 => Tensor::from_vec(
            offsets
                .iter()
                .map(|&i| bf16_to_f32(u16::from_le_bytes(get(bytes, i, be))))
                .collect::<Vec<_>>(),
            shape,
        ),
        Elem::F64 => Tensor::from_vec(
            offsets
                .iter()
                .map(|&i| f64::from_le_bytes(get(bytes, i, be)))
                .collect::<Vec<_>>(),
            shape,
        ),
        Elem::I64 => Tensor::from_vec(
            offsets
                .iter()
                .map(|&i| i64::from_le_bytes(get(bytes, i, be)))
                .collect::<Vec<_>>(),
            shape,
        ),
        Elem::I32 => Tensor::from_vec(
            offsets
                .iter()
                .map(|&i| i32::from_le_bytes(get(bytes, i, be)) as i64)
                .collect::<Vec<_>>(),
            shape,
        ),
        Elem::I16 => Tensor::from_vec(
            offsets
                .iter()
                .map(|&i| i16::from_le_bytes(get(bytes, i, be)) as i64)
                .collect::<Vec<_>>(),
            shape,
        ),
        Elem::I8 => Tensor::from_vec(
            offsets
                .iter()
                .map(|&i| bytes[i] as i8 as i64)
                .collect::<Vec<_>>(),
            shape,
        ),
        Elem::U8 => Tensor::from_vec(offsets.iter().map(|&i| bytes[i]).collect::<Vec<_>>(), shape),
        Elem::Bool => Tensor::from_vec(
            offsets
                .iter()
                .map(|&i| (bytes[i] != 0) as u8)
                .collect::<Vec<_>>(),
            shape,
        ),
    };
    r.map_err(|e| format!("tensor `{name}` ({}): {e}", desc()))
}
