//! The three input forms of a relation instance, marker placement and long-sentence windows.

mod common;

use tkre::text::{CharSpan, FewRelRecord, RelationInstance, encode_instance, encode_unmarked};

fn fewrel_record() -> FewRelRecord {
    serde_json::from_str(
        r#"{"tokens": ["Marie", "Curie", "was", "born", "in", "Warsaw", "."],
            "h": ["marie curie", "Q7186", [[0, 1]]],
            "t": ["warsaw", "Q270", [[5]]]}"#,
    )
    .unwrap()
}

#[test]
fn three_forms_give_the_same_instance() {
    let from_fewrel = RelationInstance::from_fewrel(&fewrel_record()).unwrap();
    let from_marked =
        RelationInstance::from_marked("[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2] .").unwrap();
    let from_offsets = RelationInstance::from_offsets(
        "Marie Curie was born in Warsaw .",
        CharSpan::new(0, 11),
        CharSpan::new(24, 30),
    )
    .unwrap();
    assert_eq!(from_fewrel, from_marked);
    assert_eq!(from_marked, from_offsets);
    assert_eq!(from_marked.head_text(), "Marie Curie");
    assert_eq!(from_marked.tail_text(), "Warsaw");
    assert_eq!(
        from_marked.to_marked(),
        "[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2] ."
    );
}

#[test]
fn offsets_are_characters_not_bytes() {
    let i = RelationInstance::from_marked("[E2]Zürich[/E2] is home to [E1]Café Odéon[/E1].").unwrap();
    assert_eq!(i.tail, CharSpan::new(0, 6));
    assert_eq!(i.head_text(), "Café Odéon");
    assert_eq!(RelationInstance::from_marked(&i.to_marked()).unwrap(), i);
}

#[test]
fn bad_marked_sentences_are_clear_errors() {
    let cases = [
        ("Marie Curie was born in [E2]Warsaw[/E2].", "[E1] is missing"),
        (
            "[E1]Marie[/E1] [E1]Curie[/E1] in [E2]Warsaw[/E2]",
            "more than once",
        ),
        ("[/E1]Marie[E1] was born in [E2]Warsaw[/E2]", "comes before"),
        ("[E1]Marie [E2]Curie[/E1] was[/E2] born", "overlap"),
        ("[E1][/E1] was born in [E2]Warsaw[/E2]", "empty"),
        ("[E1]   [/E1] was born in [E2]Warsaw[/E2]", "whitespace"),
        ("", "missing"),
    ];
    for (input, expected) in cases {
        let err = RelationInstance::from_marked(input).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "{input:?}: {err:?} should mention {expected:?}"
        );
    }
}

#[test]
fn bad_offsets_and_records_are_clear_errors() {
    let text = "Marie Curie was born in Warsaw.";
    let err = RelationInstance::from_offsets(text, CharSpan::new(0, 11), CharSpan::new(24, 99)).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    let err = RelationInstance::from_offsets(text, CharSpan::new(0, 11), CharSpan::new(6, 15)).unwrap_err();
    assert!(err.to_string().contains("overlap"), "{err}");
    let err = RelationInstance::from_offsets("  ", CharSpan::new(0, 1), CharSpan::new(1, 2)).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    let mut record = fewrel_record();
    record.t.2 = vec![vec![9]];
    let err = RelationInstance::from_fewrel(&record).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    record.t.2 = vec![vec![4, 6]];
    assert!(
        RelationInstance::from_fewrel(&record)
            .unwrap_err()
            .to_string()
            .contains("consecutive")
    );
    record.t.2 = vec![];
    assert!(
        RelationInstance::from_fewrel(&record)
            .unwrap_err()
            .to_string()
            .contains("no token indexes")
    );
}

#[test]
fn markers_surround_the_entities() {
    let encoder = common::base_encoder();
    let tokenizer = &encoder.tokenizer;
    let instance =
        RelationInstance::from_marked("In 1867 [E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].").unwrap();
    let encoded = encode_instance(tokenizer, &instance, 128).unwrap();
    let token = |i: usize| tokenizer.inner().id_to_token(encoded.ids[i]).unwrap();
    assert_eq!(token(0), "[CLS]");
    assert_eq!(token(encoded.ids.len() - 1), "[SEP]");
    assert_eq!(token(encoded.head_marker), "@");
    assert_eq!(token(encoded.tail_marker), "#");
    let head: Vec<String> = encoded.head.clone().map(token).collect();
    assert_eq!(head, ["marie", "cu", "##rie"]);
    let tail: Vec<String> = encoded.tail.clone().map(token).collect();
    assert_eq!(tail, ["warsaw"]);
    assert_eq!(token(encoded.head.end), "@");
    assert_eq!(token(encoded.tail.end), "#");
    assert!(!encoded.truncated);

    // Tail before head, with types.
    let instance = RelationInstance::from_marked("[E2]Warsaw[/E2] is where [E1]Curie[/E1] was born")
        .unwrap()
        .with_types(Some("person".into()), Some("city".into()));
    let encoded = encode_instance(tokenizer, &instance, 128).unwrap();
    let token = |i: usize| tokenizer.inner().id_to_token(encoded.ids[i]).unwrap();
    let all: Vec<String> = (0..encoded.ids.len()).map(token).collect();
    assert_eq!(
        all.join(" "),
        "[CLS] # ^ city ^ warsaw # is where @ * person * cu ##rie @ was born [SEP]"
    );
    assert_eq!(token(encoded.head.start), "cu");
    assert_eq!(token(encoded.tail.start), "warsaw");
}

#[test]
fn long_sentences_keep_both_entities() {
    let encoder = common::base_encoder();
    let filler = |n: usize, word: &str| vec![word; n].join(" ");
    // Entities far apart: more than the limit between them.
    let marked = format!(
        "{} [E1]Marie Curie[/E1] {} [E2]Warsaw[/E2] {}",
        filler(50, "alpha"),
        filler(300, "beta"),
        filler(50, "gamma")
    );
    let instance = RelationInstance::from_marked(&marked).unwrap();
    for max_len in [32, 64, 128] {
        let encoded = encode_instance(&encoder.tokenizer, &instance, max_len).unwrap();
        assert!(encoded.truncated);
        assert_eq!(encoded.ids.len(), max_len);
        let token = |i: usize| encoder.tokenizer.inner().id_to_token(encoded.ids[i]).unwrap();
        assert_eq!(token(encoded.head_marker), "@");
        assert_eq!(token(encoded.tail_marker), "#");
        let head: Vec<String> = encoded.head.clone().map(token).collect();
        assert_eq!(head, ["marie", "cu", "##rie"]);
        assert_eq!(token(encoded.tail.start), "warsaw");
    }
    // Entities close together in a long sentence: one contiguous window.
    let marked = format!(
        "{} [E1]Curie[/E1] born in [E2]Warsaw[/E2] {}",
        filler(400, "alpha"),
        filler(400, "beta")
    );
    let encoded = encode_instance(
        &encoder.tokenizer,
        &RelationInstance::from_marked(&marked).unwrap(),
        64,
    )
    .unwrap();
    assert_eq!(encoded.ids.len(), 64);
    let vectors = {
        let e = common::base_encoder();
        e.set_max_len(64).unwrap();
        e.encode_instances(&[RelationInstance::from_marked(&marked).unwrap()], 1)
            .unwrap()
    };
    assert!(vectors[0].iter().all(|x| x.is_finite()));
    // Entities that alone exceed the limit: an error, not a panic.
    let marked = format!(
        "[E1]{}[/E1] and [E2]{}[/E2]",
        filler(40, "alpha"),
        filler(40, "beta")
    );
    let err = encode_instance(
        &encoder.tokenizer,
        &RelationInstance::from_marked(&marked).unwrap(),
        32,
    )
    .unwrap_err();
    assert!(err.to_string().contains("shorten"), "{err}");
}

#[test]
fn unmarked_instances_pool_the_entities_own_pieces() {
    let encoder = common::base_encoder();
    let instance =
        RelationInstance::from_marked("[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].").unwrap();
    let encoded = encode_unmarked(&encoder.tokenizer, &instance, 128).unwrap();
    let token = |i: usize| encoder.tokenizer.inner().id_to_token(encoded.ids[i]).unwrap();
    let all: Vec<String> = (0..encoded.ids.len()).map(token).collect();
    assert!(!all.iter().any(|t| t == "@" || t == "#"), "no markers: {all:?}");
    let head: Vec<String> = encoded.head.clone().map(token).collect();
    assert_eq!(head, ["marie", "cu", "##rie"]);
    assert_eq!(encoded.head_marker, encoded.head.start);
    assert_eq!(token(encoded.tail.start), "warsaw");
    // A span that cuts a word takes its whole piece rather than failing.
    let cut = RelationInstance::from_offsets(
        "Parisians love Berlin.",
        CharSpan::new(0, 5),
        CharSpan::new(15, 21),
    )
    .unwrap();
    let encoded = encode_unmarked(&encoder.tokenizer, &cut, 128).unwrap();
    assert!(!encoded.head.is_empty());
    // Long sentences keep a window around both entities, as with markers.
    let filler = |n: usize, word: &str| vec![word; n].join(" ");
    let marked = format!(
        "{} [E1]Curie[/E1] {} [E2]Warsaw[/E2] {}",
        filler(100, "alpha"),
        filler(300, "beta"),
        filler(50, "gamma")
    );
    let encoded = encode_unmarked(
        &encoder.tokenizer,
        &RelationInstance::from_marked(&marked).unwrap(),
        64,
    )
    .unwrap();
    assert!(encoded.truncated);
    assert_eq!(encoded.ids.len(), 64);
    assert_eq!(
        encoder
            .tokenizer
            .inner()
            .id_to_token(encoded.ids[encoded.head.start])
            .unwrap(),
        "cu"
    );
}

/// Pairs of one sentence read from one encoder pass equal each pair encoded unmarked on its
/// own, so extraction may share the pass.
#[test]
fn sentence_pairs_from_one_pass_equal_unmarked_instances() {
    use tkre::text::Marking;
    let encoder = common::base_encoder();
    let texts = vec![
        "Marie Curie was born in Warsaw in 1867.".to_string(),
        "Zoë Ünal moved from Köln to Berlin, the capital of Germany.".to_string(),
    ];
    let span = |s: usize, word: &str| {
        let at = texts[s].find(word).unwrap();
        let start = texts[s][..at].chars().count();
        CharSpan::new(start, start + word.chars().count())
    };
    let pairs = vec![
        (0, span(0, "Marie Curie"), span(0, "Warsaw")),
        (0, span(0, "1867"), span(0, "Marie Curie")),
        (1, span(1, "Köln"), span(1, "Zoë Ünal")),
        (1, span(1, "Berlin"), span(1, "Germany")),
    ];
    let shared = tkre::engine::block_on(encoder.encode_sentence_pairs(&texts, &pairs)).unwrap();
    let instances: Vec<RelationInstance> = pairs
        .iter()
        .map(|&(s, h, t)| RelationInstance::from_offsets(texts[s].clone(), h, t).unwrap())
        .collect();
    let plan = encoder
        .plan_instances_marked(&instances, Marking::Unmarked)
        .unwrap();
    let alone = encoder.run_plan(&plan, 8).unwrap();
    for (a, b) in shared.iter().zip(&alone) {
        assert_eq!(a.len(), b.len());
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "differs by {worst}");
    }
    // Two different pairs of one sentence are different vectors (the entity parts differ).
    assert!(
        shared[0]
            .iter()
            .zip(&shared[1])
            .any(|(x, y)| (x - y).abs() > 1e-3)
    );
    // Over-long sentences fall back to windows and still give one vector per pair.
    encoder.set_max_len(16).unwrap();
    let windowed = tkre::engine::block_on(encoder.encode_sentence_pairs(&texts, &pairs)).unwrap();
    assert_eq!(windowed.len(), pairs.len());
    assert!(
        windowed
            .iter()
            .all(|v| v.len() == shared[0].len() && v.iter().all(|x| x.is_finite()))
    );
}
