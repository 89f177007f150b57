//! One output convention for the commands that print results: `--out FILE` (default: stdout)
//! and `--format json|jsonl|text`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON array of every result, written at the end.
    Json,
    /// One JSON object per line, written as each result is ready.
    Jsonl,
    /// Readable text.
    Text,
}

#[derive(Args, Clone, Debug)]
pub struct OutputArgs {
    /// Where the results go (created or replaced); `-` or none: stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// How results are written.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
}

/// A results writer: JSON lines as they come, a JSON array at the end, or text (each record
/// turned into lines by the command).
pub struct Output {
    writer: Box<dyn Write>,
    format: Format,
    records: Vec<serde_json::Value>,
    target: String,
}

impl Output {
    pub fn open(args: &OutputArgs) -> Result<Self> {
        let (writer, target): (Box<dyn Write>, String) = match &args.out {
            Some(path) if path.as_os_str() != "-" => {
                let file =
                    std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
                (
                    Box::new(std::io::BufWriter::new(file)),
                    path.display().to_string(),
                )
            }
            _ => (Box::new(std::io::stdout().lock()), "stdout".into()),
        };
        Ok(Self {
            writer,
            format: args.format,
            records: Vec::new(),
            target,
        })
    }

    /// Writes one result: `record` as JSON, or `text` (called only for `--format text`).
    pub fn write(
        &mut self,
        record: &impl Serialize,
        text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.writer, record)?;
                writeln!(self.writer)?;
                // Lines are flushed as they come, so a pipe reads results while the rest run.
                self.writer.flush()
            }
            Format::Json => {
                self.records.push(serde_json::to_value(record)?);
                Ok(())
            }
            Format::Text => text(&mut self.writer).and_then(|()| self.writer.flush()),
        }
        .with_context(|| format!("writing to {}", self.target))
    }

    /// Finishes the output (the JSON array, for `--format json`).
    pub fn finish(mut self) -> Result<()> {
        if self.format == Format::Json {
            serde_json::to_writer_pretty(&mut self.writer, &self.records)?;
            writeln!(self.writer)?;
        }
        self.writer
            .flush()
            .with_context(|| format!("writing to {}", self.target))
    }
}

/// This process's command line as a published report or card may show it: `tkre`, then each
/// argument through [`publishable_path`], the path of a `NAME=PATH` argument too.
pub fn publishable_command() -> String {
    std::iter::once("tkre".to_string())
        .chain(std::env::args().skip(1).map(|arg| match arg.split_once('=') {
            Some((name, path)) if Path::new(path).is_absolute() => {
                format!("{name}={}", publishable_path(path))
            }
            _ => publishable_path(&arg),
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A path as a published model card or report may show it: relative to the working directory
/// when inside it, else with the home directory as `~`, else its file name; the writer's machine
/// (user name, folders) is nobody's business. Strings that are not absolute paths pass unchanged.
pub fn publishable_path(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    if !path.is_absolute() {
        return path.display().to_string();
    }
    if let Ok(rest) = std::env::current_dir().and_then(|cwd| {
        path.strip_prefix(&cwd)
            .map(Path::to_path_buf)
            .map_err(std::io::Error::other)
    }) {
        return rest.display().to_string();
    }
    if let Some(rest) =
        std::env::var_os("HOME").and_then(|home| path.strip_prefix(home).ok().map(Path::to_path_buf))
    {
        return format!("~/{}", rest.display());
    }
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
