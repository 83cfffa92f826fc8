//! CartPole-v1, vectorised: the classic Gym dynamics behind [`edgewise_env::VecEnv`].
//!
//! Matches Gym's `CartPole-v1`: explicit Euler integration with `tau = 0.02`, force ±10 N,
//! termination when `|x| > 2.4` or `|theta| > 12°`, reward 1 on every step (the
//! terminating step included), episodes truncated at 500 steps, initial state uniform in
//! `[-0.05, 0.05]^4`. Physics runs in `f64` through `libm`, so trajectories are the same
//! on every platform; observations are `[x, x_dot, theta, theta_dot]` as `f32`.

use edgewise_env::{EpisodeInfo, VecEnv};

use edgewise_rng::Rng;

const GRAVITY: f64 = 9.8;
const MASS_CART: f64 = 1.0;
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_CART + MASS_POLE;
const HALF_LENGTH: f64 = 0.5;
const POLE_MASS_LENGTH: f64 = MASS_POLE * HALF_LENGTH;
const FORCE_MAG: f64 = 10.0;
const TAU: f64 = 0.02;
const THETA_THRESHOLD: f64 = 12.0 * 2.0 * core::f64::consts::PI / 360.0;
const X_THRESHOLD: f64 = 2.4;
/// Episode length cap of `CartPole-v1`.
pub const MAX_STEPS: usize = 500;

#[derive(Debug, Clone)]
struct Cart {
    state: [f64; 4],
    steps: usize,
    episode_return: f64,
    rng: Rng,
    /// Whether the last step cut the episode at [`MAX_STEPS`] (a truncation).
    truncated: bool,
    /// The state the last truncated episode ended in (before the auto-reset).
    final_state: [f64; 4],
}

impl Cart {
    fn reset(&mut self) {
        for s in &mut self.state {
            *s = self.rng.range(-0.05, 0.05);
        }
        self.steps = 0;
        self.episode_return = 0.0;
    }

    /// One Euler step; returns whether the pole fell or the cart left the track.
    fn step(&mut self, action: u32) -> bool {
        let [x, x_dot, theta, theta_dot] = self.state;
        let force = if action == 1 { FORCE_MAG } else { -FORCE_MAG };
        let (sin, cos) = (libm::sin(theta), libm::cos(theta));
        let temp = (force + POLE_MASS_LENGTH * theta_dot * theta_dot * sin) / TOTAL_MASS;
        let theta_acc = (GRAVITY * sin - cos * temp)
            / (HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * cos * cos / TOTAL_MASS));
        let x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS;
        self.state = [
            x + TAU * x_dot,
            x_dot + TAU * x_acc,
            theta + TAU * theta_dot,
            theta_dot + TAU * theta_acc,
        ];
        let [x, _, theta, _] = self.state;
        !(-X_THRESHOLD..=X_THRESHOLD).contains(&x)
            || !(-THETA_THRESHOLD..=THETA_THRESHOLD).contains(&theta)
    }

    fn write_obs(&self, out: &mut [f32]) {
        write_state(&self.state, out);
    }
}

#[allow(clippy::cast_possible_truncation)]
fn write_state(state: &[f64; 4], out: &mut [f32]) {
    for (o, &s) in out.iter_mut().zip(state) {
        *o = s as f32;
    }
}

/// Mean undiscounted return of the last `n` episodes (fewer if fewer finished; 0 with
/// none): the "solved" statistic, CartPole-v1 being solved at ≥ 475 over 20 episodes.
#[must_use]
pub fn mean_recent_return(episodes: &[EpisodeInfo], n: usize) -> f64 {
    let recent = &episodes[episodes.len().saturating_sub(n)..];
    if recent.is_empty() {
        return 0.0;
    }
    recent.iter().map(|e| e.episode_return).sum::<f64>() / recent.len() as f64
}

/// `num_envs` independent CartPole-v1 environments (one agent each).
#[derive(Debug, Clone)]
pub struct CartPoleVecEnv {
    carts: Vec<Cart>,
    finished: Vec<EpisodeInfo>,
}

impl CartPoleVecEnv {
    /// A batch of `num_envs` environments; call [`VecEnv::reset`] before stepping.
    #[must_use]
    pub fn new(num_envs: usize) -> Self {
        let carts = (0..num_envs)
            .map(|i| Cart {
                state: [0.0; 4],
                steps: 0,
                episode_return: 0.0,
                rng: Rng::stream(0, i as u64),
                truncated: false,
                final_state: [0.0; 4],
            })
            .collect();
        Self {
            carts,
            finished: Vec::new(),
        }
    }
}

impl VecEnv for CartPoleVecEnv {
    fn num_envs(&self) -> usize {
        self.carts.len()
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

    fn reset(&mut self, seed: u64, obs: &mut [f32]) {
        self.finished.clear();
        for (i, (cart, o)) in self
            .carts
            .iter_mut()
            .zip(obs.chunks_exact_mut(4))
            .enumerate()
        {
            cart.rng = Rng::stream(seed, i as u64);
            cart.truncated = false;
            cart.reset();
            cart.write_obs(o);
        }
    }

    fn step(&mut self, actions: &[u32], obs: &mut [f32], rewards: &mut [f32], dones: &mut [bool]) {
        for (i, cart) in self.carts.iter_mut().enumerate() {
            let terminated = cart.step(actions[i]);
            cart.steps += 1;
            cart.episode_return += 1.0;
            rewards[i] = 1.0;
            let done = terminated || cart.steps >= MAX_STEPS;
            dones[i] = done;
            // Gym's convention: a step that both terminates and hits the limit terminates.
            cart.truncated = done && !terminated;
            if cart.truncated {
                cart.final_state = cart.state;
            }
            if done {
                self.finished.push(EpisodeInfo {
                    env: i,
                    episode_return: cart.episode_return,
                    length: cart.steps,
                    extras: vec![("truncated", if terminated { 0.0 } else { 1.0 })],
                });
                cart.reset();
            }
            cart.write_obs(&mut obs[i * 4..(i + 1) * 4]);
        }
    }

    fn truncations(&self, truncated: &mut [bool], final_obs: &mut [f32]) {
        for (i, (cart, t)) in self.carts.iter().zip(truncated.iter_mut()).enumerate() {
            *t = cart.truncated;
            if cart.truncated {
                write_state(&cart.final_state, &mut final_obs[i * 4..(i + 1) * 4]);
            }
        }
    }

    fn drain_finished(&mut self, out: &mut Vec<EpisodeInfo>) {
        out.append(&mut self.finished);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_push_falls_quickly_and_is_deterministic() {
        let run = |seed| {
            let mut env = CartPoleVecEnv::new(2);
            let mut obs = vec![0.0; 8];
            env.reset(seed, &mut obs);
            let (mut r, mut d) = (vec![0.0; 2], vec![false; 2]);
            let mut infos = Vec::new();
            for _ in 0..100 {
                env.step(&[1, 1], &mut obs, &mut r, &mut d);
            }
            env.drain_finished(&mut infos);
            (obs, infos)
        };
        let (obs_a, infos) = run(3);
        assert_eq!(run(3).0, obs_a);
        assert_ne!(run(4).0, obs_a);
        // Always pushing right topples the pole in a few dozen steps (Gym: ~9-10 steps).
        assert!(infos.len() >= 4, "{infos:?}");
        assert!(
            infos
                .iter()
                .all(|e| e.length < 20 && (e.episode_return - e.length as f64).abs() < 1e-9)
        );
    }

    #[test]
    fn time_limit_is_a_truncation_with_the_final_observation() {
        // A cart kept upright by a bang-bang controller on the pole angle reaches the
        // 500-step limit; that end is a truncation, earlier falls are terminations.
        let mut env = CartPoleVecEnv::new(1);
        let mut obs = vec![0.0; 4];
        env.reset(7, &mut obs);
        let (mut r, mut d) = (vec![0.0], vec![false]);
        let (mut trunc, mut fin) = (vec![true], vec![f32::NAN; 4]);
        for step in 1..=MAX_STEPS {
            let a = u32::from(0.1 * obs[0] + 0.2 * obs[1] + 2.0 * obs[2] + 0.5 * obs[3] > 0.0);
            env.step(&[a], &mut obs, &mut r, &mut d);
            env.truncations(&mut trunc, &mut fin);
            if step < MAX_STEPS {
                assert!(!d[0], "fell at step {step}");
                assert!(!trunc[0]);
                assert!(fin[0].is_nan(), "final obs written without a truncation");
            }
        }
        assert!(d[0] && trunc[0]);
        // The final observation is the state after the last step, not the reset state.
        assert!(fin.iter().all(|v| v.is_finite()));
        assert_ne!(fin, obs);
        assert!(obs.iter().all(|v| v.abs() <= 0.05));
        let mut infos = Vec::new();
        env.drain_finished(&mut infos);
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].length, MAX_STEPS);
    }

    #[test]
    fn falling_is_a_termination() {
        let mut env = CartPoleVecEnv::new(1);
        let mut obs = vec![0.0; 4];
        env.reset(3, &mut obs);
        let (mut r, mut d) = (vec![0.0], vec![false]);
        let (mut trunc, mut fin) = (vec![true], vec![0.0; 4]);
        while !d[0] {
            env.step(&[1], &mut obs, &mut r, &mut d);
            env.truncations(&mut trunc, &mut fin);
        }
        assert!(!trunc[0]);
    }

    #[test]
    fn matches_gym_first_step() {
        // Gym CartPole-v1 from state [0, 0, 0.05, 0] with action 1 (computed with the
        // reference equations): x_dot = 0.195_121_95, theta_dot = -0.284_543_4...
        let mut c = Cart {
            state: [0.0, 0.0, 0.05, 0.0],
            steps: 0,
            episode_return: 0.0,
            rng: Rng::new(0),
            truncated: false,
            final_state: [0.0; 4],
        };
        assert!(!c.step(1));
        assert!(c.state[0].abs() < 1e-12 && (c.state[2] - 0.05).abs() < 1e-12);
        let sin = 0.05f64.sin();
        let cos = 0.05f64.cos();
        let temp = 10.0 / 1.1;
        let th_acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos * cos / 1.1));
        let x_acc = temp - 0.05 * th_acc * cos / 1.1;
        assert!((c.state[1] - 0.02 * x_acc).abs() < 1e-12);
        assert!((c.state[3] - 0.02 * th_acc).abs() < 1e-12);
    }
}
