//! `edgewise chat`: an interactive, multi-turn conversation with the model. Each line on
//! standard input is a user turn; the answer streams to standard output as it is
//! generated, with its speed on standard error. The conversation is formatted with the
//! model's chat template; the KV cache keeps every position the next prompt shares with
//! what was already processed, so a turn costs only its new tokens.
//!
//! Ctrl-C while an answer is generated stops that answer (the partial answer stays in
//! the conversation); at the prompt it ends the program, as does end of input (Ctrl-D).
//! `/reset` starts a new conversation, `/exit` quits.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use edgewise_llm::{ChatMessage, StreamDecoder};

use crate::backend::{self, Session};
use crate::generate::{run_turn, stats_line};
use crate::llm_options::{ModelOptions, SamplingOptions};

#[derive(clap::Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelOptions,
    #[command(flatten)]
    sampling: SamplingOptions,
    /// A system turn opening the conversation (default: the template's own, if any).
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
}

/// Answer length when --max-tokens is not given.
const DEFAULT_MAX_TOKENS: usize = 512;
/// Temperature when --temperature is not given (a chat reads better sampled).
const DEFAULT_TEMPERATURE: f32 = 0.7;

/// Set while an answer is being generated: Ctrl-C then cancels it instead of exiting.
static GENERATING: AtomicBool = AtomicBool::new(false);
/// Set by Ctrl-C during an answer; the generation loop stops after the current token.
static CANCEL: AtomicBool = AtomicBool::new(false);

fn on_interrupt() {
    if GENERATING.load(Ordering::SeqCst) {
        CANCEL.store(true, Ordering::SeqCst);
    } else {
        eprintln!();
        std::process::exit(130);
    }
}

/// The conversation and what of it the session has already processed.
struct Conversation {
    messages: Vec<ChatMessage>,
    system: Option<String>,
    /// Token ids at positions `0..session.position()`.
    fed: Vec<u32>,
}

impl Conversation {
    fn new(system: Option<String>) -> Self {
        let mut c = Self {
            messages: Vec::new(),
            system,
            fed: Vec::new(),
        };
        c.reset();
        c
    }

    fn reset(&mut self) {
        self.messages.clear();
        if let Some(s) = &self.system {
            self.messages.push(ChatMessage::system(s));
        }
        self.fed.clear();
    }
}

pub fn run(args: &ChatArgs) -> Result<()> {
    let max_new = args.sampling.max_tokens(DEFAULT_MAX_TOKENS)?;
    let mut sampler = args.sampling.sampler(DEFAULT_TEMPERATURE)?;
    let (engine, _) = args.model.load()?;
    let mut session = backend::open(args.model.backend, &engine)?;
    ctrlc::set_handler(on_interrupt).context("installing the Ctrl-C handler")?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "Type a message and press Enter. Ctrl-C stops an answer; /reset starts over; \
             /exit or Ctrl-D quits."
        );
    }
    let mut convo = Conversation::new(args.system.clone());
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    loop {
        if interactive {
            eprint!("> ");
            std::io::stderr().flush().ok();
        }
        line.clear();
        if stdin
            .read_line(&mut line)
            .context("reading standard input")?
            == 0
        {
            if interactive {
                eprintln!();
            }
            return Ok(());
        }
        let text = line.trim();
        match text {
            "" => continue,
            "/exit" | "/quit" => return Ok(()),
            "/reset" => {
                convo.reset();
                session.truncate(0);
                eprintln!("(new conversation)");
                continue;
            }
            _ => {}
        }
        convo.messages.push(ChatMessage::user(text));
        if let Err(e) = answer(&engine, session.as_mut(), &mut convo, &mut sampler, max_new) {
            // The turn did not happen: forget it, keep the program.
            convo.messages.pop();
            eprintln!("error: {e:#}");
        }
    }
}

/// Generates the assistant's answer to the conversation so far and appends it.
fn answer(
    engine: &edgewise_llm::Engine,
    session: &mut dyn Session,
    convo: &mut Conversation,
    sampler: &mut edgewise_llm::Sampler,
    max_new: usize,
) -> Result<()> {
    let tok = &engine.tokenizer;
    let ids = tok.encode(&tok.apply_chat_template(&convo.messages, true), true)?;
    // Keep the cached positions the new prompt starts with; at least one token is fed.
    let common = convo
        .fed
        .iter()
        .zip(&ids)
        .take_while(|(a, b)| a == b)
        .count()
        .min(ids.len() - 1)
        .min(session.position());
    session.truncate(common);
    convo.fed.truncate(common);
    let feed = &ids[common..];
    let mut stream = StreamDecoder::default();
    let mut out = std::io::stdout().lock();
    CANCEL.store(false, Ordering::SeqCst);
    GENERATING.store(true, Ordering::SeqCst);
    let turn = run_turn(
        session,
        feed,
        max_new,
        sampler,
        &tok.stop_tokens(),
        &CANCEL,
        &mut |id| {
            out.write_all(stream.push(tok, id)?.as_bytes())?;
            out.flush()?;
            Ok(())
        },
    );
    GENERATING.store(false, Ordering::SeqCst);
    let turn = match turn {
        Ok(t) => t,
        Err(e) => {
            // Whatever the session holds now is unknown: start the next turn afresh.
            session.truncate(0);
            convo.fed.clear();
            return Err(e);
        }
    };
    writeln!(out)?;
    out.flush()?;
    eprintln!("{}", stats_line(&turn));
    convo.fed.extend_from_slice(feed);
    convo
        .fed
        .extend_from_slice(&turn.tokens[..turn.decode.tokens]);
    convo.messages.push(ChatMessage {
        role: "assistant".into(),
        content: tok.decode(&turn.tokens, true)?,
    });
    Ok(())
}
