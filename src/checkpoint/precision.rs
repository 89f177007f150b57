//! How a checkpoint's weights are stored, and converting them for export.
//!
//! int8: every 2-d tensor (the `Linear` weights and the embedding tables, 99 % of the
//! parameters) is quantised symmetrically with one f32 scale per row (per output channel of a
//! `Linear`, per token of an embedding): `q = round(w / s)`, `s = max|row| / 127`, stored as
//! `NAME` (I8) and `NAME_scale` (F32, `[rows]`); biases and layer norms stay f16. Readers get
//! the integers back as they were written ([`super::TensorValues::Int8`]).
//!
//! packed: the int8 export's integers in fewer bits where accuracy allows it (the word-embedding
//! table, half the parameters, is only looked up), stored bit-packed ([`super::packing`]) and
//! widened to int8 when read; [`packed_storage`] says how each tensor is stored.

use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use super::gptq::{InputGram, quantize_rows_compensated};
use super::names::{INT8_SCALE_SUFFIX, is_encoder_tensor};
use super::packing::{
    PACKED_KEY_PREFIX, PackedLayout, pack_rows, quantize_rows_to_bits, quantize_rows_to_codebook, serialize,
};
use super::tensors::{Checkpoint, TensorValues};
use crate::error::{Result, TkreError};

/// The precision of an export's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Fp16,
    Int8,
    Packed,
}

impl Precision {
    pub const ALL: [Precision; 4] = [
        Precision::Fp32,
        Precision::Fp16,
        Precision::Int8,
        Precision::Packed,
    ];

    /// The name manifests and the CLI use: `fp32`, `fp16`, `int8`, `packed`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
            Precision::Packed => "packed",
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
            Precision::Packed => {
                "as int8 (one f32 scale per row in NAME_scale, values widened to int8 when read), but \
                 word embeddings in 4 bits (a codebook of 16 int8 levels fitted to the table), the other \
                 weights on a uniform grid (each row's clipping the one with least squared error): \
                 attention 6 bits, feed-forward 5; stored bit-packed as U8 with `packed:NAME` metadata; position and \
                 token-type embeddings int8; 1-d tensors f16"
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
            .ok_or_else(|| TkreError::Option(format!("precision {text:?}: use fp32, fp16, int8 or packed")))
    }
}

/// How a packed export stores one 2-d tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackedStorage {
    /// Plain int8.
    Int8,
    /// A uniform grid of this many bits, each row's clipping chosen for least squared error.
    Grid(u32),
    /// A codebook of `2^bits` levels fitted to the tensor.
    Codebook(u32),
}

/// How a packed export stores the 2-d tensor `name`: the allocation with the least FewRel
/// accuracy lost among those measured under the download budget (docs/benchmarks.md, "Packed
/// export"). The word-embedding table (half the parameters, only looked up) takes the
/// fewest, with a codebook; the attention projections take more than the feed-forward ones.
pub fn packed_storage(name: &str) -> PackedStorage {
    if name.ends_with("word_embeddings.weight") {
        PackedStorage::Codebook(4)
    } else if name.starts_with("embeddings.") {
        PackedStorage::Int8
    } else if name.contains(".attention.") {
        PackedStorage::Grid(6)
    } else {
        PackedStorage::Grid(5)
    }
}

/// The inputs each `Linear` weight of a model read on calibration sentences, by checkpoint
/// tensor name without prefix (`encoder.layer.0.output.dense.weight`).
pub type CalibrationInputs = HashMap<String, InputGram>;

/// `values` (rows of `cols`) quantised as a packed export stores the tensor `name`: the int8
/// values, their rows' scales, and the packed layout (`None`: stored as plain int8). With the
/// tensor's calibration `inputs`, a uniform grid is rounded for the least output error
/// ([`super::gptq`]).
pub fn quantize_packed(
    name: &str,
    values: &[f32],
    cols: usize,
    inputs: Option<&InputGram>,
) -> (Vec<i8>, Vec<f32>, Option<PackedLayout>) {
    match packed_storage(name) {
        PackedStorage::Int8 => {
            let (quantized, scales) = quantize_rows(values, cols);
            (quantized, scales, None)
        }
        PackedStorage::Grid(bits) => {
            let (quantized, scales) = match inputs {
                Some(gram) => quantize_rows_compensated(values, cols, bits, gram),
                None => quantize_rows_to_bits(values, cols, bits),
            };
            (
                quantized,
                scales,
                Some(PackedLayout {
                    bits,
                    cols,
                    levels: None,
                }),
            )
        }
        PackedStorage::Codebook(bits) => {
            let (quantized, scales, levels) = quantize_rows_to_codebook(values, cols, bits);
            (
                quantized,
                scales,
                Some(PackedLayout {
                    bits,
                    cols,
                    levels: Some(levels),
                }),
            )
        }
    }
}

/// Symmetric int8 quantisation with one scale per row of `cols` values.
pub fn quantize_rows(values: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    quantize_rows_to_bits(values, cols, 8)
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
    convert_weights_calibrated(bytes, precision, origin, &CalibrationInputs::new())
}

/// [`convert_weights`], a packed export's uniform grids rounded for the least output error on
/// the calibration `inputs` of their tensors (tensors without inputs are rounded to nearest).
pub fn convert_weights_calibrated(
    bytes: &[u8],
    precision: Precision,
    origin: &str,
    inputs: &CalibrationInputs,
) -> Result<Vec<u8>> {
    let checkpoint = Checkpoint::read(bytes, origin)?;
    let mut converted: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut metadata = HashMap::new();
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
            Precision::Packed if shape.len() == 2 => {
                let (quantized, scales, layout) = quantize_packed(bare, &values, shape[1], inputs.get(bare));
                converted.push((
                    format!("{bare}{INT8_SCALE_SUFFIX}"),
                    Dtype::F32,
                    vec![shape[0]],
                    scales.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ));
                if let Some(layout) = layout {
                    let layout_json = serde_json::to_string(&layout)
                        .map_err(|e| TkreError::Model(format!("{origin}: packed layout of {bare}: {e}")))?;
                    metadata.insert(format!("{PACKED_KEY_PREFIX}{bare}"), layout_json);
                    converted.push((
                        bare.to_string(),
                        Dtype::U8,
                        vec![shape[0], layout.row_bytes()],
                        pack_rows(&quantized, &layout),
                    ));
                } else {
                    converted.push((
                        bare.to_string(),
                        Dtype::I8,
                        shape,
                        quantized.iter().map(|&q| q as u8).collect(),
                    ));
                }
            }
            Precision::Int8 | Precision::Packed => {
                converted.push((bare.to_string(), Dtype::F16, shape, f16_bytes(&values)))
            }
        }
    }
    if converted.is_empty() {
        return Err(TkreError::Model(format!(
            "{origin} has no embeddings.* or encoder.* tensors; is it a BERT checkpoint?"
        )));
    }
    let metadata = (!metadata.is_empty()).then_some(metadata);
    serialize(&converted, metadata, origin)
}

#[cfg(test)]
mod tests {
    use safetensors::tensor::TensorView;

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

    #[test]
    fn a_packed_export_reads_back_as_the_integers_it_was_quantised_to() {
        let tensors: Vec<(&str, Vec<usize>)> = vec![
            ("embeddings.word_embeddings.weight", vec![10, 16]),
            ("embeddings.position_embeddings.weight", vec![4, 16]),
            ("embeddings.LayerNorm.weight", vec![16]),
            ("encoder.layer.0.attention.self.query.weight", vec![8, 16]),
            ("encoder.layer.0.intermediate.dense.weight", vec![12, 8]),
        ];
        let data: Vec<Vec<u8>> = tensors
            .iter()
            .enumerate()
            .map(|(t, (_, shape))| {
                (0..shape.iter().product::<usize>())
                    .flat_map(|i| (((i * 31 + t * 7) % 53) as f32 / 26.0 - 1.0).to_le_bytes())
                    .collect()
            })
            .collect();
        let views: Vec<_> = tensors
            .iter()
            .zip(&data)
            .map(|((name, shape), bytes)| {
                (
                    name.to_string(),
                    TensorView::new(Dtype::F32, shape.clone(), bytes).unwrap(),
                )
            })
            .collect();
        let fp32 = safetensors::serialize(views, None).unwrap();
        let source = Checkpoint::read(&fp32, "fp32").unwrap();
        let packed = convert_weights(&fp32, Precision::Packed, "fp32").unwrap();
        let read = Checkpoint::read(&packed, "packed").unwrap();
        assert!(read.has_packed());
        let widened_bytes = super::super::widen_packed(packed.clone(), "packed").unwrap();
        let widened = Checkpoint::read(&widened_bytes, "widened").unwrap();
        assert!(!widened.has_packed());
        assert_eq!(
            read.names(),
            source.names(),
            "scales hidden, names as in the source"
        );
        for (name, shape) in &tensors {
            let tensor = read.get(name).unwrap().unwrap();
            assert_eq!(&tensor.shape, shape, "{name}");
            assert_eq!(
                Some(&tensor),
                widened.get(name).unwrap().as_ref(),
                "{name}: widened file differs"
            );
            if shape.len() == 2 {
                let (expected, expected_scales, layout) =
                    quantize_packed(name, &source.get(name).unwrap().unwrap().to_f32(), shape[1], None);
                let TensorValues::Int8 { values, scales } = tensor.values else {
                    panic!("{name} should read as int8");
                };
                assert_eq!(
                    (values, scales),
                    (expected, expected_scales),
                    "{name} as {layout:?}"
                );
            }
        }
        // A layout that contradicts its tensor is refused, naming it.
        let mut forged = packed.clone();
        let header_len = u64::from_le_bytes(forged[..8].try_into().unwrap()) as usize;
        let header = String::from_utf8(forged[8..8 + header_len].to_vec()).unwrap();
        let bad = header.replace(r#"\"bits\":4"#, r#"\"bits\":5"#);
        assert_ne!(bad, header);
        forged.splice(8..8 + header_len, bad.into_bytes());
        let error = Checkpoint::read(&forged, "forged.safetensors")
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("embeddings.word_embeddings.weight") && error.contains("layout"),
            "{error}"
        );
    }
}
