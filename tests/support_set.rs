//! Support sets: JSON in and out, validation errors, and classification with the base model.

mod common;

use tkre::fewshot::{ExampleInput, PrototypeClassifier, RelationExamples, Representation, SupportSet};
use tkre::text::RelationInstance;

fn example_set() -> SupportSet {
    let path = common::fixture("../examples/support_set.json");
    SupportSet::from_json(
        &std::fs::read_to_string(&path).unwrap(),
        "examples/support_set.json",
    )
    .unwrap()
}

#[test]
fn json_round_trip_keeps_every_form() {
    let set = example_set();
    let parsed = set.parse().unwrap();
    assert_eq!(parsed.relations.len(), 4);
    // K may differ per relation.
    let ks: Vec<usize> = parsed.relations.iter().map(|(_, v)| v.len()).collect();
    assert_eq!(ks, [3, 3, 3, 2]);
    // The offsets example parses to the marked-sentence form's instance.
    assert_eq!(
        parsed.relations[1].1[2],
        RelationInstance::from_marked(
            "[E1]Canberra[/E1] was chosen as the capital of [E2]Australia[/E2] in 1908."
        )
        .unwrap()
    );
    let again = SupportSet::from_json(&set.to_json(), "round trip").unwrap();
    assert_eq!(again, set);
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
        "{\"relations\": [{\"name\": \"a\", \"examples\": []}]}",
        "\"a\" has no examples",
    );
    check(
        "{\"relations\": [{\"name\": \"a\", \"examples\": [\"[E1]x[/E1] [E2]y[/E2]\"]}, {\"name\": \"a\", \"examples\": [\"[E1]x[/E1] [E2]y[/E2]\"]}]}",
        "appears twice",
    );
    check(
        "{\"relations\": [{\"name\": \" \", \"examples\": [\"[E1]x[/E1] [E2]y[/E2]\"]}]}",
        "empty name",
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
    let mut relations = Vec::new();
    for (name, instances) in &parsed.relations {
        relations.push((name.clone(), encoder.encode_instances(instances, 8).unwrap()));
    }
    let classifier =
        PrototypeClassifier::new(relations.clone(), encoder.representation.parts().len()).unwrap();
    for (name, instances) in &parsed.relations {
        // K = 1 classifier from each relation's first example; that example is its own best match.
        let one_shot = PrototypeClassifier::new(
            relations
                .iter()
                .map(|(n, v)| (n.clone(), vec![v[0].clone()]))
                .collect(),
            encoder.representation.parts().len(),
        )
        .unwrap();
        let query = encoder.encode_instances(&instances[..1], 1).unwrap();
        let p = one_shot.classify(&query[0]).unwrap();
        assert_eq!(&p.best().unwrap().relation, name);
        assert!(p.best().unwrap().similarity > 0.999, "{:?}", p.best());
        let full = classifier.classify(&query[0]).unwrap();
        let total: f32 = full.ranked.iter().map(|s| s.probability).sum();
        assert!((total - 1.0).abs() < 1e-4);
    }
}

#[test]
fn batched_and_single_encoding_agree() {
    let mut encoder = common::base_encoder();
    let parsed = example_set().parse().unwrap();
    let instances: Vec<RelationInstance> = parsed.relations.iter().flat_map(|(_, v)| v.clone()).collect();
    for representation in Representation::ALL {
        encoder.representation = representation;
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
        relations: vec![RelationExamples {
            name: "employer".into(),
            description: None,
            examples: vec![ExampleInput::from(&instance)],
        }],
        none_threshold: Some(0.3),
    };
    let parsed = SupportSet::from_json(&set.to_json(), "x")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(parsed.relations[0].1[0], instance);
    assert_eq!(parsed.none_threshold, Some(0.3));
}
