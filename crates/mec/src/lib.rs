//! `mec` — the mobile-edge-computing system model of edgewise (design §3).
//!
//! N mobile devices, each with a class (compute, radio, energy budget) and a locally
//! installed LLM variant from a [`Catalogue`], draw Poisson queries and either run them
//! locally or offload them over a shared Shannon uplink (path loss + time-correlated
//! fading) to an edge server's FIFO queue. The simulator accounts latency, per-window
//! energy against budgets, and accuracy/hallucination against QoS constraints, and returns
//! a Lagrangian reward. It offers:
//!
//! - [`Simulator`]: one episode, stepped with one [`Action`] per device;
//! - [`MecVecEnv`]: a batch of simulators behind the learner-facing [`edgewise_env::VecEnv`];
//! - [`Policy`] and the baselines ([`PolicyKind`], [`baseline`]), with the clairvoyant
//!   [`Planner`] as a reference for headroom;
//! - [`EpisodeMetrics`]: latency (mean, p95), energy vs budget, QoS, reward;
//! - [`KNOBS`]: the config numbers a front end lets people turn, with their ranges;
//! - [`presets`]: named scenarios (bursty arrivals, a loaded edge, tight energy, …).
//!
//! Invariants: no ML dependency, no I/O, no clock, no global RNG. All randomness comes
//! from a seed through [`edgewise_rng::Rng`] with `libm` math, so a seed gives the same
//! trajectory natively and in wasm32.

mod baselines;
mod catalogue;
mod commitments;
mod config;
mod edge_queue;
mod error;
mod exogenous;
mod in_order;
mod knobs;
mod metrics;
mod observation;
mod planner;
mod policy;
mod policy_kind;
mod presets;
mod sim;
mod vecenv;

pub use catalogue::{CATALOGUE_FORMAT, CATALOGUE_VERSION, Catalogue, ClassProfile, VariantProfile};
pub use commitments::SlotCommitments;
pub use config::{
    BurstConfig, DeviceClassConfig, EdgeConfig, ExternalitySettlement, QosConfig, QueryConfig,
    RadioConfig, RewardConfig, SimConfig,
};
pub use error::{ConfigError, MecError};
pub use exogenous::{mean_query_accuracy, query_accuracy};
pub use in_order::InOrder;
pub use knobs::{KNOBS, Knob, KnobUnit};
pub use metrics::{EpisodeMetrics, quality_deficits};
pub use observation::{OBS_DIM, OBS_FEATURES, symexp, symlog};
pub use planner::Planner;
pub use policy::Policy;
pub use policy_kind::{PolicyKind, UnknownPolicy, baseline, scenario_baseline};
pub use presets::{Preset, UnknownPreset, preset, presets};
pub use sim::{
    Action, DeviceState, OffloadEstimate, PendingQuery, QueryEvent, Simulator, SlotOutcome,
};
pub use vecenv::MecVecEnv;

/// Run `sim` to the end of its episode under `policy` and return the metrics.
pub fn run_episode(sim: &mut Simulator, policy: &mut dyn Policy) -> EpisodeMetrics {
    let mut actions = vec![Action::Offload; sim.num_devices()];
    while !sim.done() {
        policy.decide(sim, &mut actions);
        sim.step(&actions);
    }
    sim.metrics()
}

/// Run the episode like [`run_episode`] and return a 64-bit FNV-1a digest of the whole
/// trajectory (every device's position and channel each slot, every query event, every
/// reward). Equal digests on two platforms mean bit-identical trajectories.
pub fn trajectory_digest(sim: &mut Simulator, policy: &mut dyn Policy) -> u64 {
    let mut h = Fnv::new();
    let mut actions = vec![Action::Offload; sim.num_devices()];
    while !sim.done() {
        for d in sim.devices() {
            h.f64(d.x_m);
            h.f64(d.y_m);
            h.f64(d.channel_gain_db);
            h.u64(u64::from(d.pending));
        }
        policy.decide(sim, &mut actions);
        let out = sim.step(&actions);
        h.f64(out.reward);
        for e in sim.last_events() {
            h.u64(u64::from(e.device));
            h.u64(u64::from(e.action.index()));
            h.f64(e.latency_s);
            h.f64(e.energy_j);
        }
    }
    let m = sim.metrics();
    h.f64(m.mean_latency_s);
    h.f64(m.reward);
    h.finish()
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn u64(&mut self, x: u64) {
        for b in x.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn f64(&mut self, x: f64) {
        self.u64(x.to_bits());
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
