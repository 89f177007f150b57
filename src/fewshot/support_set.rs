//! Support sets: the user's relations, each with words that say what it means and a few
//! example sentences, as JSON (`docs/support-set.schema.json` is its JSON Schema).
//!
//! ```json
//! {
//!   "version": 2,
//!   "relations": [
//!     {"key": "P19", "name": "place of birth",
//!      "description": "most specific known birth location of a person",
//!      "examples": [
//!        "[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].",
//!        {"text": "Bach was born in Eisenach.", "head": {"start": 0, "end": 4},
//!         "tail": {"start": 17, "end": 25}}
//!     ]},
//!     {"key": "founded by", "description": "the person or group who founded the organisation"}
//!   ]
//! }
//! ```
//! A relation has a `key` (what predictions name), an optional display `name`, an optional
//! `description`, and 0..K examples; it needs examples, text, or both. An example is a marked
//! sentence, a text with character offsets, or a FewRel record. Files of the first format (no
//! `version`, `name` as the key) load unchanged: their `name` is the key and the display name.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TkreError};
use crate::fewshot::RelationText;
use crate::text::{CharSpan, FewRelRecord, RelationInstance};

/// One example as written in a support-set file.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// The offsets form, read on its own so its errors name its fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OffsetsInput {
    text: String,
    head: CharSpan,
    tail: CharSpan,
    #[serde(default, alias = "headType")]
    head_type: Option<String>,
    #[serde(default, alias = "tailType")]
    tail_type: Option<String>,
}

/// Reads an example by its shape, so that a mistake gets an error about the form it tried to be
/// (serde's untagged enums only say "data did not match any variant").
impl<'de> Deserialize<'de> for ExampleInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        use serde_json::Value;
        let value = Value::deserialize(deserializer)?;
        match value {
            Value::String(marked) => Ok(Self::Marked(marked)),
            Value::Object(map) if map.contains_key("tokens") => serde_json::from_value(Value::Object(map))
                .map(Self::FewRel)
                .map_err(|e| D::Error::custom(format!("a FewRel-record example {{tokens, h, t}}: {e}"))),
            Value::Object(map) if map.contains_key("text") => {
                serde_json::from_value::<OffsetsInput>(Value::Object(map))
                    .map(|o| Self::Offsets {
                        text: o.text,
                        head: o.head,
                        tail: o.tail,
                        head_type: o.head_type,
                        tail_type: o.tail_type,
                    })
                    .map_err(|e| {
                        D::Error::custom(format!(
                            "an offsets example {{text, head: {{start, end}}, tail: {{start, end}}}}: {e}"
                        ))
                    })
            }
            other => {
                let got = match other {
                    Value::Null => "null".to_string(),
                    Value::Bool(_) => "a boolean".to_string(),
                    Value::Number(n) => format!("the number {n}"),
                    Value::Array(_) => "an array".to_string(),
                    Value::Object(map) => format!(
                        "an object with {}",
                        map.keys()
                            .map(|k| format!("{k:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Value::String(_) => "a string".to_string(),
                };
                Err(D::Error::custom(format!(
                    "an example is a marked sentence (\"[E1]..[/E1] .. [E2]..[/E2]\"), {{text, head, tail}} \
                     or a FewRel record {{tokens, h, t}}; got {got}"
                )))
            }
        }
    }
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

/// The format version [`SupportSet::to_json`] writes; files without a version are version 1.
pub const SUPPORT_SET_VERSION: u32 = 2;

/// Longest relation key accepted, in characters.
pub const MAX_KEY_CHARS: usize = 200;

/// A relation as written in a support-set file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RelationExamples {
    /// What predictions call the relation; defaults to `name` (the first format's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Display name, also read as relation text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub examples: Vec<ExampleInput>,
}

impl RelationExamples {
    pub fn text(&self) -> RelationText {
        RelationText::new(self.name.clone(), self.description.clone())
    }
}

/// The relations a query is classified into, with K examples each (K may differ, and may be 0
/// for a relation with text).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SupportSet {
    /// Format version: absent or 1 for the first format, 2 for this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    pub relations: Vec<RelationExamples>,
    /// Minimum similarity to the best prototype, below which a query is "none of the above".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none_threshold: Option<f32>,
}

/// One relation of a checked support set.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRelation {
    pub key: String,
    pub text: RelationText,
    /// The examples as given (kept to save the set again) and parsed.
    pub inputs: Vec<ExampleInput>,
    pub instances: Vec<RelationInstance>,
}

/// A support set with every example parsed into a [`RelationInstance`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSupportSet {
    pub relations: Vec<ParsedRelation>,
    pub none_threshold: Option<f32>,
}

impl ParsedSupportSet {
    /// Every relation's instances, one relation after another.
    pub fn instances(&self) -> Vec<RelationInstance> {
        self.relations
            .iter()
            .flat_map(|r| r.instances.iter().cloned())
            .collect()
    }

    /// The text of every relation that has some, in relation order.
    pub fn texts(&self) -> Vec<String> {
        self.relations.iter().filter_map(|r| r.text.sentence()).collect()
    }
}

/// Checks a none-of-the-above threshold: a similarity, so a number in -1..1 (NaN is not).
pub fn check_none_threshold(threshold: f32) -> Result<f32> {
    if (-1.0..=1.0).contains(&threshold) {
        Ok(threshold)
    } else {
        Err(TkreError::Option(format!(
            "none-of-the-above threshold {threshold} is outside -1..1 (it is a cosine similarity)"
        )))
    }
}

/// Checks a relation key; `what` says where it came from in errors.
pub fn check_key(key: &str, what: &str) -> Result<String> {
    let key = key.trim();
    if key.is_empty() {
        return Err(TkreError::SupportSet(format!(
            "{what} has an empty key; give it a key (or a name)"
        )));
    }
    let chars = key.chars().count();
    if chars > MAX_KEY_CHARS {
        return Err(TkreError::SupportSet(format!(
            "{what}: the key has {chars} characters, more than {MAX_KEY_CHARS}; use a short identifier \
             and put the explanation in \"description\""
        )));
    }
    Ok(key.to_string())
}

impl SupportSet {
    /// Parses support-set JSON; `origin` (a file name) appears in errors.
    pub fn from_json(json: &str, origin: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| TkreError::json(origin, e))
    }

    /// The set as JSON, in the current version.
    pub fn to_json(&self) -> String {
        let current = Self {
            version: Some(SUPPORT_SET_VERSION),
            ..self.clone()
        };
        // Serialising plain data structures cannot fail.
        serde_json::to_string_pretty(&current).unwrap_or_default()
    }

    /// Validates the set and parses every example; errors name the relation and example.
    pub fn parse(&self) -> Result<ParsedSupportSet> {
        if let Some(v) = self.version
            && !(1..=SUPPORT_SET_VERSION).contains(&v)
        {
            return Err(TkreError::SupportSet(format!(
                "version {v} is not known here (this version reads 1 and {SUPPORT_SET_VERSION}); \
                 update tkre, or write the file in version {SUPPORT_SET_VERSION}"
            )));
        }
        if self.relations.is_empty() {
            return Err(TkreError::SupportSet(
                "it has no relations; add at least one relation with an example or a description".into(),
            ));
        }
        let mut relations: Vec<ParsedRelation> = Vec::with_capacity(self.relations.len());
        for (r, relation) in self.relations.iter().enumerate() {
            let what = format!("relation #{}", r + 1);
            let key = check_key(
                relation.key.as_deref().or(relation.name.as_deref()).unwrap_or(""),
                &what,
            )?;
            if relations.iter().any(|p| p.key == key) {
                return Err(TkreError::SupportSet(format!(
                    "relation {key:?} appears twice; merge its examples into one entry"
                )));
            }
            let text = relation.text();
            text.validate(&key)?;
            if relation.examples.is_empty() && text.is_empty() {
                return Err(TkreError::SupportSet(format!(
                    "relation {key:?} has no examples and no text; give it at least one example, \
                     or a name or description to classify by (zero-shot)"
                )));
            }
            let instances = relation
                .examples
                .iter()
                .enumerate()
                .map(|(i, example)| {
                    example.to_instance().map_err(|e| {
                        TkreError::SupportSet(format!("relation {key:?}, example #{}: {e}", i + 1))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            relations.push(ParsedRelation {
                key,
                text,
                inputs: relation.examples.clone(),
                instances,
            });
        }
        if let Some(t) = self.none_threshold {
            check_none_threshold(t).map_err(|e| TkreError::SupportSet(format!("none_threshold: {e}")))?;
        }
        Ok(ParsedSupportSet {
            relations,
            none_threshold: self.none_threshold,
        })
    }
}
