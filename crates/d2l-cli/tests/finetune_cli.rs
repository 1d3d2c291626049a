//! `d2l finetune`: loads torchvision-format ResNet-18 weights, swaps the head for the
//! folder's classes and trains with the 13.2 pipeline; bad input gives one-line errors.

use std::path::{Path, PathBuf};

mod common;
use common::*;

/// A torchvision-format ResNet-18 checkpoint (every tensor a view of one small storage).
fn weights() -> PathBuf {
    fixture("d2l-models/tests/fixtures/torchvision/resnet18_strided.pth")
}

/// `root/{train,test}/{hotdog,not-hotdog}/*.png`, 40×48 images of two colours.
fn image_folder(root: &Path) {
    for split in ["train", "test"] {
        for (c, class) in ["hotdog", "not-hotdog"].iter().enumerate() {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..3u8 {
                let mut px = vec![0u8; 3 * 40 * 48];
                for (k, p) in px.iter_mut().enumerate() {
                    *p = if k % 3 == c {
                        200
                    } else {
                        30 + i * 10 + (k % 7) as u8
                    };
                }
                image::save_buffer(
                    dir.join(format!("{i}.png")),
                    &px,
                    48,
                    40,
                    image::ColorType::Rgb8,
                )
                .unwrap();
            }
        }
    }
}

#[test]
fn finetunes_from_a_torchvision_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    image_folder(&data);
    let run = dir.path().join("run");
    let w = weights();
    let common = [
        "--dataset",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "3",
        "--image-size",
        "32",
        "--test-resize",
        "36",
        "--quiet",
        "--json",
    ];
    // `d2l finetune resnet18 ARGS… --out OUT` with the settings above.
    let finetune = |args: &[&str], out: &Path| {
        let out = ["--out", out.to_str().unwrap()];
        d2l(
            &[&["finetune", "resnet18"][..], args, &out, &common].concat(),
            dir.path(),
        )
    };
    // A vanishing learning rate: the body must still hold the checkpoint's values after a step.
    let o = finetune(&["--weights", w.to_str().unwrap(), "--lr", "1e-30"], &run);
    succeeded(&o);
    let j = last_json(&o);
    // The test split has 6 images (3 per class): the accuracy is a count out of 6.
    let acc = j["test_acc"].as_f64().unwrap();
    let hits = acc * 6.0;
    assert!(
        (0.0..=1.0).contains(&acc) && (hits - hits.round()).abs() < 1e-6,
        "test accuracy {acc} is not a count out of the 6 test images: {j}"
    );
    let saved: std::collections::HashMap<String, d2l_tensor::Tensor> =
        d2l_nn::serialize::load(run.join("model.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let pth: std::collections::HashMap<String, d2l_tensor::Tensor> =
        d2l_nn::pth::load_pth(&w).unwrap().into_iter().collect();
    for name in [
        "conv1.weight",
        "layer4.1.conv2.weight",
        "layer2.0.downsample.0.weight",
    ] {
        assert_eq!(
            saved[name].to_vec::<f32>(),
            pth[name].to_vec::<f32>(),
            "{name}"
        );
    }
    // The head was replaced for the folder's two classes.
    assert_eq!(saved["fc.weight"].shape(), &[2, 512]);

    // From scratch: one learning rate, no weights.
    let run2 = dir.path().join("run2");
    succeeded(&finetune(&["--scratch"], &run2));

    // Bad input.
    let c = dir.path();
    let ds = data.to_str().unwrap();
    let w = w.to_str().unwrap();
    let nope = c.join("nope");
    let wrong = fixture("d2l-nn/tests/fixtures/pth/tiny_zip.pth");
    fail_cases(
        &[
            (&["finetune", "resnet18", "--dataset", ds], "--scratch"),
            (
                &[
                    "finetune",
                    "resnet18",
                    "--scratch",
                    "--weights",
                    w,
                    "--dataset",
                    ds,
                ],
                "not both",
            ),
            (
                &["finetune", "vgg11", "--scratch", "--dataset", ds],
                "resnet18",
            ),
            (
                &[
                    "finetune",
                    "resnet18",
                    "--scratch",
                    "--dataset",
                    nope.to_str().unwrap(),
                ],
                "train/ and test/",
            ),
            (
                &[
                    "finetune",
                    "resnet18",
                    "--scratch",
                    "--dataset",
                    ds,
                    "--head-lr-mult",
                    "0",
                ],
                "--head-lr-mult",
            ),
            (
                &[
                    "finetune",
                    "resnet18",
                    "--weights",
                    wrong.to_str().unwrap(),
                    "--dataset",
                    ds,
                ],
                "conv1.weight",
            ),
            // Offline without the hot-dog zip: the error says where it was looked for.
            (&["finetune", "resnet18", "--scratch"], "hotdog"),
        ],
        c,
    );
}
