//! The crate's error type.

use edgewise_policy::PolicyError;

/// Everything that can go wrong while configuring, training, checkpointing or exporting.
#[derive(Debug, thiserror::Error)]
pub enum RlError {
    /// A configuration field is out of range.
    #[error("invalid config field `{field}`: {reason}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// What was expected.
        reason: String,
    },
    /// The environment does not fit the learner (or the checkpoint).
    #[error("environment mismatch: {0}")]
    EnvMismatch(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint file is corrupt, truncated or of another version.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file concerned.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A policy file could not be built or read.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// Result alias for this crate.
pub type Result<T, E = RlError> = core::result::Result<T, E>;
