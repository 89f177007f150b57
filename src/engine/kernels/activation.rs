//! The elementwise kernels of the CPU engine (and of the burn model's CPU fast path): GELU
//! with a polynomial `erf`, and the attention softmax with a polynomial `exp`, both branch-free
//! so that LLVM vectorises them (SIMD128 in wasm, SSE/AVX natively). `shaders/linear.wgsl`
//! uses the same `erf` polynomial, so every engine computes the same GELU.
//!
//! Why not libm: its `erf` (f64 on ndarray) and `expf` (a software routine in wasm) run one
//! element at a time; GELU cost about 5 ms of a 38 ms FewRel sentence in the browser and the
//! softmax's `expf` 33 ms of a 170 ms 128-token one (docs/benchmarks.md).

/// Softmax of one row, in place (max subtracted first, so no exp overflows).
pub fn softmax_in_place(row: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    simd::softmax_in_place(row);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    portable_softmax_in_place(row);
}

#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), allow(dead_code))]
fn portable_softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let inverse = 1.0 / sum(row);
    for v in row.iter_mut() {
        *v *= inverse;
    }
}

/// Sum with eight running partial sums (one float accumulator would keep LLVM from vectorising).
pub fn sum(values: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (s, v) in sums.iter_mut().zip(chunk) {
            *s += v;
        }
    }
    sums.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// e^x in single precision, branch-free so that loops over it vectorise: Cephes' `expf`
/// (x = n ln 2 + r with |r| <= ln 2 / 2, e^r by a degree-7 polynomial, 2^n through the
/// exponent bits). Inputs below -87.3 give about 1e-38 instead of 0 (softmax weights of
/// masked keys: negligible next to the row's sum of at least 1).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    // ln 2 in two parts (Cody-Waite), so that r keeps its low bits.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4 * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * (r * r) + r + 1.0;
    e_r * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// The softmax written out in SIMD128: LLVM left the loops above scalar in wasm (73 of 539 ms
/// of a 512-token sentence, bench/profile.js). Same arithmetic as [`exp`], four lanes at once.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    #[inline(always)]
    fn exp4(x: v128) -> v128 {
        let splat = f32x4_splat;
        let x = f32x4_min(f32x4_max(x, splat(-87.3)), splat(88.7));
        let n = f32x4_nearest(f32x4_mul(x, splat(std::f32::consts::LOG2_E)));
        let r = f32x4_sub(
            f32x4_sub(x, f32x4_mul(n, splat(0.693_359_4))),
            f32x4_mul(n, splat(-2.121_944_4e-4)),
        );
        let mut p = f32x4_add(f32x4_mul(splat(1.987_569_1e-4), r), splat(1.398_199_9e-3));
        p = f32x4_add(f32x4_mul(p, r), splat(8.333_452e-3));
        p = f32x4_add(f32x4_mul(p, r), splat(4.166_579_6e-2));
        p = f32x4_add(f32x4_mul(p, r), splat(1.666_666_5e-1));
        p = f32x4_add(f32x4_mul(p, r), splat(0.5));
        let e_r = f32x4_add(f32x4_add(f32x4_mul(p, f32x4_mul(r, r)), r), splat(1.0));
        let scale = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
        f32x4_mul(e_r, scale)
    }

    fn lanes(v: v128) -> [f32; 4] {
        [
            f32x4_extract_lane::<0>(v),
            f32x4_extract_lane::<1>(v),
            f32x4_extract_lane::<2>(v),
            f32x4_extract_lane::<3>(v),
        ]
    }

    pub fn softmax_in_place(row: &mut [f32]) {
        let (body, tail) = row.split_at_mut(row.len() / 4 * 4);
        let ptr = body.as_mut_ptr();
        let quads = body.len() / 4;
        // SAFETY: every access is to ptr + 4i .. ptr + 4i + 4 with i < quads, inside `body`.
        unsafe {
            let mut maxes = f32x4_splat(f32::NEG_INFINITY);
            for i in 0..quads {
                maxes = f32x4_max(maxes, v128_load(ptr.add(4 * i) as *const v128));
            }
            let max = lanes(maxes)
                .into_iter()
                .chain(tail.iter().copied())
                .fold(f32::NEG_INFINITY, f32::max);
            let max_v = f32x4_splat(max);
            let mut sums = f32x4_splat(0.0);
            for i in 0..quads {
                let e = exp4(f32x4_sub(v128_load(ptr.add(4 * i) as *const v128), max_v));
                v128_store(ptr.add(4 * i) as *mut v128, e);
                sums = f32x4_add(sums, e);
            }
            let mut sum: f32 = lanes(sums).iter().sum();
            for v in tail.iter_mut() {
                *v = super::exp(*v - max);
                sum += *v;
            }
            let inverse = 1.0 / sum;
            let inverse_v = f32x4_splat(inverse);
            for i in 0..quads {
                let p = ptr.add(4 * i) as *mut v128;
                v128_store(p, f32x4_mul(v128_load(p), inverse_v));
            }
            for v in tail.iter_mut() {
                *v *= inverse;
            }
        }
    }
}

/// GELU of each value, in place.
pub fn gelu_in_place(values: &mut [f32]) {
    for v in values {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf in single precision: odd rational polynomial on [-4, 4] (erf is ±1 in f32 beyond it),
/// the approximation of Eigen's `generic_fast_erf_float` and XLA's f32 erf; within a few ulp
/// of the true value (tested against libm's double-precision erf below).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_double_precision_libm() {
        let mut worst = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let exact = libm_erf(x as f64);
            worst = worst.max((erf(x) as f64 - exact).abs());
        }
        assert!(worst < 5e-7, "erf off by {worst}");
        assert!((erf(10.0) - 1.0).abs() < 2e-7 && (erf(-10.0) + 1.0).abs() < 2e-7);
        assert_eq!(erf(0.0), 0.0);
    }

    #[test]
    fn exp_matches_double_precision() {
        let mut worst = 0.0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 * 1e-3;
            let exact = (x as f64).exp();
            worst = worst.max(((exp(x) as f64) - exact).abs() / exact);
        }
        assert!(worst < 3e-7, "exp relative error {worst}");
        assert!(exp(-1.0e4) < 1e-37 && exp(-1.0e4) >= 0.0);
    }

    /// The reference: the C library's double-precision erf.
    fn libm_erf(x: f64) -> f64 {
        unsafe extern "C" {
            fn erf(x: f64) -> f64;
        }
        // SAFETY: erf is a pure C library function (libm, linked by std on every native target).
        unsafe { erf(x) }
    }
}
