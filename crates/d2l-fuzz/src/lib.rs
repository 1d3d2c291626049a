//! Fuzzing on stable Rust: a seeded mutation harness over every parser of untrusted bytes
//! in d2l-rs (issue 22).
//!
//! Each [`Target`] feeds bytes to one reader through its public API, the way a user's
//! file reaches it: the restricted unpickler and the `.pth` zip and legacy readers,
//! safetensors, IDX (plain and gzip), the house-prices CSV, the banana `label.csv`, the
//! text reader and vocabulary, PNG/JPEG decoding, CIFAR-10 batch files, image folders and
//! the data archives (zip, tar, tar.gz). [`fuzz`] starts from the seed corpus
//! (`corpus/<target>/`, small files), mutates inputs (bit flips, interesting integers,
//! insertions, deletions, duplications, splices between seeds) with a seeded generator,
//! and records every finding:
//!
//! * a **panic** (the input is saved under the crash folder);
//! * a **slow** input (one execution over [`SLOW`]);
//! * an **allocation beyond the limit**: this crate's global allocator counts every
//!   allocation; one over [`ALLOC_CAP`] ends the process with a line naming the target
//!   and the input's file (it cannot unwind), and the engine's own limit is set to
//!   [`ENGINE_LIMIT`] so the parsers' size checks are exercised.
//!
//! `cargo test -p d2l-fuzz` runs every target for a few seconds (`D2L_FUZZ_SECS`);
//! `cargo run --release -p d2l-fuzz -- [TARGET ...] --secs N` runs longer.

pub mod seeds;
pub mod targets;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use targets::{targets, Target};

/// One execution slower than this is a finding.
pub const SLOW: Duration = Duration::from_secs(5);
/// The engine's memory limit while fuzzing (`D2L_MAX_ALLOC`): declared sizes above it
/// must be refused by the parsers' checks.
pub const ENGINE_LIMIT: &str = "256MiB";
/// The largest input a mutation makes (the seeds are a few kilobytes).
pub const MAX_INPUT: usize = 64 << 10;
/// One allocation above this ends the fuzzing process as a finding.
pub const ALLOC_CAP: usize = 512 << 20;

// ---------------------------------------------------------------------------------------
// the counting allocator

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The file holding the input being run, as a NUL-terminated path (for the abort line).
static CURRENT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

/// Counts live bytes and their peak; refuses (ends the process on) any allocation over
/// [`ALLOC_CAP`].
pub struct CountingAlloc;

impl CountingAlloc {
    fn track(size: usize) {
        if size > ALLOC_CAP {
            over_cap(size);
        }
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

// SAFETY: forwards to `System`; the counters are atomics.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::track(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::track(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::track(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[cold]
fn over_cap(size: usize) -> ! {
    use libc::{_exit, strlen, write};
    let head = b"FINDING: an allocation over the fuzzing cap (bytes, hex): 0x";
    let mut hex = [0u8; 16];
    for (i, h) in hex.iter_mut().enumerate() {
        let nib = (size >> (60 - 4 * i)) & 0xf;
        *h = b"0123456789abcdef"[nib];
    }
    let input = CURRENT.load(Ordering::Relaxed);
    // SAFETY: raw writes of live buffers to stderr and an immediate exit; `input` is null
    // or a NUL-terminated string leaked by `set_current`.
    unsafe {
        write(2, head.as_ptr().cast(), head.len());
        write(2, hex.as_ptr().cast(), hex.len());
        if !input.is_null() {
            let t = b"; input: ";
            write(2, t.as_ptr().cast(), t.len());
            write(2, input.cast(), strlen(input.cast()));
        }
        write(2, b"\n".as_ptr().cast(), 1);
        _exit(3)
    }
}

fn set_current(path: &Path) {
    let mut s = path.to_string_lossy().into_owned().into_bytes();
    s.push(0);
    let p = Box::leak(s.into_boxed_slice()).as_mut_ptr();
    CURRENT.store(p, Ordering::Relaxed);
}

/// Sets the engine's memory limit for fuzzing (once, before any check reads it).
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY (edition 2021: safe): set before the engine's limit is first read.
        std::env::set_var(d2l_tensor::limit::ENV, ENGINE_LIMIT);
        assert_eq!(
            d2l_tensor::limit::limit().source,
            d2l_tensor::limit::LimitSource::Env
        );
    });
}

// ---------------------------------------------------------------------------------------
// mutation

/// xorshift64*: a small seeded generator (the runs are reproducible from their seed).
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

const INTERESTING: [u64; 14] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x4000_0000,
    0x0100_0000,
    u64::MAX,
    i64::MAX as u64,
];

/// One to eight random mutations of `input`, splicing from `other` sometimes; the result
/// is cut to [`MAX_INPUT`] bytes.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = v.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                // An interesting integer, 1, 2, 4 or 8 bytes, either endianness.
                let w = 1 << rng.below(4);
                let x = INTERESTING[rng.below(INTERESTING.len())];
                let bytes = if rng.below(2) == 0 {
                    x.to_le_bytes()
                } else {
                    x.to_be_bytes()
                };
                let at = rng.below(len);
                let src = if rng.below(2) == 0 {
                    &bytes[..w]
                } else {
                    &bytes[8 - w..]
                };
                for (k, b) in src.iter().enumerate() {
                    if at + k < len {
                        v[at + k] = *b;
                    }
                }
            }
            3 if len > 1 => {
                let a = rng.below(len);
                let n = 1 + rng.below((len - a).min(64));
                v.drain(a..a + n);
            }
            4 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let ins: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(at..at, ins);
            }
            5 if len > 0 => {
                // Duplicate a chunk (repeats records, headers).
                let a = rng.below(len);
                let n = 1 + rng.below((len - a).min(256));
                let chunk = v[a..a + n].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            6 if len > 0 => v.truncate(rng.below(len)),
            7 if !other.is_empty() => {
                // Splice: our head with the other's tail.
                let a = rng.below(v.len() + 1);
                let b = rng.below(other.len());
                v.truncate(a);
                v.extend_from_slice(&other[b..]);
            }
            8 if len > 1 => {
                // Copy a chunk over another place.
                let a = rng.below(len);
                let b = rng.below(len);
                let n = 1 + rng.below((len - a.max(b)).min(32));
                let chunk = v[a..a + n].to_vec();
                v[b..b + n].copy_from_slice(&chunk);
            }
            _ => {
                if len > 0 {
                    let i = rng.below(len);
                    v[i] = v[i].wrapping_add(1 + rng.below(4) as u8);
                }
            }
        }
        v.truncate(MAX_INPUT);
    }
    v
}

// ---------------------------------------------------------------------------------------
// the loop

/// What a run found.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Executions.
    pub execs: u64,
    /// Executions the reader accepted (the rest were errors, as they should be).
    pub accepted: u64,
    /// Panics: the saved input and the message.
    pub panics: Vec<(PathBuf, String)>,
    /// Inputs that took longer than [`SLOW`], with their time.
    pub slow: Vec<(PathBuf, Duration)>,
    /// The longest execution.
    pub max_exec: Duration,
    /// The most bytes live at once during the run (the harness's own included).
    pub peak_bytes: usize,
}

/// Reads the seed corpus of `target` from `corpus/<target>/` (falling back to the
/// generated seeds when the folder is missing).
pub fn load_corpus(corpus_root: &Path, target: &Target) -> Vec<Vec<u8>> {
    let dir = corpus_root.join(target.name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let mut v: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    if v.is_empty() {
        v = (target.seeds)();
    }
    v
}

/// Runs `target` from `corpus` for `budget` (or `max_execs` executions), mutating with
/// `seed`; panicking inputs are saved in `crash_dir`.
pub fn fuzz(
    target: &Target,
    corpus: &[Vec<u8>],
    budget: Duration,
    max_execs: u64,
    seed: u64,
    crash_dir: &Path,
) -> Stats {
    init();
    assert!(!corpus.is_empty(), "{}: an empty corpus", target.name);
    let work = std::env::temp_dir().join(format!(
        "d2l-fuzz-{}-{}-{seed}",
        target.name,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("a work folder");
    let input_file = work.join("input.bin");
    set_current(&input_file);
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    let mut pool: Vec<Vec<u8>> = corpus.to_vec();
    let start = Instant::now();
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    while stats.execs < max_execs && start.elapsed() < budget {
        // The seeds unchanged first, then mutants of seeds or of recent mutants.
        let input = if (stats.execs as usize) < corpus.len() {
            corpus[stats.execs as usize].clone()
        } else {
            let base = &pool[rng.below(pool.len())];
            let other = &corpus[rng.below(corpus.len())];
            mutate(&mut rng, base, other)
        };
        let _ = std::fs::write(&input_file, &input);
        let t0 = Instant::now();
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (target.run)(&work, &input)));
        let dt = t0.elapsed();
        stats.execs += 1;
        stats.max_exec = stats.max_exec.max(dt);
        match r {
            Ok(true) => stats.accepted += 1,
            Ok(false) => {}
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into());
                let saved = save(crash_dir, target.name, "panic", &input);
                stats.panics.push((saved, msg));
            }
        }
        if dt > SLOW {
            let saved = save(crash_dir, target.name, "slow", &input);
            stats.slow.push((saved, dt));
        }
        if pool.len() < 256 {
            pool.push(input);
        } else {
            let i = rng.below(pool.len());
            pool[i] = input;
        }
    }
    std::panic::set_hook(quiet);
    stats.peak_bytes = PEAK.load(Ordering::Relaxed);
    let _ = std::fs::remove_dir_all(&work);
    stats
}

fn save(dir: &Path, target: &str, kind: &str, input: &[u8]) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input {
        h = (h ^ *b as u64).wrapping_mul(0x100_0000_01b3);
    }
    let p = dir.join(format!("{target}-{kind}-{h:016x}"));
    let _ = std::fs::write(&p, input);
    p
}
