//! Prototype classification: each relation is the mean of its examples' representations, and
//! a query scores by its distance to each prototype.

use serde::Serialize;

use crate::error::{Result, TkreError};

/// Softmax temperature on similarities; similarities differ by a few hundredths between
/// close relations, so a small temperature spreads the probabilities.
pub const DEFAULT_TEMPERATURE: f32 = 0.05;

/// One relation's score for a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelationScore {
    pub relation: String,
    /// Softmax over all relations; the probabilities of a query sum to 1.
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
    parts: usize,
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

impl PrototypeClassifier {
    /// `relations`: each relation's name and its examples' representations (each made of
    /// `parts` L2-normalised parts).
    pub fn new(relations: Vec<(String, Vec<Vec<f32>>)>, parts: usize) -> Result<Self> {
        if relations.is_empty() {
            return Err(TkreError::SupportSet("no relations to classify into".into()));
        }
        let dim = relations
            .iter()
            .flat_map(|(_, vs)| vs.first())
            .map(Vec::len)
            .next()
            .unwrap_or(0);
        let mut names = Vec::with_capacity(relations.len());
        let mut prototypes = Vec::with_capacity(relations.len());
        for (name, vectors) in relations {
            if vectors.is_empty() {
                return Err(TkreError::SupportSet(format!(
                    "relation {name:?} has no examples"
                )));
            }
            if vectors.iter().any(|v| v.len() != dim) {
                return Err(TkreError::SupportSet(format!(
                    "relation {name:?}: example vectors differ in length (encoded by another model?)"
                )));
            }
            prototypes.push(mean_vector(&vectors));
            names.push(name);
        }
        Ok(Self {
            names,
            prototypes,
            parts: parts.max(1),
            temperature: DEFAULT_TEMPERATURE,
            none_threshold: None,
        })
    }

    pub fn relation_names(&self) -> &[String] {
        &self.names
    }

    /// Scores every relation for `query`.
    pub fn classify(&self, query: &[f32]) -> Result<Prediction> {
        let dim = self.prototypes[0].len();
        if query.len() != dim {
            return Err(TkreError::SupportSet(format!(
                "query vector has {} dimensions, prototypes have {dim}",
                query.len()
            )));
        }
        let similarities: Vec<f32> = self
            .prototypes
            .iter()
            .map(|p| 1.0 - squared_distance(query, p) / (2.0 * self.parts as f32))
            .collect();
        let max = similarities.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = similarities
            .iter()
            .map(|s| ((s - max) / self.temperature).exp())
            .collect();
        let total: f32 = exps.iter().sum();
        let mut ranked: Vec<RelationScore> = self
            .names
            .iter()
            .zip(similarities.iter().zip(&exps))
            .map(|(name, (&similarity, &e))| RelationScore {
                relation: name.clone(),
                probability: e / total,
                similarity,
            })
            .collect();
        ranked.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        let none_of_the_above = self.none_threshold.is_some_and(|t| max < t);
        Ok(Prediction {
            ranked,
            none_of_the_above,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn probabilities_sum_to_one_and_rank_by_similarity() {
        let c = PrototypeClassifier::new(
            vec![
                ("a".into(), vec![unit(&[1.0, 0.0]), unit(&[0.9, 0.1])]),
                ("b".into(), vec![unit(&[0.0, 1.0])]),
                ("c".into(), vec![unit(&[-1.0, 0.2])]),
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
        let c = PrototypeClassifier::new(vec![("a".into(), vec![unit(&[1.0, 0.0])])], 1).unwrap();
        let q = unit(&[1.0, 1.0]);
        let s = c.classify(&q).unwrap().ranked[0].similarity;
        assert!((s - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-5, "{s}");
    }

    #[test]
    fn none_threshold_flags_far_queries() {
        let mut c = PrototypeClassifier::new(vec![("a".into(), vec![unit(&[1.0, 0.0])])], 1).unwrap();
        c.none_threshold = Some(0.5);
        assert!(c.classify(&unit(&[-1.0, 0.1])).unwrap().none_of_the_above);
        assert!(!c.classify(&unit(&[1.0, 0.1])).unwrap().none_of_the_above);
    }

    #[test]
    fn mismatched_dimensions_are_errors_not_panics() {
        let c = PrototypeClassifier::new(vec![("a".into(), vec![vec![1.0, 0.0]])], 1).unwrap();
        assert!(c.classify(&[1.0]).is_err());
        assert!(PrototypeClassifier::new(vec![("a".into(), vec![])], 1).is_err());
        assert!(PrototypeClassifier::new(vec![], 1).is_err());
        assert!(PrototypeClassifier::new(vec![("a".into(), vec![vec![1.0], vec![1.0, 2.0]])], 1).is_err());
    }
}
