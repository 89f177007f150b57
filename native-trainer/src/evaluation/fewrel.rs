//! Reading FewRel-format files: `{relation_id: [record, ...]}`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tkre::text::{FewRelRecord, RelationInstance};

/// Relations with their valid instances, in relation-id order.
pub struct FewRelData {
    pub relations: Vec<(String, Vec<RelationInstance>)>,
    /// Records that could not be used, with the reason (first few kept).
    pub skipped: usize,
    pub skipped_examples: Vec<String>,
}

pub fn load(path: &Path) -> Result<FewRelData> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let raw: BTreeMap<String, Vec<serde_json::Value>> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected FewRel format {{\"relation_id\": [{{\"tokens\": [...], \"h\": [name, id, [[indexes]]], \"t\": [...]}}]}}",
            path.display()
        )
    })?;
    if raw.is_empty() {
        bail!("{}: no relations in the file", path.display());
    }
    let mut relations = Vec::with_capacity(raw.len());
    let mut skipped = 0;
    let mut skipped_examples = Vec::new();
    for (relation, records) in raw {
        let mut instances = Vec::with_capacity(records.len());
        for (i, value) in records.into_iter().enumerate() {
            let parsed = serde_json::from_value::<FewRelRecord>(value)
                .map_err(|e| e.to_string())
                .and_then(|r| RelationInstance::from_fewrel(&r).map_err(|e| e.to_string()));
            match parsed {
                Ok(instance) => instances.push(instance),
                Err(reason) => {
                    skipped += 1;
                    if skipped_examples.len() < 5 {
                        skipped_examples.push(format!("{relation}[{i}]: {reason}"));
                    }
                }
            }
        }
        relations.push((relation, instances));
    }
    Ok(FewRelData {
        relations,
        skipped,
        skipped_examples,
    })
}
