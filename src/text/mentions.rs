//! Entity mentions in a document, from three sources in order of trust: spans the user
//! marked, names from a user's entity list (with aliases, matched case-insensitively on word
//! boundaries), and a mention proposer. A less trusted mention that overlaps a more trusted
//! one is dropped. Offsets are code points into the whole document.

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use crate::error::{Result, TkreError};
use crate::text::CharSpan;

/// Where a mention came from, most trusted first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MentionSource {
    /// Marked by the user.
    Marked,
    /// A name (or alias) of the user's entity list.
    Listed,
    /// Found by the mention proposer.
    Proposed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mention {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub source: MentionSource,
    /// The entity-list name it matched (for a listed mention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
}

impl Mention {
    pub fn span(&self) -> CharSpan {
        CharSpan::new(self.start, self.end)
    }
}

/// One entity of a user's list: a name and other ways of writing it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum EntityEntry {
    Name(String),
    WithAliases {
        name: String,
        #[serde(default)]
        aliases: Vec<String>,
    },
}

/// A user's entity list: `["Marie Curie", {"name": "IBM", "aliases": ["International
/// Business Machines"]}]` (JSON), or one name per line with aliases after tabs.
#[derive(Debug, Clone, Default)]
pub struct EntityList {
    /// (the entity's name, a way of writing it, lower-cased, as words)
    forms: Vec<(String, Vec<String>)>,
}

impl EntityList {
    /// Reads a list from JSON (an array) or from lines (`name<TAB>alias<TAB>...`).
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let entries: Vec<(String, Vec<String>)> = if text.trim_start().starts_with('[') {
            let entries: Vec<EntityEntry> =
                serde_json::from_str(text).map_err(|e| TkreError::json(origin, e))?;
            entries
                .into_iter()
                .map(|entry| match entry {
                    EntityEntry::Name(name) => (name, Vec::new()),
                    EntityEntry::WithAliases { name, aliases } => (name, aliases),
                })
                .collect()
        } else {
            text.lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| {
                    let mut fields = line.split('\t').map(str::trim).filter(|f| !f.is_empty());
                    let name = fields.next().unwrap_or_default().to_string();
                    (name, fields.map(String::from).collect())
                })
                .collect()
        };
        let mut list = EntityList::default();
        for (i, (name, aliases)) in entries.into_iter().enumerate() {
            if name.trim().is_empty() {
                return Err(TkreError::Instance(format!(
                    "{origin}: entity #{} has an empty name",
                    i + 1
                )));
            }
            for form in std::iter::once(&name).chain(&aliases) {
                let words = words_lower(form);
                if !words.is_empty() {
                    list.forms.push((name.clone(), words));
                }
            }
        }
        // Longest forms first, so "New York City" wins over "New York" where both match.
        list.forms.sort_by_key(|form| std::cmp::Reverse(form.1.len()));
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// Every place in `text[span]` where a name or alias stands on word boundaries,
    /// case-insensitively; the longest form wins where forms overlap.
    pub fn find(&self, text: &str, span: CharSpan) -> Vec<Mention> {
        let words = words_in(text, span);
        let lower: Vec<String> = words.iter().map(|w| w.text.to_lowercase()).collect();
        let mut found: Vec<Mention> = Vec::new();
        for (name, form) in &self.forms {
            for start in 0..lower.len() {
                let end = start + form.len();
                if end > lower.len() || lower[start..end] != form[..] {
                    continue;
                }
                let (first, last) = (&words[start], &words[end - 1]);
                let candidate = CharSpan::new(first.start, last.end);
                if found.iter().any(|m| m.span().overlaps(&candidate)) {
                    continue;
                }
                found.push(Mention {
                    start: candidate.start,
                    end: candidate.end,
                    text: slice(text, candidate),
                    source: MentionSource::Listed,
                    entity: Some(name.clone()),
                });
            }
        }
        found.sort_by_key(|m| (m.start, m.end));
        found
    }
}

/// A word of a text: its code-point span and text.
struct Word<'a> {
    start: usize,
    end: usize,
    text: &'a str,
}

/// The words of `text[span]` (Unicode word boundaries; punctuation and spaces dropped, except
/// joiners inside names such as "&" and "'"), with code-point offsets into `text`.
fn words_in(text: &str, span: CharSpan) -> Vec<Word<'_>> {
    let (byte_start, byte_end) = byte_range(text, span);
    let mut position = span.start;
    let mut words = Vec::new();
    for piece in text[byte_start..byte_end].split_word_bounds() {
        let length = piece.chars().count();
        if piece.chars().any(|c| c.is_alphanumeric()) || piece == "&" {
            words.push(Word {
                start: position,
                end: position + length,
                text: piece,
            });
        }
        position += length;
    }
    words
}

fn words_lower(text: &str) -> Vec<String> {
    let all = CharSpan::new(0, text.chars().count());
    words_in(text, all)
        .iter()
        .map(|w| w.text.to_lowercase())
        .collect()
}

/// The byte range of a code-point span.
fn byte_range(text: &str, span: CharSpan) -> (usize, usize) {
    let mut indices = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()));
    let start = indices.by_ref().nth(span.start).unwrap_or(text.len());
    let end = if span.end > span.start {
        indices.nth(span.end - span.start - 1).unwrap_or(text.len())
    } else {
        start
    };
    (start, end)
}

/// The text of a code-point span.
pub fn slice(text: &str, span: CharSpan) -> String {
    let (start, end) = byte_range(text, span);
    text[start..end].to_string()
}

/// Lower-case words that may stand inside a name between capitalised ones ("University of
/// Oxford", "Leonardo da Vinci", "Bank of America").
const NAME_CONNECTORS: &[&str] = &[
    "of", "the", "de", "da", "di", "del", "della", "der", "den", "van", "von", "la", "le", "du", "y", "&",
    "for", "al", "bin", "ibn",
];

/// Capitalised words that begin sentences without being names: a name never starts with one
/// ("The Beatles" is proposed as "Beatles"; "the" inside a name is a connector).
const SENTENCE_WORDS: &[&str] = &[
    "the",
    "a",
    "an",
    "in",
    "on",
    "at",
    "it",
    "he",
    "she",
    "they",
    "we",
    "i",
    "you",
    "his",
    "her",
    "their",
    "its",
    "this",
    "that",
    "these",
    "those",
    "there",
    "after",
    "before",
    "during",
    "when",
    "while",
    "although",
    "however",
    "since",
    "as",
    "by",
    "from",
    "for",
    "with",
    "of",
    "to",
    "but",
    "and",
    "or",
    "if",
    "then",
    "also",
    "both",
    "each",
    "one",
    "some",
    "many",
    "most",
    "all",
    "other",
    "another",
    "following",
    "later",
    "early",
    "today",
    "here",
    "what",
    "which",
    "who",
    "where",
    "why",
    "how",
    "is",
    "was",
    "were",
    "are",
    "be",
    "not",
    "no",
    "yes",
    "according",
    "despite",
    "between",
    "among",
    "under",
    "over",
    "into",
    "upon",
    "about",
    "through",
    "until",
    "unlike",
    "like",
    "because",
    "so",
    "thus",
    "hence",
];

/// The rule-based mention proposer (the baseline): runs of capitalised words, lower-case
/// connectors allowed between them, and a number right after one ("NGC 329"); numbers of four
/// digits (years). A run never starts with a capitalised function word ("In", "The", "He").
pub fn propose_by_rules(text: &str, sentence: CharSpan) -> Vec<CharSpan> {
    let words = words_in(text, sentence);
    let capitalised = |w: &Word| {
        w.text.chars().next().is_some_and(|c| {
            c.is_uppercase() || c.is_ascii_digit() && w.text.chars().any(|c| c.is_alphabetic())
        })
    };
    let mut spans = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        if word.text.chars().all(|c| c.is_ascii_digit()) && word.text.len() == 4 {
            spans.push(CharSpan::new(word.start, word.end));
            i += 1;
            continue;
        }
        // A capitalised function word ("In", "The", "He") does not start a name.
        if !capitalised(word) || SENTENCE_WORDS.contains(&word.text.to_lowercase().as_str()) {
            i += 1;
            continue;
        }
        // A run of capitalised words, with connectors between two of them.
        let start = i;
        let mut end = i + 1;
        loop {
            let mut j = end;
            while j < words.len()
                && NAME_CONNECTORS.contains(&words[j].text.to_lowercase().as_str())
                && !capitalised(&words[j])
            {
                j += 1;
            }
            // Numbers right after a name belong to it ("Apollo 11", "NGC 329").
            if j < words.len()
                && (capitalised(&words[j]) || (j == end && words[j].text.chars().all(|c| c.is_ascii_digit())))
            {
                // Words in a run must be adjacent in the text (no punctuation between them).
                if !gap_is_space(text, &words[j - 1], &words[j]) {
                    break;
                }
                end = j + 1;
            } else {
                break;
            }
        }
        spans.push(CharSpan::new(words[start].start, words[end - 1].end));
        i = end;
    }
    spans
}

/// A word of a sentence, for the learned proposer's candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceWord {
    /// Code points of the document.
    pub span: CharSpan,
    /// Starts with a capital letter (or a digit with letters after it: "3M").
    pub capitalised: bool,
    /// A lower-case word that may stand inside a name ("of", "de", "van").
    pub connector: bool,
    /// A word that begins sentences without being a name ("The", "In", "He").
    pub function_word: bool,
    pub has_digit: bool,
    /// Whether only spaces, hyphens or full stops separate it from the next word (a name may
    /// go on across the gap).
    joins_next: bool,
}

impl SentenceWord {
    /// Whether a name may run from this word on to `next` (the word after it).
    pub fn joins(&self, next: &SentenceWord) -> bool {
        self.joins_next && self.span.end <= next.span.start
    }
}

/// The words of a sentence (see `words_in`), each with whether it joins the next.
pub fn sentence_words(text: &str, sentence: CharSpan) -> Vec<SentenceWord> {
    let words = words_in(text, sentence);
    words
        .iter()
        .enumerate()
        .map(|(i, w)| SentenceWord {
            span: CharSpan::new(w.start, w.end),
            capitalised: w.text.chars().next().is_some_and(|c| {
                c.is_uppercase() || c.is_ascii_digit() && w.text.chars().any(|c| c.is_alphabetic())
            }),
            connector: NAME_CONNECTORS.contains(&w.text.to_lowercase().as_str()),
            function_word: SENTENCE_WORDS.contains(&w.text.to_lowercase().as_str()),
            has_digit: w.text.chars().any(|c| c.is_ascii_digit()),
            joins_next: words.get(i + 1).is_some_and(|next| gap_is_space(text, w, next)),
        })
        .collect()
}

/// Whether only spaces separate two words (a comma or a bracket ends a name).
fn gap_is_space(text: &str, left: &Word, right: &Word) -> bool {
    let gap = slice(text, CharSpan::new(left.end, right.start));
    gap.chars()
        .all(|c| c == ' ' || c == '\u{a0}' || c == '-' || c == '.')
}

/// Mentions of one sentence: `marked` first, then `listed`, then `proposed`, each dropped
/// where it overlaps a more trusted one (proposals may nest in each other, as the proposer
/// gives them, but not cross); in text order.
pub fn merge(text: &str, marked: &[CharSpan], listed: Vec<Mention>, proposed: &[CharSpan]) -> Vec<Mention> {
    let mut kept: Vec<Mention> = marked
        .iter()
        .map(|&span| Mention {
            start: span.start,
            end: span.end,
            text: slice(text, span),
            source: MentionSource::Marked,
            entity: None,
        })
        .collect();
    for mention in listed {
        if !kept.iter().any(|m| m.span().overlaps(&mention.span())) {
            kept.push(mention);
        }
    }
    let trusted = kept.len();
    for &span in proposed {
        if !kept[..trusted].iter().any(|m| m.span().overlaps(&span))
            && !kept[trusted..].iter().any(|m| m.span().crosses(&span))
        {
            kept.push(Mention {
                start: span.start,
                end: span.end,
                text: slice(text, span),
                source: MentionSource::Proposed,
                entity: None,
            });
        }
    }
    kept.sort_by_key(|m| (m.start, m.end));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposed(text: &str) -> Vec<String> {
        propose_by_rules(text, CharSpan::new(0, text.chars().count()))
            .into_iter()
            .map(|s| slice(text, s))
            .collect()
    }

    #[test]
    fn rules_find_capitalised_names_with_connectors_and_years() {
        assert_eq!(
            proposed(
                "In 1869 the Tower Subway was bored under the River Thames by the University of Oxford."
            ),
            ["1869", "Tower Subway", "River Thames", "University of Oxford"]
        );
        assert_eq!(
            proposed("NGC 329 is a spiral galaxy in the constellation Cetus."),
            ["NGC 329", "Cetus"]
        );
        assert_eq!(
            proposed("He met Leonardo da Vinci, Zhu De and Kang Keqing."),
            ["Leonardo da Vinci", "Zhu De", "Kang Keqing"]
        );
    }

    #[test]
    fn listed_names_match_case_insensitively_on_word_boundaries_with_aliases() {
        let list = EntityList::parse(
            r#"["Marie Curie", {"name": "IBM", "aliases": ["International Business Machines"]}, "York"]"#,
            "list",
        )
        .unwrap();
        let text = "MARIE CURIE never worked for International Business Machines in New York or Yorkshire.";
        let found = list.find(text, CharSpan::new(0, text.chars().count()));
        let got: Vec<(&str, &str)> = found
            .iter()
            .map(|m| (m.text.as_str(), m.entity.as_deref().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("MARIE CURIE", "Marie Curie"),
                ("International Business Machines", "IBM"),
                ("York", "York")
            ]
        );
        let lines = EntityList::parse("Ada Lovelace\tLady Lovelace\n\nBabbage\n", "lines").unwrap();
        let text = "Lady Lovelace wrote to Babbage.";
        assert_eq!(lines.find(text, CharSpan::new(0, 31)).len(), 2);
        assert!(EntityList::parse(r#"[""]"#, "x").is_err());
        assert!(EntityList::parse("[1, 2", "x").is_err());
    }

    #[test]
    fn marked_mentions_win_over_listed_and_proposed_ones() {
        let text = "Marie Curie was born in Warsaw.";
        let marked = [CharSpan::new(0, 5)];
        let list = EntityList::parse(r#"["Marie Curie", "Warsaw"]"#, "l").unwrap();
        let listed = list.find(text, CharSpan::new(0, 31));
        let proposed = propose_by_rules(text, CharSpan::new(0, 31));
        let merged = merge(text, &marked, listed, &proposed);
        let got: Vec<(&str, MentionSource)> = merged.iter().map(|m| (m.text.as_str(), m.source)).collect();
        assert_eq!(
            got,
            [
                ("Marie", MentionSource::Marked),
                ("Warsaw", MentionSource::Listed)
            ]
        );
    }

    #[test]
    fn proposals_nest_in_each_other_but_not_in_a_trusted_mention() {
        let text = "Ann is an English soprano from Leeds.";
        let marked = [CharSpan::new(31, 36)];
        // "English soprano", "soprano" inside it, "soprano from" crossing the first, "Leeds"
        // under the marked span.
        let proposed = [
            CharSpan::new(10, 25),
            CharSpan::new(18, 25),
            CharSpan::new(18, 30),
            CharSpan::new(31, 36),
            CharSpan::new(0, 3),
        ];
        let merged = merge(text, &marked, Vec::new(), &proposed);
        let got: Vec<&str> = merged.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(got, ["Ann", "English soprano", "soprano", "Leeds"]);
        assert_eq!(merged[3].source, MentionSource::Marked);
    }

    #[test]
    fn offsets_are_code_points_of_the_whole_text() {
        let text = "Zoë met Ünal Öztürk. Then Zoë left.";
        let second = CharSpan::new(21, 35);
        let spans = propose_by_rules(text, second);
        assert_eq!(spans.iter().map(|&s| slice(text, s)).collect::<Vec<_>>(), ["Zoë"]);
        assert_eq!(spans[0], CharSpan::new(26, 29));
    }
}
