//! From user text to encoder input: the tokenizer, the input forms of a relation instance,
//! the entity markers that tell the encoder where the head and tail are, and for documents
//! their sentences and entity mentions.

pub mod instance;
pub mod markers;
pub mod mentions;
pub mod sentences;
pub mod tokenizer;

pub use instance::{CharSpan, FewRelRecord, RelationInstance};
pub use markers::{
    EncodedInstance, Marking, encode_instance, encode_sentence, encode_unmarked, piece_ranges,
};
pub use tokenizer::TextTokenizer;
