//! `edgewise simulate`: run the MEC simulator with a baseline policy (or all of them), or
//! with a trained `edgewise-policy` file run greedily (`--policy FILE`, `--compare --with FILE`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mec::{Catalogue, EpisodeMetrics, Policy, PolicyKind, SimConfig, Simulator};
use serde::Serialize;

use crate::learned::LearnedPolicy;

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Scheduling policy: always-local, always-offload, random, greedy or oracle, the
    /// clairvoyant reference planner (slow; not deployable: it reads the real future), or
    /// the path of a trained policy file (`edgewise train --env mec` writes one), run greedily.
    #[arg(long, default_value = "greedy")]
    policy: String,
    /// Run every baseline on the same seed and print them side by side.
    #[arg(long, conflicts_with = "policy")]
    compare: bool,
    /// With --compare: also run this trained policy file (repeatable).
    #[arg(long = "with", value_name = "FILE", requires = "compare")]
    with: Vec<PathBuf>,
    /// User population N (overrides the config).
    #[arg(long)]
    devices: Option<usize>,
    /// Episode length in slots (overrides the config).
    #[arg(long)]
    slots: Option<usize>,
    /// Random seed of the scenario (arrivals, mobility, fading).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Scenario file (TOML, or JSON if it ends in .json); defaults to the shipped scenario.
    #[arg(long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// Named scenario: default, bursty, edge-load, tight-energy, hard-queries or foresight
    /// (`--devices`/`--slots` still override it).
    #[arg(long)]
    preset: Option<String>,
    /// Variant catalogue (JSON); defaults to the committed catalogue.
    #[arg(long)]
    catalogue: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Trained policies sample their actions (seeded from --seed) instead of taking the
    /// most probable one.
    #[arg(long)]
    sample: bool,
}

#[derive(Serialize)]
struct Row {
    policy: String,
    devices: usize,
    seed: u64,
    /// Carries `slots` (the episode run), so the row does not repeat it.
    #[serde(flatten)]
    metrics: EpisodeMetrics,
    trajectory_digest: String,
}

pub fn load_scenario(
    config: Option<&PathBuf>,
    preset: Option<&str>,
    catalogue: Option<&PathBuf>,
    devices: Option<usize>,
    slots: Option<usize>,
) -> anyhow::Result<(SimConfig, Catalogue)> {
    let mut cfg = match (config, preset) {
        (Some(_), Some(_)) => bail!("give either --config or --preset, not both"),
        (None, Some(name)) => {
            mec::preset(name).map_err(|e| anyhow::anyhow!("invalid --preset: {e}"))?
        }
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            let ext = path.extension().and_then(|e| e.to_str());
            SimConfig::from_str_with_extension(&text, ext)
                .with_context(|| format!("in config {}", path.display()))?
        }
        (None, None) => SimConfig::default(),
    };
    if let Some(n) = devices {
        if n == 0 {
            bail!("invalid --devices 0: expected a user population of at least 1 device");
        }
        cfg.devices = n;
    }
    if let Some(t) = slots {
        if t == 0 {
            bail!("invalid --slots 0: expected an episode of at least 1 slot");
        }
        cfg.slots = t;
    }
    cfg.validate().context("invalid scenario")?;
    let cat = match catalogue {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading catalogue {}", path.display()))?;
            Catalogue::from_json_str(&text)
                .with_context(|| format!("in catalogue {}", path.display()))?
        }
        None => Catalogue::default_catalogue(),
    };
    Ok((cfg, cat))
}

/// What `--policy` names: a baseline, or else an existing policy file.
enum Choice {
    Baseline(PolicyKind),
    File(PathBuf),
}

impl Choice {
    fn parse(s: &str) -> anyhow::Result<Self> {
        match s.parse::<PolicyKind>() {
            Ok(k) => Ok(Self::Baseline(k)),
            Err(_) if Path::new(s).is_file() => Ok(Self::File(PathBuf::from(s))),
            Err(e) => bail!("invalid --policy: {e}, or the path of a trained policy file"),
        }
    }

    fn build(&self, seed: u64, sample: bool) -> anyhow::Result<Box<dyn Policy>> {
        Ok(match self {
            Self::Baseline(k) => mec::scenario_baseline(*k, seed),
            Self::File(path) if sample => Box::new(LearnedPolicy::load(path)?.sampling(seed)),
            Self::File(path) => Box::new(LearnedPolicy::load(path)?),
        })
    }
}

fn run_one(
    cfg: &SimConfig,
    cat: &Catalogue,
    choice: &Choice,
    seed: u64,
    sample: bool,
) -> anyhow::Result<Row> {
    let mut policy = choice.build(seed, sample)?;
    let mut sim = Simulator::new(cfg.clone(), cat.clone(), seed)?;
    let digest = mec::trajectory_digest(&mut sim, policy.as_mut());
    Ok(Row {
        policy: policy.name().to_owned(),
        devices: cfg.devices,
        seed,
        metrics: sim.metrics(),
        trajectory_digest: format!("{digest:016x}"),
    })
}

pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let (cfg, cat) = load_scenario(
        args.config.as_ref(),
        args.preset.as_deref(),
        args.catalogue.as_ref(),
        args.devices,
        args.slots,
    )?;
    let choices: Vec<Choice> = if args.compare {
        PolicyKind::ALL
            .into_iter()
            .map(Choice::Baseline)
            .chain(args.with.iter().cloned().map(Choice::File))
            .collect()
    } else {
        vec![Choice::parse(&args.policy)?]
    };
    // Load every policy file before simulating anything: bad input fails fast.
    for c in &choices {
        c.build(args.seed, args.sample)?;
    }
    let rows = choices
        .iter()
        .map(|c| run_one(&cfg, &cat, c, args.seed, args.sample))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.json {
        let text = if args.compare {
            serde_json::to_string_pretty(&serde_json::json!({ "policies": rows }))?
        } else {
            serde_json::to_string_pretty(&rows[0])?
        };
        println!("{text}");
    } else {
        print_table(&cfg, args.seed, &rows);
    }
    Ok(())
}

fn print_table(cfg: &SimConfig, seed: u64, rows: &[Row]) {
    println!(
        "MEC scenario: {} devices, {} slots of {} s, seed {seed}; constraints: accuracy ≥ {:.3}, hallucination ≤ {:.3}",
        cfg.devices, cfg.slots, cfg.slot_s, cfg.qos.min_accuracy, cfg.qos.max_hallucination
    );
    println!(
        "{:<15} {:>9} {:>9} {:>8} {:>13} {:>8} {:>9} {:>9} {:>8} {:>8}",
        "policy",
        "mean lat",
        "p95 lat",
        "dropped",
        "energy/budget",
        "E viol",
        "accuracy",
        "halluc",
        "offload",
        "reward"
    );
    for r in rows {
        let m = &r.metrics;
        let mark = |ok: bool| if ok { " " } else { "!" };
        println!(
            "{:<15} {:>8.2}s {:>8.2}s {:>8} {:>6.0}/{:<5.0}J {:>7.1}% {:>8.3}{} {:>8.3}{} {:>7.1}% {:>8.3}",
            r.policy,
            m.mean_latency_s,
            m.p95_latency_s,
            m.dropped,
            m.energy_per_window_j,
            m.energy_budget_j,
            100.0 * m.energy_violation_rate,
            m.accuracy,
            mark(m.accuracy_ok),
            m.hallucination_rate,
            mark(m.hallucination_ok),
            100.0 * m.offload_fraction,
            m.reward,
        );
    }
    println!(
        "(! = QoS constraint violated over the episode; E viol = share of device budget windows over budget)"
    );
}
