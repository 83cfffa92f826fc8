//! Prefill and decode speed on the shipped model as one fixed amount of work, for timing a
//! whole process (the criterion bench `benches/inference.rs` is the in-process figure).
//!
//! Usage: `RAYON_NUM_THREADS=1 cargo run --release -p edgewise-llm --example speed --
//! [PREFILL_TOKENS] [DECODE_TOKENS]` (defaults 512 and 128). Prints tokens/s of a
//! `PREFILL_TOKENS` prefill, then of `DECODE_TOKENS` greedy decode steps after a 64-token
//! prompt, and the greedy ids' checksum (to see that a change kept the tokens).

use std::time::Instant;

use anyhow::{Context, Result, bail};
use edgewise_llm::{Device, Engine, model, model_cache};

fn arg(i: usize, default: usize) -> Result<usize> {
    match std::env::args().nth(i) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .with_context(|| format!("argument {i}: expected a token count, got {s:?}")),
    }
}

fn main() -> Result<()> {
    let prefill = arg(1, 512)?;
    let decode = arg(2, 128)?;
    if prefill == 0 {
        bail!("PREFILL_TOKENS must be at least 1");
    }
    let path = model_cache::default_model_path()?;
    let engine = Engine::from_path(&path, &Device::Cpu)?;
    let text = "Mobile edge computing lets phones offload language-model queries to a nearby \
                server when the radio channel is good, and answer locally otherwise. ";
    let ids = engine
        .tokenizer
        .encode(&text.repeat(prefill / 8 + 9), false)?;
    let threads = candle_core::utils::get_num_threads();

    let start = Instant::now();
    engine
        .model
        .forward(&ids[..prefill], &mut engine.model.new_cache())?;
    let secs = start.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = prefill as f64 / secs;
    println!("threads={threads} prefill {prefill} tokens: {secs:.3} s, {rate:.1} tok/s");

    let mut cache = engine.model.new_cache();
    let mut next = model::argmax(&engine.model.forward(&ids[..64], &mut cache)?)?;
    let mut checksum = 0u64;
    let start = Instant::now();
    for _ in 0..decode {
        next = model::argmax(&engine.model.forward(&[next], &mut cache)?)?;
        checksum = checksum.wrapping_mul(31).wrapping_add(u64::from(next));
    }
    let secs = start.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = decode as f64 / secs;
    println!(
        "threads={threads} decode {decode} tokens after 64: {secs:.3} s, {rate:.1} tok/s \
         (greedy ids checksum {checksum})"
    );
    Ok(())
}
