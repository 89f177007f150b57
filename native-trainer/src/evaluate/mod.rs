//! `tkre eval`: N-way K-shot accuracy over a FewRel-format file.
//!
//! Episodes are sampled first (fixed seed), then every instance any episode uses is encoded
//! once, then each episode's queries are classified against its prototypes.

mod episodes;
mod fewrel;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tkre::fewshot::{PrototypeClassifier, Representation};

use crate::ModelArgs;
use crate::runtime::load_encoder;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// FewRel-format JSON: {"relation_id": [{"tokens", "h", "t"}, ...]}.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Relations per episode.
    #[arg(long, default_value_t = 5)]
    n: usize,
    /// Support examples per relation.
    #[arg(long, default_value_t = 1)]
    k: usize,
    /// Query instances per relation and episode.
    #[arg(long, default_value_t = 1)]
    queries: usize,
    #[arg(long, default_value_t = 1000)]
    episodes: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Relation representation.
    #[arg(long, default_value_t = Representation::default())]
    representation: Representation,
    /// Also write the result JSON here.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
}

#[derive(Serialize)]
struct EvalReport {
    n: usize,
    k: usize,
    episodes: usize,
    accuracy: f64,
    ci95: f64,
    queries: usize,
    seed: u64,
    representation: String,
    model: String,
    data: String,
    relations: usize,
    skipped_records: usize,
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    if args.n == 0 || args.k == 0 || args.queries == 0 || args.episodes == 0 {
        bail!("--n, --k, --queries and --episodes must all be at least 1");
    }
    let data = fewrel::load(&args.data)?;
    if data.skipped > 0 {
        eprintln!(
            "warning: {} record(s) of {} skipped, e.g.:\n  {}",
            data.skipped,
            args.data.display(),
            data.skipped_examples.join("\n  ")
        );
    }
    let sizes: Vec<usize> = data.relations.iter().map(|(_, v)| v.len()).collect();
    let eligible = sizes.iter().filter(|&&s| s >= args.k + args.queries).count();
    if eligible < args.n {
        bail!(
            "{}: only {eligible} relation(s) have at least K+queries = {} instances; {}-way episodes need {}",
            args.data.display(),
            args.k + args.queries,
            args.n,
            args.n
        );
    }

    let mut encoder = load_encoder(&args.model)?;
    encoder.representation = args.representation;
    let episodes = episodes::sample_episodes(&sizes, args.n, args.k, args.queries, args.episodes, args.seed);

    // Encode each needed instance once.
    let needed: BTreeSet<(usize, usize)> = episodes
        .iter()
        .flat_map(|e| e.classes.iter())
        .flat_map(|(r, s, q)| s.iter().chain(q).map(move |&i| (*r, i)))
        .collect();
    let needed: Vec<(usize, usize)> = needed.into_iter().collect();
    let instances: Vec<_> = needed
        .iter()
        .map(|&(r, i)| data.relations[r].1[i].clone())
        .collect();
    let plan = encoder.plan_instances(&instances)?;
    let bar = progress(instances.len(), "encode");
    let vectors =
        encoder.run_plan_with_progress(&plan, args.model.batch_size, |done| bar.inc(done as u64))?;
    bar.finish_and_clear();
    let vector_of = |r: usize, i: usize| -> &Vec<f32> {
        // `needed` is sorted and holds every (r, i) an episode uses.
        let at = needed.binary_search(&(r, i)).unwrap_or_default();
        &vectors[at]
    };

    let bar = progress(episodes.len(), "episodes");
    let parts = encoder.representation.parts().len();
    let mut accuracies = Vec::with_capacity(episodes.len());
    for episode in &episodes {
        let relations = episode
            .classes
            .iter()
            .map(|(r, support, _)| {
                (
                    data.relations[*r].0.clone(),
                    support.iter().map(|&i| vector_of(*r, i).clone()).collect(),
                )
            })
            .collect();
        let classifier = PrototypeClassifier::new(relations, parts)?;
        let mut correct = 0usize;
        let mut total = 0usize;
        for (r, _, queries) in &episode.classes {
            for &i in queries {
                let prediction = classifier.classify(vector_of(*r, i))?;
                correct += usize::from(
                    prediction
                        .best()
                        .is_some_and(|b| b.relation == data.relations[*r].0),
                );
                total += 1;
            }
        }
        accuracies.push(correct as f64 / total as f64);
        bar.inc(1);
    }
    bar.finish_and_clear();

    let (accuracy, ci95) = episodes::mean_ci95(&accuracies);
    let report = EvalReport {
        n: args.n,
        k: args.k,
        episodes: args.episodes,
        accuracy,
        ci95,
        queries: args.queries,
        seed: args.seed,
        representation: args.representation.to_string(),
        model: args
            .model
            .model
            .as_ref()
            .map_or_else(|| "default".into(), |p| p.display().to_string()),
        data: args.data.display().to_string(),
        relations: data.relations.len(),
        skipped_records: data.skipped,
    };
    let line = serde_json::to_string(&report)?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{line}\n")).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}
