//! PPO with sequential decisions learns to coordinate where deciding all at once cannot.
//!
//! `Claim` is the smallest herding problem: every step each of `A` agents may claim one
//! shared resource. The first claim earns +1; a claim on a resource already claimed earns
//! −1; not claiming earns 0. All at once, agents see the same state, so the best a shared
//! policy can do is claim with some probability p (about 0.08 per agent-step at best for
//! four agents). One after another ([`SequentialVecEnv`]), an agent sees whether the resource
//! is taken, and "claim if free" earns 1/A = 0.25 per agent-step. Mixed batches
//! ([`MixedVecEnv`]) forward the protocol to their parts.

use edgewise_env::{EpisodeInfo, SequentialVecEnv, VecEnv};
use edgewise_rl::mixed_env::MixedVecEnv;
use edgewise_rl::{Ppo, PpoConfig, cpu_device};
use edgewise_rng::Rng;

const EPISODE: usize = 16;

struct Claim {
    envs: usize,
    agents: usize,
    rng: Rng,
    t: usize,
    /// Per environment, this step's commitments in the order they were made.
    log: Vec<Vec<(usize, u32)>>,
    returns: Vec<f64>,
    finished: Vec<EpisodeInfo>,
}

impl Claim {
    fn boxed(envs: usize, agents: usize) -> Box<dyn VecEnv> {
        Box::new(Self {
            envs,
            agents,
            rng: Rng::new(0),
            t: 0,
            log: vec![Vec::new(); envs],
            returns: vec![0.0; envs],
            finished: Vec::new(),
        })
    }
}

impl VecEnv for Claim {
    fn num_envs(&self) -> usize {
        self.envs
    }
    fn agents_per_env(&self) -> usize {
        self.agents
    }
    fn obs_dim(&self) -> usize {
        2
    }
    fn num_actions(&self) -> usize {
        2
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) {
        self.rng = Rng::new(seed);
        self.t = 0;
        for row in obs.chunks_exact_mut(2) {
            row.copy_from_slice(&[1.0, 0.0]);
        }
    }
    fn step(&mut self, actions: &[u32], obs: &mut [f32], rewards: &mut [f32], dones: &mut [bool]) {
        let a = self.agents;
        self.t += 1;
        for e in 0..self.envs {
            let log = std::mem::take(&mut self.log[e]);
            let mut committed = vec![false; a];
            let mut claimed = false;
            // Committed claims in order: the first wins, later ones collide with it.
            for &(u, act) in &log {
                committed[u] = true;
                rewards[e * a + u] = match (act, claimed) {
                    (1, false) => 1.0,
                    (1, true) => -1.0,
                    _ => 0.0,
                };
                claimed |= act == 1;
            }
            // The rest decide at once: a lone claim on a free resource wins.
            let free: Vec<usize> = (0..a).filter(|&u| !committed[u]).collect();
            let claims = free.iter().filter(|&&u| actions[e * a + u] == 1).count();
            for &u in &free {
                rewards[e * a + u] = match actions[e * a + u] {
                    1 if !claimed && claims == 1 => 1.0,
                    1 => -1.0,
                    _ => 0.0,
                };
            }
            self.returns[e] += rewards[e * a..(e + 1) * a]
                .iter()
                .map(|&r| f64::from(r))
                .sum::<f64>();
            dones[e] = self.t.is_multiple_of(EPISODE);
            if dones[e] {
                self.finished.push(EpisodeInfo {
                    env: e,
                    episode_return: self.returns[e],
                    length: EPISODE,
                    extras: Vec::new(),
                });
                self.returns[e] = 0.0;
            }
        }
        for row in obs.chunks_exact_mut(2) {
            row.copy_from_slice(&[1.0, 0.0]);
        }
    }
    fn drain_finished(&mut self, out: &mut Vec<EpisodeInfo>) {
        out.append(&mut self.finished);
    }
    fn as_sequential(&mut self) -> Option<&mut dyn SequentialVecEnv> {
        Some(self)
    }
}

impl SequentialVecEnv for Claim {
    fn decision_order(&mut self, _env: usize, order: &mut Vec<usize>) {
        order.clear();
        order.extend(0..self.agents);
        self.rng.shuffle(order);
    }
    fn observe_agent(&mut self, env: usize, _agent: usize, obs: &mut [f32]) {
        let taken = self.log[env].iter().any(|&(_, act)| act == 1);
        obs.copy_from_slice(&[1.0, f32::from(u8::from(taken))]);
    }
    fn commit(&mut self, env: usize, agent: usize, action: u32) {
        self.log[env].push((agent, action));
    }
}

/// Mean reward per agent-step over the episodes finished in the last iterations of a
/// PPO run on `env`.
#[allow(clippy::cast_precision_loss)]
fn trained_reward(env: &mut dyn VecEnv, sequential: bool) -> f64 {
    let agents = env.agents_per_env() as f64;
    let config = PpoConfig {
        total_env_steps: 12_000,
        rollout_steps: 64,
        learning_rate: 3e-3,
        hidden: vec![16],
        sequential_decisions: sequential,
        ..PpoConfig::default()
    };
    let mut ppo = Ppo::new(config, env, &cpu_device(), 7).unwrap();
    let mut last = Vec::new();
    ppo.train(env, 12_000, |_| {}).unwrap();
    ppo.drain_finished(&mut Vec::new());
    // Score the final policy on fresh episodes (sampled, as it was trained).
    let before = ppo.env_steps();
    while ppo.env_steps() < before + 2_000 {
        ppo.iterate(env).unwrap();
        ppo.drain_finished(&mut last);
    }
    let n = last.len().max(1) as f64;
    last.iter().map(|e| e.episode_return).sum::<f64>() / n / (EPISODE as f64 * agents)
}

#[test]
fn sequential_decisions_let_a_shared_policy_coordinate() {
    let seq = trained_reward(Claim::boxed(4, 4).as_mut(), true);
    let at_once = trained_reward(Claim::boxed(4, 4).as_mut(), false);
    eprintln!("sequential {seq:.3}, all at once {at_once:.3}");
    // "Claim if free" earns 0.25; the best all-at-once mixing about 0.08.
    assert!(seq > 0.2, "sequential: {seq:.3} per agent-step");
    assert!(at_once < 0.12, "all at once: {at_once:.3} per agent-step");
}

#[test]
fn a_mixed_batch_forwards_sequential_decisions_to_its_parts() {
    let mut mix = MixedVecEnv::new(vec![Claim::boxed(2, 2), Claim::boxed(2, 4)]).unwrap();
    assert!(mix.as_sequential().is_some());
    let seq = trained_reward(&mut mix, true);
    // Padding agents (two per 2-agent environment) earn nothing: the optimum is
    // 1/4 per padded agent-step in every environment.
    assert!(seq > 0.2, "sequential on a mix: {seq:.3}");
}
