//! The relation schema synthesis works from: each relation's name, description and allowed
//! head/tail entity types (JSON or TOML), with converters from FewRel's `pid2name.json`
//! (Wikidata properties) and from TACRED-style records (the paper's released data).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The entity types `tkre synthesize types` chooses from when a schema names none, with the
/// gloss the prompt shows. Coarse on purpose: a small LLM labels a dozen types consistently,
/// and the direction check only needs the head's and tail's types to differ.
pub const ENTITY_TYPES: &[(&str, &str)] = &[
    ("PERSON", "a human or fictional character"),
    ("ORGANIZATION", "company, team, party, band, school, institution"),
    ("LOCATION", "country, city, region, building, river, mountain"),
    ("WORK", "book, film, song, album, painting, periodical, software"),
    ("EVENT", "battle, war, election, competition, festival"),
    ("PRODUCT", "vehicle, ship, aircraft, device, weapon, drug"),
    ("TAXON", "species, genus or other group of organisms"),
    ("CHEMICAL", "element, compound, mineral, gene, protein"),
    ("MEDICAL", "disease, symptom, treatment, body part"),
    ("LANGUAGE", "a language or writing system"),
    (
        "CONCEPT",
        "occupation, position, genre, field, award, class, sport",
    ),
    ("TIME", "date, year or period"),
    ("QUANTITY", "number or amount"),
    ("OTHER", "anything else"),
];

/// One answer of `tkre synthesize types`: the entity types a relation links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationTypes {
    pub relation: String,
    /// The example statement the LLM wrote before choosing ("Jaws -- director -- Steven
    /// Spielberg"); kept to judge the types by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    pub head_type: String,
    pub tail_type: String,
    pub prompt_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRelation {
    pub name: String,
    /// Another name seed records may use for it (e.g. a Wikidata property id, `P17`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Allowed head entity types; empty = any type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub head_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail_types: Vec<String>,
    /// The types are an LLM's guess (`tkre synthesize types`), not data: a sample with other
    /// types is kept, and only a pair the types show reversed is rejected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub types_are_hints: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelationSchema {
    /// Every entity type the prompts may name (SCDG lists them); empty = untyped entities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entity_types: Vec<String>,
    pub relations: Vec<SchemaRelation>,
}

impl RelationSchema {
    /// Reads a `.json` or `.toml` schema.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading schema {}", path.display()))?;
        let schema: Self = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text).with_context(|| format!("{}: not a relation schema", path.display()))?
        } else {
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: not a relation schema ({{\"entity_types\": [...], \"relations\": [{{\"name\", \
                     \"description\", \"head_types\", \"tail_types\"}}]}}); `tkre synthesize schema` converts \
                     pid2name.json and TACRED-style records",
                    path.display()
                )
            })?
        };
        schema.validate(&path.display().to_string())?;
        Ok(schema)
    }

    pub fn validate(&self, origin: &str) -> Result<()> {
        if self.relations.is_empty() {
            bail!("{origin}: the schema has no relations");
        }
        let mut seen = BTreeSet::new();
        for relation in &self.relations {
            if relation.name.trim().is_empty() {
                bail!("{origin}: a relation has an empty name");
            }
            if !seen.insert(relation.name.as_str()) {
                bail!("{origin}: relation {:?} is listed twice", relation.name);
            }
            for ty in relation.head_types.iter().chain(&relation.tail_types) {
                if !self.entity_types.is_empty() && !self.entity_types.contains(ty) {
                    bail!(
                        "{origin}: relation {:?} allows type {ty:?}, which is not in entity_types",
                        relation.name
                    );
                }
            }
        }
        Ok(())
    }

    /// Drops the relations named (by name or id) in `excluded`, e.g. the evaluation relations.
    pub fn exclude(&mut self, excluded: &BTreeSet<String>) {
        self.relations.retain(|r| {
            !excluded.contains(&r.name) && !r.id.as_ref().is_some_and(|id| excluded.contains(id))
        });
    }

    /// The types a relation may have when the schema lists none: [`ENTITY_TYPES`].
    pub fn type_inventory(&self) -> Vec<String> {
        if self.entity_types.is_empty() {
            ENTITY_TYPES.iter().map(|(t, _)| t.to_string()).collect()
        } else {
            self.entity_types.clone()
        }
    }

    /// Sets head and tail types from `tkre synthesize types` answers (relations without an
    /// answer stay untyped); the schema's types become the inventory the answers chose from.
    /// Returns how many relations got types.
    pub fn apply_types(&mut self, answers: &[RelationTypes]) -> Result<usize> {
        let inventory = self.type_inventory();
        let mut applied = 0;
        for answer in answers {
            for ty in [&answer.head_type, &answer.tail_type] {
                if !inventory.contains(ty) {
                    bail!(
                        "types for {:?}: {ty:?} is not one of the schema's entity types ({})",
                        answer.relation,
                        inventory.join(", ")
                    );
                }
            }
            let Some(relation) = self
                .relations
                .iter_mut()
                .find(|r| r.name == answer.relation || r.id.as_deref() == Some(&answer.relation))
            else {
                bail!("types for {:?}, which is not in the schema", answer.relation);
            };
            relation.head_types = vec![answer.head_type.clone()];
            relation.tail_types = vec![answer.tail_type.clone()];
            relation.types_are_hints = true;
            applied += 1;
        }
        self.entity_types = inventory;
        Ok(applied)
    }

    /// The relation called `name`, by name or id.
    pub fn get(&self, name: &str) -> Option<&SchemaRelation> {
        self.relations
            .iter()
            .find(|r| r.name == name || r.id.as_deref() == Some(name))
    }

    /// FewRel's `pid2name.json`: `{"P17": ["country", "sovereign state of this item"], ...}`.
    /// Relations are named by their label (what prompts and users read); the property id is
    /// kept in the description. Properties without a label (FewRel's file has five named
    /// `"None"`) give nothing to prompt with and are left out.
    pub fn from_pid2name(text: &str) -> Result<Self> {
        let map: BTreeMap<String, (String, String)> = serde_json::from_str(text)
            .context("pid2name.json: expected {\"P17\": [name, description], ...}")?;
        let relations = map
            .into_iter()
            .filter(|(_, (name, _))| !name.trim().is_empty() && name != "None")
            .map(|(pid, (name, description))| SchemaRelation {
                name,
                description: Some(description),
                id: Some(pid),
                head_types: Vec::new(),
                tail_types: Vec::new(),
                types_are_hints: false,
            })
            .collect();
        Ok(Self {
            entity_types: Vec::new(),
            relations,
        })
    }

    /// TACRED-style records (JSON array or lines with `relation`, `subj_type`, `obj_type`):
    /// each relation gets the head and tail types seen with it.
    pub fn from_tacred_records(text: &str) -> Result<Self> {
        let records: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Array(items)) => items,
            _ => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()
                .context("expected a JSON array or JSON lines of TACRED-style records")?,
        };
        let mut types: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        let mut all = BTreeSet::new();
        for record in &records {
            let field = |name: &str| record.get(name).and_then(|v| v.as_str()).map(str::to_string);
            let Some(relation) = field("relation") else {
                continue;
            };
            let entry = types.entry(relation).or_default();
            if let Some(t) = field("subj_type") {
                all.insert(t.clone());
                entry.0.insert(t);
            }
            if let Some(t) = field("obj_type") {
                all.insert(t.clone());
                entry.1.insert(t);
            }
        }
        if types.is_empty() {
            bail!("no record has a `relation` field");
        }
        Ok(Self {
            entity_types: all.into_iter().collect(),
            relations: types
                .into_iter()
                .map(|(name, (head, tail))| SchemaRelation {
                    name,
                    id: None,
                    description: None,
                    head_types: head.into_iter().collect(),
                    tail_types: tail.into_iter().collect(),
                    types_are_hints: false,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_pid2name_and_tacred() {
        let schema = RelationSchema::from_pid2name(
            r#"{"P17": ["country", "sovereign state"], "P26": ["spouse", "married to"], "P0": ["None", "None"], "P1": ["None", "None"]}"#,
        )
        .unwrap();
        assert_eq!(schema.relations.len(), 2, "unlabelled properties are left out");
        assert_eq!(schema.relations[0].name, "country");
        assert_eq!(schema.relations[0].id.as_deref(), Some("P17"));
        assert_eq!(schema.get("P26").unwrap().name, "spouse");
        let schema = RelationSchema::from_tacred_records(concat!(
            r#"{"relation": "per:employee_of", "subj_type": "PERSON", "obj_type": "ORGANIZATION"}"#,
            "\n",
            r#"{"relation": "per:employee_of", "subj_type": "PERSON", "obj_type": "LOCATION"}"#,
            "\n"
        ))
        .unwrap();
        assert_eq!(schema.relations[0].tail_types, vec!["LOCATION", "ORGANIZATION"]);
        assert_eq!(schema.entity_types, vec!["LOCATION", "ORGANIZATION", "PERSON"]);
        schema.validate("test").unwrap();
    }

    #[test]
    fn types_answers_become_head_and_tail_types() {
        let mut schema = RelationSchema::from_pid2name(
            r#"{"P57": ["director", "director of a film"], "P19": ["place of birth", "where born"]}"#,
        )
        .unwrap();
        let answer = |relation: &str, head: &str, tail: &str| RelationTypes {
            relation: relation.into(),
            example: None,
            head_type: head.into(),
            tail_type: tail.into(),
            prompt_id: String::new(),
        };
        assert_eq!(schema.apply_types(&[answer("P57", "WORK", "PERSON")]).unwrap(), 1);
        assert_eq!(schema.get("director").unwrap().head_types, vec!["WORK"]);
        assert!(
            schema.get("P19").unwrap().head_types.is_empty(),
            "no answer: untyped"
        );
        assert!(schema.entity_types.contains(&"TAXON".to_string()));
        schema.validate("typed").unwrap();
        let error = schema
            .apply_types(&[answer("P19", "CITY", "PERSON")])
            .unwrap_err();
        assert!(error.to_string().contains("\"CITY\" is not one of"), "{error}");
        assert!(schema.apply_types(&[answer("P999", "WORK", "PERSON")]).is_err());
    }

    #[test]
    fn rejects_inconsistent_schemas() {
        let schema: RelationSchema = serde_json::from_str(
            r#"{"entity_types": ["PERSON"], "relations": [{"name": "r", "head_types": ["CITY"]}]}"#,
        )
        .unwrap();
        assert!(schema.validate("s").unwrap_err().to_string().contains("CITY"));
        assert!(serde_json::from_str::<RelationSchema>(r#"{"relations": [{"nam": "r"}]}"#).is_err());
    }
}
