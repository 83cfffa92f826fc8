//! A trained `edgewise-policy` file as a [`mec::Policy`]: the adapter that lets the
//! simulator's tools (`simulate`, `experiment`) run learned policies beside the baselines.
//!
//! It lives in the app so that neither `mec` nor `edgewise-policy` knows the other.

use std::path::Path;

use anyhow::{Context, bail};
use edgewise_policy::{PolicyFile, PolicyScratch};
use mec::{Action, Policy, Simulator};

/// Value of `meta.env` for policies trained on the MEC simulator.
pub const MEC_ENV: &str = "mec";

/// A learned policy run greedily (argmax) on the simulator's observations.
#[derive(Debug)]
pub struct LearnedPolicy {
    name: String,
    file: PolicyFile,
    obs: Vec<f32>,
    actions: Vec<u32>,
    scratch: PolicyScratch,
}

impl LearnedPolicy {
    /// Wrap a policy file (already checked by [`check_mec_policy`]) under `name`.
    #[must_use]
    pub fn new(name: String, file: PolicyFile) -> Self {
        Self {
            name,
            file,
            obs: Vec::new(),
            actions: Vec::new(),
            scratch: PolicyScratch::default(),
        }
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
        let n = sim.num_devices();
        self.obs.resize(n * mec::OBS_DIM, 0.0);
        self.actions.resize(n, 0);
        sim.observe(&mut self.obs);
        self.file
            .greedy_batch(&self.obs, &mut self.actions, &mut self.scratch);
        for (dst, &a) in actions.iter_mut().zip(&self.actions) {
            *dst = Action::from_index(a);
        }
    }
}
