//! Native wgpu prefill and greedy decode speed on whatever adapter is present.
//!
//! `cargo run -p edgewise-gpu --example decode_speed -- [MODEL.gguf] [TOKENS]`
//! (default: the shipped model, 64 tokens). Prefills a fixed chat prompt, decodes TOKENS
//! greedy tokens (each one submit and a 4-byte read-back), and prints tok/s.

use std::time::Instant;

use edgewise_gpu::{GpuContext, GpuModel};
use edgewise_llm::model_cache::default_model_path;
use edgewise_llm::{ChatMessage, Device, Engine};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = match args.next() {
        Some(p) => p.into(),
        None => default_model_path()?,
    };
    let n: usize = match args.next() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("TOKENS must be a positive integer, got `{s}`"))?,
        None => 64,
    };
    let engine = Engine::from_path(&path, &Device::Cpu)?;
    let ctx = GpuContext::new()?;
    println!("adapter: {}", ctx.adapter());
    println!("chosen because: {}", ctx.reason());
    let t = Instant::now();
    let mut g = GpuModel::new(&ctx, &engine.model, 1024)?;
    println!(
        "upload: {:.2} s, {:.1} MB of weights",
        t.elapsed().as_secs_f64(),
        g.weight_bytes() as f64 / 1e6
    );
    let prompt = engine.tokenizer.apply_chat_template(
        &[ChatMessage::user("Tell me about mobile edge computing.")],
        true,
    );
    let ids = engine.tokenizer.encode(&prompt, true)?;
    // Warm-up: the first submit compiles pipelines lazily on some drivers.
    g.prefill(&ids)?;
    g.reset();
    let t = Instant::now();
    let mut out = vec![g.prefill(&ids)?];
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 1..n {
        out.push(g.decode()?);
    }
    let decode = t.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    {
        println!(
            "prefill: {} tokens in {prefill:.3} s = {:.1} tok/s",
            ids.len(),
            ids.len() as f64 / prefill
        );
        println!(
            "decode: {} tokens in {decode:.3} s = {:.2} tok/s",
            n - 1,
            (n - 1) as f64 / decode
        );
    }
    println!("text: {:?}", engine.tokenizer.decode(&out, true)?);
    Ok(())
}
