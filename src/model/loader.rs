//! Loading a BERT-layout `model.safetensors` into [`BertModel`] with burn-store.
//!
//! The names come from `crate::checkpoint::names` (the key remapper below applies its table)
//! and burn-store's PyTorch adapter transposes `Linear` weights and maps LayerNorm's
//! `weight`/`bias` to `gamma`/`beta`. Float tensors of any precision (f16, bf16, f32) are cast
//! to f32 as they load, and int8 tensors are widened with their per-row scales (read by
//! `crate::checkpoint::Checkpoint`), tensor by tensor, so no fp32 copy of the file is ever held.
//!
//! Tensors the encoder does not use (pooler, MLM or NSP heads) are ignored; tensors it needs
//! and does not find, and shape mismatches, are errors that name each tensor.

use std::collections::HashMap;
use std::sync::Arc;

use burn::tensor::{DType, TensorData};
use burn_store::burn_pack::Tensor as PackTensor;
use burn_store::{
    ApplyResult, BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleContext,
    ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};

use super::{BertModel, MlmHead};
use crate::checkpoint::names::{CHECKPOINT_TO_MODULE, ENCODER_PREFIX, MLM_HEAD_PREFIX, MODULE_TO_CHECKPOINT};
use crate::checkpoint::{Checkpoint, widen_packed};
use crate::error::{Result, TkreError};

/// A key remapper from a table of `crate::checkpoint::names`, after removing `prefix`.
pub fn remapper(prefix: Option<&str>, table: &[(&str, &str)]) -> KeyRemapper {
    prefix
        .into_iter()
        .map(|p| (p, ""))
        .chain(table.iter().copied())
        .try_fold(KeyRemapper::new(), |r, (from, to)| r.add_pattern(from, to))
        // The patterns are constants; `add_pattern` only fails on an invalid regex.
        .expect("constant regexes are valid")
}

/// The remapper a checkpoint is saved with (module paths to checkpoint names).
pub fn save_remapper() -> KeyRemapper {
    remapper(None, MODULE_TO_CHECKPOINT)
}

/// The per-row scales of a checkpoint's int8 tensors, by the module path of the tensor they
/// scale (its name as `remapper` rewrites it).
fn int8_scales(bytes: &[u8], remapper: &KeyRemapper, origin: &str) -> Result<HashMap<String, Arc<Vec<f32>>>> {
    let renames = remapper.to_regex_pairs();
    // What the store does to each name (KeyRemapper::remap), for a name alone.
    let module_path = |name: &str| {
        renames
            .iter()
            .fold(name.to_string(), |path, (pattern, replacement)| {
                pattern.replace_all(&path, replacement.as_str()).into_owned()
            })
    };
    let checkpoint = Checkpoint::read(bytes, origin)?;
    Ok(checkpoint
        .int8_scales()?
        .into_iter()
        .map(|(name, scales)| (module_path(&name), Arc::new(scales)))
        .collect())
}

/// Widens int8 tensors to f32 with their row scales when the tensor is drawn.
#[derive(Clone)]
struct Int8Dequantize {
    scales: Arc<HashMap<String, Arc<Vec<f32>>>>,
}

impl ModuleAdapter for Int8Dequantize {
    fn adapt(&self, tensor: PackTensor, _ctx: ModuleContext<'_>) -> PackTensor {
        // The tensor's name here is its module path (the remapper has run).
        let Some(scales) = (tensor.dtype == DType::I8)
            .then(|| self.scales.get(&tensor.name))
            .flatten()
            .cloned()
        else {
            return tensor;
        };
        let name = tensor.name.clone();
        let shape = tensor.shape.clone();
        let cols = shape.iter().nth(1).copied().unwrap_or(1).max(1);
        burn_store::bridge::map_data(tensor, name, DType::F32, shape.clone(), move |data| {
            let values: Vec<f32> = data
                .iter::<i8>()
                .enumerate()
                // Rows were checked against the scales when the file was read; a mismatch
                // here gives NaN, which the load's finiteness check reports, not a trap.
                .map(|(i, q)| f32::from(q) * scales.get(i / cols).copied().unwrap_or(f32::NAN))
                .collect();
            TensorData::new(values, shape.clone())
        })
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// A store over a checkpoint's bytes for the module whose names carry `prefix` in the
/// checkpoint (a regex, removed so the names match the module's own paths).
fn checkpoint_store(bytes: Vec<u8>, prefix: &str, origin: &str) -> Result<SafetensorsStore> {
    // burn's store reads tensors as the file types them: packed ones are widened to int8 first.
    let bytes = widen_packed(bytes, origin)?;
    let remapper = remapper(Some(prefix), CHECKPOINT_TO_MODULE);
    let dequantize = Int8Dequantize {
        scales: Arc::new(int8_scales(&bytes, &remapper, origin)?),
    };
    Ok(SafetensorsStore::from_bytes(Some(bytes))
        .remap(remapper)
        // fp16/bf16 and int8 checkpoints (the compact browser models) are widened tensor by
        // tensor as they load, so no full fp32 copy of the file is ever held.
        .with_from_adapter(
            dequantize
                .chain(PyTorchToBurnAdapter)
                .chain(FloatCastAdapter::to(DType::F32)),
        )
        .allow_partial(true))
}

/// Loads `model.safetensors` from a file into `model` (whose shapes come from the
/// checkpoint's `config.json`).
pub fn load_weights_from_file(model: BertModel, path: &std::path::Path) -> Result<BertModel> {
    let bytes = read_weights(path)?;
    load_weights_from_bytes(model, bytes, &path.display().to_string())
}

fn read_weights(path: &std::path::Path) -> Result<Vec<u8>> {
    if !path.is_file() {
        return Err(TkreError::Model(format!(
            "{} not found: a model directory needs config.json, model.safetensors and tokenizer.json",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| TkreError::Model(format!("reading {}: {e}", path.display())))
}

/// Loads `model.safetensors` from bytes (the browser fetches them).
pub fn load_weights_from_bytes(mut model: BertModel, bytes: Vec<u8>, origin: &str) -> Result<BertModel> {
    let mut store = checkpoint_store(bytes, ENCODER_PREFIX, origin)?;
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
    let bytes = read_weights(path)?;
    let mut store = checkpoint_store(bytes, MLM_HEAD_PREFIX, &origin)?;
    let result = head.load_from(&mut store).map_err(|e| store_error(&origin, e))?;
    if result.applied.is_empty() && result.errors.is_empty() {
        return Ok((head, false));
    }
    check(&result, &format!("{origin} (MLM head cls.*)"))?;
    Ok((head, true))
}

/// The encoder's weights as a `model.safetensors` in Hugging Face layout (no prefix), as bytes.
pub fn save_weights_to_bytes(model: &BertModel) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None)
        .remap(save_remapper())
        .with_to_adapter(BurnToPyTorchAdapter);
    model
        .save_into(&mut store)
        .map_err(|e| TkreError::Model(format!("serialising the encoder: {e}")))?;
    store
        .get_bytes()
        .map_err(|e| TkreError::Model(format!("serialising the encoder: {e}")))
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
