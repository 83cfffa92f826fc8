//! What an `edgewise experiment` runs, as independent cells.
//!
//! The plan comes from a preset plus overrides ([`PlanArgs`]). It splits into cells, one
//! per training run (algorithm × training seed × training population), each trained and
//! evaluated in its own process and stamped with [`plan_hash`], a digest of everything
//! that determines a cell's result. The plan can be written back as command-line
//! arguments ([`plan_argv`]), which is how child processes, cluster tasks and error
//! messages name the same plan.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use edgewise_rl::experiment::{ExperimentPlan, Preset};
use edgewise_rl::{PpoConfig, WmConfig};
use mec::{Catalogue, SimConfig};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The learned algorithms every plan trains, in cell order.
pub const ALGOS: [&str; 2] = ["ppo", "wm-ppo"];

/// First held-out evaluation seed of `--eval-seeds N` (seeds 10000, 10001, …).
const EVAL_SEED_BASE: u64 = 10_000;

/// The arguments that choose the plan: a preset and optional overrides.
#[derive(clap::Args, Debug, Clone)]
pub struct PlanArgs {
    /// Experiment size: quick (minutes) or full (hours).
    #[arg(long, value_parser = parse_preset)]
    pub preset: Preset,
    /// Override: number of training seeds (1..=N).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Override: real environment steps per training run.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Override: populations to train on (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub train_populations: Option<Vec<usize>>,
    /// Override: populations to evaluate on (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub populations: Option<Vec<usize>>,
    /// Override: number of held-out evaluation seeds.
    #[arg(long)]
    pub eval_seeds: Option<u64>,
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    s.parse::<Preset>().map_err(|e| e.to_string())
}

impl PlanArgs {
    /// The preset's plan with the overrides applied, validated.
    ///
    /// # Errors
    /// When the resulting plan is invalid (naming the field).
    pub fn plan(&self) -> anyhow::Result<ExperimentPlan> {
        let mut plan = self.preset.plan();
        if let Some(n) = self.seeds {
            plan.seeds = (1..=n).collect();
        }
        if let Some(s) = self.steps {
            plan.env_steps = s;
        }
        if let Some(p) = &self.train_populations {
            plan.train_populations.clone_from(p);
        }
        if let Some(p) = &self.populations {
            plan.eval_populations.clone_from(p);
        }
        if let Some(n) = self.eval_seeds {
            plan.eval_seeds = (0..n).map(|i| EVAL_SEED_BASE + i).collect();
        }
        plan.validate().context("invalid experiment arguments")?;
        Ok(plan)
    }
}

/// The `edgewise experiment` arguments that rebuild `plan`: its preset, and an override
/// for each field that differs from the preset's. Plans only ever come from a preset and
/// these overrides, so the arguments always rebuild the same plan.
#[must_use]
pub fn plan_argv(plan: &ExperimentPlan) -> Vec<String> {
    let preset = plan.preset.plan();
    let join = |v: &[usize]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut argv = vec!["--preset".to_owned(), plan.preset.to_string()];
    if plan.seeds != preset.seeds {
        argv.extend(["--seeds".to_owned(), plan.seeds.len().to_string()]);
    }
    if plan.env_steps != preset.env_steps {
        argv.extend(["--steps".to_owned(), plan.env_steps.to_string()]);
    }
    if plan.train_populations != preset.train_populations {
        argv.extend([
            "--train-populations".to_owned(),
            join(&plan.train_populations),
        ]);
    }
    if plan.eval_populations != preset.eval_populations {
        argv.extend(["--populations".to_owned(), join(&plan.eval_populations)]);
    }
    if plan.eval_seeds != preset.eval_seeds {
        argv.extend(["--eval-seeds".to_owned(), plan.eval_seeds.len().to_string()]);
    }
    argv
}

/// The shell form of `edgewise experiment <plan> EXTRA...`, for messages.
#[must_use]
pub fn command_line(plan: &ExperimentPlan, extra: &[&str]) -> String {
    let mut words = vec!["edgewise".to_owned(), "experiment".to_owned()];
    words.extend(plan_argv(plan));
    words.extend(extra.iter().map(|s| (*s).to_owned()));
    words.join(" ")
}

/// One training run of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Position in [`cells`] (what `--shard I/N` selects by).
    pub index: usize,
    /// `ALGO-nPOP-sSEED`: names the cell's directory and its policy file.
    pub id: String,
    pub algo: String,
    pub seed: u64,
    pub train_population: usize,
}

/// Every training run of `plan`, in a fixed order: training population, then seed, then
/// algorithm.
#[must_use]
pub fn cells(plan: &ExperimentPlan) -> Vec<Cell> {
    let mut out = Vec::new();
    for &pop in &plan.train_populations {
        for &seed in &plan.seeds {
            for algo in ALGOS {
                out.push(Cell {
                    index: out.len(),
                    id: format!("{algo}-n{pop}-s{seed}"),
                    algo: algo.to_owned(),
                    seed,
                    train_population: pop,
                });
            }
        }
    }
    out
}

/// The cell named `id`.
///
/// # Errors
/// When the plan has no such cell (the message lists the plan's cells).
pub fn find_cell(plan: &ExperimentPlan, id: &str) -> anyhow::Result<Cell> {
    let all = cells(plan);
    if let Some(c) = all.iter().find(|c| c.id == id) {
        return Ok(c.clone());
    }
    let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
    bail!(
        "this plan has no cell {id:?}: expected one of {} (list them with {})",
        ids.join(", "),
        command_line(plan, &["--list-cells"])
    )
}

/// `--shard I/N`: this process runs cells I, I+N, I+2N, …
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid shard {s:?}: expected I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl Shard {
    /// The cells of `all` this shard runs.
    #[must_use]
    pub fn select(self, all: &[Cell]) -> Vec<Cell> {
        all.iter()
            .filter(|c| c.index % self.count == self.index)
            .cloned()
            .collect()
    }
}

/// The MEC scenario of a population: the default scenario with `devices` devices.
///
/// # Errors
/// When the scenario does not validate.
pub fn scenario(devices: usize) -> anyhow::Result<SimConfig> {
    let cfg = SimConfig {
        devices,
        ..SimConfig::default()
    };
    cfg.validate().context("MEC scenario")?;
    Ok(cfg)
}

/// Every population of the plan (training and evaluation), sorted, with its scenario.
///
/// # Errors
/// When a scenario does not validate.
pub fn scenarios(plan: &ExperimentPlan) -> anyhow::Result<BTreeMap<usize, SimConfig>> {
    let mut pops = plan.eval_populations.clone();
    pops.extend(&plan.train_populations);
    pops.into_iter()
        .map(|n| scenario(n).map(|c| (n, c)))
        .collect()
}

/// The learner's configuration for a plan's training runs.
#[must_use]
pub fn ppo_config(plan: &ExperimentPlan) -> PpoConfig {
    PpoConfig {
        total_env_steps: plan.env_steps,
        ..PpoConfig::default()
    }
}

/// Everything that determines a cell's result, hashed.
#[derive(Serialize)]
struct HashInput<'a> {
    format: &'static str,
    version: u32,
    plan: &'a ExperimentPlan,
    algos: [&'static str; 2],
    ppo: PpoConfig,
    wm: WmConfig,
    scenarios: BTreeMap<usize, SimConfig>,
    catalogue: Catalogue,
}

/// Hex SHA-256 of the plan together with the learner, world-model and scenario
/// configurations and the catalogue it runs on: two cells with the same hash were
/// trained and evaluated alike.
///
/// # Errors
/// When a scenario does not validate.
pub fn plan_hash(plan: &ExperimentPlan) -> anyhow::Result<String> {
    let input = HashInput {
        format: "edgewise-experiment-plan",
        version: 1,
        plan,
        algos: ALGOS,
        ppo: ppo_config(plan),
        wm: WmConfig::default(),
        scenarios: scenarios(plan)?,
        catalogue: Catalogue::default_catalogue(),
    };
    let json = serde_json::to_vec(&input).context("serialising the plan")?;
    let digest = Sha256::digest(&json);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(preset: Preset) -> PlanArgs {
        PlanArgs {
            preset,
            seeds: None,
            steps: None,
            train_populations: None,
            populations: None,
            eval_seeds: None,
        }
    }

    #[test]
    fn argv_rebuilds_the_plan() {
        let mut a = args(Preset::Quick);
        a.seeds = Some(2);
        a.steps = Some(1024);
        a.train_populations = Some(vec![10, 20]);
        a.eval_seeds = Some(3);
        let plan = a.plan().unwrap();
        let argv = plan_argv(&plan);
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            plan: PlanArgs,
        }
        let parsed = <P as clap::Parser>::try_parse_from(
            std::iter::once("x".to_owned()).chain(argv.iter().cloned()),
        )
        .unwrap();
        assert_eq!(parsed.plan.plan().unwrap(), plan);
        assert!(!argv.contains(&"--populations".to_owned()), "{argv:?}");
        assert_eq!(
            plan_argv(&Preset::Full.plan()),
            ["--preset", "full"],
            "an unchanged preset needs no override"
        );
    }

    #[test]
    fn cells_and_shards_partition_the_plan() {
        let mut a = args(Preset::Quick);
        a.seeds = Some(3);
        a.train_populations = Some(vec![10, 50]);
        let plan = a.plan().unwrap();
        let all = cells(&plan);
        assert_eq!(all.len(), ALGOS.len() * 3 * 2);
        assert_eq!(all[0].id, "ppo-n10-s1");
        assert_eq!(all[1].id, "wm-ppo-n10-s1");
        let mut seen: Vec<usize> = (0..3)
            .flat_map(|i| Shard { index: i, count: 3 }.select(&all))
            .map(|c| c.index)
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..all.len()).collect::<Vec<_>>());
        assert!(find_cell(&plan, "ppo-n50-s3").is_ok());
        let err = find_cell(&plan, "ppo-n20-s1").unwrap_err().to_string();
        assert!(
            err.contains("ppo-n10-s1") && err.contains("--list-cells"),
            "{err}"
        );
    }

    #[test]
    fn shard_parsing_names_the_expected_form() {
        assert_eq!("1/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1", "a/2", "0/0", "-1/2"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_hash_follows_the_plan() {
        let quick = Preset::Quick.plan();
        let h = plan_hash(&quick).unwrap();
        assert_eq!(h.len(), 64);
        assert_eq!(h, plan_hash(&quick).unwrap());
        let mut other = quick;
        other.env_steps += 1;
        assert_ne!(h, plan_hash(&other).unwrap());
    }
}
