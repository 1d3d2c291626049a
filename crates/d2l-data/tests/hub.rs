//! The data hub against a real HTTP server on 127.0.0.1, archive extraction, and the real
//! files in `../shared/data` when present.

use d2l_data::archive::{self, ArchiveKind};
use d2l_data::hub::{self, DataHub, RemoteFile};
use d2l_data::DataError;
use sha1::{Digest, Sha1};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn sha1_hex(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Files left in a folder tree (hidden partial files included).
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(all_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

const GOOD: &[u8] = b"the time traveller (for so it will be convenient to speak of him)\n";

/// A tiny HTTP/1.1 server: answers at most `max_requests` requests, then stops (also
/// after 30 s without them). Routes: /good.txt, /bad.txt (content differs from its
/// registered sum), /trunc.bin (announces more bytes than it sends), anything else 404.
struct Server {
    base: String,
    hits: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

impl Server {
    fn start(max_requests: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h2 = hits.clone();
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut served = 0;
            while served < max_requests && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        served += 1;
                        h2.fetch_add(1, Ordering::SeqCst);
                        let _ = serve(stream);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        Server {
            base,
            hits,
            handle: Some(handle),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The accept loop ends on its own (request budget or deadline); don't wait for it
        // here if a test failed early.
        drop(self.handle.take());
    }
}

fn serve(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let req = String::from_utf8_lossy(&req);
    let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
    let ok = |body: &[u8], announced: usize| {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    let resp = match path.as_str() {
        "/good.txt" => ok(GOOD, GOOD.len()),
        "/bad.txt" => ok(b"this is not the file you registered\n", 36),
        "/trunc.bin" => ok(&[7u8; 100], 1000),
        _ => {
            let body = b"not found";
            let mut r = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        }
    };
    s.write_all(&resp)?;
    s.flush()?;
    // Closing the socket ends the (possibly truncated) body.
    s.shutdown(std::net::Shutdown::Both)
}

fn hub(cache: &Path) -> DataHub {
    DataHub::new(cache)
        .without_system_dirs()
        .quiet()
        .with_timeout(Duration::from_secs(10))
}

#[test]
fn download_good_bad_truncated_and_404() {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(4);
    let h = hub(cache.path());

    // A good file lands in the cache under its name, verified.
    let good = RemoteFile::new(
        "tiny/good.txt",
        server.url("good.txt"),
        Some(&sha1_hex(GOOD)),
    );
    let p = h.fetch_file(&good).expect("good download");
    assert_eq!(p, cache.path().join("tiny/good.txt"));
    assert_eq!(std::fs::read(&p).unwrap(), GOOD);

    // A second fetch finds it in the cache: no new request.
    let before = server.hits.load(Ordering::SeqCst);
    assert_eq!(h.fetch_file(&good).unwrap(), p);
    assert_eq!(server.hits.load(Ordering::SeqCst), before);

    // Wrong checksum: an error with both sums, and nothing kept.
    let bad = RemoteFile::new("tiny/bad.txt", server.url("bad.txt"), Some(&sha1_hex(GOOD)));
    match h.fetch_file(&bad) {
        Err(DataError::Checksum {
            path,
            expected,
            got,
        }) => {
            assert_eq!(path, cache.path().join("tiny/bad.txt"));
            assert_eq!(expected, sha1_hex(GOOD));
            assert_eq!(got, sha1_hex(b"this is not the file you registered\n"));
            let msg = DataError::Checksum {
                path,
                expected: expected.clone(),
                got: got.clone(),
            }
            .to_string();
            assert!(msg.contains(&expected) && msg.contains(&got), "{msg}");
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }

    // Truncated body: a download error, nothing kept.
    let trunc = RemoteFile::new("tiny/trunc.bin", server.url("trunc.bin"), None);
    match h.fetch_file(&trunc) {
        Err(DataError::Download { url, msg }) => {
            assert_eq!(url, server.url("trunc.bin"));
            eprintln!("truncated download reported as: {msg}");
        }
        other => panic!("expected a download error, got {other:?}"),
    }

    // 404: a download error naming the status.
    let missing = RemoteFile::new("tiny/nothing.bin", server.url("nothing.bin"), None);
    match h.fetch_file(&missing) {
        Err(DataError::Download { msg, .. }) => assert!(msg.contains("404"), "{msg}"),
        other => panic!("expected a 404, got {other:?}"),
    }

    // The only file in the cache is the good one: no partial or bad file remains.
    assert_eq!(
        all_files(cache.path()),
        vec![cache.path().join("tiny/good.txt")]
    );
}

#[test]
fn mirror_rewrites_registered_urls() {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(1);
    let h = hub(cache.path()).with_mirror(&format!("{}/", server.base));
    let e = hub::entry("timemachine/timemachine.txt").unwrap();
    assert_eq!(h.url_for(&e.into()), server.url("timemachine.txt"));
    // The server does not have it: a 404 through the registered name, nothing kept.
    match h.fetch("timemachine/timemachine.txt") {
        Err(DataError::Download { url, msg }) => {
            assert_eq!(url, server.url("timemachine.txt"));
            assert!(msg.contains("404"), "{msg}");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    assert!(all_files(cache.path()).is_empty());
}

#[test]
fn offline_error_names_file_places_and_url() {
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let sys = tempfile::tempdir().unwrap();
    let h = hub(cache.path())
        .with_data_dir(data.path())
        .with_system_dir("fashion_mnist", sys.path())
        .offline(true);
    let name = "fashion_mnist/train-images-idx3-ubyte.gz";
    let err = h.fetch(name).unwrap_err();
    let DataError::Missing {
        name: n,
        looked_in,
        url,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(n, name);
    assert_eq!(
        looked_in,
        &vec![
            data.path().join(name),
            cache.path().join(name),
            sys.path().join("train-images-idx3-ubyte.gz")
        ]
    );
    assert_eq!(
        url,
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz"
    );
    let msg = err.to_string();
    for needle in [
        name.to_string(),
        url.clone(),
        data.path().join(name).display().to_string(),
    ] {
        assert!(msg.contains(&needle), "`{needle}` missing from:\n{msg}");
    }
    // Offline downloads nothing.
    assert!(all_files(cache.path()).is_empty());
}

#[test]
fn unknown_names_and_unsafe_names_are_errors() {
    let cache = tempfile::tempdir().unwrap();
    let h = hub(cache.path()).offline(true);
    let msg = h.fetch("no/such.file").unwrap_err().to_string();
    assert!(msg.contains("unknown data file `no/such.file`"), "{msg}");
    assert!(
        msg.contains("timemachine/timemachine.txt"),
        "should list known names: {msg}"
    );
    for bad in ["../escape.txt", "/etc/passwd", "a/../../b"] {
        let f = RemoteFile::new(bad, "http://127.0.0.1:9/x", None);
        assert!(
            matches!(h.fetch_file(&f), Err(DataError::Invalid(_))),
            "{bad}"
        );
    }
}

#[test]
fn registry_is_well_formed() {
    let reg = hub::registry();
    assert!(reg.len() >= 20);
    let mut names: Vec<&str> = reg.iter().map(|e| e.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), reg.len(), "duplicate names");
    for e in reg {
        assert!(e.name.contains('/'), "{}", e.name);
        let leaf = e.name.rsplit('/').next().unwrap();
        assert!(e.url.ends_with(leaf), "{} vs {}", e.name, e.url);
        let s = e.sha1.expect("every registered file has a sha1");
        assert!(
            s.len() == 40
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
    for n in [
        "kaggle_house/kaggle_house_pred_train.csv",
        "timemachine/timemachine.txt",
        "fashion_mnist/t10k-labels-idx1-ubyte.gz",
        "mnist/train-images-idx3-ubyte.gz",
        "ptb/ptb.zip",
        "d2l_images/catdog.jpg",
        "hotdog/hotdog.zip",
        "banana-detection/banana-detection.zip",
        "voc2012/VOCtrainval_11-May-2012.tar",
        "airfoil/airfoil_self_noise.dat",
    ] {
        hub::entry(n).unwrap();
    }
}

#[test]
fn resolution_order_data_dir_then_cache_and_checksums() {
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let f = RemoteFile::new(
        "set/file.txt",
        "http://127.0.0.1:9/file.txt",
        Some(&sha1_hex(GOOD)),
    );
    let h = hub(cache.path()).offline(true);

    // Only in the cache.
    std::fs::create_dir_all(cache.path().join("set")).unwrap();
    std::fs::write(cache.path().join("set/file.txt"), GOOD).unwrap();
    assert_eq!(h.fetch_file(&f).unwrap(), cache.path().join("set/file.txt"));

    // In both: the data dir wins.
    std::fs::create_dir_all(data.path().join("set")).unwrap();
    std::fs::write(data.path().join("set/file.txt"), GOOD).unwrap();
    let hd = h.clone().with_data_dir(data.path());
    assert_eq!(hd.fetch_file(&f).unwrap(), data.path().join("set/file.txt"));

    // A corrupt file in the data dir is a checksum error (and is left alone: it is the user's).
    std::fs::write(data.path().join("set/file.txt"), b"corrupt").unwrap();
    match hd.fetch_file(&f) {
        Err(DataError::Checksum { path, got, .. }) => {
            assert_eq!(path, data.path().join("set/file.txt"));
            assert_eq!(got, sha1_hex(b"corrupt"));
        }
        other => panic!("{other:?}"),
    }
    assert!(data.path().join("set/file.txt").exists());

    // A corrupt file in the cache is removed; offline, that is a checksum error.
    std::fs::write(cache.path().join("set/file.txt"), b"corrupt too").unwrap();
    assert!(matches!(h.fetch_file(&f), Err(DataError::Checksum { .. })));
    assert!(!cache.path().join("set/file.txt").exists());
}

#[test]
fn corrupt_cache_file_is_downloaded_again() {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(1);
    let f = RemoteFile::new(
        "set/good.txt",
        server.url("good.txt"),
        Some(&sha1_hex(GOOD)),
    );
    std::fs::create_dir_all(cache.path().join("set")).unwrap();
    std::fs::write(cache.path().join("set/good.txt"), b"half a fi").unwrap();
    let p = hub(cache.path()).fetch_file(&f).unwrap();
    assert_eq!(std::fs::read(p).unwrap(), GOOD);
}

fn gzip(bytes: &[u8], mtime: u32, name: Option<&str>) -> Vec<u8> {
    let mut b = flate2::GzBuilder::new().mtime(mtime);
    if let Some(n) = name {
        b = b.filename(n);
    }
    let mut w = b.write(Vec::new(), flate2::Compression::default());
    w.write_all(bytes).unwrap();
    w.finish().unwrap()
}

#[test]
fn system_copy_with_rewritten_gzip_header_is_accepted_by_content() {
    let cache = tempfile::tempdir().unwrap();
    let sys = tempfile::tempdir().unwrap();
    let content = b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x03";
    let official = gzip(content, 1_504_176_606, Some("labels"));
    let debian = gzip(content, 1_600_000_000, None);
    assert_ne!(sha1_hex(&official), sha1_hex(&debian));
    let f = RemoteFile::new(
        "fm/labels.gz",
        "http://127.0.0.1:9/labels.gz",
        Some(&sha1_hex(&official)),
    )
    .with_gunzip_sha1(&sha1_hex(content));
    std::fs::write(sys.path().join("labels.gz"), &debian).unwrap();
    let h = hub(cache.path())
        .with_system_dir("fm", sys.path())
        .offline(true);
    assert_eq!(h.fetch_file(&f).unwrap(), sys.path().join("labels.gz"));

    // A system copy with other content is not accepted (and not touched).
    std::fs::write(sys.path().join("labels.gz"), gzip(b"other", 0, None)).unwrap();
    assert!(matches!(h.fetch_file(&f), Err(DataError::Missing { .. })));
    assert!(sys.path().join("labels.gz").exists());
}

// ---------- archives ----------

fn make_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default();
    for (name, data) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

fn make_tar_gz(path: &Path, entries: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, *data).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap();
}

/// A tar whose header names a path with `..` (the `tar` builder refuses to write one).
fn make_evil_tar(path: &Path) {
    let mut h = tar::Header::new_old();
    let name = b"../evil.txt";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    let mut data = b"evil".to_vec();
    data.resize(512, 0);
    bytes.extend(data);
    bytes.extend([0u8; 1024]);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn zip_extracts_atomically_once() {
    let dir = tempfile::tempdir().unwrap();
    let z = dir.path().join("set.zip");
    make_zip(&z, &[("set/a.txt", b"alpha"), ("set/sub/b.txt", b"beta")]);
    assert_eq!(ArchiveKind::detect(&z).unwrap(), ArchiveKind::Zip);
    let dest = dir.path().join("out");
    assert!(archive::extract(&z, &dest).unwrap());
    assert_eq!(std::fs::read(dest.join("set/a.txt")).unwrap(), b"alpha");
    assert_eq!(std::fs::read(dest.join("set/sub/b.txt")).unwrap(), b"beta");
    assert!(archive::is_extracted(&dest));
    // Second time: skipped.
    assert!(!archive::extract(&z, &dest).unwrap());
    // Only the archive and the destination exist: no temporary folder left.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn zip_slip_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let z = dir.path().join("evil.zip");
    make_zip(&z, &[("ok.txt", b"fine"), ("../../evil.txt", b"evil")]);
    let dest = dir.path().join("inner/out");
    match archive::extract(&z, &dest) {
        Err(DataError::UnsafeArchive { archive, entry }) => {
            assert_eq!(archive, z);
            assert_eq!(entry, "../../evil.txt");
        }
        other => panic!("{other:?}"),
    }
    assert!(!dest.exists());
    assert!(!dir.path().join("evil.txt").exists());
    // No partial folder either.
    assert!(
        all_files(dir.path()).iter().all(|p| p == &z),
        "{:?}",
        all_files(dir.path())
    );

    let z2 = dir.path().join("abs.zip");
    make_zip(&z2, &[("/tmp/abs.txt", b"abs")]);
    assert!(matches!(
        archive::extract(&z2, &dest),
        Err(DataError::UnsafeArchive { .. })
    ));

    let t = dir.path().join("evil.tar");
    make_evil_tar(&t);
    assert!(matches!(
        archive::extract(&t, &dest),
        Err(DataError::UnsafeArchive { .. })
    ));
    assert!(!dest.exists());
    assert!(!dir.path().join("evil.txt").exists());
}

#[test]
fn tar_gz_and_tar_extract() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("set.tar.gz");
    make_tar_gz(
        &tgz,
        &[
            ("VOCdevkit/VOC2012/a.txt", b"one"),
            ("VOCdevkit/VOC2012/b/c.txt", b"two"),
        ],
    );
    assert_eq!(ArchiveKind::detect(&tgz).unwrap(), ArchiveKind::TarGz);
    let dest = dir.path().join("x");
    assert!(archive::extract(&tgz, &dest).unwrap());
    assert_eq!(
        std::fs::read(dest.join("VOCdevkit/VOC2012/b/c.txt")).unwrap(),
        b"two"
    );

    // Plain tar (no gzip).
    let tar_path = dir.path().join("set.tar");
    {
        let mut t = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, "p/q.txt", &b"pqr"[..]).unwrap();
        t.finish().unwrap();
    }
    assert_eq!(ArchiveKind::detect(&tar_path).unwrap(), ArchiveKind::Tar);
    let dest2 = dir.path().join("y");
    archive::extract(&tar_path, &dest2).unwrap();
    assert_eq!(std::fs::read(dest2.join("p/q.txt")).unwrap(), b"pqr");
}

#[test]
fn truncated_tar_gz_is_an_error_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("set.tar.gz");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    make_tar_gz(&tgz, &[("a/big.bin", &big)]);
    let bytes = std::fs::read(&tgz).unwrap();
    std::fs::write(&tgz, &bytes[..bytes.len() / 2]).unwrap();
    let dest = dir.path().join("out");
    let err = archive::extract(&tgz, &dest).unwrap_err();
    assert!(
        matches!(err, DataError::Format { .. } | DataError::Io { .. }),
        "{err:?}"
    );
    assert!(!dest.exists());
    assert_eq!(all_files(dir.path()), vec![tgz]);

    let junk = dir.path().join("junk.zip");
    std::fs::write(&junk, b"definitely not an archive").unwrap();
    assert!(matches!(
        archive::extract(&junk, &dest),
        Err(DataError::Format { .. })
    ));
}

#[test]
fn fetch_and_extract_uses_cache_and_data_dir() {
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("hd")).unwrap();
    let z = data.path().join("hd/hd.zip");
    make_zip(
        &z,
        &[
            ("hotdog/train/1.txt", b"one"),
            ("hotdog/test/2.txt", b"two"),
        ],
    );
    let sum = hub::sha1_file(&z).unwrap();
    let f = RemoteFile::new("hd/hd.zip", "http://127.0.0.1:9/hd.zip", Some(&sum));
    let h = hub(cache.path()).with_data_dir(data.path()).offline(true);
    let out = h.fetch_file_and_extract(&f, "hotdog").unwrap();
    assert_eq!(out, cache.path().join("hd/hd.zip.extracted/hotdog"));
    assert_eq!(std::fs::read(out.join("train/1.txt")).unwrap(), b"one");
    // Again: from the extracted cache.
    assert_eq!(h.fetch_file_and_extract(&f, "hotdog").unwrap(), out);
    // A folder not in the archive.
    assert!(matches!(
        h.fetch_file_and_extract(&f, "nope"),
        Err(DataError::Format { .. })
    ));
    assert!(matches!(
        h.fetch_file_and_extract(&f, "../x"),
        Err(DataError::Invalid(_))
    ));
    // Unpacked by hand next to the archive in the data dir: used as is.
    std::fs::create_dir_all(data.path().join("hd/hotdog/train")).unwrap();
    assert_eq!(
        h.fetch_file_and_extract(&f, "hotdog").unwrap(),
        data.path().join("hd/hotdog")
    );
}

// ---------- real data ----------

fn shared_data() -> Option<PathBuf> {
    d2l_testkit::shared_data("")
}

#[test]
fn real_shared_data_passes_checksums() {
    let Some(data) = shared_data() else {
        eprintln!("SKIP real_shared_data_passes_checksums: ../shared/data not found");
        return;
    };
    let empty_cache = tempfile::tempdir().unwrap();
    let h = hub(empty_cache.path()).with_data_dir(&data).offline(true);
    let mut checked = 0;
    for e in hub::registry() {
        if !data.join(e.name).is_file() {
            eprintln!("  (not in shared data: {})", e.name);
            continue;
        }
        let p = h
            .fetch(e.name)
            .unwrap_or_else(|err| panic!("{}: {err}", e.name));
        assert_eq!(p, data.join(e.name));
        checked += 1;
    }
    eprintln!("verified {checked} real files in {}", data.display());
    assert!(
        checked >= 18,
        "expected the shared data files, verified only {checked}"
    );

    // PTB through fetch_and_extract, into a fresh cache (shared data is read-only).
    let ptb = h.fetch_and_extract("ptb/ptb.zip", "ptb").unwrap();
    assert!(ptb.join("ptb.train.txt").is_file(), "{}", ptb.display());
    assert!(ptb.starts_with(empty_cache.path()));
}

#[test]
fn real_fashion_mnist_repacked_like_debian_is_accepted() {
    let Some(data) = shared_data() else {
        eprintln!(
            "SKIP real_fashion_mnist_repacked_like_debian_is_accepted: ../shared/data not found"
        );
        return;
    };
    // Re-compress the real labels file with another header, as Debian did.
    let name = "t10k-labels-idx1-ubyte.gz";
    let gz = std::fs::read(data.join("fashion_mnist").join(name)).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let sys = tempfile::tempdir().unwrap();
    std::fs::write(sys.path().join(name), gzip(&raw, 1_600_000_000, None)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let h = hub(cache.path())
        .with_system_dir("fashion_mnist", sys.path())
        .offline(true);
    assert_eq!(
        h.fetch(&format!("fashion_mnist/{name}")).unwrap(),
        sys.path().join(name)
    );
}

#[test]
fn debian_location_is_a_default_candidate_and_offline_https_is_named() {
    let cache = tempfile::tempdir().unwrap();
    let h = DataHub::new(cache.path()).quiet();
    let c = h.candidates("fashion_mnist/train-labels-idx1-ubyte.gz");
    assert_eq!(
        c.last().unwrap(),
        &Path::new(hub::DEBIAN_FASHION_MNIST_DIR).join("train-labels-idx1-ubyte.gz")
    );
    // Other data sets have no system location.
    assert_eq!(h.candidates("mnist/train-labels-idx1-ubyte.gz").len(), 1);
    // Offline, MNIST (served over https) is a Missing error naming its URL; no I/O.
    let err = h
        .clone()
        .offline(true)
        .fetch("mnist/t10k-labels-idx1-ubyte.gz")
        .unwrap_err();
    let DataError::Missing { url, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        url.starts_with("https://") && url.ends_with("t10k-labels-idx1-ubyte.gz"),
        "{url}"
    );
    assert!(all_files(cache.path()).is_empty());
}

#[test]
fn archives_stop_at_a_multiple_of_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 64 << 20];
    // 64 MB of zeros deflate to ~64 kB: far past 100 × the archive's size.
    for (name, kind) in [("bomb.zip", "zip"), ("bomb.tar.gz", "tar.gz")] {
        let arc = dir.path().join(name);
        if kind == "zip" {
            make_zip(&arc, &[("a/zeros.bin", &zeros)]);
        } else {
            make_tar_gz(&arc, &[("a/zeros.bin", &zeros)]);
        }
        assert!(std::fs::metadata(&arc).unwrap().len() < 1 << 20);
        let dest = dir.path().join(format!("out-{kind}"));
        let e = archive::extract(&arc, &dest).unwrap_err().to_string();
        assert!(
            e.contains("100 times its size") && e.contains("decompression bomb"),
            "{kind}: {e}"
        );
        // Nothing is left behind: no destination, no temporary folder.
        assert!(!dest.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
    // Compressible but honest data (text at ~4×) still extracts.
    let text = "the time machine by h g wells ".repeat(20_000);
    let arc = dir.path().join("ok.zip");
    make_zip(&arc, &[("t/text.txt", text.as_bytes())]);
    let dest = dir.path().join("ok");
    assert!(archive::extract(&arc, &dest).unwrap());
    assert_eq!(
        std::fs::read_to_string(dest.join("t/text.txt")).unwrap(),
        text
    );
}
