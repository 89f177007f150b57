//! A loaded checkpoint (encoder + tokenizer) that turns sentences and relation instances into
//! vectors. The CLI, the evaluation, the browser package and the tests all go through this.

use std::ops::Range;

use burn::prelude::*;

use crate::error::{Result, TkreError};
use crate::fewshot::{EncodedSupportSet, ParsedSupportSet, Representation, normalize_parts};
use crate::model::fused_cpu::TOKENS_PER_PASS;
use crate::model::{BertModel, EncoderBatch, EncoderConfig, FusedCpuEncoder, load_weights_from_bytes};
use crate::text::{RelationInstance, TextTokenizer, encode_instance, encode_sentence};

/// Default maximum sequence length in tokens, [CLS] and [SEP] included (what
/// sentence-transformers uses for all-MiniLM-L6-v2); capped by the model's position table.
pub const DEFAULT_MAX_LEN: usize = 256;

/// The three files of a BERT-layout checkpoint, as bytes (the browser fetches them).
pub struct ModelFiles {
    pub config_json: Vec<u8>,
    pub weights_safetensors: Vec<u8>,
    pub tokenizer_json: Vec<u8>,
}

/// Token ids plus, for every sequence, the pooling weights of each output part.
#[derive(Debug, Clone)]
pub struct PoolingPlan {
    pub ids: Vec<Vec<u32>>,
    /// `weights[sequence][part]` = `(position, weight)` pairs.
    pub weights: Vec<Vec<Vec<(usize, f32)>>>,
    pub parts: usize,
}

/// Most padded tokens one encoder pass takes (what [`PoolingPlan::length_groups`] allows per
/// group): bounds the attention scores' memory, 12 heads x 4096 x 512 floats = 100 MB at 512
/// tokens.
pub const MAX_TOKENS_PER_PASS: usize = 4096;

impl PoolingPlan {
    /// The sequences' indices in groups of similar length, shortest first, each group one
    /// padded encoder pass: at most `max_batch` sequences and [`MAX_TOKENS_PER_PASS`] padded
    /// tokens, and a group ends before padding would add more than a quarter to its real
    /// tokens. Sentences of mixed length (FewRel's 10-60 tokens) padded to the longest of 32
    /// cost up to twice the compute of the real tokens; in groups, at most 1.25 times.
    pub fn length_groups(&self, max_batch: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.ids.len()).collect();
        order.sort_by_key(|&i| self.ids[i].len());
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        let mut real_tokens = 0;
        for i in order {
            // Sorted, so this sequence is the group's longest: everything pads to its length.
            let len = self.ids[i].len().max(1);
            let padded = (current.len() + 1) * len;
            let too_much_padding = 4 * padded > 5 * (real_tokens + len);
            if !current.is_empty()
                && (current.len() >= max_batch.max(1) || padded > MAX_TOKENS_PER_PASS || too_much_padding)
            {
                groups.push(std::mem::take(&mut current));
                real_tokens = 0;
            }
            current.push(i);
            real_tokens += len;
        }
        if !current.is_empty() {
            groups.push(current);
        }
        groups
    }

    /// Consecutive runs of sequences of at most [`TOKENS_PER_PASS`] tokens together (a longer
    /// sequence runs alone): the passes of a fused, ragged forward pass.
    pub fn ragged_passes(&self) -> Vec<Range<usize>> {
        let mut passes = Vec::new();
        let mut start = 0;
        while start < self.ids.len() {
            let mut end = start + 1;
            let mut tokens = self.ids[start].len();
            while end < self.ids.len() && tokens + self.ids[end].len() <= TOKENS_PER_PASS {
                tokens += self.ids[end].len();
                end += 1;
            }
            passes.push(start..end);
            start = end;
        }
        passes
    }

    /// Mean pooling of every token of each sequence: the plan of sentence embeddings.
    pub fn sentence_means(ids: Vec<Vec<u32>>) -> PoolingPlan {
        let weights = ids
            .iter()
            .map(|sequence| {
                let w = 1.0 / sequence.len() as f32;
                vec![(0..sequence.len()).map(|i| (i, w)).collect()]
            })
            .collect();
        PoolingPlan {
            ids,
            weights,
            parts: 1,
        }
    }

    /// The plan of the sequences at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> PoolingPlan {
        PoolingPlan {
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            weights: indices.iter().map(|&i| self.weights[i].clone()).collect(),
            parts: self.parts,
        }
    }
}

/// An encoder checkpoint ready for inference.
pub struct RelationEncoder {
    pub model: BertModel,
    pub tokenizer: TextTokenizer,
    pub config: EncoderConfig,
    pub device: Device,
    /// Maximum tokens per sequence, [CLS]/[SEP] included.
    pub max_len: usize,
    /// How relation instances become vectors.
    pub representation: Representation,
    /// The fused one-thread CPU forward pass, when enabled ([`Self::use_fused_cpu`]): the
    /// browser's CPU backend. Every encoding then goes through it instead of burn's ops.
    fused_cpu: Option<FusedCpuEncoder>,
}

impl RelationEncoder {
    /// Builds an encoder from a checkpoint's files.
    pub fn from_files(files: ModelFiles, device: Device) -> Result<Self> {
        Self::build(
            files,
            ["config.json", "model.safetensors", "tokenizer.json"].map(String::from),
            device,
        )
    }

    /// The one place a model is put together from its three files (`origins`: how errors name
    /// config.json, model.safetensors and tokenizer.json); every check happens here, before
    /// anything large is allocated.
    fn build(files: ModelFiles, origins: [String; 3], device: Device) -> Result<Self> {
        let [config_origin, weights_origin, tokenizer_origin] = origins;
        let config_text = std::str::from_utf8(&files.config_json)
            .map_err(|_| TkreError::Model(format!("{config_origin} is not UTF-8 text")))?;
        let config = EncoderConfig::from_json(config_text, &config_origin)?;
        let tokenizer = TextTokenizer::from_bytes(&files.tokenizer_json, &tokenizer_origin)?;
        // The largest id, not the count: a vocabulary with gaps can still name an id past
        // the embedding table.
        if tokenizer.max_id() >= config.vocab_size {
            return Err(TkreError::Model(format!(
                "{tokenizer_origin} has token id {} but {config_origin}'s vocab_size is {}; \
                 the two files come from different models",
                tokenizer.max_id(),
                config.vocab_size
            )));
        }
        // Building the encoder allocates every parameter: a config far larger than its weights
        // file (a mistake, or a crafted file) is refused first. Four parameters per byte leaves
        // room for 4-bit weights.
        let bytes = files.weights_safetensors.len() as u64;
        if config.parameter_count() > bytes.saturating_mul(4) {
            return Err(TkreError::Model(format!(
                "{config_origin} describes {} parameters but {weights_origin} holds {bytes} bytes; \
                 the two files come from different models",
                config.parameter_count()
            )));
        }
        let model = config.init(&device);
        let model = load_weights_from_bytes(model, files.weights_safetensors, &weights_origin)?;
        Ok(Self::new(model, tokenizer, config, device))
    }

    /// Loads a checkpoint directory (`config.json`, `model.safetensors`, `tokenizer.json`).
    #[cfg(not(target_family = "wasm"))]
    pub fn load_dir(dir: &std::path::Path, device: Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(TkreError::Model(format!(
                "{} is not a directory; pass a checkpoint directory with config.json, \
                 model.safetensors and tokenizer.json (scripts/fetch-base-model.sh installs the base model)",
                dir.display()
            )));
        }
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TkreError::Model(format!(
                    "{} is missing; a checkpoint directory needs config.json, model.safetensors and tokenizer.json",
                    path.display()
                )),
                _ => TkreError::io(path, e),
            })
        };
        // Read in the order the checks run, so a missing config is reported first.
        let config_json = read("config.json")?;
        let tokenizer_json = read("tokenizer.json")?;
        let weights_safetensors = read("model.safetensors")?;
        let origin = |name: &str| dir.join(name).display().to_string();
        Self::build(
            ModelFiles {
                config_json,
                weights_safetensors,
                tokenizer_json,
            },
            [
                origin("config.json"),
                origin("model.safetensors"),
                origin("tokenizer.json"),
            ],
            device,
        )
    }

    pub fn new(model: BertModel, tokenizer: TextTokenizer, config: EncoderConfig, device: Device) -> Self {
        let max_len = DEFAULT_MAX_LEN.min(config.max_position_embeddings);
        Self {
            model,
            tokenizer,
            config,
            device,
            max_len,
            representation: Representation::default(),
            fused_cpu: None,
        }
    }

    /// Runs every later encoding through [`FusedCpuEncoder`] (one thread, weights packed now):
    /// the browser's CPU backend, where it is faster than burn's CPU ops.
    pub fn use_fused_cpu(&mut self) -> Result<()> {
        self.fused_cpu = Some(FusedCpuEncoder::new(&self.model, &self.config)?);
        Ok(())
    }

    /// Whether [`Self::use_fused_cpu`] is in effect.
    pub fn uses_fused_cpu(&self) -> bool {
        self.fused_cpu.is_some()
    }

    /// Whether the fused CPU pass multiplies in integers (an int8 model's weights).
    pub fn fused_cpu_uses_int8(&self) -> bool {
        self.fused_cpu.as_ref().is_some_and(FusedCpuEncoder::uses_int8)
    }

    /// Sets the maximum sequence length, [CLS]/[SEP] included: at least
    /// [`crate::model::MIN_POSITIONS`] and at most the model's position table.
    pub fn set_max_len(&mut self, max_len: usize) -> Result<()> {
        let (low, high) = (crate::model::MIN_POSITIONS, self.config.max_position_embeddings);
        if !(low..=high).contains(&max_len) {
            return Err(TkreError::Option(format!(
                "maximum length {max_len}: give {low} to {high} tokens (this model's position table holds {high})"
            )));
        }
        self.max_len = max_len;
        Ok(())
    }

    /// Token ids and mean-pooling plan for sentence embeddings.
    pub fn plan_sentences(&self, texts: &[String]) -> Result<PoolingPlan> {
        let mut ids = Vec::with_capacity(texts.len());
        for text in texts {
            let (sequence, truncated) = encode_sentence(&self.tokenizer, text, self.max_len)?;
            if truncated {
                log::warn!("sentence cut to {} tokens: {:.60}...", self.max_len, text);
            }
            ids.push(sequence);
        }
        Ok(PoolingPlan::sentence_means(ids))
    }

    /// Token ids and pooling plan for relation instances, per [`Self::representation`].
    pub fn plan_instances(&self, instances: &[RelationInstance]) -> Result<PoolingPlan> {
        let mut ids = Vec::with_capacity(instances.len());
        let mut weights = Vec::with_capacity(instances.len());
        for instance in instances {
            let encoded = encode_instance(&self.tokenizer, instance, self.max_len)?;
            if encoded.truncated {
                log::warn!(
                    "sentence longer than {} tokens: kept a window around both entities: {:.60}...",
                    self.max_len,
                    instance.text
                );
            }
            weights.push(self.representation.pooling_weights(&encoded));
            ids.push(encoded.ids);
        }
        Ok(PoolingPlan {
            ids,
            weights,
            parts: self.representation.parts().len(),
        })
    }

    /// Runs the encoder on a plan and pools on the device: `[batch, parts, hidden]`. Only
    /// this small tensor needs to come back from a GPU.
    pub fn pooled(&self, plan: &PoolingPlan) -> Tensor<3> {
        let batch = EncoderBatch::new(&plan.ids, self.tokenizer.pad_id(), &self.device);
        let [b, seq] = batch.attention_mask.dims();
        let mut matrix = vec![0.0f32; b * plan.parts * seq];
        for (s, parts) in plan.weights.iter().enumerate() {
            for (p, positions) in parts.iter().enumerate() {
                for &(pos, w) in positions {
                    matrix[(s * plan.parts + p) * seq + pos] += w;
                }
            }
        }
        let pooling = Tensor::<3>::from_data(TensorData::new(matrix, [b, plan.parts, seq]), &self.device);
        pooling.matmul(self.model.forward(&batch))
    }

    /// [`Self::pooled`]'s values through the fused CPU forward pass (`None` when it is not in
    /// use): ragged passes of at most [`TOKENS_PER_PASS`] tokens, no padding.
    pub fn pooled_fused(&self, plan: &PoolingPlan) -> Option<Result<Vec<f32>>> {
        let fused = self.fused_cpu.as_ref()?;
        Some(self.pool_with(fused, plan))
    }

    fn pool_with(&self, fused: &FusedCpuEncoder, plan: &PoolingPlan) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; plan.ids.len() * plan.parts * self.config.hidden_size];
        for pass in plan.ragged_passes() {
            let sequences: Vec<&[u32]> = plan.ids[pass.clone()].iter().map(Vec::as_slice).collect();
            let hidden = fused.forward(&sequences)?;
            self.pool_pass(plan, pass, &hidden, &mut out)?;
        }
        Ok(out)
    }

    /// Pools the hidden states of one ragged pass (`hidden`: the rows of sequences `pass` one
    /// after another) into `out` (`[sequences, parts, hidden]` for the whole plan).
    pub fn pool_pass(
        &self,
        plan: &PoolingPlan,
        pass: Range<usize>,
        hidden: &[f32],
        out: &mut [f32],
    ) -> Result<()> {
        let h = self.config.hidden_size;
        let mut first_row = 0;
        for s in pass {
            let len = plan.ids[s].len();
            for (p, positions) in plan.weights[s].iter().enumerate() {
                let pooled = &mut out[(s * plan.parts + p) * h..][..h];
                for &(position, weight) in positions {
                    if position >= len {
                        return Err(TkreError::Model(format!(
                            "pooling position {position} is outside sequence {s} of {len} tokens"
                        )));
                    }
                    let state = &hidden[(first_row + position) * h..][..h];
                    for (o, v) in pooled.iter_mut().zip(state) {
                        *o += weight * v;
                    }
                }
            }
            first_row += len;
        }
        Ok(())
    }

    /// Splits pooled `[batch, parts, hidden]` values into one vector per sequence, each part
    /// L2-normalised.
    pub fn finish(&self, plan: &PoolingPlan, values: Vec<f32>) -> Vec<Vec<f32>> {
        let width = plan.parts * self.config.hidden_size;
        values
            .chunks(width)
            .map(|chunk| {
                let mut v = chunk.to_vec();
                normalize_parts(&mut v, plan.parts);
                v
            })
            .collect()
    }

    /// Runs `plan` in batches of at most `batch_size` sequences of similar length
    /// ([`PoolingPlan::length_groups`]), returning vectors in the plan's order. Synchronous
    /// read-back: native and CPU only.
    pub fn run_plan(&self, plan: &PoolingPlan, batch_size: usize) -> Result<Vec<Vec<f32>>> {
        self.run_plan_with_progress(plan, batch_size, |_| {})
    }

    /// [`Self::run_plan`], calling `on_batch(sequences_done)` after each batch.
    pub fn run_plan_with_progress(
        &self,
        plan: &PoolingPlan,
        batch_size: usize,
        mut on_batch: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let mut out = vec![Vec::new(); plan.ids.len()];
        // Padded passes group sequences by length; the fused pass has no padding.
        let groups = match self.fused_cpu {
            Some(_) => (0..plan.ids.len())
                .collect::<Vec<_>>()
                .chunks(batch_size.max(1))
                .map(<[usize]>::to_vec)
                .collect(),
            None => plan.length_groups(batch_size),
        };
        for group in groups {
            let sub = plan.select(&group);
            let values = match self.pooled_fused(&sub) {
                Some(values) => values?,
                None => read_f32(self.pooled(&sub))?,
            };
            for (&i, v) in group.iter().zip(self.finish(&sub, values)) {
                out[i] = v;
            }
            on_batch(group.len());
        }
        Ok(out)
    }

    /// Sentence embeddings: L2-normalised mean of the last hidden states.
    pub fn embed_sentences(&self, texts: &[String], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        self.run_plan(&self.plan_sentences(texts)?, batch_size)
    }

    /// Relation representations of instances.
    pub fn encode_instances(
        &self,
        instances: &[RelationInstance],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>> {
        self.run_plan(&self.plan_instances(instances)?, batch_size)
    }

    /// Encodes a parsed support set: every example and every relation text, once.
    pub fn encode_support_set(
        &self,
        parsed: ParsedSupportSet,
        batch_size: usize,
    ) -> Result<EncodedSupportSet> {
        let examples = self.encode_instances(&parsed.instances(), batch_size)?;
        let texts = self.embed_sentences(&parsed.texts(), batch_size)?;
        EncodedSupportSet::from_parsed(parsed, examples, texts)
    }

    /// Last hidden states of token-id sequences run as one padded batch (one ragged pass on the
    /// fused CPU path): for each sequence a `[len, hidden]` row-major matrix without padding.
    pub fn hidden_states(&self, sequences: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let h = self.config.hidden_size;
        if let Some(fused) = &self.fused_cpu {
            let slices: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
            let values = fused.forward(&slices)?;
            let mut rows = values.chunks_exact(h);
            return Ok(sequences
                .iter()
                .map(|ids| rows.by_ref().take(ids.len()).flatten().copied().collect())
                .collect());
        }
        let batch = EncoderBatch::new(sequences, self.tokenizer.pad_id(), &self.device);
        let [_, seq] = batch.attention_mask.dims();
        let values = read_f32(self.model.forward(&batch))?;
        Ok(sequences
            .iter()
            .enumerate()
            .map(|(s, ids)| values[s * seq * h..(s * seq + ids.len()) * h].to_vec())
            .collect())
    }
}

/// Reads a tensor back as f32 values (synchronously).
pub fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| TkreError::Model(format!("cannot read encoder output: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of_lengths(lengths: &[usize]) -> PoolingPlan {
        PoolingPlan {
            ids: lengths.iter().map(|&n| vec![1; n]).collect(),
            weights: lengths.iter().map(|_| vec![Vec::new()]).collect(),
            parts: 1,
        }
    }

    #[test]
    fn length_groups_bound_padding_batch_and_tokens() {
        let lengths = [12, 40, 13, 60, 41, 12, 25, 26, 512, 511, 30, 14, 200, 3, 44];
        let plan = plan_of_lengths(&lengths);
        let groups = plan.length_groups(4);
        let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(
            seen,
            (0..lengths.len()).collect::<Vec<_>>(),
            "every sequence exactly once"
        );
        for group in &groups {
            let longest = group.iter().map(|&i| lengths[i]).max().unwrap();
            let real: usize = group.iter().map(|&i| lengths[i]).sum();
            assert!(group.len() <= 4, "{group:?}: more than max_batch");
            assert!(group.len() == 1 || group.len() * longest <= MAX_TOKENS_PER_PASS);
            assert!(
                4 * group.len() * longest <= 5 * real,
                "{group:?}: padding over 25%"
            );
        }
        // Equal lengths share a pass up to the batch limit.
        assert_eq!(
            plan_of_lengths(&[128; 10]).length_groups(32),
            vec![(0..10).collect::<Vec<_>>()]
        );
        assert_eq!(
            plan_of_lengths(&[512; 10]).length_groups(32).len(),
            2,
            "8 x 512 tokens per pass"
        );
        assert!(plan_of_lengths(&[]).length_groups(8).is_empty());
    }
}
