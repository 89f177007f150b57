//! `tkre extract --evaluate-mentions` and `--evaluate-triples`: the mention proposer and the
//! whole extraction measured on FewRel-format data, where every sentence has a gold head and
//! tail and its relation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use plotters::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use tkre::Extractor;
use tkre::engine::block_on;
use tkre::fewshot::document::MentionOptions;
use tkre::fewshot::{ExampleInput, RelationExamples, SupportSet};
use tkre::text::{CharSpan, RelationInstance};

use super::ExtractArgs;
use crate::output::Output;
use crate::output::publishable_path;
use crate::runtime::load_encoder;
use tkre_trainer::evaluation::{fewrel, relation_text};

/// One sentence to extract, with its gold triple (spans relative to the sentence).
struct TestSentence {
    relation: String,
    instance: RelationInstance,
}

/// A point of the curve: at `threshold`, the share of gold triples found and the triples
/// predicted per sentence.
#[derive(Serialize, Clone, Copy)]
struct CurvePoint {
    threshold: f32,
    found: f64,
    triples_per_sentence: f64,
}

#[derive(Serialize)]
struct Variant {
    /// `proposed` (the mention proposer alone: end to end) or `gold` (the gold head and tail
    /// as the only mentions: pair classification alone).
    mentions: &'static str,
    relation_text: bool,
    /// Share of sentences whose gold head and tail were both among the mentions.
    gold_pair_mentioned: f64,
    mentions_per_sentence: f64,
    /// With every pair kept (no threshold): the gold triple is the best-scoring triple of its
    /// sentence.
    gold_triple_ranked_first: f64,
    curve: Vec<CurvePoint>,
    /// At the model's recommended threshold, if it has one.
    at_model_threshold: Option<CurvePoint>,
}

#[derive(Serialize)]
struct TriplesReport {
    data: String,
    model: String,
    marking: &'static str,
    wrong_pair_filter: bool,
    /// The weight of the support examples' entities in the learned proposer's choice (0:
    /// none).
    entity_guide_weight: f32,
    /// Whether the learned proposer's mentions could nest.
    nested_mentions: bool,
    /// The mention proposer of the `proposed` variants: `learned` or `rules`.
    proposer: &'static str,
    relations: usize,
    support_examples: usize,
    sentences: usize,
    seed: u64,
    seconds: f64,
    variants: Vec<Variant>,
}

pub(super) fn triples(args: &ExtractArgs, path: &Path) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let data = fewrel::load_labelled(path)?;
    let (k, m) = (args.support_examples, args.sentences_per_relation);
    if k == 0 || m == 0 {
        bail!("--support-examples and --sentences-per-relation must be at least 1");
    }
    let texts = match &args.relation_descriptions {
        Some(p) => Some(relation_text::load(p)?),
        None => None,
    };
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut relations = Vec::new();
    let mut tests = Vec::new();
    let short: Vec<&str> = data
        .relations
        .iter()
        .filter(|(_, v)| v.len() < k + m)
        .map(|(id, _)| id.as_str())
        .collect();
    if data.relations.len() - short.len() < 2 {
        bail!(
            "{}: fewer than 2 relations have the {} sentences --support-examples {k} and \
             --sentences-per-relation {m} need; ask for fewer",
            path.display(),
            k + m
        );
    }
    if !short.is_empty() {
        eprintln!(
            "{} relation(s) with fewer than {} sentences left out: {}",
            short.len(),
            k + m,
            short.join(", ")
        );
    }
    for (id, instances) in data.relations.iter().filter(|(_, v)| v.len() >= k + m) {
        let picked = rand::seq::index::sample(&mut rng, instances.len(), k + m).into_vec();
        relations.push((
            id.clone(),
            picked[..k]
                .iter()
                .map(|&i| ExampleInput::from(&instances[i]))
                .collect::<Vec<_>>(),
        ));
        tests.extend(picked[k..].iter().map(|&i| TestSentence {
            relation: id.clone(),
            instance: instances[i].clone(),
        }));
    }
    // The test sentences as one document, a line each.
    let mut document = String::new();
    let mut spans = Vec::with_capacity(tests.len());
    let mut at = 0;
    for test in &tests {
        let length = test.instance.text.chars().count();
        spans.push(CharSpan::new(at, at + length));
        document.push_str(&test.instance.text);
        document.push('\n');
        at += length + 1;
    }
    let shift = |span: CharSpan, by: usize| CharSpan::new(span.start + by, span.end + by);
    let gold: Vec<(CharSpan, CharSpan)> = tests
        .iter()
        .zip(&spans)
        .map(|(t, s)| (shift(t.instance.head, s.start), shift(t.instance.tail, s.start)))
        .collect();

    let encoder = load_encoder(&args.model)?;
    let model_threshold = encoder.calibration().map(|c| c.none_similarity);
    let head = super::mention_head(args, encoder.config.hidden_size)?;
    let proposer = if head.is_some() { "learned" } else { "rules" };
    let extractor = Extractor::new(encoder);
    extractor.set_extraction_marking(args.marking);
    extractor.set_wrong_pair_filter(!args.keep_wrong_pairs);
    extractor.set_entity_guide_weight(args.entity_guide_weight)?;
    extractor.set_nested_mentions(args.nested_mentions);
    extractor.set_mention_head(head)?;
    let bar = crate::evaluation_progress(!args.quiet, 0, "sentences");
    let mut variants = Vec::new();
    for with_text in [false, true] {
        if with_text && texts.is_none() {
            continue;
        }
        let set = SupportSet {
            version: Some(2),
            relations: relations
                .iter()
                .map(|(id, examples)| {
                    let text = texts.as_ref().and_then(|t| t.get(id)).filter(|_| with_text);
                    RelationExamples {
                        key: Some(id.clone()),
                        name: text.and_then(|t| t.name.clone()),
                        description: text.and_then(|t| t.description.clone()),
                        examples: examples.clone(),
                    }
                })
                .collect(),
            none_threshold: None,
        };
        block_on(extractor.load_support_set(&set))?;
        for mentions in ["proposed", "gold"] {
            let options = MentionOptions {
                marked: if mentions == "gold" {
                    gold.iter().flat_map(|&(h, t)| [h, t]).collect()
                } else {
                    Vec::new()
                },
                entities: None,
                propose: mentions == "proposed",
            };
            bar.reset();
            bar.set_length(spans.len() as u64);
            bar.set_message(format!(
                "{mentions} mentions{}",
                if with_text { ", relation text" } else { "" }
            ));
            // Per sentence: the gold triple's similarity if it was predicted with the right
            // relation, and every triple's similarity.
            let mut found: Vec<Option<f32>> = Vec::with_capacity(spans.len());
            let mut similarities: Vec<f32> = Vec::new();
            let (mut mentioned, mut mention_count, mut ranked_first) = (0usize, 0usize, 0usize);
            for (slice, golds) in spans
                .chunks(args.model.batch_size)
                .zip(gold.chunks(args.model.batch_size))
            {
                let results = block_on(extractor.extract_sentences(&document, slice, &options, Some(-1.0)))?;
                for ((result, &(head, tail)), s) in results.iter().zip(golds).zip(found.len()..) {
                    let is = |span: CharSpan, a: &tkre::fewshot::document::Argument| {
                        a.start == span.start && a.end == span.end
                    };
                    mention_count += result.mentions.len();
                    mentioned += usize::from(
                        result.mentions.iter().any(|m| m.span() == head)
                            && result.mentions.iter().any(|m| m.span() == tail),
                    );
                    let hit = result
                        .triples
                        .iter()
                        .find(|t| is(head, &t.head) && is(tail, &t.tail) && t.relation == tests[s].relation);
                    let best = result
                        .triples
                        .iter()
                        .map(|t| t.similarity)
                        .fold(f32::MIN, f32::max);
                    ranked_first += usize::from(hit.is_some_and(|h| h.similarity >= best));
                    found.push(hit.map(|t| t.similarity));
                    similarities.extend(result.triples.iter().map(|t| t.similarity));
                }
                bar.inc(slice.len() as u64);
            }
            let n = spans.len() as f64;
            let point = |threshold: f32| CurvePoint {
                threshold,
                found: found.iter().filter(|s| s.is_some_and(|s| s >= threshold)).count() as f64 / n,
                triples_per_sentence: similarities.iter().filter(|&&s| s >= threshold).count() as f64 / n,
            };
            variants.push(Variant {
                mentions,
                relation_text: with_text,
                gold_pair_mentioned: mentioned as f64 / n,
                mentions_per_sentence: mention_count as f64 / n,
                gold_triple_ranked_first: ranked_first as f64 / n,
                curve: (0..=50).map(|i| point(i as f32 * 0.02)).collect(),
                at_model_threshold: model_threshold.map(point),
            });
        }
    }
    bar.finish_and_clear();
    let report = TriplesReport {
        data: publishable_path(path),
        model: args
            .model
            .model
            .as_ref()
            .map_or_else(|| "the base model".into(), publishable_path),
        marking: args.marking.name(),
        wrong_pair_filter: !args.keep_wrong_pairs,
        entity_guide_weight: if proposer == "learned" {
            args.entity_guide_weight
        } else {
            0.0
        },
        nested_mentions: args.nested_mentions && proposer == "learned",
        proposer,
        relations: relations.len(),
        support_examples: k,
        sentences: spans.len(),
        seed: args.seed,
        seconds: started.elapsed().as_secs_f64(),
        variants,
    };
    if let Some(plot) = &args.plot {
        triples_plot(&report, plot)?;
    }
    let mut out = Output::open(&args.output)?;
    out.write(&report, |w| {
        writeln!(
            w,
            "{} sentences of {} relations, {k} support examples each ({:.0} s)",
            report.sentences, report.relations, report.seconds
        )?;
        writeln!(w, "mentions  text  gold pair mentioned  ranked first  found / triples per sentence at 0.5, 0.6, 0.7, model threshold")?;
        for v in &report.variants {
            let at = |t: f32| {
                let p = v.curve.iter().find(|p| (p.threshold - t).abs() < 1e-4).copied();
                p.map_or("-".into(), |p| format!("{:.1}% / {:.2}", 100.0 * p.found, p.triples_per_sentence))
            };
            let model = v.at_model_threshold.map_or("-".into(), |p| {
                format!("{:.1}% / {:.2} (at {:.2})", 100.0 * p.found, p.triples_per_sentence, p.threshold)
            });
            writeln!(
                w,
                "{:<9} {:<5} {:>6.1}% ({:.2} mentions)  {:>6.1}%  {}, {}, {}, {model}",
                v.mentions,
                if v.relation_text { "yes" } else { "no" },
                100.0 * v.gold_pair_mentioned,
                v.mentions_per_sentence,
                100.0 * v.gold_triple_ranked_first,
                at(0.5),
                at(0.6),
                at(0.7)
            )?;
        }
        Ok(())
    })?;
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

/// Gold triples found against triples predicted per sentence, one line per variant, a point
/// per threshold.
fn triples_plot(report: &TriplesReport, path: &PathBuf) -> Result<()> {
    const COLOURS: [RGBColor; 4] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
    ];
    let root = SVGBackend::new(path, (760, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let max_x = report
        .variants
        .iter()
        .flat_map(|v| v.curve.iter().map(|p| p.triples_per_sentence))
        .fold(1.0, f64::max)
        .min(20.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "FewRel end to end: {} relations x {} examples, {} sentences",
                report.relations, report.support_examples, report.sentences
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_x * 1.05, 0.0..100.0)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("triples predicted per sentence (threshold from 1.0 down to 0)")
        .y_desc("gold triples found (%)")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, v) in report.variants.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<(f64, f64)> = v
            .curve
            .iter()
            .filter(|p| p.triples_per_sentence <= max_x * 1.05)
            .map(|p| (p.triples_per_sentence, 100.0 * p.found))
            .collect();
        let label = format!(
            "{} mentions{}",
            v.mentions,
            if v.relation_text { ", relation text" } else { "" }
        );
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 2, colour.filled())))
            .map_err(|e| anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Mention proposal against FewRel's gold entities (see `--evaluate-mentions`): the rules,
/// and with `--mention-head`, the learned proposer alone and together with the rules.
pub(super) fn mentions(args: &ExtractArgs, path: &Path) -> Result<ExitCode> {
    use tkre::fewshot::document::MAX_MENTIONS_PER_SENTENCE;
    use tkre::fewshot::mention_head::{EntityGuide, ProposeOptions, candidates, check_guide_weight};
    use tkre::text::mentions::{merge, propose_by_rules};
    // A learned proposer: --mention-head, or the model's (which needs the model loaded).
    let has_head = !args.rules
        && (args.mention_head.is_some()
            || crate::runtime::model_dir(&args.model)
                .join("mention_head.json")
                .exists());
    // Sentences with relations: --support-examples of each relation set aside to guide the
    // learned proposer, the others measured.
    let k = args.support_examples;
    check_guide_weight(args.entity_guide_weight).context("--entity-guide-weight")?;
    let labelled = (has_head && args.entity_guide_weight > 0.0 && k > 0)
        .then(|| fewrel::load_labelled(path).ok())
        .flatten()
        .filter(|d| d.relations.iter().any(|(_, v)| v.len() > k));
    let mut guide_sentences: Vec<RelationInstance> = Vec::new();
    // Each sentence with its gold head and tail spans (FewRel's tokens joined by spaces).
    let (instances, skipped) = match labelled {
        Some(data) => {
            let mut rng = StdRng::seed_from_u64(args.seed);
            let mut measured = Vec::new();
            for (_, instances) in data.relations {
                let mut picked = if instances.len() > k {
                    rand::seq::index::sample(&mut rng, instances.len(), k).into_vec()
                } else {
                    Vec::new()
                };
                picked.sort_unstable();
                for (i, instance) in instances.into_iter().enumerate() {
                    if picked.binary_search(&i).is_ok() {
                        guide_sentences.push(instance);
                    } else {
                        measured.push(instance);
                    }
                }
            }
            (measured, data.skipped)
        }
        None => fewrel::load_entity_sentences(path)?,
    };
    if skipped > 0 {
        eprintln!(
            "{}: {skipped} record(s) could not be used and are left out",
            path.display()
        );
    }
    let sentences: Vec<(String, CharSpan, CharSpan)> =
        instances.into_iter().map(|i| (i.text, i.head, i.tail)).collect();
    let whole = |text: &str| CharSpan::new(0, text.chars().count());
    let rules: Vec<Vec<CharSpan>> = sentences
        .iter()
        .map(|(t, _, _)| propose_by_rules(t, whole(t)))
        .collect();
    let mut rows = vec![("rules".to_string(), rules.clone())];

    if has_head {
        let encoder = load_encoder(&args.model)?;
        let Some(head) = super::mention_head(args, encoder.config.hidden_size)? else {
            bail!("internal: the mention head went missing");
        };
        let hidden_size = encoder.config.hidden_size;
        let mut guide = EntityGuide::default();
        for chunk in guide_sentences.chunks(args.model.batch_size.max(1)) {
            let mut ids = Vec::new();
            for instance in chunk {
                ids.push(
                    tkre::text::encode_sentence(&encoder.tokenizer, &instance.text, encoder.max_len())?.0,
                );
            }
            for (states, instance) in encoder.hidden_states(&ids)?.into_iter().zip(chunk) {
                let pieces = encoder.tokenizer.pieces(&instance.text)?;
                guide.add_entities(
                    &instance.text,
                    &pieces,
                    &states,
                    hidden_size,
                    &[instance.head, instance.tail],
                );
            }
        }
        let bar = crate::evaluation_progress(!args.quiet, sentences.len(), "sentences");
        let guided = Some(&guide).filter(|g| !g.is_empty());
        let (mut apart, mut nested) = (Vec::new(), Vec::new());
        let (mut apart_guided, mut nested_guided) = (Vec::new(), Vec::new());
        for chunk in sentences.chunks(args.model.batch_size.max(1)) {
            let mut ids = Vec::new();
            let mut cands = Vec::new();
            for (text, _, _) in chunk {
                let (sequence, _) = tkre::text::encode_sentence(&encoder.tokenizer, text, encoder.max_len())?;
                let pieces = encoder.tokenizer.pieces(text)?;
                cands.push(candidates(text, whole(text), text, &pieces, sequence.len() - 2));
                ids.push(sequence);
            }
            for (states, cands) in encoder.hidden_states(&ids)?.into_iter().zip(cands) {
                let propose = |nest, guide| -> Vec<CharSpan> {
                    let options = ProposeOptions {
                        max: MAX_MENTIONS_PER_SENTENCE,
                        nest,
                        guide,
                        guide_weight: args.entity_guide_weight,
                    };
                    head.propose(&states, &cands, options)
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect()
                };
                apart.push(propose(false, None));
                nested.push(propose(true, None));
                if guided.is_some() {
                    apart_guided.push(propose(false, guided));
                    nested_guided.push(propose(true, guided));
                }
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let both: Vec<Vec<CharSpan>> = apart
            .iter()
            .zip(&rules)
            .zip(&sentences)
            .map(|((l, r), (text, _, _))| {
                // The learned spans first, then the rules' where they do not overlap.
                let mut merged: Vec<CharSpan> =
                    merge(text, l, Vec::new(), r).iter().map(|m| m.span()).collect();
                merged.truncate(MAX_MENTIONS_PER_SENTENCE);
                merged
            })
            .collect();
        let guided = format!(
            "guided by {k} examples per relation ({} entities, weight {})",
            guide.len(),
            args.entity_guide_weight
        );
        rows.push(("learned".into(), apart));
        rows.push(("learned, then rules".into(), both));
        if !guide.is_empty() {
            rows.push((format!("learned, {guided}"), apart_guided));
        }
        rows.push(("learned, nested".into(), nested));
        if !guide.is_empty() {
            rows.push((format!("learned, nested, {guided}"), nested_guided));
        }
    }

    let n = sentences.len() as f64;
    let mut reports = Vec::new();
    for (name, proposals) in &rows {
        let (mut both, mut heads, mut tails, mut count) = (0usize, 0usize, 0usize, 0usize);
        // A missed entity either disagrees with a proposal on its boundaries (one overlaps
        // it) or has none where it is: two different faults of a proposer.
        let (mut overlapped, mut elsewhere) = (0usize, 0usize);
        for ((_, head, tail), found) in sentences.iter().zip(proposals) {
            let (h, t) = (found.contains(head), found.contains(tail));
            heads += usize::from(h);
            tails += usize::from(t);
            both += usize::from(h && t);
            count += found.len();
            for gold in [head, tail].into_iter().filter(|g| !found.contains(g)) {
                if found.iter().any(|p| p.overlaps(gold)) {
                    overlapped += 1;
                } else {
                    elsewhere += 1;
                }
            }
        }
        reports.push(serde_json::json!({
            "proposer": name,
            "both_found": both as f64 / n,
            "head_found": heads as f64 / n,
            "tail_found": tails as f64 / n,
            "proposals_per_sentence": count as f64 / n,
            "missed_overlapping_a_proposal": overlapped as f64 / (2.0 * n),
            "missed_not_overlapping": elsewhere as f64 / (2.0 * n),
        }));
    }
    let report = serde_json::json!({
        "data": publishable_path(path),
        "sentences": sentences.len(),
        "mention_head": args.mention_head.as_ref().map(publishable_path),
        "guide_sentences": guide_sentences.len(),
        "seed": args.seed,
        "proposers": reports,
    });
    let mut out = Output::open(&args.output)?;
    out.write(&report, |w| {
        for r in &reports {
            writeln!(
                w,
                "{}: {} sentences: both entities proposed exactly in {:.1}% (head {:.1}%, tail {:.1}%), {:.2} proposals per sentence; \
                 of the gold entities, {:.1}% missed where a proposal overlaps them, {:.1}% with no proposal there",
                r["proposer"].as_str().unwrap_or_default(),
                sentences.len(),
                r["both_found"].as_f64().unwrap_or_default() * 100.0,
                r["head_found"].as_f64().unwrap_or_default() * 100.0,
                r["tail_found"].as_f64().unwrap_or_default() * 100.0,
                r["proposals_per_sentence"].as_f64().unwrap_or_default(),
                r["missed_overlapping_a_proposal"].as_f64().unwrap_or_default() * 100.0,
                r["missed_not_overlapping"].as_f64().unwrap_or_default() * 100.0
            )?;
        }
        Ok(())
    })?;
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}
