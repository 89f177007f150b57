//! `tkre synthesize`: step one of TKRE, knowledge synthesis with an LLM.
//!
//! - `explain` (EDKG): for seed examples of each relation, why does the subject hold the
//!   relation with the object in this sentence?
//! - `samples` (SCDG): new sentences for each relation of the schema, with typed head and
//!   tail entities, from a few demonstrations.
//! - `schema`: a relation schema from FewRel's `pid2name.json` or TACRED-style records.
//!
//! Outputs are JSON lines in the record shapes `tkre pretrain` reads.

pub mod answers;
pub mod client;
pub mod prompts;
pub mod run;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::pretrain::corpus::{CorpusReport, PretrainRecord, load_files};
use answers::{SampleRecord, dedup_key};
use client::{ChatClient, ClientConfig, Structured};
use prompts::{Template, demonstration};
use run::{Job, JobKind, Report};
use schema::RelationSchema;

#[derive(Subcommand, Debug, Clone)]
pub enum SynthesizeCommand {
    /// EDKG: explanations of why each seed example holds its relation.
    Explain(ExplainArgs),
    /// SCDG: new typed example sentences per relation of the schema.
    Samples(SamplesArgs),
    /// The entity types of each relation's head and tail, asked once per relation; `tkre
    /// synthesize schema --types` puts them in the schema, and `samples` then checks the
    /// direction of every pair against them.
    Types(TypesArgs),
    /// Differently worded sentences for triples already synthesised (positive pairs).
    Paraphrases(ParaphraseArgs),
    /// Write a relation schema (JSON) from FewRel's pid2name.json or TACRED-style records.
    Schema(SchemaArgs),
}

/// The LLM server and the run's files, shared by `explain` and `samples`.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// OpenAI-compatible API base, e.g. http://127.0.0.1:8080/v1 (llama.cpp, vLLM, Ollama's
    /// /v1, a hosted API), or the full .../chat/completions URL.
    #[arg(long)]
    pub endpoint: String,
    /// The LLM's name, as the server knows it (`--model` always names an encoder directory).
    #[arg(long, value_name = "NAME")]
    pub llm: String,
    /// Name of the environment variable holding the API key (never a flag or a file).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Retries per request (exponential back-off) after a timeout, connection error, 429 or 5xx.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Seconds before a request is abandoned (and retried).
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.1)]
    pub temperature: f64,
    /// Most tokens in one answer.
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: u32,
    /// Structured output (response_format with a JSON schema): auto falls back to free text
    /// when the server refuses it.
    #[arg(long, value_enum, default_value = "auto")]
    pub structured: Structured,
    /// Relation schema (JSON or TOML; see `tkre synthesize schema`).
    #[arg(long, value_name = "FILE")]
    pub schema: PathBuf,
    /// Seed examples (repeatable): FewRel-format files or JSON lines with a `relation`.
    #[arg(long, value_name = "FILE")]
    pub seeds: Vec<PathBuf>,
    /// Relations never to synthesise for (names or ids, comma-separated, or @FILE with one
    /// per line): keep the evaluation relations out of the pre-training corpus.
    #[arg(long, value_name = "LIST")]
    pub exclude_relations: Option<String>,
    /// Only these relations (same syntax).
    #[arg(long, value_name = "LIST")]
    pub only_relations: Option<String>,
    /// Output JSON lines (plus .done.jsonl, .rejected.jsonl and .report.json beside it).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Continue the run in --out: prompts already answered are not sent again.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar or notes on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Seed examples explained per relation.
    #[arg(long, default_value_t = 6)]
    pub per_relation: usize,
    /// Prompt template file (placeholders: {subject} {relation} {object} {sentence} {description}).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct SamplesArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Samples asked for per prompt.
    #[arg(long, default_value_t = 8)]
    pub n: usize,
    /// Prompts per relation (each with the next demonstrations).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Demonstrations per prompt.
    #[arg(long, default_value_t = 3)]
    pub demonstrations: usize,
    /// Prompt template file (placeholders: {entity_types} {relation} {description}
    /// {demonstrations} {n}).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct TypesArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Prompt template file (placeholders: {entity_types} {relation} {description}).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ParaphraseArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Samples to reword (the output of `tkre synthesize samples`).
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// Triples reworded per relation (the first ones in --from).
    #[arg(long, default_value_t = 2)]
    pub per_relation: usize,
    /// New sentences asked for per triple.
    #[arg(long, default_value_t = 2)]
    pub n: usize,
    /// Prompt template file (placeholders: {n} {head} {tail} {relation} {sentence} {description}).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct SchemaArgs {
    /// FewRel's pid2name.json (Wikidata properties).
    #[arg(long, value_name = "FILE", conflicts_with = "from_tacred")]
    pub from_pid2name: Option<PathBuf>,
    /// TACRED-style records (relation, subj_type, obj_type), JSON array or lines.
    #[arg(long, value_name = "FILE")]
    pub from_tacred: Option<PathBuf>,
    /// Head and tail types from `tkre synthesize types` (its output file) to put in the schema.
    #[arg(long, value_name = "FILE")]
    pub types: Option<PathBuf>,
    /// The schema written (JSON).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

fn relation_list(list: &Option<String>) -> Result<Option<BTreeSet<String>>> {
    let Some(list) = list else { return Ok(None) };
    let text = match list.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => list.replace(',', "\n"),
    };
    Ok(Some(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
    ))
}

/// The schema with exclusions applied, and the seed examples per (schema) relation.
fn load_inputs(server: &ServerArgs) -> Result<(RelationSchema, BTreeMap<String, Vec<PretrainRecord>>)> {
    let mut schema = RelationSchema::from_file(&server.schema)?;
    let excluded = relation_list(&server.exclude_relations)?.unwrap_or_default();
    schema.exclude(&excluded);
    if let Some(only) = relation_list(&server.only_relations)? {
        schema
            .relations
            .retain(|r| only.contains(&r.name) || r.id.as_ref().is_some_and(|id| only.contains(id)));
    }
    if schema.relations.is_empty() {
        bail!("no relation of the schema is left after --exclude-relations / --only-relations");
    }
    let mut seeds: BTreeMap<String, Vec<PretrainRecord>> = BTreeMap::new();
    if !server.seeds.is_empty() {
        let mut report = CorpusReport::default();
        let records = load_files(&server.seeds, &mut report)?;
        if report.skipped_total() > 0 && !server.quiet {
            eprintln!("seeds: {}", report.describe());
        }
        let mut unknown = BTreeSet::new();
        for record in records {
            let Some(label) = &record.relation else { continue };
            if excluded.contains(label) {
                continue;
            }
            match schema.get(label) {
                Some(relation) => seeds.entry(relation.name.clone()).or_default().push(record),
                None => {
                    unknown.insert(label.clone());
                }
            }
        }
        if !unknown.is_empty() && !server.quiet {
            eprintln!(
                "seeds: {} relation(s) not in the schema (or excluded) are ignored: {}",
                unknown.len(),
                unknown.into_iter().take(10).collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok((schema, seeds))
}

fn client(server: &ServerArgs) -> Result<ChatClient> {
    let api_key = std::env::var(&server.api_key_env).ok().filter(|k| !k.is_empty());
    ChatClient::new(ClientConfig {
        endpoint: server.endpoint.clone(),
        model: server.llm.clone(),
        api_key,
        timeout: Duration::from_secs_f64(server.timeout.max(0.1)),
        retries: server.retries,
        temperature: server.temperature,
        max_tokens: server.max_tokens,
        structured: server.structured,
    })
}

fn template(path: &Option<PathBuf>, builtin: &str, allowed: &[&str]) -> Result<Template> {
    match path {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Template::new(&text, allowed, &path.display().to_string())
        }
        None => Template::new(builtin, allowed, "built-in template"),
    }
}

/// EDKG prompts: one per seed example (up to `per_relation` per relation).
pub fn explain_jobs(
    schema: &RelationSchema,
    seeds: &BTreeMap<String, Vec<PretrainRecord>>,
    per_relation: usize,
    template: &Template,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    for relation in &schema.relations {
        for (i, seed) in seeds
            .get(&relation.name)
            .into_iter()
            .flatten()
            .take(per_relation)
            .enumerate()
        {
            let (subject, object) = (seed.instance.head_text(), seed.instance.tail_text());
            let sentence = seed.instance.text.clone();
            let prompt = template.fill(&[
                ("subject", &subject),
                ("relation", &relation.name),
                ("object", &object),
                ("sentence", &sentence),
                ("description", relation.description.as_deref().unwrap_or("")),
            ]);
            jobs.push(Job {
                id: format!("explain:{}:{i}", relation.name),
                relation: relation.name.clone(),
                prompt,
                format: Some(prompts::explain_format()),
                kind: JobKind::Explain {
                    subject,
                    object,
                    sentence,
                },
            });
        }
    }
    jobs
}

/// SCDG prompts: `rounds` per relation, each with the next `demonstrations` seed examples.
pub fn samples_jobs(
    schema: &RelationSchema,
    seeds: &BTreeMap<String, Vec<PretrainRecord>>,
    n: usize,
    rounds: usize,
    demonstrations: usize,
    template: &Template,
) -> Vec<Job> {
    let types = if schema.entity_types.is_empty() {
        "any".to_string()
    } else {
        schema.entity_types.join(", ")
    };
    let mut jobs = Vec::new();
    for relation in &schema.relations {
        let examples = seeds.get(&relation.name).map(Vec::as_slice).unwrap_or_default();
        for round in 0..rounds {
            let mut shown = String::new();
            for j in 0..demonstrations.min(examples.len()) {
                let seed = &examples[(round * demonstrations + j) % examples.len()];
                let instance = &seed.instance;
                let ty = |t: &Option<String>, allowed: &[String]| {
                    t.clone()
                        .or_else(|| allowed.first().cloned())
                        .unwrap_or_else(|| "MISC".into())
                        .to_uppercase()
                };
                shown.push_str(&demonstration(
                    &relation.name,
                    &instance.text,
                    &instance.head_text(),
                    &ty(&instance.head_type, &relation.head_types),
                    &instance.tail_text(),
                    &ty(&instance.tail_type, &relation.tail_types),
                ));
            }
            let n_text = n.to_string();
            let either = |types: &[String]| {
                if types.is_empty() {
                    "any".to_string()
                } else {
                    types.join(" or ")
                }
            };
            let prompt = template.fill(&[
                ("head_types", &either(&relation.head_types)),
                ("tail_types", &either(&relation.tail_types)),
                ("entity_types", &types),
                ("relation", &relation.name),
                ("description", relation.description.as_deref().unwrap_or("")),
                ("demonstrations", &shown),
                ("n", &n_text),
            ]);
            jobs.push(Job {
                id: format!("samples:{}:{round}", relation.name),
                relation: relation.name.clone(),
                prompt,
                format: Some(prompts::samples_format(&schema.entity_types, n)),
                kind: JobKind::Samples { n },
            });
        }
    }
    jobs
}

/// Type prompts: one per relation that has no head or tail types yet.
pub fn types_jobs(schema: &RelationSchema, template: &Template) -> Vec<Job> {
    let inventory = schema.type_inventory();
    let glossed: Vec<String> = inventory
        .iter()
        .map(
            |t| match schema::ENTITY_TYPES.iter().find(|(name, _)| name == t) {
                Some((name, gloss)) => format!("{name} ({gloss})"),
                None => t.clone(),
            },
        )
        .collect();
    let entity_types = glossed.join(", ");
    schema
        .relations
        .iter()
        .filter(|r| r.head_types.is_empty() || r.tail_types.is_empty())
        .map(|relation| Job {
            id: format!("types:{}", relation.name),
            relation: relation.name.clone(),
            prompt: template.fill(&[
                ("entity_types", &entity_types),
                ("relation", &relation.name),
                (
                    "description",
                    relation.description.as_deref().unwrap_or("no description"),
                ),
            ]),
            format: Some(prompts::types_format(&inventory)),
            kind: JobKind::Types,
        })
        .collect()
}

/// A short stable hash (FNV-1a) for prompt ids derived from text.
fn text_id(text: &str) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}

/// Paraphrase prompts: the first `per_relation` samples of each schema relation in `samples`
/// (paraphrases themselves are not reworded again).
pub fn paraphrase_jobs(
    schema: &RelationSchema,
    samples: &[SampleRecord],
    per_relation: usize,
    n: usize,
    template: &Template,
) -> Vec<Job> {
    let mut taken: BTreeMap<&str, usize> = BTreeMap::new();
    let mut jobs = Vec::new();
    for sample in samples.iter().filter(|s| s.paraphrase_of.is_none()) {
        let Some(relation) = schema.get(&sample.relation) else {
            continue;
        };
        let count = taken.entry(relation.name.as_str()).or_default();
        if *count >= per_relation {
            continue;
        }
        *count += 1;
        let n_text = n.to_string();
        jobs.push(Job {
            id: format!(
                "paraphrase:{}:{}",
                relation.name,
                text_id(&dedup_key(&sample.text))
            ),
            relation: relation.name.clone(),
            prompt: template.fill(&[
                ("n", &n_text),
                ("head", &sample.subj),
                ("tail", &sample.obj),
                ("relation", &relation.name),
                ("sentence", &sample.text),
                ("description", relation.description.as_deref().unwrap_or("")),
            ]),
            format: Some(prompts::paraphrase_format(n)),
            kind: JobKind::Paraphrase {
                original: Box::new(sample.clone()),
                n,
            },
        });
    }
    jobs
}

/// The records of a JSON-lines file written by `tkre synthesize` (`what` names the command
/// in errors, with the line of any record that cannot be read).
fn read_json_lines<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<Vec<T>> {
    read(path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| {
                format!(
                    "{}:{}: not a record of `tkre synthesize {what}`",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

fn execute(server: &ServerArgs, schema: &RelationSchema, jobs: Vec<Job>) -> Result<Report> {
    if jobs.is_empty() {
        bail!(
            "nothing to ask: no relation of the schema has seed examples (give --seeds), needs \
             types, or has samples to reword"
        );
    }
    let client = client(server)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if !server.quiet {
        eprintln!("{} prompts to {} ({})", jobs.len(), client.url(), server.llm);
    }
    runtime.block_on(run::run_jobs(
        &client,
        schema,
        jobs,
        &server.out,
        server.resume,
        server.concurrency,
        server.quiet,
    ))
}

fn finish(server: &ServerArgs, report: &Report) -> ExitCode {
    if !server.quiet {
        eprint!("{}", report.table());
        eprintln!("records in {}", server.out.display());
    }
    let failed: usize = report.relations.values().map(|y| y.failed_requests).sum();
    if failed > 0 {
        eprintln!("{failed} request(s) failed after retries; run again with --resume to retry them");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub fn run(command: SynthesizeCommand) -> Result<ExitCode> {
    match command {
        SynthesizeCommand::Explain(args) => {
            let (schema, seeds) = load_inputs(&args.server)?;
            let template = template(
                &args.template,
                prompts::EXPLAIN_TEMPLATE,
                prompts::EXPLAIN_PLACEHOLDERS,
            )?;
            let jobs = explain_jobs(&schema, &seeds, args.per_relation, &template);
            let report = execute(&args.server, &schema, jobs)?;
            Ok(finish(&args.server, &report))
        }
        SynthesizeCommand::Samples(args) => {
            if args.n == 0 || args.rounds == 0 {
                bail!("--n and --rounds must be at least 1");
            }
            let (schema, seeds) = load_inputs(&args.server)?;
            let template = template(
                &args.template,
                prompts::SAMPLES_TEMPLATE,
                prompts::SAMPLES_PLACEHOLDERS,
            )?;
            let jobs = samples_jobs(
                &schema,
                &seeds,
                args.n,
                args.rounds,
                args.demonstrations,
                &template,
            );
            let report = execute(&args.server, &schema, jobs)?;
            Ok(finish(&args.server, &report))
        }
        SynthesizeCommand::Types(args) => {
            let (schema, _) = load_inputs(&args.server)?;
            let template = template(
                &args.template,
                prompts::TYPES_TEMPLATE,
                prompts::TYPES_PLACEHOLDERS,
            )?;
            let report = execute(&args.server, &schema, types_jobs(&schema, &template))?;
            Ok(finish(&args.server, &report))
        }
        SynthesizeCommand::Paraphrases(args) => {
            if args.n == 0 || args.per_relation == 0 {
                bail!("--n and --per-relation must be at least 1");
            }
            let (schema, _) = load_inputs(&args.server)?;
            let template = template(
                &args.template,
                prompts::PARAPHRASE_TEMPLATE,
                prompts::PARAPHRASE_PLACEHOLDERS,
            )?;
            let samples: Vec<SampleRecord> = read_json_lines(&args.from, "samples")?;
            let jobs = paraphrase_jobs(&schema, &samples, args.per_relation, args.n, &template);
            let report = execute(&args.server, &schema, jobs)?;
            Ok(finish(&args.server, &report))
        }
        SynthesizeCommand::Schema(args) => {
            let mut schema = match (&args.from_pid2name, &args.from_tacred) {
                (Some(path), None) => RelationSchema::from_pid2name(&read(path)?)?,
                (None, Some(path)) => RelationSchema::from_tacred_records(&read(path)?)?,
                _ => bail!("give --from-pid2name FILE or --from-tacred FILE"),
            };
            if let Some(path) = &args.types {
                let answers: Vec<schema::RelationTypes> = read_json_lines(path, "types")?;
                let typed = schema.apply_types(&answers)?;
                eprintln!("types for {typed} of {} relations", schema.relations.len());
            }
            schema.validate("converted schema")?;
            std::fs::write(&args.out, serde_json::to_vec_pretty(&schema)?)
                .with_context(|| format!("writing {}", args.out.display()))?;
            eprintln!(
                "{} relations written to {}",
                schema.relations.len(),
                args.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
