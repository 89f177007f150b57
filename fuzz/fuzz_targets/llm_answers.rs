//! Whatever an LLM answers is read and checked without a panic, and an accepted sample's
//! offsets select its entities.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tkre_trainer::synthesis::answers::{
    check_paraphrase, check_sample, check_types, parse_paraphrases, parse_samples,
};
use tkre_trainer::synthesis::schema::SchemaRelation;

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = std::str::from_utf8(data) else {
        return;
    };
    for hints in [false, true] {
        let relation = SchemaRelation {
            name: "place of birth".into(),
            id: None,
            description: None,
            head_types: vec!["PERSON".into()],
            tail_types: vec!["LOCATION".into()],
            types_are_hints: hints,
        };
        for sample in parse_samples(answer) {
            if let Ok(record) = check_sample(&sample, &relation, "fuzz") {
                let slice = |s: usize, e: usize| record.text.chars().skip(s).take(e - s).collect::<String>();
                assert_eq!(slice(record.subj_start, record.subj_end), record.subj);
                assert_eq!(slice(record.obj_start, record.obj_end), record.obj);
                for sentence in parse_paraphrases(answer) {
                    let _ = check_paraphrase(&sentence, &record, &relation, "fuzz");
                }
            }
        }
    }
    let _ = check_types(answer, "r", &["PERSON".to_string(), "LOCATION".to_string()], "fuzz");
});
