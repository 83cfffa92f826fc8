//! A trained `edgewise-policy` file as a [`mec::Policy`]: the adapter that lets the
//! simulator's tools (`simulate`, `experiment`) run learned policies beside the baselines.
//!
//! It lives in the app so that neither `mec` nor `edgewise-policy` knows the other.

use std::path::Path;

use anyhow::{Context, bail};
use edgewise_policy::{PolicyFile, PolicyScratch};
use edgewise_rng::Rng;
use mec::{Action, InOrder, Policy, Simulator};

/// Value of `meta.env` for policies trained on the MEC simulator.
pub const MEC_ENV: &str = "mec";

/// A learned policy run on the simulator's observations: greedily (argmax) by default,
/// or sampling its action distribution from a seeded generator ([`LearnedPolicy::sampling`]).
#[derive(Debug)]
pub struct LearnedPolicy {
    name: String,
    file: PolicyFile,
    obs: Vec<f32>,
    actions: Vec<u32>,
    probs: Vec<f32>,
    scratch: PolicyScratch,
    sampler: Option<Rng>,
    /// Set for a policy trained with sequential decisions (`PolicyFile::decides_in_order`).
    in_order: Option<InOrder>,
}

impl LearnedPolicy {
    /// Wrap a policy file (already checked by [`check_mec_policy`]) under `name`.
    #[must_use]
    pub fn new(name: String, file: PolicyFile) -> Self {
        Self {
            name,
            obs: Vec::new(),
            actions: Vec::new(),
            probs: Vec::new(),
            scratch: PolicyScratch::default(),
            sampler: None,
            in_order: file.decides_in_order().then(InOrder::default),
            file,
        }
    }

    /// Sample actions from the policy's distribution (as in training) instead of taking
    /// the most probable one; draws come from `seed` only. A shared policy that learned
    /// to mix (offload with some probability) needs this: argmax turns every device that
    /// sees the same state into the same choice.
    #[must_use]
    pub fn sampling(mut self, seed: u64) -> Self {
        self.sampler = Some(Rng::stream(seed, 0x5a_3b1e));
        self.name.push_str(" (sampled)");
        self
    }

    /// Read `path` as an `edgewise-policy` file trained on the MEC simulator; the name in
    /// tables is the file stem.
    ///
    /// # Errors
    /// The file cannot be read, is not a valid policy file (format, version, sizes), or
    /// was not trained on the MEC simulator (`meta.env`, `obs_dim`, actions).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading policy file {}", path.display()))?;
        let file = PolicyFile::load(&bytes)
            .with_context(|| format!("in policy file {}", path.display()))?;
        check_mec_policy(&file).with_context(|| format!("policy file {}", path.display()))?;
        // The file stem names it in tables; `edgewise train` writes `DIR/policy.json`,
        // so a bare "policy" is named after its directory instead.
        let stem = path
            .file_stem()
            .map_or_else(|| "learned".into(), |s| s.to_string_lossy().into_owned());
        let name = match path.parent().and_then(Path::file_name) {
            Some(dir) if stem == "policy" => dir.to_string_lossy().into_owned(),
            _ => stem,
        };
        Ok(Self::new(name, file))
    }
}

/// Check that a policy file fits the MEC simulator: `meta.env` is `"mec"`, it reads
/// [`mec::OBS_DIM`] features and chooses between 2 actions.
///
/// # Errors
/// What was found and what was expected.
pub fn check_mec_policy(file: &PolicyFile) -> anyhow::Result<()> {
    match file.meta_str("env") {
        Some(MEC_ENV) => {}
        Some(other) => bail!(
            "was trained on the {other:?} environment; expected a MEC policy \
             (meta.env \"{MEC_ENV}\", obs_dim {})",
            mec::OBS_DIM
        ),
        None => bail!(
            "does not say which environment it was trained on; expected meta.env \"{MEC_ENV}\" \
             (files written by `edgewise train --env mec` have it)"
        ),
    }
    if file.obs_dim != mec::OBS_DIM {
        bail!(
            "reads {} observation features; expected obs_dim {} (the MEC simulator's)",
            file.obs_dim,
            mec::OBS_DIM
        );
    }
    if file.num_actions != 2 {
        bail!(
            "chooses among {} actions; expected 2 (local, offload)",
            file.num_actions
        );
    }
    Ok(())
}

impl Policy for LearnedPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, sim: &Simulator, actions: &mut [Action]) {
        let Self {
            file,
            obs,
            actions: chosen,
            probs,
            scratch,
            sampler,
            in_order,
            ..
        } = self;
        // One row (sequential decisions) or every device at once.
        let mut choose = |rows: &[f32], out: &mut [u32]| match sampler {
            None => file.greedy_batch(rows, out, scratch),
            Some(rng) => {
                let na = file.num_actions;
                probs.resize(out.len() * na, 0.0);
                file.act_batch(rows, probs, scratch);
                for (a, p) in out.iter_mut().zip(probs.chunks_exact(na)) {
                    *a = u32::try_from(rng.categorical(p)).unwrap_or(0);
                }
            }
        };
        if let Some(in_order) = in_order {
            let mut one = [0u32];
            in_order.decide(sim, actions, |_, row| {
                choose(row, &mut one);
                Action::from_index(one[0])
            });
            return;
        }
        let n = sim.num_devices();
        obs.resize(n * mec::OBS_DIM, 0.0);
        chosen.resize(n, 0);
        sim.observe(obs);
        choose(obs, chosen);
        for (dst, &a) in actions.iter_mut().zip(chosen.iter()) {
            *dst = Action::from_index(a);
        }
    }
}
