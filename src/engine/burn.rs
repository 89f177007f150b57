//! The burn engine: the burn model's padded forward pass ([`crate::model::BertModel`]) on one
//! of burn's backends. The native default (burn's flex backend multiplies on every core) and
//! the model that training updates; in the browser, only in the comparison build.

use burn::prelude::*;

use super::BurnBackend;
use super::batch::check_sequences;
use crate::checkpoint::EncoderConfig;
use crate::error::{Result, TkreError};
use crate::model::{BertModel, EncoderBatch, load_weights_from_bytes};

/// A loaded [`BertModel`] on a burn device.
pub struct BurnEngine {
    pub model: BertModel,
    pub device: Device,
    backend: BurnBackend,
    pad_id: u32,
    vocab_size: usize,
    max_positions: usize,
}

impl BurnEngine {
    /// Loads a checkpoint's weights onto `backend`'s device.
    pub async fn load(
        backend: BurnBackend,
        weights: Vec<u8>,
        config: &EncoderConfig,
        pad_id: u32,
        origin: &str,
    ) -> Result<Self> {
        let device = device(backend).await?;
        let model = load_weights_from_bytes(config.init(&device), weights, origin)?;
        Ok(Self::new(model, device, backend, config, pad_id))
    }

    /// Wraps a model already in memory (a test's or training's).
    pub fn new(
        model: BertModel,
        device: Device,
        backend: BurnBackend,
        config: &EncoderConfig,
        pad_id: u32,
    ) -> Self {
        Self {
            model,
            device,
            backend,
            pad_id,
            vocab_size: config.vocab_size,
            max_positions: config.max_position_embeddings,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.backend {
            BurnBackend::Flex => "burn",
            #[cfg(feature = "ndarray")]
            BurnBackend::Ndarray => "burn-ndarray",
            #[cfg(all(target_family = "wasm", feature = "burn-webgpu"))]
            BurnBackend::WebGpu => "burn-webgpu",
        }
    }

    /// The padded forward pass, read back without the padding (see
    /// [`super::ForwardPass::forward`]).
    pub async fn forward(&self, sequences: &[&[u32]]) -> Result<Vec<f32>> {
        check_sequences(sequences, self.vocab_size, self.max_positions)?;
        if sequences.is_empty() {
            return Ok(Vec::new());
        }
        let owned: Vec<Vec<u32>> = sequences.iter().map(|s| s.to_vec()).collect();
        let batch = EncoderBatch::new(&owned, self.pad_id, &self.device);
        let [_, seq] = batch.attention_mask.dims();
        let output = self.model.forward(&batch);
        let h = output.dims()[2];
        let data = output
            .into_data_async()
            .await
            .map_err(|e| TkreError::Model(format!("reading results from the device failed: {e:?}")))?;
        let values = data
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| TkreError::Model(format!("reading results failed: {e:?}")))?;
        Ok(sequences
            .iter()
            .enumerate()
            .flat_map(|(s, ids)| values[s * seq * h..(s * seq + ids.len()) * h].iter().copied())
            .collect())
    }
}

#[allow(deprecated)] // burn marks ndarray deprecated in favour of flex
async fn device(backend: BurnBackend) -> Result<Device> {
    Ok(match backend {
        BurnBackend::Flex => Device::flex(),
        #[cfg(feature = "ndarray")]
        BurnBackend::Ndarray => Device::ndarray(),
        #[cfg(all(target_family = "wasm", feature = "burn-webgpu"))]
        BurnBackend::WebGpu => Device::wgpu_options()
            // The synchronous default device would block forever in a page; init_async requests
            // the adapter and device through the browser's promises.
            .init_async()
            .await
            .map_err(|e| TkreError::Model(format!("burn's WebGPU initialisation failed: {e}")))?,
    })
}
