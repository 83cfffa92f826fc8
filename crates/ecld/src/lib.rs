//! `edgewise-ecld`: the research pipeline around the LLM engine (`edgewise-llm`).
//!
//! What it is for: build and judge the compressed variants of ECLD (design §4.3–4.4) —
//! calibration statistics, pruning, quantization, logit distillation, GGUF export of the
//! result, and the evaluation (data sets, quality metrics, energy model) that turns each
//! variant into a row of the simulator's catalogue.
//!
//! What it never does: take part in serving a model. The browser bundle and anything that
//! only runs a model depend on `edgewise-llm` alone (the layering test checks that the web
//! app never depends on this crate); the CLI (`edgewise compress`, `edgewise eval`) and the
//! examples use it.
//!
//! Map: [`compress`] (pruning, quantization), [`pipeline`] (ECLD and its baselines as one
//! call; native only), [`calibration`] (a
//! block-by-block forward exposing every linear layer's input), [`imatrix`] (Σx² per input
//! channel), [`block_quant`] (importance-weighted Q4_0/Q4_1/Q8_0/IQ4_NL encoders; the
//! IQ4_NL block search in [`iq4_nl`]),
//! [`reconstruct`] (least-squares refit after pruning), [`distill`] (logit distillation
//! with resumable checkpoints; native only), [`eval`] (evaluation data, quality metrics,
//! statistics, energy model), [`safetensors`] (Hugging Face checkpoints).

pub mod block_quant;
pub mod calibration;
pub mod compress;
#[cfg(not(target_arch = "wasm32"))]
pub mod distill;
pub mod eval;
pub mod imatrix;
pub mod iq4_nl;
#[cfg(not(target_arch = "wasm32"))]
pub mod pipeline;
pub mod reconstruct;
pub mod safetensors;
