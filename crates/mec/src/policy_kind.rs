//! Names of the built-in policies and how to build them.

use std::fmt;
use std::str::FromStr;

use crate::baselines::{Fixed, Greedy, RandomPolicy};
use crate::planner::Planner;
use crate::policy::Policy;
use edgewise_rng::Rng;
use crate::sim::Action;

/// The built-in policies: the baselines and the planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Every query runs on its device.
    AlwaysLocal,
    /// Every query goes to the edge.
    AlwaysOffload,
    /// A fair coin per device and slot.
    Random,
    /// Lower expected latency under the last channel estimate, within the energy budget.
    Greedy,
    /// Perfect information, minimising the reward's own cost one slot ahead (a reference).
    Oracle,
    /// Clairvoyant lookahead on the real future (a reference for headroom, slow; not in
    /// [`PolicyKind::ALL`]).
    Planner,
}

impl PolicyKind {
    /// Every baseline, in table order (the planner, a costly reference, is not one).
    pub const ALL: [Self; 5] = [
        Self::AlwaysLocal,
        Self::AlwaysOffload,
        Self::Random,
        Self::Greedy,
        Self::Oracle,
    ];

    /// The kebab-case name used on the command line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlwaysLocal => "always-local",
            Self::AlwaysOffload => "always-offload",
            Self::Random => "random",
            Self::Greedy => "greedy",
            Self::Oracle => "oracle",
            Self::Planner => "planner",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown policy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown policy {0:?}: expected one of always-local, always-offload, random, greedy, oracle, planner"
)]
pub struct UnknownPolicy(pub String);

impl FromStr for PolicyKind {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .chain([Self::Planner])
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

/// Build a baseline policy; `seed` feeds the random policy only.
#[must_use]
pub fn baseline(kind: PolicyKind, seed: u64) -> Box<dyn Policy> {
    match kind {
        PolicyKind::AlwaysLocal => Box::new(Fixed::new(Action::Local, "always-local")),
        PolicyKind::AlwaysOffload => Box::new(Fixed::new(Action::Offload, "always-offload")),
        PolicyKind::Random => Box::new(RandomPolicy::new(Rng::new(seed))),
        PolicyKind::Greedy => Box::new(Greedy::new(false)),
        PolicyKind::Oracle => Box::new(Greedy::new(true)),
        PolicyKind::Planner => Box::new(Planner::default()),
    }
}

/// Stream index that separates a baseline's own randomness from the scenario's.
const POLICY_STREAM: u64 = 0x0090_11c7;

/// The baseline as run on scenario `scenario_seed` by the CLI, the web app and the
/// cross-platform determinism probe: its own seed is derived from the scenario's, so one
/// number reproduces the whole run.
#[must_use]
pub fn scenario_baseline(kind: PolicyKind, scenario_seed: u64) -> Box<dyn Policy> {
    baseline(kind, edgewise_rng::derive_seed(scenario_seed, POLICY_STREAM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in PolicyKind::ALL.into_iter().chain([PolicyKind::Planner]) {
            assert_eq!(k.as_str().parse::<PolicyKind>().unwrap(), k);
        }
        let e = "fastest".parse::<PolicyKind>().unwrap_err().to_string();
        assert!(e.contains("fastest") && e.contains("greedy"), "{e}");
    }
}
