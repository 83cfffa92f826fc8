//! `edgewise experiment`: PPO vs WM-PPO vs an equal-gradient-steps PPO control vs the
//! baselines and the clairvoyant planner, over seeds, populations and scenarios.
//!
//! The experiment is a list of independent cells (one per arm × training seed, each
//! training on the population mix, `experiment_plan.rs`), each trained and evaluated in
//! its own process (`experiment_cell.rs`), then merged: the baselines and the planner run
//! on the same held-out scenario seeds and the report is written. One code path serves
//! every way of running:
//!
//! - plain: every cell as a child process, `--jobs N` at a time, then the merge;
//! - `--list-cells`: one JSON line per cell (for a cluster driver);
//! - `--cell ID`: one cell into `OUT/cells/ID/` (skipped when already there);
//! - `--shard I/N`: cells I, I+N, … (Slurm job arrays, Kubernetes Indexed Jobs);
//! - `--merge`: `OUT/cells/*` into the report, refusing a missing cell or one from
//!   another plan and saying how to re-run it.
//!
//! The merge writes into `--out DIR`:
//!
//! - `report.md`: steps to 95% of PPO's final training return (bootstrap intervals over
//!   seeds), reward, latency and constraints per scenario and population against every
//!   baseline and the planner, and each paper claim beside our figure with a verdict
//!   computed from the data;
//! - `learning_curves.png`, `latency_<scenario>.png`, `wm_error.png`;
//! - `results.json` (every number behind the report) and `policies/*.json`.
//!
//! The presets' sizes live in `edgewise_rl::experiment`. Nothing is written before every
//! argument has been checked, and an existing report is kept unless `--force` is given.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use edgewise_atomic_file::write as write_atomic;
use edgewise_rl::WmConfig;
use edgewise_rl::experiment::{
    Arm, ExperimentPlan, Interval, bootstrap_ci95, final_value, first_value, fraction_of_the_way,
    mean_ci95, smooth, steps_to_threshold,
};
use mec::{Catalogue, EpisodeMetrics, PolicyKind};
use serde::{Deserialize, Serialize};

use crate::experiment_cell::{
    CELLS_DIR, CellState, Evaluation, Outcome, Run, cell_dir, evaluate_baseline, inspect, run_cell,
    short,
};
use crate::experiment_jobs::run_cells;
use crate::experiment_plan::{
    Cell, PlanArgs, Shard, arm_config, cells, command_line, find_cell, plan_hash, ppo_config,
    scenarios,
};
use crate::experiment_view::{LatencySeries, View};

#[derive(clap::Args, Debug)]
pub struct ExperimentArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Output directory (report.md, PNG plots, results.json, policies/, cells/, logs/).
    #[arg(long, required_unless_present = "list_cells")]
    pub out: Option<PathBuf>,
    /// Replace an existing report in OUT.
    #[arg(long)]
    pub force: bool,
    /// Cell processes to run at once (one thread each), for the plain run and --shard.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..),
          conflicts_with_all = ["list_cells", "cell", "merge", "from_results"])]
    pub jobs: u64,
    /// Print the plan's cells, one JSON object per line (id, algorithm, seed, population,
    /// plan hash), and exit.
    #[arg(long, conflicts_with_all = ["cell", "shard", "merge", "from_results", "force"])]
    pub list_cells: bool,
    /// Train and evaluate only this cell, into OUT/cells/ID (kept if already there for
    /// this plan).
    #[arg(long, value_name = "ID", conflicts_with_all = ["shard", "merge", "from_results", "force"])]
    pub cell: Option<String>,
    /// Run cells I, I+N, I+2N, … of the plan into OUT/cells (then --merge).
    #[arg(long, value_name = "I/N", conflicts_with_all = ["merge", "from_results", "force"])]
    pub shard: Option<Shard>,
    /// Do not train: merge the cells in OUT/cells, run the baselines, write the report.
    #[arg(long, conflicts_with = "from_results")]
    pub merge: bool,
    /// Do not train: re-render report.md and the plots from OUT/results.json.
    #[arg(long)]
    pub from_results: bool,
}

/// Every policy the learned ones are compared with: the baselines, then the clairvoyant
/// planner (a headroom reference, not deployable).
const BASELINES: [PolicyKind; 6] = [
    PolicyKind::Greedy,
    PolicyKind::Oracle,
    PolicyKind::AlwaysLocal,
    PolicyKind::AlwaysOffload,
    PolicyKind::Random,
    PolicyKind::Planner,
];
/// The deployable rules the latency claim is measured against: not the oracle (perfect
/// information one slot ahead) nor the planner (the real future).
const DEPLOYABLE: [PolicyKind; 4] = [
    PolicyKind::AlwaysLocal,
    PolicyKind::AlwaysOffload,
    PolicyKind::Random,
    PolicyKind::Greedy,
];
/// Points of the moving average used for steps-to-threshold and final returns.
const SMOOTH: usize = 5;
/// "Converged": this fraction of the way from PPO's first training return to its final.
const TARGET: f64 = 0.95;
/// Bootstrap resamples and seed (every interval in the report regenerates exactly).
const RESAMPLES: usize = 2000;
const BOOTSTRAP_SEED: u64 = 16;
/// The paper's claims.
const CLAIM_STEPS_RATIO: f64 = 0.5;
const CLAIM_REWARD_GAIN: f64 = 0.158;
/// The latency claim's lower end (12–30% lower: a larger cut meets it too).
const CLAIM_LATENCY_CUT: f64 = 0.12;

/// An arm's learner settings, recorded with the results.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ArmInfo {
    arm: Arm,
    epochs: usize,
    minibatches: usize,
    /// Optimizer steps per update on the actor-critic.
    actor_critic_steps: usize,
    /// Optimizer steps per update on the world model.
    world_model_steps: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Results {
    plan: ExperimentPlan,
    slots: usize,
    arms: Vec<ArmInfo>,
    /// Baseline (and planner) → scenario → population → metrics per held-out seed.
    baselines: BTreeMap<String, Evaluation>,
    /// One per cell, in cell order.
    runs: Vec<Run>,
    /// Wall time of the command that wrote these results (training included unless it
    /// was a `--merge` of cells trained elsewhere).
    total_wall_s: f64,
}

/// One line of `--list-cells`.
#[derive(Serialize)]
struct ListedCell<'a> {
    #[serde(flatten)]
    cell: &'a Cell,
    train_populations: &'a [usize],
    env_steps: u64,
    plan_hash: &'a str,
}

/// Re-render the report and plots of a finished experiment from its results.json.
fn rerender(out: &Path) -> anyhow::Result<()> {
    let path = out.join("results.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let results: Results =
        serde_json::from_slice(&text).with_context(|| format!("in {}", path.display()))?;
    let plots = crate::plots::write_all(out, &results_view(&results))?;
    let report_path = out.join("report.md");
    write_atomic(&report_path, render_report(&results, &plots).as_bytes())?;
    println!("re-rendered {}", report_path.display());
    Ok(())
}

pub fn run(args: &ExperimentArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let out = args.out.as_deref();
    if args.from_results {
        return rerender(out.context("--from-results needs --out")?);
    }
    let plan = args.plan.plan()?;
    let hash = plan_hash(&plan)?;
    if args.list_cells {
        for cell in &cells(&plan) {
            let line = ListedCell {
                cell,
                train_populations: &plan.train_populations,
                env_steps: plan.env_steps,
                plan_hash: &hash,
            };
            println!("{}", serde_json::to_string(&line)?);
        }
        return Ok(());
    }
    let out = out.context("--out is required")?;
    let jobs = usize::try_from(args.jobs).unwrap_or(usize::MAX);
    if let Some(id) = &args.cell {
        let cell = find_cell(&plan, id)?;
        let dir = cell_dir(out, id);
        match run_cell(&plan, &hash, &cell, out)? {
            Outcome::Trained => println!("cell {id}: wrote {}", dir.display()),
            Outcome::AlreadyDone => println!(
                "cell {id}: already in {} for this plan ({}), kept",
                dir.display(),
                short(&hash)
            ),
        }
        return Ok(());
    }
    if let Some(shard) = args.shard {
        let mine = shard.select(&cells(&plan));
        let ids: Vec<&str> = mine.iter().map(|c| c.id.as_str()).collect();
        println!(
            "shard {}/{}: {} cells ({})",
            shard.index,
            shard.count,
            mine.len(),
            ids.join(", ")
        );
        run_cells(&plan, &hash, &mine, out, jobs)?;
        println!(
            "shard {}/{} done; when every shard is, merge with: {}",
            shard.index,
            shard.count,
            command_line(&plan, &["--merge", "--out", &out.display().to_string()])
        );
        return Ok(());
    }
    let report_path = out.join("report.md");
    if report_path.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to replace it (or choose another --out)",
            report_path.display()
        );
    }
    if !args.merge {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        run_cells(&plan, &hash, &cells(&plan), out, jobs)?;
    }
    merge(&plan, &hash, out, started)
}

/// Read every cell of the plan from `out` (refusing missing cells and cells of another
/// plan), run the baselines, and write results.json, the policies, the plots and the
/// report.
fn merge(plan: &ExperimentPlan, hash: &str, out: &Path, started: Instant) -> anyhow::Result<()> {
    let all = cells(plan);
    let out_arg = out.display().to_string();
    let mut runs = Vec::new();
    let mut policies = Vec::new();
    let mut problems = Vec::new();
    for c in &all {
        let rerun = command_line(plan, &["--cell", &c.id, "--out", &out_arg]);
        let dir = cell_dir(out, &c.id);
        match inspect(out, &c.id, hash) {
            CellState::Done { run, policy } => {
                runs.push(*run);
                policies.push((c.id.clone(), policy));
            }
            CellState::Missing => problems.push(format!(
                "cell {} is missing ({} has no result): run it with {rerun}",
                c.id,
                dir.display()
            )),
            CellState::OtherPlan(other) => problems.push(format!(
                "cell {} in {} was made by another plan (hash {}, this plan {}): re-run it \
                 with {rerun} (which replaces it)",
                c.id,
                dir.display(),
                short(&other),
                short(hash)
            )),
            CellState::Broken(why) => problems.push(format!(
                "cell {} is unusable ({why}): re-run it with {rerun} (which replaces it)",
                c.id
            )),
        }
    }
    if !problems.is_empty() {
        bail!(
            "cannot merge {}: {} of {} cells are not ready\n  {}",
            out.display(),
            problems.len(),
            all.len(),
            problems.join("\n  ")
        );
    }
    warn_about_strangers(out, &all);

    let cat = Catalogue::default_catalogue();
    let configs = scenarios(plan)?;
    let mut baselines = BTreeMap::new();
    for kind in BASELINES {
        baselines.insert(
            kind.to_string(),
            evaluate_baseline(kind, plan, &configs, &cat)?,
        );
    }
    let policy_dir = out.join("policies");
    std::fs::create_dir_all(&policy_dir)
        .with_context(|| format!("creating {}", policy_dir.display()))?;
    for (run, (_, bytes)) in runs.iter().zip(&policies) {
        write_atomic(&out.join(&run.policy), bytes)?;
    }
    let wm = WmConfig::default();
    let arms = plan
        .arms
        .iter()
        .map(|&arm| {
            let c = arm_config(plan, arm);
            let (actor_critic_steps, world_model_steps) =
                arm.gradient_steps(&ppo_config(plan), &wm);
            ArmInfo {
                arm,
                epochs: c.epochs,
                minibatches: c.minibatches,
                actor_critic_steps,
                world_model_steps,
            }
        })
        .collect();
    let results = Results {
        plan: plan.clone(),
        slots: configs[&plan.train_scenario]
            .values()
            .next()
            .map_or(0, |c| c.slots),
        arms,
        baselines,
        runs,
        total_wall_s: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&results)?;
    write_atomic(&out.join("results.json"), &json)?;
    let plots = crate::plots::write_all(out, &results_view(&results))?;
    let report = render_report(&results, &plots);
    let report_path = out.join("report.md");
    write_atomic(&report_path, report.as_bytes())?;
    println!(
        "experiment ({}): {} cells merged; this command took {:.1} min; wrote {}",
        results.plan.preset,
        all.len(),
        results.total_wall_s / 60.0,
        report_path.display()
    );
    Ok(())
}

/// Cell directories in `out` that this plan does not have (left by another plan) are
/// not merged; say so.
fn warn_about_strangers(out: &Path, all: &[Cell]) {
    let Ok(entries) = std::fs::read_dir(out.join(CELLS_DIR)) else {
        return;
    };
    let strangers: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.') && !all.iter().any(|c| &c.id == name))
        .collect();
    if !strangers.is_empty() {
        eprintln!(
            "note: {} holds cells this plan does not have, not merged: {}",
            out.join(CELLS_DIR).display(),
            strangers.join(", ")
        );
    }
}

/// One number per episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Reward,
    MeanLatency,
    P95Latency,
    EnergyViolation,
    /// 1 when the episode met both quality constraints (accuracy and hallucination).
    Qos,
}

fn metric_of(m: &EpisodeMetrics, metric: Metric) -> f64 {
    match metric {
        Metric::Reward => m.reward,
        Metric::MeanLatency => m.mean_latency_s,
        Metric::P95Latency => m.p95_latency_s,
        Metric::EnergyViolation => m.energy_violation_rate,
        Metric::Qos => {
            if m.accuracy_ok && m.hallucination_ok {
                1.0
            } else {
                0.0
            }
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Mean of `values` at the drawn indices.
#[allow(clippy::cast_precision_loss)]
fn mean_at(values: &[f64], idx: &[usize]) -> f64 {
    idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len().max(1) as f64
}

/// A statistic with its 95% bootstrap interval.
#[derive(Debug, Clone, Copy)]
struct Boot {
    value: f64,
    lo: f64,
    hi: f64,
}

impl Boot {
    fn fmt(self, f: impl Fn(f64) -> String) -> String {
        if self.value.is_finite() {
            format!("{} [{}, {}]", f(self.value), f(self.lo), f(self.hi))
        } else {
            "n/a".into()
        }
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:+.1}%", 100.0 * x)
    } else {
        "n/a".into()
    }
}

/// A latency relative to a reference's: "12.0% lower" / "7.2% higher".
fn relative_latency(latency: f64, reference: f64) -> String {
    let d = latency / reference - 1.0;
    if !d.is_finite() {
        "n/a".into()
    } else if d < 0.0 {
        format!("{:.1}% lower", -100.0 * d)
    } else {
        format!("{:.1}% higher", 100.0 * d)
    }
}

fn times(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}×")
    } else {
        "n/a".into()
    }
}

fn steps_fmt(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.0}")
    } else {
        "n/a".into()
    }
}

/// Steps to 95% of PPO's final training return, per arm.
struct Convergence {
    /// The threshold on the training episode return.
    threshold: f64,
    /// PPO's mean first and final training return.
    start: f64,
    end: f64,
    rows: Vec<ConvergenceRow>,
}

struct ConvergenceRow {
    arm: Arm,
    /// Mean steps (runs that never reach it count as the whole budget).
    steps: Boot,
    reached: usize,
    runs: usize,
    /// Mean steps relative to PPO's.
    ratio: Boot,
    final_return: Interval,
}

impl Results {
    fn runs_of(&self, arm: Arm) -> Vec<&Run> {
        self.runs.iter().filter(|r| r.arm == arm).collect()
    }

    /// Per training seed, the mean of `metric` over the held-out seeds.
    fn per_seed(&self, arm: Arm, scenario: &str, n: usize, metric: Metric) -> Vec<f64> {
        self.runs_of(arm)
            .iter()
            .filter_map(|r| r.eval.get(scenario)?.get(&n))
            .map(|ms| mean(&ms.iter().map(|m| metric_of(m, metric)).collect::<Vec<_>>()))
            .collect()
    }

    /// A learned arm's metric: interval over training seeds.
    fn learned(&self, arm: Arm, scenario: &str, n: usize, metric: Metric) -> Interval {
        mean_ci95(&self.per_seed(arm, scenario, n, metric))
    }

    /// A baseline's metric: interval over held-out seeds.
    fn baseline(&self, name: &str, scenario: &str, n: usize, metric: Metric) -> Interval {
        let v: Vec<f64> = self
            .baselines
            .get(name)
            .and_then(|b| b.get(scenario)?.get(&n))
            .map(|ms| ms.iter().map(|m| metric_of(m, metric)).collect())
            .unwrap_or_default();
        mean_ci95(&v)
    }

    fn policy(&self, name: &str, scenario: &str, n: usize, metric: Metric) -> Interval {
        match name.parse::<Arm>() {
            Ok(arm) => self.learned(arm, scenario, n, metric),
            Err(_) => self.baseline(name, scenario, n, metric),
        }
    }

    /// Every policy's name, in table order: the arms, then the baselines and the planner.
    fn names(&self) -> Vec<String> {
        self.plan
            .arms
            .iter()
            .map(ToString::to_string)
            .chain(BASELINES.iter().map(ToString::to_string))
            .collect()
    }

    /// The deployable baseline with the lowest mean latency among those meeting both
    /// quality constraints in at least a share `min_qos` of the evaluation episodes (0:
    /// every one), and that latency.
    fn fastest_baseline(
        &self,
        scenario: &str,
        n: usize,
        min_qos: f64,
    ) -> Option<(PolicyKind, f64)> {
        DEPLOYABLE
            .iter()
            .filter(|k| self.baseline(k.as_str(), scenario, n, Metric::Qos).mean >= min_qos - 1e-9)
            .map(|&k| {
                let l = self
                    .baseline(k.as_str(), scenario, n, Metric::MeanLatency)
                    .mean;
                (k, l)
            })
            .filter(|(_, l)| l.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Steps to [`TARGET`] of the way from PPO's first to its final training return, per
    /// arm, with seeded bootstrap intervals (PPO's threshold is re-estimated in every
    /// resample). `None` without a PPO arm.
    #[allow(clippy::cast_precision_loss)]
    fn convergence(&self) -> Option<Convergence> {
        let ppo = self.runs_of(Arm::Ppo);
        if ppo.is_empty() {
            return None;
        }
        let budget = self.plan.env_steps as f64;
        let firsts: Vec<f64> = ppo.iter().map(|r| first_value(&r.curve)).collect();
        let finals: Vec<f64> = ppo.iter().map(|r| final_value(&r.curve, SMOOTH)).collect();
        let threshold_of = |idx: &[usize]| {
            fraction_of_the_way(mean_at(&firsts, idx), mean_at(&finals, idx), TARGET)
        };
        let steps = |run: &Run, t: f64| {
            steps_to_threshold(&run.curve, t, SMOOTH).map_or(budget, |s| s as f64)
        };
        let all_ppo: Vec<usize> = (0..ppo.len()).collect();
        let threshold = threshold_of(&all_ppo);
        let mean_steps = |runs: &[&Run], idx: &[usize], t: f64| {
            idx.iter().map(|&i| steps(runs[i], t)).sum::<f64>() / idx.len().max(1) as f64
        };
        let rows = self
            .plan
            .arms
            .iter()
            .map(|&arm| {
                let runs = self.runs_of(arm);
                let all: Vec<usize> = (0..runs.len()).collect();
                let value = mean_steps(&runs, &all, threshold);
                let ratio_value = value / mean_steps(&ppo, &all_ppo, threshold);
                // PPO's own row draws one set of runs for both roles.
                let sizes = if arm == Arm::Ppo {
                    vec![ppo.len()]
                } else {
                    vec![ppo.len(), runs.len()]
                };
                let pick = |d: &[Vec<usize>]| -> (f64, f64) {
                    let t = threshold_of(&d[0]);
                    let own = d.last().map_or(&d[0], |x| x);
                    let m = mean_steps(&runs, own, t);
                    (m, m / mean_steps(&ppo, &d[0], t))
                };
                let (lo, hi) = bootstrap_ci95(&sizes, RESAMPLES, BOOTSTRAP_SEED, |d| pick(d).0);
                let (rlo, rhi) = bootstrap_ci95(&sizes, RESAMPLES, BOOTSTRAP_SEED, |d| pick(d).1);
                ConvergenceRow {
                    arm,
                    steps: Boot { value, lo, hi },
                    reached: runs
                        .iter()
                        .filter(|r| steps_to_threshold(&r.curve, threshold, SMOOTH).is_some())
                        .count(),
                    runs: runs.len(),
                    ratio: Boot {
                        value: ratio_value,
                        lo: rlo,
                        hi: rhi,
                    },
                    final_return: mean_ci95(
                        &runs
                            .iter()
                            .map(|r| final_value(&r.curve, SMOOTH))
                            .collect::<Vec<_>>(),
                    ),
                }
            })
            .collect();
        Some(Convergence {
            threshold,
            start: mean(&firsts),
            end: mean(&finals),
            rows,
        })
    }

    /// The relative eval-reward gain of `arm` over PPO on `scenario`: the mean over the
    /// evaluation populations of `(arm − PPO) / |PPO|`, with a bootstrap interval over
    /// training seeds; and the gain per population.
    fn reward_gain(&self, arm: Arm, scenario: &str) -> (Boot, Vec<(usize, f64)>) {
        let pops = &self.plan.eval_populations;
        let rows = |a: Arm| -> Vec<Vec<f64>> {
            pops.iter()
                .map(|&n| self.per_seed(a, scenario, n, Metric::Reward))
                .collect()
        };
        let (p, a) = (rows(Arm::Ppo), rows(arm));
        let (np, na) = (p.first().map_or(0, Vec::len), a.first().map_or(0, Vec::len));
        if np == 0 || na == 0 {
            let nan = Boot {
                value: f64::NAN,
                lo: f64::NAN,
                hi: f64::NAN,
            };
            return (nan, Vec::new());
        }
        let gain = |ip: &[usize], ia: &[usize]| -> Vec<f64> {
            p.iter()
                .zip(&a)
                .map(|(pv, av)| {
                    let (mp, ma) = (mean_at(pv, ip), mean_at(av, ia));
                    (ma - mp) / mp.abs()
                })
                .collect()
        };
        let (all_p, all_a): (Vec<usize>, Vec<usize>) = ((0..np).collect(), (0..na).collect());
        let per_pop = gain(&all_p, &all_a);
        let value = mean(&per_pop);
        let sizes = if arm == Arm::Ppo {
            vec![np]
        } else {
            vec![np, na]
        };
        let (lo, hi) = bootstrap_ci95(&sizes, RESAMPLES, BOOTSTRAP_SEED, |d| {
            mean(&gain(&d[0], d.last().map_or(&d[0], |x| x)))
        });
        (
            Boot { value, lo, hi },
            pops.iter().copied().zip(per_pop).collect(),
        )
    }

    /// The training-return reference lines: a baseline's held-out reward per slot on the
    /// training scenario, averaged over the training environments' populations, times the
    /// episode length (when the evaluation covers them).
    #[allow(clippy::cast_precision_loss)]
    fn reference_return(&self, name: &str) -> Option<f64> {
        let pops = self.plan.env_populations();
        let v: Vec<f64> = pops
            .iter()
            .map(|&n| {
                self.baseline(name, &self.plan.train_scenario, n, Metric::Reward)
                    .mean
            })
            .collect();
        v.iter()
            .all(|x| x.is_finite())
            .then(|| mean(&v) * self.slots as f64)
    }
}

fn results_view(r: &Results) -> View {
    let curves = r
        .plan
        .arms
        .iter()
        .map(|&a| {
            let cs = r
                .runs_of(a)
                .iter()
                .map(|run| smooth(&run.curve, SMOOTH))
                .collect();
            (a.to_string(), cs)
        })
        .collect();
    let refs = ["greedy", "oracle"]
        .iter()
        .filter_map(|&b| r.reference_return(b).map(|v| (b.to_owned(), v)))
        .collect();
    let wm_error = r
        .runs_of(Arm::WmPpo)
        .iter()
        .map(|run| run.wm_error.clone())
        .collect();
    let latency = r
        .plan
        .eval_scenarios
        .iter()
        .map(|scenario| {
            let series: LatencySeries = r
                .names()
                .into_iter()
                .map(|name| {
                    let pts = r
                        .plan
                        .eval_populations
                        .iter()
                        .map(|&n| (n, r.policy(&name, scenario, n, Metric::MeanLatency)))
                        .collect();
                    (name, pts)
                })
                .collect();
            (scenario.clone(), series)
        })
        .collect();
    View {
        trained_on: format!(
            "{} scenario, mix of {} devices",
            r.plan.train_scenario,
            join(&r.plan.train_populations, "/")
        ),
        curves,
        refs,
        wm_error,
        latency,
        env_steps: r.plan.env_steps,
    }
}

fn join<T: ToString>(v: &[T], sep: &str) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

/// Verdict on "WM-PPO converges about 50% faster" from the steps ratio and its interval.
fn verdict_convergence(ratio: Boot) -> String {
    if !ratio.value.is_finite() {
        "n/a".into()
    } else if ratio.hi < 1.0 && ratio.value <= CLAIM_STEPS_RATIO {
        "yes".into()
    } else if ratio.hi < 1.0 {
        "faster, but by less than the claimed 50%".into()
    } else if ratio.lo > 1.0 {
        "no: slower".into()
    } else {
        "no: no significant difference".into()
    }
}

/// Verdict on "+15.8% final reward" from the gain and its interval.
fn verdict_reward(gain: Boot) -> String {
    if !gain.value.is_finite() {
        "n/a".into()
    } else if gain.lo > 0.0 && gain.value >= CLAIM_REWARD_GAIN {
        "yes".into()
    } else if gain.lo > 0.0 {
        "higher, but by less than the claimed 15.8%".into()
    } else if gain.hi < 0.0 {
        "no: lower".into()
    } else {
        "no: no significant difference".into()
    }
}

/// One (scenario, population) of the latency claim for one arm.
struct LatencyCell {
    scenario: String,
    n: usize,
    latency: f64,
    /// Share of evaluation episodes meeting both quality constraints.
    qos: f64,
    /// The fastest deployable baseline, whatever its constraints.
    fastest: Option<(PolicyKind, f64)>,
    /// The fastest deployable baseline meeting the quality constraints at least as often.
    compliant: Option<(PolicyKind, f64)>,
}

impl LatencyCell {
    fn new(r: &Results, arm: Arm, scenario: &str, n: usize) -> Self {
        let qos = r.learned(arm, scenario, n, Metric::Qos).mean;
        Self {
            scenario: scenario.to_owned(),
            n,
            latency: r.learned(arm, scenario, n, Metric::MeanLatency).mean,
            qos,
            fastest: r.fastest_baseline(scenario, n, 0.0),
            compliant: if qos.is_finite() {
                r.fastest_baseline(scenario, n, qos)
            } else {
                None
            },
        }
    }

    /// Both quality constraints met in every evaluation episode of every training seed.
    fn qos_met(&self) -> bool {
        self.qos >= 1.0 - 1e-9
    }

    /// The claim at this cell, against `reference`: constraints met and a latency at
    /// least 12% below the reference's.
    fn met(&self, reference: Option<(PolicyKind, f64)>) -> bool {
        self.qos_met()
            && reference.is_some_and(|(_, l)| 1.0 - self.latency / l >= CLAIM_LATENCY_CUT)
    }

    /// "1.31 s vs greedy 1.26 s (4.6% higher)".
    fn against(&self, reference: Option<(PolicyKind, f64)>) -> String {
        match reference {
            Some((k, l)) => format!("{} ({k}, {l:.2} s)", relative_latency(self.latency, l)),
            None => "no such baseline".into(),
        }
    }
}

fn latency_cells(r: &Results, arm: Arm) -> Vec<LatencyCell> {
    r.plan
        .eval_scenarios
        .iter()
        .flat_map(|scenario| {
            r.plan
                .eval_populations
                .iter()
                .map(move |&n| LatencyCell::new(r, arm, scenario, n))
        })
        .collect()
}

/// The verdict on the latency claim over `cells` against the reference `pick` chooses.
fn verdict_latency(
    cells: &[LatencyCell],
    pick: impl Fn(&LatencyCell) -> Option<(PolicyKind, f64)>,
) -> String {
    let met = cells.iter().filter(|c| c.met(pick(c))).count();
    if cells.is_empty() {
        "n/a".to_owned()
    } else if met == cells.len() {
        "yes".to_owned()
    } else if met > 0 {
        format!(
            "partly: {met} of {} scenario × population cells",
            cells.len()
        )
    } else {
        "no".to_owned()
    }
}

#[allow(clippy::too_many_lines, clippy::cast_precision_loss)]
fn render_report(r: &Results, plots: &[PathBuf]) -> String {
    let p = &r.plan;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# edgewise experiment: PPO vs WM-PPO vs an equal-gradient-steps PPO control\n"
    );
    let _ = writeln!(
        s,
        "Preset `{}`: arms {}, training seeds {:?}; every run trains on the `{}` scenario{} with \
         a mix of {} devices (one population per parallel environment, {} environments × \
         128-step rollouts), {} real environment steps per run. Evaluation: every learned \
         policy, run greedily (argmax), and every baseline and the clairvoyant planner on \
         held-out scenario seeds {}..={} ({} seeds) at {} devices on the {} scenario(s), {} \
         slots per episode. Training: {} runs, one process each, {:.1} min summed over runs \
         (longest {:.1} min); the command that wrote this report took {:.1} min.\n",
        p.preset,
        join(&p.arms, ", "),
        p.seeds,
        p.train_scenario,
        if p.externality_credit > 0.0 {
            format!(
                " (externality credit {} in the training rewards, settled {})",
                p.externality_credit,
                if p.externality_next_slot {
                    "in the next slot"
                } else {
                    "at the slot's end"
                }
            )
        } else {
            String::new()
        },
        join(&p.train_populations, "/"),
        p.num_envs,
        p.env_steps,
        p.eval_seeds.first().copied().unwrap_or(0),
        p.eval_seeds.last().copied().unwrap_or(0),
        p.eval_seeds.len(),
        join(&p.eval_populations, "/"),
        join(&p.eval_scenarios, " and "),
        r.slots,
        r.runs.len(),
        r.runs.iter().map(|x| x.wall_s).sum::<f64>() / 60.0,
        r.runs.iter().map(|x| x.wall_s).fold(0.0, f64::max) / 60.0,
        r.total_wall_s / 60.0
    );
    let _ = writeln!(
        s,
        "Command: `{}` (numbers regenerate exactly: every run is seeded and runs in its own \
         process; add `--jobs N` to run N at once). ± is a 95% Student-t interval over \
         training seeds (over held-out seeds for the baselines and the planner); [a, b] is a \
         95% percentile bootstrap interval over training seeds ({RESAMPLES} resamples, seed \
         {BOOTSTRAP_SEED}).\n",
        command_line(p, &["--out", "DIR"])
    );

    // Arms.
    let _ = writeln!(s, "## Arms: gradient steps per update\n");
    let _ = writeln!(
        s,
        "WM-PPO's counterfactual advantages change PPO's targets, not its batches: per update \
         it takes PPO's actor-critic steps (epochs × minibatches) plus the world model's Adam \
         steps on its ensemble. The control `ppo-eqgrad` is PPO with as many optimizer steps \
         per update as WM-PPO in total, taken as extra epochs over the same minibatch size.\n"
    );
    let _ = writeln!(
        s,
        "| arm | epochs × minibatches | actor-critic steps | world-model steps | total | wall time per run (s) |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---|");
    for a in &r.arms {
        let walls: Vec<f64> = r.runs_of(a.arm).iter().map(|x| x.wall_s).collect();
        let _ = writeln!(
            s,
            "| {} | {} × {} | {} | {} | {} | {} |",
            a.arm,
            a.epochs,
            a.minibatches,
            a.actor_critic_steps,
            a.world_model_steps,
            a.actor_critic_steps + a.world_model_steps,
            mean_ci95(&walls).fmt(0)
        );
    }
    let _ = writeln!(s);

    // Convergence.
    let conv = r.convergence();
    let _ = writeln!(s, "## Convergence (equal real environment steps)\n");
    if let Some(c) = &conv {
        let _ = writeln!(
            s,
            "Threshold: {:.0}% of the way from PPO's first training return ({:.2}) to its final \
             one ({:.2}, the mean of each run's last {SMOOTH} points), i.e. an episode return \
             of {:.2}; a run reaches it when its {SMOOTH}-point moving average does. A run \
             that never does counts as the whole budget ({} steps), so a mean with such runs \
             is a lower bound. The threshold is re-estimated from the resampled PPO runs in \
             every bootstrap round.\n",
            100.0 * TARGET,
            c.start,
            c.end,
            c.threshold,
            p.env_steps
        );
        let _ = writeln!(
            s,
            "| arm | steps to 95% of PPO's final return | seeds reaching it | steps relative to PPO | final training return |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for row in &c.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {}/{} | {} | {} |",
                row.arm,
                row.steps.fmt(steps_fmt),
                row.reached,
                row.runs,
                row.ratio.fmt(times),
                row.final_return.fmt(2)
            );
        }
        let _ = writeln!(s);
    } else {
        let _ = writeln!(
            s,
            "(No PPO arm in this plan: nothing to measure against.)\n"
        );
    }
    let wm_first: Vec<f64> = r
        .runs_of(Arm::WmPpo)
        .iter()
        .filter_map(|x| x.wm_error.first().map(|e| e.1))
        .collect();
    let wm_last: Vec<f64> = r
        .runs_of(Arm::WmPpo)
        .iter()
        .filter_map(|x| x.wm_error.last().map(|e| e.1))
        .collect();
    if !wm_first.is_empty() {
        let _ = writeln!(
            s,
            "World-model validation error (held out: each new rollout before training on it): \
             first measured iteration {}, last iteration {}.\n",
            mean_ci95(&wm_first).fmt(3),
            mean_ci95(&wm_last).fmt(3)
        );
    }

    // Reward per scenario.
    let names = r.names();
    let _ = writeln!(s, "## Reward per slot on held-out seeds\n");
    let _ = writeln!(
        s,
        "Higher is better. The planner is a clairvoyant reference (it sees the real future), \
         not a deployable policy.\n"
    );
    for scenario in &p.eval_scenarios {
        let _ = writeln!(s, "### `{scenario}` scenario\n");
        let _ = writeln!(s, "| devices | {} |", names.join(" | "));
        let _ = writeln!(s, "|---:|{}", "---|".repeat(names.len()));
        for &n in &p.eval_populations {
            let cells: Vec<String> = names
                .iter()
                .map(|name| r.policy(name, scenario, n, Metric::Reward).fmt(3))
                .collect();
            let _ = writeln!(s, "| {n} | {} |", cells.join(" | "));
        }
        let _ = writeln!(s);
    }

    // Latency and constraints against the best deployable baseline.
    let _ = writeln!(s, "## Latency against the best deployable baseline\n");
    let _ = writeln!(
        s,
        "Deployable baselines: {}; the oracle and the planner are references, not rules a \
         device could run. Each arm's mean latency is compared with the fastest of them \
         (whatever its constraints: always-local is fast but far below the accuracy limit) \
         and with the fastest that meets both quality constraints in at least as many \
         evaluation episodes as the arm. QoS is the share of evaluation episodes meeting both \
         (accuracy and hallucination); the claim needs QoS 1.00 and a latency at least 12% \
         lower.\n",
        join(&DEPLOYABLE, ", ")
    );
    let mut header = vec!["scenario".to_owned(), "devices".to_owned()];
    for a in &p.arms {
        header.push(format!("{a} latency (s)"));
        header.push(format!("{a} QoS"));
        header.push(format!("{a} vs the fastest"));
        header.push(format!("{a} vs the fastest as compliant"));
    }
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|---|---:|{}", "---:|---:|---|---|".repeat(p.arms.len()));
    let per_arm: Vec<Vec<LatencyCell>> = p.arms.iter().map(|&a| latency_cells(r, a)).collect();
    for k in 0..per_arm.first().map_or(0, Vec::len) {
        let c0 = &per_arm[0][k];
        let mut row = vec![c0.scenario.clone(), c0.n.to_string()];
        for (&a, cells) in p.arms.iter().zip(&per_arm) {
            let c = &cells[k];
            row.push(r.learned(a, &c.scenario, c.n, Metric::MeanLatency).fmt(2));
            row.push(format!("{:.2}", c.qos));
            row.push(c.against(c.fastest));
            row.push(c.against(c.compliant));
        }
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    let _ = writeln!(s);

    // Per population detail.
    let _ = writeln!(s, "## Every metric, per scenario and population\n");
    let _ = writeln!(
        s,
        "Energy violation = share of device budget windows over budget (a soft, penalised \
         constraint); QoS satisfied = share of episodes meeting both quality constraints.\n"
    );
    for scenario in &p.eval_scenarios {
        for &n in &p.eval_populations {
            let _ = writeln!(s, "### `{scenario}`, {n} devices\n");
            let _ = writeln!(
                s,
                "| policy | reward per slot | mean latency (s) | p95 latency (s) | energy violation | QoS satisfied |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|");
            for name in &names {
                let _ = writeln!(
                    s,
                    "| {name} | {} | {} | {} | {} | {} |",
                    r.policy(name, scenario, n, Metric::Reward).fmt(3),
                    r.policy(name, scenario, n, Metric::MeanLatency).fmt(2),
                    r.policy(name, scenario, n, Metric::P95Latency).fmt(2),
                    r.policy(name, scenario, n, Metric::EnergyViolation).fmt(3),
                    r.policy(name, scenario, n, Metric::Qos).fmt(2),
                );
            }
            let _ = writeln!(s);
        }
    }

    render_claims(&mut s, r, conv.as_ref());

    let _ = writeln!(s, "## Plots\n");
    for pl in plots {
        let name = pl.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(s, "![{name}]({name})\n");
    }
    s
}

/// The paper's claims beside our figures, each with a verdict computed from the data.
#[allow(clippy::too_many_lines)]
fn render_claims(s: &mut String, r: &Results, conv: Option<&Convergence>) {
    let p = &r.plan;
    let _ = writeln!(s, "## Beside the paper\n");
    if !(p.arms.contains(&Arm::Ppo) && p.arms.contains(&Arm::WmPpo)) {
        let _ = writeln!(s, "(Needs both the PPO and the WM-PPO arm.)\n");
        return;
    }
    let row_of = |arm: Arm| conv.and_then(|c| c.rows.iter().find(|x| x.arm == arm));
    let _ = writeln!(s, "| claim (paper) | ours | verdict |\n|---|---|---|");
    // Convergence.
    if let (Some(ppo), Some(wm)) = (row_of(Arm::Ppo), row_of(Arm::WmPpo)) {
        let _ = writeln!(
            s,
            "| WM-PPO converges about 50% faster than PPO (reaches PPO's final reward in ≤ 50% of \
             its steps) | to 95% of PPO's final training return: WM-PPO {} steps ({}/{} seeds), \
             PPO {} ({}/{}); ratio {} | {} |",
            wm.steps.fmt(steps_fmt),
            wm.reached,
            wm.runs,
            ppo.steps.fmt(steps_fmt),
            ppo.reached,
            ppo.runs,
            wm.ratio.fmt(times),
            verdict_convergence(wm.ratio)
        );
    }
    // Final reward.
    let mut figures = Vec::new();
    let mut verdicts = Vec::new();
    for scenario in &p.eval_scenarios {
        let (g, per_pop) = r.reward_gain(Arm::WmPpo, scenario);
        let pops: Vec<String> = per_pop
            .iter()
            .map(|(n, x)| format!("{n}: {}", pct(*x)))
            .collect();
        figures.push(format!(
            "`{scenario}`: {} ({})",
            g.fmt(pct),
            pops.join(", ")
        ));
        verdicts.push(format!("`{scenario}`: {}", verdict_reward(g)));
    }
    let _ = writeln!(
        s,
        "| +15.8% final reward over PPO | held-out reward per slot, WM-PPO vs PPO, mean over \
         populations of the relative gain — {} | {} |",
        figures.join("; "),
        verdicts.join("; ")
    );
    // Latency.
    let cells = latency_cells(r, Arm::WmPpo);
    let figure: Vec<String> = cells
        .iter()
        .map(|c| {
            format!(
                "`{}` {}: {:.2} s{}, {} / {}",
                c.scenario,
                c.n,
                c.latency,
                if c.qos_met() { "" } else { " (QoS broken)" },
                c.against(c.fastest),
                c.against(c.compliant)
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "| latency 12–30% below the best fixed baseline while meeting the constraints | WM-PPO \
         mean latency against the fastest deployable baseline / the fastest meeting the \
         quality constraints as often — {} | against the fastest as compliant: {}; against \
         the fastest: {} |",
        figure.join("; "),
        verdict_latency(&cells, |c| c.compliant),
        verdict_latency(&cells, |c| c.fastest)
    );
    // Constraints.
    let broken: Vec<String> = cells
        .iter()
        .filter(|c| !c.qos_met())
        .map(|c| format!("`{}` {}", c.scenario, c.n))
        .collect();
    let energy: Vec<String> = p
        .eval_scenarios
        .iter()
        .map(|sc| {
            let v: Vec<String> = p
                .eval_populations
                .iter()
                .map(|&n| {
                    format!(
                        "{:.3}",
                        r.learned(Arm::WmPpo, sc, n, Metric::EnergyViolation).mean
                    )
                })
                .collect();
            format!("`{sc}` {}", v.join("/"))
        })
        .collect();
    let _ = writeln!(
        s,
        "| the constraints are met | WM-PPO meets both quality constraints in every evaluation \
         episode {}; energy-violation rate per population {} | {} |",
        if broken.is_empty() {
            "everywhere".to_owned()
        } else {
            format!("except at {}", broken.join(", "))
        },
        energy.join("; "),
        if cells.is_empty() {
            "n/a".to_owned()
        } else if broken.is_empty() {
            "yes".to_owned()
        } else {
            format!("no: broken in {} of {} cells", broken.len(), cells.len())
        }
    );
    // The control.
    if let (Some(ctrl), Some(wm)) = (row_of(Arm::PpoEqualGrad), row_of(Arm::WmPpo)) {
        let g: Vec<String> = p
            .eval_scenarios
            .iter()
            .map(|sc| format!("`{sc}` {}", r.reward_gain(Arm::PpoEqualGrad, sc).0.fmt(pct)))
            .collect();
        let verdict = if wm.ratio.hi < ctrl.ratio.lo {
            "WM-PPO converges faster than the control (intervals apart)"
        } else if ctrl.ratio.hi < wm.ratio.lo {
            "the control converges faster than WM-PPO (intervals apart)"
        } else {
            "no clear difference in convergence between WM-PPO and the control (intervals overlap)"
        };
        let _ = writeln!(
            s,
            "| (not a paper claim) what WM-PPO's extra gradient steps alone buy: PPO with as \
             many steps per update | control steps relative to PPO {} (WM-PPO {}); reward vs \
             PPO {} | {verdict} |",
            ctrl.ratio.fmt(times),
            wm.ratio.fmt(times),
            g.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "\nThe comparison is at equal *real* environment steps; WM-PPO and the control cost \
         more compute per step (see the wall times). The paper's environment and baselines \
         are not published in enough detail to replicate exactly.\n"
    );
}
