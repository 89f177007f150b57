//! Linear layers on the browser's CPU: a matrix multiply specialised for the encoder's shapes,
//! with each weight matrix packed once.
//!
//! Why: burn's flex backend multiplies through the gemm crate, which re-packs the weight
//! matrix on every call (5 of a 36 ms FewRel sentence in the browser, bench/profile.js), and
//! whose SIMD128 kernel ran at about 25 GFLOP/s. Here the weights are packed once into
//! 8-column panels, and a 6x8 tile (12 accumulators, 2 weight vectors, 1 broadcast
//! activation: the 15 vector registers V8 gives wasm on x86-64), unrolled four times over k,
//! reads the activations in place. Measured with bench/compare.js against gemm in the same
//! build: FewRel sentences 24 vs 31-33 ms, 128 tokens 97 vs 108 ms, batches 10-15% faster.
//!
//! Only in wasm with SIMD128, on a plain CPU device: natively burn's gemm has AVX/FMA kernels
//! and threads; on WebGPU and for training burn's ops run. [`pack`] and [`matmul_packed`]
//! have a portable version, which the tests check against a plain triple loop.

use burn::nn::Linear;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use burn::prelude::*;

/// Columns per packed panel (two 4-lane vectors).
pub const PANEL: usize = 8;
/// Rows per tile.
pub const TILE_ROWS: usize = 6;

/// A `[k, n]` weight matrix in panels of [`PANEL`] columns, each panel `k` rows of `PANEL`
/// values (the last zero-filled), plus the bias (zeros if none) padded the same way.
#[derive(Debug)]
pub struct PackedWeights {
    pub k: usize,
    pub n: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
}

/// Packs a row-major `[k, n]` weight (burn's `Linear` layout: input by output features).
pub fn pack(weight: &[f32], k: usize, n: usize, bias: Option<&[f32]>) -> PackedWeights {
    let panel_count = n.div_ceil(PANEL);
    let mut panels = vec![0.0f32; panel_count * k * PANEL];
    for p in 0..panel_count {
        let columns = (n - p * PANEL).min(PANEL);
        for row in 0..k {
            let from = &weight[row * n + p * PANEL..][..columns];
            panels[(p * k + row) * PANEL..][..columns].copy_from_slice(from);
        }
    }
    let mut padded_bias = vec![0.0f32; panel_count * PANEL];
    if let Some(bias) = bias {
        padded_bias[..n].copy_from_slice(bias);
    }
    PackedWeights {
        k,
        n,
        panels,
        bias: padded_bias,
    }
}

/// Panels per column block: a block of the weights (k x 64 values, 98 KB at k = 384, 393 KB at
/// 1536) stays in the L2 cache while every row tile passes over it, and a row tile of the
/// activations (6 x k) stays in L1 across the block's panels. Without this blocking the whole
/// activation matrix streamed once per panel: 128-token inputs ran 15% slower than gemm.
const PANELS_PER_BLOCK: usize = 8;

/// `out[m, n] = x[m, k] · W + bias`, all row-major.
pub fn matmul_packed(x: &[f32], m: usize, w: &PackedWeights, out: &mut [f32]) {
    assert_eq!(x.len(), m * w.k, "x is not m x k");
    assert_eq!(out.len(), m * w.n, "out is not m x n");
    let panel_count = w.n.div_ceil(PANEL);
    for first_panel in (0..panel_count).step_by(PANELS_PER_BLOCK) {
        let panels = first_panel..(first_panel + PANELS_PER_BLOCK).min(panel_count);
        let mut row = 0;
        while row < m {
            let rows = (m - row).min(TILE_ROWS);
            for p in panels.clone() {
                let panel = &w.panels[p * w.k * PANEL..][..w.k * PANEL];
                let bias = &w.bias[p * PANEL..][..PANEL];
                let columns = (w.n - p * PANEL).min(PANEL);
                let mut tile = [[0.0f32; PANEL]; TILE_ROWS];
                tile_kernel(&x[row * w.k..], w.k, rows, panel, bias, &mut tile);
                for (r, values) in tile.iter().take(rows).enumerate() {
                    out[(row + r) * w.n + p * PANEL..][..columns].copy_from_slice(&values[..columns]);
                }
            }
            row += rows;
        }
    }
}

/// One tile: `rows` (at most [`TILE_ROWS`]) rows of `x` (row stride `k`) times one panel.
#[inline(always)]
fn tile_kernel(
    x: &[f32],
    k: usize,
    rows: usize,
    panel: &[f32],
    bias: &[f32],
    tile: &mut [[f32; PANEL]; TILE_ROWS],
) {
    assert!(rows <= TILE_ROWS && x.len() >= (rows - 1) * k + k && panel.len() == k * PANEL);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        // SAFETY: the assert above bounds every read: row r < rows reads x[r * k + kk] for
        // kk < k, and the panel k * PANEL values; the tile is written through a &mut.
        unsafe {
            match rows {
                6 => simd::tile6(x.as_ptr(), k, panel.as_ptr(), bias.as_ptr(), tile),
                5 => simd::tile::<5>(x.as_ptr(), k, panel.as_ptr(), bias.as_ptr(), tile),
                4 => simd::tile::<4>(x.as_ptr(), k, panel.as_ptr(), bias.as_ptr(), tile),
                3 => simd::tile::<3>(x.as_ptr(), k, panel.as_ptr(), bias.as_ptr(), tile),
                2 => simd::tile::<2>(x.as_ptr(), k, panel.as_ptr(), bias.as_ptr(), tile),
                _ => simd::tile::<1>(x.as_ptr(), k, panel.as_ptr(), bias.as_ptr(), tile),
            }
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (r, out) in tile.iter_mut().take(rows).enumerate() {
        out.copy_from_slice(&bias[..PANEL]);
        for kk in 0..k {
            let a = x[r * k + kk];
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

    /// The full tile with every accumulator a named local, so that V8 keeps all 15 values in
    /// registers (the array version of [`tile`] may live on the stack).
    #[inline(always)]
    pub unsafe fn tile6(
        x: *const f32,
        k: usize,
        panel: *const f32,
        bias: *const f32,
        tile: &mut [[f32; PANEL]; TILE_ROWS],
    ) {
        unsafe {
            let bias_lo = v128_load(bias as *const v128);
            let bias_hi = v128_load(bias.add(4) as *const v128);
            let (mut l0, mut l1, mut l2, mut l3, mut l4, mut l5) =
                (bias_lo, bias_lo, bias_lo, bias_lo, bias_lo, bias_lo);
            let (mut h0, mut h1, mut h2, mut h3, mut h4, mut h5) =
                (bias_hi, bias_hi, bias_hi, bias_hi, bias_hi, bias_hi);
            let (x0, x1, x2, x3, x4, x5) = (
                x,
                x.add(k),
                x.add(2 * k),
                x.add(3 * k),
                x.add(4 * k),
                x.add(5 * k),
            );
            // One step of k: two panel vectors, one broadcast activation per row. Unrolled by
            // four (k is a multiple of 4 in every BERT layer) so that the loads use constant
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
                    row!(x4, l4, h4);
                    row!(x5, l5, h5);
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
            for (r, (l, h)) in [(l0, h0), (l1, h1), (l2, h2), (l3, h3), (l4, h4), (l5, h5)]
                .into_iter()
                .enumerate()
            {
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
                    let a = v128_load32_splat(x.add(r * k + kk) as *const u32);
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

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod cache {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    use burn::module::ParamId;

    use super::PackedWeights;

    thread_local! {
        /// Packed weights by parameter id. Filled on a layer's first CPU forward; the browser
        /// never trains, so a parameter's values do not change under its id.
        pub static PACKED: RefCell<HashMap<ParamId, Rc<PackedWeights>>> = RefCell::new(HashMap::new());
    }
}

/// Drops every packed weight (the browser package calls it when an extractor is freed; the
/// next CPU forward of a live model packs its weights again).
pub fn clear_packed_weights() {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    cache::PACKED.with(|packed| packed.borrow_mut().clear());
}

/// `layer.forward(x)`, through [`matmul_packed`] in the browser's CPU backend.
pub fn linear<const D: usize>(layer: &Linear, x: burn::tensor::Tensor<D>) -> burn::tensor::Tensor<D> {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if let Some(y) = packed_forward(layer, &x) {
        return y;
    }
    layer.forward(x)
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn packed_forward<const D: usize>(layer: &Linear, x: &Tensor<D>) -> Option<Tensor<D>> {
    use std::rc::Rc;

    let device = x.device();
    if !super::activation::is_plain_cpu(&device) || x.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    let [k, n] = layer.weight.dims();
    let dims = x.dims();
    if dims[D - 1] != k {
        return None; // let burn report the shape error
    }
    let m = dims[..D - 1].iter().product::<usize>();
    let weights = cache::PACKED.with(|packed| packed.borrow().get(&layer.weight.id).cloned());
    let weights = match weights {
        Some(w) => w,
        None => {
            let weight = layer.weight.val().into_data().try_into_vec::<f32>().ok()?;
            let bias = match &layer.bias {
                Some(b) => Some(b.val().into_data().try_into_vec::<f32>().ok()?),
                None => None,
            };
            let w = Rc::new(pack(&weight, k, n, bias.as_deref()));
            cache::PACKED.with(|packed| packed.borrow_mut().insert(layer.weight.id, w.clone()));
            w
        }
    };
    let values = x.clone().into_data().try_into_vec::<f32>().ok()?;
    if values.len() != m * k {
        return None;
    }
    let mut out = vec![0.0f32; m * n];
    matmul_packed(&values, m, &weights, &mut out);
    let mut out_dims = dims;
    out_dims[D - 1] = n;
    Some(Tensor::from_data(TensorData::new(out, out_dims), &device))
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
}
