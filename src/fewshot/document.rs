//! Relations in a document: for each sentence, its entity mentions
//! ([`crate::text::mentions`]) and every ordered pair of two of them (direction matters: the
//! support examples say which entity is the head) as a relation instance; the instances are
//! classified against the support set, and a pair whose answer is not "no relation" becomes a
//! triple. Offsets are code points into the whole document.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TkreError};
use crate::text::mentions::{self, EntityList, Mention};
use crate::text::{CharSpan, RelationInstance};

/// Most mentions read per sentence (the first ones in text order): pairs grow with their
/// square, and a sentence with more is rarely a sentence.
pub const MAX_MENTIONS_PER_SENTENCE: usize = 8;

/// How mentions are found.
#[derive(Debug, Clone, Default)]
pub struct MentionOptions {
    /// Spans the user marked (document offsets): always mentions.
    pub marked: Vec<CharSpan>,
    /// The user's entity list.
    pub entities: Option<EntityList>,
    /// Whether the mention proposer adds what the two above do not cover.
    pub propose: bool,
}

/// A mention as a triple shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Argument {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// A relation found between two mentions of one sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Triple {
    pub head: Argument,
    pub tail: Argument,
    /// The relation's key.
    pub relation: String,
    /// Its calibrated probability.
    pub score: f32,
    /// Its prototype similarity, in [-1, 1].
    pub similarity: f32,
    pub sentence: CharSpan,
}

/// One sentence of a document, with what was found in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentenceExtraction {
    pub sentence: CharSpan,
    pub mentions: Vec<Mention>,
    pub triples: Vec<Triple>,
}

/// The mentions of `sentence` in `text` (at most [`MAX_MENTIONS_PER_SENTENCE`]), proposed by
/// the rules.
pub fn sentence_mentions(text: &str, sentence: CharSpan, options: &MentionOptions) -> Vec<Mention> {
    sentence_mentions_proposed(text, sentence, options, None)
}

/// [`sentence_mentions`] with the proposer's spans given (the learned proposer's); `None`: the
/// rules propose.
pub fn sentence_mentions_proposed(
    text: &str,
    sentence: CharSpan,
    options: &MentionOptions,
    proposed: Option<Vec<CharSpan>>,
) -> Vec<Mention> {
    let inside =
        |span: &CharSpan| span.start >= sentence.start && span.end <= sentence.end && span.end > span.start;
    let marked: Vec<CharSpan> = options.marked.iter().copied().filter(inside).collect();
    let listed = options
        .entities
        .as_ref()
        .map(|list| list.find(text, sentence))
        .unwrap_or_default();
    let proposed = match (options.propose, proposed) {
        (false, _) => Vec::new(),
        (true, Some(spans)) => spans,
        (true, None) => mentions::propose_by_rules(text, sentence),
    };
    let mut found = mentions::merge(text, &marked, listed, &proposed);
    found.truncate(MAX_MENTIONS_PER_SENTENCE);
    found
}

/// Checks user-marked spans against the document: inside it, non-empty, and two of them
/// either apart or one inside the other ("soprano" in "English soprano"), never crossing.
pub fn check_marked(text: &str, marked: &[CharSpan]) -> Result<()> {
    let length = text.chars().count();
    let mut sorted = marked.to_vec();
    sorted.sort_by_key(|s| (s.start, s.end));
    for (i, span) in sorted.iter().enumerate() {
        if span.start >= span.end || span.end > length {
            return Err(TkreError::Instance(format!(
                "marked mention {}..{} is empty or outside the document ({length} characters)",
                span.start, span.end
            )));
        }
        // Sorted by start, a span crossing this one starts inside it.
        if let Some(other) = sorted[i + 1..]
            .iter()
            .take_while(|s| s.start < span.end)
            .find(|s| s.crosses(span))
        {
            return Err(TkreError::Instance(format!(
                "marked mentions {}..{} and {}..{} cross (mentions may nest, one inside the \
                 other, but not share only part of their text)",
                span.start, span.end, other.start, other.end
            )));
        }
    }
    Ok(())
}

/// Every ordered pair of two mentions of a sentence, as a relation instance on the sentence's
/// text (head and tail offsets relative to it).
pub fn pair_instances(
    text: &str,
    sentence: CharSpan,
    found: &[Mention],
) -> Vec<(usize, usize, RelationInstance)> {
    let sentence_text = mentions::slice(text, sentence);
    let relative = |m: &Mention| CharSpan::new(m.start - sentence.start, m.end - sentence.start);
    let mut pairs = Vec::new();
    for (h, head) in found.iter().enumerate() {
        for (t, tail) in found.iter().enumerate() {
            if h == t {
                continue;
            }
            // A mention and one nested in it are no pair (an instance's entities never
            // overlap); that and any other invalid instance (a mention of whitespace) is left
            // out rather than failing the document.
            if let Ok(instance) =
                RelationInstance::from_offsets(sentence_text.clone(), relative(head), relative(tail))
            {
                pairs.push((h, t, instance));
            }
        }
    }
    pairs
}

impl SentenceExtraction {
    /// Moves every offset `by` code points later (results of a slice of a document, back
    /// into the document's offsets).
    pub fn shift(&mut self, by: usize) {
        let span = |s: &mut CharSpan| {
            s.start += by;
            s.end += by;
        };
        span(&mut self.sentence);
        for mention in &mut self.mentions {
            mention.start += by;
            mention.end += by;
        }
        for triple in &mut self.triples {
            span(&mut triple.sentence);
            for argument in [&mut triple.head, &mut triple.tail] {
                argument.start += by;
                argument.end += by;
            }
        }
    }
}

impl Argument {
    pub fn of(mention: &Mention) -> Self {
        Self {
            text: mention.text.clone(),
            start: mention.start,
            end: mention.end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_mentions_may_nest_but_not_cross() {
        let text = "Ann is an English soprano.";
        let span = CharSpan::new;
        assert!(check_marked(text, &[span(18, 25), span(10, 25), span(0, 3)]).is_ok());
        let err = check_marked(text, &[span(10, 25), span(18, 26)]).unwrap_err();
        assert!(err.to_string().contains("cross"), "{err}");
        assert!(check_marked(text, &[span(3, 3)]).is_err());
        assert!(check_marked(text, &[span(20, 27)]).is_err());
    }
}
