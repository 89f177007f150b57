//! Encoder throughput on CPU: this project's burn encoder against candle-transformers' BERT,
//! on the same checkpoint and the same token ids (FewRel sentences). One implementation per
//! process, so the peak resident memory (VmHWM) belongs to it alone; `bench/encoder.sh` runs
//! both and prints the table.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, ValueEnum, Debug)]
enum Implementation {
    /// This project on burn's ndarray backend.
    Burn,
    /// This project on burn's flex backend (gemm, SIMD, rayon).
    BurnFlex,
    /// This project's own inference path on flex, what `tkre embed` runs: each batch split
    /// into passes of similar length (`PoolingPlan::length_groups`), mean-pooled and
    /// normalised; the others run one padded pass per batch and stop at the hidden states.
    BurnFlexEmbed,
    Candle,
}

#[derive(Parser)]
struct Args {
    #[arg(long)]
    model: PathBuf,
    #[arg(long, value_enum)]
    implementation: Implementation,
    /// FewRel-format file the sentences come from.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    batch_sizes: Vec<usize>,
    /// Sentences per measurement.
    #[arg(long, default_value_t = 256)]
    sentences: usize,
}

fn fewrel_sentences(path: &PathBuf, count: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let data: std::collections::BTreeMap<String, Vec<serde_json::Value>> = serde_json::from_str(&text)?;
    // Round-robin over relations so the lengths are representative.
    let mut out = Vec::with_capacity(count);
    let lists: Vec<&Vec<serde_json::Value>> = data.values().collect();
    let mut i = 0;
    while out.len() < count {
        let record = &lists[i % lists.len()][i / lists.len()];
        let tokens: Vec<&str> = record["tokens"]
            .as_array()
            .context("tokens")?
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        out.push(tokens.join(" "));
        i += 1;
    }
    Ok(out)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

trait Runner {
    /// Runs one padded batch to completion.
    fn run(&self, ids: &[Vec<u32>]) -> Result<()>;
}

struct BurnRunner(tkre::RelationEncoder);

impl Runner for BurnRunner {
    fn run(&self, ids: &[Vec<u32>]) -> Result<()> {
        let batch = tkre::model::EncoderBatch::new(ids, self.0.tokenizer.pad_id(), &self.0.device);
        let out = self.0.model.forward(&batch).into_data();
        std::hint::black_box(out);
        Ok(())
    }
}

/// Sentence embeddings through `RelationEncoder::run_plan`, from the same token ids.
struct EmbedRunner(tkre::RelationEncoder);

impl Runner for EmbedRunner {
    fn run(&self, ids: &[Vec<u32>]) -> Result<()> {
        let plan = tkre::engine::PoolingPlan::sentence_means(ids.to_vec());
        std::hint::black_box(self.0.run_plan(&plan, ids.len())?);
        Ok(())
    }
}

struct CandleRunner {
    model: candle_transformers::models::bert::BertModel,
    device: candle_core::Device,
}

impl CandleRunner {
    fn load(dir: &PathBuf) -> Result<Self> {
        use candle_transformers::models::bert::{BertModel, Config, DTYPE};
        let device = candle_core::Device::Cpu;
        let config: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
        // SAFETY: the file is not modified while mapped.
        let vb = unsafe {
            candle_nn::VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DTYPE, &device)?
        };
        Ok(Self {
            model: BertModel::load(vb, &config)?,
            device,
        })
    }
}

impl Runner for CandleRunner {
    fn run(&self, ids: &[Vec<u32>]) -> Result<()> {
        let seq = ids.iter().map(Vec::len).max().unwrap_or(1);
        let mut flat = Vec::with_capacity(ids.len() * seq);
        let mut mask = Vec::with_capacity(ids.len() * seq);
        for s in ids {
            flat.extend(s.iter().copied());
            flat.extend(std::iter::repeat_n(0u32, seq - s.len()));
            mask.extend(std::iter::repeat_n(1u32, s.len()));
            mask.extend(std::iter::repeat_n(0u32, seq - s.len()));
        }
        let input = candle_core::Tensor::from_vec(flat, (ids.len(), seq), &self.device)?;
        let mask = candle_core::Tensor::from_vec(mask, (ids.len(), seq), &self.device)?;
        let types = input.zeros_like()?;
        let out = self.model.forward(&input, &types, Some(&mask))?;
        std::hint::black_box(out.to_vec3::<f32>()?);
        Ok(())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    #[allow(deprecated)] // ndarray: the CPU backend the CLI uses by default (see README)
    let device = match args.implementation {
        Implementation::BurnFlex | Implementation::BurnFlexEmbed => burn::tensor::Device::flex(),
        _ => burn::tensor::Device::ndarray(),
    };
    let encoder = tkre::RelationEncoder::load_dir(&args.model, device)?;
    let sentences = fewrel_sentences(&args.data, args.sentences)?;
    let ids: Vec<Vec<u32>> = sentences
        .iter()
        .map(|s| tkre::text::encode_sentence(&encoder.tokenizer, s, 256).map(|(ids, _)| ids))
        .collect::<tkre::Result<_>>()?;
    let mean_tokens = ids.iter().map(Vec::len).sum::<usize>() as f64 / ids.len() as f64;

    let runner: Box<dyn Runner> = match args.implementation {
        Implementation::Burn | Implementation::BurnFlex => Box::new(BurnRunner(encoder)),
        Implementation::BurnFlexEmbed => Box::new(EmbedRunner(encoder)),
        Implementation::Candle => Box::new(CandleRunner::load(&args.model)?),
    };
    for &batch_size in &args.batch_sizes {
        runner.run(&ids[..batch_size.min(ids.len())])?; // warm-up
        let start = Instant::now();
        for chunk in ids.chunks(batch_size) {
            runner.run(chunk)?;
        }
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({
                "implementation": match args.implementation {
                    Implementation::Burn => "burn-ndarray",
                    Implementation::BurnFlex => "burn-flex",
                    Implementation::BurnFlexEmbed => "burn-flex-embed",
                    Implementation::Candle => "candle",
                },
                "batch_size": batch_size,
                "sentences": ids.len(),
                "mean_tokens": mean_tokens,
                "seconds": seconds,
                "sentences_per_second": ids.len() as f64 / seconds,
                "peak_rss_mib": peak_rss_mib(),
            })
        );
    }
    Ok(())
}
