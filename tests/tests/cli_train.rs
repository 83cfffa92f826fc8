//! CLI tests of `edgewise train`: a run split by `--stop-after` and continued with
//! `--resume` ends exactly where the uninterrupted run does (PPO, WM-PPO and the
//! `wm-ppo-gru` ablation), a checkpoint is not resumed with another algorithm, and MEC
//! training on a mix of populations works and is checked, the MEC scenario, externality
//! credit and TOML hyper-parameter files reach the learner; every metrics row records the
//! iteration's rollout/learn time split.

use std::path::{Path, PathBuf};

use edgewise_tests::cli::{run, stderr, stdout};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgewise-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `train` on CartPole with 2 environments (256 env steps per iteration), 5 iterations.
fn train(algo: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let out = out.to_str().unwrap();
    let mut args = vec![
        "train",
        "--algo",
        algo,
        "--env",
        "cartpole",
        "--envs",
        "2",
        "--steps",
        "1280",
        "--seed",
        "4",
        "--checkpoint-every",
        "2",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

/// The timing columns that end every metrics row.
const TIMING: [&str; 2] = ["rollout_s", "learn_s"];

/// metrics.csv without its timing columns (wall times differ between runs), after
/// checking that the header names them and every row has them as non-negative seconds.
fn metrics_without_timing(dir: &Path) -> String {
    let text = read(dir, "metrics.csv");
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let (kept, timing) = fields.split_at(fields.len() - TIMING.len());
        if i == 0 {
            assert_eq!(timing, TIMING, "{line}");
        } else {
            for t in timing {
                let secs: f64 = t.parse().unwrap_or_else(|_| panic!("{t:?} in {line}"));
                assert!(secs >= 0.0 && secs.is_finite(), "{line}");
            }
        }
        out.push_str(&kept.join(","));
        out.push('\n');
    }
    out
}

fn split_run_equals_uninterrupted(algo: &str) {
    let dir = scratch(&format!("train-resume-{algo}"));
    let (whole, split) = (dir.join("whole"), dir.join("split"));
    let o = train(algo, &whole, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = stdout(&o);
    assert!(
        printed.contains("time split over 5 iterations: rollout"),
        "{printed}"
    );
    let o = train(algo, &split, &["--stop-after", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !split.join("policy.json").exists(),
        "stopped early: no policy yet"
    );
    assert_eq!(read(&split, "metrics.csv").lines().count(), 1 + 2);
    let o = train(algo, &split, &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        metrics_without_timing(&split),
        metrics_without_timing(&whole)
    );
    assert_eq!(read(&split, "policy.json"), read(&whole, "policy.json"));
    assert_eq!(read(&whole, "metrics.csv").lines().count(), 1 + 5);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ppo_split_run_equals_uninterrupted() {
    split_run_equals_uninterrupted("ppo");
}

#[test]
fn wm_ppo_split_run_equals_uninterrupted() {
    split_run_equals_uninterrupted("wm-ppo");
}

#[test]
fn wm_ppo_gru_split_run_equals_uninterrupted() {
    split_run_equals_uninterrupted("wm-ppo-gru");
}

#[test]
fn resume_with_the_other_algorithm_is_refused() {
    let dir = scratch("train-resume-mismatch");
    let o = train("ppo", &dir, &["--stop-after", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = train("wm-ppo", &dir, &["--resume"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("written by --algo ppo"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn mec_trains_on_a_population_mix_with_floored_input_statistics() {
    let dir = scratch("train-mix");
    let out = dir.join("mix");
    let o = run(&[
        "train",
        "--env",
        "mec",
        "--devices",
        "3,6",
        "--envs",
        "2",
        "--steps",
        "256",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let policy: serde_json::Value = serde_json::from_str(&read(&out, "policy.json")).unwrap();
    assert_eq!(policy["meta"]["train_devices"], serde_json::json!([3, 6]));
    // No feature is divided by less than the std floor (0.1): a feature that was constant
    // in training cannot read more than Δ / 0.1 standard deviations elsewhere.
    let var = policy["obs_norm"]["var"].as_array().unwrap();
    assert!(!var.is_empty());
    for (i, v) in var.iter().enumerate() {
        let v = v.as_f64().unwrap();
        assert!(v >= 0.01 * (1.0 - 1e-6), "feature {i} variance {v}");
    }

    // More populations than parallel environments cannot be mixed.
    let o = run(&[
        "train",
        "--env",
        "mec",
        "--devices",
        "3,6,9",
        "--envs",
        "2",
        "--steps",
        "256",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("--envs 2") && err.contains("--envs 3"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `train --env mec` on a MEC run of 3 devices, 256 env steps, with `extra` flags.
fn train_mec(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--env",
        "mec",
        "--devices",
        "3",
        "--envs",
        "1",
        "--steps",
        "256",
        "--seed",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn mec_scenario_credit_and_config_files_reach_the_learner() {
    let dir = scratch("train-scenario");
    let toml = dir.join("ppo.toml");
    std::fs::write(&toml, "epochs = 2\n").unwrap();
    let toml = toml.to_str().unwrap();
    let run_with = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let o = train_mec(&out, extra);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        read(&out, "policy.json")
    };
    let plain = run_with("plain", &["--preset", "bursty", "--ppo-config", toml]);
    let credit_flags = [
        "--preset",
        "bursty",
        "--ppo-config",
        toml,
        "--externality-credit",
        "1",
    ];
    let credited = run_with("credited", &credit_flags);
    let again = run_with("again", &credit_flags);
    assert_eq!(credited, again, "same flags, same seed: same policy");
    assert_ne!(
        plain, credited,
        "the credit changes what the learner is paid"
    );
    let mut settled_flags = credit_flags.to_vec();
    settled_flags.extend(["--externality-settlement", "next-slot"]);
    let settled = run_with("settled", &settled_flags);
    assert_ne!(
        credited, settled,
        "settling the credit a slot late changes what the learner is paid"
    );
    let default_scenario = run_with("default", &["--ppo-config", toml]);
    assert_ne!(
        plain, default_scenario,
        "--preset bursty is not the default scenario"
    );
    // The files say what they were trained on.
    let meta =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["meta"].clone();
    let m = meta(&credited);
    assert_eq!(m["train_scenario"], "preset bursty");
    assert_eq!(m["externality_credit"], 1.0);
    assert_eq!(m["externality_settlement"], "slot-end");
    assert_eq!(meta(&settled)["externality_settlement"], "next-slot");
    let m = meta(&default_scenario);
    assert_eq!(m["train_scenario"], "default");
    assert_eq!(m["externality_credit"], 0.0);

    let fails = |extra: &[&str]| {
        let o = train_mec(&dir.join("bad"), extra);
        assert!(!o.status.success(), "{extra:?} should fail");
        stderr(&o)
    };
    let err = fails(&["--externality-credit", "-1"]);
    assert!(err.contains("reward.externality_credit"), "{err}");
    let err = fails(&["--externality-settlement", "later"]);
    assert!(
        err.contains("reward.externality_settlement") && err.contains("next-slot"),
        "{err}"
    );
    let json = dir.join("ppo.json");
    std::fs::write(&json, "epochs = 2\n").unwrap();
    let err = fails(&["--ppo-config", json.to_str().unwrap()]);
    assert!(
        err.contains("ppo.json") && err.contains("not valid JSON"),
        "{err}"
    );
    let err = fails(&["--preset", "calm"]);
    assert!(err.contains("calm") && err.contains("bursty"), "{err}");
    let o = train("ppo", &dir.join("cartpole"), &["--preset", "bursty"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--env mec"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).ok();
}
