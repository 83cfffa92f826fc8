//! Running a per-device decision rule in the slot's broadcast order on a read-only
//! simulator: what a learned policy trained with sequential decisions needs at evaluation
//! time (the `Policy` trait hands out `&Simulator`, so the announcements go to a scratch
//! copy, whose commitments are the only thing that differs from the real one).

use crate::observation::OBS_DIM;
use crate::sim::{Action, Simulator};

/// Reusable buffers for [`InOrder::decide`].
#[derive(Debug, Default, Clone)]
pub struct InOrder {
    scratch: Option<Simulator>,
    order: Vec<usize>,
    obs: Vec<f32>,
}

impl InOrder {
    /// Fill `actions` (one per device): each device with pending queries, in
    /// [`Simulator::broadcast_order`], gets `choose(device, observation)` where the
    /// observation ([`Simulator::observe_device`]) shows what the devices before it
    /// announced; devices with nothing pending get [`Action::Local`] (ignored by the step).
    pub fn decide(
        &mut self,
        sim: &Simulator,
        actions: &mut [Action],
        mut choose: impl FnMut(usize, &[f32]) -> Action,
    ) {
        actions.fill(Action::Local);
        let scratch = match &mut self.scratch {
            Some(s) => {
                s.clone_from(sim);
                s
            }
            None => self.scratch.insert(sim.clone()),
        };
        scratch.broadcast_order(&mut self.order);
        self.obs.resize(OBS_DIM, 0.0);
        for &u in &self.order {
            scratch.observe_device(u, &mut self.obs);
            let a = choose(u, &self.obs);
            scratch.commit(u, a);
            actions[u] = a;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Catalogue, SimConfig};

    #[test]
    fn later_devices_see_earlier_announcements_and_the_simulator_is_untouched() {
        let config = SimConfig {
            devices: 40,
            arrival_rate: 0.5,
            ..SimConfig::default()
        };
        let sim = Simulator::new(config, Catalogue::default_catalogue(), 3).unwrap();
        let before = sim.clone();
        let mut seen = Vec::new();
        let mut actions = vec![Action::Offload; 40];
        InOrder::default().decide(&sim, &mut actions, |u, obs| {
            seen.push((u, obs.to_vec()));
            Action::Offload
        });
        assert!(seen.len() > 2, "a busy slot has several deciders");
        let mut order = Vec::new();
        sim.broadcast_order(&mut order);
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), order);
        // The first decider sees the plain observation; a later one sees the first's
        // announced offload (some feature differs from its own plain row).
        let mut plain = vec![0.0; OBS_DIM];
        sim.observe_device(seen[0].0, &mut plain);
        assert_eq!(seen[0].1, plain);
        let (last, obs) = seen.last().unwrap();
        sim.observe_device(*last, &mut plain);
        assert_ne!(obs, &plain);
        assert_eq!(sim.commitments(), before.commitments());
        for (u, a) in actions.iter().enumerate() {
            let pending = sim.devices()[u].pending > 0;
            assert_eq!(*a == Action::Offload, pending);
        }
    }
}
