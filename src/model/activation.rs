//! The encoder's two elementwise-heavy functions, GELU and the attention softmax, with a fast
//! path for plain CPU tensors.
//!
//! burn's CPU backends compute them one element at a time through libm (`erf`, in f64 on
//! ndarray; `expf`, a software routine in wasm): GELU cost about 5 ms of a 38 ms FewRel
//! sentence in the browser and the softmax's `expf` 33 ms of a 170 ms 128-token one
//! (docs/benchmarks.md). On a plain (not autodiff) CPU device this module instead runs the CPU
//! engine's kernels (`crate::engine::kernels::activation`) over the flat f32 slice. Other devices (WebGPU, CUDA, and every autodiff device, which needs the
//! ops' gradients) keep burn's own ops.

use burn::prelude::*;
use burn::tensor::activation;

use crate::engine::kernels::activation::{gelu_in_place, softmax_in_place};

/// `x * Φ(x)` with the exact normal CDF, as BERT's `"gelu"` (not the tanh approximation).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !is_plain_cpu(&device) || x.dtype() != burn::tensor::DType::F32 {
        return activation::gelu(x);
    }
    let shape = x.shape();
    match x.clone().into_data().try_into_vec::<f32>() {
        Ok(mut values) => {
            gelu_in_place(&mut values);
            Tensor::from_data(TensorData::new(values, shape), &device)
        }
        Err(_) => activation::gelu(x),
    }
}

/// Softmax over the last dimension (the attention scores' keys).
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let shape = x.shape();
    let width = x.dims()[D - 1];
    if !is_plain_cpu(&device) || x.dtype() != burn::tensor::DType::F32 || width == 0 {
        return activation::softmax(x, D - 1);
    }
    match x.clone().into_data().try_into_vec::<f32>() {
        Ok(mut values) => {
            for row in values.chunks_exact_mut(width) {
                softmax_in_place(row);
            }
            Tensor::from_data(TensorData::new(values, shape), &device)
        }
        Err(_) => activation::softmax(x, D - 1),
    }
}

#[allow(deprecated)] // burn marks ndarray deprecated in favour of flex
pub(crate) fn is_plain_cpu(device: &Device) -> bool {
    if device.is_autodiff() {
        return false;
    }
    #[cfg(feature = "burn")]
    if *device == Device::flex() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    if *device == Device::ndarray() {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_equals_burns_gelu() {
        let device = Device::default();
        let values: Vec<f32> = (0..4096).map(|i| (i as f32 - 2048.0) / 256.0).collect();
        let x = Tensor::<2>::from_data(TensorData::new(values, [64, 64]), &device);
        let ours = gelu(x.clone()).into_data().try_into_vec::<f32>().unwrap();
        let theirs = activation::gelu(x).into_data().try_into_vec::<f32>().unwrap();
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 2e-6, "gelu off by {worst}");
    }

    #[test]
    fn fast_softmax_equals_burns_softmax() {
        let device = Device::default();
        // Rows of 1, 7, 33 keys with a masked (-1e4) key, as the attention scores have.
        for width in [1usize, 7, 33] {
            let values: Vec<f32> = (0..6 * width)
                .map(|i| {
                    if i % width == width - 1 && width > 1 {
                        -1.0e4
                    } else {
                        ((i * 37) % 23) as f32 / 3.0 - 4.0
                    }
                })
                .collect();
            let x = Tensor::<2>::from_data(TensorData::new(values, [6, width]), &device);
            let ours = softmax_last(x.clone()).into_data().try_into_vec::<f32>().unwrap();
            let theirs = activation::softmax(x, 1)
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-6, "width {width}: softmax off by {worst}");
        }
    }
}
