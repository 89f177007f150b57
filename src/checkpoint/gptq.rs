//! Error-compensating rounding for the packed export (GPTQ: Frantar et al. 2023, "Accurate
//! Post-Training Quantization for Generative Pre-trained Transformers").
//!
//! Rounding each weight to its nearest grid point minimises the error of the weights; what
//! matters is the error of the layer's outputs on the inputs it will see. GPTQ rounds a
//! row's weights one input column at a time and moves each rounding error onto the columns
//! not yet rounded, in proportion to how those inputs correlate with this one (the inverse of
//! the inputs' Gram matrix `H = XᵀX`, gathered by running the model on calibration
//! sentences). Columns are taken in order of decreasing `H[i][i]` (the paper's "act order").
//! The grid and each row's scale are the uniform packed grid's ([`quantize_rows_to_bits`]):
//! only which grid point each weight takes changes, so readers and kernels are unchanged.

use super::packing::quantize_rows_to_bits;

/// The Gram matrix `XᵀX` of the rows a product has read, in f64.
#[derive(Clone, Debug)]
pub struct InputGram {
    width: usize,
    rows: u64,
    /// `[width, width]`, row-major; only the upper triangle is accumulated.
    sums: Vec<f64>,
}

/// Rows accumulated in f32 before they are added into the f64 sums.
const BLOCK: usize = 64;

impl InputGram {
    pub fn new(width: usize) -> Self {
        Self {
            width,
            rows: 0,
            sums: vec![0.0; width * width],
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows accumulated so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Adds the rows of `x` (`[rows, width]`, row-major).
    pub fn add(&mut self, x: &[f32]) {
        let w = self.width;
        assert_eq!(x.len() % w.max(1), 0, "rows of {w} values");
        // A block transposed, so each sum is a dot product of two contiguous columns.
        let mut columns = vec![0f32; w * BLOCK];
        for block in x.chunks(w * BLOCK) {
            let n = block.len() / w;
            for (r, row) in block.chunks_exact(w).enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    columns[c * BLOCK + r] = v;
                }
            }
            for i in 0..w {
                let a = &columns[i * BLOCK..][..n];
                for j in i..w {
                    let b = &columns[j * BLOCK..][..n];
                    self.sums[i * w + j] += f64::from(dot_f32(a, b));
                }
            }
            self.rows += n as u64;
        }
    }

    /// The mean `XᵀX / rows`, both triangles filled.
    fn mean(&self) -> Vec<f64> {
        let w = self.width;
        let count = self.rows.max(1) as f64;
        let mut h = vec![0.0; w * w];
        for i in 0..w {
            for j in i..w {
                let v = self.sums[i * w + j] / count;
                h[i * w + j] = v;
                h[j * w + i] = v;
            }
        }
        h
    }
}

/// Like [`quantize_rows_to_bits`] (the same scales, the same grid), with each row's rounding
/// chosen to minimise the error of `row · x` over the inputs `gram` summarises rather than of
/// the weights themselves. `values` is `[rows, cols]` as a checkpoint stores a `Linear`'s weight
/// (`cols` = inputs = `gram.width()`). Falls back to plain rounding when the Gram matrix cannot
/// be factorised even after damping (e.g. no rows were gathered).
pub fn quantize_rows_compensated(
    values: &[f32],
    cols: usize,
    bits: u32,
    gram: &InputGram,
) -> (Vec<i8>, Vec<f32>) {
    let (nearest, scales) = quantize_rows_to_bits(values, cols, bits);
    if gram.width() != cols || gram.rows() == 0 {
        return (nearest, scales);
    }
    let Some((order, u)) = inverse_factor(gram) else {
        return (nearest, scales);
    };
    let limit = f64::from((1i32 << (bits - 1)) - 1);
    let mut quantized = vec![0i8; values.len()];
    let mut w = vec![0f64; cols];
    for ((row, out), &scale) in values.chunks(cols).zip(quantized.chunks_mut(cols)).zip(&scales) {
        let scale = f64::from(scale);
        for (k, &column) in order.iter().enumerate() {
            w[k] = f64::from(row[column]);
        }
        for k in 0..cols {
            let q = (w[k] / scale).round().clamp(-limit, limit);
            out[order[k]] = q as i8;
            let error = (w[k] - q * scale) / u[k * cols + k];
            let (rest, factors) = (&mut w[k + 1..], &u[k * cols + k + 1..(k + 1) * cols]);
            for (x, f) in rest.iter_mut().zip(factors) {
                *x -= error * f;
            }
        }
    }
    (quantized, scales)
}

/// The column order (decreasing `H[i][i]`) and the upper Cholesky factor `U` of `H⁻¹` in that
/// order (`UᵀU = H⁻¹`, `[cols, cols]` row-major), `H` the mean Gram matrix damped by 1 % of its
/// mean diagonal (more, up to 100 %, if it is not positive definite).
fn inverse_factor(gram: &InputGram) -> Option<(Vec<usize>, Vec<f64>)> {
    let n = gram.width();
    let mean = gram.mean();
    // An input that was always zero: its weights never matter; a unit diagonal keeps H regular.
    let diagonal: Vec<f64> = (0..n)
        .map(|i| match mean[i * n + i] {
            d if d > 0.0 => d,
            _ => 1.0,
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| diagonal[b].total_cmp(&diagonal[a]));
    let average = diagonal.iter().sum::<f64>() / n as f64;
    for damping in [0.01, 0.1, 1.0] {
        // H in the chosen order, then reversed: the lower factor L of J H J (J reverses) gives
        // H⁻¹ = (J L⁻¹ J)ᵀ (J L⁻¹ J), whose factor U = J L⁻¹ J is upper triangular.
        let mut reversed = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let (a, b) = (order[n - 1 - i], order[n - 1 - j]);
                reversed[i * n + j] = if a == b {
                    diagonal[a] + damping * average
                } else {
                    mean[a * n + b]
                };
            }
        }
        let Some(lower) = cholesky(&reversed, n) else {
            continue;
        };
        let inverse_t = lower_inverse_transposed(&lower, n);
        // U[i][j] = L⁻¹[n-1-i][n-1-j] = inverse_t[n-1-j][n-1-i].
        let mut u = vec![0.0; n * n];
        for i in 0..n {
            for j in i..n {
                u[i * n + j] = inverse_t[(n - 1 - j) * n + (n - 1 - i)];
            }
        }
        return Some((order, u));
    }
    None
}

/// The lower Cholesky factor of the symmetric `a` (`[n, n]`), or `None` if it is not positive
/// definite.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let sum = a[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return None;
                }
                l[i * n + i] = sum.sqrt();
            } else {
                l[i * n + j] = sum / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// `(L⁻¹)ᵀ` of a lower triangular `l`, row-major: row `j` holds column `j` of `L⁻¹`.
fn lower_inverse_transposed(l: &[f64], n: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * n];
    for j in 0..n {
        t[j * n + j] = 1.0 / l[j * n + j];
        for i in j + 1..n {
            // L⁻¹[i][j] = -(Σ_{k=j}^{i-1} L[i][k] L⁻¹[k][j]) / L[i][i]
            let sum = dot(&l[i * n + j..i * n + i], &t[j * n + j..j * n + i]);
            t[j * n + i] = -sum / l[i * n + i];
        }
    }
    t
}

/// A dot product over `LANES` accumulators, so the compiler can vectorise it (8 lanes of f32,
/// 4 of f64: one 256-bit register each).
fn dot_lanes<T, const LANES: usize>(a: &[T], b: &[T]) -> T
where
    T: Copy + Default + std::ops::Add<Output = T> + std::ops::Mul<Output = T> + std::iter::Sum,
{
    let mut sums = [T::default(); LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: T = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(&x, &y)| x * y)
        .sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for k in 0..LANES {
            sums[k] = sums[k] + x[k] * y[k];
        }
    }
    sums.into_iter().sum::<T>() + tail
}

fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<f32, 8>(a, b)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    dot_lanes::<f64, 4>(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random value in [-1, 1).
    fn noise(i: usize) -> f32 {
        let x = (i as u64)
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) as f32 / (1u64 << 31) as f32) - 1.0
    }

    /// Inputs whose columns correlate (each a mix of a few shared factors), as a layer's do.
    fn correlated_inputs(rows: usize, width: usize) -> Vec<f32> {
        (0..rows)
            .flat_map(|r| {
                (0..width).map(move |c| {
                    let shared = noise(r * 7 + c % 3) * 2.0;
                    shared + 0.3 * noise(1_000_000 + r * width + c) + if c == 5 { 4.0 } else { 0.0 }
                })
            })
            .collect()
    }

    fn output_error(weights: &[f32], quantized: &[i8], scales: &[f32], x: &[f32], cols: usize) -> f64 {
        let mut total = 0.0;
        for input in x.chunks(cols) {
            for ((row, q), &s) in weights.chunks(cols).zip(quantized.chunks(cols)).zip(scales) {
                let exact: f64 = row.iter().zip(input).map(|(w, x)| f64::from(w * x)).sum();
                let rounded: f64 = q
                    .iter()
                    .zip(input)
                    .map(|(&q, x)| f64::from(f32::from(q) * s * x))
                    .sum();
                total += (exact - rounded).powi(2);
            }
        }
        total
    }

    #[test]
    fn the_gram_matrix_is_the_sum_of_outer_products() {
        let (rows, width) = (150, 7);
        let x = correlated_inputs(rows, width);
        let mut gram = InputGram::new(width);
        gram.add(&x[..width * 100]);
        gram.add(&x[width * 100..]);
        assert_eq!(gram.rows(), rows as u64);
        let mean = gram.mean();
        for i in 0..width {
            for j in 0..width {
                let expected: f64 = x
                    .chunks(width)
                    .map(|r| f64::from(r[i]) * f64::from(r[j]))
                    .sum::<f64>()
                    / rows as f64;
                assert!((mean[i * width + j] - expected).abs() < 1e-4 * expected.abs().max(1.0));
            }
        }
    }

    #[test]
    fn the_factor_inverts_the_damped_gram_matrix() {
        let width = 9;
        let mut gram = InputGram::new(width);
        gram.add(&correlated_inputs(200, width));
        let (order, u) = inverse_factor(&gram).unwrap();
        let mean = gram.mean();
        let average = (0..width).map(|i| mean[i * width + i]).sum::<f64>() / width as f64;
        // (UᵀU) H = I in the chosen order.
        for i in 0..width {
            for j in 0..width {
                let product: f64 = (0..width)
                    .map(|k| {
                        let utu: f64 = (0..width).map(|m| u[m * width + i] * u[m * width + k]).sum();
                        let (a, b) = (order[k], order[j]);
                        utu * (mean[a * width + b] + if a == b { 0.01 * average } else { 0.0 })
                    })
                    .sum();
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((product - expected).abs() < 1e-8, "({i}, {j}): {product}");
            }
        }
        assert!(
            (0..width).all(|i| (0..i).all(|j| u[i * width + j] == 0.0)),
            "upper"
        );
    }

    #[test]
    fn compensated_rounding_has_less_output_error_on_the_same_grid() {
        let (cols, out, rows) = (24, 16, 400);
        let x = correlated_inputs(rows, cols);
        let weights: Vec<f32> = (0..out * cols).map(|i| 0.2 * noise(7_777 + i)).collect();
        let mut gram = InputGram::new(cols);
        gram.add(&x);
        for bits in [3, 5] {
            let (nearest, scales) = quantize_rows_to_bits(&weights, cols, bits);
            let (compensated, same_scales) = quantize_rows_compensated(&weights, cols, bits, &gram);
            assert_eq!(scales, same_scales, "the grid is the uniform export's");
            let limit = (1i8 << (bits - 1)) - 1;
            assert!(compensated.iter().all(|q| (-limit..=limit).contains(q)));
            assert_ne!(nearest, compensated);
            let (plain, better) = (
                output_error(&weights, &nearest, &scales, &x, cols),
                output_error(&weights, &compensated, &scales, &x, cols),
            );
            assert!(better < 0.7 * plain, "{bits} bits: {better} against {plain}");
        }
    }

    #[test]
    fn without_inputs_it_is_plain_rounding() {
        let weights: Vec<f32> = (0..40).map(noise).collect();
        let gram = InputGram::new(8);
        assert_eq!(
            quantize_rows_compensated(&weights, 8, 5, &gram),
            quantize_rows_to_bits(&weights, 8, 5)
        );
        let zeros = {
            let mut gram = InputGram::new(8);
            gram.add(&[0.0; 16]);
            gram
        };
        // All inputs zero: H is the damped identity and compensation changes nothing.
        assert_eq!(
            quantize_rows_compensated(&weights, 8, 5, &zeros),
            quantize_rows_to_bits(&weights, 8, 5)
        );
    }
}
