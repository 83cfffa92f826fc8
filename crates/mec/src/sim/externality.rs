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
//! the edge for later slots, counted once as if one later query waited for all of it.
//! The replay uses the same queue rule as the slot (`edge_queue.rs`). Only learners'
//! per-agent rewards change; the slot's reward, and so every evaluation, is untouched.
//!
//! That leftover-work term is an estimate made before anyone has met the work: on a
//! lightly loaded edge the next slot's queries mostly find a worker free and wait for
//! none of it, and the estimate overcharges the offloads that cost least. With
//! `reward.externality_settlement = "next-slot"` the replay without the device is carried
//! one slot further on the queries that really came (they never depend on the earlier
//! slot's actions, so the counterfactual is exact): the device gets the estimate back and
//! pays the delay its work caused there plus what is still left at that slot's end, as a
//! late reward for the earlier slot ([`Simulator::late_rewards`]). A learner that cannot
//! use it loses only the correction, not the estimate.

use super::{Action, Simulator, edge_queue};
use crate::config::ExternalitySettlement;

/// The offloads of one slot whose leftover-work charge waits to be settled in the next.
#[derive(Debug, Clone, Default)]
pub(super) struct Settlement {
    /// The devices, in ascending order.
    devices: Vec<usize>,
    /// For each device, the edge's workers at the slot's end had it stayed away (one run
    /// of `edge.workers` free times per device).
    workers: Vec<f64>,
    /// For each device, the leftover-work charge it paid, seconds.
    carry: Vec<f64>,
}

impl Simulator {
    /// Charge each device that offloaded in this slot its externality, in seconds scaled
    /// like latency in the reward. Runs after `account_slot`, before `close_slot`: the
    /// slot as it ran is read from its events and the edge's workers, and
    /// `credit_workers` holds the workers as phase 2 found them (where replays start).
    pub(super) fn charge_externalities(&mut self, actions: &[Action]) {
        let offloading: Vec<usize> = (0..self.devices.len())
            .filter(|&u| actions[u] == Action::Offload && self.devices[u].pending > 0)
            .collect();
        let settle = self.config.reward.externality_settlement == ExternalitySettlement::NextSlot;
        let mut settlement = std::mem::take(&mut self.settlement);
        settlement.clear();
        if offloading.is_empty() {
            self.settlement = settlement;
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
            let carry = backlog - edge_queue::backlog_at(&workers, next);
            let delay = (total - own[u] - without) + carry;
            self.agent_rewards[u] -= weight * delay;
            if settle {
                settlement.push(u, &workers, carry);
            }
        }
        self.credit_reqs = reqs;
        self.credit_own = own;
        self.settlement = settlement;
    }

    /// Settle the leftover-work charges of the previous slot (`next-slot` settlement):
    /// replay this slot's edge queue from the workers each device's absence would have
    /// left, and write into `late_rewards` the difference between the delay the device's
    /// work caused (here, and still left at this slot's end) and what it was charged.
    /// Runs after `serve_edge_queue` (which leaves this slot's requests in FIFO order in
    /// `offload_buf`) and before `charge_externalities` (which replaces the settlement).
    pub(super) fn settle_externalities(&mut self) {
        if self.settlement.devices.is_empty() {
            return;
        }
        let now = self.now_s();
        let next = now + self.config.slot_s;
        let max_lat = self.config.max_latency_s;
        let weight = self.config.reward.externality_credit / self.config.reward.latency_scale_s;
        let total: f64 = self
            .events
            .iter()
            .filter(|e| e.action == Action::Offload)
            .map(|e| e.latency_s)
            .sum();
        let backlog = edge_queue::backlog_at(&self.edge_free_at, next);
        let k = self.edge_free_at.len();
        let mut workers = Vec::with_capacity(k);
        let s = &self.settlement;
        for (i, (&u, &carry)) in s.devices.iter().zip(&s.carry).enumerate() {
            workers.clear();
            workers.extend_from_slice(&s.workers[i * k..(i + 1) * k]);
            let mut without = 0.0;
            edge_queue::serve(
                &self.offload_buf,
                &mut workers,
                now,
                max_lat,
                |_, lat, _| {
                    without += lat.min(max_lat);
                },
            );
            let caused = (total - without) + (backlog - edge_queue::backlog_at(&workers, next));
            self.late_rewards[u] -= weight * (caused - carry);
        }
    }
}

impl Settlement {
    fn clear(&mut self) {
        self.devices.clear();
        self.workers.clear();
        self.carry.clear();
    }

    fn push(&mut self, device: usize, workers: &[f64], carry: f64) {
        self.devices.push(device);
        self.workers.extend_from_slice(workers);
        self.carry.push(carry);
    }
}
