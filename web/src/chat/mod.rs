//! The on-device LLM chat: a compact model answering in the page, in its own worker.
//!
//! - [`protocol`]: the panel ↔ LLM-worker messages;
//! - [`model_index`]: the model list the bundle ships and which model is loaded;
//! - [`lm_head`]: the Q8_0 LM head's GPU layout and its CPU reference mat-vec;
//! - `worker` and `gpu` (wasm32 only): the LLM worker (candle on the CPU, the LM head on
//!   WebGPU when there is an adapter) and its WGSL kernel;
//! - [`panel`]: the page side and view, one component that owns the worker.

pub mod lm_head;
pub mod model_index;
pub mod panel;
pub mod protocol;

#[cfg(target_arch = "wasm32")]
mod gpu;
#[cfg(target_arch = "wasm32")]
pub mod worker;
