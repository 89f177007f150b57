//! Token, position and segment embeddings, summed and layer-normalised (BERT's input layer).

use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;

use super::EncoderConfig;

/// BERT's embedding layer. Field names match the checkpoint's tensor names
/// (`embeddings.word_embeddings.weight`, ...), after `LayerNorm` -> `layer_norm`.
#[derive(Module, Debug)]
pub struct Embeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub layer_norm: LayerNorm,
    dropout: Dropout,
}

impl Embeddings {
    pub fn new(config: &EncoderConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            word_embeddings: EmbeddingConfig::new(config.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, h).init(device),
            token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, h).init(device),
            layer_norm: LayerNormConfig::new(h)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
        }
    }

    /// `input_ids`: `[batch, seq]` -> `[batch, seq, hidden]`. Every sequence is one segment
    /// (token type 0) and positions count from 0, as in single-sentence BERT inputs.
    pub fn forward(&self, input_ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq_len] = input_ids.dims();
        let device = input_ids.device();
        let hidden = self.word_embeddings.weight.dims()[1];

        let positions = Tensor::<1, Int>::arange(0..seq_len as i64, &device).reshape([1, seq_len]);
        let position = self.position_embeddings.forward(positions);
        let token_type = self
            .token_type_embeddings
            .weight
            .val()
            .slice(s![0..1])
            .reshape([1, 1, hidden]);

        let summed = self.word_embeddings.forward(input_ids) + position + token_type;
        self.dropout.forward(self.layer_norm.forward(summed))
    }
}
