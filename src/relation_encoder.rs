//! A loaded checkpoint (engine + tokenizer) that turns sentences and relation instances into
//! vectors. The CLI, the evaluation, the browser package and the tests all go through this.

use std::cell::{Cell, RefCell};

use crate::checkpoint::{EncoderConfig, Manifest, ModelFiles};
use crate::engine::{Engine, EngineRequest, ForwardPass, PoolingPlan};
use crate::error::{Result, TkreError};
use crate::fewshot::{Calibration, Representation, normalize_parts};
#[cfg(not(target_family = "wasm"))]
use crate::fewshot::{EncodedSupportSet, ParsedSupportSet};
use crate::text::tokenizer::Pieces;
use crate::text::{
    CharSpan, EncodedInstance, Marking, RelationInstance, TextTokenizer, encode_sentence, piece_ranges,
};

/// Default maximum sequence length in tokens, [CLS] and [SEP] included (what
/// sentence-transformers uses for all-MiniLM-L6-v2); capped by the model's position table.
pub const DEFAULT_MAX_LEN: usize = 256;

/// A sentence read once by the encoder without markers ([`RelationEncoder::sentence_states`]).
pub struct SentenceStates {
    /// Its word pieces (offsets into the sentence's text), without [CLS]/[SEP].
    pub pieces: Pieces,
    /// `[CLS] pieces [SEP]`.
    pub ids: Vec<u32>,
    /// Last hidden states, `[ids.len(), hidden]` row-major.
    pub states: Vec<f32>,
}

/// An encoder checkpoint ready for inference.
///
/// The maximum length and the representation are cells: the browser binding shares one encoder
/// between calls in flight, and changing either takes effect for the next call.
pub struct RelationEncoder {
    pub engine: Engine,
    /// Why [`Self::engine`] was chosen, in words.
    pub engine_reason: String,
    pub tokenizer: TextTokenizer,
    pub config: EncoderConfig,
    /// Maximum tokens per sequence, [CLS]/[SEP] included.
    max_len: Cell<usize>,
    /// How relation instances become vectors.
    representation: Cell<Representation>,
    /// How the entities of a relation instance are shown to the encoder.
    marking: Cell<Marking>,
    /// The model's score calibration, from its manifest.
    calibration: RefCell<Option<Calibration>>,
}

impl RelationEncoder {
    /// Builds an encoder from a checkpoint's files on the engine `request` asks for.
    pub async fn create(files: ModelFiles, request: EngineRequest) -> Result<Self> {
        Self::build(
            files,
            ["config.json", "model.safetensors", "tokenizer.json"].map(String::from),
            request,
        )
        .await
    }

    /// [`Self::create`], natively.
    #[cfg(not(target_family = "wasm"))]
    pub fn from_files(files: ModelFiles, request: EngineRequest) -> Result<Self> {
        crate::engine::block_on(Self::create(files, request))
    }

    /// The one place a model is put together from its three files (`origins`: how errors name
    /// config.json, model.safetensors and tokenizer.json); every check happens here, before
    /// anything large is allocated.
    async fn build(files: ModelFiles, origins: [String; 3], request: EngineRequest) -> Result<Self> {
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
        // Building an engine allocates every parameter: a config far larger than its weights
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
        let chosen = Engine::create(
            request,
            files.weights_safetensors,
            &config,
            tokenizer.pad_id(),
            &weights_origin,
        )
        .await?;
        let max_len = DEFAULT_MAX_LEN.min(config.max_position_embeddings);
        Ok(Self {
            engine: chosen.engine,
            engine_reason: chosen.reason,
            tokenizer,
            config,
            max_len: Cell::new(max_len),
            representation: Cell::new(Representation::default()),
            marking: Cell::new(Marking::default()),
            calibration: RefCell::new(None),
        })
    }

    /// Loads a checkpoint directory (`config.json`, `model.safetensors`, `tokenizer.json`),
    /// checking the files against `manifest.json` and following it when there is one.
    #[cfg(not(target_family = "wasm"))]
    pub fn load_dir(dir: &std::path::Path, request: EngineRequest) -> Result<Self> {
        if !dir.is_dir() {
            return Err(TkreError::Model(format!(
                "{} is not a directory; pass a checkpoint directory with config.json, \
                 model.safetensors and tokenizer.json (scripts/setup/fetch-base-model.sh installs the base model)",
                dir.display()
            )));
        }
        let manifest = Manifest::verify_dir(dir)?;
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
        let encoder = crate::engine::block_on(Self::build(
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
            request,
        ))?;
        if let Some(manifest) = manifest {
            encoder.follow_manifest(&manifest, &origin("manifest.json"))?;
        }
        Ok(encoder)
    }

    /// Uses the maximum length and representation an export's manifest gives (its markers and
    /// format were checked when it was parsed).
    pub fn follow_manifest(&self, manifest: &Manifest, origin: &str) -> Result<()> {
        let representation: Representation = manifest.representation.parse().map_err(|e| {
            TkreError::Model(format!(
                "{origin}: \"representation\": {e}; update the package or export the model again"
            ))
        })?;
        let max_len = manifest.max_length.min(self.config.max_position_embeddings);
        self.set_max_len(max_len)?;
        self.set_representation(representation);
        if let Some(calibration) = &manifest.calibration {
            calibration.check(origin)?;
        }
        self.calibration.replace(manifest.calibration.clone());
        Ok(())
    }

    /// The model's score calibration (temperature and recommended none-of-the-above
    /// threshold), when its manifest has one.
    pub fn calibration(&self) -> Option<Calibration> {
        self.calibration.borrow().clone()
    }

    /// Maximum tokens per sequence, [CLS]/[SEP] included.
    pub fn max_len(&self) -> usize {
        self.max_len.get()
    }

    /// Sets the maximum sequence length, [CLS]/[SEP] included: at least
    /// [`crate::checkpoint::MIN_POSITIONS`] and at most the model's position table.
    pub fn set_max_len(&self, max_len: usize) -> Result<()> {
        let (low, high) = (
            crate::checkpoint::MIN_POSITIONS,
            self.config.max_position_embeddings,
        );
        if !(low..=high).contains(&max_len) {
            return Err(TkreError::Option(format!(
                "maximum length {max_len}: give {low} to {high} tokens (this model's position table holds {high})"
            )));
        }
        self.max_len.set(max_len);
        Ok(())
    }

    /// How relation instances become vectors.
    pub fn representation(&self) -> Representation {
        self.representation.get()
    }

    pub fn set_representation(&self, representation: Representation) {
        self.representation.set(representation);
    }

    pub fn marking(&self) -> Marking {
        self.marking.get()
    }

    pub fn set_marking(&self, marking: Marking) {
        self.marking.set(marking);
    }

    /// Token ids and mean-pooling plan for sentence embeddings.
    pub fn plan_sentences(&self, texts: &[String]) -> Result<PoolingPlan> {
        let max_len = self.max_len();
        let mut ids = Vec::with_capacity(texts.len());
        for text in texts {
            let (sequence, truncated) = encode_sentence(&self.tokenizer, text, max_len)?;
            if truncated {
                log::warn!("sentence cut to {max_len} tokens: {text:.60}...");
            }
            ids.push(sequence);
        }
        Ok(PoolingPlan::sentence_means(ids))
    }

    /// Token ids and pooling plan for relation instances, per [`Self::representation`] and
    /// [`Self::marking`].
    pub fn plan_instances(&self, instances: &[RelationInstance]) -> Result<PoolingPlan> {
        self.plan_instances_marked(instances, self.marking())
    }

    /// [`Self::plan_instances`] with the entities shown as `marking` says.
    pub fn plan_instances_marked(
        &self,
        instances: &[RelationInstance],
        marking: Marking,
    ) -> Result<PoolingPlan> {
        let (max_len, representation) = (self.max_len(), self.representation());
        let mut ids = Vec::with_capacity(instances.len());
        let mut weights = Vec::with_capacity(instances.len());
        for instance in instances {
            let encoded = marking.encode(&self.tokenizer, instance, max_len)?;
            if encoded.truncated {
                log::warn!(
                    "sentence longer than {max_len} tokens: kept a window around both entities: {:.60}...",
                    instance.text
                );
            }
            weights.push(representation.pooling_weights(&encoded));
            ids.push(encoded.ids);
        }
        Ok(PoolingPlan {
            ids,
            weights,
            parts: representation.parts().len(),
        })
    }

    /// Runs `plan` through the engine in batches of at most `batch_size` sequences (each batch
    /// in the passes the engine wants), calling `on_batch(sequences_done)` after each batch;
    /// returns one vector per sequence, in the plan's order, each part L2-normalised.
    pub async fn encode_plan(
        &self,
        plan: &PoolingPlan,
        batch_size: usize,
        mut on_batch: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let h = self.config.hidden_size;
        let width = plan.parts * h;
        let mut pooled = vec![0.0f32; plan.ids.len() * width];
        let batches: Vec<Vec<usize>> = match self.engine.batching() {
            crate::engine::Batching::Ragged => (0..plan.ids.len())
                .collect::<Vec<_>>()
                .chunks(batch_size.max(1))
                .map(<[usize]>::to_vec)
                .collect(),
            crate::engine::Batching::Padded => plan.length_groups(batch_size.max(1)),
        };
        for batch in batches {
            let sub = plan.select(&batch);
            let mut values = vec![0.0f32; batch.len() * width];
            for pass in sub.passes(crate::engine::Batching::Ragged) {
                let sequences: Vec<&[u32]> = pass.iter().map(|&i| sub.ids[i].as_slice()).collect();
                let hidden = self.engine.forward(&sequences).await?;
                sub.pool_pass(&pass, &hidden, h, &mut values)?;
            }
            for (&i, chunk) in batch.iter().zip(values.chunks(width)) {
                pooled[i * width..][..width].copy_from_slice(chunk);
            }
            on_batch(batch.len());
        }
        Ok(pooled
            .chunks(width.max(1))
            .take(plan.ids.len())
            .map(|chunk| {
                let mut v = chunk.to_vec();
                normalize_parts(&mut v, plan.parts);
                v
            })
            .collect())
    }

    /// Each text read by the encoder once, unmarked: its word pieces, token ids and last
    /// states; `None` for a text longer than the maximum length.
    pub async fn sentence_states(&self, texts: &[String]) -> Result<Vec<Option<SentenceStates>>> {
        let max_len = self.max_len();
        let mut out: Vec<Option<SentenceStates>> = Vec::with_capacity(texts.len());
        let mut pending = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let pieces = self.tokenizer.pieces(text)?;
            if pieces.ids.len() + 2 <= max_len {
                let ids = self.tokenizer.with_special_tokens(&pieces.ids);
                pending.push(i);
                out.push(Some(SentenceStates {
                    pieces,
                    ids,
                    states: Vec::new(),
                }));
            } else {
                out.push(None);
            }
        }
        for chunk in pending.chunks(32) {
            let sequences: Vec<Vec<u32>> = chunk
                .iter()
                .filter_map(|&i| out[i].as_ref().map(|s| s.ids.clone()))
                .collect();
            let states = self.hidden_states_async(&sequences).await?;
            for (&i, states) in chunk.iter().zip(states) {
                if let Some(sentence) = &mut out[i] {
                    sentence.states = states;
                }
            }
        }
        Ok(out)
    }

    /// Unmarked relation representations of many pairs of mentions that share sentences: each
    /// sentence of `texts` is read by the encoder once, and every pair `(sentence, head, tail)`
    /// (spans relative to its sentence) is pooled from that one pass, so the cost grows with
    /// sentences, not pairs. Returns one vector per pair, in order.
    pub async fn encode_sentence_pairs(
        &self,
        texts: &[String],
        pairs: &[(usize, CharSpan, CharSpan)],
    ) -> Result<Vec<Vec<f32>>> {
        let states = self.sentence_states(texts).await?;
        self.pool_sentence_pairs(texts, &states, pairs).await
    }

    /// [`Self::encode_sentence_pairs`] from states already read ([`Self::sentence_states`]). A
    /// sentence without states (longer than the maximum length) falls back to one windowed
    /// sequence per pair.
    pub async fn pool_sentence_pairs(
        &self,
        texts: &[String],
        states: &[Option<SentenceStates>],
        pairs: &[(usize, CharSpan, CharSpan)],
    ) -> Result<Vec<Vec<f32>>> {
        let representation = self.representation();
        let parts = representation.parts().len();
        let h = self.config.hidden_size;
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); pairs.len()];
        let long: Vec<usize> = (0..pairs.len())
            .filter(|&i| states[pairs[i].0].is_none())
            .collect();
        if !long.is_empty() {
            let instances = long
                .iter()
                .map(|&i| {
                    let (s, head, tail) = pairs[i];
                    RelationInstance::from_offsets(texts[s].clone(), head, tail)
                })
                .collect::<Result<Vec<_>>>()?;
            let plan = self.plan_instances_marked(&instances, Marking::Unmarked)?;
            let encoded = self.encode_plan(&plan, 64, |_| {}).await?;
            for (i, v) in long.into_iter().zip(encoded) {
                vectors[i] = v;
            }
        }
        for (i, &(s, head, tail)) in pairs.iter().enumerate() {
            let Some(sentence) = &states[s] else {
                continue;
            };
            let ranges = piece_ranges(&texts[s], &sentence.pieces, &[head, tail])?;
            // +1: [CLS] comes first.
            let moved = |r: &std::ops::Range<usize>| r.start + 1..r.end + 1;
            let instance = EncodedInstance {
                ids: sentence.ids.clone(),
                head_marker: ranges[0].start + 1,
                head: moved(&ranges[0]),
                tail_marker: ranges[1].start + 1,
                tail: moved(&ranges[1]),
                truncated: false,
            };
            let mut vector = Vec::with_capacity(parts * h);
            for part in representation.pooling_weights(&instance) {
                let mut pooled = vec![0.0f32; h];
                for (position, weight) in part {
                    for (p, x) in pooled.iter_mut().zip(&sentence.states[position * h..][..h]) {
                        *p += weight * x;
                    }
                }
                vector.extend(pooled);
            }
            normalize_parts(&mut vector, parts);
            vectors[i] = vector;
        }
        Ok(vectors)
    }

    /// Last hidden states of token-id sequences (one pass): for each sequence a
    /// `[len, hidden]` row-major matrix.
    pub async fn hidden_states_async(&self, sequences: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let h = self.config.hidden_size;
        let slices: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let values = self.engine.forward(&slices).await?;
        let mut rows = values.chunks_exact(h);
        Ok(sequences
            .iter()
            .map(|ids| rows.by_ref().take(ids.len()).flatten().copied().collect())
            .collect())
    }
}

/// The synchronous API of the native callers (CLI, evaluation, tests).
#[cfg(not(target_family = "wasm"))]
impl RelationEncoder {
    /// [`Self::encode_plan`] without progress.
    pub fn run_plan(&self, plan: &PoolingPlan, batch_size: usize) -> Result<Vec<Vec<f32>>> {
        self.run_plan_with_progress(plan, batch_size, |_| {})
    }

    /// [`Self::encode_plan`].
    pub fn run_plan_with_progress(
        &self,
        plan: &PoolingPlan,
        batch_size: usize,
        on_batch: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        crate::engine::block_on(self.encode_plan(plan, batch_size, on_batch))
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

    /// [`Self::hidden_states_async`].
    pub fn hidden_states(&self, sequences: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        crate::engine::block_on(self.hidden_states_async(sequences))
    }
}
