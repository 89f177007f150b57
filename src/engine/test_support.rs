//! A tiny random model as a checkpoint, for the engines' tests: burn loads it, the fused
//! engines read it, and both must agree.

use burn::prelude::*;

use super::weights::EncoderWeights;
use crate::checkpoint::{Checkpoint, EncoderConfig, Precision, convert_weights};
use crate::model::loader::save_weights_to_bytes;
use crate::model::{BertModel, EncoderBatch, load_weights_from_bytes, read_f32};

pub struct TinyModel {
    pub config: EncoderConfig,
    /// `model.safetensors` at the precision asked for.
    pub bytes: Vec<u8>,
    /// burn's model loaded from `bytes` (int8 widened to f32).
    pub model: BertModel,
}

impl TinyModel {
    pub fn new(precision: Precision) -> Self {
        let device = Device::default();
        let config = EncoderConfig::tiny(50);
        let random = config.init(&device);
        let fp32 = save_weights_to_bytes(&random).unwrap();
        let bytes = convert_weights(&fp32, precision, "tiny").unwrap();
        let model = load_weights_from_bytes(config.init(&device), bytes.clone(), "tiny").unwrap();
        Self { config, bytes, model }
    }

    pub fn weights(&self) -> EncoderWeights {
        EncoderWeights::read(&Checkpoint::read(&self.bytes, "tiny").unwrap(), &self.config).unwrap()
    }
}

/// burn's hidden states of `sequences` (one padded batch), without the padding, one sequence
/// after another.
pub fn burn_hidden_states(model: &BertModel, sequences: &[Vec<u32>]) -> Vec<f32> {
    let device = Device::default();
    let batch = EncoderBatch::new(sequences, 0, &device);
    let [_, seq] = batch.attention_mask.dims();
    let values = read_f32(model.forward(&batch)).unwrap();
    let h = values.len() / (sequences.len() * seq);
    sequences
        .iter()
        .enumerate()
        .flat_map(|(s, ids)| values[s * seq * h..(s * seq + ids.len()) * h].to_vec())
        .collect()
}
