//! TKRE-web: few-shot relation extraction with a knowledge-guided, pre-trained BERT encoder.
//!
//! The same code runs natively (the `tkre` trainer and CLI, tests) and in the browser (wasm):
//! - [`model`]: the one BERT encoder implementation and its checkpoint loader,
//! - [`text`]: tokenizer, entity markers and the input forms of a relation instance,
//! - [`fewshot`]: relation representations, prototypes, support sets and scores,
//! - [`RelationEncoder`]: a loaded checkpoint ready to encode sentences and relation instances.

pub mod error;
pub mod fewshot;
pub mod model;
pub mod relation_encoder;
pub mod text;
#[cfg(target_family = "wasm")]
pub mod web;

pub use error::{Result, TkreError};
pub use relation_encoder::{ModelFiles, RelationEncoder};
