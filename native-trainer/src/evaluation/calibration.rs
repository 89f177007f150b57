//! Held-out queries for score calibration (`tkre calibrate`): N-way K-shot episodes in which
//! relations outside the episode give queries whose answer is "no relation" (with as many of
//! them as relations in the episode, half the queries, as FewRel 2.0's 50% none-of-the-above
//! setting; documents, where most entity pairs are related by nothing, have more still).

use anyhow::{Result, bail};
use tkre::fewshot::calibration::ScoredQuery;

use super::{EncodedInstances, encode_texts, episodes, fewrel, progress_bar};

/// The queries of `episodes` N-way K-shot episodes (seeded), each with its similarity to the
/// episode's prototypes and its answer: N queries of the episode's relations and one of each
/// of `outside` relations outside it. With `texts` (one per relation of `data`), every episode is scored
/// again with relation text fused into its prototypes, so a calibration fits both uses.
#[allow(clippy::too_many_arguments)]
pub fn scored_queries(
    encoder: &tkre::RelationEncoder,
    data: &fewrel::FewRelData,
    n: usize,
    k: usize,
    outside: usize,
    episodes: usize,
    seed: u64,
    batch_size: usize,
    texts: Option<&[Option<String>]>,
    show_progress: bool,
) -> Result<Vec<ScoredQuery>> {
    let sizes: Vec<usize> = data.relations.iter().map(|(_, v)| v.len()).collect();
    let eligible = sizes.iter().filter(|&&s| s > k).count();
    if k == 0 || outside == 0 || eligible < n + outside {
        bail!(
            "calibration episodes need K >= 1, at least one outside relation, and N + outside = {} relations \
             with more than K = {k} instances; the data has {eligible}",
            n + outside
        );
    }
    // N + outside relations per episode: the queries of the last `outside` are "no relation".
    let sampled = episodes::sample_episodes(&sizes, n + outside, k, 1, episodes, seed);
    let progress = progress_bar(show_progress);
    let encoded = EncodedInstances::new(encoder, data, sampled.iter(), batch_size, &progress)?;
    let text_vectors = encode_texts(encoder, texts, batch_size)?;
    let parts = encoder.representation().parts().len();
    let mut scored = Vec::new();
    for with_text in [false, true] {
        if with_text && text_vectors.is_none() {
            continue;
        }
        let bar = progress(sampled.len(), if with_text { "score +text" } else { "score" });
        for episode in &sampled {
            let (inside, outside) = episode.classes.split_at(n);
            let texts = text_vectors.as_deref().filter(|_| with_text);
            let classifier = encoded.classifier(data, inside, texts, parts)?;
            let keys: Vec<&String> = inside.iter().map(|(r, _, _)| &data.relations[*r].0).collect();
            let queries = inside
                .iter()
                .enumerate()
                .map(|(position, (r, _, q))| (*r, q[0], Some(position)))
                .chain(outside.iter().map(|(r, _, q)| (*r, q[0], None)));
            for (r, i, target) in queries {
                let prediction = classifier.classify(encoded.vector(r, i))?;
                // Back to the episode's order (the prediction is ranked).
                let mut similarities = vec![0.0; n];
                for score in &prediction.ranked {
                    if let Some(at) = keys.iter().position(|key| **key == score.relation) {
                        similarities[at] = score.similarity;
                    }
                }
                scored.push(ScoredQuery { similarities, target });
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    Ok(scored)
}
