//! Coordinated (sequential) decisions through the environment API: devices decide in the
//! broadcast order, each seeing what was committed before it, and the step applies the
//! commitments.

use edgewise_env::{SequentialVecEnv, VecEnv};
use mec::{Action, Catalogue, MecVecEnv, OBS_DIM, OBS_FEATURES, SimConfig};

fn env(devices: usize, num_envs: usize) -> MecVecEnv {
    let cfg = SimConfig {
        devices,
        slots: 20,
        arrival_rate: 0.5,
        ..SimConfig::default()
    };
    MecVecEnv::new(&cfg, &Catalogue::default_catalogue(), num_envs, 21).unwrap()
}

fn feature(name_start: &str) -> usize {
    OBS_FEATURES
        .iter()
        .position(|f| f.starts_with(name_start))
        .unwrap()
}

#[test]
fn committing_an_offloader_changes_the_next_devices_observation() {
    let n = 30;
    let mut e = env(n, 2);
    let mut obs = vec![0f32; 2 * n * OBS_DIM];
    e.reset(4, &mut obs);
    let seq = e
        .as_sequential()
        .expect("the MEC batch offers sequential decisions");
    let mut order = Vec::new();
    seq.decision_order(1, &mut order);
    assert!(order.len() >= 3, "{order:?}");
    let mut mask = vec![false; 2 * n];
    seq.active_agents(&mut mask);
    assert!(order.iter().all(|&u| mask[n + u]));
    assert_eq!(order.len(), mask[n..].iter().filter(|&&m| m).count());

    let (announced, work) = (
        feature("offloads announced"),
        feature("edge work announced"),
    );
    let mut row = [0f32; OBS_DIM];
    let second = order[1];
    // Before any commitment the agent sees what the plain step wrote.
    seq.observe_agent(1, second, &mut row);
    assert_eq!(
        &row[..],
        &obs[(n + second) * OBS_DIM..(n + second + 1) * OBS_DIM]
    );
    seq.commit(1, order[0], 1);
    seq.observe_agent(1, second, &mut row);
    assert!(
        (row[announced] - 1.0 / n as f32).abs() < 1e-6,
        "{}",
        row[announced]
    );
    assert!(row[work] > 0.0);
    // Other environments are untouched.
    seq.observe_agent(0, second, &mut row);
    assert_eq!(row[announced], 0.0);

    // The step applies the commitments, whatever `actions` says for those agents.
    for &u in &order[1..] {
        seq.commit(1, u, 0);
    }
    let actions = vec![1u32; 2 * n];
    let mut rewards = vec![0f32; 2 * n];
    let mut dones = vec![false; 2];
    e.step(&actions, &mut obs, &mut rewards, &mut dones);
    let sim = &e.sims()[1];
    for ev in sim.last_events() {
        let expected = if ev.device as usize == order[0] {
            Action::Offload
        } else {
            Action::Local
        };
        assert_eq!(ev.action, expected, "device {}", ev.device);
    }
    assert!(sim.commitments().is_empty());
    // The next slot starts with nothing announced.
    for r in obs.chunks_exact(OBS_DIM) {
        assert_eq!(r[announced], 0.0);
        assert_eq!(r[work], 0.0);
    }
}

#[test]
#[should_panic(expected = "committed twice")]
fn committing_twice_is_refused() {
    let n = 10;
    let mut e = env(n, 1);
    let mut obs = vec![0f32; n * OBS_DIM];
    e.reset(1, &mut obs);
    e.commit(0, 3, 1);
    e.commit(0, 3, 0);
}

#[test]
fn plain_stepping_is_unchanged_by_the_extension() {
    // Same seed, plain protocol: the all-at-once run and a run that commits nothing give
    // the same trajectory, and commitments of the same actions do too.
    let n = 12;
    let run = |commit: bool| {
        let mut e = env(n, 2);
        let mut obs = vec![0f32; 2 * n * OBS_DIM];
        let mut rewards = vec![0f32; 2 * n];
        let mut dones = vec![false; 2];
        let mut trace = Vec::new();
        e.reset(8, &mut obs);
        let mut order = Vec::new();
        for t in 0..20u32 {
            let actions: Vec<u32> = (0..2 * n as u32).map(|i| (i + t) % 2).collect();
            if commit {
                for env_i in 0..2 {
                    e.decision_order(env_i, &mut order);
                    for &u in &order {
                        e.commit(env_i, u, actions[env_i * n + u]);
                    }
                }
            }
            e.step(&actions, &mut obs, &mut rewards, &mut dones);
            trace.extend_from_slice(&rewards);
            trace.extend_from_slice(&obs);
        }
        trace
    };
    assert_eq!(run(false), run(true));
}
