//! The encoder's weights as the fused engines (CPU and WebGPU) lay them out, read from a
//! checkpoint in one place. Matrices are `[in, out]` row-major; an int8 checkpoint's matrices
//! and word embeddings stay int8 with their scales ([`Matrix::Int8`], [`Table::Int8`]).

use crate::checkpoint::names::layer_norm_names;
use crate::checkpoint::{Checkpoint, EncoderConfig, Tensor, TensorValues, dequantize_rows};
use crate::error::Result;

/// A weight matrix `[inputs, outputs]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    F32(Vec<f32>),
    /// `value[r][c] = values[r * outputs + c] * scales[c]`: one scale per output.
    Int8 {
        values: Vec<i8>,
        scales: Vec<f32>,
    },
}

/// A linear layer: `y = x · W + bias`.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Matrix,
    pub bias: Vec<f32>,
}

impl Linear {
    /// The weight in f32 (int8 values times their column's scale).
    pub fn weight_f32(&self) -> Vec<f32> {
        match &self.weight {
            Matrix::F32(values) => values.clone(),
            // Transposed from the checkpoint, so the checkpoint's row scales are column scales here.
            Matrix::Int8 { values, scales } => values
                .iter()
                .enumerate()
                .map(|(i, &q)| f32::from(q) * scales[i % self.outputs])
                .collect(),
        }
    }

    /// A checkpoint `Linear` (`NAME.weight` `[out, in]`, `NAME.bias` `[out]`) transposed to
    /// `[in, out]`; a missing bias is zero.
    fn read(checkpoint: &Checkpoint, name: &str, inputs: usize, outputs: usize) -> Result<Self> {
        let weight = checkpoint.tensor(&format!("{name}.weight"), &[outputs, inputs])?;
        let bias = match checkpoint.get(&format!("{name}.bias"))? {
            Some(bias) => vector(bias, outputs, checkpoint)?,
            None => vec![0.0; outputs],
        };
        let weight = match weight.values {
            TensorValues::F32(values) => Matrix::F32(transpose(&values, outputs, inputs)),
            TensorValues::Int8 { values, scales } => Matrix::Int8 {
                values: transpose(&values, outputs, inputs),
                scales,
            },
        };
        Ok(Self {
            inputs,
            outputs,
            weight,
            bias,
        })
    }

    /// Multiplies the weight and bias by `factor` (an int8 weight keeps its integers).
    fn scaled(mut self, factor: f32) -> Self {
        match &mut self.weight {
            Matrix::F32(values) => values.iter_mut().for_each(|v| *v *= factor),
            Matrix::Int8 { scales, .. } => scales.iter_mut().for_each(|s| *s *= factor),
        }
        self.bias.iter_mut().for_each(|b| *b *= factor);
        self
    }

    /// `[a | b | c]`: three layers of the same inputs side by side, as one product. Int8 when
    /// all three are.
    fn concat(parts: [Linear; 3]) -> Self {
        let inputs = parts[0].inputs;
        let outputs = parts.iter().map(|p| p.outputs).sum();
        let bias = parts.iter().flat_map(|p| p.bias.iter().copied()).collect();
        fn interleave<T: Copy>(rows: [&[T]; 3], widths: [usize; 3], inputs: usize) -> Vec<T> {
            (0..inputs)
                .flat_map(|r| (0..3).flat_map(move |p| rows[p][r * widths[p]..(r + 1) * widths[p]].iter()))
                .copied()
                .collect()
        }
        let widths = [parts[0].outputs, parts[1].outputs, parts[2].outputs];
        let weight = match (&parts[0].weight, &parts[1].weight, &parts[2].weight) {
            (
                Matrix::Int8 {
                    values: a,
                    scales: sa,
                },
                Matrix::Int8 {
                    values: b,
                    scales: sb,
                },
                Matrix::Int8 {
                    values: c,
                    scales: sc,
                },
            ) => Matrix::Int8 {
                values: interleave([a, b, c], widths, inputs),
                scales: sa.iter().chain(sb).chain(sc).copied().collect(),
            },
            _ => {
                let [a, b, c] = [
                    parts[0].weight_f32(),
                    parts[1].weight_f32(),
                    parts[2].weight_f32(),
                ];
                Matrix::F32(interleave([&a, &b, &c], widths, inputs))
            }
        };
        Self {
            inputs,
            outputs,
            weight,
            bias,
        }
    }
}

/// A layer norm's scale and shift.
#[derive(Debug, Clone, PartialEq)]
pub struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

impl Norm {
    fn read(checkpoint: &Checkpoint, name: &str, width: usize) -> Result<Self> {
        let (gamma, beta) = layer_norm_names(name);
        Ok(Self {
            gamma: vector(checkpoint.tensor_named(&gamma, &[width])?, width, checkpoint)?,
            beta: vector(checkpoint.tensor_named(&beta, &[width])?, width, checkpoint)?,
        })
    }
}

/// An embedding table `[rows, width]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Table {
    F32(Vec<f32>),
    /// One scale per row.
    Int8 {
        values: Vec<i8>,
        scales: Vec<f32>,
    },
}

impl Table {
    /// Writes row `row` (`width` values) into `out`.
    pub fn row_into(&self, row: usize, out: &mut [f32]) {
        let width = out.len();
        match self {
            Table::F32(values) => out.copy_from_slice(&values[row * width..][..width]),
            Table::Int8 { values, scales } => {
                let scale = scales[row];
                for (o, &q) in out.iter_mut().zip(&values[row * width..][..width]) {
                    *o = f32::from(q) * scale;
                }
            }
        }
    }

    /// The whole table in f32.
    pub fn to_f32(&self, width: usize) -> Vec<f32> {
        match self {
            Table::F32(values) => values.clone(),
            Table::Int8 { values, scales } => dequantize_rows(values, scales, width),
        }
    }
}

/// The four products of an encoder layer, named by the checkpoint `Linear`s they multiply by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LayerProduct {
    /// Query, key and value: one product, since they read the same input.
    Qkv,
    AttentionOutput,
    Intermediate,
    Output,
}

impl LayerProduct {
    pub const ALL: [LayerProduct; 4] = [Self::Qkv, Self::AttentionOutput, Self::Intermediate, Self::Output];

    /// The checkpoint `Linear`s of the product, relative to `encoder.layer.N.`.
    pub fn linears(self) -> &'static [&'static str] {
        match self {
            Self::Qkv => &[
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
            ],
            Self::AttentionOutput => &["attention.output.dense"],
            Self::Intermediate => &["intermediate.dense"],
            Self::Output => &["output.dense"],
        }
    }

    /// The checkpoint weight tensors of the product in layer `layer`
    /// (`encoder.layer.0.attention.self.query.weight`, ...).
    pub fn weight_names(self, layer: usize) -> Vec<String> {
        self.linears()
            .iter()
            .map(|linear| format!("encoder.layer.{layer}.{linear}.weight"))
            .collect()
    }
}

/// One encoder layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// `[hidden, 3 hidden]`: query (pre-scaled by `1/sqrt(head size)`), key, value.
    pub qkv: Linear,
    pub attention_output: Linear,
    pub attention_norm: Norm,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_norm: Norm,
}

/// Everything a fused forward pass needs.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderWeights {
    pub config: EncoderConfig,
    pub word_embeddings: Table,
    /// `[max positions, hidden]`.
    pub position_embeddings: Vec<f32>,
    /// Row 0 of the token-type table: every sequence is one segment.
    pub token_type: Vec<f32>,
    pub embedding_norm: Norm,
    pub layers: Vec<LayerWeights>,
}

impl EncoderWeights {
    /// Reads the encoder's tensors from `checkpoint`, shaped as `config` says.
    pub fn read(checkpoint: &Checkpoint, config: &EncoderConfig) -> Result<Self> {
        let h = config.hidden_size;
        let table =
            |name: &str, rows: usize| checkpoint.tensor(&format!("embeddings.{name}.weight"), &[rows, h]);
        let word_embeddings = match table("word_embeddings", config.vocab_size)?.values {
            TensorValues::F32(values) => Table::F32(values),
            TensorValues::Int8 { values, scales } => Table::Int8 { values, scales },
        };
        let position_embeddings = table("position_embeddings", config.max_position_embeddings)?.to_f32();
        let token_types = table("token_type_embeddings", config.type_vocab_size)?.to_f32();
        let scale = 1.0 / (config.head_size() as f32).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let name = |part: &str| format!("encoder.layer.{l}.{part}");
            let linear = |part: &str, inputs, outputs| Linear::read(checkpoint, &name(part), inputs, outputs);
            let i = config.intermediate_size;
            let qkv = LayerProduct::Qkv.linears();
            let only = |product: LayerProduct| product.linears()[0];
            layers.push(LayerWeights {
                qkv: Linear::concat([
                    linear(qkv[0], h, h)?.scaled(scale),
                    linear(qkv[1], h, h)?,
                    linear(qkv[2], h, h)?,
                ]),
                attention_output: linear(only(LayerProduct::AttentionOutput), h, h)?,
                attention_norm: Norm::read(checkpoint, &name("attention.output.LayerNorm"), h)?,
                intermediate: linear(only(LayerProduct::Intermediate), h, i)?,
                output: linear(only(LayerProduct::Output), i, h)?,
                output_norm: Norm::read(checkpoint, &name("output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            config: config.clone(),
            word_embeddings,
            position_embeddings,
            token_type: token_types[..h].to_vec(),
            embedding_norm: Norm::read(checkpoint, "embeddings.LayerNorm", h)?,
            layers,
        })
    }

    /// Whether every weight matrix is int8 (an int8 export).
    pub fn is_int8(&self) -> bool {
        self.layers.iter().all(|layer| {
            [
                &layer.qkv,
                &layer.attention_output,
                &layer.intermediate,
                &layer.output,
            ]
            .iter()
            .all(|linear| matches!(linear.weight, Matrix::Int8 { .. }))
        })
    }
}

/// A 1-d tensor of `len` values in f32.
fn vector(tensor: Tensor, len: usize, checkpoint: &Checkpoint) -> Result<Vec<f32>> {
    if tensor.shape != [len] {
        return Err(crate::TkreError::Model(format!(
            "{}: tensor {} has shape {:?}, expected [{len}]",
            checkpoint.origin(),
            tensor.name,
            tensor.shape
        )));
    }
    Ok(tensor.to_f32())
}

/// `[rows, cols]` -> `[cols, rows]`.
fn transpose<T: Copy + Default>(values: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::default(); values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}
