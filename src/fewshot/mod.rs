//! Few-shot classification: relation representations, prototypes, support sets and scores.

pub mod classifier;
pub mod representation;
pub mod support_set;

pub use classifier::{Prediction, PrototypeClassifier, RelationScore};
pub use representation::{Part, Representation, normalize_parts};
pub use support_set::{ExampleInput, ParsedSupportSet, RelationExamples, SupportSet};
