//! Entity markers: how a relation instance becomes the token sequence the encoder reads, and
//! where the head and tail are in it.
//!
//! The scheme is TKRE's typed punctuation markers, which need no new vocabulary entries:
//! `@ * type * head @ ... # ^ type ^ tail #` (the `* type *` and `^ type ^` parts only when the
//! type is known). Because BERT's pre-tokenizer splits every punctuation character into its
//! own token, each marker is exactly one word piece.

use std::ops::Range;

use super::instance::{CharSpan, RelationInstance};
use super::tokenizer::{Pieces, TextTokenizer};
use crate::error::{Result, TkreError};

/// Token positions of an instance after marking, tokenizing and adding [CLS]/[SEP].
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedInstance {
    /// `[CLS] ... [SEP]`.
    pub ids: Vec<u32>,
    /// Position of the `@` that opens the head.
    pub head_marker: usize,
    /// Word pieces of the head entity text.
    pub head: Range<usize>,
    /// Position of the `#` that opens the tail.
    pub tail_marker: usize,
    /// Word pieces of the tail entity text.
    pub tail: Range<usize>,
    /// Whether the sentence was cut to fit the model's maximum length.
    pub truncated: bool,
}

/// Byte positions in the marked text of one entity's markers and text.
struct EntityBytes {
    open: usize,
    text: Range<usize>,
    close: usize,
}

/// The marked text and where each entity is in it.
struct MarkedText {
    text: String,
    head: EntityBytes,
    tail: EntityBytes,
}

fn char_to_byte(text: &str, char_index: usize) -> usize {
    text.char_indices()
        .nth(char_index)
        .map(|(b, _)| b)
        .unwrap_or(text.len())
}

/// Appends ` M [T type T] entity M ` and returns where its parts landed.
fn push_entity(
    out: &mut String,
    entity: &str,
    marker: char,
    type_mark: char,
    ty: Option<&str>,
) -> EntityBytes {
    out.push(' ');
    let open = out.len();
    out.push(marker);
    out.push(' ');
    if let Some(ty) = ty {
        out.push(type_mark);
        out.push(' ');
        out.push_str(ty.trim());
        out.push(' ');
        out.push(type_mark);
        out.push(' ');
    }
    let start = out.len();
    out.push_str(entity);
    let end = out.len();
    out.push(' ');
    let close = out.len();
    out.push(marker);
    out.push(' ');
    EntityBytes {
        open,
        text: start..end,
        close,
    }
}

/// Inserts the markers into the instance's text.
fn mark(instance: &RelationInstance) -> MarkedText {
    let text = &instance.text;
    let bytes =
        |span: super::instance::CharSpan| (char_to_byte(text, span.start), char_to_byte(text, span.end));
    let head = (bytes(instance.head), '@', '*', instance.head_type.as_deref());
    let tail = (bytes(instance.tail), '#', '^', instance.tail_type.as_deref());
    let head_first = head.0.0 < tail.0.0;
    let (a, b) = if head_first { (head, tail) } else { (tail, head) };

    let mut out = String::with_capacity(text.len() + 32);
    out.push_str(&text[..a.0.0]);
    let first = push_entity(&mut out, &text[a.0.0..a.0.1], a.1, a.2, a.3);
    out.push_str(&text[a.0.1..b.0.0]);
    let second = push_entity(&mut out, &text[b.0.0..b.0.1], b.1, b.2, b.3);
    out.push_str(&text[b.0.1..]);
    let (head, tail) = if head_first {
        (first, second)
    } else {
        (second, first)
    };
    MarkedText {
        text: out,
        head,
        tail,
    }
}

/// Marks, tokenizes and (if needed) windows an instance to at most `max_len` tokens
/// including [CLS] and [SEP]. A sentence that is too long keeps both entities with their
/// markers and as much context around them as fits; `truncated` says so.
pub fn encode_instance(
    tokenizer: &TextTokenizer,
    instance: &RelationInstance,
    max_len: usize,
) -> Result<EncodedInstance> {
    let marked = mark(instance);
    let pieces = tokenizer.pieces(&marked.text)?;
    let find_marker = |byte: usize, what: &str| {
        pieces
            .offsets
            .iter()
            .position(|&(s, _)| s == byte)
            .ok_or_else(|| {
                TkreError::Instance(format!(
                    "internal: the {what} marker was not tokenized as its own word piece in {:?}; \
                 the tokenizer must split punctuation (BERT pre-tokenizer)",
                    marked.text
                ))
            })
    };
    let span_of = |bytes: &Range<usize>, what: &str| -> Result<Range<usize>> {
        let inside: Vec<usize> = (0..pieces.ids.len())
            .filter(|&i| {
                let (s, e) = pieces.offsets[i];
                s >= bytes.start && e <= bytes.end && e > s
            })
            .collect();
        match (inside.first(), inside.last()) {
            (Some(&a), Some(&b)) => Ok(a..b + 1),
            _ => Err(TkreError::Instance(format!(
                "the {what} entity {:?} produced no word pieces; it must contain letters or digits",
                &marked.text[bytes.clone()]
            ))),
        }
    };
    let head_marker = find_marker(marked.head.open, "head-opening")?;
    let head_end_marker = find_marker(marked.head.close, "head-closing")?;
    let tail_marker = find_marker(marked.tail.open, "tail-opening")?;
    let tail_end_marker = find_marker(marked.tail.close, "tail-closing")?;
    let head = span_of(&marked.head.text, "head")?;
    let tail = span_of(&marked.tail.text, "tail")?;

    let budget = max_len.saturating_sub(2);
    let blocks = [head_marker..head_end_marker + 1, tail_marker..tail_end_marker + 1];
    let keep = window(pieces.ids.len(), budget, &blocks).ok_or_else(|| {
        TkreError::Instance(format!(
            "the two entities with their markers need {} word pieces, more than the model's \
             limit of {max_len}; shorten the entity names",
            blocks[0].len() + blocks[1].len() + 2
        ))
    })?;
    Ok(assemble(
        tokenizer,
        &pieces.ids,
        &keep,
        (head_marker, head),
        (tail_marker, tail),
    ))
}

/// The kept pieces (`keep`, in order) between [CLS] and [SEP], with each entity's marker
/// position and piece range moved to where they landed.
fn assemble(
    tokenizer: &TextTokenizer,
    ids: &[u32],
    keep: &[usize],
    head: (usize, Range<usize>),
    tail: (usize, Range<usize>),
) -> EncodedInstance {
    // New position of an old piece index: +1 for [CLS].
    let mut new_index = vec![usize::MAX; ids.len()];
    for (new, &old) in keep.iter().enumerate() {
        new_index[old] = new + 1;
    }
    let kept_ids: Vec<u32> = keep.iter().map(|&i| ids[i]).collect();
    let moved = |r: &Range<usize>| new_index[r.start]..new_index[r.end - 1] + 1;
    EncodedInstance {
        ids: tokenizer.with_special_tokens(&kept_ids),
        head_marker: new_index[head.0],
        head: moved(&head.1),
        tail_marker: new_index[tail.0],
        tail: moved(&tail.1),
        truncated: keep.len() < ids.len(),
    }
}

/// How the encoder is told where a relation's entities are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Marking {
    /// Punctuation markers around both entities ([`encode_instance`]): one encoder pass per
    /// pair.
    #[default]
    Marked,
    /// The plain sentence; the entities are only where their word pieces are pooled
    /// ([`encode_unmarked`]). Every pair of one sentence reads the same encoder pass.
    Unmarked,
}

impl Marking {
    pub const ALL: [Marking; 2] = [Self::Marked, Self::Unmarked];

    pub fn name(self) -> &'static str {
        match self {
            Self::Marked => "marked",
            Self::Unmarked => "unmarked",
        }
    }

    /// Encodes `instance` this way.
    pub fn encode(
        self,
        tokenizer: &TextTokenizer,
        instance: &RelationInstance,
        max_len: usize,
    ) -> Result<EncodedInstance> {
        match self {
            Self::Marked => encode_instance(tokenizer, instance, max_len),
            Self::Unmarked => encode_unmarked(tokenizer, instance, max_len),
        }
    }
}

impl std::str::FromStr for Marking {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown marking {s:?}; choose marked or unmarked"))
    }
}

/// Word-piece range of each character span of `text`: the pieces that overlap it (a span that
/// cuts a word takes the whole piece). An error names a span that covers no piece.
pub fn piece_ranges(text: &str, pieces: &Pieces, spans: &[CharSpan]) -> Result<Vec<Range<usize>>> {
    let mut byte_of_char: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    byte_of_char.push(text.len());
    spans
        .iter()
        .map(|span| {
            let byte = |c: usize| byte_of_char[c.min(byte_of_char.len() - 1)];
            let (start, end) = (byte(span.start), byte(span.end));
            let first = pieces
                .offsets
                .iter()
                .position(|&(s, e)| e > start && s < end && e > s);
            let last = pieces
                .offsets
                .iter()
                .rposition(|&(s, e)| e > start && s < end && e > s);
            match (first, last) {
                (Some(a), Some(b)) => Ok(a..b + 1),
                _ => Err(TkreError::Instance(format!(
                    "the entity {:?} produced no word pieces; it must contain letters or digits",
                    &text[start..end]
                ))),
            }
        })
        .collect()
}

/// An instance without markers: the plain sentence's word pieces, windowed around both
/// entities like [`encode_instance`] when too long; `head_marker`/`tail_marker` are the
/// entities' first pieces.
pub fn encode_unmarked(
    tokenizer: &TextTokenizer,
    instance: &RelationInstance,
    max_len: usize,
) -> Result<EncodedInstance> {
    let pieces = tokenizer.pieces(&instance.text)?;
    let ranges = piece_ranges(&instance.text, &pieces, &[instance.head, instance.tail])?;
    let (head, tail) = (ranges[0].clone(), ranges[1].clone());
    let keep = window(
        pieces.ids.len(),
        max_len.saturating_sub(2),
        &[head.clone(), tail.clone()],
    )
    .ok_or_else(|| {
        TkreError::Instance(format!(
            "the two entities need {} word pieces, more than the model's limit of {max_len}; \
                 shorten the entity names",
            head.len() + tail.len() + 2
        ))
    })?;
    Ok(assemble(
        tokenizer,
        &pieces.ids,
        &keep,
        (head.start, head.clone()),
        (tail.start, tail),
    ))
}

/// Which of `len` pieces to keep so that at most `budget` remain and every piece of both
/// `blocks` is kept. A contiguous window around both blocks when they fit together;
/// otherwise each block with the context nearest to it. `None` when the blocks alone do
/// not fit.
fn window(len: usize, budget: usize, blocks: &[Range<usize>; 2]) -> Option<Vec<usize>> {
    if len <= budget {
        return Some((0..len).collect());
    }
    let lo = blocks[0].start.min(blocks[1].start);
    let hi = blocks[0].end.max(blocks[1].end);
    if hi - lo <= budget {
        let slack = budget - (hi - lo);
        let start = lo.saturating_sub(slack / 2).min(len - budget);
        return Some((start..start + budget).collect());
    }
    let needed = blocks[0].len() + blocks[1].len();
    if needed > budget {
        return None;
    }
    let mut keep = vec![false; len];
    for block in blocks {
        keep[block.clone()].fill(true);
    }
    let mut count = needed;
    // Grow around both blocks, one piece per direction in turn, nearest context first.
    let mut frontiers = [(blocks[0].start, blocks[0].end), (blocks[1].start, blocks[1].end)];
    while count < budget {
        let mut grew = false;
        for (left, right) in frontiers.iter_mut() {
            if count < budget && *left > 0 && !keep[*left - 1] {
                *left -= 1;
                keep[*left] = true;
                count += 1;
                grew = true;
            }
            if count < budget && *right < len && !keep[*right] {
                keep[*right] = true;
                *right += 1;
                count += 1;
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    Some((0..len).filter(|&i| keep[i]).collect())
}

/// Tokenizes a plain sentence for sentence embeddings, cutting it to `max_len` tokens
/// including [CLS] and [SEP]. Returns the ids and whether the sentence was cut.
pub fn encode_sentence(tokenizer: &TextTokenizer, text: &str, max_len: usize) -> Result<(Vec<u32>, bool)> {
    let pieces = tokenizer.pieces(text)?;
    let budget = max_len.saturating_sub(2);
    let truncated = pieces.ids.len() > budget;
    let kept = &pieces.ids[..pieces.ids.len().min(budget)];
    Ok((tokenizer.with_special_tokens(kept), truncated))
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn window_keeps_everything_that_fits() {
        assert_eq!(window(5, 10, &[1..2, 3..4]).unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn window_is_contiguous_when_both_entities_fit() {
        let kept = window(100, 10, &[40..43, 45..48]).unwrap();
        assert_eq!(kept.len(), 10);
        assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(kept.contains(&40) && kept.contains(&47));
    }

    #[test]
    fn window_near_the_end_stays_in_range() {
        let kept = window(100, 10, &[95..97, 98..100]).unwrap();
        assert_eq!(kept, (90..100).collect::<Vec<_>>());
    }

    #[test]
    fn window_splits_when_entities_are_far_apart() {
        let kept = window(200, 12, &[10..13, 150..153]).unwrap();
        assert_eq!(kept.len(), 12);
        for i in (10..13).chain(150..153) {
            assert!(kept.contains(&i), "{i} missing from {kept:?}");
        }
    }

    #[test]
    fn window_refuses_blocks_that_cannot_fit() {
        assert!(window(200, 5, &[10..13, 150..153]).is_none());
    }
}
