//! DataLoader throughput on Fashion-MNIST (the number issue 5's closing note asks for):
//! batches/s and images/s over the training split at batch 256, shuffled, with the
//! background prefetch on, (a) at 28×28 and (b) resized to 224×224. Each case runs one full
//! epoch, and more epochs until at least `--min-secs` (default 3) have passed.
//!
//! Run from the repository root:
//!
//! ```text
//! cargo run --release -p d2l-data --example loader_bench -- --data-dir ../shared/data
//! ```
//!
//! Options: `--data-dir DIR` (default `../shared/data`), `--batch-size N` (256),
//! `--min-secs S` (3), `--prefetch N` (2). The files are read through the data hub,
//! offline, so nothing is downloaded.

use d2l_data::datasets::load_data_fashion_mnist;
use d2l_data::hub::{default_cache_dir, DataHub};
use d2l_data::loader::DataLoader;
use std::time::{Duration, Instant};

/// Parsed command-line options.
struct Opts {
    data_dir: String,
    batch_size: usize,
    min_secs: f64,
    prefetch: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        data_dir: "../shared/data".into(),
        batch_size: 256,
        min_secs: 3.0,
        prefetch: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--data-dir" => o.data_dir = val("--data-dir")?,
            "--batch-size" => {
                o.batch_size = val("--batch-size")?
                    .parse()
                    .map_err(|e| format!("--batch-size: {e}"))?
            }
            "--min-secs" => {
                o.min_secs = val("--min-secs")?
                    .parse()
                    .map_err(|e| format!("--min-secs: {e}"))?
            }
            "--prefetch" => {
                o.prefetch = val("--prefetch")?
                    .parse()
                    .map_err(|e| format!("--prefetch: {e}"))?
            }
            "-h" | "--help" => {
                println!("usage: loader_bench [--data-dir DIR] [--batch-size N] [--min-secs S] [--prefetch N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(o)
}

/// One measured case.
struct Row {
    name: String,
    shape: Vec<usize>,
    epochs: u64,
    batches: usize,
    images: usize,
    secs: f64,
}

/// Iterates whole epochs until at least `min` has passed; touches every batch's data so the
/// work cannot be skipped.
fn measure(name: &str, loader: &DataLoader, min: Duration) -> Result<Row, d2l_data::DataError> {
    let start = Instant::now();
    let (mut epochs, mut batches, mut images) = (0u64, 0usize, 0usize);
    let mut shape = Vec::new();
    let mut checksum = 0.0f64;
    while epochs == 0 || start.elapsed() < min {
        for b in loader.iter_epoch(epochs) {
            let b = b?;
            if shape.is_empty() {
                shape = b.x.shape().to_vec();
            }
            batches += 1;
            images += b.len();
            checksum += b.y.to_vec::<i64>()[0] as f64;
        }
        epochs += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(checksum);
    Ok(Row {
        name: name.into(),
        shape,
        epochs,
        batches,
        images,
        secs,
    })
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let hub = DataHub::new(default_cache_dir())
        .with_data_dir(&o.data_dir)
        .offline(true)
        .quiet();
    let min = Duration::from_secs_f64(o.min_secs);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "DataLoader throughput, Fashion-MNIST train (60,000 images), batch {}, shuffled, prefetch {}, {} CPU threads",
        o.batch_size, o.prefetch, threads
    );
    let mut rows = Vec::new();
    for (name, resize) in [("28x28 (no resize)", None), ("resize 224x224", Some(224))] {
        let t = Instant::now();
        let loaders = load_data_fashion_mnist(&hub, o.batch_size, resize, 0);
        let (train, _) = match loaders {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        };
        let load_secs = t.elapsed().as_secs_f64();
        let train = train.prefetch(o.prefetch);
        match measure(name, &train, min) {
            Ok(r) => {
                println!("  {name}: files read and decoded in {load_secs:.2} s");
                rows.push(r);
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
    println!();
    println!("| case | batch x | epochs | batches | seconds | batches/s | images/s |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:?} | {} | {} | {:.2} | {:.1} | {:.0} |",
            r.name,
            r.shape,
            r.epochs,
            r.batches,
            r.secs,
            r.batches as f64 / r.secs,
            r.images as f64 / r.secs
        );
    }
}
