//! Where models are found and which device runs them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::Device;
use tkre::RelationEncoder;

use crate::ModelArgs;

pub use tkre_trainer::paths::default_model_dir;

/// The compute device for a `--device` name (clap has checked it).
// flex is the CPU default: as fast as ndarray at batch 1 and 1.6x faster at batch 32 on 2
// cores (bench/encoder.sh), and burn 0.22 deprecates ndarray.
#[allow(deprecated)]
pub fn device(name: &str) -> Device {
    match name {
        "ndarray" => Device::ndarray(),
        _ => Device::flex(),
    }
}

pub fn load_encoder(args: &ModelArgs) -> Result<RelationEncoder> {
    let dir = args
        .model
        .clone()
        .or_else(|| std::env::var_os("TKRE_MODEL").map(PathBuf::from))
        .unwrap_or_else(default_model_dir);
    tkre_trainer::manifest::verify(&dir)?;
    let mut encoder = RelationEncoder::load_dir(&dir, device(&args.device))
        .with_context(|| format!("loading model from {}", dir.display()))?;
    encoder.set_max_len(args.max_length)?;
    if args.device == "browser-cpu" {
        encoder.use_fused_cpu()?;
    }
    Ok(encoder)
}
