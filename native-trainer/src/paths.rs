//! Where things are found when the user does not say.

use std::path::PathBuf;

/// The base model's directory when neither `--model` nor `$TKRE_MODEL` is given:
/// `$TKRE_CACHE/models/all-MiniLM-L6-v2` (default cache `~/.cache/tkre`), where
/// scripts/setup/fetch-base-model.sh installs it.
pub fn default_model_dir() -> PathBuf {
    let cache = std::env::var_os("TKRE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tkre")))
        .unwrap_or_else(|| PathBuf::from(".cache/tkre"));
    cache.join("models/all-MiniLM-L6-v2")
}
