//! `tkre`: the command line over the `tkre` library (inference) and the `tkre_trainer`
//! library (pre-training). Each subcommand is a thin layer over one module.

mod calibrate;
mod classify;
mod embed;
mod evaluate;
mod export;
mod extract;
mod output;
mod runtime;
mod train_mentions;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::TypedValueParser as _;
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
    /// Encoder directory: a checkpoint or an exported model (config.json, model.safetensors,
    /// tokenizer.json) [default: $TKRE_MODEL, else the base model all-MiniLM-L6-v2 in
    /// $TKRE_CACHE/models].
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Engine: `auto` (natively burn), `burn` (burn's flex CPU backend: gemm with SIMD,
    /// multi-threaded; the fastest measured natively), `burn-ndarray` (burn's ndarray backend),
    /// `cpu` (the browser's CPU engine, on one thread per core, in which an int8 model
    /// multiplies in integers; to check its outputs and accuracy natively), or `webgpu` (the browser's WebGPU
    /// engine on a Vulkan device: a GPU, or Mesa's lavapipe).
    #[arg(long, default_value = "auto", value_parser = ["auto", "burn", "burn-ndarray", "cpu", "webgpu"])]
    pub engine: String,
    /// Maximum tokens per sentence, [CLS]/[SEP] included; longer relation instances keep a
    /// window around both entities; 8 .. the model's position table [default: the model's
    /// manifest, else 256].
    #[arg(long, value_name = "TOKENS")]
    pub max_length: Option<usize>,
    /// Sentences per encoder batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize))]
    pub batch_size: usize,
}

/// A none-of-the-above threshold: a similarity in -1..1.
pub fn none_threshold(text: &str) -> Result<f32, String> {
    let value: f32 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    tkre::fewshot::support_set::check_none_threshold(value).map_err(|e| e.to_string())
}

/// A progress bar on stderr (hidden when `show` is false).
pub fn evaluation_progress(show: bool, len: usize, what: &str) -> indicatif::ProgressBar {
    tkre_trainer::evaluation::progress_bar(show)(len, what)
}

/// `--representation`'s parser: lists the values in the help and in errors.
pub fn representation_parser() -> impl clap::builder::TypedValueParser<Value = tkre::fewshot::Representation>
{
    use tkre::fewshot::Representation;
    clap::builder::PossibleValuesParser::new(Representation::ALL.map(|r| r.name()))
        .try_map(|name| name.parse::<Representation>())
}

pub fn marking_parser() -> impl clap::builder::TypedValueParser<Value = tkre::text::Marking> {
    use tkre::text::Marking;
    clap::builder::PossibleValuesParser::new(Marking::ALL.map(|m| m.name()))
        .try_map(|name| name.parse::<Marking>())
}

#[derive(Subcommand)]
enum Command {
    /// Sentence embeddings: one sentence per line on stdin -> JSON lines {"text", "embedding"}
    /// (L2-normalised mean of the last hidden states).
    Embed(embed::EmbedArgs),
    /// Classify queries read from stdin (marked sentences, or JSON lines with offsets)
    /// against a support set.
    Classify(classify::ClassifyArgs),
    /// Relations in a document: sentences, entity mentions and every pair of mentions
    /// classified, as triples with offsets.
    Extract(extract::ExtractArgs),
    /// Train the learned mention proposer (a span scorer over the encoder's states) on
    /// sentences with entity spans; writes the head's JSON.
    TrainMentions(train_mentions::TrainMentionsArgs),
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
    /// Write a model directory for the browser (weights in int8, fp16 or fp32, manifest.json).
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
        Command::Extract(args) => extract::run(args),
        Command::TrainMentions(args) => train_mentions::run(args),
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument of every subcommand, with the subcommand's path.
    fn arguments() -> Vec<(String, clap::Arg)> {
        fn walk(command: &clap::Command, path: String, out: &mut Vec<(String, clap::Arg)>) {
            for arg in command.get_arguments() {
                out.push((path.clone(), arg.clone()));
            }
            for sub in command.get_subcommands() {
                walk(sub, format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut out = Vec::new();
        walk(&Cli::command(), "tkre".into(), &mut out);
        out
    }

    #[test]
    fn every_flag_says_what_it_does_without_pointing_into_the_repository() {
        let mut missing = Vec::new();
        for (path, arg) in arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let Some(help) = arg.get_help().map(|h| h.to_string()) else {
                missing.push(format!("{path} --{id}: no help"));
                continue;
            };
            // Help is read by users of the installed binary, who have no checkout.
            for pointer in ["scripts/", "docs/", ".sh", ".rs`", "data/corpus"] {
                if help.contains(pointer) {
                    missing.push(format!("{path} --{id}: help points at {pointer}: {help}"));
                }
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    #[test]
    fn pretrain_help_shows_the_defaults_the_run_uses() {
        let defaults = serde_json::to_value(tkre_trainer::pretrain::PretrainConfig::default()).unwrap();
        let mut checked = 0;
        for (path, arg) in arguments() {
            if path != "tkre pretrain" {
                continue;
            }
            let field = arg.get_id().as_str();
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let value = match &defaults[field] {
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
                _ => continue, // no default (a path, a list) or not a setting
            };
            let value = value.strip_suffix(".0").unwrap_or(&value).to_string();
            assert!(
                help.contains(&format!("[default: {value}]")),
                "tkre pretrain --{field}: the help must say [default: {value}]: {help}"
            );
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} pretrain defaults checked");
    }
}
