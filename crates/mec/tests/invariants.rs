//! Property tests of the simulator's invariants.

use mec::{Action, Catalogue, PolicyKind, SimConfig, Simulator};
use proptest::prelude::*;

fn scenario(devices: usize, rate: f64, bandwidth_mhz: f64, workers: usize) -> SimConfig {
    let mut c = SimConfig {
        devices,
        slots: 60,
        arrival_rate: rate,
        ..SimConfig::default()
    };
    c.radio.bandwidth_hz = bandwidth_mhz * 1e6;
    c.edge.workers = workers;
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn invariants_hold(
        devices in 1usize..60,
        rate in 0.0f64..1.5,
        bandwidth in 0.2f64..40.0,
        workers in 1usize..10,
        seed in any::<u64>(),
        policy in 0usize..5,
        action_bits in any::<u64>(),
    ) {
        let cfg = scenario(devices, rate, bandwidth, workers);
        let mut sim = Simulator::new(cfg.clone(), Catalogue::default_catalogue(), seed).unwrap();
        let mut pol = mec::baseline(PolicyKind::ALL[policy], seed ^ 1);
        let mut actions = vec![Action::Offload; devices];
        let mut arrived = 0usize;
        let mut scheduled = 0usize;
        let mut slot = 0u32;
        while !sim.done() {
            arrived += sim.pending_queries().len();
            // Mix the policy with arbitrary overrides so odd schedules are covered too.
            pol.decide(&sim, &mut actions);
            for (i, a) in actions.iter_mut().enumerate() {
                if (action_bits.rotate_left(slot + i as u32) & 3) == 0 {
                    *a = Action::from_index(((action_bits >> (i % 64)) & 1) as u32);
                }
            }
            slot += 1;
            let out = sim.step(&actions);
            scheduled += out.queries;
            for d in sim.devices() {
                prop_assert!(d.energy_used_j >= 0.0, "energy negative");
                prop_assert!(d.energy_left_j() >= 0.0);
                prop_assert!(d.local_backlog_s >= 0.0);
                prop_assert!(d.distance_m() <= cfg.cell_radius_m + 1e-6);
            }
            for e in sim.last_events() {
                prop_assert!(e.latency_s.is_finite() && e.latency_s >= 0.0);
                prop_assert!(e.latency_s <= cfg.max_latency_s + 1e-9);
                prop_assert!(e.energy_j >= 0.0);
                if !e.dropped {
                    // Latency covers at least the transfer (and for local, compute).
                    prop_assert!(e.latency_s + 1e-12 >= e.uplink_s);
                    match e.action {
                        Action::Offload => {
                            let min = e.uplink_s + sim.edge_service_s(e.input_tokens, e.output_tokens);
                            prop_assert!(e.latency_s + 1e-9 >= min, "offload faster than service");
                        }
                        Action::Local => {
                            let min = sim.local_service_s(e.device as usize, e.input_tokens, e.output_tokens);
                            prop_assert!(e.latency_s + 1e-9 >= min, "local faster than service");
                        }
                    }
                }
            }
            prop_assert!(out.reward.is_finite());
        }
        let m = sim.metrics();
        // Every query is either completed or counted as dropped.
        prop_assert_eq!(arrived, scheduled);
        prop_assert_eq!(m.queries, scheduled);
        prop_assert!(m.dropped <= m.queries);
        prop_assert!((0.0..=1.0).contains(&m.energy_violation_rate));
        prop_assert!((0.0..=1.0).contains(&m.accuracy));
        prop_assert!(m.p95_latency_s + 1e-6 >= 0.0);
    }

    #[test]
    fn same_seed_same_trajectory(seed in any::<u64>(), devices in 1usize..40) {
        let cfg = scenario(devices, 0.3, 10.0, 4);
        let run = || {
            let mut sim = Simulator::new(cfg.clone(), Catalogue::default_catalogue(), seed).unwrap();
            let mut p = mec::baseline(PolicyKind::Random, seed);
            mec::trajectory_digest(&mut sim, p.as_mut())
        };
        prop_assert_eq!(run(), run());
    }
}

#[test]
fn arrivals_are_the_same_whatever_the_policy() {
    // Common random numbers: every policy faces the same queries on the same seed.
    let cfg = scenario(30, 0.4, 10.0, 4);
    let counts: Vec<(usize, u64)> = PolicyKind::ALL
        .iter()
        .map(|&k| {
            let mut sim = Simulator::new(cfg.clone(), Catalogue::default_catalogue(), 5).unwrap();
            let mut p = mec::baseline(k, 3);
            let mut tokens = 0u64;
            let mut actions = vec![Action::Offload; 30];
            while !sim.done() {
                tokens += sim
                    .pending_queries()
                    .iter()
                    .map(|q| u64::from(q.input_tokens))
                    .sum::<u64>();
                p.decide(&sim, &mut actions);
                sim.step(&actions);
            }
            (sim.metrics().queries, tokens)
        })
        .collect();
    assert!(counts.windows(2).all(|w| w[0] == w[1]), "{counts:?}");
}

#[test]
fn reset_restarts_the_same_episode() {
    let cfg = scenario(10, 0.3, 10.0, 4);
    let mut sim = Simulator::new(cfg, Catalogue::default_catalogue(), 11).unwrap();
    let mut p = mec::baseline(PolicyKind::Greedy, 0);
    let a = mec::trajectory_digest(&mut sim, p.as_mut());
    sim.reset(11);
    let b = mec::trajectory_digest(&mut sim, p.as_mut());
    assert_eq!(a, b);
}

#[test]
fn wrong_action_count_is_an_error() {
    let mut sim =
        Simulator::new(scenario(4, 0.3, 10.0, 2), Catalogue::default_catalogue(), 1).unwrap();
    let e = sim.try_step(&[Action::Local]).unwrap_err().to_string();
    assert!(e.contains("expected 4 actions"), "{e}");
}

#[test]
fn unknown_variant_is_named() {
    let mut cfg = SimConfig::default();
    cfg.classes[0].variant = "mystery".into();
    let e = Simulator::new(cfg, Catalogue::default_catalogue(), 1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("classes[0].variant") && e.contains("mystery"),
        "{e}"
    );
}

#[test]
fn vec_env_reports_episodes_and_masks() {
    use edgewise_env::VecEnv;
    let cfg = SimConfig {
        devices: 8,
        slots: 30,
        ..SimConfig::default()
    };
    let mut env = mec::MecVecEnv::new(&cfg, &Catalogue::default_catalogue(), 3, 9).unwrap();
    let n = env.num_envs() * env.agents_per_env();
    let mut obs = vec![0f32; n * env.obs_dim()];
    let mut rew = vec![0f32; n];
    let mut done = vec![false; env.num_envs()];
    let mut mask = vec![false; n];
    env.reset(9, &mut obs);
    let actions = vec![1u32; n];
    let mut infos = Vec::new();
    let mut truncated = vec![true; env.num_envs()];
    let mut final_obs = vec![f32::NAN; obs.len()];
    for slot in 1..=30 {
        env.active_agents(&mut mask);
        env.step(&actions, &mut obs, &mut rew, &mut done);
        env.truncations(&mut truncated, &mut final_obs);
        assert!(obs.iter().all(|x| x.is_finite()));
        // The horizon is a time limit: its end is a truncation, never a termination.
        assert_eq!(truncated, done, "slot {slot}");
        if slot < 30 {
            assert!(final_obs.iter().all(|x| x.is_nan()), "slot {slot}");
        }
    }
    assert!(done.iter().all(|&d| d));
    // Final observations are those of the ended episode (elapsed ≈ 1), not of the reset.
    let d = env.obs_dim();
    let elapsed = mec::OBS_FEATURES
        .iter()
        .position(|f| f.starts_with("episode elapsed"))
        .unwrap();
    for row in 0..n {
        assert!(
            final_obs[row * d + elapsed] > 0.9,
            "{}",
            final_obs[row * d + elapsed]
        );
        assert!(obs[row * d + elapsed] < 0.1);
    }
    env.drain_finished(&mut infos);
    assert_eq!(infos.len(), 3);
    assert!(infos.iter().all(|i| i.length == 30));
}
