//! Reinforcement learning for edgewise: PPO and world-model PPO on burn.
//!
//! What it does:
//! - drives any [`edgewise_env::VecEnv`] (a batch of environments, each with several
//!   agents that share one policy) with [`ppo::Ppo`]; WM-PPO adds a model of the
//!   action-dependent response for counterfactual per-action advantages ([`wm_ppo`],
//!   [`response_model`]); the first, GRU-based WM-PPO stays as an ablation
//!   ([`gru_world_model`]);
//! - ships its own vectorised [`cartpole::CartPoleVecEnv`] (Gym CartPole-v1 dynamics) to
//!   validate the learner;
//! - exports trained policies to the small, versioned JSON format of the `edgewise-policy`
//!   crate ([`edgewise_policy::PolicyFile`], with its burn-free inference) for the web app
//!   and the CLI;
//! - writes checkpoints that resume exactly ([`checkpoint`]);
//! - drives batches of different agent counts as one ([`mixed_env::MixedVecEnv`]), to
//!   train one policy on a mix of populations.
//!
//! What it never does: depend on a simulator crate (it knows environments only through
//! `edgewise-env`), read a clock or OS randomness (every random draw comes from a seeded
//! [`edgewise_rng::Rng`]), or print.
//!
//! # Backend
//!
//! burn 0.22 tensors carry their backend in the [`burn::tensor::Device`] rather than in a
//! type parameter, so everything here is generic over the backend by taking a `Device`.
//! The default is burn's pure-Rust `flex` CPU backend ([`cpu_device`]): the `ndarray`
//! backend is deprecated in 0.22 in favour of it, it needs no system library, builds for
//! `wasm32-unknown-unknown`, and its `gemm` matmul is fast on the small batches PPO uses.
//! The opt-in `wgpu` feature adds burn's GPU backend (`wgpu_device`).
//!
//! # Layout
//!
//! `rollout` (storage and GAE) → `ppo` (the learner: collection, clipped-surrogate
//! update) → `assist` (what a model-based helper gets and reports) → `wm_ppo` +
//! `response_model` (WM-PPO) and `gru_assist` + `gru_world_model` (the ablation);
//! `grad_clip` is shared by every learner; `normalize` holds the running statistics;
//! `checkpoint` serialises any of the three; `mixed_env` stacks environments of
//! different agent counts.
//!
//! # Speed
//!
//! Rollouts run the policy in plain Rust ([`edgewise_policy::Mlp`]) and only learning runs on
//! burn, so burn's per-operation overhead is paid per minibatch, not per environment
//! step. `tanh` is computed with a rational approximation in plain Rust and as
//! `2·σ(2x) − 1` on burn: the C library's `tanhf` took 70% of the time otherwise.

mod assist;
pub mod cartpole;
pub mod checkpoint;
pub mod error;
pub mod experiment;
mod grad_clip;
mod gru_assist;
pub mod gru_world_model;
pub mod mixed_env;
pub mod model;
pub mod normalize;
pub mod ppo;
pub mod response_model;
mod rollout;
mod sequential;
pub mod wm_ppo;

pub use burn;
pub use error::{Result, RlError};
pub use gru_world_model::GruWmConfig;
pub use ppo::{IterationStats, Ppo, PpoConfig};
pub use wm_ppo::WmConfig;

/// burn's pure-Rust CPU device (`flex`), the default place to learn.
#[must_use]
pub fn cpu_device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// burn's wgpu device (the default adapter). On wasm32 it must be initialised
/// asynchronously first (see burn's `wgpu` module).
#[cfg(feature = "wgpu")]
#[must_use]
pub fn wgpu_device() -> burn::tensor::Device {
    burn::tensor::Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
}
