//! `d2l convert`: a PyTorch checkpoint becomes a safetensors file with the same tensors; a
//! malicious pickle is refused and nothing is written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn d2l(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d2l"))
        .args(args)
        .env("D2L_OFFLINE", "1")
        .output()
        .expect("the d2l binary runs")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../d2l-nn/tests/fixtures/pth")
        .join(name)
}

#[test]
fn converts_a_checkpoint_and_refuses_a_malicious_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny.safetensors");
    let o = d2l(&[
        "convert",
        fixture("tiny_zip.pth").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("wrote"), "{text}");
    let got = d2l_nn::serialize::load(&out).unwrap();
    let want = d2l_nn::serialize::load(fixture("tiny.safetensors")).unwrap();
    assert_eq!(got.len(), want.len());
    for ((gn, gt), (wn, wt)) in got.iter().zip(&want) {
        assert_eq!(gn, wn);
        assert_eq!(gt.shape(), wt.shape(), "{gn}");
        assert_eq!(
            gt.to_dtype(d2l_tensor::DType::F64).unwrap().to_vec::<f64>(),
            wt.to_dtype(d2l_tensor::DType::F64).unwrap().to_vec::<f64>(),
            "{gn}"
        );
    }
    let bad = dir.path().join("bad.safetensors");
    let o = d2l(&[
        "convert",
        fixture("malicious.pth").to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("system"), "{err}");
    assert!(!bad.exists());
    let o = d2l(&[
        "convert",
        fixture("tiny_zip.pth").to_str().unwrap(),
        "x.bin",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(".safetensors"));
}
