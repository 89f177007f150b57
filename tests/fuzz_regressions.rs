//! Inputs found by fuzzing (scripts/dev/fuzz.sh) or by reading the parser for the same class of
//! bug, kept as regression tests: none may panic, and what parses must round-trip.

use tkre::fewshot::SupportSet;
use tkre::text::RelationInstance;

fn marked_round_trips_or_errors(input: &str) {
    if let Ok(instance) = RelationInstance::from_marked(input) {
        let again = RelationInstance::from_marked(&instance.to_marked()).expect("re-parse");
        assert_eq!(again, instance, "{input:?}");
    }
}

#[test]
fn marker_nested_inside_another_marker_is_rejected() {
    // Removing the inner [E1] leaves a literal "[E1]" in the text, which would not round-trip.
    let err = RelationInstance::from_marked("[E[E1]1]x[/E1] [E2]y[/E2]").unwrap_err();
    assert!(err.to_string().contains("nested"), "{err}");
    marked_round_trips_or_errors("[E[E1]1]x[/E1] [E2]y[/E2]");
}

#[test]
fn odd_marked_inputs_do_not_panic() {
    for input in [
        "[E1][E2][/E1][/E2]",
        "[E1]a[/E1][E2]b[/E2]",
        "[E2]b[/E2][E1]a[/E1]",
        "[E1]\u{0}[/E1] [E2]\u{feff}[/E2]",
        "[E1]é[/E1][E2]🦀[/E2]",
        "[E1",
        "[/E2][E2]",
        "[E1]a[/E1] [E2]b[/E2] [E1]",
        "[E1]a[/E1][[E2]]b[/E2]",
    ] {
        marked_round_trips_or_errors(input);
    }
}

#[test]
fn odd_support_sets_do_not_panic() {
    for input in [
        "{\"relations\": [{\"name\": \"a\", \"examples\": [{\"text\": \"ab\", \"head\": {\"start\": 18446744073709551615, \"end\": 0}, \"tail\": {\"start\": 0, \"end\": 1}}]}]}",
        "{\"relations\": [{\"name\": \"a\", \"examples\": [{\"tokens\": [], \"h\": [\"x\", 1, [[0]]], \"t\": [\"y\", 2, [[0]]]}]}]}",
        "{\"relations\": [{\"name\": \"a\", \"examples\": [{\"tokens\": [\"a\", \"b\"], \"h\": [\"x\", 1, [[1, 0]]], \"t\": [\"y\", 2, [[0]]]}]}]}",
        "{\"relations\": [{\"name\": \"a\", \"examples\": [\"[E1]x[/E1] [E2]y[/E2]\"]}], \"none_threshold\": NaN}",
        "{\"relations\": null}",
        "[]",
    ] {
        if let Ok(set) = SupportSet::from_json(input, "fuzz")
            && let Ok(parsed) = set.parse()
        {
            let again = SupportSet::from_json(&set.to_json(), "again")
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(again.relations, parsed.relations);
        }
    }
}

#[test]
fn fewrel_token_indexes_near_usize_max_are_errors() {
    let record: tkre::text::FewRelRecord = serde_json::from_value(serde_json::json!({
        "tokens": ["a", "b", "c"],
        "h": ["a", "Q1", [[usize::MAX, 0]]],
        "t": ["c", "Q2", [[2]]]
    }))
    .unwrap();
    let err = RelationInstance::from_fewrel(&record).unwrap_err();
    assert!(err.to_string().contains("not consecutive"), "{err}");
    let record: tkre::text::FewRelRecord = serde_json::from_value(serde_json::json!({
        "tokens": ["a", "b", "c"],
        "h": ["a", "Q1", [[usize::MAX]]],
        "t": ["c", "Q2", [[2]]]
    }))
    .unwrap();
    assert!(RelationInstance::from_fewrel(&record).is_err());
}
