//! One error type for the library. Every message says what is wrong and how to fix it,
//! because these messages reach CLI users and (through wasm) JavaScript callers verbatim.

use std::path::PathBuf;

/// Errors raised by the library. None of the library's code paths on user input panic; they
/// return one of these instead.
#[derive(Debug, thiserror::Error)]
pub enum TkreError {
    /// A file could not be read or written.
    // The message includes the cause; as a `source` (thiserror takes a field of that name as
    // one) an error chain would print it twice.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    /// A model directory or model file is missing, incomplete or malformed.
    #[error("model: {0}")]
    Model(String),
    /// The tokenizer could not be loaded or failed on an input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A relation instance (sentence with a head and a tail entity) is malformed.
    #[error("{0}")]
    Instance(String),
    /// A support set is empty, inconsistent or malformed.
    #[error("support set: {0}")]
    SupportSet(String),
    /// An option or setting outside what it may be (a length, a threshold, a count).
    #[error("{0}")]
    Option(String),
    /// The compute device failed: no WebGPU adapter, a lost device, results that could not be
    /// read back.
    #[error("{0}")]
    Device(String),
    /// JSON that could not be parsed, with where it came from.
    #[error("{origin}: malformed JSON: {error}")]
    Json {
        origin: String,
        error: serde_json::Error,
    },
}

/// Result alias used throughout the library.
pub type Result<T, E = TkreError> = std::result::Result<T, E>;

impl TkreError {
    /// A stable name for the kind of error, for callers that act on errors (the JavaScript
    /// side decides on kinds, never on message text, which quotes user input).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::Model(_) => "model",
            Self::Tokenizer(_) => "tokenizer",
            Self::Instance(_) => "instance",
            Self::SupportSet(_) => "support-set",
            Self::Option(_) => "option",
            Self::Device(_) => "device",
            Self::Json { .. } => "json",
        }
    }

    /// The error of one item of a batch, named by its number (from 1) so the caller can find
    /// it: `query #3: ...`. The kind stays.
    pub fn with_item(self, what: &str, index: usize) -> Self {
        let name = |message: String| format!("{what} #{}: {message}", index + 1);
        match self {
            Self::Instance(m) => Self::Instance(name(m)),
            Self::Tokenizer(m) => Self::Tokenizer(name(m)),
            Self::Option(m) => Self::Option(name(m)),
            other => other,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error: source,
        }
    }

    pub fn json(origin: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Json {
            origin: origin.into(),
            error: source,
        }
    }
}
