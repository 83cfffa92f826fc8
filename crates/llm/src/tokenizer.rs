//! A byte-level BPE tokenizer built from GGUF metadata, and chat templates.
//!
//! Reads `tokenizer.ggml.{model,pre,tokens,token_type,merges,bos_token_id,eos_token_id,
//! add_bos_token}`: no hub file is needed. Only the GPT-2 byte-level BPE family
//! (`tokenizer.ggml.model = "gpt2"`, as SmolLM2, Llama-3 and Qwen use) is implemented.
//!
//! Pre-tokenization follows the regex of the `pre` type. The regexes of these tokenizers end
//! in `\s+(?!\S)|\s+`; the `regex` crate has no look-ahead, so the last alternative is a
//! captured `(\s+)` and a whitespace run of two or more characters followed by more text
//! gives its last character back, which is exactly what the look-ahead does.

use std::collections::HashMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gguf::GgufFile;

/// ggml token type: a control token such as `<|im_start|>`.
pub const TOKEN_TYPE_CONTROL: i64 = 3;
/// ggml token type: a user-defined (added) token.
pub const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// How text is split before BPE (`tokenizer.ggml.pre`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2's regex.
    Gpt2,
    /// SmolLM / StarCoder: each digit alone, then GPT-2's regex.
    SmolLm,
    /// Llama-3's regex (digits in runs of up to three).
    Llama3,
    /// Qwen2's regex (single digits).
    Qwen2,
}

impl PreTokenizer {
    /// From the `tokenizer.ggml.pre` name.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for names not implemented.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "gpt2" | "default" | "gpt-2" => Ok(Self::Gpt2),
            "smollm" | "starcoder" | "refact" => Ok(Self::SmolLm),
            "llama-bpe" | "llama3" | "llama-v3" | "smaug-bpe" => Ok(Self::Llama3),
            "qwen2" | "deepseek-r1-qwen" => Ok(Self::Qwen2),
            other => Err(Error::Tokenizer(format!(
                "pre-tokenizer `{other}` is not supported (gpt2, smollm, llama-bpe, qwen2)"
            ))),
        }
    }

    fn regex(self) -> &'static str {
        match self {
            Self::Gpt2 | Self::SmolLm => {
                r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|(\s+)"
            }
            Self::Llama3 => {
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|(\s+)"
            }
            Self::Qwen2 => {
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|(\s+)"
            }
        }
    }
}

/// GPT-2's reversible byte → printable-character map.
fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[usize::from(b)] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + n).unwrap_or('\0');
            n += 1;
            c
        };
    }
    table
}

/// A byte-level BPE tokenizer.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    tokens: Vec<String>,
    token_type: Vec<i64>,
    token_to_id: HashMap<String, u32>,
    /// (left, right) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Token of each byte; `None` for bytes the vocabulary lacks (dropped, as the HF BPE
    /// model without an unknown token does).
    byte_token: [Option<u32>; 256],
    byte_char: [char; 256],
    char_to_byte: HashMap<char, u8>,
    specials: Vec<(String, u32)>,
    pre: PreTokenizer,
    regex: Regex,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    chat_template: ChatTemplate,
}

impl Tokenizer {
    /// Builds the tokenizer from GGUF metadata.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for an unsupported model/pre-tokenizer or inconsistent vocab,
    /// metadata errors for missing keys.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let model = g.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "tokenizer model `{model}` is not supported (only byte-level BPE `gpt2`)"
            )));
        }
        let pre = PreTokenizer::from_name(g.opt_str("tokenizer.ggml.pre")?.unwrap_or("gpt2"))?;
        let tokens: Vec<String> = g
            .get_str_array("tokenizer.ggml.tokens")?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let merges = g.get_str_array("tokenizer.ggml.merges")?;
        let token_type = g
            .opt_i64_array("tokenizer.ggml.token_type")?
            .unwrap_or_else(|| vec![1; tokens.len()]);
        let id = |key: &str| -> Result<Option<u32>> {
            g.opt_usize(key)?
                .map(|v| u32::try_from(v).map_err(|_| Error::Tokenizer(format!("{key} too large"))))
                .transpose()
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?;
        let add_bos = matches!(
            g.metadata().get("tokenizer.ggml.add_bos_token"),
            Some(candle_core::quantized::gguf_file::Value::Bool(true))
        );
        let template = g.opt_str("tokenizer.chat_template")?;
        Self::new(
            tokens, token_type, &merges, pre, bos, eos, add_bos, template,
        )
    }

    /// Builds the tokenizer from its parts.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] when a merge refers to unknown tokens or ids are out of range.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tokens: Vec<String>,
        token_type: Vec<i64>,
        merges: &[&str],
        pre: PreTokenizer,
        bos: Option<u32>,
        eos: Option<u32>,
        add_bos: bool,
        chat_template: Option<&str>,
    ) -> Result<Self> {
        if token_type.len() != tokens.len() {
            return Err(Error::Tokenizer(format!(
                "{} token types for {} tokens",
                token_type.len(),
                tokens.len()
            )));
        }
        let n = u32::try_from(tokens.len())
            .map_err(|_| Error::Tokenizer("vocabulary too large".into()))?;
        for (name, v) in [("bos", bos), ("eos", eos)] {
            if v.is_some_and(|v| v >= n) {
                return Err(Error::Tokenizer(format!("{name} token id out of range")));
            }
        }
        let mut token_to_id = HashMap::with_capacity(tokens.len());
        for (i, t) in (0..n).zip(&tokens) {
            token_to_id.entry(t.clone()).or_insert(i);
        }
        let table = byte_to_char_table();
        let mut byte_token = [None; 256];
        let mut char_to_byte = HashMap::with_capacity(256);
        for (b, &c) in (0..=255u8).zip(table.iter()) {
            char_to_byte.insert(c, b);
            byte_token[usize::from(b)] = token_to_id.get(&c.to_string()).copied();
        }
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, m) in (0u32..).zip(merges) {
            let (a, b) = m
                .split_once(' ')
                .ok_or_else(|| Error::Tokenizer(format!("merge `{m}` is not `A B`")))?;
            let look = |s: &str| {
                token_to_id.get(s).copied().ok_or_else(|| {
                    Error::Tokenizer(format!("merge `{m}` uses unknown token `{s}`"))
                })
            };
            let merged = look(&format!("{a}{b}"))?;
            merge_map
                .entry((look(a)?, look(b)?))
                .or_insert((rank, merged));
        }
        let mut specials: Vec<(String, u32)> = (0..n)
            .zip(&tokens)
            .zip(&token_type)
            .filter(|(_, ty)| **ty == TOKEN_TYPE_CONTROL || **ty == TOKEN_TYPE_USER_DEFINED)
            .map(|((i, t), _)| (t.clone(), i))
            .filter(|(t, _)| !t.is_empty())
            .collect();
        // Longest first, so that a special token that prefixes another does not win.
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let regex = Regex::new(pre.regex()).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(Self {
            tokens,
            token_type,
            token_to_id,
            merges: merge_map,
            byte_token,
            byte_char: table,
            char_to_byte,
            specials,
            pre,
            regex,
            bos,
            eos,
            add_bos,
            chat_template: ChatTemplate::from_source(chat_template),
        })
    }

    /// Vocabulary size.
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Beginning-of-sequence token, if the model has one.
    #[must_use]
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence token, if the model has one.
    #[must_use]
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// The id of a token string (e.g. `"<|im_end|>"`).
    #[must_use]
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.token_to_id.get(token).copied()
    }

    /// The token string of an id (in the byte-mapped alphabet).
    #[must_use]
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Tokens that end a generated reply: EOS plus the template's end-of-turn token.
    #[must_use]
    pub fn stop_tokens(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.eos.into_iter().collect();
        for t in ["<|im_end|>", "<|eot_id|>", "<|endoftext|>"] {
            if let Some(id) = self.token_id(t)
                && !v.contains(&id)
            {
                v.push(id);
            }
        }
        v
    }

    /// The chat template recognised in the metadata.
    #[must_use]
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.chat_template
    }

    /// Formats a conversation with the model's chat template.
    #[must_use]
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> String {
        self.chat_template.apply(messages, add_generation_prompt)
    }

    /// Encodes text. `parse_special`: special-token strings in the text become their ids
    /// (needed for chat-formatted prompts). A BOS is prepended when the model asks for it.
    ///
    /// # Errors
    /// Never for valid UTF-8 input; kept fallible for future tokenizer kinds.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if self.add_bos
            && let Some(b) = self.bos
        {
            out.push(b);
        }
        let mut rest = text;
        while !rest.is_empty() {
            let split = if parse_special {
                self.next_special(rest)
            } else {
                None
            };
            match split {
                Some((at, len, id)) => {
                    self.encode_plain(&rest[..at], &mut out);
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.encode_plain(rest, &mut out);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The first special token in `s`: (byte offset, byte length, id).
    fn next_special(&self, s: &str) -> Option<(usize, usize, u32)> {
        let mut best: Option<(usize, usize, u32)> = None;
        for (tok, id) in &self.specials {
            if let Some(at) = s.find(tok.as_str()) {
                // Earliest position wins; at equal positions the longer (earlier in list).
                if best.is_none_or(|(b, _, _)| at < b) {
                    best = Some((at, tok.len(), *id));
                }
            }
        }
        best
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        if self.pre == PreTokenizer::SmolLm {
            // Digits(individual_digits): every numeric char is its own pre-token.
            let mut start = 0;
            for (i, c) in text.char_indices() {
                if c.is_numeric() {
                    self.encode_regex(&text[start..i], out);
                    self.encode_regex(&text[i..i + c.len_utf8()], out);
                    start = i + c.len_utf8();
                }
            }
            self.encode_regex(&text[start..], out);
        } else {
            self.encode_regex(text, out);
        }
    }

    fn encode_regex(&self, text: &str, out: &mut Vec<u32>) {
        let mut pos = 0;
        while pos < text.len() {
            let Some(caps) = self.regex.captures_at(text, pos) else {
                break;
            };
            let m = caps.get(0).map_or(pos..text.len(), |m| m.range());
            let mut end = m.end;
            if caps.get(1).is_some() && end < text.len() {
                // `\s+(?!\S)`: leave the last whitespace char to the next pre-token.
                let piece = &text[m.start..end];
                if let Some((last, _)) = piece.char_indices().next_back()
                    && last > 0
                {
                    end = m.start + last;
                }
            }
            self.bpe(&text[m.start..end], out);
            pos = end;
        }
    }

    fn bpe(&self, piece: &str, out: &mut Vec<u32>) {
        if piece.is_empty() {
            return;
        }
        let mut syms: Vec<u32> = piece
            .bytes()
            .filter_map(|b| self.byte_token[usize::from(b)])
            .collect();
        // Llama-3 style vocabularies set `ignore_merges`: a piece that is a token is kept.
        if syms.len() > 1 && self.pre == PreTokenizer::Llama3 && syms.len() == piece.len() {
            let mapped: String = piece
                .bytes()
                .map(|b| self.byte_char[usize::from(b)])
                .collect();
            if let Some(&id) = self.token_to_id.get(&mapped) {
                out.push(id);
                return;
            }
        }
        while syms.len() > 1 {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..syms.len() - 1 {
                if let Some(&(rank, merged)) = self.merges.get(&(syms[i], syms[i + 1]))
                    && best.is_none_or(|(r, _, _)| rank < r)
                {
                    best = Some((rank, i, merged));
                }
            }
            let Some((_, i, merged)) = best else { break };
            syms[i] = merged;
            syms.remove(i + 1);
        }
        out.extend_from_slice(&syms);
    }

    /// The raw bytes of a token (special tokens give their text).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for an id outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Result<Vec<u8>> {
        let tok = self
            .tokens
            .get(id as usize)
            .ok_or_else(|| Error::Tokenizer(format!("token id {id} out of range")))?;
        if self.is_special(id) {
            return Ok(tok.as_bytes().to_vec());
        }
        let mut bytes = Vec::with_capacity(tok.len());
        for c in tok.chars() {
            match self.char_to_byte.get(&c) {
                Some(&b) => bytes.push(b),
                None => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        Ok(bytes)
    }

    /// Whether `id` is a control or user-defined token.
    #[must_use]
    pub fn is_special(&self, id: u32) -> bool {
        self.token_type
            .get(id as usize)
            .is_some_and(|&t| t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED)
    }

    /// Decodes ids to text (invalid UTF-8 replaced). `skip_special` drops control tokens.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for an id outside the vocabulary.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let mut bytes = Vec::new();
        for &id in ids {
            if skip_special && self.is_special(id) {
                continue;
            }
            bytes.extend(self.token_bytes(id)?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Turns a stream of token ids into text pieces, holding back incomplete UTF-8.
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// Feeds one token; returns the text that became complete.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for an id outside the vocabulary.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String> {
        if tok.is_special(id) {
            return Ok(String::new());
        }
        self.pending.extend(tok.token_bytes(id)?);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(), // invalid, not merely incomplete: flush lossily
        };
        let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        Ok(text)
    }
}

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A user turn.
    #[must_use]
    pub fn user(content: &str) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }

    /// A system turn.
    #[must_use]
    pub fn system(content: &str) -> Self {
        Self {
            role: "system".into(),
            content: content.into(),
        }
    }
}

/// Chat formats recognised from `tokenizer.chat_template` (the Jinja source is matched,
/// not executed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (SmolLM2, Qwen), with the default system
    /// prompt the template inserts when the conversation has none.
    ChatMl {
        /// Default system prompt.
        default_system: Option<String>,
    },
    /// Llama-3 header format.
    Llama3,
}

impl ChatTemplate {
    /// Recognises the format of a Jinja chat template; ChatML when absent or unknown.
    #[must_use]
    pub fn from_source(src: Option<&str>) -> Self {
        let Some(src) = src else {
            return Self::ChatMl {
                default_system: None,
            };
        };
        if src.contains("<|start_header_id|>") {
            return Self::Llama3;
        }
        let marker = "<|im_start|>system\n";
        let default_system = src.find(marker).and_then(|at| {
            let rest = &src[at + marker.len()..];
            let end = rest.find("<|im_end|>")?;
            let text = &rest[..end];
            (!text.contains("{{") && !text.contains('\'') && !text.contains("message"))
                .then(|| text.to_owned())
        });
        Self::ChatMl { default_system }
    }

    /// Renders a conversation.
    #[must_use]
    pub fn apply(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let mut s = String::new();
        match self {
            Self::ChatMl { default_system } => {
                if let Some(sys) = default_system
                    && messages.first().is_none_or(|m| m.role != "system")
                {
                    s.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
                }
                for m in messages {
                    s.push_str(&format!(
                        "<|im_start|>{}\n{}<|im_end|>\n",
                        m.role, m.content
                    ));
                }
                if add_generation_prompt {
                    s.push_str("<|im_start|>assistant\n");
                }
            }
            Self::Llama3 => {
                s.push_str("<|begin_of_text|>");
                for m in messages {
                    s.push_str(&format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                        m.role,
                        m.content.trim()
                    ));
                }
                if add_generation_prompt {
                    s.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: all 256 byte tokens, a few merges, one control token.
    fn toy() -> Tokenizer {
        let table = byte_to_char_table();
        let mut tokens: Vec<String> = vec!["<|im_end|>".into()];
        tokens.extend(table.iter().map(char::to_string));
        let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o"];
        for m in merges {
            tokens.push(m.replace(' ', ""));
        }
        let mut types = vec![1; tokens.len()];
        types[0] = TOKEN_TYPE_CONTROL;
        Tokenizer::new(
            tokens,
            types,
            &merges,
            PreTokenizer::SmolLm,
            None,
            Some(0),
            false,
            None,
        )
        .unwrap()
    }

    #[test]
    fn bpe_merges_by_rank_and_round_trips() {
        let t = toy();
        let ids = t.encode("hello wo", false).unwrap();
        let pieces: Vec<&str> = ids.iter().map(|&i| t.token(i).unwrap()).collect();
        assert_eq!(pieces, ["hello", "Ġwo"]);
        for text in [
            "hello  world\n\n x 12ab",
            "ünïcødé 🦀",
            "  leading",
            "trail  ",
        ] {
            let ids = t.encode(text, false).unwrap();
            assert_eq!(t.decode(&ids, false).unwrap(), text);
        }
    }

    #[test]
    fn specials_are_parsed_only_when_asked() {
        let t = toy();
        let ids = t.encode("he<|im_end|>", true).unwrap();
        assert_eq!(*ids.last().unwrap(), 0);
        let ids = t.encode("he<|im_end|>", false).unwrap();
        assert!(!ids.contains(&0));
        assert_eq!(t.decode(&[0], true).unwrap(), "");
    }

    #[test]
    fn whitespace_lookahead_emulation() {
        // "a   b": GPT-2's regex gives "a", "  ", " b".
        let t = toy();
        let mut out = Vec::new();
        let re = &t.regex;
        let text = "a   b";
        let mut pos = 0;
        let mut pieces = Vec::new();
        while pos < text.len() {
            let caps = re.captures_at(text, pos).unwrap();
            let m = caps.get(0).unwrap();
            let mut end = m.end();
            if caps.get(1).is_some() && end < text.len() && m.len() > 1 {
                end -= 1;
            }
            pieces.push(&text[m.start()..end]);
            pos = end;
        }
        assert_eq!(pieces, ["a", "  ", " b"]);
        t.encode_regex(text, &mut out);
        assert_eq!(t.decode(&out, false).unwrap(), text);
    }

    #[test]
    fn digits_are_split_individually() {
        let t = toy();
        let ids = t.encode("x 2024", false).unwrap();
        // x, ' ', 2, 0, 2, 4 : the space is not attached to the digit.
        assert_eq!(ids.len(), 6);
    }

    #[test]
    fn stream_decoder_holds_back_partial_utf8() {
        let t = toy();
        let ids = t.encode("é", false).unwrap();
        assert_eq!(ids.len(), 2);
        let mut d = StreamDecoder::default();
        assert_eq!(d.push(&t, ids[0]).unwrap(), "");
        assert_eq!(d.push(&t, ids[1]).unwrap(), "é");
    }

    #[test]
    fn chatml_template_with_default_system() {
        let src = "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are Smol<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}";
        let tpl = ChatTemplate::from_source(Some(src));
        assert_eq!(
            tpl,
            ChatTemplate::ChatMl {
                default_system: Some("You are Smol".into())
            }
        );
        let s = tpl.apply(&[ChatMessage::user("Hi")], true);
        assert_eq!(
            s,
            "<|im_start|>system\nYou are Smol<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let s = tpl.apply(&[ChatMessage::system("S"), ChatMessage::user("Hi")], false);
        assert!(s.starts_with("<|im_start|>system\nS<|im_end|>"));
    }
}
