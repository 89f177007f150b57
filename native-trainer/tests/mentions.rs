//! `tkre train-mentions`: the learned mention proposer is trained on sentences with entity
//! spans, added to an exported model's manifest, carried by `tkre export`, measured by
//! `tkre extract --evaluate-mentions` and used by `tkre extract`.

mod common;

use common::tkre;

#[test]
fn a_trained_mention_head_is_listed_exported_measured_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let (source, model) = common::tiny_checkpoint_and_int8(dir.path());
    let unlabelled = dir.path().join("unlabelled.json");
    std::fs::write(
        &unlabelled,
        r#"[{"tokens": ["aspirin", "inhibits", "cyclooxygenase", "in", "platelets", "."],
             "h": ["aspirin", "C1", [[0]]], "t": ["cyclooxygenase", "C2", [[2]]]}]"#,
    )
    .unwrap();
    let out = tkre(
        &[
            "train-mentions",
            "--model",
            model.to_str().unwrap(),
            "--data",
            "tests/fixtures/fewrel_small.json",
            // FewRel 2.0's unlabelled list of records: sentences with entity spans, no relation.
            "--data",
            unlabelled.to_str().unwrap(),
            "--epochs",
            "3",
            "--proposals",
            "3",
        ],
        "",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let head_path = model.join("mention_head.json");
    let head: serde_json::Value = serde_json::from_slice(&std::fs::read(&head_path).unwrap()).unwrap();
    assert_eq!(head["format"], "tkre-mention-head");
    assert!(head["threshold"].as_f64().unwrap().is_finite());
    // Listed in the manifest with its hash, so the model still verifies and the browser
    // package loads it.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["files"]["mention_head.json"]["bytes"].as_u64().unwrap(),
        std::fs::metadata(&head_path).unwrap().len()
    );
    let card = manifest["card"]["mention_head"].as_str().unwrap();
    assert!(
        card.contains("fewrel_small.json") && card.contains("unlabelled.json"),
        "{card}"
    );

    // The evaluation reports the rules and the learned proposer, and the learned one guided by
    // examples of each relation set aside (the default weight), on the other sentences.
    let evaluate = |weight: &str| {
        let out = tkre(
            &[
                "extract",
                "--model",
                model.to_str().unwrap(),
                "--evaluate-mentions",
                "tests/fixtures/fewrel_small.json",
                "--entity-guide-weight",
                weight,
                "--quiet",
            ],
            "",
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
            out.stdout,
        )
    };
    let (ok, stderr, stdout) = evaluate("15");
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let proposers = report["proposers"].as_array().unwrap();
    let names: Vec<&str> = proposers
        .iter()
        .map(|p| p["proposer"].as_str().unwrap())
        .collect();
    assert_eq!(names[..3], ["rules", "learned", "learned, then rules"]);
    assert!(
        names[3].starts_with("learned, guided by 5 examples per relation") && names[3].contains("weight 15"),
        "{names:?}"
    );
    for p in proposers {
        assert!(p["proposals_per_sentence"].as_f64().unwrap() <= 8.0, "{p}");
    }
    assert_eq!(names[4], "learned, nested");
    assert!(names[5].starts_with("learned, nested, guided by 5"), "{names:?}");
    // The guide chooses which candidates, the head's threshold how many.
    for (plain, guided) in [(1, 3), (4, 5)] {
        assert_eq!(
            proposers[plain]["proposals_per_sentence"],
            proposers[guided]["proposals_per_sentence"]
        );
    }
    let guide_sentences = report["guide_sentences"].as_u64().unwrap();
    assert!(guide_sentences >= 10, "{report}");
    // Weight 0: no guide, every sentence measured.
    let (ok, stderr, stdout) = evaluate("0");
    assert!(ok, "{stderr}");
    let unguided: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(unguided["proposers"].as_array().unwrap().len(), 4);
    assert_eq!(
        unguided["sentences"].as_u64().unwrap(),
        report["sentences"].as_u64().unwrap() + guide_sentences
    );
    let (ok, stderr, _) = evaluate("-1");
    assert!(!ok && stderr.contains("at least 0"), "{stderr}");

    // Extraction proposes with the head: every proposed mention is a candidate span the head
    // scored above its threshold, so with a threshold above every score nothing is proposed.
    let document = "Marie Curie was born in Warsaw in 1867. She worked in Paris.";
    let extract = |model: &std::path::Path, head: Option<&std::path::Path>| {
        let mut args = vec![
            "extract",
            "--model",
            model.to_str().unwrap(),
            "--support",
            "examples/support_set.json",
            "--quiet",
        ];
        if let Some(head) = head {
            args.extend(["--mention-head", head.to_str().unwrap()]);
        }
        let out = tkre(&args, document);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["mentions"]
                        .as_array()
                        .unwrap()
                        .len()
                })
                .sum::<usize>(),
        )
    };
    let (ok, stderr, mentions) = extract(&model, None);
    assert!(ok && mentions > 0, "{stderr}");
    let mut silent = head.clone();
    silent["threshold"] = serde_json::json!(1e9);
    let silent_path = dir.path().join("silent.json");
    std::fs::write(&silent_path, serde_json::to_string(&silent).unwrap()).unwrap();
    assert_eq!(
        extract(&model, Some(&silent_path)).2,
        0,
        "a head that proposes nothing leaves no mentions"
    );
    // A head for another model is refused with a message, not a panic.
    let mut wrong = head.clone();
    wrong["hidden_size"] = serde_json::json!(7);
    let wrong_path = dir.path().join("wrong.json");
    std::fs::write(&wrong_path, serde_json::to_string(&wrong).unwrap()).unwrap();
    let (ok, stderr, _) = extract(&model, Some(&wrong_path));
    assert!(!ok && stderr.contains("hidden size"), "{stderr}");
    // A head changed behind the manifest's back fails the model's check.
    let original = std::fs::read(&head_path).unwrap();
    std::fs::write(&head_path, serde_json::to_string(&silent).unwrap()).unwrap();
    let (ok, stderr, _) = extract(&model, None);
    assert!(!ok && stderr.contains("mention_head.json is corrupt"), "{stderr}");
    std::fs::write(&head_path, original).unwrap();

    // `tkre export` carries a checkpoint's head into the export and its manifest.
    std::fs::write(
        source.join("mention_head.json"),
        serde_json::to_string(&head).unwrap(),
    )
    .unwrap();
    let exported = dir.path().join("exported");
    let out = tkre(
        &[
            "export",
            "--model",
            source.to_str().unwrap(),
            "--out",
            exported.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exported.join("manifest.json")).unwrap()).unwrap();
    assert!(manifest["files"]["mention_head.json"]["sha256"].is_string());
    let (ok, stderr, mentions) = extract(&exported, None);
    assert!(
        ok && mentions > 0,
        "the exported head proposes mentions: {stderr}"
    );
}
