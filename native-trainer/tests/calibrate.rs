//! `tkre calibrate`: a calibration fitted on held-out relations is stored in the exported
//! model's manifest, measured on other data, and used by `tkre classify` (a threshold in force,
//! "no relation" as one more class of the softmax).

mod common;

use common::tkre;

#[test]
fn a_fitted_calibration_is_stored_measured_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let (source, model) = common::tiny_checkpoint_and_int8(dir.path());

    // A checkpoint without a manifest cannot store one: the error says to export first.
    let refused = tkre(
        &[
            "calibrate",
            "--model",
            source.to_str().unwrap(),
            "--fit",
            "tests/fixtures/fewrel_small.json",
            "--save",
            "--episodes",
            "10",
        ],
        "",
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("tkre export"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let prefix = dir.path().join("calibration");
    let out = tkre(
        &[
            "calibrate",
            "--model",
            model.to_str().unwrap(),
            "--fit",
            "tests/fixtures/fewrel_small.json",
            "--save",
            "--n",
            "3",
            "--episodes",
            "30",
            "--evaluate",
            "tests/fixtures/fewrel_small.json",
            "--report",
            prefix.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    let calibration = &manifest["calibration"];
    let temperature = calibration["temperature"].as_f64().unwrap();
    let threshold = calibration["none_similarity"].as_f64().unwrap();
    assert!(
        temperature > 0.0 && (-1.0..=1.0).contains(&threshold),
        "{calibration}"
    );
    assert!(
        calibration["fitted_on"]
            .as_str()
            .unwrap()
            .contains("fewrel_small.json")
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(prefix.with_extension("json")).unwrap()).unwrap();
    assert_eq!(
        report["queries"],
        30 * 6,
        "3 queries of the episode's relations and 3 outside it"
    );
    for kind in ["calibrated", "uncalibrated"] {
        let ece = report[kind]["ece"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&ece), "{kind}: {ece}");
    }
    assert!(
        std::fs::read_to_string(prefix.with_extension("svg"))
            .unwrap()
            .starts_with("<svg")
    );

    // The exported model still verifies, and classify uses the calibration.
    let out = tkre(
        &[
            "classify",
            "--model",
            model.to_str().unwrap(),
            "--support",
            "examples/support_set.json",
        ],
        "[E1]Albert Einstein[/E1] was born in [E2]Ulm[/E2].\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    let none = line["none_probability"].as_f64().unwrap();
    let total: f64 = line["ranked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["probability"].as_f64().unwrap())
        .sum::<f64>()
        + none;
    assert!(none > 0.0, "the model's threshold is in force: {line}");
    assert!(
        (total - 1.0).abs() < 1e-4,
        "relations and no relation sum to 1: {line}"
    );
    let best = line["ranked"][0]["similarity"].as_f64().unwrap();
    assert_eq!(
        line["none_of_the_above"].as_bool().unwrap(),
        best < threshold,
        "{line}"
    );
}
