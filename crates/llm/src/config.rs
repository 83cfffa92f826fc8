//! Model hyper-parameters read from GGUF metadata, with per-family switches.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gguf::GgufFile;

/// The model families this crate runs; all share the Llama block structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    /// Llama 2/3, SmolLM2, TinyLlama.
    Llama,
    /// Mistral (Llama blocks; optional sliding-window attention).
    Mistral,
    /// Qwen2 (biases on q/k/v, NeoX rotary layout).
    Qwen2,
    /// Qwen3 (RMSNorm on q and k per head, NeoX rotary layout).
    Qwen3,
}

impl Architecture {
    /// Parses `general.architecture`.
    ///
    /// # Errors
    /// [`Error::UnknownArchitecture`].
    pub fn from_gguf_name(name: &str) -> Result<Self> {
        match name {
            "llama" => Ok(Self::Llama),
            "mistral" => Ok(Self::Mistral),
            "qwen2" => Ok(Self::Qwen2),
            "qwen3" => Ok(Self::Qwen3),
            other => Err(Error::UnknownArchitecture(other.to_owned())),
        }
    }

    /// The GGUF name (the metadata key prefix).
    #[must_use]
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Mistral => "mistral",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
        }
    }
}

/// How rotary embeddings pair the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RopeStyle {
    /// Adjacent pairs (0,1), (2,3), ... — ggml's "normal" mode used by llama GGUFs, whose
    /// q/k weights the converter permuted to match.
    Interleaved,
    /// Halves (i, i + d/2) — the NeoX mode used by Qwen.
    Halves,
}

/// The GGUF architecture name under which llama.cpp reads Llama blocks with per-layer sizes
/// (its `llama` loader sizes every layer from layer 0's counts).
pub const DECI: &str = "deci";

/// Most transformer blocks a file may declare (a guard against corrupt headers that would
/// make per-layer tables huge).
pub const MAX_LAYERS: usize = 4096;

/// Hyper-parameters of a Llama-family model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Family.
    pub arch: Architecture,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// FFN intermediate size (per layer; pruning may make layers differ).
    pub n_ff: Vec<usize>,
    /// Query heads per layer.
    pub n_head: Vec<usize>,
    /// Key/value heads per layer (GQA groups).
    pub n_head_kv: Vec<usize>,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Maximum context length.
    pub context_length: usize,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// Rotary pairing.
    pub rope_style: RopeStyle,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Qwen3-style RMSNorm on q and k.
    pub qk_norm: bool,
    /// Mistral-style sliding attention window, if any.
    pub sliding_window: Option<usize>,
}

impl ModelConfig {
    /// Reads the configuration from GGUF metadata.
    ///
    /// Per-layer arrays (`feed_forward_length`, `attention.head_count[_kv]`) are accepted,
    /// which is how pruned models with non-uniform ratios are stored.
    ///
    /// # Errors
    /// [`Error::UnknownArchitecture`], [`Error::MissingMetadata`], [`Error::BadMetadata`].
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let name = g.get_str("general.architecture")?;
        // llama.cpp's `deci` architecture is Llama blocks whose FFN width and head counts
        // may differ per layer; non-uniformly pruned Llama models are written under it
        // (`export::config_metadata`). Its keys carry the `deci.` prefix.
        let arch = if name == DECI {
            Architecture::Llama
        } else {
            Architecture::from_gguf_name(name)?
        };
        let p = name;
        let key = |k: &str| format!("{p}.{k}");
        let n_layer = g.get_usize(&key("block_count"))?;
        if !(1..=MAX_LAYERS).contains(&n_layer) {
            return Err(Error::BadMetadata {
                key: key("block_count"),
                expected: format!("1 to {MAX_LAYERS} layers, got {n_layer}"),
            });
        }
        let n_embd = g.get_usize(&key("embedding_length"))?;
        let per_layer = |k: &str, default: Option<usize>| -> Result<Vec<usize>> {
            let full = key(k);
            let is_array = matches!(
                g.metadata().get(&full),
                Some(candle_core::quantized::gguf_file::Value::Array(_))
            );
            if let Some(arr) = if is_array {
                g.opt_i64_array(&full)?
            } else {
                None
            } {
                if arr.len() != n_layer {
                    return Err(Error::BadMetadata {
                        key: full,
                        expected: format!("{n_layer} entries (one per layer)"),
                    });
                }
                return arr
                    .into_iter()
                    .map(|v| {
                        usize::try_from(v).map_err(|_| Error::BadMetadata {
                            key: full.clone(),
                            expected: "non-negative integers".into(),
                        })
                    })
                    .collect();
            }
            let Some(v) = g.opt_usize(&full)?.or(default) else {
                return Err(Error::MissingMetadata(full));
            };
            Ok(vec![v; n_layer])
        };
        let n_ff = per_layer("feed_forward_length", None)?;
        let n_head = per_layer("attention.head_count", None)?;
        let n_head_kv = per_layer("attention.head_count_kv", Some(n_head[0]))?;
        let head_dim = match g.opt_usize(&key("attention.key_length"))? {
            Some(d) => d,
            None => {
                let h = n_head.iter().copied().max().unwrap_or(0);
                if h == 0 || n_embd % h != 0 {
                    return Err(Error::BadMetadata {
                        key: key("attention.head_count"),
                        expected: format!("a divisor of embedding_length {n_embd}"),
                    });
                }
                n_embd / h
            }
        };
        let vocab_size = match g.opt_usize(&key("vocab_size"))? {
            Some(v) => v,
            None => g.get_str_array("tokenizer.ggml.tokens")?.len(),
        };
        let cfg = Self {
            arch,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            vocab_size,
            context_length: g.opt_usize(&key("context_length"))?.unwrap_or(2048),
            rope_theta: g.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_style: match arch {
                Architecture::Llama | Architecture::Mistral => RopeStyle::Interleaved,
                Architecture::Qwen2 | Architecture::Qwen3 => RopeStyle::Halves,
            },
            rms_eps: g
                .opt_f32(&key("attention.layer_norm_rms_epsilon"))?
                .unwrap_or(1e-5),
            qk_norm: arch == Architecture::Qwen3,
            sliding_window: g.opt_usize(&key("attention.sliding_window"))?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks internal consistency (GQA divisibility, non-zero sizes).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        if self.n_layer == 0 || self.n_embd == 0 || self.head_dim == 0 || self.vocab_size == 0 {
            return Err(Error::InvalidArgument(
                "n_layer, n_embd, head_dim and vocab_size must be positive".into(),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(Error::InvalidArgument(format!(
                "head_dim {} must be even for rotary embeddings",
                self.head_dim
            )));
        }
        for l in 0..self.n_layer {
            let (h, kv) = (self.n_head[l], self.n_head_kv[l]);
            if h == 0 || kv == 0 || h % kv != 0 {
                return Err(Error::InvalidArgument(format!(
                    "layer {l}: head_count {h} must be a positive multiple of head_count_kv {kv}"
                )));
            }
            if self.n_ff[l] == 0 {
                return Err(Error::InvalidArgument(format!(
                    "layer {l}: feed_forward_length must be positive"
                )));
            }
        }
        Ok(())
    }

    /// Number of weights in the transformer (embedding counted once).
    #[must_use]
    pub fn n_params(&self) -> usize {
        let mut n = self.vocab_size * self.n_embd + self.n_embd;
        for l in 0..self.n_layer {
            let (h, kv, ff) = (self.n_head[l], self.n_head_kv[l], self.n_ff[l]);
            n += 2 * self.n_embd
                + self.n_embd * self.head_dim * (2 * h + 2 * kv)
                + 3 * self.n_embd * ff;
        }
        n
    }
}
