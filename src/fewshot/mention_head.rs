//! The learned mention proposer: a linear scorer of word spans over the encoder's last states
//! of the plain sentence, the same pass that unmarked extraction pools its pairs from, so one
//! pass per sentence serves mentions and relations.
//!
//! A candidate is a run of at most [`MAX_SPAN_WORDS`] words with only spaces, hyphens or
//! full stops between them. Its score is a weighted sum of five states (its first and last
//! word pieces, their mean, and the pieces just before and after it: [CLS] and [SEP] at the
//! sentence's ends), plus a bias for its length in words. The best non-overlapping candidates
//! above the head's threshold are proposed, or, asked to nest, the best that do not cross a
//! better one ("soprano" inside "English soprano").

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TkreError};
use crate::text::mentions::{SentenceWord, propose_by_rules, sentence_words};
use crate::text::tokenizer::Pieces;
use crate::text::{CharSpan, piece_ranges};

/// Longest candidate, in words (97% of FewRel's gold entities have at most four).
pub const MAX_SPAN_WORDS: usize = 6;

/// The states a score reads: first piece, last piece, mean, the piece before, the piece after.
pub const BLOCKS: usize = 5;

/// Features of a candidate read from its text, beside the states: whether the rules propose
/// it, or a longer span around it; the capitals of its first and last words, of all its
/// words, and of the words on either side; whether it starts or ends with a function word,
/// holds a digit, starts the sentence.
pub const TEXT_FEATURES: usize = 11;

/// The format tag of a mention head file.
pub const FORMAT: &str = "tkre-mention-head";

/// A trained mention scorer (`mention_head.json` beside a model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MentionHead {
    pub format: String,
    pub hidden_size: usize,
    /// `BLOCKS` weight vectors of `hidden_size`, one after another.
    pub weights: Vec<f32>,
    /// Bias by the candidate's length in words (index 0: one word).
    pub length_bias: Vec<f32>,
    /// Weights of the candidate's [`TEXT_FEATURES`].
    pub feature_weights: Vec<f32>,
    pub bias: f32,
    /// A candidate scoring above this is proposed.
    pub threshold: f32,
    /// How it was trained, in words.
    #[serde(default)]
    pub training: String,
}

/// A candidate span of one sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Code points of the document.
    pub span: CharSpan,
    /// Word pieces of the sentence's sequence, [CLS] at 0.
    pub pieces: Range<usize>,
    pub words: usize,
    /// [`TEXT_FEATURES`] values, 0 or 1.
    pub features: [f32; TEXT_FEATURES],
}

impl MentionHead {
    /// A head of zeros (the start of training).
    pub fn zeros(hidden_size: usize) -> Self {
        Self {
            format: FORMAT.into(),
            hidden_size,
            weights: vec![0.0; BLOCKS * hidden_size],
            length_bias: vec![0.0; MAX_SPAN_WORDS],
            feature_weights: vec![0.0; TEXT_FEATURES],
            bias: 0.0,
            threshold: 0.0,
            training: String::new(),
        }
    }

    /// Parses and checks a head file against the encoder's hidden size; `origin` names it.
    pub fn from_json(json: &str, origin: &str, hidden_size: usize) -> Result<Self> {
        let head: Self = serde_json::from_str(json).map_err(|e| TkreError::json(origin, e))?;
        if head.format != FORMAT {
            return Err(TkreError::Model(format!(
                "{origin}: format {:?} is not a mention head ({FORMAT:?})",
                head.format
            )));
        }
        if head.hidden_size != hidden_size
            || head.weights.len() != BLOCKS * hidden_size
            || head.length_bias.len() != MAX_SPAN_WORDS
            || head.feature_weights.len() != TEXT_FEATURES
        {
            return Err(TkreError::Model(format!(
                "{origin}: a mention head for hidden size {} ({} weights, {} length biases), \
                 but the model's hidden size is {hidden_size}; train a head for this model",
                head.hidden_size,
                head.weights.len(),
                head.length_bias.len()
            )));
        }
        if !head
            .weights
            .iter()
            .chain(&head.length_bias)
            .chain(&head.feature_weights)
            .chain([&head.bias, &head.threshold])
            .all(|x| x.is_finite())
        {
            return Err(TkreError::Model(format!(
                "{origin}: the mention head holds NaN or infinity"
            )));
        }
        Ok(head)
    }

    /// Each token's dot product with each weight block: `BLOCKS` rows of `len` values.
    pub fn token_dots(&self, states: &[f32]) -> Vec<Vec<f32>> {
        let h = self.hidden_size;
        let len = states.len() / h.max(1);
        (0..BLOCKS)
            .map(|b| {
                let w = &self.weights[b * h..][..h];
                (0..len)
                    .map(|t| states[t * h..][..h].iter().zip(w).map(|(x, y)| x * y).sum())
                    .collect()
            })
            .collect()
    }

    /// A candidate's score from [`Self::token_dots`] of its sentence.
    pub fn score(&self, dots: &[Vec<f32>], candidate: &Candidate) -> f32 {
        let Range { start, end } = candidate.pieces.clone();
        let len = dots[0].len();
        let mean = dots[2][start..end].iter().sum::<f32>() / (end - start) as f32;
        self.bias
            + self.length_bias[candidate.words.clamp(1, MAX_SPAN_WORDS) - 1]
            + dots[0][start]
            + dots[1][end - 1]
            + mean
            + dots[3][start.saturating_sub(1)]
            + dots[4][end.min(len - 1)]
            + candidate
                .features
                .iter()
                .zip(&self.feature_weights)
                .map(|(x, w)| x * w)
                .sum::<f32>()
    }

    /// The proposed mentions of a sentence: the best-scoring candidates above the threshold that
    /// do not overlap a better one (or cross it, with `nest`), at most `max`, in text order,
    /// with their scores. With a `guide`, the threshold decides only how many: which ones is
    /// decided by the score plus `guide_weight` times the candidate's likeness to the guide's
    /// entities.
    pub fn propose(
        &self,
        states: &[f32],
        candidates: &[Candidate],
        options: ProposeOptions,
    ) -> Vec<(CharSpan, f32)> {
        let ProposeOptions {
            max,
            nest,
            guide,
            guide_weight,
        } = options;
        let dots = self.token_dots(states);
        let scores: Vec<f32> = candidates.iter().map(|c| self.score(&dots, c)).collect();
        let above: Vec<(f32, usize)> = scores
            .iter()
            .enumerate()
            .filter(|&(_, &s)| s > self.threshold)
            .map(|(i, &s)| (s, i))
            .collect();
        let mut chosen = best_apart(above, candidates, max, nest);
        if let Some(guide) = guide.filter(|g| !g.is_empty() && !chosen.is_empty()) {
            let guided = scores
                .iter()
                .zip(candidates)
                .enumerate()
                .map(|(i, (&s, c))| {
                    let likeness = guide.likeness(&span_vector(states, self.hidden_size, c.pieces.clone()));
                    (s + guide_weight * likeness, i)
                })
                .collect();
            chosen = best_apart(guided, candidates, chosen.len(), nest);
        }
        let mut proposed: Vec<(CharSpan, f32)> = chosen
            .into_iter()
            .map(|i| (candidates[i].span, scores[i]))
            .collect();
        proposed.sort_by_key(|(s, _)| (s.start, s.end));
        proposed
    }
}

/// How [`MentionHead::propose`] chooses.
#[derive(Debug, Clone, Copy)]
pub struct ProposeOptions<'a> {
    /// Most mentions of a sentence.
    pub max: usize,
    /// Whether a mention may lie inside another ("soprano" in "English soprano"); two never
    /// cross.
    pub nest: bool,
    /// The support set's entities, to choose which candidates.
    pub guide: Option<&'a EntityGuide>,
    /// How much a candidate's likeness (a cosine) to the guide's entities counts beside its
    /// score ([`GUIDE_WEIGHT`] chosen on development relations).
    pub guide_weight: f32,
}

impl ProposeOptions<'_> {
    /// At most `max`, apart, unguided.
    pub fn at_most(max: usize) -> Self {
        Self {
            max,
            nest: false,
            guide: None,
            guide_weight: 0.0,
        }
    }
}

/// Checks a guide weight: a number of at least 0 (0 turns the guide off).
pub fn check_guide_weight(weight: f32) -> Result<()> {
    if weight.is_finite() && weight >= 0.0 {
        Ok(())
    } else {
        Err(TkreError::Instance(format!(
            "the entity guide's weight is {weight}; give a number of at least 0 (0 turns the guide off)"
        )))
    }
}

/// The indexes of the best of `scored` candidates (score, index) that do not overlap a better
/// one (with `nest`, that do not cross it), at most `max`.
fn best_apart(mut scored: Vec<(f32, usize)>, candidates: &[Candidate], max: usize, nest: bool) -> Vec<usize> {
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(candidates[a.1].span.start.cmp(&candidates[b.1].span.start))
    });
    let mut chosen: Vec<usize> = Vec::new();
    for (_, i) in scored {
        if chosen.len() >= max {
            break;
        }
        let span = &candidates[i].span;
        let clash = |c: &usize| {
            let other = &candidates[*c].span;
            if nest {
                other.crosses(span)
            } else {
                other.overlaps(span)
            }
        };
        if !chosen.iter().any(clash) {
            chosen.push(i);
        }
    }
    chosen
}

/// The support set's entities as a guide to which candidates a sentence's mentions are: the
/// examples say what kinds of thing the user's relations link (voice types, rivers, parties to
/// a contract), and a candidate like them is preferred to one the head scores a little higher
/// ("soprano" rather than "English soprano" when the examples' entities are voice types).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityGuide {
    /// L2-normalised means of the entities' word-piece states.
    vectors: Vec<Vec<f32>>,
}

/// The guide's weight: chosen on the corpus's development relations (docs/benchmarks.md).
pub const GUIDE_WEIGHT: f32 = 15.0;

impl EntityGuide {
    /// Adds the entities at `spans` (code points) of the sentence `text`, whose word pieces
    /// are `pieces` and whose encoder states are `states` (of `[CLS] pieces [SEP]`, the pieces
    /// past the maximum length cut); an entity that was cut or has no pieces is left out.
    pub fn add_entities(
        &mut self,
        text: &str,
        pieces: &Pieces,
        states: &[f32],
        hidden_size: usize,
        spans: &[CharSpan],
    ) {
        let tokens = states.len() / hidden_size.max(1);
        for span in spans {
            let Some(range) = piece_ranges(text, pieces, &[*span])
                .ok()
                .and_then(|mut r| r.pop())
            else {
                continue;
            };
            // +1: [CLS] comes first; the last token is [SEP].
            if !range.is_empty() && range.end + 1 < tokens {
                self.vectors
                    .push(span_vector(states, hidden_size, range.start + 1..range.end + 1));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// The highest cosine of `vector` (normalised) with an entity of the guide.
    fn likeness(&self, vector: &[f32]) -> f32 {
        self.vectors
            .iter()
            .map(|e| e.iter().zip(vector).map(|(a, b)| a * b).sum::<f32>())
            .fold(f32::MIN, f32::max)
    }
}

/// The mean of the states of `pieces`, L2-normalised.
fn span_vector(states: &[f32], hidden_size: usize, pieces: Range<usize>) -> Vec<f32> {
    let mut mean = vec![0.0f32; hidden_size];
    for t in pieces {
        mean.iter_mut()
            .zip(&states[t * hidden_size..][..hidden_size])
            .for_each(|(m, x)| *m += x);
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    mean.iter_mut().for_each(|x| *x /= norm);
    mean
}

/// The candidate spans of `sentence` (document offsets) whose text is `sentence_text` and
/// word pieces `pieces` (of the sentence text, without [CLS]/[SEP]; pieces past `max_pieces`
/// were cut and candidates there are left out).
pub fn candidates(
    text: &str,
    sentence: CharSpan,
    sentence_text: &str,
    pieces: &Pieces,
    max_pieces: usize,
) -> Vec<Candidate> {
    let words = sentence_words(text, sentence);
    let rules = propose_by_rules(text, sentence);
    let mut spans = Vec::new();
    let mut lengths = Vec::new();
    for i in 0..words.len() {
        for j in i..words.len().min(i + MAX_SPAN_WORDS) {
            if j > i && !words[j - 1].joins(&words[j]) {
                break;
            }
            spans.push(CharSpan::new(
                words[i].span.start - sentence.start,
                words[j].span.end - sentence.start,
            ));
            lengths.push((j - i + 1, text_features(&words, i, j, &rules)));
        }
    }
    let Ok(ranges) = piece_ranges(sentence_text, pieces, &spans) else {
        // A word without pieces (e.g. only a control character): candidates one by one.
        return spans
            .iter()
            .zip(&lengths)
            .filter_map(|(&span, &(words, features))| {
                let range = piece_ranges(sentence_text, pieces, &[span]).ok()?.pop()?;
                candidate(sentence, span, range, words, features, max_pieces)
            })
            .collect();
    };
    spans
        .into_iter()
        .zip(ranges)
        .zip(lengths)
        .filter_map(|((span, range), (words, features))| {
            candidate(sentence, span, range, words, features, max_pieces)
        })
        .collect()
}

fn candidate(
    sentence: CharSpan,
    span: CharSpan,
    range: Range<usize>,
    words: usize,
    features: [f32; TEXT_FEATURES],
    max_pieces: usize,
) -> Option<Candidate> {
    (range.end <= max_pieces).then(|| Candidate {
        span: CharSpan::new(span.start + sentence.start, span.end + sentence.start),
        // +1: [CLS] comes first.
        pieces: range.start + 1..range.end + 1,
        words,
        features,
    })
}

/// The [`TEXT_FEATURES`] of the candidate from word `i` to word `j` (inclusive).
fn text_features(words: &[SentenceWord], i: usize, j: usize, rules: &[CharSpan]) -> [f32; TEXT_FEATURES] {
    let span = CharSpan::new(words[i].span.start, words[j].span.end);
    let inside = words[i..=j].iter();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    [
        flag(rules.contains(&span)),
        flag(
            rules
                .iter()
                .any(|r| r.start <= span.start && span.end <= r.end && *r != span),
        ),
        flag(words[i].capitalised),
        flag(words[j].capitalised),
        flag(inside.clone().all(|w| w.capitalised || w.connector)),
        flag(words[i].function_word),
        flag(words[j].function_word || words[j].connector),
        flag(inside.clone().any(|w| w.has_digit)),
        flag(i > 0 && words[i - 1].capitalised && words[i - 1].joins(&words[i])),
        flag(
            words
                .get(j + 1)
                .is_some_and(|w| w.capitalised && words[j].joins(w)),
        ),
        flag(i == 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate_at(pieces: Range<usize>, words: usize) -> Candidate {
        Candidate {
            span: CharSpan::new(pieces.start * 10, pieces.end * 10),
            pieces,
            words,
            features: [0.0; TEXT_FEATURES],
        }
    }

    #[test]
    fn score_reads_the_five_states_and_the_length() {
        let mut head = MentionHead::zeros(2);
        // start, end, mean, before, after
        head.weights = vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 2.0, 0.0, 0.0, 3.0];
        head.length_bias = vec![0.0, 10.0, 0.0, 0.0, 0.0, 0.0];
        head.bias = 0.25;
        // Five tokens of [a, b]: token t = [t, 10 t].
        let states: Vec<f32> = (0..5).flat_map(|t| [t as f32, 10.0 * t as f32]).collect();
        let dots = head.token_dots(&states);
        let c = candidate_at(1..3, 2);
        // start: token 1 -> 1; end: token 2 -> 20; mean of tokens 1, 2 -> (5.5 + 11) / 2 = 8.25;
        // before: token 0 -> 0; after: token 3 -> 90; + length 10 + bias 0.25.
        let expected = 1.0 + 20.0 + 8.25 + 0.0 + 90.0 + 10.0 + 0.25;
        assert!((head.score(&dots, &c) - expected).abs() < 1e-4);
        // At the sentence's end the piece after is the last one ([SEP]).
        assert!(head.score(&dots, &candidate_at(3..5, 2)).is_finite());
    }

    #[test]
    fn propose_keeps_the_best_candidates_above_the_threshold_apart_or_nested() {
        let mut head = MentionHead::zeros(1);
        head.weights = vec![1.0, 0.0, 0.0, 0.0, 0.0];
        head.threshold = 0.5;
        let states = [0.0, 3.0, 2.0, 0.2, 1.0];
        let candidates = [
            candidate_at(1..3, 2),
            candidate_at(2..3, 1),
            candidate_at(2..4, 2),
            candidate_at(3..4, 1),
            candidate_at(4..5, 1),
        ];
        let spans = |options| -> Vec<CharSpan> {
            head.propose(&states, &candidates, options)
                .iter()
                .map(|(s, _)| *s)
                .collect()
        };
        // 1..3 (3.0) wins; 2..3 (2.0) and 2..4 (2.0) overlap it; 3..4 (0.2) is below the
        // threshold; 4..5 (1.0) stays.
        assert_eq!(
            spans(ProposeOptions::at_most(8)),
            vec![CharSpan::new(10, 30), CharSpan::new(40, 50)]
        );
        // Nesting: 2..3 lies inside 1..3 and stays; 2..4 crosses it.
        let nested = ProposeOptions {
            nest: true,
            ..ProposeOptions::at_most(8)
        };
        assert_eq!(
            spans(nested),
            vec![
                CharSpan::new(10, 30),
                CharSpan::new(20, 30),
                CharSpan::new(40, 50)
            ]
        );
        assert_eq!(spans(ProposeOptions::at_most(1)).len(), 1);
    }

    #[test]
    fn a_guide_chooses_which_candidates_and_the_threshold_how_many() {
        let mut head = MentionHead::zeros(2);
        // The first piece's state decides: token 1 = [1, 0] scores 1.0, token 2 = [0, 1] 0.9.
        head.weights = vec![1.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        head.threshold = 0.95;
        let states = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let candidates = [candidate_at(1..2, 1), candidate_at(2..3, 1)];
        fn options(guide: Option<&EntityGuide>, guide_weight: f32) -> ProposeOptions<'_> {
            ProposeOptions {
                guide,
                guide_weight,
                ..ProposeOptions::at_most(8)
            }
        }
        let spans = |guide: Option<&EntityGuide>, weight: f32| -> Vec<CharSpan> {
            head.propose(&states, &candidates, options(guide, weight))
                .into_iter()
                .map(|(s, _)| s)
                .collect()
        };
        assert_eq!(spans(None, 1.0), [CharSpan::new(10, 20)]);
        // An entity like the second candidate: it replaces the first, and the count stays one.
        let mut guide = EntityGuide::default();
        guide.vectors.push(vec![0.0, 1.0]);
        assert_eq!(spans(Some(&guide), 1.0), [CharSpan::new(20, 30)]);
        // Its score is still the head's own.
        assert!((head.propose(&states, &candidates, options(Some(&guide), 1.0))[0].1 - 0.9).abs() < 1e-6);
        assert_eq!(spans(Some(&guide), 0.0), [CharSpan::new(10, 20)]);
        assert_eq!(spans(Some(&EntityGuide::default()), 1.0), [CharSpan::new(10, 20)]);
        assert!(check_guide_weight(0.0).is_ok());
        for bad in [-1.0, f32::NAN, f32::INFINITY] {
            assert!(
                check_guide_weight(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("at least 0")
            );
        }
    }

    #[test]
    fn a_head_for_another_hidden_size_is_refused() {
        let json = serde_json::to_string(&MentionHead::zeros(4)).unwrap();
        assert!(MentionHead::from_json(&json, "h.json", 4).is_ok());
        let err = MentionHead::from_json(&json, "h.json", 8).unwrap_err();
        assert!(err.to_string().contains("hidden size"), "{err}");
        assert!(MentionHead::from_json("{}", "h.json", 4).is_err());
    }
}
