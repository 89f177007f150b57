//! The `tkre` command line: outputs, exit codes and error messages.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{tkre, tkre_bytes};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn classify_ranks_the_support_relations() {
    let queries = std::fs::read_to_string(root().join("examples/queries.txt")).unwrap();
    let out = tkre(&["classify", "--support", "examples/support_set.json"], &queries);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for line in &lines {
        let ranked = line["ranked"].as_array().unwrap();
        assert_eq!(ranked.len(), 5);
        let total: f64 = ranked.iter().map(|r| r["probability"].as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-4);
        let sims: Vec<f64> = ranked.iter().map(|r| r["similarity"].as_f64().unwrap()).collect();
        assert!(sims.windows(2).all(|w| w[0] >= w[1]), "not ranked: {sims:?}");
    }
    // A query that repeats a support example exactly gets that relation.
    let out = tkre(
        &[
            "classify",
            "--support",
            "examples/support_set.json",
            "--top-k",
            "2",
        ],
        "[E1]Tim Cook[/E1] has been the chief executive of [E2]Apple[/E2] since 2011.\n",
    );
    let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["ranked"][0]["relation"], "employer");
    assert_eq!(line["ranked"].as_array().unwrap().len(), 2);
}

#[test]
fn classify_reads_relation_text_and_classifies_text_only_relations() {
    // "founded by" has a description and no example (zero-shot).
    let query = "[E1]Microsoft[/E1] was started by [E2]Bill Gates[/E2] and Paul Allen in 1975.\n";
    let out = tkre(&["classify", "--support", "examples/support_set.json"], query);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["ranked"][0]["relation"], "founded by", "{line}");
    // Without relation text, a relation with no example cannot be scored: a clear error.
    let out = tkre(
        &[
            "classify",
            "--support",
            "examples/support_set.json",
            "--ignore-relation-text",
        ],
        query,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"founded by\" has no examples"),
        "{}",
        stderr(&out)
    );
    // A set of text-only relations is valid; one with neither text nor examples is not.
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set.json");
    std::fs::write(
        &set,
        r#"{"version": 2, "relations": [{"key": "born", "name": "place of birth"}, {"key": "job", "description": "the organisation a person works for"}]}"#,
    )
    .unwrap();
    let out = tkre(
        &["classify", "--support", set.to_str().unwrap()],
        "[E1]Ada[/E1] was born in [E2]London[/E2].\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(line["ranked"][0]["relation"], "born", "{line}");
    std::fs::write(
        &set,
        r#"{"version": 2, "relations": [{"key": "born", "examples": []}]}"#,
    )
    .unwrap();
    let out = tkre(&["classify", "--support", set.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"born\" has no examples and no text"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn eval_with_relation_text_reports_both_and_zero_shot() {
    let eval = |extra: &[&str]| {
        let args = [
            &[
                "eval",
                "--data",
                "tests/fixtures/fewrel_small.json",
                "--n",
                "5",
                "--episodes",
                "30",
            ][..],
            extra,
        ]
        .concat();
        tkre(&args, "")
    };
    let out = eval(&[
        "--k",
        "1",
        "--relation-descriptions",
        "tests/fixtures/fewrel_small_relations.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let result: serde_json::Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert!(
        result["relation_text"]
            .as_str()
            .unwrap()
            .ends_with("fewrel_small_relations.json")
    );
    let with = result["accuracy"].as_f64().unwrap();
    let without = result["without_relation_text"]["accuracy"].as_f64().unwrap();
    // The plain number equals a run without the file (same episodes).
    let plain = eval(&["--k", "1"]);
    let plain: serde_json::Value = serde_json::from_str(stdout(&plain).lines().last().unwrap()).unwrap();
    assert_eq!(plain["accuracy"].as_f64().unwrap(), without);
    assert!(plain["relation_text"].is_null());
    assert!((0.0..=1.0).contains(&with));
    // Zero-shot: text alone, far above chance (0.2) with pid2name's descriptions.
    let out = eval(&[
        "--shots",
        "0",
        "--relation-descriptions",
        "tests/fixtures/fewrel_small_relations.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let zero: serde_json::Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(zero["k"], 0);
    assert!(zero["accuracy"].as_f64().unwrap() > 0.4, "{zero}");
    assert!(zero.get("without_relation_text").is_none());
    // Zero-shot needs text; a text file in neither shape is named.
    let out = eval(&["--shots", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--relation-descriptions"),
        "{}",
        stderr(&out)
    );
    let out = eval(&["--relation-descriptions", "README.md"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("README.md"), "{}", stderr(&out));
}

#[test]
fn classify_reports_bad_lines_and_goes_on() {
    let out = tkre(
        &[
            "classify",
            "--support",
            "examples/support_set.json",
            "--format",
            "text",
        ],
        "no markers here\n[E1]Tokyo[/E1] became the capital of [E2]Japan[/E2].\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("stdin line 1") && stderr(&out).contains("[E1] is missing"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("capital of"), "{}", stdout(&out));
}

#[test]
fn classify_reads_json_lines_with_offsets_in_batches_and_writes_one_answer_per_query() {
    // A support example itself, so even the base model answers it right.
    let marked = "[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2] in 1867.";
    // The same query as offsets (code points), a bad JSON line, a blank line and a bad
    // offsets line, in batches of 2.
    let input = format!(
        "{marked}\n{}\n{{\"text\": 3}}\n\n{}\n{marked}\n",
        r#"{"text": "Marie Curie was born in Warsaw in 1867.", "head": {"start": 0, "end": 11}, "tail": {"start": 24, "end": 30}}"#,
        r#"{"text": "short", "head": {"start": 0, "end": 2}, "tail": {"start": 3, "end": 90}}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("answers.json");
    let args = [
        "classify",
        "--support",
        "examples/support_set.json",
        "--batch-size",
        "2",
        "--format",
        "json",
        "--out",
        out_file.to_str().unwrap(),
    ];
    let out = tkre(&args, &input);
    assert_eq!(out.status.code(), Some(1), "two bad lines: {}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let answers: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    let lines: Vec<u64> = answers.iter().map(|a| a["line"].as_u64().unwrap()).collect();
    assert_eq!(
        lines,
        [1, 2, 3, 5, 6],
        "one answer per query line, blank line skipped"
    );
    assert_eq!(
        answers[0]["ranked"], answers[1]["ranked"],
        "marked and offsets: the same query"
    );
    assert_eq!(
        answers[0]["ranked"], answers[4]["ranked"],
        "batches do not change answers"
    );
    assert_eq!(answers[0]["ranked"][0]["relation"], "place of birth");
    assert_eq!(answers[1]["text"], "Marie Curie was born in Warsaw in 1867.");
    for bad in [&answers[2], &answers[3]] {
        assert!(bad["error"].is_string() && bad.get("ranked").is_none(), "{bad}");
    }
    assert!(stderr(&out).contains("stdin line 3: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("stdin line 5: "), "{}", stderr(&out));
}

#[test]
fn bad_support_sets_and_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"version\": 2, \"relations\": [{\"key\": \"a\", \"examples\": []}]}",
    )
    .unwrap();
    let out = tkre(&["classify", "--support", bad.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"a\" has no examples and no text"),
        "{}",
        stderr(&out)
    );

    std::fs::write(&bad, "{\"relations\": [").unwrap();
    let out = tkre(&["classify", "--support", bad.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.json") && stderr(&out).contains("malformed JSON"),
        "{}",
        stderr(&out)
    );

    let out = tkre(&["classify", "--support", "does/not/exist.json"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does/not/exist.json"), "{}", stderr(&out));

    let out = tkre(&["embed", "--model", dir.path().to_str().unwrap()], "hello\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("config.json is missing"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"));
}

#[test]
fn embed_writes_normalised_vectors() {
    let out = tkre(
        &["embed"],
        "Marie Curie was born in Warsaw.\n\nA second sentence.\n",
    );
    // The blank line is skipped, as by every command that reads lines; each result names its
    // line.
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["text"], "A second sentence.");
    assert_eq!(lines[1]["line"], 3);
    let v: Vec<f64> = serde_json::from_value(lines[0]["embedding"].clone()).unwrap();
    assert_eq!(v.len(), 384);
    let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
}

#[test]
fn embed_matches_the_reference_embedding() {
    let dir = root().join("tests/reference/fixtures");
    let sentences: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sentences.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("minilm_reference.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let out = tkre(&["embed"], &format!("{}\n{}\n", sentences[0], sentences[1]));
    assert!(out.status.success(), "{}", stderr(&out));
    for (i, line) in stdout(&out).lines().enumerate() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        let got: Vec<f32> = serde_json::from_value(line["embedding"].clone()).unwrap();
        let expected: Vec<f32> = tensors
            .tensor(&format!("embedding.{i}"))
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let d = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(d < 1e-4, "sentence {i}: {d}");
    }
}

#[test]
fn eval_writes_its_result_to_out_or_stdout_in_each_format() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("result.jsonl");
    let small_eval = [
        "eval",
        "--data",
        "tests/fixtures/fewrel_small.json",
        "--n",
        "5",
        "--k",
        "2",
        "--episodes",
        "20",
        "--seed",
        "3",
    ];
    let to_file = [&small_eval[..], &["--out", out_file.to_str().unwrap()]].concat();
    let out = tkre(&to_file, "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "with --out, nothing on stdout");
    let written = std::fs::read_to_string(&out_file).unwrap();
    let result: serde_json::Value = serde_json::from_str(written.trim()).unwrap();
    for key in ["n", "k", "episodes", "accuracy", "ci95"] {
        assert!(result.get(key).is_some(), "{key} missing from {written}");
    }
    assert_eq!(result["n"], 5);
    assert_eq!(result["k"], 2);
    assert_eq!(result["episodes"], 20);
    let accuracy = result["accuracy"].as_f64().unwrap();
    // Far above chance (0.2) even for the untrained base model on these relations.
    assert!(accuracy > 0.4 && accuracy <= 1.0, "{accuracy}");

    // Same seed, same result, on stdout by default.
    let again = tkre(&small_eval, "");
    assert_eq!(stdout(&again), written);
    // --format json: an array; text: a readable line.
    let as_json = tkre(&[&small_eval[..], &["--format", "json"]].concat(), "");
    let array: serde_json::Value = serde_json::from_str(&stdout(&as_json)).unwrap();
    assert_eq!(array[0]["accuracy"], result["accuracy"]);
    let as_text = tkre(&[&small_eval[..], &["--format", "text"]].concat(), "");
    assert!(
        stdout(&as_text).starts_with("5-way 2-shot, 20 episodes: "),
        "{}",
        stdout(&as_text)
    );
}

#[test]
fn eval_rejects_impossible_settings() {
    let out = tkre(
        &[
            "eval",
            "--data",
            "tests/fixtures/fewrel_small.json",
            "--n",
            "7",
            "--k",
            "1",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("7-way episodes need 7"), "{}", stderr(&out));
    let out = tkre(
        &[
            "eval",
            "--data",
            "tests/fixtures/fewrel_small.json",
            "--n",
            "5",
            "--k",
            "8",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let out = tkre(&["eval", "--data", "README.md"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("README.md"), "{}", stderr(&out));
}

#[test]
fn pretrain_explains_bad_settings_and_unusable_corpora() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out = out_dir.to_str().unwrap();

    let no_corpus = tkre(&["pretrain", "--out", out], "");
    assert_eq!(no_corpus.status.code(), Some(2));
    assert!(
        stderr(&no_corpus).contains("no corpus: give --corpus FILE"),
        "{}",
        stderr(&no_corpus)
    );

    for (device, expected) in [
        ("cuda:one", "the index after ':' must be a number"),
        ("cpu,,cpu", "empty device name"),
        ("tpu", "unknown device \"tpu\""),
        ("ndarray:1", "the CPU backends have one device"),
    ] {
        let bad = tkre(
            &["pretrain", "--corpus", "x.json", "--device", device, "--out", out],
            "",
        );
        assert_eq!(bad.status.code(), Some(2));
        assert!(stderr(&bad).contains(expected), "{device}: {}", stderr(&bad));
    }

    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "epoch = 3\n").unwrap();
    let typo = tkre(
        &["pretrain", "--config", config.to_str().unwrap(), "--out", out],
        "",
    );
    assert_eq!(typo.status.code(), Some(2));
    assert!(
        stderr(&typo).contains("unknown field `epoch`"),
        "{}",
        stderr(&typo)
    );

    // Every record bad: the run stops before training, listing why, with examples.
    let corpus = dir.path().join("bad.jsonl");
    std::fs::write(
        &corpus,
        concat!(
            r#"{"text": "Ann works at Acme .", "subj": "Ann", "subj_start": 4, "subj_end": 7, "obj": "Acme", "obj_start": 13, "obj_end": 17, "relation": "r"}"#,
            "\n",
            r#"{"relation": "r", "subject": "Zed", "object": "Acme", "generated_text": "Acme is big."}"#,
            "\n"
        ),
    )
    .unwrap();
    let unusable = tkre(
        &["pretrain", "--corpus", corpus.to_str().unwrap(), "--out", out],
        "",
    );
    assert_eq!(unusable.status.code(), Some(2));
    let message = stderr(&unusable);
    assert!(message.contains("the corpus has no usable records"), "{message}");
    assert!(
        message.contains("skipped 1: entity offsets do not match the text"),
        "{message}"
    );
    assert!(
        message.contains("skipped 1: explanation does not mention its subject"),
        "{message}"
    );

    // Stage 2 with a schema none of the corpus's relations belong to.
    let schema = dir.path().join("relations.txt");
    std::fs::write(&schema, "founded by\n").unwrap();
    let args = [
        "pretrain",
        "--stage",
        "scl",
        "--corpus",
        "tests/fixtures/fewrel_small.json",
    ];
    let unknown = tkre(
        &[
            &args[..],
            &["--relations", schema.to_str().unwrap(), "--out", out],
        ]
        .concat(),
        "",
    );
    assert_eq!(unknown.status.code(), Some(2));
    let message = stderr(&unknown);
    assert!(
        message.contains("skipped 48: relation not in the stage-2 schema"),
        "{message}"
    );
}

/// A line that is not UTF-8 is reported with its number and skipped; the lines after it are
/// still answered (classify and embed).
#[test]
fn invalid_utf8_on_stdin_is_one_bad_line_not_the_end() {
    let mut input = b"[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].\n".to_vec();
    input.extend_from_slice(b"[E1]Caf\xe9[/E1] is in [E2]Paris[/E2].\n");
    input.extend_from_slice(b"[E1]Tim Cook[/E1] works for [E2]Apple[/E2].\n");
    let out = tkre_bytes(&["classify", "--support", "examples/support_set.json"], &input);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("stdin line 2: not valid UTF-8"),
        "{}",
        stderr(&out)
    );
    let out = tkre_bytes(&["embed"], b"one sentence\n\xff\xfe\nanother sentence\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out).lines().count(), 2);
    assert!(
        stderr(&out).contains("stdin line 2: not valid UTF-8"),
        "{}",
        stderr(&out)
    );
}

/// Flags outside their range are refused by name, not accepted silently; a malformed example
/// is reported by the form it tried to be, and a JSON error is printed once.
#[test]
fn out_of_range_flags_and_malformed_examples_are_named() {
    let query = "[E1]Tim Cook[/E1] works for [E2]Apple[/E2].\n";
    for (flag, value, needle) in [
        ("--top-k", "0", "at least 1"),
        ("--none-threshold", "5", "outside -1..1"),
        ("--none-threshold", "NaN", "outside -1..1"),
        ("--max-length", "4", "give 8 to"),
    ] {
        let out = tkre(
            &["classify", "--support", "examples/support_set.json", flag, value],
            query,
        );
        assert!(!out.status.success(), "{flag} {value} was accepted");
        assert!(stderr(&out).contains(needle), "{flag} {value}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set.json");
    std::fs::write(
        &set,
        r#"{"version": 2, "relations": [{"key": "r", "examples": [{"text": "A b.", "head": {"start": 0}, "tail": {"start": 2, "end": 3}}]}]}"#,
    )
    .unwrap();
    let out = tkre(&["classify", "--support", set.to_str().unwrap()], query);
    let message = stderr(&out);
    assert!(
        message.contains("an offsets example") && message.contains("end"),
        "{message}"
    );
    assert_eq!(
        message.matches("missing field").count(),
        1,
        "printed twice: {message}"
    );
    std::fs::write(&set, r#"{"relations": [{"key": "r", "examples": [42]}]}"#).unwrap();
    let out = tkre(&["classify", "--support", set.to_str().unwrap()], query);
    assert!(stderr(&out).contains("got the number 42"), "{}", stderr(&out));
}

#[test]
fn extract_finds_mentions_and_triples_with_document_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let document = "Marie Curie was born in Warsaw in 1867. Dr. J. Smith works for Apple.\n\n\
                    Zoë Ünal was born in Köln.";
    let entities = dir.path().join("entities.json");
    std::fs::write(&entities, r#"[{"name": "Apple Inc.", "aliases": ["Apple"]}]"#).unwrap();
    // Every pair with the threshold off (and the wrong-pair filter off, or with it).
    let every_pair = |filter: bool| {
        let mut args = vec![
            "extract",
            "--support",
            "examples/support_set.json",
            "--entities",
            entities.to_str().unwrap(),
            "--threshold",
            "-1",
            "--quiet",
        ];
        if !filter {
            args.push("--keep-wrong-pairs");
        }
        tkre(&args, document)
    };
    let out = every_pair(false);
    assert!(out.status.success(), "{}", stderr(&out));
    let sentences: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // "Dr. J. Smith" does not end a sentence; the blank line does.
    assert_eq!(sentences.len(), 3, "{}", stdout(&out));
    let chars: Vec<char> = document.chars().collect();
    let text = |v: &serde_json::Value| -> String {
        let (s, e) = (
            v["start"].as_u64().unwrap() as usize,
            v["end"].as_u64().unwrap() as usize,
        );
        chars[s..e].iter().collect()
    };
    assert_eq!(text(&sentences[1]["sentence"]), "Dr. J. Smith works for Apple.");
    let mentions: Vec<(String, String)> = sentences[1]["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (text(m), m["source"].as_str().unwrap().to_string()))
        .collect();
    assert!(
        mentions.contains(&("Apple".into(), "listed".into())),
        "{mentions:?}"
    );
    // With the threshold off, every ordered pair of mentions is a triple, in document order,
    // its offsets those of the document (code points: "Zoë Ünal" is after two non-ASCII ones).
    for sentence in &sentences {
        let m = sentence["mentions"].as_array().unwrap().len();
        let triples = sentence["triples"].as_array().unwrap();
        assert_eq!(triples.len(), m * m.saturating_sub(1), "{sentence}");
        for t in triples {
            assert_eq!(text(&t["head"]), t["head"]["text"].as_str().unwrap());
            assert_eq!(text(&t["tail"]), t["tail"]["text"].as_str().unwrap());
            assert_eq!(t["sentence"], sentence["sentence"]);
        }
    }
    let last = &sentences[2]["triples"][0];
    assert_eq!(last["head"]["text"], "Zoë Ünal");
    assert_eq!(last["tail"]["text"], "Köln");
    assert!(
        last["relation"].is_string() && last["score"].as_f64().unwrap() > 0.0,
        "{last}"
    );

    // By default a pair closer to its relation's wrong pairs than to the relation is dropped,
    // even with the threshold off: fewer triples than pairs.
    let filtered = every_pair(true);
    assert!(filtered.status.success(), "{}", stderr(&filtered));
    let count = |text: &str| -> usize {
        text.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["triples"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .sum()
    };
    let all: usize = sentences
        .iter()
        .map(|s| s["triples"].as_array().unwrap().len())
        .sum();
    let kept = count(&stdout(&filtered));
    assert!(kept > 0 && kept < all, "{kept} of {all} pairs kept");

    // The same document read from a file, with a hand-marked mention and no proposer: only
    // marked and listed mentions.
    let input = dir.path().join("doc.txt");
    std::fs::write(&input, document).unwrap();
    let marked = dir.path().join("marked.json");
    std::fs::write(&marked, r#"[{"start": 0, "end": 11}]"#).unwrap();
    let out = tkre(
        &[
            "extract",
            "--support",
            "examples/support_set.json",
            "--input",
            input.to_str().unwrap(),
            "--mentions",
            marked.to_str().unwrap(),
            "--no-proposer",
            "--quiet",
            "--format",
            "json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let all: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(all[0]["mentions"][0]["source"], "marked");
    assert_eq!(all[0]["mentions"].as_array().unwrap().len(), 1);

    // Bad input: clear errors, exit code 2.
    std::fs::write(&marked, r#"[{"start": 5, "end": 500}]"#).unwrap();
    let out = tkre(
        &[
            "extract",
            "--support",
            "examples/support_set.json",
            "--mentions",
            marked.to_str().unwrap(),
        ],
        document,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("outside the document"), "{}", stderr(&out));
    let out = tkre_bytes(
        &["extract", "--support", "examples/support_set.json"],
        b"\xff\xfe junk",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
    // An empty document has no sentences: nothing to write, and that is not an error.
    let out = tkre(
        &["extract", "--support", "examples/support_set.json", "--quiet"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn extract_measures_the_mention_proposer_on_fewrel_records() {
    let out = tkre(
        &[
            "extract",
            "--evaluate-mentions",
            "tests/fixtures/fewrel_small.json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(report["sentences"].as_u64().unwrap() > 0);
    let rules = &report["proposers"][0];
    assert_eq!(rules["proposer"], "rules", "{report}");
    let both = rules["both_found"].as_f64().unwrap();
    let head = rules["head_found"].as_f64().unwrap();
    assert!((0.0..=head).contains(&both), "{report}");
    assert!(rules["proposals_per_sentence"].as_f64().unwrap() > 0.0);
    // Every gold entity is found, missed at an overlapping proposal, or missed elsewhere.
    let share = |k: &str| rules[k].as_f64().unwrap();
    let accounted = (share("head_found") + share("tail_found")) / 2.0
        + share("missed_overlapping_a_proposal")
        + share("missed_not_overlapping");
    assert!((accounted - 1.0).abs() < 1e-9, "{report}");
    assert!(share("missed_overlapping_a_proposal") > 0.0, "{report}");

    // The same records as FewRel 2.0's unlabelled list (pubmed_unsupervised.json's shape): the
    // same sentences, the same numbers.
    let fewrel: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string("../tests/fixtures/fewrel_small.json").unwrap())
            .unwrap();
    let list: Vec<&serde_json::Value> = fewrel.values().flat_map(|v| v.as_array().unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let list_path = dir.path().join("unlabelled.json");
    std::fs::write(&list_path, serde_json::to_string(&list).unwrap()).unwrap();
    let out = tkre(
        &["extract", "--evaluate-mentions", list_path.to_str().unwrap()],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let from_list: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(from_list["sentences"], report["sentences"]);
    assert_eq!(from_list["proposers"], report["proposers"]);
    // A file without entity spans is refused with what it should hold.
    std::fs::write(&list_path, r#"[{"text": "no entities here"}]"#).unwrap();
    let out = tkre(
        &["extract", "--evaluate-mentions", list_path.to_str().unwrap()],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no sentence with two entity spans"),
        "{}",
        stderr(&out)
    );
}
