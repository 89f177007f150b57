//! `tkre`: the command line over the `tkre` library (inference) and the `tkre_trainer`
//! library (pre-training). Each subcommand is a thin layer over one module.

mod calibrate;
mod classify;
mod embed;
mod evaluate;
mod export;
mod runtime;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tkre",
    version,
    about = "Few-shot relation extraction (TKRE): synthesize, pre-train, embed, classify, evaluate, export"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by every command that loads a model.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Checkpoint directory (config.json, model.safetensors, tokenizer.json). Default:
    /// $TKRE_MODEL, else the base model installed by scripts/setup/fetch-base-model.sh.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Engine: `auto` (natively burn), `burn` (burn's flex CPU backend: gemm with SIMD,
    /// multi-threaded; the fastest measured natively), `burn-ndarray` (burn's ndarray backend),
    /// `cpu` (the browser's CPU engine, one thread, in which an int8 model multiplies in
    /// integers; to check its outputs and accuracy natively), or `webgpu` (the browser's WebGPU
    /// engine on a Vulkan device: a GPU, or Mesa's lavapipe).
    #[arg(long, default_value = "auto", value_parser = ["auto", "burn", "burn-ndarray", "cpu", "webgpu"])]
    pub engine: String,
    /// Maximum tokens per sentence, [CLS]/[SEP] included; longer relation instances keep a
    /// window around both entities. Default: 256, or the model's position table if smaller;
    /// a value outside 8 .. the table is an error.
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Sentences per encoder batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Sentence embeddings: one sentence per line on stdin -> JSON lines {"text", "embedding"}
    /// (L2-normalised mean of the last hidden states).
    Embed(embed::EmbedArgs),
    /// Classify marked sentences read from stdin against a support set.
    Classify(classify::ClassifyArgs),
    /// N-way K-shot episodes over a FewRel-format file.
    Eval(evaluate::EvalArgs),
    /// Knowledge synthesis with an LLM server: EDKG explanations, SCDG samples, schemas.
    #[command(subcommand)]
    Synthesize(tkre_trainer::synthesis::SynthesizeCommand),
    /// Two-stage knowledge-guided pre-training: `--stage mslm`, then `--stage scl`.
    Pretrain(Box<tkre_trainer::pretrain::PretrainArgs>),
    /// Distil a teacher checkpoint into a smaller student (`tkre pretrain`'s options, plus
    /// --teacher and --student-layers).
    Distill(Box<tkre_trainer::pretrain::PretrainArgs>),
    /// Write a model directory for the browser (weights in fp32, fp16 or int8, manifest.json).
    Export(export::ExportArgs),
    /// Fit a model's score calibration (temperature, none-of-the-above threshold) on held-out
    /// relations and store it in its manifest; measure it on other data.
    Calibrate(calibrate::CalibrateArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Embed(args) => embed::run(args),
        Command::Classify(args) => classify::run(args),
        Command::Eval(args) => evaluate::run(args),
        Command::Synthesize(command) => tkre_trainer::synthesis::run(command),
        Command::Pretrain(args) => tkre_trainer::pretrain::run(*args),
        Command::Distill(mut args) => {
            args.stage = Some(tkre_trainer::pretrain::Stage::Distill);
            tkre_trainer::pretrain::run(*args)
        }
        Command::Export(args) => export::run(args),
        Command::Calibrate(args) => calibrate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
