//! `tkre classify`: ranks a support set's relations for each query on stdin: a marked
//! sentence per line, or a JSON object per line with offsets (`{"text", "head": {"start",
//! "end"}, "tail": {...}}`, code points). Queries are classified in batches of --batch-size.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use tkre::engine::block_on;
use tkre::fewshot::{ExampleInput, Prediction, RelationScore, Representation, SupportSet};
use tkre::text::RelationInstance;
use tkre::{Extractor, TkreError};

use crate::ModelArgs;
use crate::output::{Output, OutputArgs};
use crate::runtime::load_encoder;

#[derive(Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Support set JSON: {"version": 2, "relations": [{"key", "name"?, "description"?, "examples":
    /// [marked sentence | {text, head, tail}]}]}.
    #[arg(long, value_name = "FILE.json")]
    support: PathBuf,
    /// How many relations to print per sentence (at least 1) [default: all].
    #[arg(long, value_parser = at_least_one)]
    top_k: Option<usize>,
    /// Similarity below which the answer is "no relation", in -1..1 [default: the support
    /// set's, else the model's recommended threshold, else none].
    #[arg(long, value_parser = crate::none_threshold, allow_negative_numbers = true)]
    none_threshold: Option<f32>,
    /// Relation representation.
    #[arg(long, default_value_t = Representation::default(), value_parser = crate::representation_parser())]
    representation: Representation,
    /// Classify by the examples alone: ignore the relations' names and descriptions (a
    /// relation with no example is then an error).
    #[arg(long)]
    ignore_relation_text: bool,
    #[command(flatten)]
    output: OutputArgs,
}
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a count of at least 1")),
    }
}

/// One answer as written: the query's line and text, and its prediction or its error.
#[derive(Serialize)]
struct Answer<'a> {
    line: usize,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ranked: Option<&'a [RelationScore]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    none_of_the_above: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    none_probability: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A query line: a JSON object (offsets, or a FewRel record) or a marked sentence.
fn read_query(line: &str) -> Result<(String, RelationInstance), TkreError> {
    if line.trim_start().starts_with('{') {
        let input: ExampleInput = serde_json::from_str(line).map_err(|e| {
            TkreError::Instance(format!(
                "a JSON query is {{\"text\", \"head\": {{\"start\", \"end\"}}, \"tail\": {{...}}}}: {e}"
            ))
        })?;
        let instance = input.to_instance()?;
        Ok((instance.text.clone(), instance))
    } else {
        Ok((line.to_string(), RelationInstance::from_marked(line)?))
    }
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

    let mut out = Output::open(&args.output)?;
    let mut failed = 0usize;
    let unreadable = std::cell::Cell::new(0);
    // (line number, the line) of the batch being read.
    let mut batch: Vec<(usize, String)> = Vec::new();
    let mut classify_batch = |batch: &mut Vec<(usize, String)>, out: &mut Output| -> Result<()> {
        let mut queries = Vec::with_capacity(batch.len());
        let mut texts = Vec::with_capacity(batch.len());
        for (_, line) in batch.iter() {
            match read_query(line) {
                Ok((text, instance)) => {
                    texts.push(text);
                    queries.push(Ok(instance));
                }
                Err(e) => {
                    texts.push(line.clone());
                    queries.push(Err(e));
                }
            }
        }
        let results = block_on(extractor.classify_each(queries))?;
        for (((number, _), text), result) in batch.iter().zip(&texts).zip(&results) {
            let top_k = args.top_k.unwrap_or(usize::MAX);
            let answer = match result {
                Ok(p) => Answer {
                    line: *number,
                    text,
                    ranked: Some(p.top_k(top_k)),
                    none_of_the_above: Some(p.none_of_the_above),
                    none_probability: Some(p.none_probability),
                    error: None,
                },
                Err(e) => {
                    failed += 1;
                    let message = e.to_string();
                    eprintln!("error: stdin line {number}: {message}");
                    Answer {
                        line: *number,
                        text,
                        ranked: None,
                        none_of_the_above: None,
                        none_probability: None,
                        error: Some(message),
                    }
                }
            };
            out.write(&answer, |w| match result {
                Ok(prediction) => write_text(w, text, prediction, top_k),
                Err(_) => writeln!(
                    w,
                    "{text}\n  -> error: {}",
                    answer.error.as_deref().unwrap_or_default()
                ),
            })?;
        }
        batch.clear();
        Ok(())
    };
    for (number, line) in crate::runtime::stdin_lines(&unreadable) {
        // Blank lines separate nothing and ask nothing: skipped, as in every command.
        if line.trim().is_empty() {
            continue;
        }
        batch.push((number, line));
        if batch.len() >= args.model.batch_size {
            classify_batch(&mut batch, &mut out)?;
        }
    }
    classify_batch(&mut batch, &mut out)?;
    out.finish()?;
    Ok(if failed + unreadable.get() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn write_text(out: &mut dyn Write, text: &str, prediction: &Prediction, top_k: usize) -> std::io::Result<()> {
    writeln!(out, "{text}")?;
    if prediction.none_of_the_above {
        writeln!(
            out,
            "  -> no relation ({:.2}%: the best similarity is below the threshold)",
            prediction.none_probability * 100.0
        )?;
    }
    for score in prediction.top_k(top_k) {
        writeln!(
            out,
            "  {:>6.2}%  sim {:+.3}  {}",
            score.probability * 100.0,
            score.similarity,
            score.relation
        )?;
    }
    Ok(())
}
