//! The BERT encoder: embeddings followed by a stack of encoder layers.

use burn::prelude::*;

use super::EncoderConfig;
use super::attention::MASKED_SCORE;
use super::embeddings::Embeddings;
use super::layer::EncoderLayer;

/// `encoder.layer.*` in the checkpoint.
#[derive(Module, Debug)]
pub struct LayerStack {
    pub layer: Vec<EncoderLayer>,
}

/// A BERT encoder without pooler or task heads: token ids in, last hidden states out.
#[derive(Module, Debug)]
pub struct BertModel {
    pub embeddings: Embeddings,
    pub encoder: LayerStack,
}

/// Reads a tensor back as f32 values (synchronously).
pub fn read_f32<const D: usize>(tensor: Tensor<D>) -> crate::Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| crate::TkreError::Model(format!("cannot read encoder output: {e:?}")))
}

impl EncoderConfig {
    /// Builds a randomly initialised encoder with these hyper-parameters.
    pub fn init(&self, device: &Device) -> BertModel {
        BertModel::new(self, device)
    }
}

/// A padded batch of token-id sequences, ready for the encoder.
#[derive(Debug, Clone)]
pub struct EncoderBatch {
    /// `[batch, seq]` token ids, padded on the right.
    pub input_ids: Tensor<2, Int>,
    /// `[batch, seq]`, 1.0 for real tokens and 0.0 for padding.
    pub attention_mask: Tensor<2>,
    /// Unpadded length of each sequence.
    pub lengths: Vec<usize>,
}

impl EncoderBatch {
    /// Pads `sequences` on the right with `pad_id` to the longest one.
    pub fn new(sequences: &[Vec<u32>], pad_id: u32, device: &Device) -> Self {
        let batch = sequences.len();
        let seq = sequences.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq);
        for sequence in sequences {
            ids.extend(sequence.iter().map(|&id| id as i64));
            ids.extend(std::iter::repeat_n(pad_id as i64, seq - sequence.len()));
            mask.extend(std::iter::repeat_n(1.0f32, sequence.len()));
            mask.extend(std::iter::repeat_n(0.0f32, seq - sequence.len()));
        }
        Self {
            input_ids: Tensor::from_data(TensorData::new(ids, [batch, seq]), device),
            attention_mask: Tensor::from_data(TensorData::new(mask, [batch, seq]), device),
            lengths: sequences.iter().map(Vec::len).collect(),
        }
    }
}

impl BertModel {
    pub fn new(config: &EncoderConfig, device: &Device) -> Self {
        Self {
            embeddings: Embeddings::new(config, device),
            encoder: LayerStack {
                layer: (0..config.num_hidden_layers)
                    .map(|_| EncoderLayer::new(config, device))
                    .collect(),
            },
        }
    }

    /// Last hidden states, `[batch, seq, hidden]`. Padded positions carry values, but no real
    /// token attends to them, so a sequence's states do not depend on how it was padded.
    pub fn forward(&self, batch: &EncoderBatch) -> Tensor<3> {
        let [b, seq] = batch.attention_mask.dims();
        // 1 -> 0, 0 -> MASKED_SCORE, broadcast over heads and query positions.
        let mask_bias = (batch.attention_mask.clone().neg() + 1.0) * MASKED_SCORE;
        let mask_bias = mask_bias.reshape([b, 1, 1, seq]);

        let mut hidden = self.embeddings.forward(batch.input_ids.clone());
        for layer in &self.encoder.layer {
            hidden = layer.forward(hidden, mask_bias.clone());
        }
        hidden
    }
}
