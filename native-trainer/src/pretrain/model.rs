//! The model being pre-trained: the project's one BERT encoder, the MLM head (both saved in
//! Hugging Face `BertForMaskedLM` layout: `bert.*`, `cls.*`), and in stage 2 the span-level
//! contrastive head (training only; the saved encoder does not need it).

use burn::module::{ModuleVisitor, Param, ParamId};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};
use tkre::model::pooling::{l2_normalize, mean_pool};
use tkre::model::{BertModel, EncoderBatch, EncoderConfig, MlmHead, MlmHeadConfig};

/// Linear-ReLU-Linear, shared by anchors and spans before the similarity.
#[derive(Module, Debug)]
pub struct SpanProjection {
    pub first: Linear,
    pub second: Linear,
}

impl SpanProjection {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.second.forward(relu(self.first.forward(x)))
    }
}

/// One learned anchor per relation and the shared projection.
#[derive(Module, Debug)]
pub struct SpanContrastHead {
    pub anchors: Embedding,
    pub projection: SpanProjection,
}

/// Builds a [`SpanContrastHead`].
#[derive(Config, Debug)]
pub struct SpanContrastHeadConfig {
    pub hidden_size: usize,
    pub relations: usize,
}

impl SpanContrastHeadConfig {
    pub fn init(&self, device: &Device) -> SpanContrastHead {
        let h = self.hidden_size;
        SpanContrastHead {
            anchors: EmbeddingConfig::new(self.relations, h).init(device),
            projection: SpanProjection {
                first: LinearConfig::new(h, h).init(device),
                second: LinearConfig::new(h, h).init(device),
            },
        }
    }
}

impl SpanContrastHead {
    /// SCL loss: for each sample, cross-entropy over `[sim(anchor, positive),
    /// sim(anchor, negative)] / temperature` with the positive as the target, where `sim` is
    /// the cosine of the projected vectors; averaged over samples with `weights` 1 (samples
    /// with no relation span, no negative span or no relation label have weight 0).
    ///
    /// `hidden`: `[batch, seq, hidden]`; `positive`/`negative`: `[batch, seq]` mean-pooling
    /// weights (each row sums to 1, or is all 0 for an excluded sample); `relations`:
    /// `[batch]` anchor ids; `weights`: `[batch]`.
    pub fn loss(
        &self,
        hidden: Tensor<3>,
        positive: Tensor<2>,
        negative: Tensor<2>,
        relations: Tensor<1, Int>,
        weights: Tensor<1>,
        temperature: f64,
    ) -> Tensor<1> {
        let [batch, _, h] = hidden.dims();
        let pool = |w: Tensor<2>| w.unsqueeze_dim::<3>(1).matmul(hidden.clone()).reshape([batch, h]);
        let project = |x: Tensor<2>| l2_normalize(self.projection.forward(x));
        let anchor = project(
            self.anchors
                .forward(relations.reshape([1, batch]))
                .reshape([batch, h]),
        );
        let positive = project(pool(positive));
        let negative = project(pool(negative));
        let sim_pos = (anchor.clone() * positive).sum_dim(1) / temperature;
        let sim_neg = (anchor * negative).sum_dim(1) / temperature;
        let logits = Tensor::cat(vec![sim_pos, sim_neg], 1);
        let nll = log_softmax(logits, 1).slice(s![.., 0..1]).reshape([batch]).neg();
        let count = weights.clone().sum().clamp_min(1.0);
        (nll * weights).sum() / count
    }
}

/// Encoder + MLM head (+ SCL head in stage 2).
#[derive(Module, Debug)]
pub struct PretrainModel {
    pub bert: BertModel,
    pub cls: MlmHead,
    pub scl: Option<SpanContrastHead>,
}

/// A batch ready for the model: padded, masked inputs and what to predict.
#[derive(Debug, Clone)]
pub struct PretrainBatch {
    pub encoder: EncoderBatch,
    /// Flat positions (`row * seq + column`) of the masked tokens, `[masked]`.
    pub masked_positions: Tensor<1, Int>,
    /// Their original token ids, `[masked]`.
    pub masked_targets: Tensor<1, Int>,
    pub masked: usize,
    /// SCL inputs (see [`SpanContrastHead::loss`]).
    pub positive: Tensor<2>,
    pub negative: Tensor<2>,
    pub relations: Tensor<1, Int>,
    pub scl_weights: Tensor<1>,
    pub scl_samples: usize,
    /// Real (unpadded) tokens in the batch.
    pub tokens: usize,
    /// Distillation and the relation stage: the relation representation's pooling weights,
    /// `[batch, parts, seq]` (rows sum to 1 over a part's tokens, as the classifier pools).
    pub pooling: Option<Tensor<3>>,
    /// The relation stage: labels and relation texts (see [`relation_losses`]).
    pub relation: Option<RelationBatch>,
}

/// What the relation stage adds to a batch.
#[derive(Debug, Clone)]
pub struct RelationBatch {
    /// `[batch, batch]`: 1 where two different rows share a relation (the positives).
    pub positives: Tensor<2>,
    /// Rows with at least one positive.
    pub anchored: usize,
    /// The texts ("name: description") of the relations in the batch that have one, as one
    /// encoder batch, with `[rows]` the index of each row's relation text and `[rows]` 1.0
    /// for rows whose relation has text.
    pub texts: Option<(EncoderBatch, Tensor<1, Int>, Tensor<1>)>,
    pub with_text: usize,
}

/// The weights of one step's losses (for one shard of a data-parallel step: the configured
/// weights times the shard's share of what each loss averages over).
#[derive(Debug, Clone, Copy)]
pub struct LossWeights {
    pub mslm: f64,
    pub scl: f64,
    /// The relation stage: supervised contrastive and relation-text alignment.
    pub contrastive: f64,
    pub text: f64,
    pub distill: f64,
    pub hidden: f64,
    pub temperature: f64,
}

/// The losses of one step; `total` carries the gradients.
pub struct PretrainLosses {
    pub total: Tensor<1>,
    pub mslm: Option<Tensor<1>>,
    pub scl: Option<Tensor<1>>,
    /// Distillation: 1 - cosine of the relation representation parts, mean.
    pub distill: Option<Tensor<1>>,
    /// Distillation: normalised mean squared hidden-state difference over real tokens.
    pub hidden: Option<Tensor<1>>,
    /// The relation stage: supervised contrastive loss over relation representations.
    pub contrastive: Option<Tensor<1>>,
    /// The relation stage: alignment of each instance with its relation's text.
    pub text: Option<Tensor<1>>,
}

impl PretrainModel {
    /// A freshly initialised model. burn initialises parameters lazily, on first use, from
    /// the device's random generator as it is then; every parameter is drawn here instead, so
    /// the initial values depend only on the generator's state now (not on what runs first
    /// later, e.g. forking replicas for data-parallel training).
    pub fn new(config: &EncoderConfig, relations: usize, device: &Device) -> Self {
        struct Draw;
        impl ModuleVisitor for Draw {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let _ = param.val();
            }
        }
        let model = Self {
            bert: config.init(device),
            cls: MlmHeadConfig::for_encoder(config).init(device),
            scl: (relations > 0)
                .then(|| SpanContrastHeadConfig::new(config.hidden_size, relations).init(device)),
        };
        model.visit(&mut Draw);
        model
    }

    /// MSLM loss (mean cross-entropy over the masked tokens), SCL loss and, with a teacher,
    /// the distillation losses, weighted.
    pub fn losses(
        &self,
        batch: &PretrainBatch,
        weights: &LossWeights,
        teacher: Option<&BertModel>,
    ) -> PretrainLosses {
        let hidden = self.bert.forward(&batch.encoder);
        let [b, seq, h] = hidden.dims();
        let mslm = (batch.masked > 0).then(|| {
            let states = hidden
                .clone()
                .reshape([b * seq, h])
                .select(0, batch.masked_positions.clone());
            let logits = self
                .cls
                .forward(states, self.bert.embeddings.word_embeddings.weight.val());
            let log_probs = log_softmax(logits, 1);
            let picked = log_probs.gather(1, batch.masked_targets.clone().reshape([batch.masked, 1]));
            picked.mean().neg()
        });
        let scl = match (&self.scl, batch.scl_samples > 0 && weights.scl > 0.0) {
            (Some(head), true) => Some(head.loss(
                hidden.clone(),
                batch.positive.clone(),
                batch.negative.clone(),
                batch.relations.clone(),
                batch.scl_weights.clone(),
                weights.temperature,
            )),
            _ => None,
        };
        let (contrastive, text) = match (&batch.relation, &batch.pooling) {
            (Some(relation), Some(pooling)) => {
                let texts = relation.texts.as_ref().map(|(encoder, targets, weights)| {
                    let states = self.bert.forward(encoder);
                    (
                        mean_pool(states, &encoder.attention_mask),
                        targets.clone(),
                        weights.clone(),
                    )
                });
                relation_losses(hidden.clone(), pooling, relation, texts, weights.temperature)
            }
            _ => (None, None),
        };
        let (distill, hidden_loss) = match (teacher, &batch.pooling) {
            (Some(teacher), Some(pooling)) => {
                let (distill, hidden_loss) = distillation_losses(
                    hidden,
                    teacher.forward(&batch.encoder).detach(),
                    pooling,
                    &batch.encoder.attention_mask,
                );
                (Some(distill), Some(hidden_loss))
            }
            _ => (None, None),
        };
        let device = batch.encoder.input_ids.device();
        let mut total = Tensor::<1>::zeros([1], &device);
        for (loss, weight) in [
            (&mslm, weights.mslm),
            (&scl, weights.scl),
            (&distill, weights.distill),
            (&hidden_loss, weights.hidden),
            (&contrastive, weights.contrastive),
            (&text, weights.text),
        ] {
            if let Some(loss) = loss {
                total = total + loss.clone() * weight;
            }
        }
        PretrainLosses {
            total,
            mslm,
            scl,
            distill,
            hidden: hidden_loss,
            contrastive,
            text,
        }
    }
}

/// The relation stage's losses, on the classifier's own relation representation (the
/// `pooling` parts, each L2-normalised, concatenated and scaled to unit length, so a dot
/// product is the mean cosine of the parts):
/// - contrastive: supervised contrastive loss (Khosla et al. 2020) over the batch: for each
///   row with positives, the mean over its positives p of -log softmax_{a != i}(r_i.r_a / t)
///   at p. Other relations' instances are the negatives, as in an N-way episode;
/// - text: each row's mean part cosine with every relation text of the batch, over t, is a
///   softmax whose target is the row's own relation: the instance learns to sit where
///   relation-text fusion puts the text (in every part).
///
/// `texts`: the text embeddings `[relations, hidden]`, each row's text index and weight.
pub fn relation_losses(
    hidden: Tensor<3>,
    pooling: &Tensor<3>,
    relation: &RelationBatch,
    texts: Option<(Tensor<2>, Tensor<1, Int>, Tensor<1>)>,
    temperature: f64,
) -> (Option<Tensor<1>>, Option<Tensor<1>>) {
    let [b, _, h] = hidden.dims();
    let parts = pooling.dims()[1];
    let pooled = pooling.clone().matmul(hidden);
    let norm = pooled.clone().powf_scalar(2.0).sum_dim(2).sqrt().clamp_min(1e-12);
    let unit_parts = pooled / norm;
    let device = unit_parts.device();
    let contrastive = (relation.anchored > 0).then(|| {
        let reps = unit_parts.clone().reshape([b, parts * h]) / (parts as f64).sqrt();
        let diagonal = Tensor::<2>::eye(b, &device) * -1e4;
        let logits = reps.clone().matmul(reps.transpose()) / temperature + diagonal;
        let log_probs = log_softmax(logits, 1);
        let positives = relation.positives.clone();
        let counts = positives.clone().sum_dim(1).reshape([b]);
        let anchored = counts.clone().greater_elem(0.0).float();
        let per_row = (positives * log_probs).sum_dim(1).reshape([b]).neg() / counts.clamp_min(1.0);
        (per_row * anchored).sum() / (relation.anchored as f64)
    });
    let text = texts
        .filter(|_| relation.with_text > 0)
        .map(|(embeddings, targets, weights)| {
            let r = embeddings.dims()[0];
            let norm = embeddings
                .clone()
                .powf_scalar(2.0)
                .sum_dim(1)
                .sqrt()
                .clamp_min(1e-12);
            let unit_texts = embeddings / norm;
            let cosines = unit_parts
                .reshape([b * parts, h])
                .matmul(unit_texts.transpose())
                .reshape([b, parts, r])
                .mean_dim(1)
                .reshape([b, r]);
            let log_probs = log_softmax(cosines / temperature, 1);
            let picked = log_probs.gather(1, targets.reshape([b, 1])).reshape([b]).neg();
            (picked * weights).sum() / (relation.with_text as f64)
        });
    (contrastive, text)
}

/// Distillation losses of a student's last hidden states against the teacher's (same shape):
/// - representation: the classifier's relation representation parts (pooled with `pooling`,
///   `[batch, parts, seq]`), each L2-normalised as the classifier does; loss = mean over
///   instances and parts of 1 - cosine;
/// - hidden: mean over real tokens of the squared difference, divided by the teacher's mean
///   squared state so the loss is scale-free (about 1 for unrelated states).
pub fn distillation_losses(
    student: Tensor<3>,
    teacher: Tensor<3>,
    pooling: &Tensor<3>,
    attention_mask: &Tensor<2>,
) -> (Tensor<1>, Tensor<1>) {
    let [b, seq, _] = student.dims();
    let parts = pooling.dims()[1];
    let normalise = |x: Tensor<3>| {
        let norm = x.clone().powf_scalar(2.0).sum_dim(2).sqrt().clamp_min(1e-12);
        x / norm
    };
    let student_rep = normalise(pooling.clone().matmul(student.clone()));
    let teacher_rep = normalise(pooling.clone().matmul(teacher.clone()));
    let cosine = (student_rep * teacher_rep).sum_dim(2).reshape([b * parts]);
    let representation = cosine.neg().add_scalar(1.0).mean();

    let mask = attention_mask.clone().reshape([b, seq, 1]);
    let tokens = attention_mask.clone().sum().clamp_min(1.0);
    let squared = (student - teacher.clone()).powf_scalar(2.0) * mask.clone();
    let scale = (teacher.powf_scalar(2.0) * mask).sum() / tokens.clone();
    let hidden = squared.sum() / tokens / scale.clamp_min(1e-12);
    (representation, hidden)
}

/// Scales all gradients together so that their global L2 norm is at most `max_norm` (as
/// PyTorch's `clip_grad_norm_`; burn's own clipping is per tensor). Returns the norm before
/// clipping.
pub fn clip_global_norm<M: Module>(
    module: &M,
    grads: GradientsParams,
    max_norm: f64,
) -> (GradientsParams, f64) {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        squares: Vec<Tensor<1>>,
        ids: Vec<(ParamId, usize)>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                self.squares.push(grad.powf_scalar(2.0).sum());
                self.ids.push((param.id, D));
            }
        }
    }
    let mut collect = Collect {
        grads: &grads,
        squares: Vec::new(),
        ids: Vec::new(),
    };
    module.visit(&mut collect);
    let Collect { squares, ids, .. } = collect;
    if squares.is_empty() {
        return (grads, 0.0);
    }
    let norm = Tensor::cat(squares, 0).sum().sqrt().into_scalar::<f32>() as f64;
    let scale = max_norm / (norm + 1e-6);
    if max_norm <= 0.0 || scale >= 1.0 || !norm.is_finite() {
        return (grads, norm);
    }
    let mut grads = grads;
    for (id, rank) in ids {
        match rank {
            1 => rescale::<1>(&mut grads, id, scale),
            2 => rescale::<2>(&mut grads, id, scale),
            3 => rescale::<3>(&mut grads, id, scale),
            4 => rescale::<4>(&mut grads, id, scale),
            _ => {}
        }
    }
    (grads, norm)
}

fn rescale<const D: usize>(grads: &mut GradientsParams, id: ParamId, scale: f64) {
    if let Some(grad) = grads.remove::<D>(id) {
        grads.register(id, grad * scale);
    }
}
