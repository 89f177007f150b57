//! BERT's masked-language-model head, for pre-training (stage 1 and 2 of TKRE).
//!
//! Layout and names as Hugging Face's `BertForMaskedLM` (`cls.predictions.*`): a transform
//! (dense H->H, GELU, layer norm) and a decoder to the vocabulary whose weight is the word
//! embedding matrix itself (tied, so the head adds only H*H + 3H + V parameters) plus a bias.
//!
//! Sentence-transformers checkpoints such as all-MiniLM-L6-v2 ship without this head, so
//! [`MlmHeadConfig::init`] builds one as BERT initialises its heads: dense weight
//! N(0, 0.02), zero biases, layer norm at identity (gamma 1, beta 0). The decoder starts as
//! the embeddings' transpose, so the untrained head already ranks tokens by how close their
//! embedding is to the transformed state.

use burn::module::Param;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

use super::EncoderConfig;

/// `cls.predictions.transform.*`.
#[derive(Module, Debug)]
pub struct MlmTransform {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
}

/// `cls.predictions.*`: the transform and the decoder's bias (its weight is tied).
#[derive(Module, Debug)]
pub struct MlmPredictions {
    pub transform: MlmTransform,
    pub bias: Param<Tensor<1>>,
}

/// `cls.*`.
#[derive(Module, Debug)]
pub struct MlmHead {
    pub predictions: MlmPredictions,
}

/// Builds an [`MlmHead`] for an encoder.
#[derive(Config, Debug)]
pub struct MlmHeadConfig {
    pub hidden_size: usize,
    pub vocab_size: usize,
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Standard deviation of the dense weight's normal initialisation (BERT's 0.02).
    #[config(default = 0.02)]
    pub initializer_range: f64,
}

impl MlmHeadConfig {
    pub fn for_encoder(config: &EncoderConfig) -> Self {
        Self::new(config.hidden_size, config.vocab_size).with_layer_norm_eps(config.layer_norm_eps)
    }

    pub fn init(&self, device: &Device) -> MlmHead {
        let h = self.hidden_size;
        let mut dense = LinearConfig::new(h, h)
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: self.initializer_range,
            })
            .init(device);
        dense.bias = Some(Param::from_tensor(Tensor::zeros([h], device)));
        MlmHead {
            predictions: MlmPredictions {
                transform: MlmTransform {
                    dense,
                    layer_norm: LayerNormConfig::new(h)
                        .with_epsilon(self.layer_norm_eps)
                        .init(device),
                },
                bias: Param::from_tensor(Tensor::zeros([self.vocab_size], device)),
            },
        }
    }
}

impl MlmHead {
    /// Vocabulary logits `[n, vocab]` for hidden states `[n, hidden]`, decoding with the
    /// (tied) word embedding matrix `[vocab, hidden]`.
    pub fn forward(&self, hidden: Tensor<2>, word_embeddings: Tensor<2>) -> Tensor<2> {
        let transform = &self.predictions.transform;
        let states = transform
            .layer_norm
            .forward(gelu(transform.dense.forward(hidden)));
        let bias = self.predictions.bias.val().unsqueeze_dim(0);
        states.matmul(word_embeddings.transpose()) + bias
    }
}
