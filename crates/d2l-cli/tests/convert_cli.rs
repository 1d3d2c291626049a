//! `d2l convert`: a PyTorch checkpoint becomes a safetensors file with the same tensors; a
//! malicious pickle is refused and nothing is written.

use std::path::PathBuf;

mod common;
use common::{d2l_offline as d2l, stderr, text};

fn fixture(name: &str) -> PathBuf {
    common::fixture("d2l-nn/tests/fixtures/pth").join(name)
}

#[test]
fn converts_a_checkpoint_and_refuses_a_malicious_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny.safetensors");
    // `d2l convert PTH OUT` for a fixture PTH.
    let convert = |pth: &str, out: &str| d2l(&["convert", fixture(pth).to_str().unwrap(), out]);
    let o = convert("tiny_zip.pth", out.to_str().unwrap());
    let text = text(&o);
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
    let o = convert("malicious.pth", bad.to_str().unwrap());
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("system"), "{err}");
    assert!(!bad.exists());
    let o = convert("tiny_zip.pth", "x.bin");
    assert!(!o.status.success());
    assert!(stderr(&o).contains(".safetensors"));
}
