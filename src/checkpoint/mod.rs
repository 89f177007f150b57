//! The checkpoint format, both ways: a Hugging Face BERT-layout directory (`config.json`,
//! `model.safetensors`, `tokenizer.json`) and the browser's exports of it (fp16, int8, with a
//! `manifest.json`).
//!
//! - [`names`]: the tensor names of the checkpoint and how they map to the burn module's paths
//!   (loading and saving use the same table),
//! - [`tensors`]: reading `model.safetensors` into typed tensors: floats of any width widened to
//!   f32, int8 kept as int8 with its per-row scales ([`Precision`] travels with the data),
//! - [`precision`]: converting and quantising a checkpoint for export,
//! - [`packing`]: the packed export's sub-byte storage of int8 tensors,
//! - [`gptq`]: rounding a packed export's weights for the least output error on calibration inputs,
//! - [`config`]: `config.json` ([`EncoderConfig`]), validated before anything is allocated,
//! - [`manifest`]: `manifest.json`, the typed list of an export's files and how to read them.
//!
//! The burn model loads through `crate::model::loader` and the engines through
//! `crate::engine::weights`; both read names and tensors from here.

pub mod config;
pub mod gptq;
pub mod manifest;
pub mod names;
pub mod packing;
pub mod precision;
pub mod tensors;

pub use config::{EncoderConfig, MAX_PARAMETERS, MIN_POSITIONS};
pub use manifest::{Manifest, ManifestFile};
pub use packing::widen_packed;
pub use precision::{
    CalibrationInputs, Precision, convert_weights, convert_weights_calibrated, dequantize_rows, quantize_rows,
};
pub use tensors::{Checkpoint, Tensor, TensorValues};

/// The three files of a BERT-layout checkpoint, as bytes (the browser fetches them).
pub struct ModelFiles {
    pub config_json: Vec<u8>,
    pub weights_safetensors: Vec<u8>,
    pub tokenizer_json: Vec<u8>,
}
