//! The race: one simulator ("lane") per policy, all on the same seed, so every policy
//! faces the same devices, queries and channels (the simulator draws them in an order
//! that never depends on actions). Runs in the simulation worker; plain Rust, tested
//! natively.

use std::collections::VecDeque;
use std::sync::Arc;

use edgewise_policy::{PolicyFile, PolicyScratch};
use mec::{Action, Catalogue, EpisodeMetrics, InOrder, OBS_DIM, SimConfig, Simulator};
use serde::{Deserialize, Serialize};

use super::class_tally::ClassTally;
use super::this_device::ThisDevice;
use crate::entrants::Entrant;
use crate::scenario::Scenario;

/// Slots in the latency moving average.
pub const LATENCY_WINDOW: usize = 10;

/// What one lane did in one slot (what the charts and the CSV export show).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlotRow {
    /// The slot just simulated (1-based).
    pub slot: u32,
    /// Queries scheduled this slot.
    pub queries: u32,
    /// Mean latency of this slot's queries, seconds (dropped ones count with the cap).
    pub latency_s: Option<f64>,
    /// Mean latency of the queries of the last [`LATENCY_WINDOW`] slots, seconds.
    pub latency_avg_s: Option<f64>,
    /// Energy spent in the current budget window as a fraction of the budget, mean over
    /// devices (1 = the whole budget).
    pub energy_frac: f64,
    /// Devices over their budget in the current window, fraction.
    pub over_budget: f64,
    /// Effective accuracy of the episode so far.
    pub accuracy: Option<f64>,
    /// Hallucination rate of the episode so far.
    pub hallucination: Option<f64>,
    /// Offloaded fraction of the episode so far.
    pub offload: Option<f64>,
}

/// A device as drawn in the network view.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeviceSnap {
    /// Position, metres (edge server at the origin).
    pub x_m: f32,
    /// Position, metres.
    pub y_m: f32,
    /// Index into the class names.
    pub class: u8,
    /// Channel gain measured last slot (what a policy sees), dB.
    pub gain_db: f32,
    /// Seconds until its own model is free.
    pub backlog_s: f32,
    /// Energy spent this window, joules.
    pub energy_j: f32,
    /// Budget per window, joules.
    pub budget_j: f32,
    /// Queries waiting for the next decision.
    pub pending: u32,
    /// 0 = never decided, 1 = local, 2 = offload (last decision).
    pub last: u8,
}

/// A query of the last simulated slot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EventSnap {
    /// Device index.
    pub device: u32,
    /// Whether it went to the edge.
    pub offload: bool,
    /// Latency, seconds.
    pub latency_s: f32,
    /// Dropped (over the latency cap).
    pub dropped: bool,
}

/// The focused lane's network, with what its policy saw and thought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSnap {
    /// Whose network this is.
    pub lane: Entrant,
    /// Devices.
    pub devices: Vec<DeviceSnap>,
    /// Queries scheduled in the last slot.
    pub events: Vec<EventSnap>,
    /// Seconds each edge model instance is still busy for.
    pub edge_busy_s: Vec<f32>,
    /// Wait a new offloaded query would see, seconds.
    pub edge_wait_s: f32,
    /// Observations of the devices before the last decision (`OBS_DIM` per device).
    pub obs: Vec<f32>,
    /// Action probabilities of a trained policy at the last decision (local, offload per
    /// device); empty for the baselines.
    pub probs: Vec<f32>,
    /// Each device class's questions this episode (indexed like the class names).
    pub classes: Vec<ClassTally>,
}

enum Decider {
    Baseline(Box<dyn mec::Policy>),
    Trained {
        policy: Arc<PolicyFile>,
        scratch: PolicyScratch,
        /// For a policy trained with sequential decisions: devices decide in the slot's
        /// broadcast order, as in training.
        in_order: Option<Box<InOrder>>,
    },
}

/// One policy's simulator.
pub struct Lane {
    id: Entrant,
    sim: Simulator,
    decider: Decider,
    actions: Vec<Action>,
    obs: Vec<f32>,
    probs: Vec<f32>,
    window: VecDeque<(f64, u32)>,
    metrics: EpisodeMetrics,
    classes: Vec<ClassTally>,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("id", &self.id)
            .field("slot", &self.sim.slot())
            .finish_non_exhaustive()
    }
}

impl Lane {
    /// Which policy drives this lane.
    #[must_use]
    pub fn id(&self) -> Entrant {
        self.id
    }

    /// Episode metrics so far.
    #[must_use]
    pub fn metrics(&self) -> &EpisodeMetrics {
        &self.metrics
    }

    /// The simulator.
    #[must_use]
    pub fn sim(&self) -> &Simulator {
        &self.sim
    }

    /// Each device class's questions this episode.
    #[must_use]
    pub fn classes(&self) -> &[ClassTally] {
        &self.classes
    }

    fn step(&mut self) -> SlotRow {
        let n = self.sim.num_devices();
        self.actions.clear();
        self.actions.resize(n, Action::Local);
        self.sim.observe(&mut self.obs);
        match &mut self.decider {
            Decider::Baseline(policy) => policy.decide(&self.sim, &mut self.actions),
            Decider::Trained {
                policy,
                scratch,
                in_order,
            } => {
                policy.act_batch(&self.obs, &mut self.probs, scratch);
                if let Some(in_order) = in_order {
                    // A decider's shown probabilities are those it decided on.
                    let probs = &mut self.probs;
                    in_order.decide(&self.sim, &mut self.actions, |u, row| {
                        let p = &mut probs[u * 2..u * 2 + 2];
                        policy.act_batch(row, p, scratch);
                        Action::from_index(PolicyFile::argmax(p))
                    });
                } else {
                    for (a, p) in self.actions.iter_mut().zip(self.probs.chunks_exact(2)) {
                        *a = Action::from_index(PolicyFile::argmax(p));
                    }
                }
            }
        }
        self.sim.step(&self.actions);
        self.metrics = self.sim.metrics();
        ClassTally::record(&mut self.classes, &self.sim);
        self.row()
    }

    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    fn row(&mut self) -> SlotRow {
        let (mut sum, mut count) = (0.0, 0u32);
        for e in self.sim.last_events() {
            if e.latency_s.is_finite() {
                sum += e.latency_s;
                count += 1;
            }
        }
        if self.window.len() == LATENCY_WINDOW {
            self.window.pop_front();
        }
        self.window.push_back((sum, count));
        let (wsum, wcount) = self
            .window
            .iter()
            .fold((0.0, 0u32), |(s, c), (ws, wc)| (s + ws, c + wc));
        let devices = self.sim.devices();
        let n = devices.len().max(1) as f64;
        let energy_frac = devices
            .iter()
            .map(|d| d.energy_used_j / d.energy_budget_j.max(1e-9))
            .sum::<f64>()
            / n;
        let over = devices
            .iter()
            .filter(|d| d.energy_used_j > d.energy_budget_j)
            .count() as f64
            / n;
        let m = &self.metrics;
        let any = m.queries > 0;
        SlotRow {
            slot: u32::try_from(self.sim.slot()).unwrap_or(u32::MAX),
            queries: count,
            latency_s: (count > 0).then(|| sum / f64::from(count)),
            latency_avg_s: (wcount > 0).then(|| wsum / f64::from(wcount)),
            energy_frac,
            over_budget: over,
            accuracy: any.then_some(m.accuracy),
            hallucination: any.then_some(m.hallucination_rate),
            offload: any.then_some(m.offload_fraction),
        }
    }

    #[allow(clippy::cast_possible_truncation)]
    fn network(&self) -> NetworkSnap {
        let sim = &self.sim;
        let now = sim.now_s();
        NetworkSnap {
            lane: self.id,
            devices: sim
                .devices()
                .iter()
                .map(|d| DeviceSnap {
                    x_m: d.x_m as f32,
                    y_m: d.y_m as f32,
                    class: u8::try_from(d.class).unwrap_or(u8::MAX),
                    gain_db: d.estimated_gain_db as f32,
                    backlog_s: d.local_backlog_s as f32,
                    energy_j: d.energy_used_j as f32,
                    budget_j: d.energy_budget_j as f32,
                    pending: d.pending,
                    last: match d.last_action {
                        None => 0,
                        Some(Action::Local) => 1,
                        Some(Action::Offload) => 2,
                    },
                })
                .collect(),
            events: sim
                .last_events()
                .iter()
                .map(|e| EventSnap {
                    device: e.device,
                    offload: e.action == Action::Offload,
                    latency_s: e.latency_s as f32,
                    dropped: e.dropped,
                })
                .collect(),
            edge_busy_s: sim
                .edge_free_at()
                .iter()
                .map(|t| (t - now).max(0.0) as f32)
                .collect(),
            edge_wait_s: sim.edge_backlog_s() as f32,
            obs: self.obs.clone(),
            probs: self.probs.clone(),
            classes: self.classes.clone(),
        }
    }
}

/// Why a trained policy file cannot drive the MEC simulator, if it cannot.
#[must_use]
pub fn check_policy(policy: &PolicyFile) -> Option<String> {
    if policy.obs_dim != OBS_DIM {
        return Some(format!(
            "it reads {} features per device but the simulator provides {OBS_DIM}",
            policy.obs_dim
        ));
    }
    if policy.num_actions != 2 {
        return Some(format!(
            "it chooses among {} actions, not local/offload",
            policy.num_actions
        ));
    }
    match policy.meta_str("env") {
        Some(env) if env != "mec" => Some(format!("it was trained on “{env}”, not on mec")),
        _ => None,
    }
}

/// Every lane of the current episode.
pub struct Race {
    scenario: Scenario,
    config: SimConfig,
    catalogue: Catalogue,
    trained: Vec<(Entrant, Arc<PolicyFile>)>,
    lanes: Vec<Lane>,
    episode: u64,
}

impl std::fmt::Debug for Race {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Race")
            .field("scenario", &self.scenario)
            .field("episode", &self.episode)
            .field("lanes", &self.lanes)
            .finish_non_exhaustive()
    }
}

impl Race {
    /// A race of `trained` policies (already checked with [`check_policy`]) and every
    /// baseline on `scenario`, with the visitor's device as an extra class when given.
    ///
    /// # Errors
    /// A message for the page when the simulator rejects the scenario or the device.
    pub fn new(
        scenario: Scenario,
        trained: Vec<(Entrant, Arc<PolicyFile>)>,
        this_device: Option<&ThisDevice>,
    ) -> Result<Self, String> {
        let scenario = scenario.clamped();
        let mut config = scenario.config();
        let mut catalogue = Catalogue::default_catalogue();
        if let Some(device) = this_device {
            device.apply(&mut config, &mut catalogue, scenario.get("budget"))?;
        }
        config.validate().map_err(|e| e.to_string())?;
        let mut race = Self {
            scenario,
            config,
            catalogue,
            trained,
            lanes: Vec::new(),
            episode: 0,
        };
        race.start_episode()?;
        Ok(race)
    }

    fn start_episode(&mut self) -> Result<(), String> {
        let seed = self.scenario.seed.wrapping_add(self.episode);
        let mut lanes = Vec::new();
        for id in Entrant::ALL {
            let decider = if let Some(kind) = id.baseline() {
                Decider::Baseline(mec::scenario_baseline(kind, seed))
            } else if let Some((_, p)) = self.trained.iter().find(|(t, _)| *t == id) {
                Decider::Trained {
                    policy: Arc::clone(p),
                    scratch: PolicyScratch::default(),
                    in_order: p.decides_in_order().then(Box::default),
                }
            } else {
                continue;
            };
            let sim = Simulator::new(self.config.clone(), self.catalogue.clone(), seed)
                .map_err(|e| e.to_string())?;
            let n = sim.num_devices();
            let metrics = sim.metrics();
            let classes = ClassTally::for_classes(&sim);
            lanes.push(Lane {
                id,
                sim,
                decider,
                actions: Vec::with_capacity(n),
                obs: vec![0.0; n * OBS_DIM],
                probs: vec![0.0; n * 2],
                window: VecDeque::with_capacity(LATENCY_WINDOW),
                metrics,
                classes,
            });
        }
        self.lanes = lanes;
        Ok(())
    }

    /// Simulate one slot in every lane (nothing once the episode is over); returns each
    /// lane's row.
    pub fn step(&mut self) -> Vec<(Entrant, SlotRow)> {
        if self.done() {
            return Vec::new();
        }
        self.lanes.iter_mut().map(|l| (l.id, l.step())).collect()
    }

    /// Whether the episode is over.
    #[must_use]
    pub fn done(&self) -> bool {
        self.lanes.first().is_none_or(|l| l.sim.done())
    }

    /// Start the next episode (seed + 1).
    pub fn next_episode(&mut self) {
        self.episode += 1;
        // The configuration was accepted once; a failure would be a simulator bug, so
        // keep the old lanes on screen rather than panic.
        if self.start_episode().is_err() {
            self.episode -= 1;
        }
    }

    /// Restart from the first episode.
    pub fn restart(&mut self) {
        self.episode = 0;
        let _ = self.start_episode();
    }

    /// The lanes.
    #[must_use]
    pub fn lanes(&self) -> &[Lane] {
        &self.lanes
    }

    /// The scenario (clamped).
    #[must_use]
    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// The simulator configuration.
    #[must_use]
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Episode number, from 0.
    #[must_use]
    pub fn episode(&self) -> u64 {
        self.episode
    }

    /// Current slot (0 before the first step).
    #[must_use]
    pub fn slot(&self) -> usize {
        self.lanes.first().map_or(0, |l| l.sim.slot())
    }

    /// The network of `focus` (or of the first lane when it is not running).
    #[must_use]
    pub fn network(&self, focus: Entrant) -> Option<NetworkSnap> {
        self.lanes
            .iter()
            .find(|l| l.id == focus)
            .or_else(|| self.lanes.first())
            .map(Lane::network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewise_policy::{Dense, Mlp, ObsNorm};

    fn tiny_policy(offload_bias: f32) -> PolicyFile {
        let mut p = PolicyFile::new(
            ObsNorm {
                mean: vec![0.0; OBS_DIM],
                var: vec![1.0; OBS_DIM],
                epsilon: 1e-8,
                clip: 10.0,
            },
            Mlp {
                layers: vec![Dense {
                    inputs: OBS_DIM,
                    outputs: 2,
                    weight: vec![0.0; OBS_DIM * 2],
                    bias: vec![0.0, offload_bias],
                }],
            },
        )
        .unwrap();
        p.meta.insert("env".into(), "mec".into());
        p
    }

    #[test]
    fn lanes_share_the_scenario_and_differ_by_policy() {
        let trained = vec![(Entrant::Ppo, Arc::new(tiny_policy(5.0)))];
        let mut race = Race::new(Scenario::default(), trained, None).unwrap();
        assert_eq!(race.lanes().len(), 6, "5 baselines + PPO (no WM-PPO file)");
        for _ in 0..60 {
            let rows = race.step();
            assert_eq!(rows.len(), 6);
        }
        let get = |id| {
            race.lanes()
                .iter()
                .find(|l| l.id() == id)
                .unwrap()
                .metrics()
                .clone()
        };
        // The biased "trained" policy offloads everything, like always-offload.
        assert!((get(Entrant::Ppo).offload_fraction - 1.0).abs() < 1e-9);
        assert_eq!(get(Entrant::Ppo), get(Entrant::AlwaysOffload));
        assert!(get(Entrant::AlwaysLocal).offload_fraction.abs() < 1e-9);
        let net = race.network(Entrant::Ppo).unwrap();
        assert_eq!(net.devices.len(), 20);
        assert_eq!(net.obs.len(), 20 * OBS_DIM);
        assert!(
            net.probs
                .chunks_exact(2)
                .all(|p| (p[0] + p[1] - 1.0).abs() < 1e-5)
        );
        assert_eq!(net.edge_busy_s.len(), race.config().edge.workers);
    }

    #[test]
    fn episodes_end_and_restart() {
        let mut race =
            Race::new(Scenario::default().with("devices", 10.0), Vec::new(), None).unwrap();
        let slots = race.config().slots;
        for _ in 0..slots {
            race.step();
        }
        assert!(race.done());
        assert!(race.step().is_empty());
        race.next_episode();
        assert_eq!((race.episode(), race.slot()), (1, 0));
        race.step();
        race.restart();
        assert_eq!((race.episode(), race.slot()), (0, 0));
    }

    #[test]
    fn mismatched_policies_are_explained() {
        let mut p = tiny_policy(0.0);
        assert_eq!(check_policy(&p), None);
        p.meta.insert("env".into(), "cartpole".into());
        assert!(check_policy(&p).unwrap().contains("cartpole"));
    }

    #[test]
    fn the_visitors_device_races_as_its_own_class() {
        use crate::simulation::this_device::{THIS_DEVICE_CLASS, sample_device};

        let device = sample_device();
        let low_battery = Scenario::default().with("budget", 0.4);
        let mut race = Race::new(low_battery, Vec::new(), Some(&device)).unwrap();
        let names: Vec<&str> = race
            .config()
            .classes
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["phone-low", "phone-high", "laptop", THIS_DEVICE_CLASS]
        );
        let added = &race.config().classes[3];
        assert!((added.energy_budget_j - 0.4 * device.class.energy_budget_j).abs() < 1e-12);
        for _ in 0..60 {
            race.step();
        }
        let tally = |id: Entrant| {
            race.lanes()
                .iter()
                .find(|l| l.id() == id)
                .unwrap()
                .classes()[3]
        };
        let local = tally(Entrant::AlwaysLocal);
        let offload = tally(Entrant::AlwaysOffload);
        assert!(local.devices > 0, "seed 7 draws devices of the added class");
        assert_eq!(local.devices, offload.devices);
        assert!(
            local.completed() > 0 && offload.completed() > 0,
            "{local:?}"
        );
        assert_eq!(local.offload_share(), Some(0.0));
        assert_eq!(offload.offload_share(), Some(1.0));
        // Per-class tallies add up to the lane's episode.
        for lane in race.lanes() {
            let queries: u32 = lane.classes().iter().map(|c| c.queries).sum();
            let devices: u32 = lane.classes().iter().map(|c| c.devices).sum();
            assert_eq!(queries as usize, lane.metrics().queries);
            assert_eq!(devices as usize, lane.sim().num_devices());
        }
        let net = race.network(Entrant::AlwaysLocal).unwrap();
        assert_eq!(net.classes[3], local);
    }
}
