//! The one BERT-family encoder implementation, shared by the trainer, the browser package and
//! the tests. Module and field names follow the Hugging Face checkpoint layout so that
//! `model.safetensors` loads with only mechanical renames (see [`loader`]).

pub mod activation;
mod attention;
mod config;
mod embeddings;
mod encoder;
pub mod fused_cpu;
#[cfg(target_family = "wasm")]
pub mod fused_gpu;
mod layer;
pub mod loader;
mod mlm_head;
pub mod packed_linear;
pub mod pooling;
pub mod quantized_linear;

pub use attention::MASKED_SCORE;
pub use config::{EncoderConfig, MAX_PARAMETERS, MIN_POSITIONS};
pub use embeddings::Embeddings;
pub use encoder::{BertModel, EncoderBatch, LayerStack};
pub use fused_cpu::FusedCpuEncoder;
pub use layer::EncoderLayer;
pub use loader::{load_mlm_head_from_file, load_weights_from_bytes, load_weights_from_file};
pub use mlm_head::{MlmHead, MlmHeadConfig, MlmPredictions, MlmTransform};
