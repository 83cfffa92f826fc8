//! The energy model of design §4.4, as the evaluation uses it.
//!
//! The arithmetic lives in [`edgewise_llm::energy`] so the browser app, which never loads
//! this pipeline crate, applies the same model to the visitor's own device; this module
//! re-exports it so the evaluation's callers name it where they always did.

pub use edgewise_llm::energy::*;
