//! `d2l-fuzz [TARGET ...] [--secs N] [--seed N] [--corpus DIR] [--crashes DIR]`: runs the
//! fuzz targets (all by default) for N seconds each and prints executions and findings;
//! `d2l-fuzz --write-corpus DIR` writes the generated seeds; `d2l-fuzz --list` names the
//! targets. Exit code 1 when anything was found.

use d2l_fuzz::{fuzz, load_corpus, targets};
use std::path::PathBuf;
use std::time::Duration;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut names = Vec::new();
    let mut secs = 10u64;
    let mut seed = 1u64;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut corpus = root.join("corpus");
    let mut crashes = PathBuf::from("fuzz-crashes");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .unwrap_or_else(|| fail(&format!("{flag} needs a value")))
        };
        match a.as_str() {
            "--secs" => secs = value("--secs").parse().unwrap_or_else(|_| fail("--secs N")),
            "--seed" => seed = value("--seed").parse().unwrap_or_else(|_| fail("--seed N")),
            "--corpus" => corpus = PathBuf::from(value("--corpus")),
            "--crashes" => crashes = PathBuf::from(value("--crashes")),
            "--list" => {
                for t in targets() {
                    println!("{:<14} {}", t.name, t.about);
                }
                return std::process::ExitCode::SUCCESS;
            }
            "--write-corpus" => {
                let dir = PathBuf::from(value("--write-corpus"));
                for t in targets() {
                    let d = dir.join(t.name);
                    std::fs::create_dir_all(&d).expect("the corpus folder is writable");
                    for (i, s) in (t.seeds)().iter().enumerate() {
                        std::fs::write(d.join(format!("seed-{i}")), s).expect("writable");
                    }
                }
                return std::process::ExitCode::SUCCESS;
            }
            n if !n.starts_with('-') => names.push(n.to_string()),
            other => fail(&format!("unknown flag {other}")),
        }
    }
    let all = targets();
    if let Some(n) = names.iter().find(|n| !all.iter().any(|t| &t.name == n)) {
        fail(&format!("unknown target {n} (see --list)"));
    }
    let mut found = 0;
    for t in all
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
    {
        let seeds = load_corpus(&corpus, t);
        let s = fuzz(
            t,
            &seeds,
            Duration::from_secs(secs),
            u64::MAX,
            seed,
            &crashes,
        );
        println!(
            "{:<14} {:>9} execs ({:>7.0}/s), {:>6} accepted, {} panics, {} slow, longest {:.1} ms, peak {:.1} MB",
            t.name,
            s.execs,
            s.execs as f64 / secs.max(1) as f64,
            s.accepted,
            s.panics.len(),
            s.slow.len(),
            s.max_exec.as_secs_f64() * 1e3,
            s.peak_bytes as f64 / 1e6
        );
        for (p, m) in &s.panics {
            println!("  PANIC {}: {m}", p.display());
        }
        for (p, d) in &s.slow {
            println!("  SLOW {} ({:.1} s)", p.display(), d.as_secs_f64());
        }
        found += s.panics.len() + s.slow.len();
    }
    if found > 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}
