//! Shared by the integration tests: where the base model is and how to load it.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::Device;
use tkre::RelationEncoder;

/// The base model directory: $TKRE_MODEL, else the cache that scripts/fetch-base-model.sh fills.
pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("TKRE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("TKRE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tkre")
                });
            cache.join("models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "base model not found in {}; run scripts/fetch-base-model.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

#[allow(deprecated)] // see native-trainer/src/runtime.rs
pub fn cpu() -> Device {
    Device::ndarray()
}

pub fn base_encoder() -> RelationEncoder {
    RelationEncoder::load_dir(&model_dir(), cpu()).expect("base model loads")
}

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join(path)
}
