//! The int8 model's matrix multiply on the browser's CPU path: integer weights times
//! activations quantized per row, summed in `i32` with wasm SIMD128's `i32x4.dot_i16x8_s`.
//!
//! Why: an int8 export stores every weight matrix as `q * s` with `q` in `[-127, 127]` and one
//! scale per output feature (`crate::checkpoint::precision`), and the engine receives those
//! integers as exported. Widened to f32 these ran on the
//! f32 tile of [`super::packed_linear`], whose step is a multiply and an add per 4 products;
//! `dot_i16x8_s` (one `pmaddwd` on x86) does 8 products and their pairwise sums in one
//! instruction, so the same tile covers twice the work per instruction. The f32 path was the
//! bottleneck of long int8 inputs (512 tokens, batch 32: level with ONNX Runtime's q8).
//!
//! Activations are quantized per row (token) to the widest integer range whose sums over `k`
//! cannot overflow `i32` ([`activation_levels`]: ±32767 at k = 384, ±11008 at k = 1536, i.e.
//! 15-16 bits, against ONNX Runtime q8's 8 bits per tensor), so the integer product differs
//! from the f32 product of the same int8 weights by about 1e-4 of the row's largest value.
//!
//! Layout: the weights in panels of [`PANEL`] columns; within a panel, for each pair of rows
//! `(2i, 2i + 1)`, the 16 values `w[2i][c], w[2i + 1][c]` for c = 0..8, so that one broadcast
//! pair of activations times the panel's two vectors gives 4 + 4 column sums.

use std::ops::Range;

use super::packed_linear::{PANEL, TILE_ROWS};
use super::threads::SharedSlice;

/// `[k, n]` int8 weights (as i16, pairs of rows interleaved), one scale per column, and the
/// bias, in panels of [`PANEL`] columns (the last zero-filled).
#[derive(Debug, Clone, Default)]
pub struct PackedInt8Weights {
    pub k: usize,
    pub n: usize,
    /// `k` rounded up to even: the quantized activation rows are this long.
    k_padded: usize,
    panels: Vec<i16>,
    scales: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedInt8Weights {
    /// Packs a row-major `[k, n]` int8 matrix with one scale per column (an int8 export's
    /// `Linear` weight, transposed) and its bias.
    pub fn from_int8(values: &[i8], k: usize, n: usize, scales: &[f32], bias: &[f32]) -> Self {
        assert_eq!(values.len(), k * n, "weight is not k x n");
        assert_eq!(scales.len(), n, "scales are not n long");
        assert_eq!(bias.len(), n, "bias is not n long");
        let k_padded = k + k % 2;
        let panel_count = n.div_ceil(PANEL);
        let mut packed = Self {
            k,
            n,
            k_padded,
            panels: vec![0; panel_count * k_padded * PANEL],
            scales: vec![0.0; panel_count * PANEL],
            bias: vec![0.0; panel_count * PANEL],
        };
        packed.bias[..n].copy_from_slice(bias);
        packed.scales[..n].copy_from_slice(scales);
        for column in 0..n {
            let (p, c) = (column / PANEL, column % PANEL);
            for row in 0..k {
                packed.panels[(p * k_padded + row - row % 2) * PANEL + 2 * c + row % 2] =
                    i16::from(values[row * n + column]);
            }
        }
        packed
    }

    /// Panels of [`PANEL`] columns (the last may be partial).
    pub fn panel_count(&self) -> usize {
        self.n.div_ceil(PANEL)
    }
}

/// Quantization levels for activations multiplied over `k` values: the largest `L` (at most
/// `i16::MAX`) with `k * 127 * L` within `i32`, so no sum can overflow.
pub fn activation_levels(k: usize) -> f32 {
    (i32::MAX as usize / (127 * k.max(1))).min(i16::MAX as usize) as f32
}

/// Activation rows quantized for [`matmul_int8`]: reused between products.
#[derive(Debug, Default)]
pub struct QuantizedRows {
    values: Vec<i16>,
    scales: Vec<f32>,
}

impl QuantizedRows {
    /// Quantizes `m` rows of `x` (`[m, w.k]`) for a product with `w`.
    pub fn quantize_for(&mut self, x: &[f32], m: usize, w: &PackedInt8Weights) {
        assert!(x.len() >= m * w.k, "x is not m x k");
        self.quantize(x, m, w.k, w.k_padded);
    }

    /// Quantizes `m` rows of `k` values (row `i` at `x[i * k..]`), each to `±levels` with its
    /// own scale, into rows of `k_padded` values (the padding zero).
    fn quantize(&mut self, x: &[f32], m: usize, k: usize, k_padded: usize) {
        let levels = activation_levels(k);
        self.values.clear();
        self.values.resize(m * k_padded, 0);
        self.scales.clear();
        for (row, to) in x
            .chunks_exact(k)
            .take(m)
            .zip(self.values.chunks_exact_mut(k_padded))
        {
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let (scale, inverse) = if max > 0.0 {
                (max / levels, levels / max)
            } else {
                (0.0, 0.0)
            };
            for (q, v) in to.iter_mut().zip(row) {
                *q = (v * inverse).round_ties_even() as i16;
            }
            self.scales.push(scale);
        }
    }
}

/// Panels per column block, as in [`super::packed_linear`]: a block of weights stays in the L2
/// cache while every row tile passes over it.
const PANELS_PER_BLOCK: usize = 8;

/// `out[m, n] = x[m, k] · W + bias` (row-major, contiguous), with `x` quantized per row into
/// `rows` first.
pub fn matmul_int8(x: &[f32], m: usize, w: &PackedInt8Weights, rows: &mut QuantizedRows, out: &mut [f32]) {
    if m == 0 || w.n == 0 {
        return;
    }
    rows.quantize_for(x, m, w);
    // SAFETY: one call writes all the panels; nothing else holds `out`.
    unsafe { matmul_int8_panels(rows, m, w, 0..w.panel_count(), &SharedSlice::new(out)) }
}

/// The product of rows quantized by [`QuantizedRows::quantize_for`] for the output columns of
/// the panels `panels` only: each value as in the whole product, so a product split by panels
/// over threads equals the one-thread product bit for bit.
///
/// # Safety
/// Calls running at the same time on the same `out` must have disjoint `panels`.
pub unsafe fn matmul_int8_panels(
    rows: &QuantizedRows,
    m: usize,
    w: &PackedInt8Weights,
    panels: Range<usize>,
    out: &SharedSlice<f32>,
) {
    if m == 0 || w.n == 0 || panels.is_empty() {
        return;
    }
    assert!(
        rows.scales.len() == m && rows.values.len() == m * w.k_padded,
        "rows are not quantized for this product"
    );
    assert!(out.len() >= m * w.n, "out is not m x n");
    assert!(panels.end <= w.panel_count(), "panels past the matrix");
    let pairs = w.k_padded / 2;
    for first_panel in panels.clone().step_by(PANELS_PER_BLOCK) {
        let block = first_panel..(first_panel + PANELS_PER_BLOCK).min(panels.end);
        let mut row = 0;
        while row < m {
            let tile_rows = (m - row).min(TILE_ROWS);
            let x = &rows.values[row * w.k_padded..][..tile_rows * w.k_padded];
            for p in block.clone() {
                let panel = &w.panels[p * w.k_padded * PANEL..][..w.k_padded * PANEL];
                let mut sums = [[0i32; PANEL]; TILE_ROWS];
                tile_kernel(x, w.k_padded, pairs, tile_rows, panel, &mut sums);
                let columns = (w.n - p * PANEL).min(PANEL);
                let scales = &w.scales[p * PANEL..][..columns];
                let bias = &w.bias[p * PANEL..][..columns];
                for (r, sums) in sums.iter().take(tile_rows).enumerate() {
                    let row_scale = rows.scales[row + r];
                    let start = (row + r) * w.n + p * PANEL;
                    // SAFETY: these columns are this call's panels (the caller's promise).
                    let to = unsafe { out.range_mut(start..start + columns) };
                    for (((o, &s), scale), b) in to.iter_mut().zip(sums).zip(scales).zip(bias) {
                        *o = s as f32 * (row_scale * scale) + b;
                    }
                }
            }
            row += tile_rows;
        }
    }
}

/// Integer sums of `rows` (at most [`TILE_ROWS`]) quantized rows (stride `stride`) times one
/// panel of `pairs` row pairs.
#[inline(always)]
fn tile_kernel(
    x: &[i16],
    stride: usize,
    pairs: usize,
    rows: usize,
    panel: &[i16],
    sums: &mut [[i32; PANEL]; TILE_ROWS],
) {
    assert!(
        (1..=TILE_ROWS).contains(&rows)
            && x.len() >= (rows - 1) * stride + 2 * pairs
            && panel.len() == pairs * 2 * PANEL
    );
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        // SAFETY: the assert above bounds every read: row r < rows reads the pairs
        // x[r * stride + 2i..][..2] for i < pairs, and the panel's pairs * 2 * PANEL values.
        unsafe {
            let (x, panel) = (x.as_ptr(), panel.as_ptr());
            match rows {
                4 => simd::tile::<4>(x, stride, pairs, panel, sums),
                3 => simd::tile::<3>(x, stride, pairs, panel, sums),
                2 => simd::tile::<2>(x, stride, pairs, panel, sums),
                _ => simd::tile::<1>(x, stride, pairs, panel, sums),
            }
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (r, out) in sums.iter_mut().take(rows).enumerate() {
        for i in 0..pairs {
            let (a0, a1) = (x[r * stride + 2 * i] as i32, x[r * stride + 2 * i + 1] as i32);
            let w = &panel[i * 2 * PANEL..][..2 * PANEL];
            for (c, o) in out.iter_mut().enumerate() {
                *o += a0 * w[2 * c] as i32 + a1 * w[2 * c + 1] as i32;
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use super::{PANEL, TILE_ROWS};
    use core::arch::wasm32::*;

    /// `R` rows: 2R accumulators of 4 columns each; per pair of k, the panel's two vectors and
    /// one broadcast pair of activations per row. Unrolled by four pairs: constant load
    /// offsets, and the loop's bookkeeping a quarter as often. With R = 4: 8 accumulators, 2
    /// weight vectors, an activation and a product, 12 of the 15 registers V8 gives wasm.
    #[inline(always)]
    pub unsafe fn tile<const R: usize>(
        x: *const i16,
        stride: usize,
        pairs: usize,
        panel: *const i16,
        sums: &mut [[i32; PANEL]; TILE_ROWS],
    ) {
        unsafe {
            let mut lo = [i32x4_splat(0); R];
            let mut hi = [i32x4_splat(0); R];
            macro_rules! step {
                ($w:expr, $i:expr) => {
                    let w_lo = v128_load($w as *const v128);
                    let w_hi = v128_load($w.add(8) as *const v128);
                    for r in 0..R {
                        let a = v128_load32_splat(x.add(r * stride + 2 * $i) as *const u32);
                        lo[r] = i32x4_add(lo[r], i32x4_dot_i16x8(a, w_lo));
                        hi[r] = i32x4_add(hi[r], i32x4_dot_i16x8(a, w_hi));
                    }
                };
            }
            let mut i = 0;
            while i + 4 <= pairs {
                let w = panel.add(i * 2 * PANEL);
                step!(w, i);
                step!(w.add(2 * PANEL), i + 1);
                step!(w.add(4 * PANEL), i + 2);
                step!(w.add(6 * PANEL), i + 3);
                i += 4;
            }
            while i < pairs {
                step!(panel.add(i * 2 * PANEL), i);
                i += 1;
            }
            for r in 0..R {
                v128_store(sums[r].as_mut_ptr() as *mut v128, lo[r]);
                v128_store(sums[r].as_mut_ptr().add(4) as *mut v128, hi[r]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `[k, n]` int8 grid: integers in [-127, 127] times one scale per column, each column
    /// reaching ±127 as an export's do (its scale is the column's largest value / 127).
    fn int8_grid(k: usize, n: usize) -> (Vec<i8>, Vec<f32>, Vec<f32>) {
        let mut q: Vec<i8> = (0..k * n)
            .map(|i| (((i * 7919) % 255) as i32 - 127) as i8)
            .collect();
        for (j, q) in q.iter_mut().take(n).enumerate() {
            *q = if j % 2 == 0 { 127 } else { -127 };
        }
        let scales: Vec<f32> = (0..n).map(|j| 0.01 + j as f32 * 0.003).collect();
        let w = q
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q) * scales[i % n])
            .collect();
        (q, scales, w)
    }

    #[test]
    fn integer_sums_are_exact_and_the_result_is_close_to_the_f32_product() {
        // Odd k (a padded pair), partial tiles and panels, k past the unrolled loop.
        for (m, k, n) in [(1, 3, 5), (7, 16, 8), (13, 37, 21), (30, 64, 96), (5, 1536, 12)] {
            let (q, scales, w) = int8_grid(k, n);
            let bias: Vec<f32> = (0..n).map(|j| j as f32 / 10.0 - 0.3).collect();
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 104_729) % 97) as f32 / 48.0 - 1.0)
                .collect();
            let packed = PackedInt8Weights::from_int8(&q, k, n, &scales, &bias);
            let mut rows = QuantizedRows::default();
            let mut out = vec![f32::NAN; m * n];
            matmul_int8(&x, m, &packed, &mut rows, &mut out);
            let levels = activation_levels(k);
            for i in 0..m {
                let row = &x[i * k..][..k];
                let max = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let xq: Vec<i64> = row
                    .iter()
                    .map(|v| (v * levels / max).round_ties_even() as i64)
                    .collect();
                for j in 0..n {
                    // The integer sum, exactly: the kernel's result is that sum rescaled.
                    let sum: i64 = (0..k).map(|kk| xq[kk] * i64::from(q[kk * n + j])).sum();
                    let expected = sum as f32 * (max / levels * scales[j]) + bias[j];
                    let got = out[i * n + j];
                    assert!(
                        (got - expected).abs() <= 1e-6 * expected.abs().max(1.0),
                        "m={m} k={k} n={n} [{i},{j}]: {got} vs integer {expected}"
                    );
                    // And the f32 product of the same weights, to the activations' rounding.
                    let exact: f32 = (0..k).map(|kk| row[kk] * w[kk * n + j]).sum::<f32>() + bias[j];
                    let bound = k as f32 * max / levels * 127.0 * scales[j];
                    assert!((got - exact).abs() <= bound, "[{i},{j}]: {got} vs f32 {exact}");
                }
            }
        }
    }

    #[test]
    fn sums_of_the_widest_rows_do_not_overflow() {
        // Every activation at its extreme times every weight at 127: the largest sum there is.
        let (m, k, n) = (2, 1536, 8);
        let q = vec![127i8; k * n];
        let x = vec![-3.5f32; m * k];
        let packed = PackedInt8Weights::from_int8(&q, k, n, &vec![1.0 / 127.0; n], &vec![0.0; n]);
        let mut out = vec![0.0; m * n];
        matmul_int8(&x, m, &packed, &mut QuantizedRows::default(), &mut out);
        for v in out {
            assert!((v + 3.5 * k as f32).abs() < 1e-3 * 3.5 * k as f32, "{v}");
        }
    }
}
