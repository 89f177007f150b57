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

pub const SAMPLES_PLACEHOLDERS: &[&str] = &["entity_types", "relation", "description", "demonstrations", "n"];

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

    pub fn fill(&self, values: &[(&str, &str)]) -> String {
        let mut out = self.text.clone();
        for (name, value) in values {
            out = out.replace(&format!("{{{name}}}"), value);
        }
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

/// `response_format` asking for `{"samples": [{context, head_entity, head_type, tail_entity,
/// tail_type}]}`, with the types restricted to the schema's where it lists them.
pub fn samples_format(head_types: &[String], tail_types: &[String]) -> Value {
    let typed = |types: &[String]| {
        if types.is_empty() {
            json!({"type": "string"})
        } else {
            json!({"type": "string", "enum": types})
        }
    };
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
                        "items": {
                            "type": "object",
                            "properties": {
                                "context": {"type": "string"},
                                "head_entity": {"type": "string"},
                                "head_type": typed(head_types),
                                "tail_entity": {"type": "string"},
                                "tail_type": typed(tail_types)
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
    }
}
