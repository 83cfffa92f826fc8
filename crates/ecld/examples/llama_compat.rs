//! Our engine's side of the llama.cpp compatibility check (`crates/llm/scripts/check_llamacpp.py`).
//!
//! Two modes:
//!
//! * `greedy MODEL.gguf N PROMPT...` — for each prompt (raw text; ChatML markers are parsed
//!   as special tokens) prints one JSON line: the prompt's token ids, the `N` greedy tokens
//!   and, per generated token, the margin between the best and second-best logit (a small
//!   margin means a disagreement with another engine can be rounding, not a bug).
//! * `nonuniform BASE.gguf OUT.gguf` — prunes BASE with different FFN keep fractions per
//!   layer (ranked on a few committed calibration texts) and writes it as F16, so the
//!   per-layer `feed_forward_length` array that non-uniform ECLD variants carry can be
//!   checked against llama.cpp's loader. Quality is not the point: few calibration texts.
//!
//! Usage: `cargo run --release -p edgewise-ecld --example llama_compat -- MODE ...`

use std::path::Path;

use candle_core::Tensor;
use edgewise_ecld::compress::{PrunePlan, QuantSpec, calibrate, export_gguf_file, prune, quantize};
use edgewise_ecld::eval::data::{committed_data_dir, load_calibration};
use edgewise_llm::{Device, Model, Tokenizer};

/// The best logit's index and its margin over the second best.
fn top1_margin(logits: &Tensor) -> anyhow::Result<(u32, f32)> {
    let v = logits.flatten_all()?.to_vec1::<f32>()?;
    let mut best = (0usize, f32::NEG_INFINITY);
    let mut second = f32::NEG_INFINITY;
    for (i, &x) in v.iter().enumerate() {
        if x > best.1 {
            second = best.1;
            best = (i, x);
        } else if x > second {
            second = x;
        }
    }
    Ok((u32::try_from(best.0)?, best.1 - second))
}

fn greedy(model_path: &Path, n: usize, prompts: &[String]) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (model, gguf) = Model::from_path(model_path, &dev)?;
    let tok = Tokenizer::from_gguf(&gguf)?;
    for prompt in prompts {
        let ids = tok.encode(prompt, true)?;
        let mut cache = model.new_cache();
        let mut logits = model.forward(&ids, &mut cache)?;
        let (mut out, mut margins) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for step in 0..n {
            let (t, m) = top1_margin(&logits)?;
            out.push(t);
            margins.push(m);
            if step + 1 < n {
                logits = model.forward(&[t], &mut cache)?;
            }
        }
        let line = serde_json::json!({
            "prompt": prompt,
            "prompt_tokens": ids,
            "tokens": out,
            "margins": margins,
            "text": tok.decode(&out, false)?,
        });
        println!("{line}");
    }
    Ok(())
}

fn nonuniform(base_path: &Path, out: &Path) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (base, src) = Model::from_path(base_path, &dev)?;
    let tok = Tokenizer::from_gguf(&src)?;
    let calib = load_calibration(&committed_data_dir())?;
    let seqs = calib
        .subset(Some(8))
        .iter()
        .map(|t| {
            let mut ids = tok.encode(&t.text, false)?;
            ids.truncate(64);
            Ok(ids)
        })
        .collect::<edgewise_llm::Result<Vec<_>>>()?;
    let stats = calibrate(&base, &seqs)?;
    let n_layer = base.config().n_layer;
    // Early layers keep more channels than late ones: 0.9 down to 0.5.
    #[allow(clippy::cast_precision_loss)]
    let per_layer = (0..n_layer)
        .map(|l| 0.9 - 0.4 * l as f32 / (n_layer.max(2) - 1) as f32)
        .collect();
    let plan = PrunePlan {
        ffn_keep_per_layer: per_layer,
        ..PrunePlan::default()
    };
    let f16 = QuantSpec::F16;
    let pruned = quantize(&prune(&base, &stats, &plan)?, f16)?;
    let bytes = export_gguf_file(out, &pruned, Some(&src))?;
    println!(
        "{}: {bytes} bytes, feed_forward_length per layer {:?}",
        out.display(),
        pruned.config().n_ff
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: llama_compat greedy MODEL.gguf N PROMPT... | nonuniform BASE.gguf OUT.gguf";
    match args.first().map(String::as_str) {
        Some("greedy") if args.len() >= 4 => {
            let n: usize = args[2]
                .parse()
                .map_err(|e| anyhow::anyhow!("N (tokens to generate) `{}`: {e}", args[2]))?;
            greedy(Path::new(&args[1]), n, &args[3..])
        }
        Some("nonuniform") if args.len() == 3 => {
            nonuniform(Path::new(&args[1]), Path::new(&args[2]))
        }
        _ => Err(anyhow::anyhow!("{usage}")),
    }
}
