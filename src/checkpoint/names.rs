//! Tensor names: the checkpoint's (Hugging Face `BertModel` / `BertForMaskedLM`) and the burn
//! module's, which differ only mechanically:
//! - an optional `bert.` prefix (BertForMaskedLM / BertForPreTraining checkpoints),
//! - `LayerNorm` -> `layer_norm` and `attention.self` -> `attention.self_attention` (neither is
//!   a valid Rust field name); burn-store's PyTorch adapter maps LayerNorm's `weight`/`bias` to
//!   `gamma`/`beta` and transposes `Linear` weights.
//!
//! One table, [`CHECKPOINT_TO_MODULE`], serves loading (left to right) and saving (right to
//! left), so the two cannot drift apart.

/// The prefix of the encoder's tensors in BertForMaskedLM / BertForPreTraining checkpoints (a
/// regex); sentence-transformers checkpoints have none.
pub const ENCODER_PREFIX: &str = r"^bert\.";

/// The prefix of the masked-language-model head's tensors (`cls.predictions.*`).
pub const MLM_HEAD_PREFIX: &str = r"^cls\.";

/// `(checkpoint pattern, module pattern)` pairs, as regexes and their replacements.
pub const CHECKPOINT_TO_MODULE: &[(&str, &str)] = &[
    (r"\.LayerNorm\.", ".layer_norm."),
    (r"\.attention\.self\.", ".attention.self_attention."),
];

/// The same renames, module to checkpoint, for saving.
pub const MODULE_TO_CHECKPOINT: &[(&str, &str)] = &[
    (r"\.layer_norm\.", ".LayerNorm."),
    (r"\.attention\.self_attention\.", ".attention.self."),
];

/// An int8 tensor `NAME` (shape `[rows, cols]`, PyTorch layout) is stored with an f32 tensor
/// `NAME_scale` of shape `[rows]`: value = int8 x scale of its row (symmetric, per output
/// channel for `Linear` weights, per token for embeddings).
pub const INT8_SCALE_SUFFIX: &str = "_scale";

/// A checkpoint tensor's name without the `bert.` prefix: how the engines and the exporter name
/// the encoder's tensors (`embeddings.word_embeddings.weight`, `encoder.layer.0...`).
pub fn encoder_name(name: &str) -> &str {
    name.strip_prefix("bert.").unwrap_or(name)
}

/// Whether a tensor (named without prefix) belongs to the encoder and is used for inference:
/// the pooler, the pre-training heads and the `position_ids` buffer are not.
pub fn is_encoder_tensor(bare: &str) -> bool {
    (bare.starts_with("embeddings.") || bare.starts_with("encoder.")) && !bare.ends_with("position_ids")
}

/// The checkpoint names of a layer norm's scale: `weight` (current) or `gamma` (older BERT
/// checkpoints); its shift is `bias` or `beta`.
pub fn layer_norm_names(prefix: &str) -> ([String; 2], [String; 2]) {
    (
        [format!("{prefix}.weight"), format!("{prefix}.gamma")],
        [format!("{prefix}.bias"), format!("{prefix}.beta")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_save_table_undoes_the_load_table() {
        assert_eq!(CHECKPOINT_TO_MODULE.len(), MODULE_TO_CHECKPOINT.len());
        let unescape = |p: &str| p.replace('\\', "");
        for ((from, to), (back_from, back_to)) in CHECKPOINT_TO_MODULE.iter().zip(MODULE_TO_CHECKPOINT) {
            assert_eq!(unescape(from), *back_to);
            assert_eq!(unescape(back_from), *to);
        }
        assert_eq!(
            encoder_name("bert.encoder.layer.0.output.dense.weight"),
            "encoder.layer.0.output.dense.weight"
        );
        assert!(is_encoder_tensor("embeddings.word_embeddings.weight"));
        assert!(!is_encoder_tensor("embeddings.position_ids"));
        assert!(!is_encoder_tensor("pooler.dense.weight"));
    }
}
