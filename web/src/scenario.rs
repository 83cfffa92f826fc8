//! What the visitor chose, its query-string form (so a scenario can be shared and
//! round-trips through the URL) and the presets.
//!
//! The numbers of a scenario are the simulator's knobs ([`mec::KNOBS`]): their keys,
//! ranges and defaults come from that one table, so a knob added there is a slider, a
//! URL parameter and a CSV header comment here with no change to this file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mec::{KNOBS, Knob, SimConfig};
use serde::{Deserialize, Serialize};

use crate::entrants::Entrant;

/// Simulation speeds offered, slots per second.
pub const SPEEDS: [u32; 7] = [1, 2, 5, 10, 25, 50, 100];
/// Default speed, slots per second.
pub const DEFAULT_SPEED: u32 = 10;
/// Default seed.
pub const DEFAULT_SEED: u64 = 7;

/// Everything that defines the episodes being raced: one value per knob of
/// [`mec::KNOBS`] (in its order and units) and the seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "ScenarioWire", try_from = "ScenarioWire")]
pub struct Scenario {
    values: [f64; KNOBS.len()],
    /// Seed of the first episode; later ones use `seed + episode`.
    pub seed: u64,
}

/// How a scenario travels and is stored (messages, a policy file's `meta`): knob values
/// by key, so the form is readable and survives knobs being added.
#[derive(Serialize, Deserialize)]
struct ScenarioWire {
    knobs: BTreeMap<String, f64>,
    seed: u64,
}

impl From<Scenario> for ScenarioWire {
    fn from(s: Scenario) -> Self {
        Self {
            knobs: s.knobs().map(|(k, v)| (k.key.to_owned(), v)).collect(),
            seed: s.seed,
        }
    }
}

impl TryFrom<ScenarioWire> for Scenario {
    type Error = String;

    /// Missing knobs take their defaults; an unknown knob is an error.
    fn try_from(wire: ScenarioWire) -> Result<Self, String> {
        let mut s = Self {
            seed: wire.seed,
            ..Self::default()
        };
        for (key, value) in wire.knobs {
            let i = knob_index(&key).ok_or_else(|| {
                format!(
                    "unknown scenario knob “{key}”: expected one of {}",
                    KNOBS.iter().map(|k| k.key).collect::<Vec<_>>().join(", ")
                )
            })?;
            s.values[i] = value;
        }
        Ok(s)
    }
}

fn knob_index(key: &str) -> Option<usize> {
    KNOBS.iter().position(|k| k.key == key)
}

impl Default for Scenario {
    /// The simulator's shipped scenario and [`DEFAULT_SEED`].
    fn default() -> Self {
        let shipped = SimConfig::default();
        Self {
            values: std::array::from_fn(|i| KNOBS[i].read(&shipped)),
            seed: DEFAULT_SEED,
        }
    }
}

impl Scenario {
    /// Every knob with its value, in [`mec::KNOBS`] order.
    pub fn knobs(&self) -> impl Iterator<Item = (&'static Knob, f64)> + '_ {
        KNOBS.iter().zip(self.values.iter().copied())
    }

    /// The value of the knob `key`.
    ///
    /// # Panics
    /// When `key` is not a knob of [`mec::KNOBS`] (a programming error).
    #[must_use]
    pub fn get(&self, key: &str) -> f64 {
        self.values[knob_index(key).unwrap_or_else(|| panic!("no scenario knob “{key}”"))]
    }

    /// The same scenario with knob `key` set to `value` (not clamped).
    ///
    /// # Panics
    /// When `key` is not a knob of [`mec::KNOBS`] (a programming error).
    #[must_use]
    pub fn with(mut self, key: &str, value: f64) -> Self {
        self.values[knob_index(key).unwrap_or_else(|| panic!("no scenario knob “{key}”"))] = value;
        self
    }

    /// The same scenario with another seed.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    /// The simulator configuration of this scenario: the shipped one with every knob set.
    #[must_use]
    pub fn config(&self) -> SimConfig {
        let mut config = SimConfig::default();
        for (knob, value) in self.knobs() {
            knob.write(&mut config, value);
        }
        config
    }

    /// The number of devices.
    #[must_use]
    pub fn devices(&self) -> usize {
        self.config().devices
    }

    /// The same scenario with every knob brought into its range (a value that is not a
    /// number takes the default).
    #[must_use]
    pub fn clamped(self) -> Self {
        let mut out = self;
        for (i, knob) in KNOBS.iter().enumerate() {
            out.values[i] = knob
                .clamp(self.values[i])
                .unwrap_or_else(|| knob.default_value());
        }
        out
    }

    /// The preset this scenario matches (ignoring the seed), if any.
    #[must_use]
    pub fn preset(&self) -> Option<&'static Preset> {
        PRESETS.iter().find(|p| p.scenario(self.seed) == *self)
    }
}

/// How a preset sets one knob.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting {
    /// To this value.
    To(f64),
    /// To the knob's default plus this (negative: below it).
    DefaultPlus(f64),
}

/// A named scenario a visitor can start from: the defaults with a few knobs set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    /// Stable identifier (menu value, URL).
    pub key: &'static str,
    /// Menu label.
    pub label: &'static str,
    /// Knob key → setting; the other knobs keep their defaults.
    pub settings: &'static [(&'static str, Setting)],
}

/// The preset a visitor sees first: the crowded cell, where the edge is the bottleneck and
/// the trained policies beat every fixed rule (at 10–50 devices the oracle's simple rule is
/// already hard to beat; `www/policies/README.md` has the figures).
pub const DEFAULT_PRESET: &str = "crowded";

/// Every preset, in menu order (the default first).
pub const PRESETS: &[Preset] = &[
    Preset {
        key: "crowded",
        label: "Crowded cell (100 devices)",
        settings: &[("devices", Setting::To(100.0))],
    },
    Preset {
        key: "baseline",
        label: "Baseline (20 devices)",
        settings: &[],
    },
    // The CLI's `bursty` and `edge-load` scenarios (`mec::presets`), in a crowded cell.
    Preset {
        key: "bursty",
        label: "Bursty arrivals (100 devices)",
        settings: &[
            ("devices", Setting::To(100.0)),
            ("bursts", Setting::To(6.0)),
        ],
    },
    Preset {
        key: "busy-edge",
        label: "Busy edge (35 % background work)",
        settings: &[("edge-load", Setting::To(0.35))],
    },
    Preset {
        key: "weak-uplink",
        label: "Weak uplink (1 MHz)",
        settings: &[("bandwidth", Setting::To(1.0))],
    },
    Preset {
        key: "low-battery",
        label: "Low battery (40 % budget)",
        settings: &[("budget", Setting::To(0.4))],
    },
    // Both constraints 0.05 tighter than the defaults: the band of feasible offload
    // shares narrows (still feasible with the shipped catalogue).
    Preset {
        key: "strict-quality",
        label: "Strict quality",
        settings: &[
            ("min-accuracy", Setting::DefaultPlus(0.05)),
            ("max-hallucination", Setting::DefaultPlus(-0.05)),
        ],
    },
    Preset {
        key: "rush-hour",
        label: "Rush hour (50 devices, busy)",
        settings: &[("devices", Setting::To(50.0)), ("load", Setting::To(0.25))],
    },
];

impl Preset {
    /// The preset by its key.
    #[must_use]
    pub fn from_key(key: &str) -> Option<&'static Self> {
        PRESETS.iter().find(|p| p.key == key)
    }

    /// The preset's scenario with `seed`.
    #[must_use]
    pub fn scenario(&self, seed: u64) -> Scenario {
        let mut s = Scenario {
            seed,
            ..Scenario::default()
        };
        for (key, setting) in self.settings {
            let value = match setting {
                Setting::To(v) => *v,
                Setting::DefaultPlus(d) => s.get(key) + d,
            };
            s = s.with(key, value);
        }
        s
    }
}

/// Everything the URL holds: the scenario plus how it is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageState {
    /// The scenario.
    pub scenario: Scenario,
    /// Slots per second.
    pub speed: u32,
    /// The entrant drawn in the network view.
    pub focus: Entrant,
}

impl Default for PageState {
    /// The [`DEFAULT_PRESET`] with [`DEFAULT_SEED`], at the default speed, showing WM-PPO.
    fn default() -> Self {
        let preset = Preset::from_key(DEFAULT_PRESET)
            .unwrap_or_else(|| panic!("the default preset “{DEFAULT_PRESET}” is not in PRESETS"));
        Self {
            scenario: preset.scenario(DEFAULT_SEED),
            speed: DEFAULT_SPEED,
            focus: Entrant::WmPpo,
        }
    }
}

impl PageState {
    /// Parse a query string (with or without the leading `?`). Never fails: a missing
    /// value takes the page's default ([`PageState::default`]: the [`DEFAULT_PRESET`]'s), and
    /// every bad or out-of-range value is replaced (default or nearest bound) with a note
    /// saying what was wrong.
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
                        "Unknown preset “{}”: using {}.",
                        shorten(&value),
                        default_label()
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
            if let Some(i) = knob_index(&key) {
                if let Some(x) = number(&KNOBS[i], v, &mut notes) {
                    state.scenario.values[i] = x;
                }
                continue;
            }
            match key.as_str() {
                "seed" => match v.parse::<u64>() {
                    Ok(seed) => state.scenario.seed = seed,
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
                "focus" => match Entrant::from_key(v) {
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
            let _ = write!(q, "preset={}&", p.key);
        } else {
            for (knob, value) in s.knobs() {
                let _ = write!(q, "{}={}&", knob.key, num(value));
            }
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

/// The default preset's menu label, lower-cased for a sentence.
fn default_label() -> String {
    Preset::from_key(DEFAULT_PRESET).map_or_else(
        || DEFAULT_PRESET.to_owned(),
        |p| {
            let mut label = p.label.to_owned();
            if let Some(first) = label.get(..1) {
                label.replace_range(..1, &first.to_lowercase());
            }
            format!("the {label}")
        },
    )
}

/// The value of `knob` written as `text` (clamped, with a note when it was out of
/// range), or none with a note when it is not a number.
fn number(knob: &Knob, text: &str, notes: &mut Vec<String>) -> Option<f64> {
    let Some(v) = text.parse::<f64>().ok().filter(|v| v.is_finite()) else {
        notes.push(format!(
            "Ignored “{}={}”: expected a number from {} to {}.",
            knob.key,
            shorten(text),
            num(knob.min),
            num(knob.max)
        ));
        return None;
    };
    let c = knob.clamp(v).unwrap_or_else(|| knob.default_value());
    if (c - v).abs() > 1e-12 {
        notes.push(format!(
            "“{}={}” is out of range: using {} (allowed {}–{}).",
            knob.key,
            shorten(text),
            num(c),
            num(knob.min),
            num(knob.max)
        ));
    }
    Some(c)
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
        assert_eq!(q, "?preset=crowded&seed=7&speed=10&focus=wm-ppo");
        assert_eq!(state.scenario.devices(), 100);
        assert_eq!(PageState::from_query(&q), (state, vec![]));
        assert_eq!(PageState::from_query(""), (state, vec![]));
        assert_eq!(Scenario::default().config(), SimConfig::default());
    }

    /// Every knob, at each end of its range and a value on its step grid inside, is
    /// written to the URL under its key and read back unchanged, without a note.
    #[test]
    fn every_knob_round_trips_through_the_url() {
        for knob in KNOBS {
            let inside = knob.min + knob.step * ((knob.max - knob.min) / knob.step / 3.0).round();
            for value in [knob.min, inside, knob.max] {
                let state = PageState {
                    scenario: Scenario::default().with(knob.key, value),
                    ..PageState::default()
                };
                let q = state.to_query();
                if state.scenario.preset().is_none() {
                    assert!(q.contains(&format!("{}={}&", knob.key, num(value))), "{q}");
                }
                let (back, notes) = PageState::from_query(&q);
                assert!(notes.is_empty(), "{q}: {notes:?}");
                assert!(
                    (back.scenario.get(knob.key) - value).abs() < 1e-9,
                    "{}: {value} came back as {}",
                    knob.key,
                    back.scenario.get(knob.key)
                );
                back.scenario.config().validate().unwrap();
            }
        }
    }

    #[test]
    fn custom_scenarios_and_presets_round_trip() {
        let state = PageState {
            scenario: Scenario {
                seed: u64::MAX,
                ..Scenario::default()
            }
            .with("devices", 73.0)
            .with("bandwidth", 2.5)
            .with("budget", 0.65)
            .with("load", 0.17)
            .with("min-accuracy", 0.7)
            .with("max-hallucination", 0.095),
            speed: 50,
            focus: Entrant::Oracle,
        };
        let (back, notes) = PageState::from_query(&state.to_query());
        assert_eq!(back, state);
        assert!(notes.is_empty(), "{notes:?}");
        for preset in PRESETS {
            let state = PageState {
                scenario: preset.scenario(3),
                ..PageState::default()
            };
            let q = state.to_query();
            assert!(q.contains(&format!("preset={}&", preset.key)), "{q}");
            assert_eq!(PageState::from_query(&q).0, state);
            assert_eq!(state.scenario.clamped(), state.scenario, "{}", preset.key);
            state.scenario.config().validate().unwrap();
        }
    }

    /// The page's bursty and busy-edge presets are the CLI's named scenarios (`simulate
    /// --preset bursty|edge-load`), so figures measured with the CLI describe them.
    #[test]
    fn named_scenarios_match_the_cli_presets() {
        let page = |key: &str| {
            Preset::from_key(key)
                .unwrap()
                .scenario(DEFAULT_SEED)
                .config()
        };
        let mut bursty = mec::preset("bursty").unwrap();
        bursty.devices = 100;
        assert_eq!(page("bursty"), bursty);
        assert_eq!(page("busy-edge"), mec::preset("edge-load").unwrap());
        let (state, notes) = PageState::from_query("?preset=nope");
        assert_eq!(state, PageState::default());
        assert_eq!(
            notes,
            ["Unknown preset “nope”: using the crowded cell (100 devices)."]
        );
    }

    #[test]
    fn presets_name_real_knobs_and_differ() {
        for (i, p) in PRESETS.iter().enumerate() {
            for (key, _) in p.settings {
                assert!(Knob::by_key(key).is_some(), "{}: no knob {key}", p.key);
            }
            for q in &PRESETS[i + 1..] {
                assert_ne!(p.scenario(1), q.scenario(1), "{} = {}", p.key, q.key);
            }
        }
        let strict = Preset::from_key("strict-quality").unwrap().scenario(1);
        let base = Scenario::default();
        assert!(strict.get("min-accuracy") > base.get("min-accuracy"));
        assert!(strict.get("max-hallucination") < base.get("max-hallucination"));
    }

    #[test]
    fn bad_values_become_defaults_with_notes() {
        let (state, notes) = PageState::from_query(
            "?devices=abc&bandwidth=1e9&seed=-4&speed=7&focus=nope&wat=1&budget=NaN&min-accuracy=%zz&max-hallucination=0.1&preset=x",
        );
        let s = state.scenario;
        // A bad value falls back to the page's default scenario, not the simulator's.
        let d = PageState::default().scenario;
        assert_eq!(s.devices(), d.devices());
        assert!((s.get("bandwidth") - Knob::by_key("bandwidth").unwrap().max).abs() < 1e-12);
        assert_eq!(s.seed, DEFAULT_SEED);
        assert_eq!(state.speed, DEFAULT_SPEED);
        assert_eq!(state.focus, Entrant::WmPpo);
        assert_eq!(s.get("budget"), d.get("budget"));
        assert_eq!(s.get("min-accuracy"), d.get("min-accuracy"));
        assert!((s.get("max-hallucination") - 0.1).abs() < 1e-12);
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
            "devices=%E2%82%AC",
            "devices",
            "??",
            "seed=99999999999999999999",
        ] {
            let (state, _) = PageState::from_query(q);
            state.scenario.config().validate().unwrap();
        }
    }

    #[test]
    fn numbers_print_short() {
        assert_eq!(num(5.0), "5");
        assert_eq!(num(0.115), "0.115");
        assert_eq!(num(0.0), "0");
    }

    #[test]
    fn scenario_applies_to_the_config_and_travels_by_key() {
        let s = Scenario::default()
            .with("budget", 0.5)
            .with("bandwidth", 2.0);
        let c = s.config();
        assert!((c.radio.bandwidth_hz - 2e6).abs() < 1.0);
        let shipped = SimConfig::default().classes[0].energy_budget_j;
        assert!((c.classes[0].energy_budget_j - 0.5 * shipped).abs() < 1e-9);
        c.validate().unwrap();
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["knobs"]["bandwidth"], 2.0);
        assert_eq!(serde_json::from_value::<Scenario>(json).unwrap(), s);
        let err = serde_json::from_str::<Scenario>(r#"{"knobs":{"wat":1},"seed":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("wat"), "{err}");
    }
}
