//! Soak run of the library as the browser binding drives it: 10,000 classifications and 1,000
//! support-set edits (an example added, then removed) on the fused CPU pass, with resident
//! memory read at the start, after warm-up and at the end. Prints a table and writes
//! reports/soak-native.json. Not a test: memory targets belong in a benchmark.
//!   cargo run --example soak [-- CLASSIFY EDITS]   (dev profile: dependencies and this crate's
//!   numeric code are optimised; see Cargo.toml)

use std::time::Instant;

use tkre::RelationEncoder;
use tkre::fewshot::SupportSet;
use tkre::text::RelationInstance;

/// Resident set size of this process, from /proc (Linux).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (classifications, edits) = (
        args.first().copied().unwrap_or(10_000),
        args.get(1).copied().unwrap_or(1_000),
    );
    let model = std::env::var_os("TKRE_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("models/default"));
    let encoder = RelationEncoder::load_dir(&model, tkre::EngineRequest::Cpu)?;
    let support = SupportSet::from_json(
        &std::fs::read_to_string("examples/support_set.json")?,
        "examples/support_set.json",
    )?;
    let mut set = encoder.encode_support_set(support.parse()?, 16)?;
    let parts = encoder.representation().parts().len();
    let queries: Vec<RelationInstance> = std::fs::read_to_string("examples/queries.txt")?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(RelationInstance::from_marked)
        .collect::<Result<_, _>>()?;
    let extra = "[E1]Ada Lovelace[/E1] worked with [E2]Charles Babbage[/E2] on the Analytical Engine.";
    let extra_instance = RelationInstance::from_marked(extra)?;
    let relation = set.summaries()[0].key.clone();

    let start = rss_bytes();
    let started = Instant::now();
    let mut errors = 0usize;
    let mut warm = None;
    for i in 0..classifications {
        let query = &queries[i % queries.len()];
        let result = encoder
            .encode_instances(std::slice::from_ref(query), 1)
            .and_then(|v| set.classifier(parts, true)?.classify(&v[0]));
        errors += usize::from(result.is_err());
        if i + 1 == 100 {
            warm = rss_bytes();
        }
        if i % (classifications / edits.max(1)).max(1) == 0
            && i / (classifications / edits.max(1)).max(1) < edits
        {
            let vector = encoder.encode_instances(std::slice::from_ref(&extra_instance), 1)?;
            let added = set.add_examples(&relation, vec![((&extra_instance).into(), vector[0].clone())]);
            errors += usize::from(added.is_err());
            let count = set.summaries()[0].examples;
            errors += usize::from(set.remove_example(&relation, count - 1).is_err());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let end = rss_bytes();
    let mib = |b: Option<u64>| b.map(|b| b as f64 / (1 << 20) as f64);
    println!("| classifications | edits | errors | seconds | RSS start MiB | after 100 MiB | end MiB |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {classifications} | {edits} | {errors} | {seconds:.1} | {:.1} | {:.1} | {:.1} |",
        mib(start).unwrap_or(f64::NAN),
        mib(warm).unwrap_or(f64::NAN),
        mib(end).unwrap_or(f64::NAN)
    );
    std::fs::create_dir_all("reports")?;
    std::fs::write(
        "reports/soak-native.json",
        serde_json::to_string_pretty(&serde_json::json!({
            "command": "cargo run --example soak",
            "model": model.display().to_string().replace(&std::env::var("HOME").unwrap_or_default(), "~"),
            "classifications": classifications,
            "edits": edits,
            "errors": errors,
            "seconds": seconds,
            "rss_start_bytes": start,
            "rss_after_100_bytes": warm,
            "rss_end_bytes": end,
        }))? + "\n",
    )?;
    if errors > 0 {
        return Err(format!("{errors} errors").into());
    }
    Ok(())
}
