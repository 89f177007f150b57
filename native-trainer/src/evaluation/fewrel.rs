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

/// Relation-labelled instances from a FewRel-format file, or from a corpus file of labelled
/// records (synthesis outputs, offsets or marked records with a `relation`, in any form
/// `tkre pretrain --corpus` reads); records without a relation are left out.
pub fn load_labelled(path: &Path) -> Result<FewRelData> {
    let is_lines = path.extension().is_some_and(|e| e == "jsonl");
    if is_lines {
        return load_corpus(path);
    }
    load(path).or_else(|fewrel| {
        load_corpus(path)
            .map_err(|corpus| anyhow::anyhow!("{fewrel:#}; read as a corpus instead: {corpus:#}"))
    })
}

/// Sentences with their two entity spans, labelled with a relation or not, for the mention
/// proposer (`tkre train-mentions`, `tkre extract --evaluate-mentions`): FewRel-format JSON,
/// FewRel 2.0's unlabelled list of records (`pubmed_unsupervised.json`), or any corpus file
/// `tkre pretrain --corpus` reads. Records that cannot be used are counted in the report.
pub fn load_entity_sentences(path: &Path) -> Result<(Vec<RelationInstance>, usize)> {
    if let Ok(data) = load(path) {
        let skipped = data.skipped;
        let instances: Vec<_> = data.relations.into_iter().flat_map(|(_, v)| v).collect();
        if !instances.is_empty() {
            return Ok((instances, skipped));
        }
    }
    let mut report = crate::pretrain::corpus::CorpusReport::default();
    let records = crate::pretrain::corpus::load_files(&[path], &mut report)?;
    if records.is_empty() {
        bail!(
            "{}: no sentence with two entity spans (expected FewRel-format JSON, a JSON list of \
             FewRel records, or corpus records with offsets or [E1]/[E2] marks)",
            path.display()
        );
    }
    Ok((
        records.into_iter().map(|r| r.instance).collect(),
        report.skipped_total(),
    ))
}

fn load_corpus(path: &Path) -> Result<FewRelData> {
    let mut report = crate::pretrain::corpus::CorpusReport::default();
    let records = crate::pretrain::corpus::load_files(&[path], &mut report)?;
    let mut by_relation: BTreeMap<String, Vec<RelationInstance>> = BTreeMap::new();
    let mut unlabelled = 0;
    for record in records {
        match record.relation {
            Some(label) => by_relation.entry(label).or_default().push(record.instance),
            None => unlabelled += 1,
        }
    }
    if by_relation.is_empty() {
        bail!("{}: no record has a relation label", path.display());
    }
    Ok(FewRelData {
        relations: by_relation.into_iter().collect(),
        skipped: report.skipped_total() + unlabelled,
        skipped_examples: Vec::new(),
    })
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
