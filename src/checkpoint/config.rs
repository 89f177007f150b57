//! The encoder's hyper-parameters, read from a Hugging Face BERT `config.json`.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TkreError};

/// Hyper-parameters of a BERT-family encoder. Field names follow Hugging Face's `config.json`
/// so a checkpoint's file deserialises as it is; fields this project does not use are kept in
/// `extra` and written back unchanged when a checkpoint is saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_hidden_act() -> String {
    "gelu".into()
}
fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_dropout() -> f64 {
    0.1
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}

/// The fewest positions an instance needs: [CLS], four entity markers, one piece per entity
/// and [SEP], with one to spare.
pub const MIN_POSITIONS: usize = 8;

/// The most parameters a config may describe (BERT-large has 0.34 billion).
pub const MAX_PARAMETERS: u64 = 2_000_000_000;

impl EncoderConfig {
    /// Parses and validates a `config.json`; `origin` names the file in error messages.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(text).map_err(|e| TkreError::json(origin, e))?;
        config
            .validate()
            .map_err(|msg| TkreError::Model(format!("{origin}: {msg}")))?;
        Ok(config)
    }

    /// A small configuration with the same shape rules as a real BERT, for tests and
    /// tiny-model experiments.
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            hidden_act: default_hidden_act(),
            max_position_embeddings: 128,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            position_embedding_type: default_position_embedding_type(),
            extra: Default::default(),
        }
    }

    /// Checks that this configuration describes an encoder this implementation can run.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let nonzero = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (name, value) in nonzero {
            if value == 0 {
                return Err(format!("`{name}` must be greater than 0"));
            }
        }
        // Bounds far above any encoder that runs in a browser: a config asking for more is a
        // mistake or an attack, and is refused before anything is allocated.
        let bounded = [
            ("vocab_size", self.vocab_size, 1 << 21),
            ("hidden_size", self.hidden_size, 1 << 14),
            ("num_hidden_layers", self.num_hidden_layers, 256),
            ("num_attention_heads", self.num_attention_heads, 1 << 10),
            ("intermediate_size", self.intermediate_size, 1 << 16),
            ("max_position_embeddings", self.max_position_embeddings, 1 << 16),
            ("type_vocab_size", self.type_vocab_size, 1 << 10),
        ];
        for (name, value, limit) in bounded {
            if value > limit {
                return Err(format!("`{name}` is {value}; at most {limit} is supported"));
            }
        }
        let parameters = self.parameter_count();
        if parameters > MAX_PARAMETERS {
            return Err(format!(
                "these sizes make {parameters} parameters; at most {MAX_PARAMETERS} are supported"
            ));
        }
        if self.max_position_embeddings < MIN_POSITIONS {
            return Err(format!(
                "`max_position_embeddings` is {}; at least {MIN_POSITIONS} is needed ([CLS], four entity markers, \
                 the entities and [SEP])",
                self.max_position_embeddings
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            ("attention_probs_dropout_prob", self.attention_probs_dropout_prob),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!(
                    "`{name}` is {p}; a dropout probability must be in [0, 1)"
                ));
            }
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return Err(format!(
                "`layer_norm_eps` is {}; it must be a small positive number such as 1e-12",
                self.layer_norm_eps
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "`hidden_size` ({}) must be divisible by `num_attention_heads` ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_new" | "gelu_python") {
            return Err(format!(
                "`hidden_act` is {:?}; this encoder implements GELU only (\"gelu\")",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "`position_embedding_type` is {:?}; only \"absolute\" is supported",
                self.position_embedding_type
            ));
        }
        Ok(())
    }

    /// Parameters of an encoder of these sizes (embeddings, layers, pooler), saturating.
    pub fn parameter_count(&self) -> u64 {
        let (v, h, i, p, t, l) = (
            self.vocab_size as u64,
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.max_position_embeddings as u64,
            self.type_vocab_size as u64,
            self.num_hidden_layers as u64,
        );
        let embeddings = (v.saturating_add(p).saturating_add(t)).saturating_mul(h);
        let layer = (4 * h * h + 2 * h * i).saturating_add(9 * h + i);
        embeddings
            .saturating_add(l.saturating_mul(layer))
            .saturating_add(h * h)
    }

    /// Size of one attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
