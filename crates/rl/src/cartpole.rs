//! CartPole-v1, vectorised: the classic Gym dynamics behind [`edgewise_env::VecEnv`].
//!
//! Matches Gym's `CartPole-v1`: explicit Euler integration with `tau = 0.02`, force ±10 N,
//! termination when `|x| > 2.4` or `|theta| > 12°`, reward 1 on every step (the
//! terminating step included), episodes truncated at 500 steps, initial state uniform in
//! `[-0.05, 0.05]^4`. Physics runs in `f64` through `libm`, so trajectories are the same
//! on every platform; observations are `[x, x_dot, theta, theta_dot]` as `f32`.

use edgewise_env::{EpisodeInfo, VecEnv};

use crate::rng::Rng;

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

    #[allow(clippy::cast_possible_truncation)]
    fn write_obs(&self, out: &mut [f32]) {
        for (o, &s) in out.iter_mut().zip(&self.state) {
            *o = s as f32;
        }
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
    fn matches_gym_first_step() {
        // Gym CartPole-v1 from state [0, 0, 0.05, 0] with action 1 (computed with the
        // reference equations): x_dot = 0.195_121_95, theta_dot = -0.284_543_4...
        let mut c = Cart {
            state: [0.0, 0.0, 0.05, 0.0],
            steps: 0,
            episode_return: 0.0,
            rng: Rng::new(0),
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
