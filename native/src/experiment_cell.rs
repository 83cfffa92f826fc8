//! One cell of an experiment: train one arm on one seed on the population mix, evaluate
//! the policy on the held-out seeds of every evaluation scenario and population, and
//! store the result.
//!
//! A cell lives in `OUT/cells/ID/`: `policy.json` (the exported policy) and `cell.json`
//! (its [`Run`], the plan hash and the policy's SHA-256). Both are written into a
//! temporary directory that is renamed into place, so a cell is either complete or
//! absent; a cell already there with the same plan hash is kept, so re-running one (a
//! retry, a resumed sweep) is idempotent.
//!
//! `EDGEWISE_CRASH_ONCE=ID:MARKER` makes cell ID's process die once (exit status 86, no
//! clean-up), after training and before its result is renamed into place, if the file
//! MARKER does not exist yet: the fault-tolerance tests use it. MARKER is created first,
//! so the retry runs normally.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use edgewise_atomic_file::write as write_atomic;
use edgewise_env::EpisodeInfo;
use edgewise_rl::experiment::{Arm, ExperimentPlan};
use edgewise_rl::{Ppo, WmConfig, cpu_device};
use mec::{Catalogue, EpisodeMetrics, Policy, SimConfig, Simulator};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::experiment_plan::{Cell, Scenarios, arm_config, scenarios};
use crate::learned::{LearnedPolicy, MEC_ENV};

/// Directory under `--out` holding one directory per finished cell.
pub const CELLS_DIR: &str = "cells";
/// The result file in a cell's directory.
pub const CELL_FILE: &str = "cell.json";
/// The policy file in a cell's directory.
pub const POLICY_FILE: &str = "policy.json";
/// The environment variable of the crash-once test hook.
pub const CRASH_ONCE_VAR: &str = "EDGEWISE_CRASH_ONCE";
/// The exit status of a cell crashed by the hook.
const CRASH_EXIT_STATUS: i32 = 86;

const FORMAT: &str = "edgewise-experiment-cell";
const VERSION: u32 = 2;

/// Scenario name → population → metrics per held-out seed.
pub type Evaluation = BTreeMap<String, BTreeMap<usize, Vec<EpisodeMetrics>>>;

/// One training run and its evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub arm: Arm,
    pub seed: u64,
    /// `(env_steps, mean training episode return)` per iteration with finished episodes.
    pub curve: Vec<(u64, f64)>,
    /// `(env_steps, world-model validation error)` (WM-PPO only).
    pub wm_error: Vec<(u64, f64)>,
    pub wall_s: f64,
    /// The policy file, relative to the experiment's output directory.
    pub policy: String,
    /// Evaluation scenario → population → metrics per held-out seed.
    pub eval: Evaluation,
}

/// `cell.json`.
#[derive(Debug, Serialize, Deserialize)]
struct CellFile {
    format: String,
    version: u32,
    id: String,
    plan_hash: String,
    /// Hex SHA-256 of the cell's `policy.json`.
    policy_sha256: String,
    run: Run,
}

/// The directory of cell `id` under `out`.
#[must_use]
pub fn cell_dir(out: &Path, id: &str) -> PathBuf {
    out.join(CELLS_DIR).join(id)
}

/// Where a merged experiment keeps the policy of cell `id`, relative to `--out`.
#[must_use]
pub fn policy_path(id: &str) -> String {
    format!("policies/{id}.json")
}

/// What is in a cell's directory.
#[derive(Debug)]
pub enum CellState {
    /// Finished by this plan: the run and the policy file's bytes.
    Done { run: Box<Run>, policy: Vec<u8> },
    /// No result there.
    Missing,
    /// Finished by another plan (its hash).
    OtherPlan(String),
    /// Unreadable or inconsistent (why).
    Broken(String),
}

/// Read cell `id` from `out` and check it against `plan_hash`.
#[must_use]
pub fn inspect(out: &Path, id: &str, plan_hash: &str) -> CellState {
    let dir = cell_dir(out, id);
    let path = dir.join(CELL_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return CellState::Missing,
        Err(e) => return CellState::Broken(format!("reading {}: {e}", path.display())),
    };
    let file: CellFile = match serde_json::from_slice(&bytes) {
        Ok(f) => f,
        Err(e) => return CellState::Broken(format!("{}: {e}", path.display())),
    };
    if file.format != FORMAT || file.version != VERSION {
        return CellState::Broken(format!(
            "{}: format {:?} version {}, expected {FORMAT:?} version {VERSION}",
            path.display(),
            file.format,
            file.version
        ));
    }
    if file.id != id {
        return CellState::Broken(format!(
            "{} holds cell {:?}, not {id:?}",
            path.display(),
            file.id
        ));
    }
    if file.plan_hash != plan_hash {
        return CellState::OtherPlan(file.plan_hash);
    }
    let policy_file = dir.join(POLICY_FILE);
    let policy = match std::fs::read(&policy_file) {
        Ok(b) => b,
        Err(e) => return CellState::Broken(format!("reading {}: {e}", policy_file.display())),
    };
    if sha256_hex(&policy) != file.policy_sha256 {
        return CellState::Broken(format!(
            "{} does not match the SHA-256 recorded in {}",
            policy_file.display(),
            path.display()
        ));
    }
    CellState::Done {
        run: Box::new(file.run),
        policy,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What [`run_cell`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Trained,
    AlreadyDone,
}

/// Train and evaluate `cell` of `plan` and store it under `out` (skipped when a result
/// of the same plan is already there).
///
/// # Errors
/// When training, evaluation or writing fails.
pub fn run_cell(
    plan: &ExperimentPlan,
    plan_hash: &str,
    cell: &Cell,
    out: &Path,
) -> anyhow::Result<Outcome> {
    let dir = cell_dir(out, &cell.id);
    match inspect(out, &cell.id, plan_hash) {
        CellState::Done { .. } => return Ok(Outcome::AlreadyDone),
        CellState::Missing => {}
        CellState::OtherPlan(h) => eprintln!(
            "replacing cell {} in {}: it was made by another plan (hash {})",
            cell.id,
            dir.display(),
            short(&h)
        ),
        CellState::Broken(why) => eprintln!("replacing cell {}: {why}", cell.id),
    }
    let parent = out.join(CELLS_DIR);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    remove_leftovers(&parent, &cell.id)?;

    let (run, policy) = train_and_evaluate(plan, cell)?;
    let file = CellFile {
        format: FORMAT.into(),
        version: VERSION,
        id: cell.id.clone(),
        plan_hash: plan_hash.to_owned(),
        policy_sha256: sha256_hex(&policy),
        run,
    };
    let tmp = parent.join(format!(".{}.tmp-{}", cell.id, std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    write_atomic(&tmp.join(POLICY_FILE), &policy)?;
    write_atomic(&tmp.join(CELL_FILE), &serde_json::to_vec_pretty(&file)?)?;
    crash_once_hook(&cell.id)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::rename(&tmp, &dir)
        .with_context(|| format!("moving {} to {}", tmp.display(), dir.display()))?;
    Ok(Outcome::Trained)
}

/// The first 12 hex digits of a hash, for messages.
#[must_use]
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Remove temporary directories an interrupted run of this cell left behind.
fn remove_leftovers(parent: &Path, id: &str) -> anyhow::Result<()> {
    let prefix = format!(".{id}.tmp-");
    for entry in
        std::fs::read_dir(parent).with_context(|| format!("reading {}", parent.display()))?
    {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// `EDGEWISE_CRASH_ONCE=ID:MARKER`: die if this is cell ID and MARKER does not exist
/// (creating it first, so the next attempt goes through). `exit`, not `abort`, so no
/// core file is left wherever core dumps are enabled.
fn crash_once_hook(id: &str) -> anyhow::Result<()> {
    let Some(value) = std::env::var_os(CRASH_ONCE_VAR) else {
        return Ok(());
    };
    let value = value.to_string_lossy();
    let Some((target, marker)) = value.split_once(':') else {
        bail!("{CRASH_ONCE_VAR}={value:?}: expected CELL_ID:MARKER_FILE");
    };
    let marker = Path::new(marker);
    if target != id || marker.exists() {
        return Ok(());
    }
    std::fs::write(marker, format!("cell {id} crashed on purpose once\n"))
        .with_context(|| format!("{CRASH_ONCE_VAR}: writing {}", marker.display()))?;
    eprintln!(
        "{CRASH_ONCE_VAR}: cell {id} dies on purpose (marker {})",
        marker.display()
    );
    std::process::exit(CRASH_EXIT_STATUS);
}

fn evaluate(
    policy: &mut dyn Policy,
    cfg: &SimConfig,
    cat: &Catalogue,
    seed: u64,
) -> anyhow::Result<EpisodeMetrics> {
    let mut sim = Simulator::new(cfg.clone(), cat.clone(), seed)?;
    Ok(mec::run_episode(&mut sim, policy))
}

/// Evaluate the policies `make(seed)` builds at every evaluation scenario and population
/// of the plan, one fresh policy per held-out seed.
///
/// # Errors
/// When a simulator cannot be built.
pub fn evaluate_all(
    plan: &ExperimentPlan,
    configs: &Scenarios,
    cat: &Catalogue,
    make: &mut dyn FnMut(u64) -> Box<dyn Policy>,
) -> anyhow::Result<Evaluation> {
    let mut eval = Evaluation::new();
    for name in &plan.eval_scenarios {
        let per_pop = eval.entry(name.clone()).or_default();
        for &n in &plan.eval_populations {
            let cfg = &configs[name][&n];
            let v = plan
                .eval_seeds
                .iter()
                .map(|&s| evaluate(make(s).as_mut(), cfg, cat, s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            per_pop.insert(n, v);
        }
    }
    Ok(eval)
}

/// Evaluate a baseline (or the planner) at every evaluation scenario and population on
/// every held-out seed (each seed with its own scenario-seeded policy, so random policies
/// draw alike wherever they run).
///
/// # Errors
/// When a simulator cannot be built.
pub fn evaluate_baseline(
    kind: mec::PolicyKind,
    plan: &ExperimentPlan,
    configs: &Scenarios,
    cat: &Catalogue,
) -> anyhow::Result<Evaluation> {
    evaluate_all(plan, configs, cat, &mut |s| mec::scenario_baseline(kind, s))
}

/// Train the cell's arm on the population mix and evaluate its greedy policy; returns
/// the run and the policy file's bytes.
fn train_and_evaluate(plan: &ExperimentPlan, cell: &Cell) -> anyhow::Result<(Run, Vec<u8>)> {
    let cat = Catalogue::default_catalogue();
    let configs = scenarios(plan)?;
    let t0 = Instant::now();
    let bar = crate::logging::bar(
        plan.env_steps,
        "{bar:40} {pos}/{len} env steps  elapsed {elapsed}  eta {eta}  {msg}",
    );
    bar.set_message(cell.id.clone());
    let device = cpu_device();
    let train = &configs[&plan.train_scenario];
    let mut env = crate::mec_env::training_env(
        &plan.train_populations,
        plan.num_envs,
        cell.seed,
        &cat,
        &|n| Ok(train[&n].clone()),
    )?;
    let config = arm_config(plan, cell.arm);
    let mut ppo = match cell.arm {
        Arm::Ppo | Arm::PpoEqualGrad => Ppo::new(config, env.as_ref(), &device, cell.seed)?,
        Arm::WmPpo => Ppo::with_world_model(
            config,
            WmConfig::default(),
            env.as_ref(),
            &device,
            cell.seed,
        )?,
    };
    let (mut curve, mut wm_error) = (Vec::new(), Vec::new());
    let mut episodes: Vec<EpisodeInfo> = Vec::new();
    while ppo.env_steps() < plan.env_steps {
        let s = ppo.iterate(env.as_mut())?;
        ppo.drain_finished(&mut episodes);
        if s.mean_return.is_finite() {
            curve.push((s.env_steps, s.mean_return));
        }
        if let Some(e) = s.wm_error {
            wm_error.push((s.env_steps, e));
        }
        bar.set_position(s.env_steps.min(plan.env_steps));
    }
    bar.finish_and_clear();
    let wall_s = t0.elapsed().as_secs_f64();
    let mut file = ppo.policy();
    file.meta.insert("algo".into(), cell.arm.algo().into());
    file.meta.insert("arm".into(), cell.arm.as_str().into());
    file.meta.insert("env".into(), MEC_ENV.into());
    file.meta.insert(
        "train_devices".into(),
        plan.train_populations.clone().into(),
    );
    file.meta
        .insert("train_scenario".into(), plan.train_scenario.clone().into());
    let policy = file.to_bytes();
    let eval = evaluate_all(plan, &configs, &cat, &mut |_| {
        Box::new(LearnedPolicy::new(cell.id.clone(), file.clone()))
    })?;
    let run = Run {
        arm: cell.arm,
        seed: cell.seed,
        curve,
        wm_error,
        wall_s,
        policy: policy_path(&cell.id),
        eval,
    };
    Ok((run, policy))
}
