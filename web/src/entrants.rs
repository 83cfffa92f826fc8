//! The entrants of the simulation race: which policy drives each lane, its label, its
//! colour (one CSS class each, used by every chart, legend, table and the network view)
//! and, for the trained ones, where their `edgewise-policy` file is shipped.

use mec::PolicyKind;
use serde::{Deserialize, Serialize};

/// An entrant of the race (one lane, driven by one policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Entrant {
    /// PPO assisted by a learned world model (the paper's method), trained offline.
    WmPpo,
    /// Plain PPO, trained offline.
    Ppo,
    /// Lower expected latency from what a device knows.
    Greedy,
    /// Everything on the device.
    AlwaysLocal,
    /// Everything to the edge server.
    AlwaysOffload,
    /// A fair coin per device and slot.
    Random,
    /// Perfect information, one slot ahead: a reference, neither a bound nor deployable.
    Oracle,
}

impl Entrant {
    /// Every entrant, in legend order.
    pub const ALL: [Self; 7] = [
        Self::WmPpo,
        Self::Ppo,
        Self::Greedy,
        Self::AlwaysLocal,
        Self::AlwaysOffload,
        Self::Random,
        Self::Oracle,
    ];

    /// Stable identifier (URL, CSV, CSS class suffix).
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Self::WmPpo => "wm-ppo",
            Self::Ppo => "ppo",
            Self::Greedy => "greedy",
            Self::AlwaysLocal => "always-local",
            Self::AlwaysOffload => "always-offload",
            Self::Random => "random",
            Self::Oracle => "oracle",
        }
    }

    /// The entrant by its key.
    #[must_use]
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.key() == key)
    }

    /// Human label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::WmPpo => "WM-PPO",
            Self::Ppo => "PPO",
            Self::Greedy => "Greedy",
            Self::AlwaysLocal => "Always local",
            Self::AlwaysOffload => "Always offload",
            Self::Random => "Random",
            Self::Oracle => "Oracle (1-slot reference)",
        }
    }

    /// One line on how it decides.
    #[must_use]
    pub fn blurb(self) -> &'static str {
        match self {
            Self::WmPpo => {
                "Trained with PPO on experience imagined by a learned world model of the \
                 channel and the edge queue."
            }
            Self::Ppo => "Trained with PPO on real simulator experience only.",
            Self::Greedy => {
                "Picks the lower expected latency from last slot's channel and the edge \
                 backlog; never overdraws the energy budget."
            }
            Self::AlwaysLocal => "Answers everything with the compact on-device model.",
            Self::AlwaysOffload => "Sends everything to the full model on the edge server.",
            Self::Random => "Flips a fair coin for every device and slot.",
            Self::Oracle => {
                "Knows the true current channel, who else offloads and the exact queue, and \
                 picks the cheaper action under the reward one slot ahead: a reference with \
                 perfect information, not an upper bound (it is myopic) and not deployable."
            }
        }
    }

    /// CSS class carrying this entrant's colour (`entrant-wm-ppo`, ...).
    #[must_use]
    pub fn css(self) -> String {
        format!("entrant-{}", self.key())
    }

    /// Path of the shipped policy file, relative to the page, for trained policies.
    #[must_use]
    pub fn file(self) -> Option<&'static str> {
        match self {
            Self::WmPpo => Some("policies/wm-ppo-default.json"),
            Self::Ppo => Some("policies/ppo-default.json"),
            _ => None,
        }
    }

    /// The baseline behind this id, for untrained policies.
    #[must_use]
    pub fn baseline(self) -> Option<PolicyKind> {
        match self {
            Self::WmPpo | Self::Ppo => None,
            Self::Greedy => Some(PolicyKind::Greedy),
            Self::AlwaysLocal => Some(PolicyKind::AlwaysLocal),
            Self::AlwaysOffload => Some(PolicyKind::AlwaysOffload),
            Self::Random => Some(PolicyKind::Random),
            Self::Oracle => Some(PolicyKind::Oracle),
        }
    }

    /// Shown in the charts until the visitor hides it.
    #[must_use]
    pub fn shown_by_default(self) -> bool {
        !matches!(self, Self::Random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_every_id_has_a_driver() {
        for p in Entrant::ALL {
            assert_eq!(Entrant::from_key(p.key()), Some(p));
            assert!(p.file().is_some() != p.baseline().is_some(), "{p:?}");
        }
    }
}
