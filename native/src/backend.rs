//! Where `edgewise chat` and `edgewise generate` run the model: the `--backend` choice,
//! how `auto` decides (and says why), and the [`Session`] a backend hands the
//! generation loop.
//!
//! The CPU backend is the engine's candle forward. The GPU backend (`crates/gpu` on
//! wgpu) exists only in binaries built with the `wgpu` feature; without it `--backend
//! wgpu` is an error naming the feature and `auto` falls back to the CPU.

use anyhow::Result;
use edgewise_llm::{Engine, KvCache, Sampler};

/// The `--backend` flag.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The CPU engine (candle, quantized weights, the hand-written Q4_1 kernel).
    Cpu,
    /// The whole forward pass on the GPU through wgpu (needs the `wgpu` feature).
    Wgpu,
    /// The GPU when this binary has the `wgpu` feature and an adapter exists, else the CPU.
    Auto,
}

/// The message for `--backend wgpu` in a binary without the feature.
pub const NO_WGPU_FEATURE: &str =
    "this binary was built without the `wgpu` feature; rebuild with `--features wgpu`";

/// A model being run: positions are processed in order and the next token is picked.
pub trait Session {
    /// Runs `tokens` at the next positions and picks the token that follows the last of
    /// them with `sampler`.
    ///
    /// # Errors
    /// Context overflow, out-of-vocabulary ids, device errors.
    fn step(&mut self, tokens: &[u32], sampler: &mut Sampler) -> Result<u32>;

    /// Positions processed so far.
    fn position(&self) -> usize;

    /// Forgets all positions from `len` on (`0` starts over).
    fn truncate(&mut self, len: usize);

    /// The most positions this session can hold.
    fn max_positions(&self) -> usize;

    /// A short description for the user, e.g. `cpu (2 threads)`.
    fn describe(&self) -> String;
}

/// The CPU engine with its KV cache.
pub struct CpuSession<'a> {
    engine: &'a Engine,
    cache: KvCache,
}

impl<'a> CpuSession<'a> {
    /// A fresh session on `engine`.
    #[must_use]
    pub fn new(engine: &'a Engine) -> Self {
        Self {
            engine,
            cache: engine.model.new_cache(),
        }
    }
}

impl Session for CpuSession<'_> {
    fn step(&mut self, tokens: &[u32], sampler: &mut Sampler) -> Result<u32> {
        let logits = self.engine.model.forward(tokens, &mut self.cache)?;
        Ok(sampler.sample(&logits.to_vec1::<f32>()?)?)
    }

    fn position(&self) -> usize {
        self.cache.len()
    }

    fn truncate(&mut self, len: usize) {
        self.cache.truncate(len);
    }

    fn max_positions(&self) -> usize {
        self.engine.model.max_positions()
    }

    fn describe(&self) -> String {
        let n = edgewise_llm::cpu_threads();
        format!("cpu ({n} thread{})", if n == 1 { "" } else { "s" })
    }
}

/// Opens a session on the chosen backend and prints to stderr which one runs and why.
///
/// # Errors
/// `--backend wgpu` in a binary without the `wgpu` feature, or when no adapter is found;
/// GPU set-up errors.
pub fn open<'a>(choice: Backend, engine: &'a Engine) -> Result<Box<dyn Session + 'a>> {
    let (session, why): (Box<dyn Session + 'a>, String) = match choice {
        Backend::Cpu => (Box::new(CpuSession::new(engine)), "--backend cpu".into()),
        Backend::Wgpu => gpu::open_required(engine)?,
        Backend::Auto => gpu::open_auto(engine)?,
    };
    eprintln!("backend: {} ({why})", session.describe());
    Ok(session)
}

/// The GPU side of the choice. The `wgpu` feature's implementation lives in crates/gpu;
/// this module is the seam where the native binary reaches it.
#[cfg(not(feature = "wgpu"))]
mod gpu {
    use anyhow::{Result, bail};
    use edgewise_llm::Engine;

    use super::{CpuSession, NO_WGPU_FEATURE, Session};

    pub(super) fn open_required(_engine: &Engine) -> Result<(Box<dyn Session + '_>, String)> {
        bail!("--backend wgpu: {NO_WGPU_FEATURE}")
    }

    pub(super) fn open_auto(engine: &Engine) -> Result<(Box<dyn Session + '_>, String)> {
        Ok((
            Box::new(CpuSession::new(engine)),
            "auto: this binary was built without the `wgpu` feature".into(),
        ))
    }
}

#[cfg(feature = "wgpu")]
mod gpu {
    use anyhow::{Result, bail};
    use edgewise_llm::Engine;

    use super::{CpuSession, Session};

    /// Filled in by the GPU backend's wiring (issue 14, `crates/gpu`).
    pub(super) fn open_required(_engine: &Engine) -> Result<(Box<dyn Session + '_>, String)> {
        bail!("--backend wgpu: the GPU session is not wired into this build yet")
    }

    pub(super) fn open_auto(engine: &Engine) -> Result<(Box<dyn Session + '_>, String)> {
        Ok((
            Box::new(CpuSession::new(engine)),
            "auto: the GPU session is not wired into this build yet".into(),
        ))
    }
}
