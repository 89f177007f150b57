//! `tkre pretrain`: TKRE's two-stage knowledge-guided pre-training of the encoder.
//!
//! - Stage 1 (`--stage mslm`): masked span language modelling over marked sentences
//!   ([`masking`]).
//! - Stage 2 (`--stage scl`): span-level contrastive learning together with MSLM
//!   ([`model::SpanContrastHead`]), one learned anchor per relation of the corpus.
//! - Distillation (`tkre distill`, `--stage distill`): a student made of some of the starting
//!   checkpoint's layers learns a teacher's relation representations and hidden states
//!   ([`model::distillation_losses`]), with the same loop, checkpoints and resume.
//!
//! The result is a BERT-layout checkpoint directory that `tkre eval`, `tkre export` and the
//! browser load like the base model.

pub mod config;
pub mod corpus;
pub mod masking;
pub mod model;
pub mod train;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Args;

pub use config::{PretrainConfig, Stage};
use train::TrainInputs;
pub use train::{Session, TrainOutcome};

#[derive(Args, Debug, Clone)]
pub struct PretrainArgs {
    /// Settings file (TOML or JSON; keys as the flags below with `_` for `-`, plus `[mask]`
    /// with `relation`, `entity`, `other`). Flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output directory: checkpoints, metrics.jsonl and, at the end, the trained checkpoint.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the run in --out from its newest checkpoint (same optimiser state and data
    /// order); without a checkpoint there, start it.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many steps in total (checkpointing first); --resume continues.
    #[arg(long, value_name = "STEPS")]
    pub stop_after: Option<usize>,
    /// What to train (`tkre distill` sets distill) [default: mslm].
    #[arg(long, value_enum)]
    pub stage: Option<Stage>,
    /// The encoder to start from [default: the base model all-MiniLM-L6-v2]; stage 2 usually
    /// starts from stage 1's --out. (`--init` is its old name, still accepted.)
    #[arg(long = "model", alias = "init", value_name = "DIR")]
    pub init: Option<PathBuf>,
    /// Corpus file (repeatable): synthesis outputs, FewRel-format or offsets records.
    #[arg(long, value_name = "FILE")]
    pub corpus: Vec<PathBuf>,
    /// Stage-2 relation schema, one name per line [default: every relation in the corpus].
    #[arg(long, value_name = "FILE")]
    pub relations: Option<PathBuf>,
    /// Passes over the corpus [default: 5].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Instances per step [default: 16].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Tokens per instance, [CLS]/[SEP] included [default: 128].
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Peak learning rate of AdamW [default: 0.00002].
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Share of the steps warming the learning rate up from 0; it then decays linearly to 0
    /// [default: 0.06].
    #[arg(long)]
    pub warmup_ratio: Option<f64>,
    /// AdamW weight decay [default: 0.01].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Global gradient-norm clipping, 0 to disable [default: 1].
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Weight of the masked span language modelling loss [default: 1].
    #[arg(long)]
    pub mslm_weight: Option<f64>,
    /// Stage 2: weight of the span-level contrastive loss [default: 1].
    #[arg(long)]
    pub scl_weight: Option<f64>,
    /// Temperature of the contrastive losses [default: 0.1].
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Seeds data order, masking, negative spans, dropout and new heads [default: 42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Cap on the number of steps (the schedule spans these) [default: all epochs].
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Steps between checkpoints in --out [default: 200].
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// cpu (burn's flex), ndarray, wgpu[:N] (build with --features wgpu), cuda[:N]
    /// (--features cuda); a comma-separated list (cuda:0,cuda:1) trains data-parallel
    /// [default: cpu].
    #[arg(long)]
    pub device: Option<String>,
    /// Distillation (`tkre distill`): the teacher checkpoint.
    #[arg(long, value_name = "DIR")]
    pub teacher: Option<PathBuf>,
    /// Distillation: layers of --model the student keeps, e.g. 1,3,5 [default: every other
    /// layer ending with the last].
    #[arg(long, value_delimiter = ',', value_name = "LAYERS")]
    pub student_layers: Option<Vec<usize>>,
    /// Distillation: weight of the relation-representation loss [default: 1].
    #[arg(long)]
    pub distill_weight: Option<f64>,
    /// Distillation: weight of the hidden-state loss [default: 1].
    #[arg(long)]
    pub hidden_weight: Option<f64>,
    /// Relation stage: weight of the supervised contrastive loss [default: 1].
    #[arg(long)]
    pub contrastive_weight: Option<f64>,
    /// Relation stage: weight of the instance-to-relation-text alignment [default: 1].
    #[arg(long)]
    pub text_weight: Option<f64>,
    /// Relation stage: relation text keyed by the corpus's labels (pid2name.json's shape, or
    /// {"label": "text"}).
    #[arg(long, value_name = "FILE")]
    pub relation_text: Option<PathBuf>,
    /// Relation stage: probability of blanking an entity mention [default: 0.7].
    #[arg(long)]
    pub blank_probability: Option<f64>,
    /// Relation stage: instances per relation in a batch [default: 4].
    #[arg(long)]
    pub per_relation: Option<usize>,
    /// Steps with the encoder frozen while new heads warm up [default: 0].
    #[arg(long)]
    pub freeze_encoder_steps: Option<usize>,
    /// Development corpus (relations held out of training) for early stopping.
    #[arg(long, value_name = "FILE")]
    pub dev: Option<PathBuf>,
    /// Steps between development evaluations [default: 50].
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Development evaluations without improvement before stopping, 0 for never [default: 4].
    #[arg(long)]
    pub patience: Option<usize>,
    /// 5-way 1-shot development episodes per evaluation [default: 500].
    #[arg(long)]
    pub dev_episodes: Option<usize>,
    /// No progress bar or notes on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl PretrainArgs {
    /// The config file (if any) with every given flag applied over it.
    pub fn resolve(&self) -> Result<PretrainConfig> {
        let mut config = match &self.config {
            Some(path) => PretrainConfig::from_file(path)?,
            None => PretrainConfig::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(value) = self.$field.clone() {
                    config.$field = value;
                }
            )*};
        }
        set!(
            stage,
            epochs,
            batch_size,
            max_length,
            learning_rate,
            warmup_ratio,
            weight_decay
        );
        set!(
            max_grad_norm,
            mslm_weight,
            scl_weight,
            temperature,
            seed,
            checkpoint_every,
            device,
            distill_weight,
            hidden_weight
        );
        set!(
            contrastive_weight,
            text_weight,
            blank_probability,
            per_relation,
            freeze_encoder_steps,
            eval_every,
            patience,
            dev_episodes
        );
        if self.relation_text.is_some() {
            config.relation_text = self.relation_text.clone();
        }
        if self.dev.is_some() {
            config.dev = self.dev.clone();
        }
        if self.teacher.is_some() {
            config.teacher = self.teacher.clone();
        }
        if self.student_layers.is_some() {
            config.student_layers = self.student_layers.clone();
        }
        if self.max_steps.is_some() {
            config.max_steps = self.max_steps;
        }
        if self.init.is_some() {
            config.init = self.init.clone();
        }
        if !self.corpus.is_empty() {
            config.corpus = self.corpus.clone();
        }
        if let Some(path) = &self.relations {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let names: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            if names.is_empty() {
                bail!("{} lists no relations (one name per line)", path.display());
            }
            config.relations = Some(names);
        }
        config.validate()?;
        Ok(config)
    }
}

/// The training devices for a `--device` value, with autodiff: one name, or a comma-separated
/// list for data-parallel training (each step's batch is split row-wise over the devices;
/// see [`train::step_gradients`]).
///
/// Names: `cpu` (burn's flex), `ndarray`, `wgpu` (the best adapter) or `wgpu:N` (the N-th
/// discrete GPU), `cuda` or `cuda:N`.
pub fn training_devices(spec: &str) -> Result<Vec<Device>> {
    let names: Vec<&str> = spec.split(',').map(str::trim).collect();
    if names.iter().any(|n| n.is_empty()) {
        bail!("--device {spec:?}: empty device name; use e.g. cuda:0,cuda:1");
    }
    names.into_iter().map(training_device).collect()
}

#[allow(deprecated)] // ndarray: see docs/benchmarks.md
fn training_device(name: &str) -> Result<Device> {
    let (kind, index) = match name.split_once(':') {
        Some((kind, index)) => {
            let index: usize = index.parse().map_err(|_| {
                anyhow::anyhow!("device {name:?}: the index after ':' must be a number, e.g. cuda:1")
            })?;
            (kind, Some(index))
        }
        None => (name, None),
    };
    let device = match (kind, index) {
        ("cpu" | "flex", None) => Device::flex(),
        ("ndarray", None) => Device::ndarray(),
        ("cpu" | "flex" | "ndarray", Some(_)) => {
            bail!("device {name:?}: the CPU backends have one device; drop the index")
        }
        #[cfg(feature = "wgpu")]
        ("wgpu", None) => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        #[cfg(feature = "wgpu")]
        ("wgpu", Some(i)) => Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(i)),
        #[cfg(feature = "cuda")]
        ("cuda", i) => Device::cuda(i.unwrap_or(0)),
        #[cfg(not(feature = "wgpu"))]
        ("wgpu", _) => bail!(
            "this tkre was built without wgpu support; rebuild with \
             `cargo build --release -p tkre-trainer --features wgpu`"
        ),
        #[cfg(not(feature = "cuda"))]
        ("cuda", _) => bail!(
            "this tkre was built without CUDA support; rebuild with \
             `cargo build --release -p tkre-trainer --features cuda`"
        ),
        _ => bail!(
            "unknown device {name:?}; use cpu, ndarray, wgpu[:N] or cuda[:N] (comma-separated for several)"
        ),
    };
    Ok(device.autodiff())
}

pub fn run(args: PretrainArgs) -> Result<ExitCode> {
    let config = args.resolve()?;
    let session = Session {
        resume: args.resume,
        stop_after: args.stop_after,
        quiet: args.quiet,
    };
    match pretrain(&config, &args.out, &session)? {
        TrainOutcome::Finished { steps } => {
            if !args.quiet {
                eprintln!("done: {steps} steps; checkpoint in {}", args.out.display());
            }
        }
        TrainOutcome::StoppedEarly { step, best_step } => {
            if !args.quiet {
                eprintln!(
                    "stopped early at step {step}: development accuracy stopped improving; the result \
                     (in {}) is the model of step {best_step}",
                    args.out.display()
                );
            }
        }
        TrainOutcome::Stopped { step } => {
            if !args.quiet {
                eprintln!("stopped at step {step}; continue with the same command and --resume");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads and prepares the corpus, records the run's settings and data report in
/// `out/pretrain.json`, and trains (or resumes).
pub fn pretrain(config: &PretrainConfig, out: &Path, session: &Session) -> Result<TrainOutcome> {
    config.validate()?;
    // Before the corpus is read: a mistyped device should not wait for that.
    let devices = training_devices(&config.device)?;
    let init_dir = config
        .init
        .clone()
        .unwrap_or_else(crate::paths::default_model_dir);
    tkre::checkpoint::Manifest::verify_dir(&init_dir)?;
    let tokenizer_path = init_dir.join("tokenizer.json");
    let tokenizer_bytes = std::fs::read(&tokenizer_path).with_context(|| {
        format!(
            "reading {} (is --init a checkpoint directory? scripts/setup/fetch-base-model.sh installs the base model)",
            tokenizer_path.display()
        )
    })?;
    let tokenizer = tkre::text::TextTokenizer::from_bytes(&tokenizer_bytes, "tokenizer.json")?;
    let (records, schema, summary, report) = train::load_corpus(config, &tokenizer)?;
    let relation_texts = train::relation_text_ids(config, &schema, &tokenizer)?;
    let dev = match &config.dev {
        Some(path) => Some(train::load_dev(config, path, &schema)?),
        None => None,
    };
    if !session.quiet {
        eprintln!("corpus: {}", report.describe());
        let detail = match config.stage {
            Stage::Mslm => format!("{} with adjacent entities", summary.no_relation_span),
            Stage::Scl => format!(
                "{} with adjacent entities: MSLM only; {} with a relation of the {}-relation schema",
                summary.no_relation_span,
                summary.with_relation,
                schema.len()
            ),
            Stage::Distill => "read unmasked, as the classifier reads them".to_string(),
            Stage::Relation => format!(
                "{} relations, {} with text",
                schema.len(),
                relation_texts.iter().flatten().count()
            ),
        };
        eprintln!(
            "prepared {} records ({} tokens, {} windowed to {} tokens; {detail})",
            summary.records, summary.tokens, summary.truncated, config.max_length
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let skipped_examples: std::collections::BTreeMap<_, _> = report
        .skipped
        .iter()
        .map(|(k, (_, e))| (k.clone(), e.clone()))
        .collect();
    let run_info = serde_json::json!({
        "config": config,
        "init": init_dir,
        "relations": schema,
        "data": summary,
        "skipped_examples": skipped_examples,
    });
    std::fs::write(out.join("pretrain.json"), serde_json::to_vec_pretty(&run_info)?)?;

    let inputs = TrainInputs {
        config,
        init_dir: &init_dir,
        tokenizer_json: &tokenizer_bytes,
        tokenizer: &tokenizer,
        out,
        devices,
        relation_texts,
        dev,
    };
    train::train(inputs, &records, schema.len(), session)
}
