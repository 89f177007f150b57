//! Prompt templates, as the paper's code words them (`codes/data_augmentation/corpus.py` for
//! EDKG, `automodel_da.py` for SCDG), minus Llama-2's `[INST]` tags: a chat server applies its
//! own chat template. Templates are plain text with `{placeholders}`; `--explain-template` /
//! `--samples-template` replace them.

use anyhow::{Result, bail};
use serde_json::{Value, json};

pub const EXPLAIN_TEMPLATE: &str = "Instruction: Take the text below and give an explanation of why the subject \
\"{subject}\" has the relation \"{relation}\" with the object \"{object}\". {sentence}";

pub const EXPLAIN_PLACEHOLDERS: &[&str] = &["subject", "relation", "object", "sentence", "description"];

pub const SAMPLES_TEMPLATE: &str = "One sample in relation extraction datasets consists of a relation, a context, \
a pair of head and tail entities in the context and their entity types. The head entity has the relation with the \
tail entity and entities are pre-categorized as the following types: {entity_types}. Here are some samples for \
relation '{relation}':\n{demonstrations}Generate {n} more samples like above for the relation '{relation}':";

pub const SAMPLES_PLACEHOLDERS: &[&str] = &[
    "entity_types",
    "relation",
    "description",
    "demonstrations",
    "n",
    "head_types",
    "tail_types",
];

/// Asks which entity types a relation links (once per relation; the answers become the
/// schema's `head_types`/`tail_types`, which the samples' direction is checked against).
/// The fixed part comes first so that a server reusing the previous prompt's prefix (llama.cpp
/// does) only reads the relation.
pub const TYPES_TEMPLATE: &str = "A relation links a head entity (the subject) to a tail entity (the value) in a \
true statement \"<head> -- relation -- <tail>\". For the relation given, write one real example statement, then \
give the entity type of its head and of its tail, each one of: {entity_types}.\n\
Examples:\n\
Relation \"director\" (director of a film, TV series or play): {\"example\": \"Jaws -- director -- Steven Spielberg\", \"head_type\": \"WORK\", \"tail_type\": \"PERSON\"}\n\
Relation \"place of birth\" (where a person was born): {\"example\": \"Marie Curie -- place of birth -- Warsaw\", \"head_type\": \"PERSON\", \"tail_type\": \"LOCATION\"}\n\
Relation \"member of sports team\" (team a person plays for): {\"example\": \"Pele -- member of sports team -- Santos FC\", \"head_type\": \"PERSON\", \"tail_type\": \"ORGANIZATION\"}\n\
Relation \"drug used for treatment\" (drug or therapy used to treat a disease): {\"example\": \"malaria -- drug used for treatment -- chloroquine\", \"head_type\": \"MEDICAL\", \"tail_type\": \"PRODUCT\"}\n\
Relation \"genre\" (genre of a creative work or artist): {\"example\": \"Nirvana -- genre -- grunge\", \"head_type\": \"ORGANIZATION\", \"tail_type\": \"CONCEPT\"}\n\
Relation \"highest point\" (point with the highest elevation in a region): {\"example\": \"Japan -- highest point -- Mount Fuji\", \"head_type\": \"LOCATION\", \"tail_type\": \"LOCATION\"}\n\
Now the relation \"{relation}\" ({description}):";

pub const TYPES_PLACEHOLDERS: &[&str] = &["entity_types", "relation", "description"];

/// Asks for differently worded sentences stating the same fact (positive pairs, as Matching
/// the Blanks pairs sentences that share an entity pair).
pub const PARAPHRASE_TEMPLATE: &str = "Rewrite the sentence below as {n} new sentences in the style of Wikipedia. \
Each states the same fact, that \"{head}\" has the relation \"{relation}\" with \"{tail}\", names both exactly \
as written here, and is worded and built differently from the original and from each other (another verb, word \
order, voice or clause structure; you may add a true detail). Answer with exactly {n} numbered \
lines (1. to {n}.), one new sentence on each, and nothing else. Sentence: {sentence}";

pub const PARAPHRASE_PLACEHOLDERS: &[&str] = &["n", "head", "tail", "relation", "sentence", "description"];

/// A template checked against the placeholders it may use.
#[derive(Debug, Clone)]
pub struct Template {
    text: String,
}

impl Template {
    pub fn new(text: &str, allowed: &[&str], origin: &str) -> Result<Self> {
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else { break };
            let name = &after[..close];
            let is_placeholder =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if is_placeholder && !allowed.contains(&name) {
                bail!(
                    "{origin}: unknown placeholder {{{name}}}; this template may use {}",
                    allowed.join(", ")
                );
            }
            rest = &after[close + 1..];
        }
        Ok(Self {
            text: text.to_string(),
        })
    }

    /// The template with each `{name}` replaced by its value, in one pass: a value that
    /// itself contains `{sentence}` (a seed sentence can) is inserted as it is, never expanded.
    pub fn fill(&self, values: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(self.text.len());
        let mut rest = self.text.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let value = after.find('}').and_then(|close| {
                let name = &after[..close];
                values.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v, close))
            });
            match value {
                Some((value, close)) => {
                    out.push_str(value);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// One SCDG demonstration line in the paper's format.
pub fn demonstration(
    relation: &str,
    context: &str,
    head: &str,
    head_type: &str,
    tail: &str,
    tail_type: &str,
) -> String {
    format!(
        "Relation: {relation}. Context: {context} Head Entity: {head}. Head Type: {head_type}. Tail Entity: {tail}. Tail Type: {tail_type}.\n"
    )
}

/// `response_format` asking for `{"explanation": "..."}`.
pub fn explain_format() -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": "explanation",
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {"explanation": {"type": "string"}},
                "required": ["explanation"],
                "additionalProperties": false
            }
        }
    })
}

fn typed(types: &[String]) -> Value {
    if types.is_empty() {
        json!({"type": "string"})
    } else {
        json!({"type": "string", "enum": types})
    }
}

/// `response_format` asking for `{"example": "h -- r -- t", "head_type": T, "tail_type": T}`
/// with T one of `types`: a concrete statement first grounds a small model's choice of types.
pub fn types_format(types: &[String]) -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": "relation_types",
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {
                    "example": {"type": "string"},
                    "head_type": typed(types),
                    "tail_type": typed(types)
                },
                "required": ["example", "head_type", "tail_type"],
                "additionalProperties": false
            }
        }
    })
}

/// `response_format` asking for `{"sentences": [...]}` with `n` sentences.
pub fn paraphrase_format(n: usize) -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": "paraphrases",
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {
                    "sentences": {"type": "array", "items": {"type": "string"}, "minItems": n, "maxItems": n}
                },
                "required": ["sentences"],
                "additionalProperties": false
            }
        }
    })
}

/// `response_format` asking for `{"samples": [{context, head_entity, head_type, tail_entity,
/// tail_type}]}`, the types restricted to `entity_types` (all of the schema's, not the
/// relation's: a model held to the relation's types would label a reversed pair with them,
/// and the direction check could not see it). Exactly `n` samples: left free, a small model
/// often stops after one or two (or none) for a relation it knows little about.
pub fn samples_format(entity_types: &[String], n: usize) -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": "samples",
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {
                    "samples": {
                        "type": "array",
                        "minItems": n,
                        "maxItems": n,
                        "items": {
                            "type": "object",
                            "properties": {
                                "context": {"type": "string"},
                                "head_entity": {"type": "string"},
                                "head_type": typed(entity_types),
                                "tail_entity": {"type": "string"},
                                "tail_type": typed(entity_types)
                            },
                            "required": ["context", "head_entity", "head_type", "tail_entity", "tail_type"],
                            "additionalProperties": false
                        }
                    }
                },
                "required": ["samples"],
                "additionalProperties": false
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_and_reject_unknown_placeholders() {
        let t = Template::new(EXPLAIN_TEMPLATE, EXPLAIN_PLACEHOLDERS, "builtin").unwrap();
        let prompt = t.fill(&[
            ("subject", "Ann"),
            ("relation", "employee of"),
            ("object", "Acme"),
            ("sentence", "Ann works at Acme."),
        ]);
        assert!(prompt.contains("why the subject \"Ann\" has the relation \"employee of\" with the object \"Acme\". Ann works at Acme."));
        Template::new(SAMPLES_TEMPLATE, SAMPLES_PLACEHOLDERS, "builtin").unwrap();
        let error = Template::new("{sentense}", EXPLAIN_PLACEHOLDERS, "my.txt")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown placeholder {sentense}"), "{error}");
        // JSON braces in a template are not placeholders.
        Template::new("answer as {\"a\": 1}", EXPLAIN_PLACEHOLDERS, "t").unwrap();
        // A value that contains a placeholder is inserted as it is, not expanded.
        let t = Template::new("{sentence} / {relation}", EXPLAIN_PLACEHOLDERS, "t").unwrap();
        assert_eq!(
            t.fill(&[("sentence", "say {relation} here {x"), ("relation", "r")]),
            "say {relation} here {x / r"
        );
    }
}
