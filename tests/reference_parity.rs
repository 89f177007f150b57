//! The encoder against an independent reference: hidden states, sentence embeddings and
//! relation representations of all-MiniLM-L6-v2 computed by tests/reference/numpy_bert.py (a
//! numpy implementation with its own WordPiece tokenizer that shares no code with this
//! project). See tests/reference/README.md for how the fixtures were made.

mod common;

use safetensors::SafeTensors;
use tkre::fewshot::Representation;
use tkre::text::{FewRelRecord, RelationInstance, encode_sentence};
use tkre::{EngineRequest, RelationEncoder};

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

/// Every engine, natively: the WebGPU engine on a Vulkan device (Mesa's lavapipe, a software
/// device that scripts/setup/install.sh installs, when there is no GPU).
fn engines() -> Vec<(&'static str, EngineRequest)> {
    vec![
        ("burn-ndarray", EngineRequest::parse("burn-ndarray").unwrap()),
        ("burn", EngineRequest::parse("burn").unwrap()),
        ("cpu", EngineRequest::Cpu),
        ("webgpu", EngineRequest::WebGpu),
    ]
}

fn encoder_on(request: EngineRequest) -> RelationEncoder {
    RelationEncoder::load_dir(&common::model_dir(), request).unwrap_or_else(|e| {
        panic!(
            "{request:?}: {e}; the WebGPU engine needs a Vulkan device natively (Debian's \
             mesa-vulkan-drivers gives lavapipe; scripts/setup/install.sh installs it)"
        )
    })
}

/// One parity table: every engine against the reference on the same fixtures, hidden states
/// (one by one and batched), sentence embeddings, and each relation representation. Prints
/// the worst difference per engine and check.
#[test]
fn every_engine_matches_the_reference() {
    let reference = Reference::load();
    let ids: Vec<Vec<u32>> = (0..reference.sentences.len()).map(|i| reference.ids(i)).collect();
    let path = common::fixture("reference/fixtures/relation_reference.json");
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(records.len() >= 8);
    let instances: Vec<RelationInstance> = records
        .iter()
        .map(|r| {
            let record: FewRelRecord = serde_json::from_value(r.clone()).unwrap();
            RelationInstance::from_fewrel(&record).unwrap()
        })
        .collect();
    let mut table =
        vec!["| engine | hidden, one by one | hidden, batched | embeddings | relation vectors |".to_string()];
    for (name, request) in engines() {
        let encoder = encoder_on(request);
        assert_eq!(encoder.engine.name(), name);
        let batched = encoder.hidden_states(&ids).unwrap();
        let (mut single_worst, mut batch_worst) = (0.0f32, 0.0f32);
        for (i, sequence) in ids.iter().enumerate() {
            let expected = reference.f32s(&format!("hidden.{i}"));
            let single = encoder.hidden_states(std::slice::from_ref(sequence)).unwrap();
            let (d_single, d_batch) = (
                max_abs_diff(&single[0], &expected),
                max_abs_diff(&batched[i], &expected),
            );
            assert!(
                d_single < TOLERANCE,
                "{name}, sentence {i}: one-by-one differs by {d_single}"
            );
            assert!(
                d_batch < TOLERANCE,
                "{name}, sentence {i}: batched differs by {d_batch}"
            );
            single_worst = single_worst.max(d_single);
            batch_worst = batch_worst.max(d_batch);
        }
        let mut embedding_worst = 0.0f32;
        for (i, embedding) in encoder
            .embed_sentences(&reference.sentences, 7)
            .unwrap()
            .iter()
            .enumerate()
        {
            let d = max_abs_diff(embedding, &reference.f32s(&format!("embedding.{i}")));
            assert!(d < TOLERANCE, "{name}, sentence {i}: embedding differs by {d}");
            embedding_worst = embedding_worst.max(d);
        }
        let mut relation_worst = 0.0f32;
        for (representation, key) in [
            (Representation::Markers, "markers"),
            (Representation::EntityMean, "entity_mean"),
            (Representation::EntityMeanSentence, "entity_mean_sentence"),
            (Representation::MarkersSentence, "markers_sentence"),
            (Representation::Sentence, "sentence"),
        ] {
            encoder.set_representation(representation);
            let vectors = encoder.encode_instances(&instances, 4).unwrap();
            for (i, (vector, record)) in vectors.iter().zip(&records).enumerate() {
                let expected: Vec<f32> = serde_json::from_value(record[key].clone()).unwrap();
                let d = max_abs_diff(vector, &expected);
                assert!(d < TOLERANCE, "{name}, {key}, record {i}: differs by {d}");
                relation_worst = relation_worst.max(d);
            }
        }
        table.push(format!(
            "| {name} | {single_worst:.1e} | {batch_worst:.1e} | {embedding_worst:.1e} | {relation_worst:.1e} |"
        ));
    }
    eprintln!("max |engine - numpy reference|:\n{}", table.join("\n"));
}

/// `auto` in the browser passes over a software adapter (SwiftShader); natively the same
/// detection sees Mesa's lavapipe (named llvmpipe) as one, and a GPU as hardware.
#[test]
fn software_adapters_are_recognised() {
    let adapter = tkre::engine::block_on(tkre::engine::webgpu::probe()).expect("a Vulkan device (lavapipe)");
    assert_eq!(
        adapter.software,
        adapter.description.contains("llvmpipe"),
        "{adapter:?}"
    );
}
