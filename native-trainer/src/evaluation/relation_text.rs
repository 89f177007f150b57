//! `--relation-descriptions FILE`: relation text for evaluation, keyed by relation id.
//!
//! Two shapes are read: pid2name.json's `{"P19": ["place of birth", "most specific known
//! birth location of a person"]}` (name and description) and a plain `{"P19": "text"}` map
//! (the text is the name).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tkre::fewshot::RelationText;

#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Text(String),
    NameDescription(Vec<String>),
}

/// The relation text of every id in the file.
pub fn load(path: &Path) -> Result<BTreeMap<String, RelationText>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let raw: BTreeMap<String, Entry> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected {{\"relation id\": [name, description]}} (pid2name.json) or {{\"relation id\": \"text\"}}",
            path.display()
        )
    })?;
    let mut texts = BTreeMap::new();
    for (id, entry) in raw {
        let text = match entry {
            Entry::Text(t) => RelationText::new(Some(t), None),
            Entry::NameDescription(v) => match v.as_slice() {
                [name] => RelationText::new(Some(name.clone()), None),
                [name, description] => RelationText::new(Some(name.clone()), Some(description.clone())),
                _ => bail!(
                    "{}: relation {id:?} has {} strings; give [name] or [name, description]",
                    path.display(),
                    v.len()
                ),
            },
        };
        text.validate(&id).with_context(|| path.display().to_string())?;
        texts.insert(id, text);
    }
    Ok(texts)
}

/// The text (as encoded) of each relation id in `ids`; errors when `required` and one has none.
pub fn for_relations(
    texts: &BTreeMap<String, RelationText>,
    ids: &[String],
    required: bool,
    origin: &str,
) -> Result<Vec<Option<String>>> {
    let found: Vec<Option<String>> = ids
        .iter()
        .map(|id| texts.get(id).and_then(RelationText::sentence))
        .collect();
    let missing: Vec<&str> = ids
        .iter()
        .zip(&found)
        .filter(|(_, t)| t.is_none())
        .map(|(id, _)| id.as_str())
        .collect();
    if !missing.is_empty() {
        if required {
            bail!(
                "{origin} has no text for relation(s) {}; zero-shot (--k 0) classifies by text alone",
                missing.join(", ")
            );
        }
        eprintln!(
            "warning: {origin} has no text for {} relation(s) ({}); they are scored by their examples alone",
            missing.len(),
            missing.join(", ")
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_load_and_bad_entries_are_named() {
        let dir = std::env::temp_dir().join(format!("tkre-reltext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, body: &str| {
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        let pid = load(&write(
            "a.json",
            r#"{"P19": ["place of birth", "where born"], "P1": ["x"]}"#,
        ))
        .unwrap();
        assert_eq!(pid["P19"].sentence().unwrap(), "place of birth: where born");
        assert_eq!(pid["P1"].sentence().unwrap(), "x");
        let plain = load(&write("b.json", r#"{"founded": "founded by"}"#)).unwrap();
        assert_eq!(plain["founded"].sentence().unwrap(), "founded by");
        let e = load(&write("c.json", r#"{"P1": ["a", "b", "c"]}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("has 3 strings"), "{e}");
        let e = format!("{:#}", load(&write("d.json", r#"{"P1": 5}"#)).unwrap_err());
        assert!(e.contains("expected"), "{e}");
        let e = format!("{:#}", load(&write("e.json", r#"{"P1": ""}"#)).unwrap_err());
        assert!(e.contains("empty"), "{e}");
        let ids = vec!["P19".to_string(), "P2".to_string()];
        assert!(for_relations(&pid, &ids, true, "a.json").is_err());
        assert_eq!(for_relations(&pid, &ids, false, "a.json").unwrap()[1], None);
        std::fs::remove_dir_all(&dir).ok();
    }
}
