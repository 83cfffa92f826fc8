//! What the world model adds to PPO in WM-PPO: counterfactual per-action advantages on
//! the real rollout, with the exogenous inputs replayed (common random numbers).
//!
//! PPO's GAE advantage of an agent's action sums the TD errors of many later steps, and
//! in a multi-agent system with random arrivals most of that is noise the action did not
//! cause. After each rollout WM-PPO:
//!
//! 1. gathers the transitions of the agents that decided (active, same episode next step)
//!    and measures the [`ResponseTrainer`]'s error on them **before** training on them
//!    (held out by construction), per target group (response features, reward);
//! 2. trains the ensemble on a replay of recent rollouts;
//! 3. trusts it by `1 − gap / error_threshold`, clamped to [0, 1], where `gap` is how much
//!    worse its held-out error is than its error on its own training data (mean over
//!    the two groups; 0 until it has trained once). Not the held-out error itself: with
//!    exogenous noise in the reward even a perfect model leaves most of its variance
//!    unexplained, and a gate on that would never open — the gap measures what the model
//!    gets wrong beyond the noise;
//! 4. for each of those transitions `(s, a, r, s')` and each other action `b`, builds the
//!    counterfactual outcome from the *real* one: `r_b = r + r̂(s,b) − r̂(s,a)` and `s'_b =
//!    s'` with only the response features moved by `Δ̂(s,b) − Δ̂(s,a)` — the arrivals,
//!    channels and everything exogenous stay as they really were — and computes
//!    `A_cf = Q(a) − Σ_b π(b|s)·Q(b)` with `Q(b) = r_b + γ·V(s'_b)` (the taken action's
//!    `Q` is the real one-step return, so model error enters only through the others);
//! 5. blends it into PPO's advantage, `A ← (1 − w)·A_gae + w·A_cf`, with `w =
//!    counterfactual_weight · trust / (1 + (spread / scale)²)`, where `spread` is the
//!    ensemble members' disagreement on that `A_cf` and `scale` the rollout's RMS `A_cf`.
//!
//! The critic's targets are left alone (they stay PPO's GAE returns), and nothing here
//! draws from PPO's random stream, so until the model is trusted WM-PPO learns exactly
//! like PPO.

use burn::tensor::Device;
use edgewise_policy::{MlpScratch, softmax_in_place};
use serde::{Deserialize, Serialize};

use crate::assist::{AssistInput, AssistReport};
use crate::error::{Result, RlError};
use crate::response_model::{
    ModelShape, ResponseSnapshot, ResponseTrainer, ResponseTrainerState, Transitions,
};
use crate::rollout::Rollout;

/// WM-PPO hyper-parameters (every field has a default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WmConfig {
    /// Indices of the observation features an agent's action changes (its queues,
    /// energy, the quality totals); the others are exogenous and replayed from the real
    /// rollout. `None` = every feature (the model then learns that exogenous features do
    /// not respond to the action). Default `None`.
    pub response_features: Option<Vec<usize>>,
    /// Ensemble members. Default 3.
    pub members: usize,
    /// Hidden width of each member. Default 64.
    pub hidden: usize,
    /// Rollouts kept for training. Default 4.
    pub replay_rollouts: usize,
    /// Gradient steps per rollout. Default 32.
    pub train_steps: usize,
    /// Transitions per member per gradient step. Default 256.
    pub batch: usize,
    /// Adam learning rate. Default 1e-3.
    pub learning_rate: f64,
    /// Excess of the held-out error over the fitted error (unexplained variance fraction,
    /// mean of the two target groups) at which trust reaches 0. Default 0.25.
    pub error_threshold: f64,
    /// Largest weight of the counterfactual advantage in the blend (at full trust and no
    /// ensemble disagreement). Default 0.5.
    pub counterfactual_weight: f64,
}

impl Default for WmConfig {
    fn default() -> Self {
        Self {
            response_features: None,
            members: 3,
            hidden: 64,
            replay_rollouts: 4,
            train_steps: 32,
            batch: 256,
            learning_rate: 1e-3,
            error_threshold: 0.25,
            counterfactual_weight: 0.5,
        }
    }
}

impl WmConfig {
    /// Check every field; the error names the first bad one.
    ///
    /// # Errors
    /// [`RlError::Config`] for a field out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: &str| {
            Err(RlError::Config {
                field,
                reason: reason.into(),
            })
        };
        if self.members == 0 {
            return bad("wm.members", "must be at least 1");
        }
        if self.hidden == 0 {
            return bad("wm.hidden", "must be at least 1");
        }
        if self.replay_rollouts == 0 || self.train_steps == 0 || self.batch == 0 {
            return bad("wm.replay_rollouts/train_steps/batch", "must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("wm.learning_rate", "must be a positive number");
        }
        if !(self.error_threshold > 0.0 && self.error_threshold.is_finite()) {
            return bad("wm.error_threshold", "must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.counterfactual_weight) {
            return bad("wm.counterfactual_weight", "must be in [0, 1]");
        }
        if let Some(f) = &self.response_features {
            let mut sorted = f.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != f.len() {
                return bad("wm.response_features", "lists a feature twice");
            }
        }
        Ok(())
    }

    /// How much to trust a model whose held-out error exceeds its fitted error by `gap`:
    /// 1 at zero (or below), falling linearly to 0 at `error_threshold` (and 0 beyond, or
    /// for NaN).
    #[must_use]
    pub fn trust(&self, err: f64) -> f64 {
        if err.is_finite() {
            (1.0 - err / self.error_threshold).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// The WM-PPO helper: its configuration and the response model.
#[derive(Debug)]
pub(crate) struct WmAssist {
    pub config: WmConfig,
    pub trainer: ResponseTrainer,
}

/// The checkpoint state of a [`WmAssist`] (the model's arrays travel as blobs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WmAssistState {
    pub config: WmConfig,
    pub trainer: ResponseTrainerState,
}

impl WmAssist {
    /// A fresh helper for agents with `obs_dim` features and `num_actions` actions.
    ///
    /// # Errors
    /// [`RlError::Config`] if `config` does not validate or names a feature past
    /// `obs_dim`.
    pub fn new(
        config: WmConfig,
        obs_dim: usize,
        num_actions: usize,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        let response = config
            .response_features
            .clone()
            .unwrap_or_else(|| (0..obs_dim).collect());
        if let Some(&f) = response.iter().find(|&&f| f >= obs_dim) {
            return Err(RlError::Config {
                field: "wm.response_features",
                reason: format!("feature {f} does not exist (observations have {obs_dim})"),
            });
        }
        let shape = ModelShape {
            obs_dim,
            num_actions,
            response,
            members: config.members,
            hidden: config.hidden,
            replay_rollouts: config.replay_rollouts,
            train_steps: config.train_steps,
            batch: config.batch,
            learning_rate: config.learning_rate,
        };
        Ok(Self {
            trainer: ResponseTrainer::new(shape, device, seed),
            config,
        })
    }

    /// Split for a checkpoint.
    pub fn snapshot(&self) -> std::result::Result<(WmAssistState, ResponseSnapshot), String> {
        let snap = self.trainer.snapshot()?;
        let state = WmAssistState {
            config: self.config.clone(),
            trainer: snap.state.clone(),
        };
        Ok((state, snap))
    }

    /// Rebuild from a checkpoint's parts.
    pub fn restore(
        state: WmAssistState,
        model: Vec<u8>,
        optimizer: Vec<u8>,
        replay: Vec<Vec<u8>>,
        device: &Device,
    ) -> std::result::Result<Self, String> {
        state.config.validate().map_err(|e| e.to_string())?;
        let trainer = ResponseTrainer::restore(
            ResponseSnapshot {
                state: state.trainer,
                model,
                optimizer,
                replay,
            },
            device,
        )?;
        Ok(Self {
            config: state.config,
            trainer,
        })
    }

    /// Between GAE and the update (see the module docs).
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    pub fn assist(&mut self, input: &AssistInput<'_>, buf: &mut Rollout) -> AssistReport {
        let (rows, next) = transitions(input, buf, &self.trainer.shape().response);
        let held_out = if self.trainer.trained() {
            Some((self.trainer.errors(&rows), self.trainer.fit_errors()))
        } else {
            None
        };
        let gap = held_out.map_or(f64::NAN, |(val, fit)| {
            0.5 * ((val.response - fit.response).max(0.0) + (val.reward - fit.reward).max(0.0))
        });
        let held_out = held_out.map(|(val, _)| val);
        let mut report = AssistReport {
            error_response: held_out.map(|e| e.response),
            error_reward: held_out.map(|e| e.reward),
            error: Some(held_out.map_or(f64::NAN, |e| 0.5 * (e.response + e.reward))),
            ..AssistReport::default()
        };
        // Index of each transition's row in the rollout.
        let index: Vec<usize> = next.iter().map(|&(k, _)| k).collect();
        let data = rows.clone();
        self.trainer.push(rows);
        self.trainer.train();
        let trust = self.config.trust(gap);
        if trust <= 0.0 || data.is_empty() {
            return report;
        }
        report.trust = trust;
        let cf = self.counterfactuals(input, buf, &data, &next);
        let scale = (cf.iter().map(|c| c.0 * c.0).sum::<f64>() / cf.len() as f64)
            .sqrt()
            .max(1e-8);
        let w_max = self.config.counterfactual_weight * trust;
        let mut spread_sum = 0.0;
        for (&k, &(a_cf, spread)) in index.iter().zip(&cf) {
            let rel = spread / scale;
            let w = w_max / (1.0 + rel * rel);
            let a = f64::from(buf.advantages[k]);
            buf.advantages[k] = ((1.0 - w) * a + w * a_cf) as f32;
            spread_sum += rel;
        }
        report.spread = Some(spread_sum / cf.len() as f64);
        report.counterfactual = cf.len();
        report
    }

    /// `(A_cf, ensemble spread of A_cf)` for each transition.
    #[allow(clippy::cast_precision_loss, clippy::needless_range_loop)]
    fn counterfactuals(
        &self,
        input: &AssistInput<'_>,
        buf: &Rollout,
        data: &Transitions,
        next: &[(usize, Vec<f32>)],
    ) -> Vec<(f64, f64)> {
        let (d, na) = (input.obs_dim, input.num_actions);
        let rows = data.len();
        let response = &self.trainer.shape().response;
        let width = response.len() + 1;
        let model = self.trainer.plain();
        let members = model.members.len();
        let mut scratch = MlpScratch::default();
        // Policy probabilities at s.
        let mut probs = vec![0.0f32; rows * na];
        input
            .actor
            .forward(&data.obs, rows, &mut scratch, &mut probs);
        for p in probs.chunks_exact_mut(na) {
            softmax_in_place(p);
        }
        // Every member's prediction for every action: pred[b][m][row * width + c].
        let mut pred = Vec::with_capacity(na);
        for b in 0..na {
            let acts = vec![u32::try_from(b).unwrap_or(0); rows];
            let mut out = Vec::new();
            model.predict(&data.obs, &acts, &mut scratch, &mut out);
            pred.push(out);
        }
        // Counterfactual next states (per other action and member) and the real one.
        let mut states: Vec<f32> = Vec::with_capacity(rows * (1 + (na - 1) * members) * d);
        let mut rewards: Vec<f32> = Vec::with_capacity(rows * (1 + (na - 1) * members));
        for (r, (k, s_next)) in next.iter().enumerate() {
            let a = buf.actions[*k] as usize;
            states.extend_from_slice(s_next);
            rewards.push(buf.rewards[*k]);
            for b in (0..na).filter(|&b| b != a) {
                for m in 0..members {
                    let (pb, pa) = (&pred[b][m], &pred[a][m]);
                    let base = states.len();
                    states.extend_from_slice(s_next);
                    for (j, &f) in response.iter().enumerate() {
                        let moved = states[base + f] + pb[r * width + j] - pa[r * width + j];
                        states[base + f] = moved.clamp(-input.obs_clip, input.obs_clip);
                    }
                    let c = width - 1;
                    rewards.push(buf.rewards[*k] + pb[r * width + c] - pa[r * width + c]);
                }
            }
        }
        let n_states = rewards.len();
        let mut values = vec![0.0f32; n_states];
        input
            .critic
            .forward(&states, n_states, &mut scratch, &mut values);
        let per = 1 + (na - 1) * members;
        let gamma = f64::from(input.gamma);
        let mut out = Vec::with_capacity(rows);
        for (r, (k, _)) in next.iter().enumerate() {
            let a = buf.actions[*k] as usize;
            let q =
                |i: usize| f64::from(rewards[r * per + i]) + gamma * f64::from(values[r * per + i]);
            let q_a = q(0);
            let p = &probs[r * na..(r + 1) * na];
            let mut per_member = vec![f64::from(p[a]) * q_a; members];
            for (bi, b) in (0..na).filter(|&b| b != a).enumerate() {
                for (m, acc) in per_member.iter_mut().enumerate() {
                    *acc += f64::from(p[b]) * q(1 + bi * members + m);
                }
            }
            let adv: Vec<f64> = per_member.iter().map(|baseline| q_a - baseline).collect();
            let mean = adv.iter().sum::<f64>() / members as f64;
            let var = adv.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / members as f64;
            out.push((mean, var.sqrt()));
        }
        out
    }
}

/// The transitions of agents that decided and stayed in the same episode: model rows
/// (normalised observation, action, response change and reward) and, per row, its index
/// in the rollout with the real next observation.
fn transitions(
    input: &AssistInput<'_>,
    buf: &Rollout,
    response: &[usize],
) -> (Transitions, Vec<(usize, Vec<f32>)>) {
    let (n, d) = (input.agents, input.obs_dim);
    let mut data = Transitions::default();
    let mut next = Vec::new();
    for t in 0..input.steps {
        for i in 0..n {
            let k = t * n + i;
            if !buf.active[k] || buf.dones[k] {
                continue;
            }
            let s = &buf.obs[k * d..(k + 1) * d];
            let s_next = if t + 1 < input.steps {
                &buf.obs[(k + n) * d..(k + n + 1) * d]
            } else {
                &input.last_obs[i * d..(i + 1) * d]
            };
            data.obs.extend_from_slice(s);
            data.actions.push(buf.actions[k]);
            data.targets
                .extend(response.iter().map(|&f| s_next[f] - s[f]));
            data.targets.push(buf.rewards[k]);
            next.push((k, s_next.to_vec()));
        }
    }
    (data, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewise_policy::{Dense, Mlp};

    fn zeros(inputs: usize, outputs: usize) -> Mlp {
        Mlp {
            layers: vec![Dense {
                inputs,
                outputs,
                weight: vec![0.0; inputs * outputs],
                bias: vec![0.0; outputs],
            }],
        }
    }

    /// Agents with a queue (feature 1) that action 1 shortens and an exogenous feature 0;
    /// the reward is `action + 3·noise` — the action is worth exactly +1, buried in
    /// exogenous noise three times its size.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_precision_loss,
        clippy::needless_range_loop
    )]
    fn rollout(steps: usize, agents: usize, seed: u64) -> (Rollout, Vec<f32>) {
        let mut rng = edgewise_rng::Rng::new(seed);
        let mut buf = Rollout::default();
        buf.resize(steps * agents, 2);
        let mut queue = vec![0.0f32; agents];
        for t in 0..steps {
            for i in 0..agents {
                let k = t * agents + i;
                let a = u32::from(rng.uniform() < 0.5);
                buf.obs[k * 2] = rng.normal() as f32;
                buf.obs[k * 2 + 1] = queue[i];
                buf.actions[k] = a;
                buf.rewards[k] = a as f32 + 3.0 * rng.normal() as f32;
                queue[i] = (queue[i] + if a == 1 { -0.5 } else { 0.5 }).clamp(-3.0, 3.0);
            }
        }
        let last: Vec<f32> = queue.iter().flat_map(|&q| [0.0, q]).collect();
        buf.gae(steps, agents, &vec![0.0; agents], 0.9, 0.95);
        (buf, last)
    }

    #[test]
    fn counterfactual_advantages_replay_the_noise_and_recover_the_action_value() {
        let (actor, critic) = (zeros(2, 2), zeros(2, 1));
        let config = WmConfig {
            response_features: Some(vec![1]),
            hidden: 16,
            train_steps: 300,
            batch: 128,
            learning_rate: 3e-3,
            counterfactual_weight: 1.0,
            ..WmConfig::default()
        };
        let mut wm = WmAssist::new(config, 2, 2, &crate::cpu_device(), 5).unwrap();
        let (steps, agents) = (100, 8);
        fn input<'a>(
            steps: usize,
            agents: usize,
            last: &'a [f32],
            actor: &'a Mlp,
            critic: &'a Mlp,
        ) -> AssistInput<'a> {
            AssistInput {
                steps,
                agents,
                obs_dim: 2,
                num_actions: 2,
                gamma: 0.9,
                lambda: 0.95,
                obs_clip: 10.0,
                last_obs: last,
                actor,
                critic,
            }
        }
        // First rollout: the model has never trained, so it is not trusted and PPO's
        // advantages are left exactly as they were.
        let (mut buf, last) = rollout(steps, agents, 1);
        let before = buf.advantages.clone();
        let r = wm.assist(&input(steps, agents, &last, &actor, &critic), &mut buf);
        assert_eq!((r.trust, r.counterfactual), (0.0, 0));
        assert_eq!(buf.advantages, before);
        assert!(r.error.is_some_and(f64::is_nan));

        // Second rollout: held-out error is measured, the model is trusted, and the
        // counterfactual advantage of the taken action is its true value against the
        // uniform policy (+0.5 for action 1, −0.5 for action 0), the noise cancelled by
        // replaying the real outcome.
        let (mut buf, last) = rollout(steps, agents, 2);
        let gae = buf.advantages.clone();
        let r = wm.assist(&input(steps, agents, &last, &actor, &critic), &mut buf);
        assert!(r.trust > 0.0, "{r:?}");
        assert!(r.error_response.unwrap() < 0.1, "{r:?}");
        assert_eq!(r.counterfactual, steps * agents);
        // Undo the blend (at the largest weight: the ensemble spread only lowers it) to
        // get A_cf back, and average it per action.
        let w = wm.config.counterfactual_weight * r.trust;
        let mut mean = [(0.0f64, 0.0f64); 2];
        for k in 0..steps * agents {
            let a_cf = (f64::from(buf.advantages[k]) - (1.0 - w) * f64::from(gae[k])) / w;
            let m = &mut mean[buf.actions[k] as usize];
            *m = (m.0 + a_cf, m.1 + 1.0);
        }
        let (m0, m1) = (mean[0].0 / mean[0].1, mean[1].0 / mean[1].1);
        assert!(
            (m1 - 0.5).abs() < 0.2 && (m0 + 0.5).abs() < 0.2,
            "{m0} {m1}"
        );
        let sign_ok = |adv: &[f32]| {
            (0..steps * agents)
                .filter(|&k| (adv[k] > 0.0) == (buf.actions[k] == 1))
                .count()
        };
        // The blended advantage ranks actions far more reliably than GAE's.
        assert!(
            sign_ok(&buf.advantages) > sign_ok(&gae) + steps * agents / 10,
            "{} vs {}",
            sign_ok(&buf.advantages),
            sign_ok(&gae)
        );
        assert!(r.spread.is_some_and(|s| s < 0.5), "{r:?}");
    }

    #[test]
    fn bad_settings_are_named() {
        let dev = crate::cpu_device();
        let err = WmAssist::new(
            WmConfig {
                response_features: Some(vec![0, 7]),
                ..WmConfig::default()
            },
            4,
            2,
            &dev,
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("feature 7"), "{err}");
        let err = WmConfig {
            counterfactual_weight: 1.5,
            ..WmConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("counterfactual_weight"), "{err}");
    }
}
