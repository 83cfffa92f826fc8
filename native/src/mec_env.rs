//! The MEC training environment shared by `edgewise train --env mec` and the cells of
//! `edgewise experiment`, so an experiment trains exactly as the shipped policies were
//! trained (`www/policies/README.md`).

use anyhow::Context;
use edgewise_env::VecEnv;
use edgewise_rl::mixed_env::MixedVecEnv;
use mec::{Catalogue, SimConfig};

/// `envs` parallel environments on the populations `pops`, seeded with `seed`. One
/// population: one batch of `envs` environments. Several: a mix, where environment `i`
/// simulates `pops[i % pops.len()]` devices (its own single-environment batch, seeded
/// with `seed`), padded to the largest population; `envs` must be at least
/// `pops.len()` (the caller says so in its own terms). `config(n)` gives the scenario
/// of `n` devices.
///
/// # Errors
/// When a scenario does not validate or the batches cannot be mixed.
pub fn training_env(
    pops: &[usize],
    envs: usize,
    seed: u64,
    catalogue: &Catalogue,
    config: &dyn Fn(usize) -> anyhow::Result<SimConfig>,
) -> anyhow::Result<Box<dyn VecEnv>> {
    if let [n] = pops {
        let env = mec::MecVecEnv::new(&config(*n)?, catalogue, envs, seed)?;
        return Ok(Box::new(env));
    }
    let parts = (0..envs)
        .map(|i| -> anyhow::Result<Box<dyn VecEnv>> {
            let n = pops[i % pops.len()];
            let env = mec::MecVecEnv::new(&config(n)?, catalogue, 1, seed)
                .with_context(|| format!("MEC environment {i} ({n} devices)"))?;
            Ok(Box::new(env))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Box::new(MixedVecEnv::new(parts)?))
}
