//! Reading vectors off the encoder's hidden states, as tensors (training reads them this way;
//! inference pools on the CPU in `crate::relation_encoder`).

use burn::prelude::*;

/// Mean of each sequence's hidden states over its real (unpadded) tokens: the
/// sentence-transformers sentence embedding before normalisation, and what relation text is
/// embedded as. `hidden`: `[batch, seq, h]`, `attention_mask`: `[batch, seq]` -> `[batch, h]`.
pub fn mean_pool(hidden: Tensor<3>, attention_mask: &Tensor<2>) -> Tensor<2> {
    let [b, seq, h] = hidden.dims();
    let mask = attention_mask.clone().reshape([b, seq, 1]);
    let counts = attention_mask.clone().sum_dim(1).clamp_min(1.0);
    (hidden * mask).sum_dim(1).reshape([b, h]) / counts
}

/// Row-wise L2 normalisation of `[rows, dim]` (as torch's `F.normalize`, with its 1e-12
/// floor); zero rows stay zero.
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
