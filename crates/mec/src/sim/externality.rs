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
    /// like latency in the reward. Runs after `account_slot`, before `close_slot`
    /// (`credit_workers` holds the edge workers as phase 2 found them).
    pub(super) fn charge_externalities(&mut self, actions: &[Action], offloaders: usize) {
        if offloaders == 0 {
            return;
        }
        let now = self.now_s();
        let next = now + self.config.slot_s;
        let max_lat = self.config.max_latency_s;
        let weight = self.config.reward.externality_credit / self.config.reward.latency_scale_s;

        // The slot as it ran: every edge query's latency (capped like the reward's) and
        // the work left at the slot's end.
        let mut own = std::mem::take(&mut self.credit_own);
        own.clear();
        own.resize(self.devices.len(), 0.0);
        let mut total = 0.0;
        let mut workers = self.credit_workers.clone();
        edge_queue::serve(
            &self.offload_buf,
            &mut workers,
            now,
            max_lat,
            |r, lat, _| {
                let lat = lat.min(max_lat);
                own[r.device as usize] += lat;
                total += lat;
            },
        );
        let backlog = edge_queue::backlog_at(&workers, next);

        let share_hz = self.config.radio.bandwidth_hz / (offloaders - 1).max(1) as f64;
        let offloading: Vec<usize> = (0..self.devices.len())
            .filter(|&u| actions[u] == Action::Offload && self.devices[u].pending > 0)
            .collect();
        let mut reqs = std::mem::take(&mut self.credit_reqs);
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
