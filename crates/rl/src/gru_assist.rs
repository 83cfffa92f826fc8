//! What the GRU world model adds to PPO (the first WM-PPO, kept as the `wm-ppo-gru`
//! ablation): model-based value targets blended into the GAE returns, and imagined
//! samples branched from real states, both weighted by the model's validation error on
//! the next observation and reward.

use crate::assist::{AssistInput, AssistReport};
use crate::gru_world_model::{Prediction, Segment, WmScratch, WorldModelTrainer};
use edgewise_rng::Rng;
use crate::rollout::Rollout;
use edgewise_policy::{MlpScratch, softmax_in_place};

/// The GRU world model and the random stream of its imagination.
#[derive(Debug)]
pub(crate) struct GruAssist {
    pub trainer: WorldModelTrainer,
    pub rng: Rng,
}

impl GruAssist {
    /// Between GAE and the update: measure the model on the new rollout (held out),
    /// train it, then — weighted by how much its error lets us trust it — blend
    /// model-based value targets into the GAE returns of a random subset of real states
    /// and append imagined samples branched from them.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::too_many_lines
    )]
    pub fn assist(&mut self, input: &AssistInput<'_>, buf: &mut Rollout) -> AssistReport {
        let (n, d, na) = (input.agents, input.obs_dim, input.num_actions);
        let total = input.steps * n;
        let seg = Segment {
            steps: input.steps,
            agents: input.agents,
            obs: buf.obs[..total * d].to_vec(),
            last_next_obs: input.last_obs.to_vec(),
            actions: buf.actions[..total].to_vec(),
            rewards: buf.rewards[..total].to_vec(),
            dones: buf.dones[..total].to_vec(),
            truncated: buf.truncated[..total].to_vec(),
        };
        let err = self.trainer.validation_error(&seg);
        self.trainer.push(seg);
        self.trainer.train();
        let cfg = self.trainer.config().clone();
        let trust = cfg.trust(err);
        let mut report = AssistReport {
            error: Some(err),
            ..AssistReport::default()
        };
        if trust <= 0.0 {
            return report;
        }
        report.trust = trust;
        let (gamma, lambda, clip) = (input.gamma, input.lambda, input.obs_clip);
        let hzn = cfg.horizon;

        // Branch starts: a random subset of the real states.
        let n_starts = ((total as f64 * cfg.branch_fraction).round() as usize).clamp(1, total);
        let mut starts: Vec<usize> = (0..total).collect();
        self.rng.shuffle(&mut starts);
        starts.truncate(n_starts);

        let plain = self.trainer.plain();
        let hd = plain.hidden();
        let mut h = vec![0.0; n_starts * hd];
        let mut obs: Vec<f32> = Vec::with_capacity(n_starts * d);
        for &k in &starts {
            obs.extend_from_slice(&buf.obs[k * d..(k + 1) * d]);
        }
        let mut acts: Vec<u32> = starts.iter().map(|&k| buf.actions[k]).collect();
        // Per imagined step k (1..=hzn): state, and (k < hzn) action, logp; values for all.
        let mut states: Vec<Vec<f32>> = vec![Vec::new(); hzn + 1];
        let mut actions: Vec<Vec<u32>> = vec![Vec::new(); hzn + 1];
        let mut logps: Vec<Vec<f32>> = vec![Vec::new(); hzn + 1];
        let mut values: Vec<Vec<f32>> = vec![Vec::new(); hzn + 1];
        let mut rewards: Vec<Vec<f32>> = vec![Vec::new(); hzn];
        let mut conts: Vec<Vec<f32>> = vec![Vec::new(); hzn];
        let mut scratch = WmScratch::default();
        let mut mlp = MlpScratch::default();
        let mut pred = Prediction::default();
        let mut logits = vec![0.0f32; n_starts * na];
        for k in 0..hzn {
            if k > 0 {
                input.actor.forward(&obs, n_starts, &mut mlp, &mut logits);
                let mut lp = Vec::with_capacity(n_starts);
                for (i, p) in logits.chunks_exact_mut(na).enumerate() {
                    softmax_in_place(p);
                    let a = self.rng.categorical(p);
                    acts[i] = u32::try_from(a).unwrap_or(0);
                    lp.push(p[a].max(1e-30).ln());
                }
                actions[k].clone_from(&acts);
                logps[k] = lp;
            }
            plain.step(&obs, &acts, &mut h, &mut scratch, &mut pred);
            if k == 0 {
                // The first step is real: use the real reward and termination.
                rewards[0] = starts.iter().map(|&j| buf.rewards[j]).collect();
                conts[0] = starts
                    .iter()
                    .map(|&j| {
                        if buf.dones[j] && !buf.truncated[j] {
                            0.0
                        } else {
                            1.0
                        }
                    })
                    .collect();
            } else {
                rewards[k].clone_from(&pred.reward);
                conts[k].clone_from(&pred.cont);
            }
            obs.clone_from(&pred.next_obs);
            obs.iter_mut().for_each(|v| *v = v.clamp(-clip, clip));
            states[k + 1].clone_from(&obs);
            let mut v = vec![0.0; n_starts];
            input.critic.forward(&obs, n_starts, &mut mlp, &mut v);
            values[k + 1] = v;
        }

        // (1) Model-based value targets blended into the GAE returns.
        let alpha = (cfg.value_blend_max * trust) as f32;
        for (i, &j) in starts.iter().enumerate() {
            let (mut g, mut disc, mut alive) = (0.0f32, 1.0f32, 1.0f32);
            for k in 0..hzn {
                g += disc * alive * rewards[k][i];
                alive *= conts[k][i];
                disc *= gamma;
            }
            g += disc * alive * values[hzn][i];
            buf.returns[j] = (1.0 - alpha) * buf.returns[j] + alpha * g;
        }

        // (2) Imagined samples (states 1..hzn-1) with GAE inside the imagined branch.
        let cap = (total as f64 * cfg.imagined_fraction).round() as usize;
        if hzn < 2 || cap == 0 || cfg.imagined_weight <= 0.0 {
            return report;
        }
        let mut candidates: Vec<(usize, usize, f32, f32)> = Vec::new(); // (k, i, adv, weight)
        for i in 0..n_starts {
            let mut adv = 0.0f32;
            let mut alive_at = vec![1.0f32; hzn + 1];
            for k in 0..hzn {
                alive_at[k + 1] = alive_at[k] * conts[k][i];
            }
            let mut advs = vec![0.0f32; hzn];
            for k in (1..hzn).rev() {
                let c = conts[k][i];
                let delta = rewards[k][i] + gamma * c * values[k + 1][i] - values[k][i];
                adv = delta + gamma * lambda * c * adv;
                advs[k] = adv;
            }
            for (k, &a) in advs.iter().enumerate().skip(1) {
                candidates.push((k, i, a, alive_at[k]));
            }
        }
        self.rng.shuffle(&mut candidates);
        candidates.truncate(cap);
        let w = (cfg.imagined_weight * trust) as f32;
        for &(k, i, adv, alive) in &candidates {
            buf.obs.extend_from_slice(&states[k][i * d..(i + 1) * d]);
            buf.actions.push(actions[k][i]);
            buf.logp.push(logps[k][i]);
            let v = values[k][i];
            buf.values.push(v);
            buf.advantages.push(adv);
            buf.returns.push(adv + v);
            buf.active.push(true);
            buf.weights.push(w * alive);
        }
        report.imagined = candidates.len();
        report
    }
}
