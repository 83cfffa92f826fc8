//! The wasm side of the cross-platform determinism test.
//!
//! Built for `wasm32-unknown-unknown` as a plain cdylib (no wasm-bindgen, no imports),
//! it exports one function, [`ew_digest`], that runs an MEC episode and returns
//! `mec::trajectory_digest`. `tests/browser/determinism.test.mjs` loads it in node and
//! compares the digests with `edgewise simulate --json` run natively: the same seed
//! must give the same trajectory on every platform.

use mec::{Catalogue, PolicyKind, SimConfig, Simulator};

/// Why a probe run could not produce a digest.
#[derive(Debug)]
pub enum ProbeError {
    /// The policy index is not in `0..PolicyKind::ALL.len()`.
    UnknownPolicy(u32),
    /// The simulator rejected the configuration.
    Sim(mec::MecError),
}

/// Runs one episode and returns its trajectory digest.
///
/// `policy` indexes [`PolicyKind::ALL`]; the baseline is built with
/// [`mec::scenario_baseline`], as `edgewise simulate` does.
///
/// # Errors
/// On an unknown policy index or a configuration the simulator rejects.
pub fn digest(seed: u64, devices: u32, slots: u32, policy: u32) -> Result<u64, ProbeError> {
    let kind = usize::try_from(policy)
        .ok()
        .and_then(|i| PolicyKind::ALL.get(i).copied())
        .ok_or(ProbeError::UnknownPolicy(policy))?;
    let config = SimConfig {
        devices: devices as usize,
        slots: slots as usize,
        ..SimConfig::default()
    };
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
pub extern "C" fn ew_digest(seed: u64, devices: u32, slots: u32, policy: u32) -> u64 {
    digest(seed, devices, slots, policy).unwrap_or(0)
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
        let a = digest(7, 10, 50, 3).unwrap();
        assert_eq!(a, digest(7, 10, 50, 3).unwrap());
        assert_ne!(a, digest(8, 10, 50, 3).unwrap());
        assert_eq!(ew_digest(7, 10, 50, 3), a);
    }

    #[test]
    fn rejects_unknown_policy() {
        assert!(matches!(
            digest(1, 10, 10, 99),
            Err(ProbeError::UnknownPolicy(99))
        ));
        assert_eq!(ew_digest(1, 10, 10, 99), 0);
        assert_eq!(ew_policy_count() as usize, PolicyKind::ALL.len());
    }
}
