//! Messages between the page and the training race's worker, and what they carry:
//! which learner ([`Algo`]), what to train ([`TrainRequest`]) and what one iteration
//! produced ([`IterationReport`]). The page uses only these (and [`super::curve`]), so
//! it links none of burn.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::curve::CurvePoint;
use crate::entrants::Entrant;
use crate::scenario::Scenario;
use crate::simulation::this_device::ThisDevice;

/// The two learners of the race.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algo {
    /// Proximal policy optimisation on real experience only.
    Ppo,
    /// PPO assisted by a learned GRU world model (value targets and imagined samples).
    WmPpo,
}

impl Algo {
    /// Both, in display order.
    pub const ALL: [Self; 2] = [Self::Ppo, Self::WmPpo];

    /// Human label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Ppo => "PPO",
            Self::WmPpo => "WM-PPO",
        }
    }

    /// Stable identifier (CSS, test hooks, the policy file's `algo`).
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Self::Ppo => "ppo",
            Self::WmPpo => "wm-ppo",
        }
    }

    /// The simulation race's entrant this learner's policy replaces.
    #[must_use]
    pub fn entrant(self) -> Entrant {
        match self {
            Self::Ppo => Entrant::Ppo,
            Self::WmPpo => Entrant::WmPpo,
        }
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What to train: the scenario (its seed seeds both learners and their simulators), the
/// visitor's device when the simulation races it, and the budget of real environment steps
/// per algorithm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    /// The page's scenario (clamped before use).
    pub scenario: Scenario,
    /// The measured `this-browser` class added to the simulation, trained on as there.
    #[serde(default)]
    pub this_device: Option<ThisDevice>,
    /// Real environment steps per algorithm (a positive multiple of
    /// [`super::race::TrainRace::steps_per_iteration`] is used: the budget is rounded up).
    pub env_steps: u64,
}

/// What one iteration of one learner produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationReport {
    /// The learner.
    pub algo: Algo,
    /// Iterations it has completed.
    pub iteration: u64,
    /// Real environment steps it has taken.
    pub env_steps: u64,
    /// Episodes that ended during the iteration's rollout.
    pub points: Vec<CurvePoint>,
    /// PPO's approximate KL divergence of the update.
    pub approx_kl: f32,
    /// The world model's validation error on this rollout, measured before training on
    /// it (none for PPO).
    pub wm_error: Option<f64>,
    /// The world model's trust in `[0, 1]` (0 for PPO): 1 − error / threshold. At 0
    /// WM-PPO neither blends model values nor imagines, so it learns exactly like PPO.
    pub wm_trust: f64,
    /// Imagined samples added to the PPO batch (0 for PPO).
    pub imagined: usize,
}

/// Page → trainer worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToTrainer {
    /// Start (or restart) a race.
    Start(Box<TrainRequest>),
    /// Stop now and report the policies as they are.
    Stop,
}

/// Progress of one learner, as the trainer worker reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The race this belongs to (see [`FromTrainer::Started`]).
    pub generation: u32,
    /// The iteration just finished.
    pub report: IterationReport,
    /// Milliseconds this learner has computed so far (rollouts and updates).
    pub busy_ms: f64,
}

/// Trainer worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromTrainer {
    /// The worker's wasm runs: it accepts messages from now on.
    Ready,
    /// A race started: its generation and the budget it runs to (per algorithm).
    Started {
        /// Increases with every `Start`: progress of an older race is stale.
        generation: u32,
        /// Real environment steps per algorithm.
        budget: u64,
        /// The scenario trained on (clamped).
        scenario: Scenario,
    },
    /// One iteration of one learner.
    Progress(Progress),
    /// The race ended (budget reached or stopped): each learner's policy as an
    /// `edgewise-policy` file, ready for the simulation worker.
    Finished {
        /// The race.
        generation: u32,
        /// Whether it was stopped before the budget.
        stopped: bool,
        /// `(algo, policy file text)`.
        policies: Vec<(Algo, String)>,
    },
    /// Something went wrong (shown to the visitor).
    Error(String),
}
