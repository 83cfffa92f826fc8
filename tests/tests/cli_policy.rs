//! CLI tests of learned policies and experiments: `edgewise simulate --policy FILE`,
//! `simulate --compare --with FILE`, and `edgewise experiment` argument checking.
//!
//! Policy files are made by `edgewise train` with a tiny budget (a second or two).

use std::path::{Path, PathBuf};

use edgewise_tests::cli::{run, stderr, stdout};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgewise-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn train(env: &str, out: &Path) -> PathBuf {
    let o = run(&[
        "train",
        "--env",
        env,
        "--steps",
        "256",
        "--devices",
        "3",
        "--envs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    out.join("policy.json")
}

#[test]
fn simulate_runs_a_trained_policy_and_rejects_misfits() {
    let dir = scratch("policy");
    let mec = train("mec", &dir.join("mec-run"));
    let mec_s = mec.to_str().unwrap();

    // A MEC policy runs greedily, on any population.
    let o = run(&[
        "simulate",
        "--policy",
        mec_s,
        "--devices",
        "7",
        "--slots",
        "30",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["policy"], "mec-run");
    assert_eq!(v["devices"], 7);
    assert!(v["mean_latency_s"].as_f64().unwrap() > 0.0);
    // Deterministic.
    let again = run(&[
        "simulate",
        "--policy",
        mec_s,
        "--devices",
        "7",
        "--slots",
        "30",
        "--json",
    ]);
    assert_eq!(stdout(&o), stdout(&again));

    // --compare --with adds it to the baselines.
    let o = run(&[
        "simulate",
        "--compare",
        "--with",
        mec_s,
        "--devices",
        "5",
        "--slots",
        "20",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rows = v["policies"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[5]["policy"], "mec-run");

    // --sample draws the learned policy's actions from its distribution, seeded by --seed:
    // same seed, same run; named apart from the greedy run.
    let sampled = |seed: &str| {
        let o = run(&[
            "simulate",
            "--policy",
            mec_s,
            "--devices",
            "7",
            "--slots",
            "30",
            "--seed",
            seed,
            "--sample",
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
    };
    let s1 = sampled("3");
    assert_eq!(s1["policy"], "mec-run (sampled)");
    assert_eq!(s1, sampled("3"));

    // A CartPole policy is refused, naming the file and what was expected.
    let cartpole = train("cartpole", &dir.join("cp-run"));
    let o = run(&["simulate", "--policy", cartpole.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("cp-run")
            && e.contains("cartpole")
            && e.contains("mec")
            && e.contains("obs_dim 30"),
        "{e}"
    );

    // Another format version is refused by name, also through --with.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mec).unwrap()).unwrap();
    json["version"] = 2.into();
    let v2 = dir.join("future.json");
    std::fs::write(&v2, json.to_string()).unwrap();
    for args in [
        vec!["simulate", "--policy", v2.to_str().unwrap()],
        vec!["simulate", "--compare", "--with", v2.to_str().unwrap()],
    ] {
        let o = run(&args);
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(e.contains("future.json") && e.contains("version 2"), "{e}");
    }

    // Neither a baseline nor a file.
    let o = run(&["simulate", "--policy", "/nonexistent/policy.json"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("greedy"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn experiment_rejects_bad_input_and_writes_nothing() {
    let dir = scratch("experiment");
    let out = dir.join("out");
    let out_s = out.to_str().unwrap();

    let o = run(&["experiment", "--preset", "fast", "--out", out_s]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("quick, full"), "{}", stderr(&o));

    let o = run(&[
        "experiment",
        "--preset",
        "quick",
        "--out",
        out_s,
        "--steps",
        "0",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("steps"), "{}", stderr(&o));
    let o = run(&[
        "experiment",
        "--preset",
        "quick",
        "--out",
        out_s,
        "--populations",
        "10,0",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("populations"), "{}", stderr(&o));
    assert!(!out.exists(), "bad input must not create {out_s}");

    // An existing report is kept unless --force.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("report.md"), "keep me").unwrap();
    let o = run(&["experiment", "--preset", "quick", "--out", out_s]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("report.md")).unwrap(),
        "keep me"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tiny_experiment_writes_report_plots_and_policies() {
    let dir = scratch("experiment-run");
    let out = dir.join("out");
    let o = run(&[
        "experiment",
        "--preset",
        "quick",
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "1024",
        "--seeds",
        "2",
        "--train-populations",
        "4",
        "--populations",
        "4,6",
        "--arms",
        "ppo,wm-ppo",
        "--scenarios",
        "default",
        "--eval-seeds",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "wm-ppo",
        "always-offload",
        "oracle",
        "### `default`, 6 devices",
        "Beside the paper",
        "±",
    ] {
        assert!(
            report.contains(needle),
            "{needle} missing from report:\n{report}"
        );
    }
    for f in ["learning_curves.png", "latency_default.png", "wm_error.png"] {
        let bytes = std::fs::read(out.join(f)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{f} is not a PNG");
    }
    assert!(out.join("policies/wm-ppo-s2.json").is_file());
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["runs"].as_array().unwrap().len(), 4);
    std::fs::remove_dir_all(&dir).ok();
}
