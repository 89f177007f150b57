//! The CPU engine: the encoder's inference forward pass, fused and specialised for BERT, on the
//! threads of a [`ThreadPool`] (in the browser Web Workers in a cross-origin isolated page,
//! else one thread; natively one per core). The browser's engine when there is no WebGPU (a
//! phone without it runs this), and `tkre --engine cpu`.
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
//!   `erf`/`exp` of [`super::kernels::activation`];
//! - threads split each product by output columns and the attention by (sequence, head), and
//!   every value is computed as on one thread: outputs equal bit for bit at any thread count.
//!
//! Why not burn's ops here: in the browser each op of the CPU backends copies its operands in
//! and out of tensors, re-packs matrices and dispatches through layers of generic code; on
//! short sentences that overhead was a third of the time (bench/profile.js).

use super::batch::check_sequences;
use super::kernels::activation::{gelu_in_place, softmax_in_place, sum};
use std::cell::RefCell;
use std::ops::Range;

use super::kernels::packed_linear::{PackedWeights, matmul_packed_panels, matmul_packed_strided, pack};
use super::kernels::quantized_linear::{PackedInt8Weights, QuantizedRows, matmul_int8_panels};
use super::kernels::threads::{SharedSlice, ThreadPool, split};
use super::weights::{self, EncoderWeights, LayerProduct, Matrix, Norm, Table};
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

    fn panel_count(&self) -> usize {
        match self {
            Self::F32(w) => w.panel_count(),
            Self::Int8(w) => w.panel_count(),
        }
    }

    /// `out[m, outputs] = x[m, inputs] · W + bias`, the columns split over the pool's threads.
    fn apply(&self, pool: &ThreadPool, x: &[f32], m: usize, quantized: &mut QuantizedRows, out: &mut [f32]) {
        if m == 0 {
            return;
        }
        if let Self::Int8(w) = self {
            quantized.quantize_for(x, m, w);
        }
        let quantized = &*quantized;
        let parts = split(self.panel_count(), tasks_for(pool), 1);
        let out = SharedSlice::new(out);
        let out = &out;
        pool.run(parts.len(), |task| {
            let panels = parts[task].clone();
            // SAFETY: the tasks' panel ranges are disjoint (`split`).
            unsafe {
                match self {
                    Self::F32(w) => matmul_packed_panels(x, w.k, m, w, panels, out, w.n),
                    Self::Int8(w) => matmul_int8_panels(quantized, m, w, panels, out),
                }
            }
        });
    }
}

/// Tasks a product or an element-wise pass is split into: a few per thread, so that a thread
/// the browser delays does not hold up a layer; one on one thread (the loops of an unsplit
/// product, a measured 1.6% faster at batch 32 than three parts).
fn tasks_for(pool: &ThreadPool) -> usize {
    match pool.threads() {
        1 => 1,
        threads => 3 * threads,
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
    quantized: QuantizedRows,
}

/// One thread's scratch memory for the attention of one head of one sequence.
#[derive(Default)]
struct HeadScratch {
    scores: Vec<f32>,
    keys: PackedWeights,
    values: PackedWeights,
    context: Vec<f32>,
}

thread_local! {
    static HEAD_SCRATCH: RefCell<HeadScratch> = RefCell::default();
}

/// What one product of one layer reads during a pass: `rows` is `[tokens, inputs]`.
pub struct ProductInput<'a> {
    pub layer: usize,
    pub product: LayerProduct,
    pub rows: &'a [f32],
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
    pool: ThreadPool,
}

impl CpuEngine {
    /// Packs `weights` (the weight matrices once, for every later pass), to run on the
    /// process's pool: in wasm the Web Workers that joined it (none without cross-origin
    /// isolation), natively every core.
    pub fn new(weights: &EncoderWeights) -> Self {
        Self::with_pool(weights, ThreadPool::for_engines())
    }

    /// Packs `weights` to run on `pool`.
    pub fn with_pool(weights: &EncoderWeights, pool: ThreadPool) -> Self {
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
            pool,
        }
    }

    /// Threads a pass runs on (the pool's caller and workers).
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Whether the weight matrices run on the integer kernel (an int8 model).
    pub fn uses_int8(&self) -> bool {
        self.int8
    }

    /// Last hidden states of `sequences`, without padding: the rows of all sequences one after
    /// another, `[total tokens, hidden]`.
    pub fn forward(&self, sequences: &[&[u32]]) -> Result<Vec<f32>> {
        self.forward_observed(sequences, &mut |_| {})
    }

    /// [`Self::forward`], showing `observe` the input of every product of every layer before
    /// it is multiplied (what error-compensating quantisation calibrates on).
    pub fn forward_observed(
        &self,
        sequences: &[&[u32]],
        observe: &mut dyn FnMut(ProductInput<'_>),
    ) -> Result<Vec<f32>> {
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
        for (index, layer) in self.layers.iter().enumerate() {
            let mut observe_layer = |product, rows: &[f32]| {
                observe(ProductInput {
                    layer: index,
                    product,
                    rows,
                })
            };
            self.layer_forward(layer, &mut hidden, &lengths, &mut scratch, &mut observe_layer);
        }
        Ok(hidden)
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        hidden: &mut [f32],
        lengths: &[usize],
        scratch: &mut Scratch,
        observe: &mut dyn FnMut(LayerProduct, &[f32]),
    ) {
        let h = self.hidden;
        let tokens = hidden.len() / h;
        let pool = &self.pool;
        let Scratch {
            qkv,
            context,
            projected,
            intermediate,
            quantized,
        } = scratch;
        resize(qkv, tokens * 3 * h);
        resize(context, tokens * h);
        resize(projected, tokens * h);
        resize(intermediate, tokens * layer.intermediate.outputs());

        observe(LayerProduct::Qkv, hidden);
        layer.qkv.apply(pool, hidden, tokens, quantized, qkv);
        self.attention(qkv, lengths, context);
        observe(LayerProduct::AttentionOutput, context);
        layer
            .attention_output
            .apply(pool, context, tokens, quantized, projected);
        add_and_normalize(hidden, projected, &layer.attention_norm, self.epsilon);

        observe(LayerProduct::Intermediate, hidden);
        layer
            .intermediate
            .apply(pool, hidden, tokens, quantized, intermediate);
        let width = layer.intermediate.outputs();
        let parts = split(tokens, tasks_for(pool), 1);
        let activations = SharedSlice::new(intermediate);
        pool.run(parts.len(), |task| {
            let Range { start, end } = parts[task].clone();
            // SAFETY: the tasks' row ranges are disjoint (`split`).
            gelu_in_place(unsafe { activations.range_mut(start * width..end * width) });
        });
        observe(LayerProduct::Output, intermediate);
        layer
            .output
            .apply(pool, intermediate, tokens, quantized, projected);
        add_and_normalize(hidden, projected, &layer.output_norm, self.epsilon);
    }

    /// Self-attention of every sequence on the fused query/key/value rows `qkv`, into `context`
    /// (`[tokens, hidden]`), one task per (sequence, head).
    fn attention(&self, qkv: &[f32], lengths: &[usize], context: &mut [f32]) {
        let (h, head_size) = (self.hidden, self.head_size);
        let mut firsts = Vec::with_capacity(lengths.len());
        let mut first = 0;
        for &len in lengths {
            firsts.push(first);
            first += len;
        }
        let context = SharedSlice::new(context);
        self.pool.run(lengths.len() * self.heads, |task| {
            let (sequence, head) = (task / self.heads, task % self.heads);
            let (len, first) = (lengths[sequence], firsts[sequence]);
            if len == 0 {
                return;
            }
            let rows = &qkv[first * 3 * h..(first + len) * 3 * h];
            let (q, k, v) = (head * head_size, h + head * head_size, 2 * h + head * head_size);
            HEAD_SCRATCH.with_borrow_mut(|scratch| {
                let HeadScratch {
                    scores,
                    keys,
                    values,
                    context: out,
                } = scratch;
                resize(scores, len * len);
                resize(out, len * head_size);
                // scores = q · kᵀ (the query is pre-scaled), keys packed as a [head, len] matrix.
                keys.repack(head_size, len, None, |d, j| rows[j * 3 * h + k + d]);
                matmul_packed_strided(&rows[q..], 3 * h, len, keys, scores, len);
                for row in scores.chunks_exact_mut(len) {
                    softmax_in_place(row);
                }
                // context = weights · v, then into this head's columns.
                values.repack(len, head_size, None, |j, d| rows[j * 3 * h + v + d]);
                matmul_packed_strided(scores, len, len, values, out, head_size);
                for (j, values) in out.chunks_exact(head_size).enumerate() {
                    let start = (first + j) * h + q;
                    // SAFETY: this task alone writes this head's columns of this sequence's rows.
                    unsafe { context.range_mut(start..start + head_size) }.copy_from_slice(values);
                }
            });
        });
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
    fn every_thread_count_gives_the_same_bits() {
        // Batches with sequences shorter than a tile, longer than a head, and empty ones.
        let sequences: Vec<Vec<u32>> = vec![
            vec![1, 5, 9, 2],
            (0..41).map(|i| (i * 13 % 50) as u32).collect(),
            vec![],
            vec![1, 2],
            (0..17).map(|i| (i * 7 % 50) as u32).collect(),
        ];
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        for precision in [Precision::Fp32, Precision::Int8] {
            let weights = TinyModel::new(precision).weights();
            let one = CpuEngine::with_pool(&weights, ThreadPool::single())
                .forward(&refs)
                .unwrap();
            for threads in [2, 3, 5] {
                let pool = ThreadPool::spawn(threads);
                while pool.threads() < threads {
                    std::thread::yield_now();
                }
                let engine = CpuEngine::with_pool(&weights, pool);
                assert_eq!(engine.threads(), threads);
                for _ in 0..3 {
                    let many = engine.forward(&refs).unwrap();
                    assert!(
                        one.iter().zip(&many).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{precision:?} on {threads} threads differs from one thread"
                    );
                }
            }
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
