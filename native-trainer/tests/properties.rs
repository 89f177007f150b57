//! Property-based tests of the trainer's inputs: LLM answers, corpus records, manifests and
//! pre-training settings. Any input gives `Ok` or a clear error, never a panic.

use proptest::prelude::*;
use serde_json::{Value, json};
use tkre_trainer::pretrain::PretrainConfig;
use tkre_trainer::pretrain::corpus::parse_record;
use tkre_trainer::synthesis::answers::{
    check_paraphrase, check_sample, check_types, find_entity, parse_paraphrases, parse_samples,
};
use tkre_trainer::synthesis::schema::SchemaRelation;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text made of the pieces LLM answers are made of: labels, JSON punctuation, fences,
/// numbering and Unicode whose case changes byte lengths.
fn answer_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("Relation: r. ".to_string()),
            Just("Context: ".to_string()),
            Just("Head Entity: ".to_string()),
            Just("Tail Entity: ".to_string()),
            Just("Head Type: PERSON. ".to_string()),
            Just("{\"samples\": [".to_string()),
            Just("{\"context\": \"".to_string()),
            Just("\", \"head_entity\": \"".to_string()),
            Just("\"}".to_string()),
            Just("]}".to_string()),
            Just("```json\n".to_string()),
            Just("\n1. ".to_string()),
            Just("İ".to_string()),
            Just("ẞ".to_string()),
            Just(" -- ".to_string()),
            "[A-Za-z ]{1,8}",
            "\\PC{1,3}",
        ],
        0..16,
    )
    .prop_map(|parts| parts.concat())
}

fn relation(hints: bool) -> SchemaRelation {
    SchemaRelation {
        name: "r".into(),
        id: None,
        description: None,
        head_types: vec!["PERSON".into()],
        tail_types: vec!["LOCATION".into()],
        types_are_hints: hints,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn llm_answers_parse_and_check_or_fail_cleanly(answer in answer_text(), hints in any::<bool>()) {
        let relation = relation(hints);
        for sample in parse_samples(&answer) {
            if let Ok(record) = check_sample(&sample, &relation, "p") {
                let len = record.text.chars().count();
                prop_assert!(record.subj_end <= len && record.obj_end <= len);
                let slice = |s: usize, e: usize| record.text.chars().skip(s).take(e - s).collect::<String>();
                prop_assert_eq!(slice(record.subj_start, record.subj_end), record.subj.clone());
                prop_assert_eq!(slice(record.obj_start, record.obj_end), record.obj.clone());
                for sentence in parse_paraphrases(&answer) {
                    let _ = check_paraphrase(&sentence, &record, &relation, "q");
                }
            }
        }
        let _ = check_types(&answer, "r", &["PERSON".to_string(), "LOCATION".to_string()], "t");
    }

    #[test]
    fn entity_search_returns_spans_inside_the_text(text in answer_text(), entity in answer_text()) {
        if let Some((span, _)) = find_entity(&text, &entity, None) {
            prop_assert!(span.start < span.end && span.end <= text.chars().count());
        }
    }

    #[test]
    fn corpus_records_parse_or_fail_cleanly(
        text in answer_text(),
        numbers in prop::collection::vec(prop_oneof![0u64..40, Just(u64::MAX), Just(4294967295)], 6),
        form in 0usize..4,
    ) {
        let record = match form {
            0 => json!({"text": text, "subj": "a", "subj_start": numbers[0], "subj_end": numbers[1],
                        "obj": "b", "obj_start": numbers[2], "obj_end": numbers[3], "relation": "r"}),
            1 => json!({"tokens": text.split(' ').collect::<Vec<_>>(), "h": ["a", "Q1", [[numbers[0], numbers[1]]]],
                        "t": ["b", "Q2", [[numbers[4]]]]}),
            2 => json!({"marked": text, "relation": "r"}),
            _ => json!({"relation": "r", "subject": text, "object": "x", "generated_text": text}),
        };
        let _ = parse_record(&record, None);
        let _ = parse_record(&Value::String(text), Some("r".into()));
    }

    #[test]
    fn pretraining_settings_validate_or_fail_cleanly(
        batch in prop_oneof![Just(0usize), 1usize..64],
        per_relation in prop_oneof![Just(0usize), 1usize..8],
        lr in prop_oneof![Just(0.0f64), Just(-1.0), Just(f64::NAN), Just(2e-5)],
        blank in prop_oneof![Just(-0.1f64), Just(0.7), Just(1.5)],
        max_length in prop_oneof![Just(0usize), Just(7), Just(128)],
    ) {
        let config = PretrainConfig {
            corpus: vec!["c.jsonl".into()],
            stage: tkre_trainer::pretrain::Stage::Relation,
            batch_size: batch,
            per_relation,
            learning_rate: lr,
            blank_probability: blank,
            max_length,
            ..Default::default()
        };
        if config.validate().is_ok() {
            prop_assert!(config.batch_size >= 2 * config.per_relation && config.per_relation >= 2);
            prop_assert!(config.learning_rate > 0.0 && (0.0..=1.0).contains(&config.blank_probability));
            prop_assert!(config.max_length >= 8);
        }
    }
}
