//! `tkre embed`: sentence embeddings for lines of stdin, in batches of --batch-size.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::ModelArgs;
use crate::output::{Output, OutputArgs};
use crate::runtime::load_encoder;

#[derive(Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Serialize)]
struct Embedding<'a> {
    line: usize,
    text: &'a str,
    embedding: &'a [f32],
}

pub fn run(args: EmbedArgs) -> Result<ExitCode> {
    let encoder = load_encoder(&args.model)?;
    let mut out = Output::open(&args.output)?;
    // (line number, text) of the batch being read.
    let mut pending: Vec<(usize, String)> = Vec::new();
    let flush = |pending: &mut Vec<(usize, String)>, out: &mut Output| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = pending.iter().map(|(_, text)| text.clone()).collect();
        let vectors = encoder.embed_sentences(&texts, args.model.batch_size)?;
        for ((line, text), embedding) in pending.iter().zip(vectors) {
            let record = Embedding {
                line: *line,
                text,
                embedding: &embedding,
            };
            out.write(&record, |w| {
                let head: Vec<String> = embedding.iter().take(4).map(|x| format!("{x:+.4}")).collect();
                writeln!(
                    w,
                    "{text}\n  [{} ... ] ({} dimensions)",
                    head.join(", "),
                    embedding.len()
                )
            })?;
        }
        pending.clear();
        Ok(())
    };
    let unreadable = std::cell::Cell::new(0);
    for (number, line) in crate::runtime::stdin_lines(&unreadable) {
        // Blank lines are skipped, as in every command that reads lines.
        if line.trim().is_empty() {
            continue;
        }
        pending.push((number, line));
        if pending.len() >= args.model.batch_size {
            flush(&mut pending, &mut out)?;
        }
    }
    flush(&mut pending, &mut out)?;
    out.finish()?;
    Ok(if unreadable.get() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
