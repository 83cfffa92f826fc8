//! Messages between the page and the simulation worker (encoded by [`crate::wire`]). The
//! page only renders; the worker owns the [`Race`](super::race::Race).

use mec::EpisodeMetrics;
use serde::{Deserialize, Serialize};

use super::race::{NetworkSnap, SlotRow};
use super::this_device::ThisDevice;
use crate::entrants::Entrant;
use crate::scenario::Scenario;

/// Page → simulation worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToSimulation {
    /// The trained entrants' `edgewise-policy` files the page found (text of each), sent
    /// before the first `Configure` and whenever the page has newer ones.
    PolicyFiles(Vec<(Entrant, String)>),
    /// Start (or restart) the race on a scenario.
    Configure(Scenario),
    /// Run or pause.
    Play(bool),
    /// Simulate one slot (while paused).
    Step,
    /// Slots per second.
    Speed(u32),
    /// Which lane's network to report.
    Focus(Entrant),
    /// Back to the first episode of the scenario.
    Restart,
    /// Race with the visitor's device as an extra class from now on (`None`: without
    /// it); the race restarts on the current scenario. Sent before the first `Configure`
    /// too, so a restarted worker keeps it.
    ThisDevice(Option<Box<ThisDevice>>),
}

/// How an entrant of the race fared when the worker loaded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneStatus {
    /// The entrant.
    pub id: Entrant,
    /// Whether it runs in this race.
    pub running: bool,
    /// Why not, or what to know about it.
    pub note: Option<String>,
}

/// What does not change during a race.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceInfo {
    /// Increases with every `Configure`/`Restart`/new episode: frames of an older
    /// generation are stale.
    pub generation: u32,
    /// The scenario as the worker runs it (clamped).
    pub scenario: Scenario,
    /// Episode number (from 0).
    pub episode: u64,
    /// Slots per episode.
    pub slots: u32,
    /// Every entrant and whether it runs.
    pub lanes: Vec<LaneStatus>,
    /// Device class names (indexed by `DeviceSnap::class`).
    pub classes: Vec<String>,
    /// Cell radius, metres.
    pub cell_radius_m: f64,
    /// Channel gain drawn as a weak / strong link, dB.
    pub gain_range_db: (f64, f64),
    /// Slot length, seconds.
    pub slot_s: f64,
}

/// New rows of one lane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneRows {
    /// The lane.
    pub lane: Entrant,
    /// Rows since the last frame, oldest first.
    pub rows: Vec<SlotRow>,
    /// Episode metrics so far.
    pub metrics: EpisodeMetrics,
}

/// What changed since the last frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// The race these rows belong to (see [`RaceInfo::generation`]).
    pub generation: u32,
    /// Current slot.
    pub slot: u32,
    /// Whether the worker's clock is running.
    pub playing: bool,
    /// Whether the episode is over (the next starts shortly while playing).
    pub done: bool,
    /// Per lane.
    pub lanes: Vec<LaneRows>,
    /// The focused lane's network.
    pub network: Option<NetworkSnap>,
    /// Milliseconds the worker spent simulating for this frame.
    pub busy_ms: f64,
}

/// Simulation worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromSimulation {
    /// The worker's wasm is running: it accepts messages from now on.
    Ready,
    /// A race (re)started.
    Started(RaceInfo),
    /// Progress.
    Frame(Frame),
    /// Something went wrong (shown to the visitor).
    Error(String),
}
