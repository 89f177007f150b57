//! `tkre calibrate`: fits a model's score calibration (softmax temperature and recommended
//! none-of-the-above threshold, `tkre::fewshot::calibration`) on labelled relations held out of
//! its training, stores it in the model's manifest, and measures how well it holds on other
//! data (expected calibration error and a reliability diagram).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use tkre::checkpoint::Manifest;
use tkre::fewshot::calibration::{self, Calibration, Reliability, ScoredQuery};
use tkre::fewshot::classifier::DEFAULT_TEMPERATURE;
use tkre_trainer::evaluation::{calibration::scored_queries, fewrel, relation_text};

use crate::ModelArgs;
use crate::runtime::{load_encoder, model_dir};

#[derive(Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled data to fit on: relations the model was not trained on and that you will not
    /// report on (FewRel format, or a corpus file with relation labels, e.g. a development
    /// split).
    #[arg(long, value_name = "FILE")]
    fit: Option<PathBuf>,
    /// Store the fitted calibration in the model directory's manifest.json (an exported
    /// model; its files are unchanged).
    #[arg(long, requires = "fit")]
    save: bool,
    /// Labelled data to measure the calibration on (e.g. FewRel 1.0 val): the fitted one, or
    /// the one in the model's manifest, against the uncalibrated scores.
    #[arg(long, value_name = "FILE")]
    evaluate: Option<PathBuf>,
    /// Write the measurement to PREFIX.md, PREFIX.json and PREFIX.svg (reliability diagram).
    #[arg(long, value_name = "PREFIX", requires = "evaluate")]
    report: Option<PathBuf>,
    /// Relations per episode.
    #[arg(long, default_value_t = 5)]
    n: usize,
    /// Relations outside each episode, one query each, whose answer is "no relation" [default:
    /// N, so half the queries: FewRel 2.0's 50% none-of-the-above setting].
    #[arg(long)]
    outside: Option<usize>,
    /// Support examples per relation.
    #[arg(long, default_value_t = 1)]
    k: usize,
    /// Episodes sampled, for fitting and for measuring each.
    #[arg(long, default_value_t = 1000)]
    episodes: usize,
    /// Seed of the episode sampler.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Relation text (pid2name.json's shape or {"label": "text"}): episodes are scored without
    /// and with it fused into the prototypes, so the calibration fits both uses.
    #[arg(long, value_name = "FILE")]
    relation_descriptions: Option<PathBuf>,
}

#[derive(Serialize)]
struct Measurement {
    data: String,
    queries: usize,
    none_of_the_above_share: f64,
    calibration: Calibration,
    calibrated: Reliability,
    /// The scores without calibration: softmax at the default temperature, no "no relation".
    uncalibrated: Reliability,
}

const BINS: usize = 10;

pub fn run(args: CalibrateArgs) -> Result<ExitCode> {
    if args.fit.is_none() && args.evaluate.is_none() {
        bail!("give --fit FILE (fit a calibration), --evaluate FILE (measure one), or both");
    }
    let encoder = load_encoder(&args.model)?;
    let model_dir = model_dir(&args.model);
    // Before minutes of fitting: the calibration must have somewhere to go.
    if args.save && !model_dir.join("manifest.json").is_file() {
        bail!(
            "{} has no manifest.json: a calibration is stored in an exported model's manifest; \
             export the model with `tkre export` first",
            model_dir.display()
        );
    }
    let queries_of = |path: &Path| -> Result<Vec<ScoredQuery>> {
        let data = fewrel::load_labelled(path)?;
        let texts = match &args.relation_descriptions {
            Some(file) => {
                let ids: Vec<String> = data.relations.iter().map(|(r, _)| r.clone()).collect();
                Some(relation_text::for_relations(
                    &relation_text::load(file)?,
                    &ids,
                    false,
                    &file.display().to_string(),
                )?)
            }
            None => None,
        };
        scored_queries(
            &encoder,
            &data,
            args.n,
            args.k,
            args.outside.unwrap_or(args.n),
            args.episodes,
            args.seed,
            args.model.batch_size,
            texts.as_deref(),
            true,
        )
        .with_context(|| path.display().to_string())
    };

    let calibration = match &args.fit {
        Some(path) => {
            let queries = queries_of(path)?;
            let fitted_on = format!(
                "{}: {} {}-way {}-shot episodes (seed {}), each with queries of {} relations outside it{}",
                path.display(),
                args.episodes,
                args.n,
                args.k,
                args.seed,
                args.outside.unwrap_or(args.n),
                if args.relation_descriptions.is_some() {
                    ", scored without and with relation text"
                } else {
                    ""
                }
            );
            let fitted = calibration::fit(&queries, fitted_on)?;
            eprintln!(
                "fitted on {} queries: temperature {:.4}, none-of-the-above threshold {:.4}",
                queries.len(),
                fitted.temperature,
                fitted.none_similarity
            );
            if args.save {
                save(&model_dir, &fitted)?;
            }
            fitted
        }
        None => encoder.calibration().with_context(|| {
            format!(
                "{} has no calibration in its manifest; fit one with --fit FILE",
                model_dir.display()
            )
        })?,
    };
    println!("{}", serde_json::to_string(&calibration)?);

    if let Some(path) = &args.evaluate {
        let queries = queries_of(path)?;
        let measurement = Measurement {
            data: path.display().to_string(),
            queries: queries.len(),
            none_of_the_above_share: queries.iter().filter(|q| q.target.is_none()).count() as f64
                / queries.len().max(1) as f64,
            calibrated: calibration::reliability(
                &queries,
                calibration.temperature,
                Some(calibration.none_similarity),
                BINS,
            ),
            uncalibrated: calibration::reliability(&queries, DEFAULT_TEMPERATURE, None, BINS),
            calibration,
        };
        let table = markdown(&measurement, &args);
        print!("{table}");
        if let Some(prefix) = &args.report {
            let with = |ext: &str| PathBuf::from(format!("{}.{ext}", prefix.display()));
            std::fs::write(with("json"), serde_json::to_string_pretty(&measurement)? + "\n")?;
            std::fs::write(with("md"), &table)?;
            std::fs::write(with("svg"), diagram(&measurement))?;
            eprintln!("wrote {}.{{md,json,svg}}", prefix.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `calibration` into `dir/manifest.json`, keeping every other field.
fn save(dir: &Path, calibration: &Calibration) -> Result<()> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut manifest = Manifest::parse(&text, &path.display().to_string())?;
    manifest.calibration = Some(calibration.clone());
    let written = serde_json::to_string_pretty(&manifest)? + "\n";
    Manifest::parse(&written, "the calibrated manifest")?;
    std::fs::write(&path, written).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("stored in {}", path.display());
    Ok(())
}

fn markdown(m: &Measurement, args: &CalibrateArgs) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Calibration on `{}`: {} queries from {} {}-way {}-shot episodes (seed {}), {:.0}% of them of a relation \
         outside the episode (answer: no relation){}.\n",
        m.data,
        m.queries,
        args.episodes,
        args.n,
        args.k,
        args.seed,
        100.0 * m.none_of_the_above_share,
        if args.relation_descriptions.is_some() {
            "; every episode scored without and with relation text"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "| scores | ECE | accuracy (no relation included) | negative log-likelihood |\n|---|---|---|---|"
    );
    let row = |name: &str, r: &Reliability| {
        format!(
            "| {name} | {:.3} | {:.1}% | {:.3} |\n",
            r.ece,
            100.0 * r.accuracy,
            r.negative_log_likelihood
        )
    };
    out += &row(
        &format!("uncalibrated (temperature {DEFAULT_TEMPERATURE}, no threshold)"),
        &m.uncalibrated,
    );
    out += &row(
        &format!(
            "calibrated (temperature {:.4}, threshold {:.4})",
            m.calibration.temperature, m.calibration.none_similarity
        ),
        &m.calibrated,
    );
    let _ = writeln!(
        out,
        "\nCalibration fitted on: {}.\n\nReliability (calibrated): top probability bin, queries, mean probability, accuracy.\n\n| bin | queries | probability | accuracy |\n|---|---|---|---|",
        m.calibration.fitted_on
    );
    for b in m.calibrated.bins.iter().filter(|b| b.count > 0) {
        let _ = writeln!(
            out,
            "| {:.1}-{:.1} | {} | {:.3} | {:.3} |",
            b.low, b.high, b.count, b.confidence, b.accuracy
        );
    }
    out
}

/// A reliability diagram: accuracy against mean top probability per bin, both score kinds,
/// with the diagonal of perfect calibration.
fn diagram(m: &Measurement) -> String {
    let (size, pad) = (360.0, 40.0);
    let x = |p: f64| pad + p * size;
    let y = |p: f64| pad + (1.0 - p) * size;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#999"/>
<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#bbb" stroke-dasharray="4 4"/>
<text x="{pad}" y="{bottom}">mean top probability per bin</text>
<text x="4" y="{pad_text}">accuracy</text>
"##,
        w = size + 2.0 * pad + 200.0,
        h = size + 2.0 * pad + 10.0,
        x0 = x(0.0),
        y0 = y(0.0),
        x1 = x(1.0),
        y1 = y(1.0),
        bottom = size + 2.0 * pad,
        pad_text = pad - 8.0,
    );
    for (name, reliability, colour) in [
        ("uncalibrated", &m.uncalibrated, "#d62728"),
        ("calibrated", &m.calibrated, "#1f77b4"),
    ] {
        let points: Vec<String> = reliability
            .bins
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| format!("{:.1},{:.1}", x(b.confidence), y(b.accuracy)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            points.join(" ")
        );
        for point in &points {
            let (px, py) = point.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(svg, r#"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"#);
        }
        let legend_y = if name == "calibrated" {
            pad + 20.0
        } else {
            pad + 40.0
        };
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{legend_y}" fill="{colour}">{name}: ECE {:.3}</text>"#,
            size + pad + 15.0,
            reliability.ece
        );
    }
    svg + "</svg>\n"
}
