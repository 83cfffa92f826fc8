//! A checkpointed and resumed run equals the same run continued in process, bit for bit.

use edgewise_rl::cartpole::CartPoleVecEnv;
use edgewise_rl::ppo::{CARTPOLE_ENVS, cartpole_config};
use edgewise_rl::{GruWmConfig, Ppo, RlError, WmConfig, cpu_device};

fn run_on(ppo: &mut Ppo, iterations: usize) -> Vec<edgewise_rl::IterationStats> {
    let mut env = CartPoleVecEnv::new(CARTPOLE_ENVS);
    (0..iterations)
        .map(|_| ppo.iterate(&mut env).unwrap())
        .collect()
}

#[test]
fn resume_matches_uninterrupted_run() {
    let mut env = CartPoleVecEnv::new(CARTPOLE_ENVS);
    let mut a = Ppo::new(cartpole_config(), &env, &cpu_device(), 11).unwrap();
    for _ in 0..2 {
        a.iterate(&mut env).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("edgewise-rl-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ppo.ckpt");
    a.save_checkpoint(&path).unwrap();
    assert!(
        !dir.join("ppo.ckpt.tmp").exists(),
        "temporary file left behind"
    );

    let stats_a = run_on(&mut a, 3);
    let mut b = Ppo::load_checkpoint(&path, &cpu_device()).unwrap();
    assert_eq!(b.iteration(), 2);
    let stats_b = run_on(&mut b, 3);

    assert_eq!(stats_a, stats_b);
    assert_eq!(a.policy(), b.policy());
    assert_eq!(a.env_steps(), b.env_steps());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wm_ppo_gru_resume_matches_uninterrupted_run() {
    // Small world-model settings keep the test quick; the replay holds more than one
    // rollout at the checkpoint so its (binary) serialisation is exercised.
    let wm = GruWmConfig {
        hidden: 16,
        train_steps: 2,
        batch_windows: 32,
        validation_windows: 64,
        replay_rollouts: 2,
        ..GruWmConfig::default()
    };
    let mut env = CartPoleVecEnv::new(CARTPOLE_ENVS);
    let mut a = Ppo::with_gru_world_model(cartpole_config(), wm, &env, &cpu_device(), 12).unwrap();
    for _ in 0..3 {
        a.iterate(&mut env).unwrap();
    }
    let bytes = a.checkpoint_bytes().unwrap();
    let stats_a = run_on(&mut a, 3);

    let mut b =
        Ppo::from_checkpoint_bytes(&bytes, std::path::Path::new("wm.ckpt"), &cpu_device()).unwrap();
    assert!(b.has_world_model());
    assert_eq!(b.iteration(), 3);
    let stats_b = run_on(&mut b, 3);
    // The world model was used (validation errors measured) and continued identically.
    assert!(stats_a.iter().all(|s| s.wm_error.is_some()));
    assert_eq!(stats_a, stats_b);
    assert_eq!(a.policy(), b.policy());

    // A checkpoint cut short anywhere in the replay is rejected, naming the file.
    let err = Ppo::from_checkpoint_bytes(
        &bytes[..bytes.len() - 3],
        std::path::Path::new("wm.ckpt"),
        &cpu_device(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("wm.ckpt"), "{err}");
}

#[test]
fn same_seed_same_run_and_other_seed_differs() {
    let run = |seed| {
        let env = CartPoleVecEnv::new(CARTPOLE_ENVS);
        let mut p = Ppo::new(cartpole_config(), &env, &cpu_device(), seed).unwrap();
        run_on(&mut p, 2);
        p.policy()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn corrupt_checkpoints_are_rejected_with_the_file_named() {
    let env = CartPoleVecEnv::new(CARTPOLE_ENVS);
    let mut p = Ppo::new(cartpole_config(), &env, &cpu_device(), 1).unwrap();
    let bytes = p.checkpoint_bytes().unwrap();
    let origin = std::path::Path::new("x.ckpt");
    for bad in [
        &bytes[..bytes.len() - 10],
        &bytes[..20],
        b"garbage".as_slice(),
    ] {
        let err = Ppo::from_checkpoint_bytes(bad, origin, &cpu_device()).unwrap_err();
        assert!(matches!(err, RlError::Checkpoint { .. }), "{err}");
        assert!(err.to_string().contains("x.ckpt"), "{err}");
    }
    assert!(Ppo::from_checkpoint_bytes(&bytes, origin, &cpu_device()).is_ok());
}

#[test]
fn exported_policy_round_trips_and_acts() {
    let mut env = CartPoleVecEnv::new(CARTPOLE_ENVS);
    let mut p = Ppo::new(cartpole_config(), &env, &cpu_device(), 2).unwrap();
    p.iterate(&mut env).unwrap();
    let file = p.policy();
    let loaded = edgewise_policy::PolicyFile::load(&file.to_bytes()).unwrap();
    assert_eq!(file, loaded);
    let probs = loaded.act(&[0.01, -0.02, 0.03, 0.0]);
    assert_eq!(probs.len(), 2);
    assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn wm_ppo_resume_matches_uninterrupted_run() {
    // Settings under which the response model is trusted within a few iterations, so the
    // resumed run continues with counterfactual advantages in use (not just PPO). CartPole's
    // reward is constant, so its scaled value's drift makes a large relative error: a
    // loose threshold keeps the gate open here.
    let wm = WmConfig {
        error_threshold: 1e6,
        hidden: 16,
        members: 2,
        train_steps: 64,
        batch: 64,
        replay_rollouts: 2,
        ..WmConfig::default()
    };
    let mut env = CartPoleVecEnv::new(CARTPOLE_ENVS);
    let mut a = Ppo::with_world_model(cartpole_config(), wm, &env, &cpu_device(), 13).unwrap();
    assert_eq!(a.algo(), "wm-ppo");
    for _ in 0..3 {
        a.iterate(&mut env).unwrap();
    }
    let bytes = a.checkpoint_bytes().unwrap();
    let stats_a = run_on(&mut a, 3);
    let mut b =
        Ppo::from_checkpoint_bytes(&bytes, std::path::Path::new("v2.ckpt"), &cpu_device()).unwrap();
    assert_eq!((b.algo(), b.iteration()), ("wm-ppo", 3));
    let stats_b = run_on(&mut b, 3);
    assert!(
        stats_a
            .iter()
            .any(|s| s.wm_trust > 0.0 && s.counterfactual > 0),
        "the model was never used: {stats_a:?}"
    );
    assert!(stats_a.iter().all(|s| s.wm_error_response.is_some()));
    assert_eq!(stats_a, stats_b);
    assert_eq!(a.policy(), b.policy());
    let err = Ppo::from_checkpoint_bytes(
        &bytes[..bytes.len() - 5],
        std::path::Path::new("v2.ckpt"),
        &cpu_device(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("v2.ckpt"), "{err}");
}

#[test]
fn version_1_checkpoints_are_refused_with_the_reason() {
    let env = CartPoleVecEnv::new(CARTPOLE_ENVS);
    let mut p = Ppo::new(cartpole_config(), &env, &cpu_device(), 1).unwrap();
    let bytes = p.checkpoint_bytes().unwrap();
    // Rewrite the header's version field (same length: "version":2 -> "version":1).
    let pos = bytes
        .windows(11)
        .position(|w| w == b"\"version\":2")
        .expect("version field");
    let mut old = bytes;
    old[pos + 10] = b'1';
    let err = Ppo::from_checkpoint_bytes(&old, std::path::Path::new("old.ckpt"), &cpu_device())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("old.ckpt") && msg.contains("std floor"),
        "{msg}"
    );
}
