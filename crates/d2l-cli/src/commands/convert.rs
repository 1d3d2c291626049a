//! `d2l convert IN.pth OUT.safetensors`: a PyTorch checkpoint (`torch.save`, zip or legacy
//! format, read by a restricted unpickler that builds only tensors and dicts) rewritten as
//! safetensors, which every d2l command and PyTorch's `safetensors` load directly.

use super::CliResult;
use clap::Args;
use std::path::PathBuf;

/// Flags of `d2l convert`.
#[derive(Args, Clone, Debug)]
pub struct ConvertArgs {
    /// The PyTorch checkpoint (`.pth` / `.pt`), e.g. resnet18-f37072fd.pth.
    pub input: PathBuf,
    /// The safetensors file to write (written atomically).
    pub output: PathBuf,
}

/// Runs `d2l convert`.
pub fn run(a: ConvertArgs) -> CliResult<()> {
    if a.output.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        return Err(format!(
            "the output should end in .safetensors, got {}",
            a.output.display()
        )
        .into());
    }
    let n = d2l_nn::pth::convert_pth_to_safetensors(&a.input, &a.output)?;
    println!(
        "wrote {} tensors from {} to {}",
        n,
        a.input.display(),
        a.output.display()
    );
    Ok(())
}
