//! config.json, tokenizer.json and manifest.json as a downloaded model brings them: each is
//! accepted or refused with an error, never a panic; an accepted config keeps the bounds
//! that protect the loader (positions, sizes, dropout, epsilon).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tkre::checkpoint::manifest::{MODEL_FILES, is_plain_file_name};
use tkre::checkpoint::{EncoderConfig, MAX_PARAMETERS, Manifest, MIN_POSITIONS};
use tkre::text::TextTokenizer;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = EncoderConfig::from_json(text, "config.json") {
            assert!(config.parameter_count() <= MAX_PARAMETERS);
            assert!(config.max_position_embeddings >= MIN_POSITIONS);
            assert!(config.layer_norm_eps > 0.0);
            assert!((0.0..1.0).contains(&config.hidden_dropout_prob));
        }
        if let Ok(manifest) = Manifest::parse(text, "manifest.json") {
            assert!(manifest.files.keys().all(|name| is_plain_file_name(name)));
            assert!(MODEL_FILES.iter().all(|name| manifest.files.contains_key(*name)));
            assert!(manifest.max_length >= MIN_POSITIONS);
        }
    }
    if let Ok(tokenizer) = TextTokenizer::from_bytes(data, "tokenizer.json") {
        let _ = tokenizer.pieces("Marie Curie was born in Warsaw.");
        let _ = tokenizer.max_id();
    }
});
