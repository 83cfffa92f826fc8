//! The simulator as a batch of environments for learners ([`edgewise_env::VecEnv`]).
//!
//! One agent per device, all sharing one policy; action 0 = local, 1 = offload. The agent
//! reward is the device's own share of the slot's Lagrangian reward, with the externality
//! credit when the scenario sets one ([`Simulator::agent_rewards`]), and its next-slot
//! settlement as late rewards ([`VecEnv::late_rewards`]); episode returns sum the
//! environment reward.
//!
//! The end of an episode (`config.slots` slots) is a *truncation*, not a termination: the
//! system model is a continuing one and the horizon only bounds a simulation, so
//! [`VecEnv::truncations`] reports every end with the devices' final observations and
//! learners bootstrap from them rather than treating the last slot as the last ever.
//!
//! It also offers sequential decisions ([`SequentialVecEnv`]): the devices with pending
//! queries decide in the slot's broadcast order ([`Simulator::broadcast_order`]), each
//! seeing the uplink share and edge work announced before it ([`Simulator::commit`]).

use edgewise_env::{EpisodeInfo, SequentialVecEnv, VecEnv};

use crate::catalogue::Catalogue;
use crate::config::{ExternalitySettlement, SimConfig};
use crate::error::MecError;
use crate::observation::OBS_DIM;
use crate::sim::{Action, Simulator};
use edgewise_rng::derive_seed;

/// `num_envs` simulators of the same scenario stepped in lock-step.
#[derive(Debug, Clone)]
pub struct MecVecEnv {
    sims: Vec<Simulator>,
    seed: u64,
    episodes: Vec<u64>,
    returns: Vec<f64>,
    finished: Vec<EpisodeInfo>,
    actions: Vec<Action>,
    /// Which environments ended an episode in the last step (all ends are truncations).
    truncated: Vec<bool>,
    /// Their final observations (before the reset), laid out like the observation buffer.
    final_obs: Vec<f32>,
    /// Actions committed in the current step (sequential decisions), per env and agent.
    committed: Vec<Option<Action>>,
    /// Corrections to the previous step's rewards found in the last one
    /// ([`Simulator::late_rewards`]), per env and agent; read before an ended episode's
    /// simulator is reset.
    late: Vec<f32>,
    /// Whether the scenario settles the externality credit a slot late.
    settles: bool,
}

impl MecVecEnv {
    /// Build `num_envs` simulators (seeds derived from `seed`).
    pub fn new(
        config: &SimConfig,
        catalogue: &Catalogue,
        num_envs: usize,
        seed: u64,
    ) -> Result<Self, MecError> {
        let sims = (0..num_envs.max(1))
            .map(|i| {
                Simulator::new(
                    config.clone(),
                    catalogue.clone(),
                    derive_seed(seed, i as u64),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = config.devices;
        let num = sims.len();
        Ok(Self {
            sims,
            seed,
            episodes: vec![0; num],
            returns: vec![0.0; num],
            finished: Vec::new(),
            actions: vec![Action::Offload; n],
            truncated: vec![false; num],
            final_obs: vec![0.0; num * n * OBS_DIM],
            committed: vec![None; num * n],
            late: vec![0.0; num * n],
            settles: config.reward.externality_credit > 0.0
                && config.reward.externality_settlement == ExternalitySettlement::NextSlot,
        })
    }

    /// The simulators (e.g. to render one).
    #[must_use]
    pub fn sims(&self) -> &[Simulator] {
        &self.sims
    }

    fn env_seed(&self, env: usize) -> u64 {
        derive_seed(derive_seed(self.seed, env as u64), 1 + self.episodes[env])
    }
}

impl VecEnv for MecVecEnv {
    fn num_envs(&self) -> usize {
        self.sims.len()
    }

    fn agents_per_env(&self) -> usize {
        self.sims[0].num_devices()
    }

    fn obs_dim(&self) -> usize {
        OBS_DIM
    }

    fn num_actions(&self) -> usize {
        2
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32]) {
        self.seed = seed;
        let per = self.agents_per_env() * OBS_DIM;
        for i in 0..self.sims.len() {
            self.episodes[i] = 0;
            self.returns[i] = 0.0;
            let s = self.env_seed(i);
            self.sims[i].reset(s);
            self.sims[i].observe(&mut obs[i * per..(i + 1) * per]);
        }
        self.truncated.fill(false);
        self.late.fill(0.0);
        self.finished.clear();
        self.committed.fill(None);
    }

    fn step(&mut self, actions: &[u32], obs: &mut [f32], rewards: &mut [f32], dones: &mut [bool]) {
        let n = self.agents_per_env();
        let per = n * OBS_DIM;
        for i in 0..self.sims.len() {
            for ((dst, &a), c) in self
                .actions
                .iter_mut()
                .zip(&actions[i * n..(i + 1) * n])
                .zip(&mut self.committed[i * n..(i + 1) * n])
            {
                *dst = c.take().unwrap_or(Action::from_index(a));
            }
            let out = self.sims[i].step(&self.actions);
            for (r, &ar) in rewards[i * n..(i + 1) * n]
                .iter_mut()
                .zip(self.sims[i].agent_rewards())
            {
                *r = ar as f32;
            }
            for (l, &lr) in self.late[i * n..(i + 1) * n]
                .iter_mut()
                .zip(self.sims[i].late_rewards())
            {
                *l = lr as f32;
            }
            self.returns[i] += out.reward;
            dones[i] = out.done;
            self.truncated[i] = out.done;
            if out.done {
                self.sims[i].observe(&mut self.final_obs[i * per..(i + 1) * per]);
                let m = self.sims[i].metrics();
                self.finished.push(EpisodeInfo {
                    env: i,
                    episode_return: self.returns[i],
                    length: m.slots,
                    extras: vec![
                        ("mean_latency_s", m.mean_latency_s),
                        ("p95_latency_s", m.p95_latency_s),
                        ("energy_violation_rate", m.energy_violation_rate),
                        ("accuracy", m.accuracy),
                        ("hallucination_rate", m.hallucination_rate),
                        ("offload_fraction", m.offload_fraction),
                        ("reward", m.reward),
                    ],
                });
                self.returns[i] = 0.0;
                self.episodes[i] += 1;
                let s = self.env_seed(i);
                self.sims[i].reset(s);
            }
            self.sims[i].observe(&mut obs[i * per..(i + 1) * per]);
        }
    }

    fn active_agents(&self, mask: &mut [bool]) {
        let n = self.agents_per_env();
        for (i, sim) in self.sims.iter().enumerate() {
            for (m, d) in mask[i * n..(i + 1) * n].iter_mut().zip(sim.devices()) {
                *m = d.pending > 0;
            }
        }
    }

    fn truncations(&self, truncated: &mut [bool], final_obs: &mut [f32]) {
        let per = self.agents_per_env() * OBS_DIM;
        for (i, (t, &mine)) in truncated.iter_mut().zip(&self.truncated).enumerate() {
            *t = mine;
            if mine {
                final_obs[i * per..(i + 1) * per]
                    .copy_from_slice(&self.final_obs[i * per..(i + 1) * per]);
            }
        }
    }

    fn late_rewards(&self, late: &mut [f32]) -> bool {
        late.copy_from_slice(&self.late);
        self.settles
    }

    fn drain_finished(&mut self, out: &mut Vec<EpisodeInfo>) {
        out.append(&mut self.finished);
    }

    fn as_sequential(&mut self) -> Option<&mut dyn SequentialVecEnv> {
        Some(self)
    }
}

impl SequentialVecEnv for MecVecEnv {
    fn decision_order(&mut self, env: usize, order: &mut Vec<usize>) {
        self.sims[env].broadcast_order(order);
    }

    fn observe_agent(&mut self, env: usize, agent: usize, obs: &mut [f32]) {
        self.sims[env].observe_device(agent, obs);
    }

    /// # Panics
    /// When the agent already committed in this step.
    fn commit(&mut self, env: usize, agent: usize, action: u32) {
        let n = self.agents_per_env();
        let slot = &mut self.committed[env * n + agent];
        assert!(
            slot.is_none(),
            "agent {agent} of environment {env} committed twice in one step"
        );
        let a = Action::from_index(action);
        *slot = Some(a);
        self.sims[env].commit(agent, a);
    }
}
