//! One transformer encoder layer: attention block, then the GELU feed-forward block.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use super::EncoderConfig;
use super::activation::gelu;
use super::attention::Attention;

/// The feed-forward expansion (`intermediate.dense` in the checkpoint).
#[derive(Module, Debug)]
pub struct Intermediate {
    pub dense: Linear,
}

/// The feed-forward contraction, residual and layer norm (`output.*`).
#[derive(Module, Debug)]
pub struct FeedForwardOutput {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    dropout: Dropout,
}

/// `encoder.layer.N` in the checkpoint.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    pub attention: Attention,
    pub intermediate: Intermediate,
    pub output: FeedForwardOutput,
}

impl EncoderLayer {
    pub fn new(config: &EncoderConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        let i = config.intermediate_size;
        Self {
            attention: Attention::new(config, device),
            intermediate: Intermediate {
                dense: LinearConfig::new(h, i).init(device),
            },
            output: FeedForwardOutput {
                dense: LinearConfig::new(i, h).init(device),
                layer_norm: LayerNormConfig::new(h)
                    .with_epsilon(config.layer_norm_eps)
                    .init(device),
                dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            },
        }
    }

    pub fn forward(&self, hidden: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        let attended = self.attention.forward(hidden, mask_bias);
        // Exact (erf) GELU, as BERT's "gelu" activation; not the tanh approximation.
        let expanded = gelu(self.intermediate.dense.forward(attended.clone()));
        let contracted = self.output.dropout.forward(self.output.dense.forward(expanded));
        self.output.layer_norm.forward(contracted + attended)
    }
}
