//! The CPU engine: the encoder's inference forward pass on one thread, fused and specialised for
//! BERT. The browser's engine when there is no WebGPU (a phone without it runs this), and
//! `tkre --engine cpu`.
//!
//! Same arithmetic as the burn model's forward pass (tests/reference_parity.rs checks every
//! engine against the numpy reference), planned for the one architecture instead of op by op:
//! - a *ragged* batch: the tokens of all sequences are one `[tokens, hidden]` matrix, so the
//!   linear layers never multiply padding (FewRel sentences of 10-60 tokens padded to a batch's
//!   longest wasted up to half the compute), and attention runs per sequence;
//! - every weight matrix packed once ([`super::kernels::packed_linear`]; an int8 model's on the
//!   integer kernel, [`super::kernels::quantized_linear`]); query, key and value in one
//!   `[hidden, 3 hidden]` product, with the query pre-scaled by `1/sqrt(head size)`;
//! - attention per head on the fused projection in place (no head split/transpose copies);
//! - residual + layer norm in one pass over each row; GELU and softmax with the polynomial
//!   `erf`/`exp` of [`super::kernels::activation`].
//!
//! Why not burn's ops here: in the browser each op of the CPU backends copies its operands in
//! and out of tensors, re-packs matrices and dispatches through layers of generic code; on
//! short sentences that overhead was a third of the time (bench/profile.js).

use super::batch::check_sequences;
use super::kernels::activation::{gelu_in_place, softmax_in_place, sum};
use super::kernels::packed_linear::{PackedWeights, matmul_packed, matmul_packed_strided, pack};
use super::kernels::quantized_linear::{PackedInt8Weights, QuantizedRows, matmul_int8};
use super::weights::{self, EncoderWeights, Matrix, Norm, Table};
use crate::error::Result;

/// Layer norm of one row in place (biased variance, as BERT and burn).
fn layer_norm(norm: &Norm, row: &mut [f32], epsilon: f32) {
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
    for ((v, g), b) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
        *v = (*v - mean) * inverse * g + b;
    }
}

/// A linear layer's packed weights: an int8 model's stay integers.
enum Linear {
    F32(PackedWeights),
    Int8(PackedInt8Weights),
}

impl Linear {
    /// Packs a layer's weights: an int8 matrix on the integer kernel, as exported.
    fn new(linear: &weights::Linear) -> Self {
        let (k, n) = (linear.inputs, linear.outputs);
        match &linear.weight {
            Matrix::Int8 { values, scales } => {
                Self::Int8(PackedInt8Weights::from_int8(values, k, n, scales, &linear.bias))
            }
            Matrix::F32(values) => Self::F32(pack(values, k, n, Some(&linear.bias))),
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

/// The encoder's weights laid out for [`CpuEngine::forward`].
pub struct CpuEngine {
    hidden: usize,
    heads: usize,
    head_size: usize,
    epsilon: f32,
    vocab_size: usize,
    max_positions: usize,
    /// Kept as stored: an int8 table is widened one row per token.
    word_embeddings: Table,
    position_embeddings: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    int8: bool,
}

impl CpuEngine {
    /// Packs `weights` (the weight matrices once, for every later pass).
    pub fn new(weights: &EncoderWeights) -> Self {
        let config = &weights.config;
        let layers = weights
            .layers
            .iter()
            .map(|w| Layer {
                qkv: Linear::new(&w.qkv),
                attention_output: Linear::new(&w.attention_output),
                attention_norm: w.attention_norm.clone(),
                intermediate: Linear::new(&w.intermediate),
                output: Linear::new(&w.output),
                output_norm: w.output_norm.clone(),
            })
            .collect();
        Self {
            hidden: config.hidden_size,
            heads: config.num_attention_heads,
            head_size: config.head_size(),
            epsilon: config.layer_norm_eps as f32,
            vocab_size: config.vocab_size,
            max_positions: config.max_position_embeddings,
            word_embeddings: weights.word_embeddings.clone(),
            position_embeddings: weights.position_embeddings.clone(),
            token_type: weights.token_type.clone(),
            embedding_norm: weights.embedding_norm.clone(),
            layers,
            int8: weights.is_int8(),
        }
    }

    /// Whether the weight matrices run on the integer kernel (an int8 model).
    pub fn uses_int8(&self) -> bool {
        self.int8
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
                self.word_embeddings.row_into(id as usize, out);
                let place = &self.position_embeddings[position * h..][..h];
                for ((o, p), t) in out.iter_mut().zip(place).zip(&self.token_type) {
                    *o = *o + p + t;
                }
                layer_norm(&self.embedding_norm, out, self.epsilon);
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
        layer_norm(norm, row, epsilon);
    }
}

/// Sets a scratch buffer's length (its values are all overwritten before they are read).
fn resize(buffer: &mut Vec<f32>, len: usize) {
    buffer.resize(len, 0.0);
    buffer.truncate(len);
}

#[cfg(all(test, feature = "burn"))]
mod tests {
    use super::*;
    use crate::checkpoint::Precision;
    use crate::engine::test_support::{TinyModel, burn_hidden_states};

    #[test]
    fn cpu_forward_equals_burns_padded_forward() {
        let tiny = TinyModel::new(Precision::Fp32);
        let engine = CpuEngine::new(&tiny.weights());
        assert!(!engine.uses_int8());
        let sequences: Vec<Vec<u32>> = vec![
            vec![1, 5, 9, 2],
            vec![1, 7, 3, 3, 8, 11, 40, 2],
            vec![1, 2],
            (0..37).map(|i| (i * 13 % 50) as u32).collect(),
        ];
        let expected = burn_hidden_states(&tiny.model, &sequences);
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let got = engine.forward(&refs).unwrap();
        assert_eq!(expected.len(), got.len());
        let worst = expected
            .iter()
            .zip(&got)
            .fold(0.0f32, |w, (a, b)| w.max((a - b).abs()));
        assert!(worst < 1e-4, "cpu forward differs by {worst}");
        // A sequence's states do not depend on what else is in the batch.
        let alone = engine.forward(&[&sequences[1]]).unwrap();
        let offset = sequences[0].len() * tiny.config.hidden_size;
        assert_eq!(&got[offset..offset + alone.len()], &alone[..]);
    }

    #[test]
    fn an_int8_model_runs_on_the_integer_kernel_close_to_burns_forward() {
        // A packed model is the same kind of int8 model once read: burn widens the file, the
        // engine the tensors, and both must meet.
        for precision in [Precision::Int8, Precision::Packed] {
            let tiny = TinyModel::new(precision);
            let engine = CpuEngine::new(&tiny.weights());
            assert!(engine.uses_int8(), "{precision:?}");
            let sequence: Vec<u32> = (0..23).map(|i| (i * 17 % 50) as u32).collect();
            // burn loads the same file widened to f32.
            let expected = burn_hidden_states(&tiny.model, std::slice::from_ref(&sequence));
            let got = engine.forward(&[&sequence]).unwrap();
            let worst = expected
                .iter()
                .zip(&got)
                .fold(0.0f32, |w, (a, b)| w.max((a - b).abs()));
            // Activations are quantized to 15-16 bits per row: layer-normed states agree to ~1e-3.
            assert!(worst < 2e-3, "{precision:?} cpu forward differs by {worst}");
            assert!(worst > 0.0, "the integer kernel should round the activations");
        }
    }

    #[test]
    fn bad_sequences_are_errors_not_panics() {
        let tiny = TinyModel::new(Precision::Fp32);
        let engine = CpuEngine::new(&tiny.weights());
        let error = engine.forward(&[&[1, 50, 2]]).unwrap_err().to_string();
        assert!(error.contains("token id 50"), "{error}");
        let long = vec![1u32; tiny.config.max_position_embeddings + 1];
        let error = engine.forward(&[&long]).unwrap_err().to_string();
        assert!(error.contains("position table"), "{error}");
        assert!(engine.forward(&[]).unwrap().is_empty());
    }
}
