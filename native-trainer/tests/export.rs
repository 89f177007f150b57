//! `tkre export` on a tiny model: each precision loads back and scores like the source
//! checkpoint, and a corrupted or truncated exported file is refused with a sha256 error.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn tkre(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tkre"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

const QUERIES: &str = "[E1]Albert Einstein[/E1] was born in [E2]Ulm[/E2].\n\
                       [E1]Paris[/E1] is the capital of [E2]France[/E2].\n\
                       [E1]Tim Cook[/E1] works for [E2]Apple[/E2].\n";

/// Every relation's similarity for every query, in a fixed order.
fn similarities(model: &Path) -> Vec<f64> {
    let out = tkre(
        &[
            "classify",
            "--model",
            model.to_str().unwrap(),
            "--support",
            "examples/support_set.json",
        ],
        QUERIES,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut values = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut ranked: Vec<(String, f64)> = line["ranked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["relation"].as_str().unwrap().to_string(),
                    r["similarity"].as_f64().unwrap(),
                )
            })
            .collect();
        ranked.sort_by(|a, b| a.0.cmp(&b.0));
        values.extend(ranked.into_iter().map(|(_, s)| s));
    }
    values
}

#[test]
fn every_precision_round_trips_and_corruption_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("tiny");
    common::tiny_checkpoint(&source);
    let reference = similarities(&source);
    assert_eq!(reference.len(), 12);

    // Largest similarity difference allowed per precision: fp16 rounds to 11 bits; int8 to
    // 1/254 of each row's largest weight (measured on all-MiniLM-L6-v2: about 1e-3).
    // Size against the fp32 export: fp16 half; int8 a quarter plus a 4-byte scale per row
    // (rows of 32 values in this tiny model, so 3/8; about 0.26 for MiniLM's rows of 384).
    let mut fp32_bytes = 0.0;
    for (precision, tolerance, max_bytes_ratio) in
        [("fp32", 1e-5, 1.0), ("fp16", 2e-3, 0.51), ("int8", 2e-2, 0.38)]
    {
        let out_dir = dir.path().join(precision);
        let out = tkre(
            &[
                "export",
                "--model",
                source.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
                "--precision",
                precision,
            ],
            "",
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["precision"], precision);
        let weights = std::fs::read(out_dir.join("model.safetensors")).unwrap();
        assert_eq!(manifest["files"]["model.safetensors"]["bytes"], weights.len());
        if precision == "fp32" {
            fp32_bytes = weights.len() as f64;
        }
        assert!(
            (weights.len() as f64) <= fp32_bytes * max_bytes_ratio,
            "{precision}: {} bytes, fp32 {fp32_bytes}",
            weights.len()
        );
        let scores = similarities(&out_dir);
        let worst = reference
            .iter()
            .zip(&scores)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < tolerance, "{precision}: similarity off by {worst}");
    }

    // A flipped byte and a truncated file: refused before loading, naming the file.
    let int8 = dir.path().join("int8");
    let weights_path = int8.join("model.safetensors");
    let original = std::fs::read(&weights_path).unwrap();
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    for (what, bytes) in [
        ("flipped", flipped),
        ("truncated", original[..original.len() - 1000].to_vec()),
    ] {
        std::fs::write(&weights_path, &bytes).unwrap();
        let out = tkre(
            &[
                "classify",
                "--model",
                int8.to_str().unwrap(),
                "--support",
                "examples/support_set.json",
            ],
            QUERIES,
        );
        assert_eq!(out.status.code(), Some(2), "{what}");
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(
            message.contains("model.safetensors is corrupt or incomplete: sha256"),
            "{what}: {message}"
        );
    }
}
