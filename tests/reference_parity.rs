//! The encoder against an independent reference: hidden states, sentence embeddings and
//! relation representations of all-MiniLM-L6-v2 computed by tests/reference/numpy_bert.py (a
//! numpy implementation with its own WordPiece tokenizer that shares no code with this
//! project). See tests/reference/README.md for how the fixtures were made.

mod common;

use safetensors::SafeTensors;
use tkre::fewshot::Representation;
use tkre::text::{FewRelRecord, RelationInstance, encode_sentence};

/// Maximum absolute difference allowed on hidden states and pooled vectors. float32 matrix
/// products summed in a different order differ by ~1e-6 relative; over 6 layers with
/// LayerNorm this stays well below 1e-4 in absolute terms.
const TOLERANCE: f32 = 1e-4;

struct Reference {
    sentences: Vec<String>,
    bytes: Vec<u8>,
}

impl Reference {
    fn load() -> Self {
        let dir = common::fixture("reference/fixtures");
        let sentences =
            serde_json::from_str(&std::fs::read_to_string(dir.join("sentences.json")).unwrap()).unwrap();
        let bytes = std::fs::read(dir.join("minilm_reference.safetensors")).unwrap();
        Self { sentences, bytes }
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).unwrap()
    }

    fn f32s(&self, name: &str) -> Vec<f32> {
        let tensors = self.tensors();
        let view = tensors.tensor(name).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
        view.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    fn ids(&self, i: usize) -> Vec<u32> {
        let tensors = self.tensors();
        let view = tensors.tensor(&format!("ids.{i}")).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::I64);
        view.data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as u32)
            .collect()
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length differs");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn at_least_twenty_sentences_are_covered() {
    assert!(Reference::load().sentences.len() >= 20);
}

#[test]
fn tokenizer_matches_the_reference_word_pieces() {
    let reference = Reference::load();
    let encoder = common::base_encoder();
    for (i, sentence) in reference.sentences.iter().enumerate() {
        let (ids, _) = encode_sentence(&encoder.tokenizer, sentence, 512).unwrap();
        assert_eq!(ids, reference.ids(i), "sentence {i}: {sentence:?}");
    }
}

#[test]
fn hidden_states_match_one_by_one_and_in_a_padded_batch() {
    let reference = Reference::load();
    let encoder = common::base_encoder();
    let ids: Vec<Vec<u32>> = (0..reference.sentences.len()).map(|i| reference.ids(i)).collect();
    let batched = encoder.hidden_states(&ids).unwrap();
    let mut worst = (0.0f32, 0.0f32);
    for (i, sequence) in ids.iter().enumerate() {
        let expected = reference.f32s(&format!("hidden.{i}"));
        let single = encoder.hidden_states(std::slice::from_ref(sequence)).unwrap();
        let (d_single, d_batch) = (
            max_abs_diff(&single[0], &expected),
            max_abs_diff(&batched[i], &expected),
        );
        assert!(
            d_single < TOLERANCE,
            "sentence {i}: one-by-one differs by {d_single}"
        );
        assert!(d_batch < TOLERANCE, "sentence {i}: batched differs by {d_batch}");
        worst = (worst.0.max(d_single), worst.1.max(d_batch));
    }
    eprintln!(
        "max |burn - numpy|: one-by-one {:.2e}, padded batch {:.2e}",
        worst.0, worst.1
    );
}

#[test]
fn sentence_embeddings_match() {
    let reference = Reference::load();
    let encoder = common::base_encoder();
    let embeddings = encoder.embed_sentences(&reference.sentences, 7).unwrap();
    for (i, embedding) in embeddings.iter().enumerate() {
        let d = max_abs_diff(embedding, &reference.f32s(&format!("embedding.{i}")));
        assert!(d < TOLERANCE, "sentence {i}: embedding differs by {d}");
    }
}

#[test]
fn relation_representations_match() {
    let path = common::fixture("reference/fixtures/relation_reference.json");
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(records.len() >= 8);
    let mut encoder = common::base_encoder();
    let instances: Vec<RelationInstance> = records
        .iter()
        .map(|r| {
            let record: FewRelRecord = serde_json::from_value(r.clone()).unwrap();
            RelationInstance::from_fewrel(&record).unwrap()
        })
        .collect();
    for (representation, key) in [
        (Representation::Markers, "markers"),
        (Representation::EntityMean, "entity_mean"),
        (Representation::EntityMeanSentence, "entity_mean_sentence"),
        (Representation::MarkersSentence, "markers_sentence"),
        (Representation::Sentence, "sentence"),
    ] {
        encoder.representation = representation;
        let vectors = encoder.encode_instances(&instances, 4).unwrap();
        for (i, (vector, record)) in vectors.iter().zip(&records).enumerate() {
            let expected: Vec<f32> = serde_json::from_value(record[key].clone()).unwrap();
            let d = max_abs_diff(vector, &expected);
            assert!(d < TOLERANCE, "{key}, record {i}: differs by {d}");
        }
    }
}

#[test]
fn flex_backend_matches_the_reference_too() {
    let reference = Reference::load();
    let encoder =
        tkre::RelationEncoder::load_dir(&common::model_dir(), burn::tensor::Device::flex()).unwrap();
    let ids: Vec<Vec<u32>> = (0..reference.sentences.len()).map(|i| reference.ids(i)).collect();
    let batched = encoder.hidden_states(&ids).unwrap();
    for (i, hidden) in batched.iter().enumerate() {
        let d = max_abs_diff(hidden, &reference.f32s(&format!("hidden.{i}")));
        assert!(d < TOLERANCE, "flex, sentence {i}: batched differs by {d}");
    }
}

#[test]
fn fused_cpu_path_matches_the_reference_too() {
    // The browser's CPU backend: one ragged pass, packed weights, fused attention.
    let reference = Reference::load();
    let mut encoder = common::base_encoder();
    encoder.use_fused_cpu().unwrap();
    assert!(encoder.uses_fused_cpu());
    let ids: Vec<Vec<u32>> = (0..reference.sentences.len()).map(|i| reference.ids(i)).collect();
    let mut worst = 0.0f32;
    for (i, hidden) in encoder.hidden_states(&ids).unwrap().iter().enumerate() {
        let d = max_abs_diff(hidden, &reference.f32s(&format!("hidden.{i}")));
        assert!(d < TOLERANCE, "fused, sentence {i}: differs by {d}");
        worst = worst.max(d);
    }
    eprintln!("max |fused - numpy|: {worst:.2e}");
    let embeddings = encoder.embed_sentences(&reference.sentences, 5).unwrap();
    for (i, embedding) in embeddings.iter().enumerate() {
        let d = max_abs_diff(embedding, &reference.f32s(&format!("embedding.{i}")));
        assert!(d < TOLERANCE, "fused, sentence {i}: embedding differs by {d}");
    }
    let path = common::fixture("reference/fixtures/relation_reference.json");
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let instances: Vec<RelationInstance> = records
        .iter()
        .map(|r| RelationInstance::from_fewrel(&serde_json::from_value(r.clone()).unwrap()).unwrap())
        .collect();
    encoder.representation = Representation::Markers;
    for (i, (vector, record)) in encoder
        .encode_instances(&instances, 3)
        .unwrap()
        .iter()
        .zip(&records)
        .enumerate()
    {
        let expected: Vec<f32> = serde_json::from_value(record["markers"].clone()).unwrap();
        let d = max_abs_diff(vector, &expected);
        assert!(d < TOLERANCE, "fused, markers, record {i}: differs by {d}");
    }
}
