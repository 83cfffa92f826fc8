//! `edgewise-gpu`: the compact model's whole forward pass on wgpu, one set of WGSL kernels
//! natively (Vulkan, Metal, DX12; lavapipe in CI) and in the browser (WebGPU).
//!
//! What it is for: re-lay a loaded [`edgewise_llm::Model`]'s GGUF blocks into GPU words
//! ([`layout`]), run fused kernels over them ([`shaders`], `src/wgsl/*.wgsl`) and decode
//! greedily with the chosen token kept on the GPU ([`GpuModel`]). Every kernel has a CPU
//! reference ([`reference`]) and a one-shot runner ([`ops`]) the tests compare.
//!
//! What it never does: widen weights to f32 on the GPU, assume a subgroup size or
//! `shader-f16`, or ask for more than WebGPU's default limits.

#[cfg(not(target_arch = "wasm32"))]
pub mod block;
pub mod context;
pub mod error;
pub mod kernels;
pub mod layout;
pub mod model;
pub mod ops;
pub mod reference;
pub mod rope;
pub mod shaders;

#[cfg(not(target_arch = "wasm32"))]
pub use block::block_on;
pub use context::{AdapterSummary, GpuContext};
pub use error::{GpuError, Result};
pub use layout::{GpuWeights, WeightType};
pub use model::GpuModel;
pub use shaders::Shader;
