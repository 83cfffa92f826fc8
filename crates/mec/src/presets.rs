//! Named scenarios: the shipped default and the ones where foresight matters (issue 16),
//! for the CLI (`edgewise simulate --preset NAME`) and the web app.
//!
//! Every preset is the default scenario with a few fields changed, so its population,
//! horizon and the like can still be overridden; each keeps the long-run arrival rate of
//! the default, so the presets differ in *how* load arrives, not in how much.

use crate::catalogue::Catalogue;
use crate::config::{BurstConfig, EdgeConfig, SimConfig};
use crate::exogenous::mean_query_accuracy;

/// A named scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    /// Kebab-case name (`--preset NAME`).
    pub name: &'static str,
    /// One line: what differs from the default and why it matters.
    pub description: &'static str,
    /// The configuration.
    pub config: SimConfig,
}

/// Error for an unknown preset name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario preset {name:?}: expected one of {choices}")]
pub struct UnknownPreset {
    /// The name asked for.
    pub name: String,
    /// The known names, comma-separated.
    pub choices: String,
}

/// Arrivals in cell-wide bursts: 6× the calm rate (see [`set_bursts`]).
fn bursty(c: &mut SimConfig) {
    set_bursts(c, 6.0);
}

/// Bursts of `factor`× the calm rate, entered with probability 0.04 and left with
/// probability 0.25 per slot (bursts of 4 slots, about 14 % of the time); a factor of 1
/// restores the default steady arrivals. Shared by the `bursty` preset and the `bursts` knob,
/// so the web app's bursty scenario is the CLI's.
pub(crate) fn set_bursts(c: &mut SimConfig, factor: f64) {
    c.bursts = if factor > 1.0 {
        BurstConfig {
            factor,
            enter_prob: 0.04,
            exit_prob: 0.25,
        }
    } else {
        BurstConfig::default()
    };
}

/// Background work takes 35 % of the edge on average (see [`set_edge_load`]).
fn edge_load(c: &mut SimConfig) {
    set_edge_load(c, 0.35);
}

/// Background work takes `mean` of the edge on average, varying slowly (σ 0.25, ρ 0.95); 0
/// restores the default idle edge. Shared by the `edge-load` preset and knob.
pub(crate) fn set_edge_load(c: &mut SimConfig, mean: f64) {
    let idle = EdgeConfig::default();
    let (sigma, rho) = if mean > 0.0 {
        (0.25, 0.95)
    } else {
        (idle.background_load_sigma, idle.background_load_correlation)
    };
    c.edge.background_load = mean;
    c.edge.background_load_sigma = sigma;
    c.edge.background_load_correlation = rho;
}

/// Budget windows five times longer (100 slots) with 60 % of the proportional budget, so
/// energy spent early in a window is missed late in it.
fn tight_energy(c: &mut SimConfig) {
    let old = c.energy_window_slots as f64;
    c.energy_window_slots = 100;
    let scale = 0.6 * c.energy_window_slots as f64 / old;
    for class in &mut c.classes {
        class.energy_budget_j *= scale;
    }
}

/// Per-query difficulty (σ 1.5 in logit space); the accuracy constraint is re-derived by
/// the default's rule (40 % of the way from the devices' expected accuracy to the edge's)
/// from the difficulty-averaged accuracies of the shipped catalogue.
fn hard_queries(c: &mut SimConfig) {
    let sigma = 1.5;
    c.query.difficulty_sigma = sigma;
    let cat = Catalogue::default_catalogue();
    let accuracy = |name: &str| cat.get(name).map_or(0.0, |(_, v)| v.accuracy);
    let total: f64 = c.classes.iter().map(|k| k.share).sum();
    let local: f64 = c
        .classes
        .iter()
        .map(|k| k.share / total * mean_query_accuracy(accuracy(&k.variant), sigma))
        .sum();
    let edge = mean_query_accuracy(accuracy(&c.edge.variant), sigma);
    c.qos.min_accuracy = local + 0.4 * (edge - local);
}

/// Every named scenario, default first.
#[must_use]
pub fn presets() -> Vec<Preset> {
    let with = |f: &dyn Fn(&mut SimConfig)| {
        let mut c = SimConfig::default();
        f(&mut c);
        c
    };
    vec![
        Preset {
            name: "default",
            description: "the shipped scenario: Poisson arrivals, idle edge, 20-slot budget windows",
            config: SimConfig::default(),
        },
        Preset {
            name: "bursty",
            description: "cell-wide arrival bursts (6x the calm rate, ~4 slots, ~14% of the time)",
            config: with(&bursty),
        },
        Preset {
            name: "edge-load",
            description: "slowly varying background work takes 35% of the edge on average",
            config: with(&edge_load),
        },
        Preset {
            name: "tight-energy",
            description: "100-slot budget windows with 60% of the proportional budget",
            config: with(&tight_energy),
        },
        Preset {
            name: "hard-queries",
            description: "per-query difficulty: hard queries gain most from the edge model",
            config: with(&hard_queries),
        },
        Preset {
            name: "foresight",
            description: "bursts, edge load, tight long budgets and hard queries together",
            config: with(&|c: &mut SimConfig| {
                bursty(c);
                edge_load(c);
                tight_energy(c);
                hard_queries(c);
            }),
        },
    ]
}

/// The configuration of the preset called `name`.
///
/// # Errors
/// When no preset has that name (the error lists them).
pub fn preset(name: &str) -> Result<SimConfig, UnknownPreset> {
    let all = presets();
    match all.iter().find(|p| p.name == name) {
        Some(p) => Ok(p.config.clone()),
        None => Err(UnknownPreset {
            name: name.to_owned(),
            choices: all.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
        }),
    }
}
