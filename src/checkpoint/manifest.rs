//! `manifest.json` of an exported model directory (written by `tkre export`): which files make
//! the model, each with its size and sha256 (checked before use, so a corrupt or truncated
//! download is reported as such), and how to read the model: its precision, entity markers,
//! relation representation and maximum sequence length. Every reader honours these fields:
//! `tkre` and the browser package both load through [`Manifest::parse`] (in the browser, the
//! wasm module parses the manifest the JavaScript side fetched).
//!
//! ```json
//! {"format": "tkre-model", "version": 1, "name": "...", "precision": "fp16",
//!  "markers": "tkre-punctuation", "representation": "entity-mean-sentence", "max_length": 256,
//!  "files": {"config.json": {"sha256": "...", "bytes": 612}, "model.safetensors": {...},
//!            "tokenizer.json": {...}},
//!  "card": {"base_model": "...", "license": "...", "source": "..."}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::MIN_POSITIONS;
use super::precision::Precision;
use crate::error::{Result, TkreError};

/// The value of `format`.
pub const FORMAT: &str = "tkre-model";
/// The manifest version this library reads and writes.
pub const VERSION: u32 = 1;
/// The files a model directory needs; a manifest must list each of them.
pub const MODEL_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];
/// The entity markers every model of this project is trained and exported with
/// (`crate::text::markers`).
pub const MARKERS: &str = "tkre-punctuation";

/// One file of a model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// 64 lower-case hex digits.
    pub sha256: String,
    pub bytes: u64,
}

/// A model directory's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// Shown to users.
    pub name: String,
    pub precision: Precision,
    /// How the weights are stored, in words ([`Precision::description`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// The entity markers the model expects: [`MARKERS`].
    pub markers: String,
    /// How relation instances become vectors (`crate::fewshot::Representation`'s names).
    pub representation: String,
    /// The maximum tokens per sequence the model is used with, [CLS]/[SEP] included.
    pub max_length: usize,
    /// Every file of the model by plain name (no folders).
    pub files: BTreeMap<String, ManifestFile>,
    /// Score calibration fitted for this model (`tkre calibrate`): softmax temperature and
    /// recommended none-of-the-above threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<crate::fewshot::Calibration>,
    /// The model card: where the model comes from, its licence, training and accuracy.
    #[serde(default)]
    pub card: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    /// Parses and checks a manifest's text (`origin` names it in errors). Touches no file.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let manifest: Manifest = serde_json::from_str(text).map_err(|e| {
            TkreError::Model(format!(
                "{origin} is not a tkre model manifest ({e}); export the model again with `tkre export`"
            ))
        })?;
        manifest.check(origin)?;
        Ok(manifest)
    }

    /// Checks the fields a reader relies on.
    pub fn check(&self, origin: &str) -> Result<()> {
        let error = |message: String| Err(TkreError::Model(format!("{origin}: {message}")));
        if self.format != FORMAT {
            return error(format!("\"format\" is {:?}, not {FORMAT:?}", self.format));
        }
        if self.version != VERSION {
            return error(format!(
                "manifest version {} is not supported (this version of tkre reads version {VERSION}); \
                 update the package or export the model again",
                self.version
            ));
        }
        if self.markers != MARKERS {
            return error(format!(
                "\"markers\" is {:?}; this version of tkre marks entities as {MARKERS:?} only",
                self.markers
            ));
        }
        if self.max_length < MIN_POSITIONS {
            return error(format!(
                "\"max_length\" is {}; at least {MIN_POSITIONS} tokens are needed",
                self.max_length
            ));
        }
        for required in MODEL_FILES {
            if !self.files.contains_key(required) {
                return error(format!(
                    "\"files\" does not list {required}; every model file must be checked, so a manifest \
                     without it is refused (export the model again)"
                ));
            }
        }
        for (name, file) in &self.files {
            if !is_plain_file_name(name) {
                return error(format!(
                    "\"files\" names {name:?}; a manifest lists files of its own folder by plain name \
                     (no folders, no \"..\", no absolute paths)"
                ));
            }
            let hex = file.sha256.len() == 64
                && file
                    .sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !hex {
                return error(format!(
                    "\"files\".\"{name}\".\"sha256\" is not 64 lower-case hex digits"
                ));
            }
        }
        Ok(())
    }

    /// Checks `bytes` against the entry of `name`: size, then sha256.
    pub fn verify_file(&self, name: &str, bytes: &[u8], origin: &str) -> Result<()> {
        let Some(entry) = self.files.get(name) else {
            return Err(TkreError::Model(format!(
                "{origin}: the manifest does not list {name}"
            )));
        };
        let digest = sha256_hex(bytes);
        if digest != entry.sha256 || bytes.len() as u64 != entry.bytes {
            return Err(TkreError::Model(format!(
                "{origin} is corrupt or incomplete: sha256 {digest} ({} bytes), manifest.json says {} \
                 ({} bytes); download or export it again",
                bytes.len(),
                entry.sha256,
                entry.bytes
            )));
        }
        Ok(())
    }

    /// Reads and checks `dir/manifest.json` and every file it lists. A directory without a
    /// manifest (a training checkpoint) gives `None`.
    #[cfg(not(target_family = "wasm"))]
    pub fn verify_dir(dir: &std::path::Path) -> Result<Option<Self>> {
        let path = dir.join("manifest.json");
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| TkreError::io(&path, e))?;
        let manifest = Self::parse(&text, &path.display().to_string())?;
        for name in manifest.files.keys() {
            let file = dir.join(name);
            let bytes = std::fs::read(&file).map_err(|e| TkreError::io(&file, e))?;
            manifest.verify_file(name, &bytes, &file.display().to_string())?;
        }
        Ok(Some(manifest))
    }
}

/// The sha256 of `bytes`, in lower-case hex.
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

/// A file name inside the model folder: no separator, not `.`/`..`, not hidden, not empty.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', ':', '\0'])
        && std::path::Path::new(name).components().count() == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_with(files: &[(&str, &[u8])]) -> serde_json::Value {
        let files: serde_json::Map<_, _> = files
            .iter()
            .map(|(name, bytes)| {
                (
                    name.to_string(),
                    serde_json::json!({"sha256": sha256_hex(bytes), "bytes": bytes.len()}),
                )
            })
            .collect();
        serde_json::json!({"format": FORMAT, "version": 1, "name": "m", "precision": "int8",
            "markers": MARKERS, "representation": "entity-mean-sentence", "max_length": 256, "files": files})
    }

    /// A manifest that names files outside its folder (a sha256 oracle on any file) or leaves
    /// the weights unlisted (corrupted weights would load) is refused.
    #[test]
    fn manifests_must_list_the_model_files_by_plain_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<(&str, &[u8])> = Vec::new();
        for name in MODEL_FILES {
            std::fs::write(dir.path().join(name), name.as_bytes()).unwrap();
            files.push((name, name.as_bytes()));
        }
        let write = |value: &serde_json::Value| {
            std::fs::write(dir.path().join("manifest.json"), value.to_string()).unwrap();
        };
        write(&manifest_with(&files));
        let manifest = Manifest::verify_dir(dir.path()).unwrap().unwrap();
        assert_eq!(manifest.precision, Precision::Int8);
        assert_eq!(manifest.max_length, 256);

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
            bad.push((name, b"secret"));
            let error = Manifest::parse(&manifest_with(&bad).to_string(), "m")
                .unwrap_err()
                .to_string();
            assert!(error.contains("plain"), "{name}: {error}");
        }
        let error = Manifest::parse(&manifest_with(&files[..2]).to_string(), "m")
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not list tokenizer.json"), "{error}");

        std::fs::write(dir.path().join("config.json"), b"changed").unwrap();
        let error = Manifest::verify_dir(dir.path()).unwrap_err().to_string();
        assert!(error.contains("corrupt or incomplete"), "{error}");
    }

    #[test]
    fn fields_a_reader_relies_on_are_checked() {
        let files: Vec<(&str, &[u8])> = MODEL_FILES.iter().map(|n| (*n, n.as_bytes())).collect();
        for (field, value, expected) in [
            ("markers", serde_json::json!("brackets"), "markers"),
            ("max_length", serde_json::json!(4), "max_length"),
            ("version", serde_json::json!(2), "version 2"),
            ("precision", serde_json::json!("int4"), "unknown variant"),
            ("format", serde_json::json!("onnx"), "format"),
        ] {
            let mut manifest = manifest_with(&files);
            manifest[field] = value;
            let error = Manifest::parse(&manifest.to_string(), "m")
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{field}: {error}");
        }
    }
}
