//! Seeds for each target: small valid inputs built here (images, IDX, CSV, archives,
//! CIFAR records) and the `.pth`/safetensors fixtures exported from PyTorch. `d2l-fuzz
//! --write-corpus DIR` writes them as the corpus folder.

use std::io::Write;

/// A `w`×`h` RGB PNG with a gradient.
pub fn tiny_png(w: u32, h: u32) -> Vec<u8> {
    encode(
        w,
        h,
        ::image::ImageOutputFormat::Png,
        ::image::ColorType::Rgb8,
    )
}

fn encode(w: u32, h: u32, fmt: ::image::ImageOutputFormat, color: ::image::ColorType) -> Vec<u8> {
    let channels = color.channel_count() as u32;
    let bpc = color.bytes_per_pixel() as u32 / channels;
    let pixels: Vec<u8> = (0..w * h * channels * bpc)
        .map(|i| (i * 37 % 251) as u8)
        .collect();
    let mut out = std::io::Cursor::new(Vec::new());
    let img = match color {
        ::image::ColorType::L8 => ::image::DynamicImage::ImageLuma8(
            ::image::GrayImage::from_raw(w, h, pixels).expect("sized"),
        ),
        ::image::ColorType::Rgba8 => ::image::DynamicImage::ImageRgba8(
            ::image::RgbaImage::from_raw(w, h, pixels).expect("sized"),
        ),
        _ => ::image::DynamicImage::ImageRgb8(
            ::image::RgbImage::from_raw(w, h, pixels).expect("sized"),
        ),
    };
    img.write_to(&mut out, fmt).expect("encodes");
    out.into_inner()
}

/// PNGs (grey, RGB, RGBA) and a JPEG.
pub fn image() -> Vec<Vec<u8>> {
    use ::image::{ColorType, ImageOutputFormat};
    vec![
        tiny_png(8, 6),
        encode(5, 7, ImageOutputFormat::Png, ColorType::L8),
        encode(4, 4, ImageOutputFormat::Png, ColorType::Rgba8),
        encode(16, 8, ImageOutputFormat::Jpeg(80), ColorType::Rgb8),
    ]
}

/// Checkpoints written by PyTorch (zip, legacy, big-endian, views; see
/// `scripts/gen_pth_fixtures.py`).
pub fn pth() -> Vec<Vec<u8>> {
    vec![
        TINY_ZIP.to_vec(),
        include_bytes!("../../d2l-nn/tests/fixtures/pth/tiny_legacy.pth").to_vec(),
        include_bytes!("../../d2l-nn/tests/fixtures/pth/views_legacy.pth").to_vec(),
        include_bytes!("../../d2l-nn/tests/fixtures/pth/big_endian.pth").to_vec(),
    ]
}

const TINY_ZIP: &[u8] = include_bytes!("../../d2l-nn/tests/fixtures/pth/tiny_zip.pth");

/// The pickle of PyTorch's zip checkpoint `tiny_zip.pth` (its `data.pkl`).
pub fn pickle() -> Vec<Vec<u8>> {
    [TINY_ZIP]
        .iter()
        .map(|z| {
            let mut a = zip::ZipArchive::new(std::io::Cursor::new(*z)).expect("a fixture zip");
            let name = a
                .file_names()
                .find(|n| n.ends_with("data.pkl"))
                .expect("data.pkl")
                .to_string();
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut a.by_name(&name).expect("listed"), &mut out)
                .expect("readable");
            out
        })
        .collect()
}

/// `tiny_zip.pth` with `pickle` as its `data.pkl` (other records unchanged).
pub fn tiny_zip_with_pickle(pickle: &[u8]) -> Vec<u8> {
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(TINY_ZIP)).expect("a fixture zip");
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for i in 0..src.len() {
            let mut f = src.by_index(i).expect("listed");
            let name = f.name().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut data).expect("readable");
            w.start_file(name.as_str(), stored).expect("in memory");
            w.write_all(if name.ends_with("data.pkl") {
                pickle
            } else {
                &data
            })
            .expect("in memory");
        }
        w.finish().expect("in memory");
    }
    out.into_inner()
}

/// safetensors files written by PyTorch's `safetensors` (f32, f64, i64, u8, bf16).
pub fn safetensors() -> Vec<Vec<u8>> {
    vec![
        include_bytes!("../../d2l-nn/tests/fixtures/pth/tiny.safetensors").to_vec(),
        include_bytes!("../../d2l-nn/tests/fixtures/dtypes.safetensors").to_vec(),
        include_bytes!("../../d2l-nn/tests/fixtures/bf16.safetensors").to_vec(),
    ]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("in memory");
    e.finish().expect("in memory")
}

/// IDX images (3 of 4×5) and labels, plain and gzip.
pub fn idx() -> Vec<Vec<u8>> {
    let mut images = vec![0, 0, 8, 3];
    for d in [3u32, 4, 5] {
        images.extend_from_slice(&d.to_be_bytes());
    }
    images.extend((0..60u8).map(|i| i.wrapping_mul(17)));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&3u32.to_be_bytes());
    labels.extend_from_slice(&[2, 0, 9]);
    vec![gzip(&images), gzip(&labels), images, labels]
}

/// House-prices CSVs in Kaggle's layout (Id, features, SalePrice), with NA and quotes.
pub fn house_csv() -> Vec<Vec<u8>> {
    vec![
        b"Id,MSSubClass,LotFrontage,Street,Alley,SalePrice\n\
          1,60,65,Pave,NA,208500\n2,20,80,Pave,NA,181500\n3,60,68,Grvl,\"Pave, paved\",223500\n"
            .to_vec(),
        b"Id,A,B,SalePrice\r\n1,1.5,x,10\r\n2,NA,y,20\r\n".to_vec(),
    ]
}

/// Banana `label.csv` files naming the one image the target puts beside them.
pub fn banana_labels() -> Vec<Vec<u8>> {
    vec![
        b"img_name,label,xmin,ymin,xmax,ymax\n0.png,0,1,1,6,6\n".to_vec(),
        b"img_name,label,xmin,ymin,xmax,ymax\n0.png,0,1,1,6,6\n0.png,1,0,2,3,7\n".to_vec(),
    ]
}

/// Text in the book's layout: a title, blank lines, punctuation, non-ASCII.
pub fn text() -> Vec<Vec<u8>> {
    vec![
        "The Time Machine, by H. G. Wells [1898]\n\n\nI\n\n\nThe Time Traveller (for so it \
         will be convenient to speak of him) was expounding a recondite matter to us.\n"
            .as_bytes()
            .to_vec(),
        "naïve café — 12 o'clock\r\n\ttabs\tand  spaces\n"
            .as_bytes()
            .to_vec(),
    ]
}

/// CIFAR-10 batch files: whole 3073-byte records (label, then 3×32×32 pixels).
pub fn cifar() -> Vec<Vec<u8>> {
    let record = |label: u8| {
        let mut r = vec![label];
        r.extend((0..3072u32).map(|i| (i % 256) as u8));
        r
    };
    vec![record(3), [record(0), record(9)].concat()]
}

/// Data archives: a zip (stored and deflated), a tar and a tar.gz, with folders.
pub fn archive() -> Vec<Vec<u8>> {
    let files: [(&str, &[u8]); 3] = [
        ("set/train/label.csv", b"img_name,label\n0.png,1\n"),
        ("set/readme.txt", b"a small data set\n"),
        ("set/train/images/0.bin", &[0, 1, 2, 3, 250, 251]),
    ];
    let mut zip_bytes = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut zip_bytes);
        for (i, (name, data)) in files.iter().enumerate() {
            let method = if i % 2 == 0 {
                zip::CompressionMethod::Stored
            } else {
                zip::CompressionMethod::Deflated
            };
            let opts = zip::write::SimpleFileOptions::default().compression_method(method);
            z.start_file(*name, opts).expect("in memory");
            z.write_all(data).expect("in memory");
        }
        z.add_directory("set/empty/", zip::write::SimpleFileOptions::default())
            .expect("in memory");
        z.finish().expect("in memory");
    }
    let mut t = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data).expect("in memory");
    }
    let tar_bytes = t.into_inner().expect("in memory");
    vec![zip_bytes.into_inner(), gzip(&tar_bytes), tar_bytes]
}
