//! Reinforcement learning for edgewise: PPO and world-model PPO on burn.
//!
//! What it does:
//! - drives any [`edgewise_env::VecEnv`] (a batch of environments, each with several
//!   agents that share one policy) with [`ppo::Ppo`];
//! - ships its own vectorised [`cartpole::CartPoleVecEnv`] (Gym CartPole-v1 dynamics) to
//!   validate the learner;
//! - exports trained policies to a small, versioned JSON format ([`policy::PolicyFile`],
//!   defined with its burn-free inference in the `edgewise-policy` crate and re-exported
//!   as [`policy`]) for the web app and the CLI;
//! - writes checkpoints that resume exactly ([`checkpoint`]).
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
//! # Speed
//!
//! Rollouts run the policy in plain Rust ([`policy::Mlp`]) and only learning runs on
//! burn, so burn's per-operation overhead is paid per minibatch, not per environment
//! step. `tanh` is computed with a rational approximation in plain Rust and as
//! `2·σ(2x) − 1` on burn: the C library's `tanhf` took 70% of the time otherwise.

pub mod cartpole;
pub mod checkpoint;
pub mod error;
pub mod experiment;
pub mod model;
pub mod normalize;
pub mod policy;
pub mod ppo;
pub mod wm;

pub use burn;
pub use error::{Result, RlError};
pub use policy::{PolicyError, PolicyFile};
pub use ppo::{IterationStats, Ppo, PpoConfig};
pub use wm::{WmConfig, WorldModelTrainer};

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
