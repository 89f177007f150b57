//! TKRE-web: few-shot relation extraction with a knowledge-guided, pre-trained BERT encoder.
//!
//! The same code runs natively (the `tkre` trainer and CLI, tests) and in the browser (wasm).
//! From the bottom up:
//! - [`checkpoint`]: the model files: config, tensor names, typed tensors, precision, manifest,
//! - [`text`]: tokenizer, entity markers and the input forms of a relation instance,
//! - [`model`] (feature `burn`): the BERT encoder in burn, for training and the burn engine,
//! - [`engine`]: the forward pass behind one trait: CPU, WebGPU and burn engines, their
//!   kernels, the batch planner, and the one place an engine is chosen,
//! - [`fewshot`]: relation representations, relation text, prototypes, support sets, scores,
//! - [`RelationEncoder`]: a loaded checkpoint on an engine, encoding sentences and instances,
//! - [`Extractor`]: an encoder with a live support set (add, edit, remove, save, load,
//!   classify), used by the browser binding and `tkre classify`,
//! - `web` (wasm only): the JavaScript binding.

// The threaded wasm build (wasm atomics, shared memory) parks the CPU engine's workers on
// `memory.atomic.wait32`, whose intrinsic is unstable; that build is made with the standard
// library from source (-Zbuild-std), which needs a nightly-enabled compiler anyway.
#![cfg_attr(
    all(target_arch = "wasm32", target_feature = "atomics"),
    feature(stdarch_wasm_atomic_wait)
)]

pub mod checkpoint;
pub mod engine;
pub mod error;
pub mod extractor;
pub mod fewshot;
#[cfg(feature = "burn")]
pub mod model;
pub mod relation_encoder;
pub mod text;
#[cfg(target_family = "wasm")]
pub mod web;

pub use checkpoint::ModelFiles;
pub use engine::EngineRequest;
pub use error::{Result, TkreError};
pub use extractor::Extractor;
pub use relation_encoder::RelationEncoder;
