//! Shared by the integration tests: where the base model is and how to load it.
#![allow(dead_code)]

use std::path::PathBuf;

use tkre::{EngineRequest, RelationEncoder};

/// The base model directory: $TKRE_MODEL, else the cache that scripts/setup/fetch-base-model.sh fills.
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
        "base model not found in {}; run scripts/setup/fetch-base-model.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// The engine most tests run on: burn's ndarray backend, deterministic and single-threaded.
pub fn engine() -> EngineRequest {
    EngineRequest::parse("burn-ndarray").unwrap()
}

pub fn base_encoder() -> RelationEncoder {
    RelationEncoder::load_dir(&model_dir(), engine()).expect("base model loads")
}

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join(path)
}
