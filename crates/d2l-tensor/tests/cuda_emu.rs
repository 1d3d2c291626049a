//! The CUDA kernels' arithmetic, checked on the host: `cuda_emu/test.cpp` includes
//! `src/cuda/kernels.cu` with `cuda_emu/emu.h` standing in for the CUDA built-ins (each
//! block's threads are host threads meeting at `__syncthreads`), and compares strided
//! copies, every unary gradient, broadcasting, comparisons, reductions with ties and NaN,
//! softmax, im2col/col2im and the fused Adam with reference code. This runs where there
//! is no GPU (CI); launches, the driver and cuBLAS are checked only on a GPU
//! (`cuda_parity`). Needs a C++20 compiler (`g++`); without one it prints a skip line.

use std::path::Path;
use std::process::Command;

#[test]
fn kernels_compute_what_the_reference_computes() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = here.join("tests/cuda_emu/test.cpp");
    let kernels = here.join("src/cuda/kernels.cu");
    let exe = std::env::temp_dir().join(format!("d2l_cuda_emu_{}", std::process::id()));
    // The op codes, as NVRTC gets them: the header generated from `op_codes.rs`, included
    // ahead of everything (`-include`), so kernels.cu and test.cpp both use its names.
    let header = exe.with_extension("op_codes.h");
    std::fs::write(&header, d2l_tensor::cuda::op_code_header()).unwrap();
    let compiled = Command::new("g++")
        .args(["-std=c++20", "-O1", "-pthread"])
        .arg("-include")
        .arg(&header)
        .arg(format!("-DKERNELS_CU=\"{}\"", kernels.display()))
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output();
    let _ = std::fs::remove_file(&header);
    let out = match compiled {
        Err(e) => {
            println!("SKIP kernels_compute_what_the_reference_computes: no g++ ({e})");
            return;
        }
        Ok(o) => o,
    };
    assert!(
        out.status.success(),
        "kernels.cu does not compile under the host emulation:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe)
        .output()
        .expect("run the emulated kernel checks");
    let _ = std::fs::remove_file(&exe);
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "emulated kernel checks failed:\n{stdout}"
    );
    assert!(
        stdout.contains("all emulated kernel checks passed"),
        "{stdout}"
    );
}
