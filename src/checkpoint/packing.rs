//! Sub-byte storage of int8 tensors: the `packed` export's download format.
//!
//! A tensor quantised to `bits` < 8 (one f32 scale per row as in the int8 export) is stored as U8
//! `[rows, ceil(cols * bits / 8)]`: each row a little-endian bit stream of codes, value `i` in
//! bits `i*bits .. (i+1)*bits`, the row padded to whole bytes. A code is either `q + L` for a
//! uniform grid (`q` in `[-L, L]`, `L = 2^(bits-1) - 1`) or an index into the tensor's `levels`,
//! `2^bits` int8 values fitted to its distribution (a codebook). The header's metadata names
//! it: `"packed:NAME": "{\"bits\":4,\"cols\":384}"`, or with `"levels":[-103, ...]`.
//! Readers widen it back to the same int8 values it was quantised to (they fit int8 exactly), so
//! the engines and their integer kernels see an ordinary int8 tensor: packing costs download
//! bytes only, never arithmetic.

use std::collections::HashMap;

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TkreError};

/// The metadata key prefix of a packed tensor's layout.
pub const PACKED_KEY_PREFIX: &str = "packed:";

/// How one packed tensor is laid out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedLayout {
    /// Bits per value, 2 ..= 7.
    pub bits: u32,
    /// Values per row (the tensor's second dimension).
    pub cols: usize,
    /// The codebook: code `c` is the int8 value `levels[c]` (ascending, at most `2^bits`);
    /// absent, the uniform grid `c - L`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<i8>>,
}

impl PackedLayout {
    /// Bytes one packed row takes.
    pub fn row_bytes(&self) -> usize {
        (self.cols * self.bits as usize).div_ceil(8)
    }

    /// The largest magnitude a value may have: `2^(bits-1) - 1`.
    pub fn limit(&self) -> i32 {
        (1 << (self.bits - 1)) - 1
    }
}

/// The packed tensors a file's metadata declares, by their name in the file. Every layout is
/// checked against its tensor (U8, two dimensions, the row length its bits and cols imply).
pub fn packed_layouts(
    file: &SafeTensors<'_>,
    bytes: &[u8],
    origin: &str,
) -> Result<HashMap<String, PackedLayout>> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| TkreError::Model(format!("{origin}: not a readable safetensors file ({e})")))?;
    let mut layouts = HashMap::new();
    let Some(entries) = metadata.metadata() else {
        return Ok(layouts);
    };
    for (key, value) in entries {
        let Some(name) = key.strip_prefix(PACKED_KEY_PREFIX) else {
            continue;
        };
        let layout: PackedLayout = serde_json::from_str(value).map_err(|e| {
            TkreError::Model(format!(
                "{origin}: metadata {key:?} = {value:?} is not a packed layout {{\"bits\": B, \"cols\": C}} ({e})"
            ))
        })?;
        let view = file.tensor(name).map_err(|_| {
            TkreError::Model(format!(
                "{origin}: metadata {key:?} describes tensor {name}, which the file lacks"
            ))
        })?;
        let valid_bits = (2..=7).contains(&layout.bits);
        let valid_levels = layout.levels.as_ref().is_none_or(|levels| {
            !levels.is_empty() && levels.len() <= 1 << layout.bits && levels.windows(2).all(|w| w[0] < w[1])
        });
        if !valid_bits
            || !valid_levels
            || layout.cols == 0
            || view.dtype() != Dtype::U8
            || view.shape().len() != 2
            || view.shape()[1] != layout.row_bytes()
        {
            return Err(TkreError::Model(format!(
                "{origin}: packed tensor {name} is {:?} {:?}, which does not match its layout {value} \
                 (U8 [rows, ceil(cols * bits / 8)], bits 2..=7, levels ascending, at most 2^bits); the file is corrupt or was not written by `tkre export`",
                view.dtype(),
                view.shape()
            )));
        }
        layouts.insert(name.to_string(), layout);
    }
    Ok(layouts)
}

/// Packs `values` (`cols` per row, each in `[-L, L]` of `layout`, or one of its `levels`) row
/// by row; a value between levels is stored as the nearest.
pub fn pack_rows(values: &[i8], layout: &PackedLayout) -> Vec<u8> {
    let bits = layout.bits as usize;
    let limit = layout.limit();
    let code_of = |q: i8| -> u32 {
        match &layout.levels {
            None => (i32::from(q) + limit).clamp(0, 2 * limit) as u32,
            Some(levels) => nearest_level(levels, f32::from(q)) as u32,
        }
    };
    let mut packed = Vec::with_capacity(values.len() / layout.cols.max(1) * layout.row_bytes());
    for row in values.chunks(layout.cols) {
        let mut bytes = vec![0u8; layout.row_bytes()];
        for (i, &q) in row.iter().enumerate() {
            let code = code_of(q);
            let at = i * bits;
            // A value spans at most two bytes (bits <= 7).
            let word = code << (at % 8);
            bytes[at / 8] |= word as u8;
            if at % 8 + bits > 8 {
                bytes[at / 8 + 1] |= (word >> 8) as u8;
            }
        }
        packed.extend_from_slice(&bytes);
    }
    packed
}

/// The inverse of [`pack_rows`]: the int8 values of a packed tensor's rows. A code without a
/// value (above `2L`, or past the levels; [`pack_rows`] never writes one) is corruption,
/// reported with the tensor's name.
pub fn unpack_rows(packed: &[u8], layout: &PackedLayout, name: &str, origin: &str) -> Result<Vec<i8>> {
    let bits = layout.bits as usize;
    let limit = layout.limit();
    let table: Vec<i8> = match &layout.levels {
        Some(levels) => levels.clone(),
        None => (-limit..=limit).map(|q| q as i8).collect(),
    };
    let mask = (1u32 << bits) - 1;
    let rows = packed.len() / layout.row_bytes();
    let mut values = Vec::with_capacity(rows * layout.cols);
    for row in packed.chunks_exact(layout.row_bytes()) {
        for i in 0..layout.cols {
            let at = i * bits;
            let low = u32::from(row[at / 8]);
            let high = row.get(at / 8 + 1).copied().map_or(0, u32::from);
            let code = ((low | high << 8) >> (at % 8)) & mask;
            let Some(&value) = table.get(code as usize) else {
                return Err(TkreError::Model(format!(
                    "{origin}: packed tensor {name} holds the code {code}, outside the {} values of its \
                     layout; the file is corrupt",
                    table.len()
                )));
            };
            values.push(value);
        }
    }
    Ok(values)
}

/// Symmetric quantisation to `bits` (2 ..= 8) with one scale per row of `cols` values. At 8 bits
/// the scale is `max|row| / 127` (the int8 export). Below, where one step is a large part of the
/// range, each row's scale is the one of 32 clipping points (`0.5 .. 1.0` of `max|row|`) with
/// the least squared error: a few outliers clipped buy finer steps for the rest.
pub fn quantize_rows_to_bits(values: &[f32], cols: usize, bits: u32) -> (Vec<i8>, Vec<f32>) {
    let cols = cols.max(1);
    let limit = ((1i32 << (bits - 1)) - 1) as f32;
    let mut quantized = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len() / cols);
    let round = |x: f32, scale: f32| (x / scale).round().clamp(-limit, limit);
    for row in values.chunks(cols) {
        let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
        let mut scale = if max > 0.0 { max / limit } else { 1.0 };
        if bits < 8 && max > 0.0 {
            let error = |scale: f32| -> f64 {
                row.iter()
                    .map(|&x| f64::from(round(x, scale) * scale - x).powi(2))
                    .sum()
            };
            let mut best = error(scale);
            for step in 0..31 {
                let candidate = max * (0.5 + step as f32 / 62.0) / limit;
                let candidate_error = error(candidate);
                if candidate_error < best {
                    best = candidate_error;
                    scale = candidate;
                }
            }
        }
        quantized.extend(row.iter().map(|&x| round(x, scale) as i8));
        scales.push(scale);
    }
    (quantized, scales)
}

/// The index of the level nearest `x` (`levels` ascending).
fn nearest_level(levels: &[i8], x: f32) -> usize {
    let above = levels.partition_point(|&level| f32::from(level) < x);
    match above {
        0 => 0,
        n if n == levels.len() => n - 1,
        n if x - f32::from(levels[n - 1]) <= f32::from(levels[n]) - x => n - 1,
        n => n,
    }
}

/// Quantisation to a codebook of `2^bits` int8 levels shared by the tensor, one scale per row
/// (`max|row| / 127`, int8's): the levels are fitted to where the values lie (Lloyd's
/// algorithm from the quantiles, 25 rounds), dense near zero where most weights are. On the
/// word-embedding table at 4 bits: 18 % less squared error than the best uniform grid per row.
/// Returns the values (each one of the levels), the scales and the levels.
pub fn quantize_rows_to_codebook(values: &[f32], cols: usize, bits: u32) -> (Vec<i8>, Vec<f32>, Vec<i8>) {
    let cols = cols.max(1);
    let scales: Vec<f32> = values
        .chunks(cols)
        .map(|row| {
            let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
            if max > 0.0 { max / 127.0 } else { 1.0 }
        })
        .collect();
    let units: Vec<f32> = values
        .iter()
        .enumerate()
        .map(|(i, x)| x / scales[i / cols])
        .collect();
    let count = 1usize << bits;
    let mut sorted = units.clone();
    sorted.sort_unstable_by(f32::total_cmp);
    let mut centres: Vec<f64> = (0..count)
        .map(|k| f64::from(sorted[((2 * k + 1) * sorted.len() / (2 * count)).min(sorted.len() - 1)]))
        .collect();
    for _ in 0..25 {
        let mut sums = vec![0f64; count];
        let mut counts = vec![0usize; count];
        let edges: Vec<f64> = centres.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
        for &x in &sorted {
            let k = edges.partition_point(|&edge| edge < f64::from(x));
            sums[k] += f64::from(x);
            counts[k] += 1;
        }
        for k in 0..count {
            if counts[k] > 0 {
                centres[k] = sums[k] / counts[k] as f64;
            }
        }
        centres.sort_unstable_by(f64::total_cmp);
    }
    let mut levels: Vec<i8> = centres
        .iter()
        .map(|c| c.round().clamp(-127.0, 127.0) as i8)
        .collect();
    levels.dedup();
    let quantized = units.iter().map(|&x| levels[nearest_level(&levels, x)]).collect();
    (quantized, scales, levels)
}

/// A packed file rewritten with every packed tensor widened to I8 (the int8 export's format),
/// for readers that take a safetensors file as it is (burn's store); any other file comes back
/// unchanged.
pub fn widen_packed(bytes: Vec<u8>, origin: &str) -> Result<Vec<u8>> {
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| TkreError::Model(format!("{origin}: not a readable safetensors file ({e})")))?;
    let layouts = packed_layouts(&file, &bytes, origin)?;
    if layouts.is_empty() {
        return Ok(bytes);
    }
    let mut widened: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in file.tensors() {
        match layouts.get(&name) {
            Some(layout) => {
                let values = unpack_rows(view.data(), layout, &name, origin)?;
                let shape = vec![view.shape()[0], layout.cols];
                widened.push((
                    name,
                    Dtype::I8,
                    shape,
                    values.into_iter().map(|q| q as u8).collect(),
                ));
            }
            None => widened.push((name, view.dtype(), view.shape().to_vec(), view.data().to_vec())),
        }
    }
    serialize(&widened, None, origin)
}

/// A safetensors file of `tensors` (name, dtype, shape, little-endian bytes) and `metadata`.
pub(crate) fn serialize(
    tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)],
    metadata: Option<HashMap<String, String>>,
    origin: &str,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| TkreError::Model(format!("{origin}: tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    // Without metadata safetensors' own order is already fixed (dtype, then name), so files
    // widened at load time skip the rewrite.
    let has_metadata = metadata.is_some();
    let bytes = safetensors::serialize(views, metadata)
        .map_err(|e| TkreError::Model(format!("writing {origin}: {e}")))?;
    if has_metadata {
        sorted_header(bytes, origin)
    } else {
        Ok(bytes)
    }
}

/// `bytes` with its JSON header's keys (and the `__metadata__` entries) in sorted order.
/// safetensors writes the metadata from a HashMap, in a different order on every run; sorted,
/// the same tensors and metadata always make the same file (and sha256). Offsets are explicit
/// in the header, so reordering its keys leaves the data where it is.
fn sorted_header(bytes: Vec<u8>, origin: &str) -> Result<Vec<u8>> {
    let corrupt = |what: &str| TkreError::Model(format!("writing {origin}: {what}"));
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| corrupt("no header length"))?;
    let header = bytes
        .get(8..8 + header_len)
        .ok_or_else(|| corrupt("header longer than the file"))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| corrupt(&format!("header is not JSON ({e})")))?;
    let sort = |map: serde_json::Map<String, serde_json::Value>| {
        let mut entries: Vec<_> = map.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.into_iter().collect::<serde_json::Map<_, _>>()
    };
    let mut sorted = sort(header);
    if let Some(serde_json::Value::Object(metadata)) = sorted.get_mut("__metadata__") {
        *metadata = sort(std::mem::take(metadata));
    }
    let mut text = serde_json::to_vec(&sorted).map_err(|e| corrupt(&e.to_string()))?;
    // safetensors pads the header with spaces to a multiple of 8 bytes (data alignment).
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - header_len);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + header_len..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_packs_and_unpacks_to_the_same_values() {
        for bits in 2..=7 {
            for cols in [1, 3, 8, 13, 384] {
                let layout = PackedLayout {
                    bits,
                    cols,
                    levels: None,
                };
                let limit = layout.limit();
                let values: Vec<i8> = (0..cols * 3)
                    .map(|i| ((i as i32 * 7919) % (2 * limit + 1) - limit) as i8)
                    .collect();
                let packed = pack_rows(&values, &layout);
                assert_eq!(packed.len(), 3 * layout.row_bytes(), "bits {bits} cols {cols}");
                assert_eq!(
                    unpack_rows(&packed, &layout, "t", "test").unwrap(),
                    values,
                    "bits {bits} cols {cols}"
                );
                // The same values through a codebook holding exactly them.
                let mut levels = values.clone();
                levels.sort_unstable();
                levels.dedup();
                let layout = PackedLayout {
                    levels: Some(levels),
                    ..layout
                };
                let packed = pack_rows(&values, &layout);
                assert_eq!(
                    unpack_rows(&packed, &layout, "t", "test").unwrap(),
                    values,
                    "bits {bits} cols {cols}"
                );
            }
        }
    }

    #[test]
    fn a_code_pack_rows_never_writes_is_reported_as_corruption() {
        let layout = PackedLayout {
            bits: 4,
            cols: 2,
            levels: None,
        };
        let error = unpack_rows(
            &[0xff],
            &layout,
            "embeddings.word_embeddings.weight",
            "model.safetensors",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("embeddings.word_embeddings.weight") && error.contains("corrupt"),
            "{error}"
        );
    }

    #[test]
    fn the_chosen_clipping_is_never_worse_than_max_abs() {
        let values: Vec<f32> = (0..384)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0 * if i % 97 == 0 { 4.0 } else { 1.0 })
            .collect();
        let squared_error = |(q, s): &(Vec<i8>, Vec<f32>)| -> f32 {
            values
                .iter()
                .zip(q)
                .map(|(x, &q)| (f32::from(q) * s[0] - x).powi(2))
                .sum()
        };
        let chosen = quantize_rows_to_bits(&values, 384, 4);
        let max = values.iter().fold(0f32, |m, x| m.max(x.abs()));
        let max_abs_q = values.iter().map(|x| (x / (max / 7.0)).round() as i8).collect();
        let max_abs = (max_abs_q, vec![max / 7.0]);
        assert!(chosen.0.iter().all(|q| (-7..=7).contains(q)));
        assert!(squared_error(&chosen) < squared_error(&max_abs));
        // 8 bits is the int8 export's rule (`quantize_rows`): max-abs scaling, no clipping.
        let (int8, scales) = quantize_rows_to_bits(&values, 384, 8);
        assert_eq!(scales, vec![max / 127.0]);
        assert!(
            values
                .iter()
                .zip(&int8)
                .all(|(x, &q)| f32::from(q) == (x / (max / 127.0)).round())
        );
    }

    #[test]
    fn a_codebook_fits_the_values_better_than_a_uniform_grid() {
        // Bell-shaped values, as weights are: most near zero.
        let values: Vec<f32> = (0..64 * 48)
            .map(|i| {
                let u = ((i * 7919 % 1000) as f32 + 0.5) / 1000.0;
                (u / (1.0 - u)).ln() * 0.1
            })
            .collect();
        let (codebook_values, scales, levels) = quantize_rows_to_codebook(&values, 48, 4);
        assert!(
            levels.len() <= 16 && levels.windows(2).all(|w| w[0] < w[1]),
            "{levels:?}"
        );
        assert!(codebook_values.iter().all(|q| levels.contains(q)));
        let squared_error = |q: &[i8], s: &[f32]| -> f32 {
            values
                .iter()
                .enumerate()
                .map(|(i, x)| (f32::from(q[i]) * s[i / 48] - x).powi(2))
                .sum()
        };
        let (uniform, uniform_scales) = quantize_rows_to_bits(&values, 48, 4);
        assert!(squared_error(&codebook_values, &scales) < squared_error(&uniform, &uniform_scales));
    }

    #[test]
    fn the_same_tensors_and_metadata_always_make_the_same_file() {
        let tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = (0..12)
            .map(|i| {
                (
                    format!("encoder.layer.{i}.weight"),
                    Dtype::I8,
                    vec![2, 3],
                    vec![i as u8; 6],
                )
            })
            .collect();
        // Each HashMap hashes with its own random keys, so the two iterate in different orders.
        let metadata = || -> HashMap<String, String> {
            (0..24)
                .map(|i| {
                    (
                        format!("{PACKED_KEY_PREFIX}t{i}"),
                        format!("{{\"bits\":{}}}", i % 7 + 1),
                    )
                })
                .collect()
        };
        let first = serialize(&tensors, Some(metadata()), "a test file").unwrap();
        let files: Vec<Vec<u8>> = (0..4)
            .map(|_| serialize(&tensors, Some(metadata()), "a test file").unwrap())
            .collect();
        assert!(files.iter().all(|file| *file == first));
        let read = SafeTensors::read_metadata(&first).unwrap().1;
        assert_eq!(read.metadata().clone().unwrap(), metadata());
        let header_len = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0);
        let parsed = SafeTensors::deserialize(&first).unwrap();
        for (name, _, shape, data) in &tensors {
            let view = parsed.tensor(name).unwrap();
            assert_eq!((view.shape(), view.data()), (&shape[..], &data[..]));
        }
    }
}
