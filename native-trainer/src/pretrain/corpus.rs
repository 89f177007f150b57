//! The pre-training corpus: sentences with a head and a tail entity, and the relation when
//! known, read from the synthesis step's outputs and from unlabelled corpora.
//!
//! Record forms, recognised per record (a file may be a JSON array, a JSON object of
//! `{relation: [records]}` as FewRel, or JSON lines):
//! - EDKG explanations `{relation, subject, object, generated_text}` (`tkre synthesize
//!   explain`, and the paper's `llm_corpus.json`). They carry no offsets, so the subject and
//!   object are located once, here: a quoted occurrence (`"Betty"`) first, else the first
//!   whole-word occurrence; a record where either is not found, or both land on the same
//!   text, is reported and skipped instead of being trained on with a wrong span.
//! - SCDG samples `{text, subj, subj_start, subj_end, obj, obj_start, obj_end, subj_type?,
//!   obj_type?, relation}` with character offsets, end exclusive (`tkre synthesize samples`,
//!   the paper's `llm_da_8.jsonl`). Offsets must select exactly `subj`/`obj`.
//! - FewRel records `{tokens, h, t}` (e.g. `pubmed_unsupervised.json`, no relation).
//! - The project's own example forms (`{"text", "head": {...}, "tail": {...}}` or a marked
//!   sentence `{"marked": "[E1]..[/E1] .. [E2]..[/E2]"}`), with an optional `relation`.
//!
//! Bad records never stop a run: each is counted under its reason, with a few examples.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tkre::fewshot::ExampleInput;
use tkre::text::{CharSpan, FewRelRecord, RelationInstance};

/// One usable pre-training sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainRecord {
    pub instance: RelationInstance,
    /// The relation label, when the source has one (needed for SCL).
    pub relation: Option<String>,
}

/// What was loaded and what was skipped, and why.
#[derive(Debug, Default, Clone)]
pub struct CorpusReport {
    pub loaded: usize,
    /// reason -> (count, up to three examples).
    pub skipped: BTreeMap<String, (usize, Vec<String>)>,
}

impl CorpusReport {
    pub fn skip(&mut self, reason: &str, example: impl FnOnce() -> String) {
        let entry = self.skipped.entry(reason.to_string()).or_default();
        entry.0 += 1;
        if entry.1.len() < 3 {
            let mut example = example();
            if example.chars().count() > 160 {
                example = example.chars().take(157).collect::<String>() + "...";
            }
            entry.1.push(example);
        }
    }

    pub fn skipped_total(&self) -> usize {
        self.skipped.values().map(|(n, _)| n).sum()
    }

    /// Lines for the user: one per skip reason, with its examples.
    pub fn describe(&self) -> String {
        let mut out = format!("{} records usable", self.loaded);
        for (reason, (count, examples)) in &self.skipped {
            out.push_str(&format!("\n  skipped {count}: {reason}"));
            for example in examples {
                out.push_str(&format!("\n    e.g. {example}"));
            }
        }
        out
    }
}

/// Reads every file; `origin` of each record is its file and index, for the report.
pub fn load_files(paths: &[impl AsRef<Path>], report: &mut CorpusReport) -> Result<Vec<PretrainRecord>> {
    let mut records = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading corpus {}", path.display()))?;
        let before = records.len();
        parse_corpus(&text, &path.display().to_string(), &mut records, report)?;
        log::info!("{}: {} records", path.display(), records.len() - before);
    }
    report.loaded = records.len();
    Ok(records)
}

/// Parses one corpus file's text (JSON array, FewRel-style object, or JSON lines).
pub fn parse_corpus(
    text: &str,
    origin: &str,
    records: &mut Vec<PretrainRecord>,
    report: &mut CorpusReport,
) -> Result<()> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        bail!("{origin} is empty; a corpus is a JSON array, a FewRel-style object or JSON lines");
    }
    let whole: Option<Value> = serde_json::from_str(text).ok();
    match whole {
        Some(Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                push_record(item, None, &format!("{origin}[{i}]"), records, report);
            }
        }
        Some(Value::Object(map)) if is_relation_map(&map) => {
            for (relation, items) in map {
                if let Value::Array(items) = items {
                    for (i, item) in items.into_iter().enumerate() {
                        let at = format!("{origin}[{relation}][{i}]");
                        push_record(item, Some(relation.clone()), &at, records, report);
                    }
                }
            }
        }
        Some(single @ Value::Object(_)) => push_record(single, None, origin, records, report),
        _ => {
            // JSON lines; a line that is not JSON is a bad record, not a fatal error.
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let at = format!("{origin}:{}", i + 1);
                match serde_json::from_str::<Value>(line) {
                    Ok(item) => push_record(item, None, &at, records, report),
                    Err(e) => report.skip("line is not JSON", || format!("{at}: {e}")),
                }
            }
        }
    }
    Ok(())
}

/// FewRel's `{relation_id: [records]}`: every value an array.
fn is_relation_map(map: &serde_json::Map<String, Value>) -> bool {
    !map.is_empty() && map.values().all(Value::is_array)
}

fn push_record(
    item: Value,
    relation_key: Option<String>,
    at: &str,
    records: &mut Vec<PretrainRecord>,
    report: &mut CorpusReport,
) {
    match parse_record(&item, relation_key) {
        Ok(record) => records.push(record),
        Err(reason) => report.skip(&reason.kind, || format!("{at}: {}", reason.detail)),
    }
}

/// Why a record was skipped: a reason to count by, and the detail for the example.
#[derive(Debug)]
pub struct BadRecord {
    pub kind: String,
    pub detail: String,
}

fn bad(kind: &str, detail: impl Into<String>) -> BadRecord {
    BadRecord {
        kind: kind.to_string(),
        detail: detail.into(),
    }
}

fn string_field<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
    item.get(name).and_then(Value::as_str)
}

/// One record in any of the forms above.
pub fn parse_record(item: &Value, relation_key: Option<String>) -> Result<PretrainRecord, BadRecord> {
    let relation = string_field(item, "relation")
        .map(str::to_string)
        .or(relation_key)
        .filter(|r| !r.trim().is_empty());
    let instance = if item.get("generated_text").is_some() {
        explanation_instance(item)?
    } else if item.get("subj_start").is_some() {
        sample_instance(item)?
    } else if item.get("tokens").is_some() {
        let record: FewRelRecord = serde_json::from_value(item.clone())
            .map_err(|e| bad("malformed FewRel record", e.to_string()))?;
        RelationInstance::from_fewrel(&record).map_err(|e| bad("bad FewRel entity indexes", e.to_string()))?
    } else if let Some(marked) = string_field(item, "marked") {
        RelationInstance::from_marked(marked).map_err(|e| bad("bad entity markers", e.to_string()))?
    } else if item.get("text").is_some() && item.get("head").is_some() {
        let example: ExampleInput = serde_json::from_value(item.clone())
            .map_err(|e| bad("malformed offsets record", e.to_string()))?;
        example
            .to_instance()
            .map_err(|e| bad("entity offsets do not match the text", e.to_string()))?
    } else {
        return Err(bad(
            "unrecognised record (not an explanation, sample, FewRel or offsets record)",
            compact(item),
        ));
    };
    if instance.text.trim().is_empty() {
        return Err(bad("empty sentence", compact(item)));
    }
    Ok(PretrainRecord { instance, relation })
}

fn compact(item: &Value) -> String {
    item.to_string()
}

/// An SCDG sample: character offsets, checked against the entity strings.
fn sample_instance(item: &Value) -> Result<RelationInstance, BadRecord> {
    let text = string_field(item, "text").ok_or_else(|| bad("sample without text", compact(item)))?;
    if text.trim().is_empty() {
        return Err(bad("empty sentence", compact(item)));
    }
    let span = |prefix: &str| -> Result<CharSpan, BadRecord> {
        let get = |field: &str| item.get(format!("{prefix}_{field}")).and_then(Value::as_u64);
        let (Some(start), Some(end)) = (get("start"), get("end")) else {
            return Err(bad("sample without entity offsets", compact(item)));
        };
        let span = CharSpan::new(start as usize, end as usize);
        let selected: String = text
            .chars()
            .skip(span.start)
            .take(span.end.saturating_sub(span.start))
            .collect();
        match string_field(item, prefix) {
            Some(expected) if expected != selected => Err(bad(
                "entity offsets do not match the text",
                format!(
                    "{prefix} is {expected:?} but offsets {start}..{end} select {selected:?} in {text:?}"
                ),
            )),
            _ => Ok(span),
        }
    };
    let (head, tail) = (span("subj")?, span("obj")?);
    let ty = |name: &str| {
        string_field(item, name)
            .map(|t| t.to_lowercase())
            .filter(|t| !t.is_empty())
    };
    RelationInstance::from_offsets(text, head, tail)
        .map(|i| i.with_types(ty("subj_type"), ty("obj_type")))
        .map_err(|e| {
            let message = e.to_string();
            let kind = if message.contains("overlap") {
                "entities overlap"
            } else {
                "entity offsets do not match the text"
            };
            bad(kind, message)
        })
}

/// An EDKG explanation: the subject and object located in the generated text.
fn explanation_instance(item: &Value) -> Result<RelationInstance, BadRecord> {
    let text = string_field(item, "generated_text").unwrap_or_default();
    if text.trim().is_empty() {
        return Err(bad("empty sentence", compact(item)));
    }
    let (Some(subject), Some(object)) = (string_field(item, "subject"), string_field(item, "object")) else {
        return Err(bad("explanation without subject or object", compact(item)));
    };
    let head = locate(text, subject, None).ok_or_else(|| {
        bad(
            "explanation does not mention its subject",
            format!("{subject:?} in {text:?}"),
        )
    })?;
    let tail = locate(text, object, Some(head)).ok_or_else(|| {
        bad(
            "explanation does not mention its object",
            format!("{object:?} in {text:?}"),
        )
    })?;
    RelationInstance::from_offsets(text, head, tail).map_err(|e| bad("entities overlap", e.to_string()))
}

/// Character span of `entity` in `text`: a quoted occurrence first, else a whole-word one;
/// never one overlapping `avoid`.
pub fn locate(text: &str, entity: &str, avoid: Option<CharSpan>) -> Option<CharSpan> {
    let entity = entity.trim();
    if entity.is_empty() {
        return None;
    }
    let chars: Vec<char> = text.chars().collect();
    let needle: Vec<char> = entity.chars().collect();
    let overlaps = |s: usize, e: usize| avoid.is_some_and(|a| s < a.end && a.start < e);
    let is_word = |c: char| c.is_alphanumeric();
    let mut whole_word = None;
    for start in 0..chars.len().saturating_sub(needle.len() - 1) {
        let end = start + needle.len();
        if chars[start..end] != needle[..] || overlaps(start, end) {
            continue;
        }
        let before = start.checked_sub(1).map(|i| chars[i]);
        let after = chars.get(end).copied();
        if before == Some('"') && after == Some('"') {
            return Some(CharSpan::new(start, end));
        }
        let bounded = !before.is_some_and(is_word) && !after.is_some_and(is_word);
        if bounded && whole_word.is_none() {
            whole_word = Some(CharSpan::new(start, end));
        }
    }
    whole_word
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<PretrainRecord>, CorpusReport) {
        let mut records = Vec::new();
        let mut report = CorpusReport::default();
        parse_corpus(text, "test", &mut records, &mut report).unwrap();
        (records, report)
    }

    #[test]
    fn explanations_prefer_quoted_mentions() {
        let (records, report) = parse(
            r#"[{"relation": "per:parents", "subject": "her", "object": "Betty",
                 "generated_text": "There, her mother \"Betty\" explains why \"her\" relates to Betty."}]"#,
        );
        assert_eq!(report.skipped_total(), 0);
        let r = &records[0];
        assert_eq!(r.instance.head_text(), "her");
        assert_eq!(r.instance.head.start, 40, "the quoted \"her\", not the first one");
        assert_eq!(r.instance.tail_text(), "Betty");
        assert_eq!(r.instance.tail.start, 19);
        assert_eq!(r.relation.as_deref(), Some("per:parents"));
    }

    #[test]
    fn bad_records_are_counted_with_examples() {
        let text = concat!(
            r#"{"text": "Ann works at Acme .", "subj": "Ann", "subj_start": 0, "subj_end": 3, "obj": "Acme", "obj_start": 13, "obj_end": 17, "subj_type": "PERSON", "obj_type": "ORGANIZATION", "relation": "per:employee_of"}"#,
            "\n",
            r#"{"text": "Ann works at Acme .", "subj": "Ann", "subj_start": 1, "subj_end": 3, "obj": "Acme", "obj_start": 13, "obj_end": 17, "relation": "per:employee_of"}"#,
            "\n",
            r#"{"text": "", "subj": "", "subj_start": 0, "subj_end": 0, "obj": "", "obj_start": 0, "obj_end": 0}"#,
            "\nnot json\n",
            r#"{"relation": "r", "subject": "Zed", "object": "Acme", "generated_text": "Acme is big."}"#,
            "\n",
        );
        let (records, report) = parse(text);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].instance.head_type.as_deref(), Some("person"));
        assert_eq!(report.skipped_total(), 4);
        let described = report.describe();
        for reason in [
            "entity offsets do not match the text",
            "empty sentence",
            "line is not JSON",
            "explanation does not mention its subject",
        ] {
            assert!(described.contains(reason), "{described}");
        }
        assert!(
            described.contains("offsets 1..3 select \\\"nn\\\"") || described.contains("select \"nn\""),
            "{described}"
        );
    }

    #[test]
    fn fewrel_maps_and_lists() {
        let record = r#"{"tokens": ["a", "b", "c"], "h": ["a", "Q1", [[0]]], "t": ["c", "Q2", [[2]]]}"#;
        let (records, _) = parse(&format!("{{\"P1\": [{record}]}}"));
        assert_eq!(records[0].relation.as_deref(), Some("P1"));
        let (records, _) = parse(&format!("[{record}, {record}]"));
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].relation, None);
    }

    #[test]
    fn locate_whole_words_only() {
        assert_eq!(locate("Annals by Ann", "Ann", None), Some(CharSpan::new(10, 13)));
        assert_eq!(locate("nothing here", "Ann", None), None);
        let first = CharSpan::new(0, 3);
        assert_eq!(
            locate("Ann and Ann", "Ann", Some(first)),
            Some(CharSpan::new(8, 11))
        );
    }
}
