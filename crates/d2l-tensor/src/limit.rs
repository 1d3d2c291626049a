//! The memory limit: one check of a requested size (elements × element size, in checked
//! arithmetic) before a tensor, image or buffer is allocated from user input.
//!
//! The limit is the machine's available memory (`MemAvailable` of `/proc/meminfo`, read
//! once) unless `D2L_MAX_ALLOC` sets it: a byte count with an optional unit, `8G`,
//! `512MiB`, `1.5GB`, `100000` (K, M, G, T are powers of 1024, KB, MB, GB, TB of 1000).
//!
//! * [`check_bytes`], [`check_elements`] and [`check_shape`] return
//!   [`Error::TooLarge`] — "what, the size asked for, the limit" — for a request over
//!   the limit or one whose size overflows; callers that know which flag asked for the
//!   size name it in `what`.
//! * The engine's constructors that cannot return an error ([`Tensor::zeros`],
//!   [`Tensor::randn`], ...) check their shape too. What happens when one is over the
//!   limit is the program's choice: by default they panic with the message; after
//!   [`install`] (the `d2l` program calls it at start-up) they print `error: <message>`
//!   and end the process with exit code 1.
//! * [`LimitedAlloc`] is a global allocator for programs that call [`install`]: any
//!   single allocation over the limit, and any allocation the system refuses, ends the
//!   process the same way instead of aborting (exit code 134) — the backstop for buffers
//!   no check saw. It writes its line without allocating.
//!
//! [`Tensor::zeros`]: crate::Tensor::zeros
//! [`Tensor::randn`]: crate::Tensor::randn

use crate::{DType, Error, Result};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// The most a compressed input (a data archive, a gzip file, a `.pth` record without a
/// declared size) may expand to, as a multiple of its own size: the data sets' archives
/// expand by at most ~6× (Fashion-MNIST's gzip files, PTB's text), so 100× leaves room
/// while a decompression bomb (deflate reaches ~1032×) stops early.
pub const MAX_EXPANSION: u64 = 100;

/// The environment variable that sets the limit.
pub const ENV: &str = "D2L_MAX_ALLOC";

/// The memory limit and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Bytes one request may take.
    pub bytes: u64,
    /// Where the number came from.
    pub source: LimitSource,
}

/// Where a [`Limit`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    /// `D2L_MAX_ALLOC`.
    Env,
    /// The available memory when the limit was first read.
    Available,
    /// Neither: the platform does not say (the limit is then `isize::MAX` bytes).
    Unknown,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let from = match self.source {
            LimitSource::Env => "set by D2L_MAX_ALLOC",
            LimitSource::Available => "the available memory; D2L_MAX_ALLOC changes it",
            LimitSource::Unknown => "the address space; D2L_MAX_ALLOC sets a lower one",
        };
        write!(f, "{} ({from})", human_bytes(self.bytes as u128))
    }
}

static LIMIT: OnceLock<(Limit, Option<String>)> = OnceLock::new();

/// The limit (read once per process; see the module docs). A malformed `D2L_MAX_ALLOC`
/// is ignored here (the available memory applies) and reported by [`env_error`].
pub fn limit() -> Limit {
    LIMIT.get_or_init(read_limit).0
}

/// Why `D2L_MAX_ALLOC` could not be read, if it could not: programs report it at start-up.
pub fn env_error() -> Option<String> {
    LIMIT.get_or_init(read_limit).1.clone()
}

fn read_limit() -> (Limit, Option<String>) {
    let fallback = match available_memory() {
        Some(b) => Limit {
            bytes: b,
            source: LimitSource::Available,
        },
        None => Limit {
            bytes: isize::MAX as u64,
            source: LimitSource::Unknown,
        },
    };
    match std::env::var(ENV) {
        Err(std::env::VarError::NotPresent) => (fallback, None),
        Err(_) => (fallback, Some(format!("{ENV} is not valid UTF-8"))),
        Ok(s) => match parse_size(&s) {
            Some(b) if b > 0 => (
                Limit {
                    bytes: b.min(isize::MAX as u64),
                    source: LimitSource::Env,
                },
                None,
            ),
            _ => (
                fallback,
                Some(format!(
                    "{ENV} expects a positive size such as 8G, 512MiB or 1000000 (bytes), got `{s}`"
                )),
            ),
        },
    }
}

/// `MemAvailable` of `/proc/meminfo` in bytes (Linux), else `None`.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Parses a size: a number (decimals allowed) and an optional unit — `K`/`KiB`, `M`/`MiB`,
/// `G`/`GiB`, `T`/`TiB` (powers of 1024), `KB`, `MB`, `GB`, `TB` (powers of 1000), `B`.
/// `None` when it is not one, or is not below 2⁶⁴ bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim();
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return None,
    };
    if num.is_empty() || num.matches('.').count() > 1 || num == "." {
        return None;
    }
    let v = num.parse::<f64>().ok()? * mult;
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then(|| v.round() as u64)
}

/// A byte count for people: `37.3 GB`, `512 B` (powers of 1000, three significant
/// digits), with the exact count for anything over a kilobyte.
pub fn human_bytes(b: u128) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {} ({b} bytes)", units[u])
    }
}

/// Checks a request of `bytes` (`None`: its computation overflowed) against [`limit`].
/// Returns the byte count when it fits.
pub fn check_bytes(what: &str, bytes: Option<u128>) -> Result<usize> {
    check_against(what, bytes, limit())
}

/// [`check_bytes`] against a given limit (for tests and callers with their own limit).
pub fn check_against(what: &str, bytes: Option<u128>, limit: Limit) -> Result<usize> {
    match bytes {
        Some(b) if b <= limit.bytes as u128 && b <= isize::MAX as u128 => Ok(b as usize),
        _ => Err(Error::TooLarge {
            what: what.to_string(),
            bytes,
            limit: limit.to_string(),
        }),
    }
}

/// The product of `dims` in checked arithmetic (`None` on overflow).
pub fn checked_numel(dims: &[usize]) -> Option<u128> {
    dims.iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
        .filter(|&n| n <= usize::MAX as u128)
}

/// Checks `product(dims)` elements of `elem_size` bytes; returns the element count.
pub fn check_elements(what: &str, dims: &[usize], elem_size: usize) -> Result<usize> {
    let numel = checked_numel(dims);
    check_bytes(what, numel.and_then(|n| n.checked_mul(elem_size as u128)))?;
    Ok(numel.expect("checked above") as usize)
}

/// Checks a tensor of `shape` and `dtype`; `op` names the constructor in the message.
/// Returns the element count. Cheap when the size fits (the message is built only for an
/// error): the engine's constructors call it on every tensor.
pub fn check_shape(op: &str, shape: &[usize], dtype: DType) -> Result<usize> {
    if shape.contains(&0) {
        return Ok(0);
    }
    let numel = checked_numel(shape);
    let bytes = numel.and_then(|n| n.checked_mul(dtype.size_in_bytes() as u128));
    let l = limit();
    match (numel, bytes) {
        (Some(n), Some(b)) if b <= l.bytes as u128 && b <= isize::MAX as u128 => Ok(n as usize),
        _ => Err(Error::TooLarge {
            what: format!("{op}: a tensor of shape {shape:?} ({dtype})"),
            bytes,
            limit: l.to_string(),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// the program's choice: exit with one line instead of panicking or aborting

static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The limit the allocator enforces; 0 before [`install`].
static ALLOC_LIMIT: AtomicU64 = AtomicU64::new(0);

/// Makes a size over the limit end the process with `error: <message>` and exit code 1:
/// in the engine's infallible constructors and, when the program uses [`LimitedAlloc`],
/// in any allocation. Returns the limit. Call it once at start-up.
pub fn install() -> Limit {
    let l = limit();
    ALLOC_LIMIT.store(l.bytes, Ordering::Relaxed);
    INSTALLED.store(true, Ordering::Relaxed);
    l
}

/// Whether [`install`] was called.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// The result of a check in a constructor that cannot return an error: the value, or
/// (over the limit) the end of the process after [`install`], else a panic with the
/// message.
pub(crate) fn enforce<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) if installed() => {
            eprintln!("error: {e}");
            std::process::exit(1)
        }
        Err(e) => panic!("{e}"),
    }
}

/// A global allocator that forwards to the system's and, after [`install`], ends the
/// process with one `error:` line and exit code 1 when a single allocation is over the
/// limit or the system cannot give the memory (instead of Rust's abort, exit code 134).
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: d2l_tensor::limit::LimitedAlloc = d2l_tensor::limit::LimitedAlloc;
/// ```
pub struct LimitedAlloc;

impl LimitedAlloc {
    #[inline]
    fn over(size: usize) -> bool {
        let l = ALLOC_LIMIT.load(Ordering::Relaxed);
        l != 0 && size as u64 > l
    }
}

impl LimitedAlloc {
    /// `alloc()` for `size` bytes, with the limit's checks around it.
    #[inline]
    fn guarded(size: usize, alloc: impl FnOnce() -> *mut u8) -> *mut u8 {
        if Self::over(size) {
            die(size, true);
        }
        let p = alloc();
        if p.is_null() && installed() {
            die(size, false);
        }
        p
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments; the extra
// checks only read atomics and may end the process.
unsafe impl GlobalAlloc for LimitedAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::guarded(layout.size(), || System.alloc(layout))
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::guarded(layout.size(), || System.alloc_zeroed(layout))
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::guarded(new_size, || System.realloc(ptr, layout, new_size))
    }
}

/// A fixed buffer that formats without allocating (text past its end is dropped).
struct StackBuf {
    buf: [u8; 320],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes the allocator's line to stderr and ends the process, allocating nothing.
#[cold]
fn die(size: usize, over_limit: bool) -> ! {
    use std::fmt::Write;
    let mut b = StackBuf {
        buf: [0; 320],
        len: 0,
    };
    let limit = ALLOC_LIMIT.load(Ordering::Relaxed);
    let gb = |x: u64| x as f64 / 1e9;
    let _ = if over_limit {
        writeln!(
            b,
            "error: out of memory: an allocation of {size} bytes ({:.1} GB) is over the memory limit of {limit} bytes ({:.1} GB; {ENV} changes it)",
            gb(size as u64),
            gb(limit)
        )
    } else {
        writeln!(
            b,
            "error: out of memory: the system refused an allocation of {size} bytes ({:.1} GB); the memory limit is {limit} bytes ({ENV} changes it)",
            gb(size as u64)
        )
    };
    raw::write_stderr(&b.buf[..b.len]);
    raw::exit(1)
}

#[cfg(unix)]
mod raw {
    pub fn write_stderr(bytes: &[u8]) {
        // SAFETY: writes `bytes.len()` bytes from a live slice to fd 2.
        unsafe {
            libc::write(2, bytes.as_ptr().cast(), bytes.len());
        }
    }

    pub fn exit(code: i32) -> ! {
        // SAFETY: ends the process at once; runs no Rust code (nothing may allocate here).
        unsafe { libc::_exit(code) }
    }
}

#[cfg(not(unix))]
mod raw {
    pub fn write_stderr(bytes: &[u8]) {
        use std::io::Write;
        let _ = std::io::stderr().write_all(bytes);
    }

    pub fn exit(code: i32) -> ! {
        std::process::exit(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: Limit = Limit {
        bytes: 1_000_000_000,
        source: LimitSource::Env,
    };

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("100000"), Some(100_000));
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_size(" 2 k "), Some(2048));
        for bad in ["", "G", "1.2.3", "-5", "5X", "1e3", "."] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn checks_compare_bytes_with_the_limit() {
        assert_eq!(
            check_against("x", Some(1_000_000_000), GB),
            Ok(1_000_000_000)
        );
        let e = check_against("--scale 8", Some(1_000_000_001), GB).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("--scale 8: "), "{msg}");
        assert!(msg.contains("1000000001 bytes"), "{msg}");
        assert!(msg.contains("1.0 GB (1000000000 bytes)"), "{msg}");
        let e = check_against("--input", None, GB).unwrap_err().to_string();
        assert!(e.contains("overflows"), "{e}");
    }

    #[test]
    fn element_counts_are_checked_without_overflow() {
        assert_eq!(checked_numel(&[4_000_000_000, 4_000_000_000, 64]), None);
        assert_eq!(checked_numel(&[2, 3, 4]), Some(24));
        assert_eq!(checked_numel(&[]), Some(1));
        let e = check_elements("t", &[usize::MAX, 2], 4).unwrap_err();
        assert!(matches!(e, Error::TooLarge { bytes: None, .. }));
        assert_eq!(check_shape("zeros", &[0, usize::MAX], DType::F32), Ok(0));
    }

    #[test]
    fn the_stack_buffer_truncates_instead_of_allocating() {
        use std::fmt::Write;
        let mut b = StackBuf {
            buf: [0; 320],
            len: 0,
        };
        for _ in 0..100 {
            let _ = write!(b, "0123456789");
        }
        assert_eq!(b.len, 320);
    }
}
