//! Few-shot classification: relation representations, relation text, prototypes, support sets,
//! scores, and relations in documents.

pub mod calibration;
pub mod classifier;
pub mod document;
pub mod encoded_set;
pub mod mention_head;
pub mod relation_text;
pub mod representation;
pub mod support_set;

pub use calibration::Calibration;
pub use classifier::{Prediction, PrototypeClassifier, RelationScore, RelationVectors};
pub use encoded_set::{EncodedRelation, EncodedSupportSet, RelationSummary};
pub use relation_text::RelationText;
pub use representation::{Part, Representation, normalize_parts};
pub use support_set::{ExampleInput, ParsedRelation, ParsedSupportSet, RelationExamples, SupportSet};
