//! Which SIMD path the CPU kernels take: the best the processor has, or a lower one asked
//! for with `D2L_CPU=avx2|avx512|scalar`, so that an AVX-512 machine can measure the
//! AVX2 path most readers' machines run. Every kernel that picks a path by CPU feature
//! asks [`cpu_path`] (never `is_x86_feature_detected!` directly).

use std::sync::OnceLock;

/// A SIMD path of the CPU kernels, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CpuPath {
    /// Portable code for the baseline target (SSE2 on x86-64).
    Scalar,
    /// 256-bit AVX2 with FMA.
    Avx2,
    /// 512-bit AVX-512F (with AVX2 and FMA).
    Avx512,
}

impl CpuPath {
    /// The name `D2L_CPU` takes and `d2l bench` records: `scalar`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            CpuPath::Scalar => "scalar",
            CpuPath::Avx2 => "avx2",
            CpuPath::Avx512 => "avx512",
        }
    }

    /// Parses a `D2L_CPU` value (case-insensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<CpuPath> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "none" | "baseline" => Some(CpuPath::Scalar),
            "avx2" => Some(CpuPath::Avx2),
            "avx512" | "avx-512" | "avx512f" => Some(CpuPath::Avx512),
            _ => None,
        }
    }
}

/// The best path this processor runs.
pub fn detected_cpu_path() -> CpuPath {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return CpuPath::Avx512;
            }
            return CpuPath::Avx2;
        }
    }
    CpuPath::Scalar
}

/// The path the kernels take: [`detected_cpu_path`], lowered to `D2L_CPU` when that names
/// a lower one (a higher one than the processor has is ignored, with a note on stderr).
/// Read once per process.
pub fn cpu_path() -> CpuPath {
    static PATH: OnceLock<CpuPath> = OnceLock::new();
    *PATH.get_or_init(|| {
        let best = detected_cpu_path();
        match std::env::var("D2L_CPU") {
            Ok(v) if !v.trim().is_empty() && v.trim() != "native" => match CpuPath::parse(&v) {
                Some(p) if p <= best => p,
                Some(p) => {
                    eprintln!(
                        "D2L_CPU={v}: this processor has no {} path; using {}",
                        p.name(),
                        best.name()
                    );
                    best
                }
                None => {
                    eprintln!(
                        "D2L_CPU={v} is not one of scalar, avx2, avx512, native; using {}",
                        best.name()
                    );
                    best
                }
            },
            _ => best,
        }
    })
}

/// True when the AVX-512 kernels may run (the processor has them and `D2L_CPU` allows).
#[inline]
pub(crate) fn avx512() -> bool {
    cpu_path() >= CpuPath::Avx512
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_path_never_exceeds_the_processor() {
        for p in [CpuPath::Scalar, CpuPath::Avx2, CpuPath::Avx512] {
            assert_eq!(CpuPath::parse(p.name()), Some(p));
        }
        assert_eq!(CpuPath::parse("AVX2"), Some(CpuPath::Avx2));
        assert_eq!(CpuPath::parse("sse9"), None);
        assert!(cpu_path() <= detected_cpu_path());
    }
}
