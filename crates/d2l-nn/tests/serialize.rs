//! D2L 5.5 (file I/O) on the public API: tensors, lists and dictionaries of tensors and
//! model parameters in safetensors, checked against a fixture exported from PyTorch by
//! `scripts/gen_safetensors_fixture.py`.

use d2l_nn::layers::{Linear, ReLU};
use d2l_nn::module::{Module, Sequential};
use d2l_nn::serialize::{self, LoadReport};
use d2l_tensor::{DType, Error, Result, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

mod common;
use common::{input, mlp, shared_net, Mlp};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The fixture's architecture: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).
fn tiny_mlp() -> Result<Sequential> {
    mlp(4, 8, 3)
}

fn json_matrix(v: &serde_json::Value) -> (Vec<f32>, Vec<usize>) {
    let rows = v.as_array().expect("rows");
    let data: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
        })
        .collect();
    let cols = data.len() / rows.len();
    (data, vec![rows.len(), cols])
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn msg(e: &Error) -> String {
    e.to_string()
}

// ---------------------------------------------------------------- D2L 5.5.1: tensors

#[test]
fn save_and_load_a_tensor() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x-file");
    let x = Tensor::arange(0.0, 4.0, 1.0)?;
    serialize::save_tensor(&path, &x)?; // torch.save(x, 'x-file')
    let x2 = serialize::load_tensor(&path)?; // x2 = torch.load('x-file')
    assert_eq!(x2.shape(), &[4]);
    assert_eq!(x2.dtype(), DType::F32);
    assert_eq!(x2.to_vec::<f32>(), vec![0.0, 1.0, 2.0, 3.0]);
    assert_eq!(
        files_in(dir.path()),
        vec!["x-file"],
        "no temporary file is left behind"
    );
    Ok(())
}

#[test]
fn save_and_load_a_list_of_tensors() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x-files");
    let x = Tensor::arange(0.0, 4.0, 1.0)?;
    let y = Tensor::zeros(&[4]);
    serialize::save_list(&path, &[x.clone(), y.clone()])?; // torch.save([x, y], 'x-files')
    let v = serialize::load_list(&path)?; // x2, y2 = torch.load('x-files')
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].to_vec::<f32>(), x.to_vec::<f32>());
    assert_eq!(v[1].to_vec::<f32>(), y.to_vec::<f32>());

    // Order is by index, not by name ("10" sorts before "2").
    let many: Vec<Tensor> = (0..12).map(|i| Tensor::full(&[1], i as f32)).collect();
    serialize::save_list(&path, &many)?;
    let back: Vec<f32> = serialize::load_list(&path)?
        .iter()
        .map(|t| t.item().unwrap())
        .collect();
    assert_eq!(back, (0..12).map(|i| i as f32).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn save_and_load_a_dict_of_tensors() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mydict");
    let x = Tensor::arange(0.0, 4.0, 1.0)?;
    let y = Tensor::zeros(&[4]);
    // mydict = {'x': x, 'y': y}; torch.save(mydict, 'mydict')
    let mydict = HashMap::from([("x".to_string(), x.clone()), ("y".to_string(), y.clone())]);
    serialize::save_dict(&path, &mydict)?;
    let mydict2 = serialize::load_dict(&path)?; // mydict2 = torch.load('mydict')
    assert_eq!(mydict2.keys().collect::<Vec<_>>(), vec!["x", "y"]);
    assert_eq!(mydict2["x"].to_vec::<f32>(), x.to_vec::<f32>());
    assert_eq!(mydict2["y"].to_vec::<f32>(), y.to_vec::<f32>());

    // A BTreeMap works too, and `load` gives the same entries sorted by name.
    let bt: BTreeMap<String, Tensor> =
        BTreeMap::from([("b".into(), y.clone()), ("a".into(), x.clone())]);
    serialize::save_dict(&path, &bt)?;
    let names: Vec<String> = serialize::load(&path)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    Ok(())
}

#[test]
fn every_dtype_and_layout_round_trips() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.safetensors");
    let m = Tensor::from_vec((0..6).map(|i| i as f32 * 0.5).collect(), &[2, 3])?;
    let entries = vec![
        (
            "f32".to_string(),
            Tensor::from_vec(vec![1.5f32, -2.25, f32::MAX, f32::MIN_POSITIVE], &[2, 2])?,
        ),
        (
            "f64".to_string(),
            Tensor::from_vec(vec![1.0f64 / 3.0, -1e-300, 2.5], &[3])?,
        ),
        (
            "i64".to_string(),
            Tensor::from_vec(vec![i64::MIN, -1, 0, i64::MAX], &[4, 1])?,
        ),
        (
            "u8".to_string(),
            Tensor::from_vec(vec![0u8, 1, 128, 255], &[2, 1, 2])?,
        ),
        ("scalar".to_string(), Tensor::scalar(7.0)),
        ("empty".to_string(), Tensor::zeros(&[0, 3])),
        ("transposed".to_string(), m.t()?), // a strided view is written row-major
    ];
    serialize::save(&path, &entries)?;
    let back: BTreeMap<String, Tensor> = serialize::load(&path)?.into_iter().collect();
    assert_eq!(back.len(), entries.len());
    for (name, t) in &entries {
        d2l_testkit::assert_identical(name, &back[name], t);
    }
    assert_eq!(
        back["transposed"].to_vec::<f32>(),
        vec![0.0, 1.5, 0.5, 2.0, 1.0, 2.5]
    );
    Ok(())
}

#[test]
fn reads_every_supported_dtype_written_by_pytorch() -> Result<()> {
    let d = serialize::load_dict(fixture("dtypes.safetensors"))?;
    assert_eq!(
        d.keys().collect::<Vec<_>>(),
        vec!["f32", "f64", "i64", "scalar", "u8"]
    );
    assert_eq!(d["f32"].shape(), &[2, 3]);
    assert_eq!(
        d["f32"].to_vec::<f32>(),
        vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    );
    assert_eq!(d["f64"].dtype(), DType::F64);
    assert_eq!(d["f64"].to_vec::<f64>(), vec![1.0 / 3.0, -2.5, 1e-300]);
    assert_eq!(d["i64"].dtype(), DType::I64);
    assert_eq!(
        d["i64"].to_vec::<i64>(),
        vec![-(1i64 << 40), 0, 7, 1i64 << 62]
    );
    assert_eq!(d["u8"].dtype(), DType::U8);
    assert_eq!(d["u8"].to_vec::<u8>(), vec![0, 1, 255]);
    assert_eq!(d["scalar"].shape(), &[] as &[usize]);
    assert_eq!(d["scalar"].item()?, 3.5);
    Ok(())
}

#[test]
fn bf16_from_pytorch_loads_as_f32() -> Result<()> {
    // torch.tensor([1.0, 2.0], dtype=torch.bfloat16), as safetensors.torch wrote it.
    let d = serialize::load_dict(fixture("bf16.safetensors"))?;
    assert_eq!(d["half"].dtype(), DType::F32);
    assert_eq!(d["half"].to_vec::<f32>(), vec![1.0, 2.0]);
    Ok(())
}

/// A safetensors file with one tensor of `dtype` holding `data`.
fn one_tensor_file(dir: &Path, dtype: safetensors::Dtype, shape: &[usize], data: &[u8]) -> PathBuf {
    let path = dir.join(format!("{dtype:?}.safetensors"));
    let view = safetensors::tensor::TensorView::new(dtype, shape.to_vec(), data).unwrap();
    std::fs::write(&path, safetensors::serialize([("t", view)], &None).unwrap()).unwrap();
    path
}

#[test]
fn f16_and_bf16_convert_exactly_to_f32() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    // f16: 1.0, -2.5, 65504 (largest), 2^-24 (smallest subnormal), +inf.
    let halves: [u16; 5] = [0x3c00, 0xc100, 0x7bff, 0x0001, 0x7c00];
    let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let t = serialize::load_tensor(one_tensor_file(
        dir.path(),
        safetensors::Dtype::F16,
        &[5],
        &bytes,
    ))?;
    assert_eq!(t.dtype(), DType::F32);
    assert_eq!(
        t.to_vec::<f32>(),
        vec![1.0, -2.5, 65504.0, 2f32.powi(-24), f32::INFINITY]
    );
    // bf16 is the top half of an f32: -3.25 and 1e30's rounding.
    let b: Vec<u8> = [(-3.25f32).to_bits(), 1e30f32.to_bits()]
        .iter()
        .flat_map(|x| ((x >> 16) as u16).to_le_bytes())
        .collect();
    let t = serialize::load_tensor(one_tensor_file(
        dir.path(),
        safetensors::Dtype::BF16,
        &[2, 1],
        &b,
    ))?;
    assert_eq!(t.shape(), &[2, 1]);
    assert_eq!(
        t.to_vec::<f32>(),
        vec![-3.25, f32::from_bits(1e30f32.to_bits() & 0xffff_0000)]
    );
    Ok(())
}

#[test]
fn unsupported_dtype_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = one_tensor_file(dir.path(), safetensors::Dtype::I32, &[2], &[0; 8]);
    let e = serialize::load(&path).unwrap_err();
    let m = msg(&e);
    assert!(
        matches!(e, Error::InvalidArgument { op: "load", .. }),
        "{e:?}"
    );
    assert!(
        m.contains("I32.safetensors") && m.contains("`t`") && m.contains("I32"),
        "{m}"
    );
}

// ---------------------------------------------------------------- errors and atomic saves

#[test]
fn load_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let e = serialize::load(&missing).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument { op: "load", .. }),
        "{e:?}"
    );
    assert!(msg(&e).contains("nope.safetensors"), "{e}");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"definitely not a safetensors file").unwrap();
    let e = serialize::load(&garbage).unwrap_err();
    assert!(
        msg(&e).contains("garbage.safetensors") && msg(&e).contains("not a valid safetensors"),
        "{e}"
    );

    // load_tensor wants exactly one tensor; load_list wants names 0..n.
    let e = serialize::load_tensor(fixture("mlp.safetensors")).unwrap_err();
    assert!(
        msg(&e).contains("exactly one tensor") && msg(&e).contains("0.weight"),
        "{e}"
    );
    let e = serialize::load_list(fixture("mlp.safetensors")).unwrap_err();
    assert!(msg(&e).contains("not a list"), "{e}");
}

#[test]
fn failed_save_leaves_no_partial_or_temporary_file() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let x = Tensor::arange(0.0, 4.0, 1.0)?;

    // The rename fails after the temporary file was fully written: the target is a directory.
    let target = dir.path().join("occupied");
    std::fs::create_dir(&target).unwrap();
    let e = serialize::save_tensor(&target, &x).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument { op: "save", .. }),
        "{e:?}"
    );
    assert!(msg(&e).contains("occupied"), "{e}");
    assert_eq!(
        files_in(dir.path()),
        vec!["occupied"],
        "the temporary file was removed"
    );
    assert!(files_in(&target).is_empty());

    // The directory does not exist: the temporary cannot even be created.
    let e = serialize::save_tensor(dir.path().join("no/such/dir/x"), &x).unwrap_err();
    assert!(msg(&e).contains("no/such/dir/x"), "{e}");
    assert_eq!(files_in(dir.path()), vec!["occupied"]);

    // A rejected save keeps an existing file exactly as it was.
    let path = dir.path().join("keep");
    serialize::save_tensor(&path, &x)?;
    let before = std::fs::read(&path).unwrap();
    let dup = vec![
        ("a".to_string(), x.clone()),
        ("a".to_string(), x.mul_scalar(2.0)?),
    ];
    let e = serialize::save(&path, &dup).unwrap_err();
    assert!(
        msg(&e).contains("duplicate") && msg(&e).contains("\"a\""),
        "{e}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(files_in(dir.path()), vec!["keep", "occupied"]);

    // Overwriting an existing file works and is a whole new file.
    serialize::save_tensor(&path, &x.mul_scalar(3.0)?)?;
    assert_eq!(
        serialize::load_tensor(&path)?.to_vec::<f32>(),
        vec![0.0, 3.0, 6.0, 9.0]
    );
    assert_eq!(files_in(dir.path()), vec!["keep", "occupied"]);
    Ok(())
}

#[cfg(unix)]
#[test]
fn save_into_read_only_directory_fails_cleanly() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores directory permissions; the check only means something for other users.
    let probe = ro.join(".probe");
    let writable = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    if !writable {
        let e = serialize::save_tensor(ro.join("x"), &Tensor::zeros(&[2])).unwrap_err();
        assert!(msg(&e).contains("ro/x"), "{e}");
        assert!(files_in(&ro).is_empty());
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    Ok(())
}

// ---------------------------------------------------------------- D2L 5.5.2: model parameters

#[test]
fn save_and_load_mlp_parameters() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.params");
    let net = Mlp::new("output")?;
    let x = input(&[2, 20], 1);
    let y = net.forward(&x)?;
    serialize::save_state_dict(&net, &path)?; // torch.save(net.state_dict(), 'mlp.params')

    let names: Vec<String> = serialize::load(&path)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        vec![
            "hidden.bias",
            "hidden.weight",
            "output.bias",
            "output.weight"
        ]
    );

    let clone = Mlp::new("output")?; // clone = MLP(); clone.load_state_dict(torch.load('mlp.params'))
    let handle = clone.hidden.weight.clone(); // e.g. held by an optimiser
    let report = serialize::load_state_dict(&clone, &path, true)?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.loaded.len(), 4);
    let y_clone = clone.forward(&x)?;
    assert_eq!(y_clone.to_vec::<f32>(), y.to_vec::<f32>()); // Y_clone == Y
                                                            // Values were copied in place: the old handle is the parameter and sees the new values.
    assert_eq!(handle.id(), clone.hidden.weight.id());
    assert_eq!(handle.to_vec::<f32>(), net.hidden.weight.to_vec::<f32>());
    assert!(handle.requires_grad() && handle.is_leaf());
    Ok(())
}

#[test]
fn pytorch_weights_give_pytorch_outputs() -> Result<()> {
    let io: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("mlp_io.json")).unwrap()).unwrap();
    let (xv, xs) = json_matrix(&io["input"]);
    let (yv, ys) = json_matrix(&io["output"]);
    let x = Tensor::from_vec(xv, &xs)?;

    let net = tiny_mlp()?;
    let names: Vec<String> = net.state_dict().into_iter().map(|(n, _)| n).collect();
    let file_names: Vec<String> = serialize::load(fixture("mlp.safetensors"))?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, file_names, "PyTorch's state_dict names are ours");

    let report = serialize::load_state_dict(&net, fixture("mlp.safetensors"), true)?;
    assert!(report.is_clean(), "{report}");
    let y = net.forward(&x)?;
    assert_eq!(y.shape(), ys.as_slice());
    for (a, b) in y.to_vec::<f32>().iter().zip(&yv) {
        assert!((a - b).abs() < 1e-5, "ours {a} vs PyTorch {b}");
    }
    Ok(())
}

#[test]
fn round_trip_into_a_fresh_model_gives_identical_outputs() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.safetensors");
    let net = tiny_mlp()?;
    serialize::save_state_dict(&net, &path)?;
    let fresh = tiny_mlp()?;
    let x = input(&[5, 4], 7);
    assert_ne!(
        fresh.forward(&x)?.to_vec::<f32>(),
        net.forward(&x)?.to_vec::<f32>()
    );
    serialize::load_state_dict(&fresh, &path, true)?;
    assert_eq!(
        fresh.forward(&x)?.to_vec::<f32>(),
        net.forward(&x)?.to_vec::<f32>()
    );
    // And back out again: the bytes are identical.
    let path2 = dir.path().join("tiny2.safetensors");
    serialize::save_state_dict(&fresh, &path2)?;
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&path2).unwrap()
    );
    Ok(())
}

#[test]
fn mismatched_architecture_lists_every_problem_and_changes_nothing() -> Result<()> {
    // File: 0.weight [8,4], 0.bias [8], 2.weight [3,8], 2.bias [3].
    // Module: 0 matches; 2 is Linear(8, 5) without bias; 4 is new.
    let net = Sequential::new()
        .add(Linear::new(4, 8)?)
        .add(ReLU)
        .add(Linear::with_bias(8, 5, false)?)
        .add(ReLU)
        .add(Linear::new(5, 2)?);
    let before: Vec<Vec<f32>> = net.parameters().iter().map(|p| p.to_vec::<f32>()).collect();
    let e = serialize::load_state_dict(&net, fixture("mlp.safetensors"), true).unwrap_err();
    let m = msg(&e);
    assert!(
        matches!(
            e,
            Error::InvalidArgument {
                op: "load_state_dict",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(m.contains("mlp.safetensors"), "{m}");
    assert!(
        m.contains("missing from the file: 4.weight [2, 5], 4.bias [2]"),
        "{m}"
    );
    assert!(m.contains("unexpected in the file: 2.bias [3]"), "{m}");
    assert!(
        m.contains("shape mismatches (module vs file): 2.weight [5, 8] vs [3, 8]"),
        "{m}"
    );
    let after: Vec<Vec<f32>> = net.parameters().iter().map(|p| p.to_vec::<f32>()).collect();
    assert_eq!(
        before, after,
        "a strict failure loads nothing, not even the matching layer"
    );

    // Non-strict: the matching layer is loaded, the rest is reported.
    let report = serialize::load_state_dict(&net, fixture("mlp.safetensors"), false)?;
    assert_eq!(
        report,
        LoadReport {
            loaded: vec!["0.weight".into(), "0.bias".into()],
            missing: vec![("4.weight".into(), vec![2, 5]), ("4.bias".into(), vec![2])],
            unexpected: vec![("2.bias".into(), vec![3])],
            mismatched: vec![("2.weight".into(), vec![5, 8], vec![3, 8])],
        }
    );
    let reference = tiny_mlp()?;
    serialize::load_state_dict(&reference, fixture("mlp.safetensors"), true)?;
    assert_eq!(
        net.parameter("0.weight")?.to_vec::<f32>(),
        reference.parameter("0.weight")?.to_vec::<f32>()
    );
    assert_eq!(net.parameter("2.weight")?.to_vec::<f32>(), before[2]);
    Ok(())
}

#[test]
fn load_converts_dtypes_like_copy() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f64.safetensors");
    let w = Tensor::from_vec(vec![0.5f64, -1.0, 2.0, 4.0, 1.0 / 3.0, 0.0], &[2, 3])?;
    let b = Tensor::from_vec(vec![1.0f64, 2.0], &[2])?;
    serialize::save(&path, &[("weight".into(), w), ("bias".into(), b)])?;
    let lin = Linear::new(3, 2)?;
    serialize::load_state_dict(&lin, &path, true)?;
    assert_eq!(lin.weight.dtype(), DType::F32);
    assert_eq!(
        lin.weight.to_vec::<f32>(),
        vec![0.5, -1.0, 2.0, 4.0, 1.0 / 3.0, 0.0]
    );
    assert_eq!(lin.bias.as_ref().unwrap().to_vec::<f32>(), vec![1.0, 2.0]);
    Ok(())
}

// ---------------------------------------------------------------- parameter sharing (5.2.3)

#[test]
fn shared_parameters_are_saved_once_and_stay_shared() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.safetensors");
    let (net, _) = shared_net()?;
    serialize::save_state_dict(&net, &path)?;
    let names: Vec<String> = serialize::load(&path)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        vec!["0.bias", "0.weight", "2.bias", "2.weight", "6.bias", "6.weight"]
    );

    let (fresh, shared) = shared_net()?;
    let report = serialize::load_state_dict(&fresh, &path, true)?;
    assert!(report.is_clean(), "{report}");
    let x = input(&[3, 4], 3);
    assert_eq!(
        fresh.forward(&x)?.to_vec::<f32>(),
        net.forward(&x)?.to_vec::<f32>()
    );
    // Both uses still see one tensor.
    let lin = shared.as_any().downcast_ref::<Linear>().unwrap();
    assert_eq!(
        fresh.get_as::<Linear>(4).unwrap().weight.id(),
        lin.weight.id()
    );
    assert_eq!(
        lin.weight.to_vec::<f32>(),
        net.parameter("2.weight")?.to_vec::<f32>()
    );

    // A file that names the shared layer by its second use (as safetensors' save_model may)
    // loads too; naming both uses is accepted as long as the shapes agree.
    let mut renamed = serialize::load(&path)?;
    for (n, _) in renamed.iter_mut() {
        if let Some(rest) = n.strip_prefix("2.") {
            *n = format!("4.{rest}");
        }
    }
    let alias = dir.path().join("alias.safetensors");
    serialize::save(&alias, &renamed)?;
    let (again, _) = shared_net()?;
    let report = serialize::load_state_dict(&again, &alias, true)?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        again.forward(&x)?.to_vec::<f32>(),
        net.forward(&x)?.to_vec::<f32>()
    );
    Ok(())
}

// ---------------------------------------------------------------- outputs: regular files only

#[test]
fn atomic_writes_refuse_directories_fifos_and_links_to_devices() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let fifo = d.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let to_null = d.join("null.png");
    std::os::unix::fs::symlink("/dev/null", &to_null).unwrap();
    let dangling = d.join("dangling.png");
    std::os::unix::fs::symlink(d.join("missing.png"), &dangling).unwrap();
    for (path, kind) in [
        (&sub, "is a directory"),
        (&fifo, "is a FIFO"),
        (&to_null, "a character device"),
        (&dangling, "a symbolic link to a missing file"),
    ] {
        let e = serialize::write_atomic(path, b"data").unwrap_err();
        assert!(msg(&e).contains(kind), "{}: {e}", path.display());
    }
    // Nothing was replaced and no temporary is left.
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(&to_null)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(sub.is_dir());
    assert_eq!(files_in(d), vec!["dangling.png", "fifo", "null.png", "sub"]);
}

#[test]
fn atomic_writes_go_through_a_link_to_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.txt");
    std::fs::write(&real, "old").unwrap();
    let link = dir.path().join("link.txt");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    serialize::write_atomic(&link, b"new").unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
    assert_eq!(files_in(dir.path()), vec!["link.txt", "real.txt"]);
    // A new file and a regular one are written as before.
    let fresh = dir.path().join("fresh.txt");
    serialize::write_atomic(&fresh, b"1").unwrap();
    serialize::write_atomic(&fresh, b"2").unwrap();
    assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "2");
}

#[test]
fn non_finite_weights_are_named() -> Result<()> {
    let net = tiny_mlp()?;
    assert!(serialize::non_finite_entries(&net).is_empty());
    let w = &net.state_dict()[2].1; // 2.weight [3, 8]
    let mut v = w.to_vec::<f32>();
    v[0] = f32::NAN;
    v[5] = f32::NEG_INFINITY;
    d2l_tensor::no_grad(|| w.copy_(&Tensor::from_vec(v, &[3, 8])?))?;
    assert_eq!(
        serialize::non_finite_entries(&net),
        vec![("2.weight".to_string(), 2)]
    );
    Ok(())
}
