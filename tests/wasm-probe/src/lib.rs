//! The wasm side of the cross-platform determinism test.
//!
//! Built for `wasm32-unknown-unknown` as a plain cdylib (no wasm-bindgen, no imports),
//! it exports one function, [`ew_digest`], that runs an MEC episode of a named scenario
//! (`mec::presets()`: bursts, background edge load, query difficulty, long energy windows)
//! and returns `mec::trajectory_digest`. `tests/browser/determinism.test.mjs` loads it in node and
//! compares the digests with `edgewise simulate --json` run natively: the same seed
//! must give the same trajectory on every platform.

use mec::{Catalogue, PolicyKind, Simulator};

/// Why a probe run could not produce a digest.
#[derive(Debug)]
pub enum ProbeError {
    /// The policy index is not in `0..PolicyKind::ALL.len()`.
    UnknownPolicy(u32),
    /// The scenario index is not in `0..mec::presets().len()`.
    UnknownPreset(u32),
    /// The simulator rejected the configuration.
    Sim(mec::MecError),
}

/// Runs one episode and returns its trajectory digest.
///
/// `preset` indexes `mec::presets()` (0 = the default scenario), with its population and
/// horizon set to `devices` and `slots`, as `edgewise simulate --preset` does; `policy`
/// indexes [`PolicyKind::ALL`], and the baseline is built with [`mec::scenario_baseline`].
///
/// # Errors
/// On an unknown preset or policy index or a configuration the simulator rejects.
pub fn digest(
    preset: u32,
    seed: u64,
    devices: u32,
    slots: u32,
    policy: u32,
) -> Result<u64, ProbeError> {
    let kind = usize::try_from(policy)
        .ok()
        .and_then(|i| PolicyKind::ALL.get(i).copied())
        .ok_or(ProbeError::UnknownPolicy(policy))?;
    let mut config = usize::try_from(preset)
        .ok()
        .and_then(|i| mec::presets().into_iter().nth(i))
        .ok_or(ProbeError::UnknownPreset(preset))?
        .config;
    config.devices = devices as usize;
    config.slots = slots as usize;
    let mut sim =
        Simulator::new(config, Catalogue::default_catalogue(), seed).map_err(ProbeError::Sim)?;
    let mut policy = mec::scenario_baseline(kind, seed);
    Ok(mec::trajectory_digest(&mut sim, policy.as_mut()))
}

/// The exported entry point: the digest, or 0 when [`digest`] fails (bad policy index
/// or configuration). In JS the `u64`s are `BigInt`s (signed: use `BigInt.asUintN`).
// `no_mangle` counts as unsafe code (exported symbol names can clash); this is the
// only such item and its name is prefixed to stay unique.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn ew_digest(preset: u32, seed: u64, devices: u32, slots: u32, policy: u32) -> u64 {
    digest(preset, seed, devices, slots, policy).unwrap_or(0)
}

/// Number of scenarios `ew_digest` accepts (`mec::presets().len()`).
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn ew_preset_count() -> u32 {
    u32::try_from(mec::presets().len()).unwrap_or(u32::MAX)
}

/// Number of policies `ew_digest` accepts (`PolicyKind::ALL.len()`).
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn ew_policy_count() -> u32 {
    u32::try_from(PolicyKind::ALL.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_repeatable_and_seed_dependent() {
        let a = digest(0, 7, 10, 50, 3).unwrap();
        assert_eq!(a, digest(0, 7, 10, 50, 3).unwrap());
        assert_ne!(a, digest(0, 8, 10, 50, 3).unwrap());
        assert_ne!(
            a,
            digest(1, 7, 10, 50, 3).unwrap(),
            "the bursty scenario is the default"
        );
        assert_eq!(ew_digest(0, 7, 10, 50, 3), a);
    }

    #[test]
    fn rejects_unknown_policy_and_preset() {
        assert!(matches!(
            digest(0, 1, 10, 10, 99),
            Err(ProbeError::UnknownPolicy(99))
        ));
        assert!(matches!(
            digest(99, 1, 10, 10, 0),
            Err(ProbeError::UnknownPreset(99))
        ));
        assert_eq!(ew_digest(0, 1, 10, 10, 99), 0);
        assert_eq!(ew_policy_count() as usize, PolicyKind::ALL.len());
        assert_eq!(ew_preset_count() as usize, mec::presets().len());
    }
}
