//! The word-piece tokenizer, loaded from a checkpoint's `tokenizer.json`.

use tokenizers::Tokenizer;

use crate::error::{Result, TkreError};

/// A `tokenizer.json` tokenizer with the checkpoint's own padding and truncation switched off:
/// this project pads batches itself and windows long sentences around the entities instead of
/// cutting them off at the end.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    cls_id: u32,
    sep_id: u32,
    pad_id: u32,
}

/// Word pieces of a text without special tokens, with byte offsets into the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Pieces {
    pub ids: Vec<u32>,
    pub offsets: Vec<(usize, usize)>,
}

impl TextTokenizer {
    /// Parses `tokenizer.json` bytes; `origin` names the file in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        let mut inner = Tokenizer::from_bytes(bytes)
            .map_err(|e| TkreError::Tokenizer(format!("{origin}: not a valid tokenizer.json: {e}")))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TkreError::Tokenizer(format!("{origin}: {e}")))?;
        let special = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| {
                TkreError::Tokenizer(format!(
                    "{origin}: the vocabulary has no {token} token; a BERT-style tokenizer \
                     with [CLS], [SEP] and [PAD] is required"
                ))
            })
        };
        let (cls_id, sep_id, pad_id) = (special("[CLS]")?, special("[SEP]")?, special("[PAD]")?);
        Ok(Self {
            inner,
            cls_id,
            sep_id,
            pad_id,
        })
    }

    /// Word pieces of `text`, without [CLS]/[SEP].
    pub fn pieces(&self, text: &str) -> Result<Pieces> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TkreError::Tokenizer(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(Pieces {
            ids: encoding.get_ids().to_vec(),
            offsets: encoding.get_offsets().to_vec(),
        })
    }

    /// `[CLS] ids [SEP]`.
    pub fn with_special_tokens(&self, ids: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(ids.len() + 2);
        out.push(self.cls_id);
        out.extend_from_slice(ids);
        out.push(self.sep_id);
        out
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The id of a token of the vocabulary (e.g. `[MASK]`), if it has one.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest token id the tokenizer can produce (added tokens included).
    pub fn max_id(&self) -> usize {
        self.inner
            .get_vocab(true)
            .values()
            .copied()
            .max()
            .map_or(0, |id| id as usize)
    }

    /// The underlying `tokenizers` tokenizer (for writing it back out with a checkpoint).
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}
