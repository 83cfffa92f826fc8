//! Builds the baseline variants that `edgewise eval` compares, from the shipped model,
//! with the library's compression pieces:
//!
//! * `base-f16.gguf`: the shipped Q4_1 model dequantised and stored as f16 (design §4.1);
//! * `quant-only-q8.gguf`: the base re-quantised to Q8_0;
//! * `quant-only-q4.gguf`: the base re-quantised to Q4_0 (Q8_0 embeddings);
//! * `prune-only-f16.gguf`: the base pruned (FFN channels kept 75 %, 2 layers dropped),
//!   ranked on `crates/ecld/data/eval/calibration.jsonl`, no distillation, stored as f16.
//!
//! Usage: `cargo run --release -p edgewise-ecld --example make_variants -- OUT_DIR [MODEL]`
//! (MODEL defaults to the shipped model in the model cache).

use std::path::PathBuf;

use edgewise_ecld::compress::{PrunePlan, QuantSpec, calibrate, config_metadata, prune, quantize};
use edgewise_ecld::eval::data::{committed_data_dir, load_calibration};
use edgewise_llm::gguf::write_gguf_file;
use edgewise_llm::{Device, GgufFile, Model, Tokenizer, model_cache};

const F16: QuantSpec = QuantSpec::F16;

/// Calibration sequences used for ranking (N texts spread over the calibration families,
/// each cut to this many tokens).
const CALIBRATION_TEXTS: usize = 96;
const CALIBRATION_TOKENS: usize = 96;

fn save(dir: &std::path::Path, name: &str, m: &Model, src: &GgufFile) -> anyhow::Result<()> {
    let mut md = config_metadata(m.config());
    let mut keys: Vec<&String> = src
        .metadata()
        .keys()
        .filter(|k| {
            k.starts_with("tokenizer.")
                || (k.starts_with("general.")
                    && !matches!(
                        k.as_str(),
                        "general.architecture" | "general.alignment" | "general.file_type"
                    ))
        })
        .collect();
    keys.sort();
    for k in keys {
        md.push((k.clone(), src.metadata()[k].clone()));
    }
    let path = dir.join(format!("{name}.gguf"));
    write_gguf_file(&path, &md, &m.named_tensors()?)?;
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "{}: {bytes} bytes, {} params",
        path.display(),
        m.config().n_params()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: make_variants OUT_DIR [MODEL]"))?,
    );
    let model_path = match args.next() {
        Some(p) => PathBuf::from(p),
        None => model_cache::default_model_path()?,
    };
    std::fs::create_dir_all(&out)?;
    let dev = Device::Cpu;
    let (shipped, src) = Model::from_path(&model_path, &dev)?;
    let tok = Tokenizer::from_gguf(&src)?;

    let base = quantize(&shipped, F16)?;
    save(&out, "base-f16", &base, &src)?;
    save(
        &out,
        "quant-only-q8",
        &quantize(&base, QuantSpec::Q8_0)?,
        &src,
    )?;
    save(
        &out,
        "quant-only-q4",
        &quantize(&base, QuantSpec::Q4_0_MIXED)?,
        &src,
    )?;

    let calib = load_calibration(&committed_data_dir())?;
    let seqs = calib
        .subset(Some(CALIBRATION_TEXTS))
        .iter()
        .map(|t| {
            let mut ids = tok.encode(&t.text, false)?;
            ids.truncate(CALIBRATION_TOKENS);
            Ok(ids)
        })
        .collect::<edgewise_llm::Result<Vec<_>>>()?;
    let stats = calibrate(&base, &seqs)?;
    let plan = PrunePlan {
        ffn_keep: 0.75,
        kv_group_keep: 1.0,
        drop_layers: 2,
        channel_multiple: 32,
        ..PrunePlan::default()
    };
    let pruned = quantize(&prune(&base, &stats, &plan)?, F16)?;
    save(&out, "prune-only-f16", &pruned, &src)?;
    Ok(())
}
