//! `manifest.json` of an exported model directory (written by `tkre export`): each file's
//! size and sha256, checked before a model is used, so a corrupted or truncated download is
//! reported as such instead of as a confusing parse error (or, worse, loading at all).

use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    sha256_hex_of(&[bytes])
}

/// The sha256 of `parts` one after the other (of their concatenation), in hex.
pub fn sha256_hex_of(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// One file a manifest lists.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestEntry {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

/// Reads and checks a manifest's text (`origin` names it in errors): a `files` table listing
/// every model file, by plain name, each with its sha256 and size. Touches no file.
pub fn parse(text: &str, origin: &str) -> Result<Vec<ManifestEntry>> {
    let manifest: serde_json::Value = serde_json::from_str(text)
        .with_context(|| format!("{origin} is not valid JSON; export the model again"))?;
    let Some(files) = manifest["files"].as_object() else {
        bail!("{origin}: no \"files\" table; export the model again with `tkre export`");
    };
    for required in MODEL_FILES {
        if !files.contains_key(*required) {
            bail!(
                "{origin}: \"files\" does not list {required}; every model file must be checked, so a \
                 manifest without it is refused (export the model again)"
            );
        }
    }
    let mut entries = Vec::with_capacity(files.len());
    for (name, entry) in files {
        if !is_plain_file_name(name) {
            bail!(
                "{origin}: \"files\" names {name:?}; a manifest lists files of its own folder by plain \
                 name (no folders, no \"..\", no absolute paths)"
            );
        }
        let (Some(sha256), Some(bytes)) = (entry["sha256"].as_str(), entry["bytes"].as_u64()) else {
            bail!("{origin}: \"files\".\"{name}\" needs \"sha256\" and \"bytes\"");
        };
        let hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            bail!("{origin}: \"files\".\"{name}\".\"sha256\" is not 64 hex digits");
        }
        entries.push(ManifestEntry {
            name: name.clone(),
            sha256: sha256.to_ascii_lowercase(),
            bytes,
        });
    }
    Ok(entries)
}

/// The files a model directory needs; a manifest must list each of them.
pub const MODEL_FILES: &[&str] = &["config.json", "model.safetensors", "tokenizer.json"];

/// A file name inside the model folder: no separator, not `.`/`..`, not hidden, not empty.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', ':', '\0'])
        && std::path::Path::new(name).components().count() == 1
}

/// Checks every file `dir/manifest.json` lists against its recorded size and sha256. A
/// directory without a manifest (a training checkpoint) passes unchecked; returns whether a
/// manifest was checked.
pub fn verify(dir: &Path) -> Result<bool> {
    let path = dir.join("manifest.json");
    if !path.is_file() {
        return Ok(false);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    for entry in parse(&text, &path.display().to_string())? {
        let file = dir.join(&entry.name);
        let bytes = std::fs::read(&file)
            .with_context(|| format!("reading {} (listed in {})", file.display(), path.display()))?;
        let digest = sha256_hex(&bytes);
        if digest != entry.sha256 || bytes.len() as u64 != entry.bytes {
            bail!(
                "{} is corrupt or incomplete: sha256 {digest} ({} bytes), manifest.json says {} \
                 ({} bytes); download or export it again",
                file.display(),
                bytes.len(),
                entry.sha256,
                entry.bytes
            );
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest that names files outside its folder (a sha256 oracle on any file) or leaves
    /// the weights unlisted (corrupted weights would load) is refused.
    #[test]
    fn manifests_must_list_the_model_files_by_plain_name() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |bytes: &[u8]| serde_json::json!({"sha256": sha256_hex(bytes), "bytes": bytes.len()});
        let mut files = serde_json::Map::new();
        for name in MODEL_FILES {
            std::fs::write(dir.path().join(name), name.as_bytes()).unwrap();
            files.insert(name.to_string(), entry(name.as_bytes()));
        }
        let write = |files: &serde_json::Map<String, serde_json::Value>| {
            let manifest = serde_json::json!({"format": "tkre-model", "files": files});
            std::fs::write(dir.path().join("manifest.json"), manifest.to_string()).unwrap();
        };
        write(&files);
        assert!(verify(dir.path()).unwrap());

        let secret = dir.path().parent().unwrap().join("secret.txt");
        std::fs::write(&secret, b"secret").unwrap();
        for name in [
            "../secret.txt",
            "/etc/passwd",
            "sub/config.json",
            "..",
            ".hidden",
            "a\\b",
            "C:x",
        ] {
            let mut bad = files.clone();
            bad.insert(name.to_string(), entry(b"secret"));
            write(&bad);
            let error = verify(dir.path()).unwrap_err().to_string();
            assert!(error.contains("plain"), "{name}: {error}");
        }
        let _ = std::fs::remove_file(secret);

        let mut without = files.clone();
        without.remove("model.safetensors");
        write(&without);
        let error = verify(dir.path()).unwrap_err().to_string();
        assert!(error.contains("does not list model.safetensors"), "{error}");
    }
}
