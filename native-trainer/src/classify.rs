//! `tkre classify`: ranks a support set's relations for each marked sentence on stdin.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use tkre::Extractor;
use tkre::engine::block_on;
use tkre::fewshot::{Prediction, Representation, SupportSet};
use tkre::text::RelationInstance;

use crate::ModelArgs;
use crate::runtime::load_encoder;

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON object per input line.
    Json,
    /// A readable ranking.
    Text,
}

#[derive(Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Support set JSON: {"version": 2, "relations": [{"key", "name"?, "description"?, "examples":
    /// [marked sentence | {text, head, tail}]}]} (docs/support-set.schema.json).
    #[arg(long, value_name = "FILE.json")]
    support: PathBuf,
    /// How many relations to print per sentence (all by default; at least 1).
    #[arg(long, value_parser = at_least_one)]
    top_k: Option<usize>,
    /// Similarity below which the answer is "none of the above", in -1..1 (overrides the
    /// support set's).
    #[arg(long, value_parser = none_threshold)]
    none_threshold: Option<f32>,
    /// Relation representation.
    #[arg(long, default_value_t = Representation::default())]
    representation: Representation,
    /// Classify by the examples alone: ignore the relations' names and descriptions (a
    /// relation with no example is then an error).
    #[arg(long)]
    ignore_relation_text: bool,
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a count of at least 1")),
    }
}

fn none_threshold(text: &str) -> Result<f32, String> {
    let value: f32 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    tkre::fewshot::support_set::check_none_threshold(value).map_err(|e| e.to_string())
}

pub fn run(args: ClassifyArgs) -> Result<ExitCode> {
    let json = std::fs::read_to_string(&args.support)
        .with_context(|| format!("reading support set {}", args.support.display()))?;
    let support = SupportSet::from_json(&json, &args.support.display().to_string())?;
    support.parse()?; // fail before loading the model
    let encoder = load_encoder(&args.model)?;
    encoder.set_representation(args.representation);
    let extractor = Extractor::new(encoder);
    extractor.set_use_relation_text(!args.ignore_relation_text);
    block_on(extractor.load_support_set(&support))
        .and_then(|_| extractor.classifier())
        .with_context(|| format!("support set {}", args.support.display()))?;
    if args.none_threshold.is_some() {
        extractor.set_none_threshold(args.none_threshold)?;
    }

    let mut stdout = std::io::stdout().lock();
    let mut failed = 0usize;
    let unreadable = std::cell::Cell::new(0);
    for (number, line) in crate::runtime::stdin_lines(&unreadable) {
        let marked = line.as_str();
        if marked.trim().is_empty() {
            continue;
        }
        let prediction = RelationInstance::from_marked(marked)
            .and_then(|instance| block_on(extractor.classify(&[instance])))
            .map(|mut predictions| predictions.remove(0));
        match prediction {
            Ok(prediction) => write_prediction(&mut stdout, marked, &prediction, args.top_k, args.format)?,
            Err(e) => {
                failed += 1;
                eprintln!("error: stdin line {number}: {e}");
                if let Format::Json = args.format {
                    serde_json::to_writer(
                        &mut stdout,
                        &serde_json::json!({"text": marked, "error": e.to_string()}),
                    )?;
                    writeln!(stdout)?;
                }
            }
        }
    }
    Ok(if failed + unreadable.get() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn write_prediction(
    out: &mut impl Write,
    text: &str,
    prediction: &Prediction,
    top_k: Option<usize>,
    format: Format,
) -> Result<()> {
    let ranked = prediction.top_k(top_k.unwrap_or(usize::MAX));
    match format {
        Format::Json => {
            serde_json::to_writer(
                &mut *out,
                &serde_json::json!({
                    "text": text,
                    "ranked": ranked,
                    "none_of_the_above": prediction.none_of_the_above,
                    "none_probability": prediction.none_probability,
                }),
            )?;
            writeln!(out)?;
        }
        Format::Text => {
            writeln!(out, "{text}")?;
            if prediction.none_of_the_above {
                writeln!(
                    out,
                    "  -> no relation ({:.2}%: the best similarity is below the threshold)",
                    prediction.none_probability * 100.0
                )?;
            }
            for score in ranked {
                writeln!(
                    out,
                    "  {:>6.2}%  sim {:+.3}  {}",
                    score.probability * 100.0,
                    score.similarity,
                    score.relation
                )?;
            }
        }
    }
    Ok(())
}
