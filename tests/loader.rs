//! Loading BERT-layout checkpoints: name prefixes, weight layout, and the errors a user sees
//! for a broken checkpoint. Uses small checkpoints written here with the `safetensors` crate
//! in Hugging Face's naming and layout.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use tkre::engine::Engine;
use tkre::model::{EncoderBatch, EncoderConfig, load_weights_from_file};
use tkre::{EngineRequest, RelationEncoder, TkreError};

/// Deterministic pseudo-random values in [-0.1, 0.1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

/// Hugging Face tensor names and shapes for `config`.
fn hf_tensors(config: &EncoderConfig) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let (h, i) = (config.hidden_size, config.intermediate_size);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        (
            "embeddings.word_embeddings.weight".into(),
            vec![config.vocab_size, h],
        ),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![config.max_position_embeddings, h],
        ),
        (
            "embeddings.token_type_embeddings.weight".into(),
            vec![config.type_vocab_size, h],
        ),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
        ("pooler.dense.weight".into(), vec![h, h]),
        ("pooler.dense.bias".into(), vec![h]),
    ];
    for l in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        for (name, shape) in [
            ("attention.self.query.weight", vec![h, h]),
            ("attention.self.query.bias", vec![h]),
            ("attention.self.key.weight", vec![h, h]),
            ("attention.self.key.bias", vec![h]),
            ("attention.self.value.weight", vec![h, h]),
            ("attention.self.value.bias", vec![h]),
            ("attention.output.dense.weight", vec![h, h]),
            ("attention.output.dense.bias", vec![h]),
            ("attention.output.LayerNorm.weight", vec![h]),
            ("attention.output.LayerNorm.bias", vec![h]),
            ("intermediate.dense.weight", vec![i, h]),
            ("intermediate.dense.bias", vec![i]),
            ("output.dense.weight", vec![h, i]),
            ("output.dense.bias", vec![h]),
            ("output.LayerNorm.weight", vec![h]),
            ("output.LayerNorm.bias", vec![h]),
        ] {
            shapes.push((format!("{p}.{name}"), shape));
        }
    }
    shapes
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let n = shape.iter().product();
            let mut v = values(n, k as u64);
            if name.ends_with("LayerNorm.weight") {
                v.iter_mut().for_each(|x| *x += 1.0);
            }
            (name, (shape, v))
        })
        .collect()
}

fn write_safetensors(path: &Path, tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>, prefix: &str) {
    write_safetensors_as(path, tensors, prefix, Dtype::F32);
}

fn write_safetensors_as(
    path: &Path,
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    prefix: &str,
    dtype: Dtype,
) {
    let encode = |v: &[f32]| -> Vec<u8> {
        match dtype {
            Dtype::F16 => v
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
            Dtype::BF16 => v
                .iter()
                .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                .collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    };
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, (shape, v))| (format!("{prefix}{name}"), shape.clone(), encode(v)))
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(name, shape, data)| (name.clone(), TensorView::new(dtype, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn tiny_config() -> EncoderConfig {
    let mut config = EncoderConfig::tiny(30522);
    config.num_hidden_layers = 3;
    config
}

fn checkpoint(dir: &Path, config: &EncoderConfig, prefix: &str) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let tensors = hf_tensors(config);
    write_safetensors(&dir.join("model.safetensors"), &tensors, prefix);
    std::fs::write(dir.join("config.json"), serde_json::to_string(config).unwrap()).unwrap();
    std::fs::copy(
        common::model_dir().join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    tensors
}

fn output(encoder: &RelationEncoder) -> Vec<f32> {
    encoder
        .hidden_states(&[vec![101, 2000, 2001, 102]])
        .unwrap()
        .remove(0)
}

/// Both loaders: burn's (burn-store, the burn engine) and the fused engines'
/// (`tkre::checkpoint::tensors`, the CPU engine).
fn engines() -> [EngineRequest; 2] {
    [common::engine(), EngineRequest::Cpu]
}

fn load(dir: &Path) -> RelationEncoder {
    RelationEncoder::load_dir(dir, common::engine()).unwrap()
}

/// Loads `dir` on every engine: each must fail with an error that mentions every needle.
fn refused_by_every_engine(dir: &Path, needles: &[&str]) -> TkreError {
    let mut last = None;
    for engine in engines() {
        let err = RelationEncoder::load_dir(dir, engine)
            .err()
            .unwrap_or_else(|| panic!("{engine:?} loaded it"));
        let text = err.to_string();
        for needle in needles {
            assert!(
                text.contains(needle),
                "{engine:?}: {text:?} should mention {needle:?}"
            );
        }
        last = Some(err);
    }
    last.unwrap()
}

fn burn_model(encoder: &RelationEncoder) -> &tkre::model::BertModel {
    match &encoder.engine {
        Engine::Burn(engine) => &engine.model,
        _ => panic!("not the burn engine"),
    }
}

#[test]
fn weights_load_with_and_without_bert_prefix() {
    let config = tiny_config();
    let (plain, prefixed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tensors = checkpoint(plain.path(), &config, "");
    checkpoint(prefixed.path(), &config, "bert.");
    let a = load(plain.path());
    let b = load(prefixed.path());
    assert_eq!(output(&a), output(&b));
    for engine in engines() {
        let on = |dir: &Path| output(&RelationEncoder::load_dir(dir, engine).unwrap());
        assert_eq!(on(plain.path()), on(prefixed.path()), "{engine:?}");
    }

    // Linear weights are transposed from PyTorch's [out, in]; LayerNorm weight -> gamma.
    let (shape, written) = &tensors["encoder.layer.1.intermediate.dense.weight"];
    let loaded = burn_model(&a).encoder.layer[1].intermediate.dense.weight.val();
    assert_eq!(loaded.dims(), [shape[1], shape[0]]);
    let loaded = loaded.transpose().into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(&loaded, written);
    let gamma = burn_model(&a).encoder.layer[2]
        .output
        .layer_norm
        .gamma
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(&gamma, &tensors["encoder.layer.2.output.LayerNorm.weight"].1);
}

#[test]
fn wrong_shapes_name_the_tensor() {
    let config = tiny_config();
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = checkpoint(dir.path(), &config, "");
    let entry = tensors
        .get_mut("encoder.layer.0.intermediate.dense.weight")
        .unwrap();
    entry.0 = vec![config.intermediate_size + 1, config.hidden_size];
    entry.1 = values(entry.0.iter().product(), 3);
    write_safetensors(&dir.path().join("model.safetensors"), &tensors, "");
    refused_by_every_engine(dir.path(), &["intermediate", "config.json"]);
}

#[test]
fn missing_tensors_are_listed() {
    let config = tiny_config();
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = checkpoint(dir.path(), &config, "");
    tensors.remove("encoder.layer.2.output.dense.weight");
    write_safetensors(&dir.path().join("model.safetensors"), &tensors, "");
    refused_by_every_engine(dir.path(), &["missing", "encoder.layer.2.output.dense"]);
}

#[test]
fn broken_model_directories_are_clear_errors() {
    let config = tiny_config();
    let dir = tempfile::tempdir().unwrap();
    checkpoint(dir.path(), &config, "");

    let expect = |needle: &str| {
        let err = refused_by_every_engine(dir.path(), &[needle]);
        assert!(matches!(
            err,
            TkreError::Model(_) | TkreError::Json { .. } | TkreError::Tokenizer(_)
        ));
    };

    std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": 32,").unwrap();
    expect("malformed JSON");
    let mut bad = config.clone();
    bad.num_attention_heads = 5;
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string(&bad).unwrap(),
    )
    .unwrap();
    expect("divisible");
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string(&config).unwrap(),
    )
    .unwrap();

    std::fs::write(dir.path().join("model.safetensors"), b"not a safetensors file").unwrap();
    expect("model.safetensors");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    expect("model.safetensors");

    std::fs::write(dir.path().join("tokenizer.json"), b"{}").unwrap();
    expect("tokenizer.json");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    expect("tokenizer.json is missing");

    refused_by_every_engine(&dir.path().join("nope"), &["not a directory"]);
}

#[test]
fn bert_base_shapes_build_and_run() {
    // bert-base-uncased's config.json: 12 layers, hidden 768, 12 heads, intermediate 3072.
    let config = EncoderConfig::from_json(
        r#"{"architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
            "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
            "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
            "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
            "num_hidden_layers": 12, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 30522}"#,
        "bert-base config.json",
    )
    .unwrap();
    let device = burn::tensor::Device::default();
    let model = config.init(&device);
    assert_eq!(model.encoder.layer.len(), 12);
    let batch = EncoderBatch::new(&[vec![101, 7592, 102], vec![101, 102]], 0, &device);
    assert_eq!(model.forward(&batch).dims(), [2, 3, 768]);
}

#[test]
fn weights_load_from_a_file_path() {
    let config = tiny_config();
    let dir = tempfile::tempdir().unwrap();
    checkpoint(dir.path(), &config, "bert.");
    let model = load_weights_from_file(
        config.init(&burn::tensor::Device::default()),
        &dir.path().join("model.safetensors"),
    );
    assert!(model.is_ok());
}

#[test]
fn half_precision_checkpoints_load_as_f32() {
    let config = tiny_config();
    let full = tempfile::tempdir().unwrap();
    let tensors = checkpoint(full.path(), &config, "");
    let reference = output(&load(full.path()));
    for dtype in [Dtype::F16, Dtype::BF16] {
        let dir = tempfile::tempdir().unwrap();
        checkpoint(dir.path(), &config, "");
        write_safetensors_as(&dir.path().join("model.safetensors"), &tensors, "", dtype);
        let encoder = load(dir.path());
        let got = output(&encoder);
        let diff = got
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        // Weights of magnitude <= 1.1 rounded to 11 (f16) or 8 (bf16) mantissa bits.
        let bound = if dtype == Dtype::F16 { 0.02 } else { 0.1 };
        assert!(diff < bound, "{dtype:?}: differs from f32 by {diff}");
        assert!(diff > 0.0, "{dtype:?}: expected rounding differences");
    }
}

/// Configs that used to panic in burn (dropout outside [0, 1), fewer than 8 positions),
/// print all-null vectors (layer_norm_eps <= 0) or allocate until the process aborts
/// (a billion layers) are refused, before anything is allocated, with the field named.
#[test]
fn configs_that_would_panic_or_exhaust_memory_are_refused() {
    let config = tiny_config();
    let dir = tempfile::tempdir().unwrap();
    checkpoint(dir.path(), &config, "");
    let refused = |edit: &dyn Fn(&mut serde_json::Value), needle: &str| {
        let mut value = serde_json::to_value(&config).unwrap();
        edit(&mut value);
        std::fs::write(dir.path().join("config.json"), value.to_string()).unwrap();
        let started = std::time::Instant::now();
        refused_by_every_engine(dir.path(), &[needle]);
        assert!(
            started.elapsed().as_secs() < 5,
            "refused only after {:?}",
            started.elapsed()
        );
    };
    refused(&|v| v["hidden_dropout_prob"] = 1.5.into(), "hidden_dropout_prob");
    refused(
        &|v| v["attention_probs_dropout_prob"] = (-0.1).into(),
        "attention_probs_dropout_prob",
    );
    refused(&|v| v["max_position_embeddings"] = 4.into(), "at least 8");
    refused(&|v| v["layer_norm_eps"] = 0.0.into(), "layer_norm_eps");
    refused(&|v| v["layer_norm_eps"] = (-1e-12).into(), "layer_norm_eps");
    refused(
        &|v| v["num_hidden_layers"] = 1_000_000_000u64.into(),
        "num_hidden_layers",
    );
    refused(
        &|v| {
            v["vocab_size"] = 2_000_000.into();
            v["hidden_size"] = 16_384.into();
        },
        "parameters",
    );
    // Within every bound but far larger than the weights file: refused before it is built.
    refused(
        &|v| {
            v["intermediate_size"] = 60_000.into();
            v["num_hidden_layers"] = 200.into();
        },
        "model.safetensors holds",
    );
}

/// The check compares the tokenizer's largest id with vocab_size, not its count: a vocabulary
/// whose ids have gaps can name an id past the embedding table.
#[test]
fn a_tokenizer_id_past_the_embedding_table_is_refused() {
    let mut config = tiny_config();
    config.vocab_size = 30523;
    let dir = tempfile::tempdir().unwrap();
    checkpoint(dir.path(), &config, "");
    let mut tokenizer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("tokenizer.json")).unwrap()).unwrap();
    // WordPiece ids are whatever the vocabulary map says: one more word, with a far id.
    tokenizer["model"]["vocab"]["zzfarword"] = 40000.into();
    std::fs::write(dir.path().join("tokenizer.json"), tokenizer.to_string()).unwrap();
    refused_by_every_engine(dir.path(), &["token id 40000", "vocab_size is 30523"]);
}

/// "bert.x" and "x" are one parameter once the prefix is removed: refused, not loaded one over
/// the other (with int8 scales of one applied to the other, an out-of-bounds index).
#[test]
fn tensor_names_that_collide_without_the_prefix_are_refused() {
    let config = tiny_config();
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = checkpoint(dir.path(), &config, "bert.");
    let (shape, values) = tensors["embeddings.word_embeddings.weight"].clone();
    tensors.insert("bert.embeddings.word_embeddings.weight".into(), (shape, values));
    write_safetensors(&dir.path().join("model.safetensors"), &tensors, "");
    refused_by_every_engine(dir.path(), &["same parameter"]);
}
