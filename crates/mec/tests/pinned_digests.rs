//! Trajectory digests of the default scenario pinned from before issue 16's simulator
//! changes (new observation, scenario processes, sequential decisions, named step
//! phases): with every new process off, the simulator must reproduce them bit for bit.
//! A deliberate change of the model updates them, and says so in its commit.

use mec::{Catalogue, PolicyKind, SimConfig, Simulator};

#[test]
fn default_scenario_trajectories_are_unchanged() {
    let cases: [(u64, usize, usize, PolicyKind, u64); 9] = [
        (7, 20, 200, PolicyKind::Greedy, 0xa376_7448_e539_b6ff),
        (1, 10, 100, PolicyKind::AlwaysLocal, 0x2c94_4263_e389_04dc),
        (42, 50, 60, PolicyKind::AlwaysOffload, 0x3a44_f584_5b48_9211),
        (12345, 20, 200, PolicyKind::Random, 0x2bd0_fd92_06df_f967),
        (2024, 10, 200, PolicyKind::Oracle, 0x1795_1d2e_dd0c_9cab),
        (
            9_876_543_210_123,
            100,
            30,
            PolicyKind::Greedy,
            0x8d78_a649_f053_c0e1,
        ),
        (10_000, 20, 200, PolicyKind::Oracle, 0x430d_3ac6_2a5c_80b4),
        (10_001, 100, 200, PolicyKind::Oracle, 0x1630_7f59_fdf5_2d52),
        (3, 50, 200, PolicyKind::Greedy, 0x27cf_17e4_cb7e_aaee),
    ];
    for (seed, devices, slots, kind, expected) in cases {
        let cfg = SimConfig {
            devices,
            slots,
            ..SimConfig::default()
        };
        let mut sim = Simulator::new(cfg, Catalogue::default_catalogue(), seed).unwrap();
        let mut policy = mec::scenario_baseline(kind, seed);
        let got = mec::trajectory_digest(&mut sim, policy.as_mut());
        assert_eq!(
            got, expected,
            "{kind} on seed {seed}, {devices} devices, {slots} slots: {got:016x} != {expected:016x}"
        );
    }
}
