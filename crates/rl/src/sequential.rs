//! Sequential decisions while collecting a rollout ([`SequentialVecEnv`]): within each
//! environment the deciding agents act in its broadcast order, each on an observation that
//! shows what the agents before it committed, and the row stored for the update is the one
//! it decided on. Agents with nothing to decide keep the plain observation and a sampled
//! action (masked out of the loss, as in the all-at-once protocol).

use edgewise_env::SequentialVecEnv;
use edgewise_policy::{Mlp, MlpScratch, softmax_in_place};
use edgewise_rng::Rng;

use crate::normalize::ObsNormalizer;

/// What one step of sequential decisions needs from the learner.
pub(crate) struct Decision<'a> {
    pub actor: &'a Mlp,
    /// The running normaliser (`None`: observations are used raw).
    pub norm: Option<&'a ObsNormalizer>,
    pub rng: &'a mut Rng,
    pub scratch: &'a mut MlpScratch,
    pub order: &'a mut Vec<usize>,
    pub agents_per_env: usize,
    /// Features per observation.
    pub d: usize,
    /// Actions per agent.
    pub a: usize,
}

impl Decision<'_> {
    /// Normalise row `i` of `raw` into `obs`, run the actor on it, sample; returns the
    /// action and its log-probability.
    fn act(&mut self, i: usize, raw: &[f32], obs: &mut [f32], logits: &mut [f32]) -> (u32, f32) {
        let (d, a) = (self.d, self.a);
        let (src, dst) = (&raw[i * d..(i + 1) * d], &mut obs[i * d..(i + 1) * d]);
        match self.norm {
            Some(norm) => norm.normalize(src, dst),
            None => dst.copy_from_slice(src),
        }
        let p = &mut logits[i * a..(i + 1) * a];
        self.actor.forward(dst, 1, self.scratch, p);
        softmax_in_place(p);
        let act = self.rng.categorical(p);
        (u32::try_from(act).unwrap_or(0), p[act].max(1e-30).ln())
    }
}

/// One step's decisions for every environment of `env`. `raw` holds the plain
/// observations on entry and the rows the agents decided on at exit; `obs` their
/// normalised copies; `actions` and `logp` one entry per agent row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decide_in_order(
    env: &mut dyn SequentialVecEnv,
    dec: &mut Decision<'_>,
    raw: &mut [f32],
    obs: &mut [f32],
    logits: &mut [f32],
    actions: &mut [u32],
    logp: &mut [f32],
) {
    let (per, d) = (dec.agents_per_env, dec.d);
    let envs = actions.len() / per.max(1);
    let mut decided = vec![false; per];
    for e in 0..envs {
        env.decision_order(e, dec.order);
        decided.fill(false);
        let order = std::mem::take(dec.order);
        for &u in &order {
            let i = e * per + u;
            env.observe_agent(e, u, &mut raw[i * d..(i + 1) * d]);
            let (act, lp) = dec.act(i, raw, obs, logits);
            env.commit(e, u, act);
            actions[i] = act;
            logp[i] = lp;
            decided[u] = true;
        }
        *dec.order = order;
        for u in (0..per).filter(|&u| !decided[u]) {
            let i = e * per + u;
            let (act, lp) = dec.act(i, raw, obs, logits);
            actions[i] = act;
            logp[i] = lp;
        }
    }
}
