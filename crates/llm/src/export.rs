//! Writing a [`Model`] back to GGUF: the hyper-parameters as metadata (per-layer arrays where
//! layers differ, the `deci` architecture name where llama.cpp's `llama` loader would misread
//! them) and the tokenizer carried over from the source file. Used by the compression
//! pipeline (`edgewise-ecld`) and by the GGUF fuzz corpus.

use std::io::{Seek, Write};

use candle_core::quantized::gguf_file::Value;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::gguf::{GgufFile, write_gguf};
use crate::model::Model;

/// GGUF metadata describing `cfg` (per-layer arrays where layers differ).
#[must_use]
pub fn config_metadata(cfg: &ModelConfig) -> Vec<(String, Value)> {
    let varies = |v: &[usize]| v.windows(2).any(|w| w[0] != w[1]);
    // llama.cpp's `llama` loader sizes every layer from layer 0's counts; its `deci`
    // architecture (the same blocks) reads them per layer.
    let p = if cfg.arch == crate::config::Architecture::Llama
        && (varies(&cfg.n_ff) || varies(&cfg.n_head) || varies(&cfg.n_head_kv))
    {
        crate::config::DECI
    } else {
        cfg.arch.gguf_name()
    };
    let k = |s: &str| format!("{p}.{s}");
    let u = |v: usize| Value::U32(u32::try_from(v).unwrap_or(u32::MAX));
    let per_layer = |v: &[usize]| {
        if v.windows(2).all(|w| w[0] == w[1]) {
            u(v[0])
        } else {
            Value::Array(v.iter().map(|&x| u(x)).collect())
        }
    };
    let mut md = vec![
        (
            "general.architecture".to_owned(),
            Value::String(p.to_owned()),
        ),
        (k("block_count"), u(cfg.n_layer)),
        (k("context_length"), u(cfg.context_length)),
        (k("embedding_length"), u(cfg.n_embd)),
        (k("feed_forward_length"), per_layer(&cfg.n_ff)),
        (k("attention.head_count"), per_layer(&cfg.n_head)),
        (k("attention.head_count_kv"), per_layer(&cfg.n_head_kv)),
        (k("attention.key_length"), u(cfg.head_dim)),
        (k("attention.value_length"), u(cfg.head_dim)),
        (k("rope.dimension_count"), u(cfg.head_dim)),
        (k("rope.freq_base"), Value::F32(cfg.rope_theta)),
        (
            k("attention.layer_norm_rms_epsilon"),
            Value::F32(cfg.rms_eps),
        ),
        (k("vocab_size"), u(cfg.vocab_size)),
    ];
    if let Some(w) = cfg.sliding_window {
        md.push((k("attention.sliding_window"), u(w)));
    }
    md
}

/// Writes `model` as GGUF, carrying `tokenizer.*` and descriptive `general.*` keys over from
/// `source` (the file the model came from) when given.
///
/// # Errors
/// I/O and tensor errors.
pub fn export_gguf<W: Write + Seek>(
    w: &mut W,
    model: &Model,
    source: Option<&GgufFile>,
) -> Result<()> {
    let mut md = config_metadata(model.config());
    if let Some(src) = source {
        let mut keys: Vec<&String> = src
            .metadata()
            .keys()
            .filter(|k| {
                (k.starts_with("tokenizer.") || k.starts_with("general."))
                    && !matches!(
                        k.as_str(),
                        "general.architecture" | "general.alignment" | "general.file_type"
                    )
            })
            .collect();
        keys.sort();
        for key in keys {
            md.push((key.clone(), src.metadata()[key].clone()));
        }
    }
    write_gguf(w, &md, &model.named_tensors()?)
}

/// Writes [`export_gguf`]'s output atomically (temp file + rename) to `path`.
///
/// # Errors
/// I/O and tensor errors; `path` is untouched on failure.
#[cfg(not(target_arch = "wasm32"))]
pub fn export_gguf_file(
    path: &std::path::Path,
    model: &Model,
    source: Option<&GgufFile>,
) -> Result<u64> {
    edgewise_atomic_file::write_with(path, |w| export_gguf(w, model, source))
}
