//! Where the LLM worker runs the model: the wasm CPU path (candle) or the whole forward
//! pass on WebGPU (`edgewise-gpu`, the same WGSL as the native `--backend wgpu`), which
//! one the visitor's choice leads to and why, and the [`Runner`] a generation steps.
//!
//! `auto` times one decode step on each and keeps the faster: a software WebGPU adapter
//! (SwiftShader, as in headless Chromium) is slower than the CPU path, a real GPU is not,
//! and the browser does not reliably say which it has. wasm32 only.

use edgewise_gpu::{GpuContext, GpuModel};
use edgewise_llm::{Engine, KvCache, Model, Sampler, Sampling};

use super::protocol::Backend;
use super::timing::Timing;

/// KV-cache positions of the GPU model: the longest prompt plus answer the page allows,
/// with room to spare (the panel caps answers at 512 tokens).
pub const GPU_CONTEXT: usize = 2048;
/// Decode steps timed per backend when `auto` compares them (after one untimed step).
const TIMED_STEPS: usize = 2;

/// What runs the forward pass, for as long as one job needs it.
pub enum Runner<'a> {
    /// candle on the CPU, with this generation's cache.
    Cpu {
        /// The model.
        model: &'a Model,
        /// Its KV cache.
        cache: KvCache,
    },
    /// The whole forward pass on WebGPU (its KV cache lives on the GPU).
    Gpu(&'a mut GpuModel),
}

impl<'a> Runner<'a> {
    /// A fresh sequence on the CPU.
    #[must_use]
    pub fn cpu(model: &'a Model) -> Self {
        Self::Cpu {
            model,
            cache: model.new_cache(),
        }
    }

    /// A fresh sequence on the GPU.
    pub fn gpu(model: &'a mut GpuModel) -> Self {
        model.reset();
        Self::Gpu(model)
    }

    /// Starts a fresh sequence (an empty KV cache) on the same backend.
    pub fn reset(&mut self) {
        match self {
            Self::Cpu { model, cache } => *cache = model.new_cache(),
            Self::Gpu(gpu) => gpu.reset(),
        }
    }

    /// Runs `tokens` at the next positions and picks the next token with `sampler`. On the
    /// GPU a greedy pick stays there (4 bytes come back); sampling reads the logits back
    /// and draws on the CPU, so a seed gives the same draws on both backends (given the
    /// same logits).
    ///
    /// # Errors
    /// Context overflow, out-of-vocabulary ids, device errors, as a sentence.
    pub async fn step(&mut self, tokens: &[u32], sampler: &mut Sampler) -> Result<u32, String> {
        match self {
            Self::Cpu { model, cache } => {
                let logits = Self::cpu_logits(model, tokens, cache)?;
                sampler.sample(&logits).map_err(|e| e.to_string())
            }
            Self::Gpu(gpu) => {
                let greedy = gpu.prefill_async(tokens).await.map_err(|e| e.to_string())?;
                if sampler.sampling() == Sampling::Greedy {
                    Ok(greedy)
                } else {
                    let logits = gpu.logits_async().await.map_err(|e| e.to_string())?;
                    sampler.sample(&logits).map_err(|e| e.to_string())
                }
            }
        }
    }

    /// The CPU's logits after the last of `tokens`.
    ///
    /// # Errors
    /// As [`Model::forward`], as a sentence.
    pub fn cpu_logits(
        model: &Model,
        tokens: &[u32],
        cache: &mut KvCache,
    ) -> Result<Vec<f32>, String> {
        model
            .forward(tokens, cache)
            .and_then(|t| Ok(t.to_vec1()?))
            .map_err(|e| e.to_string())
    }
}

/// Puts `engine`'s model on this browser's WebGPU adapter.
///
/// # Errors
/// Why WebGPU cannot run it (no `navigator.gpu`, no adapter, a weight type or buffer
/// size the kernels do not cover), as a sentence.
pub async fn gpu_model(engine: &Engine) -> Result<GpuModel, String> {
    let ctx = GpuContext::new_async().await.map_err(|e| e.to_string())?;
    let context = GPU_CONTEXT.min(engine.model.max_positions());
    GpuModel::new(&ctx, &engine.model, context).map_err(|e| format!("{}: {e}", ctx.adapter()))
}

/// The backend label for a GPU model.
#[must_use]
pub fn gpu_backend(gpu: &GpuModel) -> Backend {
    Backend::WebGpu(gpu.context().adapter().name.clone())
}

/// Milliseconds per decode step of `runner` after `prompt`, from [`TIMED_STEPS`] greedy
/// steps after one untimed one (which absorbs pipeline and allocation warm-up).
///
/// # Errors
/// As [`Runner::step`].
pub async fn time_decode(
    runner: &mut Runner<'_>,
    prompt: &[u32],
    now_ms: &dyn Fn() -> f64,
) -> Result<f64, String> {
    let mut greedy = Sampler::new(Sampling::Greedy, 0).map_err(|e| e.to_string())?;
    let mut next = runner.step(prompt, &mut greedy).await?;
    next = runner.step(&[next], &mut greedy).await?;
    let t0 = now_ms();
    for _ in 0..TIMED_STEPS {
        next = runner.step(&[next], &mut greedy).await?;
    }
    #[allow(clippy::cast_precision_loss)]
    Ok((now_ms() - t0) / TIMED_STEPS as f64)
}

/// The benchmark of "Measure this device": `prompt` prefilled in one step, then
/// `decode_tokens` greedy steps (stop tokens do not end it: the speed is what is
/// measured, not the text), after an untimed warm-up (a few prompt tokens and one step)
/// that absorbs pipeline compilation and allocation.
///
/// # Errors
/// As [`Runner::step`].
pub async fn benchmark(
    runner: &mut Runner<'_>,
    prompt: &[u32],
    decode_tokens: usize,
    now_ms: &dyn Fn() -> f64,
) -> Result<Timing, String> {
    let mut greedy = Sampler::new(Sampling::Greedy, 0).map_err(|e| e.to_string())?;
    let warm = runner
        .step(&prompt[..prompt.len().min(4)], &mut greedy)
        .await?;
    runner.step(&[warm], &mut greedy).await?;
    runner.reset();
    let t0 = now_ms();
    let mut next = runner.step(prompt, &mut greedy).await?;
    let t1 = now_ms();
    for _ in 0..decode_tokens {
        next = runner.step(&[next], &mut greedy).await?;
    }
    let t2 = now_ms();
    Ok(Timing {
        prompt_tokens: u32::try_from(prompt.len()).unwrap_or(u32::MAX),
        prefill_ms: t1 - t0,
        generated: u32::try_from(decode_tokens + 1).unwrap_or(u32::MAX),
        decode_ms: t2 - t1,
    })
}
