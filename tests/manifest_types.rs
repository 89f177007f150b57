//! The browser package's TypeScript type of `manifest.json` (pkg/src/index.d.ts) and the one
//! Rust struct that reads and writes it (`tkre::checkpoint::Manifest`) must agree: the same
//! fields, the same optional ones, and the same values where the type lists them.

use std::collections::BTreeMap;

use tkre::checkpoint::manifest::{FORMAT, MARKERS, VERSION};
use tkre::checkpoint::{Manifest, Precision};
use tkre::fewshot::Representation;

/// `name` -> (optional, type text) of `export interface ModelManifest { ... }`.
fn typescript_fields() -> BTreeMap<String, (bool, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/pkg/src/index.d.ts");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find("export interface ModelManifest {")
        .expect("index.d.ts declares ModelManifest");
    let body = &text[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find("\n}").unwrap()];
    body.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("/*") && !line.starts_with('*'))
        .map(|line| {
            let (name, ty) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("field line {line:?}"));
            let optional = name.ends_with('?');
            (
                name.trim_end_matches('?').to_string(),
                (optional, ty.trim().trim_end_matches(';').to_string()),
            )
        })
        .collect()
}

/// A manifest with every optional field (`full`) or none of them.
fn sample(full: bool) -> Manifest {
    let storage = full.then(|| "s".to_string());
    let calibration = full.then(|| tkre::fewshot::Calibration {
        temperature: 0.05,
        none_similarity: 0.5,
        fitted_on: "episodes".into(),
    });
    Manifest {
        format: FORMAT.into(),
        version: VERSION,
        name: "m".into(),
        precision: Precision::Int8,
        storage,
        markers: MARKERS.into(),
        representation: Representation::default().name().into(),
        max_length: 256,
        files: BTreeMap::new(),
        calibration,
        card: Default::default(),
    }
}

fn keys(manifest: &Manifest) -> Vec<String> {
    let value = serde_json::to_value(manifest).unwrap();
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn index_d_ts_and_the_manifest_struct_agree() {
    let typescript = typescript_fields();
    let all = keys(&sample(true));
    let required = keys(&sample(false));
    let mut declared: Vec<&String> = typescript.keys().collect();
    declared.sort();
    let mut written: Vec<&String> = all.iter().collect();
    written.sort();
    assert_eq!(
        declared, written,
        "index.d.ts ModelManifest fields vs tkre::checkpoint::Manifest"
    );
    for (name, (optional, _)) in &typescript {
        assert_eq!(
            *optional,
            !required.contains(name),
            "{name}: optional in one and not the other"
        );
    }
    let literals = |ty: &str| -> Vec<String> {
        ty.split('|')
            .map(|t| t.trim().trim_matches('\'').to_string())
            .collect()
    };
    let precisions: Vec<String> = Precision::ALL.iter().map(|p| p.name().to_string()).collect();
    assert_eq!(literals(&typescript["precision"].1), precisions);
    let representations: Vec<String> = Representation::ALL.iter().map(|r| r.name().to_string()).collect();
    assert_eq!(literals(&typescript["representation"].1), representations);
    assert_eq!(literals(&typescript["markers"].1), [MARKERS]);
    assert_eq!(literals(&typescript["format"].1), [FORMAT]);
}
