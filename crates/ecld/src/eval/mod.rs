//! Evaluation of model variants (design §4.3–4.4): the data sets ([`data`]), the quality
//! metrics ([`metrics`]: hallucination rate, multiple-choice accuracy, perplexity), the
//! per-device-class energy model ([`energy`], re-exported from `edgewise-llm`) and the
//! statistics that compare variants ([`stats`]: paired bootstrap, McNemar, retention above
//! chance, KL/top-1, risk–coverage).
//!
//! Everything here is deterministic (greedy decoding, no sampling) and clock-free: the
//! `edgewise eval` command times the calls and measures memory, and turns the results into
//! the simulator's variant catalogue (the `llm` crate never depends on `mec`).

pub mod data;
pub mod energy;
pub mod metrics;
pub mod stats;

pub use data::{DataSet, EvalData, FactItem, McItem, TextItem};
pub use energy::{ClassEstimate, DeviceClass, HostSpeed, ModelWork, QueryShape};
pub use metrics::{FactOutcome, FactTally, OptionScore};
