#!/usr/bin/env python3
"""Writes the fixtures of `d2l_nn::pth` and `d2l_models::torchvision`.

Run from the repository root with the project's venv (torch, safetensors, torchvision;
torchvision's import needs pillow):

    .venv/bin/python scripts/gen_pth_fixtures.py

crates/d2l-nn/tests/fixtures/pth/
    tiny_zip.pth / tiny_legacy.pth   state dict of a tiny conv net (zip and legacy format)
    tiny.safetensors                 the same values, for comparison
    views_zip.pth / views_legacy.pth transposed / sliced / shared views, f64, i64, u8,
                                     f16, bf16, scalar and empty tensors
    views.safetensors                the same values made contiguous (f16/bf16 as f32)
    checkpoint.pth                   {'epoch', 'state_dict', 'optimizer', ...}
    model_key.pth                    {'model': state dict, 'epoch': 1}
    malicious.pth                    an object whose __reduce__ calls os.system
    malicious_legacy.pth             the same in the legacy format
    missing_record.pth               tiny_zip.pth without one storage record
    big_endian.pth                   tiny_zip.pth rewritten as a big-endian checkpoint
    old_style_legacy.pth             the views in PyTorch 0.3 / Python 2.7's legacy style
    expanded_ok.pth / expanded_huge.pth  stride-0 views: a small one, and 2^32 elements
                                     from a 1-element storage (refused)

crates/d2l-models/tests/fixtures/torchvision/
    resnet18_keys.txt / vgg19_keys.txt  torchvision state dict names, kinds and shapes
    resnet18_forward.safetensors        input and eval-mode output of ResNet-18 with the
                                        deterministic weights below
    vgg19_features_forward.safetensors  the same for vgg19().features[:29]
    resnet18_strided.pth                a full torchvision ResNet-18 checkpoint whose
                                        tensors are stride-0 views of one small storage
"""

import copy
import math
import os
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
PTH = ROOT / "crates/d2l-nn/tests/fixtures/pth"
TV = ROOT / "crates/d2l-models/tests/fixtures/torchvision"


def tiny_net():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(12, 4),
    )
    net.train()
    for _ in range(2):
        net(torch.randn(5, 2, 4, 4))  # running stats and num_batches_tracked move
    return net


def contiguous(d):
    out = {}
    for k, v in d.items():
        v = v.detach()
        if v.dtype in (torch.float16, torch.bfloat16):
            v = v.float()
        out[k] = v.contiguous().clone()
    return out


def views():
    torch.manual_seed(1)
    base = torch.randn(4, 6)
    big = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    d = {
        "transposed": base.t(),  # stride (1, 6)
        "sliced": base[1:, 2:5],  # storage offset 8, stride (6, 1)
        "strided": big[:, ::2, 1::2],  # stride (20, 10, 2), offset 1
        "shared_row": base[2],  # shares base's storage, offset 12
        "base": base,
        "f64": torch.linspace(-1, 1, 7, dtype=torch.float64).reshape(7, 1),
        "i64": torch.tensor([[-(2**40), -1], [0, 2**50]], dtype=torch.int64),
        "u8": torch.arange(0, 250, 25, dtype=torch.uint8),
        "f16": torch.tensor([0.5, -2.0, 65504.0, 1e-3, 0.0], dtype=torch.float16),
        "bf16": torch.tensor([1.5, -3.25, 1e30, 0.0], dtype=torch.bfloat16),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "i32": torch.tensor([1, -2, 2**31 - 1], dtype=torch.int32),
        "bool": torch.tensor([True, False, True]),
    }
    return d


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/d2l_pth_pwned",))


def old_style_legacy(d, path):
    """The legacy format as PyTorch 0.3 / Python 2.7 wrote it (the era of torchvision's
    first checkpoints): tensors as `torch._utils._rebuild_tensor(storage, offset, size,
    stride)`, an OrderedDict pickled with its items as the argument, storage ids of six
    fields. Only the float/int64/uint8 entries of `d`."""
    import collections
    import pickle
    import struct

    names = {
        torch.float32: torch.FloatStorage,
        torch.float64: torch.DoubleStorage,
        torch.int64: torch.LongStorage,
        torch.uint8: torch.ByteStorage,
    }

    class Box:
        def __init__(self, t):
            self.cls = names[t.dtype]
            self.data = bytes(t.untyped_storage())
            self.numel = len(self.data) // t.element_size()
            self.key = str(t.untyped_storage().data_ptr())

    boxes = {}

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Box):
                boxes[obj.key] = obj
                return ("storage", obj.cls, obj.key, "cpu", obj.numel, None)
            return None

        def reducer_override(self, obj):
            if isinstance(obj, torch.Tensor):
                args = (Box(obj), obj.storage_offset(), tuple(obj.size()), obj.stride())
                return (torch._utils._rebuild_tensor, args)
            if type(obj) is collections.OrderedDict:
                return (collections.OrderedDict, ([[k, v] for k, v in obj.items()],))
            return NotImplemented

    od = collections.OrderedDict((k, t) for k, t in d.items() if t.dtype in names)
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        sys_info = {"protocol_version": 1001, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 8}}
        pickle.dump(sys_info, f, protocol=2)
        P(f, protocol=2).dump(od)
        keys = sorted(boxes)
        pickle.dump(keys, f, protocol=2)
        for k in keys:
            f.write(struct.pack("<q", boxes[k].numel))
            f.write(boxes[k].data)
    back = torch.load(path, weights_only=False)
    assert list(back) == list(od)
    for k in od:
        assert torch.equal(back[k], od[k]), k


def rewrite_zip(src, dst, drop=None, replace=None):
    """Copies a zip checkpoint, dropping records whose name ends with `drop` and
    replacing the contents of records by name suffix (`replace`: suffix -> bytes)."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if drop is not None and info.filename.endswith(drop):
                continue
            data = zin.read(info.filename)
            for suffix, new in replace.items():
                if info.filename.endswith(suffix):
                    data = new(data, info.filename) if callable(new) else new
            zout.writestr(info.filename, data)


def gen_pth():
    PTH.mkdir(parents=True, exist_ok=True)
    net = tiny_net()
    sd = net.state_dict()
    torch.save(sd, PTH / "tiny_zip.pth")
    torch.save(sd, PTH / "tiny_legacy.pth", _use_new_zipfile_serialization=False)
    save_file(contiguous(sd), PTH / "tiny.safetensors")

    v = views()
    torch.save(v, PTH / "views_zip.pth")
    torch.save(v, PTH / "views_legacy.pth", _use_new_zipfile_serialization=False)
    expect = contiguous(v)
    expect["i32"] = expect["i32"].long()  # read as i64
    expect["bool"] = expect["bool"].to(torch.uint8)  # read as u8
    save_file(expect, PTH / "views.safetensors")

    # state_dict() shares storage with the parameters: keep a copy of the values saved
    # above before the optimiser moves them.
    sd = copy.deepcopy(sd)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(5, 2, 4, 4)).sum().backward()
    opt.step()
    torch.save(
        {
            "epoch": 3,
            "best_acc": 0.875,
            "arch": "tiny",
            "state_dict": sd,
            "optimizer": opt.state_dict(),
            "history": [1, 2.5, None, True, False, (1, 2, 3), -70000, 2**40],
        },
        PTH / "checkpoint.pth",
    )
    torch.save({"model": sd, "epoch": 1}, PTH / "model_key.pth")

    torch.save({"weight": torch.ones(2), "evil": Evil()}, PTH / "malicious.pth")
    torch.save(
        {"weight": torch.ones(2), "evil": Evil()},
        PTH / "malicious_legacy.pth",
        _use_new_zipfile_serialization=False,
    )

    old_style_legacy(v, PTH / "old_style_legacy.pth")
    torch.save({"ok": torch.arange(3.0).expand(4, 3)}, PTH / "expanded_ok.pth")
    torch.save({"huge": torch.zeros(1).expand(2**20, 2**12)}, PTH / "expanded_huge.pth")

    # The record of the Linear layer's weight, whatever key torch gave it.
    with zipfile.ZipFile(PTH / "tiny_zip.pth") as z:
        keys = sorted(n for n in z.namelist() if "/data/" in n)
    rewrite_zip(PTH / "tiny_zip.pth", PTH / "missing_record.pth", drop=keys[-1])

    # Big-endian: every storage byte-swapped per element and `byteorder` = "big".
    import pickle

    class Probe(pickle.Unpickler):
        sizes = {}

        def find_class(self, mod, name):
            if mod == "torch" and name.endswith("Storage"):
                return name
            if mod == "torch._utils":
                return lambda *a: None
            if mod == "collections" and name == "OrderedDict":
                import collections

                return collections.OrderedDict
            raise pickle.UnpicklingError(f"{mod}.{name}")

        def persistent_load(self, pid):
            _, kind, key, _, _ = pid
            self.sizes[key] = {"FloatStorage": 4, "LongStorage": 8}[kind]
            return None

    with zipfile.ZipFile(PTH / "tiny_zip.pth") as z:
        pkl = next(n for n in z.namelist() if n.endswith("data.pkl"))
        import io

        Probe(io.BytesIO(z.read(pkl))).load()

    def swap(data, name):
        size = Probe.sizes[name.rsplit("/", 1)[1]]
        return b"".join(data[i : i + size][::-1] for i in range(0, len(data), size))

    def swap_any(data, name):
        if "/data/" in name and not name.endswith("data.pkl"):
            return swap(data, name)
        return data

    rewrite_zip(
        PTH / "tiny_zip.pth",
        PTH / "big_endian.pth",
        replace={"/byteorder": b"big", "": swap_any},
    )


# ---------------------------------------------------------------------------------------
# torchvision


def torchvision_models():
    import torchvision  # needs pillow for its import

    return torchvision.models.resnet18(), torchvision.models.vgg19()


def write_keys(model, path):
    params = {n for n, _ in model.named_parameters()}
    with open(path, "w") as f:
        for n, t in model.state_dict().items():
            kind = "P" if n in params else "B"
            shape = ",".join(str(s) for s in t.shape)
            f.write(f"{n}\t{kind}\t{shape}\n")


def salt(name):
    return sum(name.encode()) % 97


def formula(name, t):
    """The deterministic weights of the forward-parity tests (the Rust side computes
    the same: `d2l_models` tests/torchvision.rs `formula`)."""
    n = t.numel()
    i = torch.arange(n, dtype=torch.float64)
    s = torch.sin(0.7 * i + salt(name))
    if name.endswith("num_batches_tracked"):
        return None
    if name.endswith("running_mean"):
        v = 0.1 * s
    elif name.endswith("running_var"):
        v = 1 + 0.1 * s.abs()
    elif t.dim() >= 2:
        v = s / math.sqrt(n / t.shape[0])
    elif name.endswith("weight"):
        v = 1 + 0.1 * s
    else:
        v = 0.1 * s
    return v.to(t.dtype).reshape(t.shape)


def set_formula(model, prefix=""):
    with torch.no_grad():
        for n, t in model.state_dict().items():
            v = formula(prefix + n, t)
            if v is not None:
                t.copy_(v)


def parity_input():
    i = torch.arange(3 * 32 * 32, dtype=torch.float64)
    return torch.cos(0.37 * i).reshape(1, 3, 32, 32).float()


def strided_checkpoint(model, path):
    """A torchvision-format checkpoint of `model` in a few KB: every float tensor is a
    view of one 2048-element storage (`base`, or `var_base` for running variances) with
    stride 1 along dim 0 and 0 elsewhere, at storage offset `salt * 7`: element
    [o, ...] of entry n is base[salt(n) * 7 + o]. num_batches_tracked = 7."""
    i = torch.arange(2048, dtype=torch.float64)
    base = (0.05 * torch.sin(0.1 * i)).float()
    var_base = (1 + 0.1 * torch.sin(0.1 * i).abs()).float()
    sd = {}
    for n, t in model.state_dict().items():
        if n.endswith("num_batches_tracked"):
            sd[n] = torch.tensor(7)
            continue
        src = var_base if n.endswith("running_var") else base
        stride = (1,) + (0,) * (t.dim() - 1)
        sd[n] = src.as_strided(t.shape, stride, salt(n) * 7)
    torch.save(sd, path)


def gen_torchvision():
    TV.mkdir(parents=True, exist_ok=True)
    resnet, vgg = torchvision_models()
    write_keys(resnet, TV / "resnet18_keys.txt")
    write_keys(vgg, TV / "vgg19_keys.txt")
    strided_checkpoint(resnet, TV / "resnet18_strided.pth")

    x = parity_input()
    set_formula(resnet)
    resnet.eval()
    with torch.no_grad():
        y = resnet(x)
    save_file({"input": x, "output": y.contiguous()}, TV / "resnet18_forward.safetensors")

    feats = vgg.features[:29]
    set_formula(feats, prefix="features.")
    feats.eval()
    with torch.no_grad():
        y = feats(x)
    save_file(
        {"input": x, "output": y.contiguous()}, TV / "vgg19_features_forward.safetensors"
    )


if __name__ == "__main__":
    gen_pth()
    gen_torchvision()
    total = 0
    for d in (PTH, TV):
        for p in sorted(d.iterdir()):
            size = p.stat().st_size
            total += size
            print(f"{size:>8}  {p.relative_to(ROOT)}")
    print(f"{total:>8}  total")
