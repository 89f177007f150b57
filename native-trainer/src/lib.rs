//! The trainer's library: what the `tkre` binary runs beyond inference, kept in a library so
//! that its tests reach the parts (masking, losses, resume) directly.
//! Pipeline order: synthesis -> pre-training -> distillation/export.

pub mod evaluation;
pub mod paths;
pub mod pretrain;
pub mod synthesis;
