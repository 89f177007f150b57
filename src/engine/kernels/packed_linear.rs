//! The matrix multiply of the browser's CPU path (the CPU engine, [`crate::engine::cpu`]): the right-hand matrix
//! packed once into panels, a register tile specialised for wasm SIMD128.
//!
//! Why: burn's flex backend multiplies through the gemm crate, which re-packs the weight
//! matrix on every call (5 of a 36 ms FewRel sentence in the browser, bench/profile.js), and
//! whose SIMD128 kernel ran at about 25 GFLOP/s. Here the weights are packed once into
//! 8-column panels, and a 4x8 tile (8 accumulators, 2 weight vectors, 1 broadcast activation
//! and 1 product: 12 of the 15 vector registers V8 gives wasm on x86-64; a 6x8 tile needed 16
//! and spilled, since without fused multiply-add each product takes a register of its own),
//! unrolled four times over k,
//! reads the left-hand rows in place, with any row stride (a head's slice of the fused
//! query/key/value rows). Against gemm in the same build (bench/compare.js, the 6x8 version):
//! FewRel sentences 24 vs 31-33 ms, 128 tokens 97 vs 108 ms; the 4x8 tile's own numbers are in
//! docs/benchmarks.md.
//!
//! The SIMD128 tile is compiled only for wasm with SIMD128; elsewhere a portable loop of the
//! same arithmetic runs, which the tests check against a plain triple loop.

use std::ops::Range;

use super::threads::SharedSlice;

/// Columns per packed panel (two 4-lane vectors).
pub const PANEL: usize = 8;
/// Rows per tile.
pub const TILE_ROWS: usize = 4;

/// A `[k, n]` right-hand matrix in panels of [`PANEL`] columns, each panel `k` rows of `PANEL`
/// values (the last zero-filled), plus the bias (zeros if none) padded the same way.
#[derive(Debug, Clone, Default)]
pub struct PackedWeights {
    pub k: usize,
    pub n: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedWeights {
    /// Packs the `[k, n]` matrix whose element `(row, column)` is `value(row, column)`, reusing
    /// this one's memory (the attention packs a head's keys and values per sequence).
    pub fn repack(&mut self, k: usize, n: usize, bias: Option<&[f32]>, value: impl Fn(usize, usize) -> f32) {
        let panel_count = n.div_ceil(PANEL);
        self.k = k;
        self.n = n;
        self.panels.clear();
        self.panels.resize(panel_count * k * PANEL, 0.0);
        for p in 0..panel_count {
            let columns = (n - p * PANEL).min(PANEL);
            for row in 0..k {
                let to = &mut self.panels[(p * k + row) * PANEL..][..columns];
                for (c, v) in to.iter_mut().enumerate() {
                    *v = value(row, p * PANEL + c);
                }
            }
        }
        self.bias.clear();
        self.bias.resize(panel_count * PANEL, 0.0);
        if let Some(bias) = bias {
            self.bias[..n].copy_from_slice(&bias[..n]);
        }
    }
}

impl PackedWeights {
    /// Panels of [`PANEL`] columns (the last may be partial).
    pub fn panel_count(&self) -> usize {
        self.n.div_ceil(PANEL)
    }
}

/// Packs a row-major `[k, n]` weight (burn's `Linear` layout: input by output features).
pub fn pack(weight: &[f32], k: usize, n: usize, bias: Option<&[f32]>) -> PackedWeights {
    assert_eq!(weight.len(), k * n, "weight is not k x n");
    let mut packed = PackedWeights::default();
    packed.repack(k, n, bias, |row, column| weight[row * n + column]);
    packed
}

/// Panels per column block: a block of the weights (k x 64 values, 98 KB at k = 384, 393 KB at
/// 1536) stays in the L2 cache while every row tile passes over it, and a row tile of the
/// activations (6 x k) stays in L1 across the block's panels. Without this blocking the whole
/// activation matrix streamed once per panel: 128-token inputs ran 15% slower than gemm.
const PANELS_PER_BLOCK: usize = 8;

/// `out[m, n] = x[m, k] · W + bias`, all row-major and contiguous.
pub fn matmul_packed(x: &[f32], m: usize, w: &PackedWeights, out: &mut [f32]) {
    matmul_packed_strided(x, w.k, m, w, out, w.n);
}

/// `out[m, n] = x[m, k] · W + bias` where row `i` of `x` starts at `x[i * x_stride]` and row `i`
/// of `out` at `out[i * out_stride]` (strides at least `k` and `n`): a head's columns of a
/// wider matrix are read and written in place.
pub fn matmul_packed_strided(
    x: &[f32],
    x_stride: usize,
    m: usize,
    w: &PackedWeights,
    out: &mut [f32],
    out_stride: usize,
) {
    let panels = 0..w.panel_count();
    // SAFETY: one call writes all the panels; nothing else holds `out`.
    unsafe { matmul_packed_panels(x, x_stride, m, w, panels, &SharedSlice::new(out), out_stride) }
}

/// [`matmul_packed_strided`] for the output columns of the panels `panels` only (panel `p` is
/// columns `p * PANEL..`): each output value is computed as in the whole product, so a product
/// split by panels over threads equals the one-thread product bit for bit.
///
/// # Safety
/// Calls running at the same time on the same `out` must have disjoint `panels`.
pub unsafe fn matmul_packed_panels(
    x: &[f32],
    x_stride: usize,
    m: usize,
    w: &PackedWeights,
    panels: Range<usize>,
    out: &SharedSlice<f32>,
    out_stride: usize,
) {
    if m == 0 || w.n == 0 || panels.is_empty() {
        return;
    }
    assert!(
        x_stride >= w.k && x.len() >= (m - 1) * x_stride + w.k,
        "x is not m x k"
    );
    assert!(
        out_stride >= w.n && out.len() >= (m - 1) * out_stride + w.n,
        "out is not m x n"
    );
    assert!(panels.end <= w.panel_count(), "panels past the matrix");
    for first_panel in panels.clone().step_by(PANELS_PER_BLOCK) {
        let block = first_panel..(first_panel + PANELS_PER_BLOCK).min(panels.end);
        let mut row = 0;
        while row < m {
            let rows = (m - row).min(TILE_ROWS);
            for p in block.clone() {
                let panel = &w.panels[p * w.k * PANEL..][..w.k * PANEL];
                let bias = &w.bias[p * PANEL..][..PANEL];
                let columns = (w.n - p * PANEL).min(PANEL);
                let mut tile = [[0.0f32; PANEL]; TILE_ROWS];
                tile_kernel(&x[row * x_stride..], x_stride, w.k, rows, panel, bias, &mut tile);
                for (r, values) in tile.iter().take(rows).enumerate() {
                    let start = (row + r) * out_stride + p * PANEL;
                    // SAFETY: these columns are this call's panels (the caller's promise).
                    unsafe { out.range_mut(start..start + columns) }.copy_from_slice(&values[..columns]);
                }
            }
            row += rows;
        }
    }
}

/// One tile: `rows` (at most [`TILE_ROWS`]) rows of `x` (row stride `stride`, `k` values
/// each) times one panel.
#[inline(always)]
fn tile_kernel(
    x: &[f32],
    stride: usize,
    k: usize,
    rows: usize,
    panel: &[f32],
    bias: &[f32],
    tile: &mut [[f32; PANEL]; TILE_ROWS],
) {
    assert!(
        (1..=TILE_ROWS).contains(&rows) && x.len() >= (rows - 1) * stride + k && panel.len() == k * PANEL
    );
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        // SAFETY: the assert above bounds every read: row r < rows reads x[r * stride + kk] for
        // kk < k, and the panel k * PANEL values; the tile is written through a &mut.
        unsafe {
            let (x, panel, bias) = (x.as_ptr(), panel.as_ptr(), bias.as_ptr());
            match rows {
                4 => simd::tile4(x, stride, k, panel, bias, tile),
                3 => simd::tile::<3>(x, stride, k, panel, bias, tile),
                2 => simd::tile::<2>(x, stride, k, panel, bias, tile),
                _ => simd::tile::<1>(x, stride, k, panel, bias, tile),
            }
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (r, out) in tile.iter_mut().take(rows).enumerate() {
        out.copy_from_slice(&bias[..PANEL]);
        for kk in 0..k {
            let a = x[r * stride + kk];
            for (o, w) in out.iter_mut().zip(&panel[kk * PANEL..][..PANEL]) {
                *o += a * w;
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use super::{PANEL, TILE_ROWS};
    use core::arch::wasm32::*;

    /// c + a * b. (wasm's relaxed-SIMD fused multiply-add, tried on the kernel before it was
    /// unrolled, did not change its time, and not every browser has relaxed SIMD.)
    macro_rules! madd {
        ($a:expr, $b:expr, $c:expr) => {
            f32x4_add($c, f32x4_mul($a, $b))
        };
    }

    /// The full tile with every accumulator a named local, so that V8 keeps all 12 values in
    /// registers (the array version of [`tile`] may live on the stack).
    #[inline(always)]
    pub unsafe fn tile4(
        x: *const f32,
        stride: usize,
        k: usize,
        panel: *const f32,
        bias: *const f32,
        tile: &mut [[f32; PANEL]; TILE_ROWS],
    ) {
        unsafe {
            let bias_lo = v128_load(bias as *const v128);
            let bias_hi = v128_load(bias.add(4) as *const v128);
            let (mut l0, mut l1, mut l2, mut l3) = (bias_lo, bias_lo, bias_lo, bias_lo);
            let (mut h0, mut h1, mut h2, mut h3) = (bias_hi, bias_hi, bias_hi, bias_hi);
            let (x0, x1, x2, x3) = (x, x.add(stride), x.add(2 * stride), x.add(3 * stride));
            // One step of k: two panel vectors, one broadcast activation per row. Unrolled by
            // four (k is a multiple of 4 in every BERT layer and a head's width) so that the loads use constant
            // offsets and the loop's own bookkeeping runs a quarter as often.
            macro_rules! step {
                ($w:expr, $kk:expr) => {
                    let w_lo = v128_load($w as *const v128);
                    let w_hi = v128_load($w.add(4) as *const v128);
                    macro_rules! row {
                        ($xr:ident, $l:ident, $h:ident) => {
                            let a = v128_load32_splat($xr.add($kk) as *const u32);
                            $l = madd!(a, w_lo, $l);
                            $h = madd!(a, w_hi, $h);
                        };
                    }
                    row!(x0, l0, h0);
                    row!(x1, l1, h1);
                    row!(x2, l2, h2);
                    row!(x3, l3, h3);
                };
            }
            let mut kk = 0;
            while kk + 4 <= k {
                let w = panel.add(kk * PANEL);
                step!(w, kk);
                step!(w.add(PANEL), kk + 1);
                step!(w.add(2 * PANEL), kk + 2);
                step!(w.add(3 * PANEL), kk + 3);
                kk += 4;
            }
            while kk < k {
                step!(panel.add(kk * PANEL), kk);
                kk += 1;
            }
            for (r, (l, h)) in [(l0, h0), (l1, h1), (l2, h2), (l3, h3)].into_iter().enumerate() {
                v128_store(tile[r].as_mut_ptr() as *mut v128, l);
                v128_store(tile[r].as_mut_ptr().add(4) as *mut v128, h);
            }
        }
    }

    /// `R` rows: 2R accumulators, started at the bias; per step two panel vectors and one
    /// broadcast activation per row.
    #[inline(always)]
    pub unsafe fn tile<const R: usize>(
        x: *const f32,
        stride: usize,
        k: usize,
        panel: *const f32,
        bias: *const f32,
        tile: &mut [[f32; PANEL]; TILE_ROWS],
    ) {
        unsafe {
            let bias_lo = v128_load(bias as *const v128);
            let bias_hi = v128_load(bias.add(4) as *const v128);
            let mut lo = [bias_lo; R];
            let mut hi = [bias_hi; R];
            let mut w = panel;
            for kk in 0..k {
                let w_lo = v128_load(w as *const v128);
                let w_hi = v128_load(w.add(4) as *const v128);
                for r in 0..R {
                    let a = v128_load32_splat(x.add(r * stride + kk) as *const u32);
                    lo[r] = madd!(a, w_lo, lo[r]);
                    hi[r] = madd!(a, w_hi, hi[r]);
                }
                w = w.add(PANEL);
            }
            for r in 0..R {
                v128_store(tile[r].as_mut_ptr() as *mut v128, lo[r]);
                v128_store(tile[r].as_mut_ptr().add(4) as *mut v128, hi[r]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_matmul_equals_a_plain_triple_loop() {
        // Sizes that leave partial tiles and panels (m % 6, n % 8 != 0), with and without bias.
        for (m, k, n, with_bias) in [
            (1, 3, 5, true),
            (7, 16, 8, false),
            (13, 37, 21, true),
            (30, 64, 96, true),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919) % 113) as f32 / 56.0 - 1.0)
                .collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104_729) % 97) as f32 / 48.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..n).map(|j| j as f32 / 10.0 - 0.3).collect();
            let packed = pack(&w, k, n, with_bias.then_some(&b[..]));
            let mut out = vec![f32::NAN; m * n];
            matmul_packed(&x, m, &packed, &mut out);
            for i in 0..m {
                for j in 0..n {
                    let expected: f32 = (0..k).map(|kk| x[i * k + kk] * w[kk * n + j]).sum::<f32>()
                        + if with_bias { b[j] } else { 0.0 };
                    let got = out[i * n + j];
                    assert!(
                        (got - expected).abs() < 1e-4,
                        "m={m} k={k} n={n} [{i},{j}]: {got} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn strided_rows_are_read_and_written_in_place() {
        // A 3-column slice of 10-wide rows times a packed matrix, into columns 4.. of 12-wide
        // rows: what the attention does with one head of the fused query/key/value rows.
        let (m, k, n) = (7, 3, 5);
        let x: Vec<f32> = (0..m * 10).map(|i| (i % 17) as f32 - 8.0).collect();
        let w: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
        let mut packed = PackedWeights::default();
        packed.repack(k, n, None, |r, c| w[r * n + c]);
        let mut out = vec![-7.0f32; m * 12];
        matmul_packed_strided(&x[2..], 10, m, &packed, &mut out[4..], 12);
        for i in 0..m {
            for j in 0..12 {
                let got = out[i * 12 + j];
                if (4..4 + n).contains(&j) {
                    let expected: f32 = (0..k).map(|kk| x[i * 10 + 2 + kk] * w[kk * n + j - 4]).sum();
                    assert!((got - expected).abs() < 1e-5, "[{i},{j}]: {got} vs {expected}");
                } else {
                    assert_eq!(got, -7.0, "[{i},{j}] outside the output columns was written");
                }
            }
        }
    }
}
