//! The encoder's inference forward pass on one CPU thread, fused and specialised for BERT: the
//! browser's CPU backend.
//!
//! Same weights and arithmetic as [`BertModel::forward`] (tests/reference_parity.rs checks both
//! against the numpy reference), planned for the one architecture instead of op by op:
//! - a *ragged* batch: the tokens of all sequences are one `[tokens, hidden]` matrix, so the
//!   linear layers never multiply padding (FewRel sentences of 10-60 tokens padded to a batch's
//!   longest wasted up to half the compute), and attention runs per sequence;
//! - every weight matrix packed once ([`super::packed_linear`]); query, key and value in one
//!   `[hidden, 3 hidden]` product, with the query pre-scaled by `1/sqrt(head size)`;
//! - attention per head on the fused projection in place (no head split/transpose copies);
//! - residual + layer norm in one pass over each row; GELU and softmax with the polynomial
//!   `erf`/`exp` of [`super::activation`].
//!
//! Why not burn's ops here: in the browser each op of the CPU backends copies its operands in
//! and out of tensors, re-packs matrices and dispatches through layers of generic code; on
//! short sentences that overhead was a third of the time (bench/profile.js).

use super::activation::{gelu_in_place, softmax_in_place, sum};
use super::packed_linear::{PackedWeights, matmul_packed, matmul_packed_strided, pack};
use super::quantized_linear::{PackedInt8Weights, QuantizedRows, matmul_int8};
use super::{BertModel, EncoderConfig, EncoderLayer};
use crate::error::{Result, TkreError};
use crate::relation_encoder::read_f32;

/// Most tokens (all sequences together) one pass holds in its activation buffers: 2048 tokens
/// of all-MiniLM-L6-v2 take about 30 MB of scratch (`hidden` + `3 hidden` + `hidden` +
/// `intermediate` + `hidden` floats per token). A longer sequence runs alone.
pub const TOKENS_PER_PASS: usize = 2048;

/// A layer norm's scale and shift.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    /// Layer norm of one row in place (biased variance, as BERT and burn).
    fn apply(&self, row: &mut [f32], epsilon: f32) {
        let width = row.len() as f32;
        let mean = sum(row) / width;
        let mut squares = [0.0f32; 8];
        let mut chunks = row.chunks_exact(8);
        for chunk in &mut chunks {
            for (s, v) in squares.iter_mut().zip(chunk) {
                *s += (v - mean) * (v - mean);
            }
        }
        let tail: f32 = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
        let variance = (squares.iter().sum::<f32>() + tail) / width;
        let inverse = 1.0 / (variance + epsilon).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *v = (*v - mean) * inverse * g + b;
        }
    }
}

/// A linear layer's packed weights: an int8 model's stay integers.
enum Linear {
    F32(PackedWeights),
    Int8(PackedInt8Weights),
}

impl Linear {
    /// Packs `([in, out] weight, bias)`: on the integer kernel when every column is an int8
    /// grid (an int8 export), else on the f32 one.
    fn new((weight, bias): (Vec<f32>, Vec<f32>)) -> Self {
        let n = bias.len();
        let k = weight.len() / n;
        match PackedInt8Weights::from_int8_grid(&weight, k, n, &bias) {
            Some(int8) => Self::Int8(int8),
            None => Self::F32(pack(&weight, k, n, Some(&bias))),
        }
    }

    fn outputs(&self) -> usize {
        match self {
            Self::F32(w) => w.n,
            Self::Int8(w) => w.n,
        }
    }

    /// `out[m, outputs] = x[m, inputs] · W + bias`.
    fn apply(&self, x: &[f32], m: usize, quantized: &mut QuantizedRows, out: &mut [f32]) {
        match self {
            Self::F32(w) => matmul_packed(x, m, w, out),
            Self::Int8(w) => matmul_int8(x, m, w, quantized, out),
        }
    }
}

/// One encoder layer's packed weights.
struct Layer {
    /// `[hidden, 3 hidden]`: query (pre-scaled), key, value.
    qkv: Linear,
    attention_output: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// Scratch memory of one pass, reused from layer to layer.
#[derive(Default)]
struct Scratch {
    qkv: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    intermediate: Vec<f32>,
    scores: Vec<f32>,
    quantized: QuantizedRows,
    keys: PackedWeights,
    values: PackedWeights,
}

/// [`BertModel`]'s weights laid out for [`FusedCpuEncoder::forward`].
pub struct FusedCpuEncoder {
    hidden: usize,
    heads: usize,
    head_size: usize,
    epsilon: f32,
    vocab_size: usize,
    max_positions: usize,
    word_embeddings: Vec<f32>,
    position_embeddings: Vec<f32>,
    /// Row 0 of the token-type table: every sequence is one segment.
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

/// One encoder layer's weights as plain row-major `f32` (`[in, out]` matrices), read from the
/// burn module: what both fused passes (this one and the WebGPU one) lay out for themselves.
pub(crate) struct LayerWeights {
    /// `[hidden, 3 hidden]`: row r is query row r (pre-scaled by `1/sqrt(head size)`), key row
    /// r, value row r; the bias likewise.
    pub qkv: (Vec<f32>, Vec<f32>),
    pub attention_output: (Vec<f32>, Vec<f32>),
    /// `(gamma, beta)`.
    pub attention_norm: (Vec<f32>, Vec<f32>),
    pub intermediate: (Vec<f32>, Vec<f32>),
    pub output: (Vec<f32>, Vec<f32>),
    pub output_norm: (Vec<f32>, Vec<f32>),
}

/// A linear layer's `([in, out] weight, bias)` (a zero bias when it has none).
fn linear_weights(layer: &burn::nn::Linear) -> Result<(Vec<f32>, Vec<f32>)> {
    let [_, n] = layer.weight.dims();
    let weight = read_f32(layer.weight.val())?;
    let bias = match &layer.bias {
        Some(b) => read_f32(b.val())?,
        None => vec![0.0; n],
    };
    Ok((weight, bias))
}

/// A layer norm's `(gamma, beta)`.
pub(crate) fn norm_weights(norm: &burn::nn::LayerNorm) -> Result<(Vec<f32>, Vec<f32>)> {
    let gamma = read_f32(norm.gamma.val())?;
    let beta = match &norm.beta {
        Some(beta) => read_f32(beta.val())?,
        None => vec![0.0; gamma.len()],
    };
    Ok((gamma, beta))
}

pub(crate) fn layer_weights(layer: &EncoderLayer, config: &EncoderConfig) -> Result<LayerWeights> {
    let hidden = config.hidden_size;
    let scale = 1.0 / (config.head_size() as f32).sqrt();
    let attention = &layer.attention.self_attention;
    let (q, q_bias) = linear_weights(&attention.query)?;
    let (k, k_bias) = linear_weights(&attention.key)?;
    let (v, v_bias) = linear_weights(&attention.value)?;
    let mut qkv = Vec::with_capacity(3 * hidden * hidden);
    for r in 0..hidden {
        let row = r * hidden..(r + 1) * hidden;
        qkv.extend(q[row.clone()].iter().map(|w| w * scale));
        qkv.extend_from_slice(&k[row.clone()]);
        qkv.extend_from_slice(&v[row]);
    }
    let bias = q_bias
        .iter()
        .map(|b| b * scale)
        .chain(k_bias)
        .chain(v_bias)
        .collect();
    Ok(LayerWeights {
        qkv: (qkv, bias),
        attention_output: linear_weights(&layer.attention.output.dense)?,
        attention_norm: norm_weights(&layer.attention.output.layer_norm)?,
        intermediate: linear_weights(&layer.intermediate.dense)?,
        output: linear_weights(&layer.output.dense)?,
        output_norm: norm_weights(&layer.output.layer_norm)?,
    })
}

/// Rejects what the position table or vocabulary cannot hold, with the sequence named.
pub(crate) fn check_sequences(sequences: &[&[u32]], vocab_size: usize, max_positions: usize) -> Result<()> {
    for (s, ids) in sequences.iter().enumerate() {
        if ids.len() > max_positions {
            return Err(TkreError::Model(format!(
                "sequence {s} has {} tokens; the model's position table holds {max_positions}",
                ids.len()
            )));
        }
        if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(TkreError::Model(format!(
                "sequence {s} has token id {id}, outside the model's vocabulary of {vocab_size}"
            )));
        }
    }
    Ok(())
}

impl Norm {
    fn new((gamma, beta): (Vec<f32>, Vec<f32>)) -> Self {
        Self { gamma, beta }
    }
}

impl FusedCpuEncoder {
    /// Reads and packs `model`'s weights (from any device).
    pub fn new(model: &BertModel, config: &EncoderConfig) -> Result<Self> {
        let hidden = config.hidden_size;
        let mut layers = Vec::with_capacity(model.encoder.layer.len());
        for layer in &model.encoder.layer {
            let w = layer_weights(layer, config)?;
            layers.push(Layer {
                qkv: Linear::new(w.qkv),
                attention_output: Linear::new(w.attention_output),
                attention_norm: Norm::new(w.attention_norm),
                intermediate: Linear::new(w.intermediate),
                output: Linear::new(w.output),
                output_norm: Norm::new(w.output_norm),
            });
        }
        let embeddings = &model.embeddings;
        let token_types = read_f32(embeddings.token_type_embeddings.weight.val())?;
        Ok(Self {
            hidden,
            heads: config.num_attention_heads,
            head_size: config.head_size(),
            epsilon: config.layer_norm_eps as f32,
            vocab_size: embeddings.word_embeddings.weight.dims()[0],
            max_positions: embeddings.position_embeddings.weight.dims()[0],
            word_embeddings: read_f32(embeddings.word_embeddings.weight.val())?,
            position_embeddings: read_f32(embeddings.position_embeddings.weight.val())?,
            token_type: token_types[..hidden].to_vec(),
            embedding_norm: Norm::new(norm_weights(&embeddings.layer_norm)?),
            layers,
        })
    }

    /// Whether the weight matrices run on the integer kernel (an int8 model).
    pub fn uses_int8(&self) -> bool {
        self.layers.iter().all(|layer| {
            [
                &layer.qkv,
                &layer.attention_output,
                &layer.intermediate,
                &layer.output,
            ]
            .iter()
            .all(|linear| matches!(linear, Linear::Int8(_)))
        })
    }

    /// Last hidden states of `sequences`, without padding: the rows of all sequences one after
    /// another, `[total tokens, hidden]`.
    pub fn forward(&self, sequences: &[&[u32]]) -> Result<Vec<f32>> {
        let h = self.hidden;
        check_sequences(sequences, self.vocab_size, self.max_positions)?;
        let tokens: usize = sequences.iter().map(|ids| ids.len()).sum();
        let mut hidden = vec![0.0f32; tokens * h];
        let mut row = 0;
        for ids in sequences {
            for (position, &id) in ids.iter().enumerate() {
                let out = &mut hidden[row * h..][..h];
                let word = &self.word_embeddings[id as usize * h..][..h];
                let place = &self.position_embeddings[position * h..][..h];
                for (((o, w), p), t) in out.iter_mut().zip(word).zip(place).zip(&self.token_type) {
                    *o = w + p + t;
                }
                self.embedding_norm.apply(out, self.epsilon);
                row += 1;
            }
        }
        let lengths: Vec<usize> = sequences.iter().map(|ids| ids.len()).collect();
        let mut scratch = Scratch::default();
        for layer in &self.layers {
            self.layer_forward(layer, &mut hidden, &lengths, &mut scratch);
        }
        Ok(hidden)
    }

    fn layer_forward(&self, layer: &Layer, hidden: &mut [f32], lengths: &[usize], scratch: &mut Scratch) {
        let h = self.hidden;
        let tokens = hidden.len() / h;
        let Scratch {
            qkv,
            context,
            projected,
            intermediate,
            scores,
            quantized,
            keys,
            values,
        } = scratch;
        resize(qkv, tokens * 3 * h);
        resize(context, tokens * h);
        resize(projected, tokens * h);
        resize(intermediate, tokens * layer.intermediate.outputs());

        layer.qkv.apply(hidden, tokens, quantized, qkv);
        let mut first = 0;
        for &len in lengths {
            if len == 0 {
                continue;
            }
            resize(scores, len * len);
            let rows = &qkv[first * 3 * h..(first + len) * 3 * h];
            for head in 0..self.heads {
                let (q, k, v) = (
                    head * self.head_size,
                    h + head * self.head_size,
                    2 * h + head * self.head_size,
                );
                // scores = q · kᵀ (the query is pre-scaled), keys packed as a [head, len] matrix.
                keys.repack(self.head_size, len, None, |d, j| rows[j * 3 * h + k + d]);
                matmul_packed_strided(&rows[q..], 3 * h, len, keys, scores, len);
                for row in scores.chunks_exact_mut(len) {
                    softmax_in_place(row);
                }
                // context = weights · v, written into this head's columns.
                values.repack(len, self.head_size, None, |j, d| rows[j * 3 * h + v + d]);
                let out = &mut context[first * h + q..];
                matmul_packed_strided(scores, len, len, values, out, h);
            }
            first += len;
        }

        layer
            .attention_output
            .apply(context, tokens, quantized, projected);
        add_and_normalize(hidden, projected, &layer.attention_norm, self.epsilon);

        layer.intermediate.apply(hidden, tokens, quantized, intermediate);
        gelu_in_place(intermediate);
        layer.output.apply(intermediate, tokens, quantized, projected);
        add_and_normalize(hidden, projected, &layer.output_norm, self.epsilon);
    }
}

/// `hidden = layer_norm(hidden + update)`, row by row.
fn add_and_normalize(hidden: &mut [f32], update: &[f32], norm: &Norm, epsilon: f32) {
    let width = norm.gamma.len();
    for (row, add) in hidden.chunks_exact_mut(width).zip(update.chunks_exact(width)) {
        for (v, a) in row.iter_mut().zip(add) {
            *v += a;
        }
        norm.apply(row, epsilon);
    }
}

/// Sets a scratch buffer's length (its values are all overwritten before they are read).
fn resize(buffer: &mut Vec<f32>, len: usize) {
    buffer.resize(len, 0.0);
    buffer.truncate(len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EncoderBatch;
    use burn::prelude::*;

    #[test]
    fn fused_forward_equals_burns_padded_forward() {
        let device = Device::default();
        let config = EncoderConfig::tiny(50);
        let model = config.init(&device);
        let fused = FusedCpuEncoder::new(&model, &config).unwrap();
        let sequences: Vec<Vec<u32>> = vec![
            vec![1, 5, 9, 2],
            vec![1, 7, 3, 3, 8, 11, 40, 2],
            vec![1, 2],
            (0..37).map(|i| (i * 13 % 50) as u32).collect(),
        ];
        let batch = EncoderBatch::new(&sequences, 0, &device);
        let seq = batch.attention_mask.dims()[1];
        let expected = read_f32(model.forward(&batch)).unwrap();
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let got = fused.forward(&refs).unwrap();
        let h = config.hidden_size;
        let mut row = 0;
        let mut worst = 0.0f32;
        for (s, ids) in sequences.iter().enumerate() {
            for t in 0..ids.len() {
                let e = &expected[(s * seq + t) * h..][..h];
                let g = &got[row * h..][..h];
                for (a, b) in e.iter().zip(g) {
                    worst = worst.max((a - b).abs());
                }
                row += 1;
            }
        }
        assert_eq!(row * h, got.len());
        assert!(worst < 1e-4, "fused forward differs by {worst}");
        // A sequence's states do not depend on what else is in the batch.
        let alone = fused.forward(&[&sequences[1]]).unwrap();
        let offset = sequences[0].len() * h;
        assert_eq!(&got[offset..offset + alone.len()], &alone[..]);
    }

    /// Puts a linear layer's weight on an int8 grid, one scale per output column, as an int8
    /// export dequantizes to.
    fn quantize_columns(linear: &mut burn::nn::Linear) {
        let [k, n] = linear.weight.dims();
        let w = read_f32(linear.weight.val()).unwrap();
        let mut q = w.clone();
        for c in 0..n {
            let scale = (0..k).map(|r| w[r * n + c].abs()).fold(0.0f32, f32::max) / 127.0;
            for r in 0..k {
                q[r * n + c] = (w[r * n + c] / scale).round() * scale;
            }
        }
        let device = linear.weight.val().device();
        linear.weight =
            burn::module::Param::from_tensor(Tensor::<2>::from_data(TensorData::new(q, [k, n]), &device));
    }

    #[test]
    fn an_int8_model_runs_on_the_integer_kernel_close_to_burns_forward() {
        let device = Device::default();
        let config = EncoderConfig::tiny(50);
        let mut model = config.init(&device);
        assert!(!FusedCpuEncoder::new(&model, &config).unwrap().uses_int8());
        for layer in &mut model.encoder.layer {
            let attention = &mut layer.attention.self_attention;
            for linear in [&mut attention.query, &mut attention.key, &mut attention.value] {
                quantize_columns(linear);
            }
            quantize_columns(&mut layer.attention.output.dense);
            quantize_columns(&mut layer.intermediate.dense);
            quantize_columns(&mut layer.output.dense);
        }
        let fused = FusedCpuEncoder::new(&model, &config).unwrap();
        assert!(fused.uses_int8());
        let sequence: Vec<u32> = (0..23).map(|i| (i * 17 % 50) as u32).collect();
        let expected =
            read_f32(model.forward(&EncoderBatch::new(std::slice::from_ref(&sequence), 0, &device))).unwrap();
        let got = fused.forward(&[&sequence]).unwrap();
        let worst = expected
            .iter()
            .zip(&got)
            .fold(0.0f32, |w, (a, b)| w.max((a - b).abs()));
        // Activations are quantized to 15-16 bits per row: layer-normed states agree to ~1e-3.
        assert!(worst < 2e-3, "int8 fused forward differs by {worst}");
        assert!(worst > 0.0, "the integer kernel should round the activations");
    }

    #[test]
    fn bad_sequences_are_errors_not_panics() {
        let config = EncoderConfig::tiny(50);
        let model = config.init(&Device::default());
        let fused = FusedCpuEncoder::new(&model, &config).unwrap();
        let error = fused.forward(&[&[1, 50, 2]]).unwrap_err().to_string();
        assert!(error.contains("token id 50"), "{error}");
        let long = vec![1u32; config.max_position_embeddings + 1];
        let error = fused.forward(&[&long]).unwrap_err().to_string();
        assert!(error.contains("position table"), "{error}");
        assert!(fused.forward(&[]).unwrap().is_empty());
    }
}
