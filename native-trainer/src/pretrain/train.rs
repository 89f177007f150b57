//! The training loop: data preparation, batches, AdamW steps with a linear schedule and
//! global gradient clipping, JSON-lines metrics, checkpoints and resume.
//!
//! Reproducibility is what makes `--resume` exact: the data order of epoch `e` is a shuffle
//! seeded by `(seed, e)`, and the masking, negative spans and dropout of step `s` are seeded
//! by `(seed, s)`. A resumed run therefore replays exactly the batches the interrupted run
//! would have seen, from the model and AdamW state saved at its last checkpoint.
//!
//! Output directory:
//! ```text
//! OUT/config.json, model.safetensors, tokenizer.json   the result (BERT layout, at the end)
//! OUT/pretrain.json                                     settings, schema, data report
//! OUT/metrics.jsonl                                     one line per step
//! OUT/checkpoints/step-NNNNNNN/{model.bpk, optimizer.bpk, state.json}
//! OUT/checkpoints/latest                                name of the newest checkpoint
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::{ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn_store::{
    BurnToPyTorchAdapter, BurnpackStore, KeyRemapper, ModuleSnapshot, PathFilter, SafetensorsStore,
};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tkre::fewshot::Representation;
use tkre::model::BertModel;
use tkre::model::{EncoderBatch, EncoderConfig};
use tkre::text::{EncodedInstance, TextTokenizer, encode_instance};

use super::config::{PretrainConfig, Stage};
use super::corpus::{CorpusReport, PretrainRecord, load_files};
use super::masking::{MaskProbabilities, MaskedInstance, TokenRole, mask_instance, token_roles};
use super::model::{LossWeights, PretrainBatch, PretrainModel, RelationBatch, clip_global_norm};
use crate::evaluation::{self, fewrel::FewRelData};

/// A corpus record ready for batching.
#[derive(Debug, Clone)]
pub struct PreparedRecord {
    pub encoded: EncodedInstance,
    pub roles: Vec<TokenRole>,
    /// Anchor index in stage 2; `None` for records used for MSLM only.
    pub relation: Option<usize>,
}

/// What preparation found, for the report and `pretrain.json`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DataSummary {
    pub records: usize,
    pub tokens: usize,
    pub truncated: usize,
    /// Sentences whose entities are adjacent: no relation span, so no 0.8-masked tokens and
    /// no SCL positive. They are kept for MSLM; SCL leaves them out (weight 0).
    pub no_relation_span: usize,
    /// Stage 2: records with a relation in the schema (the rest train MSLM only).
    pub with_relation: usize,
    pub skipped: BTreeMap<String, usize>,
}

/// Tokenizes and marks every record; a record that cannot be encoded, or whose relation is
/// not in the schema, is reported and skipped.
pub fn prepare(
    records: &[PretrainRecord],
    tokenizer: &TextTokenizer,
    max_length: usize,
    schema: Option<&[String]>,
    report: &mut CorpusReport,
) -> (Vec<PreparedRecord>, DataSummary) {
    let mut summary = DataSummary::default();
    let mut prepared = Vec::with_capacity(records.len());
    for record in records {
        let relation = match (schema, &record.relation) {
            (Some(schema), Some(label)) => match schema.iter().position(|r| r == label) {
                Some(index) => Some(index),
                None => {
                    report.skip("relation not in the stage-2 schema", || {
                        format!("{label:?} ({})", record.instance.to_marked())
                    });
                    continue;
                }
            },
            _ => None,
        };
        let encoded = match encode_instance(tokenizer, &record.instance, max_length) {
            Ok(encoded) => encoded,
            Err(e) => {
                report.skip("cannot be encoded", || format!("{e}"));
                continue;
            }
        };
        let roles = token_roles(&encoded);
        summary.tokens += encoded.ids.len();
        summary.truncated += usize::from(encoded.truncated);
        if !roles.contains(&TokenRole::Relation) {
            summary.no_relation_span += 1;
        }
        summary.with_relation += usize::from(relation.is_some());
        prepared.push(PreparedRecord {
            encoded,
            roles,
            relation,
        });
    }
    summary.records = prepared.len();
    summary.skipped = report.skipped.iter().map(|(k, (n, _))| (k.clone(), *n)).collect();
    (prepared, summary)
}

/// A seed for one purpose at one step, mixed so nearby steps get unrelated streams.
fn mixed_seed(seed: u64, stream: u64, index: u64) -> u64 {
    let mut x = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 29)
}

/// The order of the records in `epoch`.
pub fn epoch_order(records: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..records).collect();
    order.shuffle(&mut StdRng::seed_from_u64(mixed_seed(seed, 1, epoch as u64)));
    order
}

/// Masks the records at `indices` for `step`. The draws depend only on the step and the
/// records, so splitting the batch over devices afterwards does not change them.
pub fn mask_batch(
    records: &[PreparedRecord],
    indices: &[usize],
    config: &PretrainConfig,
    mask_id: u32,
    step: usize,
) -> Vec<MaskedInstance> {
    let mut rng = StdRng::seed_from_u64(mixed_seed(config.seed, 2, step as u64));
    // Distillation reads unmasked sentences, as the classifier does.
    let none = MaskProbabilities {
        relation: 0.0,
        entity: 0.0,
        other: 0.0,
    };
    let probabilities = match config.stage {
        Stage::Distill => none,
        // The relation stage masks for MSLM only when MSLM is on; it blanks entities below.
        Stage::Relation if config.mslm_weight <= 0.0 => none,
        _ => config.mask,
    };
    let blank = if config.stage == Stage::Relation {
        config.blank_probability
    } else {
        0.0
    };
    indices
        .iter()
        .map(|&i| {
            let record = &records[i];
            let mut masked = mask_instance(&record.encoded, &record.roles, &probabilities, mask_id, &mut rng);
            for entity in [record.encoded.head.clone(), record.encoded.tail.clone()] {
                if blank > 0.0 && rng.random_bool(blank) {
                    for id in &mut masked.input_ids[entity] {
                        *id = mask_id;
                    }
                }
            }
            masked
        })
        .collect()
}

/// The relation stage's batches for `epoch`: each relation's records shuffled and cut into
/// groups of `per_relation` (a last group of one joins the one before it, so every record
/// has a positive), the groups shuffled and packed into batches of about `batch_size` rows.
/// Records without a relation are left out.
pub fn relation_batches(
    records: &[PreparedRecord],
    seed: u64,
    epoch: usize,
    batch_size: usize,
    per_relation: usize,
) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(mixed_seed(seed, 5, epoch as u64));
    let mut by_relation: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, record) in records.iter().enumerate() {
        if let Some(relation) = record.relation {
            by_relation.entry(relation).or_default().push(i);
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for members in by_relation.values_mut() {
        members.shuffle(&mut rng);
        let mut chunks: Vec<Vec<usize>> = members.chunks(per_relation).map(<[usize]>::to_vec).collect();
        if chunks.len() > 1 && chunks.last().is_some_and(|c| c.len() == 1) {
            let last = chunks.pop().unwrap_or_default();
            if let Some(previous) = chunks.last_mut() {
                previous.extend(last);
            }
        }
        groups.extend(chunks);
    }
    groups.shuffle(&mut rng);
    let per_batch = (batch_size / per_relation).max(2);
    groups.chunks(per_batch).map(|c| c.concat()).collect()
}

/// Token ids of each schema relation's text (`relation_text` in the config), for the
/// relation stage; `None` for relations without text (and for every relation in other
/// stages).
pub fn relation_text_ids(
    config: &PretrainConfig,
    schema: &[String],
    tokenizer: &TextTokenizer,
) -> Result<Vec<Option<Vec<u32>>>> {
    let Some(texts) = relation_texts(config, schema)? else {
        return Ok(vec![None; schema.len()]);
    };
    texts
        .iter()
        .map(|text| {
            text.as_ref()
                .map(|t| tkre::text::encode_sentence(tokenizer, t, config.max_length).map(|(ids, _)| ids))
                .transpose()
                .map_err(anyhow::Error::from)
        })
        .collect()
}

/// The text ("name: description") of each relation in `labels` from `relation_text`.
fn relation_texts(config: &PretrainConfig, labels: &[String]) -> Result<Option<Vec<Option<String>>>> {
    let Some(path) = config
        .relation_text
        .as_ref()
        .filter(|_| config.stage == Stage::Relation)
    else {
        return Ok(None);
    };
    let texts = evaluation::relation_text::load(path)?;
    Ok(Some(
        labels
            .iter()
            .map(|label| texts.get(label).and_then(tkre::fewshot::RelationText::sentence))
            .collect(),
    ))
}

/// Development data: relations held out of training, evaluated N-way K-shot.
pub struct DevSet {
    pub data: FewRelData,
    pub texts: Option<Vec<Option<String>>>,
}

/// Loads the development corpus (any corpus form with relation labels). Its relations must
/// be held out of training: one that is also in `schema` is an error.
pub fn load_dev(config: &PretrainConfig, path: &Path, schema: &[String]) -> Result<DevSet> {
    let mut data = evaluation::fewrel::load_labelled(path)?;
    if let Some((shared, _)) = data.relations.iter().find(|(r, _)| schema.contains(r)) {
        bail!(
            "{}: relation {shared:?} is also in the training corpus; development relations must be held out of training",
            path.display()
        );
    }
    data.relations.retain(|(_, v)| v.len() >= 2);
    if data.relations.len() < 5 {
        bail!(
            "{}: {} relation(s) have at least 2 instances; development episodes (5-way 1-shot) need 5",
            path.display(),
            data.relations.len()
        );
    }
    let labels: Vec<String> = data.relations.iter().map(|(r, _)| r.clone()).collect();
    let texts = relation_texts(config, &labels)?;
    Ok(DevSet { data, texts })
}

/// What a batch needs beyond masked token ids.
#[derive(Clone, Copy)]
pub struct BatchNeeds<'a> {
    /// The classifier's pooling weights (distillation, the relation stage).
    pub pooling: bool,
    /// The relation stage: labels, positives and each schema relation's text ids.
    pub relation_texts: Option<&'a [Option<Vec<u32>>]>,
}

/// The tensors of the rows `indices` (masked as `masked`, one per index) on `device`.
pub fn batch_tensors(
    records: &[PreparedRecord],
    indices: &[usize],
    masked: &[MaskedInstance],
    pad_id: u32,
    needs: BatchNeeds<'_>,
    device: &Device,
) -> PretrainBatch {
    let sequences: Vec<Vec<u32>> = masked.iter().map(|m| m.input_ids.clone()).collect();
    let encoder = EncoderBatch::new(&sequences, pad_id, device);
    let [batch, seq] = encoder.attention_mask.dims();

    let mut positions = Vec::new();
    let mut targets = Vec::new();
    let mut positive = vec![0f32; batch * seq];
    let mut negative = vec![0f32; batch * seq];
    let mut relations = vec![0i64; batch];
    let mut weights = vec![0f32; batch];
    for (row, (m, &i)) in masked.iter().zip(indices).enumerate() {
        for &(position, id) in &m.targets {
            positions.push((row * seq + position) as i64);
            targets.push(id as i64);
        }
        if let (Some(relation), false, false) =
            (records[i].relation, m.positive.is_empty(), m.negative.is_empty())
        {
            for &p in &m.positive {
                positive[row * seq + p] = 1.0 / m.positive.len() as f32;
            }
            for &p in &m.negative {
                negative[row * seq + p] = 1.0 / m.negative.len() as f32;
            }
            relations[row] = relation as i64;
            weights[row] = 1.0;
        }
    }
    let n_masked = positions.len();
    let scl_samples = weights.iter().filter(|w| **w > 0.0).count();
    let relation = needs
        .relation_texts
        .map(|texts| relation_batch(records, indices, texts, pad_id, device));
    let pooling = needs.pooling.then(|| {
        let representation = Representation::default();
        let parts = representation.parts().len();
        let mut matrix = vec![0f32; batch * parts * seq];
        for (row, &i) in indices.iter().enumerate() {
            for (part, positions) in representation
                .pooling_weights(&records[i].encoded)
                .iter()
                .enumerate()
            {
                for &(position, weight) in positions {
                    matrix[(row * parts + part) * seq + position] += weight;
                }
            }
        }
        Tensor::from_data(TensorData::new(matrix, [batch, parts, seq]), device)
    });
    PretrainBatch {
        tokens: encoder.lengths.iter().sum(),
        masked_positions: Tensor::from_data(TensorData::new(positions, [n_masked]), device),
        masked_targets: Tensor::from_data(TensorData::new(targets, [n_masked]), device),
        masked: n_masked,
        positive: Tensor::from_data(TensorData::new(positive, [batch, seq]), device),
        negative: Tensor::from_data(TensorData::new(negative, [batch, seq]), device),
        relations: Tensor::from_data(TensorData::new(relations, [batch]), device),
        scl_weights: Tensor::from_data(TensorData::new(weights, [batch]), device),
        scl_samples,
        encoder,
        pooling,
        relation,
    }
}

/// The relation stage's part of a batch: which rows share a relation, and the texts of the
/// relations present.
fn relation_batch(
    records: &[PreparedRecord],
    indices: &[usize],
    texts: &[Option<Vec<u32>>],
    pad_id: u32,
    device: &Device,
) -> RelationBatch {
    let b = indices.len();
    let labels: Vec<Option<usize>> = indices.iter().map(|&i| records[i].relation).collect();
    let mut positives = vec![0f32; b * b];
    let mut anchored = 0;
    for (i, a) in labels.iter().enumerate() {
        let mut any = false;
        for (j, c) in labels.iter().enumerate() {
            if i != j && a.is_some() && a == c {
                positives[i * b + j] = 1.0;
                any = true;
            }
        }
        anchored += usize::from(any);
    }
    // The texts of the relations present, each once, in order of first appearance.
    let mut present: Vec<usize> = Vec::new();
    let mut targets = vec![0i64; b];
    let mut weights = vec![0f32; b];
    for (row, label) in labels.iter().enumerate() {
        let Some(relation) = *label else { continue };
        if texts.get(relation).is_none_or(Option::is_none) {
            continue;
        }
        let at = match present.iter().position(|&r| r == relation) {
            Some(at) => at,
            None => {
                present.push(relation);
                present.len() - 1
            }
        };
        targets[row] = at as i64;
        weights[row] = 1.0;
    }
    let with_text = weights.iter().filter(|w| **w > 0.0).count();
    // Text alignment needs another relation's text to tell apart.
    let texts = (present.len() >= 2).then(|| {
        let sequences: Vec<Vec<u32>> = present
            .iter()
            .map(|&r| texts[r].clone().unwrap_or_default())
            .collect();
        (
            EncoderBatch::new(&sequences, pad_id, device),
            Tensor::from_data(TensorData::new(targets, [b]), device),
            Tensor::from_data(TensorData::new(weights, [b]), device),
        )
    });
    RelationBatch {
        positives: Tensor::from_data(TensorData::new(positives, [b, b]), device),
        anchored,
        with_text: if texts.is_some() { with_text } else { 0 },
        texts,
    }
}

/// The summed gradients of one step (on the main device) and its losses.
pub struct StepGradients {
    pub grads: GradientsParams,
    pub loss: f64,
    pub mslm: Option<f64>,
    pub scl: Option<f64>,
    pub distill: Option<f64>,
    pub hidden: Option<f64>,
    pub contrastive: Option<f64>,
    pub text: Option<f64>,
    pub masked: usize,
    pub scl_samples: usize,
    pub tokens: usize,
}

/// Forward and backward pass of one step, data-parallel when there is more than one device.
///
/// The batch is masked once, then split into contiguous row shards, one per device; each
/// device runs a replica of the model (forked from the main one) on its shard in its own
/// thread, and the gradients are moved to the main device and summed (burn's
/// `GradientsParams::to_device` and `GradientsAccumulator`). The sum is exactly the gradient
/// of the whole batch's loss because each shard's losses are weighted by its share: MSLM by
/// its share of the batch's masked tokens, SCL by its share of the SCL samples (both losses
/// are means over those; the distillation losses by its share of the rows and of the real
/// tokens). Only dropout differs: each device draws from its own seeded stream.
/// `teachers`: for distillation, the teacher on each device (empty otherwise).
/// `relation_texts`: for the relation stage, each schema relation's text ids (the contrastive
/// losses are taken within each device's shard).
#[allow(clippy::too_many_arguments)]
pub fn step_gradients(
    model: &PretrainModel,
    teachers: &[BertModel],
    relation_texts: Option<&[Option<Vec<u32>>]>,
    records: &[PreparedRecord],
    indices: &[usize],
    config: &PretrainConfig,
    mask_id: u32,
    pad_id: u32,
    step: usize,
    devices: &[Device],
) -> Result<StepGradients> {
    let main = &devices[0];
    let masked = mask_batch(records, indices, config, mask_id, step);
    let shards = devices.len().min(indices.len()).max(1);
    let bounds = |k: usize| k * indices.len() / shards;
    let batches: Vec<PretrainBatch> = (0..shards)
        .map(|k| {
            let rows = bounds(k)..bounds(k + 1);
            batch_tensors(
                records,
                &indices[rows.clone()],
                &masked[rows],
                pad_id,
                BatchNeeds {
                    pooling: !teachers.is_empty() || relation_texts.is_some(),
                    relation_texts,
                },
                &devices[k],
            )
        })
        .collect();
    let total_masked: usize = batches.iter().map(|b| b.masked).sum();
    let total_scl: usize = batches.iter().map(|b| b.scl_samples).sum();
    let tokens: usize = batches.iter().map(|b| b.tokens).sum();
    let relation_counts =
        |b: &PretrainBatch| b.relation.as_ref().map_or((0, 0), |r| (r.anchored, r.with_text));
    let total_anchored: usize = batches.iter().map(|b| relation_counts(b).0).sum();
    let total_with_text: usize = batches.iter().map(|b| relation_counts(b).1).sum();
    let share = |part: usize, whole: usize| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };

    // Shard k's pass: gradients on the main device, total loss, weighted parts.
    let run = |k: usize, replica: PretrainModel, batch: PretrainBatch| {
        let device = &devices[k];
        // The main device keeps the single-device stream, so one device reproduces the
        // non-parallel run exactly.
        device.seed(mixed_seed(config.seed, 4 + k as u64 * 0x100, step as u64));
        let mslm_share = share(batch.masked, total_masked);
        let scl_share = share(batch.scl_samples, total_scl);
        let row_share = share(batch.encoder.lengths.len(), indices.len());
        let token_share = share(batch.tokens, tokens);
        let (anchored, with_text) = relation_counts(&batch);
        let contrastive_share = share(anchored, total_anchored);
        let text_share = share(with_text, total_with_text);
        let weights = LossWeights {
            mslm: config.mslm_weight * mslm_share,
            scl: config.scl_weight * scl_share,
            contrastive: config.contrastive_weight * contrastive_share,
            text: config.text_weight * text_share,
            distill: config.distill_weight * row_share,
            hidden: config.hidden_weight * token_share,
            temperature: config.temperature,
        };
        let losses = replica.losses(&batch, &weights, teachers.get(k));
        let scalar = |t: &Tensor<1>| t.clone().into_scalar::<f32>() as f64;
        let parts = [
            losses.mslm.as_ref().map(|l| scalar(l) * mslm_share),
            losses.scl.as_ref().map(|l| scalar(l) * scl_share),
            losses.distill.as_ref().map(|l| scalar(l) * row_share),
            losses.hidden.as_ref().map(|l| scalar(l) * token_share),
            losses.contrastive.as_ref().map(|l| scalar(l) * contrastive_share),
            losses.text.as_ref().map(|l| scalar(l) * text_share),
        ];
        let total = scalar(&losses.total);
        let grads = GradientsParams::from_grads(losses.total.backward(), &replica);
        (grads.to_device(main, &replica), total, parts)
    };
    let outputs = if shards == 1 {
        let batch = batches.into_iter().next().expect("one shard");
        vec![run(0, model.clone(), batch)]
    } else {
        let replicas: Vec<PretrainModel> = (0..shards)
            .map(|k| {
                if k == 0 {
                    model.clone()
                } else {
                    model.clone().fork(&devices[k])
                }
            })
            .collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = replicas
                .into_iter()
                .zip(batches)
                .enumerate()
                .map(|(k, (replica, batch))| scope.spawn(move || run(k, replica, batch)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("a training device's thread failed"))
                })
                .collect::<Result<Vec<_>>>()
        })?
    };

    let mut accumulator = GradientsAccumulator::new();
    let mut loss = 0.0;
    let mut sums: [Option<f64>; 6] = [None; 6];
    for (grads, total, parts) in outputs {
        accumulator.accumulate(model, grads);
        loss += total;
        for (sum, part) in sums.iter_mut().zip(parts) {
            *sum = match (*sum, part) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
        }
    }
    let [mslm, scl, distill, hidden, contrastive, text] = sums;
    Ok(StepGradients {
        grads: accumulator.grads(),
        loss,
        mslm,
        scl,
        distill,
        hidden,
        contrastive,
        text,
        masked: total_masked,
        scl_samples: total_scl,
        tokens,
    })
}

/// Where a checkpoint's training stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps done.
    pub step: usize,
    pub total_steps: usize,
    pub tokens_seen: u64,
    pub elapsed_s: f64,
    pub run: serde_json::Value,
    /// Development evaluations: the best score so far and its step.
    #[serde(default)]
    pub best: Option<DevScore>,
    /// Development evaluations since the best one.
    #[serde(default)]
    pub evals_without_gain: usize,
}

/// One development evaluation (a line of `OUT/dev.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DevScore {
    pub step: usize,
    /// Mean of the accuracies below.
    pub score: f64,
    /// 5-way 1-shot accuracy, and with relation text when the run has it.
    pub accuracy: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_with_text: Option<f64>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    pub epoch: usize,
    pub lr: f64,
    pub loss: f64,
    pub mslm: Option<f64>,
    pub scl: Option<f64>,
    /// Distillation: representation and hidden-state losses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<f64>,
    /// Relation stage: supervised contrastive and relation-text losses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrastive: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<f64>,
    pub grad_norm: f64,
    pub masked_tokens: usize,
    pub scl_samples: usize,
    /// Real (unpadded) tokens in the step's batch.
    #[serde(default)]
    pub tokens: usize,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainOutcome {
    /// All steps done; the result is in the output directory.
    Finished { steps: usize },
    /// Stopped early on request (`stop_after`); resume to continue.
    Stopped { step: usize },
    /// Development accuracy stopped improving (`patience`); the result is the best
    /// checkpoint, from `best_step`.
    StoppedEarly { step: usize, best_step: usize },
}

/// Options of one invocation that do not change what the run computes.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub resume: bool,
    /// Stop (after checkpointing) once this many steps are done in total.
    pub stop_after: Option<usize>,
    pub quiet: bool,
}

fn remapper(patterns: &[(&str, &str)]) -> KeyRemapper {
    patterns
        .iter()
        .try_fold(KeyRemapper::new(), |r, &(from, to)| r.add_pattern(from, to))
        .expect("constant regexes are valid")
}

/// Loads the starting checkpoint (BERT layout, `bert.` prefix optional) into `model`: the
/// encoder must be complete; an MLM head (`cls.*`) is used when present, else the fresh one.
/// Returns whether the head came from the checkpoint.
pub fn load_init(model: PretrainModel, weights: &Path) -> Result<(PretrainModel, bool)> {
    let mut model = model;
    model.bert = tkre::model::load_weights_from_file(model.bert, weights)?;
    let (cls, has_head) = tkre::model::load_mlm_head_from_file(model.cls, weights)?;
    model.cls = cls;
    Ok((model, has_head))
}

/// Writes the encoder and MLM head as `model.safetensors` in Hugging Face `BertForMaskedLM`
/// layout (the SCL head is training-only and is left out).
pub fn save_bert_layout(model: &PretrainModel, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_file(path)
        .filter(PathFilter::new().with_regex(r"^(bert|cls)\."))
        .remap(remapper(tkre::checkpoint::names::MODULE_TO_CHECKPOINT))
        .with_to_adapter(BurnToPyTorchAdapter)
        .overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// Everything [`train`] needs besides the session options.
pub struct TrainInputs<'a> {
    pub config: &'a PretrainConfig,
    /// The starting checkpoint directory.
    pub init_dir: &'a Path,
    /// Its `tokenizer.json`, as read and as parsed (the result gets a copy).
    pub tokenizer_json: &'a [u8],
    pub tokenizer: &'a TextTokenizer,
    pub out: &'a Path,
    /// The first is the main device (parameters, optimiser state); more than one trains
    /// data-parallel.
    pub devices: Vec<Device>,
    /// The relation stage: each schema relation's text ids (see [`relation_text_ids`]).
    pub relation_texts: Vec<Option<Vec<u32>>>,
    /// Development data for early stopping.
    pub dev: Option<DevSet>,
}

fn checkpoint_dir(out: &Path, step: usize) -> PathBuf {
    out.join("checkpoints").join(format!("step-{step:07}"))
}

fn latest_checkpoint(out: &Path) -> Option<PathBuf> {
    let name = fs::read_to_string(out.join("checkpoints/latest")).ok()?;
    let dir = out.join("checkpoints").join(name.trim());
    dir.join("state.json").is_file().then_some(dir)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Saves model, optimiser and state into a new checkpoint directory, then points `latest`
/// at it and deletes the oldest beyond `keep`. A crash mid-save leaves the previous
/// checkpoint as `latest`.
fn save_checkpoint(
    out: &Path,
    model: &PretrainModel,
    optim: &ModuleOptimizer,
    state: &TrainState,
    keep: usize,
) -> Result<()> {
    let dir = checkpoint_dir(out, state.step);
    let tmp = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut store = BurnpackStore::from_file(tmp.join("model.bpk")).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("saving the model checkpoint: {e}"))?;
    optim
        .save(tmp.join("optimizer.bpk"))
        .map_err(|e| anyhow::anyhow!("saving the optimiser state: {e:?}"))?;
    fs::write(tmp.join("state.json"), serde_json::to_vec_pretty(state)?)?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir)?;
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    write_atomic(&out.join("checkpoints/latest"), name.as_bytes())?;

    let mut existing: Vec<PathBuf> = fs::read_dir(out.join("checkpoints"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
        })
        .filter(|p| p.extension().is_none())
        .collect();
    existing.sort();
    while existing.len() > keep {
        let oldest = existing.remove(0);
        let _ = fs::remove_dir_all(oldest);
    }
    Ok(())
}

fn optimizer(config: &PretrainConfig) -> ModuleOptimizer {
    // Clipping is global (clip_global_norm), so none is configured here.
    AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(config.weight_decay as f32)
        .init()
}

/// Runs (or resumes) pre-training. Progress goes to stderr; metrics to `metrics.jsonl`.
pub fn train(
    inputs: TrainInputs<'_>,
    records: &[PreparedRecord],
    relations: usize,
    session: &Session,
) -> Result<TrainOutcome> {
    let TrainInputs {
        config,
        init_dir,
        tokenizer_json,
        tokenizer,
        out,
        devices,
        relation_texts,
        dev,
    } = inputs;
    let relation_stage = config.stage == Stage::Relation;
    let Some(device) = devices.first().cloned() else {
        bail!("no training device given");
    };
    if records.is_empty() {
        bail!("no usable records to train on");
    }
    let mask_id = tokenizer
        .token_id("[MASK]")
        .context("the tokenizer has no [MASK] token; MSLM needs a BERT-style vocabulary")?;
    let pad_id = tokenizer.pad_id();
    let config_text = fs::read_to_string(init_dir.join("config.json"))
        .with_context(|| format!("reading {}/config.json", init_dir.display()))?;
    let init_config = EncoderConfig::from_json(&config_text, "config.json")?;
    // Distillation: the student keeps some of the starting checkpoint's layers.
    let student_layers: Option<Vec<usize>> = (config.stage == Stage::Distill).then(|| {
        config.student_layers.clone().unwrap_or_else(|| {
            let n = init_config.num_hidden_layers;
            (0..n).filter(|i| (n - 1 - i) % 2 == 0).collect()
        })
    });
    let mut encoder_config = init_config.clone();
    if let Some(layers) = &student_layers {
        if let Some(&bad) = layers.iter().find(|&&l| l >= init_config.num_hidden_layers) {
            bail!(
                "student_layers: layer {bad} does not exist; {} has {} layers (0-based)",
                init_dir.display(),
                init_config.num_hidden_layers
            );
        }
        encoder_config.num_hidden_layers = layers.len();
    }
    let teachers = match &config.teacher {
        Some(dir) if config.stage == Stage::Distill => {
            let teacher = load_teacher(dir, tokenizer_json, &encoder_config, &device)?;
            devices
                .iter()
                .map(|d| teacher.clone().fork(d))
                .collect::<Vec<_>>()
        }
        _ => Vec::new(),
    };

    let steps_per_epoch = if relation_stage {
        relation_batches(records, config.seed, 0, config.batch_size, config.per_relation).len()
    } else {
        records.len().div_ceil(config.batch_size)
    };
    if steps_per_epoch == 0 {
        bail!("no batch can be made: the relation stage needs records with relation labels");
    }
    let total = (steps_per_epoch * config.epochs).min(config.max_steps.unwrap_or(usize::MAX));
    let run = config.run_identity();

    // The model: fresh heads seeded, the encoder (and MLM head if any) from the checkpoint.
    // The heads are drawn on the CPU and then moved, so that a run starts from the same
    // parameters on every device (each backend has a random generator of its own).
    let init_device = Device::flex().autodiff();
    init_device.seed(mixed_seed(config.seed, 3, 0));
    // Only stage 2 (SCL) has learned anchors, one per relation.
    let anchors = if config.stage == Stage::Scl { relations } else { 0 };
    let model = PretrainModel::new(&init_config, anchors, &init_device).fork(&device);
    let (mut model, had_head) = load_init(model, &init_dir.join("model.safetensors"))?;
    if let Some(layers) = &student_layers {
        let all = std::mem::take(&mut model.bert.encoder.layer);
        model.bert.encoder.layer = layers.iter().map(|&i| all[i].clone()).collect();
    }
    let mut optim = optimizer(config);
    let mut state = TrainState {
        step: 0,
        total_steps: total,
        tokens_seen: 0,
        elapsed_s: 0.0,
        run: run.clone(),
        best: None,
        evals_without_gain: 0,
    };

    fs::create_dir_all(out.join("checkpoints")).with_context(|| format!("creating {}", out.display()))?;
    let metrics_path = out.join("metrics.jsonl");
    match (latest_checkpoint(out), session.resume) {
        (Some(dir), true) => {
            let saved: TrainState = serde_json::from_slice(&fs::read(dir.join("state.json"))?)?;
            if saved.run != run {
                bail!(
                    "{} was started with different settings; resume with the same config \
                     (only checkpoint_every, keep_checkpoints and device may change), or use a new --out.\n\
                     started with: {}\nnow:          {}",
                    out.display(),
                    saved.run,
                    run
                );
            }
            let mut store = BurnpackStore::from_file(dir.join("model.bpk"));
            model
                .load_from(&mut store)
                .map_err(|e| anyhow::anyhow!("loading {}: {e}", dir.display()))?;
            optim = optim
                .load(dir.join("optimizer.bpk"))
                .map_err(|e| anyhow::anyhow!("loading the optimiser state in {}: {e:?}", dir.display()))?;
            state = saved;
            // Metrics logged after the checkpoint are replayed; drop them.
            if let Ok(text) = fs::read_to_string(&metrics_path) {
                let kept: String = text
                    .lines()
                    .filter(|l| serde_json::from_str::<StepMetrics>(l).is_ok_and(|m| m.step <= state.step))
                    .map(|l| format!("{l}\n"))
                    .collect();
                write_atomic(&metrics_path, kept.as_bytes())?;
            }
            if let Ok(text) = fs::read_to_string(out.join("dev.jsonl")) {
                let kept: String = text
                    .lines()
                    .filter(|l| serde_json::from_str::<DevScore>(l).is_ok_and(|d| d.step <= state.step))
                    .map(|l| format!("{l}\n"))
                    .collect();
                write_atomic(&out.join("dev.jsonl"), kept.as_bytes())?;
            }
            if !session.quiet {
                eprintln!("resuming from {} (step {} of {total})", dir.display(), state.step);
            }
        }
        (None, true) => {
            if !session.quiet {
                eprintln!(
                    "--resume: no checkpoint in {} yet; starting from the beginning",
                    out.display()
                );
            }
            let _ = fs::remove_file(&metrics_path);
        }
        (Some(_), false) => bail!(
            "{} already holds checkpoints of a run; pass --resume to continue it, or choose another --out",
            out.display()
        ),
        (None, false) => {
            let _ = fs::remove_file(&metrics_path);
            if !session.quiet && !had_head && config.mslm_weight > 0.0 && config.stage != Stage::Distill {
                eprintln!(
                    "the starting checkpoint has no MLM head: a new one is initialised (see docs/training.md)"
                );
            }
        }
    }

    let mut metrics_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .with_context(|| format!("opening {}", metrics_path.display()))?;
    let bar = if session.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{:?}", config.stage).to_lowercase());
    bar.set_position(state.step as u64);

    // Development evaluations write the model where the classifier can load it.
    let dev_path = out.join("dev.jsonl");
    let evaluate_dev = |model: &PretrainModel, step: usize| -> Result<Option<DevScore>> {
        let Some(dev) = &dev else { return Ok(None) };
        let dir = out.join("dev-model");
        fs::create_dir_all(&dir)?;
        save_bert_layout(model, &dir.join("model.safetensors"))?;
        fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&encoder_config)?,
        )?;
        fs::write(dir.join("tokenizer.json"), tokenizer_json)?;
        let encoder = tkre::RelationEncoder::load_dir(&dir, tkre::EngineRequest::Auto)
            .with_context(|| format!("loading the development model in {}", dir.display()))?;
        let results = evaluation::evaluate(
            &encoder,
            &dev.data,
            &[(5, 1)],
            1,
            config.dev_episodes,
            1,
            32,
            dev.texts.as_deref(),
            None,
            false,
        )?;
        let of = |text: bool| {
            results
                .iter()
                .find(|r| r.relation_text == text)
                .map(|r| r.accuracy)
        };
        let accuracy = of(false).unwrap_or_default();
        let accuracy_with_text = of(true);
        let score = accuracy_with_text.map_or(accuracy, |t| (accuracy + t) / 2.0);
        let line = DevScore {
            step,
            score,
            accuracy,
            accuracy_with_text,
        };
        let mut file = fs::OpenOptions::new().create(true).append(true).open(&dev_path)?;
        writeln!(file, "{}", serde_json::to_string(&line)?)?;
        Ok(Some(line))
    };
    let best_dir = out.join("best");
    // Keeps `model` as the best when `score` beats the best so far; true when it did.
    let record_dev = |state: &mut TrainState, model: &PretrainModel, score: DevScore| -> Result<bool> {
        let improved = state.best.as_ref().is_none_or(|b| score.score > b.score);
        if improved {
            fs::create_dir_all(&best_dir)?;
            save_bert_layout(model, &best_dir.join("model.safetensors"))?;
            write_atomic(&best_dir.join("score.json"), &serde_json::to_vec_pretty(&score)?)?;
            state.best = Some(score);
            state.evals_without_gain = 0;
        } else {
            state.evals_without_gain += 1;
        }
        Ok(improved)
    };
    if state.step == 0 && dev.is_some() {
        let _ = fs::remove_file(&dev_path);
        if let Some(score) = evaluate_dev(&model, 0)? {
            if !session.quiet {
                eprintln!(
                    "development 5-way 1-shot before training: {}",
                    describe_dev(&score)
                );
            }
            record_dev(&mut state, &model, score)?;
        }
    }

    let started = Instant::now();
    let elapsed_before = state.elapsed_s;
    let mut order_epoch = usize::MAX;
    let mut order = Vec::new();
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut last_checkpoint = state.step;
    let mut stopped_early = false;
    while state.step < total {
        let step = state.step;
        let epoch = step / steps_per_epoch;
        if epoch != order_epoch {
            if relation_stage {
                batches = relation_batches(
                    records,
                    config.seed,
                    epoch,
                    config.batch_size,
                    config.per_relation,
                );
            } else {
                order = epoch_order(records.len(), config.seed, epoch);
            }
            order_epoch = epoch;
        }
        let indices: &[usize] = if relation_stage {
            &batches[step % steps_per_epoch]
        } else {
            let first = (step % steps_per_epoch) * config.batch_size;
            &order[first..(first + config.batch_size).min(records.len())]
        };
        let step_started = Instant::now();

        let StepGradients {
            grads,
            loss,
            mslm,
            scl,
            distill,
            hidden,
            contrastive,
            text,
            masked,
            scl_samples,
            tokens,
        } = step_gradients(
            &model,
            &teachers,
            relation_stage.then_some(relation_texts.as_slice()),
            records,
            indices,
            config,
            mask_id,
            pad_id,
            step,
            &devices,
        )?;
        if !loss.is_finite() {
            bar.abandon();
            bail!(
                "the loss became {loss} at step {}; the last checkpoint (step {last_checkpoint}) is intact. \
                 Lower learning_rate or max_grad_norm and resume from it with --resume",
                step + 1
            );
        }
        let grads = if step < config.freeze_encoder_steps {
            without_encoder_grads(&model, grads)
        } else {
            grads
        };
        let (grads, grad_norm) = clip_global_norm(&model, grads, config.max_grad_norm);
        let lr = config.learning_rate_at(step, total);
        model = optim.step(lr, model, grads);

        state.step += 1;
        state.tokens_seen += tokens as u64;
        state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        let tokens_per_s = tokens as f64 / step_started.elapsed().as_secs_f64().max(1e-9);
        let metrics = StepMetrics {
            step: state.step,
            epoch,
            lr,
            loss,
            mslm,
            scl,
            distill,
            hidden,
            contrastive,
            text,
            grad_norm,
            masked_tokens: masked,
            scl_samples,
            tokens,
            tokens_per_s,
            elapsed_s: state.elapsed_s,
        };
        writeln!(metrics_file, "{}", serde_json::to_string(&metrics)?)?;
        let mut message = format!("loss {loss:.3}");
        if let (Some(m), Some(s)) = (mslm, scl) {
            message = format!("loss {loss:.3} (mslm {m:.3}, scl {s:.3})");
        }
        if let (Some(d), Some(h)) = (distill, hidden) {
            message = format!("loss {loss:.3} (representation {d:.4}, hidden {h:.3})");
        }
        if relation_stage {
            let part = |name: &str, v: Option<f64>| v.map(|v| format!(", {name} {v:.3}")).unwrap_or_default();
            message = format!(
                "loss {loss:.3} ({}{}{})",
                part("contrastive", contrastive).trim_start_matches(", "),
                part("text", text),
                part("mslm", mslm)
            );
            if let Some(best) = &state.best {
                message.push_str(&format!("  dev best {:.1} @{}", 100.0 * best.score, best.step));
            }
        }
        bar.set_message(format!("{message}  {tokens_per_s:.0} tok/s"));
        bar.set_position(state.step as u64);

        if dev.is_some() && (state.step.is_multiple_of(config.eval_every) || state.step == total) {
            bar.suspend(|| -> Result<()> {
                if let Some(score) = evaluate_dev(&model, state.step)? {
                    let improved = record_dev(&mut state, &model, score.clone())?;
                    if !session.quiet {
                        eprintln!(
                            "step {}: development {}{}",
                            state.step,
                            describe_dev(&score),
                            if improved { " (best)" } else { "" }
                        );
                    }
                }
                Ok(())
            })?;
            stopped_early = config.patience > 0 && state.evals_without_gain >= config.patience;
        }
        let stop = session.stop_after.is_some_and(|n| state.step >= n) || stopped_early;
        if state.step.is_multiple_of(config.checkpoint_every) || state.step == total || stop {
            metrics_file.flush()?;
            save_checkpoint(out, &model, &optim, &state, config.keep_checkpoints)?;
            last_checkpoint = state.step;
        }
        if stopped_early {
            bar.abandon_with_message("stopped early: development accuracy stopped improving");
            break;
        }
        if stop && state.step < total {
            bar.abandon_with_message(format!(
                "stopped after step {}; continue with --resume",
                state.step
            ));
            return Ok(TrainOutcome::Stopped { step: state.step });
        }
    }
    if !stopped_early {
        bar.finish_with_message("done");
    }

    // With development data the result is the best evaluated model, else the last.
    match &state.best {
        Some(_) => fs::copy(best_dir.join("model.safetensors"), out.join("model.safetensors"))
            .map(|_| ())
            .with_context(|| format!("copying the best model from {}", best_dir.display()))?,
        None => save_bert_layout(&model, &out.join("model.safetensors"))?,
    }
    fs::write(
        out.join("config.json"),
        serde_json::to_vec_pretty(&encoder_config)?,
    )?;
    fs::write(out.join("tokenizer.json"), tokenizer_json)?;
    let _ = fs::remove_dir_all(out.join("dev-model"));
    match (&state.best, stopped_early) {
        (Some(best), true) => Ok(TrainOutcome::StoppedEarly {
            step: state.step,
            best_step: best.step,
        }),
        _ => Ok(TrainOutcome::Finished { steps: state.step }),
    }
}

fn describe_dev(score: &DevScore) -> String {
    match score.accuracy_with_text {
        Some(t) => format!(
            "{:.2} without relation text, {:.2} with",
            100.0 * score.accuracy,
            100.0 * t
        ),
        None => format!("{:.2}", 100.0 * score.accuracy),
    }
}

/// `grads` without the encoder's gradients (it stays as it is this step).
fn without_encoder_grads(model: &PretrainModel, grads: GradientsParams) -> GradientsParams {
    struct Drop<'a> {
        grads: &'a mut GradientsParams,
    }
    impl ModuleVisitor for Drop<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = self.grads.remove::<D>(param.id);
        }
    }
    let mut grads = grads;
    model.bert.visit(&mut Drop { grads: &mut grads });
    grads
}

/// Loads the distillation teacher (frozen) after checking it fits the student: the same
/// tokenizer (the student reads the teacher's token ids) and hidden size (the losses compare
/// states directly).
fn load_teacher(
    dir: &Path,
    student_tokenizer: &[u8],
    student: &EncoderConfig,
    device: &Device,
) -> Result<BertModel> {
    tkre::checkpoint::Manifest::verify_dir(dir)?;
    let read = |file: &str| {
        fs::read(dir.join(file)).with_context(|| format!("reading teacher {}", dir.join(file).display()))
    };
    let config_bytes = read("config.json")?;
    let config = EncoderConfig::from_json(&String::from_utf8_lossy(&config_bytes), "teacher config.json")?;
    if read("tokenizer.json")? != student_tokenizer {
        bail!(
            "the teacher {} has another tokenizer.json than the student's starting checkpoint; \
             distillation needs the same vocabulary",
            dir.display()
        );
    }
    if config.hidden_size != student.hidden_size {
        bail!(
            "the teacher's hidden size is {} and the student's {}; distillation compares their \
             states directly, so they must match",
            config.hidden_size,
            student.hidden_size
        );
    }
    let teacher = tkre::model::load_weights_from_file(config.init(device), &dir.join("model.safetensors"))?;
    Ok(teacher.no_grad())
}

/// Loads the corpus and prepares it for `config.stage`; returns the records, the stage-2
/// schema (empty in stage 1) and the report.
pub fn load_corpus(
    config: &PretrainConfig,
    tokenizer: &TextTokenizer,
) -> Result<(Vec<PreparedRecord>, Vec<String>, DataSummary, CorpusReport)> {
    let mut report = CorpusReport::default();
    let records = load_files(&config.corpus, &mut report)?;
    let schema: Vec<String> = match (config.stage, &config.relations) {
        (Stage::Mslm | Stage::Distill, _) => Vec::new(),
        (Stage::Scl | Stage::Relation, Some(relations)) => relations.clone(),
        (Stage::Scl | Stage::Relation, None) => {
            let mut found: Vec<String> = records.iter().filter_map(|r| r.relation.clone()).collect();
            found.sort();
            found.dedup();
            found
        }
    };
    let labelled = matches!(config.stage, Stage::Scl | Stage::Relation);
    if labelled && schema.is_empty() {
        bail!(
            "stage 2 (SCL) needs relation labels, and no record of the corpus has one; add the \
             synthesis outputs (explanations or samples) to --corpus"
        );
    }
    let schema_ref = labelled.then_some(schema.as_slice());
    let (prepared, summary) = prepare(&records, tokenizer, config.max_length, schema_ref, &mut report);
    if prepared.is_empty() {
        bail!("the corpus has no usable records:\n{}", report.describe());
    }
    Ok((prepared, schema, summary, report))
}
