//! Error types of the simulator.

use thiserror::Error;

/// A configuration that could not be parsed or is out of range.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The document is not valid TOML/JSON for the schema (wrong type, unknown key, ...).
    #[error("invalid {format} config: {message}")]
    Parse {
        /// "TOML" or "JSON".
        format: &'static str,
        /// The parser's message, which names the offending key and line.
        message: String,
    },
    /// A field parsed but its value is out of range.
    #[error("config field `{field}` = {value} is out of range: expected {expected}")]
    OutOfRange {
        /// Dotted path of the field, e.g. `radio.bandwidth_hz`.
        field: String,
        /// The value found.
        value: String,
        /// What was expected instead.
        expected: String,
    },
}

/// Any error the simulator reports.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum MecError {
    /// Bad scenario configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad or inconsistent variant catalogue.
    #[error("variant catalogue: {0}")]
    Catalogue(String),
    /// Action buffer of the wrong length.
    #[error("expected {expected} actions (one per device), got {got}")]
    ActionCount {
        /// Devices in the scenario.
        expected: usize,
        /// Actions given.
        got: usize,
    },
}
