//! Support sets: JSON in and out (both format versions), validation errors, relation text, and
//! classification with the base model.

mod common;

use tkre::fewshot::{
    ExampleInput, PrototypeClassifier, RelationExamples, RelationText, RelationVectors, Representation,
    SupportSet,
};
use tkre::text::RelationInstance;

fn load(path: &str) -> SupportSet {
    SupportSet::from_json(&std::fs::read_to_string(common::fixture(path)).unwrap(), path).unwrap()
}

fn example_set() -> SupportSet {
    load("../examples/support_set.json")
}

#[test]
fn json_round_trip_keeps_every_form() {
    let set = example_set();
    let parsed = set.parse().unwrap();
    assert_eq!(parsed.relations.len(), 5);
    // K may differ per relation, and be 0 for a relation with text.
    let ks: Vec<usize> = parsed.relations.iter().map(|r| r.instances.len()).collect();
    assert_eq!(ks, [3, 3, 3, 2, 0]);
    assert_eq!(parsed.relations[4].key, "founded by");
    assert_eq!(
        parsed.relations[4].text.sentence().unwrap(),
        "founded by: the organisation or company was founded by the person"
    );
    // The offsets example parses to the marked-sentence form's instance.
    assert_eq!(
        parsed.relations[1].instances[2],
        RelationInstance::from_marked(
            "[E1]Canberra[/E1] was chosen as the capital of [E2]Australia[/E2] in 1908."
        )
        .unwrap()
    );
    let again = SupportSet::from_json(&set.to_json(), "round trip").unwrap();
    assert_eq!(again, set);
    assert_eq!(again.version, Some(2));
}

#[test]
fn first_format_files_load_unchanged() {
    // The format before relation text: no version, `name` is the key.
    let old = load("fixtures/support_set_v1.json");
    assert_eq!(old.version, None);
    let parsed = old.parse().unwrap();
    let keys: Vec<&str> = parsed.relations.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["place of birth", "capital of", "employer", "author of"]);
    // Its names are read as relation text, and its examples as before.
    assert_eq!(
        parsed.relations[0].text,
        RelationText::new(Some("place of birth".into()), None)
    );
    let current: Vec<_> = example_set().parse().unwrap().relations[..4]
        .iter()
        .map(|r| r.instances.clone())
        .collect();
    assert_eq!(
        parsed
            .relations
            .iter()
            .map(|r| r.instances.clone())
            .collect::<Vec<_>>(),
        current
    );
    // Written back, it is the current version with the same relations.
    let again = SupportSet::from_json(&old.to_json(), "saved").unwrap();
    assert_eq!(again.version, Some(2));
    assert_eq!(again.parse().unwrap().relations, parsed.relations);
    // Versions this build does not know are refused with what to do.
    let future = "{\"version\": 3, \"relations\": [{\"name\": \"a\"}]}";
    let err = SupportSet::from_json(future, "f")
        .unwrap()
        .parse()
        .unwrap_err()
        .to_string();
    assert!(err.contains("version 3 is not known"), "{err}");
}

#[test]
fn invalid_sets_name_what_is_wrong() {
    let check = |json: &str, needle: &str| {
        let err = SupportSet::from_json(json, "set.json")
            .and_then(|s| s.parse())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{json}: {err:?} should mention {needle:?}");
    };
    check("{\"relations\": []}", "no relations");
    check(
        "{\"version\": 2, \"relations\": [{\"key\": \"a\", \"examples\": []}]}",
        "\"a\" has no examples and no text",
    );
    check(
        "{\"relations\": [{\"examples\": [\"[E1]x[/E1] [E2]y[/E2]\"]}]}",
        "empty key",
    );
    // Relation text: wrong type, empty, far too long.
    check(
        "{\"relations\": [{\"name\": \"a\", \"description\": 5}]}",
        "set.json: malformed JSON: invalid type: integer `5`, expected a string",
    );
    check(
        "{\"relations\": [{\"key\": \"a\", \"name\": \"\"}]}",
        "relation \"a\": the name is empty",
    );
    check(
        "{\"relations\": [{\"key\": \"a\", \"description\": \"   \"}]}",
        "relation \"a\": the description is empty",
    );
    let huge = format!(
        "{{\"relations\": [{{\"name\": \"a\", \"description\": \"{}\"}}]}}",
        "x".repeat(100_000)
    );
    check(&huge, "the description has 100000 characters, more than 2000");
    let huge_key = format!(
        "{{\"relations\": [{{\"key\": \"{}\", \"name\": \"a\"}}]}}",
        "k".repeat(100_000)
    );
    check(&huge_key, "the key has 100000 characters");
    check(
        "{\"relations\": [{\"name\": \"a\", \"examples\": [\"[E1]x[/E1] [E2]y[/E2]\"]}, {\"name\": \"a\", \"examples\": [\"[E1]x[/E1] [E2]y[/E2]\"]}]}",
        "appears twice",
    );
    check(
        "{\"relations\": [{\"name\": \" \", \"examples\": [\"[E1]x[/E1] [E2]y[/E2]\"]}]}",
        "empty key",
    );
    check(
        "{\"relations\": [{\"name\": \"b\", \"examples\": [\"[E1]x[/E1] [E2]y[/E2]\", \"no markers\"]}]}",
        "relation \"b\", example #2",
    );
    check(
        "{\"relations\": [{\"name\": \"b\", \"examples\": [{\"text\": \"ab cd\", \"head\": {\"start\": 0, \"end\": 2}, \"tail\": {\"start\": 3, \"end\": 9}}]}]}",
        "out of range",
    );
    check("{\"relations\": [", "set.json: malformed JSON");
    check("{\"relations\": 5}", "set.json: malformed JSON");
    check(
        "{\"relations\": [{\"name\": \"a\", \"examples\": [\"[E1]x[/E1] [E2]y[/E2]\"]}], \"none_threshold\": 3}",
        "none_threshold",
    );
}

#[test]
fn a_support_example_classifies_as_its_own_relation() {
    let encoder = common::base_encoder();
    let parsed = example_set().parse().unwrap();
    let parts = encoder.representation().parts().len();
    let encoded = encoder.encode_support_set(parsed.clone(), 8).unwrap();
    let classifier = encoded.classifier(parts, true).unwrap();
    for relation in parsed.relations.iter().filter(|r| !r.instances.is_empty()) {
        // K = 1 classifier from each relation's first example, without text; that example is
        // its own best match.
        let one_shot = PrototypeClassifier::new(
            encoded
                .relations
                .iter()
                .filter(|r| !r.examples.is_empty())
                .map(|r| RelationVectors::new(r.key.clone(), vec![r.examples[0].1.clone()], None))
                .collect(),
            parts,
        )
        .unwrap();
        let query = encoder.encode_instances(&relation.instances[..1], 1).unwrap();
        let p = one_shot.classify(&query[0]).unwrap();
        assert_eq!(p.best().unwrap().relation, relation.key);
        assert!(p.best().unwrap().similarity > 0.999, "{:?}", p.best());
        let full = classifier.classify(&query[0]).unwrap();
        let total: f32 = full.ranked.iter().map(|s| s.probability).sum();
        assert!((total - 1.0).abs() < 1e-4);
        assert_eq!(full.best().unwrap().relation, relation.key);
    }
}

#[test]
fn a_text_only_support_set_classifies_zero_shot() {
    let encoder = common::base_encoder();
    let json = r#"{"version": 2, "relations": [
        {"key": "P19", "name": "place of birth", "description": "the place where a person was born"},
        {"key": "P108", "name": "employer", "description": "the organisation a person works for"},
        {"key": "P50", "name": "author", "description": "the writer of a book"}
    ]}"#;
    let set = SupportSet::from_json(json, "zero-shot").unwrap();
    let encoded = encoder.encode_support_set(set.parse().unwrap(), 8).unwrap();
    let classifier = encoded
        .classifier(encoder.representation().parts().len(), true)
        .unwrap();
    for (query, expected) in [
        ("[E1]Albert Einstein[/E1] was born in [E2]Ulm[/E2].", "P19"),
        (
            "[E1]Sundar Pichai[/E1] works for [E2]Google[/E2] as its chief executive.",
            "P108",
        ),
    ] {
        let instance = tkre::text::RelationInstance::from_marked(query).unwrap();
        let vector = encoder.encode_instances(&[instance], 1).unwrap();
        let p = classifier.classify(&vector[0]).unwrap();
        assert_eq!(p.best().unwrap().relation, expected, "{query}: {p:?}");
        assert!(p.ranked.iter().all(|s| (-1.0..=1.0).contains(&s.similarity)));
    }
    // Without text there is nothing to classify by.
    assert!(encoded.classifier(3, false).is_err());
}

#[test]
fn batched_and_single_encoding_agree() {
    let encoder = common::base_encoder();
    let parsed = example_set().parse().unwrap();
    let instances: Vec<RelationInstance> = parsed.instances();
    for representation in Representation::ALL {
        encoder.set_representation(representation);
        let batched = encoder.encode_instances(&instances, 16).unwrap();
        for (instance, expected) in instances.iter().zip(&batched) {
            let single = encoder
                .encode_instances(std::slice::from_ref(instance), 1)
                .unwrap();
            let diff = single[0]
                .iter()
                .zip(expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                diff < 1e-4,
                "{representation}: batched differs from single by {diff}"
            );
        }
    }
}

#[test]
fn examples_convert_back_to_json() {
    let instance = RelationInstance::from_marked("[E1]Ada[/E1] joined [E2]Siemens[/E2]").unwrap();
    let set = SupportSet {
        version: None,
        relations: vec![RelationExamples {
            name: Some("employer".into()),
            examples: vec![ExampleInput::from(&instance)],
            ..Default::default()
        }],
        none_threshold: Some(0.3),
    };
    let parsed = SupportSet::from_json(&set.to_json(), "x")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(parsed.relations[0].instances[0], instance);
    assert_eq!(parsed.none_threshold, Some(0.3));
}
