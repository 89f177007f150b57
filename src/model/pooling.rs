//! Reading vectors off the encoder's hidden states.

use burn::prelude::*;

/// Mean of the hidden states over real (unpadded) tokens, L2-normalised: the
/// sentence-transformers sentence embedding. `hidden`: `[batch, seq, h]`,
/// `attention_mask`: `[batch, seq]` -> `[batch, h]`.
pub fn mean_pool_normalized(hidden: Tensor<3>, attention_mask: Tensor<2>) -> Tensor<2> {
    let [b, seq, _] = hidden.dims();
    let mask = attention_mask.reshape([b, seq, 1]);
    let summed = (hidden * mask.clone()).sum_dim(1).squeeze_dim::<2>(1);
    let counts = mask.sum_dim(1).squeeze_dim::<2>(1).clamp_min(1e-9);
    l2_normalize(summed / counts)
}

/// Row-wise L2 normalisation of `[rows, dim]`; zero rows stay zero.
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
