//! `tkre export`: writes a model directory the browser package loads: the weights (fp32,
//! fp16 or int8, `tkre::checkpoint::precision`) as safetensors, config.json, tokenizer.json,
//! and manifest.json (`tkre::checkpoint::Manifest`) with each file's size and sha256 (the
//! browser and `tkre` verify them before use), how to read the model, and a model card.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use clap::builder::TypedValueParser as _;
use serde_json::json;
use tkre::checkpoint::gptq::InputGram;
use tkre::checkpoint::manifest::{FORMAT, MARKERS, VERSION, sha256_hex};
use tkre::checkpoint::{
    CalibrationInputs, Manifest, ManifestFile, ModelFiles, Precision, convert_weights_calibrated,
};
use tkre::engine::Engine;
use tkre::engine::weights::LayerProduct;
use tkre::text::RelationInstance;

use tkre::fewshot::Representation;
use tkre::{EngineRequest, RelationEncoder};
use tkre_trainer::pretrain::corpus::{CorpusReport, load_files};

use crate::output::publishable_path;

#[derive(Args)]
pub struct ExportArgs {
    /// Checkpoint directory to export (default: the base model).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Output directory (created; existing files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Weight precision: int8 (a quarter of fp32's bytes, multiplied in integers on the CPU),
    /// packed (int8's integers stored in 4-6 bits: 0.58 of int8's bytes, the same kernels), fp16
    /// or fp32.
    #[arg(long, default_value = "int8", value_parser = clap::builder::PossibleValuesParser::new(["int8", "packed", "fp16", "fp32"])
        .try_map(|s| s.parse::<Precision>()))]
    precision: Precision,
    /// Name shown by the browser package [default: the model directory's name].
    #[arg(long)]
    name: Option<String>,
    /// Licence of the weights, for the model card [default: the source model's, from its
    /// manifest's card or its README's front matter, or for a trained checkpoint from the model
    /// it started from].
    #[arg(long)]
    license: Option<String>,
    /// Sentences to calibrate a packed export on: a text file, one sentence per line, entities
    /// marked with [E1]...[/E1] and [E2]...[/E2] or not; or a corpus as `tkre pretrain --corpus`
    /// reads it (JSON, JSON lines). Each weight is rounded for the least error of its layer's
    /// outputs on what these sentences feed it (GPTQ), not to the nearest grid point. Use text
    /// like what the model will read, never the data it is evaluated on.
    #[arg(long, value_name = "FILE")]
    calibration: Option<PathBuf>,
    /// At most this many calibration sentences, spread evenly over the file (gathering the
    /// inputs costs time in proportion to the tokens; a few hundred sentences are enough).
    #[arg(long, default_value_t = 512, value_name = "N")]
    calibration_sentences: usize,
    /// Model card fields to add (a JSON object, e.g. base_model, training_data, commands,
    /// accuracy); they go into manifest.json's "card" next to what export fills in itself
    /// (source, licence, the export command and, for a `tkre pretrain`/`distill` output, its
    /// training settings).
    #[arg(long, value_name = "FILE")]
    card: Option<PathBuf>,
}

pub fn export(
    model: &Path,
    out: &Path,
    precision: Precision,
    calibration: Option<(&Path, usize)>,
    name: &str,
    license: &str,
    extra_card: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value> {
    Manifest::verify_dir(model)?;
    let read = |file: &str| {
        std::fs::read(model.join(file)).with_context(|| format!("reading {}", model.join(file).display()))
    };
    let config = read("config.json")?;
    let tokenizer = read("tokenizer.json")?;
    let source = model.join("model.safetensors").display().to_string();
    let source_weights = read("model.safetensors")?;
    let (inputs, calibration_card) = match calibration {
        Some(_) if precision != Precision::Packed => {
            bail!("--calibration rounds a packed export's weights; use it with --precision packed")
        }
        Some((file, most)) => {
            let (inputs, card) = calibration_inputs(model, file, most)?;
            (inputs, Some(card))
        }
        None => (CalibrationInputs::new(), None),
    };
    let weights = convert_weights_calibrated(&source_weights, precision, &source, &inputs)?;
    // Validate before writing anything: the exported directory must load, on the engine the
    // browser runs when it has no WebGPU (which reads int8 as int8).
    let files_to_check = ModelFiles {
        config_json: config.clone(),
        weights_safetensors: weights.clone(),
        tokenizer_json: tokenizer.clone(),
    };
    RelationEncoder::from_files(files_to_check, EngineRequest::Cpu)
        .context("the exported model does not load")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = BTreeMap::new();
    for (file, bytes) in [
        ("config.json", &config),
        ("model.safetensors", &weights),
        ("tokenizer.json", &tokenizer),
    ] {
        let path = out.join(file);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        files.insert(
            file.to_string(),
            ManifestFile {
                sha256: sha256_hex(bytes),
                bytes: bytes.len() as u64,
            },
        );
    }
    let mut card = serde_json::Map::new();
    card.insert("source".into(), json!(publishable_path(model)));
    card.insert("license".into(), json!(license));
    card.insert(
        "produced_by".into(),
        json!(format!("tkre export {}", env!("CARGO_PKG_VERSION"))),
    );
    card.insert(
        "export_command".into(),
        json!(crate::output::publishable_command()),
    );
    // A trained checkpoint records how it was made; the card keeps the settings.
    if let Some(run) = std::fs::read(model.join("pretrain.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    {
        card.insert("training".into(), publishable_paths(run["config"].clone()));
    }
    // The learned mention proposer, when the source has one: copied as it is (a few KB).
    if let Ok(head) = std::fs::read(model.join("mention_head.json")) {
        let hidden = tkre::checkpoint::EncoderConfig::from_json(
            std::str::from_utf8(&config).unwrap_or_default(),
            "config.json",
        )?
        .hidden_size;
        let parsed = tkre::fewshot::mention_head::MentionHead::from_json(
            std::str::from_utf8(&head).unwrap_or_default(),
            &model.join("mention_head.json").display().to_string(),
            hidden,
        )?;
        std::fs::write(out.join("mention_head.json"), &head)
            .with_context(|| format!("writing {}", out.join("mention_head.json").display()))?;
        files.insert(
            "mention_head.json".into(),
            ManifestFile {
                sha256: sha256_hex(&head),
                bytes: head.len() as u64,
            },
        );
        card.insert("mention_head".into(), json!(parsed.training));
    }
    if let Some(calibration) = calibration_card {
        card.insert("rounding".into(), calibration);
    }
    card.extend(extra_card);
    let manifest = Manifest {
        format: FORMAT.into(),
        version: VERSION,
        name: name.into(),
        precision,
        storage: Some(precision.description().into()),
        markers: MARKERS.into(),
        representation: Representation::default().name().into(),
        max_length: tkre::relation_encoder::DEFAULT_MAX_LEN,
        files,
        calibration: None,
        card,
    };
    manifest.check("the exported manifest")?;
    let path = out.join("manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(serde_json::to_value(&manifest)?)
}

/// Sequences run through the model at a time while gathering calibration inputs.
const CALIBRATION_BATCH: usize = 32;

/// The inputs every `Linear` of the model at `model` reads on the sentences of `file`, and what
/// the model card says about them.
fn calibration_inputs(
    model: &Path,
    file: &Path,
    most: usize,
) -> Result<(CalibrationInputs, serde_json::Value)> {
    if most == 0 {
        bail!("--calibration-sentences must be at least 1");
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let encoder = RelationEncoder::load_dir(model, EngineRequest::Cpu)?;
    let (mut marked, mut plain) = (Vec::new(), Vec::new());
    // A corpus is JSON lines of objects or one JSON document; a line of text may start with `[E1]`.
    let trimmed = text.trim_start();
    let corpus = trimmed.starts_with('{')
        || (trimmed.starts_with('[') && serde_json::from_str::<serde_json::Value>(trimmed).is_ok());
    if corpus {
        let mut report = CorpusReport::default();
        marked = load_files(&[file], &mut report)?
            .into_iter()
            .map(|record| record.instance)
            .collect();
        if report.skipped_total() > 0 {
            eprintln!("calibration: {}", report.describe());
        }
    } else {
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line.contains("[E1]") || line.contains("[E2]") {
                marked.push(RelationInstance::from_marked(line).with_context(|| {
                    format!(
                        "{} line {}: a sentence with entity markers",
                        file.display(),
                        number + 1
                    )
                })?);
            } else {
                plain.push(line.to_string());
            }
        }
    }
    if marked.is_empty() && plain.is_empty() {
        bail!(
            "{}: no sentences; give one sentence per line (entities marked or not)",
            file.display()
        );
    }
    let mut sequences = encoder.plan_instances(&marked)?.ids;
    sequences.extend(encoder.plan_sentences(&plain)?.ids);
    let available = sequences.len();
    if available > most {
        // Evenly spread, so a file sorted by relation still gives every part a share.
        sequences = (0..most)
            .map(|k| sequences[k * available / most].clone())
            .collect();
    }

    // The encoder that planned the sentences runs them: its engine is the CPU one requested.
    let Engine::Cpu(engine) = &encoder.engine else {
        bail!("internal: the calibration encoder is not on the CPU engine");
    };
    let started = std::time::Instant::now();
    let mut grams: BTreeMap<(usize, LayerProduct), InputGram> = BTreeMap::new();
    let tokens: usize = sequences.iter().map(Vec::len).sum();
    for batch in sequences.chunks(CALIBRATION_BATCH) {
        let views: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
        let batch_tokens: usize = views.iter().map(|ids| ids.len()).sum();
        engine.forward_observed(&views, &mut |input| {
            let width = input.rows.len() / batch_tokens.max(1);
            grams
                .entry((input.layer, input.product))
                .or_insert_with(|| InputGram::new(width))
                .add(input.rows);
        })?;
    }
    let mut inputs = CalibrationInputs::new();
    for ((layer, product), gram) in grams {
        for name in product.weight_names(layer) {
            inputs.insert(name, gram.clone());
        }
    }
    eprintln!(
        "calibration: {} sentences, {tokens} tokens, inputs gathered in {:.1} s",
        sequences.len(),
        started.elapsed().as_secs_f64()
    );
    let card = json!({
        "method": "GPTQ rounding (act order, 1% damping) of the uniform grids on these sentences' layer inputs",
        "file": publishable_path(file),
        "sha256": sha256_hex(text.as_bytes()),
        "sentences": sequences.len(),
        "sentences_in_file": available,
        "tokens": tokens,
    });
    Ok((inputs, card))
}

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let model = args.model.unwrap_or_else(crate::runtime::default_model_dir);
    let name = args.name.unwrap_or_else(|| {
        model
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
    });
    let extra_card = match &args.card {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            match serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?
            {
                serde_json::Value::Object(map) => map,
                _ => bail!("{}: the model card must be a JSON object", path.display()),
            }
        }
        None => serde_json::Map::new(),
    };
    let license = match args.license {
        Some(license) => license,
        None => model_license(&model, 0)?.with_context(|| {
            format!(
                "{}: no licence found (no card in manifest.json, no `license:` in README.md, no \
                 starting model recorded in pretrain.json); give --license",
                model.display()
            )
        })?,
    };
    let manifest = export(
        &model,
        &args.out,
        args.precision,
        args.calibration
            .as_deref()
            .map(|file| (file, args.calibration_sentences)),
        &name,
        &license,
        extra_card,
    )?;
    println!("{}", serde_json::to_string(&manifest)?);
    Ok(ExitCode::SUCCESS)
}

/// The licence a model directory states: its manifest card's `license`, else the `license:`
/// of its README's front matter (Hugging Face model cards), else, for a `tkre pretrain` or
/// `distill` output, that of the checkpoint it started from (the base model by default).
fn model_license(model: &Path, depth: usize) -> Result<Option<String>> {
    if let Ok(text) = std::fs::read_to_string(model.join("manifest.json")) {
        let manifest: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", model.join("manifest.json").display()))?;
        if let Some(license) = manifest["card"]["license"].as_str() {
            return Ok(Some(license.to_string()));
        }
    }
    if let Ok(readme) = std::fs::read_to_string(model.join("README.md")) {
        let mut lines = readme.lines();
        if lines.next().map(str::trim) == Some("---") {
            let license = lines
                .take_while(|line| line.trim() != "---")
                .find_map(|line| line.strip_prefix("license:"))
                .map(|value| value.trim().trim_matches(['"', '\'']).to_string())
                .filter(|value| !value.is_empty());
            if license.is_some() {
                return Ok(license);
            }
        }
    }
    // A trained checkpoint: the licence of what it was trained from (a chain of a few runs).
    let run = std::fs::read(model.join("pretrain.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    if let (Some(run), true) = (run, depth < 8) {
        let init = run["config"]["init"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_else(crate::runtime::default_model_dir);
        return model_license(&init, depth + 1);
    }
    Ok(None)
}

/// Every string in `value` through [`publishable_path`].
fn publishable_paths(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(publishable_path(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(publishable_paths).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, publishable_paths(v))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_licence_comes_from_the_card_the_readme_or_the_starting_model() {
        let dir = tempfile::tempdir().unwrap();
        let (card, readme, trained, bare) = (
            dir.path().join("card"),
            dir.path().join("readme"),
            dir.path().join("trained"),
            dir.path().join("bare"),
        );
        for d in [&card, &readme, &trained, &bare] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(card.join("manifest.json"), r#"{"card": {"license": "MIT"}}"#).unwrap();
        std::fs::write(
            readme.join("README.md"),
            "---\nlanguage: en\nlicense: apache-2.0\n---\n# A model\n",
        )
        .unwrap();
        let run = serde_json::json!({"config": {"init": readme.display().to_string()}});
        std::fs::write(trained.join("pretrain.json"), run.to_string()).unwrap();
        std::fs::write(bare.join("README.md"), "# no front matter\nlicense: not this\n").unwrap();
        assert_eq!(model_license(&card, 0).unwrap().as_deref(), Some("MIT"));
        assert_eq!(model_license(&readme, 0).unwrap().as_deref(), Some("apache-2.0"));
        assert_eq!(model_license(&trained, 0).unwrap().as_deref(), Some("apache-2.0"));
        assert_eq!(model_license(&bare, 0).unwrap(), None);
    }

    #[test]
    fn published_cards_do_not_show_the_exporters_folders() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(publishable_path(cwd.join("runs/a")), "runs/a");
        if let Some(home) = std::env::var_os("HOME").filter(|h| !cwd.starts_with(h)) {
            let inside = Path::new(&home).join(".cache/tkre/x");
            assert_eq!(publishable_path(inside), "~/.cache/tkre/x");
        }
        assert_eq!(publishable_path("/srv/alice/secret/model"), "model");
        assert_eq!(publishable_path("relative/dir"), "relative/dir");
        let config = publishable_paths(serde_json::json!({"corpus": ["/srv/alice/c.jsonl"], "epochs": 3}));
        assert_eq!(config, serde_json::json!({"corpus": ["c.jsonl"], "epochs": 3}));
    }
}
