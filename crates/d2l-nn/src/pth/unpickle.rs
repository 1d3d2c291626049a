//! The restricted unpickler of [`super`]: a pickle machine that knows the opcodes
//! `torch.save` emits and admits only an allow-list of globals; it executes nothing (the
//! module docs of [`super`] list what it accepts and why).

use super::*;

/// A callable or class the allow-list admits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensorV1,
    RebuildParameter,
    StorageType(Elem),
}

impl Global {
    pub(super) fn resolve(module: &str, name: &str) -> Option<Global> {
        match (module, name) {
            ("collections", "OrderedDict") => Some(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_tensor") => Some(Global::RebuildTensorV1),
            ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
            ("torch", s) => Elem::from_storage_class(s).map(Global::StorageType),
            _ => None,
        }
    }

    pub(super) fn name(self) -> String {
        match self {
            Global::OrderedDict => "collections.OrderedDict".into(),
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2".into(),
            Global::RebuildTensorV1 => "torch._utils._rebuild_tensor".into(),
            Global::RebuildParameter => "torch._utils._rebuild_parameter".into(),
            Global::StorageType(e) => format!("torch storage type ({})", e.name()),
        }
    }
}

/// A pickled value. Containers live in an arena ([`Heap`]) and are referred to by index,
/// so values are flat: no reference cycles, no recursive drops, however hostile the file.
#[derive(Debug, Clone)]
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i64),
    BigInt(i128),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Obj(usize),
    Global(Global),
    Storage(usize),
    Tensor(usize),
}

#[derive(Debug)]
pub(super) enum Obj {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
}

/// A storage named by a persistent id: its key (record name), element type and, for a
/// legacy view, the element range of the root storage it covers.
#[derive(Debug, Clone)]
pub(super) struct StorageRef {
    pub(super) key: String,
    pub(super) elem: Elem,
    pub(super) view: Option<(usize, usize)>,
    /// The element count the persistent id declares (its fifth field), when it is one.
    pub(super) numel: Option<u64>,
}

/// A tensor to rebuild: `storage[offset + Σ index·stride]`.
#[derive(Debug, Clone)]
pub(super) struct TensorRef {
    pub(super) storage: usize,
    pub(super) offset: usize,
    pub(super) size: Vec<usize>,
    pub(super) stride: Vec<usize>,
}

#[derive(Debug, Default)]
pub(super) struct Heap {
    pub(super) objs: Vec<Obj>,
    pub(super) storages: Vec<StorageRef>,
    pub(super) tensors: Vec<TensorRef>,
}

impl Heap {
    pub(super) fn alloc(&mut self, o: Obj) -> Value {
        self.objs.push(o);
        Value::Obj(self.objs.len() - 1)
    }

    pub(super) fn kind(&self, v: &Value) -> &'static str {
        match v {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) | Value::BigInt(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a str",
            Value::Bytes(_) => "bytes",
            Value::Obj(i) => match self.objs[*i] {
                Obj::Tuple(_) => "a tuple",
                Obj::List(_) => "a list",
                Obj::Dict(_) => "a dict",
                Obj::Set(_) => "a set",
            },
            Value::Global(_) => "a class or function",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }

    pub(super) fn tuple(&self, v: &Value) -> Option<&[Value]> {
        match v {
            Value::Obj(i) => match &self.objs[*i] {
                Obj::Tuple(t) => Some(t),
                _ => None,
            },
            _ => None,
        }
    }

    pub(super) fn dict(&self, v: &Value) -> Option<&[(Value, Value)]> {
        match v {
            Value::Obj(i) => match &self.objs[*i] {
                Obj::Dict(d) => Some(d),
                _ => None,
            },
            _ => None,
        }
    }
}

pub(super) fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    }
}

/// The most digits a `LONG1`/`LONG4` integer may have (16 bytes: an i128).
pub(super) const MAX_LONG_BYTES: usize = 16;

/// One pickle being read from `data[pos..]`, into a shared [`Heap`].
pub(super) struct Unpickler<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) what: &'a str,
    pub(super) heap: &'a mut Heap,
    pub(super) stack: Vec<Value>,
    pub(super) marks: Vec<usize>,
    pub(super) memo: HashMap<u32, Value>,
    /// The offset of the opcode being run, for messages.
    pub(super) op_at: usize,
}

impl<'a> Unpickler<'a> {
    pub(super) fn new(data: &'a [u8], pos: usize, what: &'a str, heap: &'a mut Heap) -> Self {
        Unpickler {
            data,
            pos,
            what,
            heap,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            op_at: pos,
        }
    }

    pub(super) fn fail<T>(&self, msg: impl std::fmt::Display) -> Res<T> {
        Err(format!(
            "{msg} (at byte offset {} of {})",
            self.op_at, self.what
        ))
    }

    pub(super) fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(e) => {
                let s = &self.data[self.pos..e];
                self.pos = e;
                Ok(s)
            }
            None => self.fail(format!(
                "the pickle ends early: {n} more bytes needed, {} left (truncated file?)",
                self.data.len() - self.pos.min(self.data.len())
            )),
        }
    }

    pub(super) fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn arr<const N: usize>(&mut self) -> Res<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    pub(super) fn len_u64(&mut self, n: u64) -> Res<usize> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return self.fail(format!(
                "a length of {n} bytes runs past the end of the pickle ({left} bytes left)"
            ));
        }
        Ok(n as usize)
    }

    pub(super) fn line(&mut self) -> Res<&'a str> {
        let rest = &self.data[self.pos..];
        let Some(nl) = rest.iter().take(1024).position(|&b| b == b'\n') else {
            return self.fail("a GLOBAL name is not terminated by a newline");
        };
        let s = std::str::from_utf8(&rest[..nl]);
        self.pos += nl + 1;
        match s {
            Ok(s) => Ok(s),
            Err(_) => self.fail("a GLOBAL name is not valid UTF-8"),
        }
    }

    pub(super) fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    pub(super) fn pop(&mut self) -> Res<Value> {
        if self.stack.len() <= self.floor() {
            return self.fail("the pickle pops from an empty stack");
        }
        Ok(self.stack.pop().expect("length checked"))
    }

    pub(super) fn top(&self) -> Res<&Value> {
        if self.stack.len() <= self.floor() {
            return self.fail("the pickle reads an empty stack");
        }
        Ok(self.stack.last().expect("length checked"))
    }

    pub(super) fn pop_mark(&mut self) -> Res<Vec<Value>> {
        let Some(m) = self.marks.pop() else {
            return self.fail("the pickle closes a MARK it never opened");
        };
        Ok(self.stack.split_off(m))
    }

    pub(super) fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    pub(super) fn put(&mut self, idx: u32) -> Res<()> {
        let v = self.top()?.clone();
        self.memo.insert(idx, v);
        Ok(())
    }

    pub(super) fn get(&mut self, idx: u32) -> Res<()> {
        match self.memo.get(&idx) {
            Some(v) => {
                let v = v.clone();
                self.push(v);
                Ok(())
            }
            None => self.fail(format!("memo entry {idx} is read before it is written")),
        }
    }

    pub(super) fn global(&mut self, module: &str, name: &str) -> Res<()> {
        match Global::resolve(module, name) {
            Some(g) => {
                self.push(Value::Global(g));
                Ok(())
            }
            None => {
                let hint = if module == "torch._utils" && name == "_rebuild_tensor_v3" {
                    " (a tensor of a dtype d2l-rs cannot hold: uint16/32/64, float8, …)"
                } else if module.starts_with("torch.nn") || module.starts_with("__main__") {
                    " (the file pickles a Python object, e.g. a whole nn.Module: save `model.state_dict()` instead)"
                } else {
                    ""
                };
                self.fail(format!(
                    "refused pickle global `{module}.{name}`: only tensors, storages and (ordered) dicts may be unpickled, nothing is executed{hint}"
                ))
            }
        }
    }

    pub(super) fn int_of(&self, v: &Value, what: &str) -> Res<i64> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Bool(b) => Ok(*b as i64),
            other => self.fail(format!(
                "{what}: expected an int, got {}",
                self.heap.kind(other)
            )),
        }
    }

    pub(super) fn usize_of(&self, v: &Value, what: &str) -> Res<usize> {
        let i = self.int_of(v, what)?;
        usize::try_from(i).or_else(|_| self.fail(format!("{what}: expected a size, got {i}")))
    }

    pub(super) fn usizes_of(&self, v: &Value, what: &str) -> Res<Vec<usize>> {
        let Some(items) = self.heap.tuple(v) else {
            return self.fail(format!(
                "{what}: expected a tuple of ints, got {}",
                self.heap.kind(v)
            ));
        };
        items.iter().map(|x| self.usize_of(x, what)).collect()
    }

    /// A persistent id: `('storage', storage_type, key, location, numel[, view])`.
    pub(super) fn persistent_load(&mut self, pid: Value) -> Res<Value> {
        let Some(items) = self.heap.tuple(&pid).map(<[Value]>::to_vec) else {
            return self.fail(format!(
                "a persistent id must be a tuple, got {}",
                self.heap.kind(&pid)
            ));
        };
        match items.first() {
            Some(Value::Str(s)) if &**s == "storage" => {}
            _ => return self.fail(
                "unsupported persistent id (only ('storage', type, key, location, numel) is known)",
            ),
        }
        if items.len() != 5 && items.len() != 6 {
            return self.fail(format!(
                "a storage persistent id has {} fields, expected 5 or 6",
                items.len()
            ));
        }
        let elem = match &items[1] {
            Value::Global(Global::StorageType(e)) => *e,
            other => {
                return self.fail(format!(
                    "a storage persistent id names {} as its type, expected a torch.<X>Storage",
                    self.heap.kind(other)
                ))
            }
        };
        let key = match &items[2] {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            other => {
                return self.fail(format!(
                    "a storage key must be a str, got {}",
                    self.heap.kind(other)
                ))
            }
        };
        let view = match items.get(5) {
            None | Some(Value::None) => None,
            Some(v) => match self.heap.tuple(v).map(<[Value]>::to_vec) {
                Some(t) if t.len() == 3 => {
                    let offset = self.usize_of(&t[1], "a storage view's offset")?;
                    let size = self.usize_of(&t[2], "a storage view's size")?;
                    Some((offset, size))
                }
                _ => return self.fail("a storage view must be (key, offset, size)"),
            },
        };
        let numel = match &items[4] {
            Value::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        };
        self.heap.storages.push(StorageRef {
            key,
            elem,
            view,
            numel,
        });
        Ok(Value::Storage(self.heap.storages.len() - 1))
    }

    pub(super) fn rebuild_tensor(&mut self, args: &[Value], v2: bool) -> Res<Value> {
        let need = if v2 { 6 } else { 4 };
        let name = if v2 {
            "_rebuild_tensor_v2"
        } else {
            "_rebuild_tensor"
        };
        if args.len() < need || args.len() > need + 1 {
            return self.fail(format!(
                "{name} takes {need} arguments (storage, offset, size, stride{}), got {}",
                if v2 { ", requires_grad, hooks" } else { "" },
                args.len()
            ));
        }
        let Value::Storage(storage) = args[0] else {
            return self.fail(format!(
                "{name}: expected a storage, got {}",
                self.heap.kind(&args[0])
            ));
        };
        let offset = self.usize_of(&args[1], "a tensor's storage offset")?;
        let size = self.usizes_of(&args[2], "a tensor's size")?;
        let stride = self.usizes_of(&args[3], "a tensor's stride")?;
        if size.len() != stride.len() {
            return self.fail(format!(
                "a tensor's size {size:?} and stride {stride:?} differ in length"
            ));
        }
        self.heap.tensors.push(TensorRef {
            storage,
            offset,
            size,
            stride,
        });
        Ok(Value::Tensor(self.heap.tensors.len() - 1))
    }

    pub(super) fn call(&mut self, f: Value, args: Value) -> Res<Value> {
        let Some(a) = self.heap.tuple(&args).map(<[Value]>::to_vec) else {
            return self.fail(format!(
                "REDUCE arguments must be a tuple, got {}",
                self.heap.kind(&args)
            ));
        };
        match f {
            Value::Global(Global::OrderedDict) => {
                let d = self.heap.alloc(Obj::Dict(Vec::new()));
                match a.as_slice() {
                    // Python 3: empty, the items follow with SETITEMS.
                    [] => {}
                    // Python 2.7 passes the items: `OrderedDict([[k, v], ...])`.
                    [items] => {
                        let pairs = match items {
                            Value::Obj(i) => match &self.heap.objs[*i] {
                                Obj::List(l) | Obj::Tuple(l) => l.clone(),
                                _ => Vec::new(),
                            },
                            _ => {
                                return self.fail("OrderedDict's argument must be a list of pairs")
                            }
                        };
                        for p in pairs {
                            let kv = match &p {
                                Value::Obj(i) => match &self.heap.objs[*i] {
                                    Obj::List(l) | Obj::Tuple(l) if l.len() == 2 => l.clone(),
                                    _ => Vec::new(),
                                },
                                _ => Vec::new(),
                            };
                            let [k, v] = <[Value; 2]>::try_from(kv).or_else(|_| {
                                self.fail("OrderedDict's argument must be a list of pairs")
                            })?;
                            self.set_item(&d, k, v)?;
                        }
                    }
                    _ => return self.fail("OrderedDict takes at most one argument"),
                }
                Ok(d)
            }
            Value::Global(Global::RebuildTensorV2) => self.rebuild_tensor(&a, true),
            Value::Global(Global::RebuildTensorV1) => self.rebuild_tensor(&a, false),
            Value::Global(Global::RebuildParameter) => match a.first() {
                Some(t @ Value::Tensor(_)) if a.len() == 3 || a.len() == 2 => Ok(t.clone()),
                _ => self.fail("_rebuild_parameter expects (tensor, requires_grad, hooks)"),
            },
            Value::Global(g) => self.fail(format!("{} cannot be called here", g.name())),
            other => self.fail(format!(
                "REDUCE on {}, which is not an allowed callable",
                self.heap.kind(&other)
            )),
        }
    }

    pub(super) fn set_item(&mut self, target: &Value, k: Value, v: Value) -> Res<()> {
        let Value::Obj(i) = target else {
            return self.fail(format!("SETITEM on {}", self.heap.kind(target)));
        };
        match &mut self.heap.objs[*i] {
            Obj::Dict(d) => {
                let same = |a: &Value| match (a, &k) {
                    (Value::Str(x), Value::Str(y)) => x == y,
                    (Value::Int(x), Value::Int(y)) => x == y,
                    _ => false,
                };
                match d.iter_mut().find(|(a, _)| same(a)) {
                    Some(slot) => slot.1 = v,
                    None => d.push((k, v)),
                }
                Ok(())
            }
            _ => {
                let kind = self.heap.kind(target);
                self.fail(format!("SETITEM on {kind}"))
            }
        }
    }

    pub(super) fn extend(&mut self, target: &Value, items: Vec<Value>, op: &str) -> Res<()> {
        if let Value::Obj(i) = target {
            match &mut self.heap.objs[*i] {
                Obj::List(l) if op != "ADDITEMS" => {
                    l.extend(items);
                    return Ok(());
                }
                Obj::Set(s) if op == "ADDITEMS" => {
                    s.extend(items);
                    return Ok(());
                }
                _ => {}
            }
        }
        let kind = self.heap.kind(target);
        self.fail(format!("{op} on {kind}"))
    }

    /// Runs opcodes up to `STOP` and returns the pickled value; `self.pos` is then just
    /// past the `STOP`.
    pub(super) fn load(&mut self) -> Res<Value> {
        loop {
            self.op_at = self.pos;
            if self.pos >= self.data.len() {
                return self.fail("the pickle ends without STOP (truncated file?)");
            }
            let op = self.u8()?;
            match op {
                0x80 => {
                    let v = self.u8()?;
                    if v > 5 {
                        return self.fail(format!("unsupported pickle protocol {v}"));
                    }
                }
                0x95 => {
                    self.arr::<8>()?;
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.arr()?);
                    self.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.arr()?);
                    self.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        let n = i32::from_le_bytes(self.arr()?);
                        if n < 0 {
                            return self.fail("LONG4 with a negative length");
                        }
                        n as usize
                    };
                    if n > MAX_LONG_BYTES {
                        return self.fail(format!(
                            "an integer of {n} bytes is too large (at most {MAX_LONG_BYTES})"
                        ));
                    }
                    let bytes = self.take(n)?;
                    let mut v: i128 = 0;
                    for (i, &b) in bytes.iter().enumerate() {
                        v |= (b as i128) << (8 * i);
                    }
                    if n > 0 && n < MAX_LONG_BYTES && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i128 << (8 * n);
                    }
                    self.push(match i64::try_from(v) {
                        Ok(i) => Value::Int(i),
                        Err(_) => Value::BigInt(v),
                    });
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.arr()?);
                    self.push(Value::Float(v));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => u32::from_le_bytes(self.arr()?) as u64,
                        0x8c => self.u8()? as u64,
                        _ => u64::from_le_bytes(self.arr()?),
                    };
                    let n = self.len_u64(n)?;
                    let bytes = self.take(n)?;
                    match std::str::from_utf8(bytes) {
                        Ok(s) => self.push(Value::Str(Rc::from(s))),
                        Err(_) => return self.fail("a string is not valid UTF-8"),
                    }
                }
                b'T' | b'U' => {
                    // Python 2 byte strings: read as Latin-1 text.
                    let n = if op == b'T' {
                        let n = i32::from_le_bytes(self.arr()?);
                        if n < 0 {
                            return self.fail("BINSTRING with a negative length");
                        }
                        n as u64
                    } else {
                        self.u8()? as u64
                    };
                    let n = self.len_u64(n)?;
                    let s: String = self.take(n)?.iter().map(|&b| b as char).collect();
                    self.push(Value::Str(Rc::from(s.as_str())));
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => u32::from_le_bytes(self.arr()?) as u64,
                        b'C' => self.u8()? as u64,
                        _ => u64::from_le_bytes(self.arr()?),
                    };
                    let n = self.len_u64(n)?;
                    let bytes = self.take(n)?;
                    self.push(Value::Bytes(Rc::from(bytes)));
                }
                b')' => {
                    let v = self.heap.alloc(Obj::Tuple(Vec::new()));
                    self.push(v);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let v = self.heap.alloc(Obj::Tuple(items));
                    self.push(v);
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let v = self.heap.alloc(Obj::Tuple(items));
                    self.push(v);
                }
                b']' => {
                    let v = self.heap.alloc(Obj::List(Vec::new()));
                    self.push(v);
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let v = self.heap.alloc(Obj::List(items));
                    self.push(v);
                }
                b'}' => {
                    let v = self.heap.alloc(Obj::Dict(Vec::new()));
                    self.push(v);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return self.fail("DICT with an odd number of items");
                    }
                    let d = self.heap.alloc(Obj::Dict(Vec::new()));
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        self.set_item(&d, k, v)?;
                    }
                    self.push(d);
                }
                0x8f => {
                    let v = self.heap.alloc(Obj::Set(Vec::new()));
                    self.push(v);
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.heap.alloc(Obj::Set(items));
                    self.push(v);
                }
                b'a' => {
                    let v = self.pop()?;
                    let target = self.top()?.clone();
                    self.extend(&target, vec![v], "APPEND")?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    let name = if op == b'e' { "APPENDS" } else { "ADDITEMS" };
                    self.extend(&target, items, name)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let target = self.top()?.clone();
                    self.set_item(&target, k, v)?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return self.fail("SETITEMS with an odd number of items");
                    }
                    let target = self.top()?.clone();
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        self.set_item(&target, k, v)?;
                    }
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    self.put(i)?;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.arr()?);
                    self.put(i)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.put(i)?;
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    self.get(i)?;
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.arr()?);
                    self.get(i)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&module, &name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.global(&m, &n)?;
                        }
                        _ => return self.fail("STACK_GLOBAL needs two strings"),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.call(f, args)?;
                    self.push(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    match cls {
                        Value::Global(Global::OrderedDict) => {
                            let v = self.heap.alloc(Obj::Dict(Vec::new()));
                            self.push(v);
                        }
                        other => {
                            let _ = args;
                            return self.fail(format!(
                                "NEWOBJ of {}, which is not an allowed class",
                                self.heap.kind(&other)
                            ));
                        }
                    }
                }
                b'b' => {
                    let _state = self.pop()?;
                    let target = self.top()?;
                    // An OrderedDict's state is the state dict's `_metadata` attribute
                    // (layer versions): not needed, ignored.
                    if self.heap.dict(target).is_none() {
                        let kind = self.heap.kind(target);
                        return self.fail(format!(
                            "BUILD on {kind} (only a dict's attributes may be restored)"
                        ));
                    }
                }
                _ => {
                    return self.fail(format!(
                        "unsupported pickle opcode 0x{op:02x} ({})",
                        opcode_name(op)
                    ))
                }
            }
        }
    }
}
