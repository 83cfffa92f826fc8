//! The numbers of a [`SimConfig`] a front end lets a person turn ("knobs"), in one table:
//! [`KNOBS`]. Each row names the knob (key, label, unit), its slider range and step, and
//! how it reads and writes a config. A knob's default is not restated: it is what the
//! knob reads from `SimConfig::default()`. Every range lies inside what
//! [`SimConfig::validate`] accepts (the tests set each end and validate), so exposing a
//! new config field is one row here.

use crate::config::SimConfig;
use crate::presets::{set_bursts, set_edge_load};

/// What a knob's value measures (how a front end shows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnobUnit {
    /// A whole number of things (values are rounded).
    Count,
    /// Megahertz.
    Megahertz,
    /// A multiplier on shipped values (1 = as shipped), shown as a percentage.
    Scale,
    /// A rate in [0, 1], shown as a percentage.
    Fraction,
    /// Events per device per slot.
    PerDevicePerSlot,
    /// A ratio of two rates (1 = equal), shown as `×k`.
    Ratio,
}

/// One number of a [`SimConfig`] exposed to people, with its range.
#[derive(Debug, Clone, Copy)]
pub struct Knob {
    /// Stable identifier (a URL query key and an element id in the web app): lowercase
    /// words joined by `-`. Never reused for another meaning.
    pub key: &'static str,
    /// Short human label.
    pub label: &'static str,
    /// One sentence on what it changes.
    pub help: &'static str,
    /// What the value measures.
    pub unit: KnobUnit,
    /// Smallest value offered.
    pub min: f64,
    /// Largest value offered.
    pub max: f64,
    /// Slider step.
    pub step: f64,
    read: fn(&SimConfig) -> f64,
    write: fn(&mut SimConfig, f64),
}

impl Knob {
    /// The knob's value in `config`.
    #[must_use]
    pub fn read(&self, config: &SimConfig) -> f64 {
        (self.read)(config)
    }

    /// Sets the knob's value in `config` (as given: clamp first with [`Knob::clamp`]).
    pub fn write(&self, config: &mut SimConfig, value: f64) {
        (self.write)(config, value);
    }

    /// The value in the shipped scenario, `SimConfig::default()`.
    #[must_use]
    pub fn default_value(&self) -> f64 {
        self.read(&SimConfig::default())
    }

    /// `value` brought into the range (rounded for a [`KnobUnit::Count`]); `None` when it
    /// is not a finite number.
    #[must_use]
    pub fn clamp(&self, value: f64) -> Option<f64> {
        if !value.is_finite() {
            return None;
        }
        let v = value.clamp(self.min, self.max);
        Some(if self.unit == KnobUnit::Count {
            v.round()
        } else {
            v
        })
    }

    /// The knob of `key`.
    #[must_use]
    pub fn by_key(key: &str) -> Option<&'static Self> {
        KNOBS.iter().find(|k| k.key == key)
    }
}

/// Every knob, in the order a front end lists them.
pub const KNOBS: &[Knob] = &[
    Knob {
        key: "devices",
        label: "Devices",
        help: "Mobile devices in the cell (the population N).",
        unit: KnobUnit::Count,
        min: 10.0,
        max: 100.0,
        step: 1.0,
        read: |c| usize_to_f64(c.devices),
        write: |c, v| c.devices = f64_to_usize(v),
    },
    Knob {
        key: "bandwidth",
        label: "Uplink",
        help: "Uplink bandwidth shared by the devices offloading in a slot.",
        unit: KnobUnit::Megahertz,
        min: 0.5,
        max: 20.0,
        step: 0.5,
        read: |c| c.radio.bandwidth_hz / 1e6,
        write: |c, v| c.radio.bandwidth_hz = v * 1e6,
    },
    Knob {
        key: "budget",
        label: "Energy budget",
        help: "Every device class's energy budget per window, relative to the shipped one.",
        unit: KnobUnit::Scale,
        min: 0.25,
        max: 2.0,
        step: 0.05,
        read: budget_scale,
        write: set_budget_scale,
    },
    Knob {
        key: "load",
        label: "Questions",
        help: "Mean questions per device per slot (Poisson arrivals).",
        unit: KnobUnit::PerDevicePerSlot,
        min: 0.02,
        max: 0.3,
        step: 0.01,
        read: |c| c.arrival_rate,
        write: |c, v| c.arrival_rate = v,
    },
    Knob {
        key: "min-accuracy",
        label: "Min accuracy",
        help: "The episode's effective accuracy must stay at or above this.",
        unit: KnobUnit::Fraction,
        min: 0.1,
        max: 0.8,
        step: 0.005,
        read: |c| c.qos.min_accuracy,
        write: |c, v| c.qos.min_accuracy = v,
    },
    Knob {
        key: "max-hallucination",
        label: "Max hallucination",
        help: "The episode's hallucination rate must stay at or below this.",
        unit: KnobUnit::Fraction,
        min: 0.05,
        max: 0.8,
        step: 0.005,
        read: |c| c.qos.max_hallucination,
        write: |c, v| c.qos.max_hallucination = v,
    },
    Knob {
        key: "bursts",
        label: "Bursts",
        help: "Arrival rate in cell-wide bursts relative to calm slots (1 = steady arrivals); \
               the long-run mean stays the same.",
        unit: KnobUnit::Ratio,
        min: 1.0,
        max: 8.0,
        step: 0.5,
        read: |c| c.bursts.factor,
        write: set_bursts,
    },
    Knob {
        key: "edge-load",
        label: "Edge background",
        help: "Mean share of the edge taken by other work, varying slowly from slot to slot.",
        unit: KnobUnit::Fraction,
        min: 0.0,
        max: 0.6,
        step: 0.05,
        read: |c| c.edge.background_load,
        write: set_edge_load,
    },
];

#[allow(clippy::cast_precision_loss)] // device counts are far below 2^52
fn usize_to_f64(n: usize) -> f64 {
    n as f64
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // rounded, clamped ≥ 0
fn f64_to_usize(v: f64) -> usize {
    v.round().max(0.0) as usize
}

/// The energy budget of the first class that has a shipped namesake, relative to that
/// namesake's (1 when there is none).
fn budget_scale(config: &SimConfig) -> f64 {
    let shipped = SimConfig::default();
    config
        .classes
        .iter()
        .find_map(|c| {
            shipped
                .classes
                .iter()
                .find(|s| s.name == c.name)
                .map(|s| c.energy_budget_j / s.energy_budget_j)
        })
        .unwrap_or(1.0)
}

/// Every class's budget set to `scale` × its shipped namesake's (classes without one keep
/// theirs).
fn set_budget_scale(config: &mut SimConfig, scale: f64) {
    let shipped = SimConfig::default();
    for class in &mut config.classes {
        if let Some(s) = shipped.classes.iter().find(|s| s.name == class.name) {
            class.energy_budget_j = s.energy_budget_j * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(1.0)
    }

    #[test]
    fn keys_are_unique_and_well_formed() {
        for (i, k) in KNOBS.iter().enumerate() {
            assert!(
                k.key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit()),
                "{}",
                k.key
            );
            assert!(KNOBS[i + 1..].iter().all(|o| o.key != k.key), "{}", k.key);
            assert_eq!(Knob::by_key(k.key).map(|o| o.key), Some(k.key));
        }
        assert!(Knob::by_key("nope").is_none());
    }

    #[test]
    fn ranges_hold_the_defaults_and_validate_at_both_ends() {
        for k in KNOBS {
            let d = k.default_value();
            assert!(k.min < k.max && k.step > 0.0, "{}", k.key);
            assert!(
                (k.min..=k.max).contains(&d),
                "{}: the default {d} is outside [{}, {}]",
                k.key,
                k.min,
                k.max
            );
            assert_eq!(k.clamp(d), Some(d), "{}", k.key);
            for v in [k.min, k.max] {
                let mut c = SimConfig::default();
                k.write(&mut c, v);
                c.validate()
                    .unwrap_or_else(|e| panic!("{} = {v} is offered but invalid: {e}", k.key));
            }
        }
    }

    #[test]
    fn write_then_read_gives_the_value_back_and_touches_nothing_else() {
        for k in KNOBS {
            let mut v = k.min;
            while v <= k.max {
                let mut c = SimConfig::default();
                k.write(&mut c, v);
                assert!(
                    close(k.read(&c), v),
                    "{}: wrote {v}, read {}",
                    k.key,
                    k.read(&c)
                );
                for other in KNOBS.iter().filter(|o| o.key != k.key) {
                    assert!(
                        close(other.read(&c), other.default_value()),
                        "{} moved {}",
                        k.key,
                        other.key
                    );
                }
                v += k.step * 7.0;
            }
        }
    }

    #[test]
    fn clamp_rounds_counts_and_rejects_non_numbers() {
        let devices = Knob::by_key("devices").unwrap();
        assert_eq!(devices.clamp(37.4), Some(37.0));
        assert_eq!(devices.clamp(1e9), Some(devices.max));
        assert_eq!(devices.clamp(f64::NAN), None);
        let budget = Knob::by_key("budget").unwrap();
        let mut c = SimConfig::default();
        budget.write(&mut c, 0.5);
        let shipped = SimConfig::default();
        for (a, b) in c.classes.iter().zip(&shipped.classes) {
            assert!(close(a.energy_budget_j, 0.5 * b.energy_budget_j));
        }
    }
}
