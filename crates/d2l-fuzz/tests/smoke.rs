//! The CI smoke run: every fuzz target from the repository's seed corpus for a few
//! seconds (`D2L_FUZZ_SECS`, default 2), with no panic, no slow input and no allocation
//! beyond the cap (which would end this process). Longer runs: `cargo run --release -p
//! d2l-fuzz -- --secs 300`.

use d2l_fuzz::{fuzz, load_corpus, targets};
use std::path::Path;
use std::time::Duration;

#[test]
fn every_target_survives_a_short_run() {
    let secs: f64 = std::env::var("D2L_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let crashes = tempfile_dir();
    let mut report = Vec::new();
    for t in targets() {
        let seeds = load_corpus(&corpus, &t);
        assert!(
            corpus.join(t.name).is_dir(),
            "the corpus folder for {} is missing",
            t.name
        );
        let s = fuzz(
            &t,
            &seeds,
            Duration::from_secs_f64(secs),
            u64::MAX,
            22,
            &crashes,
        );
        // The seeds are valid inputs: each target accepts at least those.
        assert!(s.accepted >= seeds.len() as u64, "{}: {s:?}", t.name);
        assert!(s.execs > seeds.len() as u64, "{}: {s:?}", t.name);
        assert!(s.panics.is_empty(), "{}: panics {:?}", t.name, s.panics);
        assert!(s.slow.is_empty(), "{}: slow inputs {:?}", t.name, s.slow);
        report.push(format!("{} {} execs", t.name, s.execs));
    }
    println!("{}", report.join(", "));
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("d2l-fuzz-crashes-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn mutation_is_reproducible_and_changes_inputs() {
    let seed = b"0123456789abcdef".to_vec();
    let run = |s: u64| {
        let mut r = d2l_fuzz::Rng::new(s);
        (0..50)
            .map(|_| d2l_fuzz::mutate(&mut r, &seed, b"XYZ"))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
    assert!(run(7).iter().filter(|m| **m != seed).count() > 40);
}
