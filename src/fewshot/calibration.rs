//! Scores that can be read as probabilities. A query's similarities to the prototypes become
//! probabilities by a softmax at a temperature, over the relations and, when a
//! none-of-the-above threshold is set, one more class, "no relation", whose similarity is the
//! threshold. So a single relation still gets a meaningful score (`sigmoid((s - t) / T)`), and
//! the answer is "no relation" exactly when the best similarity is below the threshold.
//!
//! A model's manifest can carry a [`Calibration`]: the temperature and threshold that minimise
//! the negative log-likelihood of held-out episodes with none-of-the-above queries
//! ([`fit`], `tkre calibrate`). [`reliability`] measures how well a calibration holds on other
//! data (expected calibration error and the reliability diagram's bins).

use serde::{Deserialize, Serialize};

use crate::error::{Result, TkreError};

/// A temperature and a none-of-the-above similarity fitted for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Softmax temperature on similarities.
    pub temperature: f32,
    /// The similarity of the "no relation" class: the recommended none-of-the-above threshold.
    pub none_similarity: f32,
    /// The data and episodes it was fitted on, in words.
    #[serde(default)]
    pub fitted_on: String,
}

impl Calibration {
    /// Checks the values a reader relies on (`origin` names the file in errors).
    pub fn check(&self, origin: &str) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(TkreError::Model(format!(
                "{origin}: calibration temperature {} must be a positive number",
                self.temperature
            )));
        }
        if !(self.none_similarity.is_finite() && (-1.0..=1.0).contains(&self.none_similarity)) {
            return Err(TkreError::Model(format!(
                "{origin}: calibration none_similarity {} must be in [-1, 1]",
                self.none_similarity
            )));
        }
        Ok(())
    }
}

/// Softmax of `similarities / temperature`, with the "no relation" class at `none` when given.
/// Returns the relations' probabilities and the probability of no relation (0 without `none`).
pub fn probabilities(similarities: &[f32], temperature: f32, none: Option<f32>) -> (Vec<f32>, f32) {
    let max = similarities
        .iter()
        .copied()
        .chain(none)
        .fold(f32::NEG_INFINITY, f32::max);
    let exp = |s: f32| ((s - max) / temperature).exp();
    let exps: Vec<f32> = similarities.iter().map(|&s| exp(s)).collect();
    let none_exp = none.map_or(0.0, exp);
    let total: f32 = exps.iter().sum::<f32>() + none_exp;
    (exps.iter().map(|e| e / total).collect(), none_exp / total)
}

/// One held-out query: its similarity to each prototype of its episode, and the index of its
/// relation among them (`None`: its relation is not in the episode, the answer is no relation).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredQuery {
    pub similarities: Vec<f32>,
    pub target: Option<usize>,
}

/// Mean negative log-likelihood of the queries' targets.
pub fn negative_log_likelihood(queries: &[ScoredQuery], temperature: f32, none: f32) -> f64 {
    let mut total = 0.0f64;
    for query in queries {
        // log-sum-exp over the relations and the none class, in f64.
        let logits = query
            .similarities
            .iter()
            .chain([&none])
            .map(|&s| f64::from(s / temperature));
        let max = logits.clone().fold(f64::NEG_INFINITY, f64::max);
        let log_total = max + logits.map(|l| (l - max).exp()).sum::<f64>().ln();
        let target = match query.target {
            Some(i) => query.similarities[i],
            None => none,
        };
        total += log_total - f64::from(target / temperature);
    }
    total / queries.len().max(1) as f64
}

/// The temperature and none similarity with the least negative log-likelihood: a grid over
/// temperatures 0.005-1 (log-spaced) and similarities -0.5-1, then a finer grid around the best.
pub fn fit(queries: &[ScoredQuery], fitted_on: impl Into<String>) -> Result<Calibration> {
    if queries.iter().all(|q| q.target.is_none()) || queries.iter().all(|q| q.target.is_some()) {
        return Err(TkreError::Option(
            "calibration needs queries of relations in their episode and queries of none of them".into(),
        ));
    }
    let search = |temperatures: Vec<f32>, nones: Vec<f32>| {
        let mut best = (f64::INFINITY, 0.0f32, 0.0f32);
        for &t in &temperatures {
            for &n in &nones {
                let loss = negative_log_likelihood(queries, t, n);
                if loss < best.0 {
                    best = (loss, t, n);
                }
            }
        }
        best
    };
    let log_grid = |low: f32, high: f32, steps: usize| -> Vec<f32> {
        (0..=steps)
            .map(|i| (low.ln() + (high.ln() - low.ln()) * i as f32 / steps as f32).exp())
            .collect()
    };
    let grid = |low: f32, high: f32, steps: usize| -> Vec<f32> {
        (0..=steps)
            .map(|i| low + (high - low) * i as f32 / steps as f32)
            .collect()
    };
    let (_, t, n) = search(log_grid(0.005, 1.0, 40), grid(-0.5, 1.0, 60));
    let (_, t, n) = search(log_grid(t / 1.15, t * 1.15, 20), grid(n - 0.025, n + 0.025, 20));
    let calibration = Calibration {
        temperature: t,
        none_similarity: n.clamp(-1.0, 1.0),
        fitted_on: fitted_on.into(),
    };
    calibration.check("the fitted calibration")?;
    Ok(calibration)
}

/// One bin of a reliability diagram: the queries whose top probability falls in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// Bin edges of the top probability.
    pub low: f64,
    pub high: f64,
    pub count: usize,
    /// Mean top probability of the bin's queries.
    pub confidence: f64,
    /// How many of them the top answer got right.
    pub accuracy: f64,
}

/// How well probabilities match accuracy on some queries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reliability {
    /// Expected calibration error: the count-weighted mean |accuracy - confidence| over bins.
    pub ece: f64,
    /// Accuracy of the top answer, "no relation" included.
    pub accuracy: f64,
    pub negative_log_likelihood: f64,
    pub bins: Vec<ReliabilityBin>,
}

/// The reliability of `calibration` (or of a plain softmax at `temperature` without a none
/// class when `none` is `None`) on `queries`, in `bins` equal-width bins of the top probability.
pub fn reliability(queries: &[ScoredQuery], temperature: f32, none: Option<f32>, bins: usize) -> Reliability {
    let bins = bins.max(1);
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    let mut correct_total = 0usize;
    let mut nll = 0.0f64;
    for query in queries {
        let (relations, none_probability) = probabilities(&query.similarities, temperature, none);
        let (best, best_p) = relations
            .iter()
            .enumerate()
            .map(|(i, &p)| (Some(i), p))
            .chain(none.map(|_| (None, none_probability)))
            .fold((None, f32::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
        let correct = best == query.target;
        let target_p = match query.target {
            Some(i) => relations[i],
            None => none_probability,
        };
        nll -= f64::from(target_p.max(1e-12)).ln();
        correct_total += usize::from(correct);
        let bin = ((f64::from(best_p) * bins as f64) as usize).min(bins - 1);
        sums[bin].0 += 1;
        sums[bin].1 += f64::from(best_p);
        sums[bin].2 += usize::from(correct);
    }
    let n = queries.len().max(1) as f64;
    let bins: Vec<ReliabilityBin> = sums
        .iter()
        .enumerate()
        .map(|(i, &(count, confidence, correct))| ReliabilityBin {
            low: i as f64 / bins as f64,
            high: (i + 1) as f64 / bins as f64,
            count,
            confidence: if count > 0 { confidence / count as f64 } else { 0.0 },
            accuracy: if count > 0 {
                correct as f64 / count as f64
            } else {
                0.0
            },
        })
        .collect();
    let ece = bins
        .iter()
        .map(|b| b.count as f64 / n * (b.accuracy - b.confidence).abs())
        .sum();
    Reliability {
        ece,
        accuracy: correct_total as f64 / n,
        negative_log_likelihood: nll / n,
        bins,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_relation_with_a_threshold_is_a_sigmoid() {
        let (p, none) = probabilities(&[0.6], 0.1, Some(0.5));
        let expected = 1.0 / (1.0 + (-(0.6f32 - 0.5) / 0.1).exp());
        assert!((p[0] - expected).abs() < 1e-6, "{} vs {expected}", p[0]);
        assert!((p[0] + none - 1.0).abs() < 1e-6);
        let (p, none) = probabilities(&[0.6, 0.2], 0.05, None);
        assert_eq!(none, 0.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    /// Queries drawn from a known model: the right relation at similarity 0.7, others at 0.4,
    /// queries of no relation at 0.4 everywhere. The fit must put the none class between
    /// the two, and the fitted probabilities must match the accuracy they announce.
    #[test]
    fn fit_recovers_a_separating_threshold_and_calibrates() {
        let mut queries = Vec::new();
        for i in 0..200 {
            let noise = (i % 7) as f32 * 0.02 - 0.06;
            queries.push(ScoredQuery {
                similarities: vec![0.7 + noise, 0.4 - noise, 0.4],
                target: Some(0),
            });
            queries.push(ScoredQuery {
                similarities: vec![0.4 + noise, 0.4, 0.38],
                target: None,
            });
        }
        // A few hard cases so that the best temperature is not zero.
        for _ in 0..20 {
            queries.push(ScoredQuery {
                similarities: vec![0.45, 0.5, 0.4],
                target: Some(0),
            });
        }
        let calibration = fit(&queries, "test").unwrap();
        assert!(
            calibration.none_similarity > 0.45 && calibration.none_similarity < 0.65,
            "{calibration:?}"
        );
        let fitted = reliability(
            &queries,
            calibration.temperature,
            Some(calibration.none_similarity),
            10,
        );
        let plain = reliability(&queries, 0.05, None, 10);
        assert!(fitted.negative_log_likelihood < plain.negative_log_likelihood);
        assert!(fitted.ece < 0.1, "{fitted:?}");
        assert!(
            fitted.accuracy > plain.accuracy,
            "no relation is only right with the none class"
        );
    }

    #[test]
    fn fit_needs_both_kinds_of_query() {
        let q = |target| ScoredQuery {
            similarities: vec![0.5, 0.2],
            target,
        };
        assert!(fit(&[q(Some(0)), q(Some(1))], "").is_err());
        assert!(fit(&[q(None)], "").is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let c = |temperature, none_similarity| Calibration {
            temperature,
            none_similarity,
            fitted_on: String::new(),
        };
        assert!(c(0.05, 0.5).check("m").is_ok());
        assert!(c(0.0, 0.5).check("m").is_err());
        assert!(c(f32::NAN, 0.5).check("m").is_err());
        assert!(c(0.05, 1.5).check("m").is_err());
    }
}
