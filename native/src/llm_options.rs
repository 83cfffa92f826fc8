//! The flags `edgewise chat` and `edgewise generate` share: which model, which backend,
//! and how to pick tokens; and loading the model they name.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use edgewise_llm::{Device, Engine, Sampler, Sampling, model_cache};

use crate::backend::Backend;

/// Model and backend.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelOptions {
    /// GGUF model file (default: the shipped model in the model cache, which
    /// `cargo xtask setup` fills).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Where the forward pass runs: cpu, wgpu (the GPU; binaries built with the `wgpu`
    /// feature), or auto (the GPU when there is one, else the CPU; says which and why).
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
}

impl ModelOptions {
    /// Loads the model and its tokenizer, saying on stderr what was loaded and how long
    /// it took.
    ///
    /// # Errors
    /// A missing model cache (with the command that fills it), an unreadable or invalid
    /// GGUF file.
    pub fn load(&self) -> Result<(Engine, PathBuf)> {
        let path = match &self.model {
            Some(p) => p.clone(),
            None => model_cache::default_model_path()?,
        };
        if !path.is_file() {
            bail!("--model {}: no such file", path.display());
        }
        let start = Instant::now();
        let engine = Engine::from_path(&path, &Device::Cpu)
            .with_context(|| format!("loading the model {}", path.display()))?;
        eprintln!(
            "model: {} ({} layers, {:.1} s to load)",
            path.display(),
            engine.model.config().n_layer,
            start.elapsed().as_secs_f64()
        );
        Ok((engine, path))
    }
}

/// How the next token is picked.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingOptions {
    /// Softmax temperature; 0 picks the most likely token every time (greedy).
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Nucleus sampling: keep the most likely tokens whose probability reaches P, in (0, 1].
    #[arg(long, value_name = "P", default_value_t = 0.9)]
    pub top_p: f32,
    /// Keep at most K candidates before nucleus sampling (0 = no limit).
    #[arg(long, value_name = "K", default_value_t = 40)]
    pub top_k: usize,
    /// Seed of the sampler's random draws (same seed, same text).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most tokens in one answer.
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
}

impl SamplingOptions {
    /// The sampler these flags describe, with `default_temperature` when `--temperature`
    /// was not given.
    ///
    /// # Errors
    /// A negative or non-finite temperature, `--top-p` outside (0, 1].
    pub fn sampler(&self, default_temperature: f32) -> Result<Sampler> {
        let t = self.temperature.unwrap_or(default_temperature);
        if !(t.is_finite() && t >= 0.0) {
            bail!("--temperature must be a number ≥ 0 (0 = greedy), got {t}");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!("--top-p must be in (0, 1], got {}", self.top_p);
        }
        let sampling = if t == 0.0 {
            Sampling::Greedy
        } else {
            Sampling::Sample {
                temperature: t,
                top_k: self.top_k,
                top_p: self.top_p,
            }
        };
        Ok(Sampler::new(sampling, self.seed)?)
    }

    /// `--max-tokens`, or `default` when not given.
    ///
    /// # Errors
    /// `--max-tokens 0`.
    pub fn max_tokens(&self, default: usize) -> Result<usize> {
        match self.max_tokens {
            Some(0) => bail!("--max-tokens must be at least 1"),
            Some(n) => Ok(n),
            None => Ok(default),
        }
    }
}
