//! N-way K-shot episode sampling and scoring.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

/// One episode: for each of N relations, K support and Q query instance indexes.
pub struct Episode {
    /// `(relation index, support instance indexes, query instance indexes)`.
    pub classes: Vec<(usize, Vec<usize>, Vec<usize>)>,
}

/// Samples episodes from relations with `sizes[r]` instances each. Relations with fewer than
/// `k + q` instances are never chosen (the caller checks enough remain).
pub fn sample_episodes(
    sizes: &[usize],
    n: usize,
    k: usize,
    q: usize,
    episodes: usize,
    seed: u64,
) -> Vec<Episode> {
    let mut rng = StdRng::seed_from_u64(seed);
    let eligible: Vec<usize> = (0..sizes.len()).filter(|&r| sizes[r] >= k + q).collect();
    (0..episodes)
        .map(|_| {
            let classes = sample(&mut rng, eligible.len(), n)
                .into_iter()
                .map(|i| {
                    let relation = eligible[i];
                    let picked = sample(&mut rng, sizes[relation], k + q).into_vec();
                    (relation, picked[..k].to_vec(), picked[k..].to_vec())
                })
                .collect();
            Episode { classes }
        })
        .collect()
}

/// Mean and 95% normal interval half-width of per-episode accuracies.
pub fn mean_ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, 1.96 * (var / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_are_reproducible_and_disjoint() {
        let a = sample_episodes(&[10, 10, 10, 2, 10], 3, 2, 1, 50, 7);
        let b = sample_episodes(&[10, 10, 10, 2, 10], 3, 2, 1, 50, 7);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.classes, y.classes);
            let relations: std::collections::HashSet<_> = x.classes.iter().map(|c| c.0).collect();
            assert_eq!(relations.len(), 3);
            assert!(
                !relations.contains(&3),
                "relation with too few instances was sampled"
            );
            for (_, support, query) in &x.classes {
                assert_eq!(support.len(), 2);
                assert_eq!(query.len(), 1);
                assert!(!support.contains(&query[0]));
            }
        }
    }

    #[test]
    fn ci_of_constant_values_is_zero() {
        assert_eq!(mean_ci95(&[0.5, 0.5, 0.5]), (0.5, 0.0));
        let (m, ci) = mean_ci95(&[0.0, 1.0]);
        assert!((m - 0.5).abs() < 1e-12 && ci > 0.0);
    }
}
