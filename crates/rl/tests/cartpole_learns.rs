//! PPO must keep solving CartPole-v1: with a fixed seed and a fixed budget of
//! environment steps, the mean return of the last 20 episodes reaches 475.

use edgewise_env::EpisodeInfo;
use edgewise_rl::cartpole::{CartPoleVecEnv, mean_recent_return};
use edgewise_rl::ppo::{CARTPOLE_ENVS, cartpole_config};
use edgewise_rl::{Ppo, cpu_device};

const BUDGET: u64 = 200_000;

#[test]
fn ppo_solves_cartpole_within_budget() {
    let config = cartpole_config();
    let mut env = CartPoleVecEnv::new(CARTPOLE_ENVS);
    let mut ppo = Ppo::new(config, &env, &cpu_device(), 1).unwrap();
    let mut episodes: Vec<EpisodeInfo> = Vec::new();
    let mut best = 0.0f64;
    while ppo.env_steps() < BUDGET {
        ppo.iterate(&mut env).unwrap();
        ppo.drain_finished(&mut episodes);
        if episodes.len() >= 20 {
            let mean = mean_recent_return(&episodes, 20);
            best = best.max(mean);
            if mean >= 475.0 {
                return;
            }
        }
    }
    panic!("PPO did not solve CartPole in {BUDGET} steps (best mean of 20 episodes: {best:.1})");
}
