//! Images in and out: every PNG colour type and bit depth and JPEG decode to `uint8`
//! `(3, H, W)`; tensors write back as PNG (atomically); broken files are clear errors.

use d2l_tensor::{DType, Tensor};
use d2l_vision::image::{decode_image, read_image, read_image_f32, write_png};
use std::path::Path;

fn save(path: &Path, bytes: &[u8], w: u32, h: u32, color: image::ColorType) {
    image::save_buffer(path, bytes, w, h, color).unwrap();
}

#[test]
fn grey_rgba_and_16_bit_pngs_become_rgb_u8() {
    let dir = tempfile::tempdir().unwrap();
    // 2×3 grey: replicated into three channels.
    let grey = dir.path().join("grey.png");
    save(&grey, &[0, 10, 20, 30, 40, 250], 3, 2, image::ColorType::L8);
    let t = read_image(&grey).unwrap();
    assert_eq!(t.shape(), &[3, 2, 3]);
    assert_eq!(t.dtype(), DType::U8);
    let v = t.to_vec::<u8>();
    assert_eq!(&v[..6], &[0, 10, 20, 30, 40, 250]);
    assert_eq!(&v[6..12], &v[..6]);
    // RGBA: alpha dropped, channels first.
    let rgba = dir.path().join("rgba.png");
    save(
        &rgba,
        &[1, 2, 3, 255, 4, 5, 6, 0],
        2,
        1,
        image::ColorType::Rgba8,
    );
    assert_eq!(
        read_image(&rgba).unwrap().to_vec::<u8>(),
        vec![1, 4, 2, 5, 3, 6]
    );
    // 16-bit RGB: scaled to 8 bits (65535 → 255, 257·k → k).
    let deep = dir.path().join("deep.png");
    let px: Vec<u16> = vec![65535, 257 * 7, 0];
    let bytes: Vec<u8> = px.iter().flat_map(|v| v.to_ne_bytes()).collect();
    save(&deep, &bytes, 1, 1, image::ColorType::Rgb16);
    assert_eq!(read_image(&deep).unwrap().to_vec::<u8>(), vec![255, 7, 0]);
    // Grey + alpha, 16-bit grey.
    let la = dir.path().join("la.png");
    save(&la, &[9, 128], 1, 1, image::ColorType::La8);
    assert_eq!(read_image(&la).unwrap().to_vec::<u8>(), vec![9, 9, 9]);
    let l16 = dir.path().join("l16.png");
    save(
        &l16,
        &(257u16 * 200).to_ne_bytes(),
        1,
        1,
        image::ColorType::L16,
    );
    assert_eq!(
        read_image(&l16).unwrap().to_vec::<u8>(),
        vec![200, 200, 200]
    );
}

#[test]
fn the_book_jpegs_decode_at_their_sizes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/d2l_images");
    assert!(
        dir.is_dir(),
        "../shared/data must sit beside the repository"
    );
    let catdog = read_image(dir.join("catdog.jpg")).unwrap();
    assert_eq!(catdog.shape(), &[3, 561, 728]);
    let banana = read_image(dir.join("banana.jpg")).unwrap();
    assert_eq!(banana.shape(), &[3, 256, 256]);
    let f = read_image_f32(dir.join("banana.jpg")).unwrap();
    assert_eq!(f.dtype(), DType::F32);
    let (u, x) = (banana.to_vec::<u8>(), f.to_vec::<f32>());
    for (a, b) in u.iter().zip(&x).step_by(997) {
        assert_eq!(*a as f32 / 255.0, *b);
    }
}

#[test]
fn png_round_trip_for_u8_and_float_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tensor::from_vec((0..24u8).map(|v| v * 10).collect::<Vec<_>>(), &[3, 2, 4]).unwrap();
    let p = dir.path().join("sub/out.png");
    write_png(&t, &p, false).unwrap();
    assert_eq!(read_image(&p).unwrap().to_vec::<u8>(), t.to_vec::<u8>());
    // Floats in [0, 1] with unit_range, rounded and clamped.
    let f = Tensor::from_vec(vec![0.0f32, 0.5, 1.2, -0.1], &[1, 2, 2]).unwrap();
    let q = dir.path().join("f.png");
    write_png(&f, &q, true).unwrap();
    assert_eq!(
        read_image(&q).unwrap().to_vec::<u8>()[..4],
        [0, 128, 255, 0]
    );
    // No temporary file is left behind.
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(dir.path()), ["f.png", "sub"]);
    assert_eq!(names(&dir.path().join("sub")), ["out.png"]);
}

#[test]
fn broken_files_and_bad_tensors_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = read_image(dir.path().join("none.png"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("none.png"), "{missing}");
    // Truncated PNG and JPEG: the error names the file.
    let good = dir.path().join("good.png");
    save(&good, &[7u8; 3 * 16 * 16], 16, 16, image::ColorType::Rgb8);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_image(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.png") && e.contains("not a readable"), "{e}");
    let jpeg = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/d2l_images/banana.jpg"),
    )
    .unwrap();
    let cutj = dir.path().join("cut.jpg");
    std::fs::write(&cutj, &jpeg[..200]).unwrap();
    let e = read_image(&cutj).unwrap_err().to_string();
    assert!(e.contains("cut.jpg"), "{e}");
    assert!(decode_image(b"GIF89a not supported").is_err());
    assert!(decode_image(&[]).is_err());
    // Tensors that are not images.
    let e = write_png(&Tensor::zeros(&[2, 4, 4]), dir.path().join("x.png"), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("(1 or 3, H, W)"), "{e}");
    assert!(write_png(&Tensor::zeros(&[4, 4]), dir.path().join("y.png"), true).is_err());
    assert!(!dir.path().join("x.png").exists());
}
