//! `edgewise-llm`: the LLM engine of edgewise.
//!
//! What it is for: load a GGUF model (metadata, every common ggml tensor type), run the
//! Llama-family forward (Llama/SmolLM2, Mistral, Qwen2/Qwen3 as configuration switches) on
//! quantized weights with a KV cache, tokenize with the byte-level BPE stored in the file's
//! metadata, apply the chat template, sample the next token from a seeded PRNG, and write
//! GGUF files back (for the ECLD pipeline's exported variants). The research pipeline
//! (compression, distillation, evaluation) lives in `edgewise-ecld`, which the browser
//! never loads.
//!
//! What it never does: download anything (the model cache is filled by `cargo xtask setup`),
//! read a clock or OS randomness, or depend on an application crate. It builds for
//! `wasm32-unknown-unknown`; file-path helpers are native-only, readers work everywhere.
//!
//! Map: [`gguf`] (read/write), [`fuzz_entry`] (the whole read path on untrusted bytes), [`export`] (a model back to GGUF), [`config`]
//! (hyper-parameters), [`weight`] (a stored weight of any type: candle's or IQ4_NL),
//! [`iq4_nl`] (the IQ4_NL block format), [`model`] (forward, cache, activation
//! statistics), [`kernels`] (the Q4_1 and IQ4_NL matrix products), [`tokenizer`] (BPE, chat templates), [`sampling`], [`generate`]
//! (generation loop, [`Engine`]), [`model_cache`] (where the shipped model is), [`energy`]
//! (the per-device-class energy model: plain arithmetic on a model's configuration, shared
//! by `edgewise eval` and the browser app).

pub mod config;
pub mod energy;
pub mod error;
pub mod export;
pub mod fuzz_entry;
pub mod generate;
pub mod gguf;
pub mod iq4_nl;
pub mod kernels;
pub mod model;
pub mod model_cache;
pub mod sampling;
pub mod tokenizer;
pub mod weight;

pub use candle_core::Device;
/// Threads of candle's CPU pool (`RAYON_NUM_THREADS`), which the kernels share.
pub use candle_core::utils::get_num_threads as cpu_threads;
pub use config::{Architecture, ModelConfig, RopeStyle};
pub use error::{Error, Result};
pub use generate::{Engine, StopReason, generate};
pub use gguf::GgufFile;
pub use model::{ActivationStats, KvCache, Model};
pub use sampling::{Sampler, Sampling};
pub use tokenizer::{ChatMessage, ChatTemplate, StreamDecoder, Tokenizer};
pub use weight::{Weight, WeightType};
