//! Multi-head self-attention with BERT's post-attention residual and layer norm.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use super::EncoderConfig;
use super::activation::softmax_last;

/// Added to the attention scores of padded key positions. Large enough that `exp` underflows
/// to exactly 0 in f32, small enough to stay finite in f16 (max 65504).
pub const MASKED_SCORE: f32 = -1.0e4;

/// Query/key/value projections (`attention.self.*` in the checkpoint).
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    dropout: Dropout,
    num_heads: usize,
    head_size: usize,
}

/// Output projection, residual and layer norm (`attention.output.*`).
#[derive(Module, Debug)]
pub struct AttentionOutput {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    dropout: Dropout,
}

/// A full attention block: self-attention followed by its output sub-layer.
#[derive(Module, Debug)]
pub struct Attention {
    pub self_attention: SelfAttention,
    pub output: AttentionOutput,
}

impl Attention {
    pub fn new(config: &EncoderConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        let linear = || LinearConfig::new(h, h).init(device);
        Self {
            self_attention: SelfAttention {
                query: linear(),
                key: linear(),
                value: linear(),
                dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
                num_heads: config.num_attention_heads,
                head_size: config.head_size(),
            },
            output: AttentionOutput {
                dense: linear(),
                layer_norm: LayerNormConfig::new(h)
                    .with_epsilon(config.layer_norm_eps)
                    .init(device),
                dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            },
        }
    }

    /// `hidden`: `[batch, seq, hidden]`; `mask_bias`: `[batch, 1, 1, seq]`, 0 for real tokens
    /// and [`MASKED_SCORE`] for padding, so padded keys receive no attention.
    pub fn forward(&self, hidden: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        let context = self.self_attention.forward(hidden.clone(), mask_bias);
        self.output.forward(context, hidden)
    }
}

impl SelfAttention {
    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [batch, seq, _] = x.dims();
        x.reshape([batch, seq, self.num_heads, self.head_size])
            .swap_dims(1, 2)
    }

    pub fn forward(&self, hidden: Tensor<3>, mask_bias: Tensor<4>) -> Tensor<3> {
        let [batch, seq, width] = hidden.dims();
        let q = self.split_heads(self.query.forward(hidden.clone()));
        let k = self.split_heads(self.key.forward(hidden.clone()));
        let v = self.split_heads(self.value.forward(hidden));

        let scores = q.matmul(k.swap_dims(2, 3)) / (self.head_size as f64).sqrt() + mask_bias;
        let weights = self.dropout.forward(softmax_last(scores));
        weights.matmul(v).swap_dims(1, 2).reshape([batch, seq, width])
    }
}

impl AttentionOutput {
    pub fn forward(&self, context: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        let projected = self.dropout.forward(self.dense.forward(context));
        self.layer_norm.forward(projected + residual)
    }
}
