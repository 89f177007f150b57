//! N-way K-shot evaluation over relation-labelled instances, shared by `tkre eval` and the
//! development evaluations of `tkre pretrain` (early stopping).
//!
//! Episodes are sampled first (fixed seed, one sequence per setting), then every instance
//! any episode of any setting uses is encoded once, then each episode's queries are
//! classified against its prototypes, without and (given relation text) with the text fused.

pub mod calibration;
pub mod episodes;
pub mod fewrel;
pub mod relation_text;

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tkre::fewshot::{PrototypeClassifier, RelationVectors};

/// Accuracy of one N-way K-shot setting.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct SettingResult {
    pub n: usize,
    pub k: usize,
    /// Whether relation text (names, descriptions) was fused into the prototypes.
    #[serde(default)]
    pub relation_text: bool,
    pub accuracy: f64,
    pub ci95: f64,
}

/// Parses `N-K`.
pub fn parse_setting(text: &str) -> Result<(usize, usize)> {
    let parsed = text
        .split_once('-')
        .and_then(|(n, k)| Some((n.trim().parse().ok()?, k.trim().parse().ok()?)));
    match parsed {
        Some((n, k)) if n > 0 => Ok((n, k)),
        _ => bail!(
            "setting {text:?}: expected N-K with N >= 1, K >= 0, e.g. 5-1 for 5-way 1-shot (5-0: zero-shot)"
        ),
    }
}

/// The data with `exclude` relations removed; errors name ids not in the data.
pub fn without_relations(
    mut data: fewrel::FewRelData,
    exclude: &[String],
    origin: &str,
) -> Result<fewrel::FewRelData> {
    for id in exclude {
        if !data.relations.iter().any(|(r, _)| r == id) {
            bail!("--exclude-relations: {id} is not a relation of {origin}");
        }
    }
    data.relations.retain(|(r, _)| !exclude.contains(r));
    Ok(data)
}

/// Checks that `data` has enough relations and instances for every setting.
pub fn check_settings(
    data: &fewrel::FewRelData,
    settings: &[(usize, usize)],
    queries: usize,
    origin: &str,
) -> Result<()> {
    for &(n, k) in settings {
        let eligible = data
            .relations
            .iter()
            .filter(|(_, v)| v.len() >= k + queries)
            .count();
        if eligible < n {
            bail!(
                "{origin}: only {eligible} relation(s) have at least K+queries = {} instances; {n}-way episodes need {n}",
                k + queries
            );
        }
    }
    Ok(())
}

/// Accuracy of `encoder` in each setting over `episodes` episodes (seeded; the same episodes
/// whatever the other settings are). Every instance is encoded once for all settings. With
/// `texts` (one per relation of `data`, each relation's text), each setting is scored without
/// and with the text (K = 0: with it only).
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    encoder: &tkre::RelationEncoder,
    data: &fewrel::FewRelData,
    settings: &[(usize, usize)],
    queries: usize,
    episodes: usize,
    seed: u64,
    batch_size: usize,
    texts: Option<&[Option<String>]>,
    query_marking: Option<tkre::text::Marking>,
    show_progress: bool,
) -> Result<Vec<SettingResult>> {
    let progress = progress_bar(show_progress);
    let sizes: Vec<usize> = data.relations.iter().map(|(_, v)| v.len()).collect();
    let sampled: Vec<Vec<episodes::Episode>> = settings
        .iter()
        .map(|&(n, k)| episodes::sample_episodes(&sizes, n, k, queries, episodes, seed))
        .collect();

    let encoded = EncodedInstances::new(encoder, data, sampled.iter().flatten(), batch_size, &progress)?;
    // Queries shown to the encoder another way than the support examples (e.g. unmarked
    // queries against marked examples) are encoded again, that way.
    let requeried = match query_marking.filter(|&m| m != encoder.marking()) {
        Some(marking) => {
            let queries = sampled
                .iter()
                .flatten()
                .flat_map(|e| e.classes.iter())
                .flat_map(|(r, _, q)| q.iter().map(move |&i| (*r, i)))
                .collect();
            let support_marking = encoder.marking();
            encoder.set_marking(marking);
            let encoded = EncodedInstances::of(encoder, data, queries, batch_size, &progress);
            encoder.set_marking(support_marking);
            Some(encoded?)
        }
        None => None,
    };
    let vector_of = |r: usize, i: usize| requeried.as_ref().unwrap_or(&encoded).vector(r, i);
    let text_vectors = encode_texts(encoder, texts, batch_size)?;

    let parts = encoder.representation().parts().len();
    let mut results = Vec::with_capacity(2 * settings.len());
    for (&(n, k), setting_episodes) in settings.iter().zip(&sampled) {
        for with_text in [false, true] {
            if (with_text && text_vectors.is_none()) || (!with_text && k == 0) {
                continue;
            }
            let label = format!("{n}-way {k}-shot{}", if with_text { " +text" } else { "" });
            let texts = text_vectors.as_deref().filter(|_| with_text);
            let bar = progress(setting_episodes.len(), &label);
            let mut accuracies = Vec::with_capacity(setting_episodes.len());
            for episode in setting_episodes {
                let classifier = encoded.classifier(data, &episode.classes, texts, parts)?;
                let mut correct = 0usize;
                let mut total = 0usize;
                for (r, _, queries) in &episode.classes {
                    for &i in queries {
                        let prediction = classifier.classify(vector_of(*r, i))?;
                        correct += usize::from(
                            prediction
                                .best()
                                .is_some_and(|b| b.relation == data.relations[*r].0),
                        );
                        total += 1;
                    }
                }
                accuracies.push(correct as f64 / total as f64);
                bar.inc(1);
            }
            bar.finish_and_clear();
            let (accuracy, ci95) = episodes::mean_ci95(&accuracies);
            results.push(SettingResult {
                n,
                k,
                relation_text: with_text,
                accuracy,
                ci95,
            });
        }
    }
    Ok(results)
}

/// The representation of every instance some episode uses, each encoded once.
pub struct EncodedInstances {
    /// Sorted `(relation, instance)` pairs, one per vector.
    needed: Vec<(usize, usize)>,
    vectors: Vec<Vec<f32>>,
}

impl EncodedInstances {
    pub fn new<'a>(
        encoder: &tkre::RelationEncoder,
        data: &fewrel::FewRelData,
        episodes: impl Iterator<Item = &'a episodes::Episode>,
        batch_size: usize,
        progress: &dyn Fn(usize, &str) -> ProgressBar,
    ) -> Result<Self> {
        let needed = episodes
            .flat_map(|e| e.classes.iter())
            .flat_map(|(r, s, q)| s.iter().chain(q).map(move |&i| (*r, i)))
            .collect();
        Self::of(encoder, data, needed, batch_size, progress)
    }

    /// The `needed` `(relation, instance)` pairs encoded.
    pub fn of(
        encoder: &tkre::RelationEncoder,
        data: &fewrel::FewRelData,
        needed: BTreeSet<(usize, usize)>,
        batch_size: usize,
        progress: &dyn Fn(usize, &str) -> ProgressBar,
    ) -> Result<Self> {
        let needed: Vec<(usize, usize)> = needed.into_iter().collect();
        let instances: Vec<_> = needed
            .iter()
            .map(|&(r, i)| data.relations[r].1[i].clone())
            .collect();
        let plan = encoder.plan_instances(&instances)?;
        let bar = progress(instances.len(), "encode");
        let vectors = encoder.run_plan_with_progress(&plan, batch_size, |done| bar.inc(done as u64))?;
        bar.finish_and_clear();
        Ok(Self { needed, vectors })
    }

    /// Instance `i` of relation `r`; it must be one an episode given to [`Self::new`] uses.
    pub fn vector(&self, r: usize, i: usize) -> &Vec<f32> {
        let at = self.needed.binary_search(&(r, i)).unwrap_or_default();
        &self.vectors[at]
    }

    /// The prototype classifier over an episode's `classes` (their support instances; with
    /// `texts`, one per relation of `data`, each relation's text fused in), keyed by relation id.
    pub fn classifier(
        &self,
        data: &fewrel::FewRelData,
        classes: &[(usize, Vec<usize>, Vec<usize>)],
        texts: Option<&[Option<Vec<f32>>]>,
        parts: usize,
    ) -> Result<PrototypeClassifier> {
        let relations = classes
            .iter()
            .map(|(r, support, _)| {
                RelationVectors::new(
                    data.relations[*r].0.clone(),
                    support.iter().map(|&i| self.vector(*r, i).clone()).collect(),
                    texts.and_then(|t| t[*r].clone()),
                )
            })
            .collect();
        Ok(PrototypeClassifier::new(relations, parts)?)
    }
}

/// Each relation's text embedded (`None` where a relation has no text).
pub fn encode_texts(
    encoder: &tkre::RelationEncoder,
    texts: Option<&[Option<String>]>,
    batch_size: usize,
) -> Result<Option<Vec<Option<Vec<f32>>>>> {
    let Some(texts) = texts else {
        return Ok(None);
    };
    let present: Vec<String> = texts.iter().flatten().cloned().collect();
    let mut encoded = encoder.embed_sentences(&present, batch_size)?.into_iter();
    Ok(Some(
        texts
            .iter()
            .map(|t| t.as_ref().and_then(|_| encoded.next()))
            .collect(),
    ))
}

/// A progress bar on stderr, or a hidden one.
pub fn progress_bar(show: bool) -> impl Fn(usize, &str) -> ProgressBar {
    move |len, what| {
        if show {
            progress(len, what)
        } else {
            ProgressBar::hidden()
        }
    }
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
