//! D2L 13.6: the banana reader on a fixture in the real layout, the loaders, the generated
//! detection set (determinism, tight boxes, padding) and every kind of bad input.

use d2l_data::hub::DataHub;
use d2l_data::loader::Dataset;
use d2l_tensor::{DType, Tensor};
use d2l_vision::bananas::*;
use d2l_vision::image::{read_image, write_png};
use std::path::Path;

/// A deterministic `uint8` (3, h, w) test image.
fn test_image(seed: usize, h: usize, w: usize) -> Tensor {
    let data: Vec<u8> = (0..3 * h * w)
        .map(|i| ((i * 7 + seed * 31 + i / 97) % 251) as u8)
        .collect();
    Tensor::from_vec(data, &[3, h, w]).unwrap()
}

/// Rows of (img_name, label, xmin, ymin, xmax, ymax) for the fixture's training split.
const TRAIN_ROWS: [(&str, i32, i32, i32, i32, i32); 5] = [
    ("0.png", 0, 104, 20, 143, 58),
    ("1.png", 0, 68, 175, 118, 223),
    ("2.png", 0, 163, 173, 218, 239),
    ("3.png", 0, 0, 0, 256, 256),
    ("4.png", 0, 41, 1, 94, 33),
];

fn write_split(dir: &Path, rows: &[(&str, i32, i32, i32, i32, i32)], seed0: usize) {
    let mut csv = String::from("img_name,label,xmin,ymin,xmax,ymax\n");
    for (k, r) in rows.iter().enumerate() {
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            r.0, r.1, r.2, r.3, r.4, r.5
        ));
        write_png(
            &test_image(seed0 + k, 256, 256),
            dir.join("images").join(r.0),
            false,
        )
        .unwrap();
    }
    std::fs::write(dir.join("label.csv"), csv).unwrap();
}

/// A banana folder in the real layout: 5 training and 3 validation images.
fn banana_fixture(root: &Path) {
    write_split(&root.join("bananas_train"), &TRAIN_ROWS, 0);
    let val = [
        ("0.png", 0, 10, 20, 30, 40),
        ("1.png", 0, 50, 60, 70, 80),
        ("2.png", 0, 200, 100, 250, 150),
    ];
    write_split(&root.join("bananas_val"), &val, 100);
}

#[test]
fn banana_fixture_reads_back_targets_and_pixels() {
    let dir = tempfile::tempdir().unwrap();
    banana_fixture(dir.path());
    let (images, targets) = read_bananas(dir.path(), true).unwrap();
    assert_eq!(images.len(), 5);
    assert_eq!(targets.shape(), &[5, 1, 5]);
    assert_eq!(targets.dtype(), DType::F32);
    let t = targets.to_vec::<f32>();
    for (i, r) in TRAIN_ROWS.iter().enumerate() {
        let want = [
            r.1 as f32,
            r.2 as f32 / 256.0,
            r.3 as f32 / 256.0,
            r.4 as f32 / 256.0,
            r.5 as f32 / 256.0,
        ];
        assert_eq!(&t[i * 5..i * 5 + 5], &want, "row {i}");
        assert_eq!(images[i].shape(), &[3, 256, 256]);
        assert_eq!(images[i].dtype(), DType::U8);
        assert_eq!(
            images[i].to_vec::<u8>(),
            test_image(i, 256, 256).to_vec::<u8>()
        );
    }
    let (vimages, vtargets) = read_bananas(dir.path(), false).unwrap();
    assert_eq!(vimages.len(), 3);
    assert_eq!(vtargets.shape(), &[3, 1, 5]);
    assert_eq!(
        vimages[2].to_vec::<u8>(),
        test_image(102, 256, 256).to_vec::<u8>()
    );

    // The data set: f32 images in 0–255 and (1, 5) labels.
    let ds = BananasDataset::bananas(dir.path(), true).unwrap();
    assert_eq!(ds.len(), 5);
    let ex = ds.get(3).unwrap();
    assert_eq!(ex.x.shape(), &[3, 256, 256]);
    assert_eq!(ex.x.dtype(), DType::F32);
    let xs = ex.x.to_vec::<f32>();
    let raw = test_image(3, 256, 256).to_vec::<u8>();
    assert!(xs.iter().zip(&raw).all(|(&a, &b)| a == b as f32));
    assert_eq!(ex.y.shape(), &[1, 5]);
    assert_eq!(ex.y.to_vec::<f32>(), vec![0.0, 0.0, 0.0, 1.0, 1.0]);
    assert!(ds.get(5).is_err());
}

#[test]
fn jpeg_images_are_read_too() {
    let dir = tempfile::tempdir().unwrap();
    banana_fixture(dir.path());
    // Replace one training image by a JPEG of a flat colour (decodes almost exactly).
    let split = dir.path().join("bananas_train");
    let flat = image::RgbImage::from_pixel(256, 256, image::Rgb([200, 120, 40]));
    flat.save_with_format(split.join("images/j.jpg"), image::ImageFormat::Jpeg)
        .unwrap();
    let csv = std::fs::read_to_string(split.join("label.csv")).unwrap();
    std::fs::write(split.join("label.csv"), csv.replace("1.png,", "j.jpg,")).unwrap();
    let (images, _) = read_bananas(dir.path(), true).unwrap();
    let px = images[1].to_vec::<u8>();
    assert!((px[0] as i32 - 200).abs() <= 3 && (px[256 * 256] as i32 - 120).abs() <= 3);
}

#[test]
fn banana_loaders_give_book_shapes() {
    let dir = tempfile::tempdir().unwrap();
    banana_fixture(dir.path());
    let (train, val) = load_bananas_from(dir.path(), 2).unwrap();
    assert_eq!(train.num_examples(), 5);
    assert_eq!(val.num_examples(), 3);
    let batches: Vec<_> = train.iter().map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].x.shape(), &[2, 3, 256, 256]);
    assert_eq!(batches[0].x.dtype(), DType::F32);
    assert_eq!(batches[0].y.shape(), &[2, 1, 5]);
    assert_eq!(batches[2].y.shape(), &[1, 1, 5]);
    // Shuffled: every example once per epoch.
    let mut firsts: Vec<u32> = batches
        .iter()
        .flat_map(|b| {
            let y = b.y.to_vec::<f32>();
            y.chunks(5)
                .map(|r| (r[1] * 256.0) as u32)
                .collect::<Vec<_>>()
        })
        .collect();
    firsts.sort();
    assert_eq!(firsts, vec![0, 41, 68, 104, 163]);
    // Validation in file order.
    let vb = val.iter().next().unwrap().unwrap();
    assert_eq!(vb.y.to_vec::<f32>()[1], 10.0 / 256.0);
}

#[test]
fn load_bananas_uses_the_hub_and_a_folder_unpacked_by_hand() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    banana_fixture(&data.path().join("banana-detection/banana-detection"));
    let hub = DataHub::new(cache.path())
        .with_data_dir(data.path())
        .offline(true)
        .quiet();
    let (train, val) = load_bananas(&hub, 4).unwrap();
    assert_eq!((train.num_examples(), val.num_examples()), (5, 3));
    let b = val.iter().next().unwrap().unwrap();
    assert_eq!(b.x.shape(), &[3, 3, 256, 256]);
    assert_eq!(b.y.shape(), &[3, 1, 5]);

    // Nothing on disk and offline: the hub's error, naming the file.
    let empty = tempfile::tempdir().unwrap();
    let hub = DataHub::new(empty.path()).offline(true).quiet();
    let e = load_bananas(&hub, 4).unwrap_err().to_string();
    assert!(e.contains("banana-detection.zip"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

/// Writes a training split with this label text (and images 0.png, 1.png) and returns the
/// error message of reading it.
fn read_error(label: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("bananas_train");
    for k in 0..2 {
        write_png(
            &test_image(k, 256, 256),
            split.join(format!("images/{k}.png")),
            false,
        )
        .unwrap();
    }
    std::fs::write(split.join("label.csv"), label).unwrap();
    match read_bananas(dir.path(), true) {
        Ok(_) => panic!("expected an error for label file:\n{label}"),
        Err(e) => e.to_string(),
    }
}

const H: &str = "img_name,label,xmin,ymin,xmax,ymax\n";

#[test]
fn bad_label_files_are_clear_errors() {
    let cases: Vec<(String, Vec<&str>)> = vec![
        (String::new(), vec!["label.csv", "empty"]),
        ("\n\n".into(), vec!["label.csv", "empty"]),
        (H.into(), vec!["label.csv", "only its header"]),
        (
            "name,label,a,b,c,d\n0.png,0,1,2,3,4\n".into(),
            vec!["label.csv", "line 1", "expected the header"],
        ),
        (
            format!("{H}0.png,0,1,2,3,4\n1.png,0,1,2,3\n"),
            vec!["label.csv", "line 3", "expected 6 fields", "found 5"],
        ),
        (
            format!("{H}0.png,0,1,2,3,4,5\n"),
            vec!["label.csv", "line 2", "expected 6 fields", "found 7"],
        ),
        (
            format!("{H}0.png,0,1,abc,3,4\n"),
            vec!["label.csv", "line 2", "`ymin`", "not a number", "abc"],
        ),
        (
            format!("{H}0.png,zero,1,2,3,4\n"),
            vec!["label.csv", "line 2", "`label`", "not a number"],
        ),
        (
            format!("{H}0.png,0,1,2,NaN,4\n"),
            vec!["label.csv", "line 2", "`xmax`", "not a number"],
        ),
        (
            format!("{H}0.png,-1,1,2,3,4\n"),
            vec!["label.csv", "line 2", "class label"],
        ),
        (
            format!("{H}0.png,0.5,1,2,3,4\n"),
            vec!["label.csv", "line 2", "class label"],
        ),
        (
            format!("{H}0.png,0,1,2,3,4\n1.png,0,50,2,40,4\n"),
            vec!["label.csv", "line 3", "inverted", "xmin < xmax"],
        ),
        (
            format!("{H}0.png,0,1,20,3,10\n"),
            vec!["label.csv", "line 2", "inverted"],
        ),
        (
            format!("{H}0.png,0,-3,2,30,40\n"),
            vec!["label.csv", "line 2", "negative"],
        ),
        (
            format!("{H}0.png,0,1,2,3,4\n1.png,0,10,20,257,40\n"),
            vec!["label.csv", "line 3", "outside", "256×256", "1.png"],
        ),
        (
            format!("{H}0.png,0,10,20,30,300\n"),
            vec!["label.csv", "line 2", "outside"],
        ),
        (
            format!("{H}0.png,0,1,2,3,4\nmissing.png,0,1,2,3,4\n"),
            vec!["label.csv", "line 3", "missing.png", "not found"],
        ),
        (
            format!("{H}../0.png,0,1,2,3,4\n"),
            vec!["label.csv", "line 2", "not a plain image file name"],
        ),
        (
            format!("{H}0.png,0,1,2,3,4\n0.png,0,10,20,30,40\n"),
            vec!["label.csv", "line 3", "2 objects", "more than the 1"],
        ),
    ];
    for (label, wants) in cases {
        let e = read_error(&label);
        for w in wants {
            assert!(
                e.contains(w),
                "label file {label:?}: error `{e}` lacks `{w}`"
            );
        }
    }
}

#[test]
fn missing_label_file_corrupt_image_and_mixed_sizes_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = read_bananas(dir.path(), false).unwrap_err().to_string();
    assert!(e.contains("bananas_val") && e.contains("label.csv"), "{e}");

    let split = dir.path().join("bananas_train");
    std::fs::create_dir_all(split.join("images")).unwrap();
    std::fs::write(split.join("images/0.png"), b"not a png at all").unwrap();
    std::fs::write(split.join("label.csv"), format!("{H}0.png,0,1,2,3,4\n")).unwrap();
    let e = read_bananas(dir.path(), true).unwrap_err().to_string();
    assert!(
        e.contains("label.csv") && e.contains("line 2") && e.contains("cannot read image"),
        "{e}"
    );

    write_png(&test_image(0, 256, 256), split.join("images/0.png"), false).unwrap();
    write_png(&test_image(1, 128, 256), split.join("images/1.png"), false).unwrap();
    std::fs::write(
        split.join("label.csv"),
        format!("{H}0.png,0,1,2,3,4\n1.png,0,1,2,3,4\n"),
    )
    .unwrap();
    let e = read_bananas(dir.path(), true).unwrap_err().to_string();
    assert!(e.contains("line 3") && e.contains("one size"), "{e}");
}

#[test]
fn crlf_and_blank_lines_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    banana_fixture(dir.path());
    let label = dir.path().join("bananas_val/label.csv");
    let text = std::fs::read_to_string(&label)
        .unwrap()
        .replace('\n', "\r\n")
        + "\r\n\r\n";
    std::fs::write(&label, text).unwrap();
    let (images, targets) = read_bananas(dir.path(), false).unwrap();
    assert_eq!(images.len(), 3);
    assert_eq!(targets.shape(), &[3, 1, 5]);
}

// ---------------------------------------------------------------------------------------
// The generated set
// ---------------------------------------------------------------------------------------

fn small_spec(num_classes: usize, max_objects: usize) -> DetectionSetSpec {
    DetectionSetSpec {
        num_train: 24,
        num_val: 6,
        num_classes,
        max_objects,
        seed: 42,
        ..DetectionSetSpec::default()
    }
}

#[test]
fn generated_set_is_deterministic_and_reuses_a_complete_set() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let spec = small_spec(3, 3);
    let ia = generate_detection_set(a.path(), &spec).unwrap();
    let ib = ensure_generated(b.path(), &spec).unwrap();
    assert!(ia.generated && ib.generated);
    assert_eq!((ia.num_train, ia.num_val), (24, 6));
    assert_eq!(ia.train_objects, ib.train_objects);
    for f in [
        "train/label.csv",
        "val/label.csv",
        "train/images/000000.png",
        "val/images/000005.png",
        "spec.txt",
    ] {
        let x = std::fs::read(a.path().join(f)).unwrap();
        let y = std::fs::read(b.path().join(f)).unwrap();
        assert!(x == y, "{f} differs between two runs with the same seed");
    }
    // A different seed gives different images.
    let c = tempfile::tempdir().unwrap();
    generate_detection_set(
        c.path(),
        &DetectionSetSpec {
            seed: 43,
            ..spec.clone()
        },
    )
    .unwrap();
    assert_ne!(
        std::fs::read(a.path().join("train/label.csv")).unwrap(),
        std::fs::read(c.path().join("train/label.csv")).unwrap()
    );

    // Reused when complete and equal; regenerated when the spec differs or the stamp is gone.
    let again = ensure_generated(a.path(), &spec).unwrap();
    assert!(!again.generated);
    assert_eq!(again.train_objects, ia.train_objects);
    let fewer = DetectionSetSpec {
        num_train: 10,
        ..spec.clone()
    };
    let r = ensure_generated(a.path(), &fewer).unwrap();
    assert!(r.generated);
    assert!(
        !a.path().join("train/images/000010.png").exists(),
        "stale images removed"
    );
    std::fs::remove_file(a.path().join("spec.txt")).unwrap();
    assert!(ensure_generated(a.path(), &fewer).unwrap().generated);
    let (imgs, _) = read_detection_set(a.path(), true, 3).unwrap();
    assert_eq!(imgs.len(), 10);
}

#[test]
fn generated_boxes_are_tight_and_inside_the_image() {
    let spec = small_spec(3, 3);
    let mut classes_seen = [0usize; 3];
    let mut multi = 0;
    for is_train in [true, false] {
        let n = if is_train {
            spec.num_train
        } else {
            spec.num_val
        };
        for i in 0..n {
            let r = render_detection_image(&spec, is_train, i).unwrap();
            let s = r.size;
            assert!(!r.objects.is_empty() && r.objects.len() <= 3);
            if r.objects.len() > 1 {
                multi += 1;
            }
            for (k, o) in r.objects.iter().enumerate() {
                classes_seen[o.class] += 1;
                assert!(o.xmin < o.xmax && o.ymin < o.ymax && o.xmax <= s && o.ymax <= s);
                // Tight: the box is exactly the extent of the pixels owned by the object.
                let id = k as u8 + 1;
                let (mut x0, mut y0, mut x1, mut y1) = (s, s, 0, 0);
                let mut count = 0;
                for y in 0..s {
                    for x in 0..s {
                        if r.owner[y * s + x] == id {
                            x0 = x0.min(x);
                            y0 = y0.min(y);
                            x1 = x1.max(x + 1);
                            y1 = y1.max(y + 1);
                            count += 1;
                        }
                    }
                }
                assert_eq!((o.xmin, o.ymin, o.xmax, o.ymax), (x0, y0, x1, y1));
                let side = (o.xmax - o.xmin).max(o.ymax - o.ymin);
                assert!((10..=120).contains(&side), "object side {side}");
                // The object's colour: most of its pixels are dominated by the class hue.
                let mut hue_ok = 0;
                for p in 0..s * s {
                    if r.owner[p] != id {
                        continue;
                    }
                    let [cr, cg, cb] = [r.pixels[3 * p], r.pixels[3 * p + 1], r.pixels[3 * p + 2]]
                        .map(|v| v as i32);
                    let ok = match o.class {
                        0 => cr > cb + 60 && cg > cb + 40,
                        1 => cb > cr + 50 && cb > cg,
                        _ => cr > cg + 60 && cr > cb + 60,
                    };
                    hue_ok += ok as usize;
                }
                assert!(
                    hue_ok * 10 >= count * 8,
                    "class {} colour: {hue_ok}/{count}",
                    o.class
                );
            }
            for a in 0..r.objects.len() {
                for b in a + 1..r.objects.len() {
                    let (p, q) = (r.objects[a], r.objects[b]);
                    let iw = p.xmax.min(q.xmax).saturating_sub(p.xmin.max(q.xmin));
                    let ih = p.ymax.min(q.ymax).saturating_sub(p.ymin.max(q.ymin));
                    let inter = (iw * ih) as f64;
                    let area = |o: DetectionObject| ((o.xmax - o.xmin) * (o.ymax - o.ymin)) as f64;
                    assert!(inter / (area(p) + area(q) - inter) < 0.3);
                }
            }
        }
    }
    assert!(classes_seen.iter().all(|&c| c > 0), "{classes_seen:?}");
    assert!(multi > 0);
}

#[test]
fn generated_set_reads_back_with_padding() {
    let dir = tempfile::tempdir().unwrap();
    let spec = small_spec(3, 3);
    generate_detection_set(dir.path(), &spec).unwrap();
    let (images, targets) = read_detection_set(dir.path(), true, 3).unwrap();
    assert_eq!(images.len(), 24);
    assert_eq!(targets.shape(), &[24, 3, 5]);
    let t = targets.to_vec::<f32>();
    let mut padded = 0;
    for i in 0..24 {
        let r = render_detection_image(&spec, true, i).unwrap();
        // The PNG holds exactly the rendered pixels.
        assert_eq!(
            images[i].to_vec::<u8>(),
            r.to_tensor().unwrap().to_vec::<u8>()
        );
        for j in 0..3 {
            let row = &t[(i * 3 + j) * 5..(i * 3 + j + 1) * 5];
            match r.objects.get(j) {
                Some(o) => assert_eq!(
                    row,
                    &[
                        o.class as f32,
                        o.xmin as f32 / 256.0,
                        o.ymin as f32 / 256.0,
                        o.xmax as f32 / 256.0,
                        o.ymax as f32 / 256.0
                    ]
                ),
                None => {
                    assert_eq!(row, &[-1.0; 5]);
                    padded += 1;
                }
            }
        }
    }
    assert!(padded > 0);
    // Too little room for the objects is an error naming the line.
    let e = read_detection_set(dir.path(), true, 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("label.csv") && e.contains("more than the 1"),
        "{e}"
    );

    let (train, val) = load_detection_set(dir.path(), &spec, 8).unwrap();
    let b = train.iter().next().unwrap().unwrap();
    assert_eq!(b.x.shape(), &[8, 3, 256, 256]);
    assert_eq!(b.y.shape(), &[8, 3, 5]);
    assert_eq!(val.num_examples(), 6);
}

#[test]
fn default_spec_is_one_banana_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DetectionSetSpec {
        num_train: 8,
        num_val: 2,
        ..DetectionSetSpec::default()
    };
    assert_eq!(
        (spec.image_size, spec.num_classes, spec.max_objects),
        (256, 1, 1)
    );
    let info = ensure_generated(dir.path(), &spec).unwrap();
    assert_eq!((info.train_objects, info.val_objects), (8, 2));
    let label = std::fs::read_to_string(dir.path().join("train/label.csv")).unwrap();
    assert!(label.starts_with("img_name,label,xmin,ymin,xmax,ymax\n000000.png,0,"));
    let ds = DetectionDataset::generated(dir.path(), true, 1).unwrap();
    assert_eq!(ds.len(), 8);
    assert_eq!(ds.get(0).unwrap().y.shape(), &[1, 5]);
    assert!(std::fs::read_to_string(dir.path().join("spec.txt"))
        .unwrap()
        .contains("generator_version="));
}

#[test]
fn bad_specs_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for (spec, want) in [
        (
            DetectionSetSpec {
                num_classes: 0,
                ..Default::default()
            },
            "num_classes",
        ),
        (
            DetectionSetSpec {
                num_classes: 5,
                ..Default::default()
            },
            "num_classes",
        ),
        (
            DetectionSetSpec {
                max_objects: 0,
                ..Default::default()
            },
            "max_objects",
        ),
        (
            DetectionSetSpec {
                num_val: 0,
                ..Default::default()
            },
            "validation",
        ),
        (
            DetectionSetSpec {
                image_size: 64,
                ..Default::default()
            },
            "max_object_size <= image_size",
        ),
    ] {
        let e = generate_detection_set(dir.path(), &spec)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn banana_targets_match_read_image() {
    // read_bananas' images are exactly what read_image gives for each file.
    let dir = tempfile::tempdir().unwrap();
    banana_fixture(dir.path());
    let (images, _) = read_bananas(dir.path(), true).unwrap();
    let direct = read_image(dir.path().join("bananas_train/images/4.png")).unwrap();
    assert_eq!(images[4].to_vec::<u8>(), direct.to_vec::<u8>());
}
