//! Each device class's share of a lane's episode: how many devices it has and how their
//! questions were scheduled, so the page can show how one class (the visitor's own device
//! above all) fares under each policy. Plain Rust, tested natively with the race.

use mec::{Action, Simulator};
use serde::{Deserialize, Serialize};

/// One class's questions in one lane's episode so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassTally {
    /// Devices of this class in the cell.
    pub devices: u32,
    /// Questions scheduled (completed and dropped).
    pub queries: u32,
    /// Of those, sent to the edge.
    pub offloaded: u32,
    /// Of those, dropped over the latency cap.
    pub dropped: u32,
    /// Sum of the latencies charged, seconds.
    pub latency_sum_s: f64,
    /// Energy charged to the class's devices for their questions, joules.
    pub energy_j: f64,
}

impl ClassTally {
    /// One empty tally per class of `sim`, each with its device count.
    #[must_use]
    pub fn for_classes(sim: &Simulator) -> Vec<Self> {
        let mut tallies = vec![Self::default(); sim.config().classes.len()];
        for d in sim.devices() {
            if let Some(t) = tallies.get_mut(d.class) {
                t.devices += 1;
            }
        }
        tallies
    }

    /// Adds the questions `sim` scheduled in its last slot to their devices' classes.
    pub fn record(tallies: &mut [Self], sim: &Simulator) {
        let devices = sim.devices();
        for e in sim.last_events() {
            let Some(t) = devices
                .get(e.device as usize)
                .and_then(|d| tallies.get_mut(d.class))
            else {
                continue;
            };
            t.queries += 1;
            t.offloaded += u32::from(e.action == Action::Offload);
            t.dropped += u32::from(e.dropped);
            t.latency_sum_s += e.latency_s;
            t.energy_j += e.energy_j;
        }
    }

    /// Questions answered (not dropped).
    #[must_use]
    pub fn completed(&self) -> u32 {
        self.queries - self.dropped
    }

    /// Share of the questions sent to the edge (none before the first).
    #[must_use]
    pub fn offload_share(&self) -> Option<f64> {
        (self.queries > 0).then(|| f64::from(self.offloaded) / f64::from(self.queries))
    }

    /// Mean latency per question, seconds (none before the first).
    #[must_use]
    pub fn mean_latency_s(&self) -> Option<f64> {
        (self.queries > 0).then(|| self.latency_sum_s / f64::from(self.queries))
    }

    /// Mean energy per question, joules (none before the first).
    #[must_use]
    pub fn energy_per_query_j(&self) -> Option<f64> {
        (self.queries > 0).then(|| self.energy_j / f64::from(self.queries))
    }
}
