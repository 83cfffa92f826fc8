//! What the visitor chose, its query-string form (so a scenario can be shared and
//! round-trips through the URL) and the presets.

use std::fmt::Write as _;

use mec::SimConfig;
use serde::{Deserialize, Serialize};

use crate::policies::PolicyId;

/// A numeric parameter: URL key, range, default and a description for notes.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Key in the query string.
    pub key: &'static str,
    /// Smallest accepted value.
    pub min: f64,
    /// Largest accepted value.
    pub max: f64,
    /// Value when absent or invalid.
    pub default: f64,
    /// Slider step.
    pub step: f64,
}

impl Param {
    /// The value clamped to the range (`None` for a non-finite value).
    #[must_use]
    pub fn clamp(&self, v: f64) -> Option<f64> {
        v.is_finite().then(|| v.clamp(self.min, self.max))
    }
}

/// Number of mobile devices.
pub const POPULATION: Param = Param {
    key: "n",
    min: 10.0,
    max: 100.0,
    default: 20.0,
    step: 1.0,
};
/// Uplink bandwidth shared by the offloading devices, MHz.
pub const BANDWIDTH: Param = Param {
    key: "bw",
    min: 0.5,
    max: 20.0,
    default: 5.0,
    step: 0.5,
};
/// Multiplier on every device class's energy budget per window.
pub const BUDGET: Param = Param {
    key: "budget",
    min: 0.25,
    max: 2.0,
    default: 1.0,
    step: 0.05,
};
/// Mean queries per device per slot (Poisson λ).
pub const LOAD: Param = Param {
    key: "load",
    min: 0.02,
    max: 0.3,
    default: 0.1,
    step: 0.01,
};
/// Minimum effective accuracy (QoS constraint); the default is the simulator's
/// (`mec::QosConfig::default`, derived from the shipped catalogue).
pub const MIN_ACCURACY: Param = Param {
    key: "acc",
    min: 0.1,
    max: 0.8,
    default: 0.4125,
    step: 0.005,
};
/// Maximum hallucination rate (QoS constraint); the default is the simulator's.
pub const MAX_HALLUCINATION: Param = Param {
    key: "hal",
    min: 0.05,
    max: 0.8,
    default: 0.4167,
    step: 0.005,
};

/// Simulation speeds offered, slots per second.
pub const SPEEDS: [u32; 7] = [1, 2, 5, 10, 25, 50, 100];
/// Default speed, slots per second.
pub const DEFAULT_SPEED: u32 = 10;
/// Default seed.
pub const DEFAULT_SEED: u64 = 7;

/// Everything that defines the episodes being raced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Number of mobile devices (10–100).
    pub population: usize,
    /// Uplink bandwidth, MHz.
    pub bandwidth_mhz: f64,
    /// Multiplier on the energy budgets.
    pub budget_scale: f64,
    /// Queries per device per slot.
    pub load: f64,
    /// Accuracy constraint A_min.
    pub min_accuracy: f64,
    /// Hallucination constraint H_max.
    pub max_hallucination: f64,
    /// Seed of the first episode; later ones use `seed + episode`.
    pub seed: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            population: POPULATION.default as usize,
            bandwidth_mhz: BANDWIDTH.default,
            budget_scale: BUDGET.default,
            load: LOAD.default,
            min_accuracy: MIN_ACCURACY.default,
            max_hallucination: MAX_HALLUCINATION.default,
            seed: DEFAULT_SEED,
        }
    }
}

impl Scenario {
    /// The simulator configuration of this scenario.
    #[must_use]
    pub fn config(&self) -> SimConfig {
        let mut config = SimConfig {
            devices: self.population,
            arrival_rate: self.load,
            ..SimConfig::default()
        };
        config.radio.bandwidth_hz = self.bandwidth_mhz * 1e6;
        config.qos.min_accuracy = self.min_accuracy;
        config.qos.max_hallucination = self.max_hallucination;
        for class in &mut config.classes {
            class.energy_budget_j *= self.budget_scale;
        }
        config
    }

    /// The same scenario with every field brought into its range.
    #[must_use]
    pub fn clamped(self) -> Self {
        let c = |p: &Param, v: f64| p.clamp(v).unwrap_or(p.default);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let population = c(&POPULATION, self.population as f64).round() as usize;
        Self {
            population,
            bandwidth_mhz: c(&BANDWIDTH, self.bandwidth_mhz),
            budget_scale: c(&BUDGET, self.budget_scale),
            load: c(&LOAD, self.load),
            min_accuracy: c(&MIN_ACCURACY, self.min_accuracy),
            max_hallucination: c(&MAX_HALLUCINATION, self.max_hallucination),
            seed: self.seed,
        }
    }

    /// The preset this scenario matches (ignoring the seed), if any.
    #[must_use]
    pub fn preset(&self) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| {
            let s = p.scenario(self.seed);
            s == *self
        })
    }
}

/// Named scenarios a visitor can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The shipped defaults: 20 devices, 5 MHz.
    Baseline,
    /// 100 devices share the edge server and the uplink.
    Crowded,
    /// 1 MHz of uplink: offloading is slow.
    WeakUplink,
    /// Budgets cut to 40 %: local inference drains batteries.
    LowBattery,
    /// Tighter accuracy and hallucination constraints.
    StrictQuality,
    /// 50 devices asking 2.5× as often.
    RushHour,
}

impl Preset {
    /// Every preset, in menu order.
    pub const ALL: [Self; 6] = [
        Self::Baseline,
        Self::Crowded,
        Self::WeakUplink,
        Self::LowBattery,
        Self::StrictQuality,
        Self::RushHour,
    ];

    /// Stable identifier (menu value).
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Crowded => "crowded",
            Self::WeakUplink => "weak-uplink",
            Self::LowBattery => "low-battery",
            Self::StrictQuality => "strict-quality",
            Self::RushHour => "rush-hour",
        }
    }

    /// Menu label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Baseline => "Baseline (20 devices)",
            Self::Crowded => "Crowded cell (100 devices)",
            Self::WeakUplink => "Weak uplink (1 MHz)",
            Self::LowBattery => "Low battery (40 % budget)",
            Self::StrictQuality => "Strict quality",
            Self::RushHour => "Rush hour (50 devices, busy)",
        }
    }

    /// The preset by its key.
    #[must_use]
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.key() == key)
    }

    /// The preset's scenario with `seed`.
    #[must_use]
    pub fn scenario(self, seed: u64) -> Scenario {
        let base = Scenario {
            seed,
            ..Scenario::default()
        };
        match self {
            Self::Baseline => base,
            Self::Crowded => Scenario {
                population: 100,
                ..base
            },
            Self::WeakUplink => Scenario {
                bandwidth_mhz: 1.0,
                ..base
            },
            Self::LowBattery => Scenario {
                budget_scale: 0.4,
                ..base
            },
            // Both constraints 0.05 tighter than the defaults: the band of feasible
            // offload shares narrows (still feasible with the shipped catalogue).
            Self::StrictQuality => Scenario {
                min_accuracy: MIN_ACCURACY.default + 0.05,
                max_hallucination: MAX_HALLUCINATION.default - 0.05,
                ..base
            },
            Self::RushHour => Scenario {
                population: 50,
                load: 0.25,
                ..base
            },
        }
    }
}

/// Everything the URL holds: the scenario plus how it is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageState {
    /// The scenario.
    pub scenario: Scenario,
    /// Slots per second.
    pub speed: u32,
    /// The policy drawn in the network view.
    pub focus: PolicyId,
}

impl Default for PageState {
    fn default() -> Self {
        Self {
            scenario: Scenario::default(),
            speed: DEFAULT_SPEED,
            focus: PolicyId::WmPpo,
        }
    }
}

impl PageState {
    /// Parse a query string (with or without the leading `?`). Never fails: a missing
    /// value takes its default, and every bad or out-of-range value is replaced (default
    /// or nearest bound) with a note saying what was wrong.
    #[must_use]
    pub fn from_query(query: &str) -> (Self, Vec<String>) {
        let mut state = Self::default();
        let mut notes = Vec::new();
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut preset = None;
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key);
            let value = percent_decode(value);
            if key == "preset" {
                match Preset::from_key(value.trim()) {
                    Some(p) => preset = Some(p),
                    None => notes.push(format!(
                        "Unknown preset “{}”: using the baseline.",
                        shorten(&value)
                    )),
                }
            } else {
                pairs.push((key, value));
            }
        }
        if let Some(p) = preset {
            state.scenario = p.scenario(state.scenario.seed);
        }
        for (key, value) in pairs {
            let v = value.trim();
            let s = &mut state.scenario;
            match key.as_str() {
                "n" => number(&POPULATION, v, &mut notes, |x| {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    {
                        s.population = x.round() as usize;
                    }
                }),
                "bw" => number(&BANDWIDTH, v, &mut notes, |x| s.bandwidth_mhz = x),
                "budget" => number(&BUDGET, v, &mut notes, |x| s.budget_scale = x),
                "load" => number(&LOAD, v, &mut notes, |x| s.load = x),
                "acc" => number(&MIN_ACCURACY, v, &mut notes, |x| s.min_accuracy = x),
                "hal" => number(&MAX_HALLUCINATION, v, &mut notes, |x| {
                    s.max_hallucination = x;
                }),
                "seed" => match v.parse::<u64>() {
                    Ok(seed) => s.seed = seed,
                    Err(_) => notes.push(format!(
                        "Ignored seed “{}”: expected a whole number from 0 to {}.",
                        shorten(v),
                        u64::MAX
                    )),
                },
                "speed" => match v.parse::<u32>() {
                    Ok(x) if SPEEDS.contains(&x) => state.speed = x,
                    _ => notes.push(format!(
                        "Ignored speed “{}”: expected one of {} slots/s.",
                        shorten(v),
                        SPEEDS.map(|s| s.to_string()).join(", ")
                    )),
                },
                "focus" => match PolicyId::from_key(v) {
                    Some(p) => state.focus = p,
                    None => notes.push(format!("Ignored unknown policy “{}”.", shorten(v))),
                },
                _ => notes.push(format!("Ignored unknown parameter “{}”.", shorten(&key))),
            }
        }
        (state, notes)
    }

    /// The query string (with `?`) that [`PageState::from_query`] turns back into `self`.
    #[must_use]
    pub fn to_query(&self) -> String {
        let s = &self.scenario;
        let mut q = String::from("?");
        if let Some(p) = s.preset() {
            let _ = write!(q, "preset={}&", p.key());
        } else {
            let _ = write!(
                q,
                "n={}&bw={}&budget={}&load={}&acc={}&hal={}&",
                s.population,
                num(s.bandwidth_mhz),
                num(s.budget_scale),
                num(s.load),
                num(s.min_accuracy),
                num(s.max_hallucination)
            );
        }
        let _ = write!(
            q,
            "seed={}&speed={}&focus={}",
            s.seed,
            self.speed,
            self.focus.key()
        );
        q
    }
}

fn number(param: &Param, text: &str, notes: &mut Vec<String>, mut set: impl FnMut(f64)) {
    match text.parse::<f64>().ok().filter(|v| v.is_finite()) {
        Some(v) => {
            let c = param.clamp(v).unwrap_or(param.default);
            if (c - v).abs() > 1e-12 {
                notes.push(format!(
                    "“{}={}” is out of range: using {} (allowed {}–{}).",
                    param.key,
                    shorten(text),
                    num(c),
                    num(param.min),
                    num(param.max)
                ));
            }
            set(c);
        }
        None => notes.push(format!(
            "Ignored “{}={}”: expected a number from {} to {}.",
            param.key,
            shorten(text),
            num(param.min),
            num(param.max)
        )),
    }
}

/// Shortest decimal form of a parameter value (`5`, `0.63`, `0.115`).
#[must_use]
pub fn num(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(24).collect();
    if text.chars().count() > 24 {
        s.push('…');
    }
    s
}

/// Decode `%XX` escapes and `+` (invalid escapes are kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip() {
        let state = PageState::default();
        let q = state.to_query();
        assert_eq!(q, "?preset=baseline&seed=7&speed=10&focus=wm-ppo");
        assert_eq!(PageState::from_query(&q), (state, vec![]));
        assert_eq!(PageState::from_query(""), (state, vec![]));
    }

    #[test]
    fn custom_scenarios_round_trip() {
        let state = PageState {
            scenario: Scenario {
                population: 73,
                bandwidth_mhz: 2.5,
                budget_scale: 0.65,
                load: 0.17,
                min_accuracy: 0.7,
                max_hallucination: 0.095,
                seed: u64::MAX,
            },
            speed: 50,
            focus: PolicyId::Oracle,
        };
        let (back, notes) = PageState::from_query(&state.to_query());
        assert_eq!(back, state);
        assert!(notes.is_empty(), "{notes:?}");
        for preset in Preset::ALL {
            let state = PageState {
                scenario: preset.scenario(3),
                ..PageState::default()
            };
            let q = state.to_query();
            assert!(q.contains(preset.key()), "{q}");
            assert_eq!(PageState::from_query(&q).0, state);
        }
    }

    #[test]
    fn bad_values_become_defaults_with_notes() {
        let (state, notes) = PageState::from_query(
            "?n=abc&bw=1e9&seed=-4&speed=7&focus=nope&wat=1&budget=NaN&acc=%zz&hal=0.1&preset=x",
        );
        let s = state.scenario;
        assert_eq!(s.population, 20);
        assert!((s.bandwidth_mhz - BANDWIDTH.max).abs() < 1e-12);
        assert_eq!(s.seed, DEFAULT_SEED);
        assert_eq!(state.speed, DEFAULT_SPEED);
        assert_eq!(state.focus, PolicyId::WmPpo);
        assert!((s.budget_scale - 1.0).abs() < 1e-12);
        assert!((s.min_accuracy - MIN_ACCURACY.default).abs() < 1e-12);
        assert!((s.max_hallucination - 0.1).abs() < 1e-12);
        assert_eq!(notes.len(), 9, "{notes:#?}");
        // Whatever the URL says, the scenario is valid for the simulator.
        s.config().validate().unwrap();
    }

    #[test]
    fn hostile_strings_do_not_panic() {
        for q in [
            "%",
            "%%",
            "%f",
            "=",
            "&&&",
            "n=%E2%82%AC",
            "n",
            "??",
            "seed=99999999999999999999",
        ] {
            let (state, _) = PageState::from_query(q);
            state.scenario.config().validate().unwrap();
        }
    }

    #[test]
    fn defaults_are_the_simulators() {
        let c = mec::SimConfig::default();
        assert_eq!(MIN_ACCURACY.default, c.qos.min_accuracy);
        assert_eq!(MAX_HALLUCINATION.default, c.qos.max_hallucination);
        assert_eq!(
            Scenario::default().config(),
            SimConfig {
                devices: POPULATION.default as usize,
                ..c
            }
        );
    }

    #[test]
    fn numbers_print_short() {
        assert_eq!(num(5.0), "5");
        assert_eq!(num(0.115), "0.115");
        assert_eq!(num(0.0), "0");
    }

    #[test]
    fn scenario_applies_to_the_config() {
        let s = Scenario {
            budget_scale: 0.5,
            bandwidth_mhz: 2.0,
            ..Scenario::default()
        };
        let c = s.config();
        assert!((c.radio.bandwidth_hz - 2e6).abs() < 1.0);
        let shipped = mec::SimConfig::default().classes[0].energy_budget_j;
        assert!((c.classes[0].energy_budget_j - 0.5 * shipped).abs() < 1e-9);
        c.validate().unwrap();
    }
}
