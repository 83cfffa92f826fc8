//! "Add this device to the simulation": the visitor's browser as a device class of the
//! simulated cell, with the speeds the chat measured here, so the race shows how such a
//! device would be scheduled. Plain Rust, tested natively.
//!
//! The class is kept for this visit only, not in the URL: the measurement is of this
//! browser, and a shared link opened elsewhere would simulate a device it never measured.

use std::collections::BTreeMap;

use edgewise_llm::energy::{self, HostSpeed, ModelWork, QueryShape};
use mec::{Catalogue, ClassProfile, DeviceClassConfig, SimConfig, Simulator, VariantProfile};
use serde::{Deserialize, Serialize};

/// The added class's name.
pub const THIS_DEVICE_CLASS: &str = "this-browser";

/// The added class's share of the population; the shipped classes share the rest in
/// their shipped proportions.
pub const THIS_DEVICE_SHARE: f64 = 0.2;

/// The shipped classes' budget rule (`DeviceClassConfig::energy_budget_j`): this many
/// times the energy of answering a window's expected queries locally.
pub const BUDGET_HEADROOM: f64 = 1.25;

/// What the page measured and knows about the model it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured<'a> {
    /// The model's variant in `models/index.json` (`"ecld"`, `"q4_1"`).
    pub model_variant: &'a str,
    /// The model file's size, bytes.
    pub model_bytes: f64,
    /// The model's work per token (from its configuration).
    pub work: ModelWork,
    /// Prefill and decode speed measured in this browser.
    pub speed: HostSpeed,
    /// Which backend ran the measurement (`cpu`, `webgpu`).
    pub backend: &'a str,
}

/// The visitor's device as the simulation takes it: a class and the catalogue variant it
/// has installed (the in-page model, with a profile for this class only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThisDevice {
    /// The class, its budget at the shipped budget scale (the scenario's budget knob
    /// scales it like the shipped classes').
    pub class: DeviceClassConfig,
    /// The in-page model as a catalogue variant.
    pub variant: VariantProfile,
    /// The energy model's class whose power and memory parameters priced it.
    pub energy_class: String,
    /// The catalogue variant whose accuracy and hallucination rate it copies.
    pub quality_from: String,
}

/// The catalogue variant whose quality stands in for the page's model of
/// `model_variant`. The catalogue lists what `edgewise eval` measured: the variants made
/// from the shipped model, not the shipped Q4_1 file itself. The closest to it is
/// `quant-only-q4`, the same model re-quantised to 4 bits (Q4_0 with Q8_0 embeddings,
/// 91.7 MB against the file's 98.4 MB); an ECLD file is the catalogue's `ecld-q4`.
#[must_use]
pub fn quality_source(model_variant: &str) -> &'static str {
    let v = model_variant.to_ascii_lowercase();
    if v.contains("ecld") {
        "ecld-q4"
    } else if v.starts_with("q8") {
        "quant-only-q8"
    } else if v == "f16" {
        "base-f16"
    } else {
        "quant-only-q4"
    }
}

/// The energy budget per window of a class whose installed variant costs
/// `joules_per_token`, by the shipped classes' rule on the shipped scenario:
/// [`BUDGET_HEADROOM`] × the energy of answering locally the queries a device expects in
/// one window (`arrival_rate · energy_window_slots` queries of the mean length).
#[must_use]
#[allow(clippy::cast_precision_loss)] // window lengths are far below 2^52
pub fn energy_budget_j(joules_per_token: f64, shipped: &SimConfig) -> f64 {
    let tokens = shipped.query.input_tokens_mean + shipped.query.output_tokens_mean;
    let queries = shipped.arrival_rate * shipped.energy_window_slots as f64;
    BUDGET_HEADROOM * queries * tokens * joules_per_token
}

impl ThisDevice {
    /// The class for a device measured as `m`, priced with the energy model's
    /// `energy_class` parameters (memory, transmit and idle power from the simulator's
    /// class of that name).
    ///
    /// # Errors
    /// A sentence when a speed is 0, not a number or infinite, when `energy_class` is
    /// not a class of both the energy model and the simulator, or when the simulator
    /// rejects the result.
    pub fn build(m: &Measured<'_>, energy_class: &str) -> Result<Self, String> {
        for (what, v) in [
            ("prefill", m.speed.prefill_tok_s),
            ("decode", m.speed.decode_tok_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!(
                    "this device's measured {what} speed is {v} tokens/s; expected a finite \
                     speed > 0: measure again"
                ));
            }
        }
        let priced = energy::default_class(energy_class).map_err(|e| e.to_string())?;
        let shipped = SimConfig::default();
        let sim_class = shipped
            .classes
            .iter()
            .find(|c| c.name == energy_class)
            .ok_or_else(|| {
                format!("the simulator has no device class “{energy_class}” to take radio and idle power from")
            })?;
        let catalogue = Catalogue::default_catalogue();
        let quality_from = quality_source(m.model_variant);
        let (_, quality) = catalogue.get(quality_from).ok_or_else(|| {
            format!("the catalogue has no variant “{quality_from}” to take quality from")
        })?;
        let estimate = energy::estimate_measured(
            &priced,
            &m.work,
            m.speed,
            QueryShape::default(),
            m.model_bytes,
        )
        .map_err(|e| format!("this device cannot be priced by the energy model: {e}"))?;
        let profile = ClassProfile {
            prefill_tok_s: m.speed.prefill_tok_s,
            decode_tok_s: m.speed.decode_tok_s,
            joules_per_token: estimate.joules_per_token,
        };
        let variant = VariantProfile {
            name: format!("in-page-{}", m.model_variant),
            method: quality.method.clone(),
            bytes: m.model_bytes,
            params: m.work.params,
            accuracy: quality.accuracy,
            hallucination_rate: quality.hallucination_rate,
            per_class: BTreeMap::from([(THIS_DEVICE_CLASS.to_owned(), profile)]),
            source: format!(
                "measured: this browser ({}), {:.1} prefill / {:.1} decode tokens/s; accuracy \
                 and hallucination rate of {quality_from}; J/token from the energy model with \
                 the {energy_class} class's parameters",
                m.backend, m.speed.prefill_tok_s, m.speed.decode_tok_s
            ),
        };
        let device = Self {
            class: DeviceClassConfig {
                name: THIS_DEVICE_CLASS.to_owned(),
                share: THIS_DEVICE_SHARE,
                memory_bytes: sim_class.memory_bytes,
                tx_power_w: sim_class.tx_power_w,
                idle_power_w: sim_class.idle_power_w,
                energy_budget_j: energy_budget_j(profile.joules_per_token, &shipped),
                variant: variant.name.clone(),
            },
            variant,
            energy_class: energy_class.to_owned(),
            quality_from: quality_from.to_owned(),
        };
        // Fail here, in the page's words, rather than later in the simulation worker.
        let (mut config, mut catalogue) = (shipped, catalogue);
        device.apply(&mut config, &mut catalogue, 1.0)?;
        Simulator::new(config, catalogue, 0)
            .map_err(|e| format!("the simulator rejects this device: {e}"))?;
        Ok(device)
    }

    /// The measured joules per token on this class.
    #[must_use]
    pub fn joules_per_token(&self) -> f64 {
        self.variant
            .per_class
            .get(THIS_DEVICE_CLASS)
            .map_or(f64::NAN, |p| p.joules_per_token)
    }

    /// Adds the class to `config` (the other classes' shares scaled to leave it
    /// [`THIS_DEVICE_SHARE`], its budget scaled by `budget_scale` as the scenario's budget
    /// knob scales the shipped ones) and its variant to `catalogue`.
    ///
    /// # Errors
    /// When `config` has no other class with a share, already has a class of this name,
    /// or the result does not validate, as a sentence.
    pub fn apply(
        &self,
        config: &mut SimConfig,
        catalogue: &mut Catalogue,
        budget_scale: f64,
    ) -> Result<(), String> {
        if config.classes.iter().any(|c| c.name == self.class.name) {
            return Err(format!(
                "the scenario already has a device class “{}”",
                self.class.name
            ));
        }
        let others: f64 = config.classes.iter().map(|c| c.share).sum();
        if !(others.is_finite() && others > 0.0) {
            return Err(format!(
                "the scenario's classes have a total share of {others}; expected > 0 to make room for this device"
            ));
        }
        for c in &mut config.classes {
            c.share *= (1.0 - self.class.share) / others;
        }
        let mut class = self.class.clone();
        class.energy_budget_j *= budget_scale;
        config.classes.push(class);
        catalogue.variants.retain(|v| v.name != self.variant.name);
        catalogue.variants.push(self.variant.clone());
        config
            .validate()
            .map_err(|e| format!("the simulator rejects this device: {e}"))?;
        catalogue
            .validate()
            .map_err(|e| format!("the catalogue rejects this device's model: {e}"))
    }
}

/// SmolLM2-135M Q4_1 (the shipped file): 30 layers, 9 query and 3 KV heads of 64.
#[cfg(test)]
fn smollm() -> ModelWork {
    ModelWork {
        weight_bytes: 98_362_432.0,
        params: 134_515_008.0,
        kv_bytes_per_token: 30.0 * 2.0 * 3.0 * 64.0 * 4.0,
        attn_width: 30.0 * 9.0 * 64.0,
    }
}

/// The shipped model measured at 150 prefill and 14 decode tokens/s on the CPU, priced as a
/// laptop: the device the races' tests add.
#[cfg(test)]
pub(crate) fn sample_device() -> ThisDevice {
    let measured = Measured {
        model_variant: "q4_1",
        model_bytes: 98_362_432.0,
        work: smollm(),
        speed: HostSpeed {
            prefill_tok_s: 150.0,
            decode_tok_s: 14.0,
        },
        backend: "cpu",
    };
    ThisDevice::build(&measured, "laptop").expect("the sample measurement builds a class")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(prefill: f64, decode: f64) -> Measured<'static> {
        Measured {
            model_variant: "q4_1",
            model_bytes: 98_362_432.0,
            work: smollm(),
            speed: HostSpeed {
                prefill_tok_s: prefill,
                decode_tok_s: decode,
            },
            backend: "cpu",
        }
    }

    #[test]
    fn the_class_carries_the_measurement_the_chosen_class_and_copied_quality() {
        let d = ThisDevice::build(&measured(150.0, 14.0), "phone-high").unwrap();
        let shipped = SimConfig::default();
        let phone = &shipped.classes[1];
        assert_eq!(phone.name, "phone-high");
        assert_eq!(d.class.name, THIS_DEVICE_CLASS);
        assert!((d.class.share - THIS_DEVICE_SHARE).abs() < 1e-12);
        assert!((d.class.memory_bytes - phone.memory_bytes).abs() < 1.0);
        assert!((d.class.tx_power_w - phone.tx_power_w).abs() < 1e-12);
        assert!((d.class.idle_power_w - phone.idle_power_w).abs() < 1e-12);
        assert_eq!(d.class.variant, "in-page-q4_1");
        assert_eq!(d.variant.name, d.class.variant);
        let p = d.variant.per_class[THIS_DEVICE_CLASS];
        assert!((p.prefill_tok_s - 150.0).abs() < 1e-12 && (p.decode_tok_s - 14.0).abs() < 1e-12);
        // J/token: the energy model at the measured speeds with phone-high's parameters.
        let class = energy::default_class("phone-high").unwrap();
        let e = energy::estimate_measured(
            &class,
            &smollm(),
            measured(150.0, 14.0).speed,
            QueryShape::default(),
            98_362_432.0,
        )
        .unwrap();
        assert!((p.joules_per_token - e.joules_per_token).abs() < 1e-15);
        assert!((d.joules_per_token() - e.joules_per_token).abs() < 1e-15);
        let (_, q) = Catalogue::default_catalogue()
            .get("quant-only-q4")
            .map(|(i, v)| (i, v.clone()))
            .unwrap();
        assert_eq!(d.quality_from, "quant-only-q4");
        assert!((d.variant.accuracy - q.accuracy).abs() < 1e-12);
        assert!((d.variant.hallucination_rate - q.hallucination_rate).abs() < 1e-12);
        assert!(d.variant.source.contains("150.0 prefill / 14.0 decode"));
        // Slower decoding on the same hardware costs more energy per token.
        let slow = ThisDevice::build(&measured(150.0, 7.0), "phone-high").unwrap();
        assert!(slow.joules_per_token() > d.joules_per_token());
        // The laptop's parameters price the same speeds higher (4 W static power).
        let laptop = ThisDevice::build(&measured(150.0, 14.0), "laptop").unwrap();
        assert!(laptop.joules_per_token() > d.joules_per_token());
        assert!((laptop.class.idle_power_w - shipped.classes[2].idle_power_w).abs() < 1e-12);
    }

    #[test]
    fn the_budget_rule_reproduces_the_shipped_budgets() {
        // The rule this module applies gives the shipped classes their shipped budgets
        // from the shipped catalogue (as tests/default_scenario.rs of mec checks).
        let shipped = SimConfig::default();
        let cat = Catalogue::default_catalogue();
        for c in &shipped.classes {
            let (_, v) = cat.get(&c.variant).unwrap();
            let rule = energy_budget_j(v.per_class[&c.name].joules_per_token, &shipped);
            let rel = (rule - c.energy_budget_j).abs() / c.energy_budget_j;
            assert!(
                rel < 0.05,
                "{}: rule {rule} vs shipped {}",
                c.name,
                c.energy_budget_j
            );
        }
        let d = ThisDevice::build(&measured(150.0, 14.0), "phone-low").unwrap();
        let local_window = 0.1 * 20.0 * 192.0 * d.joules_per_token();
        assert!((d.class.energy_budget_j / local_window - BUDGET_HEADROOM).abs() < 1e-9);
    }

    #[test]
    fn applying_renormalises_the_shares_and_scales_the_budget() {
        let d = ThisDevice::build(&measured(150.0, 14.0), "laptop").unwrap();
        let (mut config, mut cat) = (SimConfig::default(), Catalogue::default_catalogue());
        let before: Vec<f64> = config.classes.iter().map(|c| c.share).collect();
        d.apply(&mut config, &mut cat, 0.4).unwrap();
        assert_eq!(config.classes.len(), 4);
        let total: f64 = config.classes.iter().map(|c| c.share).sum();
        assert!((total - 1.0).abs() < 1e-12);
        for (c, b) in config.classes.iter().zip(&before) {
            assert!((c.share - b * 0.8).abs() < 1e-12, "{}", c.name);
        }
        let added = config.classes.last().unwrap();
        assert!((added.energy_budget_j - 0.4 * d.class.energy_budget_j).abs() < 1e-12);
        assert!(cat.get("in-page-q4_1").is_some());
        let e = d.apply(&mut config, &mut cat, 1.0).unwrap_err();
        assert!(e.contains("already has a device class"), "{e}");
    }

    #[test]
    fn failed_measurements_and_unknown_classes_are_explained() {
        for (prefill, decode, what) in [
            (0.0, 14.0, "prefill speed is 0"),
            (150.0, f64::NAN, "decode speed is NaN"),
            (f64::INFINITY, 14.0, "prefill speed is inf"),
            (150.0, -3.0, "decode speed is -3"),
        ] {
            let e = ThisDevice::build(&measured(prefill, decode), "laptop").unwrap_err();
            assert!(e.contains(what) && e.contains("measure again"), "{e}");
        }
        let e = ThisDevice::build(&measured(150.0, 14.0), "watch").unwrap_err();
        assert!(e.contains("watch") && e.contains("expected one of"), "{e}");
    }

    #[test]
    fn each_page_model_takes_quality_from_a_catalogue_variant() {
        let cat = Catalogue::default_catalogue();
        for (v, want) in [
            ("q4_1", "quant-only-q4"),
            ("ecld", "ecld-q4"),
            ("q8_0", "quant-only-q8"),
            ("f16", "base-f16"),
        ] {
            assert_eq!(quality_source(v), want);
            assert!(cat.get(want).is_some(), "{want}");
        }
    }
}
