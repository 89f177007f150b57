//! Property-based tests of every place user data enters the library: any input gives `Ok` or
//! a clear error, never a panic, and what is accepted keeps its invariants. Bounded: a few
//! hundred cases each, well under a second per property without a model.

use proptest::prelude::*;
use serde_json::{Value, json};
use tkre::fewshot::{PrototypeClassifier, RelationVectors, SupportSet};
use tkre::model::{EncoderConfig, MAX_PARAMETERS, MIN_POSITIONS};
use tkre::text::{FewRelRecord, RelationInstance};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text built from the pieces markers and Unicode edge cases are made of.
fn marked_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("[E1]".to_string()),
            Just("[/E1]".to_string()),
            Just("[E2]".to_string()),
            Just("[/E2]".to_string()),
            Just("[E".to_string()),
            Just("]".to_string()),
            Just(" ".to_string()),
            "[a-zA-Z0-9 ]{1,6}",
            "\\PC{1,3}",
            Just("\u{0}".to_string()),
            Just("İ".to_string()),
            Just("🦀".to_string()),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// Any JSON value, a few levels deep, with the numbers that break index arithmetic.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(u64::MAX)),
            Just(json!(usize::MAX as u64 - 1)),
            Just(json!(4294967295u64)),
            Just(json!(1e308)),
            Just(json!(-0.5)),
            (0u64..40).prop_map(|n| json!(n)),
        ],
        marked_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("text".to_string()),
                        Just("head".to_string()),
                        Just("tail".to_string()),
                        Just("start".to_string()),
                        Just("end".to_string()),
                        Just("tokens".to_string()),
                        Just("h".to_string()),
                        Just("t".to_string()),
                        Just("key".to_string()),
                        Just("name".to_string()),
                        Just("description".to_string()),
                        Just("examples".to_string()),
                        Just("relations".to_string()),
                        Just("version".to_string()),
                        Just("none_threshold".to_string()),
                        "[a-z]{1,5}",
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A support set shaped like the real thing, with random (often wrong) parts.
fn support_set_json() -> impl Strategy<Value = Value> {
    let span = (0u64..30, 0u64..30).prop_map(|(s, e)| json!({"start": s, "end": e}));
    let example = prop_oneof![
        marked_text().prop_map(Value::String),
        ("[a-z ]{0,20}", span.clone(), span).prop_map(|(t, h, tl)| json!({"text": t, "head": h, "tail": tl})),
        (
            prop::collection::vec("[a-z]{1,4}", 0..6),
            prop::collection::vec(prop_oneof![0u64..8, Just(u64::MAX)], 0..3),
            prop::collection::vec(0u64..8, 0..3)
        )
            .prop_map(
                |(tokens, h, t)| json!({"tokens": tokens, "h": ["a", "Q1", [h]], "t": ["b", "Q2", [t]]})
            ),
        any_json(),
    ];
    let relation = (
        prop::option::of("[a-z ]{0,8}"),
        prop::option::of("[a-z ]{0,8}"),
        prop::option::of("[a-z ]{0,8}"),
        prop::collection::vec(example, 0..4),
    )
        .prop_map(|(key, name, description, examples)| {
            let mut r = serde_json::Map::new();
            if let Some(k) = key {
                r.insert("key".into(), json!(k));
            }
            if let Some(n) = name {
                r.insert("name".into(), json!(n));
            }
            if let Some(d) = description {
                r.insert("description".into(), json!(d));
            }
            r.insert("examples".into(), Value::Array(examples));
            Value::Object(r)
        });
    (
        prop::option::of(0u64..4),
        prop::collection::vec(relation, 0..4),
        prop::option::of(prop_oneof![
            Just(json!(0.5)),
            Just(json!(5.0)),
            Just(json!(-2)),
            Just(json!("x"))
        ]),
    )
        .prop_map(|(version, relations, threshold)| {
            let mut set = serde_json::Map::new();
            if let Some(v) = version {
                set.insert("version".into(), json!(v));
            }
            set.insert("relations".into(), Value::Array(relations));
            if let Some(t) = threshold {
                set.insert("none_threshold".into(), t);
            }
            Value::Object(set)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn marked_sentences_parse_or_fail_cleanly(text in marked_text()) {
        if let Ok(instance) = RelationInstance::from_marked(&text) {
            let again = RelationInstance::from_marked(&instance.to_marked()).unwrap();
            prop_assert_eq!(again, instance);
        }
    }

    #[test]
    fn support_sets_parse_or_fail_cleanly(set in prop_oneof![support_set_json(), any_json()]) {
        let text = set.to_string();
        if let Ok(parsed) = SupportSet::from_json(&text, "prop.json").and_then(|s| s.parse()) {
            prop_assert!(!parsed.relations.is_empty());
            for relation in &parsed.relations {
                prop_assert!(!relation.instances.is_empty() || relation.text.sentence().is_some());
                for instance in &relation.instances {
                    let len = instance.text.chars().count();
                    prop_assert!(instance.head.end <= len && instance.tail.end <= len);
                }
            }
            if let Some(t) = parsed.none_threshold {
                prop_assert!((-1.0..=1.0).contains(&t));
            }
        }
    }

    #[test]
    fn fewrel_records_convert_or_fail_cleanly(
        tokens in prop::collection::vec("\\PC{0,4}", 0..8),
        h in prop::collection::vec(prop::collection::vec(prop_oneof![0usize..10, Just(usize::MAX)], 0..4), 0..3),
        t in prop::collection::vec(prop::collection::vec(prop_oneof![0usize..10, Just(usize::MAX - 1)], 0..4), 0..3),
    ) {
        let record: Result<FewRelRecord, _> = serde_json::from_value(json!({
            "tokens": tokens, "h": ["h", "Q1", h], "t": ["t", "Q2", t]
        }));
        if let Ok(record) = record {
            let _ = RelationInstance::from_fewrel(&record);
        }
    }

    #[test]
    fn configs_validate_or_fail_cleanly(
        sizes in prop::collection::vec(prop_oneof![Just(0u64), 1u64..64, Just(1 << 20), Just(u64::MAX)], 7),
        floats in prop::collection::vec(prop_oneof![Just(-1.0f64), Just(0.0), Just(0.1), Just(1.0), Just(1e-12), Just(f64::MAX)], 3),
        act in prop_oneof![Just("gelu"), Just("relu"), Just("")],
    ) {
        let text = json!({
            "vocab_size": sizes[0], "hidden_size": sizes[1], "num_hidden_layers": sizes[2],
            "num_attention_heads": sizes[3], "intermediate_size": sizes[4],
            "max_position_embeddings": sizes[5], "type_vocab_size": sizes[6],
            "layer_norm_eps": floats[0], "hidden_dropout_prob": floats[1],
            "attention_probs_dropout_prob": floats[2], "hidden_act": act,
        })
        .to_string();
        if let Ok(config) = EncoderConfig::from_json(&text, "config.json") {
            prop_assert!(config.parameter_count() <= MAX_PARAMETERS);
            prop_assert!(config.max_position_embeddings >= MIN_POSITIONS);
            prop_assert!(config.layer_norm_eps > 0.0);
            prop_assert!((0.0..1.0).contains(&config.hidden_dropout_prob));
        }
    }

    #[test]
    fn the_classifier_answers_or_fails_cleanly(
        examples in prop::collection::vec(
            prop::collection::vec(
                prop::collection::vec(prop_oneof![-1.0f32..1.0, Just(0.0), Just(f32::NAN), Just(f32::INFINITY)], 4),
                0..3
            ),
            1..4
        ),
        texts in prop::collection::vec(prop::option::of(prop::collection::vec(-1.0f32..1.0, 4)), 4),
        query in prop::collection::vec(prop_oneof![-1.0f32..1.0, Just(f32::NAN)], 3..=4usize),
        parts in prop_oneof![Just(1usize), Just(2), Just(3)],
    ) {
        let relations: Vec<RelationVectors> = examples
            .into_iter()
            .enumerate()
            .map(|(i, e)| RelationVectors::new(format!("r{i}"), e, texts[i].clone()))
            .collect();
        if let Ok(classifier) = PrototypeClassifier::new(relations, parts)
            && let Ok(prediction) = classifier.classify(&query)
        {
            let total: f32 = prediction.ranked.iter().map(|r| r.probability).sum();
            prop_assert!((total - 1.0).abs() < 1e-3, "probabilities sum to {}", total);
            for score in &prediction.ranked {
                prop_assert!(score.similarity.is_finite() && score.probability.is_finite());
            }
        }
    }
}
