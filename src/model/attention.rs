//! Multi-head self-attention with BERT's post-attention residual and layer norm.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

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
        // Inference on flex: the backend's fused attention (scale, bias, softmax and both
        // products per (sentence, head), the heads spread over threads) skips the full-size
        // scaled, biased and softmaxed score tensors of the op-by-op path: FewRel batches of
        // 32 went from 74 to 86 sentences/s (bench/encoder.sh). It has no dropout, so training
        // (autodiff) and the other devices keep the ops.
        let context = if has_fused_cpu_attention(&q.device()) && q.dtype() == burn::tensor::DType::F32 {
            fused_context(q, k, v, mask_bias)
        } else {
            self.context_by_ops(q, k, v, mask_bias)
        };
        context.swap_dims(1, 2).reshape([batch, seq, width])
    }

    /// `softmax(q kᵀ / sqrt(head) + mask_bias) v` op by op, with dropout on the weights:
    /// `[batch, heads, seq, head]`.
    fn context_by_ops(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask_bias: Tensor<4>) -> Tensor<4> {
        let scores = q.matmul(k.swap_dims(2, 3)) / (self.head_size as f64).sqrt() + mask_bias;
        self.dropout.forward(softmax_last(scores)).matmul(v)
    }
}

/// [`SelfAttention::context_by_ops`]'s values (without dropout) through the backend's
/// `attention` op.
fn fused_context(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask_bias: Tensor<4>) -> Tensor<4> {
    let [batch, _, seq, _] = q.dims();
    // [batch, 1, seq, seq]: flex shares it between the heads; a [batch, 1, 1, seq] bias would be
    // copied out to every (head, query) pair.
    let bias = mask_bias.expand([batch, 1, seq, seq]);
    attention(q, k, v, None, Some(bias), AttentionModuleOptions::default())
}

/// Whether `device` is flex without autodiff: the one CPU backend whose `attention` op is a
/// fused kernel (ndarray's composes burn's ops, with a slower softmax than
/// [`softmax_last`]). Native only: the browser runs the CPU and WebGPU engines
/// (`crate::engine`), and burn there is only in the comparison build.
fn has_fused_cpu_attention(device: &Device) -> bool {
    #[cfg(all(feature = "burn", not(target_family = "wasm")))]
    if !device.is_autodiff() && *device == Device::flex() {
        return true;
    }
    let _ = device;
    false
}

impl AttentionOutput {
    pub fn forward(&self, context: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        let projected = self.dropout.forward(self.dense.forward(context));
        self.layer_norm.forward(projected + residual)
    }
}

#[cfg(all(test, feature = "burn", not(target_family = "wasm")))]
mod tests {
    use super::*;
    use crate::model::EncoderBatch;
    use crate::model::read_f32;
    use burn::tensor::Distribution;

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn fused_attention_equals_the_op_by_op_path_with_padding() {
        let device = Device::flex();
        assert!(has_fused_cpu_attention(&device));
        let config = EncoderConfig::tiny(50);
        let attention = Attention::new(&config, &device).self_attention;
        // Three sequences of 7, 3 and 5 tokens, padded to 7.
        let sequences: Vec<Vec<u32>> = [7usize, 3, 5].iter().map(|&n| vec![1; n]).collect();
        let batch = EncoderBatch::new(&sequences, 0, &device);
        let mask_bias = ((batch.attention_mask.neg() + 1.0) * MASKED_SCORE).reshape([3, 1, 1, 7]);
        let hidden = Tensor::<3>::random(
            [3, 7, config.hidden_size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let heads = |x: Tensor<3>| attention.split_heads(x);
        let q = heads(attention.query.forward(hidden.clone()));
        let k = heads(attention.key.forward(hidden.clone()));
        let v = heads(attention.value.forward(hidden));

        let fused = read_f32(fused_context(q.clone(), k.clone(), v.clone(), mask_bias.clone())).unwrap();
        let by_ops = read_f32(attention.context_by_ops(q.clone(), k.clone(), v.clone(), mask_bias)).unwrap();
        assert_eq!(fused.len(), by_ops.len());
        let worst = max_abs_diff(&fused, &by_ops);
        assert!(worst < 1e-5, "fused attention differs by {worst}");
        // The bias reaches the fused op: the 3-token sequence padded to 7 attends as it does alone.
        let alone = |x: Tensor<4>| x.slice(s![1..2, .., 0..3, ..]);
        let single = read_f32(fused_context(
            alone(q.clone()),
            alone(k),
            alone(v),
            Tensor::zeros([1, 1, 1, 3], &device),
        ))
        .unwrap();
        let padded = read_f32(alone(Tensor::from_data(
            TensorData::new(fused, q.shape()),
            &device,
        )))
        .unwrap();
        let worst = max_abs_diff(&single, &padded);
        assert!(worst < 1e-5, "padding changed a sequence's attention by {worst}");
    }
}
