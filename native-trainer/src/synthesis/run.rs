//! A synthesis run: the prompts to send, sent concurrently, answers checked and appended as
//! they arrive, and what is done recorded so that `--resume` sends only the rest.
//!
//! Files, for `--out FILE`:
//! - `FILE`: the valid records (JSON lines, the shape `tkre pretrain` reads), each with the
//!   `prompt_id` it came from;
//! - `FILE.done.jsonl`: one line per answered prompt (its id, counts, rejections);
//! - `FILE.rejected.jsonl`: every rejected answer or sample, with its reason;
//! - `FILE.report.json`: the yield per relation (asked, valid, rejected by reason).
//!
//! A prompt's records are appended before its `done` line. On resume, records of prompts
//! without a `done` line (the requests in flight when the run stopped) are dropped and those
//! prompts are sent again, so nothing is duplicated and nothing is lost.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answers::{
    SampleRecord, check_explanation, check_paraphrase, check_sample, check_types, dedup_key, jaccard,
    parse_paraphrases, parse_samples, pattern_words,
};

/// Samples of one relation may share a sentence pattern (the words outside the entities,
/// compared by [`jaccard`] at this level or more) this many times; more is one template
/// filled with other names, which teaches the template.
const SAME_PATTERN: f64 = 0.75;
const PATTERN_REPEATS: usize = 2;
use super::client::ChatClient;
use super::schema::RelationSchema;

/// What one prompt asks for.
#[derive(Debug, Clone)]
pub enum JobKind {
    Explain {
        subject: String,
        object: String,
        sentence: String,
    },
    Samples {
        n: usize,
    },
    /// The entity types of `Job::relation`.
    Types,
    /// `n` rewordings of `original`.
    Paraphrase {
        original: Box<SampleRecord>,
        n: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Job {
    /// Stable across runs with the same inputs (resume relies on it).
    pub id: String,
    pub relation: String,
    pub prompt: String,
    pub format: Option<Value>,
    pub kind: JobKind,
}

/// One line of `FILE.done.jsonl`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DoneEntry {
    pub prompt_id: String,
    pub relation: String,
    pub asked: usize,
    pub valid: usize,
    pub rejected: BTreeMap<String, usize>,
    pub repaired: usize,
    pub completion_tokens: u64,
    pub structured: bool,
}

/// Yield of one relation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RelationYield {
    pub prompts: usize,
    pub asked: usize,
    pub valid: usize,
    pub repaired: usize,
    pub rejected: BTreeMap<String, usize>,
    pub failed_requests: usize,
}

impl RelationYield {
    /// Counts one answered prompt.
    fn add_prompt(&mut self, entry: &DoneEntry) {
        self.prompts += 1;
        self.asked += entry.asked;
        self.valid += entry.valid;
        self.repaired += entry.repaired;
        for (reason, n) in &entry.rejected {
            *self.rejected.entry(reason.clone()).or_default() += n;
        }
    }

    /// Adds another relation's counts (for the total).
    fn add(&mut self, other: &RelationYield) {
        self.prompts += other.prompts;
        self.asked += other.asked;
        self.valid += other.valid;
        self.repaired += other.repaired;
        self.failed_requests += other.failed_requests;
        for (reason, n) in &other.rejected {
            *self.rejected.entry(reason.clone()).or_default() += n;
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub relations: BTreeMap<String, RelationYield>,
    pub completion_tokens: u64,
    pub elapsed_s: f64,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out =
            String::from("relation | prompts | asked | valid | repaired | rejected (by reason) | failed\n");
        let mut total = RelationYield::default();
        for (name, y) in &self.relations {
            let reasons: Vec<String> = y.rejected.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            out.push_str(&format!(
                "{name} | {} | {} | {} | {} | {} | {}\n",
                y.prompts,
                y.asked,
                y.valid,
                y.repaired,
                reasons.join(", "),
                y.failed_requests
            ));
            total.add(y);
        }
        let reasons: Vec<String> = total.rejected.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        out.push_str(&format!(
            "total | {} | {} | {} | {} | {} | {}\n",
            total.prompts,
            total.asked,
            total.valid,
            total.repaired,
            reasons.join(", "),
            total.failed_requests
        ));
        out
    }
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps the lines of `path` whose `prompt_id` is done; returns the kept JSON values.
fn keep_done(path: &Path, done: &HashSet<String>) -> Result<Vec<Value>> {
    let values: Vec<Value> = read_lines(path);
    let kept: Vec<Value> = values
        .into_iter()
        .filter(|v| {
            v.get("prompt_id")
                .and_then(Value::as_str)
                .is_some_and(|id| done.contains(id))
        })
        .collect();
    let text: String = kept.iter().map(|v| format!("{v}\n")).collect();
    let tmp = sibling(path, ".tmp");
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(kept)
}

fn append(file: &mut File, value: &impl Serialize) -> Result<()> {
    let mut line = serde_json::to_string(value)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.flush()?;
    Ok(())
}

/// Sends the jobs not done yet and writes what comes back. Returns the report.
pub async fn run_jobs(
    client: &ChatClient,
    schema: &RelationSchema,
    jobs: Vec<Job>,
    out: &Path,
    resume: bool,
    concurrency: usize,
    quiet: bool,
) -> Result<Report> {
    let done_path = sibling(out, ".done.jsonl");
    let rejected_path = sibling(out, ".rejected.jsonl");
    let report_path = sibling(out, ".report.json");
    let exists = out.exists() && fs::metadata(out).map(|m| m.len() > 0).unwrap_or(false);
    if exists && !resume {
        bail!(
            "{} already exists; pass --resume to continue that run, or choose another --out",
            out.display()
        );
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let previous: Vec<DoneEntry> = if resume {
        read_lines(&done_path)
    } else {
        Vec::new()
    };
    let done: HashSet<String> = previous.iter().map(|d| d.prompt_id.clone()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut patterns: BTreeMap<String, Vec<BTreeSet<String>>> = BTreeMap::new();
    if resume {
        for record in keep_done(out, &done)? {
            if let Ok(sample) = serde_json::from_value::<SampleRecord>(record.clone())
                && sample.paraphrase_of.is_none()
            {
                patterns
                    .entry(sample.relation.clone())
                    .or_default()
                    .push(pattern_words(&sample));
            }
            let text = record
                .get("text")
                .or_else(|| record.get("generated_text"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            seen.insert(dedup_key(text));
        }
        keep_done(&rejected_path, &done)?;
    } else {
        for path in [out, &done_path, &rejected_path] {
            let _ = fs::remove_file(path);
        }
    }
    let open = |path: &Path| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))
    };
    let (mut records_file, mut done_file, mut rejected_file) =
        (open(out)?, open(&done_path)?, open(&rejected_path)?);

    let mut report = Report::default();
    for entry in &previous {
        report
            .relations
            .entry(entry.relation.clone())
            .or_default()
            .add_prompt(entry);
        report.completion_tokens += entry.completion_tokens;
    }
    let pending: Vec<Job> = jobs.into_iter().filter(|j| !done.contains(&j.id)).collect();
    let ids: BTreeSet<&str> = pending.iter().map(|j| j.id.as_str()).collect();
    if ids.len() != pending.len() {
        bail!("internal: two prompts share an id");
    }
    if !quiet && resume && !done.is_empty() {
        eprintln!("resuming: {} prompts done, {} to send", done.len(), pending.len());
    }

    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(pending.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} requests  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut tokens_now = 0u64;
    let mut valid_now = 0usize;
    let mut rejected_now = 0usize;
    let mut answers = futures::stream::iter(pending)
        .map(|job| async move {
            let answer = client.chat(&job.prompt, job.format.as_ref()).await;
            (job, answer)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((job, answer)) = answers.next().await {
        bar.inc(1);
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                report
                    .relations
                    .entry(job.relation.clone())
                    .or_default()
                    .failed_requests += 1;
                bar.println(format!("request {} failed: {e:#}", job.id));
                continue;
            }
        };
        let mut entry = DoneEntry {
            prompt_id: job.id.clone(),
            relation: job.relation.clone(),
            completion_tokens: answer.completion_tokens,
            structured: answer.structured,
            ..Default::default()
        };
        let mut reject = |entry: &mut DoneEntry, reason: &str, detail: Value| -> Result<()> {
            *entry.rejected.entry(reason.to_string()).or_default() += 1;
            append(
                &mut rejected_file,
                &serde_json::json!({"prompt_id": job.id, "relation": job.relation, "reason": reason, "answer": detail}),
            )
        };
        match &job.kind {
            JobKind::Explain {
                subject,
                object,
                sentence,
            } => {
                entry.asked = 1;
                match check_explanation(&answer.content, &job.relation, subject, object, sentence, &job.id) {
                    Ok(record) if !seen.insert(dedup_key(&record.generated_text)) => {
                        reject(&mut entry, "duplicate", Value::String(answer.content.clone()))?;
                    }
                    Ok(record) => {
                        append(&mut records_file, &record)?;
                        entry.valid += 1;
                    }
                    Err(reason) => reject(&mut entry, reason, Value::String(answer.content.clone()))?,
                }
            }
            JobKind::Samples { n } => {
                entry.asked = *n;
                let relation = schema
                    .get(&job.relation)
                    .context("internal: job for a relation not in the schema")?;
                let samples = parse_samples(&answer.content);
                if samples.is_empty() {
                    reject(
                        &mut entry,
                        "no sample could be read from the answer",
                        Value::String(answer.content.clone()),
                    )?;
                }
                for raw in samples.iter().take(*n) {
                    let detail = serde_json::json!({
                        "text": raw.text, "head": raw.head, "head_type": raw.head_type,
                        "tail": raw.tail, "tail_type": raw.tail_type, "relation": raw.relation,
                    });
                    let checked = check_sample(raw, relation, &job.id).and_then(|record| {
                        let pattern = pattern_words(&record);
                        let known = patterns.entry(record.relation.clone()).or_default();
                        let repeats = known
                            .iter()
                            .filter(|p| jaccard(p, &pattern) >= SAME_PATTERN)
                            .count();
                        if repeats >= PATTERN_REPEATS {
                            return Err("the sentence pattern of two other samples");
                        }
                        if !seen.insert(dedup_key(&record.text)) {
                            return Err("duplicate");
                        }
                        known.push(pattern);
                        Ok(record)
                    });
                    match checked {
                        Ok(record) => {
                            entry.repaired += usize::from(record.repaired);
                            append(&mut records_file, &record)?;
                            entry.valid += 1;
                        }
                        Err(reason) => reject(&mut entry, reason, detail)?,
                    }
                }
            }
            JobKind::Types => {
                entry.asked = 1;
                match check_types(&answer.content, &job.relation, &schema.type_inventory(), &job.id) {
                    Ok(record) => {
                        append(&mut records_file, &record)?;
                        entry.valid += 1;
                    }
                    Err(reason) => reject(&mut entry, reason, Value::String(answer.content.clone()))?,
                }
            }
            JobKind::Paraphrase { original, n } => {
                entry.asked = *n;
                let relation = schema
                    .get(&job.relation)
                    .context("internal: job for a relation not in the schema")?;
                let sentences = parse_paraphrases(&answer.content);
                if sentences.is_empty() {
                    reject(
                        &mut entry,
                        "no sentence could be read from the answer",
                        Value::String(answer.content.clone()),
                    )?;
                }
                for sentence in sentences.iter().take(*n) {
                    let detail = serde_json::json!({"text": sentence, "original": original.text});
                    match check_paraphrase(sentence, original, relation, &job.id) {
                        Ok(record) if !seen.insert(dedup_key(&record.text)) => {
                            reject(&mut entry, "duplicate", detail)?
                        }
                        Ok(record) => {
                            entry.repaired += usize::from(record.repaired);
                            append(&mut records_file, &record)?;
                            entry.valid += 1;
                        }
                        Err(reason) => reject(&mut entry, reason, detail)?,
                    }
                }
            }
        }
        append(&mut done_file, &entry)?;
        report
            .relations
            .entry(job.relation.clone())
            .or_default()
            .add_prompt(&entry);
        rejected_now += entry.rejected.values().sum::<usize>();
        report.completion_tokens += entry.completion_tokens;
        tokens_now += entry.completion_tokens;
        valid_now += entry.valid;
        let rate = tokens_now as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{valid_now} valid, {rejected_now} rejected, {rate:.0} tok/s"
        ));
    }
    bar.finish();
    report.elapsed_s = started.elapsed().as_secs_f64();
    fs::write(&report_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", report_path.display()))?;
    Ok(report)
}
