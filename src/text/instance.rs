//! A relation instance: a sentence with a head and a tail entity, from any of the three input
//! forms (FewRel record, marked sentence, character offsets).

use serde::{Deserialize, Serialize};

use crate::error::{Result, TkreError};

/// A half-open range of character offsets (Unicode scalar values, not bytes) into a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CharSpan {
    pub start: usize,
    pub end: usize,
}

impl CharSpan {
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// Whether the two spans share a character.
    pub fn overlaps(&self, other: &CharSpan) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether the two spans overlap without one holding the other ("New York" and "York
    /// City" cross; "York" nests in "New York").
    pub fn crosses(&self, other: &CharSpan) -> bool {
        self.overlaps(other)
            && !(self.start <= other.start && other.end <= self.end)
            && !(other.start <= self.start && self.end <= other.end)
    }
}

/// A sentence and its two entities, validated: both spans are inside the text, non-empty,
/// not only whitespace, and do not overlap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationInstance {
    pub text: String,
    pub head: CharSpan,
    pub tail: CharSpan,
    /// Entity types, when known (used by the typed marker scheme).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_type: Option<String>,
}

/// A FewRel record: `{"tokens": [...], "h": [name, id, [[indexes]]], "t": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewRelRecord {
    pub tokens: Vec<String>,
    pub h: (String, serde_json::Value, Vec<Vec<usize>>),
    pub t: (String, serde_json::Value, Vec<Vec<usize>>),
}

pub const HEAD_OPEN: &str = "[E1]";
pub const HEAD_CLOSE: &str = "[/E1]";
pub const TAIL_OPEN: &str = "[E2]";
pub const TAIL_CLOSE: &str = "[/E2]";

impl RelationInstance {
    /// From a text with character offsets of the head and tail entities.
    pub fn from_offsets(text: impl Into<String>, head: CharSpan, tail: CharSpan) -> Result<Self> {
        let instance = Self {
            text: text.into(),
            head,
            tail,
            head_type: None,
            tail_type: None,
        };
        instance.validate()?;
        Ok(instance)
    }

    /// Adds entity types (for typed markers).
    pub fn with_types(mut self, head_type: Option<String>, tail_type: Option<String>) -> Self {
        self.head_type = head_type.filter(|t| !t.trim().is_empty());
        self.tail_type = tail_type.filter(|t| !t.trim().is_empty());
        self
    }

    /// From a marked sentence: `[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].`
    /// Each of the four markers must appear exactly once, each entity opened before it is
    /// closed, and the two entities must not nest.
    pub fn from_marked(marked: &str) -> Result<Self> {
        let mut text = String::with_capacity(marked.len());
        let mut chars = 0usize;
        let (mut head_open, mut head_close, mut tail_open, mut tail_close) = (None, None, None, None);
        let mut rest = marked;
        while !rest.is_empty() {
            let found = [HEAD_OPEN, HEAD_CLOSE, TAIL_OPEN, TAIL_CLOSE]
                .into_iter()
                .find(|m| rest.starts_with(m));
            match found {
                Some(marker) => {
                    let slot = match marker {
                        HEAD_OPEN => &mut head_open,
                        HEAD_CLOSE => &mut head_close,
                        TAIL_OPEN => &mut tail_open,
                        _ => &mut tail_close,
                    };
                    if slot.is_some() {
                        return Err(marked_error(
                            marked,
                            &format!("{marker} appears more than once; mark each entity exactly once"),
                        ));
                    }
                    *slot = Some(chars);
                    rest = &rest[marker.len()..];
                }
                None => {
                    // `rest` is non-empty, so it has a first char.
                    let c = rest.chars().next().unwrap_or_default();
                    text.push(c);
                    chars += 1;
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        if let Some(marker) = [HEAD_OPEN, HEAD_CLOSE, TAIL_OPEN, TAIL_CLOSE]
            .into_iter()
            .find(|m| text.contains(m))
        {
            // Only possible when one marker was written inside another, e.g. "[E[E2]1]".
            return Err(marked_error(
                marked,
                &format!("a marker is nested inside {marker}"),
            ));
        }
        let require = |pos: Option<usize>, marker: &str| {
            pos.ok_or_else(|| marked_error(marked, &format!("{marker} is missing")))
        };
        let head = CharSpan::new(require(head_open, HEAD_OPEN)?, require(head_close, HEAD_CLOSE)?);
        let tail = CharSpan::new(require(tail_open, TAIL_OPEN)?, require(tail_close, TAIL_CLOSE)?);
        for (span, open, close) in [(head, HEAD_OPEN, HEAD_CLOSE), (tail, TAIL_OPEN, TAIL_CLOSE)] {
            if span.start > span.end {
                return Err(marked_error(marked, &format!("{close} comes before {open}")));
            }
        }
        // Overlap and nesting are caught by `validate`, through `from_offsets`.
        Self::from_offsets(text, head, tail).map_err(|e| marked_error(marked, &e.to_string()))
    }

    /// From a FewRel record: tokens joined by single spaces; the first mention of each entity
    /// (its token indexes must be consecutive) gives the span.
    pub fn from_fewrel(record: &FewRelRecord) -> Result<Self> {
        let span_of = |field: &str, mentions: &Vec<Vec<usize>>| -> Result<(usize, usize)> {
            let indexes = mentions.first().filter(|m| !m.is_empty()).ok_or_else(|| {
                TkreError::Instance(format!("FewRel record: `{field}` has no token indexes"))
            })?;
            let (first, last) = (indexes[0], indexes[indexes.len() - 1]);
            // checked: an index near usize::MAX must be an error, not an overflow.
            if indexes.windows(2).any(|w| w[0].checked_add(1) != Some(w[1])) {
                return Err(TkreError::Instance(format!(
                    "FewRel record: `{field}` token indexes {indexes:?} are not consecutive"
                )));
            }
            if last >= record.tokens.len() {
                return Err(TkreError::Instance(format!(
                    "FewRel record: `{field}` token index {last} is out of range (the record has {} tokens)",
                    record.tokens.len()
                )));
            }
            Ok((first, last + 1))
        };
        let (hs, he) = span_of("h", &record.h.2)?;
        let (ts, te) = span_of("t", &record.t.2)?;
        let mut text = String::new();
        let mut starts = Vec::with_capacity(record.tokens.len() + 1);
        let mut chars = 0;
        for (i, token) in record.tokens.iter().enumerate() {
            if i > 0 {
                text.push(' ');
                chars += 1;
            }
            starts.push(chars);
            text.push_str(token);
            chars += token.chars().count();
        }
        let end_of = |last_exclusive: usize| {
            starts[last_exclusive - 1] + record.tokens[last_exclusive - 1].chars().count()
        };
        Self::from_offsets(
            text,
            CharSpan::new(starts[hs], end_of(he)),
            CharSpan::new(starts[ts], end_of(te)),
        )
    }

    /// Checks the spans against the text.
    pub fn validate(&self) -> Result<()> {
        let len = self.text.chars().count();
        if self.text.trim().is_empty() {
            return Err(TkreError::Instance("the sentence is empty".into()));
        }
        for (name, span) in [("head", self.head), ("tail", self.tail)] {
            if span.start >= span.end {
                return Err(TkreError::Instance(format!(
                    "the {name} entity span {}..{} is empty; give start < end (character offsets)",
                    span.start, span.end
                )));
            }
            if span.end > len {
                return Err(TkreError::Instance(format!(
                    "the {name} entity span {}..{} is out of range: the sentence has {len} characters",
                    span.start, span.end
                )));
            }
            if self.entity_text(span).trim().is_empty() {
                return Err(TkreError::Instance(format!(
                    "the {name} entity span {}..{} covers only whitespace",
                    span.start, span.end
                )));
            }
        }
        if self.head.overlaps(&self.tail) {
            return Err(TkreError::Instance(format!(
                "the head ({}..{}) and tail ({}..{}) entities overlap; they must be separate spans",
                self.head.start, self.head.end, self.tail.start, self.tail.end
            )));
        }
        Ok(())
    }

    fn entity_text(&self, span: CharSpan) -> String {
        self.text
            .chars()
            .skip(span.start)
            .take(span.end - span.start)
            .collect()
    }

    pub fn head_text(&self) -> String {
        self.entity_text(self.head)
    }

    pub fn tail_text(&self) -> String {
        self.entity_text(self.tail)
    }

    /// The sentence with `[E1]`/`[E2]` markers, the inverse of [`Self::from_marked`].
    pub fn to_marked(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 20);
        for (i, c) in self.text.chars().enumerate() {
            for (pos, marker) in [
                (self.head.end, HEAD_CLOSE),
                (self.tail.end, TAIL_CLOSE),
                (self.head.start, HEAD_OPEN),
                (self.tail.start, TAIL_OPEN),
            ] {
                if pos == i {
                    out.push_str(marker);
                }
            }
            out.push(c);
        }
        let len = self.text.chars().count();
        for (pos, marker) in [(self.head.end, HEAD_CLOSE), (self.tail.end, TAIL_CLOSE)] {
            if pos == len {
                out.push_str(marker);
            }
        }
        out
    }
}

fn marked_error(marked: &str, problem: &str) -> TkreError {
    let shown: String = marked.chars().take(80).collect();
    let ellipsis = if marked.chars().count() > 80 { "..." } else { "" };
    TkreError::Instance(format!(
        "marked sentence {shown:?}{ellipsis}: {problem} \
         (expected e.g. \"[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].\")"
    ))
}
