//! An encoder with a live support set: what the browser package and `tkre classify` both use.
//! Relations are added, edited and removed here, each example and relation text encoded once
//! when it changes; queries are classified against the current set.
//!
//! Every method takes `&self`: the support set sits in a `RefCell` that is borrowed only
//! between awaits, so one extractor can be shared by calls in flight (the browser's promises).

use std::cell::RefCell;

use crate::error::Result;
use crate::fewshot::document::{
    Argument, MAX_MENTIONS_PER_SENTENCE, MentionOptions, SentenceExtraction, Triple, pair_instances,
    sentence_mentions_proposed,
};
use crate::fewshot::mention_head::{
    EntityGuide, GUIDE_WEIGHT, MentionHead, ProposeOptions, check_guide_weight,
};
use crate::fewshot::support_set::check_key;
use crate::fewshot::{
    EncodedSupportSet, ExampleInput, Prediction, PrototypeClassifier, RelationSummary, RelationText,
    SupportSet,
};
use crate::relation_encoder::{RelationEncoder, SentenceStates};
use crate::text::{CharSpan, Marking, RelationInstance};

/// Most sequences in one encoding batch (a pass may hold fewer, `crate::engine::batch`).
pub const BATCH_SIZE: usize = 64;

/// An encoder and the relations queries are classified into.
pub struct Extractor {
    pub encoder: RelationEncoder,
    support: RefCell<EncodedSupportSet>,
    use_relation_text: std::cell::Cell<bool>,
    /// How document extraction shows pairs to the encoder (default: unmarked, one pass per
    /// sentence).
    extraction_marking: std::cell::Cell<Marking>,
    /// The support set encoded unmarked for extraction (re-encoded when the set has changed
    /// since).
    unmarked_support: RefCell<Option<UnmarkedSupport>>,
    /// Whether unmarked extraction drops pairs closer to their relation's wrong pairs.
    wrong_pair_filter: std::cell::Cell<bool>,
    /// The learned mention proposer, if the model has one (else the rules propose).
    mention_head: RefCell<Option<MentionHead>>,
    /// How much the support set's entities guide which mentions the learned proposer gives
    /// (0: not at all).
    entity_guide_weight: std::cell::Cell<f32>,
    /// Whether the learned proposer's mentions may nest.
    nested_mentions: std::cell::Cell<bool>,
}

/// The support set as document extraction reads it.
struct UnmarkedSupport {
    /// The set it was encoded from.
    set: SupportSet,
    encoded: EncodedSupportSet,
    /// For each relation with examples, the mean representation of the other pairs of
    /// mentions in its examples' sentences (the reversed pair among them): what a sentence
    /// that states the relation looks like between the wrong entities. A pair closer to it
    /// than to the relation's prototype is not that relation.
    wrong_pairs: std::collections::HashMap<String, Vec<f32>>,
    /// The examples' entities, as a guide to the learned proposer.
    guide: EntityGuide,
}

/// What unmarked extraction reads from the support set.
struct ExtractionSupport {
    classifier: PrototypeClassifier,
    wrong_pairs: std::collections::HashMap<String, Vec<f32>>,
    guide: EntityGuide,
}

impl Extractor {
    pub fn new(encoder: RelationEncoder) -> Self {
        Self {
            encoder,
            support: RefCell::default(),
            use_relation_text: std::cell::Cell::new(true),
            extraction_marking: std::cell::Cell::new(Marking::Unmarked),
            unmarked_support: RefCell::default(),
            wrong_pair_filter: std::cell::Cell::new(true),
            mention_head: RefCell::default(),
            entity_guide_weight: std::cell::Cell::new(GUIDE_WEIGHT),
            nested_mentions: std::cell::Cell::new(false),
        }
    }

    /// Whether relation names and descriptions take part in classification (default yes).
    pub fn set_use_relation_text(&self, use_text: bool) {
        self.use_relation_text.set(use_text);
    }

    /// How [`Self::extract_sentences`] shows pairs to the encoder: `Unmarked` (the default)
    /// reads each sentence once for all its pairs; `Marked` encodes each pair with markers, as
    /// `classify` does.
    pub fn set_extraction_marking(&self, marking: Marking) {
        self.extraction_marking.set(marking);
    }

    /// Whether unmarked extraction drops a pair that is closer to the other pairs of its
    /// relation's example sentences than to the relation (default yes; off to measure it).
    pub fn set_wrong_pair_filter(&self, on: bool) {
        self.wrong_pair_filter.set(on);
    }

    /// The learned mention proposer for extraction (`None`: the rules). Checked against the
    /// encoder's hidden size.
    pub fn set_mention_head(&self, head: Option<MentionHead>) -> Result<()> {
        if let Some(head) = &head
            && head.hidden_size != self.encoder.config.hidden_size
        {
            return Err(crate::TkreError::Model(format!(
                "the mention head is for hidden size {}, the model's is {}",
                head.hidden_size, self.encoder.config.hidden_size
            )));
        }
        *self.mention_head.borrow_mut() = head;
        // The support set's wrong pairs were found with the previous proposer.
        *self.unmarked_support.borrow_mut() = None;
        Ok(())
    }

    /// How much, in unmarked extraction, the support examples' entities choose among the
    /// learned proposer's candidates: the weight of a candidate's likeness (a cosine) to the
    /// nearest of them beside the proposer's score (default [`GUIDE_WEIGHT`]; 0: not at all).
    /// The proposer's threshold still sets how many mentions a sentence gets.
    pub fn set_entity_guide_weight(&self, weight: f32) -> Result<()> {
        check_guide_weight(weight)?;
        self.entity_guide_weight.set(weight);
        Ok(())
    }

    /// Whether the learned proposer may give a mention inside another ("soprano" in "English
    /// soprano"; default no). More of the entities a relation links are then among the
    /// mentions, and more wrong pairs with them (docs/benchmarks.md).
    pub fn set_nested_mentions(&self, nest: bool) {
        if nest != self.nested_mentions.replace(nest) {
            // The support set's wrong pairs were found with the other setting.
            *self.unmarked_support.borrow_mut() = None;
        }
    }

    /// Whether a learned mention proposer is set.
    pub fn has_mention_head(&self) -> bool {
        self.mention_head.borrow().is_some()
    }

    async fn encode_instances(&self, instances: &[RelationInstance]) -> Result<Vec<Vec<f32>>> {
        let plan = self.encoder.plan_instances(instances)?;
        self.encoder.encode_plan(&plan, BATCH_SIZE, |_| {}).await
    }

    /// Sentence embeddings, one per text.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let plan = self.encoder.plan_sentences(texts)?;
        self.encoder.encode_plan(&plan, BATCH_SIZE, |_| {}).await
    }

    async fn encode_text(&self, text: &RelationText) -> Result<Option<Vec<f32>>> {
        match text.sentence() {
            Some(sentence) => Ok(self.embed(&[sentence]).await?.pop()),
            None => Ok(None),
        }
    }

    /// Adds a relation with text, examples or both (text alone: zero-shot); returns its
    /// example count.
    pub async fn add_relation(
        &self,
        key: &str,
        text: RelationText,
        examples: Vec<ExampleInput>,
    ) -> Result<usize> {
        let parsed = parse_examples(examples)?;
        let key = self
            .support
            .borrow()
            .check_new_relation(key, &text, parsed.len())?;
        let (inputs, instances): (Vec<_>, Vec<_>) = parsed.into_iter().unzip();
        let vectors = self.encode_instances(&instances).await?;
        let text_vector = self.encode_text(&text).await?;
        let examples: Vec<_> = inputs.into_iter().zip(vectors).collect();
        let count = examples.len();
        self.support
            .borrow_mut()
            .add_relation(key, text, text_vector, examples)?;
        Ok(count)
    }

    /// Replaces a relation's text (empty clears it; a relation without examples must keep
    /// some).
    pub async fn set_relation_text(&self, key: &str, text: RelationText) -> Result<()> {
        self.support.borrow().check_text(key, &text)?;
        let vector = self.encode_text(&text).await?;
        self.support.borrow_mut().set_text(key, text, vector)
    }

    /// Adds examples to a relation (created if new); returns its example count.
    pub async fn add_examples(&self, key: &str, examples: Vec<ExampleInput>) -> Result<usize> {
        let key = check_key(key, "the relation")?;
        let parsed = parse_examples(examples)?;
        if parsed.is_empty() {
            return Err(crate::TkreError::SupportSet(format!(
                "no examples given for relation {key:?}"
            )));
        }
        let (inputs, instances): (Vec<_>, Vec<_>) = parsed.into_iter().unzip();
        let vectors = self.encode_instances(&instances).await?;
        self.support
            .borrow_mut()
            .add_examples(&key, inputs.into_iter().zip(vectors).collect())
    }

    /// Removes one example; the relation goes when it has neither examples nor text left.
    pub fn remove_example(&self, key: &str, index: usize) -> Result<()> {
        self.support.borrow_mut().remove_example(key, index)
    }

    pub fn remove_relation(&self, key: &str) -> Result<()> {
        self.support.borrow_mut().remove_relation(key)
    }

    /// Sets (-1..1) or clears the none-of-the-above threshold.
    pub fn set_none_threshold(&self, threshold: Option<f32>) -> Result<()> {
        self.support.borrow_mut().set_none_threshold(threshold)
    }

    pub fn relations(&self) -> Vec<RelationSummary> {
        self.support.borrow().summaries()
    }

    /// The support set as written to JSON (`SupportSet::to_json`).
    pub fn support_set(&self) -> SupportSet {
        self.support.borrow().to_support_set()
    }

    /// Replaces the support set; every example and relation text is encoded once. Returns the
    /// number of relations.
    pub async fn load_support_set(&self, set: &SupportSet) -> Result<usize> {
        let parsed = set.parse()?;
        let vectors = self.encode_instances(&parsed.instances()).await?;
        let texts = self.embed(&parsed.texts()).await?;
        let loaded = EncodedSupportSet::from_parsed(parsed, vectors, texts)?;
        let count = loaded.relations.len();
        *self.support.borrow_mut() = loaded;
        Ok(count)
    }

    /// The classifier of the current support set (checked before anything is encoded).
    pub fn classifier(&self) -> Result<PrototypeClassifier> {
        self.classifier_of(&self.support.borrow())
    }

    fn classifier_of(&self, set: &EncodedSupportSet) -> Result<PrototypeClassifier> {
        let parts = self.encoder.representation().parts().len();
        let mut classifier = set.classifier(parts, self.use_relation_text.get())?;
        if let Some(calibration) = self.encoder.calibration() {
            classifier.calibrate(&calibration);
        }
        Ok(classifier)
    }

    /// The classifier of the current support set with its examples encoded unmarked (to
    /// match unmarked queries), each relation's wrong-pair prototype and the examples' entities
    /// as a guide; encoded on first use and again after the set changes.
    async fn unmarked_support(&self) -> Result<ExtractionSupport> {
        // Checked first: an empty set fails before anything is encoded.
        self.classifier()?;
        let current = self.support_set();
        if let Some(cached) = &*self.unmarked_support.borrow()
            && cached.set == current
        {
            return Ok(ExtractionSupport {
                classifier: self.classifier_of(&cached.encoded)?,
                wrong_pairs: cached.wrong_pairs.clone(),
                guide: cached.guide.clone(),
            });
        }
        let parsed = current.parse()?;
        let instances = parsed.instances();
        let plan = self
            .encoder
            .plan_instances_marked(&instances, Marking::Unmarked)?;
        let vectors = self.encoder.encode_plan(&plan, BATCH_SIZE, |_| {}).await?;
        let texts = self.embed(&parsed.texts()).await?;
        // The other ordered pairs of mentions of every example sentence, its mentions found as
        // a document's are (the learned proposer, if there is one, on the same pass).
        let sentences: Vec<String> = instances.iter().map(|i| i.text.clone()).collect();
        let states = self.encoder.sentence_states(&sentences).await?;
        let head = self.mention_head.borrow().clone();
        let mut pairs = Vec::new();
        let mut owners = Vec::new();
        let mut guide = EntityGuide::default();
        let hidden_size = self.encoder.config.hidden_size;
        let mut at = 0;
        for relation in &parsed.relations {
            for instance in &relation.instances {
                if let Some(read) = &states[at] {
                    guide.add_entities(
                        &instance.text,
                        &read.pieces,
                        &read.states,
                        hidden_size,
                        &[instance.head, instance.tail],
                    );
                }
                let options = MentionOptions {
                    marked: vec![instance.head, instance.tail],
                    entities: None,
                    propose: true,
                };
                let whole = CharSpan::new(0, instance.text.chars().count());
                let proposed = head.as_ref().and_then(|head| {
                    let read = states[at].as_ref()?;
                    Some(learned_mentions(
                        head,
                        &instance.text,
                        whole,
                        &instance.text,
                        read,
                        ProposeOptions {
                            nest: self.nested_mentions.get(),
                            ..ProposeOptions::at_most(MAX_MENTIONS_PER_SENTENCE)
                        },
                    ))
                });
                let found = sentence_mentions_proposed(&instance.text, whole, &options, proposed);
                for (h, head) in found.iter().enumerate() {
                    for (t, tail) in found.iter().enumerate() {
                        if h != t
                            && !head.span().overlaps(&tail.span())
                            && (head.span(), tail.span()) != (instance.head, instance.tail)
                        {
                            pairs.push((at, head.span(), tail.span()));
                            owners.push(relation.key.clone());
                        }
                    }
                }
                at += 1;
            }
        }
        let wrong = self
            .encoder
            .pool_sentence_pairs(&sentences, &states, &pairs)
            .await?;
        let mut sums: std::collections::HashMap<String, (Vec<f32>, usize)> = Default::default();
        for (key, vector) in owners.into_iter().zip(wrong) {
            let (sum, count) = sums.entry(key).or_insert_with(|| (vec![0.0; vector.len()], 0));
            sum.iter_mut().zip(&vector).for_each(|(s, x)| *s += x);
            *count += 1;
        }
        let wrong_pairs: std::collections::HashMap<String, Vec<f32>> = sums
            .into_iter()
            .map(|(key, (sum, count))| (key, sum.into_iter().map(|x| x / count as f32).collect()))
            .collect();
        let encoded = EncodedSupportSet::from_parsed(parsed, vectors, texts)?;
        let classifier = self.classifier_of(&encoded)?;
        *self.unmarked_support.borrow_mut() = Some(UnmarkedSupport {
            set: current,
            encoded,
            wrong_pairs: wrong_pairs.clone(),
            guide: guide.clone(),
        });
        Ok(ExtractionSupport {
            classifier,
            wrong_pairs,
            guide,
        })
    }

    /// Classifies relation instances with one encoder pass.
    pub async fn classify(&self, queries: &[RelationInstance]) -> Result<Vec<Prediction>> {
        let classifier = self.classifier()?;
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = self.encode_instances(queries).await?;
        vectors.iter().map(|v| classifier.classify(v)).collect()
    }

    /// Classifies a batch query by query: a query that could not be read (an `Err` given) or
    /// tokenised keeps its error in its place (the caller names it: a line, a number), and the
    /// others are still encoded together in one pass. The outer error is for what fails the
    /// whole batch (no support set, the engine).
    pub async fn classify_each(
        &self,
        queries: Vec<Result<RelationInstance>>,
    ) -> Result<Vec<Result<Prediction>>> {
        let classifier = self.classifier()?;
        let mut results: Vec<Option<Result<Prediction>>> = Vec::with_capacity(queries.len());
        let mut plan: Option<crate::engine::PoolingPlan> = None;
        let mut planned = Vec::new();
        for (i, query) in queries.into_iter().enumerate() {
            match query.and_then(|q| self.encoder.plan_instances(std::slice::from_ref(&q))) {
                Ok(one) => {
                    planned.push(i);
                    results.push(None);
                    match &mut plan {
                        Some(plan) => plan.append(one),
                        None => plan = Some(one),
                    }
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if let Some(plan) = plan {
            let vectors = self.encoder.encode_plan(&plan, BATCH_SIZE, |_| {}).await?;
            for (i, vector) in planned.into_iter().zip(vectors) {
                results[i] = Some(classifier.classify(&vector));
            }
        }
        Ok(results.into_iter().flatten().collect())
    }
}

impl Extractor {
    /// Relations in `sentences` of `text` (spans from [`crate::text::sentences`], in order):
    /// each sentence's mentions, and a triple for every ordered pair of them whose answer is
    /// a relation, all pairs of these sentences encoded in one batch. `threshold` replaces the
    /// none-of-the-above similarity for this call (without any, every pair gets its best
    /// relation). A caller reading a long document sends its sentences in slices, so memory
    /// follows the slice and it can report progress and stop between slices.
    pub async fn extract_sentences(
        &self,
        text: &str,
        sentences: &[CharSpan],
        options: &MentionOptions,
        threshold: Option<f32>,
    ) -> Result<Vec<SentenceExtraction>> {
        let marking = self.extraction_marking.get();
        let ExtractionSupport {
            mut classifier,
            wrong_pairs,
            guide,
        } = match marking {
            Marking::Marked => ExtractionSupport {
                classifier: self.classifier()?,
                wrong_pairs: Default::default(),
                guide: EntityGuide::default(),
            },
            Marking::Unmarked => self.unmarked_support().await?,
        };
        let guide_weight = self.entity_guide_weight.get();
        let guide = Some(&guide).filter(|_| guide_weight > 0.0);
        let parts = self.encoder.representation().parts().len();
        if threshold.is_some() {
            crate::fewshot::support_set::check_none_threshold(threshold.unwrap_or_default())?;
            classifier.set_none_threshold(threshold);
        }
        let texts: Vec<String> = sentences
            .iter()
            .map(|&span| crate::text::mentions::slice(text, span))
            .collect();
        let head = self.mention_head.borrow().clone().filter(|_| options.propose);
        // One pass per sentence serves the learned proposer and the unmarked pairs.
        let states = if marking == Marking::Unmarked || head.is_some() {
            self.encoder.sentence_states(&texts).await?
        } else {
            Vec::new()
        };
        let mut results = Vec::with_capacity(sentences.len());
        let mut instances = Vec::new();
        // (sentence, head mention, tail mention) of each instance.
        let mut owners = Vec::new();
        for (s, &sentence) in sentences.iter().enumerate() {
            // The learned proposer where the sentence was read (not longer than the maximum
            // length); else the rules.
            let proposed = head.as_ref().and_then(|head| {
                let read = states.get(s)?.as_ref()?;
                let options = ProposeOptions {
                    max: MAX_MENTIONS_PER_SENTENCE,
                    nest: self.nested_mentions.get(),
                    guide,
                    guide_weight,
                };
                Some(learned_mentions(head, text, sentence, &texts[s], read, options))
            });
            let found = sentence_mentions_proposed(text, sentence, options, proposed);
            for (h, t, instance) in pair_instances(text, sentence, &found) {
                instances.push(instance);
                owners.push((s, h, t));
            }
            results.push(SentenceExtraction {
                sentence,
                mentions: found,
                triples: Vec::new(),
            });
        }
        if instances.is_empty() {
            return Ok(results);
        }
        let vectors = match marking {
            Marking::Marked => self.encode_instances(&instances).await?,
            Marking::Unmarked => {
                let pairs: Vec<_> = owners
                    .iter()
                    .zip(&instances)
                    .map(|(&(s, _, _), instance)| (s, instance.head, instance.tail))
                    .collect();
                self.encoder.pool_sentence_pairs(&texts, &states, &pairs).await?
            }
        };
        for ((s, h, t), vector) in owners.into_iter().zip(vectors) {
            let prediction = classifier.classify(&vector)?;
            let Some(best) = prediction.best().filter(|_| !prediction.none_of_the_above) else {
                continue;
            };
            // Closer to the wrong pairs of the relation's examples than to the relation.
            if self.wrong_pair_filter.get()
                && let Some(wrong) = wrong_pairs.get(&best.relation)
                && similarity(&vector, wrong, parts) > best.similarity
            {
                continue;
            }
            let result = &mut results[s];
            let triple = Triple {
                head: Argument::of(&result.mentions[h]),
                tail: Argument::of(&result.mentions[t]),
                relation: best.relation.clone(),
                score: best.probability,
                similarity: best.similarity,
                sentence: result.sentence,
            };
            result.triples.push(triple);
        }
        for result in &mut results {
            drop_nested_duplicates(&mut result.triples);
        }
        Ok(results)
    }
}

/// Of triples that say the same relation between nested mentions ("basketball" and
/// "basketball player" for one player's sport), keeps the best-scoring one; the others keep
/// their order.
fn drop_nested_duplicates(triples: &mut Vec<Triple>) {
    let span = |a: &Argument| CharSpan::new(a.start, a.end);
    let mut best_first: Vec<usize> = (0..triples.len()).collect();
    best_first.sort_by(|&a, &b| triples[b].score.total_cmp(&triples[a].score).then(a.cmp(&b)));
    let mut kept: Vec<usize> = Vec::with_capacity(triples.len());
    let mut keep = vec![false; triples.len()];
    for i in best_first {
        let t = &triples[i];
        let duplicate = kept.iter().any(|&k| {
            let other = &triples[k];
            other.relation == t.relation
                && span(&other.head).overlaps(&span(&t.head))
                && span(&other.tail).overlaps(&span(&t.tail))
        });
        if !duplicate {
            kept.push(i);
            keep[i] = true;
        }
    }
    let mut keep = keep.into_iter();
    triples.retain(|_| keep.next().unwrap_or(false));
}

/// The learned proposer's mentions of `sentence` of `text` (whose own text is
/// `sentence_text`), from the sentence's states.
fn learned_mentions(
    head: &MentionHead,
    text: &str,
    sentence: CharSpan,
    sentence_text: &str,
    read: &SentenceStates,
    options: ProposeOptions,
) -> Vec<CharSpan> {
    let candidates = crate::fewshot::mention_head::candidates(
        text,
        sentence,
        sentence_text,
        &read.pieces,
        read.ids.len() - 2,
    );
    head.propose(&read.states, &candidates, options)
        .into_iter()
        .map(|(span, _)| span)
        .collect()
}

/// The classifier's similarity of a query to a mean of representations of `parts` parts.
fn similarity(query: &[f32], mean: &[f32], parts: usize) -> f32 {
    1.0 - crate::fewshot::classifier::squared_distance(query, mean) / (2.0 * parts as f32)
}

/// Each example with its instance; an error names the example by its number.
fn parse_examples(examples: Vec<ExampleInput>) -> Result<Vec<(ExampleInput, RelationInstance)>> {
    examples
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            let instance = input.to_instance().map_err(|e| e.with_item("example", i))?;
            Ok((input, instance))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triple(head: (usize, usize), tail: (usize, usize), relation: &str, score: f32) -> Triple {
        let argument = |(start, end): (usize, usize)| Argument {
            text: String::new(),
            start,
            end,
        };
        Triple {
            head: argument(head),
            tail: argument(tail),
            relation: relation.into(),
            score,
            similarity: 0.0,
            sentence: CharSpan::new(0, 40),
        }
    }

    #[test]
    fn nested_mentions_give_one_triple_per_relation() {
        // "Ann is an English soprano": tail "English soprano" (10..25) and "soprano" (18..25).
        let mut triples = vec![
            triple((0, 3), (10, 25), "voice", 0.6),
            triple((0, 3), (18, 25), "voice", 0.8),
            triple((0, 3), (10, 17), "citizen", 0.7),
            triple((10, 25), (0, 3), "voice", 0.5),
        ];
        drop_nested_duplicates(&mut triples);
        let kept: Vec<(usize, &str)> = triples
            .iter()
            .map(|t| (t.tail.start, t.relation.as_str()))
            .collect();
        // The better "voice" stays; "citizen" ("English", also nested) is another relation;
        // the reversed pair is another direction.
        assert_eq!(kept, vec![(18, "voice"), (10, "citizen"), (0, "voice")]);
    }
}
