//! `tkre extract`: relations in a document. The document (stdin, or --input) is split into
//! sentences; in each, entity mentions are found (marked spans, an entity list, the mention
//! proposer) and every ordered pair of them is classified against the support set. One JSON
//! line per sentence: `{"sentence": {start, end}, "mentions": [...], "triples": [{head, tail,
//! relation, score, similarity, sentence}]}`, offsets in code points of the document.
//! Sentences go through the model in slices of --batch-size, with a progress bar on stderr;
//! Ctrl-C stops after the slice in flight, keeping every result written so far.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::Args;
use tkre::Extractor;
use tkre::engine::block_on;
use tkre::fewshot::SupportSet;
use tkre::fewshot::document::{MentionOptions, check_marked};
use tkre::text::CharSpan;
use tkre::text::mentions::EntityList;
use tkre::text::sentences::split_sentences;

mod evaluate;

use crate::ModelArgs;
use crate::output::{Output, OutputArgs};
use crate::runtime::load_encoder;

#[derive(Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Support set JSON: the relations to find, as for `tkre classify`.
    #[arg(long, value_name = "FILE.json", required_unless_present_any = ["evaluate_mentions", "evaluate_triples"])]
    support: Option<PathBuf>,
    /// The document (UTF-8 text) [default: stdin].
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Entity list: a JSON array of names or {"name", "aliases"}, or one name per line with
    /// aliases after tabs; matched case-insensitively on word boundaries.
    #[arg(long, value_name = "FILE")]
    entities: Option<PathBuf>,
    /// Mentions marked by hand: a JSON array of {"start", "end"} (code points of the
    /// document); they always count.
    #[arg(long, value_name = "FILE")]
    mentions: Option<PathBuf>,
    /// The learned mention proposer: a head trained by `tkre train-mentions` [default: the
    /// model's mention_head.json, if it has one; else the rules].
    #[arg(long, value_name = "FILE.json")]
    mention_head: Option<PathBuf>,
    /// Propose mentions with the rules even if the model has a learned proposer.
    #[arg(long, conflicts_with = "mention_head")]
    rules: bool,
    /// Only marked and listed mentions: no proposed ones.
    #[arg(long)]
    no_proposer: bool,
    /// Similarity below which a pair has no relation, in -1..1 [default: the support set's,
    /// else the model's recommended threshold].
    #[arg(long, value_name = "SIMILARITY", allow_negative_numbers = true, value_parser = crate::none_threshold)]
    threshold: Option<f32>,
    /// How pairs are shown to the encoder: `unmarked` reads each sentence once for all its
    /// pairs (entity spans pooled from one pass); `marked` encodes every pair with entity
    /// markers, one pass each, as `tkre classify` does (slower; for comparison).
    #[arg(long, default_value = "unmarked", value_parser = crate::marking_parser())]
    marking: tkre::text::Marking,
    /// Keep pairs that are closer to the other pairs of their relation's example sentences
    /// than to the relation (by default they are dropped: in a sentence that states a
    /// relation, the wrong pairs of its mentions look like it too). Unmarked extraction only.
    #[arg(long)]
    keep_wrong_pairs: bool,
    /// How much the support examples' entities choose among the learned proposer's
    /// candidates: the weight of a candidate's likeness (a cosine) to the nearest of them,
    /// beside the proposer's score; how many it proposes stays its own. 0 turns it off.
    /// Unmarked extraction only; with --evaluate-mentions, the guided row's weight.
    #[arg(long, value_name = "W", allow_negative_numbers = true, default_value_t = tkre::fewshot::mention_head::GUIDE_WEIGHT)]
    entity_guide_weight: f32,
    /// The learned proposer may give a mention inside another ("soprano" in "English
    /// soprano"): more entities are found, and more wrong pairs with them. A pair of
    /// overlapping mentions is never classified, and of triples of one relation between
    /// nested mentions the best-scoring one is kept.
    #[arg(long)]
    nested_mentions: bool,
    /// Sentences without a triple are left out of the output.
    #[arg(long)]
    only_triples: bool,
    /// No progress bar on stderr.
    #[arg(long)]
    quiet: bool,
    /// Measure the mention proposer instead of extracting: on sentences with a gold head and
    /// tail (FewRel-format JSON, a JSON list of FewRel records, or a corpus file), the share
    /// of sentences whose two entities are both proposed exactly, and proposals per sentence.
    /// --support is not read. Where the sentences have relations, --support-examples of each
    /// (drawn with --seed) are set aside as a support set whose entities guide the learned
    /// proposer: a row beside the unguided ones, all measured on the other sentences.
    #[arg(long, value_name = "FILE.json")]
    evaluate_mentions: Option<PathBuf>,
    /// Measure extraction end to end instead: on a FewRel-format file (or a corpus file of
    /// relation-labelled records, to tune on held-out relations), a support set of
    /// --support-examples sentences per relation and --sentences-per-relation others extracted
    /// without marks; the share of gold triples found (right relation and direction) and
    /// triples per sentence, over thresholds, with proposed and with gold mentions (and with
    /// relation text, given --relation-descriptions). Writes --out (JSON) and --plot (SVG).
    #[arg(long, value_name = "FILE.json", conflicts_with = "evaluate_mentions")]
    evaluate_triples: Option<PathBuf>,
    /// --evaluate-triples (and --evaluate-mentions' guide): support examples per relation.
    #[arg(long, default_value_t = 5, value_name = "K")]
    support_examples: usize,
    /// --evaluate-triples: test sentences per relation.
    #[arg(long, default_value_t = 50, value_name = "N")]
    sentences_per_relation: usize,
    /// --evaluate-triples and --evaluate-mentions: seed of the sampler.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// --evaluate-triples: relation names and descriptions (pid2name.json), measured beside
    /// the plain numbers.
    #[arg(long, value_name = "FILE")]
    relation_descriptions: Option<PathBuf>,
    /// --evaluate-triples: the curve as an SVG figure.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(args: ExtractArgs) -> Result<ExitCode> {
    if let Some(path) = &args.evaluate_mentions {
        return evaluate::mentions(&args, path);
    }
    if let Some(path) = &args.evaluate_triples {
        return evaluate::triples(&args, path);
    }
    let support_path = args.support.clone().context("--support FILE.json is required")?;
    let json = std::fs::read_to_string(&support_path)
        .with_context(|| format!("reading support set {}", support_path.display()))?;
    let support = SupportSet::from_json(&json, &support_path.display().to_string())?;
    support.parse()?;
    let text = read_document(args.input.as_ref())?;
    let entities = match &args.entities {
        Some(path) => {
            let list =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Some(EntityList::parse(&list, &path.display().to_string())?)
        }
        None => None,
    };
    let marked: Vec<CharSpan> = match &args.mentions {
        Some(path) => {
            let list =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&list).with_context(|| {
                format!(
                    "{}: mentions are a JSON array of {{\"start\", \"end\"}}",
                    path.display()
                )
            })?
        }
        None => Vec::new(),
    };
    check_marked(&text, &marked)?;
    let options = MentionOptions {
        marked,
        entities,
        propose: !args.no_proposer,
    };

    let encoder = load_encoder(&args.model)?;
    let head = mention_head(&args, encoder.config.hidden_size)?;
    let extractor = Extractor::new(encoder);
    extractor.set_extraction_marking(args.marking);
    extractor.set_wrong_pair_filter(!args.keep_wrong_pairs);
    extractor.set_entity_guide_weight(args.entity_guide_weight)?;
    extractor.set_nested_mentions(args.nested_mentions);
    extractor.set_mention_head(head)?;
    block_on(extractor.load_support_set(&support))
        .and_then(|_| extractor.classifier())
        .with_context(|| format!("support set {}", support_path.display()))?;

    let sentences = split_sentences(&text);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C ends at once (the default).
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        })
        .context("installing the Ctrl-C handler")?;
    }
    let bar = crate::evaluation_progress(!args.quiet, sentences.len(), "sentences");
    let mut out = Output::open(&args.output)?;
    let mut done = 0;
    let mut triples = 0;
    for slice in sentences.chunks(args.model.batch_size) {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        for result in block_on(extractor.extract_sentences(&text, slice, &options, args.threshold))? {
            triples += result.triples.len();
            if args.only_triples && result.triples.is_empty() {
                continue;
            }
            out.write(&result, |w| {
                for t in &result.triples {
                    writeln!(
                        w,
                        "{}\t{}\t{}\t{:.3}\t{}..{}",
                        t.head.text, t.relation, t.tail.text, t.score, t.sentence.start, t.sentence.end
                    )?;
                }
                Ok(())
            })?;
        }
        done += slice.len();
        bar.set_position(done as u64);
    }
    bar.finish_and_clear();
    out.finish()?;
    if done < sentences.len() {
        eprintln!(
            "interrupted: {done} of {} sentences done ({triples} triples written)",
            sentences.len()
        );
        return Ok(ExitCode::from(130));
    }
    if !args.quiet {
        eprintln!("{} sentences, {triples} triples", sentences.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// The learned mention proposer: `--mention-head`, else the model's `mention_head.json` if it
/// has one.
pub(crate) fn mention_head(
    args: &ExtractArgs,
    hidden_size: usize,
) -> Result<Option<tkre::fewshot::mention_head::MentionHead>> {
    if args.rules {
        return Ok(None);
    }
    let path = match &args.mention_head {
        Some(path) => path.clone(),
        None => {
            let default = crate::runtime::model_dir(&args.model).join("mention_head.json");
            if !default.exists() {
                return Ok(None);
            }
            default
        }
    };
    let json = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(tkre::fewshot::mention_head::MentionHead::from_json(
        &json,
        &path.display().to_string(),
        hidden_size,
    )?))
}

/// The document's text: a file or stdin, which must be UTF-8.
fn read_document(input: Option<&PathBuf>) -> Result<String> {
    let mut bytes = Vec::new();
    let origin = match input {
        Some(path) => {
            bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            path.display().to_string()
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading stdin")?;
            "stdin".to_string()
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{origin} is not UTF-8 text (invalid byte at offset {}); convert it first, e.g. with iconv",
            e.utf8_error().valid_up_to()
        )
    })
}
