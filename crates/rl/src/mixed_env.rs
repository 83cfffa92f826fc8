//! Several environment batches of different agent counts driven as one [`VecEnv`].
//!
//! A learner is bound to one `agents_per_env`, but training on a mix of populations (10,
//! 20, 50 and 100 devices at once) is how no population-dependent feature stays constant
//! within a run. [`MixedVecEnv`] stacks batches with the same observation and action
//! sizes and pads each environment to the largest agent count: padding agents observe
//! zeros, earn nothing and are never active ([`VecEnv::active_agents`]), so they stay out
//! of the policy loss, the advantage statistics and the observation statistics.
//!
//! When every part offers sequential decisions, so does the mix: environment `i` forwards
//! to its part's own environment, and padding agents never appear in a decision order.

use edgewise_env::{EpisodeInfo, SequentialVecEnv, VecEnv};

/// Batches of environments with equal observation and action sizes but any agent count,
/// stepped together; each environment's rows are padded to the largest agent count.
pub struct MixedVecEnv {
    parts: Vec<Part>,
    agents: usize,
    obs_dim: usize,
    num_actions: usize,
    num_envs: usize,
}

struct Part {
    env: Box<dyn VecEnv>,
    /// Index of this part's first environment in the mixed batch.
    first_env: usize,
    obs: Vec<f32>,
    final_obs: Vec<f32>,
    actions: Vec<u32>,
    rewards: Vec<f32>,
    dones: Vec<bool>,
    truncated: Vec<bool>,
    mask: Vec<bool>,
}

impl std::fmt::Debug for MixedVecEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MixedVecEnv")
            .field("agents_per_env", &self.agents)
            .field(
                "parts",
                &self
                    .parts
                    .iter()
                    .map(|p| (p.env.num_envs(), p.env.agents_per_env()))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Why batches cannot be mixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    /// No batch given.
    #[error("a mixed environment needs at least one batch")]
    Empty,
    /// Batch `index` has other observation or action sizes than batch 0.
    #[error(
        "batch {index} has {obs_dim} features and {num_actions} actions, batch 0 has {want_obs} and {want_actions}"
    )]
    Sizes {
        /// The offending batch.
        index: usize,
        /// Its features per agent.
        obs_dim: usize,
        /// Its actions per agent.
        num_actions: usize,
        /// Batch 0's features per agent.
        want_obs: usize,
        /// Batch 0's actions per agent.
        want_actions: usize,
    },
}

impl MixedVecEnv {
    /// Stack `parts` in order (environment indices run through the first part's, then
    /// the second's, ...).
    ///
    /// # Errors
    /// [`MixError`] if there is no part or the parts disagree on sizes.
    pub fn new(parts: Vec<Box<dyn VecEnv>>) -> Result<Self, MixError> {
        let first = parts.first().ok_or(MixError::Empty)?;
        let (obs_dim, num_actions) = (first.obs_dim(), first.num_actions());
        for (index, p) in parts.iter().enumerate() {
            if p.obs_dim() != obs_dim || p.num_actions() != num_actions {
                return Err(MixError::Sizes {
                    index,
                    obs_dim: p.obs_dim(),
                    num_actions: p.num_actions(),
                    want_obs: obs_dim,
                    want_actions: num_actions,
                });
            }
        }
        let agents = parts.iter().map(|p| p.agents_per_env()).max().unwrap_or(0);
        let mut first_env = 0;
        let parts = parts
            .into_iter()
            .map(|env| {
                let (e, a) = (env.num_envs(), env.agents_per_env());
                let part = Part {
                    first_env,
                    obs: vec![0.0; e * a * obs_dim],
                    final_obs: vec![0.0; e * a * obs_dim],
                    actions: vec![0; e * a],
                    rewards: vec![0.0; e * a],
                    dones: vec![false; e],
                    truncated: vec![false; e],
                    mask: vec![true; e * a],
                    env,
                };
                first_env += e;
                part
            })
            .collect();
        Ok(Self {
            parts,
            agents,
            obs_dim,
            num_actions,
            num_envs: first_env,
        })
    }

    /// Agent count of each environment in the mixed batch (without padding).
    #[must_use]
    pub fn real_agents(&self) -> Vec<usize> {
        self.parts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.env.agents_per_env(), p.env.num_envs()))
            .collect()
    }

    /// The part holding mixed environment `env`, and `env`'s index within it.
    fn locate(&mut self, env: usize) -> (&mut dyn SequentialVecEnv, usize) {
        let part = self
            .parts
            .iter_mut()
            .rfind(|p| p.first_env <= env)
            .expect("environment index within the batch");
        let local = env - part.first_env;
        let seq = part
            .env
            .as_sequential()
            .expect("as_sequential checked every part");
        (seq, local)
    }

    /// Copy a part's per-agent rows (`width` values per agent) into the padded layout.
    fn scatter<T: Copy>(&self, part: &Part, src: &[T], dst: &mut [T], width: usize, pad: T) {
        let a = part.env.agents_per_env();
        for e in 0..part.env.num_envs() {
            let out = (part.first_env + e) * self.agents * width;
            let row = &mut dst[out..out + self.agents * width];
            row[..a * width].copy_from_slice(&src[e * a * width..(e + 1) * a * width]);
            row[a * width..].fill(pad);
        }
    }
}

impl VecEnv for MixedVecEnv {
    fn num_envs(&self) -> usize {
        self.num_envs
    }

    fn agents_per_env(&self) -> usize {
        self.agents
    }

    fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    fn num_actions(&self) -> usize {
        self.num_actions
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32]) {
        let mut parts = std::mem::take(&mut self.parts);
        for (i, p) in parts.iter_mut().enumerate() {
            // Each part gets its own seed stream; environment i of a part is seeded by
            // the part itself from that seed and i.
            p.env.reset(
                edgewise_rng::splitmix64(seed ^ ((i as u64) << 40)),
                &mut p.obs,
            );
            self.scatter(p, &p.obs, obs, self.obs_dim, 0.0);
        }
        self.parts = parts;
    }

    fn step(&mut self, actions: &[u32], obs: &mut [f32], rewards: &mut [f32], dones: &mut [bool]) {
        let mut parts = std::mem::take(&mut self.parts);
        for p in &mut parts {
            let a = p.env.agents_per_env();
            for e in 0..p.env.num_envs() {
                let src = (p.first_env + e) * self.agents;
                p.actions[e * a..(e + 1) * a].copy_from_slice(&actions[src..src + a]);
            }
            p.env
                .step(&p.actions, &mut p.obs, &mut p.rewards, &mut p.dones);
            self.scatter(p, &p.obs, obs, self.obs_dim, 0.0);
            self.scatter(p, &p.rewards, rewards, 1, 0.0);
            let n = p.env.num_envs();
            dones[p.first_env..p.first_env + n].copy_from_slice(&p.dones);
        }
        self.parts = parts;
    }

    fn active_agents(&self, mask: &mut [bool]) {
        for p in &self.parts {
            let mut m = p.mask.clone();
            p.env.active_agents(&mut m);
            self.scatter(p, &m, mask, 1, false);
        }
    }

    fn truncations(&self, truncated: &mut [bool], final_obs: &mut [f32]) {
        for p in &self.parts {
            let mut t = p.truncated.clone();
            let mut f = p.final_obs.clone();
            p.env.truncations(&mut t, &mut f);
            let a = p.env.agents_per_env();
            for (e, &cut) in t.iter().enumerate() {
                truncated[p.first_env + e] = cut;
                if cut {
                    let out = (p.first_env + e) * self.agents * self.obs_dim;
                    let row = &mut final_obs[out..out + self.agents * self.obs_dim];
                    row[..a * self.obs_dim]
                        .copy_from_slice(&f[e * a * self.obs_dim..(e + 1) * a * self.obs_dim]);
                    row[a * self.obs_dim..].fill(0.0);
                }
            }
        }
    }

    fn late_rewards(&self, late: &mut [f32]) -> bool {
        let mut any = false;
        for p in &self.parts {
            let mut l = p.rewards.clone();
            any |= p.env.late_rewards(&mut l);
            self.scatter(p, &l, late, 1, 0.0);
        }
        any
    }

    fn drain_finished(&mut self, out: &mut Vec<EpisodeInfo>) {
        for p in &mut self.parts {
            let start = out.len();
            p.env.drain_finished(out);
            for info in &mut out[start..] {
                info.env += p.first_env;
            }
        }
    }

    fn as_sequential(&mut self) -> Option<&mut dyn SequentialVecEnv> {
        if self
            .parts
            .iter_mut()
            .all(|p| p.env.as_sequential().is_some())
        {
            Some(self)
        } else {
            None
        }
    }
}

impl SequentialVecEnv for MixedVecEnv {
    fn decision_order(&mut self, env: usize, order: &mut Vec<usize>) {
        let (seq, local) = self.locate(env);
        seq.decision_order(local, order);
    }

    fn observe_agent(&mut self, env: usize, agent: usize, obs: &mut [f32]) {
        let (seq, local) = self.locate(env);
        seq.observe_agent(local, agent, obs);
    }

    fn commit(&mut self, env: usize, agent: usize, action: u32) {
        let (seq, local) = self.locate(env);
        seq.commit(local, agent, action);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `envs` environments of `agents` agents; agent `i` of environment `e` observes
    /// `[tag, e, i]` and earns `tag`; all agents are active; episodes last 3 steps.
    struct Tagged {
        envs: usize,
        agents: usize,
        tag: f32,
        t: usize,
        finished: Vec<EpisodeInfo>,
    }

    impl Tagged {
        #[allow(clippy::cast_precision_loss)]
        fn write(&self, obs: &mut [f32]) {
            for e in 0..self.envs {
                for i in 0..self.agents {
                    let k = (e * self.agents + i) * 3;
                    obs[k..k + 3].copy_from_slice(&[self.tag, e as f32, i as f32]);
                }
            }
        }
    }

    impl VecEnv for Tagged {
        fn num_envs(&self) -> usize {
            self.envs
        }
        fn agents_per_env(&self) -> usize {
            self.agents
        }
        fn obs_dim(&self) -> usize {
            3
        }
        fn num_actions(&self) -> usize {
            2
        }
        fn reset(&mut self, _: u64, obs: &mut [f32]) {
            self.t = 0;
            self.write(obs);
        }
        fn step(
            &mut self,
            actions: &[u32],
            obs: &mut [f32],
            rewards: &mut [f32],
            dones: &mut [bool],
        ) {
            assert_eq!(actions.len(), self.envs * self.agents);
            self.t += 1;
            for (r, &a) in rewards.iter_mut().zip(actions) {
                #[allow(clippy::cast_precision_loss)]
                let a = a as f32;
                *r = self.tag + a;
            }
            dones.fill(self.t.is_multiple_of(3));
            if self.t.is_multiple_of(3) {
                for env in 0..self.envs {
                    self.finished.push(EpisodeInfo {
                        env,
                        episode_return: 0.0,
                        length: 3,
                        extras: Vec::new(),
                    });
                }
            }
            self.write(obs);
        }
        /// Only batches tagged above 1 revise rewards late, by ten times the tag.
        fn late_rewards(&self, late: &mut [f32]) -> bool {
            let revises = self.tag > 1.0;
            late.fill(if revises { 10.0 * self.tag } else { 0.0 });
            revises
        }
        fn drain_finished(&mut self, out: &mut Vec<EpisodeInfo>) {
            out.append(&mut self.finished);
        }
    }

    fn tagged(envs: usize, agents: usize, tag: f32) -> Box<dyn VecEnv> {
        Box::new(Tagged {
            envs,
            agents,
            tag,
            t: 0,
            finished: Vec::new(),
        })
    }

    #[test]
    fn pads_each_environment_to_the_largest_population() {
        let mut mix = MixedVecEnv::new(vec![tagged(2, 1, 1.0), tagged(1, 3, 2.0)]).unwrap();
        assert_eq!(
            (mix.num_envs(), mix.agents_per_env(), mix.real_agents()),
            (3, 3, vec![1, 1, 3])
        );
        let mut obs = vec![9.0; 3 * 3 * 3];
        mix.reset(7, &mut obs);
        // Environment 1 (second of part 0): agent 0 real, agents 1 and 2 padding.
        assert_eq!(&obs[9..12], &[1.0, 1.0, 0.0]);
        assert_eq!(&obs[12..18], &[0.0; 6]);
        // Environment 2 is part 1's environment 0.
        assert_eq!(&obs[18..27], &[2.0, 0.0, 0.0, 2.0, 0.0, 1.0, 2.0, 0.0, 2.0]);
        let mut mask = vec![true; 9];
        mix.active_agents(&mut mask);
        assert_eq!(
            mask,
            [true, false, false, true, false, false, true, true, true]
        );
        let actions = [1, 0, 0, 0, 0, 0, 1, 0, 1];
        let (mut rewards, mut dones) = (vec![0.0; 9], vec![false; 3]);
        for _ in 0..3 {
            mix.step(&actions, &mut obs, &mut rewards, &mut dones);
        }
        assert_eq!(rewards, [2.0, 0.0, 0.0, 1.0, 0.0, 0.0, 3.0, 2.0, 3.0]);
        let mut late = vec![9.0; 9];
        assert!(mix.late_rewards(&mut late), "one part revises");
        assert_eq!(late, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 20.0, 20.0, 20.0]);
        assert_eq!(dones, [true; 3]);
        let mut finished = Vec::new();
        mix.drain_finished(&mut finished);
        let envs: Vec<usize> = finished.iter().map(|e| e.env).collect();
        assert_eq!(envs, [0, 1, 2]);
    }

    #[test]
    fn mismatched_sizes_are_refused() {
        struct Wide;
        impl VecEnv for Wide {
            fn num_envs(&self) -> usize {
                1
            }
            fn agents_per_env(&self) -> usize {
                1
            }
            fn obs_dim(&self) -> usize {
                4
            }
            fn num_actions(&self) -> usize {
                2
            }
            fn reset(&mut self, _: u64, _: &mut [f32]) {}
            fn step(&mut self, _: &[u32], _: &mut [f32], _: &mut [f32], _: &mut [bool]) {}
            fn drain_finished(&mut self, _: &mut Vec<EpisodeInfo>) {}
        }
        let err = MixedVecEnv::new(vec![tagged(1, 2, 0.0), Box::new(Wide)]).unwrap_err();
        assert!(err.to_string().contains("batch 1 has 4 features"), "{err}");
        assert_eq!(MixedVecEnv::new(Vec::new()).unwrap_err(), MixError::Empty);
    }
}
