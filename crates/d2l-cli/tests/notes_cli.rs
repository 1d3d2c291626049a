//! The commands of issue 25 ("every point of the notes shown") from the command line:
//! each runs, writes its figures and prints its numbers; bad input is one line.

use std::path::{Path, PathBuf};

mod common;
use common::{d2l_offline as d2l, ok, stderr};

fn err(args: &[&str]) -> String {
    let o = d2l(args);
    assert!(!o.status.success(), "{args:?} should fail");
    let e = stderr(&o);
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    assert!(!e.contains("panicked"), "{e}");
    e
}

#[test]
fn generated_data_demos_run_and_draw() {
    let dir = tempfile::tempdir().unwrap();
    let out = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let s = ok(&["loss-demo", "--quiet", "--out", &out("loss")]);
    assert!(s.contains("L1 (absolute)") && s.contains("Huber"), "{s}");
    assert!(dir.path().join("loss/robust-loss.svg").exists());
    let s = ok(&["mlp-demo", "--quiet", "--out", &out("mlp")]);
    assert!(s.contains("MLP, constant init 0.5"), "{s}");
    let s = ok(&["prelim-demo", "--out", &out("prelim")]);
    assert!(s.contains("h=0.10000, numerical limit=2.30000"), "{s}");
    assert!(dir.path().join("prelim/tangent.png").exists());
    let s = ok(&[
        "init-demo",
        "--activation",
        "sigmoid",
        "--quiet",
        "--out",
        &out("init"),
    ]);
    assert!(
        s.contains("gradient norm") && s.contains("layer 1 / layer 20"),
        "{s}"
    );
    assert!(dir.path().join("init/grad-norms.png").exists());
    let s = ok(&["memory-demo", "mlp", "--batch-size", "64"]);
    assert!(s.contains("training needs"), "{s}");
    let e = err(&["init-demo", "--activation", "swish"]);
    assert!(e.contains("relu, sigmoid or tanh"), "{e}");
    err(&["poly-demo", "--sizes", "10,0"]);
    err(&["memory-demo", "linreg"]);
}

#[test]
fn phm_models_are_in_the_zoo_with_their_parameter_counts() {
    let s = ok(&["summary", "mlp-phm-4"]);
    // 4³ + 784·256/4 + 256 (PHM layer) + 256·10 + 10 = 53,066; the dense MLP has 203,530.
    assert!(s.contains("53066") || s.contains("53,066"), "{s}");
    assert!(ok(&["models"]).contains("mlp-phm-8"));
}

fn catdog() -> Option<PathBuf> {
    let Some(data) = common::shared_data("d2l_images/catdog.jpg") else {
        eprintln!("skipping: ../shared/data/d2l_images/catdog.jpg not found");
        return None;
    };
    Some(data.join("d2l_images/catdog.jpg"))
}

#[test]
fn anchors_draws_the_labelling_and_nms_examples() {
    let Some(img) = catdog() else { return };
    let dir = tempfile::tempdir().unwrap();
    let img = img.to_str().unwrap();
    // `d2l anchors IMG --example EXAMPLE --out OUT`.
    let example = |name: &str, out: &Path| {
        ok(&[
            "anchors",
            img,
            "--example",
            name,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let lab = dir.path().join("labels.png");
    let s = example("labelling", &lab);
    // The book's assignment: anchors 0 and 3 background, 1 dog, 2 and 4 cat.
    assert!(s.contains("classes [0, 1, 2, 0, 2]"), "{s}");
    assert!(lab.exists());
    let nms = dir.path().join("nms.png");
    let s = example("nms", &nms);
    assert!(s.contains("[ 0, 0.90, 0.10, 0.08, 0.52, 0.92]"), "{s}");
    assert!(s.contains("[ 1, 0.90, 0.55, 0.20, 0.90, 0.88]"), "{s}");
    assert!(nms.exists() && dir.path().join("nms-after-nms.png").exists());
    err(&["anchors", img, "--example", "boxes"]);
}

#[test]
fn eval_reads_a_pytorch_checkpoint_directly() {
    let pth = common::fixture("d2l-nn/tests/fixtures/pth/tiny_zip.pth");
    // Not an MLP state dict: the answer is a name mismatch from the checkpoint reader,
    // not "not a valid safetensors file".
    let e = err(&[
        "eval",
        "mlp",
        "--weights",
        pth.to_str().unwrap(),
        "--dataset",
        "shapes",
        "--test-limit",
        "10",
    ]);
    assert!(
        e.contains("does not match") && !e.contains("safetensors"),
        "{e}"
    );
}
