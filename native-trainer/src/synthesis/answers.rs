//! Reading and checking what the LLM answered. The LLM is never trusted: entity offsets are
//! recomputed here by locating the entity strings in the sentence, relations and types are
//! checked against the schema, and duplicates are dropped. Every rejection has a reason.
//!
//! Answers are read in whichever form they come: the structured JSON asked for, JSON
//! wrapped in prose or a code fence, a truncated JSON array (its complete objects are kept),
//! or the paper's line format (`Relation: r. Context: ... Head Entity: h. Head Type: T. Tail
//! Entity: t. Tail Type: T.`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tkre::text::CharSpan;

use super::schema::{RelationTypes, SchemaRelation};
use crate::pretrain::corpus::locate;

/// A sample as the LLM gave it, before checking.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawSample {
    pub relation: Option<String>,
    pub text: String,
    pub head: String,
    pub head_type: Option<String>,
    pub tail: String,
    pub tail_type: Option<String>,
}

/// A checked SCDG sample, in the record shape `tkre pretrain` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub text: String,
    pub subj: String,
    pub subj_start: usize,
    pub subj_end: usize,
    pub obj: String,
    pub obj_start: usize,
    pub obj_end: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subj_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub obj_type: Option<String>,
    pub relation: String,
    pub prompt_id: String,
    /// True when an entity string had to be matched ignoring case or spacing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repaired: bool,
    /// For a paraphrase: the sentence it rewords (same relation, head and tail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paraphrase_of: Option<String>,
}

/// A checked EDKG explanation, in the record shape `tkre pretrain` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplanationRecord {
    pub relation: String,
    pub subject: String,
    pub object: String,
    pub generated_text: String,
    pub sentence: String,
    pub prompt_id: String,
}

/// The first JSON value in `text` (after prose or a code fence), if any parses.
fn first_json(text: &str) -> Option<Value> {
    for (i, c) in text.char_indices() {
        if c == '{' || c == '[' {
            let mut stream = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
            if let Some(Ok(value)) = stream.next() {
                return Some(value);
            }
        }
    }
    None
}

/// Every complete, parseable `{...}` object in `text` (for truncated arrays); objects nested
/// in one already taken are not taken again.
fn complete_objects(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut taken_until = 0;
    for (start, _) in text.match_indices('{') {
        if start < taken_until {
            continue;
        }
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        if let Some(Ok(value @ Value::Object(_))) = stream.next() {
            taken_until = start + stream.byte_offset();
            if value.get("samples").is_none() {
                out.push(value);
            }
        }
    }
    out
}

fn sample_from_json(value: &Value) -> Option<RawSample> {
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| value.get(*n).and_then(Value::as_str))
            .map(|s| s.trim().to_string())
    };
    Some(RawSample {
        relation: field(&["relation"]),
        text: field(&["context", "text", "sentence"])?,
        head: field(&["head_entity", "head", "subject", "subj"]).unwrap_or_default(),
        head_type: field(&["head_type", "subj_type", "subject_type"]),
        tail: field(&["tail_entity", "tail", "object", "obj"]).unwrap_or_default(),
        tail_type: field(&["tail_type", "obj_type", "object_type"]),
    })
}

/// Finds the ASCII `label` in `line` ignoring ASCII case; returns its byte range. The match is
/// made on the original bytes (lower-casing can change byte lengths: "İ" grows, "ẞ" shrinks),
/// and an ASCII match starts and ends on char boundaries.
fn after_label(line: &str, label: &str) -> Option<(usize, usize)> {
    let (bytes, needle) = (line.as_bytes(), label.as_bytes());
    (0..=bytes.len().checked_sub(needle.len())?)
        .find(|&i| bytes[i..i + needle.len()].eq_ignore_ascii_case(needle))
        .map(|i| (i, i + needle.len()))
}

/// One line in the paper's format.
fn sample_from_line(line: &str) -> Option<RawSample> {
    let labels = [
        "Relation:",
        "Context:",
        "Head Entity:",
        "Head Type:",
        "Tail Entity:",
        "Tail Type:",
    ];
    let mut found = Vec::new();
    for label in labels {
        if let Some(position) = after_label(line, label) {
            found.push((label, position));
        }
    }
    if !found.iter().any(|(l, _)| *l == "Context:") {
        return None;
    }
    found.sort_by_key(|(_, (start, _))| *start);
    let value = |label: &str| -> Option<String> {
        let index = found.iter().position(|(l, _)| *l == label)?;
        let start = found[index].1.1;
        let end = found.get(index + 1).map(|(_, (s, _))| *s).unwrap_or(line.len());
        let raw = line[start..end].trim();
        // Fields end with ". " before the next label; the context keeps its own punctuation.
        let trimmed = if label == "Context:" {
            raw
        } else {
            raw.trim_end_matches('.').trim()
        };
        Some(trimmed.to_string())
    };
    Some(RawSample {
        relation: value("Relation:"),
        text: value("Context:")?,
        head: value("Head Entity:").unwrap_or_default(),
        head_type: value("Head Type:"),
        tail: value("Tail Entity:").unwrap_or_default(),
        tail_type: value("Tail Type:"),
    })
}

/// Every sample the answer contains, in any of the accepted forms.
pub fn parse_samples(answer: &str) -> Vec<RawSample> {
    if let Some(value) = first_json(answer) {
        let items = match &value {
            Value::Object(map) if map.contains_key("samples") => {
                map["samples"].as_array().cloned().unwrap_or_default()
            }
            Value::Array(items) => items.clone(),
            Value::Object(_) => vec![value.clone()],
            _ => Vec::new(),
        };
        let samples: Vec<RawSample> = items.iter().filter_map(sample_from_json).collect();
        if !samples.is_empty() {
            return samples;
        }
    }
    let objects: Vec<RawSample> = complete_objects(answer)
        .iter()
        .filter_map(sample_from_json)
        .collect();
    if !objects.is_empty() {
        return objects;
    }
    answer.lines().filter_map(sample_from_line).collect()
}

/// The explanation in an answer: `{"explanation": ...}` if it is JSON, else the text itself.
pub fn parse_explanation(answer: &str) -> String {
    let trimmed = answer.trim();
    let structured = (trimmed.starts_with('{') || trimmed.starts_with("```"))
        .then(|| first_json(trimmed))
        .flatten()
        .and_then(|v| {
            v.get("explanation")
                .and_then(Value::as_str)
                .map(|t| t.trim().to_string())
        });
    if let Some(text) = structured {
        return text;
    }
    trimmed.to_string()
}

fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// `text` lower-cased with every run of whitespace made one space (leading and trailing
/// whitespace dropped), and for each resulting char the index of the char of `text` it comes
/// from. Built once per search, so matching is linear in the sentence, not quadratic.
fn normalised_with_origins(text: &str) -> (Vec<char>, Vec<usize>) {
    let mut out = Vec::with_capacity(text.len());
    let mut origins = Vec::with_capacity(text.len());
    let mut space: Option<usize> = None;
    for (i, c) in text.chars().enumerate() {
        if c.is_whitespace() {
            if !out.is_empty() && space.is_none() {
                space = Some(i);
            }
            continue;
        }
        if let Some(at) = space.take() {
            out.push(' ');
            origins.push(at);
        }
        for lower in c.to_lowercase() {
            out.push(lower);
            origins.push(i);
        }
    }
    (out, origins)
}

/// Locates an entity: exact whole word, exact anywhere, then ignoring case and spacing
/// (a repair). Returns the span and whether it was repaired.
pub fn find_entity(text: &str, entity: &str, avoid: Option<CharSpan>) -> Option<(CharSpan, bool)> {
    if let Some(span) = locate(text, entity, avoid) {
        return Some((span, false));
    }
    let (target, _) = normalised_with_origins(entity);
    if target.is_empty() {
        return None;
    }
    let (chars, origins) = normalised_with_origins(text);
    let overlaps = |s: usize, e: usize| avoid.is_some_and(|a| s < a.end && a.start < e);
    let m = target.len();
    for p in 0..chars.len().saturating_sub(m - 1) {
        if chars[p..p + m] != target[..] {
            continue;
        }
        // Whole chars of the text only: a char that lower-cases to several must be matched
        // from its first to its last.
        let starts_a_char = p == 0 || origins[p - 1] != origins[p];
        let ends_a_char = p + m == chars.len() || origins[p + m] != origins[p + m - 1];
        let (start, end) = (origins[p], origins[p + m - 1] + 1);
        if starts_a_char && ends_a_char && !overlaps(start, end) {
            return Some((CharSpan::new(start, end), true));
        }
    }
    None
}

/// Locates an entity the model wrote with a qualifier the sentence leaves out ("Los Angeles,
/// California" for "... born in Los Angeles"): [`find_entity`] on the part before the first
/// comma, always a repair.
fn find_entity_before_comma(text: &str, entity: &str, avoid: Option<CharSpan>) -> Option<(CharSpan, bool)> {
    let (first, _) = entity.split_once(',')?;
    let first = first.trim();
    if first.is_empty() {
        return None;
    }
    find_entity(text, first, avoid).map(|(span, _)| (span, true))
}

/// The prompt echoed into the sentence: the answer format's labels, the relation set between
/// dashes as a template writes a triple ("A -- performer -- B"), or a long relation name
/// copied word for word ("is located in the administrative territorial entity of"), which
/// teaches the label, not how text says it.
fn echoes_prompt(text: &str, relation: &str) -> bool {
    let text = normalise(text);
    let relation = normalise(relation);
    let labels = ["head entity", "tail entity", "head type:", "tail type:"];
    labels.iter().any(|l| text.contains(l))
        || ["--", "—", "–"]
            .iter()
            .any(|d| text.contains(&format!("{d} {relation} {d}")))
        || (relation.split(' ').count() >= 4 && text.contains(&relation))
}

/// Longest entity accepted, in words and in characters ("Organisation for Economic
/// Co-operation and Development" has 6 words and 50 characters).
const MAX_ENTITY_WORDS: usize = 10;
const MAX_ENTITY_CHARS: usize = 80;
/// Longest sample sentence accepted, in words: the prompt asks for one of 12 to 30.
const MAX_SENTENCE_WORDS: usize = 50;

/// Whether `entity` looks like a name: a capital letter or a digit somewhere. Wikipedia
/// sentences name their entities ("Marie Curie", "Warsaw"); "the government" or "the
/// environmental movement" are what a small model writes when it knows no real pair.
fn is_named(entity: &str) -> bool {
    entity.chars().any(|c| c.is_uppercase() || c.is_ascii_digit())
}

/// Crude stems of the words of `text` that have 3 letters or more (the first 5 letters,
/// lower-cased): enough to see "criteria used" in the relation "criterion used".
fn stems(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(|w| w.to_lowercase().chars().take(5).collect())
        .collect()
}

/// Whether `entity` is the relation's name rather than a thing ("criteria used" as the tail
/// of "criterion used").
fn names_the_relation(entity: &str, relation: &str) -> bool {
    let entity = stems(entity);
    !entity.is_empty() && entity.is_subset(&stems(relation))
}

/// The words of a sample's sentence outside its two entities (lower-cased): what is left
/// when the entities are taken away is the sentence's pattern.
pub fn pattern_words(record: &SampleRecord) -> BTreeSet<String> {
    let outside: String = record
        .text
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let inside = (record.subj_start..record.subj_end).contains(&i)
                || (record.obj_start..record.obj_end).contains(&i);
            if inside { ' ' } else { c }
        })
        .collect();
    outside
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Jaccard similarity of two word sets.
pub fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

/// Checks one raw sample against the request; `Err(reason)` when rejected.
pub fn check_sample(
    raw: &RawSample,
    relation: &SchemaRelation,
    prompt_id: &str,
) -> Result<SampleRecord, &'static str> {
    if let Some(given) = &raw.relation
        && !given.is_empty()
        && normalise(given) != normalise(&relation.name)
    {
        return Err("wrong relation");
    }
    let text = raw.text.trim();
    if text.is_empty() {
        return Err("empty context");
    }
    if raw.head.trim().is_empty() || raw.tail.trim().is_empty() {
        return Err("missing entity");
    }
    if echoes_prompt(text, &relation.name) {
        return Err("the prompt echoed in the context");
    }
    let find = |entity: &str, avoid: Option<CharSpan>| {
        find_entity(text, entity, avoid).or_else(|| find_entity_before_comma(text, entity, avoid))
    };
    // The longer entity is placed first: "China" is found inside "People's Bank of China"
    // otherwise, and the bank then has nowhere left to be.
    let ((head, head_repaired), (tail, tail_repaired)) =
        if raw.head.chars().count() >= raw.tail.chars().count() {
            let head = find(&raw.head, None).ok_or("head entity not in the context")?;
            let tail = find(&raw.tail, Some(head.0)).ok_or("tail entity not in the context")?;
            (head, tail)
        } else {
            find(&raw.head, None).ok_or("head entity not in the context")?;
            let tail = find(&raw.tail, None).ok_or("tail entity not in the context")?;
            let head = find(&raw.head, Some(tail.0)).ok_or("head entity not in the context")?;
            (head, tail)
        };
    let (head_text, tail_text) = (raw.head.trim(), raw.tail.trim());
    // A name, not a clause: "adherence to international law, respect for human rights, and
    // non-aggression" is what a small model gives as the value of a vague property.
    let words = |t: &str| t.split_whitespace().count();
    if [head_text, tail_text]
        .iter()
        .any(|e| words(e) > MAX_ENTITY_WORDS || e.chars().count() > MAX_ENTITY_CHARS)
    {
        return Err("an entity is a phrase, not a name");
    }
    if words(text) > MAX_SENTENCE_WORDS {
        return Err("the context is longer than one sentence");
    }
    if !is_named(head_text) && !is_named(tail_text) {
        return Err("neither entity is a name");
    }
    if names_the_relation(head_text, &relation.name) || names_the_relation(tail_text, &relation.name) {
        return Err("an entity is the relation's name");
    }
    let check_type = |given: &Option<String>, allowed: &[String]| -> Result<Option<String>, ()> {
        match given.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None if allowed.is_empty() => Ok(None),
            None => Err(()),
            Some(t) if allowed.is_empty() => Ok(Some(t.to_string())),
            Some(t) => allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(t))
                .cloned()
                .map(Some)
                .ok_or(()),
        }
    };
    // A small LLM often writes the pair the other way round ("founded by" with the founder as
    // head) and labels the types accordingly: reject what the relation's types show reversed.
    // Not turned round: the relation's own types come from the same LLM and are wrong often
    // enough that a swap would plant errors where a rejection only costs a sample.
    let reversed = relation.head_types != relation.tail_types
        && check_type(&raw.head_type, &relation.tail_types).is_ok()
        && check_type(&raw.tail_type, &relation.head_types).is_ok()
        && !(check_type(&raw.head_type, &relation.head_types).is_ok()
            && check_type(&raw.tail_type, &relation.tail_types).is_ok());
    if reversed {
        return Err("head and tail reversed (their types are the relation's tail and head types)");
    }
    let given = |t: &Option<String>| {
        t.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
    };
    let (subj_type, obj_type) = if relation.types_are_hints {
        (given(&raw.head_type), given(&raw.tail_type))
    } else {
        (
            check_type(&raw.head_type, &relation.head_types).map_err(|_| "head type outside the schema")?,
            check_type(&raw.tail_type, &relation.tail_types).map_err(|_| "tail type outside the schema")?,
        )
    };
    let slice = |s: CharSpan| {
        text.chars()
            .skip(s.start)
            .take(s.end - s.start)
            .collect::<String>()
    };
    Ok(SampleRecord {
        text: text.to_string(),
        subj: slice(head),
        subj_start: head.start,
        subj_end: head.end,
        obj: slice(tail),
        obj_start: tail.start,
        obj_end: tail.end,
        subj_type,
        obj_type,
        relation: relation.name.clone(),
        prompt_id: prompt_id.to_string(),
        repaired: head_repaired || tail_repaired,
        paraphrase_of: None,
    })
}

/// Reads a `tkre synthesize types` answer: both types, each one of `inventory`.
pub fn check_types(
    answer: &str,
    relation: &str,
    inventory: &[String],
    prompt_id: &str,
) -> Result<RelationTypes, &'static str> {
    let value = first_json(answer).ok_or("no JSON in the answer")?;
    let field = |name: &str| -> Result<String, &'static str> {
        let given = value
            .get(name)
            .and_then(Value::as_str)
            .map(|t| t.trim().to_uppercase())
            .ok_or("a type is missing")?;
        inventory
            .iter()
            .find(|t| **t == given)
            .cloned()
            .ok_or("a type outside the schema")
    };
    Ok(RelationTypes {
        relation: relation.to_string(),
        example: value
            .get("example")
            .and_then(Value::as_str)
            .map(|t| t.trim().to_string()),
        head_type: field("head_type")?,
        tail_type: field("tail_type")?,
        prompt_id: prompt_id.to_string(),
    })
}

/// The sentences of a paraphrase answer (`{"sentences": [...]}`, a JSON array, or lines).
pub fn parse_paraphrases(answer: &str) -> Vec<String> {
    let strings = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .filter_map(Value::as_str)
            .map(|t| t.trim().to_string())
            .collect()
    };
    match first_json(answer) {
        Some(Value::Object(map)) if map.get("sentences").is_some_and(Value::is_array) => {
            strings(map["sentences"].as_array().map(Vec::as_slice).unwrap_or_default())
        }
        Some(Value::Array(items)) => strings(&items),
        _ => answer
            .lines()
            .map(|l| {
                l.trim()
                    .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-' || c == ')')
                    .trim()
                    .to_string()
            })
            .filter(|l| !l.is_empty())
            .collect(),
    }
}

/// How much of its vocabulary one text shares with another (Jaccard over lower-cased words).
fn word_overlap(a: &str, b: &str) -> f64 {
    let words = |t: &str| -> BTreeSet<String> {
        t.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    jaccard(&words(a), &words(b))
}

/// Checks one paraphrase of `original`; `Err(reason)` when rejected. It must name the same
/// head and tail and be worded differently enough to teach something (a positive pair that
/// repeats the original word for word is no pair).
pub fn check_paraphrase(
    sentence: &str,
    original: &SampleRecord,
    relation: &SchemaRelation,
    prompt_id: &str,
) -> Result<SampleRecord, &'static str> {
    let raw = RawSample {
        relation: None,
        text: sentence.to_string(),
        head: original.subj.clone(),
        head_type: original.subj_type.clone(),
        tail: original.obj.clone(),
        tail_type: original.obj_type.clone(),
    };
    if sentence.split_whitespace().count() < 6 {
        return Err("paraphrase too short");
    }
    if word_overlap(sentence, &original.text) > 0.85 {
        return Err("paraphrase too close to the original");
    }
    let mut record = check_sample(&raw, relation, prompt_id)?;
    record.paraphrase_of = Some(original.text.clone());
    Ok(record)
}

/// Checks an explanation answer; `Err(reason)` when rejected.
pub fn check_explanation(
    answer: &str,
    relation: &str,
    subject: &str,
    object: &str,
    sentence: &str,
    prompt_id: &str,
) -> Result<ExplanationRecord, &'static str> {
    let text = parse_explanation(answer);
    if text.is_empty() {
        return Err("empty answer");
    }
    let head = locate(&text, subject, None).ok_or("explanation does not mention the subject")?;
    locate(&text, object, Some(head)).ok_or("explanation does not mention the object")?;
    Ok(ExplanationRecord {
        relation: relation.to_string(),
        subject: subject.to_string(),
        object: object.to_string(),
        generated_text: text,
        sentence: sentence.to_string(),
        prompt_id: prompt_id.to_string(),
    })
}

/// The key duplicates share.
pub fn dedup_key(text: &str) -> String {
    normalise(text)
}
