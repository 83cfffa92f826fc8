//! What an `edgewise experiment` runs, as independent cells.
//!
//! The plan comes from a preset plus overrides ([`PlanArgs`]). It splits into cells, one
//! per training run (arm × training seed; every run trains on the whole population mix),
//! each trained and evaluated in its own process and stamped with [`plan_hash`], a digest
//! of everything that determines a cell's result. The plan can be written back as
//! command-line arguments ([`plan_argv`]), which is how child processes, cluster tasks
//! and error messages name the same plan.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use edgewise_rl::experiment::{Arm, ExperimentPlan, Preset};
use edgewise_rl::{PpoConfig, WmConfig};
use mec::{Catalogue, SimConfig};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// First held-out evaluation seed of `--eval-seeds N` (seeds 10000, 10001, …).
const EVAL_SEED_BASE: u64 = 10_000;

/// The arguments that choose the plan: a preset and optional overrides.
#[derive(clap::Args, Debug, Clone)]
pub struct PlanArgs {
    /// Experiment size: quick (under half an hour on 2 cores) or full (hours).
    #[arg(long, value_parser = parse_preset)]
    pub preset: Preset,
    /// Override: number of training seeds (1..=N).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Override: real environment steps per training run.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Override: the arms to train (comma-separated: ppo, wm-ppo, ppo-eqgrad).
    #[arg(long, value_delimiter = ',', value_parser = parse_arm)]
    pub arms: Option<Vec<Arm>>,
    /// Override: the population mix every run trains on, one population per parallel
    /// environment (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub train_populations: Option<Vec<usize>>,
    /// Override: parallel environments per training run (at least the mix's size).
    #[arg(long)]
    pub envs: Option<usize>,
    /// Override: the scenario preset trained on.
    #[arg(long)]
    pub train_scenario: Option<String>,
    /// Override: populations to evaluate at (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub populations: Option<Vec<usize>>,
    /// Override: scenario presets to evaluate on (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Option<Vec<String>>,
    /// Override: number of held-out evaluation seeds.
    #[arg(long)]
    pub eval_seeds: Option<u64>,
    /// Override: weight of the externality credit in the training rewards (an offloading
    /// device also pays for the delay it causes the others; 0, the presets' value, is off).
    #[arg(long, allow_negative_numbers = true)]
    pub externality_credit: Option<f64>,
    /// Override: when the credit prices the edge work an offload leaves for later slots,
    /// `slot-end` (the presets' rule) or `next-slot` (settled against the delay it caused
    /// in the next slot).
    #[arg(long, value_name = "slot-end|next-slot")]
    pub externality_settlement: Option<mec::ExternalitySettlement>,
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    s.parse::<Preset>().map_err(|e| e.to_string())
}

fn parse_arm(s: &str) -> Result<Arm, String> {
    s.parse::<Arm>().map_err(|e| e.to_string())
}

impl PlanArgs {
    /// The preset's plan with the overrides applied, validated (scenario names included).
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
        if let Some(a) = &self.arms {
            plan.arms.clone_from(a);
        }
        if let Some(p) = &self.train_populations {
            plan.train_populations.clone_from(p);
        }
        if let Some(n) = self.envs {
            plan.num_envs = n;
        }
        if let Some(s) = &self.train_scenario {
            plan.train_scenario.clone_from(s);
        }
        if let Some(p) = &self.populations {
            plan.eval_populations.clone_from(p);
        }
        if let Some(s) = &self.scenarios {
            plan.eval_scenarios.clone_from(s);
        }
        if let Some(n) = self.eval_seeds {
            plan.eval_seeds = (0..n).map(|i| EVAL_SEED_BASE + i).collect();
        }
        if let Some(w) = self.externality_credit {
            plan.externality_credit = w;
        }
        if let Some(rule) = self.externality_settlement {
            plan.externality_next_slot = rule == mec::ExternalitySettlement::NextSlot;
        }
        plan.validate().context("invalid experiment arguments")?;
        scenarios(&plan).context("invalid experiment arguments")?;
        Ok(plan)
    }
}

/// The `edgewise experiment` arguments that rebuild `plan`: its preset, and an override
/// for each field that differs from the preset's. Plans only ever come from a preset and
/// these overrides, so the arguments always rebuild the same plan.
#[must_use]
pub fn plan_argv(plan: &ExperimentPlan) -> Vec<String> {
    let preset = plan.preset.plan();
    fn join<T: ToString>(v: &[T]) -> String {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
    let mut argv = vec!["--preset".to_owned(), plan.preset.to_string()];
    let mut add = |flag: &str, value: String| argv.extend([flag.to_owned(), value]);
    if plan.seeds != preset.seeds {
        add("--seeds", plan.seeds.len().to_string());
    }
    if plan.env_steps != preset.env_steps {
        add("--steps", plan.env_steps.to_string());
    }
    if plan.arms != preset.arms {
        add("--arms", join(&plan.arms));
    }
    if plan.train_populations != preset.train_populations {
        add("--train-populations", join(&plan.train_populations));
    }
    if plan.num_envs != preset.num_envs {
        add("--envs", plan.num_envs.to_string());
    }
    if plan.train_scenario != preset.train_scenario {
        add("--train-scenario", plan.train_scenario.clone());
    }
    if plan.eval_populations != preset.eval_populations {
        add("--populations", join(&plan.eval_populations));
    }
    if plan.eval_scenarios != preset.eval_scenarios {
        add("--scenarios", join(&plan.eval_scenarios));
    }
    if plan.eval_seeds != preset.eval_seeds {
        add("--eval-seeds", plan.eval_seeds.len().to_string());
    }
    if plan.externality_credit.to_bits() != preset.externality_credit.to_bits() {
        add("--externality-credit", plan.externality_credit.to_string());
    }
    if plan.externality_next_slot != preset.externality_next_slot {
        add(
            "--externality-settlement",
            settlement(plan).name().to_owned(),
        );
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

/// One training run of a plan: one arm on one seed, on the whole population mix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Position in [`cells`] (what `--shard I/N` selects by).
    pub index: usize,
    /// `ARM-sSEED`: names the cell's directory and its policy file.
    pub id: String,
    pub arm: Arm,
    pub seed: u64,
}

/// Every training run of `plan`, in a fixed order: seed, then arm.
#[must_use]
pub fn cells(plan: &ExperimentPlan) -> Vec<Cell> {
    let mut out = Vec::new();
    for &seed in &plan.seeds {
        for &arm in &plan.arms {
            out.push(Cell {
                index: out.len(),
                id: format!("{arm}-s{seed}"),
                arm,
                seed,
            });
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

/// The simulator's settlement rule for a plan's externality credit.
#[must_use]
pub fn settlement(plan: &ExperimentPlan) -> mec::ExternalitySettlement {
    if plan.externality_next_slot {
        mec::ExternalitySettlement::NextSlot
    } else {
        mec::ExternalitySettlement::SlotEnd
    }
}

/// The MEC scenario `name` (a simulator preset) with `devices` devices and the plan's
/// externality credit (which changes what learners are paid, never an evaluation's
/// reward, so one configuration serves training and evaluation).
///
/// # Errors
/// When there is no such preset or the scenario does not validate.
pub fn scenario(name: &str, devices: usize, plan: &ExperimentPlan) -> anyhow::Result<SimConfig> {
    let mut cfg = mec::preset(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    cfg.devices = devices;
    cfg.reward.externality_credit = plan.externality_credit;
    cfg.reward.externality_settlement = settlement(plan);
    cfg.validate()
        .with_context(|| format!("MEC scenario {name:?} with {devices} devices"))?;
    Ok(cfg)
}

/// Scenario name → population → configuration.
pub type Scenarios = BTreeMap<String, BTreeMap<usize, SimConfig>>;

/// Every scenario a plan runs: the training scenario at each population of the mix and
/// every evaluation scenario at each evaluation population.
///
/// # Errors
/// When a scenario is unknown or does not validate.
pub fn scenarios(plan: &ExperimentPlan) -> anyhow::Result<Scenarios> {
    let mut out = Scenarios::new();
    let mut add = |name: &str, pops: &[usize]| -> anyhow::Result<()> {
        for &n in pops {
            let cfg = scenario(name, n, plan)?;
            out.entry(name.to_owned()).or_default().insert(n, cfg);
        }
        Ok(())
    };
    add(&plan.train_scenario, &plan.train_populations)?;
    for name in &plan.eval_scenarios {
        add(name, &plan.eval_populations)?;
    }
    Ok(out)
}

/// The base learner configuration of a plan's training runs (each arm derives its own
/// with [`arm_config`]).
#[must_use]
pub fn ppo_config(plan: &ExperimentPlan) -> PpoConfig {
    PpoConfig {
        total_env_steps: plan.env_steps,
        ..PpoConfig::default()
    }
}

/// The learner configuration of `arm` in `plan`.
#[must_use]
pub fn arm_config(plan: &ExperimentPlan, arm: Arm) -> PpoConfig {
    arm.ppo_config(&ppo_config(plan), &WmConfig::default())
}

/// Everything that determines a cell's result, hashed.
#[derive(Serialize)]
struct HashInput<'a> {
    format: &'static str,
    version: u32,
    plan: &'a ExperimentPlan,
    arms: Vec<(Arm, PpoConfig)>,
    wm: WmConfig,
    scenarios: Scenarios,
    catalogue: Catalogue,
}

/// Hex SHA-256 of the plan together with each arm's learner configuration, the
/// world-model configuration, the scenario configurations and the catalogue it runs on:
/// two cells with the same hash were trained and evaluated alike.
///
/// # Errors
/// When a scenario is unknown or does not validate.
pub fn plan_hash(plan: &ExperimentPlan) -> anyhow::Result<String> {
    let input = HashInput {
        format: "edgewise-experiment-plan",
        version: 2,
        plan,
        arms: plan
            .arms
            .iter()
            .map(|&a| (a, arm_config(plan, a)))
            .collect(),
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
            arms: None,
            train_populations: None,
            envs: None,
            train_scenario: None,
            populations: None,
            scenarios: None,
            eval_seeds: None,
            externality_credit: None,
            externality_settlement: None,
        }
    }

    #[test]
    fn argv_rebuilds_the_plan() {
        let mut a = args(Preset::Quick);
        a.seeds = Some(2);
        a.steps = Some(1024);
        a.arms = Some(vec![Arm::WmPpo, Arm::Ppo]);
        a.train_populations = Some(vec![10, 20]);
        a.envs = Some(2);
        a.train_scenario = Some("bursty".into());
        a.scenarios = Some(vec!["edge-load".into()]);
        a.eval_seeds = Some(3);
        a.externality_credit = Some(0.75);
        a.externality_settlement = Some(mec::ExternalitySettlement::NextSlot);
        let plan = a.plan().unwrap();
        assert!(plan.externality_next_slot);
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
    fn unknown_scenarios_and_small_batches_are_refused_by_name() {
        let mut a = args(Preset::Quick);
        a.scenarios = Some(vec!["default".into(), "stormy".into()]);
        let err = format!("{:#}", a.plan().unwrap_err());
        assert!(err.contains("stormy") && err.contains("bursty"), "{err}");
        let mut a = args(Preset::Quick);
        a.envs = Some(2);
        let err = format!("{:#}", a.plan().unwrap_err());
        assert!(err.contains("train_populations"), "{err}");
    }

    /// One cell per arm and seed (not per training population): the control arm is in
    /// every preset, and every cell trains on the mix.
    #[test]
    fn cells_and_shards_partition_the_plan() {
        let mut a = args(Preset::Quick);
        a.seeds = Some(3);
        let plan = a.plan().unwrap();
        let all = cells(&plan);
        assert_eq!(all.len(), Arm::ALL.len() * 3);
        let ids: Vec<&str> = all.iter().take(4).map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["ppo-s1", "wm-ppo-s1", "ppo-eqgrad-s1", "ppo-s2"]);
        let mut seen: Vec<usize> = (0..3)
            .flat_map(|i| Shard { index: i, count: 3 }.select(&all))
            .map(|c| c.index)
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..all.len()).collect::<Vec<_>>());
        assert!(find_cell(&plan, "ppo-eqgrad-s3").is_ok());
        let err = find_cell(&plan, "ppo-n50-s1").unwrap_err().to_string();
        assert!(
            err.contains("ppo-s1") && err.contains("--list-cells"),
            "{err}"
        );
        assert_eq!(Preset::Quick.plan().seeds.len(), 5);
        assert_eq!(cells(&Preset::Quick.plan()).len(), 15);
    }

    #[test]
    fn shard_parsing_names_the_expected_form() {
        assert_eq!("1/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1", "a/2", "0/0", "-1/2"] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
    }

    /// Training runs on the default scenario at each population of the mix; evaluation
    /// covers the bursty scenario too, with its own configuration.
    #[test]
    fn scenarios_cover_the_mix_and_both_evaluation_scenarios() {
        let plan = Preset::Quick.plan();
        let s = scenarios(&plan).unwrap();
        assert_eq!(s.keys().collect::<Vec<_>>(), ["bursty", "default"]);
        for (name, pops) in &s {
            assert_eq!(pops.keys().copied().collect::<Vec<_>>(), [10, 20, 50, 100]);
            for (&n, cfg) in pops {
                assert_eq!(cfg.devices, n);
                assert_eq!(*cfg, scenario(name, n, &plan).unwrap());
                assert_eq!(cfg.reward.externality_credit, 0.0);
            }
        }
        assert_ne!(s["bursty"][&50], s["default"][&50]);
        assert!(s["bursty"][&50].bursts.factor > 1.0);
        assert_eq!(
            arm_config(&plan, Arm::PpoEqualGrad).epochs,
            3 * arm_config(&plan, Arm::Ppo).epochs
        );
    }

    #[test]
    fn the_hash_follows_the_plan() {
        let quick = Preset::Quick.plan();
        let h = plan_hash(&quick).unwrap();
        assert_eq!(h.len(), 64);
        assert_eq!(h, plan_hash(&quick).unwrap());
        let mut other = quick.clone();
        other.env_steps += 1;
        assert_ne!(h, plan_hash(&other).unwrap());
        let mut other = quick.clone();
        other.eval_scenarios.pop();
        assert_ne!(h, plan_hash(&other).unwrap());
        let mut other = quick.clone();
        other.arms.pop();
        assert_ne!(h, plan_hash(&other).unwrap());
        let mut other = quick;
        other.externality_credit = 1.0;
        let credited = plan_hash(&other).unwrap();
        assert_ne!(h, credited);
        other.externality_next_slot = true;
        assert_ne!(credited, plan_hash(&other).unwrap());
    }
}
