//! Autoregressive generation and the model + tokenizer bundle.

use std::io::{Read, Seek};

use candle_core::Device;

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::model::{KvCache, Model};
use crate::sampling::Sampler;
use crate::tokenizer::{ChatMessage, Tokenizer};

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A stop token was produced (it is not included in the output).
    StopToken,
    /// `max_new_tokens` were produced.
    Length,
    /// The callback asked to stop.
    Cancelled,
}

/// Generates up to `max_new_tokens` after `prompt`, continuing `cache`.
///
/// `on_token` sees each new token id and returns `false` to stop early.
///
/// # Errors
/// Model errors (e.g. [`Error::ContextOverflow`]).
pub fn generate(
    model: &Model,
    cache: &mut KvCache,
    prompt: &[u32],
    max_new_tokens: usize,
    sampler: &mut Sampler,
    stop_tokens: &[u32],
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<(Vec<u32>, StopReason)> {
    let mut out = Vec::with_capacity(max_new_tokens);
    if max_new_tokens == 0 {
        return Ok((out, StopReason::Length));
    }
    let mut logits = model.forward(prompt, cache)?;
    loop {
        let next = sampler.sample(&logits.to_vec1::<f32>()?)?;
        if stop_tokens.contains(&next) {
            return Ok((out, StopReason::StopToken));
        }
        out.push(next);
        if !on_token(next) {
            return Ok((out, StopReason::Cancelled));
        }
        if out.len() >= max_new_tokens {
            return Ok((out, StopReason::Length));
        }
        logits = model.forward(&[next], cache)?;
    }
}

/// A model with its tokenizer, as loaded from one GGUF file.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The network.
    pub model: Model,
    /// The tokenizer from the same file.
    pub tokenizer: Tokenizer,
}

impl Engine {
    /// Loads model and tokenizer from a GGUF reader.
    ///
    /// # Errors
    /// Format, configuration and tokenizer errors.
    pub fn from_gguf<R: Read + Seek>(reader: &mut R, name: &str, device: &Device) -> Result<Self> {
        let g = GgufFile::read(reader, name)?;
        let model = Model::from_gguf(&g, reader, device)?;
        let tokenizer = Tokenizer::from_gguf(&g)?;
        if tokenizer.vocab_size() != model.config().vocab_size {
            return Err(Error::Tokenizer(format!(
                "tokenizer has {} tokens, the model {}",
                tokenizer.vocab_size(),
                model.config().vocab_size
            )));
        }
        Ok(Self { model, tokenizer })
    }

    /// Loads model and tokenizer from a GGUF file on disk.
    ///
    /// # Errors
    /// As [`Engine::from_gguf`], plus I/O errors.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_path(path: &std::path::Path, device: &Device) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_gguf(
            &mut std::io::BufReader::new(file),
            &path.display().to_string(),
            device,
        )
    }

    /// One chat reply: formats `messages` with the model's template, generates, decodes.
    ///
    /// # Errors
    /// Model and tokenizer errors.
    pub fn chat(
        &self,
        messages: &[ChatMessage],
        max_new_tokens: usize,
        sampler: &mut Sampler,
    ) -> Result<String> {
        let prompt = self.tokenizer.apply_chat_template(messages, true);
        let ids = self.tokenizer.encode(&prompt, true)?;
        let mut cache = self.model.new_cache();
        let (out, _) = generate(
            &self.model,
            &mut cache,
            &ids,
            max_new_tokens,
            sampler,
            &self.tokenizer.stop_tokens(),
            &mut |_| true,
        )?;
        self.tokenizer.decode(&out, true)
    }
}
