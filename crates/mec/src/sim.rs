//! The slotted MEC system model (design §3).
//!
//! Each slot: the policy decides, for every device with pending queries, whether they run
//! on the device or on the edge server; the simulator schedules them (local FIFO per
//! device; Shannon uplink with the bandwidth shared by that slot's offloaders; a FIFO edge
//! queue in front of `edge.workers` model instances; fixed-rate downlink), charges energy,
//! scores quality, and then moves time on: mobility, fading, budget windows and the next
//! slot's arrivals. Queries arriving during a slot are scheduled at the start of the next
//! one. Because service is FIFO and non-preemptive, a query's completion time is known
//! when it is scheduled, so its latency is charged in the slot that schedules it (the
//! long-run average is the same as charging it on completion).
//!
//! The exogenous randomness (arrivals, sizes, mobility, fading) is drawn in a fixed order
//! that never depends on the actions, so every policy run on the same seed faces exactly
//! the same queries and channels; the optional scenario processes (bursts, background
//! edge load, query difficulty: `exogenous.rs`) draw from a stream of their own.
//!
//! The observation a policy sees is built in `observation.rs`; decisions announced
//! earlier in a slot (sequential decisions) are kept in `commitments.rs`.

use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;
use crate::commitments::SlotCommitments;
use crate::config::SimConfig;
use crate::edge_queue::{self, OffloadRequest};
use crate::error::{ConfigError, MecError};
use crate::exogenous::{Exogenous, query_accuracy};
use crate::metrics::{EpisodeMetrics, MetricsAccumulator, quality_deficits};
use edgewise_rng::Rng;

mod externality;

/// Where a device's pending queries run this slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Run on the device with its installed variant.
    Local,
    /// Send to the edge server, which runs the base model.
    Offload,
}

impl Action {
    /// 0 = local, 1 = offload (the learner's discrete action index).
    #[must_use]
    pub fn index(self) -> u32 {
        match self {
            Self::Local => 0,
            Self::Offload => 1,
        }
    }

    /// Inverse of [`Action::index`]; any non-zero index means offload.
    #[must_use]
    pub fn from_index(i: u32) -> Self {
        if i == 0 { Self::Local } else { Self::Offload }
    }
}

/// The visible state of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceState {
    /// Position, metres (edge server at the origin).
    pub x_m: f64,
    /// Position, metres.
    pub y_m: f64,
    /// Index into `config.classes`.
    pub class: usize,
    /// Index of the installed variant in the catalogue.
    pub variant: usize,
    /// True channel gain this slot (path loss × fading), dB. Only the oracle sees it.
    pub channel_gain_db: f64,
    /// The gain measured in the previous slot: what a policy sees.
    pub estimated_gain_db: f64,
    /// Seconds until the device's own model is free.
    pub local_backlog_s: f64,
    /// Energy spent in the current budget window, joules (never negative).
    pub energy_used_j: f64,
    /// Budget per window, joules.
    pub energy_budget_j: f64,
    /// Queries waiting for a decision this slot.
    pub pending: u32,
    /// Prompt tokens of the pending queries.
    pub pending_input_tokens: u32,
    /// Answer tokens of the pending queries.
    pub pending_output_tokens: u32,
    /// The last action applied to this device's queries.
    pub last_action: Option<Action>,
    waypoint: (f64, f64),
    speed_mps: f64,
    fade: (f64, f64),
    gain_lin: f64,
    local_free_at: f64,
}

impl DeviceState {
    /// Distance to the edge server, metres.
    #[must_use]
    pub fn distance_m(&self) -> f64 {
        libm::sqrt(self.x_m * self.x_m + self.y_m * self.y_m)
    }

    /// Energy left in the current window, joules (≥ 0).
    #[must_use]
    pub fn energy_left_j(&self) -> f64 {
        (self.energy_budget_j - self.energy_used_j).max(0.0)
    }
}

/// Per-device constants resolved from its class and installed variant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceParams {
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub joules_per_token: f64,
    pub tx_power_w: f64,
    pub idle_power_w: f64,
    pub accuracy: f64,
    pub hallucination: f64,
}

/// One query waiting for a decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingQuery {
    /// Owning device.
    pub device: u32,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Answer tokens.
    pub output_tokens: u32,
    /// Bits sent on the uplink if offloaded (prompt plus attached context).
    pub uplink_bits: f64,
    /// Difficulty as a logit shift of every model's accuracy on it (0 unless
    /// `query.difficulty_sigma` is set; see [`query_accuracy`]).
    pub difficulty: f64,
}

/// What happened to one query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QueryEvent {
    /// Owning device.
    pub device: u32,
    /// Where it ran.
    pub action: Action,
    /// Latency charged (≤ `max_latency_s`; exactly that when dropped), seconds.
    pub latency_s: f64,
    /// Uplink transfer time (0 for local), seconds.
    pub uplink_s: f64,
    /// Energy charged to the device, joules.
    pub energy_j: f64,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Answer tokens.
    pub output_tokens: u32,
    /// Rejected because its latency would exceed `max_latency_s`.
    pub dropped: bool,
    /// The query's difficulty (logit shift; 0 unless `query.difficulty_sigma` is set).
    pub difficulty: f64,
}

/// Result of one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SlotOutcome {
    /// Environment reward for the slot (Lagrangian, per query; design §3).
    pub reward: f64,
    /// Queries scheduled in the slot.
    pub queries: usize,
    /// Queries dropped in the slot.
    pub dropped: usize,
    /// Mean latency of the slot's queries (0 if none), seconds.
    pub mean_latency_s: f64,
    /// Whether the episode has ended.
    pub done: bool,
}

/// Precomputed scenario constants.
#[derive(Debug, Clone)]
struct Consts {
    noise_w_per_hz: f64,
    fade_keep: f64,
    fade_innov: f64,
    edge_accuracy: f64,
    edge_hallucination: f64,
}

/// A running MEC episode.
#[derive(Debug, Clone)]
pub struct Simulator {
    config: SimConfig,
    catalogue: Catalogue,
    consts: Consts,
    rng: Rng,
    slot: usize,
    devices: Vec<DeviceState>,
    params: Vec<DeviceParams>,
    pending: Vec<PendingQuery>,
    pending_start: Vec<u32>,
    edge_free_at: Vec<f64>,
    last_offloaders: usize,
    events: Vec<QueryEvent>,
    agent_rewards: Vec<f64>,
    offload_buf: Vec<OffloadRequest>,
    /// Scratch of the externality credit: the edge workers at the start of phase 2, a
    /// counterfactual slot's requests and each device's edge latency in the slot.
    credit_workers: Vec<f64>,
    credit_reqs: Vec<OffloadRequest>,
    credit_own: Vec<f64>,
    /// What the credit charged for later slots, kept to settle in the next slot
    /// (`reward.externality_settlement = "next-slot"`).
    settlement: externality::Settlement,
    /// Corrections to the previous slot's agent rewards found in this one.
    late_rewards: Vec<f64>,
    acc: MetricsAccumulator,
    /// Decisions already announced in this slot (sequential decisions; empty otherwise).
    commitments: SlotCommitments,
    /// Seeds the broadcast order of sequential decisions (never the scenario's draws).
    order_seed: u64,
    /// Bursts, background load and difficulty (their own random stream).
    exo: Exogenous,
}

/// Stream index of the broadcast order, apart from the scenario's own randomness.
const ORDER_STREAM: u64 = 0x0bc0_a570;

/// Expected outcome of offloading one device's pending queries
/// ([`Simulator::project_offload`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffloadEstimate {
    /// Decision to last answer, seconds.
    pub latency_s: f64,
    /// Total uplink time of the queries, seconds.
    pub uplink_s: f64,
}

fn db_to_lin(db: f64) -> f64 {
    libm::exp(db * (core::f64::consts::LN_10 / 10.0))
}

impl Simulator {
    /// Build a simulator for `config`, checking it against `catalogue`, and reset it with `seed`.
    pub fn new(config: SimConfig, catalogue: Catalogue, seed: u64) -> Result<Self, MecError> {
        config.validate()?;
        catalogue.validate()?;
        let (_, edge_variant) =
            catalogue
                .get(&config.edge.variant)
                .ok_or_else(|| ConfigError::OutOfRange {
                    field: "edge.variant".into(),
                    value: format!("{:?}", config.edge.variant),
                    expected: format!(
                        "one of the catalogue's variants: {}",
                        variant_names(&catalogue)
                    ),
                })?;
        let mut class_params = Vec::with_capacity(config.classes.len());
        for (i, class) in config.classes.iter().enumerate() {
            let (vi, v) = catalogue
                .get(&class.variant)
                .ok_or_else(|| ConfigError::OutOfRange {
                    field: format!("classes[{i}].variant"),
                    value: format!("{:?}", class.variant),
                    expected: format!(
                        "one of the catalogue's variants: {}",
                        variant_names(&catalogue)
                    ),
                })?;
            let p = v.per_class.get(&class.name).ok_or_else(|| {
                MecError::Catalogue(format!(
                    "variant {:?} has no profile for device class {:?} (classes[{i}]); it lists: {}",
                    v.name,
                    class.name,
                    v.per_class.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            if v.bytes > class.memory_bytes {
                return Err(ConfigError::OutOfRange {
                    field: format!("classes[{i}].variant"),
                    value: format!("{:?} ({} bytes)", v.name, v.bytes),
                    expected: format!(
                        "a variant that fits the class memory of {} bytes",
                        class.memory_bytes
                    ),
                }
                .into());
            }
            class_params.push((
                vi,
                DeviceParams {
                    prefill_tok_s: p.prefill_tok_s,
                    decode_tok_s: p.decode_tok_s,
                    joules_per_token: p.joules_per_token,
                    tx_power_w: class.tx_power_w,
                    idle_power_w: class.idle_power_w,
                    accuracy: v.accuracy,
                    hallucination: v.hallucination_rate,
                },
            ));
        }
        let rho = config.radio.fading_correlation;
        let consts = Consts {
            noise_w_per_hz: db_to_lin(config.radio.noise_dbm_per_hz - 30.0),
            fade_keep: rho,
            fade_innov: libm::sqrt((1.0 - rho * rho) / 2.0),
            edge_accuracy: edge_variant.accuracy,
            edge_hallucination: edge_variant.hallucination_rate,
        };
        let n = config.devices;
        let mut sim = Self {
            consts,
            rng: Rng::new(seed),
            slot: 0,
            devices: Vec::with_capacity(n),
            params: Vec::with_capacity(n),
            pending: Vec::new(),
            pending_start: vec![0; n + 1],
            edge_free_at: vec![0.0; config.edge.workers],
            last_offloaders: 0,
            events: Vec::new(),
            agent_rewards: vec![0.0; n],
            offload_buf: Vec::new(),
            credit_workers: Vec::new(),
            credit_reqs: Vec::new(),
            credit_own: Vec::new(),
            settlement: externality::Settlement::default(),
            late_rewards: vec![0.0; n],
            acc: MetricsAccumulator::default(),
            commitments: SlotCommitments::default(),
            order_seed: edgewise_rng::derive_seed(seed, ORDER_STREAM),
            exo: Exogenous::new(&config, seed),
            catalogue,
            config,
        };
        sim.init_devices(&class_params);
        Ok(sim)
    }

    /// Start a new episode with `seed` (same config and catalogue).
    pub fn reset(&mut self, seed: u64) {
        *self = Self::new(self.config.clone(), self.catalogue.clone(), seed)
            .expect("a simulator's own config and catalogue stay valid");
    }

    fn init_devices(&mut self, class_params: &[(usize, DeviceParams)]) {
        let total_share: f64 = self.config.classes.iter().map(|c| c.share).sum();
        let n = self.config.devices;
        self.devices.clear();
        self.params.clear();
        for _ in 0..n {
            // Class by share.
            let mut u = self.rng.uniform() * total_share;
            let mut class = self.config.classes.len() - 1;
            for (i, c) in self.config.classes.iter().enumerate() {
                if u < c.share {
                    class = i;
                    break;
                }
                u -= c.share;
            }
            let (x, y) = self.random_point();
            let waypoint = self.random_point();
            let speed = self.rng.range(0.0, self.config.max_speed_mps);
            let (a, b) = self.rng.normal_pair();
            let fade = (
                a * core::f64::consts::FRAC_1_SQRT_2,
                b * core::f64::consts::FRAC_1_SQRT_2,
            );
            let (variant, params) = class_params[class];
            let c = &self.config.classes[class];
            let mut d = DeviceState {
                x_m: x,
                y_m: y,
                class,
                variant,
                channel_gain_db: 0.0,
                estimated_gain_db: 0.0,
                local_backlog_s: 0.0,
                energy_used_j: 0.0,
                energy_budget_j: c.energy_budget_j,
                pending: 0,
                pending_input_tokens: 0,
                pending_output_tokens: 0,
                last_action: None,
                waypoint,
                speed_mps: speed,
                fade,
                gain_lin: 0.0,
                local_free_at: 0.0,
            };
            Self::update_gain(&self.config, &mut d);
            d.estimated_gain_db = d.channel_gain_db;
            self.devices.push(d);
            self.params.push(params);
        }
        self.generate_arrivals();
    }

    /// A point uniformly distributed in the cell annulus.
    fn random_point(&mut self) -> (f64, f64) {
        let r_min = self.config.min_distance_m;
        let r_max = self.config.cell_radius_m;
        let r = libm::sqrt(r_min * r_min + (r_max * r_max - r_min * r_min) * self.rng.uniform());
        let theta = core::f64::consts::TAU * self.rng.uniform();
        (r * libm::cos(theta), r * libm::sin(theta))
    }

    fn update_gain(config: &SimConfig, d: &mut DeviceState) {
        let min2 = config.min_distance_m * config.min_distance_m;
        let dist2 = (d.x_m * d.x_m + d.y_m * d.y_m).max(min2);
        // Path gain g0 · d^-α, in dB, from ln(d²) (one transcendental call).
        let path_db = config.radio.reference_gain_db
            - 5.0 * config.radio.path_loss_exponent * libm::log(dist2) / core::f64::consts::LN_10;
        let power = (d.fade.0 * d.fade.0 + d.fade.1 * d.fade.1).max(1e-30);
        d.channel_gain_db = path_db + 10.0 * libm::log10(power);
        d.gain_lin = db_to_lin(d.channel_gain_db);
    }

    fn generate_arrivals(&mut self) {
        self.pending.clear();
        let q = &self.config.query;
        let (lo, hi) = (f64::from(q.min_tokens), f64::from(q.max_tokens));
        for u in 0..self.devices.len() {
            self.pending_start[u] = self.pending.len() as u32;
            let k = self.rng.poisson_with_limit(self.exo.exp_neg_rate());
            let (mut tin, mut tout) = (0u32, 0u32);
            for _ in 0..k {
                let sig = q.tokens_sigma;
                let (z0, z1) = self.rng.normal_pair();
                let input = libm::round(
                    libm::exp(libm::log(q.input_tokens_mean) - 0.5 * sig * sig + sig * z0)
                        .clamp(lo, hi),
                ) as u32;
                let output = libm::round(
                    libm::exp(libm::log(q.output_tokens_mean) - 0.5 * sig * sig + sig * z1)
                        .clamp(lo, hi),
                ) as u32;
                let context_bytes = if q.context_kb_mean > 0.0 {
                    1000.0 * self.rng.lognormal_mean(q.context_kb_mean, q.context_sigma)
                } else {
                    0.0
                };
                let uplink_bits =
                    f64::from(input) * self.config.radio.bits_per_token + 8.0 * context_bytes;
                self.pending.push(PendingQuery {
                    device: u as u32,
                    input_tokens: input,
                    output_tokens: output,
                    uplink_bits,
                    difficulty: self.exo.draw_difficulty(&self.config),
                });
                tin += input;
                tout += output;
            }
            let d = &mut self.devices[u];
            d.pending = k;
            d.pending_input_tokens = tin;
            d.pending_output_tokens = tout;
        }
        self.pending_start[self.devices.len()] = self.pending.len() as u32;
    }

    /// The scenario.
    #[must_use]
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The variant catalogue in use.
    #[must_use]
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Number of devices N.
    #[must_use]
    pub fn num_devices(&self) -> usize {
        self.devices.len()
    }

    /// Slots simulated so far in this episode.
    #[must_use]
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Current time, seconds since the episode started.
    #[must_use]
    pub fn now_s(&self) -> f64 {
        self.slot as f64 * self.config.slot_s
    }

    /// Whether the episode has ended.
    #[must_use]
    pub fn done(&self) -> bool {
        self.slot >= self.config.slots
    }

    /// The devices' visible state.
    #[must_use]
    pub fn devices(&self) -> &[DeviceState] {
        &self.devices
    }

    /// Queries waiting for a decision, grouped by device in device order.
    #[must_use]
    pub fn pending_queries(&self) -> &[PendingQuery] {
        &self.pending
    }

    /// The pending queries of device `u`.
    #[must_use]
    pub fn pending_of(&self, u: usize) -> &[PendingQuery] {
        &self.pending[self.pending_start[u] as usize..self.pending_start[u + 1] as usize]
    }

    /// Seconds until the first edge worker is free (the wait a new query would see).
    #[must_use]
    pub fn edge_backlog_s(&self) -> f64 {
        let now = self.now_s();
        self.edge_free_at
            .iter()
            .fold(f64::INFINITY, |m, &t| m.min(t))
            .max(now)
            - now
    }

    /// Absolute times at which each edge worker becomes free.
    #[must_use]
    pub fn edge_free_at(&self) -> &[f64] {
        &self.edge_free_at
    }

    /// Devices that offloaded in the previous slot.
    #[must_use]
    pub fn last_offloaders(&self) -> usize {
        self.last_offloaders
    }

    /// What happened to each query scheduled in the last slot.
    #[must_use]
    pub fn last_events(&self) -> &[QueryEvent] {
        &self.events
    }

    /// Corrections to the agent rewards of the slot before the last one, learned in the
    /// last slot: with `reward.externality_settlement = "next-slot"`, a device that
    /// offloaded then gets back the slot-end estimate of the delay its leftover edge work
    /// would cause and pays the delay it did cause (`sim/externality.rs`). Zero for every
    /// other device, and everywhere in the first slot of an episode and under `slot-end`.
    #[must_use]
    pub fn late_rewards(&self) -> &[f64] {
        &self.late_rewards
    }

    /// Each device's share of the last slot's reward (sum over its queries of the
    /// per-query Lagrangian terms, minus its energy-overrun penalty), less, for a device
    /// that offloaded, `reward.externality_credit` times the delay it caused the others
    /// (`sim/externality.rs`; the slot's own reward never includes that charge).
    #[must_use]
    pub fn agent_rewards(&self) -> &[f64] {
        &self.agent_rewards
    }

    /// Metrics of the episode so far.
    #[must_use]
    pub fn metrics(&self) -> EpisodeMetrics {
        self.acc.summary(
            self.config.qos.min_accuracy,
            self.config.qos.max_hallucination,
        )
    }

    /// The episode's answered queries so far, with the sums of their accuracies and
    /// hallucination rates (what the quality constraints are checked on), without the
    /// cost of a full [`Simulator::metrics`].
    #[must_use]
    pub fn quality_so_far(&self) -> (usize, f64, f64) {
        (
            self.acc.latencies.len(),
            self.acc.accuracy_sum,
            self.acc.hallucination_sum,
        )
    }

    /// Accuracy and hallucination rate of the edge's model.
    #[must_use]
    pub fn edge_quality(&self) -> (f64, f64) {
        (self.consts.edge_accuracy, self.consts.edge_hallucination)
    }

    /// Accuracy and hallucination rate of device `u`'s installed variant.
    #[must_use]
    pub fn local_quality(&self, u: usize) -> (f64, f64) {
        (self.params[u].accuracy, self.params[u].hallucination)
    }

    /// Time the device's model needs to serve a query of these sizes, seconds.
    #[must_use]
    pub fn local_service_s(&self, u: usize, input_tokens: u32, output_tokens: u32) -> f64 {
        let p = &self.params[u];
        f64::from(input_tokens) / p.prefill_tok_s + f64::from(output_tokens) / p.decode_tok_s
    }

    /// Energy the device spends serving a query of these sizes itself, joules.
    #[must_use]
    pub fn local_energy_j(&self, u: usize, input_tokens: u32, output_tokens: u32) -> f64 {
        self.params[u].joules_per_token * f64::from(input_tokens + output_tokens)
    }

    /// Energy device `u` spends on an offloaded query: transmitting for `uplink_s`, then
    /// idling until the answer arrives `latency_s` after the decision, joules.
    #[must_use]
    pub fn offload_energy_j(&self, u: usize, uplink_s: f64, latency_s: f64) -> f64 {
        let p = &self.params[u];
        p.tx_power_w * uplink_s + p.idle_power_w * (latency_s - uplink_s).max(0.0)
    }

    /// Time one edge worker needs to serve a query of these sizes, seconds. With
    /// background load on the edge, the service is slowed by this slot's load.
    #[must_use]
    pub fn edge_service_s(&self, input_tokens: u32, output_tokens: u32) -> f64 {
        let base = f64::from(input_tokens) / self.config.edge.prefill_tok_s
            + f64::from(output_tokens) / self.config.edge.decode_tok_s;
        let slowdown = self.exo.slowdown();
        if slowdown == 1.0 {
            base
        } else {
            base * slowdown
        }
    }

    /// Share of the edge's capacity taken by background work this slot (0 unless
    /// `edge.background_load` or `edge.background_load_sigma` is set).
    #[must_use]
    pub fn background_load(&self) -> f64 {
        self.exo.load()
    }

    /// Whether the cell is in an arrival burst this slot (never unless `bursts` is on).
    #[must_use]
    pub fn in_burst(&self) -> bool {
        self.exo.in_burst()
    }

    /// Sums over device `u`'s pending queries of the expected accuracy and the
    /// hallucination rate they get where `action` sends them (difficulty included).
    #[must_use]
    pub fn pending_quality(&self, u: usize, action: Action) -> (f64, f64) {
        let (a, h) = match action {
            Action::Local => self.local_quality(u),
            Action::Offload => self.edge_quality(),
        };
        let k = f64::from(self.devices[u].pending);
        if self.config.query.difficulty_sigma > 0.0 {
            let acc = self
                .pending_of(u)
                .iter()
                .map(|q| query_accuracy(a, q.difficulty))
                .sum();
            (acc, k * h)
        } else {
            (k * a, k * h)
        }
    }

    /// Downlink time for an answer of this length, seconds.
    #[must_use]
    pub fn downlink_s(&self, output_tokens: u32) -> f64 {
        f64::from(output_tokens) * self.config.radio.bits_per_token / self.config.radio.downlink_bps
    }

    /// Shannon rate of device `u` with `share_hz` of bandwidth at the given linear gain, bits/s.
    #[must_use]
    pub fn uplink_rate_bps(&self, u: usize, gain_lin: f64, share_hz: f64) -> f64 {
        let snr = self.params[u].tx_power_w * gain_lin / (self.consts.noise_w_per_hz * share_hz);
        share_hz * libm::log2(1.0 + snr)
    }

    /// Linear channel gain: the true current one, or the last estimate.
    #[must_use]
    pub fn gain_lin(&self, u: usize, true_channel: bool) -> f64 {
        if true_channel {
            self.devices[u].gain_lin
        } else {
            db_to_lin(self.devices[u].estimated_gain_db)
        }
    }

    /// Accuracy, hallucination rate and per-class constants of device `u`.
    pub(crate) fn params(&self, u: usize) -> &DeviceParams {
        &self.params[u]
    }

    /// Expected outcome of offloading device `u`'s pending queries with `share_hz` of
    /// uplink bandwidth at linear gain `gain_lin`, onto edge workers that become free at
    /// the absolute times in `workers` (each query, once uploaded, takes the first free
    /// worker). `workers` is updated as if the queries were sent, so projecting several
    /// devices in turn queues them behind each other.
    #[must_use]
    pub fn project_offload(
        &self,
        u: usize,
        gain_lin: f64,
        share_hz: f64,
        workers: &mut [f64],
    ) -> OffloadEstimate {
        let now = self.now_s();
        let rate = self.uplink_rate_bps(u, gain_lin, share_hz);
        let mut t_up = now;
        let mut worst = 0.0f64;
        for q in self.pending_of(u) {
            t_up += q.uplink_bits / rate;
            let (w, free) = edge_queue::first_free(workers);
            let finish = free.max(t_up) + self.edge_service_s(q.input_tokens, q.output_tokens);
            workers[w] = finish;
            worst = worst.max(finish + self.downlink_s(q.output_tokens) - now);
        }
        OffloadEstimate {
            latency_s: worst,
            uplink_s: t_up - now,
        }
    }

    /// The number of devices a device expects to share the uplink with this slot
    /// (itself included): last slot's offloaders or those already committed in this
    /// slot, whichever is more, plus itself, at most N.
    #[must_use]
    pub fn expected_offloaders(&self) -> usize {
        let n = self.devices.len().max(1);
        (self.last_offloaders.max(self.commitments.offloaders) + 1).min(n)
    }

    /// Decisions already announced in this slot ([`Simulator::commit`]); empty in the
    /// plain all-at-once mode, cleared by every step.
    #[must_use]
    pub fn commitments(&self) -> &SlotCommitments {
        &self.commitments
    }

    /// The edge workers' free times as the devices deciding now see them: after the
    /// offloads committed so far in this slot (projected with each committer's channel
    /// estimate), else the edge's own.
    #[must_use]
    pub fn projected_edge_free_at(&self) -> &[f64] {
        self.commitments.workers().unwrap_or(&self.edge_free_at)
    }

    /// The devices with pending queries in the order they decide in this slot when
    /// decisions are sequential (written into `out`): a permutation drawn afresh each slot
    /// from the episode seed alone, so it is fair on average and the same whatever the
    /// actions, and it never touches the scenario's random stream.
    pub fn broadcast_order(&self, out: &mut Vec<usize>) {
        out.clear();
        out.extend((0..self.devices.len()).filter(|&u| self.devices[u].pending > 0));
        let mut rng = Rng::new(edgewise_rng::derive_seed(self.order_seed, self.slot as u64));
        // Fisher–Yates.
        for i in (1..out.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            out.swap(i, j);
        }
    }

    /// Announce device `u`'s decision for this slot before the others decide (sequential
    /// decisions): later observations in this slot see an offload's uplink share and edge
    /// work. Announcing does not apply the action (the step does) and devices with nothing
    /// pending are ignored. Each device should announce at most once per slot.
    pub fn commit(&mut self, u: usize, action: Action) {
        if self.devices[u].pending == 0 {
            return;
        }
        self.commitments.decided += 1;
        if action == Action::Local {
            return;
        }
        let share = self.config.radio.bandwidth_hz / self.expected_offloaders() as f64;
        let gain = self.gain_lin(u, false);
        let mut workers = self.projected_edge_free_at().to_vec();
        let _ = self.project_offload(u, gain, share, &mut workers);
        let work: f64 = self
            .pending_of(u)
            .iter()
            .map(|q| self.edge_service_s(q.input_tokens, q.output_tokens))
            .sum();
        self.commitments.add_offload(work, workers);
    }

    /// Apply `actions` (one per device; ignored for devices with nothing pending) and
    /// advance one slot. After the episode has ended this does nothing.
    ///
    /// # Panics
    /// If `actions.len() != num_devices()`; use [`Simulator::try_step`] to get an error instead.
    pub fn step(&mut self, actions: &[Action]) -> SlotOutcome {
        self.try_step(actions).expect("one action per device")
    }

    /// [`Simulator::step`], returning an error for a wrong number of actions.
    ///
    /// A slot runs in four phases: `run_local_and_uplink` (local execution, and the
    /// uplink transfers of offloaded queries), `serve_edge_queue` (the FIFO edge queue),
    /// `account_slot` (energy, quality and reward), and `close_slot` (budget windows, then
    /// mobility, fading, the scenario processes and the next arrivals).
    pub fn try_step(&mut self, actions: &[Action]) -> Result<SlotOutcome, MecError> {
        let n = self.devices.len();
        if actions.len() != n {
            return Err(MecError::ActionCount {
                expected: n,
                got: actions.len(),
            });
        }
        if self.done() {
            return Ok(SlotOutcome {
                done: true,
                ..SlotOutcome::default()
            });
        }
        self.events.clear();
        self.agent_rewards.fill(0.0);
        self.late_rewards.fill(0.0);
        self.commitments.clear();
        let offloaders = (0..n)
            .filter(|&u| self.devices[u].pending > 0 && actions[u] == Action::Offload)
            .count();
        self.run_local_and_uplink(actions, offloaders);
        let credit = self.config.reward.externality_credit > 0.0;
        if credit {
            self.credit_workers.clone_from(&self.edge_free_at);
        }
        self.serve_edge_queue();
        let (reward, latency_sum, dropped) = self.account_slot();
        if credit {
            self.settle_externalities();
            self.charge_externalities(actions);
        }
        self.last_offloaders = offloaders;
        let done = self.close_slot();
        let nq = self.events.len();
        Ok(SlotOutcome {
            reward,
            queries: nq,
            dropped,
            mean_latency_s: if nq == 0 {
                0.0
            } else {
                latency_sum / nq as f64
            },
            done,
        })
    }

    /// Phase 1: run the queries kept local (FIFO on the device's own model, dropped if
    /// they would exceed `max_latency_s`) and put the offloaded ones on the uplink, whose
    /// bandwidth `offloaders` devices share equally; they join `offload_buf` with their
    /// arrival time at the edge.
    fn run_local_and_uplink(&mut self, actions: &[Action], offloaders: usize) {
        let now = self.now_s();
        let max_lat = self.config.max_latency_s;
        let share_hz = self.config.radio.bandwidth_hz / offloaders.max(1) as f64;
        self.offload_buf.clear();
        for (u, &action) in actions.iter().enumerate() {
            let start = self.pending_start[u] as usize;
            let end = self.pending_start[u + 1] as usize;
            if start == end {
                continue;
            }
            self.devices[u].last_action = Some(action);
            if action == Action::Offload {
                let mut buf = std::mem::take(&mut self.offload_buf);
                self.push_requests(u, share_hz, &mut buf);
                self.offload_buf = buf;
                continue;
            }
            for qi in start..end {
                let q = self.pending[qi];
                let p = self.params[u];
                let d = &mut self.devices[u];
                let begin = d.local_free_at.max(now);
                let service = f64::from(q.input_tokens) / p.prefill_tok_s
                    + f64::from(q.output_tokens) / p.decode_tok_s;
                let latency = begin + service - now;
                let dropped = latency > max_lat;
                let energy = if dropped {
                    0.0
                } else {
                    d.local_free_at = begin + service;
                    p.joules_per_token * f64::from(q.input_tokens + q.output_tokens)
                };
                self.events.push(QueryEvent {
                    device: u as u32,
                    action: Action::Local,
                    latency_s: if dropped { max_lat } else { latency },
                    uplink_s: 0.0,
                    energy_j: energy,
                    input_tokens: q.input_tokens,
                    output_tokens: q.output_tokens,
                    dropped,
                    difficulty: q.difficulty,
                });
            }
        }
    }

    /// Put device `u`'s pending queries on the uplink with `share_hz` of bandwidth (one
    /// upload queue per device: they leave back to back from the slot's start) and append
    /// their edge requests to `out`.
    fn push_requests(&self, u: usize, share_hz: f64, out: &mut Vec<OffloadRequest>) {
        let rate = self.uplink_rate_bps(u, self.devices[u].gain_lin, share_hz);
        let mut arrive_s = self.now_s();
        let start = self.pending_start[u] as usize;
        let end = self.pending_start[u + 1] as usize;
        for qi in start..end {
            arrive_s += self.pending[qi].uplink_bits / rate;
            out.push(self.request(qi, rate, arrive_s));
        }
    }

    /// The edge request for pending query `qi`, uploaded at `rate` bits/s and arriving at
    /// the edge at the absolute time `arrive_s`.
    fn request(&self, qi: usize, rate: f64, arrive_s: f64) -> OffloadRequest {
        let q = self.pending[qi];
        OffloadRequest {
            query: qi,
            arrive_s,
            uplink_s: q.uplink_bits / rate,
            service_s: self.edge_service_s(q.input_tokens, q.output_tokens),
            downlink_s: self.downlink_s(q.output_tokens),
        }
    }

    /// Phase 2: the edge serves the uploaded queries FIFO by arrival time, each on the
    /// first free worker; a query that would exceed `max_latency_s` is dropped (its
    /// transmit energy is still spent).
    fn serve_edge_queue(&mut self) {
        let now = self.now_s();
        let max_lat = self.config.max_latency_s;
        let mut reqs = std::mem::take(&mut self.offload_buf);
        let mut workers = std::mem::take(&mut self.edge_free_at);
        let mut events = std::mem::take(&mut self.events);
        edge_queue::sort_fifo(&mut reqs);
        edge_queue::serve(&reqs, &mut workers, now, max_lat, |r, latency, dropped| {
            let q = self.pending[r.query];
            let u = q.device as usize;
            let energy = if dropped {
                self.params[u].tx_power_w * r.uplink_s
            } else {
                self.offload_energy_j(u, r.uplink_s, latency)
            };
            events.push(QueryEvent {
                device: q.device,
                action: Action::Offload,
                latency_s: if dropped { max_lat } else { latency },
                uplink_s: r.uplink_s,
                energy_j: energy,
                input_tokens: q.input_tokens,
                output_tokens: q.output_tokens,
                dropped,
                difficulty: q.difficulty,
            });
        });
        self.offload_buf = reqs;
        self.edge_free_at = workers;
        self.events = events;
    }

    /// Phase 3: charge each event's energy against its device's window, add its answer
    /// to the episode's quality totals, and price it with the Lagrangian reward (latency,
    /// growth of the accuracy deficit and hallucination excess, energy overrun). Returns
    /// the slot's reward (mean per query), latency sum and dropped count.
    fn account_slot(&mut self) -> (f64, f64, usize) {
        let rw = &self.config.reward;
        let (qa, qh) = (
            self.config.qos.min_accuracy,
            self.config.qos.max_hallucination,
        );
        let mut reward_sum = 0.0;
        let mut latency_sum = 0.0;
        let mut dropped = 0;
        for e in &self.events {
            let u = e.device as usize;
            let (a, h) = if e.dropped {
                (0.0, 0.0)
            } else {
                let (a, h) = match e.action {
                    Action::Local => (self.params[u].accuracy, self.params[u].hallucination),
                    Action::Offload => (self.consts.edge_accuracy, self.consts.edge_hallucination),
                };
                (query_accuracy(a, e.difficulty), h)
            };
            let d = &mut self.devices[u];
            let budget = d.energy_budget_j;
            let over_before = (d.energy_used_j - budget).max(0.0);
            d.energy_used_j += e.energy_j;
            let over_after = (d.energy_used_j - budget).max(0.0);
            let answered = self.acc.latencies.len() as f64;
            let (acc_sum, hal_sum) = (self.acc.accuracy_sum, self.acc.hallucination_sum);
            let (da0, dh0) = quality_deficits(answered, acc_sum, hal_sum, qa, qh);
            let (da1, dh1) = quality_deficits(answered + 1.0, acc_sum + a, hal_sum + h, qa, qh);
            let r = -e.latency_s / rw.latency_scale_s
                - rw.accuracy_weight * (da1 - da0)
                - rw.hallucination_weight * (dh1 - dh0)
                - rw.energy_weight * (over_after - over_before) / budget;
            self.agent_rewards[u] += r;
            reward_sum += r;
            latency_sum += e.latency_s;
            dropped += usize::from(e.dropped);
            self.acc.latencies.push(e.latency_s as f32);
            self.acc.latency_sum += e.latency_s;
            self.acc.accuracy_sum += a;
            self.acc.hallucination_sum += h;
            self.acc.offloaded += usize::from(e.action == Action::Offload);
        }
        self.acc.dropped += dropped;
        let nq = self.events.len();
        let reward = if nq == 0 { 0.0 } else { reward_sum / nq as f64 };
        self.acc.reward_sum += reward;
        self.acc.slots += 1;
        (reward, latency_sum, dropped)
    }

    /// Phase 4: move to the next slot, close a budget window at its end (or at the end
    /// of the episode, prorated), then advance the world; returns whether the episode ended.
    fn close_slot(&mut self) -> bool {
        self.slot += 1;
        let w = self.config.energy_window_slots;
        let done = self.done();
        if self.slot.is_multiple_of(w) || done {
            let frac = if self.slot.is_multiple_of(w) {
                1.0
            } else {
                (self.slot % w) as f64 / w as f64
            };
            for d in &mut self.devices {
                let budget = d.energy_budget_j * frac;
                self.acc.windows += 1;
                self.acc.window_energy_sum += d.energy_used_j;
                self.acc.window_budget_sum += budget;
                if d.energy_used_j > budget * (1.0 + 1e-9) {
                    self.acc.violated_windows += 1;
                }
                d.energy_used_j = 0.0;
            }
        }
        self.advance_world();
        if done {
            for d in &mut self.devices {
                d.pending = 0;
                d.pending_input_tokens = 0;
                d.pending_output_tokens = 0;
            }
            self.pending.clear();
            self.pending_start.fill(0);
        }
        done
    }

    /// Mobility, fading and the next slot's arrivals (drawn whatever the actions were).
    fn advance_world(&mut self) {
        let now = self.now_s();
        let step_m = self.config.slot_s;
        for u in 0..self.devices.len() {
            // Random waypoint.
            let (wx, wy) = self.devices[u].waypoint;
            let d = &self.devices[u];
            let (dx, dy) = (wx - d.x_m, wy - d.y_m);
            let dist = libm::sqrt(dx * dx + dy * dy);
            let travel = d.speed_mps * step_m;
            if dist <= travel {
                let next = self.random_point();
                let speed = self.rng.range(0.0, self.config.max_speed_mps);
                let d = &mut self.devices[u];
                d.x_m = wx;
                d.y_m = wy;
                d.waypoint = next;
                d.speed_mps = speed;
            } else {
                let d = &mut self.devices[u];
                d.x_m += dx / dist * travel;
                d.y_m += dy / dist * travel;
            }
            // Gauss–Markov fading on the complex gain; the policy sees last slot's value.
            let (a, b) = self.rng.normal_pair();
            let d = &mut self.devices[u];
            d.estimated_gain_db = d.channel_gain_db;
            d.fade = (
                self.consts.fade_keep * d.fade.0 + self.consts.fade_innov * a,
                self.consts.fade_keep * d.fade.1 + self.consts.fade_innov * b,
            );
            Self::update_gain(&self.config, d);
            d.local_backlog_s = (d.local_free_at - now).max(0.0);
        }
        self.exo.advance(&self.config);
        self.generate_arrivals();
    }
}

fn variant_names(c: &Catalogue) -> String {
    c.variants
        .iter()
        .map(|v| v.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
