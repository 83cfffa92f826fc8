//! CLI tests of `edgewise experiment` as cells: a run split into shards and merged gives
//! the same results and byte-identical policies as the single run; a merge refuses a
//! missing cell and a cell of another plan, naming it and the command that re-runs it;
//! a cell that crashes is re-run and the result is unchanged.
//!
//! All on the tiny plan (`edgewise_tests::experiment::TINY`, 6 cells).

use std::process::Command;

use edgewise_tests::cli::{edgewise_bin, stderr, stdout};
use edgewise_tests::experiment::{
    TINY, TINY_CELLS as CELLS, assert_same_experiment, experiment, files, ok, scratch,
};
use serde_json::Value;

/// The single run (two processes at a time) and the same plan as two shards plus a
/// merge must agree; then the merge's refusals, and the re-run it suggests.
#[test]
fn shards_and_merge_equal_the_single_run() {
    let dir = scratch("experiment-cells");
    let (single, sharded, other) = (dir.join("single"), dir.join("sharded"), dir.join("other"));

    let listed = Command::new(edgewise_bin())
        .arg("experiment")
        .args(TINY)
        .arg("--list-cells")
        .output()
        .unwrap();
    ok(&listed);
    let lines: Vec<Value> = stdout(&listed)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, CELLS);
    let hash = lines[0]["plan_hash"].as_str().unwrap();
    assert!(
        lines
            .iter()
            .all(|l| l["plan_hash"] == hash && l["env_steps"] == 1024)
    );

    ok(&experiment(&single, &["--jobs", "2"], &[]));
    let o = experiment(&sharded, &["--shard", "0/2"], &[]);
    ok(&o);
    assert!(
        stdout(&o).contains("ppo-s1, ppo-eqgrad-s1, wm-ppo-s2"),
        "{}",
        stdout(&o)
    );
    ok(&experiment(&sharded, &["--shard", "1/2"], &[]));
    assert!(
        !sharded.join("report.md").exists(),
        "shards write cells only"
    );
    ok(&experiment(&sharded, &["--merge"], &[]));

    assert_same_experiment(&single, &sharded);
    assert_plan_shape(&single);
    let policies = files(&single, "policies");
    assert_eq!(policies.len(), CELLS.len());
    for id in CELLS {
        assert_eq!(
            std::fs::read(single.join("cells").join(id).join("policy.json")).unwrap(),
            policies[&format!("{id}.json")]
        );
    }
    for f in [
        "report.md",
        "latency_default.png",
        "latency_bursty.png",
        "learning_curves.png",
    ] {
        assert!(sharded.join(f).exists(), "{f}");
    }

    // A cell already there for this plan is kept, not retrained.
    let cell_json = sharded.join("cells/ppo-s1/cell.json");
    let before = std::fs::read(&cell_json).unwrap();
    let o = experiment(&sharded, &["--cell", "ppo-s1"], &[]);
    ok(&o);
    assert!(stdout(&o).contains("kept"), "{}", stdout(&o));
    assert_eq!(std::fs::read(&cell_json).unwrap(), before);

    // A cell of another plan (other steps) is refused by name.
    let other_plan = ["--steps", "512", "--cell", "wm-ppo-s1"];
    let o = Command::new(edgewise_bin())
        .arg("experiment")
        .args(&TINY[..4])
        .args(&TINY[6..])
        .args(other_plan)
        .arg("--out")
        .arg(&other)
        .output()
        .unwrap();
    ok(&o);
    let target = sharded.join("cells/wm-ppo-s1");
    std::fs::remove_dir_all(&target).unwrap();
    std::fs::rename(other.join("cells/wm-ppo-s1"), &target).unwrap();
    // A missing cell is named with the command that re-runs it.
    std::fs::remove_dir_all(sharded.join("cells/ppo-s2")).unwrap();
    let o = experiment(&sharded, &["--merge", "--force"], &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("2 of 6 cells are not ready"), "{err}");
    assert!(
        err.contains("cell wm-ppo-s1 in") && err.contains("another plan"),
        "{err}"
    );
    assert!(
        err.contains("cell ppo-s2 is missing") && err.contains("--cell ppo-s2 --out"),
        "{err}"
    );

    // Re-running the two cells as the message says restores the same results.
    for id in ["wm-ppo-s1", "ppo-s2"] {
        let o = experiment(&sharded, &["--cell", id], &[]);
        ok(&o);
    }
    ok(&experiment(&sharded, &["--merge", "--force"], &[]));
    assert_same_experiment(&single, &sharded);
    std::fs::remove_dir_all(&dir).ok();
}

/// What issue 16 asks of the experiment, checked on a finished tiny run: every run trains
/// on the population mix (one population per parallel environment) and is evaluated on
/// the default and the bursty scenario; the equal-gradient-steps control is an arm beside
/// PPO and WM-PPO; the baselines include the planner; the report gives steps to 95% of
/// PPO's final return with bootstrap intervals and a verdict per paper claim.
fn assert_plan_shape(dir: &std::path::Path) {
    let results: Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(
        results["plan"]["train_populations"],
        serde_json::json!([10, 20])
    );
    assert_eq!(
        results["plan"]["eval_scenarios"],
        serde_json::json!(["default", "bursty"])
    );
    let runs = results["runs"].as_array().unwrap();
    let arms: Vec<&str> = runs.iter().map(|r| r["arm"].as_str().unwrap()).collect();
    assert_eq!(
        arms,
        ["ppo", "wm-ppo", "ppo-eqgrad", "ppo", "wm-ppo", "ppo-eqgrad"]
    );
    for run in runs {
        for scenario in ["default", "bursty"] {
            for n in ["10", "20"] {
                assert_eq!(
                    run["eval"][scenario][n].as_array().map(Vec::len),
                    Some(2),
                    "{scenario} {n}"
                );
            }
        }
    }
    let steps: Vec<(u64, u64)> = results["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["actor_critic_steps"].as_u64().unwrap(),
                a["world_model_steps"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps, [(16, 0), (16, 32), (48, 0)], "equal gradient steps");
    for b in [
        "greedy",
        "oracle",
        "always-local",
        "always-offload",
        "random",
        "planner",
    ] {
        assert!(
            results["baselines"][b]["bursty"]["20"].is_array(),
            "baseline {b} on the bursty scenario"
        );
    }
    let policy: Value =
        serde_json::from_slice(&std::fs::read(dir.join("policies/ppo-eqgrad-s1.json")).unwrap())
            .unwrap();
    assert_eq!(policy["meta"]["train_devices"], serde_json::json!([10, 20]));
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for needle in [
        "steps to 95% of PPO's final return",
        "### `bursty` scenario",
        "| devices | ppo | wm-ppo | ppo-eqgrad | greedy | oracle | always-local | always-offload | random | planner |",
        "| +15.8% final reward over PPO |",
        "| latency 12–30% below the best fixed baseline",
        "equal-gradient-steps",
    ] {
        assert!(report.contains(needle), "{needle:?} missing:\n{report}");
    }
}

/// The quick preset as a cluster driver sees it: 5 seeds × 3 arms, every cell on the mix.
#[test]
fn the_quick_preset_lists_every_arm_on_the_mix() {
    let listed = Command::new(edgewise_bin())
        .args(["experiment", "--preset", "quick", "--list-cells"])
        .output()
        .unwrap();
    ok(&listed);
    let lines: Vec<Value> = stdout(&listed)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 15);
    for (i, l) in lines.iter().enumerate() {
        let (seed, arm) = (i / 3 + 1, ["ppo", "wm-ppo", "ppo-eqgrad"][i % 3]);
        assert_eq!(l["id"], format!("{arm}-s{seed}"));
        assert_eq!(l["arm"], arm);
        assert_eq!(l["train_populations"], serde_json::json!([10, 20, 50, 100]));
    }
}

/// A cell process that crashes leaves no cell behind; the run says which cell failed and
/// how to re-run it, and re-running the experiment trains only that cell.
#[test]
fn a_crashed_cell_is_rerun_and_changes_nothing() {
    let dir = scratch("experiment-crash");
    let (out, marker) = (dir.join("out"), dir.join("crashed"));
    let crash = format!("wm-ppo-s2:{}", marker.display());
    let env = [("EDGEWISE_CRASH_ONCE", crash.as_str())];
    let o = experiment(&out, &["--jobs", "2"], &env);
    assert!(!o.status.success(), "the crash must fail the run");
    assert!(marker.exists());
    let err = stderr(&o);
    assert!(
        err.contains("1 of 6 cells failed") && err.contains("--cell wm-ppo-s2 --out"),
        "{err}"
    );
    assert!(!out.join("cells/wm-ppo-s2").exists());
    assert!(!out.join("report.md").exists());

    let o = experiment(&out, &[], &env);
    ok(&o);
    assert!(
        stdout(&o).contains("5 of 6 cells already done"),
        "{}",
        stdout(&o)
    );
    let leftovers: Vec<String> = std::fs::read_dir(out.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let reference = dir.join("reference");
    ok(&experiment(&reference, &[], &[]));
    assert_same_experiment(&reference, &out);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_cell_and_shard_arguments_are_named() {
    let dir = scratch("experiment-bad-args");
    let o = experiment(&dir, &["--cell", "ppo-n50-s1"], &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("no cell \"ppo-n50-s1\"") && err.contains("ppo-s1"),
        "{err}"
    );
    let o = experiment(&dir, &["--shard", "2/2"], &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("expected I/N"), "{}", stderr(&o));
    let o = experiment(&dir, &["--merge"], &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("6 of 6 cells are not ready"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).ok();
}
