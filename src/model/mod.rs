//! The BERT encoder in burn: training, and the native engine
//! (`crate::engine::burn`). Module and field names follow the Hugging Face checkpoint layout so
//! that `model.safetensors` loads with only mechanical renames (`crate::checkpoint::names`,
//! applied by [`loader`]).
//!
//! - [`embeddings`]: word + position + token-type rows, layer norm,
//! - [`attention`]: self-attention; the attention mask is applied here ([`MASKED_SCORE`]),
//! - [`layer`], [`encoder`]: the layer and the stack, [`BertModel`],
//! - [`mlm_head`]: the masked-language-model head of pre-training,
//! - [`activation`]: GELU and softmax, with the CPU engine's kernels on plain CPU tensors,
//! - [`pooling`]: mean pooling and normalisation as tensors (training).

pub mod activation;
mod attention;
mod embeddings;
mod encoder;
mod layer;
pub mod loader;
mod mlm_head;
pub mod pooling;

pub use crate::checkpoint::{EncoderConfig, MAX_PARAMETERS, MIN_POSITIONS};
pub use attention::MASKED_SCORE;
pub use embeddings::Embeddings;
pub use encoder::{BertModel, EncoderBatch, LayerStack, read_f32};
pub use layer::EncoderLayer;
pub use loader::{load_mlm_head_from_file, load_weights_from_bytes, load_weights_from_file};
pub use mlm_head::{MlmHead, MlmHeadConfig, MlmPredictions, MlmTransform};
