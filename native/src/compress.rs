//! `edgewise compress`: build a compressed variant of a GGUF model (ECLD: prune → distill →
//! quantize, or the quantization-only / pruning-only baselines) and write it as GGUF.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use edgewise_ecld::compress::{
    PrunePlan, QuantSpec, calibration_texts, default_calibration_texts, export_gguf_file,
    parse_block_type, parse_type_rule, split_held_out, weight_bytes,
};
use edgewise_ecld::distill::{
    CheckpointOptions, DistillConfig, TeacherTextConfig, TokenWindows, cached_teacher_text,
    mean_cross_entropy,
};
use edgewise_ecld::pipeline::{Method, PipelineOptions, Stage, run_pipeline};
use edgewise_ecld::reconstruct::RefitOptions;
use edgewise_llm::{Device, Engine, GgufFile, Model, Sampler, Sampling, Tokenizer};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodArg {
    /// Prune, distill from the base, quantize.
    Ecld,
    /// Quantize the base only.
    QuantOnly,
    /// Prune only (no distillation), stored F16.
    PruneOnly,
}

#[derive(clap::Args, Debug)]
pub struct CompressArgs {
    /// Base model (GGUF); defaults to the shipped model in the model cache.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Which pipeline.
    #[arg(long, value_enum)]
    method: MethodArg,
    /// Fraction of FFN channels removed, in [0, 1); or one value per layer, comma-separated
    /// (non-uniform pruning).
    #[arg(long, default_value = "0.5")]
    prune_ffn: String,
    /// Fraction of attention KV groups (with their query heads) removed per layer, in [0, 1).
    #[arg(long, default_value_t = 0.34)]
    prune_heads: f32,
    /// Whole layers removed (the most redundant ones on the calibration text).
    #[arg(long, default_value_t = 0)]
    prune_layers: usize,
    /// Distillation steps (ECLD only; 0 = prune and quantize without distillation).
    #[arg(long, default_value_t = 200)]
    distill_steps: usize,
    /// Weight width of the attention and FFN matrices: 8 = Q8_0, 4 = Q4_0 (group-wise,
    /// blocks of 32, one f16 scale each).
    #[arg(long, default_value_t = 4)]
    bits: u32,
    /// Block type of the attention and FFN matrices by ggml name (q4_0, q4_1, q8_0, q5_0,
    /// iq4_nl, …); overrides --bits.
    #[arg(long)]
    linear_type: Option<String>,
    /// Per-tensor type override `PATTERN=TYPE` (repeatable; the first rule whose pattern
    /// occurs in the GGUF tensor name wins), e.g. `--tensor-type ffn_down=q8_0`.
    #[arg(long = "tensor-type", value_name = "PATTERN=TYPE")]
    tensor_type: Vec<String>,
    /// Calibration windows for the importance matrix (Σx² per input channel of every
    /// linear layer) that weights the Q4_0/Q4_1/Q8_0/IQ4_NL scale search; 0 = ggml's plain
    /// max-abs rounding (IQ4_NL: nearest codebook level).
    #[arg(long, default_value_t = 64)]
    imatrix: usize,
    /// Keep the pruned weights as they are instead of refitting `ffn_down` /
    /// `attn_output` by ridge least squares (with a compensating bias) on the calibration
    /// windows.
    #[arg(long)]
    no_refit: bool,
    /// Ridge strength of the refit, relative to the mean diagonal of the Gram matrix.
    #[arg(long, default_value_t = 1e-2)]
    refit_ridge: f64,
    /// Block type of the token embedding / output matrix (mixed precision): q8_0, q5_1,
    /// q5_0, q4_1, q4_0, iq4_nl or f16 (k-quants need rows that are a multiple of 256).
    #[arg(long, default_value = "q8_0")]
    embed_type: String,
    /// Output GGUF file (written to a temp file, then renamed).
    #[arg(long)]
    out: PathBuf,
    /// Calibration text: a `.jsonl` file in the evaluation-data format (`"set":
    /// "calibration"`) or plain text, one passage per line; defaults to the committed
    /// `crates/ecld/data/eval/calibration.jsonl`. Every 10th passage is held out for the
    /// cross-entropy check; the rest give the activation statistics and the teacher's
    /// prompts.
    #[arg(long)]
    calib: Option<PathBuf>,
    /// Windows of the text used for the activation statistics of pruning and the refit.
    #[arg(long, default_value_t = 128)]
    calib_windows: usize,
    /// Tokens the teacher writes per prompt for the distillation text (cached as
    /// `teacher-text.json` in the checkpoint folder).
    #[arg(long, default_value_t = 96)]
    teacher_tokens: usize,
    /// Prompts the teacher continues (N training passages spread evenly over the file,
    /// so every family is covered; 0 = all of them).
    #[arg(long, default_value_t = 0)]
    teacher_prompts: usize,
    /// Sampling temperature of the teacher's text.
    #[arg(long, default_value_t = 0.8)]
    teacher_temperature: f32,
    /// Sequences per distillation step.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 64)]
    seq_len: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Distillation temperature τ.
    #[arg(long, default_value_t = 2.0)]
    temperature: f64,
    /// Weight of the next-token cross-entropy added to the KL loss.
    #[arg(long, default_value_t = 0.0)]
    ce_weight: f64,
    /// Seed of the teacher's text and of the training data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint folder; defaults to `OUT.ckpt/` next to --out.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Save a checkpoint every this many steps (and after the last one).
    #[arg(long, default_value_t = 50)]
    checkpoint_every: usize,
    /// Stop distilling once this many minutes have passed since pruning began (at a step
    /// boundary, with a checkpoint), then
    /// quantize and write the model as usual; `--resume` with the same arguments continues.
    #[arg(long, value_name = "MIN")]
    time_budget_min: Option<f64>,
    /// Continue the distillation from the newest checkpoint.
    #[arg(long)]
    resume: bool,
    /// Skip the held-out cross-entropy and the generation check (faster).
    #[arg(long)]
    no_check: bool,
}

/// Parses `--prune-ffn`: one removal ratio or one per layer; returns keep fractions.
fn ffn_keep(arg: &str, n_layer: usize) -> anyhow::Result<(f32, Vec<f32>)> {
    let ratios = arg
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f32>()
                .with_context(|| format!("--prune-ffn: `{s}` is not a number"))
        })
        .collect::<anyhow::Result<Vec<f32>>>()?;
    for &r in &ratios {
        check_ratio("--prune-ffn", r)?;
    }
    match ratios.as_slice() {
        [r] => Ok((1.0 - r, Vec::new())),
        many if many.len() == n_layer => Ok((1.0, many.iter().map(|r| 1.0 - r).collect())),
        many => bail!(
            "--prune-ffn has {} values; give one ratio or one per layer ({n_layer})",
            many.len()
        ),
    }
}

fn check_ratio(flag: &str, r: f32) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&r) {
        bail!("{flag} must be a ratio in [0, 1) (the fraction removed), got {r}");
    }
    Ok(())
}

/// Splits the text into training passages and held-out ones (every 10th line).
fn read_passages(args: &CompressArgs) -> anyhow::Result<(Vec<String>, Vec<String>, String)> {
    let (lines, name) = match &args.calib {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --calib {}", p.display()))?;
            let name = p.display().to_string();
            let lines = if p.extension().and_then(|e| e.to_str()) == Some("jsonl") {
                calibration_texts(&text, &name)?
            } else {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned)
                    .collect()
            };
            (lines, name)
        }
        None => (
            default_calibration_texts()?,
            "crates/ecld/data/eval/calibration.jsonl".into(),
        ),
    };
    if lines.len() < 2 {
        bail!(
            "{name}: need at least two non-empty lines of text, found {}",
            lines.len()
        );
    }
    let (train, held) = split_held_out(&lines);
    Ok((train, held, name))
}

fn encode_all(tok: &Tokenizer, lines: &[String]) -> anyhow::Result<Vec<Vec<u32>>> {
    lines
        .iter()
        .map(|l| tok.encode(l, false).map_err(Into::into))
        .collect()
}

fn mib(b: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let x = b as f64 / (1024.0 * 1024.0);
    x
}

pub fn run(args: &CompressArgs) -> anyhow::Result<()> {
    if !matches!(args.bits, 4 | 8) {
        bail!("--bits must be 8 or 4, got {}", args.bits);
    }
    let embed_type = parse_block_type(&args.embed_type).context("--embed-type")?;
    let mut quant = QuantSpec::for_bits(args.bits)?.with_embedding(embed_type);
    if let Some(t) = &args.linear_type {
        quant.linear = parse_block_type(t).context("--linear-type")?;
    }
    let type_rules = args
        .tensor_type
        .iter()
        .map(|r| parse_type_rule(r).context("--tensor-type"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !(args.refit_ridge.is_finite() && args.refit_ridge > 0.0) {
        bail!(
            "--refit-ridge must be a positive number, got {}",
            args.refit_ridge
        );
    }
    check_ratio("--prune-heads", args.prune_heads)?;
    let model_path = match &args.model {
        Some(p) => p.clone(),
        None => edgewise_llm::model_cache::default_model_path()?,
    };
    if args.out.extension().and_then(|e| e.to_str()) != Some("gguf") {
        bail!("--out must name a .gguf file, got {}", args.out.display());
    }
    let dev = Device::Cpu;
    let (base, gguf) = Model::from_path(&model_path, &dev)
        .with_context(|| format!("cannot load base model {}", model_path.display()))?;
    let tok = Tokenizer::from_gguf(&gguf)?;
    let n_layer = base.config().n_layer;
    let (ffn_keep_all, ffn_keep_per_layer) = ffn_keep(&args.prune_ffn, n_layer)?;
    let plan = PrunePlan {
        ffn_keep: ffn_keep_all,
        kv_group_keep: 1.0 - args.prune_heads,
        drop_layers: args.prune_layers,
        channel_multiple: 32,
        ffn_keep_per_layer,
    };
    let method = match args.method {
        MethodArg::Ecld => Method::Ecld,
        MethodArg::QuantOnly => Method::QuantOnly,
        MethodArg::PruneOnly => Method::PruneOnly,
    };
    let (train, held, text_name) = read_passages(args)?;
    let train_ids = encode_all(&tok, &train)?;
    let calib = TokenWindows::new(&train_ids, tok.eos(), args.seq_len)
        .with_context(|| format!("calibration text {text_name}"))?;
    let distill = DistillConfig {
        steps: if method == Method::Ecld {
            args.distill_steps
        } else {
            0
        },
        batch: args.batch,
        seq_len: args.seq_len,
        lr: args.lr,
        temperature: args.temperature,
        ce_weight: args.ce_weight,
        seed: args.seed,
        ..DistillConfig::default()
    };
    let ckpt_dir = args.checkpoint_dir.clone().unwrap_or_else(|| {
        let mut d = args.out.as_os_str().to_owned();
        d.push(".ckpt");
        PathBuf::from(d)
    });
    if let Some(m) = args.time_budget_min
        && !(m.is_finite() && m > 0.0)
    {
        bail!("--time-budget-min must be a positive number of minutes, got {m}");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkpoint = (method == Method::Ecld && distill.steps > 0).then(|| CheckpointOptions {
        dir: ckpt_dir.clone(),
        every: args.checkpoint_every,
        resume: args.resume,
        stop: Some(stop.clone()),
        run_tag: format!(
            "base={} bytes={} prune_ffn={} prune_heads={} prune_layers={} calib_windows={}",
            model_path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into()),
            std::fs::metadata(&model_path).map_or(0, |m| m.len()),
            args.prune_ffn,
            args.prune_heads,
            args.prune_layers,
            args.calib_windows
        ),
    });
    let opts = PipelineOptions {
        method,
        prune: plan,
        quant,
        type_rules,
        imatrix_windows: args.imatrix,
        refit: (!args.no_refit).then_some(RefitOptions {
            ridge: args.refit_ridge,
            attention: true,
        }),
        distill: distill.clone(),
        checkpoint,
        calib_windows: args.calib_windows,
    };
    let teacher_cfg = TeacherTextConfig {
        max_new_tokens: args.teacher_tokens,
        temperature: args.teacher_temperature,
        top_p: 0.95,
        seed: args.seed,
    };
    let data = if distill.steps > 0 {
        let n = match args.teacher_prompts {
            0 => train.len(),
            n => n.min(train.len()),
        };
        let prompts: Vec<String> = (0..n).map(|i| train[i * train.len() / n].clone()).collect();
        teacher_windows(
            args,
            &ckpt_dir,
            &model_path,
            &base,
            &tok,
            &prompts,
            &teacher_cfg,
        )?
    } else {
        calib.clone()
    };
    tracing::info!(
        "compress: {} → {:?}, {} calibration windows and {} distillation windows of {} tokens from {text_name}",
        model_path.display(),
        method,
        calib.windows().len(),
        data.windows().len(),
        args.seq_len
    );
    let bar = crate::logging::bar(
        distill.steps as u64,
        "distill [{elapsed_precise}] {bar:30} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
    );
    if distill.steps == 0 {
        bar.finish_and_clear();
    }
    let t0 = std::time::Instant::now();
    let mut first_step = None;
    let mut on_stage = |st: Stage| match st {
        Stage::Imatrix(d, t) if d == t || d % 16 == 0 => {
            tracing::info!("importance matrix: {d}/{t} windows");
        }
        Stage::Refit(d, t) if d == t || d % 8 == 0 => tracing::info!("refit: {d}/{t} blocks"),
        _ => {}
    };
    let out = run_pipeline(
        &base,
        &calib,
        &data,
        &opts,
        &mut |r| {
            if first_step.is_none() {
                first_step = Some((r.step, std::time::Instant::now()));
                bar.set_position(r.step as u64 - 1);
            }
            if let Some(m) = args.time_budget_min
                && t0.elapsed().as_secs_f64() >= m * 60.0
            {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            bar.set_position(r.step as u64);
            bar.set_message(format!(
                "loss {:.4} kl {:.4} ce {:.3}{}",
                r.loss,
                r.kl,
                r.ce,
                if r.checkpointed { " [ckpt]" } else { "" }
            ));
            // Without a terminal the bar is hidden: log checkpointed steps instead.
            if bar.is_hidden() && r.checkpointed {
                tracing::info!(
                    "distill step {}/{}: loss {:.4} kl {:.4} ce {:.3} ({:.0} s) [ckpt]",
                    r.step,
                    r.steps,
                    r.loss,
                    r.kl,
                    r.ce,
                    t0.elapsed().as_secs_f64()
                );
            }
        },
        &mut on_stage,
    )?;
    bar.finish();
    if !out.refit.is_empty() {
        let (before, after) = out
            .refit
            .iter()
            .fold((0.0, 0.0), |(b, a), r| (b + r.before, a + r.after));
        #[allow(clippy::cast_precision_loss)]
        let n = out.refit.len() as f64;
        eprintln!(
            "refit: {} projections, mean relative error on the calibration windows {:.4} → {:.4}",
            out.refit.len(),
            before / n,
            after / n
        );
    }
    if let (Some(report), Some((s0, t1))) = (&out.distill, first_step) {
        let n = report.losses.len().saturating_sub(s0 - 1);
        let secs = t1.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let per = if n > 1 { secs / (n - 1) as f64 } else { secs };
        tracing::info!(
            "distill: steps {}..{}, loss first {:.4} last {:.4}, {per:.2} s/step after the first (checkpoints in {})",
            report.start_step + 1,
            report.losses.len(),
            report.losses.get(s0 - 1).copied().unwrap_or(f32::NAN),
            report.losses.last().copied().unwrap_or(f32::NAN),
            ckpt_dir.display()
        );
        if report.losses.len() < distill.steps {
            tracing::info!(
                "distill: stopped by --time-budget-min after step {} of {}; --resume continues",
                report.losses.len(),
                distill.steps
            );
        }
    }
    let bytes = export_gguf_file(&args.out, &out.model, Some(&gguf))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let base_params = base.config().n_params();
    let params = out.model.config().n_params();
    let f16_base = 2 * base_params as u64;
    #[allow(clippy::cast_precision_loss)]
    let smaller = 100.0 * (1.0 - bytes as f64 / f16_base as f64);
    #[allow(clippy::cast_precision_loss)]
    let pct_of_base = 100.0 * params as f64 / base_params as f64;
    println!(
        "{}: {:?} {} params ({:.1}% of base), {bytes} bytes ({:.1} MiB; weights {:.1} MiB), {smaller:.1}% smaller than the f16 base ({:.1} MiB), {:.0} s",
        args.out.display(),
        method,
        params,
        pct_of_base,
        mib(bytes),
        mib(weight_bytes(&out.model)?),
        mib(f16_base),
        t0.elapsed().as_secs_f64()
    );
    if !args.no_check {
        check_output(&args.out, &base, &tok, &held, &dev)?;
    }
    Ok(())
}

/// The distillation text: the teacher's seeded continuations of the training passages,
/// generated once and cached in the checkpoint folder.
fn teacher_windows(
    args: &CompressArgs,
    ckpt_dir: &Path,
    model_path: &Path,
    base: &Model,
    tok: &Tokenizer,
    prompts: &[String],
    cfg: &TeacherTextConfig,
) -> anyhow::Result<TokenWindows> {
    let cache = ckpt_dir.join("teacher-text.json");
    let bar = crate::logging::bar(
        prompts.len() as u64,
        "teacher text [{elapsed_precise}] {bar:30} {pos}/{len} prompts (eta {eta})",
    );
    let tag = format!(
        "{} bytes={}",
        model_path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into()),
        std::fs::metadata(model_path).map_or(0, |m| m.len())
    );
    let (passages, cached) =
        cached_teacher_text(&cache, &tag, base, tok, prompts, cfg, &mut |done, _| {
            bar.set_position(done as u64);
            if bar.is_hidden() && done % 16 == 0 {
                tracing::info!("teacher text: {done}/{} prompts", prompts.len());
            }
        })
        .context("teacher text for distillation")?;
    bar.finish_and_clear();
    let tokens: usize = passages.iter().map(Vec::len).sum();
    tracing::info!(
        "teacher text: {} passages, {tokens} tokens ({}; {})",
        passages.len(),
        if cached { "reused" } else { "generated" },
        cache.display()
    );
    TokenWindows::new(&passages, tok.eos(), args.seq_len).context("teacher text")
}

/// Reloads the written file with our engine, compares held-out cross-entropy with the base
/// and prints a short greedy generation.
fn check_output(
    path: &Path,
    base: &Model,
    tok: &Tokenizer,
    held: &[String],
    dev: &Device,
) -> anyhow::Result<()> {
    let engine = Engine::from_path(path, dev)
        .with_context(|| format!("our engine cannot load the output {}", path.display()))?;
    let g = GgufFile::open(path)?.0;
    let mut types = std::collections::BTreeMap::new();
    for (_, _, t) in g.tensor_infos() {
        *types.entry(format!("{t:?}")).or_insert(0usize) += 1;
    }
    println!("tensor types: {types:?}");
    let held_ids = encode_all(tok, held)?;
    let ce_base = mean_cross_entropy(base, &held_ids)?;
    let ce_out = mean_cross_entropy(&engine.model, &held_ids)?;
    println!(
        "held-out CE ({} lines): base {ce_base:.3} nats (ppl {:.1}), output {ce_out:.3} nats (ppl {:.1})",
        held.len(),
        ce_base.exp(),
        ce_out.exp()
    );
    let mut sampler = Sampler::new(Sampling::Greedy, 0)?;
    let reply = engine.chat(
        &[edgewise_llm::ChatMessage::user(
            "What is the capital of France?",
        )],
        24,
        &mut sampler,
    )?;
    println!("generation check: {reply:?}");
    Ok(())
}
