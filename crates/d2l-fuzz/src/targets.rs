//! The fuzz targets: one per reader of untrusted bytes, each reaching it through the
//! public API with the bytes as a file (or in memory, where the API takes bytes).

use crate::seeds;
use std::path::Path;

/// A reader under test.
pub struct Target {
    /// Its name (the corpus folder, the command-line name).
    pub name: &'static str,
    /// What it reads.
    pub about: &'static str,
    /// Runs the reader on `input` inside the work folder `dir`; true when it accepted
    /// the input (an error is the right answer to most mutants).
    pub run: fn(dir: &Path, input: &[u8]) -> bool,
    /// The generated seeds (the corpus in the repository holds them and a few fixtures).
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target.
pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "pth",
            about:
                "PyTorch checkpoints: the zip reader, the legacy reader, the restricted unpickler",
            run: pth,
            seeds: seeds::pth,
        },
        Target {
            name: "pth_pickle",
            about: "the restricted unpickler: the input as data.pkl of a valid zip checkpoint",
            run: pth_pickle,
            seeds: seeds::pickle,
        },
        Target {
            name: "safetensors",
            about: "safetensors files (serialize::load, F16/BF16 conversion)",
            run: safetensors,
            seeds: seeds::safetensors,
        },
        Target {
            name: "idx",
            about: "IDX image and label files, plain and gzip",
            run: idx,
            seeds: seeds::idx,
        },
        Target {
            name: "house_csv",
            about: "the Kaggle house-prices CSV reader and its preprocessing",
            run: house_csv,
            seeds: seeds::house_csv,
        },
        Target {
            name: "banana_labels",
            about: "the banana detection set's label.csv (with one image beside it)",
            run: banana_labels,
            seeds: seeds::banana_labels,
        },
        Target {
            name: "text",
            about: "the Time Machine text reader, tokenizer and vocabulary",
            run: text,
            seeds: seeds::text,
        },
        Target {
            name: "image",
            about: "PNG and JPEG decoding (image::decode_image)",
            run: image,
            seeds: seeds::image,
        },
        Target {
            name: "cifar",
            about: "CIFAR-10 binary batch files",
            run: cifar,
            seeds: seeds::cifar,
        },
        Target {
            name: "image_folder",
            about:
                "an image folder (ImageFolder::open and read_raw) holding the input as its image",
            run: image_folder,
            seeds: seeds::image,
        },
        Target {
            name: "archive",
            about: "data archives: zip, tar and tar.gz extraction",
            run: archive,
            seeds: seeds::archive,
        },
    ]
}

fn put(dir: &Path, name: &str, input: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, input).expect("the work folder is writable");
    p
}

fn pth(dir: &Path, input: &[u8]) -> bool {
    let p = put(dir, "x.pth", input);
    d2l_nn::pth::load_pth(&p).is_ok()
}

/// The input as the `data.pkl` record of `tiny_zip.pth` (zip checksums would stop most
/// mutants of a whole checkpoint before its pickle is read).
fn pth_pickle(dir: &Path, input: &[u8]) -> bool {
    let p = dir.join("x.pth");
    std::fs::write(&p, seeds::tiny_zip_with_pickle(input)).expect("writable");
    d2l_nn::pth::load_pth(&p).is_ok()
}

fn safetensors(dir: &Path, input: &[u8]) -> bool {
    let p = put(dir, "x.safetensors", input);
    d2l_nn::serialize::load(&p).is_ok()
}

fn idx(dir: &Path, input: &[u8]) -> bool {
    let p = put(dir, "x-idx", input);
    let images = d2l_data::idx::read_idx_images(&p).is_ok();
    let labels = d2l_data::idx::read_idx_labels(&p).is_ok();
    images || labels
}

fn house_csv(dir: &Path, input: &[u8]) -> bool {
    let p = put(dir, "train.csv", input);
    match d2l_data::house::read_csv(&p) {
        Ok(train) => {
            // The test file: the training file without its label column.
            let drop_last = |r: &Vec<String>| r[..r.len().saturating_sub(1)].to_vec();
            let test = d2l_data::house::CsvTable {
                header: drop_last(&train.header),
                rows: train.rows.iter().map(drop_last).collect(),
            };
            d2l_data::house::preprocess(&train, &test, &p).is_ok()
        }
        Err(_) => false,
    }
}

fn banana_labels(dir: &Path, input: &[u8]) -> bool {
    let images = dir.join("images");
    if !images.is_dir() {
        std::fs::create_dir_all(&images).expect("the work folder is writable");
        std::fs::write(images.join("0.png"), seeds::tiny_png(8, 8)).expect("writable");
    }
    put(dir, "label.csv", input);
    d2l_vision::bananas::read_detection_dir(dir, Some(4)).is_ok()
}

fn text(dir: &Path, input: &[u8]) -> bool {
    use d2l_data::text::{read_time_machine, tokenize, TokenKind, Vocab};
    let p = put(dir, "timemachine.txt", input);
    match read_time_machine(&p) {
        Ok(lines) => {
            for kind in [TokenKind::Char, TokenKind::Word] {
                let tokens = tokenize(&lines, kind);
                let vocab = Vocab::new(tokens.iter().flatten(), 0, &["<pad>"]);
                let idx = vocab.to_indices(tokens.first().map(Vec::as_slice).unwrap_or(&[]));
                let _ = vocab.to_tokens(&idx);
            }
            true
        }
        Err(_) => false,
    }
}

fn image(_dir: &Path, input: &[u8]) -> bool {
    d2l_vision::image::decode_image(input).is_ok()
}

fn cifar(dir: &Path, input: &[u8]) -> bool {
    let p = put(dir, "data_batch_1.bin", input);
    d2l_vision::cifar::read_cifar10_batch(&p).is_ok()
}

fn image_folder(dir: &Path, input: &[u8]) -> bool {
    let class = dir.join("root").join("hotdog");
    std::fs::create_dir_all(&class).expect("the work folder is writable");
    std::fs::write(class.join("0.png"), input).expect("writable");
    match d2l_vision::folder::ImageFolder::open(dir.join("root")) {
        Ok(f) => f.read_raw(0).is_ok(),
        Err(_) => false,
    }
}

fn archive(dir: &Path, input: &[u8]) -> bool {
    let p = put(dir, "data.archive", input);
    let dest = dir.join("out");
    let ok = d2l_data::archive::extract(&p, &dest).is_ok();
    let _ = std::fs::remove_dir_all(&dest);
    ok
}
