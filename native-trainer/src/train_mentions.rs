//! `tkre train-mentions`: trains the learned mention proposer ([`tkre::fewshot::mention_head`])
//! on sentences whose entity spans are known (corpus files, FewRel-format files), over the
//! encoder's frozen states. Each sentence's spans are the positives; every other candidate is
//! a negative (the data marks two entities per sentence, so some negatives are unmarked
//! entities: the head learns to rank, and the threshold is set on held-out sentences).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tkre::fewshot::mention_head::{
    BLOCKS, Candidate, MAX_SPAN_WORDS, MentionHead, ProposeOptions, TEXT_FEATURES, candidates,
};
use tkre::text::{CharSpan, encode_sentence};

use crate::ModelArgs;
use crate::runtime::load_encoder;
use tkre_trainer::evaluation::fewrel;

#[derive(Args)]
pub struct TrainMentionsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Sentences with entity spans, with or without a relation: corpus files (JSON lines with
    /// offsets or marks, synthesis outputs), FewRel-format JSON, or a JSON list of FewRel
    /// records (FewRel 2.0's unlabelled sentences). Repeatable. Never the data the proposer is
    /// measured on.
    #[arg(long = "data", value_name = "FILE", required = true)]
    data: Vec<PathBuf>,
    /// Share of the sentences held out to set the threshold.
    #[arg(long, default_value_t = 0.1)]
    dev_share: f64,
    /// The threshold is set so that held-out sentences get this many proposals on average.
    #[arg(long, default_value_t = 4.0)]
    proposals: f64,
    /// Passes over the training sentences.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 2e-3)]
    learning_rate: f32,
    /// Weight of a positive candidate in the loss (there are about 50 negatives per positive).
    #[arg(long, default_value_t = 5.0)]
    positive_weight: f32,
    /// Also train on a copy of each sentence with its punctuation spaced out ("Paris ( France
    /// ) ."), the form of tokenised text such as FewRel's.
    #[arg(long)]
    spaced_copies: bool,
    /// Seed of the held-out split and the order of training sentences.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The head's JSON [default: mention_head.json in the model's directory]. Written into a
    /// model directory with a manifest (an export), it is added to the manifest, so the
    /// browser package loads and checks it with the model.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// A sentence's states, candidates and which of them are gold.
struct Example {
    states: Vec<f32>,
    candidates: Vec<Candidate>,
    gold: Vec<bool>,
    /// Gold spans, reachable or not (for the recall of held-out sentences).
    spans: Vec<CharSpan>,
}

pub fn run(args: TrainMentionsArgs) -> Result<ExitCode> {
    // Every sentence once, with all its spans (a sentence can hold several labelled pairs).
    let mut sentences: BTreeMap<String, BTreeSet<(usize, usize)>> = BTreeMap::new();
    for path in &args.data {
        let (instances, skipped) = fewrel::load_entity_sentences(path)?;
        if skipped > 0 {
            eprintln!(
                "{}: {skipped} record(s) could not be used and are left out",
                path.display()
            );
        }
        for instance in instances {
            let spans = sentences.entry(instance.text).or_default();
            spans.insert((instance.head.start, instance.head.end));
            spans.insert((instance.tail.start, instance.tail.end));
        }
    }
    if args.spaced_copies {
        let spaced: Vec<_> = sentences.iter().map(|(t, spans)| spaced_copy(t, spans)).collect();
        sentences.extend(spaced);
    }
    if sentences.len() < 20 {
        bail!(
            "{} sentences with entity spans: too few to train on",
            sentences.len()
        );
    }
    let encoder = load_encoder(&args.model)?;
    let h = encoder.config.hidden_size;
    let max_len = encoder.max_len();
    let mut list: Vec<(String, Vec<CharSpan>)> = sentences
        .into_iter()
        .map(|(text, spans)| {
            (
                text,
                spans.into_iter().map(|(s, e)| CharSpan::new(s, e)).collect(),
            )
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(args.seed);
    list.shuffle(&mut rng);
    let dev_len = ((list.len() as f64 * args.dev_share).round() as usize).clamp(1, list.len() - 1);

    let bar = crate::evaluation_progress(true, list.len(), "encode");
    let mut examples = Vec::with_capacity(list.len());
    for chunk in list.chunks(32) {
        let mut ids = Vec::with_capacity(chunk.len());
        let mut found = Vec::with_capacity(chunk.len());
        for (text, spans) in chunk {
            let (sequence, _) = encode_sentence(&encoder.tokenizer, text, max_len)?;
            let pieces = encoder.tokenizer.pieces(text)?;
            let whole = CharSpan::new(0, text.chars().count());
            let cands = candidates(text, whole, text, &pieces, sequence.len() - 2);
            let gold = cands.iter().map(|c| spans.contains(&c.span)).collect();
            found.push((cands, gold, spans.clone()));
            ids.push(sequence);
        }
        let states = encoder.hidden_states(&ids)?;
        for (states, (candidates, gold, spans)) in states.into_iter().zip(found) {
            examples.push(Example {
                states,
                candidates,
                gold,
                spans,
            });
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let (dev, train) = examples.split_at(dev_len);
    let reachable = train
        .iter()
        .map(|e| e.gold.iter().filter(|&&g| g).count())
        .sum::<usize>();
    let gold_total = train.iter().map(|e| e.spans.len()).sum::<usize>();
    eprintln!(
        "{} training sentences ({reachable} of {gold_total} gold spans are candidates), {} held out",
        train.len(),
        dev.len()
    );

    let mut head = MentionHead::zeros(h);
    let mut adam = Adam::new(
        BLOCKS * h + MAX_SPAN_WORDS + TEXT_FEATURES + 1,
        args.learning_rate,
    );
    let mut order: Vec<usize> = (0..train.len()).collect();
    for epoch in 0..args.epochs {
        order.shuffle(&mut rng);
        let mut loss = 0.0f64;
        let mut count = 0usize;
        for batch in order.chunks(16) {
            let mut grad = vec![0.0f32; adam.m.len()];
            for &i in batch {
                let example = &train[i];
                loss += accumulate(&head, example, args.positive_weight, &mut grad) as f64;
                count += example.candidates.len();
            }
            let scale = 1.0 / batch.len() as f32;
            grad.iter_mut().for_each(|g| *g *= scale);
            adam.step(&mut head, &grad);
        }
        let (found, proposals) = dev_recall(&head, dev, f32::MIN, 8);
        eprintln!(
            "epoch {}: loss {:.4}; held out, top 8: {:.1}% of gold spans ({proposals:.2} proposals per sentence)",
            epoch + 1,
            loss / count.max(1) as f64,
            100.0 * found
        );
    }
    // The threshold: held-out sentences get `--proposals` proposals on average.
    let mut scores: Vec<f32> = dev
        .iter()
        .flat_map(|e| {
            let dots = head.token_dots(&e.states);
            e.candidates
                .iter()
                .map(|c| head.score(&dots, c))
                .collect::<Vec<_>>()
        })
        .collect();
    scores.sort_by(|a, b| b.total_cmp(a));
    // Proposals grow as the threshold falls: the highest score that gives enough, by bisection.
    let (mut low, mut high) = (0usize, scores.len().saturating_sub(1));
    while low < high {
        let mid = (low + high) / 2;
        if dev_recall(&head, dev, scores[mid], 8).1 >= args.proposals {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    // Just below the chosen score, so that candidate itself is kept.
    let threshold = scores.get(low).map_or(0.0, |s| s - 1e-4);
    head.threshold = threshold;
    let (found, proposals) = dev_recall(&head, dev, threshold, 8);
    head.training = format!(
        "tkre train-mentions on {} sentences ({}; {} held out), {} epochs, learning rate {}, \
         positive weight {}; threshold for {} proposals per held-out sentence, where {:.1}% of \
         their gold spans are proposed",
        examples.len(),
        args.data
            .iter()
            .map(crate::output::publishable_path)
            .collect::<Vec<_>>()
            .join(", "),
        dev.len(),
        args.epochs,
        args.learning_rate,
        args.positive_weight,
        args.proposals,
        100.0 * found
    );
    eprintln!(
        "threshold {threshold:.3}: held out, {:.1}% of gold spans, {proposals:.2} proposals per sentence",
        100.0 * found
    );
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| crate::runtime::model_dir(&args.model).join("mention_head.json"));
    let json = serde_json::to_string(&head)?;
    std::fs::write(&out, &json).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {} ({} bytes)", out.display(), json.len());
    if out.file_name().is_some_and(|n| n == "mention_head.json") {
        list_in_manifest(&out, json.as_bytes(), &head.training)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Adds the head beside an exported model to its manifest (sha256, size, and the card's
/// "mention_head"); a directory without a manifest is left as it is.
fn list_in_manifest(path: &std::path::Path, bytes: &[u8], training: &str) -> Result<()> {
    use tkre::checkpoint::manifest::{Manifest, ManifestFile, sha256_hex};
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let manifest_path = dir.join("manifest.json");
    let Ok(text) = std::fs::read_to_string(&manifest_path) else {
        return Ok(());
    };
    let origin = manifest_path.display().to_string();
    let mut manifest = Manifest::parse(&text, &origin)?;
    manifest.files.insert(
        "mention_head.json".into(),
        ManifestFile {
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
        },
    );
    manifest
        .card
        .insert("mention_head".into(), serde_json::json!(training));
    manifest.check(&origin)?;
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&manifest)? + "\n")
        .with_context(|| format!("writing {origin}"))?;
    eprintln!("listed it in {origin}");
    Ok(())
}

/// Adds one sentence's logistic-loss gradient to `grad`; returns its loss.
fn accumulate(head: &MentionHead, example: &Example, positive_weight: f32, grad: &mut [f32]) -> f32 {
    let h = head.hidden_size;
    let len = example.states.len() / h;
    let dots = head.token_dots(&example.states);
    let state = |t: usize| &example.states[t * h..][..h];
    let mut loss = 0.0;
    for (candidate, &gold) in example.candidates.iter().zip(&example.gold) {
        let score = head.score(&dots, candidate);
        let p = 1.0 / (1.0 + (-score).exp());
        let (y, w) = if gold { (1.0, positive_weight) } else { (0.0, 1.0) };
        loss -= w * if gold {
            p.max(1e-7).ln()
        } else {
            (1.0 - p).max(1e-7).ln()
        };
        let g = w * (p - y);
        let (start, end) = (candidate.pieces.start, candidate.pieces.end);
        let positions = [
            start,
            end - 1,
            usize::MAX,
            start.saturating_sub(1),
            end.min(len - 1),
        ];
        for (b, &t) in positions.iter().enumerate() {
            let block = &mut grad[b * h..][..h];
            if t == usize::MAX {
                let share = g / (end - start) as f32;
                for u in start..end {
                    block.iter_mut().zip(state(u)).for_each(|(d, x)| *d += share * x);
                }
            } else {
                block.iter_mut().zip(state(t)).for_each(|(d, x)| *d += g * x);
            }
        }
        grad[BLOCKS * h + candidate.words.clamp(1, MAX_SPAN_WORDS) - 1] += g;
        for (f, x) in candidate.features.iter().enumerate() {
            grad[BLOCKS * h + MAX_SPAN_WORDS + f] += g * x;
        }
        grad[BLOCKS * h + MAX_SPAN_WORDS + TEXT_FEATURES] += g;
    }
    loss
}

/// Share of held-out gold spans proposed, and proposals per sentence, at `threshold`.
fn dev_recall(head: &MentionHead, dev: &[Example], threshold: f32, max: usize) -> (f64, f64) {
    let mut probe = head.clone();
    probe.threshold = threshold;
    let (mut found, mut total, mut proposals) = (0usize, 0usize, 0usize);
    for example in dev {
        let proposed = probe.propose(&example.states, &example.candidates, ProposeOptions::at_most(max));
        proposals += proposed.len();
        total += example.spans.len();
        found += example
            .spans
            .iter()
            .filter(|s| proposed.iter().any(|(p, _)| p == *s))
            .count();
    }
    (
        found as f64 / total.max(1) as f64,
        proposals as f64 / dev.len().max(1) as f64,
    )
}

/// Adam over the head's parameters, flattened as weights, length biases, feature weights,
/// bias.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
    rate: f32,
}

impl Adam {
    fn new(n: usize, rate: f32) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
            rate,
        }
    }

    fn step(&mut self, head: &mut MentionHead, grad: &[f32]) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        const WEIGHT_DECAY: f32 = 1e-4;
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        let n = head.weights.len();
        let mut params: Vec<&mut f32> = head
            .weights
            .iter_mut()
            .chain(head.length_bias.iter_mut())
            .chain(head.feature_weights.iter_mut())
            .chain(std::iter::once(&mut head.bias))
            .collect();
        for (i, p) in params.iter_mut().enumerate() {
            let g = grad[i] + if i < n { WEIGHT_DECAY * **p } else { 0.0 };
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * g;
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * g * g;
            **p -= self.rate * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

/// `text` with a space on both sides of every punctuation character that stands between words
/// or at their ends (not inside a word: "U.S", "Jean-Paul", "O'Brien" stay), and `spans`
/// moved to match.
fn spaced_copy(text: &str, spans: &BTreeSet<(usize, usize)>) -> (String, BTreeSet<(usize, usize)>) {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 16);
    // New position of each old character, and of the end.
    let mut moved = Vec::with_capacity(chars.len() + 1);
    let mut length = 0usize;
    for (i, &c) in chars.iter().enumerate() {
        let inside =
            i > 0 && i + 1 < chars.len() && chars[i - 1].is_alphanumeric() && chars[i + 1].is_alphanumeric();
        let split = c.is_ascii_punctuation() && !inside;
        if split && length > 0 && !out.ends_with(' ') {
            out.push(' ');
            length += 1;
        }
        moved.push(length);
        out.push(c);
        length += 1;
        if split && chars.get(i + 1).is_some_and(|n| !n.is_whitespace()) {
            out.push(' ');
            length += 1;
        }
    }
    moved.push(length);
    let spans = spans
        .iter()
        .map(|&(s, e)| {
            // An end just after a character: where that character ended up, plus one.
            (moved[s], if e > 0 { moved[e - 1] + 1 } else { 0 })
        })
        .collect();
    (out, spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_copies_keep_spans_on_their_words() {
        let text = "Curie (born in Warsaw), a chemist, won it.";
        let spans: BTreeSet<(usize, usize)> = [(0, 5), (15, 21)].into_iter().collect();
        let (spaced, moved) = spaced_copy(text, &spans);
        assert_eq!(spaced, "Curie ( born in Warsaw ) , a chemist , won it .");
        let words: Vec<String> = moved
            .iter()
            .map(|&(s, e)| spaced.chars().skip(s).take(e - s).collect())
            .collect();
        assert_eq!(words, ["Curie", "Warsaw"]);
        let (same, _) = spaced_copy("U.S. Jean-Paul O'Brien", &BTreeSet::new());
        assert_eq!(same, "U.S . Jean-Paul O'Brien");
    }
}
