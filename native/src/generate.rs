//! `edgewise generate`: one prompt, one answer, scriptable (`--json` gives the tokens, the
//! text and the prefill/decode speeds); and the generation loop with its timings that
//! `edgewise chat` shares.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use edgewise_llm::{ChatMessage, Sampler, StopReason, StreamDecoder};
use serde::Serialize;

use crate::backend::{self, Session};
use crate::llm_options::{ModelOptions, SamplingOptions};

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// The prompt (`-` reads it from standard input). It becomes the user turn of the
    /// model's chat template unless --raw is given.
    prompt: String,
    #[command(flatten)]
    model: ModelOptions,
    #[command(flatten)]
    sampling: SamplingOptions,
    /// Feed the prompt as it is, without the chat template.
    #[arg(long)]
    raw: bool,
    /// A system turn before the prompt (default: the template's own, if it has one).
    #[arg(long, value_name = "TEXT", conflicts_with = "raw")]
    system: Option<String>,
    /// Print one JSON object (tokens, text, timings) instead of streaming the text.
    #[arg(long)]
    json: bool,
}

/// Answer length when --max-tokens is not given.
const DEFAULT_MAX_TOKENS: usize = 128;

/// Tokens and time of one phase of a turn.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Phase {
    /// Positions processed (prefill: the prompt; decode: one per forward step).
    pub tokens: usize,
    /// Wall-clock seconds, including picking the next token.
    pub seconds: f64,
    /// `tokens / seconds`, absent when nothing was processed.
    pub tok_s: Option<f64>,
}

impl Phase {
    fn new(tokens: usize, seconds: f64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let tok_s = (tokens > 0 && seconds > 0.0).then(|| tokens as f64 / seconds);
        Self {
            tokens,
            seconds,
            tok_s,
        }
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Turn {
    /// The new tokens, without the stop token.
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub stop: StopReason,
    /// The prompt's forward pass.
    pub prefill: Phase,
    /// The one-token forward passes after it (`decode.tokens` of [`Turn::tokens`] were
    /// fed back; the last one is not when the answer ended by length or cancellation).
    pub decode: Phase,
}

/// The stop reason as written in JSON and in the chat's stats line.
#[must_use]
pub fn stop_name(s: StopReason) -> &'static str {
    match s {
        StopReason::StopToken => "stop-token",
        StopReason::Length => "length",
        StopReason::Cancelled => "cancelled",
    }
}

/// Feeds `prompt` at the session's next positions, then samples up to `max_new` tokens,
/// ending early at a stop token or when `cancel` is set (checked after each token).
/// `on_token` sees each new token as it comes.
///
/// # Errors
/// A prompt that does not fit the model's context, backend errors, `on_token`'s errors.
pub fn run_turn(
    session: &mut dyn Session,
    prompt: &[u32],
    max_new: usize,
    sampler: &mut Sampler,
    stop_tokens: &[u32],
    cancel: &AtomicBool,
    on_token: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<Turn> {
    if prompt.is_empty() {
        bail!("the prompt has no tokens");
    }
    let start = session.position();
    let room = session.max_positions();
    let Some(left) = room.checked_sub(start + prompt.len()) else {
        bail!(
            "the prompt needs {} positions, the model holds {room} (start a new conversation)",
            start + prompt.len()
        );
    };
    // The last new token is never fed back, so `left` positions allow `left + 1` tokens.
    let max_new = max_new.min(left + 1);
    let t0 = Instant::now();
    let mut next = session.step(prompt, sampler)?;
    let prefill = Phase::new(prompt.len(), t0.elapsed().as_secs_f64());
    let mut tokens = Vec::new();
    let (mut steps, mut decode_s) = (0, 0.0);
    let stop = loop {
        if stop_tokens.contains(&next) {
            break StopReason::StopToken;
        }
        tokens.push(next);
        on_token(next)?;
        if cancel.load(Ordering::Relaxed) {
            break StopReason::Cancelled;
        }
        if tokens.len() >= max_new {
            break StopReason::Length;
        }
        let t = Instant::now();
        next = session.step(&[next], sampler)?;
        decode_s += t.elapsed().as_secs_f64();
        steps += 1;
    };
    Ok(Turn {
        tokens,
        stop,
        prefill,
        decode: Phase::new(steps, decode_s),
    })
}

#[derive(Serialize)]
struct Report<'a> {
    model: String,
    backend: String,
    prompt: &'a str,
    prompt_tokens: usize,
    tokens: &'a [u32],
    text: String,
    stop: &'static str,
    prefill: Phase,
    decode: Phase,
}

pub fn run(args: &GenerateArgs) -> Result<()> {
    let prompt = if args.prompt == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the prompt from standard input")?;
        s
    } else {
        args.prompt.clone()
    };
    if prompt.trim().is_empty() {
        bail!("the prompt is empty");
    }
    let max_new = args.sampling.max_tokens(DEFAULT_MAX_TOKENS)?;
    let mut sampler = args.sampling.sampler(0.0)?;
    let (engine, path) = args.model.load()?;
    let tok = &engine.tokenizer;
    let text = if args.raw {
        prompt.clone()
    } else {
        let mut messages = Vec::new();
        if let Some(s) = &args.system {
            messages.push(ChatMessage::system(s));
        }
        messages.push(ChatMessage::user(&prompt));
        tok.apply_chat_template(&messages, true)
    };
    let ids = tok.encode(&text, !args.raw)?;
    let mut session = backend::open(args.model.backend, &engine)?;
    let cancel = AtomicBool::new(false);
    let mut stream = StreamDecoder::default();
    let mut out = std::io::stdout().lock();
    let json = args.json;
    let turn = run_turn(
        session.as_mut(),
        &ids,
        max_new,
        &mut sampler,
        &tok.stop_tokens(),
        &cancel,
        &mut |id| {
            if !json {
                out.write_all(stream.push(tok, id)?.as_bytes())?;
                out.flush()?;
            }
            Ok(())
        },
    )?;
    let answer = tok.decode(&turn.tokens, true)?;
    if json {
        let report = Report {
            model: path.display().to_string(),
            backend: session.describe(),
            prompt: &prompt,
            prompt_tokens: ids.len(),
            tokens: &turn.tokens,
            text: answer,
            stop: stop_name(turn.stop),
            prefill: turn.prefill,
            decode: turn.decode,
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        writeln!(out)?;
        eprintln!("{}", stats_line(&turn));
    }
    Ok(())
}

/// `[12 tokens, prefill 40 tok at 300.1 tok/s, decode 95.2 tok/s, stop-token]`.
#[must_use]
pub fn stats_line(turn: &Turn) -> String {
    let rate = |p: &Phase| {
        p.tok_s
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"))
    };
    format!(
        "[{} tokens; prefill {} tokens at {} tok/s; decode {} tok/s; {}]",
        turn.tokens.len(),
        turn.prefill.tokens,
        rate(&turn.prefill),
        rate(&turn.decode),
        stop_name(turn.stop)
    )
}
