//! Pascal VOC reader, colour map, random crops, data set and the generated set (D2L 13.9).

use d2l_data::loader::Dataset;
use d2l_tensor::{DType, Generator, Tensor};
use d2l_vision::generated::segmentation::*;
use d2l_vision::image::{read_image, write_png};
use d2l_vision::transforms::{IMAGENET_MEAN, IMAGENET_STD};
use d2l_vision::voc::*;
use std::path::Path;

/// An RGB label `(3, H, W)` from class indices (optionally with raw colours).
fn label_from(colours: &[[u8; 3]], h: usize, w: usize) -> Tensor {
    let n = h * w;
    let mut v = vec![0u8; 3 * n];
    for (p, c) in colours.iter().enumerate() {
        for k in 0..3 {
            v[k * n + p] = c[k];
        }
    }
    Tensor::from_vec(v, &[3, h, w]).unwrap()
}

fn classes_label(h: usize, w: usize, seed: usize) -> (Tensor, Vec<i64>) {
    let classes: Vec<usize> = (0..h * w).map(|p| (p * 7 + seed) % 21).collect();
    let colours: Vec<[u8; 3]> = classes.iter().map(|&c| VOC_COLORMAP[c]).collect();
    (
        label_from(&colours, h, w),
        classes.iter().map(|&c| c as i64).collect(),
    )
}

fn photo(h: usize, w: usize, seed: u8) -> Tensor {
    let v: Vec<u8> = (0..3 * h * w)
        .map(|i| ((i / 3) as u8).wrapping_mul(3).wrapping_add(seed))
        .collect();
    Tensor::from_vec(v, &[3, h, w]).unwrap()
}

fn write_jpeg(img: &Tensor, path: &Path) {
    let s = img.shape().to_vec();
    let (h, w) = (s[1], s[2]);
    let chw = img.to_vec::<u8>();
    let mut hwc = vec![0u8; chw.len()];
    for c in 0..3 {
        for p in 0..h * w {
            hwc[p * 3 + c] = chw[c * h * w + p];
        }
    }
    image::save_buffer_with_format(
        path,
        &hwc,
        w as u32,
        h as u32,
        image::ColorType::Rgb8,
        image::ImageFormat::Jpeg,
    )
    .unwrap();
}

/// A VOC-layout fixture: train ids a (20×30, JPEG), b (12×16, JPEG), c (24×30, PNG image);
/// val id d (20×30). Returns the written labels' class indices by id.
fn fixture(root: &Path) -> Vec<(String, Tensor, Vec<i64>)> {
    let sets = root.join("ImageSets/Segmentation");
    std::fs::create_dir_all(&sets).unwrap();
    std::fs::create_dir_all(root.join("JPEGImages")).unwrap();
    std::fs::create_dir_all(root.join("SegmentationClass")).unwrap();
    std::fs::write(sets.join("train.txt"), "a\nb\n\nc\n").unwrap();
    std::fs::write(sets.join("val.txt"), "d\n").unwrap();
    let mut out = Vec::new();
    for (k, (id, h, w, png)) in [
        ("a", 20, 30, false),
        ("b", 12, 16, false),
        ("c", 24, 30, true),
        ("d", 20, 30, false),
    ]
    .into_iter()
    .enumerate()
    {
        let img = photo(h, w, k as u8 * 40);
        if png {
            write_png(&img, root.join(format!("JPEGImages/{id}.png")), false).unwrap();
        } else {
            write_jpeg(&img, &root.join(format!("JPEGImages/{id}.jpg")));
        }
        let (lab, cls) = classes_label(h, w, k);
        write_png(
            &lab,
            root.join(format!("SegmentationClass/{id}.png")),
            false,
        )
        .unwrap();
        out.push((id.to_string(), lab, cls));
    }
    out
}

#[test]
fn colormap_and_lookups() {
    assert_eq!(VOC_COLORMAP.len(), 21);
    assert_eq!(VOC_CLASSES.len(), 21);
    assert_eq!(VOC_CLASSES[0], "background");
    assert_eq!(VOC_CLASSES[20], "tv/monitor");
    assert_eq!(VOC_COLORMAP[1], [128, 0, 0]);
    assert_eq!(VOC_COLORMAP[20], [0, 64, 128]);
    let table = voc_colormap2label();
    assert_eq!(table.len(), 256 * 256 * 256);
    for (i, c) in VOC_COLORMAP.iter().enumerate() {
        assert_eq!(table[colormap_key(*c)] as usize, i);
        assert_eq!(voc_class_of(*c), i);
    }
    assert_eq!(colormap_key([1, 2, 3]), (256 + 2) * 256 + 3);
    assert_eq!(table[colormap_key(VOC_VOID_COLOR)], 0);
    assert_eq!(table.iter().filter(|&&v| v != 0).count(), 20);

    // Palette colours, the void colour and an arbitrary colour (both map to 0).
    let colours = [
        VOC_COLORMAP[15],
        VOC_VOID_COLOR,
        [1, 2, 3],
        VOC_COLORMAP[7],
        VOC_COLORMAP[0],
        VOC_COLORMAP[20],
    ];
    let idx = voc_label_indices(&label_from(&colours, 2, 3)).unwrap();
    assert_eq!(idx.shape(), &[2, 3]);
    assert_eq!(idx.dtype(), DType::I64);
    assert_eq!(idx.to_vec::<i64>(), vec![15, 0, 0, 7, 0, 20]);
    // Agrees with the table everywhere.
    let (lab, cls) = classes_label(5, 7, 3);
    assert_eq!(voc_label_indices(&lab).unwrap().to_vec::<i64>(), cls);
    // Wrong shapes are errors.
    assert!(voc_label_indices(&Tensor::from_vec(vec![0u8; 4], &[2, 2]).unwrap()).is_err());
}

#[test]
fn reads_fixture_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixture(dir.path());
    let ids = read_voc_ids(dir.path(), true).unwrap();
    assert_eq!(ids, vec!["a", "b", "c"]);
    let (images, labels) = read_voc_images(dir.path(), true).unwrap();
    assert_eq!(images.len(), 3);
    for (k, (id, lab, cls)) in fx.iter().take(3).enumerate() {
        assert_eq!(labels[k].shape(), lab.shape(), "{id}");
        assert_eq!(labels[k].to_vec::<u8>(), lab.to_vec::<u8>(), "{id}");
        assert_eq!(voc_label_indices(&labels[k]).unwrap().to_vec::<i64>(), *cls);
        assert_eq!(images[k].dtype(), DType::U8);
        assert_eq!(images[k].shape(), lab.shape());
    }
    // JPEG images read as the decoder gives them; the PNG one exactly as written.
    let a = read_image(dir.path().join("JPEGImages/a.jpg")).unwrap();
    assert_eq!(images[0].to_vec::<u8>(), a.to_vec::<u8>());
    assert_eq!(images[2].to_vec::<u8>(), photo(24, 30, 80).to_vec::<u8>());
    let (vi, vl) = read_voc_images(dir.path(), false).unwrap();
    assert_eq!((vi.len(), vl.len()), (1, 1));
    assert_eq!(vl[0].to_vec::<u8>(), fx[3].1.to_vec::<u8>());
}

#[test]
fn reader_errors_name_id_and_files() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    // Missing image.
    std::fs::remove_file(dir.path().join("JPEGImages/b.jpg")).unwrap();
    let e = read_voc_images(dir.path(), true).unwrap_err().to_string();
    assert!(
        e.contains("`b`") && e.contains("b.jpg") && e.contains("train.txt"),
        "{e}"
    );
    assert!(e.contains("image"), "{e}");

    // Size mismatch between image and label.
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    write_png(
        &classes_label(10, 10, 0).0,
        dir.path().join("SegmentationClass/d.png"),
        false,
    )
    .unwrap();
    let e = read_voc_images(dir.path(), false).unwrap_err().to_string();
    assert!(
        e.contains("`d`") && e.contains("d.jpg") && e.contains("d.png") && e.contains("10×10"),
        "{e}"
    );

    // Missing label.
    std::fs::remove_file(dir.path().join("SegmentationClass/d.png")).unwrap();
    let e = read_voc_images(dir.path(), false).unwrap_err().to_string();
    assert!(e.contains("label") && e.contains("d.png"), "{e}");

    // Missing id list.
    std::fs::remove_file(dir.path().join("ImageSets/Segmentation/val.txt")).unwrap();
    let e = read_voc_images(dir.path(), false).unwrap_err().to_string();
    assert!(e.contains("val.txt"), "{e}");
}

#[test]
fn rand_crop_is_identical_on_image_and_label() {
    let (h, w) = (9, 13);
    let pos: Vec<i64> = (0..(h * w) as i64).collect();
    let label = Tensor::from_vec(pos.clone(), &[h, w]).unwrap();
    let feat: Vec<f32> = (0..3)
        .flat_map(|c| pos.iter().map(move |&p| (p + 1000 * c) as f32))
        .collect();
    let feature = Tensor::from_vec(feat, &[3, h, w]).unwrap();
    let mut rng = Generator::new(7);
    let mut tops = std::collections::BTreeSet::new();
    let mut lefts = std::collections::BTreeSet::new();
    for _ in 0..400 {
        let (f, l) = voc_rand_crop(&feature, &label, 4, 5, &mut rng).unwrap();
        assert_eq!(f.shape(), &[3, 4, 5]);
        assert_eq!(l.shape(), &[4, 5]);
        let lv = l.to_vec::<i64>();
        let fv = f.to_vec::<f32>();
        let (top, left) = (lv[0] as usize / w, lv[0] as usize % w);
        tops.insert(top);
        lefts.insert(left);
        for y in 0..4 {
            for x in 0..5 {
                let want = ((top + y) * w + left + x) as i64;
                assert_eq!(lv[y * 5 + x], want);
                for c in 0..3 {
                    assert_eq!(fv[c * 20 + y * 5 + x], (want + 1000 * c as i64) as f32);
                }
            }
        }
    }
    // Every offset in 0..=H-h and 0..=W-w occurs.
    assert_eq!(
        tops.into_iter().collect::<Vec<_>>(),
        (0..=5).collect::<Vec<_>>()
    );
    assert_eq!(
        lefts.into_iter().collect::<Vec<_>>(),
        (0..=8).collect::<Vec<_>>()
    );

    // u8 RGB labels are cropped the same way.
    let (lab, _) = classes_label(h, w, 1);
    let img = photo(h, w, 3);
    let (a, b) = voc_rand_crop(&img, &lab, 3, 3, &mut Generator::new(1)).unwrap();
    assert_eq!((a.dtype(), b.dtype()), (DType::U8, DType::U8));
    assert_eq!(b.shape(), &[3, 3, 3]);

    // Full size: no draw, the whole image.
    let (f, l) = voc_rand_crop(&feature, &label, h, w, &mut rng).unwrap();
    assert_eq!(l.to_vec::<i64>(), pos);
    assert_eq!(f.shape(), &[3, h, w]);
    // Too big, empty or mismatched is an error.
    let e = voc_rand_crop(&feature, &label, h + 1, w, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger"), "{e}");
    assert!(voc_rand_crop(&feature, &label, 0, 3, &mut rng).is_err());
    let other = Tensor::from_vec(vec![0i64; 9], &[3, 3]).unwrap();
    assert!(voc_rand_crop(&feature, &other, 2, 2, &mut rng).is_err());
}

#[test]
fn dataset_filters_normalises_and_crops() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixture(dir.path());
    let (images, labels) = read_voc_images(dir.path(), true).unwrap();
    // a 20×30, b 12×16 (dropped), c 24×30.
    let ds = VocSegDataset::new(images.clone(), labels.clone(), (16, 24), 5).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.num_dropped(), 1);
    assert_eq!(ds.crop_size(), (16, 24));

    // Crop larger than every image.
    let e = VocSegDataset::new(images.clone(), labels.clone(), (25, 10), 5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than every"), "{e}");

    // Crop = image size for c: exact normalisation and indices.
    let ds = VocSegDataset::new(images.clone(), labels.clone(), (24, 30), 5).unwrap();
    assert_eq!((ds.len(), ds.num_dropped()), (1, 2));
    let ex = ds.get(0).unwrap();
    assert_eq!(ex.x.shape(), &[3, 24, 30]);
    assert_eq!(ex.x.dtype(), DType::F32);
    assert_eq!(ex.y.shape(), &[24, 30]);
    assert_eq!(ex.y.dtype(), DType::I64);
    assert_eq!(ex.y.to_vec::<i64>(), fx[2].2);
    let raw = images[2].to_vec::<u8>();
    let x = ex.x.to_vec::<f32>();
    for (k, (&v, &r)) in x.iter().zip(&raw).enumerate() {
        let c = k / (24 * 30);
        let want = (r as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        assert!((v - want).abs() < 1e-6, "{k}: {v} vs {want}");
    }

    // Random crops: same (seed, epoch, index) same crop; labels follow the image.
    let ds = VocSegDataset::new(images.clone(), labels.clone(), (8, 8), 11).unwrap();
    assert_eq!(ds.len(), 3);
    let a = ds.get(1).unwrap();
    let b = ds.get(1).unwrap();
    assert_eq!(a.x.to_vec::<f32>(), b.x.to_vec::<f32>());
    assert_eq!(a.y.to_vec::<i64>(), b.y.to_vec::<i64>());
    let mut differs = false;
    for e in 1..10 {
        ds.set_epoch(e);
        assert_eq!(ds.epoch(), e);
        differs |= ds.get(1).unwrap().y.to_vec::<i64>() != a.y.to_vec::<i64>();
    }
    assert!(differs, "new epochs give new crops");
    // Batch equals the per-example results.
    ds.set_epoch(3);
    let batch = ds.get_batch(&[0, 2]).unwrap();
    assert_eq!(batch.x.shape(), &[2, 3, 8, 8]);
    assert_eq!(batch.y.shape(), &[2, 8, 8]);
    let e2 = ds.get(2).unwrap();
    assert_eq!(batch.y.to_vec::<i64>()[64..], e2.y.to_vec::<i64>()[..]);

    // Every crop of example 0's label is a window of the full class map of image a.
    let full = &fx[0].2;
    for e in 0..20 {
        ds.set_epoch(e);
        let y = ds.get(0).unwrap().y.to_vec::<i64>();
        let found = (0..=12).any(|t| {
            (0..=22)
                .any(|l| (0..8).all(|r| (0..8).all(|c| y[r * 8 + c] == full[(t + r) * 30 + l + c])))
        });
        assert!(found);
    }

    // Mismatched inputs.
    assert!(VocSegDataset::new(images.clone(), labels[..2].to_vec(), (8, 8), 0).is_err());
    assert!(VocSegDataset::new(vec![], vec![], (8, 8), 0).is_err());
}

#[test]
fn loaders_drop_last() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let l = load_voc_from(dir.path(), 2, (8, 8)).unwrap();
    assert_eq!(l.train.num_examples(), 3);
    assert_eq!(l.train.len(), 1);
    let batches: Vec<_> = l.train.iter_epoch(0).collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].x.shape(), &[2, 3, 8, 8]);
    assert_eq!(batches[0].y.shape(), &[2, 8, 8]);
    l.set_epoch(4);
    assert_eq!(l.train_set.epoch(), 4);
    assert_eq!(l.val.num_examples(), 1);
    assert_eq!(l.val.len(), 0);
}

#[test]
fn generated_set_is_deterministic_and_labels_match() {
    let spec = SegmentationSetSpec {
        num_train: 5,
        num_val: 2,
        height: 40,
        width: 60,
        max_objects: 4,
        seed: 3,
    };
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let info = generate_segmentation_set(d1.path(), &spec).unwrap();
    assert!(info.generated);
    generate_segmentation_set(d2.path(), &spec).unwrap();
    for sub in ["JPEGImages", "SegmentationClass"] {
        for i in 0..5 {
            let name = format!("{sub}/{}.png", spec.id(true, i));
            assert_eq!(
                std::fs::read(d1.path().join(&name)).unwrap(),
                std::fs::read(d2.path().join(&name)).unwrap(),
                "{name}"
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(d1.path().join("spec.txt")).unwrap(),
        spec.stamp()
    );
    assert_eq!(spec.id(true, 3), "train_00003");
    assert_eq!(
        read_voc_ids(d1.path(), false).unwrap(),
        vec!["val_00000", "val_00001"]
    );

    // Read back: the pixels and classes are exactly the rendered ones.
    let (images, labels) = read_voc_images(d1.path(), true).unwrap();
    let mut seen = [0usize; 4];
    for i in 0..5 {
        let r = render_segmentation_image(&spec, true, i).unwrap();
        assert_eq!(
            images[i].to_vec::<u8>(),
            r.image_tensor().unwrap().to_vec::<u8>()
        );
        let cls = voc_label_indices(&labels[i]).unwrap().to_vec::<i64>();
        assert_eq!(cls, r.class_tensor().unwrap().to_vec::<i64>());
        for &c in &r.classes {
            assert!((c as usize) < GENERATED_CLASSES.len());
            seen[c as usize] += 1;
        }
        // Object pixels are coloured differently from the background's model: at least the
        // label has some object.
        assert!(r.classes.iter().any(|&c| c > 0), "image {i} has an object");
    }
    assert!(seen[0] > 0);
    assert!(seen.iter().filter(|&&n| n > 0).count() >= 3, "{seen:?}");
    // A different seed gives different pictures.
    let other = SegmentationSetSpec {
        seed: 4,
        ..spec.clone()
    };
    assert_ne!(
        render_segmentation_image(&other, true, 0).unwrap().pixels,
        render_segmentation_image(&spec, true, 0).unwrap().pixels
    );

    // ensure_generated reuses a complete set, regenerates after a changed spec.
    assert!(!ensure_generated(d1.path(), &spec).unwrap().generated);
    std::fs::remove_file(d1.path().join("spec.txt")).unwrap();
    assert!(ensure_generated(d1.path(), &spec).unwrap().generated);

    // Loaders over the generated set.
    let l = load_segmentation_set(d1.path(), &spec, 2, (32, 48)).unwrap();
    assert_eq!(l.train.len(), 2);
    let b = l.train.iter_epoch(0).next().unwrap().unwrap();
    assert_eq!(b.x.shape(), &[2, 3, 32, 48]);
    assert_eq!(b.y.shape(), &[2, 32, 48]);

    // Defaults and validation.
    let d = SegmentationSetSpec::default();
    assert_eq!((d.height, d.width), (160, 240));
    assert!(GENERATED_CROP.0 <= d.height && GENERATED_CROP.1 <= d.width);
    assert!(SegmentationSetSpec {
        num_val: 0,
        ..d.clone()
    }
    .validate()
    .is_err());
    assert!(SegmentationSetSpec { height: 8, ..d }.validate().is_err());
}
