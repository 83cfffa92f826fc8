//! `edgewise eval`: score model variants on the paper's four metrics (design §4.3) and write
//! a table, JSON, trade-off plots and the simulator's variant catalogue (§4.5).
//!
//! Each variant runs in a child process of this binary (`--worker-out`, hidden), so its
//! peak resident memory (`VmHWM` from `/proc/self/status`) is its own. The child loads the
//! model (timed), measures prefill and decode speed, then scores the quality metrics with
//! [`edgewise_ecld::eval::metrics`]; the parent applies the energy model
//! ([`edgewise_ecld::eval::energy`]) per device class and writes everything atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use edgewise_atomic_file::write as write_atomic;
use edgewise_ecld::eval::data::committed_data_dir;
use edgewise_ecld::eval::energy::{
    self, ClassEstimate, DeviceClass, HostSpeed, ModelWork, QueryShape,
};
use edgewise_ecld::eval::metrics::{self, CONFIDENCE_THRESHOLD, FactTally};
use edgewise_ecld::eval::stats::{
    Agreement, FactReply, Interval, RiskPoint, mcnemar_exact, paired_bootstrap,
    retained_above_chance, risk_coverage, token_agreement,
};
use edgewise_ecld::eval::{EvalData, FactOutcome};
use edgewise_llm::{Device, Engine, model_cache};
use mec::{CATALOGUE_FORMAT, CATALOGUE_VERSION, Catalogue, ClassProfile, VariantProfile};
use serde::{Deserialize, Serialize};

use crate::plots;

#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// GGUF files to evaluate, one variant each (the file stem is the variant's name; a stem
    /// starting with base, quant-only, prune-only or ecld sets its method). Defaults to the
    /// shipped model.
    #[arg(long = "model", value_name = "FILE", num_args = 1..)]
    models: Vec<PathBuf>,
    /// Output folder: eval.md, eval.json, tradeoff.png and catalogue.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Print the results as one JSON object instead of the markdown table.
    #[arg(long)]
    json: bool,
    /// Score at most N items of each data set (spread over task families).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Folder with facts.jsonl, mc.jsonl and prose.jsonl (default: the committed data).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Longest reply to a factual question, tokens.
    #[arg(long, default_value_t = 24)]
    max_answer_tokens: usize,
    /// Wrong replies below this confidence count as abstentions (see the hallucination rule).
    #[arg(long, default_value_t = CONFIDENCE_THRESHOLD)]
    confidence_threshold: f32,
    /// Prose passages are cut to this many tokens for perplexity.
    #[arg(long, default_value_t = 256)]
    max_prose_tokens: usize,
    /// Merge with earlier runs: the variants of these `eval.json` files (written by
    /// `edgewise eval` with the same --limit, --data, --max-answer-tokens,
    /// --max-prose-tokens and --confidence-threshold) are reported and catalogued together
    /// with those measured now, in order; a variant measured again (or in a later file)
    /// replaces its earlier result. Without --model, only combines the earlier runs.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    merge: Vec<PathBuf>,
    /// Skip the KL-to-base / top-1 agreement on the prose passages (it loads the base and
    /// each variant once more in this process).
    #[arg(long)]
    no_agreement: bool,
    /// Internal: evaluate the one --model in this process and write its result to FILE.
    #[arg(long, hide = true, value_name = "FILE")]
    worker_out: Option<PathBuf>,
}

/// Prompt and generation lengths of the speed measurement (the simulator's mean query).
const SPEED_PROMPT_TOKENS: usize = 128;
const SPEED_DECODE_TOKENS: usize = 64;
/// Speed runs per variant; the fastest is kept (the machine is shared, noise only slows).
const SPEED_REPEATS: usize = 2;

/// Per-family counts of a multiple-choice run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct McFamily {
    correct: usize,
    total: usize,
}

/// A few replies kept for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FactSample {
    question: String,
    gold: String,
    reply: String,
    confidence: f32,
    outcome: FactOutcome,
}

/// What the child process measures for one variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measured {
    name: String,
    method: String,
    path: String,
    bytes: u64,
    params: u64,
    work: ModelWork,
    load_s: f64,
    peak_rss_bytes: Option<u64>,
    prefill_tok_s: f64,
    decode_tok_s: f64,
    mc_items: usize,
    mc_correct: usize,
    mc_accuracy: f64,
    mc_families: BTreeMap<String, McFamily>,
    facts: FactTally,
    fact_families: BTreeMap<String, FactTally>,
    hallucination_rate: f64,
    fact_samples: Vec<FactSample>,
    prose_passages: usize,
    prose_tokens: usize,
    perplexity: f64,
    quality_s: f64,
    rapl_joules: Option<f64>,
    /// Per multiple-choice item, in data order: (family, correct).
    #[serde(default)]
    mc_outcomes: Vec<(String, bool)>,
    /// Chance accuracy of the multiple-choice items (mean of 1 / options).
    #[serde(default)]
    mc_chance: f64,
    /// Per factual question, in data order: (family, reply summary).
    #[serde(default)]
    fact_replies: Vec<(String, FactReply)>,
}

/// A variant against the base on the same items (see [`edgewise_ecld::eval::stats`]).
#[derive(Debug, Clone, Serialize)]
struct Comparison {
    variant: String,
    base: String,
    /// Multiple-choice accuracy, variant − base, with a 95% family-stratified paired
    /// bootstrap interval.
    mc_diff: Interval,
    /// Exact McNemar p-value of the multiple-choice outcomes.
    mc_mcnemar_p: f64,
    /// Variant accuracy / base accuracy.
    mc_retained: f64,
    /// (variant − chance) / (base − chance).
    mc_retained_above_chance: Option<f64>,
    /// Fact accuracy, variant − base.
    fact_acc_diff: Interval,
    /// Hallucination rate, variant − base.
    hallucination_diff: Interval,
    /// KL to the base and top-1 agreement on the prose passages.
    agreement: Option<Agreement>,
}

/// Bootstrap replicates and seed of the comparison intervals.
const BOOTSTRAP_REPS: usize = 2000;
const BOOTSTRAP_SEED: u64 = 13;
/// Confidence thresholds of the risk–coverage table.
const RISK_THRESHOLDS: [f32; 6] = [0.0, 0.3, 0.5, 0.6, 0.7, 0.9];

/// A measured variant with its per-class estimates.
#[derive(Debug, Clone, Serialize)]
struct VariantReport {
    #[serde(flatten)]
    measured: Measured,
    classes: Vec<ClassEstimate>,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    query: QueryShape,
    limit: Option<usize>,
    confidence_threshold: f32,
    max_answer_tokens: usize,
    max_prose_tokens: usize,
    /// The evaluation data folder's content digest (so merged runs used the same items).
    data_digest: String,
    device_classes: &'a [DeviceClass],
    variants: &'a [VariantReport],
    /// Every non-base variant against the base (empty without a `base*` variant).
    comparisons: &'a [Comparison],
    /// Per variant: risk–coverage of the factual questions over the confidence threshold.
    risk_coverage: BTreeMap<String, Vec<RiskPoint>>,
}

/// What `--merge` reads back from an earlier `eval.json` (per-class estimates are
/// recomputed from the measurements).
#[derive(Debug, Deserialize)]
struct PriorReport {
    limit: Option<usize>,
    confidence_threshold: f32,
    #[serde(default)]
    max_answer_tokens: Option<usize>,
    #[serde(default)]
    max_prose_tokens: Option<usize>,
    #[serde(default)]
    data_digest: Option<String>,
    variants: Vec<PriorVariant>,
}

#[derive(Debug, Deserialize)]
struct PriorVariant {
    #[serde(flatten)]
    measured: Measured,
}

/// SHA-256 (hex) of the three evaluation files in `dir`.
fn data_digest(dir: &Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in [
        edgewise_ecld::eval::data::FACTS_FILE,
        edgewise_ecld::eval::data::MC_FILE,
        edgewise_ecld::eval::data::PROSE_FILE,
    ] {
        let p = dir.join(f);
        h.update(std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads `--merge FILE` and checks it was measured like this run.
fn read_prior(path: &Path, args: &EvalArgs, digest: &str) -> anyhow::Result<Vec<Measured>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--merge {}", path.display()))?;
    let prior: PriorReport = serde_json::from_str(&text).with_context(|| {
        format!(
            "--merge {}: not an eval.json written by `edgewise eval`",
            path.display()
        )
    })?;
    let mismatch = |what: &str, was: String, now: String| {
        anyhow::anyhow!(
            "--merge {}: it was measured with {what} {was}, this run uses {now}; merged \
             results must be measured alike",
            path.display()
        )
    };
    let show = |l: Option<usize>| l.map_or_else(|| "none".to_owned(), |n| n.to_string());
    if prior.limit != args.limit {
        return Err(mismatch("--limit", show(prior.limit), show(args.limit)));
    }
    if (prior.confidence_threshold - args.confidence_threshold).abs() > 1e-6 {
        return Err(mismatch(
            "--confidence-threshold",
            prior.confidence_threshold.to_string(),
            args.confidence_threshold.to_string(),
        ));
    }
    for (flag, was, now) in [
        (
            "--max-answer-tokens",
            prior.max_answer_tokens,
            args.max_answer_tokens,
        ),
        (
            "--max-prose-tokens",
            prior.max_prose_tokens,
            args.max_prose_tokens,
        ),
    ] {
        if was.is_some_and(|w| w != now) {
            return Err(mismatch(flag, show(was), now.to_string()));
        }
    }
    if let Some(d) = &prior.data_digest
        && d != digest
    {
        return Err(mismatch(
            "evaluation data of digest",
            d.clone(),
            digest.to_owned(),
        ));
    }
    if prior.variants.is_empty() {
        bail!("--merge {}: it has no variants", path.display());
    }
    Ok(prior.variants.into_iter().map(|v| v.measured).collect())
}

fn with_classes(
    m: Measured,
    classes: &[DeviceClass],
    query: QueryShape,
) -> anyhow::Result<VariantReport> {
    let resident = m.peak_rss_bytes.unwrap_or(m.bytes) as f64;
    let host = HostSpeed {
        prefill_tok_s: m.prefill_tok_s,
        decode_tok_s: m.decode_tok_s,
    };
    let est = classes
        .iter()
        .map(|c| energy::estimate(c, &m.work, host, query, resident))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VariantReport {
        measured: m,
        classes: est,
    })
}

fn method_of(name: &str) -> &'static str {
    for m in ["base", "quant-only", "prune-only", "ecld"] {
        if name.starts_with(m) {
            return m;
        }
    }
    "variant"
}

fn variant_name(path: &Path) -> anyhow::Result<String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("--model {}: cannot name a variant after it", path.display()))
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    if let Some(out) = &args.worker_out {
        let [model] = args.models.as_slice() else {
            bail!("--worker-out takes exactly one --model");
        };
        let m = measure(args, model)?;
        write_atomic(out, &serde_json::to_vec(&m)?)?;
        return Ok(());
    }
    if args.max_answer_tokens == 0 {
        bail!("--max-answer-tokens must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.confidence_threshold) {
        bail!(
            "--confidence-threshold is {}, expected a number in [0, 1]",
            args.confidence_threshold
        );
    }
    if args.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let models = if !args.models.is_empty() {
        args.models.clone()
    } else if !args.merge.is_empty() {
        Vec::new()
    } else {
        vec![model_cache::default_model_path()?]
    };
    let mut names = Vec::new();
    for p in &models {
        if !p.is_file() {
            bail!("--model {}: no such file", p.display());
        }
        let n = variant_name(p)?;
        if names.contains(&n) {
            bail!("--model: two files are named {n:?}; variant names (file stems) must differ");
        }
        names.push(n);
    }
    // Fail on bad data before spending minutes on the first model.
    let data_dir = args.data.clone().unwrap_or_else(committed_data_dir);
    EvalData::load_dir(&data_dir)?;
    let digest = data_digest(&data_dir)?;
    let mut prior = Vec::new();
    for p in &args.merge {
        prior.extend(read_prior(p, args, &digest)?);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let classes = energy::default_classes();
    let query = QueryShape::default();
    let mut reports: Vec<VariantReport> = Vec::new();
    let mut measured = prior;
    for (i, model) in models.iter().enumerate() {
        tracing::info!("[{}/{}] {}", i + 1, models.len(), model.display());
        measured.push(run_worker(args, model, &data_dir)?);
    }
    for m in measured {
        let r = with_classes(m, &classes, query)?;
        match reports
            .iter_mut()
            .find(|o| o.measured.name == r.measured.name)
        {
            Some(slot) => *slot = r,
            None => reports.push(r),
        }
    }

    let comparisons = compare(args, &reports, &data_dir)?;
    let risk = reports
        .iter()
        .map(|r| {
            let replies: Vec<FactReply> = r.measured.fact_replies.iter().map(|(_, f)| *f).collect();
            (
                r.measured.name.clone(),
                risk_coverage(&replies, &RISK_THRESHOLDS),
            )
        })
        .collect();
    let report = Report {
        query,
        limit: args.limit,
        confidence_threshold: args.confidence_threshold,
        max_answer_tokens: args.max_answer_tokens,
        max_prose_tokens: args.max_prose_tokens,
        data_digest: digest,
        device_classes: &classes,
        variants: &reports,
        comparisons: &comparisons,
        risk_coverage: risk,
    };
    let json = serde_json::to_string_pretty(&report)?;
    let table = markdown(&report);
    let catalogue = to_catalogue(&reports, args.limit);
    catalogue.validate()?;
    write_atomic(&args.out.join("eval.json"), json.as_bytes())?;
    write_atomic(&args.out.join("eval.md"), table.as_bytes())?;
    write_atomic(
        &args.out.join("catalogue.json"),
        (catalogue.to_json_pretty() + "\n").as_bytes(),
    )?;
    let points: Vec<plots::TradeoffPoint> = reports
        .iter()
        .map(|r| plots::TradeoffPoint {
            name: r.measured.name.clone(),
            megabytes: r.measured.bytes as f64 / 1e6,
            accuracy: r.measured.mc_accuracy,
            hallucination: r.measured.hallucination_rate,
        })
        .collect();
    plots::tradeoff(&args.out.join("tradeoff.png"), &points)?;
    if args.json {
        println!("{json}");
    } else {
        print!("{table}");
        println!(
            "\nwrote eval.md, eval.json, tradeoff.png and catalogue.json to {}",
            args.out.display()
        );
    }
    Ok(())
}

/// Every variant against the first `base*` one: paired intervals, McNemar, retention and
/// (unless --no-agreement) KL / top-1 agreement on the prose passages.
fn compare(
    args: &EvalArgs,
    reports: &[VariantReport],
    data_dir: &Path,
) -> anyhow::Result<Vec<Comparison>> {
    let Some(base) = reports.iter().find(|r| r.measured.method == "base") else {
        return Ok(Vec::new());
    };
    let b = &base.measured;
    let prose_ids = if args.no_agreement {
        None
    } else {
        let data = EvalData::load_dir(data_dir)?;
        let (base_model, gguf) =
            edgewise_llm::Model::from_path(Path::new(&b.path), &Device::Cpu)
                .with_context(|| format!("loading the base {} for agreement", b.path))?;
        let tok = edgewise_llm::Tokenizer::from_gguf(&gguf)?;
        let ids = data
            .prose
            .subset(args.limit)
            .iter()
            .map(|it| {
                let mut t = tok.encode(&it.text, false)?;
                t.truncate(args.max_prose_tokens);
                Ok(t)
            })
            .collect::<anyhow::Result<Vec<Vec<u32>>>>()?;
        Some((base_model, ids))
    };
    let mut out = Vec::new();
    for r in reports.iter().filter(|r| r.measured.name != b.name) {
        let v = &r.measured;
        if v.mc_outcomes.len() != b.mc_outcomes.len()
            || v.fact_replies.len() != b.fact_replies.len()
            || v.mc_outcomes.is_empty()
            || v.fact_replies.is_empty()
        {
            eprintln!(
                "compare: {} was scored on other items than {} (or by an older edgewise); no comparison",
                v.name, b.name
            );
            continue;
        }
        let as_f = |ok: bool| if ok { 1.0 } else { 0.0 };
        let mc: Vec<(String, f64, f64)> = b
            .mc_outcomes
            .iter()
            .zip(&v.mc_outcomes)
            .map(|((f, x), (_, y))| (f.clone(), as_f(*x), as_f(*y)))
            .collect();
        let (mut base_only, mut var_only) = (0u64, 0u64);
        for ((_, x), (_, y)) in b.mc_outcomes.iter().zip(&v.mc_outcomes) {
            match (x, y) {
                (true, false) => base_only += 1,
                (false, true) => var_only += 1,
                _ => {}
            }
        }
        let facts = |pick: &dyn Fn(&FactReply) -> bool| -> Vec<(String, f64, f64)> {
            b.fact_replies
                .iter()
                .zip(&v.fact_replies)
                .map(|((f, x), (_, y))| (f.clone(), as_f(pick(x)), as_f(pick(y))))
                .collect()
        };
        let thr = args.confidence_threshold;
        let hallucinated = move |x: &FactReply| !x.correct && !x.refused && x.confidence >= thr;
        let agreement = match &prose_ids {
            Some((base_model, ids)) => {
                let (vm, _) = edgewise_llm::Model::from_path(Path::new(&v.path), &Device::Cpu)
                    .with_context(|| format!("loading {} for agreement", v.path))?;
                Some(token_agreement(base_model, &vm, ids)?)
            }
            None => None,
        };
        out.push(Comparison {
            variant: v.name.clone(),
            base: b.name.clone(),
            mc_diff: paired_bootstrap(&mc, BOOTSTRAP_REPS, 0.95, BOOTSTRAP_SEED)?,
            mc_mcnemar_p: mcnemar_exact(base_only, var_only),
            mc_retained: v.mc_accuracy / b.mc_accuracy.max(f64::MIN_POSITIVE),
            mc_retained_above_chance: retained_above_chance(
                v.mc_accuracy,
                b.mc_accuracy,
                b.mc_chance,
            ),
            fact_acc_diff: paired_bootstrap(
                &facts(&|x| x.correct),
                BOOTSTRAP_REPS,
                0.95,
                BOOTSTRAP_SEED,
            )?,
            hallucination_diff: paired_bootstrap(
                &facts(&hallucinated),
                BOOTSTRAP_REPS,
                0.95,
                BOOTSTRAP_SEED,
            )?,
            agreement,
        });
    }
    Ok(out)
}

fn run_worker(args: &EvalArgs, model: &Path, data_dir: &Path) -> anyhow::Result<Measured> {
    let tmp = args
        .out
        .join(format!(".worker-{}.json", std::process::id()));
    let exe = std::env::current_exe().context("locating the edgewise binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("eval")
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(&args.out)
        .arg("--data")
        .arg(data_dir)
        .arg("--max-answer-tokens")
        .arg(args.max_answer_tokens.to_string())
        .arg("--confidence-threshold")
        .arg(args.confidence_threshold.to_string())
        .arg("--max-prose-tokens")
        .arg(args.max_prose_tokens.to_string())
        .arg("--worker-out")
        .arg(&tmp);
    if let Some(l) = args.limit {
        cmd.arg("--limit").arg(l.to_string());
    }
    let status = cmd
        .stdout(std::process::Stdio::null())
        .status()
        .context("starting the evaluation worker")?;
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!("evaluating {} failed ({status})", model.display());
    }
    let text =
        std::fs::read_to_string(&tmp).with_context(|| format!("reading {}", tmp.display()))?;
    let _ = std::fs::remove_file(&tmp);
    serde_json::from_str(&text).context("parsing the worker's result")
}

/// Peak resident set size of this process (`VmHWM`), where the OS reports it.
fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Total package energy from RAPL counters, joules, where the host exposes them.
fn rapl_joules() -> Option<f64> {
    let dir = Path::new("/sys/class/powercap");
    let mut total = 0.0;
    let mut any = false;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // Top-level packages only (intel-rapl:0, not intel-rapl:0:0).
        if name.starts_with("intel-rapl:") && name.matches(':').count() == 1 {
            let uj: f64 = std::fs::read_to_string(e.path().join("energy_uj"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            total += uj * 1e-6;
            any = true;
        }
    }
    any.then_some(total)
}

#[allow(clippy::cast_precision_loss)]
fn measure(args: &EvalArgs, model_path: &Path) -> anyhow::Result<Measured> {
    let name = variant_name(model_path)?;
    let data_dir = args.data.clone().unwrap_or_else(committed_data_dir);
    let data = EvalData::load_dir(&data_dir)?;
    let bytes = std::fs::metadata(model_path)
        .with_context(|| format!("reading {}", model_path.display()))?
        .len();
    let t0 = Instant::now();
    let engine = Engine::from_path(model_path, &Device::Cpu)
        .with_context(|| format!("loading {}", model_path.display()))?;
    let load_s = t0.elapsed().as_secs_f64();
    let cfg = engine.model.config().clone();
    let work = ModelWork::new(&cfg, bytes as f64);

    let (prefill_tok_s, decode_tok_s) = speed(&engine, &data)?;

    let mc = data.mc.subset(args.limit);
    let facts = data.facts.subset(args.limit);
    let prose = data.prose.subset(args.limit);
    let bar = crate::logging::bar(
        (mc.len() + facts.len() + prose.len()) as u64,
        &format!("{name:>16} {{bar:30}} {{pos}}/{{len}} items  eta {{eta}}  {{msg}}"),
    );
    let rapl0 = rapl_joules();
    let tq = Instant::now();

    bar.set_message("multiple choice");
    let mut mc_families: BTreeMap<String, McFamily> = BTreeMap::new();
    let mut mc_correct = 0;
    let mut mc_outcomes = Vec::with_capacity(mc.len());
    let mc_chance = mc
        .iter()
        .map(|it| 1.0 / it.options.len().max(1) as f64)
        .sum::<f64>()
        / mc.len().max(1) as f64;
    for it in &mc {
        let scores =
            metrics::score_options(&engine.model, &engine.tokenizer, &it.question, &it.options)?;
        let ok = metrics::pick_option(&scores)? == it.answer;
        mc_outcomes.push((it.family.clone(), ok));
        let f = mc_families.entry(it.family.clone()).or_default();
        f.total += 1;
        if ok {
            f.correct += 1;
            mc_correct += 1;
        }
        bar.inc(1);
    }

    bar.set_message("factual questions");
    let mut tally = FactTally::default();
    let mut fact_families: BTreeMap<String, FactTally> = BTreeMap::new();
    let mut fact_samples = Vec::new();
    let mut fact_replies = Vec::with_capacity(facts.len());
    for it in &facts {
        let a = metrics::answer_fact(&engine, &it.question, args.max_answer_tokens)?;
        let o = metrics::classify(
            &a.reply,
            &it.answers,
            a.confidence,
            args.confidence_threshold,
        );
        tally.add(o);
        fact_replies.push((
            it.family.clone(),
            FactReply {
                confidence: a.confidence,
                correct: o == FactOutcome::Correct,
                refused: metrics::is_abstention(&a.reply) || a.reply.trim().is_empty(),
            },
        ));
        fact_families.entry(it.family.clone()).or_default().add(o);
        if fact_samples.len() < 6 {
            fact_samples.push(FactSample {
                question: it.question.clone(),
                gold: it.answers.join(" | "),
                reply: a.reply,
                confidence: a.confidence,
                outcome: o,
            });
        }
        bar.inc(1);
    }

    bar.set_message("perplexity");
    let (mut nll, mut ntok) = (0.0, 0);
    for it in &prose {
        let toks = engine.tokenizer.encode(&it.text, false)?;
        let (n, k) = metrics::text_nll(&engine.model, &toks, args.max_prose_tokens)?;
        nll += n;
        ntok += k;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let quality_s = tq.elapsed().as_secs_f64();
    let rapl = rapl0.zip(rapl_joules()).map(|(a, b)| b - a);

    Ok(Measured {
        method: method_of(&name).to_owned(),
        name,
        path: model_path.display().to_string(),
        bytes,
        params: cfg.n_params() as u64,
        work,
        load_s,
        peak_rss_bytes: peak_rss_bytes(),
        prefill_tok_s,
        decode_tok_s,
        mc_items: mc.len(),
        mc_correct,
        mc_accuracy: mc_correct as f64 / mc.len().max(1) as f64,
        mc_families,
        hallucination_rate: tally.hallucination_rate(),
        facts: tally,
        fact_families,
        fact_samples,
        prose_passages: prose.len(),
        prose_tokens: ntok,
        perplexity: metrics::perplexity(nll, ntok),
        quality_s,
        rapl_joules: rapl,
        mc_outcomes,
        mc_chance,
        fact_replies,
    })
}

/// Prefill and decode tokens/s on a prompt of [`SPEED_PROMPT_TOKENS`] prose tokens, best of
/// [`SPEED_REPEATS`] after a short warm-up.
#[allow(clippy::cast_precision_loss)]
fn speed(engine: &Engine, data: &EvalData) -> anyhow::Result<(f64, f64)> {
    let mut prompt = Vec::new();
    for it in data
        .prose
        .items
        .iter()
        .cycle()
        .take(data.prose.items.len() * 4)
    {
        prompt.extend(engine.tokenizer.encode(&it.text, false)?);
        if prompt.len() >= SPEED_PROMPT_TOKENS {
            break;
        }
    }
    prompt.truncate(SPEED_PROMPT_TOKENS);
    if prompt.len() < SPEED_PROMPT_TOKENS {
        bail!("the prose set is too short for a {SPEED_PROMPT_TOKENS}-token speed prompt");
    }
    let model = &engine.model;
    model.forward(&prompt[..16], &mut model.new_cache())?;
    let (mut best_prefill, mut best_decode) = (0.0f64, 0.0f64);
    for _ in 0..SPEED_REPEATS {
        let mut cache = model.new_cache();
        let t = Instant::now();
        let logits = model.forward(&prompt, &mut cache)?;
        let pf = prompt.len() as f64 / t.elapsed().as_secs_f64();
        let mut next = edgewise_llm::model::argmax(&logits)?;
        let t = Instant::now();
        for _ in 0..SPEED_DECODE_TOKENS {
            let l = model.forward(&[next], &mut cache)?;
            next = edgewise_llm::model::argmax(&l)?;
        }
        let dc = SPEED_DECODE_TOKENS as f64 / t.elapsed().as_secs_f64();
        best_prefill = best_prefill.max(pf);
        best_decode = best_decode.max(dc);
    }
    Ok((best_prefill, best_decode))
}

fn to_catalogue(reports: &[VariantReport], limit: Option<usize>) -> Catalogue {
    let variants = reports
        .iter()
        .map(|r| {
            let m = &r.measured;
            let per_class = r
                .classes
                .iter()
                .filter(|c| c.fits)
                .map(|c| {
                    (
                        c.class.clone(),
                        ClassProfile {
                            prefill_tok_s: c.prefill_tok_s,
                            decode_tok_s: c.decode_tok_s,
                            joules_per_token: c.joules_per_token,
                        },
                    )
                })
                .collect();
            VariantProfile {
                name: m.name.clone(),
                method: m.method.clone(),
                bytes: m.bytes as f64,
                params: m.params as f64,
                accuracy: m.mc_accuracy,
                hallucination_rate: m.hallucination_rate,
                per_class,
                source: format!(
                    "measured: edgewise eval of {} ({} MC items, {} factual questions, {} prose \
                     tokens; {:.1} prefill / {:.1} decode tok/s on the measuring host); \
                     per-class speeds and J/token from the energy model in \
                     crates/llm/src/energy.rs",
                    Path::new(&m.path)
                        .file_name()
                        .map_or_else(|| m.path.clone(), |f| f.to_string_lossy().into_owned()),
                    m.mc_items,
                    m.facts.asked(),
                    m.prose_tokens,
                    m.prefill_tok_s,
                    m.decode_tok_s
                ),
            }
        })
        .collect();
    Catalogue {
        format: CATALOGUE_FORMAT.to_owned(),
        version: CATALOGUE_VERSION,
        description: format!(
            "Measured by `edgewise eval`{}: accuracy = multiple-choice accuracy on held-out task \
             families, hallucination_rate by the rule in crates/llm/src/eval/metrics.rs, \
             per-class figures from the energy model (a class is listed only where the \
             variant's peak memory fits).",
            limit.map_or_else(String::new, |l| format!(" (--limit {l})"))
        ),
        variants,
    }
}

#[allow(clippy::cast_precision_loss)]
fn markdown(r: &Report<'_>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| variant | method | MB | params (M) | peak RSS MB | load s | prefill tok/s | decode tok/s | MC acc | halluc. | abstain | fact acc | PPL |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for v in r.variants {
        let m = &v.measured;
        let asked = m.facts.asked().max(1) as f64;
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {} | {:.2} | {:.0} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} |",
            m.name,
            m.method,
            m.bytes as f64 / 1e6,
            m.params as f64 / 1e6,
            m.peak_rss_bytes
                .map_or_else(|| "n/a".into(), |b| format!("{:.0}", b as f64 / 1e6)),
            m.load_s,
            m.prefill_tok_s,
            m.decode_tok_s,
            m.mc_accuracy,
            m.hallucination_rate,
            m.facts.abstained as f64 / asked,
            m.facts.correct as f64 / asked,
            m.perplexity
        );
    }
    family_tables(&mut s, r.variants);
    let _ = writeln!(
        s,
        "\nEnergy per query ({:.0} prompt + {:.0} generated tokens), J, and decode tok/s per device class (— = does not fit):\n",
        r.query.input_tokens, r.query.output_tokens
    );
    let _ = write!(s, "| variant |");
    for c in r.device_classes {
        let _ = write!(s, " {} J/query | {} tok/s |", c.name, c.name);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|---|{}", "---:|---:|".repeat(r.device_classes.len()));
    for v in r.variants {
        let _ = write!(s, "| {} |", v.measured.name);
        for c in &v.classes {
            if c.fits {
                let _ = write!(s, " {:.2} | {:.1} |", c.joules_per_query, c.decode_tok_s);
            } else {
                let _ = write!(s, " — | — |");
            }
        }
        let _ = writeln!(s);
    }
    if !r.comparisons.is_empty() {
        let _ = writeln!(
            s,
            "\nAgainst the base ({}), 95% family-stratified paired bootstrap intervals:\n",
            r.comparisons[0].base
        );
        let _ = writeln!(
            s,
            "| variant | Δ MC acc [95% CI] | McNemar p | MC retained | retained above chance | Δ fact acc [95% CI] | Δ halluc. [95% CI] | KL to base (nats/token) | top-1 agreement |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---|---|---:|---:|");
        let iv = |i: &Interval| format!("{:+.3} [{:+.3}, {:+.3}]", i.estimate, i.lo, i.hi);
        for c in r.comparisons {
            let _ = writeln!(
                s,
                "| {} | {} | {:.3} | {:.3} | {} | {} | {} | {} | {} |",
                c.variant,
                iv(&c.mc_diff),
                c.mc_mcnemar_p,
                c.mc_retained,
                c.mc_retained_above_chance
                    .map_or_else(|| "n/a".into(), |x| format!("{x:.3}")),
                iv(&c.fact_acc_diff),
                iv(&c.hallucination_diff),
                c.agreement
                    .map_or_else(|| "—".into(), |a| format!("{:.4}", a.kl)),
                c.agreement
                    .map_or_else(|| "—".into(), |a| format!("{:.3}", a.top1)),
            );
        }
    }
    if r.risk_coverage.values().any(|v| !v.is_empty()) {
        let _ = writeln!(
            s,
            "\nRisk–coverage of the factual questions (coverage / hallucination rate at each confidence threshold):\n"
        );
        let _ = write!(s, "| variant |");
        for t in RISK_THRESHOLDS {
            let _ = write!(s, " t={t} |");
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "|---|{}", "---:|".repeat(RISK_THRESHOLDS.len()));
        for (name, pts) in &r.risk_coverage {
            let _ = write!(s, "| {name} |");
            for p in pts {
                let _ = write!(s, " {:.2} / {:.3} |", p.coverage, p.hallucination_rate);
            }
            let _ = writeln!(s);
        }
    }
    let _ = writeln!(
        s,
        "\nItems: {} multiple-choice, {} factual, {} prose passages; confidence threshold {}.",
        r.variants.first().map_or(0, |v| v.measured.mc_items),
        r.variants.first().map_or(0, |v| v.measured.facts.asked()),
        r.variants.first().map_or(0, |v| v.measured.prose_passages),
        r.confidence_threshold
    );
    s
}

/// Accuracy per task family and variant (multiple choice, then factual questions as
/// accuracy / hallucination rate), so a change confined to one family is visible.
#[allow(clippy::cast_precision_loss)]
fn family_tables(s: &mut String, variants: &[VariantReport]) {
    use std::fmt::Write as _;
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let head = |s: &mut String, what: &str| {
        let _ = writeln!(s, "\n{what} per task family:\n");
        let _ = write!(s, "| family | items |");
        for v in variants {
            let _ = write!(s, " {} |", v.measured.name);
        }
        let _ = writeln!(s, "\n|---|---:|{}", "---:|".repeat(variants.len()));
    };
    let mc: std::collections::BTreeSet<&String> = variants
        .iter()
        .flat_map(|v| v.measured.mc_families.keys())
        .collect();
    if !mc.is_empty() {
        head(s, "Multiple-choice accuracy");
        for f in mc {
            let n = variants
                .iter()
                .find_map(|v| v.measured.mc_families.get(f))
                .map_or(0, |c| c.total);
            let _ = write!(s, "| {f} | {n} |");
            for v in variants {
                match v.measured.mc_families.get(f) {
                    Some(c) => {
                        let _ = write!(s, " {:.3} |", ratio(c.correct, c.total));
                    }
                    None => {
                        let _ = write!(s, " — |");
                    }
                }
            }
            let _ = writeln!(s);
        }
    }
    let facts: std::collections::BTreeSet<&String> = variants
        .iter()
        .flat_map(|v| v.measured.fact_families.keys())
        .collect();
    if !facts.is_empty() {
        head(s, "Factual questions, accuracy / hallucination rate,");
        for f in facts {
            let n = variants
                .iter()
                .find_map(|v| v.measured.fact_families.get(f))
                .map_or(0, FactTally::asked);
            let _ = write!(s, "| {f} | {n} |");
            for v in variants {
                match v.measured.fact_families.get(f) {
                    Some(t) => {
                        let _ = write!(s, " {:.3} / {:.3} |", t.accuracy(), t.hallucination_rate());
                    }
                    None => {
                        let _ = write!(s, " — |");
                    }
                }
            }
            let _ = writeln!(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_classes_are_the_simulators_classes() {
        let sim = mec::SimConfig::default();
        let ours = energy::default_classes();
        assert_eq!(sim.classes.len(), ours.len());
        for (s, o) in sim.classes.iter().zip(&ours) {
            assert_eq!(s.name, o.name);
            assert!((s.memory_bytes - o.memory_bytes).abs() < 1.0, "{}", s.name);
        }
    }

    #[test]
    fn methods_from_names() {
        assert_eq!(method_of("quant-only-q4"), "quant-only");
        assert_eq!(method_of("ecld-q4"), "ecld");
        assert_eq!(method_of("SmolLM2-135M-Instruct.Q4_1"), "variant");
    }
}
