//! The training race: PPO and WM-PPO learn the page's current scenario side by side, on
//! the same seed and the same budget of real environment steps. [`TrainRace`] owns both
//! learners and their simulators; the trainer worker ([`super::worker`]) steps it one
//! iteration at a time so the worker stays responsive. Plain Rust, tested natively.

use std::fmt;

use edgewise_env::{EpisodeInfo, VecEnv as _};
use edgewise_rl::burn::tensor::Device;
use edgewise_rl::{IterationStats, Ppo, PpoConfig, WmConfig};
use mec::{Catalogue, MecVecEnv};

use super::curve::CurvePoint;
use super::protocol::{Algo, IterationReport, TrainRequest};
use crate::scenario::Scenario;
use crate::simulation::race::check_policy;

/// Weight of the externality credit in both learners' rewards: an offloading device also
/// pays for the delay it causes the others (`reward.externality_credit`), as in the
/// training of the shipped policies. Evaluation rewards never include it.
pub const EXTERNALITY_CREDIT: f64 = 1.0;

/// When the credit prices the edge work an offload leaves behind: settled against the
/// next slot, as the shipped policies were trained (`reward.externality_settlement`).
pub const EXTERNALITY_SETTLEMENT: mec::ExternalitySettlement = mec::ExternalitySettlement::NextSlot;

/// Simulators each learner steps in parallel (as `edgewise train --env mec`).
pub const TRAIN_ENVS: usize = 4;

/// Training budgets the page offers (real environment steps per algorithm); a multiple
/// of one iteration (`TRAIN_ENVS` × the default 128-step rollout = 512 steps).
pub const BUDGETS: [u64; 4] = [5_120, 12_800, 25_600, 51_200];

/// The budget selected when the page opens.
pub const DEFAULT_BUDGET: u64 = 12_800;

/// One learner and its own simulators.
struct Lane {
    algo: Algo,
    ppo: Ppo,
    env: MecVecEnv,
    finished: Vec<EpisodeInfo>,
}

/// Both learners on one scenario, seed and budget.
pub struct TrainRace {
    scenario: Scenario,
    budget: u64,
    lanes: Vec<Lane>,
}

impl fmt::Debug for TrainRace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrainRace")
            .field("scenario", &self.scenario)
            .field("budget", &self.budget)
            .field("env_steps", &self.env_steps())
            .finish_non_exhaustive()
    }
}

impl TrainRace {
    /// Real environment steps in one iteration of either learner.
    #[must_use]
    pub fn steps_per_iteration() -> u64 {
        (TRAIN_ENVS * PpoConfig::default().rollout_steps) as u64
    }

    /// A race on `request.scenario` (clamped): PPO with the default [`PpoConfig`] and
    /// WM-PPO with the default [`WmConfig`] on top of the same PPO settings, both seeded
    /// with the scenario's seed and stepping identical simulators (same seeds, so the same
    /// arrivals and channels), learning on `device`.
    ///
    /// # Errors
    /// A message naming what was wrong when the scenario or the budget is rejected.
    pub fn new(request: &TrainRequest, device: &Device) -> Result<Self, String> {
        if request.env_steps == 0 {
            return Err("the training budget must be at least one environment step".into());
        }
        let scenario = request.scenario.clamped();
        let per_iter = Self::steps_per_iteration();
        let budget = request.env_steps.div_ceil(per_iter) * per_iter;
        let mut sim = scenario.config();
        let mut catalogue = Catalogue::default_catalogue();
        // The visitor's device joins as it does in the simulation race.
        if let Some(device) = &request.this_device {
            device.apply(&mut sim, &mut catalogue, scenario.get("budget"))?;
        }
        // Paid as the shipped policies were trained (`www/policies/README.md`).
        sim.reward.externality_credit = EXTERNALITY_CREDIT;
        sim.reward.externality_settlement = EXTERNALITY_SETTLEMENT;
        sim.validate()
            .map_err(|e| format!("the simulator rejected this scenario: {e}"))?;
        let config = PpoConfig {
            total_env_steps: budget,
            ..PpoConfig::default()
        };
        config
            .validate()
            .map_err(|e| format!("invalid PPO settings: {e}"))?;
        let mut lanes = Vec::with_capacity(2);
        for algo in Algo::ALL {
            let env = MecVecEnv::new(&sim, &catalogue, TRAIN_ENVS, scenario.seed)
                .map_err(|e| format!("the simulator rejected this scenario: {e}"))?;
            let ppo = match algo {
                Algo::Ppo => Ppo::new(config.clone(), &env, device, scenario.seed),
                Algo::WmPpo => Ppo::with_world_model(
                    config.clone(),
                    WmConfig::default(),
                    &env,
                    device,
                    scenario.seed,
                ),
            }
            .map_err(|e| format!("could not set up {algo}: {e}"))?;
            lanes.push(Lane {
                algo,
                ppo,
                env,
                finished: Vec::new(),
            });
        }
        Ok(Self {
            scenario,
            budget,
            lanes,
        })
    }

    /// The scenario trained on (clamped).
    #[must_use]
    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// Real environment steps per algorithm the race runs to.
    #[must_use]
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Real environment steps each learner has taken, in [`Algo::ALL`] order.
    #[must_use]
    pub fn env_steps(&self) -> Vec<(Algo, u64)> {
        self.lanes
            .iter()
            .map(|l| (l.algo, l.ppo.env_steps()))
            .collect()
    }

    /// The learner to step next: the one that is behind (PPO on a tie), or none once
    /// both reached the budget. Stepping them in turn keeps their curves in sync.
    #[must_use]
    pub fn next(&self) -> Option<Algo> {
        self.lanes
            .iter()
            .filter(|l| l.ppo.env_steps() < self.budget)
            .min_by_key(|l| l.ppo.env_steps())
            .map(|l| l.algo)
    }

    /// Whether both learners reached the budget.
    #[must_use]
    pub fn done(&self) -> bool {
        self.next().is_none()
    }

    /// Run one iteration (rollout + update) of `algo`.
    ///
    /// # Errors
    /// A message when the learner fails (it does not on a consistent race).
    pub fn step(&mut self, algo: Algo) -> Result<IterationReport, String> {
        let lane = self
            .lanes
            .iter_mut()
            .find(|l| l.algo == algo)
            .ok_or_else(|| format!("{algo} is not part of this race"))?;
        let stats: IterationStats = lane
            .ppo
            .iterate(&mut lane.env)
            .map_err(|e| format!("{algo} failed: {e}"))?;
        let before = lane.finished.len();
        lane.ppo.drain_finished(&mut lane.finished);
        #[allow(clippy::cast_precision_loss)]
        let points = lane.finished[before..]
            .iter()
            .map(|e| CurvePoint {
                env_steps: stats.env_steps,
                reward: e.episode_return / e.length.max(1) as f64,
            })
            .collect();
        Ok(IterationReport {
            algo,
            iteration: stats.iteration,
            env_steps: stats.env_steps,
            points,
            approx_kl: stats.approx_kl,
            wm_error: stats.wm_error,
            wm_trust: stats.wm_trust,
            imagined: stats.imagined,
        })
    }

    /// `algo`'s current policy as an `edgewise-policy` file for the simulation race
    /// (meta: `algo`, `env` = `mec`, `trained_in` = `browser`, the scenario).
    ///
    /// # Errors
    /// When `algo` is not in the race or the policy does not fit the simulator.
    pub fn policy_text(&self, algo: Algo) -> Result<String, String> {
        let lane = self
            .lanes
            .iter()
            .find(|l| l.algo == algo)
            .ok_or_else(|| format!("{algo} is not part of this race"))?;
        let mut file = lane.ppo.policy();
        file.meta.insert("algo".into(), algo.key().into());
        file.meta.insert("env".into(), "mec".into());
        file.meta.insert("trained_in".into(), "browser".into());
        if let Ok(scenario) = serde_json::to_value(self.scenario) {
            file.meta.insert("scenario".into(), scenario);
        }
        if let Some(why) = check_policy(&file) {
            return Err(format!(
                "the {algo} policy cannot drive the simulator: {why}"
            ));
        }
        String::from_utf8(file.to_bytes()).map_err(|e| format!("policy file is not UTF-8: {e}"))
    }

    /// Both policies (see [`TrainRace::policy_text`]).
    ///
    /// # Errors
    /// As [`TrainRace::policy_text`].
    pub fn policies(&self) -> Result<Vec<(Algo, String)>, String> {
        Algo::ALL
            .into_iter()
            .map(|a| self.policy_text(a).map(|t| (a, t)))
            .collect()
    }

    /// The number of agents each learner's simulators hold (devices × environments).
    #[must_use]
    pub fn agents(&self) -> usize {
        self.lanes
            .first()
            .map_or(0, |l| l.env.num_envs() * l.env.agents_per_env())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewise_policy::PolicyFile;

    fn small() -> TrainRequest {
        TrainRequest {
            scenario: Scenario::default().with("devices", 10.0),
            this_device: None,
            env_steps: 1_024,
        }
    }

    /// The visitor's measured device is trained on as the simulation races it: its class
    /// is in every learner's simulators, and the policies still export.
    #[test]
    fn the_visitors_device_is_trained_on() {
        let device = crate::simulation::this_device::sample_device();
        let request = TrainRequest {
            this_device: Some(device.clone()),
            ..small()
        };
        let race = TrainRace::new(&request, &edgewise_rl::cpu_device()).unwrap();
        for sim in race.lanes.iter().flat_map(|lane| lane.env.sims()) {
            let classes: Vec<&str> = sim
                .config()
                .classes
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            assert_eq!(
                classes.last(),
                Some(&device.class.name.as_str()),
                "{classes:?}"
            );
        }
    }

    fn run(request: &TrainRequest) -> (TrainRace, Vec<IterationReport>) {
        let device = edgewise_rl::cpu_device();
        let mut race = TrainRace::new(request, &device).unwrap();
        let mut reports = Vec::new();
        while let Some(algo) = race.next() {
            reports.push(race.step(algo).unwrap());
        }
        (race, reports)
    }

    #[test]
    fn budget_is_rounded_up_to_whole_iterations_and_rejects_zero() {
        let device = edgewise_rl::cpu_device();
        let race = TrainRace::new(
            &TrainRequest {
                env_steps: 1,
                ..small()
            },
            &device,
        )
        .unwrap();
        assert_eq!(race.budget(), TrainRace::steps_per_iteration());
        assert_eq!(race.agents(), TRAIN_ENVS * 10);
        let err = TrainRace::new(
            &TrainRequest {
                env_steps: 0,
                ..small()
            },
            &device,
        )
        .unwrap_err();
        assert!(err.contains("budget"), "{err}");
    }

    #[test]
    fn learners_alternate_take_equal_real_steps_and_export_usable_policies() {
        let (race, reports) = run(&small());
        let order: Vec<Algo> = reports.iter().map(|r| r.algo).collect();
        assert_eq!(order, [Algo::Ppo, Algo::WmPpo, Algo::Ppo, Algo::WmPpo]);
        assert_eq!(race.env_steps(), [(Algo::Ppo, 1_024), (Algo::WmPpo, 1_024)]);
        assert!(race.done());
        for (algo, text) in race.policies().unwrap() {
            let file = PolicyFile::load(text.as_bytes()).unwrap();
            assert_eq!(check_policy(&file), None);
            assert_eq!(file.meta_str("algo"), Some(algo.key()));
            assert_eq!(file.meta_str("trained_in"), Some("browser"));
        }
        // The world model only assists WM-PPO: PPO reports no model, WM-PPO measures one
        // once it has held-out data (from its second rollout on).
        for r in &reports {
            let measured = r.algo == Algo::WmPpo && r.iteration > 1;
            assert_eq!(r.wm_error.is_some(), measured, "{r:?}");
            if r.algo == Algo::Ppo {
                assert_eq!((r.imagined, r.wm_trust), (0, 0.0));
            }
        }
    }

    #[test]
    fn wm_ppo_learns_exactly_like_ppo_until_it_trusts_its_model() {
        let (_, reports) = run(&small());
        let mut compared = 0;
        for pair in reports.chunks(2) {
            let [ppo, wm] = pair else { continue };
            assert_eq!((ppo.algo, wm.algo), (Algo::Ppo, Algo::WmPpo));
            if wm.wm_trust > 0.0 {
                break;
            }
            assert_eq!(ppo.points, wm.points);
            assert_eq!(ppo.approx_kl.to_bits(), wm.approx_kl.to_bits());
            compared += 1;
        }
        assert!(compared > 0, "the model was trusted from the first rollout");
    }

    #[test]
    fn same_request_same_curves() {
        let (_, a) = run(&small());
        let (_, b) = run(&small());
        assert_eq!(a, b);
    }
}
