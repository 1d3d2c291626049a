//! Checks that the CUDA kernel source (the op-code header generated from
//! `src/cuda/op_codes.rs`, then `src/cuda/kernels.cu`) compiles with
//! NVRTC for the architectures we target, and that every kernel entry point
//! the backend loads is present in the PTX.  Needs only libnvrtc, no GPU.
//! Without libnvrtc the test prints one SKIP line and passes, unless `D2L_REQUIRE_NVRTC` is
//! set (`.ci/run` sets it after fetching libnvrtc from NVIDIA's wheel on PyPI).
#![cfg(feature = "cuda")]

use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};

/// Every `extern "C"` entry point the backend loads.
fn expected_kernels() -> Vec<String> {
    d2l_tensor::cuda::kernel_names()
}

#[test]
fn kernels_compile_with_nvrtc() {
    // SAFETY: only probes whether the shared library can be opened.
    let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
    if !present {
        // CI fetches libnvrtc and sets this, so that a missing library fails there.
        assert!(
            std::env::var_os("D2L_REQUIRE_NVRTC").is_none(),
            "D2L_REQUIRE_NVRTC is set but libnvrtc could not be opened (LD_LIBRARY_PATH={:?})",
            std::env::var_os("LD_LIBRARY_PATH")
        );
        println!(
            "SKIP cuda_nvrtc: libnvrtc not found (set LD_LIBRARY_PATH to a CUDA 12/13 nvrtc to run this check)"
        );
        return;
    }
    for arch in ["compute_80", "compute_90"] {
        let opts = CompileOptions {
            use_fast_math: Some(false),
            options: vec![
                "-std=c++17".to_string(),
                format!("--gpu-architecture={arch}"),
            ],
            name: Some("d2l_kernels.cu".to_string()),
            ..Default::default()
        };
        let ptx = match compile_ptx_with_opts(d2l_tensor::cuda::kernel_source(), opts) {
            Ok(p) => p.to_src(),
            Err(cudarc::nvrtc::CompileError::CompileError { log, .. }) => {
                panic!("NVRTC failed for {arch}:\n{}", log.to_string_lossy())
            }
            Err(e) => panic!("NVRTC failed for {arch}: {e:?}"),
        };
        for name in expected_kernels() {
            let entry = format!(".entry {name}(");
            assert!(
                ptx.contains(&entry),
                "{arch}: PTX lacks kernel entry {name}"
            );
        }
        // By-value struct parameters must have the sizes of the #[repr(C)]
        // mirrors in real/ (Strided 144, ConvGeom 120, AdamList 776,
        // AdamHyper 64, PoolGeom 136, NormGeom 32 bytes).
        for (param, bytes) in [
            ("d2l_cast_f32_f64_param_1", 144),
            ("d2l_im2col_f32_param_1", 120),
            ("d2l_adam_f32_param_0", 776),
            ("d2l_adam_f32_param_1", 64),
            ("d2l_max_pool_fwd_f32_param_1", 136),
            ("d2l_norm_stats_f64_param_1", 32),
        ] {
            let decl = format!("{param}[{bytes}]");
            assert!(
                ptx.contains(&decl),
                "{arch}: PTX lacks `{decl}` (struct layout drift)"
            );
        }
        let entries = ptx.matches(".entry ").count();
        assert_eq!(
            entries,
            expected_kernels().len(),
            "{arch}: unexpected entry count"
        );
        println!(
            "cuda_nvrtc: {arch}: {entries} kernels, {} bytes of PTX",
            ptx.len()
        );
    }
}
