//! `tkre export`: writes a model directory the browser package loads: the weights (fp32,
//! fp16 or int8) as safetensors, config.json, tokenizer.json, and manifest.json with each
//! file's size and sha256 (the browser and `tkre` verify them before use) and a model card.
//!
//! int8: every 2-d tensor (the `Linear` weights and the embedding tables, 99 % of the
//! parameters) is quantized symmetrically with one f32 scale per row (per output channel of a
//! `Linear`, per token of an embedding): `q = round(w / s)`, `s = max|row| / 127`, stored as
//! `NAME` (I8) and `NAME_scale` (F32, `[rows]`); biases and layer norms stay fp16. The loader
//! (`tkre::model::loader`) widens each tensor as it loads.
//!
//! Manifest format (version 1):
//! ```json
//! {"format": "tkre-model", "version": 1, "name": "...", "precision": "fp16",
//!  "markers": "tkre-punctuation", "representation": "entity-mean-sentence", "max_length": 256,
//!  "files": {"config.json": {"sha256": "...", "bytes": 612}, "model.safetensors": {...},
//!            "tokenizer.json": {...}},
//!  "card": {"base_model": "...", "license": "...", "source": "..."}}
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::json;
use tkre::fewshot::Representation;
use tkre_trainer::manifest::sha256_hex;

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
pub enum Precision {
    Fp32,
    Fp16,
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }

    /// What the manifest says about how the weights are stored.
    fn description(self) -> &'static str {
        match self {
            Precision::Fp32 => "all tensors f32",
            Precision::Fp16 => "all tensors f16",
            Precision::Int8 => {
                "2-d tensors (Linear weights, embeddings) int8, symmetric, one f32 scale per row \
                 (per output channel / per token) in NAME_scale; 1-d tensors f16"
            }
        }
    }
}

#[derive(Args)]
pub struct ExportArgs {
    /// Checkpoint directory to export (default: the base model).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Output directory (created; existing files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "fp16")]
    precision: Precision,
    /// Name shown by the browser package.
    #[arg(long)]
    name: Option<String>,
    /// Licence of the weights, for the model card.
    #[arg(long, default_value = "Apache-2.0 (all-MiniLM-L6-v2, sentence-transformers)")]
    license: String,
    /// Model card fields to add (a JSON object, e.g. base_model, training_data, commands,
    /// accuracy); they go into manifest.json's "card" next to what export fills in itself
    /// (source, licence, the export command and, for a `tkre pretrain`/`distill` output, its
    /// training settings).
    #[arg(long, value_name = "FILE")]
    card: Option<PathBuf>,
}

/// Converts the float tensors the encoder uses to `precision`, dropping tensors it does not
/// use (pooler, heads) so the browser downloads only what it runs.
pub fn convert_weights(bytes: &[u8], precision: Precision) -> Result<Vec<u8>> {
    let tensors = SafeTensors::deserialize(bytes).context("reading model.safetensors")?;
    let mut converted: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in tensors.tensors() {
        let bare = name.strip_prefix("bert.").unwrap_or(&name);
        if !(bare.starts_with("embeddings.") || bare.starts_with("encoder."))
            || bare.ends_with("position_ids")
        {
            continue;
        }
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => view
                .data()
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => view
                .data()
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => bail!(
                "tensor {name} has dtype {other:?}; only float tensors are expected in a BERT checkpoint"
            ),
        };
        let fp16 = |values: &[f32]| -> Vec<u8> {
            values
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect()
        };
        let shape = view.shape().to_vec();
        match precision {
            Precision::Fp32 => converted.push((
                bare.to_string(),
                Dtype::F32,
                shape,
                values.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )),
            Precision::Fp16 => converted.push((bare.to_string(), Dtype::F16, shape, fp16(&values))),
            Precision::Int8 if shape.len() == 2 => {
                let (quantized, scales) = quantize_rows(&values, shape[1]);
                converted.push((
                    format!("{bare}{}", tkre::model::loader::INT8_SCALE_SUFFIX),
                    Dtype::F32,
                    vec![shape[0]],
                    scales.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ));
                converted.push((
                    bare.to_string(),
                    Dtype::I8,
                    shape,
                    quantized.iter().map(|&q| q as u8).collect(),
                ));
            }
            Precision::Int8 => converted.push((bare.to_string(), Dtype::F16, shape, fp16(&values))),
        }
    }
    if converted.is_empty() {
        bail!("model.safetensors has no embeddings.* or encoder.* tensors; is it a BERT checkpoint?");
    }
    let views = converted
        .iter()
        .map(|(name, dtype, shape, data)| Ok((name.clone(), TensorView::new(*dtype, shape.clone(), data)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// Symmetric int8 quantization with one scale per row of `cols` values.
pub fn quantize_rows(values: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut quantized = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len() / cols.max(1));
    for row in values.chunks(cols.max(1)) {
        let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        quantized.extend(row.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8));
        scales.push(scale);
    }
    (quantized, scales)
}

pub fn export(
    model: &Path,
    out: &Path,
    precision: Precision,
    name: &str,
    license: &str,
    extra_card: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value> {
    tkre_trainer::manifest::verify(model)?;
    let read = |file: &str| {
        std::fs::read(model.join(file)).with_context(|| format!("reading {}", model.join(file).display()))
    };
    let config = read("config.json")?;
    let tokenizer = read("tokenizer.json")?;
    let weights = convert_weights(&read("model.safetensors")?, precision)?;
    // Validate before writing anything: the exported directory must load.
    tkre::RelationEncoder::from_files(
        tkre::ModelFiles {
            config_json: config.clone(),
            weights_safetensors: weights.clone(),
            tokenizer_json: tokenizer.clone(),
        },
        crate::runtime::device("cpu"),
    )
    .context("the exported model does not load")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = serde_json::Map::new();
    for (file, bytes) in [
        ("config.json", &config),
        ("model.safetensors", &weights),
        ("tokenizer.json", &tokenizer),
    ] {
        let path = out.join(file);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        files.insert(
            file.into(),
            json!({"sha256": sha256_hex(bytes), "bytes": bytes.len()}),
        );
    }
    let mut card = serde_json::Map::new();
    card.insert(
        "source".into(),
        json!(publishable_path(&model.display().to_string())),
    );
    card.insert("license".into(), json!(license));
    card.insert(
        "produced_by".into(),
        json!(format!("tkre export {}", env!("CARGO_PKG_VERSION"))),
    );
    card.insert(
        "export_command".into(),
        json!(
            std::iter::once("tkre".to_string())
                .chain(std::env::args().skip(1).map(|a| publishable_path(&a)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    // A trained checkpoint records how it was made; the card keeps the settings.
    if let Some(run) = std::fs::read(model.join("pretrain.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    {
        card.insert("training".into(), publishable_paths(run["config"].clone()));
    }
    card.extend(extra_card);
    let manifest = json!({
        "format": "tkre-model",
        "version": 1,
        "name": name,
        "precision": precision.name(),
        "storage": precision.description(),
        "markers": "tkre-punctuation",
        "representation": Representation::default().name(),
        "max_length": tkre::relation_encoder::DEFAULT_MAX_LEN,
        "files": files,
        "card": card,
    });
    let path = out.join("manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(manifest)
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
    let manifest = export(
        &model,
        &args.out,
        args.precision,
        &name,
        &args.license,
        extra_card,
    )?;
    println!("{}", serde_json::to_string(&manifest)?);
    Ok(ExitCode::SUCCESS)
}

/// A path as a published model card may show it: relative to the working directory when inside
/// it, else with the home directory as `~`, else its file name; the exporter's machine (user
/// name, folders) is nobody's business. Strings that are not absolute paths pass unchanged.
pub fn publishable_path(text: &str) -> String {
    let path = Path::new(text);
    if !path.is_absolute() {
        return text.to_string();
    }
    if let Ok(rest) = std::env::current_dir().and_then(|cwd| {
        path.strip_prefix(&cwd)
            .map(Path::to_path_buf)
            .map_err(std::io::Error::other)
    }) {
        return rest.display().to_string();
    }
    if let Some(rest) =
        std::env::var_os("HOME").and_then(|home| path.strip_prefix(home).ok().map(Path::to_path_buf))
    {
        return format!("~/{}", rest.display());
    }
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
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
    fn published_cards_do_not_show_the_exporters_folders() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            publishable_path(&cwd.join("runs/a").display().to_string()),
            "runs/a"
        );
        if let Some(home) = std::env::var_os("HOME").filter(|h| !cwd.starts_with(h)) {
            let inside = Path::new(&home).join(".cache/tkre/x");
            assert_eq!(publishable_path(&inside.display().to_string()), "~/.cache/tkre/x");
        }
        assert_eq!(publishable_path("/srv/alice/secret/model"), "model");
        assert_eq!(publishable_path("relative/dir"), "relative/dir");
        let config = publishable_paths(serde_json::json!({"corpus": ["/srv/alice/c.jsonl"], "epochs": 3}));
        assert_eq!(config, serde_json::json!({"corpus": ["c.jsonl"], "epochs": 3}));
    }
}
