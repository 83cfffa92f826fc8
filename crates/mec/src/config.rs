//! Scenario configuration: one serde type with documented defaults, loadable from TOML or
//! JSON, validated field by field.
//!
//! Unknown fields are rejected (a misspelt key is an error, not a silent default), and
//! [`SimConfig::validate`] names the first out-of-range field and what it expected.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Everything that defines a scenario. `SimConfig::default()` is the shipped scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// User population N (number of mobile devices). Default 20.
    pub devices: usize,
    /// Episode length T in slots. Default 200.
    pub slots: usize,
    /// Slot length Δ in seconds. Default 1.0.
    pub slot_s: f64,
    /// Energy-budget window W in slots. Default 20.
    pub energy_window_slots: usize,
    /// Mean query arrivals per device per slot (Poisson λ). Default 0.1.
    pub arrival_rate: f64,
    /// Radius of the cell around the edge server, metres. Default 250.
    pub cell_radius_m: f64,
    /// Devices never come closer to the server than this, metres. Default 10.
    pub min_distance_m: f64,
    /// Maximum walking speed of the random-waypoint mobility, m/s (speed ~ U(0, max)). Default 2.
    pub max_speed_mps: f64,
    /// A query whose scheduled latency would exceed this is rejected (dropped) and charged
    /// this latency. Default 60 s.
    pub max_latency_s: f64,
    /// Markov-modulated (bursty) arrivals; off by default.
    pub bursts: BurstConfig,
    /// Query sizes and difficulty.
    pub query: QueryConfig,
    /// Wireless uplink/downlink.
    pub radio: RadioConfig,
    /// The edge server.
    pub edge: EdgeConfig,
    /// QoS constraints.
    pub qos: QosConfig,
    /// Lagrangian reward weights.
    pub reward: RewardConfig,
    /// Device classes (each device is drawn from them by `share`).
    pub classes: Vec<DeviceClassConfig>,
}

/// Query size distribution (log-normal, clipped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Mean prompt length in tokens. Default 128.
    pub input_tokens_mean: f64,
    /// Mean answer length in tokens. Default 64.
    pub output_tokens_mean: f64,
    /// Log-space standard deviation of both lengths. Default 0.5.
    pub tokens_sigma: f64,
    /// Lengths are clipped to `[min_tokens, max_tokens]`. Defaults 8 and 1024.
    pub min_tokens: u32,
    /// Upper clip for lengths.
    pub max_tokens: u32,
    /// Mean size of context attached to a prompt (conversation history, a document or an
    /// image), in kilobytes; sent on the uplink along with the prompt. Default 250.
    pub context_kb_mean: f64,
    /// Log-space standard deviation of the context size. Default 1.0.
    pub context_sigma: f64,
    /// Spread of per-query difficulty: each query draws z ~ N(0, 1) and a model of
    /// accuracy `a` answers it correctly with probability `σ(logit(a) − difficulty_sigma · z)`
    /// (hard queries, z > 0, gain most from the larger edge model). 0 (the default) turns
    /// difficulty off: every query has its model's accuracy.
    pub difficulty_sigma: f64,
}

/// Markov-modulated Poisson arrivals: the whole cell switches between a calm and a burst
/// state (a two-state Markov chain stepped once per slot); in a burst every device's rate
/// is `factor` times the calm rate. The rates are scaled so that the long-run mean stays
/// `arrival_rate`. The chain starts from its stationary distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BurstConfig {
    /// Burst rate ÷ calm rate, ≥ 1. 1 (the default) turns bursts off.
    pub factor: f64,
    /// Probability per slot of a calm slot turning into a burst. Default 0.05.
    pub enter_prob: f64,
    /// Probability per slot of a burst ending. Default 0.2 (bursts last 5 slots on average).
    pub exit_prob: f64,
}

/// Shannon uplink with shared bandwidth, path loss and Gauss–Markov fading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RadioConfig {
    /// Total uplink bandwidth B shared equally by the devices offloading in a slot, Hz. Default 5 MHz.
    pub bandwidth_hz: f64,
    /// Noise power spectral density N0, dBm/Hz. Default −174.
    pub noise_dbm_per_hz: f64,
    /// Path gain at 1 m, g0 in dB. Default −30.
    pub reference_gain_db: f64,
    /// Path-loss exponent α. Default 3.5.
    pub path_loss_exponent: f64,
    /// Fading correlation ρ between consecutive slots (Gauss–Markov on the complex gain). Default 0.9.
    pub fading_correlation: f64,
    /// Bits sent per prompt or answer token (text plus overhead). Default 128 (16·8).
    pub bits_per_token: f64,
    /// Downlink rate, bits/s (fixed). Default 50 Mbit/s.
    pub downlink_bps: f64,
}

/// The edge server: a FIFO queue in front of `workers` parallel model instances serving the
/// full-size model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Parallel model instances (or batch slots). Default 6.
    pub workers: usize,
    /// Prefill speed per instance, tokens/s. Default 3000.
    pub prefill_tok_s: f64,
    /// Decode speed per instance, tokens/s. Default 45.
    pub decode_tok_s: f64,
    /// Catalogue variant the edge serves (its accuracy and hallucination rate apply). Default "base-f16".
    pub variant: String,
    /// Mean share of the edge's capacity taken by other (background) work, in [0, 0.9]:
    /// a query scheduled in a slot with background load ρ is served `1 / (1 − ρ)` times
    /// slower. Default 0 (no background load).
    pub background_load: f64,
    /// Standard deviation of the background load around its mean (a Gauss–Markov process,
    /// clipped to [0, 0.95]). Default 0.
    pub background_load_sigma: f64,
    /// Correlation of the background load between consecutive slots, in [0, 1). Default 0.9.
    pub background_load_correlation: f64,
}

/// LLM-specific QoS constraints (episode averages).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QosConfig {
    /// Effective accuracy must stay at or above this. Default: 40 % of the way from the
    /// devices' installed variants (share-weighted) to the edge's variant, in the shipped
    /// catalogue, so quality alone asks for at least 40 % of the queries on the edge.
    pub min_accuracy: f64,
    /// Hallucination rate must stay at or below this. Default: 60 % of the way from the
    /// devices' installed variants to the edge's, so (the edge's model hallucinating more
    /// than the compact ones, which abstain more) at most 60 % of the queries may go to the
    /// edge. `tests/default_scenario.rs` checks both rules against the catalogue.
    pub max_hallucination: f64,
}

/// Weights of the Lagrangian reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// Latency normaliser: a query of this latency costs 1. Default 10 s.
    pub latency_scale_s: f64,
    /// μ_A on accuracy below the constraint. Default 2.
    pub accuracy_weight: f64,
    /// μ_H on hallucination above the constraint. Default 2.
    pub hallucination_weight: f64,
    /// μ_E on energy overrun (per budget fraction overrun). Default 2.
    pub energy_weight: f64,
    /// Weight of the externality credit in learners' per-agent rewards: an offloading
    /// device also pays this times the delay its offload causes the others (`sim/externality.rs`).
    /// 0 turns it off. The slot's reward, which evaluations report, never includes it.
    /// Default 0 (files written before it existed read 0).
    pub externality_credit: f64,
    /// When the credit prices the work an offload leaves on the edge for later slots.
    /// Default `slot-end` (files written before it existed read it).
    pub externality_settlement: ExternalitySettlement,
}

/// When the externality credit prices the edge work an offload leaves for later slots
/// (`sim/externality.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExternalitySettlement {
    /// At the slot's end, as if one later query waited for all of that work: an
    /// estimate that overcharges a lightly loaded edge, where the next queries find a
    /// worker free anyway.
    #[default]
    SlotEnd,
    /// The same estimate at the slot's end, then settled in the next slot against the
    /// delay that work actually caused there (reported as a late reward for the earlier
    /// slot, [`crate::Simulator::late_rewards`]); what is still left after that slot
    /// is priced like `slot-end`.
    NextSlot,
}

/// A device class: radio and energy parameters and the locally installed model variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceClassConfig {
    /// Class name; must have an entry in the installed variant's `per_class` table.
    pub name: String,
    /// Fraction of the population in this class (shares are normalised).
    pub share: f64,
    /// Memory available to a model, bytes.
    pub memory_bytes: f64,
    /// Transmit power p_u, watts.
    pub tx_power_w: f64,
    /// Power drawn while waiting for an offloaded answer, watts.
    pub idle_power_w: f64,
    /// Energy budget E_u^max per window of `energy_window_slots`, joules. The shipped
    /// classes use 1.25 × the energy of answering a window's expected queries locally with
    /// the installed variant (from the catalogue), so running everything locally overruns
    /// the budget in busy windows (`tests/default_scenario.rs` checks the rule).
    pub energy_budget_j: f64,
    /// Name of the locally installed catalogue variant.
    pub variant: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            devices: 20,
            slots: 200,
            slot_s: 1.0,
            energy_window_slots: 20,
            arrival_rate: 0.1,
            cell_radius_m: 250.0,
            min_distance_m: 10.0,
            max_speed_mps: 2.0,
            max_latency_s: 60.0,
            bursts: BurstConfig::default(),
            query: QueryConfig::default(),
            radio: RadioConfig::default(),
            edge: EdgeConfig::default(),
            qos: QosConfig::default(),
            reward: RewardConfig::default(),
            classes: vec![
                DeviceClassConfig {
                    name: "phone-low".into(),
                    share: 0.4,
                    memory_bytes: 4.0e9,
                    tx_power_w: 0.2,
                    idle_power_w: 0.05,
                    energy_budget_j: 3.17,
                    variant: "ecld-q4".into(),
                },
                DeviceClassConfig {
                    name: "phone-high".into(),
                    share: 0.35,
                    memory_bytes: 8.0e9,
                    tx_power_w: 0.25,
                    idle_power_w: 0.06,
                    energy_budget_j: 2.0,
                    variant: "ecld-q4".into(),
                },
                DeviceClassConfig {
                    name: "laptop".into(),
                    share: 0.25,
                    memory_bytes: 16.0e9,
                    tx_power_w: 0.3,
                    idle_power_w: 0.5,
                    energy_budget_j: 9.45,
                    variant: "quant-only-q4".into(),
                },
            ],
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            input_tokens_mean: 128.0,
            output_tokens_mean: 64.0,
            tokens_sigma: 0.5,
            min_tokens: 8,
            max_tokens: 1024,
            context_kb_mean: 250.0,
            context_sigma: 1.0,
            difficulty_sigma: 0.0,
        }
    }
}

impl Default for BurstConfig {
    fn default() -> Self {
        Self {
            factor: 1.0,
            enter_prob: 0.05,
            exit_prob: 0.2,
        }
    }
}

impl BurstConfig {
    /// Whether arrivals are modulated at all.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.factor > 1.0
    }

    /// Long-run share of slots in the burst state.
    #[must_use]
    pub fn burst_share(&self) -> f64 {
        if self.enter_prob + self.exit_prob > 0.0 {
            self.enter_prob / (self.enter_prob + self.exit_prob)
        } else {
            0.0
        }
    }

    /// Per-device arrival rates (calm, burst) that keep the long-run mean at `mean_rate`.
    #[must_use]
    pub fn rates(&self, mean_rate: f64) -> (f64, f64) {
        let pi = self.burst_share();
        let calm = mean_rate / (1.0 - pi + pi * self.factor);
        (calm, calm * self.factor)
    }
}

impl Default for RadioConfig {
    fn default() -> Self {
        Self {
            bandwidth_hz: 5.0e6,
            noise_dbm_per_hz: -174.0,
            reference_gain_db: -30.0,
            path_loss_exponent: 3.5,
            fading_correlation: 0.9,
            bits_per_token: 128.0,
            downlink_bps: 50.0e6,
        }
    }
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            workers: 6,
            prefill_tok_s: 3000.0,
            decode_tok_s: 45.0,
            variant: "base-f16".into(),
            background_load: 0.0,
            background_load_sigma: 0.0,
            background_load_correlation: 0.9,
        }
    }
}

impl Default for QosConfig {
    fn default() -> Self {
        Self {
            min_accuracy: 0.4125,
            max_hallucination: 0.4167,
        }
    }
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            latency_scale_s: 10.0,
            accuracy_weight: 2.0,
            hallucination_weight: 2.0,
            energy_weight: 2.0,
            externality_credit: 0.0,
            externality_settlement: ExternalitySettlement::SlotEnd,
        }
    }
}

impl ExternalitySettlement {
    /// Every rule, in the order the docs list them.
    pub const ALL: [Self; 2] = [Self::SlotEnd, Self::NextSlot];

    /// Its name in scenario files and on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::SlotEnd => "slot-end",
            Self::NextSlot => "next-slot",
        }
    }
}

impl std::fmt::Display for ExternalitySettlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ExternalitySettlement {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| ConfigError::OutOfRange {
                field: "reward.externality_settlement".into(),
                value: format!("{s:?}"),
                expected: "slot-end or next-slot".into(),
            })
    }
}

#[allow(clippy::needless_pass_by_value)] // small numbers and literals, formatted only on error
fn check(ok: bool, field: &str, value: impl ToString, expected: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field: field.to_owned(),
            value: value.to_string(),
            expected: expected.to_owned(),
        })
    }
}

fn positive(field: &str, v: f64) -> Result<(), ConfigError> {
    check(v.is_finite() && v > 0.0, field, v, "a finite number > 0")
}

fn non_negative(field: &str, v: f64) -> Result<(), ConfigError> {
    check(v.is_finite() && v >= 0.0, field, v, "a finite number ≥ 0")
}

fn fraction(field: &str, v: f64) -> Result<(), ConfigError> {
    check(
        v.is_finite() && (0.0..=1.0).contains(&v),
        field,
        v,
        "a number in [0, 1]",
    )
}

impl SimConfig {
    /// Parse a TOML document (unknown keys are errors) and validate it.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            format: "TOML",
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse a JSON document (unknown keys are errors) and validate it.
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| ConfigError::Parse {
            format: "JSON",
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse TOML or JSON, chosen by file extension (`.json` → JSON, anything else → TOML).
    pub fn from_str_with_extension(
        text: &str,
        extension: Option<&str>,
    ) -> Result<Self, ConfigError> {
        match extension {
            Some(e) if e.eq_ignore_ascii_case("json") => Self::from_json_str(text),
            _ => Self::from_toml_str(text),
        }
    }

    /// Check every field's range; the error names the first bad field and what was expected.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            (1..=10_000).contains(&self.devices),
            "devices",
            self.devices,
            "an integer in [1, 10000]",
        )?;
        check(
            (1..=1_000_000).contains(&self.slots),
            "slots",
            self.slots,
            "an integer in [1, 1000000]",
        )?;
        positive("slot_s", self.slot_s)?;
        check(
            self.energy_window_slots >= 1,
            "energy_window_slots",
            self.energy_window_slots,
            "an integer ≥ 1",
        )?;
        check(
            self.arrival_rate.is_finite() && (0.0..=30.0).contains(&self.arrival_rate),
            "arrival_rate",
            self.arrival_rate,
            "queries per device per slot in [0, 30]",
        )?;
        positive("cell_radius_m", self.cell_radius_m)?;
        positive("min_distance_m", self.min_distance_m)?;
        check(
            self.min_distance_m < self.cell_radius_m,
            "min_distance_m",
            self.min_distance_m,
            "less than cell_radius_m",
        )?;
        non_negative("max_speed_mps", self.max_speed_mps)?;
        positive("max_latency_s", self.max_latency_s)?;

        let q = &self.query;
        positive("query.input_tokens_mean", q.input_tokens_mean)?;
        positive("query.output_tokens_mean", q.output_tokens_mean)?;
        check(
            q.tokens_sigma.is_finite() && (0.0..=3.0).contains(&q.tokens_sigma),
            "query.tokens_sigma",
            q.tokens_sigma,
            "a number in [0, 3]",
        )?;
        check(
            q.min_tokens >= 1,
            "query.min_tokens",
            q.min_tokens,
            "an integer ≥ 1",
        )?;
        check(
            q.max_tokens >= q.min_tokens,
            "query.max_tokens",
            q.max_tokens,
            "an integer ≥ query.min_tokens",
        )?;
        non_negative("query.context_kb_mean", q.context_kb_mean)?;
        check(
            q.context_sigma.is_finite() && (0.0..=3.0).contains(&q.context_sigma),
            "query.context_sigma",
            q.context_sigma,
            "a number in [0, 3]",
        )?;

        check(
            q.difficulty_sigma.is_finite() && (0.0..=5.0).contains(&q.difficulty_sigma),
            "query.difficulty_sigma",
            q.difficulty_sigma,
            "a number in [0, 5] (0 = every query as hard as the average)",
        )?;

        let b = &self.bursts;
        check(
            b.factor.is_finite() && (1.0..=100.0).contains(&b.factor),
            "bursts.factor",
            b.factor,
            "a number in [1, 100] (1 = no bursts)",
        )?;
        fraction("bursts.enter_prob", b.enter_prob)?;
        check(
            b.exit_prob.is_finite() && b.exit_prob > 0.0 && b.exit_prob <= 1.0,
            "bursts.exit_prob",
            b.exit_prob,
            "a probability in (0, 1] (bursts must end)",
        )?;
        if b.enabled() {
            let (_, burst) = b.rates(self.arrival_rate);
            check(
                burst <= 30.0,
                "bursts.factor",
                b.factor,
                &format!(
                    "a factor that keeps the burst arrival rate ≤ 30 per device and slot (it gives {burst:.3})"
                ),
            )?;
        }

        let r = &self.radio;
        positive("radio.bandwidth_hz", r.bandwidth_hz)?;
        check(
            r.noise_dbm_per_hz.is_finite(),
            "radio.noise_dbm_per_hz",
            r.noise_dbm_per_hz,
            "a finite number (dBm/Hz)",
        )?;
        check(
            r.reference_gain_db.is_finite() && r.reference_gain_db <= 0.0,
            "radio.reference_gain_db",
            r.reference_gain_db,
            "a finite gain ≤ 0 dB",
        )?;
        check(
            r.path_loss_exponent.is_finite() && (1.5..=6.0).contains(&r.path_loss_exponent),
            "radio.path_loss_exponent",
            r.path_loss_exponent,
            "a number in [1.5, 6]",
        )?;
        check(
            r.fading_correlation.is_finite() && (0.0..1.0).contains(&r.fading_correlation),
            "radio.fading_correlation",
            r.fading_correlation,
            "a number in [0, 1)",
        )?;
        positive("radio.bits_per_token", r.bits_per_token)?;
        positive("radio.downlink_bps", r.downlink_bps)?;

        let e = &self.edge;
        check(
            (1..=4096).contains(&e.workers),
            "edge.workers",
            e.workers,
            "an integer in [1, 4096]",
        )?;
        positive("edge.prefill_tok_s", e.prefill_tok_s)?;
        positive("edge.decode_tok_s", e.decode_tok_s)?;
        check(
            !e.variant.is_empty(),
            "edge.variant",
            "\"\"",
            "a catalogue variant name",
        )?;
        check(
            e.background_load.is_finite() && (0.0..=0.9).contains(&e.background_load),
            "edge.background_load",
            e.background_load,
            "a share of the edge's capacity in [0, 0.9]",
        )?;
        check(
            e.background_load_sigma.is_finite() && (0.0..=0.5).contains(&e.background_load_sigma),
            "edge.background_load_sigma",
            e.background_load_sigma,
            "a number in [0, 0.5]",
        )?;
        check(
            e.background_load_correlation.is_finite()
                && (0.0..1.0).contains(&e.background_load_correlation),
            "edge.background_load_correlation",
            e.background_load_correlation,
            "a number in [0, 1)",
        )?;

        fraction("qos.min_accuracy", self.qos.min_accuracy)?;
        fraction("qos.max_hallucination", self.qos.max_hallucination)?;

        positive("reward.latency_scale_s", self.reward.latency_scale_s)?;
        non_negative("reward.accuracy_weight", self.reward.accuracy_weight)?;
        non_negative(
            "reward.hallucination_weight",
            self.reward.hallucination_weight,
        )?;
        non_negative("reward.energy_weight", self.reward.energy_weight)?;
        non_negative("reward.externality_credit", self.reward.externality_credit)?;

        check(
            !self.classes.is_empty(),
            "classes",
            "[]",
            "at least one device class",
        )?;
        for (i, c) in self.classes.iter().enumerate() {
            let f = |name: &str| format!("classes[{i}].{name}");
            check(!c.name.is_empty(), &f("name"), "\"\"", "a non-empty name")?;
            non_negative(&f("share"), c.share)?;
            positive(&f("memory_bytes"), c.memory_bytes)?;
            positive(&f("tx_power_w"), c.tx_power_w)?;
            non_negative(&f("idle_power_w"), c.idle_power_w)?;
            positive(&f("energy_budget_j"), c.energy_budget_j)?;
            check(
                !c.variant.is_empty(),
                &f("variant"),
                "\"\"",
                "a catalogue variant name",
            )?;
            if self.classes[..i].iter().any(|o| o.name == c.name) {
                return Err(ConfigError::OutOfRange {
                    field: f("name"),
                    value: c.name.clone(),
                    expected: "a class name not used by an earlier class".into(),
                });
            }
        }
        let total: f64 = self.classes.iter().map(|c| c.share).sum();
        check(
            total > 0.0,
            "classes[].share",
            total,
            "shares summing to more than 0",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_round_trips() {
        let c = SimConfig::default();
        c.validate().unwrap();
        let t = toml::to_string(&c).unwrap();
        assert_eq!(SimConfig::from_toml_str(&t).unwrap(), c);
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(SimConfig::from_json_str(&j).unwrap(), c);
    }

    #[test]
    fn partial_toml_uses_defaults() {
        let c = SimConfig::from_toml_str("devices = 50\n[radio]\nbandwidth_hz = 5e6\n").unwrap();
        assert_eq!(c.devices, 50);
        assert!((c.radio.bandwidth_hz - 5e6).abs() < 1.0);
        assert_eq!(c.slots, 200);
    }

    #[test]
    fn externality_settlement_reads_by_name_and_names_the_choices() {
        let c =
            SimConfig::from_toml_str("[reward]\nexternality_settlement = \"next-slot\"\n").unwrap();
        assert_eq!(
            c.reward.externality_settlement,
            ExternalitySettlement::NextSlot
        );
        let e = SimConfig::from_toml_str("[reward]\nexternality_settlement = \"later\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("slot-end") && e.contains("next-slot"), "{e}");
        for rule in ExternalitySettlement::ALL {
            assert_eq!(rule.name().parse::<ExternalitySettlement>().unwrap(), rule);
        }
        let e = "later"
            .parse::<ExternalitySettlement>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("reward.externality_settlement") && e.contains("next-slot"),
            "{e}"
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let e = SimConfig::from_toml_str("devcies = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("devcies"), "{e}");
    }

    #[test]
    fn out_of_range_field_is_named() {
        let e = SimConfig::from_toml_str("[radio]\nfading_correlation = 1.5\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("radio.fading_correlation") && e.contains("[0, 1)"),
            "{e}"
        );
        let e = SimConfig::from_json_str(r#"{"devices": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("devices"), "{e}");
    }

    #[test]
    fn duplicate_class_rejected() {
        let mut c = SimConfig::default();
        c.classes[1].name = c.classes[0].name.clone();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("classes[1].name"), "{e}");
    }
}
