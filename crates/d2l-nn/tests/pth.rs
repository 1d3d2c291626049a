//! D2L 13.2 (fine-tuning) groundwork: PyTorch `.pth` checkpoints read by `d2l_nn::pth`,
//! checked value for value against safetensors copies written next to them by
//! `scripts/gen_pth_fixtures.py`, and refused cleanly when broken or hostile.

use d2l_nn::conv::Conv2d;
use d2l_nn::layers::{Flatten, Linear, ReLU};
use d2l_nn::module::{Module, Sequential};
use d2l_nn::norm::BatchNorm2d;
use d2l_nn::{pth, serialize};
use d2l_tensor::{DType, Tensor};
use d2l_testkit::assert_identical;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pth")
        .join(name)
}

/// Every entry equals the safetensors copy, and the names come in `order`.
fn check_against(pth_file: &str, st_file: &str, order: &[&str]) {
    let got = pth::load_pth(fixture(pth_file)).unwrap_or_else(|e| panic!("{pth_file}: {e}"));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, order, "{pth_file}: names in file order");
    let want: BTreeMap<String, Tensor> = serialize::load_dict(fixture(st_file)).unwrap();
    for (n, t) in &got {
        assert_identical(&format!("{pth_file}:{n}"), t, &want[n]);
    }
}

const TINY: [&str; 9] = [
    "0.weight",
    "0.bias",
    "1.weight",
    "1.bias",
    "1.running_mean",
    "1.running_var",
    "1.num_batches_tracked",
    "4.weight",
    "4.bias",
];

const VIEWS: [&str; 14] = [
    "transposed",
    "sliced",
    "strided",
    "shared_row",
    "base",
    "f64",
    "i64",
    "u8",
    "f16",
    "bf16",
    "scalar",
    "empty",
    "i32",
    "bool",
];

/// Each checkpoint format (zip, legacy, big-endian zip; views and dtypes in zip and
/// legacy) reads as its safetensors copy.
#[test]
fn every_format_matches_its_safetensors_copy() {
    for (pth_file, st_file, order) in [
        ("tiny_zip.pth", "tiny.safetensors", &TINY[..]),
        ("tiny_legacy.pth", "tiny.safetensors", &TINY[..]),
        ("big_endian.pth", "tiny.safetensors", &TINY[..]),
        ("views_zip.pth", "views.safetensors", &VIEWS[..]),
        ("views_legacy.pth", "views.safetensors", &VIEWS[..]),
    ] {
        check_against(pth_file, st_file, order);
    }
}

#[test]
fn dtypes_are_mapped() {
    let got: BTreeMap<String, Tensor> = pth::load_pth(fixture("views_zip.pth"))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(got["f16"].dtype(), DType::F32);
    assert_eq!(
        got["f16"].to_vec::<f32>(),
        [0.5, -2.0, 65504.0, 0.0010004044, 0.0]
    );
    assert_eq!(got["bf16"].dtype(), DType::F32);
    assert_eq!(got["i32"].to_vec::<i64>(), [1, -2, i32::MAX as i64]);
    assert_eq!(got["bool"].to_vec::<u8>(), [1, 0, 1]);
    assert_eq!(got["scalar"].shape(), &[] as &[usize]);
    assert_eq!(got["empty"].shape(), &[0, 3]);
    assert_eq!(got["transposed"].shape(), &[6, 4]);
    assert_eq!(got["i64"].to_vec::<i64>(), [-(1 << 40), -1, 0, 1 << 50]);
}

#[test]
fn checkpoint_dicts_yield_their_state_dict() {
    check_against("checkpoint.pth", "tiny.safetensors", &TINY);
    check_against("model_key.pth", "tiny.safetensors", &TINY);
}

fn err_of(path: &Path) -> String {
    match pth::load_pth(path) {
        Ok(v) => panic!("{} loaded {} entries", path.display(), v.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malicious_globals_are_refused() {
    for f in ["malicious.pth", "malicious_legacy.pth"] {
        let path = fixture(f);
        let msg = err_of(&path);
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("`posix.system`"), "{msg}");
        assert!(msg.contains("refused"), "{msg}");
        assert!(msg.contains("byte offset"), "{msg}");
    }
    // The zip one: the global sits at byte 177 of data.pkl (see pickletools.dis).
    let msg = err_of(&fixture("malicious.pth"));
    assert!(
        msg.contains("byte offset 177 of malicious/data.pkl"),
        "{msg}"
    );
    assert!(!Path::new("/tmp/d2l_pth_pwned").exists());
}

#[test]
fn missing_storage_record() {
    let path = fixture("missing_record.pth");
    let msg = err_of(&path);
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("tensor `4.bias`"), "{msg}");
    assert!(
        msg.contains("storage record `tiny_zip/data/8` is missing"),
        "{msg}"
    );
}

fn write_tmp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn truncated_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["tiny_zip.pth", "tiny_legacy.pth", "views_legacy.pth"] {
        let bytes = std::fs::read(fixture(f)).unwrap();
        let step = if f.contains("zip") { 7 } else { 1 };
        for cut in (0..bytes.len()).step_by(step) {
            let p = write_tmp(dir.path(), "cut.pth", &bytes[..cut]);
            let msg = err_of(&p);
            assert!(msg.contains("cut.pth"), "{f} cut at {cut}: {msg}");
        }
    }
    let bytes = std::fs::read(fixture("tiny_legacy.pth")).unwrap();
    let p = write_tmp(dir.path(), "cut.pth", &bytes[..bytes.len() - 5]);
    let msg = err_of(&p);
    assert!(msg.contains("truncated"), "{msg}");
    let p = write_tmp(dir.path(), "empty.pth", b"");
    assert!(err_of(&p).contains("not a PyTorch checkpoint"));
    let p = write_tmp(dir.path(), "text.pth", b"hello world");
    assert!(err_of(&p).contains("not a PyTorch checkpoint"));
    let missing = dir.path().join("nope.pth");
    assert!(err_of(&missing).contains("nope.pth"));
}

#[test]
fn corrupted_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["tiny_legacy.pth", "tiny_zip.pth", "views_legacy.pth"] {
        let bytes = std::fs::read(fixture(f)).unwrap();
        // Every byte of the legacy files, every third byte of the zip (its stored
        // storages are plain data).
        let step = if f.contains("zip") { 3 } else { 1 };
        for i in (0..bytes.len()).step_by(step) {
            for x in [0x01u8, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= x;
                let p = write_tmp(dir.path(), "flip.pth", &b);
                // Either error or a (possibly different) state dict; never a panic.
                let _ = pth::load_pth(&p);
            }
        }
    }
}

/// Crafted pickles (legacy path: the file starts with PROTO).
#[test]
fn hostile_pickles() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[u8], &[&str])] = &[
        (
            b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1q\x00\x85R.",
            &["`builtins.eval`", "byte offset 2"],
        ),
        (
            b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93.",
            &["`os.system`", "byte offset 23"],
        ),
        (b"\x80\x02\xff.", &["opcode 0xff", "byte offset 2"]),
        (b"\x80\x02(i__main__\nX\n.", &["opcode 0x69 (INST)"]),
        (b"\x80\x02.", &["empty stack"]),
        (b"\x80\x02h\x05.", &["memo entry 5"]),
        (b"\x80\x02X\xff\xff\xff\x7fabc.", &["runs past the end"]),
        (b"\x80\x02)R.", &["empty stack"]),
        (b"\x80\x02N)R.", &["REDUCE on None"]),
        (b"\x80\x02\x8a\x40", &["too large"]),
        (b"\x80\x02}", &["ends without STOP"]),
        (b"\x80\x02(t1.", &["closes a MARK"]),
        (b"\x80\x02K\x01.", &["not a torch.save checkpoint"]),
        (
            b"\x80\x02ctorch.nn.modules.linear\nLinear\n.",
            &["`torch.nn.modules.linear.Linear`", "state_dict()"],
        ),
    ];
    for (i, (bytes, needles)) in cases.iter().enumerate() {
        let p = write_tmp(dir.path(), &format!("case{i}.pth"), bytes);
        let msg = err_of(&p);
        for n in *needles {
            assert!(msg.contains(n), "case {i}: {msg:?} lacks {n:?}");
        }
    }
    // Pseudo-random opcode soup: errors, never panics or hangs.
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..3000 {
        let mut b = vec![0x80, 0x02];
        for _ in 0..(i % 64) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            b.push((s >> 24) as u8);
        }
        let p = write_tmp(dir.path(), "soup.pth", &b);
        let _ = pth::load_pth(&p);
    }
}

#[test]
fn legacy_pickle_with_wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    // A protocol-2 pickle of the int 7 followed by junk: a pickle, not a checkpoint.
    let p = write_tmp(dir.path(), "seven.pth", b"\x80\x02K\x07.junk");
    let msg = err_of(&p);
    assert!(msg.contains("magic number"), "{msg}");
}

#[test]
fn convert_to_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny.safetensors");
    let n = pth::convert_pth_to_safetensors(fixture("tiny_legacy.pth"), &out).unwrap();
    assert_eq!(n, 9);
    let got = serialize::load_dict(&out).unwrap();
    let want = serialize::load_dict(fixture("tiny.safetensors")).unwrap();
    for (n, t) in &want {
        assert_identical(n, &got[n], t);
    }
    let bad = pth::convert_pth_to_safetensors(fixture("malicious.pth"), &out);
    assert!(bad.is_err());
    // The earlier output is left as it was.
    assert_eq!(serialize::load(&out).unwrap().len(), 9);
}

/// nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
/// nn.Linear(12, out)).
fn tiny_net(out: usize) -> Sequential {
    Sequential::new()
        .add(Conv2d::new(2, 3, 3).unwrap())
        .add(BatchNorm2d::new(3).unwrap())
        .add(ReLU)
        .add(Flatten::new())
        .add(Linear::new(12, out).unwrap())
}

#[test]
fn load_into_a_module() {
    let net = tiny_net(4);
    let report = pth::load_pth_into(&net, fixture("tiny_zip.pth"), true).unwrap();
    assert!(report.is_clean());
    assert_eq!(report.loaded.len(), 9);
    let want = serialize::load_dict(fixture("tiny.safetensors")).unwrap();
    for (n, t) in net.state_dict() {
        assert_identical(&n, &t, &want[&n]);
    }

    // Without num_batches_tracked in the entries, strict loading still succeeds.
    let entries: Vec<(String, Tensor)> = pth::load_pth(fixture("tiny_legacy.pth"))
        .unwrap()
        .into_iter()
        .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
        .collect();
    let net = tiny_net(4);
    let r = pth::load_state_dict_entries(&net, &entries, true, "entries").unwrap();
    assert_eq!(r.loaded.len(), 8);

    // A head of another size: the error names the entry and both shapes; nothing loads.
    let net = tiny_net(5);
    let before = net.state_dict()[0].1.to_vec::<f32>();
    let msg = pth::load_pth_into(&net, fixture("tiny_zip.pth"), true)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("4.weight [5, 12] vs [4, 12]"), "{msg}");
    assert!(msg.contains("4.bias [5] vs [4]"), "{msg}");
    assert!(msg.contains("tiny_zip.pth"), "{msg}");
    assert_eq!(net.state_dict()[0].1.to_vec::<f32>(), before);

    // Not strict: the rest loads, the mismatches are reported.
    let r = pth::load_pth_into(&net, fixture("tiny_zip.pth"), false).unwrap();
    assert_eq!(r.mismatched.len(), 2);
    assert_eq!(r.loaded.len(), 7);
}

#[test]
fn expanded_views() {
    let got = pth::load_pth(fixture("expanded_ok.pth")).unwrap();
    assert_eq!(got[0].1.shape(), &[4, 3]);
    assert_eq!(
        got[0].1.to_vec::<f32>(),
        [0., 1., 2., 0., 1., 2., 0., 1., 2., 0., 1., 2.]
    );
    let path = fixture("expanded_huge.pth");
    let msg = err_of(&path);
    assert!(msg.contains("tensor `huge`"), "{msg}");
    assert!(msg.contains("refused as implausible"), "{msg}");
    assert!(msg.contains("stride [0, 0]"), "{msg}");
}

#[test]
fn old_style_legacy_file() {
    // PyTorch 0.3 / Python 2.7 style: `_rebuild_tensor`, OrderedDict(items), 6-field ids.
    // The entries of the views file without the f16, bf16, i32 and bool tensors.
    let order: Vec<&str> = VIEWS
        .into_iter()
        .filter(|n| !["f16", "bf16", "i32", "bool"].contains(n))
        .collect();
    check_against("old_style_legacy.pth", "views.safetensors", &order);
}

/// `tiny_zip.pth` rewritten with record `name` replaced by `bytes` (deflated).
fn tiny_zip_with(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    use std::io::{Read, Write};
    let mut src =
        zip::ZipArchive::new(std::fs::File::open(fixture("tiny_zip.pth")).unwrap()).unwrap();
    let out = dir.join("bomb.pth");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&out).unwrap());
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for i in 0..src.len() {
        let mut f = src.by_index(i).unwrap();
        let fname = f.name().to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        w.start_file(fname.as_str(), deflated).unwrap();
        if fname == name {
            w.write_all(bytes).unwrap();
        } else {
            w.write_all(&data).unwrap();
        }
    }
    w.finish().unwrap();
    out
}

#[test]
fn zip_records_stop_at_the_size_the_pickle_declares() {
    let dir = tempfile::tempdir().unwrap();
    // Storage 1 holds 3 floats (12 bytes); a 64 MB record that deflates to ~64 kB.
    let bomb = tiny_zip_with(dir.path(), "tiny_zip/data/1", &vec![0u8; 64 << 20]);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    let m = err_of(&bomb);
    assert!(m.contains("tiny_zip/data/1"), "{m}");
    assert!(m.contains("declares 67108864 bytes, more than 12"), "{m}");
    assert!(m.contains("the size its pickle declares"), "{m}");
    // The byte order record is a word, not a megabyte.
    let bomb = tiny_zip_with(dir.path(), "tiny_zip/byteorder", &vec![b'l'; 1 << 20]);
    let m = err_of(&bomb);
    assert!(m.contains("byteorder") && m.contains("more than 16"), "{m}");
}
