//! The batch planner: which sequences go through a forward pass together, and how each
//! sequence's hidden states are pooled into vectors afterwards.
//!
//! The fused engines (CPU, WebGPU) take *ragged* batches, every sequence without padding, of at
//! most [`TOKENS_PER_PASS`] tokens together ([`PoolingPlan::ragged_passes`]). The burn engine
//! pads a batch to its longest sequence, so it gets groups of similar length
//! ([`PoolingPlan::length_groups`]). Token ids are checked against the model here
//! ([`check_sequences`]) before any engine indexes a table with them.

use std::ops::Range;

use crate::error::{Result, TkreError};

/// Most tokens one pass holds, all sequences together (real tokens in a ragged pass, padded
/// ones in a padded pass): bounds the activation memory, about 30 MB of scratch for 2048 tokens
/// of all-MiniLM-L6-v2 (`hidden` + `3 hidden` + `hidden` + `intermediate` + `hidden` floats per
/// token), and a padded pass's attention scores (12 heads x 2048 x 512 floats at 512 tokens).
/// A longer sequence runs alone.
pub const TOKENS_PER_PASS: usize = 2048;

/// How an engine wants its batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// Sequences without padding, up to [`TOKENS_PER_PASS`] tokens a pass.
    Ragged,
    /// Padded to the longest of the pass: sequences of similar length (see
    /// [`PoolingPlan::length_groups`]); the caller's batch size bounds a pass.
    Padded,
}

/// Token ids plus, for every sequence, the pooling weights of each output part.
#[derive(Debug, Clone)]
pub struct PoolingPlan {
    pub ids: Vec<Vec<u32>>,
    /// `weights[sequence][part]` = `(position, weight)` pairs.
    pub weights: Vec<Vec<Vec<(usize, f32)>>>,
    pub parts: usize,
}

impl PoolingPlan {
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

    /// Adds the sequences of `other` (a plan with the same parts) after these.
    pub fn append(&mut self, other: PoolingPlan) {
        debug_assert_eq!(self.parts, other.parts);
        self.ids.extend(other.ids);
        self.weights.extend(other.weights);
    }

    /// The plan of the sequences at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> PoolingPlan {
        PoolingPlan {
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            weights: indices.iter().map(|&i| self.weights[i].clone()).collect(),
            parts: self.parts,
        }
    }

    /// The passes of this plan for an engine that batches as `batching` says: each pass the
    /// indices of its sequences.
    pub fn passes(&self, batching: Batching) -> Vec<Vec<usize>> {
        match batching {
            Batching::Ragged => self.ragged_passes().into_iter().map(Iterator::collect).collect(),
            Batching::Padded => self.length_groups(usize::MAX),
        }
    }

    /// The sequences' indices in groups of similar length, shortest first, each group one
    /// padded pass: at most `max_batch` sequences and [`TOKENS_PER_PASS`] padded tokens, and a
    /// group ends before padding would add more than a quarter to its real tokens. Sentences
    /// of mixed length (FewRel's 10-60 tokens) padded to the longest of 32 cost up to twice the
    /// compute of the real tokens; in groups, at most 1.25 times.
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
                && (current.len() >= max_batch.max(1) || padded > TOKENS_PER_PASS || too_much_padding)
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
    /// sequence runs alone): the passes of a ragged forward pass.
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

    /// Pools the hidden states of one pass (`hidden`: the rows of the sequences `pass`, one
    /// after another, `width` values each) into `out` (`[sequences, parts, width]` for the
    /// whole plan).
    pub fn pool_pass(&self, pass: &[usize], hidden: &[f32], width: usize, out: &mut [f32]) -> Result<()> {
        let mut first_row = 0;
        for &s in pass {
            let len = self.ids[s].len();
            if hidden.len() < (first_row + len) * width {
                return Err(TkreError::Model(format!(
                    "the engine returned {} hidden values for {} tokens of {width}",
                    hidden.len(),
                    first_row + len
                )));
            }
            for (p, positions) in self.weights[s].iter().enumerate() {
                let pooled = &mut out[(s * self.parts + p) * width..][..width];
                for &(position, weight) in positions {
                    if position >= len {
                        return Err(TkreError::Model(format!(
                            "pooling position {position} is outside sequence {s} of {len} tokens"
                        )));
                    }
                    let state = &hidden[(first_row + position) * width..][..width];
                    for (o, v) in pooled.iter_mut().zip(state) {
                        *o += weight * v;
                    }
                }
            }
            first_row += len;
        }
        Ok(())
    }
}

/// Rejects what the position table or vocabulary cannot hold, with the sequence named.
pub fn check_sequences(sequences: &[&[u32]], vocab_size: usize, max_positions: usize) -> Result<()> {
    for (s, ids) in sequences.iter().enumerate() {
        if ids.len() > max_positions {
            return Err(TkreError::Model(format!(
                "sequence {s} has {} tokens; the model's position table holds {max_positions}",
                ids.len()
            )));
        }
        if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(TkreError::Model(format!(
                "sequence {s} has token id {id}, outside the model's vocabulary of {vocab_size}"
            )));
        }
    }
    Ok(())
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
            assert!(group.len() == 1 || group.len() * longest <= TOKENS_PER_PASS);
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
            3,
            "4 x 512 tokens per pass"
        );
        assert!(plan_of_lengths(&[]).length_groups(8).is_empty());
    }

    #[test]
    fn ragged_passes_cover_every_sequence_in_order_within_the_token_bound() {
        let lengths = [100, 2000, 30, 3000, 5, 5, 1000, 1040];
        let plan = plan_of_lengths(&lengths);
        let passes = plan.passes(Batching::Ragged);
        assert_eq!(passes.concat(), (0..lengths.len()).collect::<Vec<_>>());
        for pass in passes {
            let tokens: usize = pass.iter().map(|&i| lengths[i]).sum();
            assert!(pass.len() == 1 || tokens <= TOKENS_PER_PASS, "{pass:?}");
        }
    }
}
