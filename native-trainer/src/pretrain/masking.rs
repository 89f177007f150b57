//! Masked span language modelling (MSLM) and the spans of span-level contrastive learning
//! (SCL), decided per token from where the entities are.
//!
//! Every token of a marked, encoded instance gets a [`TokenRole`] from the token spans that
//! [`tkre::text::encode_instance`] reports for the markers; nothing is found by searching
//! strings, so an entity is never silently missed.
//!
//! - `[CLS]`/`[SEP]`: never masked.
//! - Marker tokens (`@ * type *`, `@`, `# ^ type ^`, `#`): never masked. They are structure
//!   the project inserts, not text of the sentence, and the classifier reads them at inference.
//! - Entity tokens (the head's and the tail's word pieces): masked with p = 0.5.
//! - Relation span, the tokens strictly between the two entities (after the first entity's
//!   closing marker, before the second's opening marker): masked with p = 0.8; its mean is
//!   SCL's positive.
//! - Every other token: masked with p = 0.2; SCL's negative is 1-3 consecutive such tokens.
//!
//! A masked token is always replaced by `[MASK]` (no 80/10/10 split) and predicted.

use rand::Rng;
use tkre::text::EncodedInstance;

/// Masking probabilities of the method (TKRE, eq. 3).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaskProbabilities {
    pub relation: f64,
    pub entity: f64,
    pub other: f64,
}

impl Default for MaskProbabilities {
    fn default() -> Self {
        Self {
            relation: 0.8,
            entity: 0.5,
            other: 0.2,
        }
    }
}

/// What a token is, for masking and for choosing contrastive spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    Special,
    Marker,
    Entity,
    Relation,
    Other,
}

impl TokenRole {
    pub fn mask_probability(self, p: &MaskProbabilities) -> f64 {
        match self {
            TokenRole::Special | TokenRole::Marker => 0.0,
            TokenRole::Entity => p.entity,
            TokenRole::Relation => p.relation,
            TokenRole::Other => p.other,
        }
    }
}

/// The role of each token of `encoded` (`[CLS] ... [SEP]`).
pub fn token_roles(encoded: &EncodedInstance) -> Vec<TokenRole> {
    let len = encoded.ids.len();
    let mut roles = vec![TokenRole::Other; len];
    // An entity block: opening marker (+ type part) .. entity pieces .. closing marker, which
    // directly follows the entity's last piece.
    let blocks = [
        (encoded.head_marker, encoded.head.clone()),
        (encoded.tail_marker, encoded.tail.clone()),
    ];
    for (open, entity) in &blocks {
        for role in &mut roles[*open..entity.start] {
            *role = TokenRole::Marker;
        }
        for role in &mut roles[entity.clone()] {
            *role = TokenRole::Entity;
        }
        if entity.end < len {
            roles[entity.end] = TokenRole::Marker;
        }
    }
    let (first, second) = if encoded.head_marker < encoded.tail_marker {
        (&blocks[0], &blocks[1])
    } else {
        (&blocks[1], &blocks[0])
    };
    let between = (first.1.end + 1)..second.0;
    for role in roles.iter_mut().take(between.end).skip(between.start) {
        *role = TokenRole::Relation;
    }
    roles[0] = TokenRole::Special;
    if len > 1 {
        roles[len - 1] = TokenRole::Special;
    }
    roles
}

/// One instance after masking: the encoder input, the MSLM targets and the SCL spans.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedInstance {
    /// Input ids with masked positions replaced by `[MASK]`.
    pub input_ids: Vec<u32>,
    /// `(position, original id)` of every masked token.
    pub targets: Vec<(usize, u32)>,
    /// Positions of the relation span (empty when the entities are adjacent).
    pub positive: Vec<usize>,
    /// Positions of the negative span (empty when the sentence has no other tokens).
    pub negative: Vec<usize>,
}

/// Masks one instance and draws its negative span.
pub fn mask_instance(
    encoded: &EncodedInstance,
    roles: &[TokenRole],
    probabilities: &MaskProbabilities,
    mask_id: u32,
    rng: &mut impl Rng,
) -> MaskedInstance {
    let mut input_ids = encoded.ids.clone();
    let mut targets = Vec::new();
    for (position, role) in roles.iter().enumerate() {
        let p = role.mask_probability(probabilities);
        if p > 0.0 && rng.random_bool(p) {
            targets.push((position, input_ids[position]));
            input_ids[position] = mask_id;
        }
    }
    let positive = positions(roles, TokenRole::Relation);
    let negative = negative_span(roles, rng);
    MaskedInstance {
        input_ids,
        targets,
        positive,
        negative,
    }
}

fn positions(roles: &[TokenRole], wanted: TokenRole) -> Vec<usize> {
    roles
        .iter()
        .enumerate()
        .filter(|(_, r)| **r == wanted)
        .map(|(i, _)| i)
        .collect()
}

/// A random span of 1-3 consecutive `Other` tokens (outside both entities, their markers and
/// the relation span). Its length is drawn first (uniform over 1..=3, capped by the longest
/// run available), then its start uniformly among the places it fits.
pub fn negative_span(roles: &[TokenRole], rng: &mut impl Rng) -> Vec<usize> {
    // Maximal runs of consecutive Other tokens.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    for (i, role) in roles.iter().enumerate() {
        match (role == &TokenRole::Other, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, roles.len()));
    }
    let longest = runs.iter().map(|(s, e)| e - s).max().unwrap_or(0);
    if longest == 0 {
        return Vec::new();
    }
    let len = rng.random_range(1..=longest.min(3));
    let starts: Vec<usize> = runs
        .iter()
        .filter(|(s, e)| e - s >= len)
        .flat_map(|&(s, e)| s..=e - len)
        .collect();
    let start = starts[rng.random_range(0..starts.len())];
    (start..start + len).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// `[CLS] a @ h @ b c # t t # d [SEP]`.
    fn example() -> EncodedInstance {
        EncodedInstance {
            ids: (100..113).collect(),
            head_marker: 2,
            head: 3..4,
            tail_marker: 7,
            tail: 8..10,
            truncated: false,
        }
    }

    #[test]
    fn roles_follow_the_markers() {
        use TokenRole::*;
        let roles = token_roles(&example());
        assert_eq!(
            roles,
            vec![
                Special, Other, Marker, Entity, Marker, Relation, Relation, Marker, Entity, Entity, Marker,
                Other, Special
            ]
        );
    }

    #[test]
    fn tail_first_and_adjacent_entities() {
        use TokenRole::*;
        // [CLS] # t # @ h @ [SEP]: nothing between the entities.
        let encoded = EncodedInstance {
            ids: (0..8).collect(),
            head_marker: 4,
            head: 5..6,
            tail_marker: 1,
            tail: 2..3,
            truncated: false,
        };
        let roles = token_roles(&encoded);
        assert_eq!(
            roles,
            vec![Special, Marker, Entity, Marker, Marker, Entity, Marker, Special]
        );
        let mut rng = StdRng::seed_from_u64(1);
        let masked = mask_instance(&encoded, &roles, &MaskProbabilities::default(), 0, &mut rng);
        assert!(masked.positive.is_empty());
        assert!(masked.negative.is_empty());
    }

    #[test]
    fn negative_spans_stay_on_other_tokens() {
        let roles = token_roles(&example());
        let mut rng = StdRng::seed_from_u64(7);
        let mut lengths = [0usize; 4];
        for _ in 0..2000 {
            let span = negative_span(&roles, &mut rng);
            assert!(!span.is_empty() && span.len() <= 3);
            assert!(span.iter().all(|&i| roles[i] == TokenRole::Other), "{span:?}");
            assert!(span.windows(2).all(|w| w[1] == w[0] + 1));
            lengths[span.len()] += 1;
        }
        // Runs of Other tokens here are single tokens, so every span has length 1.
        assert_eq!(lengths[1], 2000);
    }
}
