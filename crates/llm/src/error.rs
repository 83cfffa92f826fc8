//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading, running, tokenizing or writing a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error, with the file it concerns when known.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file that was being read or written (`<memory>` for in-memory buffers).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file ends before the data its header promises.
    #[error("truncated GGUF {what}: {detail}")]
    Truncated {
        /// Which file (or `<memory>`).
        what: String,
        /// What was missing.
        detail: String,
    },
    /// The bytes are not a valid GGUF file.
    #[error("corrupt GGUF {what}: {detail}")]
    Corrupt {
        /// Which file (or `<memory>`).
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// A tensor uses a ggml type this crate cannot compute with.
    #[error("unsupported ggml tensor type {type_name} (id {type_id}){tensor}")]
    UnsupportedTensorType {
        /// The ggml type id as stored in the file.
        type_id: u32,
        /// Its ggml name, when known.
        type_name: &'static str,
        /// `" in tensor NAME"` when the tensor is known, else empty.
        tensor: String,
    },
    /// `general.architecture` names a model family this crate does not implement.
    #[error(
        "unknown model architecture `{0}` (supported: llama, mistral, qwen2, qwen3; in GGUF also deci, Llama blocks with per-layer sizes)"
    )]
    UnknownArchitecture(String),
    /// A metadata key that the model needs is absent.
    #[error("missing GGUF metadata key `{0}`")]
    MissingMetadata(String),
    /// A metadata key has a value of the wrong type or out of range.
    #[error("bad GGUF metadata `{key}`: expected {expected}")]
    BadMetadata {
        /// The key.
        key: String,
        /// What was expected.
        expected: String,
    },
    /// A tensor the model needs is absent.
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has a shape other than the configuration implies.
    #[error("tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The tensor.
        name: String,
        /// The shape found (row-major, outermost first).
        actual: Vec<usize>,
        /// The shape expected.
        expected: Vec<usize>,
    },
    /// Tokenizer data in the metadata is unusable, or a token id is out of range.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The prompt plus generated tokens would exceed the context window.
    #[error("context overflow: {needed} positions needed, the model supports {max}")]
    ContextOverflow {
        /// Positions needed.
        needed: usize,
        /// The maximum.
        max: usize,
    },
    /// An argument is out of its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The local model cache does not hold the model.
    #[error(
        "missing model cache: {path} not found; run `cargo xtask setup` (or set EDGEWISE_MODEL_DIR)"
    )]
    MissingModelCache {
        /// Where the model was looked for.
        path: PathBuf,
    },
    /// An evaluation data file is malformed (names the file, line and what was expected).
    #[error("evaluation data {file}: {detail}")]
    EvalData {
        /// The file (or set name for in-memory text).
        file: String,
        /// What was wrong, with the line number when known.
        detail: String,
    },
    /// A distillation checkpoint is missing, unreadable or from another run.
    #[error("checkpoint {path}: {detail}")]
    Checkpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// An error from the tensor library.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(not(target_arch = "wasm32"))]
impl From<edgewise_atomic_file::Error> for Error {
    fn from(e: edgewise_atomic_file::Error) -> Self {
        Self::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
