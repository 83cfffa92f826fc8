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
#[cfg_attr(feature = "wgpu", allow(dead_code))]
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
    use anyhow::{Context, Result};
    use edgewise_gpu::{GpuContext, GpuModel};
    use edgewise_llm::{Engine, Model, Sampler, Sampling};

    use super::{CpuSession, Session};

    /// The whole forward pass on one wgpu device (`crates/gpu`), with its preallocated KV
    /// cache of the model's full context.
    pub(crate) struct GpuSession {
        model: GpuModel,
        description: String,
    }

    impl GpuSession {
        /// Uploads `model` to `ctx`'s device.
        ///
        /// # Errors
        /// A model or weight type the GPU kernels do not cover, a buffer over WebGPU's
        /// default limits, device errors.
        pub(crate) fn new(ctx: &GpuContext, model: &Model) -> Result<Self> {
            let a = ctx.adapter();
            let description = format!("wgpu ({}, {})", a.name, a.backend);
            let model = GpuModel::new(ctx, model, model.max_positions())
                .with_context(|| format!("putting the model on {a}"))?;
            Ok(Self { model, description })
        }
    }

    impl Session for GpuSession {
        fn step(&mut self, tokens: &[u32], sampler: &mut Sampler) -> Result<u32> {
            // Only greedy picking stays on the GPU: the argmax kernel writes the id where
            // the next embedding reads it and 4 bytes come back. Sampling at a temperature
            // above 0 reads the logits back and draws with the CPU sampler, so the same
            // seed gives the same draws as on the CPU backend (given the same logits).
            let greedy = self.model.prefill(tokens)?;
            if sampler.sampling() == Sampling::Greedy {
                Ok(greedy)
            } else {
                Ok(sampler.sample(&self.model.logits()?)?)
            }
        }

        fn position(&self) -> usize {
            self.model.position()
        }

        fn truncate(&mut self, len: usize) {
            // Moves the position back; the KV cache beyond it is overwritten as positions
            // are reached again (see `GpuModel::truncate`).
            self.model.truncate(len);
        }

        fn max_positions(&self) -> usize {
            self.model.max_context()
        }

        fn describe(&self) -> String {
            self.description.clone()
        }
    }

    /// `--backend wgpu`: whatever adapter exists, software ones included (CI runs this on
    /// lavapipe).
    pub(super) fn open_required(engine: &Engine) -> Result<(Box<dyn Session + '_>, String)> {
        let ctx = GpuContext::new().context("--backend wgpu")?;
        let why = format!("--backend wgpu; {}", ctx.reason());
        Ok((Box::new(GpuSession::new(&ctx, &engine.model)?), why))
    }

    /// `--backend auto`: a hardware adapter that can run the model, else the CPU. A
    /// software adapter (lavapipe, SwiftShader) is passed over: it is about ten times
    /// slower than the CPU engine (lavapipe, docs/results/gpu.md).
    pub(super) fn open_auto(engine: &Engine) -> Result<(Box<dyn Session + '_>, String)> {
        let cpu = |why: String| -> Result<(Box<dyn Session + '_>, String)> {
            Ok((Box::new(CpuSession::new(engine)), why))
        };
        let ctx = match GpuContext::new() {
            Ok(ctx) => ctx,
            Err(e) => return cpu(format!("auto: {e}; using the CPU")),
        };
        if ctx.adapter().software {
            return cpu(format!(
                "auto: only a software adapter ({}) found; using the CPU \
                 (`--backend wgpu` forces it)",
                ctx.adapter().name
            ));
        }
        match GpuSession::new(&ctx, &engine.model) {
            Ok(s) => Ok((Box::new(s), format!("auto: {}", ctx.reason()))),
            Err(e) => cpu(format!("auto: {e:#}; using the CPU")),
        }
    }

    #[cfg(test)]
    mod tests {
        use edgewise_llm::model::tiny_config;
        use edgewise_llm::{Device, Model, Sampler, Sampling};

        use super::{GpuContext, GpuSession};
        use crate::backend::Session;

        fn gap(l: &[f32]) -> f32 {
            let mut s = l.to_vec();
            s.sort_by(|a, b| b.total_cmp(a));
            s[0] - s[1]
        }

        /// Greedy steps on the GPU session against the CPU model's argmax, a truncation
        /// that forgets a branch, and the sampled path against the CPU sampler.
        #[test]
        fn gpu_session_follows_the_cpu_model() {
            let ctx = match GpuContext::new() {
                Ok(c) => c,
                Err(e) => {
                    assert!(
                        std::env::var("EDGEWISE_REQUIRE_GPU").as_deref() != Ok("1"),
                        "EDGEWISE_REQUIRE_GPU=1 but {e}"
                    );
                    eprintln!("SKIPPED (no GPU adapter): {e}");
                    return;
                }
            };
            let m = Model::synthetic(&tiny_config(2), 5, &Device::Cpu).unwrap();
            let mut s = GpuSession::new(&ctx, &m).unwrap();
            let m = m.dequantized().unwrap();
            assert!(s.describe().starts_with("wgpu ("), "{}", s.describe());
            let mut greedy = Sampler::new(Sampling::Greedy, 0).unwrap();
            let mut cache = m.new_cache();
            let mut feed = vec![3u32, 40, 41, 7];
            for _ in 0..4 {
                let want: Vec<f32> = m.forward(&feed, &mut cache).unwrap().to_vec1().unwrap();
                let got = s.step(&feed, &mut greedy).unwrap();
                if gap(&want) > 1e-2 {
                    assert_eq!(got, edgewise_llm::sampling::greedy(&want));
                }
                feed = vec![got];
            }
            assert_eq!(s.position(), 7);
            s.truncate(2);
            assert_eq!(s.position(), 2);
            let mut cache = m.new_cache();
            m.forward(&[3, 40], &mut cache).unwrap();
            let want: Vec<f32> = m.forward(&[9, 9], &mut cache).unwrap().to_vec1().unwrap();
            let sampling = Sampling::Sample {
                temperature: 0.8,
                top_k: 0,
                top_p: 1.0,
            };
            let got = s
                .step(&[9, 9], &mut Sampler::new(sampling, 1).unwrap())
                .unwrap();
            let gpu_logits = s.model.logits().unwrap();
            for (a, b) in gpu_logits.iter().zip(&want) {
                assert!((a - b).abs() < 5e-2, "logits after truncate: {a} vs {b}");
            }
            let again = Sampler::new(sampling, 1)
                .unwrap()
                .sample(&gpu_logits)
                .unwrap();
            assert_eq!(got, again, "sampled on the CPU from the GPU's logits");
        }
    }
}
