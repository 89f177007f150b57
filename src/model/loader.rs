//! Loading Hugging Face BERT-layout weights (`model.safetensors`) into [`BertModel`] with
//! burn-store.
//!
//! The checkpoint's names differ from the module's only mechanically, so a key remapper
//! and burn-store's PyTorch adapter (which transposes `Linear` weights and maps LayerNorm's
//! `weight`/`bias` to `gamma`/`beta`) cover them:
//! - an optional `bert.` prefix (BertForMaskedLM / BertForPreTraining checkpoints),
//! - `LayerNorm` -> `layer_norm` and `attention.self` -> `attention.self_attention`
//!   (neither is a valid Rust field name).
//!
//! Float tensors of any precision (f16, bf16, f32) are cast to f32 as they load.
//!
//! Tensors the encoder does not use (pooler, MLM or NSP heads) are ignored; tensors it needs
//! and does not find, and shape mismatches, are errors that name each tensor.

use burn::tensor::DType;
use burn_store::{
    ApplyResult, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};

use super::{BertModel, MlmHead};
use crate::error::{Result, TkreError};

fn remapper(prefix: &str) -> KeyRemapper {
    // The patterns are constants; `add_pattern` only fails on an invalid regex.
    KeyRemapper::new()
        .add_pattern(prefix, "")
        .and_then(|r| r.add_pattern(r"\.LayerNorm\.", ".layer_norm."))
        .and_then(|r| r.add_pattern(r"\.attention\.self\.", ".attention.self_attention."))
        .expect("constant regexes are valid")
}

/// `prefix`: the checkpoint's name prefix of the module being loaded (a regex), removed so
/// the names match the module's own paths.
fn configure(store: SafetensorsStore, prefix: &str) -> SafetensorsStore {
    store
        .remap(remapper(prefix))
        // fp16/bf16 checkpoints (the compact browser models) are widened tensor by tensor as
        // they load, so no full fp32 copy of the file is ever held.
        .with_from_adapter(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)))
        .allow_partial(true)
}

/// BertForMaskedLM/BertForPreTraining checkpoints prefix the encoder with `bert.`;
/// sentence-transformers checkpoints do not.
const ENCODER_PREFIX: &str = r"^bert\.";

/// Loads `model.safetensors` from a file into `model` (whose shapes come from the
/// checkpoint's `config.json`).
pub fn load_weights_from_file(mut model: BertModel, path: &std::path::Path) -> Result<BertModel> {
    if !path.is_file() {
        return Err(TkreError::Model(format!(
            "{} not found: a model directory needs config.json, model.safetensors and tokenizer.json",
            path.display()
        )));
    }
    let mut store = configure(SafetensorsStore::from_file(path), ENCODER_PREFIX);
    let result = model
        .load_from(&mut store)
        .map_err(|e| store_error(&path.display().to_string(), e))?;
    check(&result, &path.display().to_string())?;
    Ok(model)
}

/// Loads `model.safetensors` from bytes (the browser fetches them).
pub fn load_weights_from_bytes(mut model: BertModel, bytes: Vec<u8>, origin: &str) -> Result<BertModel> {
    let mut store = configure(SafetensorsStore::from_bytes(Some(bytes)), ENCODER_PREFIX);
    let result = model.load_from(&mut store).map_err(|e| store_error(origin, e))?;
    check(&result, origin)?;
    Ok(model)
}

/// Loads the masked-language-model head (`cls.predictions.*`, see [`MlmHead`]) from a
/// checkpoint file when it has one. Returns the head and whether it was loaded: a checkpoint
/// without `cls.*` tensors (sentence-transformers models) leaves `head` as it was; one with
/// an incomplete or misshapen head is an error.
pub fn load_mlm_head_from_file(mut head: MlmHead, path: &std::path::Path) -> Result<(MlmHead, bool)> {
    let origin = path.display().to_string();
    let mut store = configure(SafetensorsStore::from_file(path), r"^cls\.");
    let result = head.load_from(&mut store).map_err(|e| store_error(&origin, e))?;
    if result.applied.is_empty() && result.errors.is_empty() {
        return Ok((head, false));
    }
    check(&result, &format!("{origin} (MLM head cls.*)"))?;
    Ok((head, true))
}

fn store_error(origin: &str, error: burn_store::SafetensorsStoreError) -> TkreError {
    let hint = match error {
        burn_store::SafetensorsStoreError::ValidationFailed(_) => {
            " (the tensors do not fit the encoder described by config.json: does config.json belong to this checkpoint?)"
        }
        _ => " (is it a complete safetensors file? a truncated download gives this error)",
    };
    TkreError::Model(format!("{origin}: {error}{hint}"))
}

fn check(result: &ApplyResult, origin: &str) -> Result<()> {
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().take(8).map(|e| format!("  {e}")).collect();
        return Err(TkreError::Model(format!(
            "{origin}: {} tensor(s) do not fit the encoder described by config.json \
             (does config.json belong to this checkpoint?):\n{}",
            result.errors.len(),
            errors.join("\n")
        )));
    }
    if !result.missing.is_empty() {
        let missing: Vec<&str> = result.missing.iter().take(8).map(|(p, _)| p.as_str()).collect();
        return Err(TkreError::Model(format!(
            "{origin}: {} tensor(s) the encoder needs are missing, e.g. {}; \
             is this a BERT-layout checkpoint (embeddings.*, encoder.layer.N.*)?",
            result.missing.len(),
            missing.join(", ")
        )));
    }
    Ok(())
}
