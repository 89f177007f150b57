//! Sentences of a document: Unicode's sentence boundaries (UAX #29, from the
//! `unicode-segmentation` crate, which handles numbers such as "3.5", closing quotes and
//! brackets, and every script's sentence punctuation), then the boundaries that UAX #29 puts
//! after abbreviations and initials taken back ("Dr. Smith", "J. R. R. Tolkien", "e.g. this"),
//! and sentences longer than a limit cut at a space, so that text without punctuation still
//! comes in pieces an encoder can read. Spans are in code points, as every offset here.

use unicode_segmentation::UnicodeSegmentation;

use crate::text::CharSpan;

/// Longest sentence kept whole, in code points (a FewRel sentence is about 150, its longest
/// about 500; the encoder reads at most 256 word pieces).
pub const MAX_SENTENCE_CHARS: usize = 600;

/// Abbreviations after which a period does not end a sentence: titles before a name, and
/// Latin and reference abbreviations before more of the same sentence. Lower-cased, without
/// the final period.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "st", "mt", "ft", "gen", "col", "lt", "sgt", "capt", "cmdr",
    "adm", "gov", "sen", "rep", "pres", "rev", "hon", "fr", "e.g", "i.e", "cf", "vs", "approx", "no", "nos",
    "vol", "pp", "fig", "figs", "eq", "ch", "sec", "dept", "univ", "jan", "feb", "mar", "apr", "aug", "sept",
    "sep", "oct", "nov", "dec",
];

/// The sentences of `text`, as spans without their surrounding whitespace, in order; empty
/// text or text of whitespace only has none.
pub fn split_sentences(text: &str) -> Vec<CharSpan> {
    let mut sentences: Vec<CharSpan> = Vec::new();
    let mut chars_before = 0; // code points before the current segment
    let mut join_next = false;
    for segment in text.split_sentence_bounds() {
        let length = segment.chars().count();
        let span = trimmed(segment, chars_before);
        chars_before += length;
        let Some(span) = span else { continue };
        match sentences.last_mut() {
            Some(last) if join_next => last.end = span.end,
            _ => sentences.push(span),
        }
        join_next = ends_with_abbreviation(segment.trim_end());
    }
    sentences
        .into_iter()
        .flat_map(|span| cut_long(text, span))
        .collect()
}

/// `segment`'s span (starting `offset` code points into the text) without leading and
/// trailing whitespace; `None` if nothing is left.
fn trimmed(segment: &str, offset: usize) -> Option<CharSpan> {
    let leading = segment.chars().take_while(|c| c.is_whitespace()).count();
    let kept = segment.trim().chars().count();
    (kept > 0).then(|| CharSpan::new(offset + leading, offset + leading + kept))
}

/// Whether a sentence UAX #29 ended here ends in an abbreviation or an initial, so the
/// boundary is not one.
fn ends_with_abbreviation(sentence: &str) -> bool {
    let Some(stem) = sentence.strip_suffix('.') else {
        return false;
    };
    let word = stem
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"' || c == '\u{201c}')
        .next()
        .unwrap_or("");
    let mut letters = word.chars();
    // An initial: one capital letter ("J." in "J. Smith").
    if let (Some(first), None) = (letters.next(), letters.next())
        && first.is_uppercase()
    {
        return true;
    }
    // A dotted acronym: single letters between periods ("U.S.", "e.g.", "a.m.").
    let dotted = word.contains('.')
        && word.split('.').all(|part| {
            let mut chars = part.chars();
            matches!((chars.next(), chars.next()), (Some(c), None) if c.is_alphabetic())
        });
    dotted || ABBREVIATIONS.contains(&word.to_lowercase().as_str())
}

/// `span` in pieces of at most [`MAX_SENTENCE_CHARS`], each cut after the last whitespace
/// that fits (or hard, in a run without any), trimmed.
fn cut_long(text: &str, span: CharSpan) -> Vec<CharSpan> {
    if span.end - span.start <= MAX_SENTENCE_CHARS {
        return vec![span];
    }
    let chars: Vec<char> = text
        .chars()
        .skip(span.start)
        .take(span.end - span.start)
        .collect();
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + MAX_SENTENCE_CHARS).min(chars.len());
        if end < chars.len()
            && let Some(space) = (start + 1..end).rev().find(|&i| chars[i].is_whitespace())
        {
            end = space;
        }
        let piece = &chars[start..end];
        let leading = piece.iter().take_while(|c| c.is_whitespace()).count();
        let trailing = piece.iter().rev().take_while(|c| c.is_whitespace()).count();
        if leading < piece.len() {
            pieces.push(CharSpan::new(
                span.start + start + leading,
                span.start + end - trailing,
            ));
        }
        start = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        split_sentences(text)
            .into_iter()
            .map(|s| chars[s.start..s.end].iter().collect())
            .collect()
    }

    #[test]
    fn splits_at_sentence_ends_and_keeps_abbreviations_numbers_and_initials() {
        assert_eq!(
            sentences("Dr. Smith met Mr. J. R. Jones in the U.S. Army at 3.5 p.m. on Jan. 4. They talked."),
            [
                "Dr. Smith met Mr. J. R. Jones in the U.S. Army at 3.5 p.m. on Jan. 4.",
                "They talked."
            ]
        );
        assert_eq!(
            sentences(
                "  Marie Curie was born in Warsaw.  She moved to Paris (e.g. to study)!Did she? Yes.\n"
            ),
            [
                "Marie Curie was born in Warsaw.",
                "She moved to Paris (e.g. to study)!",
                "Did she?",
                "Yes."
            ]
        );
    }

    #[test]
    fn other_scripts_quotes_and_line_breaks() {
        assert_eq!(
            sentences("東京は日本の首都です。大阪は大きい。"),
            ["東京は日本の首都です。", "大阪は大きい。"]
        );
        assert_eq!(
            sentences("He said \"It is over.\" Then he left.\nA list item\nAnother"),
            [
                "He said \"It is over.\"",
                "Then he left.",
                "A list item",
                "Another"
            ]
        );
    }

    #[test]
    fn offsets_are_code_points() {
        let text = "Zoë lives in Köln. Ünal too.";
        let spans = split_sentences(text);
        assert_eq!(spans, [CharSpan::new(0, 18), CharSpan::new(19, 28)]);
    }

    #[test]
    fn empty_text_junk_and_text_without_boundaries() {
        assert!(split_sentences("").is_empty());
        assert!(split_sentences(" \n\t ").is_empty());
        let long = "word ".repeat(1000);
        let spans = split_sentences(&long);
        assert!(spans.len() >= 5, "{}", spans.len());
        assert!(
            spans
                .iter()
                .all(|s| s.end - s.start <= MAX_SENTENCE_CHARS && s.end > s.start)
        );
        assert_eq!(spans.last().unwrap().end, long.trim_end().chars().count());
        let unbroken = "x".repeat(1500);
        assert_eq!(split_sentences(&unbroken).len(), 3);
        // Control characters and replacement characters are text like any other.
        assert_eq!(sentences("\u{0}\u{fffd}abc. Def"), ["\u{0}\u{fffd}abc.", "Def"]);
    }
}
