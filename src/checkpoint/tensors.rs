//! Reading `model.safetensors` into typed tensors, tensor by tensor (no copy of the whole file).
//!
//! Float tensors of any width (f32, f16, bf16) are widened to f32; int8 tensors (the int8
//! export, see [`INT8_SCALE_SUFFIX`]) stay int8 with their per-row scales, so an engine with an
//! integer kernel gets exactly the exported integers; packed tensors (the packed export, see
//! [`super::packing`]) are widened to those int8 values as they are read. Every value is checked to be finite.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};

use super::names::{INT8_SCALE_SUFFIX, encoder_name};
use super::packing::{PackedLayout, packed_layouts, unpack_rows};
use super::precision::dequantize_rows;
use crate::error::{Result, TkreError};

/// A tensor's values as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorValues {
    /// Widened from f32, f16 or bf16.
    F32(Vec<f32>),
    /// `value = values[i] * scales[row of i]`: symmetric int8, one scale per row.
    Int8 { values: Vec<i8>, scales: Vec<f32> },
}

/// One tensor of a checkpoint: its name (without the `bert.` prefix), shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: TensorValues,
}

impl Tensor {
    /// The values in f32 (int8 values times their row's scale).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.values {
            TensorValues::F32(values) => values.clone(),
            TensorValues::Int8 { values, scales } => {
                dequantize_rows(values, scales, self.shape.get(1).copied().unwrap_or(1))
            }
        }
    }

    /// Whether the values are stored as int8.
    pub fn is_int8(&self) -> bool {
        matches!(self.values, TensorValues::Int8 { .. })
    }
}

/// A parsed `model.safetensors`: its header, with tensors found by name with or without the
/// `bert.` prefix.
pub struct Checkpoint<'a> {
    file: SafeTensors<'a>,
    /// Name without prefix -> name in the file.
    names: HashMap<String, String>,
    /// Packed tensors' layouts, by name in the file.
    packed: HashMap<String, PackedLayout>,
    origin: String,
}

impl<'a> Checkpoint<'a> {
    /// Parses the header of `bytes` (`origin` names the file in errors). Two tensors that are
    /// one parameter once the prefix is removed (`bert.x` and `x`) are refused: one would load
    /// over the other, and an int8 tensor could meet the other's scales.
    pub fn read(bytes: &'a [u8], origin: &str) -> Result<Self> {
        let file = SafeTensors::deserialize(bytes).map_err(|e| {
            TkreError::Model(format!(
                "{origin}: not a readable safetensors file ({e}); a truncated download gives this error"
            ))
        })?;
        let mut names = HashMap::new();
        for name in file.names() {
            if let Some(other) = names.insert(encoder_name(name).to_string(), name.to_string()) {
                return Err(TkreError::Model(format!(
                    "{origin}: tensors {other} and {name} are the same parameter once the `bert.` prefix \
                     is removed; a checkpoint must name each parameter once"
                )));
            }
        }
        let packed = packed_layouts(&file, bytes, origin)?;
        Ok(Self {
            file,
            names,
            packed,
            origin: origin.to_string(),
        })
    }

    /// Where the checkpoint came from, for error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The names of the tensors (without prefix), scale tensors of int8 and packed tensors left
    /// out.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .names
            .keys()
            .map(String::as_str)
            .filter(|name| {
                name.strip_suffix(INT8_SCALE_SUFFIX)
                    .is_none_or(|base| !self.is_quantized(base))
            })
            .collect();
        names.sort_unstable();
        names
    }

    /// Whether `bare` is an int8 or packed tensor (whose values come with per-row scales).
    fn is_quantized(&self, bare: &str) -> bool {
        let Some(name) = self.names.get(bare) else {
            return false;
        };
        self.packed.contains_key(name) || self.file.tensor(name).is_ok_and(|view| view.dtype() == Dtype::I8)
    }

    /// Whether any tensor is packed (readers of the raw file widen it first:
    /// [`super::packing::widen_packed`]).
    pub fn has_packed(&self) -> bool {
        !self.packed.is_empty()
    }

    /// The tensor `bare` (named without prefix), or `None` if the checkpoint has none.
    pub fn get(&self, bare: &str) -> Result<Option<Tensor>> {
        let Some(name) = self.names.get(bare) else {
            return Ok(None);
        };
        let origin = &self.origin;
        let view = self
            .file
            .tensor(name)
            .map_err(|e| TkreError::Model(format!("{origin}: tensor {name}: {e}")))?;
        let mut shape = view.shape().to_vec();
        let values = match view.dtype() {
            Dtype::U8 if self.packed.contains_key(name) => {
                let layout = &self.packed[name];
                shape = vec![shape[0], layout.cols];
                TensorValues::Int8 {
                    values: unpack_rows(view.data(), layout, name, origin)?,
                    scales: self.int8_scales_of(name, &shape)?,
                }
            }
            Dtype::F32 => TensorValues::F32(
                view.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            ),
            Dtype::F16 => TensorValues::F32(
                view.data()
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            Dtype::BF16 => TensorValues::F32(
                view.data()
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
            ),
            Dtype::I8 => TensorValues::Int8 {
                values: view.data().iter().map(|&b| b as i8).collect(),
                scales: self.int8_scales_of(name, &shape)?,
            },
            other => {
                return Err(TkreError::Model(format!(
                    "{origin}: tensor {name} has dtype {other:?}; a BERT checkpoint holds float tensors \
                     (f32, f16, bf16), an int8 export's int8 tensors or a packed export's packed ones"
                )));
            }
        };
        let finite = match &values {
            TensorValues::F32(v) => v.iter().all(|x| x.is_finite()),
            TensorValues::Int8 { scales, .. } => scales.iter().all(|x| x.is_finite()),
        };
        if !finite {
            return Err(TkreError::Model(format!(
                "{origin}: tensor {name} holds NaN or infinite values; the file is corrupt or the \
                 training diverged"
            )));
        }
        Ok(Some(Tensor {
            name: bare.to_string(),
            shape,
            values,
        }))
    }

    /// The tensor `bare` with the shape `shape`: missing or misshapen is an error that names it.
    pub fn tensor(&self, bare: &str, shape: &[usize]) -> Result<Tensor> {
        let origin = &self.origin;
        let tensor = self.get(bare)?.ok_or_else(|| {
            TkreError::Model(format!(
                "{origin}: tensor {bare} is missing; is this a BERT-layout checkpoint (embeddings.*, \
                 encoder.layer.N.*)?"
            ))
        })?;
        if tensor.shape != shape {
            return Err(TkreError::Model(format!(
                "{origin}: tensor {bare} has shape {:?} but config.json describes {shape:?}; does \
                 config.json belong to this checkpoint?",
                tensor.shape
            )));
        }
        Ok(tensor)
    }

    /// The first of `names` the checkpoint has, with the shape `shape`.
    pub fn tensor_named(&self, names: &[String], shape: &[usize]) -> Result<Tensor> {
        let found = names.iter().find(|name| self.names.contains_key(name.as_str()));
        self.tensor(found.unwrap_or(&names[0]), shape)
    }

    /// The per-row scales of every int8 tensor, by its name in the file (burn's loader widens
    /// int8 tensors with them as they load).
    pub fn int8_scales(&self) -> Result<Vec<(String, Vec<f32>)>> {
        let mut scales = Vec::new();
        for name in self.names.values() {
            let view = self
                .file
                .tensor(name)
                .map_err(|e| TkreError::Model(format!("{}: tensor {name}: {e}", self.origin)))?;
            if view.dtype() == Dtype::I8 {
                scales.push((name.clone(), self.int8_scales_of(name, view.shape())?));
            }
        }
        Ok(scales)
    }

    fn int8_scales_of(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let origin = &self.origin;
        let scale_name = format!("{name}{INT8_SCALE_SUFFIX}");
        let scale = self.file.tensor(&scale_name).map_err(|_| {
            TkreError::Model(format!(
                "{origin}: int8 tensor {name} has no {scale_name} (its per-row scales)"
            ))
        })?;
        let rows = shape.first().copied().unwrap_or(0);
        if shape.len() != 2 || scale.dtype() != Dtype::F32 || scale.shape() != [rows] {
            return Err(TkreError::Model(format!(
                "{origin}: int8 tensor {name} {shape:?} needs a 2-d shape and an f32 {scale_name} of [{rows}], \
                 found {:?} {:?}",
                scale.dtype(),
                scale.shape()
            )));
        }
        Ok(scale
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}
