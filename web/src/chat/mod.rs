//! The on-device LLM chat: a compact model answering in the page, in its own worker.
//!
//! - [`protocol`]: the panel ↔ LLM-worker messages;
//! - [`model_index`]: the model list the bundle ships and which model is loaded;
//! - [`choice`]: which backend the visitor's choice leads to, and why;
//! - [`timing`]: how fast a generation or the fixed benchmark ran ("Measure this device");
//! - [`energy_estimate`]: the live joules per token beside the chat, from the energy model;
//! - `worker`, `download` and `backend` (wasm32 only): the LLM worker, how it gets the
//!   model file, and where it runs the model (the whole forward pass on WebGPU through
//!   `edgewise-gpu`, or candle on the wasm CPU path);
//! - [`panel`]: the page side and view, one component that owns the worker.

pub mod choice;
pub mod energy_estimate;
pub mod model_index;
pub mod panel;
pub mod protocol;
pub mod timing;

#[cfg(target_arch = "wasm32")]
mod backend;
#[cfg(target_arch = "wasm32")]
mod download;
#[cfg(target_arch = "wasm32")]
pub mod worker;
