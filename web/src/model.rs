//! The demo model: one simulator episode driven by a baseline policy, plus the short
//! history the page draws. Plain Rust with no browser types, so it is tested natively;
//! the components only render it and tick it.

use std::collections::VecDeque;

use mec::{Action, Catalogue, EpisodeMetrics, PolicyKind, SimConfig, Simulator};

/// Smallest and largest population offered by the slider.
pub const MIN_POPULATION: usize = 10;
/// Largest population offered by the slider.
pub const MAX_POPULATION: usize = 100;
/// Slots kept for the rolling latency chart.
pub const HISTORY_SLOTS: usize = 100;
/// Slots a query marker stays visible in the network view.
pub const MARKER_LIFETIME: u8 = 3;

/// What the visitor chose: everything that defines an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Number of mobile devices, clamped to `MIN_POPULATION..=MAX_POPULATION`.
    pub population: usize,
    /// Baseline policy making the offloading decisions.
    pub policy: PolicyKind,
    /// Seed of the first episode; later episodes use `seed + episode`.
    pub seed: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            population: 20,
            policy: PolicyKind::Greedy,
            seed: 7,
        }
    }
}

/// Latencies of the queries scheduled in one slot (`None` where there were none). As in
/// the episode metrics, a dropped query counts with the latency cap it is charged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotSample {
    /// Slot index within the episode (1-based: the slot just simulated).
    pub slot: usize,
    /// Mean latency of all the slot's queries, seconds.
    pub mean_s: Option<f64>,
    /// Mean latency of the queries answered on the device, seconds.
    pub local_s: Option<f64>,
    /// Mean latency of the queries answered by the edge server, seconds.
    pub offload_s: Option<f64>,
}

/// A query drawn in the network view for a few slots after it happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marker {
    /// Device index.
    pub device: usize,
    /// Where the query ran.
    pub action: Action,
    /// End-to-end latency, seconds.
    pub latency_s: f64,
    /// Whether the query was dropped.
    pub dropped: bool,
    /// Slots since the query happened (0 = the last slot).
    pub age: u8,
}

/// One running scenario: simulator, policy and what the page shows of its past.
pub struct Demo {
    scenario: Scenario,
    config: SimConfig,
    sim: Simulator,
    policy: Box<dyn mec::Policy>,
    actions: Vec<Action>,
    episode: u64,
    history: VecDeque<SlotSample>,
    markers: Vec<Marker>,
    metrics: EpisodeMetrics,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("scenario", &self.scenario)
            .field("episode", &self.episode)
            .field("slot", &self.sim.slot())
            .finish_non_exhaustive()
    }
}

impl Demo {
    /// Start the first episode of `scenario` (the population is clamped to the slider range).
    ///
    /// # Errors
    /// A message for the page when the simulator rejects the configuration.
    pub fn new(scenario: Scenario) -> Result<Self, String> {
        let scenario = Scenario {
            population: scenario.population.clamp(MIN_POPULATION, MAX_POPULATION),
            ..scenario
        };
        let config = SimConfig {
            devices: scenario.population,
            ..SimConfig::default()
        };
        config.validate().map_err(|e| e.to_string())?;
        let (sim, policy) = start_episode(&config, scenario, 0)?;
        let metrics = sim.metrics();
        Ok(Self {
            scenario,
            config,
            actions: vec![Action::Local; sim.num_devices()],
            sim,
            policy,
            episode: 0,
            history: VecDeque::with_capacity(HISTORY_SLOTS),
            markers: Vec::new(),
            metrics,
        })
    }

    /// Simulate one slot; when the episode is over, start the next one first.
    pub fn tick(&mut self) {
        if self.sim.done() {
            self.next_episode();
        }
        self.actions.clear();
        self.actions.resize(self.sim.num_devices(), Action::Local);
        self.policy.decide(&self.sim, &mut self.actions);
        self.sim.step(&self.actions);
        self.record_slot();
        self.metrics = self.sim.metrics();
    }

    /// Restart the current scenario from its first episode.
    pub fn reset(&mut self) {
        self.episode = 0;
        self.restart();
    }

    fn next_episode(&mut self) {
        self.episode += 1;
        self.restart();
    }

    fn restart(&mut self) {
        // The configuration was accepted once, so a failure here would be a simulator
        // bug; keep the finished episode on screen rather than panicking.
        if let Ok((sim, policy)) = start_episode(&self.config, self.scenario, self.episode) {
            self.sim = sim;
            self.policy = policy;
        }
        self.history.clear();
        self.markers.clear();
        self.metrics = self.sim.metrics();
    }

    fn record_slot(&mut self) {
        for marker in &mut self.markers {
            marker.age += 1;
        }
        self.markers.retain(|m| m.age < MARKER_LIFETIME);

        let mut all = Mean::default();
        let mut local = Mean::default();
        let mut offload = Mean::default();
        for event in self.sim.last_events() {
            self.markers.push(Marker {
                device: event.device as usize,
                action: event.action,
                latency_s: event.latency_s,
                dropped: event.dropped,
                age: 0,
            });
            // A dropped query is charged the latency cap, as in the episode metrics.
            if !event.latency_s.is_finite() {
                continue;
            }
            all.add(event.latency_s);
            match event.action {
                Action::Local => local.add(event.latency_s),
                Action::Offload => offload.add(event.latency_s),
            }
        }
        if self.history.len() == HISTORY_SLOTS {
            self.history.pop_front();
        }
        self.history.push_back(SlotSample {
            slot: self.sim.slot(),
            mean_s: all.get(),
            local_s: local.get(),
            offload_s: offload.get(),
        });
    }

    /// The scenario being shown.
    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// The simulator configuration of this scenario.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The running simulator.
    pub fn sim(&self) -> &Simulator {
        &self.sim
    }

    /// Episode number, starting at 1.
    pub fn episode(&self) -> u64 {
        self.episode + 1
    }

    /// Per-slot latency samples, oldest first (at most `HISTORY_SLOTS`).
    pub fn history(&self) -> &VecDeque<SlotSample> {
        &self.history
    }

    /// Queries of the last few slots, for the network view.
    pub fn markers(&self) -> &[Marker] {
        &self.markers
    }

    /// Metrics of the episode so far.
    pub fn metrics(&self) -> &EpisodeMetrics {
        &self.metrics
    }
}

fn start_episode(
    config: &SimConfig,
    scenario: Scenario,
    episode: u64,
) -> Result<(Simulator, Box<dyn mec::Policy>), String> {
    let seed = scenario.seed.wrapping_add(episode);
    let sim = Simulator::new(config.clone(), Catalogue::default_catalogue(), seed)
        .map_err(|e| e.to_string())?;
    // The policy's own randomness (the random baseline) gets a stream apart from the
    // simulator's.
    let policy = mec::baseline(scenario.policy, seed ^ 0x9E37_79B9_7F4A_7C15);
    Ok((sim, policy))
}

#[derive(Default)]
struct Mean {
    sum: f64,
    n: u32,
}

impl Mean {
    fn add(&mut self, x: f64) {
        self.sum += x;
        self.n += 1;
    }

    fn get(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / f64::from(self.n))
    }
}

/// Parse the seed field: a non-negative integer, surrounding blanks allowed.
pub fn parse_seed(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_is_clamped() {
        let demo = Demo::new(Scenario {
            population: 5000,
            ..Scenario::default()
        })
        .unwrap();
        assert_eq!(demo.scenario().population, MAX_POPULATION);
        assert_eq!(demo.sim().num_devices(), MAX_POPULATION);
    }

    #[test]
    fn ticking_advances_and_keeps_a_bounded_history() {
        let mut demo = Demo::new(Scenario::default()).unwrap();
        for _ in 0..(HISTORY_SLOTS + 20) {
            demo.tick();
        }
        assert_eq!(demo.sim().slot(), HISTORY_SLOTS + 20);
        assert_eq!(demo.history().len(), HISTORY_SLOTS);
        assert!(demo.markers().iter().all(|m| m.age < MARKER_LIFETIME));
        assert!(
            demo.markers()
                .iter()
                .all(|m| m.device < demo.sim().num_devices())
        );
    }

    #[test]
    fn episodes_restart_by_themselves() {
        let mut demo = Demo::new(Scenario::default()).unwrap();
        let slots = demo.config().slots;
        for _ in 0..=slots {
            demo.tick();
        }
        assert_eq!(demo.episode(), 2);
        assert_eq!(demo.sim().slot(), 1);
        demo.reset();
        assert_eq!(demo.episode(), 1);
        assert_eq!(demo.sim().slot(), 0);
        assert!(demo.history().is_empty());
    }

    #[test]
    fn every_baseline_runs() {
        for policy in PolicyKind::ALL {
            let mut demo = Demo::new(Scenario {
                policy,
                population: MIN_POPULATION,
                seed: 3,
            })
            .unwrap();
            for _ in 0..10 {
                demo.tick();
            }
            assert_eq!(demo.sim().slot(), 10, "{policy}");
        }
    }

    #[test]
    fn seeds_parse_or_are_rejected() {
        assert_eq!(parse_seed(" 42 "), Some(42));
        assert_eq!(parse_seed("-1"), None);
        assert_eq!(parse_seed("abc"), None);
        assert_eq!(parse_seed(""), None);
    }
}
