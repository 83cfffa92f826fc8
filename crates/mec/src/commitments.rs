//! Decisions announced within a slot, for sequential (coordinated) decisions.
//!
//! In the plain mode every device decides at once from one broadcast state, so devices
//! that see the same state make the same choice and congest the edge together. In the
//! sequential mode the active devices decide one after another in a broadcast order
//! ([`crate::Simulator::broadcast_order`]); each announces its choice
//! ([`crate::Simulator::commit`]) and the ones after it see the uplink share and the edge
//! work already claimed in this slot. Announcements only inform observations: the slot is
//! still scheduled by [`crate::Simulator::step`] from the actions it is given.

/// What the devices that already decided in this slot have announced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlotCommitments {
    /// Devices with pending queries that announced a decision (either way).
    pub decided: usize,
    /// Devices that announced they offload.
    pub offloaders: usize,
    /// Edge service time of the announced offloaded queries, seconds.
    pub edge_work_s: f64,
    /// Projected absolute free times of the edge workers after the announced offloads;
    /// `None` until the first offload is announced (the edge's own free times apply).
    workers: Option<Vec<f64>>,
}

impl SlotCommitments {
    /// Forget every announcement (a new slot begins).
    pub(crate) fn clear(&mut self) {
        self.decided = 0;
        self.offloaders = 0;
        self.edge_work_s = 0.0;
        self.workers = None;
    }

    /// Record an announced offload: its edge work and the workers' projected free times
    /// once its queries are queued.
    pub(crate) fn add_offload(&mut self, edge_work_s: f64, workers: Vec<f64>) {
        self.offloaders += 1;
        self.edge_work_s += edge_work_s;
        self.workers = Some(workers);
    }

    /// The projected worker free times, if any offload was announced.
    #[must_use]
    pub fn workers(&self) -> Option<&[f64]> {
        self.workers.as_deref()
    }

    /// Whether nothing was announced in this slot.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.decided == 0
    }
}
