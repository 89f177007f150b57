//! What a user says a relation means, in words: a display name and a description.
//!
//! The text is encoded once, by the same encoder and model, as a sentence embedding (mean of
//! every token, L2-normalised), and joins the relation's prototype as up to [`TEXT_WEIGHT`]
//! extra examples whose every part is that embedding ([`crate::fewshot::PrototypeClassifier`]).
//! Its share of the prototype, `w / (K + w)`, falls as examples are added; with no example the
//! prototype is the text alone (zero-shot). The weight falls to 0 when the set's texts do not
//! recognise its own examples ([`crate::fewshot::classifier::text_agreement`]).
//!
//! Chosen on relations that are not FewRel 1.0 val's: the TACRED-schema samples released with
//! the TKRE paper, with terse names only (`tests/reference/text_fusion_select.py`,
//! `reports/text-fusion-selection.json`). There "one extra example" (w = 1) was best at
//! 1-shot of the rules and weights tried, and within the interval of the best at 5-shot.
//! Sets that mix text-only relations with relations that have examples need one more step,
//! in [`crate::fewshot::PrototypeClassifier::classify`]. Numbers: `docs/support-sets.md`.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TkreError};

/// How many examples the relation's text counts as in its prototype.
pub const TEXT_WEIGHT: f32 = 1.0;

/// Longest display name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description accepted, in characters (the encoder reads at most its maximum length
/// in tokens of it anyway; a longer text is almost certainly the wrong field).
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// A relation's name and description, either optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationText {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl RelationText {
    pub fn new(name: Option<String>, description: Option<String>) -> Self {
        Self { name, description }
    }

    /// Checks both fields; `relation` names the relation in errors.
    pub fn validate(&self, relation: &str) -> Result<()> {
        check_field(relation, "name", self.name.as_deref(), MAX_NAME_CHARS)?;
        check_field(
            relation,
            "description",
            self.description.as_deref(),
            MAX_DESCRIPTION_CHARS,
        )
    }

    /// True when there is no text to encode.
    pub fn is_empty(&self) -> bool {
        self.sentence().is_none()
    }

    /// The text that is encoded: `"name: description"`, or whichever of the two is given.
    pub fn sentence(&self) -> Option<String> {
        let name = self.name.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let description = self
            .description
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        match (name, description) {
            (Some(n), Some(d)) => Some(format!("{n}: {d}")),
            (Some(t), None) | (None, Some(t)) => Some(t.to_string()),
            (None, None) => None,
        }
    }
}

fn check_field(relation: &str, field: &str, value: Option<&str>, max_chars: usize) -> Result<()> {
    let Some(value) = value else { return Ok(()) };
    if value.trim().is_empty() {
        return Err(TkreError::SupportSet(format!(
            "relation {relation:?}: the {field} is empty; give words or leave the field out"
        )));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(TkreError::SupportSet(format!(
            "relation {relation:?}: the {field} has {chars} characters, more than {max_chars}; \
             say what the relation means in a sentence or two"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_joins_name_and_description() {
        let t = |n: Option<&str>, d: Option<&str>| RelationText::new(n.map(Into::into), d.map(Into::into));
        assert_eq!(
            t(Some("place of birth"), Some("where a person was born")).sentence(),
            Some("place of birth: where a person was born".into())
        );
        assert_eq!(
            t(Some(" founded by "), None).sentence(),
            Some("founded by".into())
        );
        assert_eq!(
            t(None, Some("who founded it")).sentence(),
            Some("who founded it".into())
        );
        assert!(t(None, None).is_empty());
    }

    #[test]
    fn bad_fields_are_clear_errors() {
        let err = |text: RelationText| text.validate("r").unwrap_err().to_string();
        assert!(err(RelationText::new(Some("  ".into()), None)).contains("the name is empty"));
        let long = "x".repeat(100_000);
        let e = err(RelationText::new(None, Some(long)));
        assert!(e.contains("description has 100000 characters"), "{e}");
        assert!(
            RelationText::new(Some("a".into()), Some("b".into()))
                .validate("r")
                .is_ok()
        );
    }
}
