//! How a checkpoint's weights are stored, and converting them for export.
//!
//! int8: every 2-d tensor (the `Linear` weights and the embedding tables, 99 % of the
//! parameters) is quantised symmetrically with one f32 scale per row (per output channel of a
//! `Linear`, per token of an embedding): `q = round(w / s)`, `s = max|row| / 127`, stored as
//! `NAME` (I8) and `NAME_scale` (F32, `[rows]`); biases and layer norms stay f16. Readers get
//! the integers back as they were written ([`super::TensorValues::Int8`]).

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use super::names::{INT8_SCALE_SUFFIX, is_encoder_tensor};
use super::tensors::{Checkpoint, TensorValues};
use crate::error::{Result, TkreError};

/// The precision of an export's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Fp16,
    Int8,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::Fp32, Precision::Fp16, Precision::Int8];

    /// The name manifests and the CLI use: `fp32`, `fp16`, `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }

    /// What a manifest says about how the weights are stored.
    pub fn description(self) -> &'static str {
        match self {
            Precision::Fp32 => "all tensors f32",
            Precision::Fp16 => "all tensors f16",
            Precision::Int8 => {
                "2-d tensors (Linear weights, embeddings) int8, symmetric, one f32 scale per row \
                 (per output channel / per token) in NAME_scale; 1-d tensors f16"
            }
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = TkreError;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| TkreError::Option(format!("precision {text:?}: use fp32, fp16 or int8")))
    }
}

/// Symmetric int8 quantisation with one scale per row of `cols` values.
pub fn quantize_rows(values: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut quantized = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len() / cols.max(1));
    for row in values.chunks(cols.max(1)) {
        let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        quantized.extend(row.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8));
        scales.push(scale);
    }
    (quantized, scales)
}

/// The inverse of [`quantize_rows`]: `values[i] * scales[i / cols]`.
pub fn dequantize_rows(values: &[i8], scales: &[f32], cols: usize) -> Vec<f32> {
    values
        .chunks(cols.max(1))
        .zip(scales)
        .flat_map(|(row, &scale)| row.iter().map(move |&q| f32::from(q) * scale))
        .collect()
}

/// Converts the encoder's tensors of a `model.safetensors` to `precision`, without the `bert.`
/// prefix and without the tensors inference does not use (pooler, heads), so the browser
/// downloads only what it runs. An int8 input is widened first.
pub fn convert_weights(bytes: &[u8], precision: Precision, origin: &str) -> Result<Vec<u8>> {
    let checkpoint = Checkpoint::read(bytes, origin)?;
    let mut converted: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let f16_bytes = |values: &[f32]| -> Vec<u8> {
        values
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect()
    };
    for bare in checkpoint.names() {
        if !is_encoder_tensor(bare) {
            continue;
        }
        let Some(tensor) = checkpoint.get(bare)? else {
            continue;
        };
        let shape = tensor.shape.clone();
        let values = match tensor.values {
            TensorValues::F32(values) => values,
            TensorValues::Int8 { .. } => tensor.to_f32(),
        };
        match precision {
            Precision::Fp32 => converted.push((
                bare.to_string(),
                Dtype::F32,
                shape,
                values.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )),
            Precision::Fp16 => converted.push((bare.to_string(), Dtype::F16, shape, f16_bytes(&values))),
            Precision::Int8 if shape.len() == 2 => {
                let (quantized, scales) = quantize_rows(&values, shape[1]);
                converted.push((
                    format!("{bare}{INT8_SCALE_SUFFIX}"),
                    Dtype::F32,
                    vec![shape[0]],
                    scales.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ));
                converted.push((
                    bare.to_string(),
                    Dtype::I8,
                    shape,
                    quantized.iter().map(|&q| q as u8).collect(),
                ));
            }
            Precision::Int8 => converted.push((bare.to_string(), Dtype::F16, shape, f16_bytes(&values))),
        }
    }
    if converted.is_empty() {
        return Err(TkreError::Model(format!(
            "{origin} has no embeddings.* or encoder.* tensors; is it a BERT checkpoint?"
        )));
    }
    let views = converted
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| TkreError::Model(format!("{origin}: tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, None).map_err(|e| TkreError::Model(format!("serialising {origin}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_rows_round_trip_within_half_a_step() {
        let values: Vec<f32> = (0..24).map(|i| (i as f32 - 11.0) / 7.0).collect();
        let (q, scales) = quantize_rows(&values, 8);
        assert_eq!(scales.len(), 3);
        for (i, v) in values.iter().enumerate() {
            let back = f32::from(q[i]) * scales[i / 8];
            assert!((back - v).abs() <= scales[i / 8] / 2.0 + 1e-7);
        }
        assert_eq!("int8".parse::<Precision>().unwrap(), Precision::Int8);
        assert!("int4".parse::<Precision>().is_err());
    }
}
