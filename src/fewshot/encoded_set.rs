//! The live support set: every relation with its text and examples as given and as vectors,
//! each encoded once when it changes. The browser binding and the CLI keep their relations
//! here; encoding is the caller's (synchronous natively, asynchronous on WebGPU).

use serde::Serialize;

use crate::error::{Result, TkreError};
use crate::fewshot::support_set::{ParsedSupportSet, RelationExamples, SupportSet, check_key};
use crate::fewshot::{ExampleInput, PrototypeClassifier, RelationText, RelationVectors};

/// One relation: its text and examples, with their vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedRelation {
    pub key: String,
    pub text: RelationText,
    /// The sentence embedding of [`RelationText::sentence`], when there is text.
    pub text_vector: Option<Vec<f32>>,
    /// Each example as the user gave it, and its representation.
    pub examples: Vec<(ExampleInput, Vec<f32>)>,
}

/// What [`EncodedSupportSet::summaries`] reports per relation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelationSummary {
    pub key: String,
    /// The display name, or the key when there is none.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub examples: usize,
}

/// The relations a query is classified into, encoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedSupportSet {
    pub relations: Vec<EncodedRelation>,
    pub none_threshold: Option<f32>,
}

fn unknown(key: &str) -> TkreError {
    TkreError::SupportSet(format!("unknown relation {key:?}"))
}

impl EncodedSupportSet {
    /// Joins a parsed set with its vectors: `instance_vectors` in the order of
    /// [`ParsedSupportSet::instances`], `text_vectors` in that of [`ParsedSupportSet::texts`].
    pub fn from_parsed(
        parsed: ParsedSupportSet,
        instance_vectors: Vec<Vec<f32>>,
        text_vectors: Vec<Vec<f32>>,
    ) -> Result<Self> {
        let expected_instances: usize = parsed.relations.iter().map(|r| r.instances.len()).sum();
        let expected_texts = parsed.relations.iter().filter(|r| !r.text.is_empty()).count();
        if instance_vectors.len() != expected_instances || text_vectors.len() != expected_texts {
            return Err(TkreError::SupportSet(format!(
                "{} example vectors and {} text vectors for {expected_instances} examples and {expected_texts} texts",
                instance_vectors.len(),
                text_vectors.len()
            )));
        }
        let mut instance_vectors = instance_vectors.into_iter();
        let mut text_vectors = text_vectors.into_iter();
        let relations = parsed
            .relations
            .into_iter()
            .map(|r| EncodedRelation {
                text_vector: if r.text.is_empty() {
                    None
                } else {
                    text_vectors.next()
                },
                examples: r.inputs.into_iter().zip(instance_vectors.by_ref()).collect(),
                key: r.key,
                text: r.text,
            })
            .collect();
        Ok(Self {
            relations,
            none_threshold: parsed.none_threshold,
        })
    }

    pub fn position(&self, key: &str) -> Option<usize> {
        self.relations.iter().position(|r| r.key == key)
    }

    fn get_mut(&mut self, key: &str) -> Result<&mut EncodedRelation> {
        let i = self.position(key).ok_or_else(|| unknown(key))?;
        Ok(&mut self.relations[i])
    }

    /// Checks a new relation before anything is encoded for it; returns its trimmed key.
    pub fn check_new_relation(&self, key: &str, text: &RelationText, examples: usize) -> Result<String> {
        let key = check_key(key, "the relation")?;
        if self.position(&key).is_some() {
            return Err(TkreError::SupportSet(format!(
                "relation {key:?} already exists; add examples to it or set its text instead"
            )));
        }
        text.validate(&key)?;
        if examples == 0 && text.is_empty() {
            return Err(TkreError::SupportSet(format!(
                "relation {key:?} has no examples and no text; give it an example, a name or a description"
            )));
        }
        Ok(key)
    }

    /// Adds a relation checked by [`Self::check_new_relation`], with its vectors.
    pub fn add_relation(
        &mut self,
        key: String,
        text: RelationText,
        text_vector: Option<Vec<f32>>,
        examples: Vec<(ExampleInput, Vec<f32>)>,
    ) -> Result<()> {
        let key = self.check_new_relation(&key, &text, examples.len())?;
        self.relations.push(EncodedRelation {
            key,
            text,
            text_vector,
            examples,
        });
        Ok(())
    }

    /// Appends examples to a relation, creating it (without text) when new; returns its
    /// example count.
    pub fn add_examples(&mut self, key: &str, examples: Vec<(ExampleInput, Vec<f32>)>) -> Result<usize> {
        let key = check_key(key, "the relation")?;
        if examples.is_empty() {
            return Err(TkreError::SupportSet(format!(
                "no examples given for relation {key:?}"
            )));
        }
        let i = match self.position(&key) {
            Some(i) => i,
            None => {
                self.relations.push(EncodedRelation {
                    key,
                    text: RelationText::default(),
                    text_vector: None,
                    examples: Vec::new(),
                });
                self.relations.len() - 1
            }
        };
        self.relations[i].examples.extend(examples);
        Ok(self.relations[i].examples.len())
    }

    /// Checks that `key` exists and may take `text` (a relation without examples needs text).
    pub fn check_text(&self, key: &str, text: &RelationText) -> Result<()> {
        let relation = &self.relations[self.position(key).ok_or_else(|| unknown(key))?];
        text.validate(key)?;
        if text.is_empty() && relation.examples.is_empty() {
            return Err(TkreError::SupportSet(format!(
                "relation {key:?} has no examples, so it cannot lose its text; remove the relation instead"
            )));
        }
        Ok(())
    }

    /// Replaces a relation's text (checked by [`Self::check_text`]) and its vector.
    pub fn set_text(&mut self, key: &str, text: RelationText, vector: Option<Vec<f32>>) -> Result<()> {
        self.check_text(key, &text)?;
        let relation = self.get_mut(key)?;
        relation.text = text;
        relation.text_vector = vector;
        Ok(())
    }

    /// Removes one example; a relation left with neither examples nor text goes too.
    pub fn remove_example(&mut self, key: &str, index: usize) -> Result<()> {
        let relation = self.get_mut(key)?;
        let count = relation.examples.len();
        if index >= count {
            return Err(TkreError::SupportSet(format!(
                "relation {key:?} has {count} example(s); index {index} is out of range"
            )));
        }
        relation.examples.remove(index);
        if relation.examples.is_empty() && relation.text.is_empty() {
            self.relations.retain(|r| r.key != key);
        }
        Ok(())
    }

    pub fn remove_relation(&mut self, key: &str) -> Result<()> {
        let i = self.position(key).ok_or_else(|| unknown(key))?;
        self.relations.remove(i);
        Ok(())
    }

    /// Sets (in -1..1) or clears the none-of-the-above threshold.
    pub fn set_none_threshold(&mut self, threshold: Option<f32>) -> Result<()> {
        if let Some(t) = threshold {
            crate::fewshot::support_set::check_none_threshold(t)?;
        }
        self.none_threshold = threshold;
        Ok(())
    }

    pub fn summaries(&self) -> Vec<RelationSummary> {
        self.relations
            .iter()
            .map(|r| RelationSummary {
                key: r.key.clone(),
                name: r.text.name.clone().unwrap_or_else(|| r.key.clone()),
                description: r.text.description.clone(),
                examples: r.examples.len(),
            })
            .collect()
    }

    /// The set as written in a file (the examples as the user gave them).
    pub fn to_support_set(&self) -> SupportSet {
        SupportSet {
            version: None,
            relations: self
                .relations
                .iter()
                .map(|r| RelationExamples {
                    key: Some(r.key.clone()),
                    name: r.text.name.clone(),
                    description: r.text.description.clone(),
                    examples: r.examples.iter().map(|(input, _)| input.clone()).collect(),
                })
                .collect(),
            none_threshold: self.none_threshold,
        }
    }

    /// The classifier over these relations; `use_text: false` ignores relation text (relations
    /// with text only are then an error).
    pub fn classifier(&self, parts: usize, use_text: bool) -> Result<PrototypeClassifier> {
        if !use_text && let Some(r) = self.relations.iter().find(|r| r.examples.is_empty()) {
            return Err(TkreError::SupportSet(format!(
                "relation {:?} has no examples: it is classified by its text alone, and relation text is switched off",
                r.key
            )));
        }
        let relations = self
            .relations
            .iter()
            .map(|r| {
                RelationVectors::new(
                    r.key.clone(),
                    r.examples.iter().map(|(_, v)| v.clone()).collect(),
                    r.text_vector.clone().filter(|_| use_text),
                )
            })
            .collect();
        let mut classifier = PrototypeClassifier::new(relations, parts)?;
        classifier.none_threshold = self.none_threshold;
        Ok(classifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(v: f32) -> (ExampleInput, Vec<f32>) {
        (
            ExampleInput::Marked(format!("[E1]a[/E1] {v} [E2]b[/E2]")),
            vec![v, 1.0 - v],
        )
    }

    fn named(name: &str) -> RelationText {
        RelationText::new(Some(name.into()), None)
    }

    #[test]
    fn relations_change_one_step_at_a_time() {
        let mut set = EncodedSupportSet::default();
        set.add_relation(
            "born".into(),
            named("place of birth"),
            Some(vec![1.0, 0.0]),
            vec![],
        )
        .unwrap();
        assert!(
            set.add_relation("born".into(), named("x"), Some(vec![1.0, 0.0]), vec![])
                .is_err()
        );
        assert!(
            set.add_relation("empty".into(), RelationText::default(), None, vec![])
                .is_err()
        );
        assert_eq!(set.add_examples("works", vec![example(0.0)]).unwrap(), 1);
        assert_eq!(
            set.add_examples("born", vec![example(1.0), example(0.5)])
                .unwrap(),
            2
        );
        // A text-only relation cannot lose its text; one with examples can.
        set.remove_example("born", 0).unwrap();
        set.remove_example("born", 0).unwrap();
        assert!(set.set_text("born", RelationText::default(), None).is_err());
        set.set_text("works", named("employer"), Some(vec![0.0, 1.0]))
            .unwrap();
        assert_eq!(set.summaries()[1].name, "employer");
        // The last example of a relation with text leaves the relation in place.
        set.remove_example("works", 0).unwrap();
        assert_eq!(set.relations.len(), 2);
        assert!(set.remove_example("works", 0).is_err());
        let c = set.classifier(1, true).unwrap();
        assert_eq!(c.classify(&[1.0, 0.0]).unwrap().best().unwrap().relation, "born");
        assert!(
            set.classifier(1, false).is_err(),
            "text-only relations need their text"
        );
        // Saved and parsed again, the set keeps keys, names and descriptions.
        let parsed = SupportSet::from_json(&set.to_support_set().to_json(), "saved")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(parsed.relations[1].key, "works");
        assert_eq!(parsed.relations[1].text, named("employer"));
        set.remove_relation("born").unwrap();
        assert!(set.remove_relation("born").is_err());
    }
}
