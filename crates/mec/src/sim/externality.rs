//! The externality credit (`reward.externality_credit`): each offloading device's agent
//! reward also pays for the delay its offload causes to everyone else.
//!
//! A device's own reward prices only its own latency, so offloading looks free of the
//! wait it adds to the queries queued behind it and of the uplink bandwidth it takes from
//! the other offloaders: every device offloading into a congested edge is individually
//! rational and collectively slow (issue 16, "herding"). The credit is a difference
//! reward: the slot is replayed without the device's queries (the others keep their
//! actions, the uplink is shared one way fewer, the edge starts from the same workers),
//! and the device is charged the others' extra latency plus the extra work it leaves on
//! the edge for later slots (counted once, as if one later query waited for it: a lower
//! bound on its true cost). The replay uses the same queue rule as the slot
//! (`edge_queue.rs`). Only learners' per-agent rewards change; the slot's reward, and so
//! every evaluation, is untouched.

use super::{Action, Simulator, edge_queue};

impl Simulator {
    /// Charge each device that offloaded in this slot its externality, in seconds scaled
    /// like latency in the reward. Runs after `account_slot`, before `close_slot`: the
    /// slot as it ran is read from its events and the edge's workers, and
    /// `credit_workers` holds the workers as phase 2 found them (where replays start).
    pub(super) fn charge_externalities(&mut self, actions: &[Action]) {
        let offloading: Vec<usize> = (0..self.devices.len())
            .filter(|&u| actions[u] == Action::Offload && self.devices[u].pending > 0)
            .collect();
        if offloading.is_empty() {
            return;
        }
        let now = self.now_s();
        let next = now + self.config.slot_s;
        let max_lat = self.config.max_latency_s;
        let weight = self.config.reward.externality_credit / self.config.reward.latency_scale_s;

        // The slot as it ran: each device's edge latency (events carry it capped, as the
        // reward does) and the work left at the slot's end.
        let mut own = std::mem::take(&mut self.credit_own);
        own.clear();
        own.resize(self.devices.len(), 0.0);
        let mut total = 0.0;
        for e in self.events.iter().filter(|e| e.action == Action::Offload) {
            own[e.device as usize] += e.latency_s;
            total += e.latency_s;
        }
        let backlog = edge_queue::backlog_at(&self.edge_free_at, next);

        let share_hz = self.config.radio.bandwidth_hz / (offloading.len() - 1).max(1) as f64;
        let mut reqs = std::mem::take(&mut self.credit_reqs);
        let mut workers = Vec::new();
        for &u in &offloading {
            reqs.clear();
            for &v in offloading.iter().filter(|&&v| v != u) {
                self.push_requests(v, share_hz, &mut reqs);
            }
            edge_queue::sort_fifo(&mut reqs);
            workers.clone_from(&self.credit_workers);
            let mut without = 0.0;
            edge_queue::serve(&reqs, &mut workers, now, max_lat, |_, lat, _| {
                without += lat.min(max_lat);
            });
            let delay =
                (total - own[u] - without) + (backlog - edge_queue::backlog_at(&workers, next));
            self.agent_rewards[u] -= weight * delay;
        }
        self.credit_reqs = reqs;
        self.credit_own = own;
    }
}
