//! Pre-training settings: a TOML or JSON file, overridden by command-line flags. Defaults are
//! the paper's code's (lr 2e-5, batch 16, 5 epochs per stage, max length 128, AdamW with
//! weight decay 0.01, gradient norm clipped at 1.0), plus a linear warm-up over 6 % of the
//! steps (the paper's code uses none; a freshly initialised MLM head makes the first steps'
//! gradients large, and warm-up keeps them from disturbing the encoder).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::masking::MaskProbabilities;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Stage 1: masked span language modelling.
    Mslm,
    /// Stage 2: span-level contrastive learning together with MSLM.
    Scl,
    /// Distillation (`tkre distill`): a student with a subset of the starting checkpoint's
    /// layers learns the teacher's relation representations and hidden states.
    Distill,
    /// Relation-aware training for unseen relations: a supervised contrastive loss over the
    /// classifier's own relation representation (other relations' instances as negatives),
    /// alignment of each instance with its relation's text, entity mentions blanked; MSLM
    /// optional. Batches hold several instances of each of several relations.
    Relation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    pub stage: Stage,
    /// Checkpoint to start from (BERT layout; an MLM head in it is used when present).
    /// Default: the base model.
    pub init: Option<PathBuf>,
    /// Corpus files (see `corpus.rs` for the record forms).
    pub corpus: Vec<PathBuf>,
    /// Stage 2's relation schema (one anchor each). Default: every relation in the corpus.
    /// Records with a relation outside it are reported and skipped.
    pub relations: Option<Vec<String>>,
    pub epochs: usize,
    pub batch_size: usize,
    pub max_length: usize,
    pub learning_rate: f64,
    /// Fraction of the steps spent warming the learning rate up linearly from 0; it then
    /// decays linearly to 0 at the last step.
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clipping (0 disables).
    pub max_grad_norm: f64,
    pub mslm_weight: f64,
    pub scl_weight: f64,
    pub temperature: f64,
    pub mask: MaskProbabilities,
    /// Seeds data order, masking, negative spans, dropout and new heads.
    pub seed: u64,
    /// Cap on the number of steps (the schedule spans these); default: all epochs.
    pub max_steps: Option<usize>,
    pub checkpoint_every: usize,
    /// Checkpoints kept on disk (the newest ones).
    pub keep_checkpoints: usize,
    /// Compute device: cpu (flex), ndarray, wgpu[:N], cuda[:N] (the last two need the cargo
    /// features); a comma-separated list trains data-parallel over those devices.
    pub device: String,
    /// Distillation: the teacher checkpoint (same tokenizer and hidden size as the student).
    pub teacher: Option<PathBuf>,
    /// Distillation: which layers of the starting checkpoint the student keeps (0-based, in
    /// order). Default: every other layer ending with the last (1, 3, 5 of 6).
    pub student_layers: Option<Vec<usize>>,
    /// Distillation: weight of the relation-representation loss (1 - cosine between the
    /// student's and the teacher's representation parts, mean over instances and parts).
    pub distill_weight: f64,
    /// Distillation: weight of the hidden-state loss (mean squared difference of the last
    /// hidden states over real tokens, divided by the teacher's mean squared state).
    pub hidden_weight: f64,
    /// Relation stage: weight of the supervised contrastive loss.
    pub contrastive_weight: f64,
    /// Relation stage: weight of the instance-to-relation-text alignment (needs
    /// `relation_text`).
    pub text_weight: f64,
    /// Relation stage: text of each relation, keyed by the corpus's relation labels
    /// (pid2name.json's `{"P19": [name, description]}` or `{"label": "text"}`).
    pub relation_text: Option<PathBuf>,
    /// Relation stage: probability that an entity's mention is blanked (every word piece
    /// replaced by `[MASK]`, markers kept), so names are not a shortcut (MTB, CP: 0.7).
    pub blank_probability: f64,
    /// Relation stage: instances of one relation that a batch holds together (the batch
    /// holds batch_size / this many relations).
    pub per_relation: usize,
    /// Steps at the start in which only the heads learn (the encoder frozen), so a freshly
    /// initialised MLM head does not send large gradients into the encoder.
    pub freeze_encoder_steps: usize,
    /// Development data (a corpus of relations held out of training): N-way K-shot accuracy
    /// on it every `eval_every` steps picks the result (early stopping).
    pub dev: Option<PathBuf>,
    pub eval_every: usize,
    /// Evaluations without improvement before training stops (0: never stop early).
    pub patience: usize,
    /// Development episodes (5-way 1-shot, seeded; with relation text also scored with it,
    /// and the score is the mean of the two).
    pub dev_episodes: usize,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            stage: Stage::Mslm,
            init: None,
            corpus: Vec::new(),
            relations: None,
            epochs: 5,
            batch_size: 16,
            max_length: 128,
            learning_rate: 2e-5,
            warmup_ratio: 0.06,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            mslm_weight: 1.0,
            scl_weight: 1.0,
            temperature: 0.1,
            mask: MaskProbabilities::default(),
            seed: 42,
            max_steps: None,
            checkpoint_every: 200,
            keep_checkpoints: 2,
            device: "cpu".into(),
            teacher: None,
            student_layers: None,
            distill_weight: 1.0,
            hidden_weight: 1.0,
            contrastive_weight: 1.0,
            text_weight: 1.0,
            relation_text: None,
            blank_probability: 0.7,
            per_relation: 4,
            freeze_encoder_steps: 0,
            dev: None,
            eval_every: 50,
            patience: 4,
            dev_episodes: 500,
        }
    }
}

impl PretrainConfig {
    /// Reads a `.toml` or `.json` file (by extension; other names are tried as TOML).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        let config = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a valid pre-training config", path.display()))?
        } else {
            toml::from_str(&text)
                .with_context(|| format!("{}: not a valid pre-training config", path.display()))?
        };
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        if self.corpus.is_empty() {
            bail!("no corpus: give --corpus FILE (repeatable) or `corpus = [...]` in the config");
        }
        if self.batch_size == 0 || self.epochs == 0 || self.max_length < 8 {
            bail!("batch_size and epochs must be at least 1 and max_length at least 8");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            bail!(
                "learning_rate must be a positive number, not {}",
                self.learning_rate
            );
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            bail!("warmup_ratio must be in [0, 1), not {}", self.warmup_ratio);
        }
        if self.temperature <= 0.0 {
            bail!("temperature must be positive, not {}", self.temperature);
        }
        for (name, p) in [
            ("mask.relation", self.mask.relation),
            ("mask.entity", self.mask.entity),
            ("mask.other", self.mask.other),
        ] {
            if !(0.0..=1.0).contains(&p) {
                bail!("{name} must be a probability in [0, 1], not {p}");
            }
        }
        if self.stage == Stage::Distill && self.teacher.is_none() {
            bail!(
                "distillation needs a teacher: give --teacher DIR (a checkpoint, e.g. a `tkre pretrain` output)"
            );
        }
        if self.stage != Stage::Distill && (self.teacher.is_some() || self.student_layers.is_some()) {
            bail!(
                "teacher and student_layers are for distillation (`tkre distill`), not --stage {:?}",
                self.stage
            );
        }
        if self
            .student_layers
            .as_ref()
            .is_some_and(|l| l.is_empty() || !l.windows(2).all(|w| w[0] < w[1]))
        {
            bail!("student_layers must list at least one layer, in increasing order, e.g. 1,3,5");
        }
        if !(0.0..=1.0).contains(&self.blank_probability) {
            bail!(
                "blank_probability must be in [0, 1], not {}",
                self.blank_probability
            );
        }
        if self.stage == Stage::Relation && (self.per_relation < 2 || self.batch_size < 2 * self.per_relation)
        {
            bail!(
                "the relation stage needs per_relation >= 2 (instances of a relation per batch) and \
                 batch_size >= 2 * per_relation (at least two relations per batch); got {} and {}",
                self.per_relation,
                self.batch_size
            );
        }
        if self.dev.is_some() && self.eval_every == 0 {
            bail!("eval_every must be at least 1");
        }
        if self.checkpoint_every == 0 || self.keep_checkpoints == 0 {
            bail!("checkpoint_every and keep_checkpoints must be at least 1");
        }
        Ok(())
    }

    /// The settings that decide what a run computes. A resumed run must match them, or it
    /// would silently continue a different run.
    pub fn run_identity(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            for transient in ["checkpoint_every", "keep_checkpoints", "device", "patience"] {
                map.remove(transient);
            }
        }
        value
    }

    /// Learning rate for the step after `done` steps out of `total` (Hugging Face's linear
    /// schedule with warm-up).
    pub fn learning_rate_at(&self, done: usize, total: usize) -> f64 {
        let warmup = (self.warmup_ratio * total as f64).ceil() as usize;
        let factor = if done < warmup {
            done as f64 / warmup as f64
        } else {
            (total.saturating_sub(done)) as f64 / (total - warmup).max(1) as f64
        };
        self.learning_rate * factor.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let config: PretrainConfig = toml::from_str(
            "stage = \"scl\"\nepochs = 2\n[mask]\nrelation = 0.7\nentity = 0.5\nother = 0.2\n",
        )
        .unwrap();
        assert_eq!(config.stage, Stage::Scl);
        assert_eq!(config.epochs, 2);
        assert_eq!(config.batch_size, 16);
        assert_eq!(config.mask.relation, 0.7);
        assert!(toml::from_str::<PretrainConfig>("epoch = 2").is_err());
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let config = PretrainConfig {
            warmup_ratio: 0.1,
            learning_rate: 1.0,
            ..Default::default()
        };
        assert_eq!(config.learning_rate_at(0, 100), 0.0);
        assert!((config.learning_rate_at(5, 100) - 0.5).abs() < 1e-12);
        assert!((config.learning_rate_at(10, 100) - 1.0).abs() < 1e-12);
        assert!((config.learning_rate_at(55, 100) - 0.5).abs() < 1e-12);
        assert_eq!(config.learning_rate_at(100, 100), 0.0);
    }
}
