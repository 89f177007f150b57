//! The numeric kernels under the fused engines: nothing here knows about BERT.
//! - [`packed_linear`]: f32 `x · W + b` with `W` packed once into panels (SIMD128 tile in wasm),
//! - [`quantized_linear`]: the same with int8 weights, multiplied in integers,
//! - [`activation`]: GELU (`erf`) and softmax (`exp`) over slices,
//! - [`threads`]: the pool that splits a product over threads (Web Workers in the browser),
//! - `shaders/`: the WebGPU engine's WGSL (linear, attention, layer norm, embeddings).

pub mod activation;
pub mod packed_linear;
pub mod quantized_linear;
pub mod threads;
