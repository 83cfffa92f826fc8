//! `edgewise train`: train a policy with PPO or WM-PPO on CartPole or the MEC simulator.
//!
//! Writes into `--out DIR`: `metrics.csv` (one row per iteration; `wm_error` is the world
//! model's held-out validation error, empty for PPO; for WM-PPO `wm_error_response` and
//! `wm_error_reward` split it by target group, `wm_spread` is the ensemble's relative
//! disagreement on the counterfactual advantages and `counterfactual` the samples that
//! took one), `checkpoint.ckpt` (every
//! `--checkpoint-every` iterations and at the end, written atomically; WM-PPO's holds its
//! world model and replay too) and `policy.json` (the exported `edgewise-policy` file).
//! Each metrics row ends with the iteration's wall time split into the rollout
//! (`rollout_s`: stepping the environments and sampling actions) and learning
//! (`learn_s`: advantages, world model, imagination, gradient updates); the totals are
//! printed at the end, to show which of the two a run spends its time on.
//! `--resume` continues a PPO or WM-PPO run from `DIR/checkpoint.ckpt` exactly where it
//! stopped; `--stop-after N` ends an invocation early (with a checkpoint) so a long run
//! can be split into several.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use edgewise_atomic_file::write as write_atomic;
use edgewise_env::{EpisodeInfo, VecEnv};
use edgewise_rl::cartpole::CartPoleVecEnv;
use edgewise_rl::ppo::{CARTPOLE_ENVS, cartpole_config};
use edgewise_rl::{GruWmConfig, IterationStats, Ppo, PpoConfig, WmConfig, cpu_device};

use crate::config_file::overlay;
use crate::rollout_clock::{RolloutClock, Split};

/// Which learner to run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// Proximal policy optimisation.
    Ppo,
    /// PPO assisted by a learned model of the action-dependent response
    /// (counterfactual per-action advantages on the real, replayed exogenous inputs).
    WmPpo,
    /// The first WM-PPO (a GRU world model of the whole next observation, value
    /// blending and imagined samples), kept as an ablation.
    WmPpoGru,
}

impl Algo {
    /// The name on the command line, in checkpoints and in policy files.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Self::Ppo => "ppo",
            Self::WmPpo => "wm-ppo",
            Self::WmPpoGru => "wm-ppo-gru",
        }
    }
}

/// Which environment to learn.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvKind {
    /// Classic CartPole-v1 (validation of the learner).
    Cartpole,
    /// The MEC offloading simulator (one agent per device).
    Mec,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Learning algorithm.
    #[arg(long, value_enum, default_value = "ppo")]
    pub algo: Algo,
    /// Environment to train on.
    #[arg(long, value_enum, default_value = "cartpole")]
    pub env: EnvKind,
    /// Total environment steps (the learning rate anneals to zero over them).
    #[arg(long, default_value_t = 100_000)]
    pub steps: u64,
    /// Seed of everything random (weights, sampling, environments).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// User population N for `--env mec`; several (`--devices 10,20,50,100`) train one
    /// policy on a mix: parallel environment i simulates the i-th population (cycling),
    /// so `--envs` must be at least their number.
    #[arg(long, default_value = "10", value_delimiter = ',')]
    pub devices: Vec<usize>,
    /// For `--env mec`: the scenario to train on, a named preset (default, bursty,
    /// edge-load, tight-energy, hard-queries or foresight); the shipped scenario if neither
    /// this nor --config is given. `--devices` sets its population.
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// For `--env mec`: the scenario to train on, from a file (TOML, or JSON if it ends in
    /// .json), as `edgewise simulate --config` reads it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// For `--env mec`: weight of the externality credit in the devices' rewards (an
    /// offloading device also pays for the delay it causes the others; 0 = off), in
    /// place of the scenario's `reward.externality_credit`. Give the same scenario
    /// options again with --resume.
    #[arg(long, allow_negative_numbers = true)]
    pub externality_credit: Option<f64>,
    /// For `--env mec`: when the externality credit prices the edge work an offload
    /// leaves for later slots: `slot-end` (an estimate at the slot's end) or `next-slot`
    /// (the estimate, settled in the next slot against the delay it caused there), in
    /// place of the scenario's `reward.externality_settlement`.
    #[arg(long, value_name = "slot-end|next-slot")]
    pub externality_settlement: Option<mec::ExternalitySettlement>,
    /// Environments stepped in parallel (default: 8 for CartPole, 4 for MEC, or one per
    /// population when that is more).
    #[arg(long)]
    pub envs: Option<usize>,
    /// PPO hyper-parameters (only the fields to change) as JSON, or TOML for a `.toml` file.
    #[arg(long)]
    pub ppo_config: Option<PathBuf>,
    /// World-model hyper-parameters for `--algo wm-ppo` or `wm-ppo-gru` (only the fields
    /// to change; each algorithm has its own fields) as JSON, or TOML for a `.toml` file.
    #[arg(long)]
    pub wm_config: Option<PathBuf>,
    /// Output directory (metrics.csv, checkpoint.ckpt, policy.json).
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    /// Continue from OUT/checkpoint.ckpt (exact when --steps matches the first run; the
    /// learning-rate schedule always follows the first run's --steps).
    #[arg(long)]
    pub resume: bool,
    /// Write a checkpoint every this many iterations.
    #[arg(long, default_value_t = 20)]
    pub checkpoint_every: u64,
    /// Stop this invocation after this many iterations, writing a checkpoint (continue
    /// with --resume). The result equals an uninterrupted run's when the stop falls on a
    /// multiple of --checkpoint-every (checkpoints restart the environments).
    #[arg(long)]
    pub stop_after: Option<u64>,
}

const CSV_HEADER: &str = "iteration,env_steps,mean_return,episodes,policy_loss,value_loss,entropy,approx_kl,clip_fraction,learning_rate,wm_error,wm_trust,imagined,wm_error_response,wm_error_reward,wm_spread,counterfactual,rollout_s,learn_s";
/// The columns the timing split added; metrics files written before have none.
const TIMING_COLUMNS: &str = ",rollout_s,learn_s";

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    if args.stop_after == Some(0) {
        bail!("--stop-after must be at least 1 iteration");
    }
    if args.wm_config.is_some() && args.algo == Algo::Ppo {
        bail!("--wm-config is only used with --algo wm-ppo or wm-ppo-gru");
    }
    let wm_config = match &args.wm_config {
        Some(path) if args.algo == Algo::WmPpo => {
            let c = overlay(&WmConfig::default(), path, "world-model config")?;
            c.validate()
                .with_context(|| format!("in world-model config {}", path.display()))?;
            c
        }
        _ => WmConfig::default(),
    };
    let gru_config = match &args.wm_config {
        Some(path) if args.algo == Algo::WmPpoGru => {
            let c = overlay(&GruWmConfig::default(), path, "GRU world-model config")?;
            c.validate()
                .with_context(|| format!("in GRU world-model config {}", path.display()))?;
            c
        }
        _ => GruWmConfig::default(),
    };
    if args.env == EnvKind::Cartpole
        && (args.preset.is_some()
            || args.config.is_some()
            || args.externality_credit.is_some()
            || args.externality_settlement.is_some())
    {
        bail!(
            "--preset, --config, --externality-credit and --externality-settlement choose a MEC scenario: use them with --env mec"
        );
    }
    let mut env: Box<dyn VecEnv> = match args.env {
        EnvKind::Cartpole => Box::new(CartPoleVecEnv::new(args.envs.unwrap_or(CARTPOLE_ENVS))),
        EnvKind::Mec => mec_env(args)?,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let ckpt = args.out.join("checkpoint.ckpt");
    let metrics = args.out.join("metrics.csv");
    let device = cpu_device();

    let mut ppo = if args.resume {
        let ppo = Ppo::load_checkpoint(&ckpt, &device)
            .with_context(|| format!("--resume needs a checkpoint in {}", args.out.display()))?;
        let written_by = ppo.algo();
        if args.algo.key() != written_by {
            bail!(
                "{} was written by --algo {written_by}; resume it with --algo {written_by}",
                ckpt.display()
            );
        }
        truncate_metrics(&metrics, ppo.iteration())?;
        ppo
    } else {
        let mut config = match args.env {
            EnvKind::Cartpole => cartpole_config(),
            EnvKind::Mec => PpoConfig::default(),
        };
        if let Some(path) = &args.ppo_config {
            config = overlay(&config, path, "PPO config")?;
        }
        config.total_env_steps = args.steps;
        config.validate().context("invalid PPO config")?;
        let ppo = match args.algo {
            Algo::Ppo => Ppo::new(config, env.as_ref(), &device, args.seed)?,
            Algo::WmPpo => {
                Ppo::with_world_model(config, wm_config, env.as_ref(), &device, args.seed)?
            }
            Algo::WmPpoGru => {
                Ppo::with_gru_world_model(config, gru_config, env.as_ref(), &device, args.seed)?
            }
        };
        write_atomic(&metrics, format!("{CSV_HEADER}\n").as_bytes())?;
        ppo
    };

    let mut csv = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics)
        .with_context(|| format!("opening {}", metrics.display()))?;
    let bar = crate::logging::bar(
        args.steps,
        "{bar:40} {pos}/{len} env steps  {per_sec}  eta {eta}  {msg}",
    );
    bar.set_position(ppo.env_steps());
    let mut episodes: Vec<EpisodeInfo> = Vec::new();
    let mut this_run = 0u64;
    let mut time = TimeSplit::default();
    let mut env = RolloutClock::new(env.as_mut());
    while ppo.env_steps() < args.steps {
        if args.stop_after.is_some_and(|n| this_run >= n) {
            csv.flush()?;
            ppo.save_checkpoint(&ckpt)?;
            bar.finish();
            time.print();
            println!(
                "stopped after {this_run} iterations at {} env steps; wrote {} (continue with --resume)",
                ppo.env_steps(),
                ckpt.display()
            );
            return Ok(());
        }
        this_run += 1;
        let started = Instant::now();
        let s = ppo.iterate(&mut env)?;
        let split = env.split(started, Instant::now());
        time.add(split);
        ppo.drain_finished(&mut episodes);
        writeln!(csv, "{}", csv_row(&s, split))
            .with_context(|| format!("writing {}", metrics.display()))?;
        let recent: Vec<f64> = episodes
            .iter()
            .rev()
            .take(20)
            .map(|e| e.episode_return)
            .collect();
        if !recent.is_empty() {
            #[allow(clippy::cast_precision_loss)]
            let mean = recent.iter().sum::<f64>() / recent.len() as f64;
            bar.set_message(format!("return {mean:.2}  {}", time.short()));
        }
        bar.set_position(s.env_steps);
        tracing::debug!(
            iteration = s.iteration,
            env_steps = s.env_steps,
            mean_return = s.mean_return,
            value_loss = s.value_loss,
            approx_kl = s.approx_kl,
            wm_error = ?s.wm_error,
            "iteration"
        );
        if args.checkpoint_every > 0 && s.iteration % args.checkpoint_every == 0 {
            csv.flush()?;
            ppo.save_checkpoint(&ckpt)?;
            tracing::info!(
                "iteration {}: {} env steps, mean return {:.3}; checkpoint {}",
                s.iteration,
                s.env_steps,
                s.mean_return,
                ckpt.display()
            );
        }
    }
    csv.flush()?;
    ppo.save_checkpoint(&ckpt)?;
    let mut policy = ppo.policy();
    let algo = args.algo.key();
    policy.meta.insert("algo".into(), algo.into());
    policy.meta.insert(
        "env".into(),
        format!("{:?}", args.env).to_lowercase().into(),
    );
    if args.env == EnvKind::Mec {
        let meta = &mut policy.meta;
        meta.insert("train_devices".into(), args.devices.clone().into());
        // What the file was trained on, so it describes itself beyond its README.
        let scenario = match (&args.preset, &args.config) {
            (Some(name), _) => format!("preset {name}"),
            (None, Some(path)) => format!("file {}", path.display()),
            (None, None) => "default".to_owned(),
        };
        meta.insert("train_scenario".into(), scenario.into());
        let reward = train_scenario(args, args.devices[0])?.reward;
        meta.insert(
            "externality_credit".into(),
            reward.externality_credit.into(),
        );
        if reward.externality_credit > 0.0 {
            meta.insert(
                "externality_settlement".into(),
                reward.externality_settlement.name().into(),
            );
        }
    }
    write_atomic(&args.out.join("policy.json"), &policy.to_bytes())?;
    bar.finish();
    time.print();
    println!(
        "trained {} env steps with {algo}; wrote {}, {} and {}",
        ppo.env_steps(),
        metrics.display(),
        ckpt.display(),
        args.out.join("policy.json").display()
    );
    Ok(())
}

/// Rollout and learning time summed over this invocation's iterations.
#[derive(Debug, Default)]
struct TimeSplit {
    rollout: Duration,
    learn: Duration,
    iterations: u64,
    unknown: u64,
}

impl TimeSplit {
    fn add(&mut self, split: Option<Split>) {
        match split {
            Some(s) => {
                self.rollout += s.rollout;
                self.learn += s.learn;
                self.iterations += 1;
            }
            None => self.unknown += 1,
        }
    }

    /// Share of the time spent in rollouts (NaN before the first iteration).
    fn rollout_share(&self) -> f64 {
        let (r, l) = (self.rollout.as_secs_f64(), self.learn.as_secs_f64());
        r / (r + l)
    }

    fn short(&self) -> String {
        format!("rollout {:.0}%", 100.0 * self.rollout_share())
    }

    fn print(&self) {
        if self.iterations > 0 {
            println!(
                "time split over {} iterations: rollout {:.2} s ({:.1}%), learn {:.2} s ({:.1}%)",
                self.iterations,
                self.rollout.as_secs_f64(),
                100.0 * self.rollout_share(),
                self.learn.as_secs_f64(),
                100.0 * (1.0 - self.rollout_share())
            );
        }
        if self.unknown > 0 {
            println!(
                "time split unknown for {} iterations (the learner did not drain the environment)",
                self.unknown
            );
        }
    }
}

/// The MEC training environments: one batch at one population, or a
/// [`MixedVecEnv`] of one single-environment batch per parallel environment, cycling
/// through the populations.
fn mec_env(args: &TrainArgs) -> anyhow::Result<Box<dyn VecEnv>> {
    let pops = &args.devices;
    if pops.is_empty() {
        bail!("--devices needs at least one population");
    }
    let envs = args.envs.unwrap_or(4.max(pops.len()));
    if envs < pops.len() {
        bail!(
            "--envs {envs} cannot hold the {} populations of --devices; give at least --envs {}",
            pops.len(),
            pops.len()
        );
    }
    let catalogue = mec::Catalogue::default_catalogue();
    let scenario = |devices: usize| train_scenario(args, devices);
    crate::mec_env::training_env(pops, envs, args.seed, &catalogue, &scenario)
}

/// The MEC scenario `train` runs at `devices` devices: `--preset` or `--config` (else the
/// shipped scenario) with `--externality-credit` and `--externality-settlement` applied.
fn train_scenario(args: &TrainArgs, devices: usize) -> anyhow::Result<mec::SimConfig> {
    let (mut config, _) = crate::simulate::load_scenario(
        args.config.as_ref(),
        args.preset.as_deref(),
        None,
        Some(devices),
        None,
    )?;
    if let Some(w) = args.externality_credit {
        config.reward.externality_credit = w;
    }
    if let Some(rule) = args.externality_settlement {
        config.reward.externality_settlement = rule;
    }
    config
        .validate()
        .with_context(|| format!("MEC scenario with {devices} devices"))?;
    Ok(config)
}

fn csv_row(s: &IterationStats, split: Option<Split>) -> String {
    let (rollout, learn) = split.map_or((String::new(), String::new()), |t| {
        (
            format!("{:.6}", t.rollout.as_secs_f64()),
            format!("{:.6}", t.learn.as_secs_f64()),
        )
    });
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{rollout},{learn}",
        s.iteration,
        s.env_steps,
        s.mean_return,
        s.episodes,
        s.policy_loss,
        s.value_loss,
        s.entropy,
        s.approx_kl,
        s.clip_fraction,
        s.learning_rate,
        s.wm_error.map(|e| e.to_string()).unwrap_or_default(),
        s.wm_trust,
        s.imagined,
        opt(s.wm_error_response),
        opt(s.wm_error_reward),
        opt(s.wm_spread),
        s.counterfactual
    )
}

fn opt(v: Option<f64>) -> String {
    v.map(|e| e.to_string()).unwrap_or_default()
}

/// Drop metric rows written after the checkpoint we resume from (a crash between a
/// metrics row and the next checkpoint would otherwise duplicate iterations). A file
/// written before the timing columns existed gets them, empty in its old rows.
fn truncate_metrics(path: &Path, iteration: u64) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| format!("{CSV_HEADER}\n"));
    let old_header = CSV_HEADER
        .strip_suffix(TIMING_COLUMNS)
        .unwrap_or(CSV_HEADER);
    let pad = if text.lines().next() == Some(old_header) {
        ",,"
    } else {
        ""
    };
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let keep = i == 0
            || line
                .split(',')
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|it| it <= iteration);
        if keep {
            if i == 0 {
                out.push_str(if pad.is_empty() { line } else { CSV_HEADER });
            } else {
                out.push_str(line);
                out.push_str(pad);
            }
            out.push('\n');
        }
    }
    write_atomic(path, out.as_bytes())?;
    Ok(())
}
