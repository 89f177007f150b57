//! Where models are found and which engine runs them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tkre::{EngineRequest, RelationEncoder};

use crate::ModelArgs;

pub use tkre_trainer::paths::default_model_dir;

/// The model directory a command uses: `--model`, else $TKRE_MODEL, else the base model.
pub fn model_dir(args: &ModelArgs) -> PathBuf {
    args.model
        .clone()
        .or_else(|| std::env::var_os("TKRE_MODEL").map(PathBuf::from))
        .unwrap_or_else(default_model_dir)
}

pub fn load_encoder(args: &ModelArgs) -> Result<RelationEncoder> {
    let dir = model_dir(args);
    let encoder = RelationEncoder::load_dir(&dir, EngineRequest::parse(&args.engine)?)
        .with_context(|| format!("loading model from {}", dir.display()))?;
    if let Some(tokens) = args.max_length {
        encoder.set_max_len(tokens)?;
    }
    Ok(encoder)
}

/// The lines of stdin, numbered from 1, without the line ending. A line that is not UTF-8 is
/// reported on stderr with its number and skipped, and counted in `bad`: one bad line must not
/// drop the rest.
pub fn stdin_lines(bad: &std::cell::Cell<usize>) -> impl Iterator<Item = (usize, String)> + '_ {
    use std::io::BufRead;
    let mut input = std::io::stdin().lock();
    let mut number = 0;
    std::iter::from_fn(move || {
        loop {
            let mut bytes = Vec::new();
            number += 1;
            match input.read_until(b'\n', &mut bytes) {
                Ok(0) => return None,
                Ok(_) => {
                    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        bytes.pop();
                    }
                    match String::from_utf8(bytes) {
                        Ok(line) => return Some((number, line)),
                        Err(e) => {
                            bad.set(bad.get() + 1);
                            eprintln!(
                                "error: stdin line {number}: not valid UTF-8 text (byte {} of the line); the line is skipped",
                                e.utf8_error().valid_up_to() + 1
                            );
                        }
                    }
                }
                Err(e) => {
                    bad.set(bad.get() + 1);
                    eprintln!("error: stdin line {number}: reading stdin failed: {e}");
                    return None;
                }
            }
        }
    })
}
