//! How a relation instance becomes one vector: which encoder states are pooled.
//!
//! Each representation is a list of parts; every part is a weighted sum of token states,
//! L2-normalised on its own, and the parts are concatenated. Normalising parts separately
//! keeps one part (e.g. the sentence mean, whose norm differs from a marker state's) from
//! dominating the distance.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::text::EncodedInstance;

/// One pooled part of a relation representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The state of the `@` that opens the head.
    HeadMarker,
    /// The state of the `#` that opens the tail.
    TailMarker,
    /// Mean of the head entity's word pieces.
    HeadMean,
    /// Mean of the tail entity's word pieces.
    TailMean,
    /// Mean of every token, [CLS], [SEP] and markers included.
    SentenceMean,
}

/// Which encoder states make up a relation representation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Representation {
    /// Entity-start marker states, `[h(@), h(#)]` (the usual choice for fine-tuned models).
    Markers,
    /// Mean of each entity's word pieces.
    EntityMean,
    /// Entity means plus the sentence mean. The default: measured best on FewRel 1.0 val
    /// for the untrained sentence-embedding base model (docs/command-line.md).
    #[default]
    EntityMeanSentence,
    /// Entity-start markers plus the sentence mean.
    MarkersSentence,
    /// The sentence mean alone (ignores where the entities are; a baseline).
    Sentence,
}

impl Representation {
    pub const ALL: [Representation; 5] = [
        Self::Markers,
        Self::EntityMean,
        Self::EntityMeanSentence,
        Self::MarkersSentence,
        Self::Sentence,
    ];

    pub fn parts(self) -> &'static [Part] {
        use Part::*;
        match self {
            Self::Markers => &[HeadMarker, TailMarker],
            Self::EntityMean => &[HeadMean, TailMean],
            Self::EntityMeanSentence => &[HeadMean, TailMean, SentenceMean],
            Self::MarkersSentence => &[HeadMarker, TailMarker, SentenceMean],
            Self::Sentence => &[SentenceMean],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Markers => "markers",
            Self::EntityMean => "entity-mean",
            Self::EntityMeanSentence => "entity-mean-sentence",
            Self::MarkersSentence => "markers-sentence",
            Self::Sentence => "sentence",
        }
    }

    /// Pooling weights of each part over the token positions of `instance`: for every part,
    /// a list of `(position, weight)` whose weights sum to 1.
    pub fn pooling_weights(self, instance: &EncodedInstance) -> Vec<Vec<(usize, f32)>> {
        let mean = |range: std::ops::Range<usize>| {
            let w = 1.0 / range.len().max(1) as f32;
            range.map(|i| (i, w)).collect::<Vec<_>>()
        };
        self.parts()
            .iter()
            .map(|part| match part {
                Part::HeadMarker => vec![(instance.head_marker, 1.0)],
                Part::TailMarker => vec![(instance.tail_marker, 1.0)],
                Part::HeadMean => mean(instance.head.clone()),
                Part::TailMean => mean(instance.tail.clone()),
                Part::SentenceMean => mean(0..instance.ids.len()),
            })
            .collect()
    }
}

impl fmt::Display for Representation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Representation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|r| r.name()).collect();
            format!("unknown representation {s:?}; choose one of {}", names.join(", "))
        })
    }
}

/// L2-normalises each of the `parts` equal-length chunks of `v` in place.
pub fn normalize_parts(v: &mut [f32], parts: usize) {
    let width = v.len() / parts.max(1);
    if width == 0 {
        return;
    }
    for chunk in v.chunks_mut(width) {
        let norm = chunk.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        chunk.iter_mut().for_each(|x| *x /= norm);
    }
}
