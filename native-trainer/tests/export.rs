//! `tkre export` on a tiny model: each precision loads back and scores like the source
//! checkpoint, and a corrupted or truncated exported file is refused with a sha256 error.

mod common;

use std::path::Path;

use common::tkre;

const QUERIES: &str = "[E1]Albert Einstein[/E1] was born in [E2]Ulm[/E2].\n\
                       [E1]Paris[/E1] is the capital of [E2]France[/E2].\n\
                       [E1]Tim Cook[/E1] works for [E2]Apple[/E2].\n";

/// Every relation's similarity for every query, in a fixed order.
fn similarities(model: &Path) -> Vec<f64> {
    similarities_on(model, "auto")
}

/// The same on an `--engine`.
fn similarities_on(model: &Path, engine: &str) -> Vec<f64> {
    let out = tkre(
        &[
            "classify",
            "--model",
            model.to_str().unwrap(),
            "--support",
            "examples/support_set.json",
            "--engine",
            engine,
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
    assert_eq!(reference.len(), 15, "3 queries x 5 relations");

    // Largest similarity difference allowed per precision: fp16 rounds to 11 bits; int8 to
    // 1/254 of each row's largest weight (measured on all-MiniLM-L6-v2: about 1e-3).
    // packed rounds coarser still (measured here: 7e-3). Size against the fp32 export: fp16
    // half; int8 a quarter plus a 4-byte scale per row (rows of 32 values in this tiny model,
    // so 3/8; about 0.26 for MiniLM's rows of 384); packed 4-6 bits a value (0.16 here).
    let mut fp32_bytes = 0.0;
    for (precision, tolerance, max_bytes_ratio) in [
        ("fp32", 1e-5, 1.0),
        ("fp16", 2e-3, 0.51),
        ("int8", 2e-2, 0.38),
        ("packed", 2e-2, 0.2),
    ] {
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
        assert_eq!(
            manifest["card"]["license"], "apache-2.0",
            "read from the source's README"
        );
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

        // The browser's CPU arithmetic on the same files: the fused pass in f32 (fp32, fp16),
        // or in integers with activations quantized per token (int8).
        let browser = similarities_on(&out_dir, "cpu");
        let off = scores
            .iter()
            .zip(&browser)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let allowed = if precision == "int8" || precision == "packed" {
            1e-3
        } else {
            1e-5
        };
        assert!(off < allowed, "{precision}: cpu-engine similarity off by {off}");
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

/// `tkre eval --report`: two rows (a tiny checkpoint and its int8 export) in two settings give
/// the JSON, table and plot; a second run reuses the accuracies of unchanged models.
#[test]
fn the_accuracy_report_covers_every_row_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (source, int8) = common::tiny_checkpoint_and_int8(dir.path());
    let prefix = dir.path().join("reports/accuracy");
    let args = [
        "eval".to_string(),
        "--data".into(),
        "tests/fixtures/fewrel_small.json".into(),
        "--report".into(),
        prefix.display().to_string(),
        "--row".into(),
        format!("tiny fp32={}", source.display()),
        "--row".into(),
        format!("tiny int8={}", int8.display()),
        "--settings".into(),
        "5-1,3-2".into(),
        "--episodes".into(),
        "20".into(),
        "--references".into(),
        "reports/reference-published.json".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = tkre(&args, "");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(prefix.with_extension("json")).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row["results"].as_array().unwrap().len(), 2);
        assert!(row["params"].as_u64().unwrap() > 900_000, "{row}");
        assert!(row["native_query_p50_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(rows[1]["precision"], "int8");
    assert!(rows[1]["download_bytes"].as_u64() < rows[0]["download_bytes"].as_u64());
    assert_eq!(report["protocol"]["relations"].as_array().unwrap().len(), 6);
    let table = std::fs::read_to_string(prefix.with_extension("md")).unwrap();
    assert!(table.contains("| tiny int8 | int8 |"), "{table}");
    assert!(table.contains("HCRP"), "published rows missing: {table}");
    let svg = std::fs::read_to_string(prefix.with_extension("svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("tiny int8"),
        "{}",
        &svg[..200.min(svg.len())]
    );

    let second = tkre(&args, "");
    assert!(second.status.success());
    assert_eq!(
        String::from_utf8_lossy(&second.stderr).matches("reused").count(),
        2,
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(prefix.with_extension("json")).unwrap()).unwrap();
    for (a, b) in rows.iter().zip(again["rows"].as_array().unwrap()) {
        assert_eq!(a["results"], b["results"]);
    }
}

/// Sentence embeddings of `lines` by the model at `model`, on the CPU engine.
fn embeddings(model: &Path, lines: &str) -> Vec<Vec<f64>> {
    let out = tkre(
        &["embed", "--model", model.to_str().unwrap(), "--engine", "cpu"],
        lines,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            serde_json::from_value(record["embedding"].clone()).unwrap()
        })
        .collect()
}

/// What an export's model card says about its rounding's calibration.
fn rounding_card(export: &Path) -> serde_json::Value {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(export.join("manifest.json")).unwrap()).unwrap();
    manifest["card"]["rounding"].clone()
}

/// `tkre export --precision packed --calibration`: the same grid, rounded for the layers'
/// outputs on the calibration sentences, so the exported model's embeddings of text like them
/// move less from the source's than with rounding to nearest; the card says how.
#[test]
fn calibrated_rounding_keeps_outputs_closer_and_bad_calibration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("tiny");
    common::tiny_checkpoint(&source);
    let sentences: Vec<String> = (0..40)
        .map(|i| match i % 4 {
            0 => format!(
                "[E1]Person {i}[/E1] was born in [E2]City {i}[/E2] in {}.",
                1900 + i
            ),
            1 => format!("The river {i} flows into [E2]Lake {i}[/E2] near [E1]Town {i}[/E1]."),
            2 => format!(
                "Company {i} was founded by its chairman in the year {}.",
                1950 + i
            ),
            _ => format!("[E1]Album {i}[/E1] was recorded by the band [E2]Group {i}[/E2]."),
        })
        .collect();
    let calibration = dir.path().join("calibration.txt");
    std::fs::write(&calibration, sentences.join("\n") + "\n").unwrap();
    let export = |name: &str, extra: &[&str]| {
        let out_dir = dir.path().join(name);
        let mut args = vec![
            "export",
            "--model",
            source.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        (tkre(&args, ""), out_dir)
    };
    let (out, nearest) = export("nearest", &["--precision", "packed"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (out, calibrated) = export(
        "calibrated",
        &[
            "--precision",
            "packed",
            "--calibration",
            calibration.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let card = rounding_card(&calibrated);
    assert_eq!(card["sentences"], 40, "{card}");
    assert!(card["tokens"].as_u64().unwrap() > 400, "{card}");
    assert!(card["method"].as_str().unwrap().contains("GPTQ"), "{card}");
    let read = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert_eq!(read(&nearest).len(), read(&calibrated).len(), "same storage");
    assert_ne!(read(&nearest), read(&calibrated));

    // A corpus as `tkre pretrain` reads it calibrates the same way.
    let corpus = dir.path().join("calibration.jsonl");
    let records: String = sentences
        .iter()
        .filter(|s| s.contains("[E1]"))
        .map(|s| serde_json::json!({ "marked": s }).to_string() + "\n")
        .collect();
    std::fs::write(&corpus, records).unwrap();
    let (out, from_corpus) = export(
        "from-corpus",
        &[
            "--precision",
            "packed",
            "--calibration",
            corpus.to_str().unwrap(),
            "--calibration-sentences",
            "10",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let card = rounding_card(&from_corpus);
    assert_eq!(
        (&card["sentences"], &card["sentences_in_file"]),
        (&10.into(), &30.into()),
        "{card}"
    );

    // Unmarked text of the same kind as the calibration sentences.
    let text: String = sentences
        .iter()
        .map(|s| {
            s.replace("[E1]", "")
                .replace("[/E1]", "")
                .replace("[E2]", "")
                .replace("[/E2]", "")
                + "\n"
        })
        .collect();
    let reference = embeddings(&source, &text);
    let distance = |model: &Path| -> f64 {
        embeddings(model, &text)
            .iter()
            .zip(&reference)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>())
            .sum::<f64>()
    };
    let (plain, compensated) = (distance(&nearest), distance(&calibrated));
    assert!(
        compensated < plain,
        "calibrated {compensated} against nearest {plain}"
    );

    // Refused with what to do: another precision, no sentences, a broken marker.
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    let broken = dir.path().join("broken.txt");
    std::fs::write(
        &broken,
        "A sentence.\n[E1]Marie Curie was born in [E2]Warsaw[/E2].\n",
    )
    .unwrap();
    for (extra, expected) in [
        (
            vec![
                "--precision",
                "int8",
                "--calibration",
                calibration.to_str().unwrap(),
            ],
            "--precision packed",
        ),
        (
            vec!["--precision", "packed", "--calibration", empty.to_str().unwrap()],
            "no sentences",
        ),
        (
            vec!["--precision", "packed", "--calibration", broken.to_str().unwrap()],
            "line 2",
        ),
    ] {
        let (out, _) = export("refused", &extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(message.contains(expected), "{extra:?}: {message}");
    }
}
