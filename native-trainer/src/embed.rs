//! `tkre embed`: sentence embeddings for lines of stdin.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::ModelArgs;
use crate::runtime::load_encoder;

#[derive(Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: EmbedArgs) -> Result<ExitCode> {
    let encoder = load_encoder(&args.model)?;
    let mut stdout = std::io::stdout().lock();
    let mut failed = 0usize;
    let mut pending: Vec<String> = Vec::new();
    let flush = |pending: &mut Vec<String>, out: &mut dyn Write| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let vectors = encoder.embed_sentences(pending, args.model.batch_size)?;
        for (text, embedding) in pending.iter().zip(vectors) {
            serde_json::to_writer(
                &mut *out,
                &serde_json::json!({"text": text, "embedding": embedding}),
            )?;
            writeln!(out)?;
        }
        pending.clear();
        Ok(())
    };
    let unreadable = std::cell::Cell::new(0);
    for (number, line) in crate::runtime::stdin_lines(&unreadable) {
        let text = line.as_str();
        if text.trim().is_empty() {
            eprintln!("error: stdin line {number}: empty sentence, skipped");
            failed += 1;
            continue;
        }
        pending.push(text.to_string());
        if pending.len() >= args.model.batch_size {
            flush(&mut pending, &mut stdout)?;
        }
    }
    flush(&mut pending, &mut stdout)?;
    Ok(if failed + unreadable.get() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
