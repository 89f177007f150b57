//! From user text to encoder input: the tokenizer, the input forms of a relation instance,
//! and the entity markers that tell the encoder where the head and tail are.

pub mod instance;
pub mod markers;
pub mod tokenizer;

pub use instance::{CharSpan, FewRelRecord, RelationInstance};
pub use markers::{EncodedInstance, encode_instance, encode_sentence};
pub use tokenizer::TextTokenizer;
