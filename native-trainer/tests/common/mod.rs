//! Helpers shared by the trainer's test binaries (each uses a part of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::de::DeserializeOwned;
use tkre::model::EncoderConfig;
use tkre::text::TextTokenizer;
use tkre_trainer::pretrain::model::PretrainModel;
use tkre_trainer::pretrain::train::save_bert_layout;

/// The base model's directory (its tokenizer is used by the tiny test models).
pub fn base_model_dir() -> PathBuf {
    let dir = tkre_trainer::paths::default_model_dir();
    let dir = std::env::var_os("TKRE_MODEL").map(PathBuf::from).unwrap_or(dir);
    assert!(
        dir.join("tokenizer.json").is_file(),
        "base model not found in {}; run scripts/setup/fetch-base-model.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

pub fn tokenizer() -> TextTokenizer {
    let bytes = std::fs::read(base_model_dir().join("tokenizer.json")).unwrap();
    TextTokenizer::from_bytes(&bytes, "tokenizer.json").unwrap()
}

/// A randomly initialised tiny checkpoint (2 layers, hidden 32, with an MLM head) in BERT
/// layout, with the base model's tokenizer.
pub fn tiny_checkpoint(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let config = EncoderConfig::tiny(tokenizer().vocab_size());
    let device = Device::flex();
    // The seed is global: tests of one binary run on parallel threads, so seeding and drawing
    // hold one lock, or another test's draws interleave and the weights differ run to run.
    // Saving is inside it too: burn initialises parameters lazily, on first read.
    static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    {
        let _seeded = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(7);
        let model = PretrainModel::new(&config, 0, &device);
        save_bert_layout(&model, &dir.join("model.safetensors")).unwrap();
    }
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    std::fs::copy(
        base_model_dir().join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    // A model card as Hugging Face writes one: `tkre export` reads the licence from it (the
    // tokenizer is all-MiniLM-L6-v2's).
    std::fs::write(
        dir.join("README.md"),
        "---\nlicense: apache-2.0\n---\n# tiny test model\n",
    )
    .unwrap();
}

/// A temporary directory holding a tiny checkpoint in `init/` (see [`tiny_checkpoint`]).
pub fn tiny_init() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("init");
    tiny_checkpoint(&init);
    (dir, init)
}

/// Runs the `tkre` binary in the repository root with `stdin`.
/// A tiny checkpoint in `dir/tiny` and its `tkre export --precision int8` in `dir/tiny-int8`
/// (the export must succeed); returns both directories.
#[allow(dead_code)] // not every test binary exports
pub fn tiny_checkpoint_and_int8(dir: &Path) -> (PathBuf, PathBuf) {
    let (source, out) = (dir.join("tiny"), dir.join("tiny-int8"));
    tiny_checkpoint(&source);
    let result = tkre(
        &[
            "export",
            "--model",
            source.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--precision",
            "int8",
        ],
        "",
    );
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    (source, out)
}

pub fn tkre(args: &[&str], stdin: &str) -> std::process::Output {
    tkre_bytes(args, stdin.as_bytes())
}

/// As [`tkre`], with stdin as raw bytes (not necessarily UTF-8).
#[allow(dead_code)]
pub fn tkre_bytes(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tkre"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may exit (on an error) before reading stdin; a broken pipe here is expected.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// The records of a JSON-lines file (none if it does not exist).
pub fn json_lines<T: DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
