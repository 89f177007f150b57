//! Prototype classification: each relation is the mean of its examples' representations (with
//! its text, when it has some, as one more example), and a query scores by its distance to
//! each prototype.

use serde::Serialize;

use crate::error::{Result, TkreError};
use crate::fewshot::calibration;
use crate::fewshot::relation_text::TEXT_WEIGHT;

/// Softmax temperature on similarities for a model without a [`calibration::Calibration`];
/// similarities differ by a few hundredths between close relations, so a small temperature
/// spreads the probabilities.
pub const DEFAULT_TEMPERATURE: f32 = 0.05;

/// One relation's score for a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelationScore {
    pub relation: String,
    /// Softmax over all relations at the temperature, with "no relation" as one more class
    /// when a none-of-the-above threshold is set ([`crate::fewshot::calibration`]): the
    /// relations' probabilities and [`Prediction::none_probability`] sum to 1.
    pub probability: f32,
    /// `1 - d²/(2P)` for squared Euclidean distance `d²` between the query and the prototype
    /// and `P` normalised parts: the mean cosine similarity of the parts when the prototype
    /// is a single example. In `[-1, 1]`.
    pub similarity: f32,
}

/// The classification of one query, best relation first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub ranked: Vec<RelationScore>,
    /// True when a threshold is set and the best similarity is below it.
    pub none_of_the_above: bool,
    /// The probability of no relation (0 without a threshold).
    pub none_probability: f32,
}

impl Prediction {
    pub fn best(&self) -> Option<&RelationScore> {
        self.ranked.first()
    }

    pub fn top_k(&self, k: usize) -> &[RelationScore] {
        &self.ranked[..k.min(self.ranked.len())]
    }
}

/// Relation prototypes, ready to score queries.
#[derive(Debug, Clone, PartialEq)]
pub struct PrototypeClassifier {
    names: Vec<String>,
    prototypes: Vec<Vec<f32>>,
    /// Per relation: its text alone as a prototype, kept for relations with examples *and*
    /// text (they measure the query's gap between the two scales, see [`Self::classify`]).
    text_prototypes: Vec<Option<Vec<f32>>>,
    /// Per relation: true when it has text and no examples.
    text_only: Vec<bool>,
    parts: usize,
    /// The weight of relation text in prototypes with examples, after [`text_agreement`].
    text_weight: f32,
    pub temperature: f32,
    pub none_threshold: Option<f32>,
}

/// Mean of equal-length vectors.
pub fn mean_vector(vectors: &[Vec<f32>]) -> Vec<f32> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut mean = vec![0.0; dim];
    for v in vectors {
        mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
    }
    let n = vectors.len().max(1) as f32;
    mean.iter_mut().for_each(|m| *m /= n);
    mean
}

pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// One relation as vectors: its examples' representations and, when it has text, the text's
/// sentence embedding (one part wide).
#[derive(Debug, Clone, PartialEq)]
pub struct RelationVectors {
    pub key: String,
    pub examples: Vec<Vec<f32>>,
    pub text: Option<Vec<f32>>,
}

impl RelationVectors {
    pub fn new(key: impl Into<String>, examples: Vec<Vec<f32>>, text: Option<Vec<f32>>) -> Self {
        Self {
            key: key.into(),
            examples,
            text,
        }
    }
}

/// The prototype of `examples` and optional `text` (one part wide): the mean of the examples
/// with the text counted as `text_weight` more examples whose every part is the text.
pub fn fused_prototype(
    examples: &[Vec<f32>],
    text: Option<&[f32]>,
    parts: usize,
    text_weight: f32,
) -> Vec<f32> {
    let Some(text) = text.filter(|_| text_weight > 0.0) else {
        return mean_vector(examples);
    };
    let dim = text.len() * parts.max(1);
    let mut sum = vec![0.0; dim];
    for v in examples {
        sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
    }
    for chunk in sum.chunks_mut(text.len().max(1)) {
        chunk
            .iter_mut()
            .zip(text)
            .for_each(|(s, t)| *s += text_weight * t);
    }
    let total = examples.len() as f32 + text_weight;
    sum.iter_mut().for_each(|s| *s /= total);
    sum
}

/// How well the relations' texts alone classify the set's own examples, from chance (0) to all
/// of them right (1; below 0 when worse than chance): each example of a relation with text is
/// matched to its nearest text. `None` when it cannot be told: fewer than two relations with
/// text, or no example of one. The classifier gives text the weight
/// `w * clamp(2 * agreement, 0, 1)`: full weight from half-way between chance and perfect,
/// none at chance. On the selection data with the texts shuffled between relations, a fixed
/// weight cost 7-8 points at 1-shot; this keeps the examples-only accuracy, and gives up 0.1-0.2
/// of the gain with the right texts (`docs/support-sets.md`).
pub fn text_agreement(relations: &[RelationVectors], parts: usize) -> Option<f32> {
    let texts: Vec<(usize, Vec<f32>)> = relations
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.text
                .as_deref()
                .map(|t| (i, fused_prototype(&[], Some(t), parts, 1.0)))
        })
        .collect();
    if texts.len() < 2 {
        return None;
    }
    let (mut hits, mut total) = (0usize, 0usize);
    for (i, relation) in relations.iter().enumerate().filter(|(_, r)| r.text.is_some()) {
        for example in &relation.examples {
            let nearest = texts
                .iter()
                .map(|(j, t)| (*j, squared_distance(example, t)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(j, _)| j);
            hits += usize::from(nearest == Some(i));
            total += 1;
        }
    }
    if total == 0 {
        return None;
    }
    let chance = 1.0 / texts.len() as f32;
    Some((hits as f32 / total as f32 - chance) / (1.0 - chance))
}

impl PrototypeClassifier {
    /// `relations`: each relation's key, its examples' representations (each made of `parts`
    /// L2-normalised parts) and its text's embedding. The text joins the prototype with
    /// weight [`TEXT_WEIGHT`] ([`crate::fewshot::relation_text`]); a relation needs examples,
    /// text, or both.
    pub fn new(relations: Vec<RelationVectors>, parts: usize) -> Result<Self> {
        Self::with_text_weight(relations, parts, TEXT_WEIGHT)
    }

    /// [`Self::new`] with another weight for relation text (0 ignores it), before
    /// [`text_agreement`] scales it.
    pub fn with_text_weight(relations: Vec<RelationVectors>, parts: usize, text_weight: f32) -> Result<Self> {
        if relations.is_empty() {
            return Err(TkreError::SupportSet("no relations to classify into".into()));
        }
        let parts = parts.max(1);
        let dim = relations
            .iter()
            .find_map(|r| {
                r.examples
                    .first()
                    .map(Vec::len)
                    .or_else(|| r.text.as_ref().map(|t| t.len() * parts))
            })
            .unwrap_or(0);
        let mut relations = relations;
        for r in &mut relations {
            if text_weight <= 0.0 {
                r.text = None;
            }
            if r.examples.is_empty() && r.text.is_none() {
                return Err(TkreError::SupportSet(format!(
                    "relation {:?} has no examples and no text; give it an example, a name or a description",
                    r.key
                )));
            }
            let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
            if !r.examples.iter().all(|v| finite(v)) || !r.text.as_deref().is_none_or(finite) {
                return Err(TkreError::Model(format!(
                    "relation {:?}: a representation holds NaN or infinity; the model's weights are broken",
                    r.key
                )));
            }
            if r.examples.iter().any(|v| v.len() != dim)
                || r.text.as_ref().is_some_and(|t| t.len() * parts != dim)
            {
                return Err(TkreError::SupportSet(format!(
                    "relation {:?}: vectors differ in length (encoded by another model?)",
                    r.key
                )));
            }
        }
        // Text that does not recognise the set's own examples would pull the prototypes
        // astray: its weight falls to 0 as that agreement falls to chance.
        let text_weight = match text_agreement(&relations, parts) {
            Some(agreement) => text_weight * (2.0 * agreement).clamp(0.0, 1.0),
            None => text_weight,
        };
        let mut names = Vec::with_capacity(relations.len());
        let mut prototypes = Vec::with_capacity(relations.len());
        let mut text_prototypes = Vec::with_capacity(relations.len());
        let mut text_only = Vec::with_capacity(relations.len());
        for RelationVectors { key, examples, text } in relations {
            let text_only_relation = examples.is_empty();
            let weight = if text_only_relation { 1.0 } else { text_weight };
            prototypes.push(fused_prototype(&examples, text.as_deref(), parts, weight));
            text_only.push(text_only_relation);
            text_prototypes.push(
                text.as_deref()
                    .filter(|_| !text_only_relation)
                    .map(|t| fused_prototype(&[], Some(t), parts, 1.0)),
            );
            names.push(key);
        }
        Ok(Self {
            names,
            prototypes,
            text_prototypes,
            text_only,
            parts,
            text_weight,
            temperature: DEFAULT_TEMPERATURE,
            none_threshold: None,
        })
    }

    /// Uses a model's calibration: its temperature, and its none-of-the-above threshold
    /// unless one is set already.
    pub fn calibrate(&mut self, calibration: &calibration::Calibration) {
        self.temperature = calibration.temperature;
        self.none_threshold = self.none_threshold.or(Some(calibration.none_similarity));
    }

    /// Uses `threshold` as the none-of-the-above similarity instead of the set's or the
    /// model's.
    pub fn set_none_threshold(&mut self, threshold: Option<f32>) {
        self.none_threshold = threshold;
    }

    /// The weight relation text got in the prototypes of relations with examples (see
    /// [`text_agreement`]).
    pub fn text_weight(&self) -> f32 {
        self.text_weight
    }

    pub fn relation_names(&self) -> &[String] {
        &self.names
    }

    /// Scores every relation for `query`.
    ///
    /// A description is not a sentence about two entities, so a query's similarity to a
    /// relation's text alone runs lower than to a prototype with examples (about 0.25 against
    /// 0.45 with the base model), and in a set that mixes the two a text-only relation would
    /// almost never win (6% of its queries on the selection data of
    /// [`crate::fewshot::relation_text`]). So a text-only relation's similarity is put on the
    /// scale of the others: its text similarity plus, for this query, the mean gap between the
    /// fused and the text-alone similarity of the relations that have both (clamped to
    /// [-1, 1]). With no such relation (all text-only, or the others without text) it is left
    /// as is.
    pub fn classify(&self, query: &[f32]) -> Result<Prediction> {
        if !query.iter().all(|x| x.is_finite()) {
            return Err(TkreError::Model(
                "the query's representation holds NaN or infinity; the model's weights are broken".into(),
            ));
        }
        let dim = self.prototypes[0].len();
        if query.len() != dim {
            return Err(TkreError::SupportSet(format!(
                "query vector has {} dimensions, prototypes have {dim}",
                query.len()
            )));
        }
        let similarity = |p: &[f32]| 1.0 - squared_distance(query, p) / (2.0 * self.parts as f32);
        let mut similarities: Vec<f32> = self.prototypes.iter().map(|p| similarity(p)).collect();
        if self.text_only.iter().any(|&t| t) {
            let gaps: Vec<f32> = self
                .text_prototypes
                .iter()
                .zip(&similarities)
                .filter_map(|(t, &fused)| t.as_deref().map(|t| fused - similarity(t)))
                .collect();
            if !gaps.is_empty() {
                let gap = gaps.iter().sum::<f32>() / gaps.len() as f32;
                for (s, _) in similarities.iter_mut().zip(&self.text_only).filter(|(_, t)| **t) {
                    *s = (*s + gap).clamp(-1.0, 1.0);
                }
            }
        }
        let max = similarities.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let (probabilities, none_probability) =
            calibration::probabilities(&similarities, self.temperature, self.none_threshold);
        let mut ranked: Vec<RelationScore> = self
            .names
            .iter()
            .zip(similarities.iter().zip(&probabilities))
            .map(|(name, (&similarity, &probability))| RelationScore {
                relation: name.clone(),
                probability,
                similarity,
            })
            .collect();
        ranked.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        let none_of_the_above = self.none_threshold.is_some_and(|t| max < t);
        Ok(Prediction {
            ranked,
            none_of_the_above,
            none_probability,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(key: &str, examples: Vec<Vec<f32>>) -> RelationVectors {
        RelationVectors::new(key, examples, None)
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn probabilities_sum_to_one_and_rank_by_similarity() {
        let c = PrototypeClassifier::new(
            vec![
                rel("a", vec![unit(&[1.0, 0.0]), unit(&[0.9, 0.1])]),
                rel("b", vec![unit(&[0.0, 1.0])]),
                rel("c", vec![unit(&[-1.0, 0.2])]),
            ],
            1,
        )
        .unwrap();
        let p = c.classify(&unit(&[0.8, 0.3])).unwrap();
        let total: f32 = p.ranked.iter().map(|s| s.probability).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert_eq!(p.best().unwrap().relation, "a");
        assert_eq!(p.ranked.last().unwrap().relation, "c");
        assert_eq!(p.top_k(2).len(), 2);
        assert_eq!(p.top_k(10).len(), 3);
        assert!(!p.none_of_the_above);
    }

    #[test]
    fn similarity_is_cosine_for_single_unit_examples() {
        let c = PrototypeClassifier::new(vec![rel("a", vec![unit(&[1.0, 0.0])])], 1).unwrap();
        let q = unit(&[1.0, 1.0]);
        let s = c.classify(&q).unwrap().ranked[0].similarity;
        assert!((s - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-5, "{s}");
    }

    #[test]
    fn none_threshold_flags_far_queries() {
        let mut c = PrototypeClassifier::new(vec![rel("a", vec![unit(&[1.0, 0.0])])], 1).unwrap();
        c.none_threshold = Some(0.5);
        assert!(c.classify(&unit(&[-1.0, 0.1])).unwrap().none_of_the_above);
        assert!(!c.classify(&unit(&[1.0, 0.1])).unwrap().none_of_the_above);
    }

    #[test]
    fn mismatched_dimensions_are_errors_not_panics() {
        let c = PrototypeClassifier::new(vec![rel("a", vec![vec![1.0, 0.0]])], 1).unwrap();
        assert!(c.classify(&[1.0]).is_err());
        assert!(PrototypeClassifier::new(vec![rel("a", vec![])], 1).is_err());
        assert!(PrototypeClassifier::new(vec![], 1).is_err());
        assert!(PrototypeClassifier::new(vec![rel("a", vec![vec![1.0], vec![1.0, 2.0]])], 1).is_err());
    }

    /// Hand-computed: two parts of width 2, one example e = [1,0 | 0,1], text t = [0.6, 0.8].
    /// The prototype is (e + [t | t]) / 2 = [0.8, 0.4 | 0.3, 0.9]; for q = [0,1 | 1,0],
    /// d² = 0.64 + 0.36 + 0.49 + 0.81 = 2.3 and the similarity is 1 - 2.3 / 4 = 0.425.
    /// Text alone: d² = 0.36 + 0.04 + 0.16 + 0.64 = 1.2, similarity 0.7 (the mean cosine of
    /// the parts with the text: (0.8 + 0.6) / 2).
    #[test]
    fn text_fuses_into_the_prototype_as_one_more_example() {
        let e = vec![1.0, 0.0, 0.0, 1.0];
        let t = vec![0.6, 0.8];
        let q = [0.0, 1.0, 1.0, 0.0];
        let fused = PrototypeClassifier::new(
            vec![RelationVectors::new("r", vec![e.clone()], Some(t.clone()))],
            2,
        )
        .unwrap();
        let s = fused.classify(&q).unwrap().ranked[0].similarity;
        assert!((s - 0.425).abs() < 1e-6, "fused similarity {s}, expected 0.425");
        let text_only =
            PrototypeClassifier::new(vec![RelationVectors::new("r", vec![], Some(t.clone()))], 2).unwrap();
        let s = text_only.classify(&q).unwrap().ranked[0].similarity;
        assert!((s - 0.7).abs() < 1e-6, "text-only similarity {s}, expected 0.7");
        let ignored =
            PrototypeClassifier::with_text_weight(vec![RelationVectors::new("r", vec![e], Some(t))], 2, 0.0)
                .unwrap();
        assert!(ignored.classify(&q).unwrap().ranked[0].similarity.abs() < 1e-6);
    }

    #[test]
    fn text_share_falls_as_examples_are_added() {
        let t = unit(&[0.0, 1.0]);
        let e = unit(&[1.0, 0.0]);
        let p1 = fused_prototype(std::slice::from_ref(&e), Some(&t), 1, TEXT_WEIGHT);
        let p5 = fused_prototype(&vec![e.clone(); 5], Some(&t), 1, TEXT_WEIGHT);
        assert!(
            (p1[1] - 0.5).abs() < 1e-6 && (p5[1] - 1.0 / 6.0).abs() < 1e-6,
            "{p1:?} {p5:?}"
        );
    }

    #[test]
    fn text_only_relations_classify_with_scores_in_range() {
        let mut c = PrototypeClassifier::new(
            vec![
                RelationVectors::new("born", vec![], Some(unit(&[1.0, 0.2]))),
                RelationVectors::new("works", vec![unit(&[0.0, 1.0])], None),
            ],
            1,
        )
        .unwrap();
        let p = c.classify(&unit(&[1.0, 0.0])).unwrap();
        assert_eq!(p.best().unwrap().relation, "born");
        assert!(p.ranked.iter().all(|s| (-1.0..=1.0).contains(&s.similarity)));
        assert!((p.ranked.iter().map(|s| s.probability).sum::<f32>() - 1.0).abs() < 1e-5);
        c.none_threshold = Some(0.99);
        assert!(c.classify(&unit(&[1.0, 0.0])).unwrap().none_of_the_above);
        assert!(PrototypeClassifier::new(vec![RelationVectors::new("x", vec![], None)], 1).is_err());
        let wrong_width = RelationVectors::new("x", vec![vec![1.0, 0.0]], Some(vec![1.0, 0.0, 0.0]));
        assert!(PrototypeClassifier::new(vec![wrong_width], 1).is_err());
    }

    /// Hand-computed: one part of width 2. "both" has example e = [1, 0] and text
    /// t_b = [0.8, -0.6] (e's nearest text, so the text keeps its full weight); "zero" has
    /// text t_z = [0, 1] only. For q = [0.6, 0.8]: both's prototype is [0.9, -0.3],
    /// d² = 0.09 + 1.21 = 1.3, fused similarity 0.35; its text alone gives cos(q, t_b) = 0, so
    /// the gap is 0.35, and zero's cos(q, t_z) = 0.8 becomes min(1.15, 1) = 1. For q = [1, 0]:
    /// both 1 - 0.1 / 2 = 0.95, its text 0.8, gap 0.15; zero 0 + 0.15 = 0.15.
    #[test]
    fn text_only_relations_are_put_on_the_scale_of_the_others() {
        let c = PrototypeClassifier::new(
            vec![
                RelationVectors::new("both", vec![vec![1.0, 0.0]], Some(vec![0.8, -0.6])),
                RelationVectors::new("zero", vec![], Some(vec![0.0, 1.0])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(c.text_weight(), 1.0);
        for (q, both, zero) in [([0.6, 0.8], 0.35, 1.0), ([1.0, 0.0], 0.95, 0.15)] {
            let p = c.classify(&q).unwrap();
            let of = |k: &str| p.ranked.iter().find(|s| s.relation == k).unwrap().similarity;
            assert!(
                (of("both") - both).abs() < 1e-6 && (of("zero") - zero).abs() < 1e-6,
                "{q:?}: {p:?}"
            );
        }
        // Without a relation that has both, text-only similarities stay as they are.
        let alone = PrototypeClassifier::new(
            vec![
                RelationVectors::new("ex", vec![vec![1.0, 0.0]], None),
                RelationVectors::new("zero", vec![], Some(vec![0.6, 0.8])),
            ],
            1,
        )
        .unwrap();
        let p = alone.classify(&[0.0, 1.0]).unwrap();
        assert!((p.ranked[0].similarity - 0.8).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn text_that_misnames_the_examples_loses_its_weight() {
        let set = |ta: [f32; 2], tb: [f32; 2]| {
            PrototypeClassifier::new(
                vec![
                    RelationVectors::new("a", vec![vec![1.0, 0.0]], Some(ta.to_vec())),
                    RelationVectors::new("b", vec![vec![0.0, 1.0]], Some(tb.to_vec())),
                ],
                1,
            )
            .unwrap()
        };
        // Each example nearest its own text: agreement 1, full weight.
        let right = set([0.8, 0.6], [0.6, 0.8]);
        assert_eq!(right.text_weight(), 1.0);
        // Texts swapped: agreement -1 (below chance), no weight: the examples alone decide.
        let swapped = set([0.0, 1.0], [1.0, 0.0]);
        assert_eq!(swapped.text_weight(), 0.0);
        let p = swapped.classify(&[1.0, 0.0]).unwrap();
        assert_eq!(p.best().unwrap().relation, "a");
        assert!((p.best().unwrap().similarity - 1.0).abs() < 1e-6);
        // Half right (one of two examples; chance is 1/2): agreement 0, weight 0.
        let agreement = text_agreement(
            &[
                RelationVectors::new("a", vec![vec![1.0, 0.0], vec![-0.6, 0.8]], Some(vec![1.0, 0.0])),
                RelationVectors::new("b", vec![], Some(vec![-1.0, 0.0])),
            ],
            1,
        );
        assert_eq!(agreement, Some(0.0));
        // One text cannot be judged: the weight stays.
        assert_eq!(
            text_agreement(&[RelationVectors::new("a", vec![vec![1.0]], Some(vec![1.0]))], 1),
            None
        );
    }
}
