//! Train PPO on the built-in CartPole-v1 until it is solved and report wall-clock time,
//! environment steps and throughput.
//!
//! ```text
//! cargo run --release -p edgewise-rl --example solve_cartpole -- [SEED] [MAX_STEPS]
//! ```
//! "Solved" means: the mean return of the last 20 finished episodes is at least 475.
//! `ALGO=wm-ppo` trains WM-PPO (default world-model settings) instead of PPO;
//! `CONTINUE=1` keeps training to MAX_STEPS after solving (to see whether it stays solved).

use std::time::Instant;

use edgewise_env::EpisodeInfo;
use edgewise_rl::cartpole::{CartPoleVecEnv, mean_recent_return};
use edgewise_rl::{Ppo, PpoConfig, cpu_device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args.next().map_or(Ok(1), |s| s.parse())?;
    let max_steps: u64 = args.next().map_or(Ok(200_000), |s| s.parse())?;
    let mut config = edgewise_rl::ppo::cartpole_config();
    if let Ok(e) = std::env::var("EPOCHS") {
        config.epochs = e.parse()?;
    }
    let mut env = CartPoleVecEnv::new(edgewise_rl::ppo::CARTPOLE_ENVS);
    let start = Instant::now();
    let config = PpoConfig {
        total_env_steps: max_steps,
        ..config
    };
    let mut ppo = match std::env::var("ALGO").as_deref() {
        Ok("wm-ppo") => Ppo::with_world_model(
            config,
            edgewise_rl::WmConfig::default(),
            &env,
            &cpu_device(),
            seed,
        )?,
        Ok("ppo") | Err(_) => Ppo::new(config, &env, &cpu_device(), seed)?,
        Ok(other) => return Err(format!("ALGO={other}: expected ppo or wm-ppo").into()),
    };
    let setup = start.elapsed();
    let mut episodes: Vec<EpisodeInfo> = Vec::new();
    let mut solved_at = None;
    while ppo.env_steps() < max_steps {
        let s = ppo.iterate(&mut env)?;
        ppo.drain_finished(&mut episodes);
        let mean = mean_recent_return(&episodes, 20);
        if s.iteration % 10 == 0 {
            println!(
                "iter {:4} steps {:7} mean20 {:6.1} kl {:.4} clip {:.3} ent {:.3} vloss {:.3} lr {:.2e} t {:.2}s",
                s.iteration,
                s.env_steps,
                mean,
                s.approx_kl,
                s.clip_fraction,
                s.entropy,
                s.value_loss,
                s.learning_rate,
                start.elapsed().as_secs_f64()
            );
        }
        if solved_at.is_none() && episodes.len() >= 20 && mean >= 475.0 {
            solved_at = Some((s.env_steps, start.elapsed()));
            println!(
                "solved at {} env steps after {:.2?}",
                s.env_steps,
                start.elapsed()
            );
            if std::env::var_os("CONTINUE").is_none() {
                break;
            }
        }
    }
    let total = start.elapsed();
    let steps = ppo.env_steps();
    println!(
        "seed {seed}: {} ; {steps} env steps in {:.2?} (setup {:.2?}) = {:.0} env steps/s end to end",
        solved_at.map_or("NOT solved".to_string(), |(s, t)| format!(
            "solved at {s} steps, {t:.2?}"
        )),
        total,
        setup,
        steps as f64 / total.as_secs_f64()
    );
    Ok(())
}
