//! Chooses ECLD's pruning for a size budget without distillation: for each embedding type ×
//! head-pruning ratio × dropped-layer count of a small grid it finds the smallest uniform
//! FFN pruning ratio whose file fits the budget (predicted from the pruned shapes, checked
//! on the built file), builds that variant in memory (prune → Q4_0
//! linear layers, embedding/output at the given type) and prints its held-out cross-entropy
//! on the calibration lines `edgewise compress` holds out (every 10th line of
//! `data/eval/calibration.jsonl`; never the evaluation sets). Lower is better.
//!
//! Usage: `cargo run --release -p edgewise-ecld --example ecld_sweep -- [BUDGET_MB] [MODEL]`
//! (budget in 10⁶ bytes, default 67.7 = 75 % below the 270.9 MB f16 base; MODEL defaults
//! to the shipped model in the model cache).

use std::io::Cursor;

use candle_core::quantized::GgmlDType;
use edgewise_ecld::compress::{
    PrunePlan, QuantSpec, calibrate, default_calibration_texts, export_gguf, parse_block_type,
    prune, quantize, split_held_out,
};
use edgewise_ecld::distill::{TokenWindows, mean_cross_entropy};
use edgewise_llm::{Device, Model, ModelConfig, Tokenizer, WeightType, model_cache};

/// Same settings as `edgewise compress`'s defaults.
const SEQ_LEN: usize = 64;
const CALIB_WINDOWS: usize = 32;
const FFN_STEP: f32 = 0.02;

fn file_bytes(m: &Model, src: &edgewise_llm::GgufFile) -> anyhow::Result<u64> {
    let mut buf = Cursor::new(Vec::new());
    export_gguf(&mut buf, m, Some(src))?;
    Ok(buf.into_inner().len() as u64)
}

/// Bytes of a `rows × cols` matrix stored as `t` (F16 where a row is not whole blocks,
/// as [`quantize`] does for linear layers).
fn matrix_bytes(rows: usize, cols: usize, t: WeightType) -> u64 {
    let t = if cols.is_multiple_of(t.block_size()) {
        t
    } else {
        GgmlDType::F16.into()
    };
    (rows * cols / t.block_size() * t.type_size()) as u64
}

/// The tensor bytes of a (tied-embedding) model of configuration `c` quantised by `spec`.
fn predicted_bytes(c: &ModelConfig, spec: QuantSpec) -> u64 {
    let (e, hd) = (c.n_embd, c.head_dim);
    let mut b = matrix_bytes(c.vocab_size, e, spec.embedding) + 4 * e as u64;
    for l in 0..c.n_layer {
        let (q, kv, ff) = (c.n_head[l] * hd, c.n_head_kv[l] * hd, c.n_ff[l]);
        let t = spec.linear;
        b += matrix_bytes(q, e, t) + 2 * matrix_bytes(kv, e, t) + matrix_bytes(e, q, t);
        b += 2 * matrix_bytes(ff, e, t) + matrix_bytes(e, ff, t) + 8 * e as u64;
        if c.qk_norm {
            b += 8 * hd as u64;
        }
    }
    b
}

/// The configuration [`prune`] produces for `plan` (same rounding).
fn pruned_config(c: &ModelConfig, plan: &PrunePlan) -> ModelConfig {
    let keep = |n: usize, f: f32, m: usize| -> usize {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let k = ((n as f32) * f).ceil() as usize;
        k.div_ceil(m).saturating_mul(m).clamp(1, n)
    };
    let mut out = c.clone();
    let n = c.n_layer - plan.drop_layers;
    out.n_layer = n;
    out.n_ff = vec![keep(c.n_ff[0], plan.ffn_keep, plan.channel_multiple); n];
    let kv = keep(c.n_head_kv[0], plan.kv_group_keep, 1);
    out.n_head_kv = vec![kv; n];
    out.n_head = vec![kv * (c.n_head[0] / c.n_head_kv[0]); n];
    out
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let budget_mb: f64 = match args.next() {
        Some(s) => s
            .parse()
            .map_err(|e| anyhow::anyhow!("BUDGET_MB `{s}`: {e}"))?,
        None => 67.7,
    };
    let path = match args.next() {
        Some(p) => p.into(),
        None => model_cache::default_model_path()?,
    };
    let dev = Device::Cpu;
    let (base, gguf) = Model::from_path(&path, &dev)?;
    let tok = Tokenizer::from_gguf(&gguf)?;
    let (train, held) = split_held_out(&default_calibration_texts()?);
    let enc = |ls: &[String]| -> anyhow::Result<Vec<Vec<u32>>> {
        ls.iter()
            .map(|l| tok.encode(l, false).map_err(Into::into))
            .collect()
    };
    let calib = TokenWindows::new(&enc(&train)?, tok.eos(), SEQ_LEN)?;
    let n = CALIB_WINDOWS.min(calib.windows().len());
    let stats = calibrate(&base, &calib.windows()[..n])?;
    let held_ids = enc(&held)?;
    #[allow(clippy::cast_precision_loss)]
    let budget = (budget_mb * 1e6) as u64;
    println!(
        "budget {budget_mb} MB; base held-out CE {:.3} nats ({} lines)",
        mean_cross_entropy(&base, &held_ids)?,
        held.len()
    );
    // The file's size follows from the pruned shapes: tensor bytes + a fixed header
    // (tokenizer and metadata), measured once.
    let q8 = QuantSpec::Q4_0_MIXED;
    let header = file_bytes(&quantize(&base, q8)?, &gguf)? - predicted_bytes(base.config(), q8);
    println!(
        "| embedding | prune heads | drop layers | prune FFN | params (M) | MB | held-out CE |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    // Most informative first: the embedding type with FFN-only pruning, then whole layers
    // and attention groups.
    let mut grid = Vec::new();
    for (heads, layers) in [(0.0f32, 0usize), (0.0, 2), (0.34, 0), (0.0, 4), (0.34, 2)] {
        for embed in ["q8_0", "q5_0", "q4_1", "q4_0"] {
            grid.push((embed, heads, layers));
        }
    }
    for (embed, heads, layers) in grid {
        let spec = QuantSpec::Q4_0_MIXED.with_embedding(parse_block_type(embed)?);
        let plan_for = |ffn: f32| PrunePlan {
            ffn_keep: 1.0 - ffn,
            kv_group_keep: 1.0 - heads,
            drop_layers: layers,
            ..PrunePlan::default()
        };
        // Smallest FFN ratio (in steps of FFN_STEP) whose predicted file fits.
        let mut ffn = 0.0f32;
        while header + predicted_bytes(&pruned_config(base.config(), &plan_for(ffn)), spec) > budget
        {
            ffn += FFN_STEP;
            if ffn > 0.9 {
                break;
            }
        }
        if ffn > 0.9 {
            println!("| {embed} | {heads} | {layers} | — | — | — | does not fit |");
            continue;
        }
        let m = quantize(&prune(&base, &stats, &plan_for(ffn))?, spec)?;
        let bytes = file_bytes(&m, &gguf)?;
        let ce = mean_cross_entropy(&m, &held_ids)?;
        #[allow(clippy::cast_precision_loss)]
        let (mp, mb) = (m.config().n_params() as f64 / 1e6, bytes as f64 / 1e6);
        println!("| {embed} | {heads} | {layers} | {ffn:.2} | {mp:.1} | {mb:.1} | {ce:.3} |");
    }
    Ok(())
}
