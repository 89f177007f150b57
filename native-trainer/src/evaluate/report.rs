//! `tkre eval --report PREFIX --row NAME=DIR ...`: accuracy of several models in several
//! settings, with each model's size and per-query latency, as PREFIX.json (the data),
//! PREFIX.md (the table) and PREFIX.svg (accuracy against download size and latency).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::fewrel::FewRelData;
use super::{EvalArgs, SettingResult, check_settings, evaluate, parse_setting, relation_texts};
use crate::runtime::load_encoder;

/// What the accuracies were measured on; rows are reused only under the same protocol.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Protocol {
    pub data: String,
    pub relations: Vec<String>,
    pub excluded_relations: Vec<String>,
    pub episodes: usize,
    pub seed: u64,
    pub queries: usize,
    pub representation: String,
    pub max_length: usize,
    /// The relation-text file (`--relation-descriptions`), when rows are also scored with it.
    #[serde(default)]
    pub relation_text: Option<String>,
}

/// Browser latencies from bench/browser.js for the same model files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrowserLatency {
    pub backend: String,
    pub query_p50_ms: f64,
    pub query_p95_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowReport {
    pub name: String,
    pub dir: String,
    /// sha256 over config.json and model.safetensors: a changed model is evaluated again.
    pub fingerprint: String,
    pub precision: String,
    /// Encoder parameters (embeddings and layers; heads and int8 scales not counted).
    pub params: u64,
    /// config.json + model.safetensors + tokenizer.json.
    pub download_bytes: u64,
    pub native_query_p50_ms: f64,
    pub native_query_p95_ms: f64,
    #[serde(default)]
    pub browser: Vec<BrowserLatency>,
    pub results: Vec<SettingResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccuracyReport {
    pub protocol: Protocol,
    pub machine: String,
    pub command: String,
    pub rows: Vec<RowReport>,
    #[serde(default)]
    pub references: Vec<serde_json::Value>,
}

/// (parameters, precision) from `dir`'s model.safetensors (`weights`) and manifest, if any.
fn describe_weights(dir: &Path, weights: &[u8]) -> Result<(u64, String)> {
    use tkre::checkpoint::names;
    let origin = dir.join("model.safetensors").display().to_string();
    let file = safetensors::SafeTensors::deserialize(weights).with_context(|| format!("reading {origin}"))?;
    // A packed tensor's stored shape counts bytes; its layout gives the values per row.
    let packed = tkre::checkpoint::packing::packed_layouts(&file, weights, &origin)?;
    let mut params = 0u64;
    let mut dtypes = std::collections::BTreeMap::<String, u64>::new();
    for (name, view) in file.tensors() {
        let bare = names::encoder_name(&name);
        if !names::is_encoder_tensor(bare) || bare.ends_with(names::INT8_SCALE_SUFFIX) {
            continue;
        }
        let count = match packed.get(&name) {
            Some(layout) => (view.shape()[0] * layout.cols) as u64,
            None => view.shape().iter().product::<usize>() as u64,
        };
        params += count;
        *dtypes
            .entry(format!("{:?}", view.dtype()).to_lowercase())
            .or_default() += count;
    }
    let manifest = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let precision = match manifest.as_ref().and_then(|m| m["precision"].as_str()) {
        Some(p) => p.to_string(),
        None => {
            let main = dtypes
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(d, _)| d.clone())
                .unwrap_or_default();
            format!("{main} checkpoint")
        }
    };
    Ok((params, precision))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at]
}

/// Per-query latency at batch 1 on this machine's CPU: 40 instances drawn round-robin over
/// the relations, after 3 warm-up queries.
fn native_latency(encoder: &tkre::RelationEncoder, data: &FewRelData) -> Result<(f64, f64)> {
    let mut picked = Vec::new();
    for i in 0..43 {
        let (_, instances) = &data.relations[i % data.relations.len()];
        if let Some(x) = instances.get(i / data.relations.len()) {
            picked.push(x.clone());
        }
    }
    let mut times = Vec::new();
    for (i, instance) in picked.iter().enumerate() {
        let started = Instant::now();
        encoder.encode_instances(std::slice::from_ref(instance), 1)?;
        if i >= 3 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((percentile(&times, 0.5), percentile(&times, 0.95)))
}

/// The browser latencies of the benchmarks (bench/browser.js JSON) that measured this model:
/// the same model.safetensors sha256 (or, for a benchmark that does not record it, the same
/// download size).
fn browser_latencies(
    benches: &[PathBuf],
    weights_sha256: &str,
    download_bytes: u64,
) -> Result<Vec<BrowserLatency>> {
    let mut found = Vec::new();
    for path in benches {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let bench: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let same = match bench["model_sha256"].as_str() {
            Some(sha) => sha == weights_sha256,
            None => bench["model_bytes"].as_u64() == Some(download_bytes),
        };
        if !same {
            continue;
        }
        found.extend(bench["rows"].as_array().into_iter().flatten().filter_map(|row| {
            Some(BrowserLatency {
                backend: row["backend"].as_str()?.to_string(),
                query_p50_ms: row["query_p50_ms"].as_f64()?,
                query_p95_ms: row["query_p95_ms"].as_f64(),
            })
        }));
    }
    Ok(found)
}

fn parse_row(text: &str) -> Result<(String, PathBuf)> {
    // At the last "=": names may hold one, paths seldom do.
    match text.rsplit_once('=') {
        Some((name, dir)) if !name.trim().is_empty() && !dir.trim().is_empty() => {
            Ok((name.trim().to_string(), PathBuf::from(dir.trim())))
        }
        _ => bail!("--row {text:?}: expected NAME=DIR, e.g. --row \"base MiniLM-L6=models/base\""),
    }
}

pub fn run(args: &EvalArgs, data: &FewRelData) -> Result<ExitCode> {
    let prefix = args.report.clone().expect("report mode");
    if args.rows.is_empty() {
        bail!("--report needs at least one --row NAME=DIR");
    }
    let rows: Vec<(String, PathBuf)> = args.rows.iter().map(|r| parse_row(r)).collect::<Result<_>>()?;
    let settings: Vec<(usize, usize)> = args
        .settings
        .iter()
        .map(|s| parse_setting(s))
        .collect::<Result<_>>()?;
    check_settings(data, &settings, args.queries, &args.data.display().to_string())?;
    let texts = relation_texts(args, data, settings.iter().any(|&(_, k)| k == 0))?;
    // The results each row has: per setting, without text (K > 0) and with it (given a file).
    let expected: Vec<(usize, usize, bool)> = settings
        .iter()
        .flat_map(|&(n, k)| [(n, k, false), (n, k, true)])
        .filter(|&(_, k, text)| if text { texts.is_some() } else { k > 0 })
        .collect();
    let references: Vec<serde_json::Value> = match &args.references {
        Some(path) => serde_json::from_str(
            &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{}: expected a JSON array of reference rows", path.display()))?,
        None => Vec::new(),
    };
    let protocol = Protocol {
        data: crate::output::publishable_path(&args.data),
        relations: data.relations.iter().map(|(r, _)| r.clone()).collect(),
        excluded_relations: args.exclude_relations.clone(),
        episodes: args.episodes,
        seed: args.seed,
        queries: args.queries,
        representation: args.representation.to_string(),
        max_length: args
            .model
            .max_length
            .unwrap_or(tkre::relation_encoder::DEFAULT_MAX_LEN),
        relation_text: args
            .relation_descriptions
            .as_ref()
            .map(crate::output::publishable_path),
    };
    let json_path = prefix.with_extension("json");
    let previous: Vec<RowReport> = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|t| serde_json::from_str::<AccuracyReport>(&t).ok())
        .filter(|r| r.protocol == protocol)
        .map(|r| r.rows)
        .unwrap_or_default();
    let mut report = AccuracyReport {
        protocol,
        machine: format!(
            "native CPU: {} threads, engine {} ({} {})",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            args.model.engine,
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
        command: crate::output::publishable_command(),
        rows: Vec::new(),
        references,
    };
    if let Some(parent) = prefix.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }

    for (name, dir) in rows {
        // The weights are read once here for the fingerprint, the parameter count and the
        // browser benchmark match.
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
        };
        let (config, weights) = (read("config.json")?, read("model.safetensors")?);
        let fingerprint = tkre::checkpoint::manifest::sha256_hex_of(&[&config, &weights]);
        // The same model files under the same protocol: reuse (under the new name, if renamed).
        let cached = previous.iter().find(|r| {
            r.fingerprint == fingerprint
                && r.results
                    .iter()
                    .map(|s| (s.n, s.k, s.relation_text))
                    .collect::<Vec<_>>()
                    == expected
        });
        let mut model_args = args.model.clone();
        model_args.model = Some(dir.clone());
        let encoder = load_encoder(&model_args)?;
        encoder.set_representation(args.representation);
        let results = match cached {
            Some(row) => {
                eprintln!("{name}: accuracy unchanged since {}, reused", json_path.display());
                row.results.clone()
            }
            None => {
                eprintln!("{name}: {}", dir.display());
                evaluate(
                    &encoder,
                    data,
                    &settings,
                    args.queries,
                    args.episodes,
                    args.seed,
                    args.model.batch_size,
                    texts.as_deref(),
                    None,
                    true,
                )?
            }
        };
        // Latency is measured on every run (it takes seconds), so the last run on an idle
        // machine gives the table its timings.
        let (p50, p95) = native_latency(&encoder, data)?;
        let (params, precision) = describe_weights(&dir, &weights)?;
        let download_bytes = ["config.json", "model.safetensors", "tokenizer.json"]
            .iter()
            .map(|f| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len()))
            .sum();
        let browser = browser_latencies(
            &args.browser_bench,
            &tkre::checkpoint::manifest::sha256_hex(&weights),
            download_bytes,
        )?;
        let row = RowReport {
            name: name.clone(),
            dir: crate::output::publishable_path(&dir),
            fingerprint,
            precision,
            params,
            download_bytes,
            native_query_p50_ms: p50,
            native_query_p95_ms: p95,
            browser,
            results,
        };
        eprintln!(
            "{name}: {}",
            row.results
                .iter()
                .map(|r| format!(
                    "{}-{}{} {:.2}",
                    r.n,
                    r.k,
                    if r.relation_text { "+text" } else { "" },
                    100.0 * r.accuracy
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        report.rows.push(row);
        // Saved after every row: an interrupted report resumes from here.
        std::fs::write(&json_path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", json_path.display()))?;
    }

    let md_path = prefix.with_extension("md");
    std::fs::write(&md_path, markdown(&report, &settings))
        .with_context(|| format!("writing {}", md_path.display()))?;
    let svg_path = prefix.with_extension("svg");
    super::plot::accuracy_plot(&report, &settings, &svg_path)?;
    eprintln!(
        "wrote {}, {} and {}",
        json_path.display(),
        md_path.display(),
        svg_path.display()
    );
    print!("{}", markdown(&report, &settings));
    Ok(ExitCode::SUCCESS)
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub fn markdown(report: &AccuracyReport, settings: &[(usize, usize)]) -> String {
    let p = &report.protocol;
    let mut out = String::new();
    let setting_names: Vec<String> = settings
        .iter()
        .map(|(n, k)| format!("{n}-way {k}-shot"))
        .collect();
    out += &format!(
        "Accuracy (%) with 95% interval on `{}`: {} episodes per setting, seed {}, {} quer{} per \
         relation, representation `{}`, max length {}.\n\n",
        p.data,
        p.episodes,
        p.seed,
        p.queries,
        if p.queries == 1 { "y" } else { "ies" },
        p.representation,
        p.max_length
    );
    if let Some(file) = &p.relation_text {
        out += &format!(
            "Rows marked \"+ relation text\" use relation names and descriptions: each relation's text \
             from `{file}` is fused into its prototype (as one more example; K = 0 is the text alone), \
             on the same episodes as the row above them.\n\n"
        );
    }
    out += &format!(
        "Relations evaluated ({}): {}. Excluded (used in training): {}.\n\n",
        p.relations.len(),
        p.relations.join(", "),
        if p.excluded_relations.is_empty() {
            "none".to_string()
        } else {
            p.excluded_relations.join(", ")
        }
    );
    out += &format!(
        "| model | precision | parameters | download | native ms/query (p50) | browser ms/query (p50) | {} |\n",
        setting_names.join(" | ")
    );
    out += &format!("|---|---|---|---|---|---|{}\n", "---|".repeat(settings.len()));
    // With relation text, each model has two lines on the same episodes: examples alone, and
    // examples with the relations' names and descriptions (marked as such).
    let variants: &[bool] = if p.relation_text.is_some() {
        &[false, true]
    } else {
        &[false]
    };
    for row in &report.rows {
        let browser = if row.browser.is_empty() {
            "-".to_string()
        } else {
            row.browser
                .iter()
                .map(|b| format!("{} {:.1}", b.backend, b.query_p50_ms))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for &with_text in variants {
            let cells: Vec<String> = settings
                .iter()
                .map(|&(n, k)| {
                    row.results
                        .iter()
                        .find(|r| r.n == n && r.k == k && r.relation_text == with_text)
                        .map_or("-".into(), |r| {
                            format!("{:.2} ± {:.2}", 100.0 * r.accuracy, 100.0 * r.ci95)
                        })
                })
                .collect();
            let name = if with_text {
                format!("{} + relation text", row.name)
            } else {
                row.name.clone()
            };
            out += &format!(
                "| {} | {} | {:.1} M | {} | {:.1} | {} | {} |\n",
                name,
                row.precision,
                row.params as f64 / 1e6,
                megabytes(row.download_bytes),
                row.native_query_p50_ms,
                browser,
                cells.join(" | ")
            );
        }
    }
    if !report.references.is_empty() {
        out += &format!(
            "\nPublished results (other encoders and training, from their papers; not run here):\n\n\
             | model | split | {} | source |\n|---|---|{}---|\n",
            setting_names.join(" | "),
            "---|".repeat(settings.len())
        );
        for r in &report.references {
            let cells: Vec<String> = settings
                .iter()
                .map(|(n, k)| {
                    r[format!("{n}-{k}")]
                        .as_f64()
                        .map_or("-".into(), |v| format!("{v:.2}"))
                })
                .collect();
            out += &format!(
                "| {} | {} | {} | {} |\n",
                r["model"].as_str().unwrap_or("?"),
                r["split"].as_str().unwrap_or("?"),
                cells.join(" | "),
                r["source"].as_str().unwrap_or("")
            );
        }
    }
    out += &format!("\nMachine: {}. Command: `{}`\n", report.machine, report.command);
    out
}
