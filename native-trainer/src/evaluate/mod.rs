//! `tkre eval`: N-way K-shot accuracy over a FewRel-format file.
//!
//! Episodes are sampled first (fixed seed, one sequence per setting), then every instance
//! any episode of any setting uses is encoded once, then each episode's queries are
//! classified against its prototypes. With `--relation-descriptions`, every setting is scored
//! twice on the same episodes, without and with relation text fused into the prototypes (and
//! K = 0 is zero-shot: text alone). `--report` evaluates several models and writes the
//! accuracy report ([`report`]).

mod plot;
mod report;

pub(crate) use tkre_trainer::evaluation::{
    SettingResult, check_settings, evaluate, fewrel, parse_setting, relation_text, without_relations,
};

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;
use tkre::fewshot::Representation;
use tkre::text::Marking;

use crate::ModelArgs;
use crate::runtime::load_encoder;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled relation instances: FewRel-format JSON {"relation_id": [{"tokens", "h", "t"},
    /// ...]}, or a corpus file with relation labels (JSON lines of offsets or marked records,
    /// or synthesis outputs).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Relations per episode.
    #[arg(long, default_value_t = 5)]
    n: usize,
    /// Support examples per relation (0: zero-shot, relation text alone; needs
    /// --relation-descriptions).
    #[arg(long, visible_alias = "shots", default_value_t = 1)]
    k: usize,
    /// Query instances per relation and episode.
    #[arg(long, default_value_t = 1)]
    queries: usize,
    /// Episodes sampled.
    #[arg(long, default_value_t = 1000)]
    episodes: usize,
    /// Seed of the episode sampler (the same seed, the same episodes for every model).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Relation representation.
    #[arg(long, default_value_t = Representation::default(), value_parser = crate::representation_parser())]
    representation: Representation,
    /// How the entities are shown to the encoder: `marked` (punctuation markers, one encoder
    /// pass per pair) or `unmarked` (the plain sentence, pooled over the entities' word
    /// pieces: one pass serves every pair of a sentence, as `tkre extract` can).
    #[arg(long, default_value = "marked", value_parser = crate::marking_parser())]
    marking: Marking,
    /// The queries' marking when it differs from the support examples' (--marking).
    #[arg(long, value_parser = crate::marking_parser())]
    query_marking: Option<Marking>,
    #[command(flatten)]
    output: crate::output::OutputArgs,
    /// Relations (ids as in the data file, e.g. P931) left out of every episode: those used
    /// in any training of the evaluated models. Comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    exclude_relations: Vec<String>,
    /// Relation text, fused into the prototypes: pid2name.json's shape `{"P19": [name,
    /// description]}` or a plain `{"P19": "text"}` map. Results are reported without and with
    /// it, on the same episodes.
    #[arg(long, value_name = "FILE")]
    relation_descriptions: Option<PathBuf>,
    /// Report mode: evaluate every --row in every --settings and write PREFIX.md,
    /// PREFIX.json and PREFIX.svg (e.g. reports/accuracy). A row whose model files and
    /// protocol are unchanged since PREFIX.json keeps its accuracy (its latency is measured
    /// again), so an interrupted report resumes.
    #[arg(long, value_name = "PREFIX")]
    report: Option<PathBuf>,
    /// A report row: NAME=DIR (a checkpoint or exported model directory). Repeatable.
    #[arg(long = "row", value_name = "NAME=DIR")]
    rows: Vec<String>,
    /// Report settings, N-K each.
    #[arg(long, value_delimiter = ',', default_value = "5-1,5-5,10-1,10-5")]
    settings: Vec<String>,
    /// Published reference rows for the report (JSON: [{model, split, "5-1", ..., source}]).
    #[arg(long, value_name = "FILE")]
    references: Option<PathBuf>,
    /// Browser benchmark JSON files (the browser benchmark's output; repeatable); each one's latencies go to
    /// the row whose model files have the benchmarked size.
    #[arg(long, value_name = "FILE")]
    browser_bench: Vec<PathBuf>,
}

#[derive(Serialize)]
struct EvalReport {
    n: usize,
    k: usize,
    episodes: usize,
    /// With relation text when `relation_text` is set, else from the examples alone.
    accuracy: f64,
    ci95: f64,
    /// The relation-text file fused into the prototypes, if any.
    relation_text: Option<String>,
    /// The same episodes without relation text (absent at K = 0 or without a text file).
    #[serde(skip_serializing_if = "Option::is_none")]
    without_relation_text: Option<Accuracy>,
    queries: usize,
    seed: u64,
    representation: String,
    marking: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_marking: Option<String>,
    model: String,
    data: String,
    relations: usize,
    skipped_records: usize,
}

#[derive(Serialize)]
struct Accuracy {
    accuracy: f64,
    ci95: f64,
}

/// Relation text for `data`'s relations from `--relation-descriptions`, if given.
pub(crate) fn relation_texts(
    args: &EvalArgs,
    data: &fewrel::FewRelData,
    required: bool,
) -> Result<Option<Vec<Option<String>>>> {
    let Some(path) = &args.relation_descriptions else {
        if required {
            bail!("--k 0 (zero-shot) classifies by relation text alone; give --relation-descriptions FILE");
        }
        return Ok(None);
    };
    let texts = relation_text::load(path)?;
    let ids: Vec<String> = data.relations.iter().map(|(r, _)| r.clone()).collect();
    Ok(Some(relation_text::for_relations(
        &texts,
        &ids,
        required,
        &path.display().to_string(),
    )?))
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    if args.n == 0 || args.queries == 0 || args.episodes == 0 {
        bail!("--n, --queries and --episodes must all be at least 1");
    }
    let origin = args.data.display().to_string();
    let data = fewrel::load_labelled(&args.data)?;
    if data.skipped > 0 {
        eprintln!(
            "warning: {} record(s) of {} skipped, e.g.:\n  {}",
            data.skipped,
            args.data.display(),
            data.skipped_examples.join("\n  ")
        );
    }
    let data = without_relations(data, &args.exclude_relations, &origin)?;
    if args.report.is_some() {
        return report::run(&args, &data);
    }
    if !args.rows.is_empty() {
        bail!("--row is for --report mode; give --report PREFIX too (or --model for one model)");
    }
    check_settings(&data, &[(args.n, args.k)], args.queries, &origin)?;
    let texts = relation_texts(&args, &data, args.k == 0)?;

    let encoder = load_encoder(&args.model)?;
    encoder.set_representation(args.representation);
    encoder.set_marking(args.marking);
    let results = evaluate(
        &encoder,
        &data,
        &[(args.n, args.k)],
        args.queries,
        args.episodes,
        args.seed,
        args.model.batch_size,
        texts.as_deref(),
        args.query_marking,
        true,
    )?;
    let main = results.iter().find(|r| r.relation_text == texts.is_some());
    let without = results.iter().find(|r| !r.relation_text && texts.is_some());
    let Some(result) = main else {
        bail!("no result for {}-way {}-shot", args.n, args.k);
    };
    let report = EvalReport {
        n: args.n,
        k: args.k,
        episodes: args.episodes,
        accuracy: result.accuracy,
        ci95: result.ci95,
        relation_text: args
            .relation_descriptions
            .as_ref()
            .map(|p| p.display().to_string()),
        without_relation_text: without.map(|r| Accuracy {
            accuracy: r.accuracy,
            ci95: r.ci95,
        }),
        queries: args.queries,
        seed: args.seed,
        representation: args.representation.to_string(),
        marking: args.marking.name().to_string(),
        query_marking: args.query_marking.map(|m| m.name().to_string()),
        model: args
            .model
            .model
            .as_ref()
            .map_or_else(|| "default".into(), |p| p.display().to_string()),
        data: origin,
        relations: data.relations.len(),
        skipped_records: data.skipped,
    };
    let mut out = crate::output::Output::open(&args.output)?;
    out.write(&report, |w| {
        writeln!(
            w,
            "{}-way {}-shot, {} episodes: {:.2} ± {:.2}%",
            report.n,
            report.k,
            report.episodes,
            report.accuracy * 100.0,
            report.ci95 * 100.0
        )?;
        if let Some(without) = &report.without_relation_text {
            writeln!(
                w,
                "  without relation text: {:.2} ± {:.2}%",
                without.accuracy * 100.0,
                without.ci95 * 100.0
            )?;
        }
        Ok(())
    })?;
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}
