//! CLI tests of `edgewise simulate`: output shape, determinism and bad input.
//!
//! The binary is located by [`edgewise_tests::cli`].

use edgewise_tests::cli::{run, stderr, stdout};

#[test]
fn json_has_the_documented_fields() {
    let o = run(&[
        "simulate",
        "--policy",
        "greedy",
        "--devices",
        "12",
        "--slots",
        "50",
        "--seed",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    for key in [
        "mean_latency_s",
        "p95_latency_s",
        "energy_violation_rate",
        "accuracy",
        "hallucination_rate",
        "reward",
        "trajectory_digest",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["policy"], "greedy");
    assert_eq!(v["devices"], 12);
    assert_eq!(v["slots"], 50);
    assert!(v["mean_latency_s"].as_f64().unwrap() > 0.0);
    // serde_json keeps the last of repeated keys, so count them in the text: an object
    // with a key twice is not valid for strict readers.
    let text = stdout(&o);
    for key in v.as_object().unwrap().keys() {
        let n = text.matches(&format!("\"{key}\":")).count();
        assert_eq!(n, 1, "key {key} appears {n} times in {text}");
    }
}

#[test]
fn same_seed_same_output_and_different_seed_differs() {
    let args = |seed: &str| {
        run(&[
            "simulate",
            "--policy",
            "random",
            "--devices",
            "8",
            "--slots",
            "40",
            "--seed",
            seed,
            "--json",
        ])
    };
    let (a, b, c) = (args("5"), args("5"), args("6"));
    assert_eq!(stdout(&a), stdout(&b));
    assert_ne!(stdout(&a), stdout(&c));
}

#[test]
fn compare_prints_every_baseline() {
    let o = run(&[
        "simulate",
        "--compare",
        "--devices",
        "20",
        "--slots",
        "60",
        "--seed",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for p in [
        "always-local",
        "always-offload",
        "random",
        "greedy",
        "oracle",
    ] {
        assert!(text.contains(p), "{p} missing from:\n{text}");
    }
    let o = run(&[
        "simulate",
        "--compare",
        "--devices",
        "5",
        "--slots",
        "30",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["policies"].as_array().unwrap().len(), 5);
}

#[test]
fn zero_devices_is_rejected_by_name() {
    let o = run(&["simulate", "--devices", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--devices"), "{}", stderr(&o));
}

#[test]
fn unknown_policy_is_rejected_with_the_choices() {
    let o = run(&["simulate", "--policy", "fastest"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("fastest") && e.contains("always-offload"), "{e}");
}

#[test]
fn config_with_a_wrong_field_is_rejected_by_name() {
    let dir = std::env::temp_dir().join(format!("edgewise-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let misspelt = dir.join("bad.toml");
    std::fs::write(&misspelt, "devices = 10\n[radio]\nbandwith_hz = 5e6\n").unwrap();
    let o = run(&["simulate", "--config", misspelt.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("bandwith_hz") && stderr(&o).contains("bad.toml"),
        "{}",
        stderr(&o)
    );

    let out_of_range = dir.join("range.json");
    std::fs::write(&out_of_range, r#"{"edge": {"workers": 0}}"#).unwrap();
    let o = run(&["simulate", "--config", out_of_range.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("edge.workers"), "{}", stderr(&o));

    let good = dir.join("good.toml");
    std::fs::write(&good, "devices = 6\nslots = 20\n").unwrap();
    let o = run(&["simulate", "--config", good.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["devices"], 6);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_config_file_is_named() {
    let o = run(&["simulate", "--config", "/nonexistent/scenario.toml"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent/scenario.toml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn presets_run_and_unknown_ones_are_listed() {
    let json = |preset: &str| {
        let o = run(&[
            "simulate",
            "--preset",
            preset,
            "--devices",
            "15",
            "--slots",
            "60",
            "--seed",
            "4",
            "--json",
        ]);
        assert!(o.status.success(), "{preset}: {}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
    };
    let default = json("default");
    let plain = run(&[
        "simulate",
        "--devices",
        "15",
        "--slots",
        "60",
        "--seed",
        "4",
        "--json",
    ]);
    // The default preset is the shipped scenario.
    assert_eq!(
        default,
        serde_json::from_str::<serde_json::Value>(&stdout(&plain)).unwrap()
    );
    for p in [
        "bursty",
        "edge-load",
        "tight-energy",
        "hard-queries",
        "foresight",
    ] {
        let v = json(p);
        assert_eq!(v["devices"], 15, "{p}");
        assert_ne!(v["trajectory_digest"], default["trajectory_digest"], "{p}");
    }
    let o = run(&["simulate", "--preset", "stormy"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("stormy") && e.contains("bursty") && e.contains("--preset"),
        "{e}"
    );
}

#[test]
fn planner_runs_deterministically() {
    let args = [
        "simulate",
        "--policy",
        "planner",
        "--devices",
        "8",
        "--slots",
        "25",
        "--seed",
        "2",
        "--json",
    ];
    let (a, b) = (run(&args), run(&args));
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(stdout(&a), stdout(&b));
    let v: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert_eq!(v["policy"], "planner");
}

#[test]
fn a_policy_reading_another_observation_size_is_refused() {
    // A well-formed MEC policy file for an older observation of 20 features.
    let dir = std::env::temp_dir().join(format!("edgewise-obsdim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("old.json");
    let policy = serde_json::json!({
        "format": "edgewise-policy",
        "version": 1,
        "obs_dim": 20,
        "num_actions": 2,
        "activation": "tanh",
        "obs_norm": { "mean": vec![0.0; 20], "var": vec![1.0; 20], "epsilon": 1e-8, "clip": 10.0 },
        "layers": [{ "inputs": 20, "outputs": 2, "weight": vec![0.0; 40], "bias": [0.0, 0.0] }],
        "meta": { "algo": "ppo", "env": "mec", "obs_dim": 20, "env_steps": 1, "seed": 1 }
    });
    std::fs::write(&file, policy.to_string()).unwrap();
    let o = run(&["simulate", "--policy", file.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("old.json")
            && e.contains("reads 20 observation features")
            && e.contains("expected obs_dim"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
