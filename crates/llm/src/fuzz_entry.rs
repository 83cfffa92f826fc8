//! The fuzzing entry point: the whole read path on untrusted bytes.
//!
//! Kept apart from [`crate::gguf`] because it goes past the header into the tokenizer, the
//! configuration and the model, which all read from `gguf` themselves. Driven by the
//! cargo-fuzz harness (`crates/llm/fuzz`) and, on stable, by `tests/gguf_fuzz.rs`.

use candle_core::Device;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::gguf::GgufFile;
use crate::model::{MAX_ROPE_POSITIONS, Model};
use crate::tokenizer::{ChatMessage, Tokenizer};

/// The fuzzing entry point (`crates/llm/fuzz`, and `tests/gguf_fuzz.rs` without nightly):
/// treats `bytes` as an untrusted GGUF file and goes as far as it can — header, every
/// tensor, model configuration, tokenizer, model — returning the first error. It must never
/// panic, abort or allocate much more than the input's size implies.
///
/// # Errors
/// Whatever the input's first defect is.
pub fn fuzz_parse(bytes: &[u8]) -> Result<()> {
    let mut r = std::io::Cursor::new(bytes);
    let g = GgufFile::read(&mut r, "<fuzz>")?;
    let dev = Device::Cpu;
    for (name, _, _) in g.tensor_infos() {
        g.weight(&mut r, name, &dev)?;
    }
    if let Ok(tok) = Tokenizer::from_gguf(&g) {
        // Exercise the vocabulary and merges the file supplied, special tokens included.
        let text = "<|im_start|>user\nhello wörld 12345 \u{1F600}<|im_end|>\n";
        if let Ok(ids) = tok.encode(text, true) {
            let _ = tok.decode(&ids, false);
        }
        let _ = tok.apply_chat_template(&[ChatMessage::user("hi")], true);
    }
    let cfg = ModelConfig::from_gguf(&g)?;
    // The rotary tables and weights scale with the configuration, not the input: only
    // build models whose weights the file can actually hold.
    let rope = cfg
        .head_dim
        .saturating_mul(cfg.context_length.min(MAX_ROPE_POSITIONS));
    let sizes_fit = cfg.head_dim <= 4096
        && rope <= bytes.len().saturating_mul(64)
        && cfg.n_embd <= bytes.len()
        && checked_params(&cfg).is_some_and(|n| n <= bytes.len().saturating_mul(8));
    if sizes_fit {
        Model::from_gguf(&g, &mut r, &dev)?;
    }
    Ok(())
}

/// `cfg.n_params()` without overflow.
fn checked_params(cfg: &ModelConfig) -> Option<usize> {
    let mut n = cfg.vocab_size.checked_mul(cfg.n_embd)?;
    for l in 0..cfg.n_layer {
        let heads = cfg.n_head[l]
            .checked_add(cfg.n_head_kv[l])?
            .checked_mul(2)?;
        let attn = cfg.n_embd.checked_mul(cfg.head_dim)?.checked_mul(heads)?;
        let ffn = cfg.n_embd.checked_mul(cfg.n_ff[l])?.checked_mul(3)?;
        n = n.checked_add(attn)?.checked_add(ffn)?;
    }
    Some(n)
}
