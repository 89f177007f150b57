//! Support sets: the user's relations, each with a few example sentences, as JSON.
//!
//! ```json
//! {
//!   "relations": [
//!     {"name": "born in", "examples": [
//!        "[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].",
//!        {"text": "Bach was born in Eisenach.", "head": {"start": 0, "end": 4},
//!         "tail": {"start": 17, "end": 25}}
//!     ]}
//!   ]
//! }
//! ```
//! An example is a marked sentence, a text with character offsets, or a FewRel record.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TkreError};
use crate::text::{CharSpan, FewRelRecord, RelationInstance};

/// One example as written in a support-set file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExampleInput {
    /// `"[E1]...[/E1] ... [E2]...[/E2]"`
    Marked(String),
    /// `{"text", "head": {"start","end"}, "tail": {...}, "head_type"?, "tail_type"?}`
    Offsets {
        text: String,
        head: CharSpan,
        tail: CharSpan,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tail_type: Option<String>,
    },
    /// A FewRel record.
    FewRel(FewRelRecord),
}

impl ExampleInput {
    pub fn to_instance(&self) -> Result<RelationInstance> {
        match self {
            Self::Marked(marked) => RelationInstance::from_marked(marked),
            Self::Offsets {
                text,
                head,
                tail,
                head_type,
                tail_type,
            } => Ok(RelationInstance::from_offsets(text.clone(), *head, *tail)?
                .with_types(head_type.clone(), tail_type.clone())),
            Self::FewRel(record) => RelationInstance::from_fewrel(record),
        }
    }
}

impl From<&RelationInstance> for ExampleInput {
    fn from(instance: &RelationInstance) -> Self {
        Self::Offsets {
            text: instance.text.clone(),
            head: instance.head,
            tail: instance.tail,
            head_type: instance.head_type.clone(),
            tail_type: instance.tail_type.clone(),
        }
    }
}

/// A relation with its examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationExamples {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub examples: Vec<ExampleInput>,
}

/// The relations a query is classified into, with K examples each (K may differ).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SupportSet {
    pub relations: Vec<RelationExamples>,
    /// Minimum similarity to the best prototype, below which a query is "none of the above".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none_threshold: Option<f32>,
}

/// A support set with every example parsed into a [`RelationInstance`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSupportSet {
    pub relations: Vec<(String, Vec<RelationInstance>)>,
    pub none_threshold: Option<f32>,
}

impl SupportSet {
    /// Parses support-set JSON; `origin` (a file name) appears in errors.
    pub fn from_json(json: &str, origin: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| TkreError::json(origin, e))
    }

    pub fn to_json(&self) -> String {
        // Serialising plain data structures cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Validates the set and parses every example; errors name the relation and example.
    pub fn parse(&self) -> Result<ParsedSupportSet> {
        if self.relations.is_empty() {
            return Err(TkreError::SupportSet(
                "it has no relations; add at least one relation with one example".into(),
            ));
        }
        let mut relations = Vec::with_capacity(self.relations.len());
        for (r, relation) in self.relations.iter().enumerate() {
            let name = relation.name.trim();
            if name.is_empty() {
                return Err(TkreError::SupportSet(format!(
                    "relation #{} has an empty name",
                    r + 1
                )));
            }
            if relations.iter().any(|(n, _): &(String, _)| n == name) {
                return Err(TkreError::SupportSet(format!(
                    "relation {name:?} appears twice; merge its examples into one entry"
                )));
            }
            if relation.examples.is_empty() {
                return Err(TkreError::SupportSet(format!(
                    "relation {name:?} has no examples; give it at least one"
                )));
            }
            let instances = relation
                .examples
                .iter()
                .enumerate()
                .map(|(i, example)| {
                    example.to_instance().map_err(|e| {
                        TkreError::SupportSet(format!("relation {name:?}, example #{}: {e}", i + 1))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            relations.push((name.to_string(), instances));
        }
        if let Some(t) = self.none_threshold
            && !(-1.0..=1.0).contains(&t)
        {
            return Err(TkreError::SupportSet(format!(
                "none_threshold {t} is outside -1..1 (it is a cosine-like similarity)"
            )));
        }
        Ok(ParsedSupportSet {
            relations,
            none_threshold: self.none_threshold,
        })
    }
}
